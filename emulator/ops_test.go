package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
)

func TestThrottlingHonoursRetryAfter(t *testing.T) {
	srv := start(t, func(c *emulator.Config) {
		c.Limits = emulator.Limits{Writes: 2, Others: 1000, Window: 2 * time.Second}
	})
	c := newClient(t, srv, "myvault")
	for i := range 2 {
		if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to(strconv.Itoa(i))}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Without retries the third write is a 429 Throttled with Retry-After.
	tok := systemToken(t, srv)
	r := raw(t, srv, "PUT", "/secrets/s?api-version=7.5", tok, []byte(`{"value":"x"}`))
	if code, _ := r.errorCode(t); r.Status != 429 || code != "Throttled" {
		t.Fatalf("third write: %d %s", r.Status, code)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	// Reads are a separate class and still pass.
	if r := raw(t, srv, "GET", "/secrets/s?api-version=7.5", tok, nil); r.Status != 200 {
		t.Fatalf("read while writes are throttled: %d", r.Status)
	}
	// The SDK's retry policy waits for Retry-After and then succeeds.
	if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("after")}, nil); err != nil {
		t.Fatalf("SDK did not get through after Retry-After: %v", err)
	}
	// With retries off, the SDK reports the 429.
	opts := clientOptions(srv)
	opts.Retry = policy.RetryOptions{MaxRetries: -1}
	noRetry, _ := azsecrets.NewClient(srv.VaultURL("myvault"), managedIdentity(t, srv, ""), opts)
	var last error
	for range 3 {
		_, last = noRetry.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil)
	}
	respErr(t, last, http.StatusTooManyRequests, "Throttled")
}

