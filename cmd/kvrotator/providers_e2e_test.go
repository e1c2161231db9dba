package main

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	"github.com/jackc/pgx/v5"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
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
	pg := pgtest.StartServer(t, &pgtest.Options{TLS: true}) // verify-full against the test CA
	sg := sendgridtest.NewServer()
	t.Cleanup(sg.Close)

	ca := filepath.Join(t.TempDir(), "ca.pem")
	srv, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Addr: "127.0.0.1:0", CACertFile: ca, DisableLimits: true,
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

	// A person with tag rights on one secret only: their secret names the database admin's password as
	// its "SendGrid admin key", their own server as the API, and forges an interrupted rotation.
	attacker := newConnCounter(t)
	seed("team-b-key", "team-b-initial", map[string]string{
		"rotation-provider": "sendgrid", "sendgrid-admin-secret": "orders-db-admin", "sendgrid-api-url": "https://" + attacker.addr,
		"sendgrid-scopes": "mail.send", "rotation-state": "started=1;revoke=" + appKey.ID + "@1",
	}, 5*24*time.Hour)

	// The operator's bindings, as a file deployed with the app (KVROTATOR_BINDINGS=<path>): the
	// database secret may reach this server, these logins and the admin password; the mail key this
	// SendGrid admin key at this URL. Nothing is bound for team-b-key.
	dir := t.TempDir()
	binds := filepath.Join(dir, "bindings.json")
	if err := os.WriteFile(binds, fmt.Appendf(nil, `{"bindings": [
		{"name": "orders-db", "secrets": ["prov-vault/orders-db"], "provider": "postgres",
		 "allow": {"server": [%q], "login": ["orders_a", "orders_b", "orders_rotator"], "secret": ["orders-db-admin"]}},
		{"name": "mail", "secrets": ["prov-vault/mail-*"], "provider": "sendgrid",
		 "allow": {"secret": ["sendgrid-admin"], "url": [%q]}}]}`, pg.Addr+"/"+pgtest.Database, sg.URL), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(cleanEnv(os.Environ()), "KVROTATOR_VAULTS=prov-vault="+srv.VaultAddrURL("prov-vault"),
		"IDENTITY_ENDPOINT="+srv.IdentityEndpoint(), "IDENTITY_HEADER="+srv.IdentityHeader(), "SSL_CERT_FILE="+ca,
		"KVROTATOR_VERIFY_TIMEOUT_SECONDS=20", "KVROTATOR_BINDINGS="+binds, "KVROTATOR_POSTGRES_CA_FILE="+pg.CAFile,
		"KVROTATOR_JOURNAL_DIR="+filepath.Join(dir, "journal"))
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

	// 0. The attacker's secret: the event is acknowledged as a permanent failure naming the unbound
	// tags, nothing is contacted, nothing written.
	teamB, _, _ := latest("team-b-key")
	r0 := invoke("KeyVaultEvents", eventEnvelopeFor("prov-vault", "team-b-key", teamB))
	logs0 := strings.Join(r0.Envelope.Logs, " ")
	if !strings.Contains(logs0, "sendgrid-admin-secret") || !strings.Contains(logs0, "not bound") || !strings.Contains(logs0, "permanent") {
		t.Fatalf("attacker's event: %v", r0.Envelope.Logs)
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

	// 2. HTTP: right after the event's rotation, a second one would reset the login the replaced
	// version's consumers still use: 409 with the time it becomes safe, nothing changed.
	before, _, _ := latest("orders-db")
	r409 := invoke("RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(`{"vault":"prov-vault","secret":"orders-db"}`)))
	if res, _ := r409.HTTPOutput(); res.StatusCode.String() != "409" || !strings.Contains(res.Body, "previous version's consumers") {
		t.Fatalf("back to back: %+v", res)
	}
	if v, _, _ := latest("orders-db"); v != before {
		t.Fatal("a refused rotation wrote a version")
	}
	// A manual rotation of each with the override (a dry run first changes nothing).
	for _, name := range []string{"orders-db", "mail-key"} {
		before, _, _ := latest(name)
		r := invoke("RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(fmt.Sprintf(`{"vault":"prov-vault","secret":%q,"dryRun":true,"override":true}`, name))))
		if res, _ := r.HTTPOutput(); res.StatusCode.String() != "200" || !strings.Contains(res.Body, "planned") {
			t.Fatalf("%s dry run: %+v", name, res)
		}
		if v, _, _ := latest(name); v != before {
			t.Fatalf("%s: the dry run wrote a version", name)
		}
		r = invoke("RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(fmt.Sprintf(`{"vault":"prov-vault","secret":%q,"override":true}`, name))))
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
	if v, _, _ := latest("team-b-key"); v != teamB {
		t.Fatal("the attacker's secret was rotated")
	}
	if n := attacker.count(); n != 0 {
		t.Fatalf("the attacker's server got %d connections", n)
	}
	out := host.Output()
	for _, v := range []string{"e2e-initial-orders", "e2e-rotator-password", adminKey.Value, appKey.Value} {
		if strings.Contains(out, v) {
			t.Fatal("a secret value appears in the handler's logs")
		}
	}
	if !strings.Contains(out, "not bound") {
		t.Fatal("the handler's log does not name the unbound reference")
	}

	// 4. The on-premises runner (kvrotator plan / sweep, same binary, same settings) honours the same
	// bindings: the plan names the unbound tags, the sweep leaves the attacker's secret alone and exits 1.
	runner := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		b, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return string(b), cmd.ProcessState.ExitCode()
	}
	_ = host.Stop() // one runner at a time on the journal directory
	plan, code := runner("plan")
	if code != 1 || !strings.Contains(plan, "team-b-key") || !strings.Contains(plan, "not bound") {
		t.Fatalf("plan (exit %d):\n%s", code, plan)
	}
	sweep, code := runner("sweep")
	if code != 1 || attacker.count() != 0 {
		t.Fatalf("sweep (exit %d, attacker connections %d):\n%s", code, attacker.count(), sweep)
	}
	if v, _, _ := latest("team-b-key"); v != teamB {
		t.Fatal("the runner rotated the attacker's secret")
	}
	for _, v := range []string{"e2e-initial-orders", "e2e-rotator-password", adminKey.Value, appKey.Value} {
		if strings.Contains(plan+sweep, v) {
			t.Fatal("a secret value appears in the runner's output")
		}
	}
}

// connCounter is a TCP listener that counts the connections it gets and closes them at once: an
// attacker's server, which must never be contacted.
type connCounter struct {
	addr string
	mu   sync.Mutex
	n    int
}

func newConnCounter(t *testing.T) *connCounter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	c := &connCounter{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.n++
			c.mu.Unlock()
			_ = conn.Close()
		}
	}()
	return c
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
