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
// period is over, and reports overdue secrets. Vaults are swept in parallel, each with its own
// Config.Concurrency rotations at once: Key Vault's limits are per vault, so N vaults take about as
// long as the busiest one, and a throttled vault (429 with Retry-After, honoured by the SDK's retries)
// slows no other. With dryRun it only plans.
func (e *Engine) Sweep(ctx context.Context, trigger Trigger, dryRun bool) SweepReport {
	var (
		mu     sync.Mutex
		report SweepReport
		vaults sync.WaitGroup
	)
	add := func(o Outcome) {
		mu.Lock()
		report.Outcomes = append(report.Outcomes, o)
		mu.Unlock()
	}
	for _, name := range e.order {
		v := e.vaults[strings.ToLower(name)]
		vaults.Go(func() { e.sweepVault(ctx, v, trigger, dryRun, &mu, &report, add) })
	}
	vaults.Wait()
	sort.SliceStable(report.Outcomes, func(i, j int) bool {
		a, b := report.Outcomes[i], report.Outcomes[j]
		if a.Vault != b.Vault {
			return a.Vault < b.Vault
		}
		return a.Secret < b.Secret
	})
	return report
}

// sweepVault is one vault's part of a sweep, with its own bound on concurrent rotations.
func (e *Engine) sweepVault(ctx context.Context, v Vault, trigger Trigger, dryRun bool, mu *sync.Mutex, report *SweepReport, add func(Outcome)) {
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, e.cfg.Concurrency)
	)
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
	{
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
			if e.paused() {
				// The kill switch stops a running sweep: rotations already started finish (each is
				// whole or not at all), nothing new starts; the secret is still reported.
				if d := e.decideListed(p, states, trigger); d.Overdue {
					add(e.overdue(ctx, p, trigger, d.Reason))
				}
				return nil
			}
			now := e.clock.Now()
			pol, prov, _, err := e.policy(v.Name(), p.Name, p.Tags)
			if err != nil {
				o := with(Outcome{Vault: v.Name(), Secret: p.Name, OldVersion: p.Version, Provider: providerOf(p.Tags), Trigger: trigger, Expires: p.Expires}, failed(err))
				e.publish(ctx, o)
				add(o)
				if due, why := e.due(p, now); due && p.Expires != nil {
					add(e.overdue(ctx, p, trigger, why+"; cannot rotate: "+o.Reason))
				}
				return nil
			}
			raw := states[strings.ToLower(p.Name)]
			if !dryRun && unrecorded(raw, p) {
				// An earlier run wrote this version and died before recording it: record it now, so
				// that status and the next decisions know what the latest version holds.
				run(func() { e.record(ctx, v, p.Name) })
			}
			st := heal(raw, p).ForLatest(p)
			d := e.decide(decideInput{p: p, pol: pol, prov: prov, st: st, now: now, req: Request{Trigger: trigger}})
			switch d.Action {
			case ActRotate:
				force := !d.Due // an interrupted rotation: finish it although the secret is not due
				run(func() {
					o := e.Rotate(ctx, Request{Vault: v.Name(), Secret: p.Name, Version: p.Version, Trigger: trigger, DryRun: dryRun, Force: force})
					add(o)
					if o.Failed() && d.Due && p.Expires != nil && !now.Before(p.Expires.Add(-e.cfg.Defaults.NearExpiryLead)) {
						add(e.overdue(ctx, p, trigger, d.Reason+"; rotation failed: "+o.Reason))
					}
					if d.Revoke && !dryRun {
						// A due secret's replaced credentials are retired in the same sweep, after its
						// rotation (revoke re-reads the latest version, so it never touches what that
						// holds, and what the replaced version held becomes revocable).
						add(e.revoke(ctx, v, p, trigger, false))
					}
				})
				return nil
			case ActWait, ActBlocked:
				if d.Overdue || d.Guard {
					add(e.overdue(ctx, p, trigger, d.Reason))
				}
			}
			if d.Revoke {
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
}

// unrecorded reports whether a listed latest version (no version id) looks like one an interrupted run
// wrote and could not record in the journal: a verified credential was about to be written (Writing)
// and the version was created after that attempt started, and is not the attempted version itself.
func unrecorded(st State, p SecretProperties) bool {
	return p.Version == "" && st.Attempted != "" && p.Created.Unix() != st.AttemptedCreated.Unix() && wrote(st, p.Created)
}

// record heals a secret's journal entry under its lock, reading the latest version's id (heal needs it).
func (e *Engine) record(ctx context.Context, v Vault, name string) {
	held, unlock, err := e.cfg.Locker.Lock(ctx, lockKey(v.Name(), name))
	if err != nil {
		return // busy: whoever holds it records it
	}
	defer unlock()
	cur, err := v.Get(held, name, "")
	if err != nil {
		e.log.Warn("recording a version an interrupted rotation wrote failed", "vault", v.Name(), "secret", name, "error", err.Error())
		return
	}
	st, err := e.cfg.Journal.Load(held, v.Name(), name)
	if err != nil {
		return
	}
	healed := heal(st, cur.SecretProperties)
	if healed.Version == st.Version {
		return
	}
	if err := e.cfg.Journal.Save(held, v.Name(), name, healed); err != nil {
		e.log.Warn("recording a version an interrupted rotation wrote failed", "vault", v.Name(), "secret", name, "error", err.Error())
		return
	}
	e.log.Info("recorded the version an interrupted rotation wrote", "vault", v.Name(), "secret", name, "version", cur.Version)
}

// decideListed decides for a listed secret without a provider call or vault read (status, a paused
// sweep): the policy, the journal's state and the time.
func (e *Engine) decideListed(p SecretProperties, states map[string]State, trigger Trigger) Decision {
	pol, prov, _, err := e.policy(p.Vault, p.Name, p.Tags)
	st := heal(states[strings.ToLower(p.Name)], p).ForLatest(p)
	if prov == nil {
		prov = noProvider{}
	}
	return e.decide(decideInput{p: p, pol: pol, polErr: err, prov: prov, st: st, now: e.clock.Now(), req: Request{Trigger: trigger}})
}

// noProvider stands for the provider of a secret whose tags are wrong, in a decision.
type noProvider struct{}

func (noProvider) Shape() providers.Shape                            { return "" }
func (noProvider) Validate(providers.Params) error                   { return nil }
func (noProvider) References(providers.Params) []providers.Reference { return nil }
func (noProvider) Create(context.Context, providers.Request) (providers.Credential, error) {
	return providers.Credential{}, errors.New("no provider")
}
func (noProvider) Verify(context.Context, providers.Request, providers.Credential) error {
	return errors.New("no provider")
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
		if !now.Before(p.Due) && !now.Before(p.NextTry) && !strings.EqualFold(p.Version, latest) {
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
	return e.revokeWith(ctx, v, p, trigger, dryRun, false)
}

// revokeWith is revoke; emergency skips the wait for readers (a leaked credential dies now).
func (e *Engine) revokeWith(ctx context.Context, v Vault, p SecretProperties, trigger Trigger, dryRun, emergency bool) Outcome {
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
	rv, isRevoker := prov.(providers.Revoker)
	st, err := e.cfg.Journal.Load(held, v.Name(), p.Name)
	if err != nil {
		o = with(o, failed(fmt.Errorf("read the journal: %w", err)))
		return o
	}
	st = heal(st, cur.SecretProperties)
	now := e.clock.Now()
	if (!isRevoker || len(st.Pending) == 0) && dueRetire(st, "", now) == 0 { // ("": an entry naming the latest is dropped below)
		o.Kind, o.Reason = KindSkipped, "nothing to revoke or disable"
		return o
	}
	refsKey := RefsKey(pol.Provider, refs)
	curCred, _ := currentCredential(st, cur.Version, pol, refsKey)
	var keep []Pending
	var done, waiting, anyway []string
	var errs []error
	parked, waitChanged := false, false
	uc := e.usageCheck(v.Name(), p.Name, st.Pending)
	if emergency {
		uc = nil
	}
	for i, pend := range st.Pending {
		switch {
		case !isRevoker:
			keep = append(keep, pend)
		case now.Before(pend.Due), now.Before(pend.NextTry), strings.EqualFold(pend.Version, cur.Version):
			// Not yet (grace, or parked after a refusal); or the version that held it is (again) the
			// latest: it is live.
			keep = append(keep, pend)
		case strings.EqualFold(pend.CredentialID, curCred):
			// The latest version holds it: never revoke; drop the stale entry.
			e.log.Warn("not revoking the credential the latest version holds", "vault", v.Name(), "secret", p.Name, "credential", pend.CredentialID)
		case pend.Refs != "" && pend.Refs != refsKey:
			// The tags now point elsewhere (another service, account, admin key): the id means nothing
			// there. Dropped and reported; the credential is left for a person to retire.
			errs = append(errs, providers.Permanent(fmt.Errorf("not revoking %s: the secret's references changed since it was replaced; revoke it by hand where it was issued", pend.CredentialID)))
		default:
			if lag, wait, note := uc.gate(held, i, pend, pol, now); wait {
				// Readers of the secret have not read the new version yet: the revocation waits for
				// them, at the latest until the maximum grace period is over.
				pend.Waiting = readerNames(lag)
				if note != "" {
					pend.Waiting = []string{note}
				}
				keep = append(keep, pend)
				waiting = append(waiting, waitReason(pend, lag, note, pol))
				o.Laggards = append(o.Laggards, lag...)
				waitChanged = true
				continue
			} else if len(lag) > 0 || note != "" {
				anyway = append(anyway, anywayReason(pend, lag, note))
				o.Laggards = append(o.Laggards, lag...)
			}
			if dryRun {
				done = append(done, pend.CredentialID)
				keep = append(keep, pend)
				continue
			}
			preq := providers.Request{Vault: v.Name(), Secret: p.Name, Version: cur.Version, Current: cur.Value, CredentialID: curCred,
				HandWritten: pend.HandWritten, Address: pol.Address, Params: providers.Params(cur.Tags), Secrets: boundReader(v, refs), Now: now}
			if pend.Version != "" {
				old, err := v.Get(held, p.Name, pend.Version)
				switch {
				case err == nil:
					preq.Retired = old.Value
				case !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrDisabled):
					// (Gone or disabled by a person: the provider is asked without the retired value.)
					errs = append(errs, fmt.Errorf("revoke %s: read version %s: %w", pend.CredentialID, pend.Version, err))
					keep = append(keep, pend)
					continue
				}
			}
			if err := e.retry(held, func() error { return rv.Revoke(held, preq, pend.CredentialID) }); err != nil {
				switch {
				case pend.HandWritten && providers.IsPermanent(err):
					// A tag's word the provider could not confirm: reported once, never retried.
					errs = append(errs, fmt.Errorf("revoke %s: %w", pend.CredentialID, err))
				case providers.IsPermanent(err):
					// Parked with back-off and reported each time, never hammered nor forgotten.
					pend.Fails++
					pend.NextTry = now.Add(e.failureBackoff(pend.Fails)).UTC().Truncate(time.Second)
					errs = append(errs, fmt.Errorf("revoke %s (refused %d times; next try after %s): %w", pend.CredentialID, pend.Fails,
						pend.NextTry.Format(time.RFC3339), err))
					keep, parked = append(keep, pend), true
				default:
					errs = append(errs, fmt.Errorf("revoke %s: %w", pend.CredentialID, err))
					keep = append(keep, pend)
				}
				continue
			}
			done = append(done, pend.CredentialID)
			if pol.DisableOld && pend.Version != "" {
				// Its credential is dead: the version that held it goes too.
				st.Retire = addRetire(st.Retire, Retire{Version: pend.Version, Due: now.UTC().Truncate(time.Second)})
			}
		}
	}
	disabled, retireChanged, rerrs := e.retireVersions(held, v, p.Name, &st, cur.Version, now, dryRun)
	errs = append(errs, rerrs...)
	what := func(verb, verbDisable string) string {
		var parts []string
		if len(done) > 0 {
			parts = append(parts, verb+" "+strings.Join(done, ", "))
		}
		if len(disabled) > 0 {
			parts = append(parts, verbDisable+" "+strings.Join(disabled, ", "))
		}
		if len(anyway) > 0 {
			parts = append(parts, strings.Join(anyway, "; "))
		}
		if len(waiting) > 0 {
			parts = append(parts, strings.Join(waiting, "; "))
		}
		if len(parts) == 0 {
			return "nothing revoked"
		}
		return strings.Join(parts, "; ")
	}
	if dryRun {
		o.Kind, o.Reason = KindPlanned, what("would revoke", "would disable the replaced version")
		return o
	}
	if len(done) > 0 || len(keep) != len(st.Pending) || parked || retireChanged || waitChanged {
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
	o.Kind, o.Reason = KindRevoked, what("revoked", "disabled the replaced version")
	if len(done) == 0 && len(disabled) == 0 {
		o.Kind = KindSkipped // only waiting for readers
	}
	return o
}

// dueRetire counts the versions waiting to be disabled whose time has come (latest: the latest
// version, never disabled; "" when a list page gave none).
func dueRetire(st State, latest string, now time.Time) int {
	n := 0
	for _, r := range st.Retire {
		if !now.Before(r.Due) && !now.Before(r.NextTry) && !strings.EqualFold(r.Version, latest) {
			n++
		}
	}
	return n
}

// retireVersions disables the replaced versions in st.Retire whose time has come, never the latest,
// and updates st.Retire: done entries leave, a version that no longer exists leaves, a refusal is
// parked with back-off, a transient failure stays for the next sweep. It reports the versions it
// disabled (would disable, with dryRun), whether st changed, and the failures.
func (e *Engine) retireVersions(ctx context.Context, v Vault, name string, st *State, latest string, now time.Time, dryRun bool) (disabled []string, changed bool, errs []error) {
	var keep []Retire
	for _, r := range st.Retire {
		switch {
		case strings.EqualFold(r.Version, latest):
			changed = true // the latest version is never disabled
			continue
		case now.Before(r.Due), now.Before(r.NextTry):
		case dryRun:
			disabled = append(disabled, r.Version)
		default:
			err := v.Disable(ctx, name, r.Version)
			switch {
			case err == nil:
				disabled, changed = append(disabled, r.Version), true
				continue
			case errors.Is(err, ErrNotFound):
				changed = true
				continue
			case providers.IsPermanent(err):
				r.Fails++
				r.NextTry = now.Add(e.failureBackoff(r.Fails)).UTC().Truncate(time.Second)
				changed = true
				errs = append(errs, fmt.Errorf("disable version %s (refused %d times; next try after %s): %w", r.Version, r.Fails, r.NextTry.Format(time.RFC3339), err))
			default:
				errs = append(errs, fmt.Errorf("disable version %s: %w", r.Version, err))
			}
		}
		keep = append(keep, r)
	}
	st.Retire = keep
	return disabled, changed, errs
}
