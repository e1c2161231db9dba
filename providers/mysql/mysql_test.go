package mysql_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/mysqltest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/mysql"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// One server with every log on (general, slow with every statement, binary); each subtest has its own
// accounts on it.
func TestAgainstAServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{
		"general_log": "ON", "general_log_file": "general.log",
		"slow_query_log": "ON", "slow_query_log_file": "slow.log", "long_query_time": "0", "log_slow_admin_statements": "ON",
		"log_bin": "binlog",
	})
	p := providerFor(srv)
	ctx := context.Background()

	t.Run("alternates and never touches the active login", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "alt", "")
		active, activePassword := l.a, l.passwordA
		inactive := map[string]string{l.a: l.b, l.b: l.a}
		for i := range 4 { // a→b→a→b→a
			req := l.request(active, activePassword)
			before := stored(t, srv, active)
			cred, err := p.Create(ctx, req)
			if err != nil {
				t.Fatalf("rotation %d: create: %v", i+1, err)
			}
			if cred.CredentialID != inactive[active] {
				t.Fatalf("rotation %d: set %s's password while %s is active; want %s", i+1, cred.CredentialID, active, inactive[active])
			}
			if err := p.Verify(ctx, req, cred); err != nil {
				t.Fatalf("rotation %d: verify: %v", i+1, err)
			}
			l.mustLogin(t, cred.CredentialID, cred.Value.Reveal(), "after the rotation")
			l.mustLogin(t, active, activePassword, "the active login after the rotation")
			if stored(t, srv, active) != before {
				t.Fatalf("rotation %d: the active login's stored password changed", i+1)
			}
			if s := stored(t, srv, cred.CredentialID); !strings.HasPrefix(s, "mysql_native_password *") {
				t.Fatalf("rotation %d: stored %q…, want a mysql_native_password hash", i+1, s[:min(len(s), 25)])
			}
			if len(cred.Value.Reveal()) != mysql.PasswordLength || cred.Value.Reveal() == activePassword {
				t.Fatalf("rotation %d: a %d-character value", i+1, cred.Value.Len())
			}
			active, activePassword = cred.CredentialID, cred.Value.Reveal()
		}
	})

	t.Run("no log holds the password", func(t *testing.T) {
		t.Parallel()
		// The documented rotator may not turn the general log off (sql_log_off needs SUPER): the
		// statement reaches the general, slow and binary logs, with the hash, never the password. The
		// server's administrator (SUPER) keeps it out of the general log.
		for _, super := range []bool{false, true} {
			l := makeLogins(t, srv, map[bool]string{false: "logrot", true: "logsu"}[super], "")
			req := l.request(l.a, l.passwordA)
			if super {
				req.Params["mysql-admin-user"] = srv.AdminUser
				req.Secrets = vaultSecrets{adminSecret: srv.AdminPassword}
			}
			cred, err := p.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(ctx, req, cred); err != nil {
				t.Fatal(err)
			}
			hash := strings.TrimPrefix(stored(t, srv, l.b), "mysql_native_password ")
			logs := srv.Logs()
			if strings.Contains(logs, cred.Value.Reveal()) {
				t.Fatalf("super=%v: a server log holds the new password", super)
			}
			alter := "ALTER USER '" + l.b + "'@'%' IDENTIFIED VIA mysql_native_password USING '" + hash + "'"
			if n := strings.Count(logs, alter); (!super && n != 3) || (super && n != 2) {
				// rotator: general, slow and binary log; administrator: slow and binary log only.
				t.Fatalf("super=%v: the logs hold the ALTER USER statement %d times: the check above proves nothing\n%s", super, n, logs)
			}
		}
	})

	t.Run("ed25519 accounts keep their plugin", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "ed", "ed25519")
		req := l.request(l.a, l.passwordA)
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
		if s := stored(t, srv, l.b); !strings.HasPrefix(s, "ed25519 ") || len(s) != len("ed25519 ")+43 {
			t.Fatalf("stored %q, want an ed25519 public key", s)
		}
		l.mustLogin(t, l.b, cred.Value.Reveal(), "with the new password")
		if strings.Contains(srv.Logs(), cred.Value.Reveal()) {
			t.Fatal("a server log holds the new password")
		}
	})

	t.Run("repeating create sets the inactive login again", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "again", "")
		req := l.request(l.a, l.passwordA)
		first, err1 := p.Create(ctx, req)
		second, err2 := p.Create(ctx, req)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if first.CredentialID != l.b || second.CredentialID != l.b || first.Value.Reveal() == second.Value.Reveal() {
			t.Fatalf("created %s then %s", first.CredentialID, second.CredentialID)
		}
		l.mustLogin(t, l.b, second.Value.Reveal(), "after the second create")
		if l.login(l.b, first.Value.Reveal()) == nil {
			t.Fatal("the first attempt's password still works: two passwords for one login")
		}
		l.mustLogin(t, l.a, l.passwordA, "the active login")
	})

	t.Run("url format", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "url", "")
		req := l.request(l.a, l.passwordA, "mysql-format", "url")
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(cred.Value.Reveal())
		pw, _ := u.User.Password()
		if err != nil || u.Scheme != "mysql" || u.User.Username() != l.b || u.Host != srv.Addr || u.Path != "/"+appDB {
			t.Fatalf("value is not mysql://%s:…@%s/%s (err %v)", l.b, srv.Addr, appDB, err)
		}
		l.mustLogin(t, l.b, pw, "with the URL's password")

		// The next rotation's current value logs in as b; a CredentialId that still says a would make
		// it change b, the login the vault holds: refused, and b untouched.
		before := stored(t, srv, l.b)
		_, err = p.Create(ctx, l.request(l.a, cred.Value.Reveal(), "mysql-format", "url"))
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != "CredentialId" {
			t.Fatalf("create with a CredentialId that contradicts the value: %v, want a ConfigError on CredentialId", err)
		}
		clean(t, err, cred.Value.Reveal())
		if stored(t, srv, l.b) != before {
			t.Fatal("the login the vault holds was changed")
		}
	})

	t.Run("a wrong admin password is permanent", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "wrongadmin", "")
		req := l.request(l.a, l.passwordA)
		req.Secrets = vaultSecrets{adminSecret: "not-the-rotator-password"}
		_, err := p.Create(ctx, req)
		if err == nil || !providers.IsPermanent(err) || code(err) != 1045 {
			t.Fatalf("create: %v, want a permanent 1045", err)
		}
		clean(t, err, append(l.initialPasswords, "not-the-rotator-password")...)
		l.mustLogin(t, l.b, l.passwordB, "the inactive login after a failed rotation")
	})

	t.Run("an admin without CREATE USER is permanent", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "weak", "")
		srv.Exec(t, "REVOKE CREATE USER ON *.* FROM "+l.rotator+"@'%'")
		_, err := p.Create(ctx, l.request(l.a, l.passwordA))
		if err == nil || !providers.IsPermanent(err) || code(err) != 1227 {
			t.Fatalf("create: %v, want a permanent 1227 (access denied; you need CREATE USER)", err)
		}
		clean(t, err, l.initialPasswords...)
		l.mustLogin(t, l.b, l.passwordB, "the inactive login")
	})

	t.Run("an admin that cannot read the accounts is told the grant", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "noselect", "")
		srv.Exec(t, "REVOKE SELECT ON mysql.global_priv FROM "+l.rotator+"@'%'")
		_, err := p.Create(ctx, l.request(l.a, l.passwordA))
		if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "GRANT SELECT ON mysql.global_priv") {
			t.Fatalf("create: %v, want a permanent error naming the grant", err)
		}
	})

	t.Run("an admin without PROCESS cannot tell whether the login is in use", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "noprocess", "")
		srv.Exec(t, "REVOKE PROCESS ON *.* FROM "+l.rotator+"@'%'")
		before := stored(t, srv, l.b)
		_, err := p.Create(ctx, l.request(l.a, l.passwordA))
		if !errors.Is(err, mysql.ErrCannotSeeSessions) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "GRANT PROCESS") {
			t.Fatalf("create: %v, want a permanent ErrCannotSeeSessions", err)
		}
		if stored(t, srv, l.b) != before {
			t.Fatal("the login was reset")
		}
		req := l.request(l.a, l.passwordA)
		req.Override = true
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatalf("override: %v", err)
		}
		l.mustLogin(t, l.b, cred.Value.Reveal(), "after the override")
	})

	t.Run("a login with open sessions is not reset", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "busy", "")
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, done, err := open(cctx, srv, l.b, l.passwordB, appDB)
		if err != nil {
			t.Fatal(err)
		}
		before := stored(t, srv, l.b)
		_, err = p.Create(ctx, l.request(l.a, l.passwordA))
		if !errors.Is(err, mysql.ErrOpenSessions) || providers.IsPermanent(err) || !strings.Contains(err.Error(), "open sessions (1") {
			t.Fatalf("create with a session open: %v, want a transient ErrOpenSessions", err)
		}
		if stored(t, srv, l.b) != before {
			t.Fatal("the login with an open session was reset")
		}
		done()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err = p.Create(ctx, l.request(l.a, l.passwordA))
			if !errors.Is(err, mysql.ErrOpenSessions) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond) // the server ends the closed session's thread
		}
		if err != nil {
			t.Fatalf("create after the session ended: %v", err)
		}
	})

	t.Run("a missing account is a configuration error", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "missing", "")
		for _, users := range []string{l.a + ",missing_c", "missing_c," + l.b, l.a + "," + l.b + "@localhost"} {
			active := strings.Split(users, ",")[0]
			_, err := p.Create(ctx, l.request(active, "x", "mysql-users", users))
			var ce *providers.ConfigError
			if !errors.As(err, &ce) || ce.Tag != "mysql-users" || !strings.Contains(err.Error(), "does not exist") {
				t.Fatalf("users %s: %v, want a ConfigError on mysql-users saying an account does not exist", users, err)
			}
		}
		l.mustLogin(t, l.b, l.passwordB, "the inactive login")
	})

	t.Run("a locked account is a configuration error", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "locked", "")
		srv.Exec(t, "ALTER USER "+l.b+"@'%' ACCOUNT LOCK")
		_, err := p.Create(ctx, l.request(l.a, l.passwordA))
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "is locked") {
			t.Fatalf("create: %v, want a ConfigError saying the account is locked", err)
		}
	})

	t.Run("accounts whose authentication cannot be kept are refused", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "plugins", "")
		srv.Exec(t, "ALTER USER "+l.b+"@'%' IDENTIFIED VIA ed25519 USING PASSWORD('x1') OR mysql_native_password USING PASSWORD('x2')")
		before := stored(t, srv, l.b)
		_, err := p.Create(ctx, l.request(l.a, l.passwordA))
		if !errors.Is(err, mysql.ErrUnsupported) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "2 authentication methods") {
			t.Fatalf("two methods: %v, want a permanent ErrUnsupported", err)
		}
		srv.Exec(t, "ALTER USER "+l.b+"@'%' IDENTIFIED VIA unix_socket")
		_, err = p.Create(ctx, l.request(l.a, l.passwordA))
		if !errors.Is(err, mysql.ErrUnsupported) || !strings.Contains(err.Error(), "unix_socket") {
			t.Fatalf("unix_socket: %v, want a permanent ErrUnsupported naming the plugin", err)
		}
		if after := stored(t, srv, l.b); after == before {
			t.Fatal("the second ALTER USER by the test did not take effect")
		}
	})

	t.Run("a missing database is permanent at verification", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "nodb", "")
		req := l.request(l.a, l.passwordA, "ProviderAddress", srv.Addr+"/no_such_db")
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(ctx, req, cred); err == nil || !providers.IsPermanent(err) || (code(err) != 1044 && code(err) != 1049) {
			t.Fatalf("verify: %v, want a permanent 1044 or 1049", err)
		}
	})

	t.Run("a missing admin secret is reported with its name", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "nosecret", "")
		req := l.request(l.a, l.passwordA)
		req.Secrets = vaultSecrets{}
		_, err := p.Create(ctx, req)
		if !errors.Is(err, errNotFound) || !strings.Contains(err.Error(), adminSecret) {
			t.Fatalf("create: %v, want the reader's not-found error naming %s", err, adminSecret)
		}
		req = l.request(l.a, l.passwordA)
		req.Secret = adminSecret
		if _, err := p.Create(ctx, req); err == nil || !providers.IsPermanent(err) {
			t.Fatalf("admin secret = the rotated secret: %v, want a ConfigError", err)
		}
	})

	t.Run("verify with a wrong password is transient", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "badverify", "")
		req := l.request(l.a, l.passwordA)
		err := p.Verify(ctx, req, providers.Credential{Value: providers.NewValue("not-the-password"), CredentialID: l.b})
		if err == nil || providers.IsPermanent(err) || code(err) != 1045 {
			t.Fatalf("verify: %v, want a transient 1045 (the engine retries through propagation)", err)
		}
		clean(t, err, "not-the-password")
		err = p.Verify(ctx, req, providers.Credential{Value: providers.NewValue(l.passwordA), CredentialID: "someone_else"})
		if err == nil || !providers.IsPermanent(err) {
			t.Fatalf("verify of a user outside mysql-users: %v, want permanent", err)
		}
	})

	t.Run("an admin over its connection limit is transient", func(t *testing.T) {
		t.Parallel()
		// The database's "throttling": a per-user connection limit (error 1203) is retried later.
		l := makeLogins(t, srv, "limited", "")
		srv.Exec(t, "ALTER USER "+l.rotator+"@'%' WITH MAX_USER_CONNECTIONS 1")
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, done, err := open(cctx, srv, l.rotator, l.rotatorPassword, "")
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		_, err = p.Create(ctx, l.request(l.a, l.passwordA))
		if err == nil || providers.IsPermanent(err) || (code(err) != 1226 && code(err) != 1203) {
			t.Fatalf("create: %v, want a transient 1226 (or 1203)", err)
		}
		clean(t, err, l.initialPasswords...)
	})
}

