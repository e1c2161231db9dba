package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

const testIKey = "0f0e0d0c-0b0a-4909-8807-060504030201"

// ingest is a local HTTPS endpoint that follows the Application Insights ingestion contract
// (Monitor.Exporters v2.1 "track"): it checks every envelope of a metric item, answers 400 with
// per-item errors for invalid ones, and otherwise answers 200 {"itemsReceived","itemsAccepted",
// "errors":[]} unless a scripted responder says otherwise.
type ingest struct {
	t    *testing.T
	srv  *httptest.Server
	role string

	mu      sync.Mutex
	reqs    []ingestRequest
	script  []responder
	handler func(w http.ResponseWriter, r *http.Request, items []map[string]any) bool // before the script; true = answered
}

type ingestRequest struct {
	at    time.Time
	auth  string
	raw   []byte
	items []map[string]any
}

// responder answers one request; n is the number of items received.
type responder func(w http.ResponseWriter, n int)

func newIngest(t *testing.T) *ingest {
	t.Helper()
	in := &ingest{t: t, role: "kvrotator"}
	in.srv = httptest.NewTLSServer(http.HandlerFunc(in.serve))
	t.Cleanup(in.srv.Close)
	return in
}

// connString is a connection string naming this endpoint (with a trailing slash, as Azure writes it).
func (in *ingest) connString() string {
	return "InstrumentationKey=" + testIKey + ";IngestionEndpoint=" + in.srv.URL + "/;LiveEndpoint=https://example.invalid/"
}

// client is a client that trusts the test certificate and returns redirects, like the Recorder's own.
func (in *ingest) client() *http.Client {
	c := *in.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func (in *ingest) then(rs ...responder) {
	in.mu.Lock()
	in.script = append(in.script, rs...)
	in.mu.Unlock()
}

func (in *ingest) requests() []ingestRequest {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]ingestRequest(nil), in.reqs...)
}

func (in *ingest) serve(w http.ResponseWriter, r *http.Request) {
	t := in.t
	if r.Method != http.MethodPost || r.URL.Path != "/v2.1/track" {
		t.Errorf("ingest: %s %s, want POST /v2.1/track", r.Method, r.URL.Path)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("ingest: Content-Type %q, want application/json", ct)
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var items []map[string]any
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Errorf("ingest: body is not a JSON array: %v", err)
		writeTrack(w, http.StatusBadRequest, 0, 0, nil)
		return
	}
	var bad []map[string]any
	for i, it := range items {
		if err := validEnvelope(it, in.role); err != nil {
			t.Errorf("ingest: item %d: %v\n%s", i, err, raw)
			bad = append(bad, map[string]any{"index": i, "statusCode": 400, "message": err.Error()})
		}
	}
	in.mu.Lock()
	in.reqs = append(in.reqs, ingestRequest{at: time.Now(), auth: r.Header.Get("Authorization"), raw: raw, items: items})
	h := in.handler
	var next responder
	if len(in.script) > 0 {
		next, in.script = in.script[0], in.script[1:]
	}
	in.mu.Unlock()
	if len(bad) > 0 {
		writeTrack(w, http.StatusBadRequest, len(items), len(items)-len(bad), bad)
		return
	}
	if h != nil && h(w, r, items) {
		return
	}
	if next != nil {
		next(w, len(items))
		return
	}
	writeTrack(w, http.StatusOK, len(items), len(items), nil)
}

func writeTrack(w http.ResponseWriter, status, received, accepted int, errs []map[string]any) {
	if errs == nil {
		errs = []map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"itemsReceived": received, "itemsAccepted": accepted, "errors": errs})
}

// status answers every item with code (and the header, if any).
func status(code int, header ...string) responder {
	return func(w http.ResponseWriter, n int) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		errs := make([]map[string]any, n)
		for i := range errs {
			errs[i] = map[string]any{"index": i, "statusCode": code, "message": http.StatusText(code)}
		}
		writeTrack(w, code, n, 0, errs)
	}
}

// partial answers 206 with the given item statuses (index → status); the others are accepted.
func partial(itemStatus map[int]int) responder {
	return func(w http.ResponseWriter, n int) {
		var errs []map[string]any
		for i := range n {
			if c, ok := itemStatus[i]; ok {
				errs = append(errs, map[string]any{"index": i, "statusCode": c, "message": fmt.Sprintf("item %d: %s", i, http.StatusText(c))})
			}
		}
		writeTrack(w, http.StatusPartialContent, n, n-len(errs), errs)
	}
}

