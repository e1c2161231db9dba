package postgres_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/internal/pgtest"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers/postgres"
	"github.com/kvrotator/kvrotator/rotation"
)

// These tests play a person who may edit the tags (and write versions) of one managed secret and
// nothing else, through the real engine with the operator's bindings in place: the tags may choose
// among what the operator bound, never point kvrotator at another server, login or secret, and no
// server, bound or not, ever receives a password or anything derived from one.

// otherSecret is another team's admin secret in the same vault, which no binding lets the tag-writer's
// secret use; otherValue is its value.
const (
	otherSecret = "payroll-db-admin"
	otherValue  = "payroll-admin-password-never-leaves-the-vault"
)

// tripwire makes every read of the secret name fail (403, not retried) and returns a check that no
// read happened: the emulator consumes one scripted failure per GetSecret of that secret.
func tripwire(t *testing.T, h *providertest.Harness, name string) (untouched func() bool) {
	t.Helper()
	const count = 1000
	if err := h.Server.AddFault(emulator.FaultRule{Operation: "GetSecret", Secret: name, Status: 403, Count: count}); err != nil {
		t.Fatal(err)
	}
	return func() bool {
		for _, f := range h.Server.Faults() {
			if strings.EqualFold(f.Rule.Secret, name) {
				return f.Remaining == count
			}
		}
		return false
	}
}

// unboundTags are the tags of every *bindings.UnboundError in err's tree, sorted.
func unboundTags(err error) []string {
	var tags []string
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if u, ok := err.(*bindings.UnboundError); ok {
			tags = append(tags, u.Ref.Tag)
			return
		}
		switch w := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range w.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(w.Unwrap())
		}
	}
	walk(err)
	slices.Sort(tags)
	return tags
}

// TestAttackUnboundReferences: the secret's tags point at a server, a login or a secret the operator
// did not bind. Every trigger fails with a permanent unbound error naming the tags, before anything
// is read or contacted: the recording listeners see no connection, the other secret is never read.
func TestAttackUnboundReferences(t *testing.T) {
	t.Parallel()
	bound := startFake(t, askCleartext, nil)  // the server the operator bound
	attacker := startFake(t, recordOnly, nil) // a server nobody bound
	const a, b, admin = "app_a", "app_b", "kvrotator_admin"
	pol := binding(t, bound.Addr, a, b, admin)

	for _, tc := range []struct {
		name    string
		changes []string
		want    []string // the tags the unbound errors name
	}{
		{"another server and another secret (the issue's attack 2)",
			[]string{"ProviderAddress", attacker.Addr + "/postgres", "postgres-admin-secret", otherSecret},
			[]string{"ProviderAddress", "postgres-admin-secret"}},
		{"another secret as the admin's password", []string{"postgres-admin-secret", otherSecret}, []string{"postgres-admin-secret"}},
		{"a rotated login that is not bound", []string{"postgres-users", a + ",payroll_owner"}, []string{"postgres-users"}},
		{"an admin login that is not bound", []string{"postgres-admin-user", "postgres"}, []string{"postgres-admin-user"}},
		{"a login bound in other letter case", []string{"postgres-users", "APP_A," + b, "CredentialId", "APP_A"}, []string{"postgres-users"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := providertest.New(t, postgres.Name, postgres.New(), &providertest.Options{Bindings: pol})
			h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
			h.Seed(otherSecret, otherValue, nil, 365*day)
			untouched := tripwire(t, h, otherSecret)
			v1 := h.Seed(secretName, "app-a-password", secretTags(bound.Addr+"/postgres", a+","+b, a, admin, tc.changes...), 5*day)

			// The sweep reports the failure (and the secret as overdue).
			i := slices.IndexFunc(h.Sweep().Outcomes, func(o rotation.Outcome) bool { return o.Kind == rotation.KindFailed })
			if i < 0 {
				t.Fatal("the sweep reported no failure")
			}
			sweep := h.Sweep().Outcomes[i]
			for i, o := range []rotation.Outcome{h.Manual(secretName, true), h.Event(secretName, v1), h.Manual(secretName, false), sweep} {
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent {
					t.Fatalf("trigger %d: %s %s %s, want a permanent failure", i, o.Kind, o.Class, o.Reason)
				}
				if got := unboundTags(o.Err); !slices.Equal(got, sortedCopy(tc.want)) {
					t.Fatalf("trigger %d: unbound %v, want %v (%s)", i, got, tc.want, o.Reason)
				}
				if !strings.Contains(o.Reason, "not bound") || strings.Contains(o.Reason, otherValue) {
					t.Fatalf("trigger %d: reason %q", i, o.Reason)
				}
			}
			if n := bound.Conns() + attacker.Conns(); n != 0 {
				t.Fatalf("%d connections: a server was contacted", n)
			}
			if !untouched() {
				t.Fatal("the other team's secret was read")
			}
			if h.Versions(secretName) != 1 {
				t.Fatal("a version was written")
			}
		})
	}

	// The listeners and the tripwire do record: with every reference bound, the engine reads the
	// admin secret and connects to the bound server (which asks for a cleartext password: refused).
	t.Run("control: bound references are followed", func(t *testing.T) {
		h := providertest.New(t, postgres.Name, postgres.New(), &providertest.Options{Bindings: pol})
		h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
		untouched := tripwire(t, h, adminSecret)
		v1 := h.Seed(secretName, "app-a-password", secretTags(bound.Addr+"/postgres", a+","+b, a, admin, "postgres-sslmode", "disable"), 5*day)
		if o := h.Event(secretName, v1); o.Kind != rotation.KindFailed || unboundTags(o.Err) != nil {
			t.Fatalf("event: %+v", o)
		}
		if untouched() {
			t.Fatal("the tripwire did not see the bound admin secret's read")
		}
		h.Server.ClearFaults()
		before := bound.Conns()
		if o := h.Event(secretName, v1); o.Kind != rotation.KindFailed || !errors.Is(o.Err, postgres.ErrAuthMethod) {
			t.Fatalf("event: %+v", o)
		}
		if bound.Conns() == before {
			t.Fatal("the bound server's listener saw no connection")
		}
	})
}

