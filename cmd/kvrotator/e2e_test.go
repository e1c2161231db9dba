package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/internal/hostsim"
)

// eventLog records the emulator's Event Grid deliveries without acting on them, so that tests choose
// which real event to hand to the function, and how often.
type eventLog struct {
	mu     sync.Mutex
	events []json.RawMessage
}

func (l *eventLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var batch []json.RawMessage
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, "bad", 400)
		return
	}
	l.mu.Lock()
	l.events = append(l.events, batch...)
	l.mu.Unlock()
}

// find returns the delivered event of that type for that secret and version ("" = any version).
func (l *eventLog) find(t *testing.T, eventType, vault, secret, version string) json.RawMessage {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, raw := range l.events {
		var e struct {
			EventType string `json:"eventType"`
			Data      struct{ VaultName, ObjectName, Version string }
		}
		_ = json.Unmarshal(raw, &e)
		if e.EventType == eventType && e.Data.VaultName == vault && e.Data.ObjectName == secret && (version == "" || e.Data.Version == version) {
			return raw
		}
	}
	t.Fatalf("no %s event for %s/%s/%s among %d", eventType, vault, secret, version, len(l.events))
	return nil
}

type e2e struct {
	t      *testing.T
	srv    *emulator.Server
	host   *hostsim.Host
	events *eventLog
	vault  *azsecrets.Client
	other  *azsecrets.Client
	mu     sync.Mutex
	values []string // every secret value the test saw, none may appear in any output
	output strings.Builder
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kvrotator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startE2E runs the emulator (vaults e2e-vault, managed, and other-vault, not configured in the app)
// and the handler binary as the Functions host starts it, authenticated by managed identity over HTTPS.
func startE2E(t *testing.T) *e2e {
	if testing.Short() {
		t.Skip("end to end: builds and runs the binary")
	}
	bin := buildBinary(t)
	x := &e2e{t: t, events: &eventLog{}}
	sink := httptest.NewServer(x.events)
	t.Cleanup(sink.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	srv, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(),
		Addr: "127.0.0.1:0", CACertFile: caFile,
		Vaults:        []emulator.VaultConfig{{Name: "e2e-vault", Addr: "127.0.0.1:0"}, {Name: "other-vault"}},
		Topics:        []emulator.TopicConfig{{Name: "outcomes"}},
		Subscriptions: []emulator.Subscription{{Name: "log", URL: sink.URL, RetryDelays: []time.Duration{50 * time.Millisecond}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	x.srv = srv
	env := append(cleanEnv(os.Environ()),
		"KVROTATOR_VAULTS=e2e-vault="+srv.VaultAddrURL("e2e-vault"),
		"IDENTITY_ENDPOINT="+srv.IdentityEndpoint(), "IDENTITY_HEADER="+srv.IdentityHeader(),
		"SSL_CERT_FILE="+caFile, "KVROTATOR_LOG_LEVEL=debug",
		"KVROTATOR_EVENT_TOPIC_ENDPOINT="+srv.TopicEndpoint("outcomes"))
	host, err := hostsim.Start(context.Background(), hostsim.Options{Binary: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Stop() })
	x.host = host

	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}}
	x.vault, _ = azsecrets.NewClient(srv.VaultURL("e2e-vault"), cred, opts)
	x.other, _ = azsecrets.NewClient(srv.VaultURL("other-vault"), cred, opts)
	t.Cleanup(x.assertNoValueLeaked)
	return x
}

func (x *e2e) seed(c *azsecrets.Client, name string, expIn time.Duration, tags map[string]string) string {
	x.t.Helper()
	value := fmt.Sprintf("e2e-initial-%s-%d", name, time.Now().UnixNano())
	x.remember(value)
	exp := time.Now().Add(expIn)
	t := map[string]*string{}
	for k, v := range tags {
		t[k] = &v
	}
	resp, err := c.SetSecret(context.Background(), name, azsecrets.SetSecretParameters{Value: &value, Tags: t, SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
	if err != nil {
		x.t.Fatalf("seed %s: %v", name, err)
	}
	if err := x.srv.FlushEvents(context.Background()); err != nil {
		x.t.Fatal(err)
	}
	return resp.ID.Version()
}

func (x *e2e) remember(v string) {
	x.mu.Lock()
	x.values = append(x.values, v)
	x.mu.Unlock()
}

// versions lists a secret's versions and remembers the latest value.
func (x *e2e) versions(c *azsecrets.Client, name string) int {
	x.t.Helper()
	n := 0
	pager := c.NewListSecretPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			x.t.Fatal(err)
		}
		n += len(page.Value)
	}
	latest, err := c.GetSecret(context.Background(), name, "", nil)
	if err != nil {
		x.t.Fatal(err)
	}
	x.remember(*latest.Value)
	return n
}

func (x *e2e) invoke(function string, envelope []byte) *hostsim.Response {
	x.t.Helper()
	r, err := x.host.Invoke(context.Background(), function, envelope)
	if err != nil {
		x.t.Fatalf("invoke %s: %v", function, err)
	}
	x.mu.Lock()
	x.output.Write(r.Body)
	x.mu.Unlock()
	if ct := r.Status; ct != 0 && !json.Valid(r.Body) {
		x.t.Fatalf("%s answered a non-JSON body: %q", function, r.Body)
	}
	return r
}

// logged waits briefly for the handler's log output (copied from its pipes) to contain s.
func (x *e2e) logged(s string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(x.host.Output(), s) {
			return true
		}
	}
	return false
}

// outcomeEvent waits for the outcome topic to have received an event of that type for the secret.
func (x *e2e) outcomeEvent(eventType, secret string) map[string]any {
	x.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, raw := range x.srv.TopicEvents("outcomes") {
			var e struct {
				EventType string         `json:"eventType"`
				Data      map[string]any `json:"data"`
			}
			if json.Unmarshal(raw, &e) == nil && e.EventType == eventType && e.Data["secret"] == secret {
				return e.Data
			}
		}
	}
	x.t.Fatalf("no %s outcome event for %s reached the topic", eventType, secret)
	return nil
}

