// Package providers is the contract between kvrotator's rotation engine and the services that issue
// credentials, and the registry of providers by name.
//
// A provider knows how to create (or regenerate), verify and revoke one kind of credential. It knows
// nothing about Azure Functions, Key Vault or when to rotate: the engine (package rotation) owns when
// and why, a provider owns how. Every credential shape fits the same four calls:
//
//   - Two slots (Azure Storage, Cosmos DB, …): Create regenerates the slot the current version does
//     not use and returns it with its slot as CredentialID; nothing to revoke later.
//   - Create new, revoke old (SendGrid, Entra app secrets, …): Create makes a credential named after
//     Request.IdempotencyKey (so a retry finds it instead of making a second one); the engine revokes
//     the previous CredentialID after the grace period with Revoke.
//   - Alternating users (PostgreSQL, MySQL, Redis ACL): Create sets the password of the user the current
//     version does not hold; CredentialID is that user.
//   - Generated (random values the application owns): Create returns a fresh value.
//
// Providers register themselves by name from an init function, as database/sql drivers do:
//
//	func init() { providers.Register("random", New()) }
package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Value is a credential value. It prints as [redacted] in logs, errors, %v and JSON; Reveal returns the
// real value for the one place that must send it (the vault write, the provider call).
type Value struct{ v string }

// NewValue wraps s.
func NewValue(s string) Value { return Value{v: s} }

// Reveal returns the value itself.
func (v Value) Reveal() string { return v.v }

// IsZero reports whether the value is empty.
func (v Value) IsZero() bool { return v.v == "" }

// Len is the value's length in bytes (safe to log).
func (v Value) Len() int { return len(v.v) }

const redacted = "[redacted]"

// String implements fmt.Stringer with a redaction.
func (v Value) String() string { return redacted }

// GoString implements fmt.GoStringer with a redaction.
func (v Value) GoString() string { return redacted }

