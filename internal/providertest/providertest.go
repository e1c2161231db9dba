// Package providertest runs a provider through kvrotator's real rotation path for its tests: the Key
// Vault emulator over HTTPS, the keyvault adapter with a managed-identity credential, and the
// rotation engine. It drives all three triggers (event, sweep, manual/HTTP dry run and rotation) and
// can interrupt a rotation right after any provider step, as a crash would, so that provider packages
// prove end to end that they converge without orphans.
package providertest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/keyvault"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// VaultName is the vault every Harness serves.
const VaultName = "provider-vault"

// Step names a point in the rotation protocol, for Interrupt.
type Step string

// The steps after which a rotation can be interrupted.
const (
	AfterCreate Step = "create" // the provider created the credential; nothing verified or written
	AfterVerify Step = "verify" // verified; not written to the vault
	AfterRevoke Step = "revoke" // the provider revoked; the vault does not record it yet
)

// Harness is one emulator, one vault client and one engine around the provider under test.
type Harness struct {
	T      testing.TB
	Server *emulator.Server
	Vault  *keyvault.Vault
	Client *azsecrets.Client // the raw SDK client, for seeding and assertions
	Engine *rotation.Engine
	Clock  *Clock
	// Journal is the engine's journal: kvrotator's own state, for assertions.
	Journal rotation.Journal

	wrap *interrupting
}

// Options adjust a Harness.
type Options struct {
	// Defaults for policies (zero: 90-day validity, 24 h grace, 30-day lead).
	Defaults rotation.Defaults
	// VerifyTimeout bounds verification retries (default 5 s, short for tests).
	VerifyTimeout time.Duration
	// Bindings are the operator's (a *bindings.Policy); nil binds nothing.
	Bindings rotation.Binder
}

// Clock is a settable clock for the engine (deferred revocation, back-off).
type Clock struct {
	mu  sync.Mutex
	off time.Duration
}

// Now is wall time plus what Advance added.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

// Advance moves the engine's clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// staticCredential hands the emulator's own token to the vault client: the harness tests providers,
// not token acquisition (which the emulator and keyvault packages test with the real credentials).
type staticCredential struct{ srv *emulator.Server }

func (c staticCredential) GetToken(ctx context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.srv.IssueToken(emulator.DefaultIdentity().ClientID, "https://vault.azure.net", time.Hour)
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, err
}

