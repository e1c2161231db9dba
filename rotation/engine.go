package rotation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/vocab"
)

// Config wires an Engine.
type Config struct {
	// Vaults the engine may touch. Nothing else is ever contacted: events naming another vault are refused.
	Vaults []Vault
	// Providers resolves a rotation-provider tag (registry.Set.Lookup in the application). Required.
	Providers func(name string) (providers.Provider, bool)
	// Bindings are the operator's: every reference a provider declares must be allowed for the secret
	// before anything is read, contacted or sent. Nil allows nothing (only providers that reach nothing
	// outside the secret, such as random, rotate).
	Bindings Binder
	// Journal keeps kvrotator's own state where a tag-writer cannot write; nil keeps it in memory.
	Journal Journal
	// Locker serialises rotations of a secret; nil uses an in-process lock (one instance only).
	Locker Locker
	// Publisher receives every outcome; nil publishes nothing.
	Publisher Publisher
	// Clock; nil is the wall clock.
	Clock Clock
	// Logger for step details (outcomes themselves are logged by the caller). Nil discards.
	Logger *slog.Logger
	// Defaults for policies: validity 90 days, grace 24 h, near-expiry lead 30 days.
	Defaults Defaults
	// Concurrency bounds the rotations a sweep runs at once in each vault (default 8); vaults are swept
	// in parallel.
	Concurrency int
	// VerifyTimeout bounds the retries of a provider's Verify through propagation delays (default 2 min);
	// VerifyBackoff is the first retry delay (default 1 s, doubling, with jitter).
	VerifyTimeout time.Duration
	VerifyBackoff time.Duration
	// Attempts bounds provider create and revoke calls that fail transiently (default 3), the first
	// retry after RetryBackoff (default 500 ms, doubling, with jitter). Vault calls are retried by the
	// Azure SDK's own policy, which honours Retry-After.
	Attempts     int
	RetryBackoff time.Duration
	// ResumeAfter is how old a started-but-unfinished rotation must be before the sweep finishes it
	// (default 10 min: longer than an invocation may run).
	ResumeAfter time.Duration
	// FailureBackoff is the sweep's wait after a failed rotation, doubling per consecutive failure up to
	// 24 h (default 10 min).
	FailureBackoff time.Duration
	// Refresher asks the consumers the bindings name (ConsumerBinder) to pick up a new version after
	// each rotation; nil refreshes nothing.
	Refresher Refresher
	// Usage reads Key Vault's audit log: with it, a replaced credential is revoked only once every
	// reader of the secret has read the new version (or nobody read it), and at MaxGrace after the
	// rotation regardless, reporting who had not moved. Nil: revocation after the grace period.
	Usage Usage
	// UsageLookback is how far before a rotation a reader counts as a consumer (default 7 days).
	UsageLookback time.Duration
	// Paused is the global kill switch (an app setting for incidents): nothing is rotated or revoked,
	// every secret is still reported. Paused returns it now, so that a running sweep stops mid-way.
	Paused func() bool
}

// Engine rotates secrets. It is safe for concurrent use.
type Engine struct {
	cfg    Config
	vaults map[string]Vault // key: lower-case vault name
	order  []string
	log    *slog.Logger
	clock  Clock
}

