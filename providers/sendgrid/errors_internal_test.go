package sendgrid

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"
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
		{"huge", 429, []string{"Retry-After", "99999999999"}, maxRetryAfter},
		{"rate-limit reset", 429, []string{"X-RateLimit-Reset", unix(30 * time.Second)}, 31 * time.Second},
		{"rate-limit reset passed", 429, []string{"X-RateLimit-Reset", unix(-time.Second)}, 0},
		{"rate-limit reset garbage", 429, []string{"X-RateLimit-Reset", "tomorrow"}, 0},
		{"rate-limit reset far", 429, []string{"X-RateLimit-Reset", unix(72 * time.Hour)}, maxRetryAfter},
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
	cause := errors.New("connection refused")
	e := &Error{Op: "create key", Method: "POST", URL: "https://api.sendgrid.com/v3/api_keys", Status: 429,
		Reason: "rate-limited", Message: "too many requests", Retry: 30 * time.Second, Err: cause}
	want := `sendgrid create key (POST https://api.sendgrid.com/v3/api_keys): HTTP 429: rate-limited: SendGrid says "too many requests": connection refused (retry after 30s)`
	if e.Error() != want {
		t.Errorf("Error() = %s\nwant      %s", e.Error(), want)
	}
	if !errors.Is(e, cause) || e.RetryAfter() != 30*time.Second {
		t.Error("Unwrap or RetryAfter")
	}
}
