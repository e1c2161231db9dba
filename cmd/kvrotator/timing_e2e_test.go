package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/internal/hostsim"
	"github.com/kvrotator/kvrotator/providers/webhook/webhooktest"
	"github.com/kvrotator/kvrotator/rotation"
)

const timingVault = "timing-vault"

// timingE2E is the emulator and the built handler telling time from the emulator's clock
// (KVROTATOR_CLOCK_URL), so that the test moves time for the vault and kvrotator together.
type timingE2E struct {
	t      *testing.T
	bin    string
	srv    *emulator.Server
	kv     *azsecrets.Client
	env    []string
	host   *hostsim.Host
	values []string // every value seeded, for the leak check
	output strings.Builder
}

func startTimingE2E(t *testing.T, extraEnv ...string) *timingE2E {
	if testing.Short() {
		t.Skip("end to end: builds and runs the binary")
	}
	x := &timingE2E{t: t, bin: buildBinary(t)}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	srv, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Addr: "127.0.0.1:0", CACertFile: ca, DisableLimits: true,
		Vaults: []emulator.VaultConfig{{Name: timingVault, Addr: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	x.srv = srv
	x.env = append(append(cleanEnv(os.Environ()),
		"KVROTATOR_VAULTS="+timingVault+"="+srv.VaultAddrURL(timingVault),
		"IDENTITY_ENDPOINT="+srv.IdentityEndpoint(), "IDENTITY_HEADER="+srv.IdentityHeader(),
		"SSL_CERT_FILE="+ca, "KVROTATOR_LOG_LEVEL=debug",
		"KVROTATOR_CLOCK_URL="+srv.URL()+"/_emulator/clock"), extraEnv...)
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	x.kv, _ = azsecrets.NewClient(srv.VaultURL(timingVault), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}})
	x.restart()
	t.Cleanup(x.assertNoValueLeaked)
	return x
}

// restart (re)starts the handler, as the Functions host does after an app setting changes.
func (x *timingE2E) restart(extraEnv ...string) {
	x.t.Helper()
	if x.host != nil {
		x.output.WriteString(x.host.Output())
		_ = x.host.Stop()
	}
	h, err := hostsim.Start(context.Background(), hostsim.Options{Binary: x.bin, Env: append(append([]string(nil), x.env...), extraEnv...)})
	if err != nil {
		x.t.Fatal(err)
	}
	x.host = h
	x.t.Cleanup(func() { _ = h.Stop() })
}

