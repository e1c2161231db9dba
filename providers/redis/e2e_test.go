package redis_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/internal/redistest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/redis"
	"github.com/kvrotator/kvrotator/rotation"
)

const (
	secretName = "cache-redis"
	day        = 24 * time.Hour
)

// harness is the real engine, keyvault adapter and Key Vault emulator around the provider, with the
// operator's bindings for u (its server, its three users, the admin secret) and the server's CA, the
// admin's password in the vault, and a secret whose current version holds u.a's password.
func harness(t *testing.T, u users, adminPassword string, changes ...string) (*providertest.Harness, string) {
	t.Helper()
	h := newHarness(t, providerFor(u.srv), &providertest.Options{Bindings: u.binding(t)})
	h.Seed(adminSecret, adminPassword, nil, 365*day)
	tags := map[string]string{}
	for k, v := range u.tagsFor(u.a, changes...) {
		tags[k] = v
	}
	return h, h.Seed(secretName, u.passwordA, tags, 5*day)
}

// latestLogsIn fails unless the vault's latest version logs in as the user its CredentialId names, and
// that user has exactly one password: the latest version's.
func latestLogsIn(t *testing.T, h *providertest.Harness, u users, when string) rotation.Secret {
	t.Helper()
	s := h.Latest(secretName)
	user := s.Tags["CredentialId"]
	u.mustLogin(t, user, s.Value.Reveal(), when+": the vault's latest version")
	if got, want := storedPasswords(t, u.srv, user), "["+sha(s.Value.Reveal())+"]"; got != want {
		t.Fatalf("%s: %s has passwords %s, want only the latest version's", when, user, got)
	}
	return s
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)

	t.Run("event, sweep and manual rotations alternate the users", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "e2e")
		h, v1 := harness(t, u, u.rotatorPassword)

		if o := h.Event(secretName, v1); o.Kind != rotation.KindRotated {
			t.Fatalf("event: %+v", o)
		}
		s := latestLogsIn(t, h, u, "after the event")
		if s.Tags["CredentialId"] != u.b {
			t.Fatalf("after the event CredentialId = %q, want %s", s.Tags["CredentialId"], u.b)
		}
		u.mustLogin(t, u.a, u.passwordA, "the replaced version's user after the event")

		h.Clock.Advance(61 * day) // the new version (90 days) is within the 30-day near-expiry window
		rep := h.Sweep()
		if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRotated {
			t.Fatalf("sweep: %+v", rep.Outcomes)
		}
		prev := s
		s = latestLogsIn(t, h, u, "after the sweep")
		if s.Tags["CredentialId"] != u.a {
			t.Fatalf("after the sweep CredentialId = %q, want %s", s.Tags["CredentialId"], u.a)
		}
		u.mustLogin(t, prev.Tags["CredentialId"], prev.Value.Reveal(), "the replaced version's user after the sweep")

		if o := h.Manual(secretName, false); o.Kind != rotation.KindSkipped || !o.Conflict {
			t.Fatalf("manual within the grace, without override: %+v", o)
		}
		if o := h.ManualOverride(secretName); o.Kind != rotation.KindRotated {
			t.Fatalf("manual: %+v", o)
		}
		prev = s
		s = latestLogsIn(t, h, u, "after the manual rotation")
		if s.Tags["CredentialId"] != u.b {
			t.Fatalf("after the manual rotation CredentialId = %q, want %s", s.Tags["CredentialId"], u.b)
		}
		u.mustLogin(t, prev.Tags["CredentialId"], prev.Value.Reveal(), "the replaced version's user after the manual rotation")
		if n := h.Versions(secretName); n != 4 {
			t.Fatalf("%d versions, want 4", n)
		}
	})

	t.Run("a user with open connections is not reset", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "busy")
		h, v1 := harness(t, u, u.rotatorPassword)
		// A client still connected as the inactive user (it holds the previous version's password).
		c := srv.Client(u.b, u.passwordB)
		defer c.Close()
		if err := c.Get(context.Background(), "busy:greeting").Err(); err != nil {
			t.Fatal(err)
		}
		before := storedPasswords(t, srv, u.b)
		o := h.Event(secretName, v1)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, `not resetting the password of "`+u.b+`"`) ||
			!strings.Contains(o.Reason, "open connections (1") || !errors.Is(o.Err, redis.ErrOpenSessions) {
			t.Fatalf("with a connection open: %+v", o)
		}
		if storedPasswords(t, srv, u.b) != before || h.Versions(secretName) != 1 {
			t.Fatal("the user with an open connection was reset")
		}
		// An override in an emergency resets it anyway.
		if o := h.ManualOverride(secretName); o.Kind != rotation.KindRotated {
			t.Fatalf("override: %+v", o)
		}
		c.Close()
		latestLogsIn(t, h, u, "after the override")
	})

	t.Run("a dry run changes nothing", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "dry")
		h, v1 := harness(t, u, u.rotatorPassword)
		a, b := storedPasswords(t, srv, u.a), storedPasswords(t, srv, u.b)
		o := h.Manual(secretName, true)
		if o.Kind != rotation.KindPlanned || !strings.Contains(o.Reason, "alternating") {
			t.Fatalf("dry run: %+v", o)
		}
		if h.Versions(secretName) != 1 || h.Latest(secretName).Version != v1 {
			t.Fatal("the dry run wrote a version")
		}
		if storedPasswords(t, srv, u.a) != a || storedPasswords(t, srv, u.b) != b {
			t.Fatal("the dry run changed a password")
		}
	})

	for _, step := range []providertest.Step{providertest.AfterCreate, providertest.AfterVerify} {
		t.Run("interrupted after "+string(step)+" converges with one password", func(t *testing.T) {
			t.Parallel()
			u := makeUsers(t, srv, "crash_"+string(step))
			h, v1 := harness(t, u, u.rotatorPassword)
			if o := h.RotateInterrupted(secretName, v1, step); o.Kind != rotation.KindFailed {
				t.Fatalf("interrupted: %+v", o)
			}
			if h.Versions(secretName) != 1 {
				t.Fatal("wrote a version after the interruption")
			}
			// The application still logs in with what the vault holds.
			u.mustLogin(t, u.a, u.passwordA, "after the interruption")
			if o := h.Event(secretName, v1); o.Kind != rotation.KindRotated {
				t.Fatalf("redelivery: %+v", o)
			}
			if s := latestLogsIn(t, h, u, "after the redelivery"); s.Tags["CredentialId"] != u.b {
				t.Fatalf("CredentialId = %q, want %s", s.Tags["CredentialId"], u.b)
			}
			u.mustLogin(t, u.a, u.passwordA, "the replaced version's user after the redelivery")
			if o := h.Event(secretName, v1); o.Kind != rotation.KindSkipped || h.Versions(secretName) != 2 {
				t.Fatalf("a duplicate delivery: %+v, %d versions", o, h.Versions(secretName))
			}
		})
	}

	t.Run("a wrong tag is a permanent configuration error in the dry run and the rotation", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "badtag")
		for _, tc := range []struct{ tag, value, want string }{
			{"ProviderAddress", "redis://redis.example.com:6379", "ProviderAddress"},
			{"ProviderAddress", "rediss://x:secretpw@" + srv.Addr, "ProviderAddress"},
			{"redis-user", u.a, "redis-user"},
			{"redis-persist", "config-rewrite", "redis-persist"},
			{"CredentialId", "nobody", "CredentialId"},
			{"redis-users", u.a, "redis-users"},
		} {
			h, v1 := harness(t, u, u.rotatorPassword, tc.tag, tc.value)
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
		u.mustLogin(t, u.b, u.passwordB, "the inactive user after the refused rotations")
	})

	t.Run("the server refusing the admin is permanent", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "refused")
		h, v1 := harness(t, u, "not-the-rotator-password")
		o := h.Event(secretName, v1)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "WRONGPASS") {
			t.Fatalf("event: %+v, want a permanent WRONGPASS", o)
		}
		if strings.Contains(o.Reason, "not-the-rotator-password") {
			t.Fatal("the reason repeats the admin's password")
		}
		if h.Versions(secretName) != 1 || h.Latest(secretName).Value.Reveal() != u.passwordA {
			t.Fatal("the vault changed")
		}
	})

	t.Run("an admin without the permission is permanent", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "noperm")
		srv.Do(t, "ACL", "SETUSER", u.rotator, "-acl|setuser")
		h, v1 := harness(t, u, u.rotatorPassword)
		o := h.Event(secretName, v1)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "NOPERM") {
			t.Fatalf("event: %+v, want a permanent NOPERM", o)
		}
	})
}

