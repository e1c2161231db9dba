package mysql_test

import (
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/mysqltest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/mysql"
)

// appDB is the database every test server has, holding one table per set of logins.
const appDB = "appdb"

// startServer starts a MariaDB server that speaks TLS only, with a certificate for 127.0.0.1 and
// localhost signed by its own test CA (srv.CAFile), and the application database.
func startServer(t *testing.T, settings map[string]string) *mysqltest.Server {
	t.Helper()
	srv := mysqltest.StartServer(t, &mysqltest.Options{Settings: settings})
	srv.Exec(t, "CREATE DATABASE "+appDB)
	return srv
}

// providerFor is the provider as the operator configures it for srv: trusting srv's CA
// (KVROTATOR_MYSQL_CA_FILE), so that the default, verify-full, verifies the real server.
func providerFor(srv *mysqltest.Server) *mysql.Provider {
	return mysql.New(mysql.WithRootCAFile(srv.CAFile))
}

// adminSecret is the secret the mysql-admin-secret tag names.
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

// logins is one application's accounts on a test server: a role that holds the grants, two accounts
// that have it as their default role, and a rotator with exactly the documented privileges (CREATE
// USER, PROCESS, SELECT on mysql.global_priv).
type logins struct {
	srv              *mysqltest.Server
	role, a, b       string
	passwordA        string
	passwordB        string
	rotator          string
	rotatorPassword  string
	table            string
	initialPasswords []string
}

// makeLogins creates prefix_app (a role), prefix_a, prefix_b and prefix_rot on srv, and a table that only
// the role may read, so a login proves the shared grants work. via is the accounts' authentication
// ("" for mysql_native_password, "ed25519").
func makeLogins(t *testing.T, srv *mysqltest.Server, prefix, via string) logins {
	t.Helper()
	l := logins{srv: srv, role: prefix + "_app", a: prefix + "_a", b: prefix + "_b", rotator: prefix + "_rot",
		passwordA: "initial-A-" + prefix, passwordB: "initial-B-" + prefix, rotatorPassword: "rotator-PW-" + prefix,
		table: appDB + "." + prefix + "_items"}
	l.initialPasswords = []string{l.passwordA, l.passwordB, l.rotatorPassword, srv.AdminPassword}
	ident := func(pw string) string {
		if via == "ed25519" {
			return "IDENTIFIED VIA ed25519 USING PASSWORD('" + pw + "')"
		}
		return "IDENTIFIED BY '" + pw + "'"
	}
	srv.Exec(t,
		"CREATE ROLE "+l.role,
		"CREATE TABLE "+l.table+" (id int)",
		"INSERT INTO "+l.table+" VALUES (1), (2)",
		"GRANT SELECT ON "+l.table+" TO "+l.role,
		"CREATE USER "+l.a+"@'%' "+ident(l.passwordA),
		"CREATE USER "+l.b+"@'%' "+ident(l.passwordB),
		"GRANT "+l.role+" TO "+l.a+"@'%', "+l.b+"@'%'",
		"SET DEFAULT ROLE "+l.role+" FOR "+l.a+"@'%'",
		"SET DEFAULT ROLE "+l.role+" FOR "+l.b+"@'%'",
		"CREATE USER "+l.rotator+"@'%' IDENTIFIED BY '"+l.rotatorPassword+"'",
		"GRANT CREATE USER, PROCESS ON *.* TO "+l.rotator+"@'%'",
		"GRANT SELECT ON mysql.global_priv TO "+l.rotator+"@'%'",
	)
	return l
}

// address is the ProviderAddress of srv's application database.
func address(srv *mysqltest.Server) string { return srv.Addr + "/" + appDB }

// tagsFor are the tags of a secret whose current version holds active's password, with changes applied
// ("" deletes a tag). mysql-tls is not set, so connections use the default, verify-full.
func (l logins) tagsFor(active string, changes ...string) providers.Params {
	return secretTags(address(l.srv), l.a+","+l.b, active, l.rotator, changes...)
}

// secretTags are the tags of a mysql secret on the server at address, with changes applied.
func secretTags(address, users, active, admin string, changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":  mysql.Name,
		"ProviderAddress":    address,
		"mysql-users":        users,
		"CredentialId":       active,
		"mysql-admin-user":   admin,
		"mysql-admin-secret": adminSecret,
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

// open connects to srv as user with password (TLS verified against srv's CA) and returns the connection.
func open(ctx context.Context, srv *mysqltest.Server, user, password, database string) (*sql.Conn, func(), error) {
	c, err := gomysql.NewConnector(srv.Config(user, password, database))
	if err != nil {
		return nil, nil, err
	}
	db := sql.OpenDB(c)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return conn, func() { conn.Close(); db.Close() }, nil
}

// login logs in as user with password and reads the role's table: the login works and has the
// application's grants.
func (l logins) login(user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, done, err := open(ctx, l.srv, user, password, appDB)
	if err != nil {
		return err
	}
	defer done()
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+l.table).Scan(&n); err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("read %d rows, want 2", n)
	}
	return nil
}

// mustLogin fails the test unless user logs in with password.
func (l logins) mustLogin(t *testing.T, user, password, when string) {
	t.Helper()
	if err := l.login(user, password); err != nil {
		t.Fatalf("%s: %s cannot log in: %v", when, user, err)
	}
}

// binding is the operator's KVROTATOR_BINDINGS for the common case: every secret of the test vault
// rotated by mysql may use the server at serverAddr (with or without a database), the logins (the
// admin's name, user@host for the rotated accounts), and the admin secret.
func binding(t *testing.T, serverAddr string, logins ...string) *bindings.Policy {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"bindings": []any{map[string]any{
		"name":     "orders-db",
		"secrets":  []string{"provider-vault/*"},
		"provider": mysql.Name,
		"allow": map[string][]string{
			"server": {serverAddr + "/*"},
			"login":  logins,
			"secret": {adminSecret},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bindings.Parse(doc, "test bindings", []string{mysql.Name})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// binding binds l's server, its accounts, its rotator and the admin secret.
func (l logins) binding(t *testing.T) *bindings.Policy {
	return binding(t, l.srv.Addr, l.a+"@%", l.b+"@%", l.rotator)
}

// stored is what the server stores for user@'%': its plugin and authentication string.
func stored(t *testing.T, srv *mysqltest.Server, user string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, done, err := open(ctx, srv, srv.AdminUser, srv.AdminPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	var plugin, auth sql.NullString
	err = conn.QueryRowContext(ctx, `SELECT JSON_VALUE(Priv, '$.plugin'), JSON_VALUE(Priv, '$.authentication_string')
		FROM mysql.global_priv WHERE User = ? AND Host = '%'`, user).Scan(&plugin, &auth)
	if err != nil {
		t.Fatal(err)
	}
	return plugin.String + " " + auth.String
}

// code is the server's error number in err, 0 if none.
func code(err error) uint16 {
	var e *mysql.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
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

// nativeHashOf is mysql_native_password's stored form of password: "*" and SHA1(SHA1(password)) in hex.
func nativeHashOf(password string) string {
	s1 := sha1.Sum([]byte(password))
	s2 := sha1.Sum(s1[:])
	return "*" + strings.ToUpper(hex.EncodeToString(s2[:]))
}