func TestServerDownIsTransient(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	l := makeLogins(t, srv, "down", "")
	req := l.request(l.a, l.passwordA)
	srv.Stop()
	p := providerFor(srv)
	_, err := p.Create(context.Background(), req)
	if err == nil || providers.IsPermanent(err) {
		t.Fatalf("create against a stopped server: %v, want transient", err)
	}
	clean(t, err, l.initialPasswords...)
	err = p.Verify(context.Background(), req, providers.Credential{Value: providers.NewValue("whatever-it-was"), CredentialID: l.b})
	if err == nil || providers.IsPermanent(err) {
		t.Fatalf("verify against a stopped server: %v, want transient", err)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ca := mysqltest.NewCA(t)
	srv := mysqltest.StartServer(t, &mysqltest.Options{CA: ca})
	srv.Exec(t, "CREATE DATABASE "+appDB)
	port := strings.TrimPrefix(srv.Addr, "127.0.0.1:")
	l := makeLogins(t, srv, "tls", "")
	p := mysql.New(mysql.WithRootCAFile(ca.CertFile))
	ctx := context.Background()

	// The default (verify-full) and verify-ca, by address and by name, trusting the operator's CA.
	active, activePassword := l.a, l.passwordA
	for _, tc := range []struct{ host, mode string }{{"127.0.0.1", ""}, {"localhost", ""}, {"127.0.0.1", "verify-ca"}, {"localhost", "verify-full"}} {
		req := l.request(active, activePassword, "mysql-tls", tc.mode, "ProviderAddress", tc.host+":"+port+"/"+appDB)
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatalf("%s %q: create: %v", tc.host, tc.mode, err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatalf("%s %q: verify: %v", tc.host, tc.mode, err)
		}
		active, activePassword = cred.CredentialID, cred.Value.Reveal()
	}

	// A provider that trusts another CA (or only the system's roots) refuses the server in the TLS
	// handshake, before the login name is sent.
	for name, tc := range map[string]struct {
		p    *mysql.Provider
		mode string
	}{
		"another CA":          {mysql.New(mysql.WithRootCAFile(mysqltest.NewCA(t).CertFile)), ""},
		"the system's roots":  {mysql.New(), ""},
		"verify-ca, other CA": {mysql.New(mysql.WithRootCAFile(mysqltest.NewCA(t).CertFile)), "verify-ca"},
	} {
		req := l.request(active, activePassword, "mysql-tls", tc.mode)
		_, err := tc.p.Create(ctx, req)
		if !errors.Is(err, mysql.ErrUntrustedServer) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), mysql.EnvCAFile) {
			t.Fatalf("%s: create: %v, want a permanent ErrUntrustedServer naming %s", name, err, mysql.EnvCAFile)
		}
		err = tc.p.Verify(ctx, req, providers.Credential{Value: providers.NewValue(activePassword), CredentialID: active})
		if !errors.Is(err, mysql.ErrUntrustedServer) || !providers.IsPermanent(err) {
			t.Fatalf("%s: verify: %v, want a permanent ErrUntrustedServer", name, err)
		}
	}

	// A certificate from the trusted CA for another name: verify-ca accepts it, verify-full does not.
	named := mysqltest.StartServer(t, &mysqltest.Options{CA: ca, CertHosts: []string{"db.example.com"}})
	named.Exec(t, "CREATE DATABASE "+appDB)
	ln := makeLogins(t, named, "named", "")
	if _, err := p.Create(ctx, ln.request(ln.a, ln.passwordA)); !errors.Is(err, mysql.ErrUntrustedServer) {
		t.Fatalf("verify-full with a certificate for another name: %v, want ErrUntrustedServer", err)
	}
	req := ln.request(ln.a, ln.passwordA, "mysql-tls", "verify-ca")
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatalf("verify-ca with a certificate for another name: %v", err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}

	// A server without TLS is refused before anything is sent.
	plain := mysqltest.StartServer(t, &mysqltest.Options{NoTLS: true})
	plain.Exec(t, "CREATE DATABASE "+appDB)
	lp := makeLogins(t, plain, "plain", "")
	_, err = p.Create(ctx, lp.request(lp.a, lp.passwordA))
	if !errors.Is(err, mysql.ErrNoTLS) || !providers.IsPermanent(err) {
		t.Fatalf("a server without TLS: %v, want a permanent ErrNoTLS", err)
	}
}

