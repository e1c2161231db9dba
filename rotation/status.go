package rotation

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// SecretStatus is what an operator needs to know about one secret, read from a list page only (no
// value, no per-secret GET).
type SecretStatus struct {
	Vault       string     `json:"vault"`
	Secret      string     `json:"secret"`
	Version     string     `json:"version"`
	Managed     bool       `json:"managed"`
	Provider    string     `json:"provider,omitempty"`
	Enabled     bool       `json:"enabled"`
	Expires     *time.Time `json:"expires,omitempty"`
	RotateAt    *time.Time `json:"rotateAt,omitempty"` // expiry minus the near-expiry lead
	Updated     time.Time  `json:"updated"`
	Due         bool       `json:"due"`
	Overdue     bool       `json:"overdue"`
	Reason      string     `json:"reason,omitempty"`      // why it is due, overdue or not
	Action      string     `json:"action,omitempty"`      // what the next sweep would do
	PolicyError string     `json:"policyError,omitempty"` // the tag that is wrong, and why
	State       State      `json:"-"`
	LastRotated *time.Time `json:"lastRotated,omitempty"`
	LastTrigger Trigger    `json:"lastTrigger,omitempty"`
	Fails       int        `json:"consecutiveFailures,omitempty"`
	Pending     []Pending  `json:"pendingRevocations,omitempty"`
	// NextAt is when the next thing happens (the rotation point, the end of a wait, a revocation).
	NextAt *time.Time `json:"nextAt,omitempty"`
	// NextWindow is when the secret's rotation window next opens, when it has one and it is closed.
	NextWindow *time.Time `json:"nextWindow,omitempty"`
	// Window and Schedule are the secret's timing policy as kvrotator reads it (its tags, else the
	// app-wide defaults), in canonical form ("" = none); Paused is its rotation-pause tag.
	Window   string `json:"window,omitempty"`
	Schedule string `json:"schedule,omitempty"`
	Paused   bool   `json:"paused,omitempty"`
	// DisableVersions are replaced versions waiting to be disabled.
	DisableVersions []Retire `json:"disableVersions,omitempty"`
	// Emergencies are the leak responses on this secret (newest last); OpenEmergency says the last one
	// did not complete (failed, or the secret is paused).
	Emergencies   []Emergency `json:"emergencies,omitempty"`
	OpenEmergency bool        `json:"openEmergency,omitempty"`
	// Consumers are the secret's readers in Key Vault's audit log over the lookback (Config.Usage),
	// each with whether its last read was of the latest version. Nil without an audit log.
	Consumers []ConsumerView `json:"consumers,omitempty"`
}

// StatusReport covers every configured vault.
type StatusReport struct {
	At      time.Time      `json:"at"`
	Secrets []SecretStatus `json:"secrets"`
	Errors  []string       `json:"errors,omitempty"` // vaults that could not be listed
}

// Overdue counts the overdue secrets.
func (r StatusReport) Overdue() int {
	n := 0
	for _, s := range r.Secrets {
		if s.Overdue {
			n++
		}
	}
	return n
}

// PolicyErrors counts managed secrets whose tags are wrong.
func (r StatusReport) PolicyErrors() int {
	n := 0
	for _, s := range r.Secrets {
		if s.PolicyError != "" {
			n++
		}
	}
	return n
}

// Status lists every configured vault and describes each secret as of at (zero: now): its policy,
// when it is due, whether it is overdue, and what the next sweep would do. Overdue secrets come first,
// then by rotation time.
func (e *Engine) Status(ctx context.Context, at time.Time) StatusReport {
	if at.IsZero() {
		at = e.clock.Now()
	}
	rep := StatusReport{At: at.UTC()}
	for _, name := range e.order {
		v := e.vaults[strings.ToLower(name)]
		states, err := e.cfg.Journal.List(ctx, v.Name())
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("vault %s: journal: %v", v.Name(), err))
		}
		var reads map[string][]Read
		if e.cfg.Usage != nil {
			all, err := e.cfg.Usage.Reads(ctx, v.Name(), "", at.Add(-e.cfg.UsageLookback), at)
			if err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("vault %s: audit log: %v", v.Name(), err))
			}
			reads = map[string][]Read{}
			for _, r := range all {
				k := strings.ToLower(r.Secret)
				reads[k] = append(reads[k], r)
			}
		}
		err = v.List(ctx, func(p SecretProperties) error {
			st := heal(states[strings.ToLower(p.Name)], p).ForLatest(p)
			s := e.describe(p, st, at)
			if reads != nil && s.Managed {
				s.Consumers = consumerViews(reads[strings.ToLower(p.Name)], p, st)
			}
			rep.Secrets = append(rep.Secrets, s)
			return nil
		})
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("vault %s: %v", v.Name(), err))
		}
	}
	sort.SliceStable(rep.Secrets, func(i, j int) bool {
		a, b := rep.Secrets[i], rep.Secrets[j]
		if a.Overdue != b.Overdue {
			return a.Overdue
		}
		if a.Managed != b.Managed {
			return a.Managed
		}
		ta, tb := farFuture, farFuture
		if a.RotateAt != nil {
			ta = *a.RotateAt
		}
		if b.RotateAt != nil {
			tb = *b.RotateAt
		}
		if !ta.Equal(tb) {
			return ta.Before(tb)
		}
		if a.Vault != b.Vault {
			return a.Vault < b.Vault
		}
		return a.Secret < b.Secret
	})
	return rep
}

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

