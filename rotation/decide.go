package rotation

import (
	"fmt"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

// Action is what happens next to a managed secret.
type Action string

// The actions of a Decision.
const (
	ActNothing Action = "nothing" // not due: nothing until Decision.At
	ActRotate  Action = "rotate"  // rotate now (Reason says why)
	ActWait    Action = "wait"    // should rotate, held back until Decision.At (window, interval, back-off, guard)
	ActBlocked Action = "blocked" // cannot rotate until a person acts (bad tags, disabled version, paused)
)

// Decision is the one answer to "what happens next to this secret, and why", given its latest
// version's properties, its policy, kvrotator's state and a time. The sweep, status, plan, the dry
// run, events and the HTTP trigger all ask Engine.decide, so they cannot disagree.
type Decision struct {
	Action Action
	Reason string
	// At is when the next thing happens: the end of a wait, the rotation point, the next revocation.
	At time.Time
	// Due: the secret needs a rotation (expiry, schedule, an interrupted rotation).
	Due bool
	// Overdue: due and expired, past its rotation point by more than a day, or held back while due
	// by something a person must fix or that keeps failing.
	Overdue bool
	// Revoke: replaced credentials are due for revocation; they run before any rotation.
	Revoke bool
	// Guard: held back because a rotation now would reset the slot or login that the previous
	// version's consumers may still hold (HTTP 409); Request.Override lifts it.
	Guard bool
	// NextWindow is the start of the next rotation window when the secret has one and it is closed.
	NextWindow *time.Time
}

// decideInput is what Engine.decide looks at.
type decideInput struct {
	p      SecretProperties // the latest version (Version may be empty: list pages carry none)
	pol    Policy
	polErr error
	prov   providers.Provider
	st     State // the journal's state, For the latest version
	now    time.Time
	req    Request // trigger, force, override
}

// decide is the decision table. Order matters: what a person must fix first, then what the operator's
// clock says, then what the secret's own timing says.
func (e *Engine) decide(in decideInput) Decision {
	var d Decision
	p, pol, st, now := in.p, in.pol, in.st, in.now
	due, why, at := e.dueness(p, pol, now)
	d.Due, d.At = due, at
	overdue := due && (p.Expires == nil || !now.Before(*p.Expires) || !now.Before(p.Expires.Add(-e.cfg.Defaults.NearExpiryLead).Add(24*time.Hour)))

	if in.polErr != nil {
		d.Action, d.Overdue = ActBlocked, due
		d.Reason = "cannot rotate until the tags are fixed: " + in.polErr.Error()
		if due {
			d.Reason = why + "; " + d.Reason
		}
		return d
	}
	if e.paused() || pol.Paused {
		switch {
		case e.paused():
			d.Reason = "paused: the global kill switch is on (KVROTATOR_PAUSE or KVROTATOR_PAUSE_FILE); nothing is rotated or revoked"
		default:
			d.Reason = "paused: the secret's " + TagPause + " tag; nothing is rotated or revoked"
		}
		d.Action, d.Overdue = ActBlocked, overdue
		if due {
			d.Reason = why + "; " + d.Reason
		}
		return d
	}
	if !p.Enabled {
		d.Action, d.Overdue = ActBlocked, due
		d.Reason = "the latest version is disabled: enable it or write a new version by hand"
		return d
	}
	_, revoker := in.prov.(providers.Revoker)
	d.Revoke = revoker && dueRevocations(st, p.Version, now) > 0 || dueRetire(st, p.Version, now) > 0

	trig := in.req.Trigger
	resume := !st.Started.IsZero()
	want := due || resume || in.req.Force || trig == TriggerEvent
	if !want {
		d.Action, d.Reason = ActNothing, why
		if next := nextRevocation(st, now); !next.IsZero() && (d.At.IsZero() || next.Before(d.At)) {
			d.At = next
		}
		return d
	}
	switch {
	case resume && !now.Before(st.Started.Add(e.cfg.ResumeAfter)):
		why = "finishing a rotation interrupted at " + st.Started.Format(time.RFC3339)
	case resume && trig == TriggerTimer && !due:
		// It may still be running elsewhere: the sweep comes back once it cannot be. (A due secret is
		// rotated anyway: the lock keeps two runs apart, and the idempotency key finds what was made.)
		d.Action, d.At = ActWait, st.Started.Add(e.cfg.ResumeAfter)
		d.Reason = fmt.Sprintf("a rotation started at %s may still be running; the sweep finishes it after %s",
			st.Started.Format(time.RFC3339), d.At.UTC().Format(time.RFC3339))
		return d
	case resume && !due:
		why = "finishing a rotation interrupted at " + st.Started.Format(time.RFC3339)
	case !due && in.req.Force:
		why = "requested"
	case !due:
		why = "Key Vault says it is near expiry or expired"
	}
	override := in.req.Override

	if trig == TriggerTimer && st.Fails > 0 {
		if next := st.FailedAt.Add(e.failureBackoff(st.Fails)); now.Before(next) {
			d.Action, d.At, d.Overdue = ActWait, next, true
			d.Reason = fmt.Sprintf("%s; failing: %d consecutive failed rotations, the last at %s; next attempt after %s",
				why, st.Fails, st.FailedAt.Format(time.RFC3339), next.UTC().Format(time.RFC3339))
			return d
		}
	}
	if shape := in.prov.Shape(); !override && (shape == providers.ShapeTwoSlot || shape == providers.ShapeAlternating) {
		if until, ok := e.guardUntil(p, pol, st); ok && now.Before(until) {
			what := "slot"
			if shape == providers.ShapeAlternating {
				what = "login"
			}
			d.Action, d.At, d.Guard, d.Overdue = ActWait, until, true, overdue
			d.Reason = fmt.Sprintf("%s; not yet: a rotation now would reset the %s that the previous version's consumers may still use until %s "+
				"(its grace period); override only in an emergency, knowing those consumers break", why, what, until.UTC().Format(time.RFC3339))
			return d
		}
	}
	if pol.MinInterval > 0 && !override && !st.At.IsZero() && writtenByUs(p, st) {
		if next := st.At.Add(pol.MinInterval); now.Before(next) {
			d.Action, d.At, d.Overdue = ActWait, next, overdue
			d.Reason = fmt.Sprintf("%s; the last rotation was at %s and %s is %s: next rotation after %s",
				why, st.At.Format(time.RFC3339), TagMinInterval, pol.MinInterval, next.UTC().Format(time.RFC3339))
			return d
		}
	}
	if revoker && in.prov.Shape() == providers.ShapeCreateRevoke && len(st.Pending) >= MaxPending {
		d.Action, d.At, d.Overdue = ActWait, nextRevocation(st, now), overdue
		d.Reason = fmt.Sprintf("%s; %d replaced credentials are still waiting for revocation (at most %d): the next rotation waits until their grace periods are over",
			why, len(st.Pending), MaxPending)
		return d
	}
	if w := pol.Window; w != nil && !override && !w.Contains(now) {
		start, _ := w.Next(now)
		d.NextWindow = &start
		if p.Expires != nil && p.Expires.Before(start) {
			// The documented rule: an expiry before the next window beats the window.
			d.Action = ActRotate
			d.Reason = fmt.Sprintf("%s; outside the rotation window (%s), but it expires at %s, before the next window opens at %s",
				why, w, p.Expires.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
			return d
		}
		d.Action, d.At, d.Overdue = ActWait, start, overdue
		d.Reason = fmt.Sprintf("%s; outside the rotation window (%s): rotates when it opens at %s", why, w, start.UTC().Format(time.RFC3339))
		return d
	}
	d.Action, d.Reason, d.Overdue = ActRotate, why, overdue
	if st.Fails > 0 {
		d.Overdue = d.Overdue || due
		d.Reason += fmt.Sprintf("; failing: %d consecutive failed rotations, the last at %s; trying again", st.Fails, st.FailedAt.Format(time.RFC3339))
	}
	if override {
		d.Reason += " (override: the window, the minimum interval and the back-to-back guard are not applied)"
	}
	return d
}

// dueness says whether the secret is due by its expiry or its schedule, why, and when it is (or
// will be) due.
func (e *Engine) dueness(p SecretProperties, pol Policy, now time.Time) (bool, string, time.Time) {
	due, why := e.due(p, now)
	var at time.Time
	if p.Expires != nil {
		at = p.Expires.Add(-e.cfg.Defaults.NearExpiryLead)
	}
	if s := pol.Schedule; s != nil {
		// The latest version's creation is the last rotation, whoever wrote it.
		next := s.Next(p.Created, now)
		if !due && !now.Before(next) {
			due, why = true, fmt.Sprintf("scheduled (%s) at %s", s, next.UTC().Format(time.RFC3339))
		}
		if at.IsZero() || next.Before(at) {
			at = next
		}
	}
	return due, why, at
}

// guardUntil is when the previous version's consumers may stop using the slot or login a rotation now
// would reset: the grace period after kvrotator wrote the latest version. Versions written by hand are
// not guarded (kvrotator cannot know what their predecessor held).
func (e *Engine) guardUntil(p SecretProperties, pol Policy, st State) (time.Time, bool) {
	if st.At.IsZero() || !writtenByUs(p, st) {
		return time.Time{}, false
	}
	return st.At.Add(pol.Grace), true
}

// writtenByUs reports whether the journal's last write is the latest version: by version id when the
// properties carry one, else (list pages) by its creation time, which Key Vault sets when kvrotator
// writes it (within a minute of the journal's time).
func writtenByUs(p SecretProperties, st State) bool {
	if st.Version == "" {
		return false
	}
	if p.Version != "" {
		return strings.EqualFold(p.Version, st.Version)
	}
	d := p.Created.Sub(st.At)
	return d > -time.Minute && d < time.Minute
}

// nextRevocation is the earliest due time of a pending revocation or a version to disable still in
// the future (zero: none).
func nextRevocation(st State, now time.Time) time.Time {
	var next time.Time
	consider := func(due, nextTry time.Time) {
		t := due
		if nextTry.After(t) {
			t = nextTry
		}
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, p := range st.Pending {
		consider(p.Due, p.NextTry)
	}
	for _, r := range st.Retire {
		consider(r.Due, r.NextTry)
	}
	return next
}

func (e *Engine) paused() bool { return e.cfg.Paused != nil && e.cfg.Paused() }
