// Package rotation is kvrotator's core: the policy a secret carries in its tags, the rotation protocol
// (provider create → verify → new vault version → deferred revocation), and the sweep that finds what
// is due. It depends only on small interfaces — Vault, Locker, Publisher, Clock and the providers
// contract — never on an Azure SDK; adapters (keyvault, lock, events, handler) plug Azure in.
package rotation

import (
	"context"
	"errors"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

// SecretProperties describe one version of a secret, without its value.
type SecretProperties struct {
	Vault       string
	Name        string
	Version     string
	Enabled     bool
	NotBefore   *time.Time
	Expires     *time.Time
	Created     time.Time
	Updated     time.Time
	ContentType string
	Tags        map[string]string
}

// Secret is a version with its value.
type Secret struct {
	SecretProperties
	Value providers.Value
}

// NewVersion is what the engine writes as a secret's new version.
type NewVersion struct {
	Value       providers.Value
	ContentType string
	Tags        map[string]string
	NotBefore   time.Time
	Expires     time.Time
}

// Vault is the engine's view of one Key Vault. Errors that are ErrNotFound (via errors.Is) mean the
// secret or version does not exist; adapters mark the others with vocab.Permanent unless their status is
// transient (vocab.TransientStatus).
type Vault interface {
	// Name is the vault name ("myvault").
	Name() string
	// Get returns a version with its value; version "" is the latest.
	Get(ctx context.Context, name, version string) (Secret, error)
	// List calls fn with the latest version's properties of every secret, one list page at a time
	// (25 per page, no per-secret GET). Version may be empty: Key Vault's list items carry none.
	List(ctx context.Context, fn func(SecretProperties) error) error
	// Set writes a new version and returns its properties.
	Set(ctx context.Context, name string, v NewVersion) (SecretProperties, error)
	// UpdateTags replaces the tags of an existing version (no new version is created).
	UpdateTags(ctx context.Context, name, version string, tags map[string]string) (SecretProperties, error)
	// Disable disables a version: Key Vault keeps it, but reading it answers 403 (SecretDisabled,
	// ErrDisabled). Disabling a disabled version succeeds.
	Disable(ctx context.Context, name, version string) error
}

// ErrNotFound is returned (wrapped) by a Vault for a missing secret or version.
var ErrNotFound = errors.New("not found")

// ErrDisabled is returned (wrapped) by a Vault's Get for a disabled version.
var ErrDisabled = errors.New("the version is disabled")

// Locker serialises rotations of one secret across instances.
type Locker interface {
	// Lock takes the lock for key or fails with ErrBusy when another holder has it. The returned
	// context is cancelled if the lock is lost; unlock releases it.
	Lock(ctx context.Context, key string) (held context.Context, unlock func(), err error)
}

// ErrBusy means another instance is rotating the secret; the trigger should come back later.
var ErrBusy = errors.New("another rotation of this secret is in progress")

// Publisher sends outcome events to downstream systems. Failures are logged, never fail a rotation.
type Publisher interface {
	Publish(ctx context.Context, o Outcome) error
}

// Clock tells the time; tests drive it.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Trigger says what started a rotation.
type Trigger string

// The triggers.
const (
	TriggerEvent  Trigger = "event"  // Event Grid: SecretNearExpiry / SecretExpired
	TriggerTimer  Trigger = "timer"  // the scheduled sweep
	TriggerManual Trigger = "manual" // HTTP or the CLI
)

// Kind is an outcome's kind.
type Kind string

// Outcome kinds.
const (
	KindRotated Kind = "rotated" // a new version was written
	KindSkipped Kind = "skipped" // nothing to do (see Reason)
	KindFailed  Kind = "failed"  // see Class and Reason
	KindRevoked Kind = "revoked" // a previous credential was revoked after its grace period
	KindOverdue Kind = "overdue" // reported by the sweep: expired, past its rotation point, or failing
	KindPlanned Kind = "planned" // dry run: what would happen
	// KindRefreshed and KindRefreshFailed follow a rotation, one per consumer bound to the secret
	// (Outcome.Consumer): it was (not) asked to pick up the new version. A failed refresh never fails
	// the rotation.
	KindRefreshed     Kind = "refreshed"
	KindRefreshFailed Kind = "refresh-failed"
	// KindEmergency reports a leak response (Engine.Leak): where the leaked value was found and what
	// was done (rotations, revocations without grace), or would be done in a dry run.
	KindEmergency Kind = "emergency"
)

// Class classifies a failure once, for every trigger.
type Class string

// Failure classes.
const (
	ClassTransient Class = "transient" // retry: the Event Grid invocation fails so Event Grid redelivers
	ClassPermanent Class = "permanent" // bad policy, forbidden, provider says no: report, acknowledge, do not loop
)

// Outcome is the result of handling one secret. It never carries a value.
type Outcome struct {
	Kind       Kind       `json:"outcome"`
	Vault      string     `json:"vault"`
	Secret     string     `json:"secret"`
	OldVersion string     `json:"oldVersion,omitempty"`
	NewVersion string     `json:"newVersion,omitempty"`
	Provider   string     `json:"provider,omitempty"`
	Trigger    Trigger    `json:"trigger,omitempty"`
	Reason     string     `json:"reason,omitempty"`
	Class      Class      `json:"class,omitempty"`
	Expires    *time.Time `json:"expires,omitempty"`
	DryRun     bool       `json:"dryRun,omitempty"`
	DurationMS int64      `json:"durationMs,omitempty"`
	// NextAt is when the secret will be acted on next, for outcomes that defer (outside the window,
	// minimum interval, back-off, back-to-back guard).
	NextAt *time.Time `json:"nextAt,omitempty"`
	// Conflict: refused because it would reset a slot or login still in use (HTTP 409).
	Conflict bool `json:"conflict,omitempty"`
	// Consumer names the consumer of a refreshed / refresh-failed outcome.
	Consumer string `json:"consumer,omitempty"`
	// Laggards are the readers (Key Vault's audit log) that had not moved to the new version when a
	// revocation waited for them or, at the maximum grace, went ahead anyway.
	Laggards []Read `json:"laggards,omitempty"`
	// Followups are the outcomes that came of this one (a rotation's consumer refreshes), already
	// published; callers log them after it.
	Followups []Outcome `json:"-"`
	Err       error     `json:"-"`
}

// Failed reports whether the outcome is a failure, and Transient whether it should be retried.
func (o Outcome) Failed() bool { return o.Kind == KindFailed }

// Transient reports whether the outcome is a failure worth retrying.
func (o Outcome) Transient() bool { return o.Kind == KindFailed && o.Class == ClassTransient }

// Event is a Key Vault event, decoded and validated by the adapter that received it.
type Event struct {
	ID      string // the Event Grid event id (for logs and de-duplication)
	Type    string // full type, e.g. "Microsoft.KeyVault.SecretNearExpiry"
	Vault   string // VaultName from the event data
	Secret  string // ObjectName
	Version string // Version the event is about
}

// Key Vault event types the engine knows.
const (
	EventNearExpiry = "Microsoft.KeyVault.SecretNearExpiry"
	EventExpired    = "Microsoft.KeyVault.SecretExpired"
	EventNewVersion = "Microsoft.KeyVault.SecretNewVersionCreated"
)

// Request asks for one secret's rotation.
type Request struct {
	Vault   string
	Secret  string
	Version string // the version the trigger is about; "" = whatever is latest
	Trigger Trigger
	DryRun  bool // say what would happen, change nothing
	Force   bool // rotate even if not due (manual rotation)
	// Override lifts the rotation window, the minimum interval and the back-to-back guard: for
	// emergencies, knowing that consumers of the previous version's slot or login break.
	Override bool
}

// SweepReport is the result of a sweep over every configured vault.
type SweepReport struct {
	Scanned  int       `json:"scanned"`  // secrets listed
	Managed  int       `json:"managed"`  // with a rotation-provider tag
	Outcomes []Outcome `json:"outcomes"` // one per secret acted on or reported (rotated, revoked, failed, overdue, planned)
}

// Failed counts the failed outcomes, and TransientFailures those worth retrying.
func (r SweepReport) Failed() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Failed() {
			n++
		}
	}
	return n
}
