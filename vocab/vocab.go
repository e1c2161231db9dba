// Package vocab is kvrotator's shared vocabulary, a leaf package (standard library only) that the
// engine, the providers and the adapters (keyvault, lock, events, consumers) all speak without
// importing one another:
//
//   - Value, a credential value that prints as [redacted];
//   - the error classes: a failure is transient (try again later) unless it is marked permanent
//     (PermanentError, or a ConfigError naming a bad tag), and the one rule for HTTP answers,
//     TransientStatus: 408, 429 and every 5xx are worth retrying, every other failure status is not;
//   - the retry contract: an error that knows when to try again implements RetryAfterer (HTTP 429/503
//     with Retry-After); the engine waits that long (bounded) before its next attempt;
//   - the tag names that more than one package reads (TagProvider, TagCredentialID, TagAddress).
//
// Package providers re-exports the values and errors under their historical names.
package vocab

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Tags read by the engine and by providers. Azure's rotation samples introduced CredentialId and
// ProviderAddress; kvrotator keeps their names so that those secrets work unchanged.
const (
	TagProvider     = "rotation-provider" // opt-in: the provider's name
	TagCredentialID = "CredentialId"      // the slot, user or key id the current value belongs to
	TagAddress      = "ProviderAddress"   // ARM resource id, host, account
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

// PermanentError marks a failure that retrying cannot fix (forbidden, rejected, not found). Errors not
// marked permanent are transient.
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

// JoinErrors returns nil for no errors, the error itself for one (so that errors.As and messages stay
// simple), and errors.Join for several.
func JoinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// TransientStatus is the one rule for HTTP failures: 408 Request Timeout, 429 Too Many Requests and
// every 5xx may succeed later; any other failure status will not.
func TransientStatus(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// ByStatus classifies err, the failure of a call answered with status: permanent unless the status is
// transient (TransientStatus). A nil err stays nil.
func ByStatus(status int, err error) error {
	if err == nil || TransientStatus(status) {
		return err
	}
	return Permanent(err)
}

// RetryAfterer is implemented by errors that say when to try again (an HTTP 429 or 503 with
// Retry-After). A provider whose error implements it gets its next attempt no sooner than that (the
// engine bounds the wait); an error without it is retried with the engine's back-off.
type RetryAfterer interface{ RetryAfter() time.Duration }

// RetryAfter returns the wait an error in err's chain asks for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var ra RetryAfterer
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return ra.RetryAfter(), true
	}
	return 0, false
}
