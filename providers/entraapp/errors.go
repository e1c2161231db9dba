package entraapp

import (
	"fmt"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// Error is a failed call to Microsoft Graph or to the Entra ID token endpoint. Errors the engine should
// not retry are wrapped with providers.Permanent; find the Error underneath with errors.As. It never
// holds a client secret, an access token or a response body: only the service's own error code and
// short message, sanitized.
type Error struct {
	Op     string // what was attempted: "read application", "addPassword", "removePassword", "verify"
	Method string // HTTP method
	URL    string // the URL called, without the query
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Code is Graph's error code (Authorization_RequestDenied, Request_ResourceNotFound, …) or the
	// token endpoint's OAuth error (invalid_client, …).
	Code string
	// AADSTS is the token endpoint's error number (7000215: invalid client secret); 0 when none.
	AADSTS int
	// Message is the service's message: control characters removed, secrets redacted, at most
	// MaxMessageChars characters. Empty when there was none.
	Message string
	// RequestID is Graph's request-id or the token endpoint's trace id, for a support case.
	RequestID string
	// Reason says what went wrong and what to do, in kvrotator's words.
	Reason string
	// Retry is the service's Retry-After, or how long to wait before a retry can see what a lost
	// request may have done; 0 when neither applies.
	Retry time.Duration
	// Err is the cause, if any: a timeout, a connection error, a cancelled context.
	Err error

	sent bool // the request was handed to the transport: the service may have acted on it
}

// MaxMessageChars is the most characters of a service's error message an Error repeats.
const MaxMessageChars = 200

func (e *Error) Error() string {
	var b httpx.ErrorText
	fmt.Fprintf(&b, "%s %s (%s %s)", Name, e.Op, e.Method, e.URL)
	b.Status(e.Status)
	b.Code(e.Code)
	if e.AADSTS != 0 {
		fmt.Fprintf(&b, " AADSTS%d", e.AADSTS)
	}
	b.Reason(e.Reason)
	b.Says("service", e.Message)
	b.Cause(e.Err)
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	b.Retry(e.Retry)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long to wait before trying again: Graph's or the token endpoint's Retry-After on
// 429 and 503, or the replication delay after an addPassword whose outcome is unknown. 0 when there
// is nothing to wait for. The engine uses it to delay the retry of a transient failure.
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// maxRetryAfter caps what a service can ask for; anything longer is probably a mistake.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
// Absent, malformed or past values give 0.
func parseRetryAfter(h string, now time.Time) time.Duration {
	return httpx.ParseRetryAfter(h, now, maxRetryAfter)
}

// messages makes what a service says fit for logs: every occurrence of a secret is redacted first,
// then control and format characters become spaces, runs of spaces collapse, and the result is cut
// to MaxMessageChars characters. A message that still quotes a piece of a secret is withheld.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: httpx.WithheldSecret}