// New starts the harness for provider p (registered for the engine as name).
func New(t testing.TB, name string, p providers.Provider, o *Options) *Harness {
	t.Helper()
	if o == nil {
		o = &Options{}
	}
	srv, err := emulator.New(emulator.Config{Addr: "127.0.0.1:0", KeyDir: emulatortest.KeyDir(), DisableLimits: true,
		Vaults: []emulator.VaultConfig{{Name: VaultName}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cred := staticCredential{srv}
	v, err := keyvault.New(srv.VaultURL(VaultName), cred, &keyvault.Options{Transport: srv.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	client, err := azsecrets.NewClient(srv.VaultURL(VaultName), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}})
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{T: t, Server: srv, Vault: v, Client: client, Clock: &Clock{}, wrap: &interrupting{Provider: p},
		Journal: rotation.NewMemoryJournal()}
	var wrapped providers.Provider = h.wrap
	if _, ok := p.(providers.Revoker); ok {
		wrapped = &interruptingRevoker{h.wrap}
	}
	vt := o.VerifyTimeout
	if vt <= 0 {
		vt = 5 * time.Second
	}
	h.Engine, err = rotation.New(rotation.Config{
		Vaults:        []rotation.Vault{v},
		Providers:     func(n string) (providers.Provider, bool) { return wrapped, n == name },
		Bindings:      o.Bindings,
		Journal:       h.Journal,
		Clock:         h.Clock,
		Defaults:      o.Defaults,
		VerifyTimeout: vt,
		VerifyBackoff: 50 * time.Millisecond,
		RetryBackoff:  20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Seed writes a secret version with tags and an expiry, and returns its version.
func (h *Harness) Seed(name, value string, tags map[string]string, expiresIn time.Duration) string {
	h.T.Helper()
	exp := h.Clock.Now().Add(expiresIn)
	t := map[string]*string{}
	for k, v := range tags {
		t[k] = &v
	}
	resp, err := h.Client.SetSecret(context.Background(), name, azsecrets.SetSecretParameters{Value: &value, Tags: t,
		SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
	if err != nil {
		h.T.Fatalf("seed %s: %v", name, err)
	}
	return resp.ID.Version()
}

// Latest returns the latest version of a secret (value included, for assertions only).
func (h *Harness) Latest(name string) rotation.Secret {
	h.T.Helper()
	s, err := h.Vault.Get(context.Background(), name, "")
	if err != nil {
		h.T.Fatal(err)
	}
	return s
}

// Versions counts a secret's versions.
func (h *Harness) Versions(name string) int {
	h.T.Helper()
	n := 0
	pager := h.Client.NewListSecretPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(context.Background())
		if err != nil {
			h.T.Fatal(err)
		}
		n += len(page.Value)
	}
	return n
}

// Event delivers a SecretNearExpiry event for the version.
func (h *Harness) Event(name, version string) rotation.Outcome {
	return h.Engine.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: VaultName, Secret: name, Version: version})
}

// Sweep runs the timer's sweep.
func (h *Harness) Sweep() rotation.SweepReport {
	return h.Engine.Sweep(context.Background(), rotation.TriggerTimer, false)
}

// Manual is the HTTP trigger: a forced rotation, or a dry run.
func (h *Harness) Manual(name string, dryRun bool) rotation.Outcome {
	return h.Engine.Rotate(context.Background(), rotation.Request{Vault: VaultName, Secret: name, Trigger: rotation.TriggerManual, Force: true, DryRun: dryRun})
}

// Triggers are the three ways a rotation starts, for tests that run once per trigger: an Event Grid
// event, the timer's sweep and the HTTP trigger.
var Triggers = []string{"event", "sweep", "manual"}

// Rotate starts a rotation of name the way trigger (one of Triggers) says, the event for version, and
// returns its outcome; the sweep must report exactly one secret.
func (h *Harness) Rotate(trigger, name, version string) rotation.Outcome {
	h.T.Helper()
	switch trigger {
	case "event":
		return h.Event(name, version)
	case "sweep":
		rep := h.Sweep()
		if len(rep.Outcomes) != 1 {
			h.T.Fatalf("sweep outcomes %+v", rep.Outcomes)
		}
		return rep.Outcomes[0]
	case "manual":
		return h.Manual(name, false)
	}
	h.T.Fatalf("unknown trigger %q", trigger)
	return rotation.Outcome{}
}

// ManualOverride is the HTTP trigger with "override": true (past the back-to-back guard, the window
// and the minimum interval), for tests that rotate two-slot or alternating secrets back to back.
func (h *Harness) ManualOverride(name string) rotation.Outcome {
	return h.Engine.Rotate(context.Background(), rotation.Request{Vault: VaultName, Secret: name, Trigger: rotation.TriggerManual, Force: true, Override: true})
}

// RotateInterrupted runs a manual rotation that dies after step and returns its outcome.
func (h *Harness) RotateInterrupted(name, version string, step Step) rotation.Outcome {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.wrap.mu.Lock()
	h.wrap.after, h.wrap.cancel = step, cancel
	h.wrap.mu.Unlock()
	if step == AfterRevoke {
		return rotation.Outcome{Kind: rotation.KindFailed, Reason: "use SweepInterrupted for revocation"}
	}
	return h.Engine.Rotate(ctx, rotation.Request{Vault: VaultName, Secret: name, Version: version, Trigger: rotation.TriggerEvent})
}

// SweepInterrupted runs a sweep that dies right after the provider revoked a credential.
func (h *Harness) SweepInterrupted() rotation.SweepReport {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.wrap.mu.Lock()
	h.wrap.after, h.wrap.cancel = AfterRevoke, cancel
	h.wrap.mu.Unlock()
	return h.Engine.Sweep(ctx, rotation.TriggerTimer, false)
}

// ErrInterrupted is what an interrupted step reports to the engine.
var ErrInterrupted = errors.New("providertest: process died here")

// interrupting wraps the provider under test and cancels the rotation after a chosen step.
type interrupting struct {
	providers.Provider
	mu     sync.Mutex
	after  Step
	cancel context.CancelFunc
}

func (w *interrupting) hit(step Step) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.after != step || w.cancel == nil {
		return false
	}
	w.cancel()
	w.after, w.cancel = "", nil
	return true
}

func (w *interrupting) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	c, err := w.Provider.Create(ctx, req)
	if err == nil && w.hit(AfterCreate) {
		return providers.Credential{}, ErrInterrupted
	}
	return c, err
}

func (w *interrupting) Verify(ctx context.Context, req providers.Request, c providers.Credential) error {
	err := w.Provider.Verify(ctx, req, c)
	if err == nil && w.hit(AfterVerify) {
		return ErrInterrupted
	}
	return err
}

// State is kvrotator's journal entry for a secret.
func (h *Harness) State(name string) rotation.State {
	h.T.Helper()
	st, err := h.Journal.Load(context.Background(), VaultName, name)
	if err != nil {
		h.T.Fatal(err)
	}
	return st
}

// interruptingRevoker adds Revoke for providers that have it (an optional capability).
type interruptingRevoker struct{ *interrupting }

func (w *interruptingRevoker) Revoke(ctx context.Context, req providers.Request, id string) error {
	err := w.Provider.(providers.Revoker).Revoke(ctx, req, id)
	if err == nil && w.hit(AfterRevoke) {
		return ErrInterrupted
	}
	return err
}