// New checks cfg and returns an engine. It makes no network call.
func New(cfg Config) (*Engine, error) {
	if len(cfg.Vaults) == 0 {
		return nil, errors.New("rotation: no vault configured")
	}
	if cfg.Providers == nil {
		return nil, errors.New("rotation: no providers configured")
	}
	if cfg.Bindings == nil {
		cfg.Bindings = noBindings{}
	}
	if cfg.Journal == nil {
		cfg.Journal = NewMemoryJournal()
	}
	if cfg.Locker == nil {
		cfg.Locker = NewMemoryLocker()
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Defaults.NearExpiryLead <= 0 {
		cfg.Defaults.NearExpiryLead = 30 * 24 * time.Hour
	}
	if cfg.Defaults.Validity <= 0 {
		cfg.Defaults.Validity = 90 * 24 * time.Hour
	}
	if cfg.Defaults.Grace < 0 {
		return nil, errors.New("rotation: negative grace period")
	}
	if cfg.Defaults.Grace == 0 && !cfg.Defaults.GraceSet {
		cfg.Defaults.Grace = 24 * time.Hour
	}
	if cfg.Defaults.Window != "" {
		if _, err := ParseWindow(cfg.Defaults.Window); err != nil {
			return nil, fmt.Errorf("rotation: default window %q: %w", cfg.Defaults.Window, err)
		}
	}
	if cfg.Defaults.Schedule != "" {
		if _, err := ParseSchedule(cfg.Defaults.Schedule); err != nil {
			return nil, fmt.Errorf("rotation: default schedule %q: %w", cfg.Defaults.Schedule, err)
		}
	}
	if cfg.Defaults.Validity <= cfg.Defaults.NearExpiryLead {
		return nil, fmt.Errorf("rotation: default validity %v must exceed the near-expiry lead %v, or every new version would be due at once",
			cfg.Defaults.Validity, cfg.Defaults.NearExpiryLead)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.VerifyTimeout <= 0 {
		cfg.VerifyTimeout = 2 * time.Minute
	}
	if cfg.VerifyBackoff <= 0 {
		cfg.VerifyBackoff = time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = 500 * time.Millisecond
	}
	if cfg.ResumeAfter <= 0 {
		cfg.ResumeAfter = 10 * time.Minute
	}
	if cfg.FailureBackoff <= 0 {
		cfg.FailureBackoff = 10 * time.Minute
	}
	if cfg.UsageLookback <= 0 {
		cfg.UsageLookback = 7 * 24 * time.Hour
	}
	if cfg.Defaults.MaxGrace < 0 {
		return nil, errors.New("rotation: negative maximum grace period")
	}
	if cfg.Defaults.MaxGrace == 0 {
		cfg.Defaults.MaxGrace = 7 * 24 * time.Hour
	}
	e := &Engine{cfg: cfg, vaults: map[string]Vault{}, log: cfg.Logger, clock: cfg.Clock}
	for _, v := range cfg.Vaults {
		key := strings.ToLower(v.Name())
		if _, dup := e.vaults[key]; dup {
			return nil, fmt.Errorf("rotation: vault %q configured twice", v.Name())
		}
		e.vaults[key] = v
		e.order = append(e.order, v.Name())
	}
	return e, nil
}

// Vaults lists the configured vault names.
func (e *Engine) Vaults() []string { return append([]string(nil), e.order...) }

// HandleEvent handles a Key Vault event: near-expiry and expired events rotate the version they name;
// SecretNewVersionCreated (which the engine's own writes cause) and every other type are skipped.
func (e *Engine) HandleEvent(ctx context.Context, ev Event) Outcome {
	switch ev.Type {
	case EventNearExpiry, EventExpired:
		return e.Rotate(ctx, Request{Vault: ev.Vault, Secret: ev.Secret, Version: ev.Version, Trigger: TriggerEvent})
	case EventNewVersion:
		return Outcome{Kind: KindSkipped, Vault: ev.Vault, Secret: ev.Secret, OldVersion: ev.Version, Trigger: TriggerEvent,
			Reason: "SecretNewVersionCreated never triggers a rotation"}
	}
	return Outcome{Kind: KindSkipped, Vault: ev.Vault, Secret: ev.Secret, OldVersion: ev.Version, Trigger: TriggerEvent,
		Reason: fmt.Sprintf("event type %q is not handled", ev.Type)}
}

// Rotate rotates one secret under its lock, following the protocol: provider create → verify → new
// vault version → (later) revocation of the previous credential. With req.Version set, a latest
// version that differs means the work is done: the answer is skipped, nothing changes.
func (e *Engine) Rotate(ctx context.Context, req Request) Outcome {
	start := time.Now()
	o := e.rotate(ctx, req)
	o.Vault, o.Secret, o.Trigger, o.DryRun = req.Vault, req.Secret, req.Trigger, req.DryRun
	o.DurationMS = time.Since(start).Milliseconds()
	e.publish(ctx, o)
	if o.Kind == KindRotated {
		if v, ok := e.vault(req.Vault); ok {
			o.Followups = e.refreshConsumers(ctx, v, o)
		}
	}
	return o
}

func (e *Engine) vault(name string) (Vault, bool) {
	v, ok := e.vaults[strings.ToLower(name)]
	return v, ok
}

func (e *Engine) rotate(ctx context.Context, req Request) Outcome {
	v, ok := e.vault(req.Vault)
	if !ok {
		return failed(providers.Permanent(fmt.Errorf("vault %q is not configured (configured: %s)", req.Vault, strings.Join(e.order, ", "))))
	}
	held, unlock, err := e.cfg.Locker.Lock(ctx, lockKey(v.Name(), req.Secret))
	if err != nil {
		// Busy (another instance rotates it) is transient like any failure not marked permanent; a
		// lock the identity may not take (403) is permanent (the Locker marks it).
		return failed(fmt.Errorf("lock: %w", err))
	}
	defer unlock()
	ctx = held

	cur, err := v.Get(ctx, req.Secret, "")
	if errors.Is(err, ErrNotFound) {
		if req.Trigger == TriggerEvent {
			return Outcome{Kind: KindSkipped, Reason: "the secret no longer exists"}
		}
		return failed(providers.Permanent(fmt.Errorf("secret %q not found in vault %q", req.Secret, v.Name())))
	}
	if err != nil {
		return failed(err)
	}
	o := Outcome{OldVersion: cur.Version, Expires: cur.Expires, Provider: providerOf(cur.Tags)}
	if req.Version != "" && !strings.EqualFold(req.Version, cur.Version) {
		o.Kind, o.Reason = KindSkipped, fmt.Sprintf("already rotated: version %s is no longer the latest", req.Version)
		o.OldVersion = req.Version
		return o
	}
	if !IsManaged(cur.Tags) {
		o.Kind, o.Reason = KindSkipped, "not managed: no "+TagProvider+" tag"
		return o
	}
	pol, prov, refs, err := e.policy(v.Name(), req.Secret, cur.Tags)
	if err != nil {
		return with(o, failed(err))
	}
	now := e.clock.Now()
	st, err := e.cfg.Journal.Load(ctx, v.Name(), req.Secret)
	if err != nil {
		return with(o, failed(fmt.Errorf("read the journal: %w", err)))
	}
	st = heal(st, cur.SecretProperties)
	d := e.decide(decideInput{p: cur.SecretProperties, pol: pol, prov: prov, st: st.For(cur.Version), now: now, req: req})
	switch d.Action {
	case ActBlocked:
		if !cur.Enabled {
			return with(o, failed(providers.Permanent(errors.New(d.Reason))))
		}
		o.Kind, o.Reason = KindSkipped, d.Reason // paused
		return o
	case ActNothing, ActWait:
		o.Kind, o.Reason, o.Conflict = KindSkipped, d.Reason, d.Guard
		if !d.At.IsZero() {
			o.NextAt = &d.At
		}
		return o
	}
	refsKey := RefsKey(pol.Provider, refs)
	curCred, handWritten := currentCredential(st, cur.Version, pol, refsKey)
	expires := now.Add(pol.Validity)
	if req.DryRun {
		o.Kind, o.Expires = KindPlanned, &expires
		o.Reason = fmt.Sprintf("would rotate (%s) with provider %s (%s): create, verify, write a new version expiring %s",
			d.Reason, pol.Provider, prov.Shape(), expires.UTC().Format(time.RFC3339))
		if _, ok := prov.(providers.Revoker); ok && prov.Shape() == providers.ShapeCreateRevoke && curCred != "" {
			o.Reason += fmt.Sprintf(", revoke credential %s after %v", curCred, pol.Grace)
		}
		return o
	}

	// Mark the attempt in the journal before the provider creates anything: if this run dies, the
	// sweep finds the mark and finishes the rotation with the same idempotency key.
	st = st.For(cur.Version)
	st.Attempted, st.AttemptedCreated, st.Started, st.Writing, st.WritingAt = cur.Version, cur.Created.UTC(), now.UTC().Truncate(time.Second), "", time.Time{}
	if err := e.cfg.Journal.Save(ctx, v.Name(), req.Secret, st); err != nil {
		return with(o, failed(fmt.Errorf("mark the rotation as started in the journal: %w", err)))
	}
	fail := func(err error) Outcome {
		f := with(o, failed(err))
		e.recordFailure(ctx, v, req.Secret, st, now)
		return f
	}

	preq := providers.Request{
		Vault: v.Name(), Secret: req.Secret, Version: cur.Version, Current: cur.Value,
		CredentialID: curCred, HandWritten: handWritten, Address: pol.Address, Params: providers.Params(cur.Tags),
		IdempotencyKey: IdempotencyKey(v.Name(), req.Secret, cur.Version), Secrets: boundReader(v, refs), Now: now, Override: req.Override,
	}
	var cred providers.Credential
	err = e.retry(ctx, func() error {
		var err error
		cred, err = prov.Create(ctx, preq)
		return err
	})
	if err != nil {
		return fail(fmt.Errorf("provider %s: create: %w", pol.Provider, err))
	}
	if err := e.verify(ctx, prov, preq, cred); err != nil {
		rv, canRevoke := prov.(providers.Revoker)
		if canRevoke && cred.CredentialID != "" && cred.CredentialID != curCred && ctx.Err() == nil {
			// The new credential never worked and is recorded nowhere: remove it rather than leave an
			// orphan. (When the context is gone — lease lost, timeout — leave it: the next attempt uses
			// the same idempotency key and the provider hands it back.)
			rreq := preq
			rreq.Retired, rreq.HandWritten = cred.Value, false
			if rerr := rv.Revoke(ctx, rreq, cred.CredentialID); rerr != nil {
				e.log.Warn("revoking an unverified credential failed; a retry with the same idempotency key will find it",
					"vault", v.Name(), "secret", req.Secret, "provider", pol.Provider, "error", rerr.Error())
			}
		}
		return fail(fmt.Errorf("provider %s: verify: %w", pol.Provider, err))
	}

	if cred.ExpiresAt != nil && cred.ExpiresAt.Before(expires) {
		expires = *cred.ExpiresAt
		if minLife := now.Add(e.cfg.Defaults.NearExpiryLead + lifetimeMargin); expires.Before(minLife) {
			// The new version would be due again at once: rotating on every sweep. Refuse, and retire
			// what was just made (it is recorded nowhere).
			if rv, ok := prov.(providers.Revoker); ok && cred.CredentialID != "" && cred.CredentialID != curCred {
				rreq := preq
				rreq.Retired, rreq.HandWritten = cred.Value, false
				if rerr := rv.Revoke(ctx, rreq, cred.CredentialID); rerr != nil {
					e.log.Warn("revoking a credential with too short a lifetime failed", "vault", v.Name(), "secret", req.Secret,
						"provider", pol.Provider, "error", rerr.Error())
				}
			}
			return fail(providers.Permanent(fmt.Errorf("provider %s: the new credential expires at %s, sooner than the near-expiry lead (%v) plus %v: "+
				"the new version would be due again at once; give the credential a longer lifetime at the issuer",
				pol.Provider, expires.UTC().Format(time.RFC3339), e.cfg.Defaults.NearExpiryLead, lifetimeMargin)))
		}
	}
	credID := cred.CredentialID
	if credID == "" {
		credID = curCred
	}
	next := State{CredentialID: credID, Refs: refsKey, From: cur.Version, At: now.UTC().Truncate(time.Second), By: req.Trigger,
		Pending: st.Pending, Revoked: st.Revoked, Retire: st.Retire, Emergencies: st.Emergencies}
	if _, ok := prov.(providers.Revoker); ok && prov.Shape() == providers.ShapeCreateRevoke && curCred != "" && curCred != credID {
		next.Pending = addPending(next.Pending, Pending{CredentialID: curCred, Version: cur.Version, Due: now.Add(pol.Grace).UTC().Truncate(time.Second),
			Refs: refsKey, HandWritten: handWritten, Replaced: now.UTC().Truncate(time.Second)})
	}
	if pol.DisableOld {
		switch prov.Shape() {
		case providers.ShapeTwoSlot, providers.ShapeAlternating:
			// This rotation regenerated the slot (reset the login) that the version before the latest
			// held: once the new version is written, nothing can use that version's value.
			if st.From != "" && strings.EqualFold(st.Version, cur.Version) && !strings.EqualFold(st.From, cur.Version) {
				next.Retire = addRetire(next.Retire, Retire{Version: st.From, Due: now.UTC().Truncate(time.Second)})
			}
		case providers.ShapeGenerated:
			// Nothing outside the vault to revoke: the value dies with its grace period.
			next.Retire = addRetire(next.Retire, Retire{Version: cur.Version, Due: now.Add(pol.Grace).UTC().Truncate(time.Second)})
		}
	}
	tags, err := withTags(cur.Tags, map[string]string{TagCredentialID: credID, TagState: next.Mirror()})
	if err != nil {
		// No room for the mirror (15 tags): it is for people only, the journal holds the state.
		tags, err = withTags(cur.Tags, map[string]string{TagCredentialID: credID, TagState: ""})
	}
	if err != nil {
		return fail(err)
	}
	if ctx.Err() != nil {
		// The lease is gone (or the invocation timed out): another instance may own the secret now.
		return with(o, failed(fmt.Errorf("not writing the new version: %w", context.Cause(ctx))))
	}
	// Record the pending revocation and the new credential before the vault write: a pending entry is
	// never acted on while the version that held it is the latest, and Writing lets the next run
	// recognise the new version if this one dies right after writing it.
	st.Pending, st.Writing, st.WritingRefs, st.WritingAt = next.Pending, credID, refsKey, now.UTC().Truncate(time.Second)
	if err := e.cfg.Journal.Save(ctx, v.Name(), req.Secret, st); err != nil {
		return fail(fmt.Errorf("record the new credential in the journal: %w", err))
	}
	contentType := cur.ContentType
	if cred.ContentType != "" {
		contentType = cred.ContentType // the provider knows what the new value is (a PEM file, a PKCS#12 archive)
	}
	props, err := v.Set(ctx, req.Secret, NewVersion{Value: cred.Value, ContentType: contentType, Tags: tags, NotBefore: now, Expires: expires})
	if err != nil {
		return fail(fmt.Errorf("write new version: %w", err))
	}
	next.Version = props.Version
	var disabled []string
	if err := e.cfg.Journal.Save(ctx, v.Name(), req.Secret, next); err != nil {
		// The version is written; the next run recognises it by the Writing mark.
		e.log.Warn("recording the new version in the journal failed; the next run recovers it", "vault", v.Name(), "secret", req.Secret,
			"version", props.Version, "error", err.Error())
	} else if dueRetire(next, props.Version, now) > 0 {
		// A version whose value this rotation killed is disabled at once (best effort: the sweep
		// retries what fails).
		var changed bool
		var errs []error
		disabled, changed, errs = e.retireVersions(ctx, v, req.Secret, &next, props.Version, now, false)
		for _, err := range errs {
			e.log.Warn("disabling a replaced version failed; the sweep tries again", "vault", v.Name(), "secret", req.Secret, "error", err.Error())
		}
		if changed {
			if err := e.cfg.Journal.Save(ctx, v.Name(), req.Secret, next); err != nil {
				e.log.Warn("recording disabled versions in the journal failed", "vault", v.Name(), "secret", req.Secret, "error", err.Error())
			}
		}
	}
	o.Kind, o.NewVersion, o.Expires = KindRotated, props.Version, &expires
	o.Reason = fmt.Sprintf("new version expires %s", expires.UTC().Format(time.RFC3339))
	if len(disabled) > 0 {
		o.Reason += "; disabled the replaced version " + strings.Join(disabled, ", ") + " (its value no longer works)"
	}
	return o
}

// heal recognises a version an earlier run wrote but could not record (it died between the vault
// write and the journal's): the latest version was created after that attempt started, replacing the
// attempted version.
func heal(st State, latest SecretProperties) State {
	if latest.Version == "" || st.Attempted == "" || strings.EqualFold(st.Attempted, latest.Version) ||
		strings.EqualFold(st.Version, latest.Version) || !wrote(st, latest.Created) {
		return st
	}
	return State{Version: latest.Version, CredentialID: st.Writing, Refs: st.WritingRefs, From: st.Attempted, At: latest.Created.UTC().Truncate(time.Second),
		Pending: st.Pending, Revoked: st.Revoked, Retire: st.Retire, Emergencies: st.Emergencies}
}

// wrote reports whether a version created at `created` can be the one the journal's Writing mark was
// about to write: created no earlier than the write was sent and, when that attempt then failed (its
// answer lost: the write may still have been applied), no later than the failure. Key Vault's
// timestamps have one-second resolution; the engine's clock and the vault's may differ by a little.
func wrote(st State, created time.Time) bool {
	if st.Writing == "" || st.WritingAt.IsZero() {
		return false
	}
	const skew = 2 * time.Second
	if created.Before(st.WritingAt.Add(-skew)) {
		return false
	}
	if !st.FailedAt.Before(st.WritingAt) && created.After(st.FailedAt.Add(skew)) {
		return false // the attempt failed before this version was created: someone else wrote it
	}
	return true
}

// lifetimeMargin is how much longer than the near-expiry lead a new credential must live.
const lifetimeMargin = 24 * time.Hour

// MaxPending bounds the replaced credentials of one secret waiting for revocation: beyond it the
// secret is not rotated again until some are revoked.
const MaxPending = 8

// currentCredential is the credential the latest version holds: kvrotator's own record when it wrote
// that version with the same references, else (a version written by hand, or tags since pointed
// elsewhere) the CredentialId tag, reported as hand-written.
func currentCredential(st State, latest string, pol Policy, refsKey string) (id string, handWritten bool) {
	if st.Version != "" && strings.EqualFold(st.Version, latest) && st.CredentialID != "" && st.Refs == refsKey {
		return st.CredentialID, false
	}
	return pol.CredentialID, true
}

// addPending appends p unless that credential is already pending.
func addPending(list []Pending, p Pending) []Pending {
	for _, q := range list {
		if strings.EqualFold(q.CredentialID, p.CredentialID) {
			return list
		}
	}
	return append(append([]Pending(nil), list...), p)
}

// Binder checks a secret's references against the operator's bindings (bindings.Policy).
type Binder interface {
	Check(vault, secret, provider string, refs []providers.Reference) error
}

// noBindings allows no reference.
type noBindings struct{}

func (noBindings) Check(vault, secret, provider string, refs []providers.Reference) error {
	var errs []error
	for _, r := range refs {
		if !r.Builtin {
			tag := r.Tag
			if tag == "" {
				tag = string(r.Kind)
			}
			errs = append(errs, providers.ConfigErrorf(tag, r.Value,
				"not bound: no bindings are configured (KVROTATOR_BINDINGS), so secret %s/%s may not make provider %s reach %s", vault, secret, provider, r))
		}
	}
	return providers.JoinErrors(errs)
}

// policy parses a managed secret's tags, finds its provider, and checks every reference the provider
// declares against the operator's bindings: the one step that stands between a tag and kvrotator's
// identity. Nothing has been read, contacted or sent when it fails.
func (e *Engine) policy(vault, secret string, tags map[string]string) (Policy, providers.Provider, []providers.Reference, error) {
	pol, err := ParsePolicy(tags, e.cfg.Defaults)
	if err != nil {
		return pol, nil, nil, err
	}
	prov, ok := e.cfg.Providers(pol.Provider)
	if !ok {
		return pol, nil, nil, providers.ConfigErrorf(TagProvider, pol.Provider, "no such provider")
	}
	params := providers.Params(tags)
	if err := prov.Validate(params); err != nil {
		return pol, nil, nil, err
	}
	refs := prov.References(params)
	if err := e.cfg.Bindings.Check(vault, secret, pol.Provider, refs); err != nil {
		return pol, nil, nil, err
	}
	return pol, prov, refs, nil
}

// due reports whether a managed secret's latest version should be rotated now, and why (or why not).
func (e *Engine) due(p SecretProperties, now time.Time) (bool, string) {
	if p.Expires == nil {
		return true, "no expiry set"
	}
	if !now.Before(*p.Expires) {
		return true, "expired " + p.Expires.UTC().Format(time.RFC3339)
	}
	point := p.Expires.Add(-e.cfg.Defaults.NearExpiryLead)
	if !now.Before(point) {
		return true, "near expiry (" + p.Expires.UTC().Format(time.RFC3339) + ")"
	}
	return false, "not due until " + point.UTC().Format(time.RFC3339)
}

// verify retries the provider's check through propagation delays, with exponential backoff and
// jitter, until VerifyTimeout; a permanent error stops at once.
func (e *Engine) verify(ctx context.Context, prov providers.Provider, req providers.Request, cred providers.Credential) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.VerifyTimeout)
	defer cancel()
	delay := e.cfg.VerifyBackoff
	for attempt := 1; ; attempt++ {
		err := prov.Verify(ctx, req, cred)
		if err == nil || providers.IsPermanent(err) {
			return err
		}
		e.log.Debug("verify failed, retrying", "vault", req.Vault, "secret", req.Secret, "attempt", attempt, "error", err.Error())
		wait := delay/2 + rand.N(delay)
		select {
		case <-ctx.Done():
			return fmt.Errorf("still failing after %d attempts: %w", attempt, err)
		case <-time.After(wait):
		}
		delay = min(delay*2, 30*time.Second)
	}
}

