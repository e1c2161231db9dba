package sendgrid

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// Error is a failed call to SendGrid: the HTTP providers' shared error type. Errors the engine should
// not retry are wrapped with providers.Permanent; find the Error underneath with errors.As. It never
// holds an API key or a response body: only SendGrid's own short error messages ({"errors":[{"field",
// "message"}]} as "field: message; …"), sanitized. Its RetryAfter is Retry-After or X-RateLimit-Reset.
type Error = httpx.Error

// MaxMessageChars is the most characters of SendGrid's error messages an Error repeats.
const MaxMessageChars = 300

// retryAfter reads how long to wait from a response: Retry-After (delay-seconds or an HTTP-date, RFC
// 9110 §10.2.3) when present; else, when the rate limit is exhausted (429, or X-RateLimit-Remaining 0),
// SendGrid's X-RateLimit-Reset, the unix second at which the window refreshes. SendGrid sends the
// X-RateLimit-* headers on every answer: on a 500 the reset time says nothing about when to retry.
// Absent, malformed and past values give 0; at most httpx.MaxRetryAfter.
func retryAfter(status int, h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		return httpx.ParseRetryAfter(v, now, httpx.MaxRetryAfter)
	}
	exhausted := status == http.StatusTooManyRequests || strings.TrimSpace(h.Get("X-RateLimit-Remaining")) == "0"
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" && exhausted {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if t := time.Unix(n, 0); t.After(now) {
				// Round up: the window refreshes at the start of that second, not before.
				return min(t.Sub(now).Truncate(time.Second)+time.Second, httpx.MaxRetryAfter)
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