func (e *Engine) describe(p SecretProperties, st State, at time.Time) SecretStatus {
	s := SecretStatus{Vault: p.Vault, Secret: p.Name, Version: p.Version, Enabled: p.Enabled, Expires: p.Expires,
		Updated: p.Updated, Managed: IsManaged(p.Tags), Provider: providerOf(p.Tags)}
	if p.Expires != nil {
		ra := p.Expires.Add(-e.cfg.Defaults.NearExpiryLead)
		s.RotateAt = &ra
	}
	if !s.Managed {
		s.Action = "none: not managed (no " + TagProvider + " tag)"
		return s
	}
	pol, prov, _, err := e.policy(p.Vault, p.Name, p.Tags)
	if prov == nil {
		prov = noProvider{}
	}
	d := e.decide(decideInput{p: p, pol: pol, polErr: err, prov: prov, st: st, now: at, req: Request{Trigger: TriggerTimer}})
	s.Due, s.Overdue, s.Reason = d.Due, d.Overdue, d.Reason
	if !d.At.IsZero() {
		next := d.At
		s.NextAt = &next
	}
	s.NextWindow = d.NextWindow
	if err != nil {
		s.PolicyError = err.Error()
		s.Action = "none until the tags are fixed"
		return s
	}
	s.State = st
	s.Fails, s.Pending, s.DisableVersions, s.Paused = st.Fails, st.Pending, st.Retire, pol.Paused
	s.Emergencies = st.Emergencies
	if n := len(st.Emergencies); n > 0 && st.Emergencies[n-1].Open {
		s.OpenEmergency, s.Overdue = true, true
	}
	if pol.Window != nil {
		s.Window = pol.Window.String()
	}
	if pol.Schedule != nil {
		s.Schedule = pol.Schedule.String()
	}
	if !st.At.IsZero() {
		t := st.At
		s.LastRotated, s.LastTrigger = &t, st.By
	}
	switch d.Action {
	case ActRotate:
		s.Action = fmt.Sprintf("rotate with provider %s (%s), new version valid %d days", pol.Provider, prov.Shape(), int(pol.Validity/(24*time.Hour)))
		if !d.Due {
			s.Action = "finish the interrupted rotation with provider " + pol.Provider
		}
		if d.Revoke {
			s.Action = retireAction(st, p.Version, at) + ", then " + s.Action
		}
	case ActWait:
		s.Action = "wait until " + d.At.UTC().Format(time.RFC3339)
		if d.Guard {
			s.Action += " (back-to-back guard)"
		}
	case ActBlocked:
		s.Action = "none: " + d.Reason
	default:
		switch {
		case d.Revoke:
			s.Action = retireAction(st, p.Version, at)
		case !d.At.IsZero():
			s.Action = "nothing until " + d.At.UTC().Format(time.RFC3339)
		default:
			s.Action = "nothing"
		}
	}
	return s
}

// retireAction names the retirement work that is due: revocations, disabling replaced versions.
func retireAction(st State, latest string, at time.Time) string {
	var parts []string
	if dueRevocations(st, latest, at) > 0 {
		parts = append(parts, "revoke the replaced credential")
	}
	if n := dueRetire(st, latest, at); n > 0 {
		parts = append(parts, "disable the replaced version")
	}
	if len(parts) == 0 {
		return "revoke the replaced credential"
	}
	return strings.Join(parts, " and ")
}
