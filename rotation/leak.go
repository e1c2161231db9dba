package rotation

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

// LeakRequest reports a leaked value: the value itself, or its SHA-256 (hex). The value is hashed at
// once and compared only as a digest, in constant time; it is never logged, echoed or kept.
type LeakRequest struct {
	Value  providers.Value
	SHA256 string
	// Source says who reported it ("manual", "github-secret-scanning", "defender"), for the outcome.
	Source  string
	Trigger Trigger
	DryRun  bool
}

// LeakReport is what a leak response found and did: one KindEmergency outcome per secret holding the
// value (its Followups are the rotations and revocations), none when the value is unknown.
type LeakReport struct {
	Outcomes []Outcome
	Errors   []string // vaults that could not be searched
}

// Found reports whether the value was found in a managed secret.
func (r LeakReport) Found() bool { return len(r.Outcomes) > 0 }

// ErrBadDigest is returned by LeakDigest for a SHA-256 that is not 64 hex digits.
var ErrBadDigest = errors.New("sha256: want 64 hexadecimal digits")

// LeakDigest returns the SHA-256 the request names, computing it from the value when given.
func LeakDigest(req LeakRequest) ([]byte, error) {
	if !req.Value.IsZero() {
		sum := sha256.Sum256([]byte(req.Value.Reveal()))
		return sum[:], nil
	}
	d, err := hex.DecodeString(strings.TrimSpace(req.SHA256))
	if err != nil || len(d) != sha256.Size {
		return nil, ErrBadDigest
	}
	return d, nil
}

// holds reports in constant time whether v hashes to digest.
func holds(v providers.Value, digest []byte) bool {
	sum := sha256.Sum256([]byte(v.Reveal()))
	return subtle.ConstantTimeCompare(sum[:], digest) == 1
}

// leakMatch is a managed secret holding the leaked value in one of its recent versions.
type leakMatch struct {
	v      Vault
	p      SecretProperties // the latest version
	latest bool             // the latest version holds it
	ver    string           // the version that holds it
}

// Leak responds to a leaked value: it searches every configured vault's managed secrets — the latest
// version, and the versions kvrotator still tracks (replaced versions with pending revocations or
// waiting to be disabled, the version the latest replaced) — and for each secret holding the value it
// rotates at once and retires the leaked credential without grace: create-then-revoke providers revoke
// it; two-slot and alternating providers rotate twice, so that the leaked slot or login is regenerated
// too; generated values' leaked version is disabled. The timing rules (window, minimum interval,
// back-to-back guard, the wait for readers) do not apply; the bindings and the kill switch do. An
// unknown value changes nothing. With DryRun it only says what it would do.
func (e *Engine) Leak(ctx context.Context, req LeakRequest) (LeakReport, error) {
	digest, err := LeakDigest(req)
	if err != nil {
		return LeakReport{}, err
	}
	if req.Trigger == "" {
		req.Trigger = TriggerManual
	}
	if req.Source == "" {
		req.Source = "manual"
	}
	var rep LeakReport
	var matches []leakMatch
	for _, name := range e.order {
		v := e.vaults[strings.ToLower(name)]
		states, err := e.cfg.Journal.List(ctx, v.Name())
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("vault %s: journal: %v", v.Name(), err))
		}
		err = v.List(ctx, func(p SecretProperties) error {
			if !IsManaged(p.Tags) {
				return nil
			}
			cur, err := v.Get(ctx, p.Name, "")
			if err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("vault %s: secret %s: %v", v.Name(), p.Name, err))
				return nil
			}
			if holds(cur.Value, digest) {
				matches = append(matches, leakMatch{v: v, p: cur.SecretProperties, latest: true, ver: cur.Version})
				return nil
			}
			for _, ver := range trackedVersions(states[strings.ToLower(p.Name)], cur.Version) {
				old, err := v.Get(ctx, p.Name, ver)
				if err != nil {
					continue // gone or disabled: nothing can read it
				}
				if holds(old.Value, digest) {
					matches = append(matches, leakMatch{v: v, p: cur.SecretProperties, ver: ver})
					break
				}
			}
			return nil
		})
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("vault %s: %v", v.Name(), err))
		}
	}
	for _, m := range matches {
		o := e.respond(ctx, m, req)
		e.publish(ctx, o)
		if !req.DryRun {
			e.recordEmergency(ctx, m, req, o)
		}
		rep.Outcomes = append(rep.Outcomes, o)
	}
	return rep, nil
}

