package leaks_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kvrotator/kvrotator/leaks"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

const (
	hookSecret = "It's a Secret to Everybody"
	apiToken   = "ghp_TOKEN-never-in-output-0123"
	leakedKey  = "LEAKED-key-from-a-repository-9f1c"
)

// githubAPI follows GitHub's secret-scanning alerts REST contract for one alert.
type githubAPI struct {
	mu       sync.Mutex
	srv      *httptest.Server
	patches  []map[string]string
	status   int // scripted answer to GET (0: 200)
	headers  map[string]string
	requests int
}

func newGitHubAPI(t *testing.T) *githubAPI {
	g := &githubAPI{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.requests++
		if r.Header.Get("Authorization") != "Bearer "+apiToken || r.Header.Get("X-GitHub-Api-Version") != "2022-11-28" ||
			r.Header.Get("Accept") != "application/vnd.github+json" {
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"message":"Requires authentication","documentation_url":"https://docs.github.com/rest"}`)
			return
		}
		if r.URL.Path != "/repos/contoso/payments/secret-scanning/alerts/7" {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`)
			return
		}
		for k, v := range g.headers {
			w.Header().Set(k, v)
		}
		switch r.Method {
		case http.MethodGet:
			if g.status != 0 {
				w.WriteHeader(g.status)
				_, _ = io.WriteString(w, `{"message":"API rate limit exceeded"}`)
				return
			}
			_, _ = io.WriteString(w, `{"number":7,"state":"open","secret_type":"azure_storage_account_key","secret":"`+leakedKey+`","validity":"active"}`)
		case http.MethodPatch:
			var p map[string]string
			_ = json.NewDecoder(r.Body).Decode(&p)
			g.patches = append(g.patches, p)
			_, _ = io.WriteString(w, `{"number":7,"state":"resolved","resolution":"revoked"}`)
		}
	}))
	t.Cleanup(g.srv.Close)
	return g
}

type memDeliveries struct{ seen map[string]bool }

func (m *memDeliveries) Seen(_ context.Context, id string) (bool, error) { return m.seen[id], nil }
func (m *memDeliveries) Mark(_ context.Context, id string) error         { m.seen[id] = true; return nil }

type rig struct {
	gh     *leaks.GitHub
	api    *githubAPI
	leaks  []string
	report rotation.LeakReport
	logs   bytes.Buffer
}

func newRig(t *testing.T) *rig {
	r := &rig{api: newGitHubAPI(t)}
	r.gh = &leaks.GitHub{
		WebhookSecret: func(context.Context) (vocab.Value, error) { return vocab.NewValue(hookSecret), nil },
		Token:         func(context.Context) (vocab.Value, error) { return vocab.NewValue(apiToken), nil },
		APIURL:        r.api.srv.URL,
		Deliveries:    &memDeliveries{seen: map[string]bool{}},
		Resolve:       true,
		Logger:        slog.New(slog.NewJSONHandler(&r.logs, nil)),
		Leak: func(_ context.Context, req rotation.LeakRequest) (rotation.LeakReport, error) {
			r.leaks = append(r.leaks, req.Value.Reveal()+" / "+req.Source)
			return r.report, nil
		},
	}
	return r
}

func sign(body string) string {
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(body))
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

func headers(event, delivery, sig string) http.Header {
	h := http.Header{}
	h.Set(leaks.HeaderEvent, event)
	h.Set(leaks.HeaderDelivery, delivery)
	h.Set(leaks.HeaderSignature, sig)
	return h
}

const alertBody = `{"action":"created","alert":{"number":7,"secret_type":"azure_storage_account_key"},"repository":{"full_name":"contoso/payments"}}`

func (r *rig) clean(t *testing.T, res leaks.Result) {
	t.Helper()
	js, _ := json.Marshal(res)
	for _, s := range []string{leakedKey, apiToken, hookSecret} {
		if strings.Contains(res.Message, s) || strings.Contains(string(js), s) || strings.Contains(r.logs.String(), s) {
			t.Fatal("a secret appears in the result or the logs")
		}
	}
}

