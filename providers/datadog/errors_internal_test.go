package datadog

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
		{"seconds", 429, []string{"Retry-After", "12"}, 12 * time.Second},
		{"date", 429, []string{"Retry-After", now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"garbage", 429, []string{"Retry-After", "soon"}, 0},
		{"rate-limit reset (seconds until the reset)", 429, []string{"X-RateLimit-Reset", "30"}, 30 * time.Second},
		{"rate-limit reset zero", 429, []string{"X-RateLimit-Reset", "0"}, 0},
		{"rate-limit reset negative", 429, []string{"X-RateLimit-Reset", "-4"}, 0},
		{"rate-limit reset garbage", 429, []string{"X-RateLimit-Reset", "tomorrow"}, 0},
		{"rate-limit reset huge", 429, []string{"X-RateLimit-Reset", "99999999999"}, httpx.MaxRetryAfter},
		{"reset on a 500 with requests to spare", 500, []string{"X-RateLimit-Reset", "30", "X-RateLimit-Remaining", "59"}, 0},
		{"reset with nothing remaining", 503, []string{"X-RateLimit-Reset", "30", "X-RateLimit-Remaining", "0"}, 30 * time.Second},
		{"Retry-After wins", 429, []string{"Retry-After", "3", "X-RateLimit-Reset", "3600"}, 3 * time.Second},
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

func TestErrorText(t *testing.T) {
	p := New()
	r := &httpx.Response{Status: 429, Header: http.Header{"Content-Type": {"application/json"}, "X-Ratelimit-Reset": {"31"}},
		Body: []byte(`{"errors":["Too many requests"]}`)}
	err := p.http.Fail(httpx.Request{Op: "create key", Method: "POST", URL: "https://api.datadoghq.com/api/v2/api_keys?x=1"}, r, defaultVerdict(config{}, 429))
	want := `datadog create key (POST https://api.datadoghq.com/api/v2/api_keys): HTTP 429: rate-limited by Datadog; will retry after the rate-limit window: Datadog says "Too many requests" (retry after 31s)`
	var e *Error
	if !errors.As(err, &e) || e.Error() != want || e.RetryAfter() != 31*time.Second {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestParseAdmin(t *testing.T) {
	if a, why := parseAdmin(` {"api_key":" k1 ","application_key":"k2"} `); why != "" || a.apiKey != "k1" || a.appKey != "k2" {
		t.Errorf("parseAdmin: %+v %q", a, why)
	}
	for _, bad := range []string{``, `[]`, `{"api_key":"a"}`, `{"api_key":"a","application_key":"b"} {}`, `{"api_key":1,"application_key":"b"}`} {
		if _, why := parseAdmin(bad); why == "" {
			t.Errorf("parseAdmin(%q) accepted it", bad)
		}
	}
}
