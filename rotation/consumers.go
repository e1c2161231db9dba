package rotation

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

// Consumer is an application that reads a secret and that the operator binds to it (bindings): after
// each rotation kvrotator asks it to pick up the new version. Tags never name consumers.
type Consumer struct {
	// Kind is how it is refreshed: ConsumerAppService, ConsumerContainerApp or ConsumerWebhook.
	Kind string `json:"kind"`
	// Resource is the ARM id of an App Service / Functions app (…/Microsoft.Web/sites/{name}, or a
	// slot …/sites/{name}/slots/{slot}) or a Container App (…/Microsoft.App/containerApps/{name}).
	Resource string `json:"resource,omitempty"`
	// URL is a webhook consumer's endpoint; SigningSecret the name of the secret (same vault) whose
	// value is the HMAC key the notification is signed with.
	URL           string `json:"url,omitempty"`
	SigningSecret string `json:"signingSecret,omitempty"`
}

// Consumer kinds.
const (
	ConsumerAppService   = "app-service"   // Resource Manager: refresh the app's Key Vault references
	ConsumerContainerApp = "container-app" // Resource Manager: restart the active revisions
	ConsumerWebhook      = "webhook"       // a signed POST naming the new version (never the value)
)

// String names the consumer in outcomes and logs.
func (c Consumer) String() string {
	switch {
	case c.Resource != "":
		return c.Kind + " " + c.Resource
	case c.URL != "":
		return c.Kind + " " + c.URL
	}
	return c.Kind
}

// ConsumerBinder is implemented by a Binder that also says which consumers the operator bound to a
// secret (bindings.Policy).
type ConsumerBinder interface {
	Consumers(vault, secret, provider string) []Consumer
}

// Refresh is what a Refresher is told about a rotation.
type Refresh struct {
	Vault, Secret string
	// Version is the new version; Previous the one it replaced.
	Version, Previous string
	At                time.Time
	// Secrets reads the secrets the consumer needs (a webhook's signing key): only those named by
	// the operator's consumer entries.
	Secrets providers.SecretReader
}

// Refresher asks a consumer to pick up a secret's new version (consumers.Refresher). A failed refresh
// never fails the rotation: it is reported (KindRefreshFailed) and the consumer picks the version up
// on its own schedule.
type Refresher interface {
	Refresh(ctx context.Context, c Consumer, r Refresh) error
}

// refreshTimeout bounds one consumer's refresh (Resource Manager's long-running operations included).
const refreshTimeout = 2 * time.Minute

// refreshConsumers refreshes the consumers bound to a secret after rotation o and returns an outcome
// per consumer (published, and attached to the rotation's outcome for the caller's log).
func (e *Engine) refreshConsumers(ctx context.Context, v Vault, o Outcome) []Outcome {
	cb, ok := e.cfg.Bindings.(ConsumerBinder)
	if !ok || e.cfg.Refresher == nil {
		return nil
	}
	consumers := cb.Consumers(v.Name(), o.Secret, o.Provider)
	if len(consumers) == 0 {
		return nil
	}
	var names []string
	for _, c := range consumers {
		if c.SigningSecret != "" {
			names = append(names, c.SigningSecret)
		}
	}
	info := Refresh{Vault: v.Name(), Secret: o.Secret, Version: o.NewVersion, Previous: o.OldVersion, At: e.clock.Now(),
		Secrets: namedReader{v: v, names: names}}
	var outs []Outcome
	for _, c := range consumers {
		start := time.Now()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		err := e.cfg.Refresher.Refresh(rctx, c, info)
		cancel()
		r := Outcome{Kind: KindRefreshed, Vault: v.Name(), Secret: o.Secret, OldVersion: o.OldVersion, NewVersion: o.NewVersion,
			Provider: o.Provider, Trigger: o.Trigger, Consumer: c.String(), DurationMS: time.Since(start).Milliseconds()}
		if err != nil {
			r.Kind, r.Class, r.Err = KindRefreshFailed, ClassPermanent, err
			if !providers.IsPermanent(err) {
				r.Class = ClassTransient
			}
			r.Reason = fmt.Sprintf("%s did not refresh (it picks the new version up on its own schedule): %v", c, err)
		} else {
			r.Reason = fmt.Sprintf("asked %s to pick up version %s", c, o.NewVersion)
		}
		e.publish(ctx, r)
		outs = append(outs, r)
	}
	return outs
}

