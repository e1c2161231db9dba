package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
)

// fakeRotator records its calls and answers with scripted results. If block is set, calls signal
// entered and wait for block to close.
type fakeRotator struct {
	mu       sync.Mutex
	events   []rotation.Event
	requests []rotation.Request
	sweeps   []sweepCall
	statuses []time.Time // the at of each Status call
	leaks    []rotation.LeakRequest
	leak     rotation.LeakReport // Leak

	outcome rotation.Outcome      // HandleEvent and Rotate
	report  rotation.SweepReport  // Sweep
	status  rotation.StatusReport // Status

	entered chan struct{}
	block   chan struct{}
}

type sweepCall struct {
	trigger rotation.Trigger
	dryRun  bool
}

func (f *fakeRotator) wait(ctx context.Context) {
	if f.block == nil {
		return
	}
	f.entered <- struct{}{}
	select {
	case <-f.block:
	case <-ctx.Done():
	}
}

func (f *fakeRotator) HandleEvent(ctx context.Context, ev rotation.Event) rotation.Outcome {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
	f.wait(ctx)
	return f.outcome
}

func (f *fakeRotator) Rotate(ctx context.Context, req rotation.Request) rotation.Outcome {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.mu.Unlock()
	f.wait(ctx)
	return f.outcome
}

func (f *fakeRotator) Sweep(ctx context.Context, trigger rotation.Trigger, dryRun bool) rotation.SweepReport {
	f.mu.Lock()
	f.sweeps = append(f.sweeps, sweepCall{trigger, dryRun})
	f.mu.Unlock()
	f.wait(ctx)
	return f.report
}

func (f *fakeRotator) Status(ctx context.Context, at time.Time) rotation.StatusReport {
	f.mu.Lock()
	f.statuses = append(f.statuses, at)
	f.mu.Unlock()
	f.wait(ctx)
	return f.status
}

func (f *fakeRotator) Leak(ctx context.Context, req rotation.LeakRequest) (rotation.LeakReport, error) {
	f.mu.Lock()
	f.leaks = append(f.leaks, req)
	f.mu.Unlock()
	if _, err := rotation.LeakDigest(req); err != nil {
		return rotation.LeakReport{}, err
	}
	return f.leak, nil
}

func (f *fakeRotator) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events) + len(f.requests) + len(f.sweeps)
}

// logBuffer collects JSON log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes every log line.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

// withMessage returns the log lines whose msg is msg.
func (b *logBuffer) withMessage(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range b.lines(t) {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// rig is a handler under test with its fake rotator and captured logs.
type rig struct {
	h    http.Handler
	rot  *fakeRotator
	logs *logBuffer
}

func newRig(t *testing.T, maxBody int64) *rig {
	t.Helper()
	r := &rig{rot: &fakeRotator{}, logs: &logBuffer{}}
	r.h = New(Options{Rotator: r.rot, Logger: newTestLogger(r.logs), MaxBodyBytes: maxBody})
	return r
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

const testInvocationID = "3a6b8f0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"

// invoke POSTs body to /function as the host does.
func (r *rig) invoke(function string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:40123/"+function, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("X-Azure-Functions-InvocationId", testInvocationID)
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1037.0.0")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.1037.0.0")
	rec := httptest.NewRecorder()
	r.h.ServeHTTP(rec, req)
	return rec
}

// fixture reads a host envelope from testdata/envelopes.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "envelopes", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gotEnvelope is a decoded custom-handler response.
type gotEnvelope struct {
	status  int
	Outputs map[string]json.RawMessage
	Logs    []string
}

// readEnvelope checks that rec holds a well-formed envelope (application/json, exactly Outputs, Logs
// and ReturnValue null) and decodes it.
func readEnvelope(t *testing.T, rec *httptest.ResponseRecorder) gotEnvelope {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &top); err != nil {
		t.Fatalf("response body is not a JSON object: %q", rec.Body.String())
	}
	if keys := slices.Sorted(maps.Keys(top)); !slices.Equal(keys, []string{"Logs", "Outputs", "ReturnValue"}) {
		t.Errorf("envelope keys = %v, want Logs, Outputs, ReturnValue", keys)
	}
	if string(top["ReturnValue"]) != "null" {
		t.Errorf("ReturnValue = %s, want null", top["ReturnValue"])
	}
	env := gotEnvelope{status: rec.Code}
	if err := json.Unmarshal(top["Outputs"], &env.Outputs); err != nil || env.Outputs == nil {
		t.Errorf("Outputs = %s, want an object", top["Outputs"])
	}
	if err := json.Unmarshal(top["Logs"], &env.Logs); err != nil || env.Logs == nil {
		t.Errorf("Logs = %s, want an array", top["Logs"])
	}
	return env
}

// logsContain reports whether some Logs line contains s.
func (e gotEnvelope) logsContain(s string) bool {
	return slices.ContainsFunc(e.Logs, func(l string) bool { return strings.Contains(l, s) })
}

// gotRes is Outputs.res.
type gotRes struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// res decodes Outputs.res, checking its exact keys and JSON body.
func (e gotEnvelope) res(t *testing.T) gotRes {
	t.Helper()
	raw, ok := e.Outputs["res"]
	if !ok {
		t.Fatalf("Outputs has no res: %v", e.Outputs)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || len(keys) != 3 || keys["statusCode"] == nil || keys["headers"] == nil || keys["body"] == nil {
		t.Fatalf("Outputs.res = %s, want statusCode, headers, body", raw)
	}
	var res gotRes
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("Outputs.res: %v", err)
	}
	if res.Headers["Content-Type"] != "application/json" {
		t.Errorf("res headers = %v, want Content-Type application/json", res.Headers)
	}
	if !json.Valid([]byte(res.Body)) {
		t.Errorf("res body is not JSON: %q", res.Body)
	}
	return res
}