// LogValue implements slog.LogValuer with a redaction.
func (v Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON writes the redaction, never the value.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// Shape is the kind of credential a provider manages; the engine uses it to decide about revocation.
type Shape string

// The credential shapes of DESIGN.md.
const (
	ShapeTwoSlot      Shape = "two-slot"      // regenerate the inactive slot; the old one stays valid, no revocation
	ShapeCreateRevoke Shape = "create-revoke" // create a new credential, revoke the old one after the grace period
	ShapeAlternating  Shape = "alternating"   // set the inactive user's password, flip CredentialId
	ShapeGenerated    Shape = "generated"     // the value is generated; nothing outside the vault to change
)

// Params are the secret's tags, read by name. Tag names are matched case-insensitively, as Azure tag
// names are.
type Params map[string]string

// Get returns the tag's value, "" if absent.
func (p Params) Get(name string) string {
	if v, ok := p[name]; ok {
		return v
	}
	for k, v := range p {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// Int returns the tag as an integer within [min, max], def when absent, or a ConfigError.
func (p Params) Int(name string, def, min, max int) (int, error) {
	s := strings.TrimSpace(p.Get(name))
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, ConfigErrorf(name, s, "not a whole number")
	}
	if n < min || n > max {
		return 0, ConfigErrorf(name, s, "must be between %d and %d", min, max)
	}
	return n, nil
}

// SecretReader reads other secrets of the same vault, e.g. a provider's admin credential named by a tag.
type SecretReader interface {
	SecretValue(ctx context.Context, name string) (Value, error)
}

// Request is what the engine tells a provider about the rotation at hand.
type Request struct {
	Vault   string // vault name
	Secret  string // secret name
	Version string // the version being replaced (the current latest)
	// Current is the value of that version (two-slot providers compare slots with it; webhooks send it).
	Current Value
	// CredentialID is the current version's CredentialId tag: the slot, user or key id it holds.
	CredentialID string
	// Address is the ProviderAddress tag: ARM resource id, host, account.
	Address string
	// Params are all the secret's tags.
	Params Params
	// IdempotencyKey is stable for one source version: deterministic names made from it let a retry find
	// what an interrupted attempt created. Short, lower-case letters, digits and hyphens.
	IdempotencyKey string
	// Secrets reads other secrets of the same vault.
	Secrets SecretReader
	// Now is the engine's clock.
	Now time.Time
}

// Credential is a new credential from Create.
type Credential struct {
	Value Value
	// CredentialID is recorded as the new version's CredentialId tag: the slot, user or key id.
	CredentialID string
	// ExpiresAt, when the issuer fixes a lifetime (Entra app secrets), caps the new version's exp.
	ExpiresAt *time.Time
}

// Provider creates, verifies and revokes one kind of credential. Implementations must be safe for
// concurrent use; errors must never contain a credential value.
type Provider interface {
	// Shape says how the provider's credentials are replaced.
	Shape() Shape
	// Validate checks the provider-specific tags without calling anything; errors are ConfigErrors.
	// The dry run and the plan use it.
	Validate(p Params) error
	// Create issues the new credential. It must be idempotent for one IdempotencyKey: a second call
	// after an interrupted first one finds or replaces what the first made, never leaves two.
	Create(ctx context.Context, req Request) (Credential, error)
	// Verify checks that the credential works (a login, a read-only call). The engine retries it
	// through propagation delays.
	Verify(ctx context.Context, req Request, cred Credential) error
	// Revoke retires the credential identified by credentialID (a previous version's CredentialId).
	// Revoking one that is already gone succeeds. Providers whose shape has nothing to revoke return nil.
	Revoke(ctx context.Context, req Request, credentialID string) error
}

// ConfigError is a bad or missing tag: a permanent failure, reported and not retried.
type ConfigError struct {
	Tag    string
	Value  string // the tag's value (tags hold configuration, never credentials)
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("tag %s: %s", e.Tag, e.Reason)
	}
	return fmt.Sprintf("tag %s=%q: %s", e.Tag, e.Value, e.Reason)
}

// ConfigErrorf builds a ConfigError.
func ConfigErrorf(tag, value, format string, args ...any) *ConfigError {
	return &ConfigError{Tag: tag, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// PermanentError marks a provider failure that retrying cannot fix (forbidden, rejected, not found).
// Errors not marked permanent are treated as transient.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is a ConfigError or a PermanentError.
func IsPermanent(err error) bool {
	var ce *ConfigError
	var pe *PermanentError
	return errors.As(err, &ce) || errors.As(err, &pe)
}

var (
	regMu    sync.RWMutex
	registry = map[string]Provider{}
)

// Register makes a provider available under name (the value of the rotation-provider tag). It panics
// if the name is taken or the provider is nil, as database/sql.Register does.
func Register(name string, p Provider) {
	regMu.Lock()
	defer regMu.Unlock()
	name = strings.ToLower(name)
	if p == nil {
		panic("providers: Register provider is nil")
	}
	if _, dup := registry[name]; dup {
		panic("providers: Register called twice for provider " + name)
	}
	registry[name] = p
}

// Lookup returns the provider registered under name (case-insensitive).
func Lookup(name string) (Provider, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	p, ok := registry[strings.ToLower(strings.TrimSpace(name))]
	return p, ok
}

// Names lists the registered providers, sorted.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckTags reports the provider-specific tags (those starting with prefix, e.g. "random-") that are
// not among known, and known tags set more than once in different letter case (which value wins would
// be arbitrary). Each problem is a ConfigError; providers call it first in Validate so that typos
// such as random-lenght are caught instead of ignored.
func (p Params) CheckTags(provider, prefix string, known ...string) []error {
	var errs []error
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, prefix) && !containsFold(known, lk) {
			errs = append(errs, ConfigErrorf(k, "", "unknown tag; the %s provider reads only %s", provider, strings.Join(known, ", ")))
		}
	}
	for _, tag := range known {
		n := 0
		for _, k := range keys {
			if strings.EqualFold(k, tag) {
				n++
			}
		}
		if n > 1 {
			errs = append(errs, ConfigErrorf(tag, "", "set %d times in different letter case; tag names are case-insensitive, keep one", n))
		}
	}
	return errs
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// JoinErrors returns nil for no errors, the error itself for one (so that errors.As and messages stay
// simple), and errors.Join for several: how Validate reports every tag problem at once.
func JoinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}
