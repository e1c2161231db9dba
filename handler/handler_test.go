package handler

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
)

func TestHealth(t *testing.T) {
	r := newRig(t, 0)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		rec := httptest.NewRecorder()
		r.h.ServeHTTP(rec, httptest.NewRequest(method, "/", nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s / = %d %q", method, rec.Code, rec.Header().Get("Content-Type"))
		}
		if want := map[string]string{"GET": `{"status":"ok"}`, "HEAD": ""}[method]; rec.Body.String() != want {
			t.Errorf("%s / body = %q, want %q", method, rec.Body.String(), want)
		}
	}
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}")))
	if env := readEnvelope(t, rec); env.status != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d, Allow %q; want 405, GET, HEAD", env.status, rec.Header().Get("Allow"))
	}
	if r.rot.calls() != 0 || r.logs.String() != "" {
		t.Errorf("GET / did work: %d calls, logs %q", r.rot.calls(), r.logs.String())
	}
}

func TestUnknownFunctionAndWrongMethod(t *testing.T) {
	r := newRig(t, 0)
	env := readEnvelope(t, r.invoke("api/KeyVaultEvents", fixture(t, "keyvaultevents.json")))
	if env.status != 404 || !env.logsContain(`no function "api/KeyVaultEvents"`) {
		t.Errorf("unknown function: %d %q", env.status, env.Logs)
	}
	for _, fn := range []string{"KeyVaultEvents", "ScheduledSweep", "RotateSecret"} {
		rec := httptest.NewRecorder()
		r.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/"+fn, nil))
		if env := readEnvelope(t, rec); env.status != 405 || rec.Header().Get("Allow") != "POST" {
			t.Errorf("GET /%s = %d, Allow %q; want 405, POST", fn, env.status, rec.Header().Get("Allow"))
		}
	}
	if r.rot.calls() != 0 {
		t.Error("the rotator was called")
	}
}