// trackedVersions are the versions besides the latest whose credentials kvrotator knows may live.
func trackedVersions(st State, latest string) []string {
	var out []string
	add := func(v string) {
		if v == "" || strings.EqualFold(v, latest) {
			return
		}
		for _, o := range out {
			if strings.EqualFold(o, v) {
				return
			}
		}
		out = append(out, v)
	}
	add(st.From)
	for _, p := range st.Pending {
		add(p.Version)
	}
	for _, r := range st.Retire {
		add(r.Version)
	}
	return out
}

// respond carries out the response for one secret.
func (e *Engine) respond(ctx context.Context, m leakMatch, req LeakRequest) Outcome {
	o := Outcome{Kind: KindEmergency, Vault: m.v.Name(), Secret: m.p.Name, OldVersion: m.ver, Provider: providerOf(m.p.Tags),
		Trigger: req.Trigger, DryRun: req.DryRun}
	where := "the latest version"
	if !m.latest {
		where = "replaced version " + m.ver
	}
	found := fmt.Sprintf("leak reported (%s): the value is in %s of %s/%s", req.Source, where, m.v.Name(), m.p.Name)
	pol, prov, _, err := e.policy(m.v.Name(), m.p.Name, m.p.Tags)
	if err != nil {
		o.Class, o.Reason = ClassPermanent, found+"; cannot respond: "+err.Error()
		return o
	}
	if e.paused() || pol.Paused {
		o.Reason = found + "; nothing done: rotation is paused (the kill switch or the rotation-pause tag); rotate by hand or lift the pause and report again"
		return o
	}
	shape := prov.Shape()
	rotations := 0
	switch {
	case m.latest && (shape == providers.ShapeTwoSlot || shape == providers.ShapeAlternating):
		rotations = 2 // the first regenerates the other slot, the second the leaked one
	case m.latest:
		rotations = 1
	case shape == providers.ShapeTwoSlot || shape == providers.ShapeAlternating:
		// The version the latest replaced holds the slot (login) that is still valid: one rotation
		// regenerates it. Older versions' slots were regenerated already.
		if st, err := e.cfg.Journal.Load(ctx, m.v.Name(), m.p.Name); err == nil && strings.EqualFold(st.From, m.ver) {
			rotations = 1
		}
	}
	if req.DryRun {
		var plan []string
		if rotations > 0 {
			plan = append(plan, fmt.Sprintf("rotate %d time(s) with provider %s (%s), skipping the timing rules", rotations, pol.Provider, shape))
		}
		switch shape {
		case providers.ShapeCreateRevoke:
			plan = append(plan, "revoke the leaked credential at once")
		case providers.ShapeGenerated:
			plan = append(plan, "disable the leaked version at once")
		}
		if len(plan) == 0 {
			plan = append(plan, "nothing: its slot or login was regenerated already")
		}
		o.Kind, o.Reason = KindPlanned, found+"; would "+strings.Join(plan, ", then ")
		return o
	}
	var did []string
	for i := 0; i < rotations; i++ {
		r := e.Rotate(ctx, Request{Vault: m.v.Name(), Secret: m.p.Name, Trigger: req.Trigger, Force: true, Override: true})
		o.Followups = append(o.Followups, r)
		o.Followups = append(o.Followups, r.Followups...)
		if r.Kind != KindRotated {
			o.Class, o.Reason = r.Class, found+"; "+strings.Join(append(did, "rotation failed: "+r.Reason), "; ")
			if o.Class == "" {
				o.Class = ClassTransient
			}
			return o
		}
		o.NewVersion = r.NewVersion
		did = append(did, "rotated to version "+r.NewVersion)
	}
	// The leaked version's credential (create-then-revoke) or the version itself (generated, and any
	// version disabling tracks) goes now, without grace and without waiting for readers.
	if err := e.expedite(ctx, m.v, m.p.Name, m.ver); err != nil {
		o.Class, o.Reason = ClassTransient, found+"; "+strings.Join(append(did, "could not mark the leaked credential for revocation: "+err.Error()), "; ")
		return o
	}
	if shape == providers.ShapeCreateRevoke || shape == providers.ShapeGenerated || len(did) > 0 {
		latest, err := m.v.Get(ctx, m.p.Name, "")
		if err == nil {
			r := e.revokeWith(ctx, m.v, latest.SecretProperties, req.Trigger, false, true)
			o.Followups = append(o.Followups, r)
			switch r.Kind {
			case KindRevoked:
				did = append(did, r.Reason)
			case KindFailed:
				o.Class, o.Reason = r.Class, found+"; "+strings.Join(append(did, "revocation failed: "+r.Reason), "; ")
				return o
			}
		}
	}
	if len(did) == 0 {
		did = append(did, "nothing left to do: its credential was revoked or regenerated already")
	}
	o.Reason = found + "; " + strings.Join(did, "; ")
	return o
}