// TestGitHubDocumentedSignature: GitHub's own test vector (secret "It's a Secret to Everybody", body
// "Hello, World!") verifies; a ping answers pong.
func TestGitHubDocumentedSignature(t *testing.T) {
	r := newRig(t)
	res := r.gh.Handle(context.Background(), headers("ping", "1", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"), []byte("Hello, World!"))
	if res.Status != 200 || res.Message != "pong" {
		t.Fatalf("%+v", res)
	}
}

func TestGitHubAlertRunsTheEmergencyResponse(t *testing.T) {
	r := newRig(t)
	r.report = rotation.LeakReport{Outcomes: []rotation.Outcome{{Kind: rotation.KindEmergency, Vault: "kv", Secret: "storage-key"}}}
	delivery := "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	res := r.gh.Handle(context.Background(), headers(leaks.EventAlert, delivery, sign(alertBody)), []byte(alertBody))
	if res.Status != 200 || !res.Resolved || len(r.leaks) != 1 || r.leaks[0] != leakedKey+" / GitHub secret scanning, contoso/payments alert #7" {
		t.Fatalf("%+v; leaks %q", res, r.leaks)
	}
	if len(r.api.patches) != 1 || r.api.patches[0]["state"] != "resolved" || r.api.patches[0]["resolution"] != "revoked" {
		t.Fatalf("resolve: %+v", r.api.patches)
	}
	r.clean(t, res)
	// The same delivery again (a replay): nothing.
	res = r.gh.Handle(context.Background(), headers(leaks.EventAlert, delivery, sign(alertBody)), []byte(alertBody))
	if res.Status != 200 || !strings.Contains(res.Message, "replay") || len(r.leaks) != 1 || r.api.requests != 2 {
		t.Fatalf("replay: %+v", res)
	}
}

func TestGitHubRefusals(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	if res := r.gh.Handle(ctx, headers(leaks.EventAlert, "aaaaaaaa-0001", sign(alertBody)+"00"), []byte(alertBody)); res.Status != 401 {
		t.Fatalf("bad signature: %+v", res)
	}
	if res := r.gh.Handle(ctx, headers(leaks.EventAlert, "aaaaaaaa-0002", ""), []byte(alertBody)); res.Status != 401 {
		t.Fatalf("no signature: %+v", res)
	}
	resolved := strings.Replace(alertBody, `"created"`, `"resolved"`, 1)
	if res := r.gh.Handle(ctx, headers(leaks.EventAlert, "aaaaaaaa-0003", sign(resolved)), []byte(resolved)); res.Status != 202 {
		t.Fatalf("resolved action: %+v", res)
	}
	other := strings.Replace(alertBody, `"number":7`, `"number":8`, 1)
	if res := r.gh.Handle(ctx, headers(leaks.EventAlert, "aaaaaaaa-0004", sign(other)), []byte(other)); res.Status != 422 {
		t.Fatalf("unknown alert (404): %+v", res)
	}
	if len(r.leaks) != 0 {
		t.Fatalf("the response ran: %q", r.leaks)
	}
	// Not found in any managed secret: acknowledged, not resolved.
	if res := r.gh.Handle(ctx, headers(leaks.EventAlert, "aaaaaaaa-0005", sign(alertBody)), []byte(alertBody)); res.Status != 200 || res.Resolved ||
		!strings.Contains(res.Message, "no managed secret holds the value") {
		t.Fatalf("not found: %+v", res)
	}
	// Rate limited: transient, to be redelivered.
	r.api.status, r.api.headers = 403, map[string]string{"X-RateLimit-Remaining": "0"}
	res := r.gh.Handle(ctx, headers(leaks.EventAlert, "aaaaaaaa-0006", sign(alertBody)), []byte(alertBody))
	if res.Status != 503 || !strings.Contains(res.Message, "rate limited") {
		t.Fatalf("rate limited: %+v", res)
	}
	r.clean(t, res)
}

func TestJournalDeliveries(t *testing.T) {
	d := leaks.JournalDeliveries{Journal: rotation.NewMemoryJournal()}
	ctx := context.Background()
	if seen, _ := d.Seen(ctx, "72D3162E-cc78"); seen {
		t.Fatal("seen before")
	}
	if err := d.Mark(ctx, "72D3162E-cc78"); err != nil {
		t.Fatal(err)
	}
	if seen, _ := d.Seen(ctx, "72d3162e-CC78"); !seen {
		t.Fatal("not seen after")
	}
}