// The host keeps polling GET / while invocations run; readiness must never wait for work.
func TestHealthAnswersDuringSlowInvocation(t *testing.T) {
	r := newRig(t, 0)
	r.rot.entered, r.rot.block = make(chan struct{}, 1), make(chan struct{})
	r.rot.outcome = rotation.Outcome{Kind: rotation.KindRotated}
	srv := httptest.NewServer(r.h)
	defer srv.Close()

	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/KeyVaultEvents", "application/json", bytes.NewReader(fixture(t, "keyvaultevents.json")))
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-r.rot.entered // the invocation is inside the rotator

	client := &http.Client{Timeout: 2 * time.Second}
	for range 3 {
		resp, err := client.Get(srv.URL + "/")
		if err != nil {
			t.Fatalf("GET / during an invocation: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
			t.Fatalf("GET / during an invocation = %d %q", resp.StatusCode, body)
		}
	}
	select {
	case code := <-done:
		t.Fatalf("the invocation finished (%d) before it was released", code)
	default:
	}
	close(r.rot.block)
	if code := <-done; code != 200 {
		t.Errorf("invocation status = %d, want 200", code)
	}
}

// Request bodies may hold anything (a caller pasting a credential, a function key); none of it may
// reach a log line or a response. The marker appears only in places the handler must not echo.
func TestRequestBodiesAreNeverLogged(t *testing.T) {
	const marker = "SUPERSECRETVALUE-7f3a"
	r := newRig(t, 0)
	r.rot.outcome = rotation.Outcome{Kind: rotation.KindSkipped, Reason: "not due"}
	invocations := []struct{ function, body string }{
		{"RotateSecret", string(post(`{"vault":"myvault","secret":"api-key","note":"` + marker + `"}`))},
		{"RotateSecret", string(post(`{"vault":"myvault","secret":"api-key","value":"` + marker + `"`))},
		{"RotateSecret", string(post(marker))},
		{"RotateSecret", string(httpEnvelope("POST", "https://app/api/RotateSecret?code="+marker, `{"code":"`+marker+`"}`, `{"vault":"myvault","secret":"api-key"}`))},
		{"RotateSecret", string(httpEnvelope("GET", "https://app/api/RotateSecret?code="+marker+"&vault=myvault&secret=api-key", `{"code":"`+marker+`","vault":"myvault","secret":"api-key"}`, ""))},
		{"RotateSecret", strings.Replace(string(post(`{"vault":"myvault","secret":"api-key"}`)), `"x-functions-key":["FUNCTION-KEY-bbbb"]`, `"x-functions-key":["`+marker+`"]`, 1)},
		{"KeyVaultEvents", string(eventEnvelope("eventGridEvent", strings.Replace(plainEvent, `"NBF":1559081980`, `"Value":"`+marker+`","NBF":1559081980`, 1)))},
		{"KeyVaultEvents", string(eventEnvelope("eventGridEvent", strings.Replace(plainEvent, `"NBF":1559081980`, `"NBF":1559081980,"Value":"`+marker+`"`, 1)+`x`))},
		{"KeyVaultEvents", `{"Data":{"eventGridEvent":` + plainEvent + `},"Metadata":{"token":"` + marker + `"}`},
		{"KeyVaultEvents", marker},
		{"ScheduledSweep", `{"Data":{"timer":{"IsPastDue":"` + marker + `"}}}`},
		{"ScheduledSweep", marker},
	}
	var responses strings.Builder
	for _, inv := range invocations {
		rec := r.invoke(inv.function, []byte(inv.body))
		responses.WriteString(rec.Body.String())
	}
	if r.rot.calls() == 0 {
		t.Fatal("no invocation reached the rotator; the test proves little")
	}
	if strings.Contains(r.logs.String(), marker) {
		t.Errorf("a log line contains the request body marker:\n%s", r.logs.String())
	}
	if strings.Contains(responses.String(), marker) {
		t.Errorf("a response contains the request body marker:\n%s", responses.String())
	}
}

type panickingRotator struct{ fakeRotator }

func (*panickingRotator) HandleEvent(context.Context, rotation.Event) rotation.Outcome {
	panic("engine bug")
}

func TestPanicFailsTheInvocation(t *testing.T) {
	logs := &logBuffer{}
	h := New(Options{Rotator: &panickingRotator{}, Logger: newTestLogger(logs)})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/KeyVaultEvents", bytes.NewReader(fixture(t, "keyvaultevents.json")))
	h.ServeHTTP(rec, req)
	env := readEnvelope(t, rec)
	if env.status != 500 || !env.logsContain("failed unexpectedly") {
		t.Errorf("panic: %d %q; want 500", env.status, env.Logs)
	}
	if !strings.Contains(logs.String(), `"panic":"engine bug"`) {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

func TestNewRequiresRotator(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New without a Rotator did not panic")
		}
	}()
	New(Options{})
}

func TestListenAddr(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
		err  string
	}{
		{"custom handler port", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "40123"}, "127.0.0.1:40123", ""},
		{"legacy alias", map[string]string{"FUNCTIONS_HTTPWORKER_PORT": "40124"}, "127.0.0.1:40124", ""},
		{"custom handler port wins", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "40123", "FUNCTIONS_HTTPWORKER_PORT": "40124"}, "127.0.0.1:40123", ""},
		{"spaces trimmed", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": " 8080\n"}, "127.0.0.1:8080", ""},
		{"unset", map[string]string{}, "", "FUNCTIONS_CUSTOMHANDLER_PORT is not set"},
		{"not a number", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "http"}, "", `FUNCTIONS_CUSTOMHANDLER_PORT="http" is not a TCP port`},
		{"zero", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "0"}, "", "is not a TCP port"},
		{"too large", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "65536"}, "", "is not a TCP port"},
		{"host:port", map[string]string{"FUNCTIONS_CUSTOMHANDLER_PORT": "0.0.0.0:80"}, "", "is not a TCP port"},
		{"bad legacy", map[string]string{"FUNCTIONS_HTTPWORKER_PORT": "-1"}, "", "FUNCTIONS_HTTPWORKER_PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ListenAddr(func(k string) string { return tt.env[k] })
			if got != tt.want {
				t.Errorf("ListenAddr = %q, want %q", got, tt.want)
			}
			if (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

// freeAddr returns a loopback address nobody listens on (a small race with other processes is
// acceptable in a test).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestServeShutsDownGracefully(t *testing.T) {
	r := newRig(t, 0)
	r.rot.entered, r.rot.block = make(chan struct{}, 1), make(chan struct{})
	r.rot.outcome = rotation.Outcome{Kind: rotation.KindSkipped}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, addr, r.h) }()

	// Ready: poll GET / as the host does.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Serve never became ready: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}

	inflight := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+addr+"/KeyVaultEvents", "application/json", bytes.NewReader(fixture(t, "keyvaultevents.json")))
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	<-r.rot.entered
	cancel() // shut down with an invocation in flight
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) before the invocation in flight finished", err)
	default:
	}
	close(r.rot.block)
	if code := <-inflight; code != 200 {
		t.Errorf("in-flight invocation = %d, want 200", code)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v, want nil after a clean shutdown", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still listening after shutdown")
	}
}

func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := Serve(context.Background(), ln.Addr().String(), newRig(t, 0).h); err == nil {
		t.Error("Serve on a port in use returned nil")
	}
}
