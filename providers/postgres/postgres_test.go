package postgres_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kvrotator/kvrotator/internal/pgtest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/postgres"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// One server logs every statement; each subtest has its own roles on it.
func TestAgainstAServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"log_statement": "all"})
	p := providerFor(srv)
	ctx := context.Background()

	t.Run("alternates and never touches the active login", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "alt")
		active, activePassword := l.a, l.passwordA
		inactive := map[string]string{l.a: l.b, l.b: l.a}
		for i := range 4 { // a→b→a→b→a
			req := l.request(active, activePassword)
			before := storedVerifier(t, srv, active)
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
			if storedVerifier(t, srv, active) != before {
				t.Fatalf("rotation %d: the active login's stored password changed", i+1)
			}
			if v := storedVerifier(t, srv, cred.CredentialID); !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") {
				t.Fatalf("rotation %d: stored %q…, want a SCRAM-SHA-256 verifier", i+1, v[:min(len(v), 14)])
			}
			if len(cred.Value.Reveal()) != postgres.PasswordLength || cred.Value.Reveal() == activePassword {
				t.Fatalf("rotation %d: a %d-character value", i+1, cred.Value.Len())
			}
			active, activePassword = cred.CredentialID, cred.Value.Reveal()
		}
	})

	t.Run("the server log never holds the password", func(t *testing.T) {
		t.Parallel()
		// The superuser keeps the statement out of the log; a CREATEROLE admin cannot, so the log
		// holds the verifier, never the password.
		for _, superuser := range []bool{true, false} {
			l := makeLogins(t, srv, map[bool]string{true: "logsu", false: "logcr"}[superuser])
			req := l.request(l.a, l.passwordA)
			if superuser {
				req.Params["postgres-admin-user"] = srv.AdminUser
				req.Secrets = vaultSecrets{adminSecret: srv.AdminPassword}
			}
			cred, err := p.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Verify(ctx, req, cred); err != nil {
				t.Fatal(err)
			}
			verifier := storedVerifier(t, srv, l.b)
			log := srv.Log()
			if strings.Contains(log, cred.Value.Reveal()) {
				t.Fatalf("superuser=%v: the server log holds the new password", superuser)
			}
			alter := `ALTER ROLE "` + l.b + `" PASSWORD`
			if superuser && (strings.Contains(log, verifier) || strings.Contains(log, alter)) {
				t.Fatal("the superuser's ALTER ROLE reached the statement log")
			}
			if !superuser && !strings.Contains(log, alter+" 'SCRAM-SHA-256$4096:") {
				t.Fatal("the statement log did not record the CREATEROLE admin's ALTER ROLE: the check above proves nothing")
			}
		}
	})

	t.Run("repeating create sets the inactive login again", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "again")
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

	t.Run("connection-string format", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "cs")
		req := l.request(l.a, l.passwordA, "postgres-format", "connection-string")
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(cred.Value.Reveal())
		if err != nil || u.Scheme != "postgres" || u.User.Username() != l.b || u.Host != srv.Addr ||
			u.Path != "/"+pgtest.Database || u.Query().Get("sslmode") != "verify-full" {
			t.Fatalf("value is not postgres://%s:…@%s/%s?sslmode=verify-full (err %v)", l.b, srv.Addr, pgtest.Database, err)
		}
		// The application connects with the value as it is (and its own trust in the server's CA).
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(cctx, cred.Value.Reveal()+"&sslrootcert="+url.QueryEscape(srv.CAFile))
		if err != nil {
			t.Fatalf("the stored connection string does not connect: %v", err)
		}
		c.Close(cctx)

		// The next rotation's current value logs in as b; a CredentialId that still says a would
		// make it change b, the login the vault holds: refused, and b untouched.
		before := storedVerifier(t, srv, l.b)
		wrong := l.request(l.a, cred.Value.Reveal(), "postgres-format", "connection-string")
		_, err = p.Create(ctx, wrong)
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != "CredentialId" {
			t.Fatalf("create with a CredentialId that contradicts the value: %v, want a ConfigError on CredentialId", err)
		}
		clean(t, err, cred.Value.Reveal())
		if storedVerifier(t, srv, l.b) != before {
			t.Fatal("the login the vault holds was changed")
		}
	})

	t.Run("single-user mode", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "single")
		req := l.request("", l.passwordA, "postgres-users", l.a, "CredentialId", "")
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if cred.CredentialID != l.a {
			t.Fatalf("CredentialID %q, want %q", cred.CredentialID, l.a)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
		// The documented risk: the old password stops working at once.
		if l.login(l.a, l.passwordA) == nil {
			t.Fatal("the old password still works after a single-user rotation")
		}
		l.mustLogin(t, l.a, cred.Value.Reveal(), "with the new password")
	})

	t.Run("a wrong admin password is permanent", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "wrongadmin")
		req := l.request(l.a, l.passwordA)
		req.Secrets = vaultSecrets{adminSecret: "not-the-rotator-password"}
		_, err := p.Create(ctx, req)
		if err == nil || !providers.IsPermanent(err) || sqlState(err) != "28P01" {
			t.Fatalf("create: %v, want a permanent 28P01", err)
		}
		clean(t, err, append(l.initialPasswords, "not-the-rotator-password")...)
		l.mustLogin(t, l.b, l.passwordB, "the inactive login after a failed rotation")
	})

	t.Run("an admin without CREATEROLE is permanent", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "weak")
		exec(t, srv, "ALTER ROLE "+l.rotator+" NOCREATEROLE")
		_, err := p.Create(ctx, l.request(l.a, l.passwordA))
		if err == nil || !providers.IsPermanent(err) || sqlState(err) != "42501" {
			t.Fatalf("create: %v, want a permanent 42501 (insufficient privilege)", err)
		}
		clean(t, err, l.initialPasswords...)
	})

	t.Run("a missing login is a configuration error", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "missing")
		for _, users := range []string{l.a + ",missing_c", "missing_c," + l.b} {
			active := strings.Split(users, ",")[0]
			_, err := p.Create(ctx, l.request(active, "x", "postgres-users", users))
			var ce *providers.ConfigError
			if !errors.As(err, &ce) || ce.Tag != "postgres-users" || !strings.Contains(err.Error(), `"missing_c" does not exist`) {
				t.Fatalf("users %s: %v, want a ConfigError on postgres-users naming missing_c", users, err)
			}
		}
		l.mustLogin(t, l.b, l.passwordB, "the inactive login")
	})

	t.Run("a login that cannot log in is a configuration error", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "nologin")
		exec(t, srv, "ALTER ROLE "+l.b+" NOLOGIN")
		_, err := p.Create(ctx, l.request(l.a, l.passwordA))
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "cannot log in") {
			t.Fatalf("create: %v, want a ConfigError saying it cannot log in", err)
		}
	})

	t.Run("a missing database is permanent", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "nodb")
		_, err := p.Create(ctx, l.request(l.a, l.passwordA, "ProviderAddress", srv.Addr+"/no_such_db"))
		if err == nil || !providers.IsPermanent(err) || sqlState(err) != "3D000" {
			t.Fatalf("create: %v, want a permanent 3D000", err)
		}
	})

	t.Run("a missing admin secret is reported with its name", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "nosecret")
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
		l := makeLogins(t, srv, "badverify")
		req := l.request(l.a, l.passwordA)
		err := p.Verify(ctx, req, providers.Credential{Value: providers.NewValue("not-the-password"), CredentialID: l.b})
		if err == nil || providers.IsPermanent(err) || sqlState(err) != "28P01" {
			t.Fatalf("verify: %v, want a transient 28P01 (the engine retries through propagation)", err)
		}
		clean(t, err, "not-the-password")
		err = p.Verify(ctx, req, providers.Credential{Value: providers.NewValue(l.passwordA), CredentialID: "someone_else"})
		if err == nil || !providers.IsPermanent(err) {
			t.Fatalf("verify of a login outside postgres-users: %v, want permanent", err)
		}
	})

	t.Run("verify never sends the password in clear text", func(t *testing.T) {
		t.Parallel()
		// The login's pg_hba.conf line asks for a cleartext password: verify refuses to send it.
		l := makeLogins(t, srv, "cleartext")
		srv.PrependHBA(t, "hostssl all "+l.b+" 127.0.0.1/32 password")
		req := l.request(l.a, l.passwordA)
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Verify(ctx, req, cred)
		if !errors.Is(err, postgres.ErrAuthMethod) || !providers.IsPermanent(err) {
			t.Fatalf("verify against cleartext authentication: %v, want a permanent ErrAuthMethod", err)
		}
		clean(t, err, cred.Value.Reveal())
		if strings.Contains(srv.Log(), `password authentication failed for user "`+l.b+`"`) {
			t.Fatal("the server checked a password: one was sent")
		}
	})

	t.Run("the admin never sends an MD5 digest", func(t *testing.T) {
		t.Parallel()
		// The admin's password is stored as an MD5 hash and pg_hba.conf asks for md5: the server
		// asks for an MD5 digest, and the admin connection refuses before answering.
		l := makeLogins(t, srv, "md5admin")
		exec(t, srv, "SET password_encryption = 'md5'; ALTER ROLE "+l.rotator+" PASSWORD '"+l.rotatorPassword+"'")
		srv.PrependHBA(t, "hostssl all "+l.rotator+" 127.0.0.1/32 md5")
		before := storedVerifier(t, srv, l.b)
		_, err := p.Create(ctx, l.request(l.a, l.passwordA))
		if !errors.Is(err, postgres.ErrAuthMethod) || !providers.IsPermanent(err) {
			t.Fatalf("create against md5 authentication: %v, want a permanent ErrAuthMethod", err)
		}
		clean(t, err, l.initialPasswords...)
		if storedVerifier(t, srv, l.b) != before {
			t.Fatal("the inactive login's password changed")
		}
		if strings.Contains(srv.Log(), `password authentication failed for user "`+l.rotator+`"`) {
			t.Fatal("the server checked a digest: one was sent")
		}
	})
}

