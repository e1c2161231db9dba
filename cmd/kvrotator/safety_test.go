package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/internal/azuritetest"
	"github.com/kvrotator/kvrotator/internal/hostsim"
	"github.com/kvrotator/kvrotator/lock"
	"github.com/kvrotator/kvrotator/providers/webhook/webhooktest"
	"github.com/kvrotator/kvrotator/rotation"
)

// The safety tests run the real binary as two Functions instances sharing an Azurite storage account
// (blob leases), against the Key Vault emulator, with the webhook provider talking to a reference
// service that counts every credential it issued and revoked.

const (
	safeVault   = "safe-vault"
	safeSecret  = "svc-key"
	signingName = "svc-webhook-signing-key"
	signingKey  = "test-signing-key-0123456789abcdef"
)

type safety struct {
	t       *testing.T
	bin     string
	srv     *emulator.Server
	svc     *webhooktest.Server
	storage string // AzureWebJobsStorage connection string (Azurite)
	caFile  string
	client  *azsecrets.Client
	mu      sync.Mutex
	hosts   []*hostsim.Host
	initial string // the initial credential's value
	version string // the version the near-expiry event is about
	binds   string // the operator's bindings file
}

func startSafety(t *testing.T, extraTags map[string]string) *safety {
	if testing.Short() {
		t.Skip("end to end: builds and runs the binary")
	}
	s := &safety{t: t, bin: buildBinary(t)}
	s.storage = azuritetest.Start(t)
	s.svc = webhooktest.NewServer(signingKey)
	t.Cleanup(s.svc.Close)
	dir := t.TempDir()
	s.caFile = filepath.Join(dir, "ca.pem")
	// The operator's bindings, as a file deployed with the app: this secret may call this service and
	// read this signing key, nothing else.
	s.binds = filepath.Join(dir, "bindings.json")
	if err := os.WriteFile(s.binds, fmt.Appendf(nil, `{"bindings": [{"name": "svc", "secrets": [%q], "provider": "webhook",
		"allow": {"url": [%q], "secret": [%q]}}]}`, safeVault+"/"+safeSecret, s.svc.URL, signingName), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	s.srv, err = emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Addr: "127.0.0.1:0", CACertFile: s.caFile, DisableLimits: true,
		Vaults: []emulator.VaultConfig{{Name: safeVault, Addr: "127.0.0.1:0"}}, Topics: []emulator.TopicConfig{{Name: "outcomes"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.srv.Close() })
	t.Setenv("IDENTITY_ENDPOINT", s.srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", s.srv.IdentityHeader())
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	s.client, _ = azsecrets.NewClient(s.srv.VaultURL(safeVault), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: s.srv.HTTPClient()}})

	ctx := context.Background()
	if _, err := s.client.SetSecret(ctx, signingName, azsecrets.SetSecretParameters{Value: to(signingKey)}, nil); err != nil {
		t.Fatal(err)
	}
	s.initial = "initial-credential-value-" + fmt.Sprint(time.Now().UnixNano())
	s.svc.Seed("cred-initial", s.initial)
	tags := map[string]*string{
		"rotation-provider": to("webhook"), "webhook-url": to(s.svc.URL), "webhook-signing-secret": to(signingName),
		"CredentialId": to("cred-initial"), "ValidityPeriodDays": to("60"),
	}
	for k, v := range extraTags {
		tags[k] = to(v)
	}
	exp := time.Now().Add(5 * 24 * time.Hour)
	set, err := s.client.SetSecret(ctx, safeSecret, azsecrets.SetSecretParameters{Value: &s.initial, Tags: tags, SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.version = set.ID.Version()
	return s
}

// instance starts one more Function App instance (a handler process) on the shared storage.
func (s *safety) instance(extraEnv ...string) *hostsim.Host {
	s.t.Helper()
	env := append(cleanEnv(os.Environ()),
		"KVROTATOR_VAULTS="+safeVault+"="+s.srv.VaultAddrURL(safeVault),
		"IDENTITY_ENDPOINT="+s.srv.IdentityEndpoint(), "IDENTITY_HEADER="+s.srv.IdentityHeader(),
		"SSL_CERT_FILE="+s.caFile, "AzureWebJobsStorage="+s.storage, "KVROTATOR_LOG_LEVEL=debug",
		"KVROTATOR_VERIFY_TIMEOUT_SECONDS=3", "KVROTATOR_LEASE_SECONDS=15",
		"KVROTATOR_EVENT_TOPIC_ENDPOINT="+s.srv.TopicEndpoint("outcomes"), "KVROTATOR_BINDINGS="+s.binds)
	env = append(env, extraEnv...)
	h, err := hostsim.Start(context.Background(), hostsim.Options{Binary: s.bin, Env: env})
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.hosts = append(s.hosts, h)
	s.mu.Unlock()
	s.t.Cleanup(func() { h.Kill() })
	return h
}

func (s *safety) nearExpiry() []byte {
	return eventEnvelopeFor(safeVault, safeSecret, s.version)
}

// eventEnvelopeFor is the envelope of a SecretNearExpiry event as Key Vault and the host send it.
func eventEnvelopeFor(vault, secret, version string) []byte {
	ev := fmt.Sprintf(`{"id":"%d","topic":"/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/%s","subject":"%s",
"eventType":"Microsoft.KeyVault.SecretNearExpiry","eventTime":"2026-11-29T10:00:00Z","dataVersion":"1","metadataVersion":"1",
"data":{"Id":"https://%s.vault.azure.net/secrets/%s/%s","VaultName":"%s","ObjectType":"Secret","ObjectName":"%s","Version":"%s","NBF":null,"EXP":"1798000000"}}`,
		time.Now().UnixNano(), vault, secret, vault, secret, version, vault, secret, version)
	return hostsim.EventGridEnvelope("KeyVaultEvents", []byte(ev))
}

// deliver invokes KeyVaultEvents on h as Event Grid would, redelivering after transient failures
// (HTTP 500) until it is acknowledged.
func (s *safety) deliver(h *hostsim.Host, envelope []byte) *hostsim.Response {
	s.t.Helper()
	// A dead instance's lease lasts until it expires (KVROTATOR_LEASE_SECONDS=15): keep redelivering.
	for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		r, err := h.Invoke(context.Background(), "KeyVaultEvents", envelope)
		if err == nil && r.OK() {
			return r
		}
	}
	s.t.Fatalf("event never acknowledged; handler said:\n%s", h.Output())
	return nil
}

// latest returns the latest version's id, value and tags.
func (s *safety) latest() (string, string, map[string]string) {
	s.t.Helper()
	got, err := s.client.GetSecret(context.Background(), safeSecret, "", nil)
	if err != nil {
		s.t.Fatal(err)
	}
	tags := map[string]string{}
	for k, v := range got.Tags {
		tags[k] = *v
	}
	return got.ID.Version(), *got.Value, tags
}

func (s *safety) versions() int {
	s.t.Helper()
	n := 0
	pager := s.client.NewListSecretPropertiesVersionsPager(safeSecret, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			s.t.Fatal(err)
		}
		n += len(page.Value)
	}
	return n
}