// expedite makes the leaked version's pending revocation and disabling due now, under the secret's
// lock. For a generated value (nothing to revoke) the version is queued for disabling.
func (e *Engine) expedite(ctx context.Context, v Vault, name, version string) error {
	held, unlock, err := e.cfg.Locker.Lock(ctx, lockKey(v.Name(), name))
	if err != nil {
		return err
	}
	defer unlock()
	st, err := e.cfg.Journal.Load(held, v.Name(), name)
	if err != nil {
		return err
	}
	now := e.clock.Now().UTC().Truncate(time.Second)
	changed := false
	for i := range st.Pending {
		if strings.EqualFold(st.Pending[i].Version, version) {
			st.Pending[i].Due, st.Pending[i].NextTry, st.Pending[i].Waiting = now, time.Time{}, nil
			changed = true
		}
	}
	cur, err := v.Get(held, name, "")
	if err == nil && !strings.EqualFold(cur.Version, version) {
		// The leaked value is no longer the latest: its version is disabled now, whatever the setting.
		st.Retire = addRetire(st.Retire, Retire{Version: version, Due: now})
		for i := range st.Retire {
			if strings.EqualFold(st.Retire[i].Version, version) {
				st.Retire[i].Due, st.Retire[i].NextTry = now, time.Time{}
			}
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return e.cfg.Journal.Save(held, v.Name(), name, st)
}

// recordEmergency keeps the response in the secret's state, for status, plan and the page.
func (e *Engine) recordEmergency(ctx context.Context, m leakMatch, req LeakRequest, o Outcome) {
	held, unlock, err := e.cfg.Locker.Lock(ctx, lockKey(m.v.Name(), m.p.Name))
	if err != nil {
		e.log.Warn("recording the emergency failed", "vault", m.v.Name(), "secret", m.p.Name, "error", err.Error())
		return
	}
	defer unlock()
	st, err := e.cfg.Journal.Load(held, m.v.Name(), m.p.Name)
	if err != nil {
		return
	}
	done := o.Reason
	if _, after, ok := strings.Cut(done, "; "); ok {
		done = after // without the "leak reported …: the value is in …" preamble
	}
	open := o.Class != "" || strings.Contains(o.Reason, "nothing done")
	st.Emergencies = append(st.Emergencies, Emergency{At: e.clock.Now().UTC().Truncate(time.Second), Source: req.Source, Version: m.ver, Done: done, Open: open})
	if n := len(st.Emergencies); n > maxEmergencies {
		st.Emergencies = st.Emergencies[n-maxEmergencies:]
	}
	if err := e.cfg.Journal.Save(held, m.v.Name(), m.p.Name, st); err != nil {
		e.log.Warn("recording the emergency failed", "vault", m.v.Name(), "secret", m.p.Name, "error", err.Error())
	}
}

// SuspiciousRequest reports suspicious access to a vault (a Microsoft Defender for Key Vault alert):
// who (object or application ids) or from where (IP addresses), and when.
type SuspiciousRequest struct {
	Vault      string
	Identities []string
	Addresses  []string
	From, To   time.Time
	// Rotate responds as to a leak (Engine.Leak) for every managed secret they read; otherwise the
	// answer is a plan (KindPlanned outcomes) and nothing changes.
	Rotate  bool
	Source  string
	Trigger Trigger
}

// ErrNoAuditLog is returned by Suspicious without an audit log (Config.Usage).
var ErrNoAuditLog = errors.New("the response to suspicious access needs Key Vault's audit log: set KVROTATOR_LOG_WORKSPACE_ID")

// Suspicious lists, from Key Vault's audit log, the secrets of the vault that the suspicious identities
// or addresses read in the window, and for each managed one plans — or, with Rotate, carries out — the
// leak response for the version it read. Unmanaged secrets are reported for a person to rotate.
func (e *Engine) Suspicious(ctx context.Context, req SuspiciousRequest) (LeakReport, error) {
	if e.cfg.Usage == nil {
		return LeakReport{}, ErrNoAuditLog
	}
	v, ok := e.vault(req.Vault)
	if !ok {
		return LeakReport{}, providers.Permanent(fmt.Errorf("vault %q is not configured (configured: %s)", req.Vault, strings.Join(e.order, ", ")))
	}
	if req.Trigger == "" {
		req.Trigger = TriggerEvent
	}
	reads, err := e.cfg.Usage.Reads(ctx, v.Name(), "", req.From, req.To)
	if err != nil {
		return LeakReport{}, fmt.Errorf("read the audit log: %w", err)
	}
	match := func(r Read) bool {
		for _, id := range req.Identities {
			if id != "" && (strings.EqualFold(id, r.Reader) || strings.EqualFold(id, r.AppID)) {
				return true
			}
		}
		for _, a := range req.Addresses {
			if a != "" && strings.EqualFold(a, r.Address) {
				return true
			}
		}
		return false
	}
	last := map[string]Read{} // per secret, the latest suspicious read
	var order []string
	for _, r := range reads {
		if !match(r) {
			continue
		}
		k := strings.ToLower(r.Secret)
		prev, seen := last[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || r.Last.After(prev.Last) {
			last[k] = r
		}
	}
	var rep LeakReport
	for _, k := range order {
		r := last[k]
		cur, err := v.Get(ctx, r.Secret, "")
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("secret %s: %v", r.Secret, err))
			continue
		}
		who := readerName(r)
		read := fmt.Sprintf("%s (%s) read %s/%s", who, req.Source, v.Name(), r.Secret)
		if r.Version != "" {
			read += " version " + r.Version
		}
		read += " at " + r.Last.UTC().Format(time.RFC3339)
		if !IsManaged(cur.Tags) {
			o := Outcome{Kind: KindPlanned, Vault: v.Name(), Secret: r.Secret, Trigger: req.Trigger, DryRun: true,
				Reason: read + "; not managed by kvrotator: rotate it by hand"}
			e.publish(ctx, o)
			rep.Outcomes = append(rep.Outcomes, o)
			continue
		}
		ver := r.Version
		if ver == "" {
			ver = cur.Version
		}
		m := leakMatch{v: v, p: cur.SecretProperties, latest: strings.EqualFold(ver, cur.Version), ver: ver}
		lr := LeakRequest{Source: req.Source, Trigger: req.Trigger, DryRun: !req.Rotate}
		o := e.respond(ctx, m, lr)
		o.Reason = read + "; " + o.Reason
		if !req.Rotate {
			o.Reason += " (set KVROTATOR_DEFENDER_ROTATE=true to respond automatically, or run kvrotator leak)"
		}
		e.publish(ctx, o)
		if req.Rotate {
			e.recordEmergency(ctx, m, lr, o)
		}
		rep.Outcomes = append(rep.Outcomes, o)
	}
	return rep, nil
}
