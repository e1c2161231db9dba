package httpx

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		max  time.Duration
		want time.Duration
	}{
		{"", day, 0},
		{"   ", day, 0},
		{"0", day, 0},
		{"-1", day, 0},
		{"x", day, 0},
		{"2.5", day, 0},
		{"1", day, time.Second},
		{" 120 ", day, 2 * time.Minute},
		{"86401", day, day},
		{"9223372036854775807", day, day},
		{"3601", time.Hour, time.Hour},
		{"Tue, 03 Nov 2026 12:00:30 GMT", day, 30 * time.Second},
		{"Tue, 03 Nov 2026 12:00:00 GMT", day, 0},               // now: not in the future
		{"Tue, 03 Nov 2026 11:59:30 GMT", day, 0},               // past
		{"Tuesday, 03-Nov-26 12:01:00 GMT", day, time.Minute},   // RFC 850, which HTTP-date parsers must accept
		{"Tue Nov  3 12:00:10 2026", day, 10 * time.Second},     // asctime
		{"Thu, 05 Nov 2026 12:00:00 GMT", time.Hour, time.Hour}, // a date beyond the cap
		{"1", 500 * time.Millisecond, 500 * time.Millisecond},
		{"Tue, 03 Nov 2026 12:00:01 GMT", 500 * time.Millisecond, 500 * time.Millisecond}, // a cap under a second
	} {
		if got := ParseRetryAfter(tc.in, now, tc.max); got != tc.want {
			t.Errorf("ParseRetryAfter(%q, max %v) = %v, want %v", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestRetryable(t *testing.T) {
	for status, want := range map[int]bool{
		200: false, 204: false, 301: false, 400: false, 401: false, 403: false, 404: false, 409: false,
		408: true, 429: true, 500: true, 502: true, 503: true, 504: true, 599: true,
	} {
		if got := Retryable(status); got != want {
			t.Errorf("Retryable(%d) = %v, want %v", status, got, want)
		}
	}
}

func TestWithoutRedirects(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed to %s", r.URL)
	}))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()

	follows := func(*http.Request, []*http.Request) error { return nil }
	orig := &http.Client{Timeout: 7 * time.Second, CheckRedirect: follows}
	for name, c := range map[string]*http.Client{"copy": WithoutRedirects(orig), "new": WithoutRedirects(nil)} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasSuffix(resp.Header.Get("Location"), "/elsewhere") {
				t.Fatalf("status %d, Location %q: want the 307 itself", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
	if c := WithoutRedirects(orig); c == orig || c.Timeout != orig.Timeout {
		t.Error("WithoutRedirects does not copy the client's settings into a new client")
	}
	if orig.CheckRedirect == nil || orig.CheckRedirect(nil, nil) != nil {
		t.Error("WithoutRedirects changed the client it was given")
	}
	if err := NoRedirect(nil, nil); !errors.Is(err, http.ErrUseLastResponse) {
		t.Errorf("NoRedirect = %v", err)
	}
}

func TestSanitizer(t *testing.T) {
	const secret = "s3cr3t-VALUE-abcdefghij"
	s := Sanitizer{Max: 20}
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "quota exceeded", "quota exceeded"},
		{"empty", "", ""},
		{"only spaces", " \n\t ", ""},
		{"spaces collapse and trim", "  a \n\n b\t\tc  ", "a b c"},
		{"control characters", "a\x00b\x1b[0mc\x7fd", "a b [0mc d"},
		{"format characters", "abc\u202edef\u200bg", "abc def g"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"whole secret redacted", "got " + secret + "!" + secret, "got [redacted]![red…"},
		{"piece of a secret withheld", "got " + secret[5:13], WithheldSecret},
		{"piece within the limit is withheld", "xxxxxxxxxx " + secret[:8], WithheldSecret},
		{"piece cut off by the limit is not", "xxxxxxxxxxxxxxx " + secret[:8], "xxxxxxxxxxxxxxx s3c…"},
		{"short words are not pieces", "VALUE s3cr3t", "VALUE s3cr3t"},
		{"exactly the limit", strings.Repeat("x", 20), strings.Repeat("x", 20)},
		{"over the limit", strings.Repeat("x", 21), strings.Repeat("x", 19) + "…"},
		{"multi-byte over the limit", strings.Repeat("ü", 100), strings.Repeat("ü", 19) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Sanitize(tc.in, secret, "")
			if got != tc.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if n := utf8.RuneCountInString(got); n > 20 && got != WithheldSecret {
				t.Errorf("%d characters, more than 20", n)
			}
		})
	}
	if got := (Sanitizer{Max: 100, Withheld: "[withheld: it quoted part of a key]"}).Sanitize("half "+secret[2:12], secret); got != "[withheld: it quoted part of a key]" {
		t.Errorf("own withheld text: %q", got)
	}
	if got := (Sanitizer{}).Sanitize(strings.Repeat("y ", 500)); len(got) != 999 {
		t.Errorf("no limit: %d bytes", len(got))
	}
	if got := (Sanitizer{Max: 100}).Sanitize("abc", "b"); got != "a[redacted]c" {
		t.Errorf("a short secret is still redacted: %q", got)
	}
}

func TestRedactCleanQuotes(t *testing.T) {
	if got := Redact("k=abc, again abc", "abc", ""); got != "k=[redacted], again [redacted]" {
		t.Errorf("Redact = %q", got)
	}
	if got := Redact("unchanged"); got != "unchanged" {
		t.Errorf("Redact without secrets = %q", got)
	}
	if got := Clean("a\r\nb", 1); got != "…" {
		t.Errorf("Clean to one character = %q", got)
	}
	if got := Clean("\u00a0x\u2028y\u2029", 0); got != "x y" {
		t.Errorf("Clean of Unicode spaces = %q", got)
	}
	for _, tc := range []struct {
		msg     string
		secrets []string
		want    bool
	}{
		{"has 12345678 in it", []string{"0123456789"}, true},
		{"has 1234567 in it", []string{"0123456789"}, false},
		{"has 1234567 in it", []string{"1234567"}, false}, // shorter than PieceLen: not looked for
		{"anything", []string{""}, false},
		{"anything", nil, false},
	} {
		if got := QuotesPartOf(tc.msg, tc.secrets...); got != tc.want {
			t.Errorf("QuotesPartOf(%q, %q) = %v", tc.msg, tc.secrets, got)
		}
	}
}

func TestErrorText(t *testing.T) {
	var b ErrorText
	b.WriteString("thing create (POST https://svc/create)")
	b.Status(0)
	b.Code("")
	b.Reason("")
	b.Says("service", "")
	b.Cause(nil)
	b.RequestID("")
	b.Retry(0)
	b.Retry(-time.Second)
	if got, want := b.String(), "thing create (POST https://svc/create)"; got != want {
		t.Errorf("empty parts: %q", got)
	}
	b.Status(503)
	b.Code("ServerBusy")
	b.Reason("busy")
	b.Says("Azure", `try "later"`)
	b.Cause(errors.New("connection reset"))
	b.RequestID("r-1")
	b.Retry(2 * time.Second)
	want := `thing create (POST https://svc/create): HTTP 503 ServerBusy: busy: Azure says "try \"later\"": connection reset (request id r-1) (retry after 2s)`
	if b.String() != want {
		t.Errorf("got  %s\nwant %s", b.String(), want)
	}
}
