package openai

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		status int
		header []string
		want   time.Duration
	}{
		{"nothing", 429, nil, 0},
		{"milliseconds", 429, []string{"retry-after-ms", "1500"}, 1500 * time.Millisecond},
		{"fractional milliseconds", 429, []string{"retry-after-ms", "0.5"}, 500 * time.Microsecond},
		{"milliseconds win", 429, []string{"retry-after-ms", "250", "Retry-After", "9"}, 250 * time.Millisecond},
		{"bad milliseconds: seconds", 429, []string{"retry-after-ms", "soon", "Retry-After", "9"}, 9 * time.Second},
		{"huge milliseconds", 429, []string{"retry-after-ms", "1e15"}, httpx.MaxRetryAfter},
		{"seconds", 429, []string{"Retry-After", "12"}, 12 * time.Second},
		{"zero", 429, []string{"Retry-After", "0"}, 0},
		{"negative", 429, []string{"Retry-After", "-5"}, 0},
		{"date", 503, []string{"Retry-After", now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"past date", 429, []string{"Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"huge", 429, []string{"Retry-After", "99999999999"}, httpx.MaxRetryAfter},
		{"request limit reset", 429, []string{"x-ratelimit-reset-requests", "6m0s"}, 6 * time.Minute},
		{"reset in milliseconds", 429, []string{"x-ratelimit-reset-requests", "120ms"}, 120 * time.Millisecond},
		{"reset garbage", 429, []string{"x-ratelimit-reset-requests", "tomorrow"}, 0},
		{"reset far", 429, []string{"x-ratelimit-reset-requests", "72h"}, httpx.MaxRetryAfter},
		{"tokens exhausted too", 429, []string{"x-ratelimit-reset-requests", "1s", "x-ratelimit-remaining-tokens", "0", "x-ratelimit-reset-tokens", "20s"}, 20 * time.Second},
		{"tokens left", 429, []string{"x-ratelimit-reset-requests", "1s", "x-ratelimit-remaining-tokens", "10", "x-ratelimit-reset-tokens", "20s"}, time.Second},
		{"reset on a 500", 500, []string{"x-ratelimit-reset-requests", "30s", "x-ratelimit-remaining-requests", "499"}, 0},
		{"reset with nothing remaining", 503, []string{"x-ratelimit-reset-requests", "30s", "x-ratelimit-remaining-requests", "0"}, 30 * time.Second},
		{"Retry-After wins", 429, []string{"Retry-After", "3", "x-ratelimit-reset-requests", "1h"}, 3 * time.Second},
	} {
		h := http.Header{}
		for i := 0; i+1 < len(tc.header); i += 2 {
			h.Set(tc.header[i], tc.header[i+1])
		}
		if got := retryAfter(tc.status, h, now); got != tc.want {
			t.Errorf("%s: retryAfter = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestErrorDetails(t *testing.T) {
	for _, tc := range []struct {
		body string
		want httpx.Details
	}{
		{`{"error":{"message":"m","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`,
			httpx.Details{Code: "invalid_api_key", SubCode: "invalid_request_error", Message: "m"}},
		{`{"error":{"message":"m","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`, httpx.Details{Code: "insufficient_quota", Message: "m"}},
		{`{"error":{"message":"m","type":"server_error","param":null,"code":null}}`, httpx.Details{Code: "server_error", Message: "m"}},
		{`{"error":{"message":"m","code":429}}`, httpx.Details{Code: "429", Message: "m"}},
		{`{"error":{"message":["x"],"type":{}}}`, httpx.Details{}},
		{`{"error":"bad"}`, httpx.Details{}},
		{`not json`, httpx.Details{}},
	} {
		if got := errorDetails([]byte(tc.body)); got != tc.want {
			t.Errorf("errorDetails(%s) = %+v, want %+v", tc.body, got, tc.want)
		}
	}
}

func TestOutOfQuota(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		status int
		body   string
		want   bool
	}{
		{429, `{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}`, true},
		{429, `{"error":{"type":"invalid_request_error","code":"credit_balance_exhausted"}}`, true},
		{429, `{"error":{"type":"insufficient_quota","code":null}}`, true},
		{429, `{"error":{"type":"requests","code":"rate_limit_exceeded"}}`, false},
		{400, `{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}`, false},
		{429, `nonsense`, false},
	} {
		if _, got := outOfQuota(&httpx.Response{Status: tc.status, Header: h, Body: []byte(tc.body)}); got != tc.want {
			t.Errorf("outOfQuota(%d %s) = %v", tc.status, tc.body, got)
		}
	}
}

func TestRedactedFits(t *testing.T) {
	value := "sk-svcacct-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789wxyz"
	for _, tc := range []struct {
		redacted string
		want     bool
	}{
		{"sk-svcac...wxyz", true},
		{"sk-...wxyz", true},
		{"sk-svcacct-ABC…9wxyz", true},
		{"sk-svc********wxyz", true},
		{" sk-svcac...wxyz ", true},
		{"sk-svcac...wxyZ", false},   // another key
		{"sk-proj-...wxyz", false},   // another prefix
		{"sk-svcac...xyz", false},    // fewer than four characters shown
		{"svcac...wxyz", false},      // not a key's form
		{"sk-svcacwxyz", false},      // no mask
		{"sk-svcac...", false},       // nothing shown at the end
		{"sk-svcac...wx..yz", false}, // two masks
		{"sk-svcacct-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789...wxyz", false}, // longer than the value
	} {
		if got := redactedFits(tc.redacted, value); got != tc.want {
			t.Errorf("redactedFits(%q) = %v, want %v", tc.redacted, got, tc.want)
		}
	}
	if redactedFits("sk-...wxyz", "") || redactedFits("sk-...wxyz", "sk-wxyz") {
		t.Error("an empty or too short value fits")
	}
}

func TestSecretPart(t *testing.T) {
	for in, want := range map[string]string{
		"sk-admin-abc":   "abc",
		"sk-svcacct-abc": "abc",
		"sk-proj-abc":    "abc",
		"sk-abc":         "abc",
		"abc":            "abc",
	} {
		if got := secretPart(in); got != want {
			t.Errorf("secretPart(%q) = %q, want %q", in, got, want)
		}
	}
	if got := secretsOf("sk-admin-", " sk-svcacct-x ", ""); len(got) != 1 || got[0] != "x" {
		t.Errorf("secretsOf = %q", got)
	}
}

func TestSanitizeMessage(t *testing.T) {
	key := "sk-admin-abcdefghijklmnopqrstuv0123456789ABCDEFGHIJ0123456789"
	secrets := secretsOf(key)
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"  spaced \n\n out\t", "spaced out"},
		{"echo " + key + " here", "echo sk-admin-[redacted] here"},
		{"the public prefix sk-admin- alone", "the public prefix sk-admin- alone"},
		{"as OpenAI shows it: sk-ad****GHIJ", "as OpenAI shows it: sk-ad****GHIJ"},
		{"half " + key[30:50], "[withheld: it quoted part of a key]"},
		{"eight " + key[40:48], "[withheld: it quoted part of a key]"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	} {
		if got := messages.Sanitize(tc.in, secrets...); got != tc.want {
			t.Errorf("messages.Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	// The provider's client names OpenAI, reads its error object, request id and rate-limit headers.
	p := New()
	r := &httpx.Response{Status: 429, Header: http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req_abc"},
		"X-Ratelimit-Reset-Requests": {"31s"}, "X-Ratelimit-Remaining-Requests": {"0"}},
		Body: []byte(`{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)}
	err := p.failure(config{}, call{op: "list service accounts", method: "GET", path: "/v1/organization/projects/proj_x/service_accounts?limit=100"}, r, nil)
	want := `openai list service accounts (GET /v1/organization/projects/proj_x/service_accounts): HTTP 429 rate_limit_exceeded requests: ` +
		`rate-limited by OpenAI; will retry after the rate-limit window: OpenAI says "Rate limit reached for requests" (request id req_abc) (retry after 31s)`
	var e *Error
	if !errors.As(err, &e) || e.Error() != want || e.RetryAfter() != 31*time.Second {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