// recordFailure counts a failed rotation of the attempted version in the journal (best effort), so
// that the sweep backs off and reports the secret as failing. It writes only while the lock is held.
func (e *Engine) recordFailure(ctx context.Context, v Vault, name string, st State, now time.Time) {
	if ctx.Err() != nil {
		return
	}
	st.Fails++
	// When it failed, not when it started: a write whose answer was lost may have been applied until now.
	failedAt := e.clock.Now()
	if failedAt.Before(now) {
		failedAt = now
	}
	st.FailedAt = failedAt.UTC().Truncate(time.Second)
	// The attempt is over (failed, not interrupted): the sweep retries it by its back-off, with the same
	// idempotency key, rather than as an interrupted rotation.
	st.Started = time.Time{}
	if err := e.cfg.Journal.Save(ctx, v.Name(), name, st); err != nil {
		e.log.Warn("recording the failure in the journal failed", "vault", v.Name(), "secret", name, "error", err.Error())
	}
}

// retry runs f up to Config.Attempts times while it fails transiently (vocab: not permanent), waiting a
// jittered, doubling delay or what the error asks (vocab.RetryAfterer, up to 20 s; longer is left to
// the trigger's own redelivery).
func (e *Engine) retry(ctx context.Context, f func() error) error {
	delay := e.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || vocab.IsPermanent(err) || attempt >= e.cfg.Attempts {
			return err
		}
		wait := delay/2 + rand.N(delay)
		if ra, ok := vocab.RetryAfter(err); ok {
			wait = ra
		}
		if wait > 20*time.Second {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		delay *= 2
	}
}