func TestServerDownIsTransient(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	l := makeLogins(t, srv, "down")
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
	ca := pgtest.NewCA(t)
	srv := pgtest.StartServer(t, &pgtest.Options{CA: ca, Settings: map[string]string{"log_connections": "on"}})
	port := strconv.Itoa(srv.Port)
	l := makeLogins(t, srv, "tls")
	p := postgres.New(postgres.WithRootCAFile(ca.CertFile))
	ctx := context.Background()

	// The default (verify-full) and verify-ca, by address and by name, trusting the operator's CA.
	active, activePassword := l.a, l.passwordA
	for _, tc := range []struct{ host, mode string }{{"127.0.0.1", ""}, {"localhost", ""}, {"127.0.0.1", "verify-ca"}, {"localhost", "verify-full"}} {
		req := l.request(active, activePassword, "postgres-sslmode", tc.mode, "ProviderAddress", tc.host+":"+port+"/"+pgtest.Database)
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatalf("%s %q: create: %v", tc.host, tc.mode, err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatalf("%s %q: verify: %v", tc.host, tc.mode, err)
		}
		active, activePassword = cred.CredentialID, cred.Value.Reveal()
	}

	// A provider that trusts another CA (or only the system's roots) refuses the server before
	// sending anything: the server never learns which login was meant.
	for name, other := range map[string]*postgres.Provider{
		"another CA":          postgres.New(postgres.WithRootCAFile(pgtest.NewCA(t).CertFile)),
		"the system's roots":  postgres.New(),
		"verify-ca, other CA": postgres.New(postgres.WithRootCAFile(pgtest.NewCA(t).CertFile)),
	} {
		mode := ""
		if strings.HasPrefix(name, "verify-ca") {
			mode = "verify-ca"
		}
		req := l.request(active, activePassword, "postgres-sslmode", mode)
		_, err := other.Create(ctx, req)
		if !errors.Is(err, postgres.ErrUntrustedServer) || !providers.IsPermanent(err) {
			t.Fatalf("%s: create: %v, want a permanent ErrUntrustedServer", name, err)
		}
		if !strings.Contains(err.Error(), postgres.EnvCAFile) {
			t.Errorf("%s: the error does not tell the operator what to set: %v", name, err)
		}
		err = other.Verify(ctx, req, providers.Credential{Value: providers.NewValue(activePassword), CredentialID: active})
		if !errors.Is(err, postgres.ErrUntrustedServer) || !providers.IsPermanent(err) {
			t.Fatalf("%s: verify: %v, want a permanent ErrUntrustedServer", name, err)
		}
	}
	if !strings.Contains(srv.Log(), "user="+l.rotator+" database=postgres application_name=kvrotator SSL enabled") {
		t.Fatal("the trusted logins are not in the server log: the check below proves nothing")
	}
	// Only the trusted connections (4 creates as the rotator) reached the login stage.
	if n := strings.Count(srv.Log(), "connection authorized: user="+l.rotator+" "); n != 4 {
		t.Fatalf("the server saw %d logins as %s, want the 4 trusted ones", n, l.rotator)
	}

	// A certificate from the trusted CA for another name: verify-full refuses it, verify-ca takes it.
	other := pgtest.StartServer(t, &pgtest.Options{CA: ca, CertHosts: []string{"db.example.com"}})
	lo := makeLogins(t, other, "tlsname")
	_, err := p.Create(ctx, lo.request(lo.a, lo.passwordA))
	if !errors.Is(err, postgres.ErrUntrustedServer) || !providers.IsPermanent(err) {
		t.Fatalf("verify-full, a certificate for another name: %v, want a permanent ErrUntrustedServer", err)
	}
	if _, err := p.Create(ctx, lo.request(lo.a, lo.passwordA, "postgres-sslmode", "verify-ca")); err != nil {
		t.Fatalf("verify-ca, a certificate for another name from the trusted CA: %v", err)
	}

	// A server without TLS: verify-full refuses it (ErrNoTLS); disable, allowed for loopback, works
	// and is still SCRAM-only (the cleartext test below).
	plain := pgtest.StartServer(t, nil)
	lp := makeLogins(t, plain, "plain")
	_, err = p.Create(ctx, lp.request(lp.a, lp.passwordA))
	if !errors.Is(err, postgres.ErrNoTLS) || !providers.IsPermanent(err) {
		t.Fatalf("verify-full against a server without TLS: %v, want a permanent ErrNoTLS", err)
	}
	req := lp.request(lp.a, lp.passwordA, "postgres-sslmode", "disable")
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatalf("disable on loopback: %v", err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatalf("disable on loopback: verify: %v", err)
	}

	// The operator's CA file gone: a permanent error naming the setting.
	_, err = postgres.New(postgres.WithRootCAFile(filepath.Join(t.TempDir(), "missing.pem"))).Create(ctx, l.request(active, activePassword))
	if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), postgres.EnvCAFile) {
		t.Fatalf("a missing CA file: %v, want a permanent error naming %s", err, postgres.EnvCAFile)
	}
}

