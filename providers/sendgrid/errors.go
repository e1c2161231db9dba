package sendgrid

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// Error is a failed call to SendGrid. Errors the engine should not retry are wrapped with
// providers.Permanent; find the Error underneath with errors.As. It never holds an API key or a response
// body: only SendGrid's own short error messages, sanitized.
type Error struct {
	Op     string // what kvrotator was doing: "list keys", "read key", "delete key", "create key", "verify"
	Method string // the HTTP method
	URL    string // the URL called (base URL and path: configuration and key ids, never a key)
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Reason says what went wrong, in kvrotator's words.
	Reason string
	// Message is SendGrid's error list ({"errors":[{"field","message"}]}) as "field: message; …":
	// control characters removed, keys redacted, at most MaxMessageChars characters. Empty if none.
	Message string
	// Retry is how long SendGrid asked callers to wait (Retry-After, or X-RateLimit-Reset minus now);
	// 0 when it did not say.
	Retry time.Duration
	// Err is the cause, if any: a timeout, a connection error, a cancelled context.
	Err error
}

// MaxMessageChars is the most characters of SendGrid's error messages an Error repeats.
const MaxMessageChars = 300

func (e *Error) Error() string {
	var b httpx.ErrorText
	fmt.Fprintf(&b, "sendgrid %s (%s %s)", e.Op, e.Method, e.URL)
	b.Status(e.Status)
	b.Reason(e.Reason)
	b.Says("SendGrid", e.Message)
	b.Cause(e.Err)
	b.Retry(e.Retry)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long SendGrid asked callers to wait before trying again; 0 when it did not say. The
// engine uses it to delay the retry of a transient failure (a 429 in particular).
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// maxRetryAfter caps what a server can ask for; anything longer is probably a mistake.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads how long to wait from a response: Retry-After (delay-seconds or an HTTP-date, RFC
// 9110 §10.2.3) when present; else, when the rate limit is exhausted (429, or X-RateLimit-Remaining 0),
// SendGrid's X-RateLimit-Reset, the unix second at which the window refreshes. SendGrid sends the
// X-RateLimit-* headers on every answer: on a 500 the reset time says nothing about when to retry.
// Absent, malformed and past values give 0.
func retryAfter(status int, h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		return httpx.ParseRetryAfter(v, now, maxRetryAfter)
	}
	exhausted := status == http.StatusTooManyRequests || strings.TrimSpace(h.Get("X-RateLimit-Remaining")) == "0"
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" && exhausted {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if t := time.Unix(n, 0); t.After(now) {
				// Round up: the window refreshes at the start of that second, not before.
				return min(t.Sub(now).Truncate(time.Second)+time.Second, maxRetryAfter)
			}
		}
	}
	return 0
}

// messages makes SendGrid's error text fit for logs: every occurrence of a secret is redacted first
// (a server might echo the key it rejects), then control and format characters become spaces, runs
// of spaces collapse, and the result is cut to MaxMessageChars characters. A message that still quotes
// a piece of a secret is withheld altogether.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: "[withheld: it quoted part of a key]"}
