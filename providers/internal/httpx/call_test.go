package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

const callSecret = "SECRET-must-never-leak-0123456789"

// testClient is a provider's Client as sendgrid and webhook fill theirs.
func testClient() *Client {
	return &Client{
		Provider: "thing", Service: "Thing", UserAgent: "kvrotator-thing/1", MaxBody: 64,
		Messages: Sanitizer{Max: 40},
		Message: func(body []byte) string {
			var b struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(body, &b)
			return b.Error
		},
	}
}

// wantError fails unless err holds an *Error of the given class, and returns it.
func wantError(t *testing.T, err error, permanent bool) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) holds no *Error", err, err)
	}
	if providers.IsPermanent(err) != permanent || e.Permanent != permanent {
		t.Fatalf("error %v: permanent %v (flag %v), want %v", err, providers.IsPermanent(err), e.Permanent, permanent)
	}
	if strings.Contains(err.Error(), callSecret) || strings.Contains(e.Message, callSecret) {
		t.Fatalf("error %q holds the secret", err)
	}
	return e
}

func TestDoSendsTheRequest(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	defer srv.Close()
	c := testClient()
	h := http.Header{}
	h.Set("Authorization", "Bearer "+callSecret)
	h.Set("Accept", "application/vnd.thing+json")
	resp, err := c.Do(t.Context(), Request{Op: "create", Method: http.MethodPost, URL: srv.URL + "/things?limit=1",
		Header: h, Body: []byte(`{"a":1}`), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusCreated || string(resp.Body) != `{"ok":true}` {
		t.Fatalf("answer %d %q", resp.Status, resp.Body)
	}
	for name, want := range map[string]string{"Authorization": "Bearer " + callSecret, "Accept": "application/vnd.thing+json",
		"User-Agent": "kvrotator-thing/1", "Content-Type": "application/json"} {
		if got.Header.Get(name) != want {
			t.Errorf("%s: %q, want %q", name, got.Header.Get(name), want)
		}
	}
	if got.Method != http.MethodPost || got.URL.RequestURI() != "/things?limit=1" || string(body) != `{"a":1}` {
		t.Errorf("%s %s %q", got.Method, got.URL.RequestURI(), body)
	}

	// No body: no Content-Type; the default Accept.
	if _, err := c.Do(t.Context(), Request{Op: "list", Method: http.MethodGet, URL: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("Content-Type") != "" || got.Header.Get("Accept") != JSONType || len(body) != 0 {
		t.Errorf("GET without a body: Content-Type %q, Accept %q, body %q", got.Header.Get("Content-Type"), got.Header.Get("Accept"), body)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestDoNeverFollowsRedirects(t *testing.T) {
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	c := testClient()
	hc := &http.Client{} // a client that would follow
	c.HTTP = hc
	resp, err := c.Do(t.Context(), Request{Op: "get", Method: http.MethodGet, URL: srv.URL, Header: http.Header{"Authorization": {callSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusTemporaryRedirect || followed.Load() {
		t.Fatalf("status %d, followed %v", resp.Status, followed.Load())
	}
	if hc.CheckRedirect != nil {
		t.Error("Do changed the client it was given")
	}
	// A nil *http.Client is net/http's default, without redirects too.
	c.HTTP = (*http.Client)(nil)
	if resp, err := c.Do(t.Context(), Request{Op: "get", Method: http.MethodGet, URL: srv.URL}); err != nil || resp.Status != http.StatusTemporaryRedirect || followed.Load() {
		t.Fatalf("nil *http.Client: %v, followed %v", err, followed.Load())
	}
}

// doerFunc is a Doer that is not an *http.Client, as an azcore policy.Transporter.
type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// Any Doer sends the requests; a form body goes with its content type.
func TestDoWithADoer(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	var calls atomic.Int32
	c := testClient()
	c.HTTP = doerFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return http.DefaultTransport.RoundTrip(r)
	})
	resp, err := c.Do(t.Context(), Request{Op: "token", Method: http.MethodPost, URL: srv.URL + "/token",
		Body: []byte("grant_type=client_credentials"), ContentType: FormType, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusNoContent || calls.Load() != 1 {
		t.Fatalf("status %d, %d calls through the Doer", resp.Status, calls.Load())
	}
	if got.Header.Get("Content-Type") != FormType || string(body) != "grant_type=client_credentials" {
		t.Errorf("Content-Type %q, body %q", got.Header.Get("Content-Type"), body)
	}

	// A failure after the Doer was called: the request may have reached the service.
	c.HTTP = doerFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("connection reset") })
	_, err = c.Do(t.Context(), Request{Op: "add", Method: http.MethodPost, URL: srv.URL, Body: []byte(`{}`)})
	if e := wantError(t, err, false); !e.Sent || e.Reason != "Thing could not be reached; will retry" {
		t.Errorf("sent %v, reason %q", e.Sent, e.Reason)
	}
	// One that never left: not sent.
	_, err = c.Do(t.Context(), Request{Op: "add", Method: http.MethodPost, URL: "http://127.0.0.1:80:80/x"})
	if e := wantError(t, err, true); e.Sent {
		t.Error("a request that could not be built is marked sent")
	}
}

func TestDoReadsABoundedBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"pad":"`+strings.Repeat("x", 100)+`"}`)
	}))
	defer srv.Close()
	resp, err := testClient().Do(t.Context(), Request{Op: "get", Method: http.MethodGet, URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.TooLong || resp.Body != nil || resp.DecodeObject(&map[string]any{}) != "response body exceeds 0 KiB" {
		t.Fatalf("TooLong %v, %d bytes kept, %q", resp.TooLong, len(resp.Body), resp.DecodeObject(&map[string]any{}))
	}
}

func TestDoFailures(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	defer slow.Close()
	defer close(hang)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	c := testClient()
	c.TimeoutSetting = "thing-timeout-seconds"
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	for _, tc := range []struct {
		name      string
		ctx       context.Context
		url       string
		permanent bool
		reason    string
		cause     error
	}{
		{"call timeout", t.Context(), slow.URL, false, "no answer within 50ms (thing-timeout-seconds); will retry", context.DeadlineExceeded},
		{"caller stopped", cancelled, slow.URL, false, ReasonStopped, context.Canceled},
		{"refused", t.Context(), closed.URL, false, "Thing could not be reached; will retry", nil},
		{"untrusted certificate", t.Context(), tlsSrv.URL, true, "the server's TLS certificate is not trusted", nil},
		{"not a URL", t.Context(), "http://127.0.0.1:80:80/x?k=" + callSecret, true, "building the request", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := 5 * time.Second
			if tc.url == slow.URL {
				timeout = 50 * time.Millisecond
			}
			_, err := c.Do(tc.ctx, Request{Op: "get", Method: http.MethodGet, URL: tc.url, Timeout: timeout,
				Header: http.Header{"Authorization": {callSecret}}, Secrets: []string{callSecret}})
			e := wantError(t, err, tc.permanent)
			if e.Sent != (tc.name != "not a URL") {
				t.Errorf("sent %v", e.Sent)
			}
			if e.Reason != tc.reason || e.Status != 0 {
				t.Errorf("reason %q (status %d), want %q", e.Reason, e.Status, tc.reason)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("error %v does not wrap %v", err, tc.cause)
			}
		})
	}
	t.Run("client timeout", func(t *testing.T) {
		c := testClient()
		c.HTTP = &http.Client{Timeout: 50 * time.Millisecond}
		_, err := c.Do(t.Context(), Request{Op: "get", Method: http.MethodGet, URL: slow.URL})
		if e := wantError(t, err, false); e.Reason != "timed out; will retry" || e.Err == nil {
			t.Errorf("reason %q, cause %v", e.Reason, e.Err)
		}
	})
}

func TestFail(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	c := testClient()
	c.Now = func() time.Time { return now }
	r := Request{Op: "create key", Method: http.MethodPost, URL: "https://user:pw@svc.example.com/v3/keys?limit=100#f", Secrets: []string{callSecret}}
	jsonBody := func(status int, body string, header ...string) *Response {
		h := http.Header{"Content-Type": {"application/json"}}
		for i := 0; i+1 < len(header); i += 2 {
			h.Set(header[i], header[i+1])
		}
		return &Response{Status: status, Header: h, Body: []byte(body), Limit: 64}
	}

	err := c.Fail(r, jsonBody(429, `{"error":"slow down, `+callSecret+`"}`, "Retry-After", "7"), Verdict{Reason: "rate-limited", Transient: true})
	e := wantError(t, err, false)
	want := `thing create key (POST https://svc.example.com/v3/keys): HTTP 429: rate-limited: Thing says "slow down, [redacted]" (retry after 7s)`
	if e.Error() != want || e.RetryAfter() != 7*time.Second {
		t.Errorf("got  %s\nwant %s", e, want)
	}

	// Permanent; a message only on an error status, only from JSON.
	for _, tc := range []struct {
		resp    *Response
		message string
	}{
		{jsonBody(400, `{"error":"bad scope"}`), "bad scope"},
		{jsonBody(200, `{"error":"ignored on a success"}`), ""},
		{&Response{Status: 400, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte(`{"error":"not JSON"}`)}, ""},
		{&Response{Status: 400, Header: http.Header{"Content-Type": {"application/json"}}, TooLong: true}, ""},
		{jsonBody(400, `{"error":"half `+callSecret[4:20]+`"}`), WithheldSecret},
	} {
		e := wantError(t, c.Fail(r, tc.resp, Verdict{Reason: "refused"}), true)
		if e.Message != tc.message || e.Status != tc.resp.Status {
			t.Errorf("%d %q: message %q, want %q", tc.resp.Status, tc.resp.Body, e.Message, tc.message)
		}
	}

	// A provider's own Retry-After reading.
	c.RetryAfter = func(status int, h http.Header, at time.Time) time.Duration {
		if !at.Equal(now) {
			t.Errorf("RetryAfter got %v, want the client's clock", at)
		}
		return time.Duration(status) * time.Millisecond
	}
	if e := wantError(t, c.Fail(r, jsonBody(503, `{}`, "Retry-After", "1"), Verdict{Transient: true}), false); e.Retry != 503*time.Millisecond {
		t.Errorf("Retry = %v", e.Retry)
	}
	c.Message = nil
	if e := wantError(t, c.Fail(r, jsonBody(400, `{"error":"x"}`), Verdict{}), true); e.Message != "" || !e.Sent {
		t.Errorf("Message = %q without a Message func (sent %v)", e.Message, e.Sent)
	}
}

// A service that says more than a message: its code, a finer code and a request id, in the body or
// in a header, sanitized like the message.
func TestFailDetails(t *testing.T) {
	c := testClient()
	c.RequestIDHeader = "request-id"
	c.Details = func(body []byte) Details {
		var b struct{ Code, Sub, Msg, ID string }
		_ = json.Unmarshal(body, &b)
		return Details{Code: b.Code, SubCode: b.Sub, Message: b.Msg, RequestID: b.ID}
	}
	r := Request{Op: "verify", Method: http.MethodPost, URL: "https://login.example.com/t/token", Secrets: []string{callSecret}}
	resp := func(status int, body string) *Response {
		return &Response{Status: status, Header: http.Header{"Content-Type": {"application/json"}, "Request-Id": {"hdr-1"}}, Body: []byte(body), Limit: 64}
	}

	e := wantError(t, c.Fail(r, resp(401, `{"Code":"invalid_client","Sub":"AADSTS7000215","Msg":"bad `+callSecret+`","ID":"tr-1"}`), Verdict{Reason: "not yet", Transient: true}), false)
	if e.Code != "invalid_client" || e.SubCode != "AADSTS7000215" || e.Message != "bad [redacted]" || e.RequestID != "tr-1" || !e.Sent {
		t.Errorf("%+v", e)
	}
	want := `thing verify (POST https://login.example.com/t/token): HTTP 401 invalid_client AADSTS7000215: not yet: Thing says "bad [redacted]" (request id tr-1)`
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e, want)
	}
	// No id in the body: the header's. A code that echoes a secret is redacted too.
	e = wantError(t, c.Fail(r, resp(400, `{"Code":"`+callSecret+`"}`), Verdict{}), true)
	if e.RequestID != "hdr-1" || e.Code != Redacted {
		t.Errorf("request id %q, code %q", e.RequestID, e.Code)
	}
	// A success the caller cannot use: the header's id, nothing of the body.
	e = wantError(t, c.Fail(r, resp(200, `{"Code":"x","ID":"tr-2"}`), Verdict{Reason: "broken"}), true)
	if e.RequestID != "hdr-1" || e.Code != "" {
		t.Errorf("request id %q, code %q", e.RequestID, e.Code)
	}
}

func TestErrorType(t *testing.T) {
	cause := errors.New("connection reset")
	e := &Error{Provider: "webhook", Service: "the service", Op: "revoke", Method: "POST", URL: "https://svc/revoke",
		Status: 503, Reason: "busy", Message: `try "later"`, Retry: 2 * time.Second, Err: cause}
	want := `webhook revoke (POST https://svc/revoke): HTTP 503: busy: the service says "try \"later\"": connection reset (retry after 2s)`
	if e.Error() != want {
		t.Errorf("got  %s\nwant %s", e, want)
	}
	withCodes := *e
	withCodes.Code, withCodes.SubCode, withCodes.RequestID = "ServiceUnavailable", "E42", "r-1"
	want = `webhook revoke (POST https://svc/revoke): HTTP 503 ServiceUnavailable E42: busy: the service says "try \"later\"": connection reset (request id r-1) (retry after 2s)`
	if withCodes.Error() != want {
		t.Errorf("got  %s\nwant %s", &withCodes, want)
	}
	if !errors.Is(e, cause) || e.Classified() != error(e) || providers.IsPermanent(e.Classified()) {
		t.Error("a transient Error: Unwrap or Classified")
	}
	e.Permanent = true
	var back *Error
	if !providers.IsPermanent(e.Classified()) || !errors.As(e.Classified(), &back) || back != e {
		t.Error("a permanent Error is not wrapped with providers.Permanent")
	}
	var withRetry interface{ RetryAfter() time.Duration }
	if !errors.As(e.Classified(), &withRetry) || withRetry.RetryAfter() != 2*time.Second {
		t.Error("RetryAfter is not reachable through the wrapping")
	}
}

func TestShownURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://svc.example.com/a/b":                 "https://svc.example.com/a/b",
		"https://u:p@svc.example.com/a?sig=abc#frag":  "https://svc.example.com/a",
		"http://127.0.0.1:8080/v3/api_keys?limit=100": "http://127.0.0.1:8080/v3/api_keys",
		"https://svc.example.com/?":                   "https://svc.example.com/",
		"http://[::1]:namedport":                      "(not a URL)",
	} {
		if got := ShownURL(in); got != want {
			t.Errorf("ShownURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeObject(t *testing.T) {
	type obj struct {
		ID     string    `json:"id"`
		Scopes *[]string `json:"scopes"`
	}
	for _, tc := range []struct {
		name, ctype, body, want string
		tooLong                 bool
	}{
		{"object", "application/json", ` {"id":"a","scopes":["x"],"extra":1} `, "", false},
		{"+json", "application/problem+json", `{"id":"a"}`, "", false},
		{"not JSON type", "text/html", `{"id":"a"}`, `response Content-Type is "text/html", want application/json`, false},
		{"too long", "application/json", "", "response body exceeds 0 KiB", true},
		{"empty", "application/json", " \n ", "empty response body", false},
		{"html", "application/json", "<html>" + callSecret, "response body is not valid JSON (at byte 1)", false},
		{"cut short", "application/json", `{"id":"` + callSecret, "response body is not valid JSON (cut short)", false},
		{"array", "application/json", `[{"id":"a"}]`, "response body is not a JSON object", false},
		{"null", "application/json", `null`, "response body is not a JSON object", false},
		{"string", "application/json", `"` + callSecret + `"`, "response body is not a JSON object", false},
		{"two objects", "application/json", `{"id":"a"} {"id":"b"}`, "response body has data after the JSON object", false},
		{"wrong type", "application/json", `{"id":7}`, "field id has the wrong type (JSON number)", false},
		{"nested wrong type", "application/json", `{"scopes":"` + callSecret + `"}`, "field scopes has the wrong type (JSON string)", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Response{Status: 200, Header: http.Header{"Content-Type": {tc.ctype}}, Body: []byte(tc.body), TooLong: tc.tooLong, Limit: 64}
			if tc.tooLong {
				r.Body = nil
			}
			var v obj
			if got := r.DecodeObject(&v); got != tc.want {
				t.Errorf("DecodeObject = %q, want %q", got, tc.want)
			}
			var m map[string]json.RawMessage
			if got := r.DecodeObject(&m); tc.want == "" && (got != "" || m == nil) {
				t.Errorf("into a map: %q", got)
			}
		})
	}
}
