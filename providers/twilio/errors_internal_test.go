package twilio

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

func TestErrorText(t *testing.T) {
	p := New(WithClock(func() time.Time { return time.Unix(1_800_000_000, 0) }))
	r := &httpx.Response{Status: 429, Header: http.Header{"Content-Type": {"application/json"}, "Retry-After": {"4"}, "Twilio-Request-Id": {"RQ0123"}},
		Body: []byte(`{"code":20429,"message":"Too Many Requests","more_info":"https://www.twilio.com/docs/errors/20429","status":429}`)}
	cfg := config{iam: DefaultIAMURL, api: DefaultAPIURL}
	c := call{op: "create key", method: "POST", base: cfg.iam, path: "/v1/Keys"}
	err := p.http.Fail(p.request(c), r, defaultVerdict(cfg, c, 429))
	want := `twilio create key (POST https://iam.twilio.com/v1/Keys): HTTP 429 20429: rate-limited by Twilio; will retry: Twilio says "Too Many Requests" (request id RQ0123) (retry after 4s)`
	var e *Error
	if !errors.As(err, &e) || e.Error() != want || e.RetryAfter() != 4*time.Second {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestSecretParts(t *testing.T) {
	got := secretParts("SK0123456789abcdef0123456789abcdef:s1", "AC0123456789abcdef0123456789abcdef:t1", "plain", "x:y")
	want := []string{"s1", "t1", "plain", "x:y"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("secretParts = %q, want %q", got, want)
		}
	}
}

func TestNextPage(t *testing.T) {
	cfg := config{iam: "https://iam.twilio.com", account: "AC0123456789abcdef0123456789abcdef"}
	if q, why := nextPage(cfg, "https://iam.twilio.com/v1/Keys?AccountSid=AC0123456789abcdef0123456789abcdef&PageSize=1000&Page=1&PageToken=PA1"); why != "" || q.Get("PageToken") != "PA1" {
		t.Errorf("nextPage: %v %q", q, why)
	}
	for _, bad := range []string{
		"https://evil.example.com/v1/Keys?AccountSid=AC0123456789abcdef0123456789abcdef",
		"https://iam.twilio.com/v1/Other?AccountSid=AC0123456789abcdef0123456789abcdef",
		"https://u:p@iam.twilio.com/v1/Keys?AccountSid=AC0123456789abcdef0123456789abcdef",
		"https://iam.twilio.com/v1/Keys?AccountSid=AC99999999999999999999999999999999",
		"http://iam.twilio.com/v1/Keys?AccountSid=AC0123456789abcdef0123456789abcdef",
		"://",
	} {
		if _, why := nextPage(cfg, bad); why == "" {
			t.Errorf("nextPage(%q) accepted it", bad)
		}
	}
}
