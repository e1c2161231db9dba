package datadog

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// Error is a failed call to Datadog: the HTTP providers' shared error type. Errors the engine should
// not retry are wrapped with providers.Permanent; find the Error underneath with errors.As. It never
// holds a key or a response body: only Datadog's own short error messages ({"errors":["…"]}),
// sanitized. Its RetryAfter is Retry-After or, when the rate limit is exhausted, X-RateLimit-Reset.
type Error = httpx.Error

// MaxMessageChars is the most characters of Datadog's error messages an Error repeats.
const MaxMessageChars = 300

// retryAfter reads how long to wait from a response: Retry-After (delay-seconds or an HTTP-date, RFC
// 9110 §10.2.3) when present; else, when the rate limit is exhausted (429, or X-RateLimit-Remaining
// 0), Datadog's X-RateLimit-Reset, which is "time in seconds until next reset" (not a date: see
// docs.datadoghq.com/api/latest/rate-limits/, "Rate Limit Headers"). Absent, malformed and zero values
// give 0; at most httpx.MaxRetryAfter.
func retryAfter(status int, h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		return httpx.ParseRetryAfter(v, now, httpx.MaxRetryAfter)
	}
	exhausted := status == http.StatusTooManyRequests || strings.TrimSpace(h.Get("X-RateLimit-Remaining")) == "0"
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" && exhausted {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			if n > int64(httpx.MaxRetryAfter/time.Second) {
				return httpx.MaxRetryAfter
			}
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// messages makes Datadog's error text fit for logs: every occurrence of a key is redacted first (a
// server might echo the key it rejects), then control and format characters become spaces, runs of
// spaces collapse, and the result is cut to MaxMessageChars characters. A message that still quotes a
// piece of a key is withheld altogether.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: "[withheld: it quoted part of a key]"}