// The registered provider reads the operator's CA from KVROTATOR_MYSQL_CA_FILE when it is built
// (t.Setenv: not parallel).
func TestCAFromTheEnvironment(t *testing.T) {
	srv := startServer(t, nil)
	l := makeLogins(t, srv, "envca", "")
	ctx := context.Background()

	t.Setenv(mysql.EnvCAFile, srv.CAFile)
	set, problems := registry.Build(registry.Env{})
	if problems[mysql.Name] != nil {
		t.Fatal(problems[mysql.Name])
	}
	p, ok := set.Lookup(mysql.Name)
	if !ok || p.Shape() != providers.ShapeAlternating {
		t.Fatal("mysql is not registered as an alternating provider")
	}
	if _, isRevoker := p.(providers.Revoker); isRevoker {
		t.Fatal("mysql has nothing to revoke but implements Revoker")
	}
	req := l.request(l.a, l.passwordA)
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatalf("with %s: %v", mysql.EnvCAFile, err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{filepath.Join(t.TempDir(), "missing.pem"), writeFile(t, "not a certificate")} {
		t.Setenv(mysql.EnvCAFile, bad)
		_, problems = registry.Build(registry.Env{})
		if err := problems[mysql.Name]; err == nil || !strings.Contains(err.Error(), mysql.EnvCAFile) {
			t.Fatalf("%s=%s: %v, want a build error naming the setting", mysql.EnvCAFile, bad, err)
		}
	}
	t.Setenv(mysql.EnvCAFile, "")
	if p, err := mysql.FromEnv(os.Getenv); err != nil || p == nil {
		t.Fatalf("without the setting: %v", err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "file.pem")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
