package openai

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// Error is a failed call to OpenAI: the HTTP providers' shared error type. Errors the engine should not
// retry are wrapped with providers.Permanent; find the Error underneath with errors.As. It never holds
// an API key or a response body: only OpenAI's own error message and code ({"error":{"message","type",
// "param","code"}}), sanitized, and the x-request-id of the answer. Its RetryAfter is retry-after-ms,
// Retry-After or, when a rate limit is exhausted, x-ratelimit-reset-requests / -tokens.
type Error = httpx.Error

// MaxMessageChars is the most characters of OpenAI's error messages an Error repeats.
const MaxMessageChars = 300

// requestIDHeader is the header in which OpenAI names each request, for a support case.
const requestIDHeader = "x-request-id"

// retryAfter reads how long to wait from a response, in the order OpenAI's own SDKs read it:
// retry-after-ms (milliseconds), then Retry-After (delay-seconds or an HTTP-date, RFC 9110 §10.2.3);
// else, when a rate limit is exhausted (a 429, or x-ratelimit-remaining-requests / -tokens at 0), the
// longest of x-ratelimit-reset-requests and x-ratelimit-reset-tokens, durations such as "1s", "6m0s" or
// "12ms" ("the time until the rate limit resets to its initial state"). Absent, malformed, negative
// and zero values give 0; at most httpx.MaxRetryAfter.
func retryAfter(status int, h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			if ms >= float64(httpx.MaxRetryAfter/time.Millisecond) {
				return httpx.MaxRetryAfter
			}
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if d := httpx.ParseRetryAfter(v, now, httpx.MaxRetryAfter); d > 0 {
			return d
		}
	}
	var wait time.Duration
	for _, dim := range []string{"requests", "tokens"} {
		exhausted := strings.TrimSpace(h.Get("x-ratelimit-remaining-"+dim)) == "0" ||
			(status == http.StatusTooManyRequests && dim == "requests")
		if !exhausted {
			continue
		}
		if d, err := time.ParseDuration(strings.TrimSpace(h.Get("x-ratelimit-reset-" + dim))); err == nil && d > wait {
			wait = d
		}
	}
	return min(wait, httpx.MaxRetryAfter)
}

// apiError is OpenAI's error body: {"error":{"message","type","param","code"}}. code is a string or
// null; type names the error's class ("invalid_request_error", "insufficient_quota", …).
type apiError struct {
	Error *struct {
		Message any `json:"message"`
		Type    any `json:"type"`
		Code    any `json:"code"`
	} `json:"error"`
}

// parseError reads an error body; the strings are empty when absent or not strings.
func parseError(body []byte) (message, typ, code string) {
	var b apiError
	if json.Unmarshal(body, &b) != nil || b.Error == nil {
		return "", "", ""
	}
	message, _ = b.Error.Message.(string)
	typ, _ = b.Error.Type.(string)
	switch c := b.Error.Code.(type) {
	case string:
		code = c
	case float64:
		code = strconv.FormatFloat(c, 'f', -1, 64)
	}
	return message, typ, code
}

// errorDetails is what an OpenAI error body says (httpx sanitizes it): the error code, or its type
// when there is no code, and the message.
func errorDetails(body []byte) httpx.Details {
	message, typ, code := parseError(body)
	if code == "" {
		code = typ
	} else if typ != "" && typ != code {
		return httpx.Details{Code: code, SubCode: typ, Message: message}
	}
	return httpx.Details{Code: code, Message: message}
}

// quotaCodes are the codes and types of a 429 that no wait cures: the organization has no credit left
// or the project is over its spend limit. A person must act.
var quotaCodes = []string{"insufficient_quota", "credit_balance_exhausted", "project_spend_limit_exceeded", "billing_hard_limit_reached"}

// outOfQuota reports whether a response is a 429 that says the quota, not the rate, is exhausted, and
// the code that says so.
func outOfQuota(r *httpx.Response) (string, bool) {
	if r.Status != http.StatusTooManyRequests || r.JSONProblem() != "" {
		return "", false
	}
	_, typ, code := parseError(r.Body)
	for _, q := range quotaCodes {
		if code == q || typ == q {
			return q, true
		}
	}
	return "", false
}

// messages makes OpenAI's error text fit for logs: every occurrence of a secret is redacted first (a
// server might echo the key it rejects; OpenAI itself quotes a key's first and last characters), then
// control and format characters become spaces, runs of spaces collapse, and the result is cut to
// MaxMessageChars characters. A message that still quotes a piece of a secret is withheld altogether.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: "[withheld: it quoted part of a key]"}

// keyPrefixes are the public prefixes of OpenAI's keys. They are the same for every key, so they are
// not secret: secretPart strips them, or every message quoting "sk-admin-…" would be withheld.
var keyPrefixes = []string{"sk-admin-", "sk-svcacct-", "sk-proj-", "sk-None-", "sk-"}

// secretPart is a key without its public prefix: what must never appear in an error.
func secretPart(key string) string {
	for _, p := range keyPrefixes {
		if rest, ok := strings.CutPrefix(key, p); ok {
			return rest
		}
	}
	return key
}

// secretsOf are the secret parts of the keys a call carries or might be echoed, for redaction.
func secretsOf(keys ...string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if s := secretPart(strings.TrimSpace(k)); s != "" {
			out = append(out, s)
		}
	}
	return out
}