// TestAttackNoBindings: with no bindings configured, a postgres secret does not rotate at all.
func TestAttackNoBindings(t *testing.T) {
	t.Parallel()
	srv := startFake(t, recordOnly, nil)
	h := providertest.New(t, postgres.Name, postgres.New(), nil)
	h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
	untouched := tripwire(t, h, adminSecret)
	v1 := h.Seed(secretName, "app-a-password", secretTags(srv.Addr+"/postgres", "app_a,app_b", "app_a", "kvrotator_admin"), 5*day)
	o := h.Event(secretName, v1)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "not bound") {
		t.Fatalf("event: %+v", o)
	}
	if srv.Conns() != 0 || !untouched() {
		t.Fatal("something was contacted or read")
	}
}

// TestAttackBoundServerAsksForAPassword: a server the operator bound (with a certificate from the CA
// the operator trusts) asks for a cleartext password, an MD5 digest, or lets the admin in without
// authentication. kvrotator refuses each before sending anything: the fake server receives the
// startup message (it is who it claims to be) and then not one byte, and the vault is unchanged.
// The same holds with sslmode=disable on loopback: without TLS, logins are still SCRAM-only.
func TestAttackBoundServerAsksForAPassword(t *testing.T) {
	t.Parallel()
	const adminPassword = "kvrotator-admin-password-never-sent"
	ca := pgtest.NewCA(t)
	for _, mode := range []struct {
		name string
		mode fakeMode
	}{{"cleartext", askCleartext}, {"md5", askMD5}, {"no authentication", askNothing}} {
		for _, useTLS := range []bool{true, false} {
			name := mode.name + map[bool]string{true: " over verify-full TLS", false: " with sslmode=disable on loopback"}[useTLS]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var changes []string
				var fake *fakeServer
				if useTLS {
					fake = startFake(t, mode.mode, ca.ServerTLS(t))
				} else {
					fake = startFake(t, mode.mode, nil)
					changes = []string{"postgres-sslmode", "disable"}
				}
				h := providertest.New(t, postgres.Name, postgres.New(postgres.WithRootCAFile(ca.CertFile)),
					&providertest.Options{Bindings: binding(t, fake.Addr, "app_a", "app_b", "kvrotator_admin")})
				h.Seed(adminSecret, adminPassword, nil, 365*day)
				v1 := h.Seed(secretName, "app-a-password", secretTags(fake.Addr+"/postgres", "app_a,app_b", "app_a", "kvrotator_admin", changes...), 5*day)

				o := h.Event(secretName, v1)
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.Is(o.Err, postgres.ErrAuthMethod) {
					t.Fatalf("event: %s %s %s, want a permanent ErrAuthMethod", o.Kind, o.Class, o.Reason)
				}
				if strings.Contains(o.Reason, adminPassword) {
					t.Fatal("the reason holds the admin's password")
				}
				if users := fake.Users(); len(users) != 1 || users[0] != "kvrotator_admin" {
					t.Fatalf("the fake server saw logins %v, want one as kvrotator_admin: the test proves nothing", users)
				}
				if useTLS && fake.Handshakes() != 1 {
					t.Fatalf("%d TLS handshakes, want 1", fake.Handshakes())
				}
				raw, types, err := fake.AfterAuth()
				if err != nil || len(raw) != 0 || strings.Contains(string(raw), adminPassword) {
					t.Fatalf("after the authentication request the server received %d bytes, messages %q (%v)", len(raw), types, err)
				}
				if h.Versions(secretName) != 1 {
					t.Fatal("a version was written")
				}
			})
		}
	}
}

