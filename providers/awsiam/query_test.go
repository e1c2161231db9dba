package awsiam_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/awsiam"
)

// The Query protocol client: what goes on the wire, and when a call is tried again. These tests hold
// for the provider before (aws-sdk-go-v2's IAM and STS clients) and after (its own client signed
// with aws-http-auth's sigv4): the bodies below are the ones the SDK sent.

// seen is a request the relay passed on or answered.
type seen struct {
	action, body string
	header       http.Header
}

// relay puts a server in front of base that shows hook each request (its action, and how many
// requests for that action came before it); the request is passed on to base unless hook answers it
// (returns true). It returns the relay's URL and a function listing the requests so far.
func relay(t *testing.T, base string, hook func(w http.ResponseWriter, action string, n int) bool) (string, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var log []seen
	counts := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := readBody(r)
		action := formValue(body, "Action")
		mu.Lock()
		n := counts[action]
		counts[action]++
		log = append(log, seen{action: action, body: body, header: r.Header.Clone()})
		mu.Unlock()
		if hook != nil && hook(w, action, n) {
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.Path, strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		req.Header = r.Header.Clone()
		req.Host = r.Host // the signature covers the host the client called
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), log...)
	}
}

// Every action's form body, as aws-sdk-go-v2 serialized it (recorded from service/iam v1.67.0 and
// service/sts v1.52.0), and the signature's scope.
func TestWireFormat(t *testing.T) {
	f := newFixture(t)
	base, requests := relay(t, f.srv.URL, nil)
	p := newProvider()
	req := f.request(awsiam.TagIAMURL, base, awsiam.TagSTSURL, base)
	cred, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(t.Context(), req, cred); err != nil {
		t.Fatal(err)
	}
	next, _ := f.srv.Key(cred.CredentialID)
	if err := p.Revoke(t.Context(), f.revokeRequest(next, awsiam.TagIAMURL, base, awsiam.TagSTSURL, base, awsiam.TagRevoke, "delete"), f.current.ID); err != nil {
		t.Fatal(err)
	}
	const user = "&UserName=app-orders&Version=2010-05-08"
	want := []string{
		"Action=GetCallerIdentity&Version=2011-06-15",
		"Action=ListAccessKeys&MaxItems=100" + user,
		"Action=ListUserTags&MaxItems=100" + user,
		"Action=TagUser&Tags.member.1.Key=kvrotator-creating&Tags.member.1.Value=myvault%2Fapp-aws+kvr-0123456789abcdef+TIME" + user,
		"Action=CreateAccessKey" + user,
		"Action=TagUser&Tags.member.1.Key=NEW&Tags.member.1.Value=kvrotator+myvault%2Fapp-aws+created+kvr-0123456789abcdef" + user,
		"Action=UntagUser&TagKeys.member.1=kvrotator-creating" + user,
		"Action=GetCallerIdentity&Version=2011-06-15", // verify, with the new key
		"Action=GetCallerIdentity&Version=2011-06-15", // revoke
		"Action=ListAccessKeys&MaxItems=100" + user,
		"Action=ListUserTags&MaxItems=100" + user,
		"AccessKeyId=OLD&Action=UpdateAccessKey&Status=Inactive" + user,
		"AccessKeyId=OLD&Action=DeleteAccessKey" + user,
		"Action=UntagUser&TagKeys.member.1=OLD" + user,
	}
	stamp := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d%3A\d\d%3A\d\dZ`)
	got := requests()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	auth := regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=(\w+)/(\d{8})/us-east-1/(iam|sts)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$`)
	for i, r := range got {
		body := stamp.ReplaceAllString(r.body, "TIME")
		body = strings.ReplaceAll(strings.ReplaceAll(body, cred.CredentialID, "NEW"), f.current.ID, "OLD")
		if body != want[i] {
			t.Errorf("request %d:\n got %s\nwant %s", i, body, want[i])
		}
		if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("%s: Content-Type %q", r.action, ct)
		}
		m := auth.FindStringSubmatch(r.header.Get("Authorization"))
		if m == nil {
			t.Fatalf("%s: Authorization %q", r.action, r.header.Get("Authorization"))
		}
		service, signed := "iam", ";"+m[4]+";"
		if r.action == "GetCallerIdentity" {
			service = "sts"
		}
		if m[3] != service || !strings.HasPrefix(r.header.Get("X-Amz-Date"), m[2]) || !strings.Contains(signed, ";host;") || !strings.Contains(signed, ";x-amz-date;") {
			t.Errorf("%s: signed as %s for %s, headers %s", r.action, m[1], m[3], m[4])
		}
		if key := m[1]; (i == 7) != (key == cred.CredentialID) || (i != 7 && key != f.admin.ID) {
			t.Errorf("%s signed with %s", r.action, key)
		}
	}
}

