package httpx

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// body is a response body that records whether it was closed, and fails after its text when err is
// set.
type body struct {
	r      io.Reader
	err    error
	closed bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF && b.err != nil {
		err = b.err
	}
	return n, err
}

func (b *body) Close() error { b.closed = true; return nil }

func TestRead(t *testing.T) {
	const limit = 16
	for _, tc := range []struct {
		name    string
		text    string
		tooLong bool
	}{
		{"empty", "", false},
		{"under the limit", "short", false},
		{"exactly the limit", strings.Repeat("x", limit), false},
		{"one byte over", strings.Repeat("x", limit+1), true},
		{"far over", strings.Repeat("x", 10*limit), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &body{r: strings.NewReader(tc.text)}
			h := http.Header{"Content-Type": {"application/json"}}
			r, err := Read(&http.Response{StatusCode: 418, Header: h, Body: b}, limit)
			if err != nil {
				t.Fatal(err)
			}
			if !b.closed {
				t.Error("the body was not closed")
			}
			if r.Status != 418 || r.Header.Get("Content-Type") != "application/json" || r.Limit != limit || r.TooLong != tc.tooLong {
				t.Fatalf("%+v", r)
			}
			if tc.tooLong && r.Body != nil || !tc.tooLong && string(r.Body) != tc.text {
				t.Fatalf("body %q", r.Body)
			}
		})
	}
	t.Run("read error", func(t *testing.T) {
		cut := errors.New("connection reset")
		b := &body{r: strings.NewReader("part"), err: cut}
		if r, err := Read(&http.Response{StatusCode: 200, Body: b}, limit); r != nil || !errors.Is(err, cut) {
			t.Fatalf("Read = %v, %v; want the read error", r, err)
		}
		if !b.closed {
			t.Error("the body was not closed")
		}
	})
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json":                    true,
		"application/json; charset=utf-8":     true,
		"Application/JSON":                    true,
		"application/problem+json":            true,
		"application/vnd.api+json; version=2": true,
		"":                                    false,
		"text/json":                           false,
		"text/html":                           false,
		"application/jsonx":                   false,
		"application/json; =bad":              false,
		"application/x-www-form-urlencoded":   false,
	} {
		if got := IsJSON(http.Header{"Content-Type": {ct}}); got != want {
			t.Errorf("IsJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestJSONProblem(t *testing.T) {
	for _, tc := range []struct {
		r    Response
		want string
	}{
		{Response{Header: http.Header{"Content-Type": {"application/json"}}, Limit: 64 << 10}, ""},
		{Response{Header: http.Header{"Content-Type": {"application/json"}}, TooLong: true, Limit: 256 << 10}, "body exceeds 256 KiB"},
		{Response{Header: http.Header{"Content-Type": {"text/html"}}, TooLong: true, Limit: 1 << 20}, "body exceeds 1024 KiB"},
		{Response{Header: http.Header{"Content-Type": {"text/html"}}, Limit: 1 << 20}, `Content-Type is "text/html", want application/json`},
		{Response{Header: http.Header{}, Limit: 1 << 20}, `Content-Type is "", want application/json`},
	} {
		if got := tc.r.JSONProblem(); got != tc.want {
			t.Errorf("JSONProblem(%+v) = %q, want %q", tc.r, got, tc.want)
		}
	}
}

// timeoutErr is a network timeout.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

var _ net.Error = timeoutErr{}

func TestClassify(t *testing.T) {
	reasons := TransportReasons{Deadline: "deadline", Untrusted: "untrusted", TimedOut: "timed out", Unreachable: "unreachable"}
	refused := errors.New("connection refused")
	live := context.Background()

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	// A real certificate failure: a TLS server whose certificate the default client does not trust.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failure is the point
	srv.StartTLS()
	defer srv.Close()
	_, certErr := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}).Get(srv.URL)
	if certErr == nil {
		t.Fatal("the untrusted server was accepted")
	}

	for _, tc := range []struct {
		name          string
		ctx, callCtx  context.Context
		err           error
		reason        string
		cause         error
		permanent     bool
		causeIsTheErr bool
	}{
		{"caller cancelled", cancelled, cancelled, refused, ReasonStopped, context.Canceled, false, false},
		{"caller's deadline", expired, expired, refused, ReasonStopped, context.DeadlineExceeded, false, false},
		{"the call's own deadline", live, expired, refused, "deadline", context.DeadlineExceeded, false, false},
		{"untrusted certificate", live, live, certErr, "untrusted", nil, true, true},
		{"network timeout", live, live, timeoutErr{}, "timed out", nil, false, true},
		{"anything else", live, live, refused, "unreachable", nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, cause, permanent := reasons.Classify(tc.ctx, tc.callCtx, tc.err)
			want := tc.cause
			if tc.causeIsTheErr {
				want = tc.err
			}
			if reason != tc.reason || cause != want || permanent != tc.permanent {
				t.Fatalf("Classify = %q, %v, %v; want %q, %v, %v", reason, cause, permanent, tc.reason, want, tc.permanent)
			}
		})
	}
}
