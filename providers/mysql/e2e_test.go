package mysql_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/mysql"
	"github.com/kvrotator/kvrotator/rotation"
)

const (
	secretName = "orders-db"
	day        = 24 * time.Hour
)

// harness is the real engine, keyvault adapter and Key Vault emulator around the provider, with the
// operator's bindings for l (its server, its accounts, its rotator, the admin secret) and the server's
// CA, the admin's password in the vault, and a secret whose current version holds l.a's password.
func harness(t *testing.T, l logins, adminPassword string, changes ...string) (*providertest.Harness, string) {
	t.Helper()
	h := providertest.New(t, mysql.Name, providerFor(l.srv), &providertest.Options{Bindings: l.binding(t)})
	h.Seed(adminSecret, adminPassword, nil, 365*day)
	return h, h.Seed(secretName, l.passwordA, l.tagsFor(l.a, changes...), 5*day)
}

// latestLogsIn fails unless the vault's latest version logs in as the user its CredentialId names.
func latestLogsIn(t *testing.T, h *providertest.Harness, l logins, when string) rotation.Secret {
	t.Helper()
	s := h.Latest(secretName)
	l.mustLogin(t, s.Tags["CredentialId"], s.Value.Reveal(), when+": the vault's latest version")
	return s
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"general_log": "ON", "general_log_file": "general.log", "log_bin": "binlog"})

	t.Run("event, sweep and manual rotations alternate the logins", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "e2e", "")
		h, v1 := harness(t, l, l.rotatorPassword)

		if o := h.Event(secretName, v1); o.Kind != rotation.KindRotated {
			t.Fatalf("event: %+v", o)
		}
		s := latestLogsIn(t, h, l, "after the event")
		if s.Tags["CredentialId"] != l.b {
			t.Fatalf("after the event CredentialId = %q, want %s", s.Tags["CredentialId"], l.b)
		}
		l.mustLogin(t, l.a, l.passwordA, "the replaced version's login after the event")

		h.Clock.Advance(61 * day) // the new version (90 days) is within the 30-day near-expiry window
		rep := h.Sweep()
		if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRotated {
			t.Fatalf("sweep: %+v", rep.Outcomes)
		}
		prev := s
		s = latestLogsIn(t, h, l, "after the sweep")
		if s.Tags["CredentialId"] != l.a {
			t.Fatalf("after the sweep CredentialId = %q, want %s", s.Tags["CredentialId"], l.a)
		}
		l.mustLogin(t, prev.Tags["CredentialId"], prev.Value.Reveal(), "the replaced version's login after the sweep")

		if o := h.Manual(secretName, false); o.Kind != rotation.KindSkipped || !o.Conflict {
			t.Fatalf("manual within the grace, without override: %+v", o)
		}
		if o := h.ManualOverride(secretName); o.Kind != rotation.KindRotated {
			t.Fatalf("manual: %+v", o)
		}
		prev = s
		s = latestLogsIn(t, h, l, "after the manual rotation")
		if s.Tags["CredentialId"] != l.b {
			t.Fatalf("after the manual rotation CredentialId = %q, want %s", s.Tags["CredentialId"], l.b)
		}
		l.mustLogin(t, prev.Tags["CredentialId"], prev.Value.Reveal(), "the replaced version's login after the manual rotation")
		if n := h.Versions(secretName); n != 4 {
			t.Fatalf("%d versions, want 4", n)
		}
		// No server log holds any of the passwords kvrotator set.
		logs := srv.Logs()
		for _, v := range []string{prev.Value.Reveal(), s.Value.Reveal()} {
			if strings.Contains(logs, v) {
				t.Fatal("a server log holds a password kvrotator set")
			}
		}
		// The admin's and the verification logins came over TLS (the server refuses anything else;
		// the provider verified its certificate with verify-full, the default).
		for _, user := range []string{l.rotator, l.a, l.b} {
			if !regexp.MustCompile(`Connect\t` + user + `@127\.0\.0\.1 on \S* using SSL/TLS`).MatchString(logs) {
				t.Errorf("the general log has no TLS login as %s", user)
			}
		}
	})

	t.Run("a login with open sessions is not reset", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "busy_e2e", "")
		h, v1 := harness(t, l, l.rotatorPassword)
		// A client still connected as the inactive login (it holds the previous version's password).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, done, err := open(ctx, srv, l.b, l.passwordB, appDB)
		if err != nil {
			t.Fatal(err)
		}
		before := stored(t, srv, l.b)
		o := h.Event(secretName, v1)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "not resetting the password of "+l.b+"@%") ||
			!strings.Contains(o.Reason, "open sessions (1") || !errors.Is(o.Err, mysql.ErrOpenSessions) {
			t.Fatalf("with a session open: %+v", o)
		}
		if stored(t, srv, l.b) != before || h.Versions(secretName) != 1 {
			t.Fatal("the login with an open session was reset")
		}
		// An override in an emergency resets it anyway.
		if o := h.ManualOverride(secretName); o.Kind != rotation.KindRotated {
			t.Fatalf("override: %+v", o)
		}
		done()
		latestLogsIn(t, h, l, "after the override")
	})

	t.Run("a dry run changes nothing", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "dry", "")
		h, v1 := harness(t, l, l.rotatorPassword)
		a, b := stored(t, srv, l.a), stored(t, srv, l.b)
		o := h.Manual(secretName, true)
		if o.Kind != rotation.KindPlanned || !strings.Contains(o.Reason, "alternating") {
			t.Fatalf("dry run: %+v", o)
		}
		if h.Versions(secretName) != 1 || h.Latest(secretName).Version != v1 {
			t.Fatal("the dry run wrote a version")
		}
		if stored(t, srv, l.a) != a || stored(t, srv, l.b) != b {
			t.Fatal("the dry run changed a password")
		}
	})

	for _, step := range []providertest.Step{providertest.AfterCreate, providertest.AfterVerify} {
		t.Run("interrupted after "+string(step)+" converges", func(t *testing.T) {
			t.Parallel()
			l := makeLogins(t, srv, "crash_"+string(step), "")
			h, v1 := harness(t, l, l.rotatorPassword)
			if o := h.RotateInterrupted(secretName, v1, step); o.Kind != rotation.KindFailed {
				t.Fatalf("interrupted: %+v", o)
			}
			if h.Versions(secretName) != 1 {
				t.Fatal("wrote a version after the interruption")
			}
			// The application still logs in with what the vault holds.
			l.mustLogin(t, l.a, l.passwordA, "after the interruption")
			if o := h.Event(secretName, v1); o.Kind != rotation.KindRotated {
				t.Fatalf("redelivery: %+v", o)
			}
			s := latestLogsIn(t, h, l, "after the redelivery")
			if s.Tags["CredentialId"] != l.b {
				t.Fatalf("CredentialId = %q, want %s", s.Tags["CredentialId"], l.b)
			}
			l.mustLogin(t, l.a, l.passwordA, "the replaced version's login after the redelivery")
			if o := h.Event(secretName, v1); o.Kind != rotation.KindSkipped || h.Versions(secretName) != 2 {
				t.Fatalf("a duplicate delivery: %+v, %d versions", o, h.Versions(secretName))
			}
			// One credential: the inactive account has exactly the password the vault holds.
			if stored(t, srv, l.b) != "mysql_native_password "+nativeHashOf(s.Value.Reveal()) {
				t.Fatal("the account's stored password is not the vault's")
			}
		})
	}

	t.Run("a wrong tag is a permanent configuration error in the dry run and the rotation", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "badtag", "")
		for _, tc := range []struct{ tag, value, want string }{
			{"mysql-tls", "skip-verify", "mysql-tls"},
			{"mysql-tls", "preferred", "mysql-tls"},
			{"mysql-tls", "disable", "mysql-tls"},
			{"mysql-user", l.a, "mysql-user"},
			{"CredentialId", "nobody", "CredentialId"},
			{"ProviderAddress", "mysql://x:secretpw@" + srv.Addr + "/" + appDB, "ProviderAddress"},
		} {
			h, v1 := harness(t, l, l.rotatorPassword, tc.tag, tc.value)
			for _, o := range []rotation.Outcome{h.Manual(secretName, true), h.Event(secretName, v1)} {
				var ce *providers.ConfigError
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) ||
					!strings.EqualFold(ce.Tag, tc.want) {
					t.Fatalf("%s=%s: %+v, want a permanent ConfigError on %s", tc.tag, tc.value, o, tc.want)
				}
				if strings.Contains(o.Reason, "secretpw") {
					t.Fatalf("the reason repeats a password: %s", o.Reason)
				}
			}
			if h.Versions(secretName) != 1 {
				t.Fatal("wrote a version")
			}
		}
		l.mustLogin(t, l.b, l.passwordB, "the inactive login after the refused rotations")
	})

	t.Run("the server refusing the admin is permanent", func(t *testing.T) {
		t.Parallel()
		l := makeLogins(t, srv, "refused", "")
		h, v1 := harness(t, l, "not-the-rotator-password")
		o := h.Event(secretName, v1)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "Error 1045") {
			t.Fatalf("event: %+v, want a permanent failure with error 1045", o)
		}
		if strings.Contains(o.Reason, "not-the-rotator-password") {
			t.Fatal("the reason repeats the admin's password")
		}
		if h.Versions(secretName) != 1 || h.Latest(secretName).Value.Reveal() != l.passwordA {
			t.Fatal("the vault changed")
		}
	})

	t.Run("the server throttling the admin is transient", func(t *testing.T) {
		t.Parallel()
		// A per-user connection limit, the database's rate limit: retried later, nothing written.
		l := makeLogins(t, srv, "throttled", "")
		srv.Exec(t, "ALTER USER "+l.rotator+"@'%' WITH MAX_USER_CONNECTIONS 1")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, done, err := open(ctx, srv, l.rotator, l.rotatorPassword, "")
		if err != nil {
			t.Fatal(err)
		}
		h, v1 := harness(t, l, l.rotatorPassword)
		o := h.Event(secretName, v1)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "max_user_connections") {
			t.Fatalf("event over the limit: %+v, want a transient failure", o)
		}
		done()
		if h.Versions(secretName) != 1 {
			t.Fatal("the vault changed")
		}
	})
}

func TestEndToEndServerDown(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	l := makeLogins(t, srv, "e2edown", "")
	h, v1 := harness(t, l, l.rotatorPassword)
	srv.Stop()
	o := h.Event(secretName, v1)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
		t.Fatalf("event with the server down: %+v, want a transient failure", o)
	}
	if h.Versions(secretName) != 1 || h.Latest(secretName).Value.Reveal() != l.passwordA {
		t.Fatal("the vault changed")
	}
}
