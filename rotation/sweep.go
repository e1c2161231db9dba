package rotation

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

// Sweep lists every configured vault (one list page per 25 secrets, no per-secret GET for secrets that
// are not due), rotates the managed secrets that are due or expired, finishes revocations whose grace
// period is over, and reports overdue secrets. Rotations run concurrently up to Config.Concurrency.
// With dryRun it only plans.
func (e *Engine) Sweep(ctx context.Context, trigger Trigger, dryRun bool) SweepReport {
	var (
		mu     sync.Mutex
		report SweepReport
		wg     sync.WaitGroup
		sem    = make(chan struct{}, e.cfg.Concurrency)
	)
	add := func(o Outcome) {
		mu.Lock()
		report.Outcomes = append(report.Outcomes, o)
		mu.Unlock()
	}
	run := func(f func()) {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f()
		}()
	}
	for _, name := range e.order {
		v := e.vaults[strings.ToLower(name)]
		err := v.List(ctx, func(p SecretProperties) error {
			mu.Lock()
			report.Scanned++
			mu.Unlock()
			if !IsManaged(p.Tags) {
				return nil
			}
			mu.Lock()
			report.Managed++
			mu.Unlock()
			now := e.clock.Now()
			pol, prov, err := e.policy(p.Tags)
			if err != nil {
				o := with(Outcome{Vault: v.Name(), Secret: p.Name, OldVersion: p.Version, Provider: tagValue(p.Tags, TagProvider), Trigger: trigger, Expires: p.Expires}, failed(err))
				e.publish(ctx, o)
				add(o)
				if due, why := e.due(p, now); due && p.Expires != nil {
					add(e.overdue(ctx, p, trigger, why+"; cannot rotate: "+o.Reason))
				}
				return nil
			}
			due, why := e.due(p, now)
			resume := !due && !pol.State.Started.IsZero() && !now.Before(pol.State.Started.Add(e.cfg.ResumeAfter))
			if (due || resume) && pol.State.Fails > 0 {
				if next := pol.State.FailedAt.Add(e.failureBackoff(pol.State.Fails)); now.Before(next) {
					// Keeps failing: report it, do not hammer the provider.
					add(e.overdue(ctx, p, trigger, fmt.Sprintf("failing: %d consecutive failed rotations, the last at %s; next attempt after %s",
						pol.State.Fails, pol.State.FailedAt.Format(time.RFC3339), next.UTC().Format(time.RFC3339))))
					return nil
				}
			}
			if due || resume {
				if resume {
					why = "finishing a rotation interrupted at " + pol.State.Started.Format(time.RFC3339)
				}
				run(func() {
					o := e.Rotate(ctx, Request{Vault: v.Name(), Secret: p.Name, Version: p.Version, Trigger: trigger, DryRun: dryRun, Force: resume})
					add(o)
					if o.Failed() && p.Expires != nil && !now.Before(p.Expires.Add(-e.cfg.Defaults.NearExpiryLead)) {
						add(e.overdue(ctx, p, trigger, why+"; rotation failed: "+o.Reason))
					}
				})
				return nil
			}
			if dueRevocations(pol.State, now) > 0 && prov.Shape() == providers.ShapeCreateRevoke {
				run(func() { add(e.revoke(ctx, v, p, trigger, dryRun)) })
			}
			return nil
		})
		if err != nil {
			o := failed(fmt.Errorf("list secrets: %w", err))
			o.Vault, o.Trigger = v.Name(), trigger
			e.publish(ctx, o)
			add(o)
		}
	}
	wg.Wait()
	sort.SliceStable(report.Outcomes, func(i, j int) bool {
		a, b := report.Outcomes[i], report.Outcomes[j]
		if a.Vault != b.Vault {
			return a.Vault < b.Vault
		}
		return a.Secret < b.Secret
	})
	return report
}

