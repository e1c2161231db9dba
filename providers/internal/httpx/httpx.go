// Package httpx holds the HTTP plumbing that kvrotator's providers share: reading Retry-After,
// sanitizing what a service says back, checking a configured base URL, reading a bounded response,
// classifying a failure to get one, a client that never follows redirects, and the common tail of a
// provider error's text.
//
// It is internal to providers/: each provider keeps its own exported API, error type and wording, and
// uses these pieces underneath. Nothing here knows a provider, imports one, or decides whether an error
// is permanent for the engine: it reports facts (permanent or not, which rule a URL breaks), and the
// provider wraps them in its own types.
package httpx

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3),
// at most max. Absent, malformed, zero, negative and past values give 0.
func ParseRetryAfter(v string, now time.Time, max time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		switch {
		case n <= 0:
			return 0
		case n > int64(max/time.Second):
			return max
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now).Round(time.Second), max)
	}
	return 0
}

// Retryable reports whether an HTTP status says the same request may succeed later: 408 Request
// Timeout, 429 Too Many Requests and every 5xx.
func Retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// NoRedirect is an http.Client CheckRedirect that follows no redirect: the 3xx itself is the response.
// A provider's credential goes to the configured URL or nowhere.
func NoRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// WithoutRedirects returns a copy of c whose CheckRedirect is NoRedirect, whatever c's was; c itself is
// not changed. A nil c gives a new client with net/http's default transport.
func WithoutRedirects(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{CheckRedirect: NoRedirect}
	}
	cc := *c
	cc.CheckRedirect = NoRedirect
	return &cc
}
