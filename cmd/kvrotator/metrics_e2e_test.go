package main

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestE2EMetricsReachApplicationInsights: the built binary, given an Application Insights connection
// string, sends its outcome counters to the ingestion endpoint (a local server answering as the track
// API does) when it shuts down, as the Functions host stops it; no secret name or value travels.
func TestE2EMetricsReachApplicationInsights(t *testing.T) {
	var (
		mu    sync.Mutex
		items []map[string]any
	)
	ingest := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var batch []map[string]any
		if r.URL.Path != "/v2.1/track" || json.Unmarshal(body, &batch) != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		items = append(items, batch...)
		mu.Unlock()
		_, _ = io.WriteString(w, `{"itemsReceived":`+itoa(len(batch))+`,"itemsAccepted":`+itoa(len(batch))+`,"errors":[]}`)
	}))
	t.Cleanup(ingest.Close)
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.pem")
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ingest.Certificate().Raw})

	x := startTimingE2E(t, "APPLICATIONINSIGHTS_CONNECTION_STRING=InstrumentationKey=00000000-0000-0000-0000-00000000abcd;IngestionEndpoint="+ingest.URL+"/")
	// One CA bundle: the emulator's and the local ingestion endpoint's (SSL_CERT_FILE is read at start).
	var emuCA string
	for _, kv := range x.env {
		if v, ok := strings.CutPrefix(kv, "SSL_CERT_FILE="); ok {
			emuCA = v
		}
	}
	emu, err := os.ReadFile(emuCA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bundle, append(emu, caPEM...), 0o644); err != nil {
		t.Fatal(err)
	}
	x.env = append(x.env, "SSL_CERT_FILE="+bundle)
	x.restart()
	x.seed("metered-key", "e2e-initial-metered-value", 5*24*time.Hour, map[string]string{"rotation-provider": "random"})
	x.sweep()
	if err := x.host.Stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var rotated float64
	for _, it := range items {
		raw, _ := json.Marshal(it)
		if strings.Contains(string(raw), "metered-key") || strings.Contains(string(raw), "e2e-initial") {
			t.Fatal("a secret name or value was sent as telemetry")
		}
		data, _ := it["data"].(map[string]any)
		base, _ := data["baseData"].(map[string]any)
		props, _ := base["properties"].(map[string]any)
		metrics, _ := base["metrics"].([]any)
		for _, m := range metrics {
			mm, _ := m.(map[string]any)
			if mm["name"] == "kvrotator.outcomes" && props["kind"] == "rotated" && props["provider"] == "random" {
				rotated += mm["value"].(float64)
			}
		}
	}
	if rotated != 1 {
		t.Fatalf("rotated outcomes counted %v, want 1 (items: %d)\n%s", rotated, len(items), x.host.Output())
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