// namedReader reads only the secrets the operator named for consumers.
type namedReader struct {
	v     Vault
	names []string
}

func (r namedReader) SecretValue(ctx context.Context, name string) (providers.Value, error) {
	for _, n := range r.names {
		if strings.EqualFold(n, name) {
			s, err := r.v.Get(ctx, name, "")
			if err != nil {
				return providers.Value{}, err
			}
			return s.Value, nil
		}
	}
	return providers.Value{}, providers.Permanent(fmt.Errorf("secret %q is not a consumer's signing secret in the bindings", name))
}

// Usage tells who reads a secret, from Key Vault's audit log (consumers.LogAnalytics). Implementations
// leave kvrotator's own reads out.
type Usage interface {
	// Reads lists the reads of a secret (of every secret of the vault when secret is "") between from
	// and to: one Read per reader, address and version with the last time it read it.
	Reads(ctx context.Context, vault, secret string, from, to time.Time) ([]Read, error)
}

// Read is a reader's reads of one version of a secret.
type Read struct {
	// Reader is the caller's object id (its application id when the log has no object id).
	Reader string `json:"reader"`
	AppID  string `json:"appId,omitempty"`
	// Address is the caller's IP address.
	Address string `json:"address,omitempty"`
	Secret  string `json:"secret"`
	// Version is the version read; "" when the log does not say (a read of the latest version).
	Version string    `json:"version,omitempty"`
	Last    time.Time `json:"lastRead"`
	Count   int       `json:"reads,omitempty"`
}

// ConsumerView is one reader of a secret as status shows it.
type ConsumerView struct {
	Reader  string    `json:"reader"`
	AppID   string    `json:"appId,omitempty"`
	Address string    `json:"address,omitempty"`
	Version string    `json:"version,omitempty"` // the version of its last read ("" when the log does not say)
	Last    time.Time `json:"lastRead"`
	// Current: its last read was of the latest version (or of the latest, after it was written).
	Current bool `json:"current"`
}

// readerKey groups reads by caller.
func readerKey(r Read) string { return strings.ToLower(r.Reader + "|" + r.AppID) }

// readerName names a caller in reasons.
func readerName(r Read) string {
	name := r.Reader
	if r.AppID != "" && !strings.EqualFold(r.AppID, r.Reader) {
		name += " (app " + r.AppID + ")"
	}
	if r.Address != "" {
		name += " from " + r.Address
	}
	return name
}

// laggards returns the readers that read the secret before the replacement at `replaced` and whose
// last read since is not of a newer version: they still hold (or never fetched past) a version in
// dead. A reader that read the latest version without naming one (Version "") after the replacement
// has moved. Sorted by name.
func laggards(reads []Read, dead []string, replaced time.Time) []Read {
	isDead := func(v string) bool {
		for _, d := range dead {
			if strings.EqualFold(d, v) {
				return true
			}
		}
		return false
	}
	type who struct {
		consumer bool
		last     *Read // the latest read since the replacement
		before   Read
	}
	by := map[string]*who{}
	for i := range reads {
		r := reads[i]
		w := by[readerKey(r)]
		if w == nil {
			w = &who{}
			by[readerKey(r)] = w
		}
		if r.Last.Before(replaced) || (r.Version != "" && isDead(r.Version)) {
			// Read before the replacement, or a version that was replaced: a consumer of the old value.
			w.consumer = true
			if r.Last.After(w.before.Last) {
				w.before = r
			}
		}
		if !r.Last.Before(replaced) && (w.last == nil || r.Last.After(w.last.Last)) {
			w.last = &reads[i]
		}
	}
	var out []Read
	for _, w := range by {
		if !w.consumer {
			continue
		}
		if w.last != nil && (w.last.Version == "" || !isDead(w.last.Version)) {
			continue // moved
		}
		r := w.before
		if w.last != nil {
			r = *w.last
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return readerName(out[i]) < readerName(out[j]) })
	return out
}

// usage answers, for one revocation pass over a secret, whether its replaced credentials' readers have
// moved on: one audit-log query per pass, made when the first entry asks.
type usage struct {
	e             *Engine
	vault, secret string
	pending       []Pending
	loaded        bool
	reads         []Read
	err           error
}

// usageCheck returns the pass's check (nil without Config.Usage).
func (e *Engine) usageCheck(vault, secret string, pending []Pending) *usage {
	if e.cfg.Usage == nil {
		return nil
	}
	return &usage{e: e, vault: vault, secret: secret, pending: pending}
}