// Without the disable mode's TLS, logins are still SCRAM-only: a loopback server that asks for a
// cleartext password is refused.
func TestDisableOnLoopbackIsStillSCRAMOnly(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t, nil)
	l := makeLogins(t, srv, "plainauth")
	srv.PrependHBA(t, "host all "+l.rotator+" 127.0.0.1/32 password")
	before := storedVerifier(t, srv, l.b)
	_, err := postgres.New().Create(context.Background(), l.request(l.a, l.passwordA, "postgres-sslmode", "disable"))
	if !errors.Is(err, postgres.ErrAuthMethod) || !providers.IsPermanent(err) {
		t.Fatalf("create: %v, want a permanent ErrAuthMethod", err)
	}
	clean(t, err, l.initialPasswords...)
	if storedVerifier(t, srv, l.b) != before {
		t.Fatal("the inactive login's password changed")
	}
}

// The registered provider reads the operator's CA from KVROTATOR_POSTGRES_CA_FILE when it is built;
// without it, libpq's PGSSLROOTCERT still applies (t.Setenv: not parallel).
func TestCAFromTheEnvironment(t *testing.T) {
	srv := startServer(t, nil)
	l := makeLogins(t, srv, "envca")
	ctx := context.Background()

	t.Setenv(postgres.EnvCAFile, srv.CAFile)
	set, problems := registry.Build(registry.Env{})
	if problems[postgres.Name] != nil {
		t.Fatal(problems[postgres.Name])
	}
	p, ok := set.Lookup(postgres.Name)
	if !ok || p.Shape() != providers.ShapeAlternating {
		t.Fatal("postgres is not registered as an alternating provider")
	}
	if _, isRevoker := p.(providers.Revoker); isRevoker {
		t.Fatal("postgres has nothing to revoke but implements Revoker")
	}
	req := l.request(l.a, l.passwordA)
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatalf("with %s: %v", postgres.EnvCAFile, err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []string{filepath.Join(t.TempDir(), "missing.pem"), writeFile(t, "not a certificate")} {
		t.Setenv(postgres.EnvCAFile, bad)
		_, problems = registry.Build(registry.Env{})
		if err := problems[postgres.Name]; err == nil || !strings.Contains(err.Error(), postgres.EnvCAFile) {
			t.Fatalf("%s=%s: %v, want a build error naming the setting", postgres.EnvCAFile, bad, err)
		}
	}

	t.Setenv(postgres.EnvCAFile, "")
	t.Setenv("PGSSLROOTCERT", srv.CAFile)
	p2, err := postgres.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	req = l.request(cred.CredentialID, cred.Value.Reveal())
	if _, err := p2.Create(ctx, req); err != nil {
		t.Fatalf("with PGSSLROOTCERT: %v", err)
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