func (x *timingE2E) seed(name, value string, expIn time.Duration, tags map[string]string) string {
	x.t.Helper()
	x.values = append(x.values, value)
	exp := x.srv.Now().Add(expIn)
	tt := map[string]*string{}
	for k, v := range tags {
		tt[k] = &v
	}
	r, err := x.kv.SetSecret(context.Background(), name, azsecrets.SetSecretParameters{Value: &value, Tags: tt,
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
	if err != nil {
		x.t.Fatalf("seed %s: %v", name, err)
	}
	return r.ID.Version()
}

// versions lists a secret's versions, oldest first.
func (x *timingE2E) versions(name string) []*azsecrets.SecretProperties {
	x.t.Helper()
	var out []*azsecrets.SecretProperties
	pager := x.kv.NewListSecretPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			x.t.Fatal(err)
		}
		out = append(out, page.Value...)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Attributes.Created.Before(*out[j-1].Attributes.Created); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func (x *timingE2E) latest(name string) (value, credentialID string) {
	x.t.Helper()
	r, err := x.kv.GetSecret(context.Background(), name, "", nil)
	if err != nil {
		x.t.Fatal(err)
	}
	if id, ok := r.Tags["CredentialId"]; ok {
		credentialID = *id
	}
	return *r.Value, credentialID
}

func (x *timingE2E) invoke(function string, envelope []byte) *hostsim.Response {
	x.t.Helper()
	r, err := x.host.Invoke(context.Background(), function, envelope)
	if err != nil {
		x.t.Fatalf("invoke %s: %v", function, err)
	}
	x.output.Write(r.Body)
	return r
}

func (x *timingE2E) sweep() *hostsim.Response {
	x.t.Helper()
	r := x.invoke("ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false))
	if !r.OK() {
		x.t.Fatalf("sweep: %d %s", r.Status, r.Body)
	}
	return r
}

// advance moves the emulator's clock; the handler reads it at most once a second.
func (x *timingE2E) advance(d time.Duration) {
	x.srv.Advance(d)
	time.Sleep(1100 * time.Millisecond)
}

func (x *timingE2E) assertNoValueLeaked() {
	out := x.output.String() + x.host.Output()
	if out == "" {
		x.t.Error("the handler printed nothing: the leak check checked nothing")
	}
	for _, v := range x.values {
		if strings.Contains(out, v) {
			x.t.Error("a secret value appears in the handler's logs or responses")
			return
		}
	}
}

// TestE2EWindowDefersEventsAndTheSweepRotatesInside: with a rotation window that is closed, a
// SecretNearExpiry event is acknowledged without a rotation and says when the window opens; the
// sweep before the window does nothing; once the emulator's clock is inside the window, the sweep
// rotates, and the new version is written inside it. Another secret's tags cannot widen its window.
func TestE2EWindowDefersEventsAndTheSweepRotatesInside(t *testing.T) {
	x := startTimingE2E(t)
	now := x.srv.Now().UTC()
	hour := (now.Hour() + 3) % 24
	end := fmt.Sprintf("%02d:00", hour+1)
	if hour == 23 {
		end = "24:00"
	}
	window := fmt.Sprintf("daily %02d:00-%s UTC", hour, end)
	opens := time.Date(now.Year(), now.Month(), now.Day(), hour, 0, 0, 0, time.UTC)
	if !opens.After(now) {
		opens = opens.Add(24 * time.Hour)
	}
	v1 := x.seed("api-key", "e2e-initial-window-key", 10*24*time.Hour, map[string]string{"rotation-provider": "random", "rotation-window": window})

	r := x.invoke("KeyVaultEvents", eventEnvelopeFor(timingVault, "api-key", v1))
	if !r.OK() {
		t.Fatalf("the event was not acknowledged: %d %s", r.Status, r.Body)
	}
	if n := len(x.versions("api-key")); n != 1 {
		t.Fatalf("an event outside the window rotated: %d versions", n)
	}
	if !eventually(func() bool {
		out := x.host.Output()
		return strings.Contains(out, "outside the rotation window") && strings.Contains(out, opens.Format(time.RFC3339))
	}) {
		t.Fatalf("the deferral does not say when the window opens (%s):\n%s", opens.Format(time.RFC3339), x.host.Output())
	}
	x.sweep()
	if n := len(x.versions("api-key")); n != 1 {
		t.Fatalf("the sweep rotated outside the window: %d versions", n)
	}

	x.advance(opens.Sub(now) + 10*time.Minute)
	x.sweep()
	vs := x.versions("api-key")
	if len(vs) != 2 {
		t.Fatalf("the sweep inside the window did not rotate: %d versions\n%s", len(vs), x.host.Output())
	}
	if created := vs[1].Attributes.Created.UTC(); created.Before(opens) || !created.Before(opens.Add(time.Hour)) {
		t.Fatalf("the new version was written at %s, outside the window that opened at %s", created, opens)
	}
	if v, _ := x.latest("api-key"); v == "e2e-initial-window-key" {
		t.Fatal("the value did not change")
	}
	// The event again (Event Grid redelivers): the version it names is no longer the latest.
	if r := x.invoke("KeyVaultEvents", eventEnvelopeFor(timingVault, "api-key", v1)); !r.OK() || len(x.versions("api-key")) != 2 {
		t.Fatalf("a redelivered event: %d, %d versions", r.Status, len(x.versions("api-key")))
	}
}

// TestE2EKillSwitchStopsASweepMidway: the on-premises runner's pause file is created while the sweep's
// first rotation is in flight at the issuer. That rotation finishes whole (new version, live
// credential, nothing left marked as started); no other secret is touched and each is reported;
// removing the file lets the next sweep rotate the rest. Then the app setting KVROTATOR_PAUSE=true
// (a restart, as a Function App does on a settings change) holds back due revocations.
func TestE2EKillSwitchStopsASweepMidway(t *testing.T) {
	dir := t.TempDir()
	const signingKey = "e2e-signing-key-0123456789abcdef"
	wh := webhooktest.NewServer(signingKey)
	t.Cleanup(wh.Close)
	binds := filepath.Join(dir, "bindings.json")
	if err := os.WriteFile(binds, fmt.Appendf(nil, `{"bindings":[{"name":"hooks","secrets":["%s/app-*"],"provider":"webhook",
		"allow":{"url":[%q],"secret":["hook-signing"]}}]}`, timingVault, wh.URL), 0o644); err != nil {
		t.Fatal(err)
	}
	pauseFile := filepath.Join(dir, "PAUSE")
	journalDir := filepath.Join(dir, "journal")
	x := startTimingE2E(t, "KVROTATOR_SWEEP_CONCURRENCY=1", "KVROTATOR_PAUSE_FILE="+pauseFile,
		"KVROTATOR_BINDINGS="+binds, "KVROTATOR_JOURNAL_DIR="+journalDir)
	x.seed("hook-signing", signingKey, 365*24*time.Hour, nil)
	names := []string{"app-1", "app-2", "app-3"}
	initial := map[string]string{}
	for i, name := range names {
		id, value := fmt.Sprintf("cred-%d", i+1), fmt.Sprintf("e2e-initial-hook-%d", i+1)
		wh.Seed(id, value)
		initial[name] = value
		x.seed(name, value, 5*24*time.Hour, map[string]string{"rotation-provider": "webhook", "webhook-url": wh.URL,
			"webhook-signing-secret": "hook-signing", "CredentialId": id, "rotation-grace-hours": "1"})
	}

	waiting, release := wh.Hold("create")
	done := make(chan *hostsim.Response, 1)
	go func() {
		r, _ := x.host.Invoke(context.Background(), "ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false))
		done <- r
	}()
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatalf("the sweep never reached the issuer:\n%s", x.host.Output())
	}
	if err := os.WriteFile(pauseFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	release()
	var r *hostsim.Response
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the sweep did not finish")
	}
	if r == nil || !r.OK() {
		t.Fatalf("sweep: %+v", r)
	}
	x.output.Write(r.Body)

	rotated := ""
	for _, name := range names {
		n := len(x.versions(name))
		value, id := x.latest(name)
		switch {
		case n == 2 && rotated == "":
			rotated = name
			if live := wh.Live(); live[id] != value || value == initial[name] {
				t.Fatalf("%s: the rotation that was in flight is not whole: the vault's credential %s is not live at the issuer", name, id)
			}
		case n == 1:
			if value != initial[name] || wh.Live()[id] != initial[name] {
				t.Fatalf("%s: touched while paused", name)
			}
		default:
			t.Fatalf("%s: %d versions; want the first rotation whole and nothing else", name, n)
		}
	}
	if rotated == "" || wh.Created() != 1 {
		t.Fatalf("rotated %q, %d credentials created; want one rotation, finished", rotated, wh.Created())
	}
	// The journal (read as the files journal.File writes; the runner holds its lock).
	for _, name := range names {
		var st rotation.State
		raw, err := os.ReadFile(filepath.Join(journalDir, timingVault, name+".json"))
		if err == nil {
			err = json.Unmarshal(raw, &st)
		} else if errors.Is(err, fs.ErrNotExist) && name != rotated {
			err = nil // never started: no journal entry
		}
		if err != nil || !st.Started.IsZero() || st.Writing != "" {
			t.Fatalf("%s: the journal holds a half-done rotation: %+v, %v", name, st, err)
		}
	}
	if !eventually(func() bool { return strings.Count(x.host.Output(), "the global kill switch is on") >= 2 }) {
		t.Fatalf("the secrets the switch held back are not reported:\n%s", x.host.Output())
	}

	// The switch off: the next sweep rotates the rest.
	if err := os.Remove(pauseFile); err != nil {
		t.Fatal(err)
	}
	x.sweep()
	for _, name := range names {
		if n := len(x.versions(name)); n != 2 {
			t.Fatalf("%s: %d versions after the switch was turned off", name, n)
		}
	}
	if wh.Created() != 3 {
		t.Fatalf("%d credentials created, want 3", wh.Created())
	}

	// KVROTATOR_PAUSE=true (an app setting: the host restarts): the grace periods pass, nothing is revoked.
	x.restart("KVROTATOR_PAUSE=true")
	x.advance(2 * time.Hour)
	x.sweep()
	if got := wh.Revoked(); len(got) != 0 {
		t.Fatalf("revoked %v while paused", got)
	}
	// Turned off again, the revocations run and the replaced versions are disabled.
	x.restart()
	x.sweep()
	if got := wh.Revoked(); len(got) != 3 {
		t.Fatalf("revoked %v after the switch was turned off, want the three replaced credentials\n%s", got, x.host.Output())
	}
	for _, name := range names {
		latest, err := x.kv.GetSecret(context.Background(), name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range x.versions(name) {
			if *v.Attributes.Enabled == (v.ID.Version() == latest.ID.Version()) {
				continue
			}
			t.Fatalf("%s: the replaced version is still enabled (or the latest is not) after its credential was revoked\n%s", name, x.host.Output())
		}
	}
}
