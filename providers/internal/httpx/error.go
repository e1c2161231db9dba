package httpx

import (
	"fmt"
	"net/url"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

// Error is a failed call to a provider's HTTP API: the one error type of the providers that use
// Client. It never holds a credential, a signing key, an access token or a response body: only what
// the service says about the error (its short message, error codes and request id), sanitized, with
// the call's secrets redacted. A permanent Error reaches the engine
// wrapped with providers.Permanent (Classified); find it underneath with errors.As.
type Error struct {
	Provider string // the provider: "sendgrid", "webhook"
	Service  string // what the text calls the other side: "SendGrid", "the service"
	Op       string // what kvrotator was doing: "create key", "verify", "revoke"
	Method   string // the HTTP method
	// URL is the URL called without its query, fragment or user information: configuration and ids,
	// never a credential.
	URL string
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Code is the service's error code ("Authorization_RequestDenied", "invalid_client"); empty when
	// it sent none.
	Code string
	// SubCode is a finer code the service gives besides Code (Entra ID's "AADSTS7000215"); empty
	// when none.
	SubCode string
	// Reason says what went wrong, in kvrotator's words.
	Reason string
	// Message is the service's own error message: control characters removed, secrets redacted, cut
	// to the provider's limit. Empty when it sent none.
	Message string
	// RequestID is the service's id of the request (a request id, a trace id), for a support case;
	// empty when it sent none.
	RequestID string
	// Retry is how long the service asked callers to wait (Retry-After, or the provider's own
	// rate-limit header), or how long the provider wants the engine to wait; 0 when neither applies.
	Retry time.Duration
	// Sent says the request may have reached the service: it was answered, or handed to the transport
	// and the answer was lost. A provider whose call is not idempotent can tell from it an outcome it
	// cannot know from a request that never left.
	Sent bool
	// Permanent says retrying cannot help: a person must act (a refused key, a contract violation).
	Permanent bool
	// Err is the cause, if any: a timeout, a connection error, a cancelled context.
	Err error
}

func (e *Error) Error() string {
	var b ErrorText
	fmt.Fprintf(&b, "%s %s (%s %s)", e.Provider, e.Op, e.Method, e.URL)
	b.Status(e.Status)
	b.Code(e.Code)
	b.Code(e.SubCode)
	b.Reason(e.Reason)
	b.Says(e.Service, e.Message)
	b.Cause(e.Err)
	b.RequestID(e.RequestID)
	b.Retry(e.Retry)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long the service asked callers to wait before trying again; 0 when it did not
// say. The engine uses it to delay the retry of a transient failure (a 429 in particular).
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// Classified is e as the engine must see it: wrapped with providers.Permanent when e.Permanent, e
// itself (transient: the engine retries) otherwise.
func (e *Error) Classified() error {
	if e.Permanent {
		return providers.Permanent(e)
	}
	return e
}

// MaxRetryAfter caps how long a service can ask kvrotator to wait; anything longer is probably a
// mistake.
const MaxRetryAfter = 24 * time.Hour

// ShownURL is raw as an Error shows it: without query, fragment or user information (a query may hold
// a signature or a token); "(not a URL)" when it does not parse.
func ShownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