func (x *e2e) assertNoValueLeaked() {
	var events strings.Builder
	for _, raw := range x.srv.TopicEvents("outcomes") {
		events.Write(raw)
	}
	out := x.host.Output() + x.output.String() + events.String()
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, v := range x.values {
		if strings.Contains(out, v) {
			x.t.Errorf("a secret value appears in the handler's logs or responses")
			return
		}
	}
	if len(out) == 0 {
		x.t.Error("the handler printed nothing: the leak check checked nothing")
	}
}

func TestE2EEventsRotateOnceAndDuplicatesChangeNothing(t *testing.T) {
	x := startE2E(t)
	v1 := x.seed(x.vault, "api-key", 10*24*time.Hour, map[string]string{"rotation-provider": "random", "ValidityPeriodDays": "90"})
	near := x.events.find(t, "Microsoft.KeyVault.SecretNearExpiry", "e2e-vault", "api-key", v1)

	r := x.invoke("KeyVaultEvents", hostsim.EventGridEnvelope("KeyVaultEvents", near))
	if !r.OK() || len(r.Envelope.Logs) == 0 {
		t.Fatalf("near-expiry invocation: %d %s", r.Status, r.Body)
	}
	if n := x.versions(x.vault, "api-key"); n != 2 {
		t.Fatalf("versions after the event: %d", n)
	}
	latest, _ := x.vault.GetSecret(context.Background(), "api-key", "", nil)
	if days := time.Until(*latest.Attributes.Expires).Hours() / 24; days < 89 || days > 91 {
		t.Fatalf("new version expires in %.1f days, want 90", days)
	}
	if latest.Tags["rotation-state"] == nil || !strings.Contains(*latest.Tags["rotation-state"], "from="+v1) {
		t.Fatalf("rotation-state does not record the source version: %v", latest.Tags["rotation-state"])
	}
	// The outcome went to the Event Grid topic through the real publisher, with the managed identity.
	if d := x.outcomeEvent("Kvrotator.Secret.Rotated", "api-key"); d["oldVersion"] != v1 || d["newVersion"] != latest.ID.Version() || d["trigger"] != "event" {
		t.Fatalf("rotated event data: %v", d)
	}

	// The same event again, and ten concurrent copies: all acknowledged, nothing changes.
	if r := x.invoke("KeyVaultEvents", hostsim.EventGridEnvelope("KeyVaultEvents", near)); !r.OK() {
		t.Fatalf("duplicate: %d", r.Status)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := x.host.Invoke(context.Background(), "KeyVaultEvents", hostsim.EventGridEnvelope("KeyVaultEvents", near))
			// A copy that found the lock taken fails transiently (Event Grid redelivers); any other
			// answer must be success.
			if err != nil || (!r.OK() && r.Status != http.StatusInternalServerError) {
				t.Errorf("concurrent copy: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := x.versions(x.vault, "api-key"); n != 2 {
		t.Fatalf("duplicates wrote versions: %d", n)
	}
	if d := x.outcomeEvent("Kvrotator.Secret.Skipped", "api-key"); !strings.Contains(d["reason"].(string), "already rotated") {
		t.Fatalf("skipped event: %v", d)
	}

	// The rotator's own write raised SecretNewVersionCreated: it never rotates.
	if err := x.srv.FlushEvents(context.Background()); err != nil {
		t.Fatal(err)
	}
	newVer := x.events.find(t, "Microsoft.KeyVault.SecretNewVersionCreated", "e2e-vault", "api-key", latest.ID.Version())
	if r := x.invoke("KeyVaultEvents", hostsim.EventGridEnvelope("KeyVaultEvents", newVer)); !r.OK() || !strings.Contains(strings.Join(r.Envelope.Logs, " "), "skipped") {
		t.Fatalf("SecretNewVersionCreated: %d %v", r.Status, r.Envelope.Logs)
	}
	// An expired event for the old version is a no-op too.
	if n := x.versions(x.vault, "api-key"); n != 2 {
		t.Fatalf("versions: %d", n)
	}
}

func TestE2EUnconfiguredVaultIsRefused(t *testing.T) {
	x := startE2E(t)
	v := x.seed(x.other, "foreign", 5*24*time.Hour, map[string]string{"rotation-provider": "random"})
	ev := x.events.find(t, "Microsoft.KeyVault.SecretNearExpiry", "other-vault", "foreign", v)
	r := x.invoke("KeyVaultEvents", hostsim.EventGridEnvelope("KeyVaultEvents", ev))
	if !r.OK() {
		t.Fatalf("a refused event must be acknowledged (no redelivery loop): %d", r.Status)
	}
	if !x.logged("not configured") {
		t.Fatal("the refusal is not logged")
	}
	if d := x.outcomeEvent("Kvrotator.Secret.Failed", "foreign"); d["class"] != "permanent" {
		t.Fatalf("failed event: %v", d)
	}
	if n := x.versions(x.other, "foreign"); n != 1 {
		t.Fatalf("the unconfigured vault was written: %d versions", n)
	}
}

func TestE2ESweepRotatesOnlyDueAndDryRunChangesNothing(t *testing.T) {
	x := startE2E(t)
	x.seed(x.vault, "due", 5*24*time.Hour, map[string]string{"rotation-provider": "random"})
	x.seed(x.vault, "healthy", 200*24*time.Hour, map[string]string{"rotation-provider": "random"})
	x.seed(x.vault, "unmanaged", time.Hour, nil)
	x.seed(x.vault, "expired-bad", -time.Hour, map[string]string{"rotation-provider": "random", "random-length": "3"})

	// HTTP dry run first: plans, changes nothing.
	r := x.invoke("RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(`{"vault":"e2e-vault","secret":"due","dryRun":true}`)))
	res, err := r.HTTPOutput()
	if err != nil || res.StatusCode.String() != "200" || !strings.Contains(res.Body, "planned") {
		t.Fatalf("dry run: %v %+v", err, res)
	}
	if n := x.versions(x.vault, "due"); n != 1 {
		t.Fatalf("the dry run wrote: %d", n)
	}
	if d := x.outcomeEvent("Kvrotator.Secret.Planned", "due"); d["dryRun"] != true {
		t.Fatalf("planned event: %v", d)
	}

	r = x.invoke("ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now().Add(-time.Hour), time.Now().Add(time.Hour), false))
	if !r.OK() {
		t.Fatalf("sweep: %d %s", r.Status, r.Body)
	}
	for name, want := range map[string]int{"due": 2, "healthy": 1, "unmanaged": 1, "expired-bad": 1} {
		if n := x.versions(x.vault, name); n != want {
			t.Errorf("%s: %d versions after the sweep, want %d", name, n, want)
		}
	}
	// The expired secret that cannot rotate is reported overdue: a log line and an outcome event.
	if d := x.outcomeEvent("Kvrotator.Secret.Overdue", "expired-bad"); !strings.Contains(d["reason"].(string), "random-length") {
		t.Fatalf("overdue event: %v", d)
	}
	if !x.logged(`"outcome":"overdue"`) {
		t.Fatal("overdue is not logged")
	}
	// A manual rotation over HTTP rotates a healthy secret on request.
	r = x.invoke("RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(`{"vault":"e2e-vault","secret":"healthy"}`)))
	if res, _ := r.HTTPOutput(); res.StatusCode.String() != "200" || !strings.Contains(res.Body, "rotated") {
		t.Fatalf("manual rotate: %+v", res)
	}
	if n := x.versions(x.vault, "healthy"); n != 2 {
		t.Fatalf("manual rotate: %d versions", n)
	}
}

func TestE2EBadInputGetsClearErrorsAndNoWrite(t *testing.T) {
	x := startE2E(t)
	v := x.seed(x.vault, "bad-tags", 5*24*time.Hour, map[string]string{"rotation-provider": "random", "ValidityPeriodDays": "ninety"})
	x.seed(x.vault, "fine", 5*24*time.Hour, map[string]string{"rotation-provider": "random"})

	// A bad tag: a named, permanent configuration error, acknowledged, nothing written.
	ev := x.events.find(t, "Microsoft.KeyVault.SecretNearExpiry", "e2e-vault", "bad-tags", v)
	r := x.invoke("KeyVaultEvents", hostsim.EventGridEnvelope("KeyVaultEvents", ev))
	if !r.OK() || !strings.Contains(strings.Join(r.Envelope.Logs, " "), "ValidityPeriodDays") || !x.logged("ValidityPeriodDays") {
		t.Fatalf("bad tags: %d; logs must name the tag: %v\n%s", r.Status, r.Envelope.Logs, x.host.Output())
	}

	cases := []struct {
		name, function string
		envelope       []byte
		wantRes        string // status of the HTTP output for RotateSecret
	}{
		{"malformed JSON", "KeyVaultEvents", []byte(`{"Data":{"eventGridEvent":{"id":`), ""},
		{"wrong field types", "KeyVaultEvents", []byte(`{"Data":{"eventGridEvent":{"eventType":"Microsoft.KeyVault.SecretNearExpiry","data":{"VaultName":7,"ObjectName":["x"]}}}}`), ""},
		{"invalid secret name in event", "KeyVaultEvents", hostsim.EventGridEnvelope("KeyVaultEvents", json.RawMessage(
			`{"id":"1","eventType":"Microsoft.KeyVault.SecretNearExpiry","subject":"x","data":{"VaultName":"e2e-vault","ObjectType":"Secret","ObjectName":"fine/../x","Version":"0123456789abcdef0123456789abcdef"}}`)), ""},
		{"not an object", "KeyVaultEvents", []byte(`[1,2,3]`), ""},
		{"invalid name over HTTP", "RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(`{"vault":"e2e-vault","secret":"no_such name"}`)), "400"},
		{"wrong types over HTTP", "RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(`{"vault":"e2e-vault","secret":"fine","dryRun":"yes"}`)), "400"},
		{"malformed body over HTTP", "RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(`{"vault":`)), "400"},
		{"body over the limit", "RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(`{"vault":"e2e-vault","secret":"fine","pad":"`+strings.Repeat("x", 2<<20)+`"}`)), "413"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := x.invoke(tc.function, tc.envelope)
			if !r.OK() {
				t.Fatalf("a bad input must be acknowledged, not retried: %d %s", r.Status, r.Body)
			}
			if tc.wantRes != "" {
				res, err := r.HTTPOutput()
				if err != nil || res.StatusCode.String() != tc.wantRes || !strings.Contains(res.Body, "error") {
					t.Fatalf("res %+v %v, want %s with an error message", res, err, tc.wantRes)
				}
			}
		})
	}
	r, err := x.host.Invoke(context.Background(), "NoSuchFunction", []byte(`{}`))
	if err != nil || r.Status != http.StatusNotFound {
		t.Fatalf("unknown function: %v %d", err, r.Status)
	}
	for _, name := range []string{"bad-tags", "fine"} {
		if n := x.versions(x.vault, name); n != 1 {
			t.Errorf("%s was written by bad input: %d versions", name, n)
		}
	}
}

func TestDemoCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	bin := buildBinary(t)
	out, err := exec.Command(bin, "demo").CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{"BEFORE", "AFTER", "DEMO OK", "payment-api-key", "SecretNearExpiry", "ScheduledSweep", "RotateSecret"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "e2e-initial") || strings.Contains(string(out), "initial-payment-api-key") {
		t.Error("the demo printed a secret value")
	}
}
