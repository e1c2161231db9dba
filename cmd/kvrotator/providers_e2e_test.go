package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/jackc/pgx/v5"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/internal/hostsim"
	"github.com/kvrotator/kvrotator/internal/pgtest"
	"github.com/kvrotator/kvrotator/providers/sendgrid/sendgridtest"
)

// TestProvidersThroughTheHandler drives real providers through the binary, as the Functions host
// would: a SecretNearExpiry event, the RotateSecret HTTP trigger, and the ScheduledSweep timer, for a
// PostgreSQL login pair on a real server and a SendGrid key on a local server that follows SendGrid's
// documented contract. After each trigger the vault's latest value must work at the issuer.
func TestProvidersThroughTheHandler(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: builds and runs the binary")
	}
	bin := buildBinary(t)
	pg := pgtest.StartServer(t, nil)
	sg := sendgridtest.NewServer()
	t.Cleanup(sg.Close)

	ca := filepath.Join(t.TempDir(), "ca.pem")
	srv, err := emulator.New(emulator.Config{Addr: "127.0.0.1:0", CACertFile: ca, DisableLimits: true,
		Vaults: []emulator.VaultConfig{{Name: "prov-vault", Addr: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, _ := azidentity.NewManagedIdentityCredential(nil)
	kv, _ := azsecrets.NewClient(srv.VaultURL("prov-vault"), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}})
	ctx := context.Background()
	seed := func(name, value string, tags map[string]string, expIn time.Duration) string {
		exp := time.Now().Add(expIn)
		tt := map[string]*string{}
		for k, v := range tags {
			tt[k] = &v
		}
		r, err := kv.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: &value, Tags: tt, SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.ID.Version()
	}
	latest := func(name string) (string, string, map[string]string) {
		r, err := kv.GetSecret(ctx, name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		tags := map[string]string{}
		for k, v := range r.Tags {
			tags[k] = *v
		}
		return r.ID.Version(), *r.Value, tags
	}

	// PostgreSQL: a group role, two logins, a CREATEROLE rotator whose password is in the vault.
	admin := pg.Admin(t)
	for _, s := range []string{
		"CREATE ROLE orders NOLOGIN",
		"CREATE ROLE orders_a LOGIN PASSWORD 'e2e-initial-orders-a' IN ROLE orders",
		"CREATE ROLE orders_b LOGIN PASSWORD 'e2e-initial-orders-b' IN ROLE orders",
		"CREATE ROLE orders_rotator LOGIN CREATEROLE PASSWORD 'e2e-rotator-password'",
	} {
		if _, err := admin.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	seed("orders-db-admin", "e2e-rotator-password", nil, 365*24*time.Hour)
	pgVersion := seed("orders-db", "e2e-initial-orders-a", map[string]string{
		"rotation-provider": "postgres", "ProviderAddress": pg.Addr + "/" + pgtest.Database, "postgres-users": "orders_a,orders_b",
		"CredentialId": "orders_a", "postgres-admin-user": "orders_rotator", "postgres-admin-secret": "orders-db-admin",
		"postgres-sslmode": "disable",
	}, 5*24*time.Hour)
	pgWorks := func(when string) {
		t.Helper()
		_, value, tags := latest("orders-db")
		c, err := pgx.Connect(ctx, pg.ConnString(tags["CredentialId"], value, pgtest.Database))
		if err != nil {
			t.Fatalf("%s: the vault's postgres credential (%s) does not log in: %v", when, tags["CredentialId"], err)
		}
		_ = c.Close(ctx)
	}

	// SendGrid: an admin key in the vault, the app's current key.
	adminKey := sg.AddKey("kvrotator-admin", "api_keys.create", "api_keys.read", "api_keys.delete")
	appKey := sg.AddKey("mail-sender", "mail.send")
	seed("sendgrid-admin", adminKey.Value, nil, 365*24*time.Hour)
	sgVersion := seed("mail-key", appKey.Value, map[string]string{
		"rotation-provider": "sendgrid", "sendgrid-admin-secret": "sendgrid-admin", "sendgrid-api-url": sg.URL,
		"CredentialId": appKey.ID, "rotation-grace-hours": "0",
	}, 5*24*time.Hour)
	sgWorks := func(when string) {
		t.Helper()
		_, value, _ := latest("mail-key")
		if !sg.Works(value) {
			t.Fatalf("%s: the vault's SendGrid key does not work", when)
		}
	}

	env := append(cleanEnv(os.Environ()), "KVROTATOR_VAULTS=prov-vault="+srv.VaultAddrURL("prov-vault"),
		"IDENTITY_ENDPOINT="+srv.IdentityEndpoint(), "IDENTITY_HEADER="+srv.IdentityHeader(), "SSL_CERT_FILE="+ca,
		"KVROTATOR_VERIFY_TIMEOUT_SECONDS=20")
	host, err := hostsim.Start(ctx, hostsim.Options{Binary: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Stop() })
	invoke := func(function string, envelope []byte) *hostsim.Response {
		t.Helper()
		r, err := host.Invoke(ctx, function, envelope)
		if err != nil || !r.OK() {
			t.Fatalf("%s: %v %s\nhandler:\n%s", function, err, r.Body, host.Output())
		}
		return r
	}

	// 1. Event Grid: SecretNearExpiry for each.
	for name, version := range map[string]string{"orders-db": pgVersion, "mail-key": sgVersion} {
		r := invoke("KeyVaultEvents", eventEnvelopeFor("prov-vault", name, version))
		if !strings.Contains(strings.Join(r.Envelope.Logs, " "), "rotated") {
			t.Fatalf("%s event: %v", name, r.Envelope.Logs)
		}
	}
	pgWorks("after the event")
	sgWorks("after the event")
	if _, _, tags := latest("orders-db"); tags["CredentialId"] != "orders_b" {
		t.Fatalf("postgres did not flip to the inactive login: %s", tags["CredentialId"])
	}

	// 2. HTTP: a manual rotation of each (a dry run first changes nothing).
	for _, name := range []string{"orders-db", "mail-key"} {
		before, _, _ := latest(name)
		r := invoke("RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(fmt.Sprintf(`{"vault":"prov-vault","secret":%q,"dryRun":true}`, name))))
		if res, _ := r.HTTPOutput(); res.StatusCode.String() != "200" || !strings.Contains(res.Body, "planned") {
			t.Fatalf("%s dry run: %+v", name, res)
		}
		if v, _, _ := latest(name); v != before {
			t.Fatalf("%s: the dry run wrote a version", name)
		}
		r = invoke("RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(fmt.Sprintf(`{"vault":"prov-vault","secret":%q}`, name))))
		if res, _ := r.HTTPOutput(); res.StatusCode.String() != "200" || !strings.Contains(res.Body, "rotated") {
			t.Fatalf("%s manual: %+v\n%s", name, res, host.Output())
		}
	}
	pgWorks("after the manual rotation")
	sgWorks("after the manual rotation")

	// 3. Timer: the sweep revokes the replaced SendGrid keys (grace 0) and leaves only the current one.
	r := invoke("ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now(), time.Now(), false))
	if !strings.Contains(strings.Join(r.Envelope.Logs, " "), "revoked") {
		t.Fatalf("sweep: %v", r.Envelope.Logs)
	}
	sgWorks("after the sweep")
	if sg.Works(appKey.Value) {
		t.Fatal("the original SendGrid key is still live after the grace period")
	}
	live := 0
	for _, k := range sg.Keys() {
		if strings.HasPrefix(k.Name, "kvrotator-mail-key") {
			live++
		}
	}
	if live != 1 {
		_, _, tags := latest("mail-key")
		t.Fatalf("%d kvrotator keys live at SendGrid, want exactly the current one: %+v state %q logs %v", live, sg.Keys(), tags["rotation-state"], r.Envelope.Logs)
	}
	out := host.Output()
	for _, v := range []string{"e2e-initial-orders", "e2e-rotator-password", adminKey.Value, appKey.Value} {
		if strings.Contains(out, v) {
			t.Fatal("a secret value appears in the handler's logs")
		}
	}
}
