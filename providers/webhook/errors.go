package webhook

import (
	"fmt"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// Error is a failed call to the service. Errors the engine should not retry are wrapped with
// providers.Permanent; find the Error underneath with errors.As. It never holds a credential value, the
// signing key or the response body: only the service's own short error message, sanitized.
type Error struct {
	Endpoint string // create, verify or revoke
	URL      string // the URL called (configuration: no user information, no query)
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Reason says what went wrong, in kvrotator's words.
	Reason string
	// Message is the "error" field of the service's JSON error body: control characters removed,
	// secrets redacted, at most MaxMessageChars characters. Empty when there was none.
	Message string
	// Retry is the service's Retry-After; 0 when it sent none.
	Retry time.Duration
	// Err is the cause, if any: a timeout, a connection error, a cancelled context.
	Err error
}

// MaxMessageChars is the most characters of the service's error message an Error repeats.
const MaxMessageChars = 200

func (e *Error) Error() string {
	var b httpx.ErrorText
	fmt.Fprintf(&b, "webhook %s (POST %s)", e.Endpoint, e.URL)
	b.Status(e.Status)
	b.Reason(e.Reason)
	b.Says("service", e.Message)
	b.Cause(e.Err)
	b.Retry(e.Retry)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long the service asked callers to wait before trying again (its Retry-After
// header); 0 when it did not say. The engine may use it to delay the retry of a transient failure.
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// maxRetryAfter caps what a service can ask for; anything longer is probably a mistake.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
// Absent, malformed or past values give 0.
func parseRetryAfter(h string, now time.Time) time.Duration {
	return httpx.ParseRetryAfter(h, now, maxRetryAfter)
}

// messages makes a service's error message fit for logs: every occurrence of a secret is redacted
// first (a service might echo the value it rejects), then control and format characters become
// spaces, runs of spaces collapse, and the result is cut to MaxMessageChars characters. A message that
// still quotes a piece of a secret (a service that shortened what it echoed) is withheld altogether.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: httpx.WithheldSecret}
