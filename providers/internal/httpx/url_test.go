package httpx

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseBaseURL(t *testing.T) {
	for _, tc := range []struct {
		raw      string
		loopback bool
		want     string
		problem  URLProblem
	}{
		{"https://svc.example.com", true, "https://svc.example.com", 0},
		{"https://svc.example.com/", false, "https://svc.example.com", 0},
		{"https://svc.example.com:8443/base///", true, "https://svc.example.com:8443/base", 0},
		{"HTTPS://Svc.Example.com/Path", false, "https://Svc.Example.com/Path", 0},
		{"http://127.0.0.1:8080/x", true, "http://127.0.0.1:8080/x", 0},
		{"http://LOCALHOST:1", true, "http://LOCALHOST:1", 0},
		{"http://[::1]:9000", true, "http://[::1]:9000", 0},
		{"https://[::1]:9000", false, "https://[::1]:9000", 0},

		{"http://127.0.0.1:8080", false, "", URLScheme},
		{"http://svc.example.com", true, "", URLPlainHTTP},
		{"http://localhost.evil.example", true, "", URLPlainHTTP},
		{"http://svc.example.com", false, "", URLScheme},
		{"ftp://svc.example.com", true, "", URLScheme},
		{"svc.example.com/path", true, "", URLNotAbsolute},
		{"//svc.example.com", true, "", URLNotAbsolute},
		{"https:svc.example.com", true, "", URLNotAbsolute},
		{"https:svc.example.com", false, "", URLNotAbsolute},
		{"", true, "", URLNotAbsolute},
		{"https://", true, "", URLNoHost},
		{"https://:443", false, "", URLNoHost},
		{"https:///path", true, "", URLNoHost},
		{"https://user:pass@svc.example.com", true, "", URLUserInfo},
		{"https://user@svc.example.com", false, "", URLUserInfo},
		{"https://svc.example.com/hooks/..", true, "", URLPath},
		{"https://svc.example.com/hooks/../admin", true, "", URLPath},
		{"https://svc.example.com/./hooks", true, "", URLPath},
		{"https://svc.example.com/hooks/a%2Fb", true, "", URLPath},
		{"https://svc.example.com/hooks/%2e%2e", true, "", URLPath},
		{"https://svc.example.com/hooks/a%5Cb", true, "", URLPath},
		{"https://svc.example.com/hooks/a.b/c", true, "https://svc.example.com/hooks/a.b/c", 0},
		{"https://svc.example.com?a=b", true, "", URLQuery},
		{"https://svc.example.com/?", false, "", URLQuery},
		{"https://svc.example.com#frag", true, "", URLFragment},
		{"https://svc.example.com/#", false, "", URLFragment},
		{"https://svc.example.com/%zz", true, "", URLNotURL},
		{"https://svc example.com", true, "", URLNotURL},
		{"\x7fhttps://svc.example.com", true, "", URLNotURL},
	} {
		t.Run(fmt.Sprintf("%q loopback=%v", tc.raw, tc.loopback), func(t *testing.T) {
			got, err := ParseBaseURL(tc.raw, tc.loopback)
			if got != tc.want || URLProblemOf(err) != tc.problem || (err == nil) != (tc.problem == 0) {
				t.Fatalf("ParseBaseURL = %q, %v (problem %d); want %q, problem %d", got, err, URLProblemOf(err), tc.want, tc.problem)
			}
		})
	}
}

func TestURLProblemText(t *testing.T) {
	for p, want := range map[URLProblem]string{
		URLNotURL:      "not a URL",
		URLNotAbsolute: "not an absolute URL; use https://host[:port][/path]",
		URLPlainHTTP:   "http is allowed only for 127.0.0.1, localhost and ::1; use https",
		URLScheme:      "scheme must be https",
		URLNoHost:      "no host",
		URLUserInfo:    "must not contain user information",
		URLQuery:       "must not contain a query",
		URLFragment:    "must not contain a fragment",
		URLProblem(99): "not a valid base URL",
	} {
		if p.Error() != want {
			t.Errorf("problem %d says %q, want %q", p, p.Error(), want)
		}
	}
	if URLProblemOf(nil) != 0 || URLProblemOf(errors.New("other")) != 0 {
		t.Error("URLProblemOf finds a problem where there is none")
	}
	if URLProblemOf(fmt.Errorf("tag x: %w", URLQuery)) != URLQuery {
		t.Error("URLProblemOf does not look through wrapping")
	}
}