// validEnvelope checks a metric item against the v2.1 contract and what this package promises.
func validEnvelope(it map[string]any, role string) error {
	allowed := map[string]bool{"name": true, "time": true, "iKey": true, "tags": true, "data": true, "ver": true, "sampleRate": true, "seq": true}
	for k := range it {
		if !allowed[k] {
			return fmt.Errorf("unknown envelope field %q", k)
		}
	}
	if it["name"] != "Microsoft.ApplicationInsights.Metric" {
		return fmt.Errorf("name %v", it["name"])
	}
	ts, _ := it["time"].(string)
	if tm, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") || tm.IsZero() {
		return fmt.Errorf("time %q is not RFC 3339 UTC", ts)
	}
	if it["iKey"] != testIKey {
		return fmt.Errorf("iKey %v", it["iKey"])
	}
	tags, _ := it["tags"].(map[string]any)
	if tags["ai.cloud.role"] != role {
		return fmt.Errorf("tags %v: ai.cloud.role want %q", tags, role)
	}
	for k, v := range tags {
		if _, ok := v.(string); !ok {
			return fmt.Errorf("tag %s is not a string", k)
		}
	}
	data, _ := it["data"].(map[string]any)
	if data["baseType"] != "MetricData" {
		return fmt.Errorf("data.baseType %v", data["baseType"])
	}
	base, _ := data["baseData"].(map[string]any)
	if v, _ := base["ver"].(float64); v != 2 {
		return fmt.Errorf("baseData.ver %v", base["ver"])
	}
	ms, _ := base["metrics"].([]any)
	if len(ms) != 1 {
		return fmt.Errorf("%d data points, want 1 (only the first is stored)", len(ms))
	}
	m, _ := ms[0].(map[string]any)
	name, _ := m["name"].(string)
	if name != "kvrotator.outcomes" && name != "kvrotator.outcome.duration" {
		return fmt.Errorf("metric name %q", name)
	}
	for _, f := range []string{"value", "count", "min", "max", "stdDev"} {
		if _, ok := m[f].(float64); !ok {
			return fmt.Errorf("metric %s: %s missing or not a number", name, f)
		}
	}
	if c := m["count"].(float64); c < 1 || c != math.Trunc(c) || c > math.MaxInt32 {
		return fmt.Errorf("metric %s: count %v", name, c)
	}
	if m["min"].(float64) > m["max"].(float64) {
		return fmt.Errorf("metric %s: min > max", name)
	}
	props, _ := base["properties"].(map[string]any)
	for k, v := range props {
		s, ok := v.(string)
		if !ok || k == "" || len(k) > 150 || len(s) > 8192 {
			return fmt.Errorf("property %q=%v", k, v)
		}
	}
	for _, k := range []string{"kind", "provider"} {
		if _, ok := props[k]; !ok {
			return fmt.Errorf("property %s missing", k)
		}
	}
	return nil
}

// point is one received data point with its dimensions.
type point struct {
	name                          string
	value, count, min, max, stdev float64
	props                         map[string]string
	time                          string
	tags                          map[string]string
}

func (in *ingest) points() []point {
	var out []point
	for _, r := range in.requests() {
		for _, it := range r.items {
			out = append(out, toPoint(it))
		}
	}
	return out
}

func toPoint(it map[string]any) point {
	base := it["data"].(map[string]any)["baseData"].(map[string]any)
	m := base["metrics"].([]any)[0].(map[string]any)
	p := point{name: m["name"].(string), value: m["value"].(float64), count: m["count"].(float64),
		min: m["min"].(float64), max: m["max"].(float64), stdev: m["stdDev"].(float64),
		props: map[string]string{}, tags: map[string]string{}, time: it["time"].(string)}
	if props, ok := base["properties"].(map[string]any); ok {
		for k, v := range props {
			p.props[k] = v.(string)
		}
	}
	for k, v := range it["tags"].(map[string]any) {
		p.tags[k] = v.(string)
	}
	return p
}

// sum adds up the values of metric name over points whose dimensions include dims.
func sum(ps []point, name string, dims map[string]string) (value, count float64) {
	for _, p := range ps {
		if p.name != name {
			continue
		}
		match := true
		for k, v := range dims {
			if p.props[k] != v {
				match = false
			}
		}
		if match {
			value += p.value
			count += p.count
		}
	}
	return value, count
}

// fakeCred hands out a fixed token and remembers the scopes asked for.
type fakeCred struct {
	mu     sync.Mutex
	scopes []string
	calls  int
}

func (c *fakeCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.scopes = append([]string(nil), o.Scopes...)
	return azcore.AccessToken{Token: "test-token-123", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// setHandler installs a hook that runs before the script (true = it answered).
func (in *ingest) setHandler(h func(w http.ResponseWriter, r *http.Request, items []map[string]any) bool) {
	in.mu.Lock()
	in.handler = h
	in.mu.Unlock()
}