func TestEndToEndServerDown(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	u := makeUsers(t, srv, "e2edown")
	h, v1 := harness(t, u, u.rotatorPassword)
	srv.Stop()
	o := h.Event(secretName, v1)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
		t.Fatalf("event with the server down: %+v, want a transient failure", o)
	}
	if h.Versions(secretName) != 1 || h.Latest(secretName).Value.Reveal() != u.passwordA {
		t.Fatal("the vault changed")
	}
}

// A server at maxclients (Redis's throttling) fails the rotation as transient; once connections are
// free, the next trigger rotates.
func TestEndToEndServerFull(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t, &redistest.Options{TLS: true, ACLFile: true, Settings: map[string]string{"maxclients": "1"}})
	u := makeUsers(t, srv, "e2efull")
	h, v1 := harness(t, u, u.rotatorPassword)
	c := srv.Client(u.a, u.passwordA)
	if err := c.Get(context.Background(), "e2efull:greeting").Err(); err != nil {
		t.Fatal(err)
	}
	o := h.Event(secretName, v1)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
		t.Fatalf("event with the server full: %+v, want a transient failure", o)
	}
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for o = h.Event(secretName, v1); o.Kind != rotation.KindRotated && time.Now().Before(deadline); o = h.Event(secretName, v1) {
		time.Sleep(50 * time.Millisecond)
	}
	if o.Kind != rotation.KindRotated {
		t.Fatalf("event once the connection closed: %+v", o)
	}
	latestLogsIn(t, h, u, "after the server had room again")
}

// The rotations are saved to the server's ACL file (redis-persist = acl-save, the default): after a
// restart the vault's latest and previous versions still log in.
func TestEndToEndSurvivesARestart(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	u := makeUsers(t, srv, "e2erestart")
	h, v1 := harness(t, u, u.rotatorPassword)
	if o := h.Event(secretName, v1); o.Kind != rotation.KindRotated {
		t.Fatalf("event: %+v", o)
	}
	if o := h.ManualOverride(secretName); o.Kind != rotation.KindRotated {
		t.Fatalf("manual: %+v", o)
	}
	srv.Restart(t)
	s := latestLogsIn(t, h, u, "after a restart of the server")
	prev := map[string]string{u.a: u.b, u.b: u.a}[s.Tags["CredentialId"]]
	if n := h.Versions(secretName); n != 3 {
		t.Fatalf("%d versions", n)
	}
	if u.login(prev, u.passwordB) == nil || u.login(u.a, u.passwordA) == nil {
		t.Fatal("an initial password came back after the restart")
	}
}
