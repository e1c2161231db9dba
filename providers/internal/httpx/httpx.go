// Package httpx holds the HTTP plumbing that kvrotator's providers share: one way to make a call
// (Client.Do: the request, a timeout, no redirects, a bounded read, the classification of a failure to
// get an answer) and one error type (Error: provider, operation, method, URL without query, status,
// the service's error codes, reason, the service's sanitized message, its request id, Retry-After,
// whether the request may have reached the service, permanent or not), and the pieces underneath:
// reading Retry-After, sanitizing what a service says back, checking a configured base URL, reading a
// bounded response, and the common text of a provider error.
//
// It is internal to providers/. What a status means stays with each provider: Client.Fail takes the
// provider's Verdict. Nothing here knows a provider or imports one.
package httpx

import (
	"github.com/kvrotator/kvrotator/vocab"
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
func Retryable(status int) bool { return vocab.TransientStatus(status) }

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