// converged asserts the invariants after any sequence of failures: the latest version's credential
// works at the provider, and every credential the provider holds is the current one or the previous
// one within its grace period.
func (s *safety) converged(wantVersions int, previousMayLive bool) {
	s.t.Helper()
	_, value, tags := s.latest()
	live := s.svc.Live()
	cur := tags["CredentialId"]
	if live[cur] != value {
		s.t.Fatalf("the latest version's credential %q does not work at the provider (live: %v)", cur, keys(live))
	}
	for id := range live {
		if id == cur {
			continue
		}
		if !previousMayLive {
			s.t.Fatalf("credential %s is still live at the provider", id)
		}
		st := s.state()
		pending := false
		for _, p := range st.Pending {
			pending = pending || p.CredentialID == id
		}
		if !pending {
			s.t.Fatalf("credential %s is live but neither current nor pending revocation in the journal: an orphan (%+v)", id, st)
		}
	}
	if n := s.versions(); n != wantVersions {
		s.t.Fatalf("%d versions, want %d", n, wantVersions)
	}
	s.assertNoValueInLogs()
}

// state is kvrotator's journal entry for the secret, read from the shared storage account as the
// instances keep it (never from tags).
func (s *safety) state() rotation.State {
	s.t.Helper()
	c, err := azstorage.NewClientFromConnectionString(s.storage, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	st, err := lock.NewBlobJournal(c, "").Load(context.Background(), safeVault, safeSecret)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *safety) assertNoValueInLogs() {
	s.t.Helper()
	_, value, _ := s.latest()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.hosts {
		out := h.Output()
		for _, v := range []string{value, s.initial, signingKey} {
			if strings.Contains(out, v) {
				s.t.Fatal("a secret value or the signing key appears in the handler's logs")
			}
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRaceAcrossTwoInstances: ten copies of the event, a timer sweep and an HTTP rotate, spread over
// two handler processes, all at once: one new version, one new credential.
func TestRaceAcrossTwoInstances(t *testing.T) {
	s := startSafety(t, nil)
	a, b := s.instance(), s.instance()
	s.svc.SetDelay("create", 300*time.Millisecond) // widen the race window
	env := s.nearExpiry()
	var wg sync.WaitGroup
	for i := range 10 {
		h := a
		if i%2 == 1 {
			h = b
		}
		wg.Add(1)
		go func() { defer wg.Done(); s.deliver(h, env) }()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if r, err := a.Invoke(context.Background(), "ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false)); err != nil || !r.OK() {
			t.Errorf("sweep: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		body := fmt.Sprintf(`{"vault":%q,"secret":%q,"version":%q}`, safeVault, safeSecret, s.version)
		for {
			r, err := b.Invoke(context.Background(), "RotateSecret", hostsim.HTTPEnvelope("RotateSecret", http.MethodPost, "", []byte(body)))
			if err != nil {
				t.Errorf("rotate: %v", err)
				return
			}
			res, _ := r.HTTPOutput()
			if res.StatusCode.String() != "503" { // busy: come back, as a client would
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	wg.Wait()
	if c := s.svc.Created(); c != 1 {
		t.Fatalf("the provider issued %d credentials, want exactly 1", c)
	}
	s.converged(2, true)
}

// TestCrashAfterEachStep kills the handler (kill -9) while it is inside each step of the protocol,
// starts a fresh instance and lets Event Grid redeliver: it converges every time, with no orphan.
func TestCrashAfterEachStep(t *testing.T) {
	steps := []struct {
		name string
		hold func(s *safety) (waiting <-chan struct{}, release func())
	}{
		{"inside provider create", func(s *safety) (<-chan struct{}, func()) { return s.svc.Hold("create") }},
		{"inside verify", func(s *safety) (<-chan struct{}, func()) { return s.svc.Hold("verify") }},
		{"inside the vault write", func(s *safety) (<-chan struct{}, func()) {
			if err := s.srv.AddFault(emulator.FaultRule{Operation: "SetSecret", Secret: safeSecret, Delay: time.Minute, Status: 503, Count: 1}); err != nil {
				s.t.Fatal(err)
			}
			waiting := make(chan struct{})
			go func() {
				for len(s.srv.Faults()) > 0 {
					time.Sleep(10 * time.Millisecond)
				}
				close(waiting)
			}()
			return waiting, func() {}
		}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			s := startSafety(t, nil)
			h := s.instance()
			waiting, release := step.hold(s)
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = h.Invoke(context.Background(), "KeyVaultEvents", s.nearExpiry())
			}()
			select {
			case <-waiting:
			case <-time.After(20 * time.Second):
				t.Fatalf("the handler never reached the step; it said:\n%s", h.Output())
			}
			h.Kill()
			<-done
			release()
			if v, _, _ := s.latest(); v != s.version {
				t.Fatal("a version was written although the process died before the write")
			}
			// A new instance; Event Grid redelivers (the lease of the dead one expires first).
			s.deliver(s.instance(), s.nearExpiry())
			if c := s.svc.Created(); c != 1 {
				t.Fatalf("the provider issued %d credentials, want 1 (idempotent create)", c)
			}
			s.converged(2, true)
		})
	}
	t.Run("inside revoke, after the grace period", func(t *testing.T) {
		s := startSafety(t, map[string]string{"rotation-grace-hours": "0"})
		h := s.instance()
		s.deliver(h, s.nearExpiry())
		waiting, release := s.svc.Hold("revoke")
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = h.Invoke(context.Background(), "ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false))
		}()
		select {
		case <-waiting:
		case <-time.After(20 * time.Second):
			t.Fatalf("the sweep never revoked; it said:\n%s", h.Output())
		}
		h.Kill()
		<-done
		release()
		h2 := s.instance()
		// The dead instance's lease runs out first; until then the sweep reports the secret busy.
		var logs string
		for deadline := time.Now().Add(40 * time.Second); time.Now().Before(deadline) && !strings.Contains(logs, "revoked"); time.Sleep(500 * time.Millisecond) {
			r, err := h2.Invoke(context.Background(), "ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false))
			if err != nil || !r.OK() {
				t.Fatalf("second sweep: %v", err)
			}
			logs = strings.Join(r.Envelope.Logs, " ")
		}
		if !strings.Contains(logs, "revoked") {
			t.Fatalf("second sweep never revoked: %s", logs)
		}
		if st := s.state(); len(st.Pending) != 0 || st.Revoked.IsZero() {
			t.Fatalf("revocation not recorded in the journal: %+v", st)
		}
		if _, _, tags := s.latest(); strings.Contains(tags["rotation-state"], "revoke=") {
			t.Fatalf("the mirror tag still shows a pending revocation: %q", tags["rotation-state"])
		}
		// The revocation reached the outcome topic as a Revoked event.
		found := false
		for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			for _, raw := range s.srv.TopicEvents("outcomes") {
				found = found || strings.Contains(string(raw), `"eventType":"Kvrotator.Secret.Revoked"`)
			}
		}
		if !found {
			t.Fatal("no Kvrotator.Secret.Revoked event")
		}
		s.converged(2, false)
	})
}

// TestFailuresLeaveAWorkingCredential: vault write failing after the provider created a credential,
// the provider failing at create, at verify and at revoke, a 429 storm, the lease lost midway. Each
// ends with a working credential in the vault and the right outcome.
func TestFailuresLeaveAWorkingCredential(t *testing.T) {
	t.Run("vault write fails after create", func(t *testing.T) {
		s := startSafety(t, nil)
		h := s.instance()
		_ = s.srv.AddFault(emulator.FaultRule{Operation: "SetSecret", Secret: safeSecret, Status: 500, Count: 100})
		r, err := h.Invoke(context.Background(), "KeyVaultEvents", s.nearExpiry())
		if err != nil || r.Status != http.StatusInternalServerError {
			t.Fatalf("a transient vault failure must fail the invocation (redelivery): %v %d", err, r.Status)
		}
		if v, value, _ := s.latest(); v != s.version || value != s.initial || s.svc.Live()["cred-initial"] != s.initial {
			t.Fatal("the vault must still hold the working initial credential")
		}
		s.srv.ClearFaults()
		s.deliver(h, s.nearExpiry())
		if c := s.svc.Created(); c != 1 {
			t.Fatalf("%d credentials issued, want 1", c)
		}
		s.converged(2, true)
	})
	t.Run("provider fails at create", func(t *testing.T) {
		s := startSafety(t, nil)
		h := s.instance()
		s.svc.FailNext("create", 503, 6)
		r, _ := h.Invoke(context.Background(), "KeyVaultEvents", s.nearExpiry())
		if r.Status != http.StatusInternalServerError {
			t.Fatalf("status %d", r.Status)
		}
		s.deliver(h, s.nearExpiry())
		s.converged(2, true)
	})
	t.Run("provider refuses at create", func(t *testing.T) {
		s := startSafety(t, nil)
		h := s.instance()
		s.svc.FailNext("create", 403, 1)
		r, _ := h.Invoke(context.Background(), "KeyVaultEvents", s.nearExpiry())
		if !r.OK() || !strings.Contains(strings.Join(r.Envelope.Logs, " "), "permanent") {
			t.Fatalf("a permanent refusal is acknowledged and reported: %d %v", r.Status, r.Envelope.Logs)
		}
		s.converged(1, false)
	})
	t.Run("verify never succeeds", func(t *testing.T) {
		s := startSafety(t, nil)
		h := s.instance()
		s.svc.SetPropagationDelay(1000)
		r, _ := h.Invoke(context.Background(), "KeyVaultEvents", s.nearExpiry())
		if r.Status != http.StatusInternalServerError {
			t.Fatalf("status %d", r.Status)
		}
		// The unverified credential was revoked, not left behind.
		s.converged(1, false)
		s.svc.SetPropagationDelay(2)
		s.deliver(h, s.nearExpiry())
		s.converged(2, true)
	})
	t.Run("provider fails at revoke", func(t *testing.T) {
		s := startSafety(t, map[string]string{"rotation-grace-hours": "0"})
		h := s.instance()
		s.deliver(h, s.nearExpiry())
		s.svc.FailNext("revoke", 500, 10)
		r, _ := h.Invoke(context.Background(), "ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false))
		if !r.OK() || !strings.Contains(strings.Join(r.Envelope.Logs, " "), "failed") {
			t.Fatalf("sweep with failing revoke: %v", r.Envelope.Logs)
		}
		s.converged(2, true)
		s.svc.FailNext("revoke", 500, 0)
		r, _ = h.Invoke(context.Background(), "ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false))
		if !strings.Contains(strings.Join(r.Envelope.Logs, " "), "revoked") {
			t.Fatalf("later sweep: %v", r.Envelope.Logs)
		}
		s.converged(2, false)
	})
	t.Run("429 storm", func(t *testing.T) {
		s := startSafety(t, nil)
		h := s.instance()
		_ = s.srv.AddFault(emulator.FaultRule{Operation: "*", Status: 429, RetryAfter: time.Second, Count: 6})
		s.deliver(h, s.nearExpiry())
		if c := s.svc.Created(); c != 1 {
			t.Fatalf("%d credentials issued", c)
		}
		s.converged(2, true)
	})
	t.Run("lease lost midway", func(t *testing.T) {
		s := startSafety(t, nil)
		h := s.instance("KVROTATOR_VERIFY_TIMEOUT_SECONDS=60") // the lease must be lost before verification gives up
		waiting, release := s.svc.Hold("verify")
		done := make(chan *hostsim.Response, 1)
		go func() {
			r, _ := h.Invoke(context.Background(), "KeyVaultEvents", s.nearExpiry())
			done <- r
		}()
		<-waiting
		breakLease(t, s.storage, safeVault, safeSecret)
		time.Sleep(6 * time.Second) // a renewal (every 5 s) notices
		release()
		r := <-done
		if r == nil || r.Status != http.StatusInternalServerError {
			t.Fatalf("a lost lease is a transient failure: %+v", r)
		}
		if v, _, _ := s.latest(); v != s.version {
			t.Fatal("wrote a version after losing the lease")
		}
		s.deliver(h, s.nearExpiry())
		if c := s.svc.Created(); c != 1 {
			t.Fatalf("%d credentials issued, want 1; handler said:\n%s", c, h.Output())
		}
		s.converged(2, true)
	})
}

// breakLease breaks the lease of a secret's lock blob from outside, as an operator or a storage
// failover would.
func breakLease(t *testing.T, conn, vault, secret string) {
	t.Helper()
	c, err := azblob.NewClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	blob := c.ServiceClient().NewContainerClient("kvrotator-locks").NewBlobClient("locks/" + vault + "/" + secret)
	if err := breakBlobLease(context.Background(), blob); err != nil {
		t.Fatalf("break lease: %v", err)
	}
}

func breakBlobLease(ctx context.Context, b *blob.Client) error {
	lc, err := lease.NewBlobClient(b, nil)
	if err != nil {
		return err
	}
	zero := int32(0)
	_, err = lc.BreakLease(ctx, &lease.BlobBreakOptions{BreakPeriod: &zero})
	return err
}
