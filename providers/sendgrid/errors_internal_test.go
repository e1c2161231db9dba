package sendgrid

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	for _, tc := range []struct {
		name   string
		status int
		header []string
		want   time.Duration
	}{
		{"nothing", 429, nil, 0},
		{"seconds", 429, []string{"Retry-After", "12"}, 12 * time.Second},
		{"zero", 429, []string{"Retry-After", "0"}, 0},
		{"negative", 429, []string{"Retry-After", "-5"}, 0},
		{"date", 429, []string{"Retry-After", now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"past date", 429, []string{"Retry-After", now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"garbage", 429, []string{"Retry-After", "soon"}, 0},
		{"huge", 429, []string{"Retry-After", "99999999999"}, httpx.MaxRetryAfter},
		{"rate-limit reset", 429, []string{"X-RateLimit-Reset", unix(30 * time.Second)}, 31 * time.Second},
		{"rate-limit reset passed", 429, []string{"X-RateLimit-Reset", unix(-time.Second)}, 0},
		{"rate-limit reset garbage", 429, []string{"X-RateLimit-Reset", "tomorrow"}, 0},
		{"rate-limit reset far", 429, []string{"X-RateLimit-Reset", unix(72 * time.Hour)}, httpx.MaxRetryAfter},
		{"reset on a 500", 500, []string{"X-RateLimit-Reset", unix(30 * time.Second), "X-RateLimit-Remaining", "599"}, 0},
		{"reset with nothing remaining", 503, []string{"X-RateLimit-Reset", unix(30 * time.Second), "X-RateLimit-Remaining", "0"}, 31 * time.Second},
		{"Retry-After on a 503", 503, []string{"Retry-After", "4"}, 4 * time.Second},
		{"Retry-After wins", 429, []string{"Retry-After", "3", "X-RateLimit-Reset", unix(time.Hour)}, 3 * time.Second},
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

func TestSanitizeMessage(t *testing.T) {
	key := "SG.abcdefghijklmnopqrstuv.0123456789ABCDEFGHIJ0123456789abcdefghijk"
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"  spaced \n\n out\t", "spaced out"},
		{"echo " + key + " here", "echo [redacted] here"},
		{"half " + key[30:50], "[withheld: it quoted part of a key]"},
		{"eight " + key[40:48], "[withheld: it quoted part of a key]"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	} {
		if got := messages.Sanitize(tc.in, key, ""); got != tc.want {
			t.Errorf("messages.Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	// The provider's client names SendGrid, reads its error list and its rate-limit headers.
	p := New(WithClock(func() time.Time { return time.Unix(1_800_000_000, 0) }))
	r := &httpx.Response{Status: 429, Header: http.Header{"Content-Type": {"application/json"}, "X-Ratelimit-Reset": {"1800000030"}},
		Body: []byte(`{"errors":[{"field":null,"message":"too many requests"},{"field":"name","message":"and more"}]}`)}
	err := p.http.Fail(httpx.Request{Op: "create key", Method: "POST", URL: "https://api.sendgrid.com/v3/api_keys?x=1"}, r, defaultVerdict(config{}, 429))
	want := `sendgrid create key (POST https://api.sendgrid.com/v3/api_keys): HTTP 429: rate-limited by SendGrid; will retry after the rate-limit window: SendGrid says "too many requests; name: and more" (retry after 31s)`
	var e *Error
	if !errors.As(err, &e) || e.Error() != want || e.RetryAfter() != 31*time.Second {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
