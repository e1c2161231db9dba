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
		states, err := e.cfg.Journal.List(ctx, v.Name())
		if err != nil {
			// Due secrets still rotate (each re-reads its state under its lock); what only the journal
			// knows (interrupted rotations, revocations) waits for the next sweep.
			o := failed(fmt.Errorf("read the journal: %w", err))
			o.Vault, o.Trigger = v.Name(), trigger
			e.publish(ctx, o)
			add(o)
		}
		err = v.List(ctx, func(p SecretProperties) error {
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
			_, prov, _, err := e.policy(v.Name(), p.Name, p.Tags)
			if err != nil {
				o := with(Outcome{Vault: v.Name(), Secret: p.Name, OldVersion: p.Version, Provider: providerOf(p.Tags), Trigger: trigger, Expires: p.Expires}, failed(err))
				e.publish(ctx, o)
				add(o)
				if due, why := e.due(p, now); due && p.Expires != nil {
					add(e.overdue(ctx, p, trigger, why+"; cannot rotate: "+o.Reason))
				}
				return nil
			}
			st := states[strings.ToLower(p.Name)].ForLatest(p)
			due, why := e.due(p, now)
			resume := !due && !st.Started.IsZero() && !now.Before(st.Started.Add(e.cfg.ResumeAfter))
			if (due || resume) && st.Fails > 0 {
				if next := st.FailedAt.Add(e.failureBackoff(st.Fails)); now.Before(next) {
					// Keeps failing: report it, do not hammer the provider.
					add(e.overdue(ctx, p, trigger, fmt.Sprintf("failing: %d consecutive failed rotations, the last at %s; next attempt after %s",
						st.Fails, st.FailedAt.Format(time.RFC3339), next.UTC().Format(time.RFC3339))))
					return nil
				}
			}
			if due || resume {
				if resume {
					why = "finishing a rotation interrupted at " + st.Started.Format(time.RFC3339)
				}
				_, revokes := prov.(providers.Revoker)
				revokes = revokes && dueRevocations(st, "", now) > 0
				run(func() {
					o := e.Rotate(ctx, Request{Vault: v.Name(), Secret: p.Name, Version: p.Version, Trigger: trigger, DryRun: dryRun, Force: resume})
					add(o)
					if o.Failed() && p.Expires != nil && !now.Before(p.Expires.Add(-e.cfg.Defaults.NearExpiryLead)) {
						add(e.overdue(ctx, p, trigger, why+"; rotation failed: "+o.Reason))
					}
					if revokes && !dryRun {
						// A due secret's replaced credentials are retired too, after its rotation
						// (revoke re-reads the latest version, so it never touches what that holds).
						add(e.revoke(ctx, v, p, trigger, false))
					}
				})
				return nil
			}
			if _, ok := prov.(providers.Revoker); ok && dueRevocations(st, p.Version, now) > 0 {
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
	o := Outcome{Kind: KindOverdue, Vault: p.Vault, Secret: p.Name, OldVersion: p.Version, Provider: providerOf(p.Tags),
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

// dueRevocations counts the pending revocations whose grace is over and whose version is no longer
// the latest (latest).
func dueRevocations(st State, latest string, now time.Time) int {
	n := 0
	for _, p := range st.Pending {
		if !now.Before(p.Due) && !strings.EqualFold(p.Version, latest) {
			n++
		}
	}
	return n
}

// revoke retires the replaced credentials of a secret whose grace period is over, under the secret's
// lock, re-reading the latest version and the journal first. Only credentials the journal says
// kvrotator replaced on this secret are revoked, never while the version that held them is the latest,
// never the one the latest version holds; the provider is given both values to check where it can.
func (e *Engine) revoke(ctx context.Context, v Vault, p SecretProperties, trigger Trigger, dryRun bool) Outcome {
	start := time.Now()
	o := Outcome{Vault: v.Name(), Secret: p.Name, OldVersion: p.Version, Provider: providerOf(p.Tags), Trigger: trigger, DryRun: dryRun}
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
	pol, prov, refs, err := e.policy(v.Name(), p.Name, cur.Tags)
	if err != nil {
		o = with(o, failed(err))
		return o
	}
	rv, ok := prov.(providers.Revoker)
	if !ok {
		o.Kind, o.Reason = KindSkipped, "provider "+pol.Provider+" has nothing to revoke"
		return o
	}
	st, err := e.cfg.Journal.Load(held, v.Name(), p.Name)
	if err != nil {
		o = with(o, failed(fmt.Errorf("read the journal: %w", err)))
		return o
	}
	st = heal(st, cur.SecretProperties)
	refsKey := RefsKey(pol.Provider, refs)
	curCred, _ := currentCredential(st, cur.Version, pol, refsKey)
	now := e.clock.Now()
	var keep []Pending
	var done []string
	var errs []error
	for _, pend := range st.Pending {
		switch {
		case now.Before(pend.Due), strings.EqualFold(pend.Version, cur.Version):
			// Not yet; or the version that held it is (again) the latest: it is live.
			keep = append(keep, pend)
		case strings.EqualFold(pend.CredentialID, curCred):
			// The latest version holds it: never revoke; drop the stale entry.
			e.log.Warn("not revoking the credential the latest version holds", "vault", v.Name(), "secret", p.Name, "credential", pend.CredentialID)
		case pend.Refs != "" && pend.Refs != refsKey:
			// The tags now point elsewhere (another service, account, admin key): the id means nothing
			// there. Dropped and reported; the credential is left for a person to retire.
			errs = append(errs, providers.Permanent(fmt.Errorf("not revoking %s: the secret's references changed since it was replaced; revoke it by hand where it was issued", pend.CredentialID)))
		case dryRun:
			done = append(done, pend.CredentialID)
			keep = append(keep, pend)
		default:
			preq := providers.Request{Vault: v.Name(), Secret: p.Name, Version: cur.Version, Current: cur.Value, CredentialID: curCred,
				HandWritten: pend.HandWritten, Address: pol.Address, Params: providers.Params(cur.Tags), Secrets: boundReader(v, refs), Now: now}
			if pend.Version != "" {
				old, err := v.Get(held, p.Name, pend.Version)
				switch {
				case err == nil:
					preq.Retired = old.Value
				case !errors.Is(err, ErrNotFound):
					errs = append(errs, fmt.Errorf("revoke %s: read version %s: %w", pend.CredentialID, pend.Version, err))
					keep = append(keep, pend)
					continue
				}
			}
			if err := e.retry(held, func() error { return rv.Revoke(held, preq, pend.CredentialID) }); err != nil {
				errs = append(errs, fmt.Errorf("revoke %s: %w", pend.CredentialID, err))
				if !(pend.HandWritten && providers.IsPermanent(err)) {
					keep = append(keep, pend)
				} // else: a tag's word the provider could not confirm; reported once, never retried
				continue
			}
			done = append(done, pend.CredentialID)
		}
	}
	if dryRun {
		o.Kind, o.Reason = KindPlanned, "would revoke "+strings.Join(done, ", ")
		return o
	}
	if len(done) > 0 || len(keep) != len(st.Pending) {
		st.Pending = keep
		if len(done) > 0 {
			st.Revoked = now.UTC().Truncate(time.Second)
		}
		if err := e.cfg.Journal.Save(held, v.Name(), p.Name, st); err != nil {
			errs = append(errs, fmt.Errorf("record revocation in the journal: %w", err))
		} else if tags, err := withTags(cur.Tags, map[string]string{TagState: st.For(cur.Version).Mirror()}); err == nil {
			// The mirror, for people; best effort.
			if _, err := v.UpdateTags(held, p.Name, cur.Version, tags); err != nil {
				e.log.Warn("updating the rotation-state mirror failed", "vault", v.Name(), "secret", p.Name, "error", err.Error())
			}
		}
	}
	if len(errs) > 0 {
		o = with(o, failed(errors.Join(errs...)))
		return o
	}
	o.Kind, o.Reason = KindRevoked, "revoked "+strings.Join(done, ", ")
	return o
}