// Which failures are tried again within a call (the AWS SDKs' standard retryer): throttling, 5xx,
// RequestTimeout, a 429 without a code and a lost answer for the calls that can be repeated;
// throttling only for CreateAccessKey; nothing else.
func TestRetries(t *testing.T) {
	answer := func(status int, body string, header ...string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			for i := 0; i+1 < len(header); i += 2 {
				w.Header().Set(header[i], header[i+1])
			}
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	errorXML := func(code string) string {
		return `<ErrorResponse><Error><Type>Sender</Type><Code>` + code + `</Code><Message>m</Message></Error><RequestId>r</RequestId></ErrorResponse>`
	}
	for _, tc := range []struct {
		name   string
		action string
		fault  func(f *fixture)               // a fault of the server
		once   func(w http.ResponseWriter)    // or an answer the relay gives the action's first request
		ok     bool                           // Create succeeds
		tries  int                            // requests for the action
		check  func(t *testing.T, f *fixture) // more
	}{
		{name: "500 on a list", action: "ListAccessKeys", fault: func(f *fixture) { f.srv.FailAction("ListAccessKeys", 1, 500, "ServiceFailure") }, ok: true, tries: 2},
		{name: "503 without XML", action: "ListUserTags", once: answer(503, "<html>down</html>", "Content-Type", "text/html"), ok: true, tries: 2},
		{name: "502", action: "ListUserTags", once: answer(502, ""), ok: true, tries: 2},
		{name: "429 without a code", action: "ListUserTags", once: answer(429, ""), ok: true, tries: 2},
		{name: "RequestTimeout", action: "ListAccessKeys", fault: func(f *fixture) { f.srv.FailAction("ListAccessKeys", 1, 400, "RequestTimeout") }, ok: true, tries: 2},
		{name: "throttled STS", action: "GetCallerIdentity", fault: func(f *fixture) { f.srv.FailAction("GetCallerIdentity", 2, 400, "Throttling") }, ok: true, tries: 3},
		{name: "lost answer to a tag", action: "TagUser", fault: func(f *fixture) { f.srv.LoseNext("TagUser", 1) }, ok: true, tries: 3}, // lost, again, the label
		{name: "throttled create", action: "CreateAccessKey", fault: func(f *fixture) { f.srv.FailAction("CreateAccessKey", 1, 400, "Throttling") }, ok: true, tries: 2,
			check: func(t *testing.T, f *fixture) {
				if n := f.srv.Created(); n != 1 {
					t.Errorf("%d keys created", n)
				}
			}},
		{name: "create failing with 500", action: "CreateAccessKey", fault: func(f *fixture) { f.srv.FailAction("CreateAccessKey", 1, 500, "ServiceFailure") }, tries: 1},
		{name: "create with 503 without XML", action: "CreateAccessKey", once: answer(503, ""), tries: 1},
		{name: "lost create", action: "CreateAccessKey", fault: func(f *fixture) { f.srv.LoseNext("CreateAccessKey", 1) }, tries: 1},
		{name: "AccessDenied", action: "ListAccessKeys", fault: func(f *fixture) { f.srv.Revoke(adminUser, "ListAccessKeys") }, tries: 1},
		{name: "a 429 with a modelled code", action: "ListAccessKeys", once: answer(429, errorXML("NoSuchEntity")), tries: 1},
		{name: "400 without XML", action: "ListAccessKeys", once: answer(400, "bad"), tries: 1},
		{name: "a redirect", action: "ListAccessKeys", once: answer(307, "", "Location", "/x"), tries: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.fault != nil {
				tc.fault(f)
			}
			base, requests := relay(t, f.srv.URL, func(w http.ResponseWriter, action string, n int) bool {
				if tc.once != nil && action == tc.action && n == 0 {
					tc.once(w)
					return true
				}
				return false
			})
			_, err := newProvider().Create(t.Context(), f.request(awsiam.TagIAMURL, base, awsiam.TagSTSURL, base))
			if (err == nil) != tc.ok {
				t.Fatalf("Create: %v", err)
			}
			tries := 0
			for _, r := range requests() {
				if r.action == tc.action {
					tries++
				}
			}
			if tries != tc.tries {
				t.Errorf("%d requests for %s, want %d", tries, tc.action, tc.tries)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

// X-Amz-Retry-After (milliseconds) stretches the wait before the next attempt, up to 5 s more than the
// backoff (the SDK's rule).
func TestRetryAfterHeader(t *testing.T) {
	f := newFixture(t)
	base, _ := relay(t, f.srv.URL, func(w http.ResponseWriter, action string, n int) bool {
		if action != "ListAccessKeys" || n > 0 {
			return false
		}
		w.Header().Set("X-Amz-Retry-After", "300")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>r</RequestId></ErrorResponse>`))
		return true
	})
	start := time.Now()
	if _, err := newProvider().Create(t.Context(), f.request(awsiam.TagIAMURL, base, awsiam.TagSTSURL, base)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("took %v: X-Amz-Retry-After not honoured", d)
	}
}

// Clock skew: AWS 20 minutes ahead refuses the first signature of each client as expired; the answer's
// Date shows the skew, the call is signed again with it and goes through, and the client keeps it for
// its next calls (the SDK's clock skew correction).
func TestClockSkew(t *testing.T) {
	f := newFixture(t)
	f.srv.SetClock(func() time.Time { return time.Now().Add(20 * time.Minute) })
	p := newProvider()
	cred, err := p.Create(t.Context(), f.request())
	if err != nil {
		t.Fatal(err)
	}
	refused := func() (n int) {
		for _, r := range f.srv.Requests() {
			if r.Code == "SignatureDoesNotMatch" {
				n++
			}
		}
		return n
	}
	// The admin key's GetCallerIdentity (STS) and the first IAM call: once each.
	if n := refused(); n != 2 {
		t.Errorf("%d refused signatures, want 2", n)
	}
	if err := p.Verify(t.Context(), f.request(), cred); err != nil {
		t.Fatal(err)
	}
	// Without a Date to learn from, the skew stays: refused, permanently (the admin key's signature).
	_, err = p.Create(t.Context(), f.request(awsiam.TagSTSURL, noDate(t, f.srv.URL)))
	if e := wantPermanent(t, err); e.Code != "SignatureDoesNotMatch" {
		t.Fatalf("%v", err)
	}
}

// noDate relays to base, dropping the answers' Date header.
func noDate(t *testing.T, base string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := readBody(r)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.Path, strings.NewReader(body))
		req.Header, req.Host = r.Header.Clone(), r.Host
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header()["Date"] = nil // net/http adds none when the key is there
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
