package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/pgtest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/postgres"
)

// startServer starts a PostgreSQL server that speaks TLS only, with a certificate for 127.0.0.1 and
// localhost signed by its own test CA (srv.CAFile), and SCRAM-SHA-256 for every login.
func startServer(t *testing.T, settings map[string]string) *pgtest.Server {
	t.Helper()
	return pgtest.StartServer(t, &pgtest.Options{TLS: true, Settings: settings})
}

// providerFor is the provider as the operator configures it for srv: trusting srv's CA
// (KVROTATOR_POSTGRES_CA_FILE), so that the default sslmode, verify-full, verifies the real server.
func providerFor(srv *pgtest.Server) *postgres.Provider {
	return postgres.New(postgres.WithRootCAFile(srv.CAFile))
}

// adminSecret is the secret the postgres-admin-secret tag names.
const adminSecret = "orders-db-rotator"

var errNotFound = errors.New("secret not found")

// vaultSecrets is a fake providers.SecretReader: the other secrets of the vault, by name.
type vaultSecrets map[string]string

func (s vaultSecrets) SecretValue(_ context.Context, name string) (providers.Value, error) {
	v, ok := s[name]
	if !ok {
		return providers.Value{}, fmt.Errorf("secret %q: %w", name, errNotFound)
	}
	return providers.NewValue(v), nil
}

// logins is one application's roles on a test server: a NOLOGIN group role that holds the grants,
// two logins that are members of it, and a rotator role with CREATEROLE (not a superuser).
type logins struct {
	srv              *pgtest.Server
	group, a, b      string
	passwordA        string
	passwordB        string
	rotator          string
	rotatorPassword  string
	table            string
	database         string
	initialPasswords []string
}

// makeLogins creates prefix (group), prefix_a, prefix_b and prefix_rotator on srv, and a table that
// only the group may read, so a login proves the shared grants work.
func makeLogins(t *testing.T, srv *pgtest.Server, prefix string) logins {
	t.Helper()
	l := logins{srv: srv, group: prefix, a: prefix + "_a", b: prefix + "_b", rotator: prefix + "_rotator",
		passwordA: "initial-A-" + prefix, passwordB: "initial-B-" + prefix, rotatorPassword: "rotator-PW-" + prefix,
		table: prefix + "_items", database: pgtest.Database}
	l.initialPasswords = []string{l.passwordA, l.passwordB, l.rotatorPassword, srv.AdminPassword}
	exec(t, srv,
		"CREATE ROLE "+l.group+" NOLOGIN",
		"CREATE ROLE "+l.a+" LOGIN PASSWORD '"+l.passwordA+"' IN ROLE "+l.group,
		"CREATE ROLE "+l.b+" LOGIN PASSWORD '"+l.passwordB+"' IN ROLE "+l.group,
		"CREATE ROLE "+l.rotator+" LOGIN CREATEROLE PASSWORD '"+l.rotatorPassword+"'",
		"CREATE TABLE "+l.table+" (id int)",
		"INSERT INTO "+l.table+" VALUES (1), (2)",
		"GRANT SELECT ON "+l.table+" TO "+l.group,
	)
	return l
}

func exec(t *testing.T, srv *pgtest.Server, statements ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, srv.ConnString(srv.AdminUser, srv.AdminPassword, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, s := range statements {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// address is the ProviderAddress of srv's database.
func address(srv *pgtest.Server) string { return srv.Addr + "/" + pgtest.Database }

// tagsFor are the tags of a secret whose current version holds active's password, with changes
// applied ("" deletes a tag). The admin is the CREATEROLE rotator; postgres-sslmode is not set, so
// connections use the default, verify-full.
func (l logins) tagsFor(active string, changes ...string) providers.Params {
	return secretTags(address(l.srv), l.a+","+l.b, active, l.rotator, changes...)
}

// secretTags are the tags of a postgres secret on the server at address, with changes applied.
func secretTags(address, users, active, admin string, changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":     postgres.Name,
		"ProviderAddress":       address,
		"postgres-users":        users,
		"CredentialId":          active,
		"postgres-admin-user":   admin,
		"postgres-admin-secret": adminSecret,
	}
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == "" {
			delete(p, changes[i])
		} else {
			p[changes[i]] = changes[i+1]
		}
	}
	return p
}

// request is what the engine sends for a secret whose current version holds active's password.
func (l logins) request(active, current string, changes ...string) providers.Request {
	p := l.tagsFor(active, changes...)
	return providers.Request{
		Vault: "myvault", Secret: "orders-db", Version: "v1", Current: providers.NewValue(current),
		CredentialID: p.Get("CredentialId"), Address: p.Get("ProviderAddress"), Params: p,
		IdempotencyKey: "kvr-0123456789abcdef", Secrets: vaultSecrets{adminSecret: l.rotatorPassword}, Now: time.Now(),
	}
}

// login logs in as user with password and reads the group's table: the login works and has the
// application's grants.
func (l logins) login(user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, l.srv.ConnString(user, password, l.database))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM "+l.table).Scan(&n); err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("read %d rows, want 2", n)
	}
	return nil
}

// binding is the operator's KVROTATOR_BINDINGS for the common case: every secret of the test vault
// rotated by postgres may use the server at serverAddr (any database), the logins, and the admin secret.
func binding(t *testing.T, serverAddr string, logins ...string) *bindings.Policy {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"bindings": []any{map[string]any{
		"name":     "orders-db",
		"secrets":  []string{"provider-vault/*"},
		"provider": postgres.Name,
		"allow": map[string][]string{
			"server": {serverAddr + "/*"},
			"login":  logins,
			"secret": {adminSecret},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bindings.Parse(doc, "test bindings", []string{postgres.Name})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// binding binds l's server, its three roles and the admin secret.
func (l logins) binding(t *testing.T) *bindings.Policy {
	return binding(t, l.srv.Addr, l.a, l.b, l.rotator)
}

// mustLogin fails the test unless user logs in with password.
func (l logins) mustLogin(t *testing.T, user, password, when string) {
	t.Helper()
	if err := l.login(user, password); err != nil {
		t.Fatalf("%s: %s cannot log in: %v", when, user, err)
	}
}

// storedVerifier is what the server stores as user's password (superusers may read pg_authid).
func storedVerifier(t *testing.T, srv *pgtest.Server, user string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, srv.ConnString(srv.AdminUser, srv.AdminPassword, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v string
	if err := c.QueryRow(ctx, "SELECT coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1", user).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// sqlState is the SQLSTATE of the postgres.Error in err, "" if none.
func sqlState(err error) string {
	var e *postgres.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// clean fails if err's text mentions any of the secrets.
func clean(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("the error repeats a secret: %v", err)
		}
	}
}