// replacedAt is when entry p's credential was replaced.
func replacedAt(p Pending, pol Policy) time.Time {
	if !p.Replaced.IsZero() {
		return p.Replaced
	}
	return p.Due.Add(-pol.Grace)
}

// gate says whether pending entry i must wait for readers that have not moved (wait), who they are,
// and a note when the audit log could not be read. At the maximum grace it never waits: lag and note
// then say what the revocation goes ahead despite.
func (u *usage) gate(ctx context.Context, i int, p Pending, pol Policy, now time.Time) (lag []Read, wait bool, note string) {
	if u == nil {
		return nil, false, ""
	}
	replaced := replacedAt(p, pol)
	if !u.loaded {
		u.loaded = true
		from := replaced
		for _, q := range u.pending {
			if r := replacedAt(q, pol); r.Before(from) {
				from = r
			}
		}
		u.reads, u.err = u.e.cfg.Usage.Reads(ctx, u.vault, u.secret, from.Add(-u.e.cfg.UsageLookback), now)
	}
	atMax := !now.Before(replaced.Add(pol.MaxGrace))
	if u.err != nil {
		return nil, !atMax, "the audit log could not be read: " + u.err.Error()
	}
	// Dead: the version that held this credential and the versions replaced before it.
	var dead []string
	for _, q := range u.pending[:i+1] {
		if q.Version != "" {
			dead = append(dead, q.Version)
		}
	}
	lag = laggards(u.reads, dead, replaced)
	return lag, len(lag) > 0 && !atMax, ""
}

func readerNames(lag []Read) []string {
	var names []string
	for _, r := range lag {
		names = append(names, readerName(r))
	}
	return names
}

func describeLaggards(lag []Read) string {
	var parts []string
	for _, r := range lag {
		s := readerName(r)
		if r.Version != "" {
			s += fmt.Sprintf(" (last read version %s at %s)", r.Version, r.Last.UTC().Format(time.RFC3339))
		} else {
			s += fmt.Sprintf(" (last read at %s)", r.Last.UTC().Format(time.RFC3339))
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func waitReason(p Pending, lag []Read, note string, pol Policy) string {
	until := replacedAt(p, pol).Add(pol.MaxGrace).UTC().Format(time.RFC3339)
	if note != "" {
		return fmt.Sprintf("revocation of %s waits: %s (it goes ahead at the maximum grace period, %s)", p.CredentialID, note, until)
	}
	return fmt.Sprintf("revocation of %s waits for %d reader(s) that have not read the new version: %s (at the latest until %s)",
		p.CredentialID, len(lag), describeLaggards(lag), until)
}

func anywayReason(p Pending, lag []Read, note string) string {
	if note != "" {
		return fmt.Sprintf("%s revoked at the maximum grace period although %s", p.CredentialID, note)
	}
	return fmt.Sprintf("%s revoked at the maximum grace period although %d reader(s) had not moved: %s", p.CredentialID, len(lag), describeLaggards(lag))
}

// consumerViews turns a secret's reads into one view per reader: its last read, and whether that was
// of the latest version. The latest version's id comes from the journal when kvrotator wrote it (list
// pages carry none); a read that names no version, or any read when the id is unknown, is current
// when it came after the latest version was created.
func consumerViews(reads []Read, p SecretProperties, st State) []ConsumerView {
	latest := p.Version
	if latest == "" && st.Version != "" && writtenByUs(p, st) {
		latest = st.Version
	}
	by := map[string]*ConsumerView{}
	var order []string
	for _, r := range reads {
		k := readerKey(r)
		cv := by[k]
		if cv == nil {
			cv = &ConsumerView{}
			by[k] = cv
			order = append(order, k)
		}
		if !r.Last.After(cv.Last) {
			continue
		}
		*cv = ConsumerView{Reader: r.Reader, AppID: r.AppID, Address: r.Address, Version: r.Version, Last: r.Last}
		switch {
		case r.Version != "" && latest != "":
			cv.Current = strings.EqualFold(r.Version, latest)
		default:
			cv.Current = !r.Last.Before(p.Created)
		}
	}
	out := make([]ConsumerView, 0, len(order))
	for _, k := range order {
		out = append(out, *by[k])
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Current != out[j].Current {
			return !out[i].Current // who has not moved first
		}
		return out[i].Reader < out[j].Reader
	})
	return out
}
