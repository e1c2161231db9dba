package webhook

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-1", 0}, {"x", 0}, {"2.5", 0},
		{"1", time.Second}, {"120", 2 * time.Minute}, {"86401", 24 * time.Hour}, {"9223372036854775807", 24 * time.Hour},
		{"Tue, 03 Nov 2026 12:00:30 GMT", 30 * time.Second},
		{"Tue, 03 Nov 2026 11:59:30 GMT", 0},
		{"Tuesday, 03-Nov-26 12:01:00 GMT", time.Minute}, // RFC 850, which HTTP-date parsers must accept
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Endpoint: "create", URL: "https://svc/create", Status: 503, Reason: "busy", Message: "try later",
		Retry: 2 * time.Second}
	want := `webhook create (POST https://svc/create): HTTP 503: busy: service says "try later" (retry after 2s)`
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	cause := errors.New("connection refused")
	e = &Error{Endpoint: "revoke", URL: "https://svc/revoke", Reason: "no response", Err: cause}
	if want := "webhook revoke (POST https://svc/revoke): no response: connection refused"; e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	if !errors.Is(e, cause) {
		t.Error("Error does not unwrap to its cause")
	}
}