func (e *Engine) publish(ctx context.Context, o Outcome) {
	if e.cfg.Publisher == nil {
		return
	}
	if err := e.cfg.Publisher.Publish(context.WithoutCancel(ctx), o); err != nil {
		e.log.Warn("publishing an outcome failed", "vault", o.Vault, "secret", o.Secret, "outcome", string(o.Kind), "error", err.Error())
	}
}

// failed classifies err once: configuration and permanent errors are permanent, the rest transient.
func failed(err error) Outcome {
	// One line: several joined errors (every unbound tag) read "a; b".
	o := Outcome{Kind: KindFailed, Class: ClassTransient, Reason: strings.ReplaceAll(err.Error(), "\n", "; "), Err: err}
	if vocab.IsPermanent(err) || errors.Is(err, ErrNotFound) {
		o.Class = ClassPermanent
	}
	return o
}

// with copies the failure's fields onto an outcome that already knows versions and provider.
func with(o, f Outcome) Outcome {
	o.Kind, o.Class, o.Reason, o.Err = f.Kind, f.Class, f.Reason, f.Err
	return o
}

// IdempotencyKey is the stable name for what a rotation of one source version creates: a retry after
// a crash derives the same key, so providers find what the interrupted attempt made.
func IdempotencyKey(vault, secret, version string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(vault + "/" + secret + "/" + version)))
	return "kvr-" + hex.EncodeToString(sum[:8])
}