// TestAttackUntrustedCertificate: the bound address answers with a certificate that the operator's CA
// did not sign, or that the trusted CA signed for another name. verify-full refuses the handshake: the
// server never sees a startup message, so not even the admin's login name.
func TestAttackUntrustedCertificate(t *testing.T) {
	t.Parallel()
	trusted := pgtest.NewCA(t)
	for _, tc := range []struct {
		name string
		tls  func(t *testing.T) *fakeServer
	}{
		{"signed by another CA", func(t *testing.T) *fakeServer { return startFake(t, askCleartext, pgtest.NewCA(t).ServerTLS(t)) }},
		{"the trusted CA, another name", func(t *testing.T) *fakeServer {
			return startFake(t, askCleartext, trusted.ServerTLS(t, "db.example.com"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := tc.tls(t)
			h := providertest.New(t, postgres.Name, postgres.New(postgres.WithRootCAFile(trusted.CertFile)),
				&providertest.Options{Bindings: binding(t, fake.Addr, "app_a", "app_b", "kvrotator_admin")})
			h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
			v1 := h.Seed(secretName, "app-a-password", secretTags(fake.Addr+"/postgres", "app_a,app_b", "app_a", "kvrotator_admin"), 5*day)
			o := h.Event(secretName, v1)
			if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.Is(o.Err, postgres.ErrUntrustedServer) {
				t.Fatalf("event: %s %s %s, want a permanent ErrUntrustedServer", o.Kind, o.Class, o.Reason)
			}
			if fake.Conns() == 0 {
				t.Fatal("the fake server was not contacted: the test proves nothing")
			}
			if fake.Handshakes() != 0 || len(fake.Users()) != 0 {
				t.Fatalf("%d handshakes, logins %v: the client went on past the certificate", fake.Handshakes(), fake.Users())
			}
			if h.Versions(secretName) != 1 {
				t.Fatal("a version was written")
			}
		})
	}
}

// TestAttackForgedCredentialIdAfterARotation: after kvrotator rotated (the latest version holds app_b),
// the tag-writer sets CredentialId back to app_a so that the next rotation would change app_b, the
// login the application uses. kvrotator follows its own journal: the next rotation changes app_a, and
// the login the latest version holds keeps working.
func TestAttackForgedCredentialIdAfterARotation(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	l := makeLogins(t, srv, "forged")
	h, v1 := harness(t, l, l.rotatorPassword)
	if o := h.Event(secretName, v1); o.Kind != rotation.KindRotated {
		t.Fatalf("event: %+v", o)
	}
	s := h.Latest(secretName)
	if s.Tags["CredentialId"] != l.b {
		t.Fatalf("CredentialId %q after the first rotation", s.Tags["CredentialId"])
	}
	tags := map[string]*string{}
	for k, v := range s.Tags {
		tags[k] = &v
	}
	forged := l.a
	tags["CredentialId"] = &forged
	if _, err := h.Client.UpdateSecretProperties(context.Background(), secretName, s.Version,
		azsecrets.UpdateSecretPropertiesParameters{Tags: tags}, nil); err != nil {
		t.Fatal(err)
	}
	if o := h.ManualOverride(secretName); o.Kind != rotation.KindRotated {
		t.Fatalf("manual: %+v", o)
	}
	l.mustLogin(t, l.b, s.Value.Reveal(), "the login the replaced version holds")
	if latest := h.Latest(secretName); latest.Tags["CredentialId"] != l.a {
		t.Fatalf("the second rotation changed %s, want %s", latest.Tags["CredentialId"], l.a)
	}
	latestLogsIn(t, h, l, "after the forged CredentialId")
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
