package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

func TestSanitizeMessage(t *testing.T) {
	const secret = "s3cr3t-VALUE-abcdefghij"
	tests := []struct {
		name, in, want string
	}{
		{"plain", "quota exceeded", "quota exceeded"},
		{"empty", "", ""},
		{"only spaces", " \n\t ", ""},
		{"spaces collapse and trim", "  a \n\n b\t\tc  ", "a b c"},
		{"control characters", "a\x00b\x1b[0mc\x7fd", "a b [0mc d"},
		{"format characters (bidi override)", "abc\u202edef", "abc def"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"whole secret redacted", "got " + secret + " twice: " + secret, "got [redacted] twice: [redacted]"},
		{"piece of a secret withheld", "got " + secret[3:18], "[withheld: it quoted part of a secret]"},
		{"8-byte piece of a secret withheld", "got " + secret[10:18], "[withheld: it quoted part of a secret]"},
		{"short words are not pieces", "VALUE and s3cr3t", "VALUE and s3cr3t"},
		{"exactly the limit", strings.Repeat("x", MaxMessageChars), strings.Repeat("x", MaxMessageChars)},
		{"over the limit", strings.Repeat("x", MaxMessageChars+1), strings.Repeat("x", MaxMessageChars-1) + "…"},
		{"multi-byte over the limit", strings.Repeat("ü", 1000), strings.Repeat("ü", MaxMessageChars-1) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := messages.Sanitize(tt.in, secret, "")
			if got != tt.want {
				t.Errorf("messages.Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > MaxMessageChars {
				t.Errorf("%d characters, more than %d", n, MaxMessageChars)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	// The provider's client names the provider and the service, reads the "error" field and
	// Retry-After.
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	p := New(WithClock(func() time.Time { return now }))
	r := &httpx.Response{Status: 503, Header: http.Header{"Content-Type": {"application/json"}, "Retry-After": {now.Add(2 * time.Second).Format(http.TimeFormat)}},
		Body: []byte(`{"error":"try later"}`)}
	err := p.http.Fail(httpx.Request{Op: "create", Method: "POST", URL: "https://svc/create"}, r, verdict(503, []int{200}))
	want := `webhook create (POST https://svc/create): HTTP 503: the service is unavailable or busy; will retry: the service says "try later" (retry after 2s)`
	var e *Error
	if !errors.As(err, &e) || e.Error() != want || e.RetryAfter() != 2*time.Second {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