func TestScriptedFaults(t *testing.T) {
	srv := start(t, nil)
	c := newClient(t, srv, "myvault")
	if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatal(err)
	}

	// One 503: the SDK retries and succeeds; the rule is used up.
	rule, err := emulator.ParseFaultRule("op=GetSecret,status=503,count=1")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.AddFault(rule); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx(t), "s", "", nil); err != nil {
		t.Fatalf("GetSecret after one 503: %v", err)
	}

	// More failures than retries: the caller sees the status.
	if err := srv.AddFault(emulator.FaultRule{Operation: "SetSecret", Status: 500, Count: 10}); err != nil {
		t.Fatal(err)
	}
	_, err = c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("y")}, nil)
	respErr(t, err, 500, "InternalServerError")
	srv.ClearFaults()
	got, _ := c.GetSecret(ctx(t), "s", "", nil)
	if *got.Value != "x" {
		t.Fatal("a failed write changed the secret")
	}

	// A dropped connection is a transport error; the SDK retries it.
	if err := srv.AddFault(emulator.FaultRule{Operation: "GetSecret", Drop: true, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSecret(ctx(t), "s", "", nil); err != nil {
		t.Fatalf("GetSecret after a dropped connection: %v", err)
	}
	opts := clientOptions(srv)
	opts.Retry = policy.RetryOptions{MaxRetries: -1}
	noRetry, _ := azsecrets.NewClient(srv.VaultURL("myvault"), managedIdentity(t, srv, ""), opts)
	if _, err := noRetry.GetSecret(ctx(t), "s", "", nil); err != nil {
		t.Fatal(err) // warm up the token
	}
	// Count 2: over HTTP/1 Go's transport silently resends an idempotent GET once on a reused
	// connection; over HTTP/2 (what the SDK negotiates) the reset stream surfaces at once.
	_ = srv.AddFault(emulator.FaultRule{Operation: "GetSecret", Secret: "s", Drop: true, Count: 2})
	_, err = noRetry.GetSecret(ctx(t), "s", "", nil)
	var re *azcore.ResponseError
	if err == nil || asResponseError(err, &re) {
		t.Fatalf("dropped connection must be a transport error, got %v", err)
	}
	srv.ClearFaults()

	// Faults can be scripted over the admin API too, by any language.
	resp, err := srv.HTTPClient().Post(srv.URL()+"/_emulator/faults", "application/json", strings.NewReader(`{"spec":"op=GetSecret,status=404,code=SecretNotFound"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin fault: %v", err)
	}
	resp.Body.Close()
	_, err = noRetry.GetSecret(ctx(t), "s", "", nil)
	respErr(t, err, 404, "SecretNotFound")
	resp, _ = srv.HTTPClient().Post(srv.URL()+"/_emulator/faults", "application/json", strings.NewReader(`{"spec":"op=Nope"}`))
	if resp.StatusCode != 400 {
		t.Fatalf("bad fault spec: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestLatencyIsAdded(t *testing.T) {
	srv := start(t, func(c *emulator.Config) { c.Latency = 150 * time.Millisecond })
	tok := systemToken(t, srv)
	began := time.Now()
	r := raw(t, srv, "GET", "/secrets?api-version=7.5", tok, nil)
	if r.Status != 200 || time.Since(began) < 150*time.Millisecond {
		t.Fatalf("latency not applied: %d after %v", r.Status, time.Since(began))
	}
}

// eventSink is an Event Grid subscriber endpoint that records what it receives.
type eventSink struct {
	mu      sync.Mutex
	events  []map[string]any
	headers []http.Header
	srv     *httptest.Server
}

func newSink(t *testing.T) *eventSink {
	s := &eventSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var batch []map[string]any
		if err := json.Unmarshal(body, &batch); err != nil {
			var one map[string]any
			if err := json.Unmarshal(body, &one); err != nil {
				http.Error(w, "bad body", 400)
				return
			}
			batch = []map[string]any{one}
		}
		s.mu.Lock()
		s.events = append(s.events, batch...)
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *eventSink) types(field string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, e := range s.events {
		out = append(out, e[field].(string))
	}
	return out
}

func TestEventDeliveryWithDrivenClock(t *testing.T) {
	sink := newSink(t)
	srv := start(t, func(c *emulator.Config) {
		c.Subscriptions = []emulator.Subscription{{Name: "rotator", URL: sink.srv.URL, RetryDelays: []time.Duration{10 * time.Millisecond}}}
	})
	c := newClient(t, srv, "myvault")
	exp := srv.Now().Add(40 * 24 * time.Hour)
	set, err := c.SetSecret(ctx(t), "api-key", azsecrets.SetSecretParameters{Value: to("x"), SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	flush := func() {
		if err := srv.FlushEvents(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	flush()
	if got := sink.types("eventType"); len(got) != 1 || got[0] != "Microsoft.KeyVault.SecretNewVersionCreated" {
		t.Fatalf("after set: %v", got)
	}
	srv.Advance(5 * 24 * time.Hour) // 35 days left: nothing yet
	flush()
	if got := sink.types("eventType"); len(got) != 1 {
		t.Fatalf("near expiry too early: %v", got)
	}
	srv.Advance(6 * 24 * time.Hour) // 29 days left
	flush()
	srv.Advance(time.Hour) // no repeat
	flush()
	if got := sink.types("eventType"); len(got) != 2 || got[1] != "Microsoft.KeyVault.SecretNearExpiry" {
		t.Fatalf("after 11 days: %v", got)
	}
	srv.Advance(30 * 24 * time.Hour)
	flush()
	got := sink.types("eventType")
	if len(got) != 3 || got[2] != "Microsoft.KeyVault.SecretExpired" {
		t.Fatalf("after expiry: %v", got)
	}

	sink.mu.Lock()
	ev := sink.events[1]
	h := sink.headers[1]
	sink.mu.Unlock()
	data := ev["data"].(map[string]any)
	if data["ObjectName"] != "api-key" || data["Version"] != set.ID.Version() || data["VaultName"] != "myvault" || data["ObjectType"] != "Secret" {
		t.Fatalf("event data %v", data)
	}
	if data["Id"] != string(*set.ID) || data["EXP"].(float64) != float64(exp.Unix()) {
		t.Fatalf("event Id/EXP %v", data)
	}
	if !strings.HasSuffix(ev["topic"].(string), "/providers/Microsoft.KeyVault/vaults/myvault") || ev["subject"] != "api-key" {
		t.Fatalf("topic/subject %v %v", ev["topic"], ev["subject"])
	}
	if h.Get("aeg-event-type") != "Notification" {
		t.Fatalf("aeg-event-type %q", h.Get("aeg-event-type"))
	}
	// A new version with a later expiry re-arms the events for the new current version.
	if _, err := c.SetSecret(ctx(t), "api-key", azsecrets.SetSecretParameters{Value: to("y")}, nil); err != nil {
		t.Fatal(err)
	}
	flush()
	if got := sink.types("eventType"); len(got) != 4 {
		t.Fatalf("new version without exp: %v", got)
	}

	// The admin API advances the clock as well.
	resp, err := srv.HTTPClient().Post(srv.URL()+"/_emulator/clock", "application/json", strings.NewReader(`{"advance":"1h"}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("admin clock: %v", err)
	}
	resp.Body.Close()
}

func TestCloudEventsSchema(t *testing.T) {
	sink := newSink(t)
	srv := start(t, func(c *emulator.Config) {
		c.Subscriptions = []emulator.Subscription{{URL: sink.srv.URL, Schema: emulator.CloudEventsSchema, EventTypes: []string{"Microsoft.KeyVault.SecretNearExpiry"}}}
	})
	c := newClient(t, srv, "myvault")
	exp := srv.Now().Add(24 * time.Hour) // already inside the 30-day window
	if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x"), SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := srv.FlushEvents(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := sink.types("type"); len(got) != 1 || got[0] != "Microsoft.KeyVault.SecretNearExpiry" {
		t.Fatalf("cloud events: %v", got)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.events[0]["specversion"] != "1.0" || !strings.HasPrefix(sink.headers[0].Get("Content-Type"), "application/cloudevents+json") {
		t.Fatalf("not CloudEvents 1.0: %v", sink.events[0])
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *emulator.Config) { c.DataDir, c.KeyDir = dir, "" }
	srv := start(t, cfg)
	c := newClient(t, srv, "myvault")
	set, err := c.SetSecret(ctx(t), "kept", azsecrets.SetSecretParameters{Value: to("v1"), Tags: map[string]*string{"a": to("b")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx(t), "gone", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx(t), "gone", nil); err != nil {
		t.Fatal(err)
	}
	srv.Advance(24 * time.Hour)
	oldNow := srv.Now()
	caPEM := string(srv.CACertPEM())
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// No temp files are left behind, and vault files are private.
	entries, _ := os.ReadDir(filepath.Join(dir, "vaults"))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temp file left: %s", e.Name())
		}
		if info, _ := e.Info(); info.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", e.Name(), info.Mode().Perm())
		}
	}

	again := start(t, cfg)
	if string(again.CACertPEM()) != caPEM {
		t.Fatal("CA changed across restart: clients would stop trusting the emulator")
	}
	if d := again.Now().Sub(oldNow); d < 0 || d > time.Minute {
		t.Fatalf("clock offset not kept: %v", d)
	}
	c2 := newClient(t, again, "myvault")
	got, err := c2.GetSecret(ctx(t), "kept", set.ID.Version(), nil)
	if err != nil || *got.Value != "v1" || *got.Tags["a"] != "b" {
		t.Fatalf("after restart: %v", err)
	}
	if _, err := c2.GetDeletedSecret(ctx(t), "gone", nil); err != nil {
		t.Fatalf("deleted secret lost across restart: %v", err)
	}
}
