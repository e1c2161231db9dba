package main

import (
	"context"
	"encoding/json"
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
)

// TestE2EDefenderAlert: the built binary takes a Defender for Key Vault alert shaped as workflow
// automation delivers it, finds in the emulator's audit log (the real azlogs client) what the alert's
// identity read, reports it as a plan, and — restarted with KVROTATOR_DEFENDER_ROTATE=true — rotates it;
// another application's secret is untouched and a repeated alert changes nothing.
func TestE2EDefenderAlert(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	intruder := emulator.IdentityConfig{Name: "intruder", Managed: true, ClientID: "cccccccc-0000-4000-8000-00000000000c", ObjectID: "cccccccc-1111-4111-8111-00000000000c",
		Roles: []emulator.RoleAssignment{{Role: emulator.RoleSecretsUser, Vault: "*"}}}
	app := emulator.IdentityConfig{Name: "orders-api", Managed: true, ClientID: "aaaaaaaa-0000-4000-8000-00000000000a", ObjectID: "aaaaaaaa-1111-4111-8111-00000000000a",
		Roles: []emulator.RoleAssignment{{Role: emulator.RoleSecretsUser, Vault: "*"}}}
	ca := filepath.Join(dir, "ca.pem")
	srv, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Addr: "127.0.0.1:0", CACertFile: ca, DisableLimits: true,
		Vaults:     []emulator.VaultConfig{{Name: "def-vault", Addr: "127.0.0.1:0"}},
		Identities: []emulator.IdentityConfig{emulator.DefaultIdentity(), intruder, app}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	env := append(cleanEnv(os.Environ()), "KVROTATOR_VAULTS=def-vault="+srv.VaultAddrURL("def-vault"),
		"IDENTITY_ENDPOINT="+srv.IdentityEndpoint(), "IDENTITY_HEADER="+srv.IdentityHeader(), "SSL_CERT_FILE="+ca,
		"KVROTATOR_CLOCK_URL="+srv.URL()+"/_emulator/clock", "KVROTATOR_JOURNAL_DIR="+filepath.Join(dir, "journal"),
		"KVROTATOR_LOG_WORKSPACE_ID="+srv.WorkspaceID(), "KVROTATOR_LOGS_ENDPOINT="+srv.LogsEndpoint())
	start := func(extra ...string) *hostsim.Host {
		h, err := hostsim.Start(context.Background(), hostsim.Options{Binary: bin, Env: append(append([]string(nil), env...), extra...)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Stop() })
		return h
	}
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, _ := azidentity.NewManagedIdentityCredential(nil)
	opts := &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}}
	admin, _ := azsecrets.NewClient(srv.VaultURL("def-vault"), cred, opts)
	as := func(id emulator.IdentityConfig) *azsecrets.Client {
		tok, _ := srv.IssueToken(id.ClientID, "https://vault.azure.net", time.Hour)
		c, _ := azsecrets.NewClient(srv.VaultURL("def-vault"), appToken(tok), opts)
		return c
	}
	ctx := context.Background()
	for _, name := range []string{"stolen-key", "app-key"} {
		v := "e2e-initial-" + name
		exp := srv.Now().Add(200 * 24 * time.Hour)
		tag := "random"
		if _, err := admin.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: &v, Tags: map[string]*string{"rotation-provider": &tag},
			SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := as(intruder).GetSecret(ctx, "stolen-key", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := as(app).GetSecret(ctx, "app-key", "", nil); err != nil {
		t.Fatal(err)
	}
	now := srv.Now().UTC()
	alert := map[string]any{"AlertType": "KV_SuspiciousIPAccess", "SystemAlertId": "2518310283999_e2e-alert-1",
		"StartTimeUtc": now.Add(-10 * time.Minute).Format(time.RFC3339), "EndTimeUtc": now.Format(time.RFC3339),
		"ResourceIdentifiers": []any{map[string]any{"$id": "1", "Type": "AzureResource", "AzureResourceId": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/def-vault"}},
		"Entities":            []any{map[string]any{"$id": "2", "Type": "account", "Name": "intruder", "AadUserId": intruder.ObjectID}}}
	body, _ := json.Marshal(alert)
	post := func(h *hostsim.Host) hostsim.HTTPResult {
		t.Helper()
		r, err := h.Invoke(ctx, "DefenderAlert", hostsim.HTTPEnvelope("DefenderAlert", "POST", "", body))
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.HTTPOutput()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	versions := func(name string) int {
		n := 0
		for p := admin.NewListSecretPropertiesVersionsPager(name, nil); p.More(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Value)
		}
		return n
	}

	h := start()
	res := post(h)
	if res.StatusCode.String() != "200" || !strings.Contains(res.Body, `"outcome":"planned"`) || !strings.Contains(res.Body, "stolen-key") ||
		strings.Contains(res.Body, "app-key") || versions("stolen-key") != 1 {
		t.Fatalf("plan: %+v\n%s", res, h.Output())
	}
	_ = h.Stop()

	// The operator turns automatic response on; a new alert (another id) rotates; the same again does nothing.
	alert["SystemAlertId"] = "2518310283999_e2e-alert-2"
	body, _ = json.Marshal(alert)
	h = start("KVROTATOR_DEFENDER_ROTATE=true")
	if res := post(h); res.StatusCode.String() != "200" || !strings.Contains(res.Body, `"outcome":"emergency"`) || versions("stolen-key") != 2 || versions("app-key") != 1 {
		t.Fatalf("rotate: %+v\n%s", res, h.Output())
	}
	if res := post(h); !strings.Contains(res.Body, "handled already") || versions("stolen-key") != 2 {
		t.Fatalf("again: %+v", res)
	}
	for _, out := range []string{h.Output()} {
		if strings.Contains(out, "e2e-initial-stolen-key") || strings.Contains(out, "e2e-initial-app-key") {
			t.Fatal("a value appears in the logs")
		}
	}
}