func (e *Engine) overdue(ctx context.Context, p SecretProperties, trigger Trigger, reason string) Outcome {
	o := Outcome{Kind: KindOverdue, Vault: p.Vault, Secret: p.Name, OldVersion: p.Version, Provider: tagValue(p.Tags, TagProvider),
		Trigger: trigger, Expires: p.Expires, Reason: reason}
	e.publish(ctx, o)
	return o
}

// failureBackoff is the wait after n consecutive failures: FailureBackoff doubling, at most 24 h.
func (e *Engine) failureBackoff(n int) time.Duration {
	d := e.cfg.FailureBackoff
	for i := 1; i < n && d < 24*time.Hour; i++ {
		d *= 2
	}
	return min(d, 24*time.Hour)
}

func dueRevocations(st State, now time.Time) int {
	n := 0
	for _, p := range st.Pending {
		if !now.Before(p.Due) {
			n++
		}
	}
	return n
}

// revoke retires the previous credentials of a secret whose grace period is over, under the secret's
// lock, re-reading the latest version first. It never revokes the credential the latest version holds.
func (e *Engine) revoke(ctx context.Context, v Vault, p SecretProperties, trigger Trigger, dryRun bool) Outcome {
	start := time.Now()
	o := Outcome{Vault: v.Name(), Secret: p.Name, OldVersion: p.Version, Provider: tagValue(p.Tags, TagProvider), Trigger: trigger, DryRun: dryRun}
	defer func() {
		o.DurationMS = time.Since(start).Milliseconds()
		e.publish(ctx, o)
	}()
	held, unlock, err := e.cfg.Locker.Lock(ctx, lockKey(v.Name(), p.Name))
	if err != nil {
		o = with(o, failed(err))
		return o
	}
	defer unlock()
	cur, err := v.Get(held, p.Name, "")
	if err != nil {
		o = with(o, failed(err))
		return o
	}
	o.OldVersion = cur.Version
	pol, prov, err := e.policy(cur.Tags)
	if err != nil {
		o = with(o, failed(err))
		return o
	}
	now := e.clock.Now()
	var keep []Pending
	var done []string
	var errs []error
	for _, pend := range pol.State.Pending {
		switch {
		case now.Before(pend.Due):
			keep = append(keep, pend)
		case strings.EqualFold(pend.CredentialID, pol.CredentialID):
			// The latest version holds it: never revoke; drop the stale entry.
			e.log.Warn("not revoking the credential the latest version holds", "vault", v.Name(), "secret", p.Name, "credential", pend.CredentialID)
		case dryRun:
			done = append(done, pend.CredentialID)
			keep = append(keep, pend)
		default:
			preq := providers.Request{Vault: v.Name(), Secret: p.Name, Version: cur.Version, CredentialID: pol.CredentialID,
				Address: pol.Address, Params: providers.Params(cur.Tags), Secrets: vaultReader{v}, Now: now}
			if err := e.retry(held, func() error { return prov.Revoke(held, preq, pend.CredentialID) }); err != nil {
				errs = append(errs, fmt.Errorf("revoke %s: %w", pend.CredentialID, err))
				keep = append(keep, pend)
				continue
			}
			done = append(done, pend.CredentialID)
		}
	}
	if dryRun {
		o.Kind, o.Reason = KindPlanned, "would revoke "+strings.Join(done, ", ")
		return o
	}
	if len(done) > 0 || len(keep) != len(pol.State.Pending) {
		st := pol.State
		st.Pending = keep
		if len(done) > 0 {
			st.Revoked = now.UTC().Truncate(time.Second)
		}
		tags, err := withTags(cur.Tags, map[string]string{TagState: st.String()})
		if err == nil {
			_, err = v.UpdateTags(held, p.Name, cur.Version, tags)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("record revocation: %w", err))
		}
	}
	if len(errs) > 0 {
		o = with(o, failed(errors.Join(errs...)))
		return o
	}
	o.Kind, o.Reason = KindRevoked, "revoked "+strings.Join(done, ", ")
	return o
}
