package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/consumers"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/internal/hostsim"
	"github.com/kvrotator/kvrotator/providers/webhook"
	"github.com/kvrotator/kvrotator/providers/webhook/webhooktest"
	"github.com/kvrotator/kvrotator/rotation"
)

// appToken is a credential holding one emulator-issued token (a consumer application's).
type appToken string

func (s appToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// armRefreshes is a local Resource Manager that answers the App Service Key Vault reference refresh
// (POST …/config/configreferences/appsettings/refresh?api-version=2022-03-01) with a bearer token.
type armRefreshes struct {
	mu    sync.Mutex
	sites []string
}

func (a *armRefreshes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const suffix = "/config/configreferences/appsettings/refresh"
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || r.Method != http.MethodPost ||
		!strings.HasSuffix(r.URL.Path, suffix) || r.URL.Query().Get("api-version") != "2022-03-01" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"error":{"code":"NotFound","message":"not a refresh"}}`)
		return
	}
	a.mu.Lock()
	a.sites = append(a.sites, strings.TrimSuffix(r.URL.Path, suffix))
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// TestE2EConsumersRefreshAndUsageAwareRevocation: the built binary with bindings that name an App
// Service app and a webhook as the consumers of a secret, and the emulator's audit log as the Log
// Analytics workspace. A sweep rotates the secret and refreshes both consumers; of the two applications
// that read the secret before, one reads the new version; after the grace the revocation waits for the
// other, status names it; once it has read the new version, the old credential is revoked and its
// version disabled.
func TestE2EConsumersRefreshAndUsageAwareRevocation(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	readerA := emulator.IdentityConfig{Name: "orders-api", Managed: true, ClientID: "aaaaaaaa-0000-4000-8000-00000000000a", ObjectID: "aaaaaaaa-1111-4111-8111-00000000000a",
		Roles: []emulator.RoleAssignment{{Role: emulator.RoleSecretsUser, Vault: "*"}}}
	readerB := emulator.IdentityConfig{Name: "billing-job", Managed: true, ClientID: "bbbbbbbb-0000-4000-8000-00000000000b", ObjectID: "bbbbbbbb-1111-4111-8111-00000000000b",
		Roles: []emulator.RoleAssignment{{Role: emulator.RoleSecretsUser, Vault: "*"}}}
	ca := filepath.Join(dir, "ca.pem")
	srv, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Addr: "127.0.0.1:0", CACertFile: ca, DisableLimits: true,
		Vaults:     []emulator.VaultConfig{{Name: "cons-vault", Addr: "127.0.0.1:0"}},
		Identities: []emulator.IdentityConfig{emulator.DefaultIdentity(), readerA, readerB}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	arm := &armRefreshes{}
	armSrv := httptest.NewTLSServer(arm)
	t.Cleanup(armSrv.Close)
	// One CA bundle for the binary: the emulator's and the local Resource Manager's.
	bundle := filepath.Join(dir, "bundle.pem")
	caPEM, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	caPEM = append(caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: armSrv.Certificate().Raw})...)
	if err := os.WriteFile(bundle, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}

	const signingKey, hookKey = "e2e-provider-signing-key-0123456789", "e2e-consumer-hook-key-0123456789"
	wh := webhooktest.NewServer(signingKey)
	t.Cleanup(wh.Close)
	var (
		hookMu sync.Mutex
		hooks  []consumers.Notification
	)
	hookSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(webhook.HeaderSignature) != webhook.Sign([]byte(hookKey), r.Header.Get(webhook.HeaderTimestamp), body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var n consumers.Notification
		_ = json.Unmarshal(body, &n)
		hookMu.Lock()
		hooks = append(hooks, n)
		hookMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hookSrv.Close)

	site := "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/orders/providers/Microsoft.Web/sites/orders-api"
	binds := filepath.Join(dir, "bindings.json")
	if err := os.WriteFile(binds, fmt.Appendf(nil, `{"bindings":[{"name":"orders","secrets":["cons-vault/orders-*"],"provider":"webhook",
		"allow":{"url":[%q],"secret":["hook-signing"]},
		"consumers":[{"kind":"app-service","resource":%q},{"kind":"webhook","url":%q,"signingSecret":"consumer-hook-key"}]}]}`,
		wh.URL, site, hookSrv.URL+"/hooks/{secret}"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(os.Environ()),
		"KVROTATOR_VAULTS=cons-vault="+srv.VaultAddrURL("cons-vault"),
		"IDENTITY_ENDPOINT="+srv.IdentityEndpoint(), "IDENTITY_HEADER="+srv.IdentityHeader(),
		"SSL_CERT_FILE="+bundle, "KVROTATOR_LOG_LEVEL=debug", "KVROTATOR_BINDINGS="+binds,
		"KVROTATOR_CLOCK_URL="+srv.URL()+"/_emulator/clock",
		"KVROTATOR_GRACE_HOURS=1", "KVROTATOR_MAX_GRACE_HOURS=48",
		"KVROTATOR_LOG_WORKSPACE_ID="+srv.WorkspaceID(), "KVROTATOR_LOGS_ENDPOINT="+srv.LogsEndpoint(),
		"KVROTATOR_ARM_ENDPOINT="+armSrv.URL)
	host, err := hostsim.Start(context.Background(), hostsim.Options{Binary: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Stop() })
	var output strings.Builder
	invoke := func(function string, envelope []byte) *hostsim.Response {
		t.Helper()
		r, err := host.Invoke(context.Background(), function, envelope)
		if err != nil || !r.OK() {
			t.Fatalf("invoke %s: %v %+v\n%s", function, err, r, host.Output())
		}
		output.Write(r.Body)
		return r
	}
	sweep := func() {
		invoke("ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false))
	}

	// The vault: the provider's signing key, the consumer webhook's key, the application's key.
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, _ := azidentity.NewManagedIdentityCredential(nil)
	opts := &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}}
	admin, _ := azsecrets.NewClient(srv.VaultURL("cons-vault"), cred, opts)
	client := func(id emulator.IdentityConfig) *azsecrets.Client {
		tok, err := srv.IssueToken(id.ClientID, "https://vault.azure.net", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := azsecrets.NewClient(srv.VaultURL("cons-vault"), appToken(tok), opts)
		return c
	}
	a, b := client(readerA), client(readerB)
	ctx := context.Background()
	seed := func(name, value string, tags map[string]string, expIn time.Duration) {
		exp := srv.Now().Add(expIn)
		tt := map[string]*string{}
		for k, v := range tags {
			tt[k] = &v
		}
		if _, err := admin.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: &value, Tags: tt, SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	readLatest := func(c *azsecrets.Client) string {
		r, err := c.GetSecret(ctx, "orders-key", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.ID.Version()
	}
	seed("hook-signing", signingKey, nil, 365*24*time.Hour)
	seed("consumer-hook-key", hookKey, nil, 365*24*time.Hour)
	wh.Seed("cred-1", "e2e-initial-orders-key")
	seed("orders-key", "e2e-initial-orders-key", map[string]string{"rotation-provider": "webhook", "webhook-url": wh.URL,
		"webhook-signing-secret": "hook-signing", "CredentialId": "cred-1"}, 5*24*time.Hour)
	v0 := readLatest(a)
	readLatest(b)

	// The sweep rotates, then refreshes both consumers.
	sweep()
	v1, err := admin.GetSecret(ctx, "orders-key", "", nil)
	if err != nil || v1.ID.Version() == v0 {
		t.Fatalf("not rotated: %v\n%s", err, host.Output())
	}
	if len(arm.sites) != 1 || arm.sites[0] != site {
		t.Fatalf("App Service refreshes: %v", arm.sites)
	}
	if len(hooks) != 1 || hooks[0].Secret != "orders-key" || hooks[0].Version != v1.ID.Version() || hooks[0].PreviousVersion != v0 {
		t.Fatalf("webhook notifications: %+v", hooks)
	}
	if !eventually(func() bool { return strings.Count(host.Output(), `"outcome":"refreshed"`) == 2 }) {
		t.Fatalf("want two refreshed outcomes:\n%s", host.Output())
	}

	// One application moves; after the grace the revocation waits for the other.
	if got := readLatest(a); got != v1.ID.Version() {
		t.Fatalf("the application read %s, want the new version", got)
	}
	srv.Advance(2 * time.Hour)
	time.Sleep(1100 * time.Millisecond) // the binary reads the emulator's clock at most once a second
	sweep()
	if got := wh.Revoked(); len(got) != 0 {
		t.Fatalf("revoked %v while billing-job still reads the old version", got)
	}
	if !eventually(func() bool {
		return strings.Contains(host.Output(), "waits for 1 reader(s) that have not read the new version: "+readerB.ObjectID)
	}) {
		t.Fatalf("the wait does not name the reader:\n%s", host.Output())
	}
	res, err := invoke("RotationStatus", hostsim.HTTPEnvelope("RotationStatus", "GET", "format=json", nil)).HTTPOutput()
	if err != nil {
		t.Fatal(err)
	}
	var rep rotation.StatusReport
	if err := json.Unmarshal([]byte(res.Body), &rep); err != nil {
		t.Fatalf("status JSON: %v\n%.300s", err, res.Body)
	}
	var cs []rotation.ConsumerView
	for _, s := range rep.Secrets {
		if s.Secret == "orders-key" {
			cs = s.Consumers
		}
	}
	if len(cs) != 2 || cs[0].Reader != readerB.ObjectID || cs[0].Current || cs[1].Reader != readerA.ObjectID || !cs[1].Current {
		t.Fatalf("status consumers: %+v", cs)
	}

	// The other moves: revoked, and the replaced version disabled.
	readLatest(b)
	srv.Advance(time.Minute)
	time.Sleep(1100 * time.Millisecond)
	sweep()
	if got := wh.Revoked(); len(got) != 1 || got[0] != "cred-1" {
		t.Fatalf("revoked %v after both moved, want cred-1\n%s", got, host.Output())
	}
	if _, err := a.GetSecret(ctx, "orders-key", v0, nil); err == nil || !strings.Contains(err.Error(), "SecretDisabled") {
		t.Fatalf("the replaced version is still readable: %v", err)
	}

	out := host.Output() + output.String()
	for _, v := range []string{signingKey, hookKey, "e2e-initial-orders-key", *v1.Value} {
		if strings.Contains(out, v) {
			t.Fatal("a secret value appears in the handler's logs or responses")
		}
	}
}

// eventually polls cond for up to 5 s: the handler's log lines reach Output through a pipe, a little
// after the invocation's answer.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