func lockKey(vault, secret string) string { return strings.ToLower(vault + "/" + secret) }

// boundReader lets a provider read the other secrets of the same vault that it declared as references
// and the bindings allowed; any other name is refused without a read.
func boundReader(v Vault, refs []providers.Reference) providers.SecretReader {
	r := secretReader{v: v, allowed: map[string]bool{}}
	for _, ref := range refs {
		if ref.Kind == providers.RefSecret {
			r.allowed[strings.ToLower(ref.Value)] = true
		}
	}
	return r
}

type secretReader struct {
	v       Vault
	allowed map[string]bool
}

func (r secretReader) SecretValue(ctx context.Context, name string) (providers.Value, error) {
	if !r.allowed[strings.ToLower(name)] {
		return providers.Value{}, providers.Permanent(fmt.Errorf("reading secret %q: not a reference the provider declared and the bindings allow", name))
	}
	s, err := r.v.Get(ctx, name, "")
	if err != nil {
		return providers.Value{}, err
	}
	return s.Value, nil
}

// memoryLocker is the in-process Locker: one holder per key, others get ErrBusy at once.
type memoryLocker struct {
	mu   sync.Mutex
	held map[string]bool
}

// NewMemoryLocker returns a Locker for a single process (the demo, tests, one-instance deployments).
func NewMemoryLocker() Locker { return &memoryLocker{held: map[string]bool{}} }

func (l *memoryLocker) Lock(ctx context.Context, key string) (context.Context, func(), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] {
		return nil, nil, ErrBusy
	}
	l.held[key] = true
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.held, key)
			l.mu.Unlock()
		})
	}, nil
}
