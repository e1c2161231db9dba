package mysql_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/internal/mysqltest"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers/mysql"
	"github.com/kvrotator/kvrotator/rotation"
)

// These tests play a person who may edit the tags (and write versions) of one managed secret and
// nothing else, through the real engine with the operator's bindings in place: the tags may choose
// among what the operator bound, never point kvrotator at another server, account or secret, and no
// server, bound or not, ever receives a password.

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

// TestAttackUnboundReferences: the secret's tags point at a server, an account or a secret the operator
// did not bind. Every trigger fails with a permanent unbound error naming the tags, before anything is
// read or contacted: the recording listeners see no connection, the other secret is never read.
func TestAttackUnboundReferences(t *testing.T) {
	t.Parallel()
	ca := mysqltest.NewCA(t)
	bound := startFake(t, askCleartext, ca.ServerTLS(t)) // the server the operator bound
	attacker := startFake(t, recordOnly, nil)            // a server nobody bound
	const a, b, admin = "app_a", "app_b", "kvrotator_admin"
	pol := binding(t, bound.Addr, a+"@%", b+"@%", admin)

	for _, tc := range []struct {
		name    string
		changes []string
		want    []string // the tags the unbound errors name
	}{
		{"another server and another secret",
			[]string{"ProviderAddress", attacker.Addr + "/orders", "mysql-admin-secret", otherSecret},
			[]string{"ProviderAddress", "mysql-admin-secret"}},
		{"the bound host on another port", []string{"ProviderAddress", strings.Split(bound.Addr, ":")[0] + ":1/orders"}, []string{"ProviderAddress"}},
		{"another secret as the admin's password", []string{"mysql-admin-secret", otherSecret}, []string{"mysql-admin-secret"}},
		{"a rotated account that is not bound", []string{"mysql-users", a + ",payroll_owner"}, []string{"mysql-users"}},
		{"a bound user with another host part", []string{"mysql-users", a + "@localhost," + b}, []string{"mysql-users"}},
		{"an admin that is not bound", []string{"mysql-admin-user", "root"}, []string{"mysql-admin-user"}},
		{"a user bound in other letter case", []string{"mysql-users", "APP_A," + b, "CredentialId", "APP_A"}, []string{"mysql-users"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := providertest.New(t, mysql.Name, mysql.New(mysql.WithRootCAFile(ca.CertFile)), &providertest.Options{Bindings: pol})
			h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
			h.Seed(otherSecret, otherValue, nil, 365*day)
			untouched := tripwire(t, h, otherSecret)
			v1 := h.Seed(secretName, "app-a-password", secretTags(bound.Addr+"/orders", a+","+b, a, admin, tc.changes...), 5*day)

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
		h := providertest.New(t, mysql.Name, mysql.New(mysql.WithRootCAFile(ca.CertFile)), &providertest.Options{Bindings: pol})
		h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
		untouched := tripwire(t, h, adminSecret)
		v1 := h.Seed(secretName, "app-a-password", secretTags(bound.Addr+"/orders", a+","+b, a, admin), 5*day)
		before := bound.Conns()
		if o := h.Event(secretName, v1); o.Kind != rotation.KindFailed {
			t.Fatalf("event: %+v", o)
		}
		if untouched() {
			t.Fatal("the admin secret's tripwire did not record the read")
		}
		h2 := providertest.New(t, mysql.Name, mysql.New(mysql.WithRootCAFile(ca.CertFile)), &providertest.Options{Bindings: pol})
		h2.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
		v1 = h2.Seed(secretName, "app-a-password", secretTags(bound.Addr+"/orders", a+","+b, a, admin), 5*day)
		if o := h2.Event(secretName, v1); o.Kind != rotation.KindFailed || !errors.Is(o.Err, mysql.ErrAuthMethod) {
			t.Fatalf("event: %+v, want ErrAuthMethod from the bound fake server", o)
		}
		if bound.Conns() == before {
			t.Fatal("the bound server's listener saw no connection")
		}
	})
}

// TestAttackNoBindings: with no bindings configured, a mysql secret does not rotate at all.
func TestAttackNoBindings(t *testing.T) {
	t.Parallel()
	srv := startFake(t, recordOnly, nil)
	h := providertest.New(t, mysql.Name, mysql.New(), nil)
	h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
	untouched := tripwire(t, h, adminSecret)
	v1 := h.Seed(secretName, "app-a-password", secretTags(srv.Addr+"/orders", "app_a,app_b", "app_a", "kvrotator_admin"), 5*day)
	o := h.Event(secretName, v1)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "not bound") {
		t.Fatalf("event: %+v", o)
	}
	if srv.Conns() != 0 || !untouched() {
		t.Fatal("something was contacted or read")
	}
}

// fakeHarness is a harness whose bindings allow the fake server, with the admin's password in the vault.
func fakeHarness(t *testing.T, fake *fakeServer, p *mysql.Provider, adminPassword string, changes ...string) (*providertest.Harness, string) {
	t.Helper()
	h := providertest.New(t, mysql.Name, p, &providertest.Options{Bindings: binding(t, fake.Addr, "app_a@%", "app_b@%", "kvrotator_admin")})
	h.Seed(adminSecret, adminPassword, nil, 365*day)
	return h, h.Seed(secretName, "app-a-password", secretTags(fake.Addr+"/orders", "app_a,app_b", "app_a", "kvrotator_admin", changes...), 5*day)
}

// TestAttackBoundServerAsksForThePassword: a server the operator bound (with a certificate from the CA
// the operator trusts) asks the admin for the password as it is (mysql_clear_password, in the greeting
// or as a switch), for the pre-4.1 method, or through MariaDB's dialog plugin. kvrotator refuses each
// before answering: the fake server receives the login packet (it is who it claims to be, over verified
// TLS) and then not one byte, and the password is in nothing it received.
func TestAttackBoundServerAsksForThePassword(t *testing.T) {
	t.Parallel()
	const adminPassword = "kvrotator-admin-password-never-sent"
	ca := mysqltest.NewCA(t)
	for name, mode := range map[string]fakeMode{
		"cleartext switch": askCleartext, "cleartext greeting": greetCleartext, "pre-4.1": askOldPassword, "dialog": askDialog,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fake := startFake(t, mode, ca.ServerTLS(t))
			h, v1 := fakeHarness(t, fake, mysql.New(mysql.WithRootCAFile(ca.CertFile)), adminPassword)
			o := h.Event(secretName, v1)
			if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.Is(o.Err, mysql.ErrAuthMethod) {
				t.Fatalf("event: %s %s %s, want a permanent ErrAuthMethod", o.Kind, o.Class, o.Reason)
			}
			if strings.Contains(o.Reason, adminPassword) {
				t.Fatal("the reason holds the admin's password")
			}
			if users := fake.Users(); len(users) != 1 || users[0] != "kvrotator_admin" || fake.Handshakes() != 1 {
				t.Fatalf("the fake server saw logins %v after %d TLS handshakes, want one as kvrotator_admin: the test proves nothing", users, fake.Handshakes())
			}
			all, after := fake.Received()
			if len(after) != 0 || bytes.Contains(all, []byte(adminPassword)) {
				t.Fatalf("after the authentication switch the server received %d bytes; the password in what it received: %v",
					len(after), bytes.Contains(all, []byte(adminPassword)))
			}
			if h.Versions(secretName) != 1 {
				t.Fatal("a version was written")
			}
		})
	}
}

// TestAttackServerWithoutTLS: the bound address answers without offering TLS (a downgrade by whoever
// sits on the path). kvrotator sends nothing at all, not even the login name.
func TestAttackServerWithoutTLS(t *testing.T) {
	t.Parallel()
	fake := startFake(t, askCleartext, nil)
	h, v1 := fakeHarness(t, fake, mysql.New(), "kvrotator-admin-password")
	o := h.Event(secretName, v1)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.Is(o.Err, mysql.ErrNoTLS) {
		t.Fatalf("event: %s %s %s, want a permanent ErrNoTLS", o.Kind, o.Class, o.Reason)
	}
	if fake.Conns() == 0 {
		t.Fatal("the fake server was not contacted: the test proves nothing")
	}
	if all, _ := fake.Received(); len(all) != 0 {
		t.Fatalf("the client sent %d bytes to a server without TLS", len(all))
	}
}

// TestAttackUntrustedCertificate: the bound address answers with a certificate that the operator's CA
// did not sign, or that the trusted CA signed for another name. The TLS handshake fails: the server
// receives the client's TLS request (which names no user) and nothing else.
func TestAttackUntrustedCertificate(t *testing.T) {
	t.Parallel()
	trusted := mysqltest.NewCA(t)
	for _, tc := range []struct {
		name    string
		fake    func(t *testing.T) *fakeServer
		changes []string
	}{
		{"signed by another CA", func(t *testing.T) *fakeServer { return startFake(t, askCleartext, mysqltest.NewCA(t).ServerTLS(t)) }, nil},
		{"signed by another CA, verify-ca", func(t *testing.T) *fakeServer { return startFake(t, askCleartext, mysqltest.NewCA(t).ServerTLS(t)) },
			[]string{"mysql-tls", "verify-ca"}},
		{"the trusted CA, another name", func(t *testing.T) *fakeServer {
			return startFake(t, askCleartext, trusted.ServerTLS(t, "db.example.com"))
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := tc.fake(t)
			h, v1 := fakeHarness(t, fake, mysql.New(mysql.WithRootCAFile(trusted.CertFile)), "kvrotator-admin-password", tc.changes...)
			o := h.Event(secretName, v1)
			if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.Is(o.Err, mysql.ErrUntrustedServer) {
				t.Fatalf("event: %s %s %s, want a permanent ErrUntrustedServer", o.Kind, o.Class, o.Reason)
			}
			if fake.Conns() == 0 {
				t.Fatal("the fake server was not contacted: the test proves nothing")
			}
			all, _ := fake.Received()
			if fake.Handshakes() != 0 || len(fake.Users()) != 0 || len(all) != 36 || bytes.Contains(all, []byte("kvrotator_admin")) {
				t.Fatalf("%d handshakes, logins %v, %d bytes: the client went on past the certificate", fake.Handshakes(), fake.Users(), len(all))
			}
			if h.Versions(secretName) != 1 {
				t.Fatal("a version was written")
			}
		})
	}
}

// TestAttackTLSTagCannotWeakenVerification: the tag asks for skip-verify (or preferred, or plain text)
// against an impostor: a configuration error, and nothing contacted.
func TestAttackTLSTagCannotWeakenVerification(t *testing.T) {
	t.Parallel()
	fake := startFake(t, askCleartext, mysqltest.NewCA(t).ServerTLS(t))
	for _, mode := range []string{"skip-verify", "preferred", "false", "disable"} {
		h, v1 := fakeHarness(t, fake, mysql.New(), "kvrotator-admin-password", "mysql-tls", mode)
		if o := h.Event(secretName, v1); o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "mysql-tls") {
			t.Fatalf("mysql-tls=%s: %+v", mode, o)
		}
	}
	if fake.Conns() != 0 {
		t.Fatal("the impostor was contacted")
	}
}

// TestAttackForgedCredentialIdAfterARotation: after kvrotator rotated (the latest version holds b), the
// tag-writer sets CredentialId back to a so that the next rotation would change b, the login the
// application uses. kvrotator follows its own journal: the next rotation changes a, and the login the
// latest version holds keeps working.
func TestAttackForgedCredentialIdAfterARotation(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	l := makeLogins(t, srv, "forged", "")
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

// TestAttackVerifyCAWithoutTheOperatorsCA: the tag asks for verify-ca and the operator set no CA file.
// Against the system's roots, without the name, any publicly issued certificate for any domain would
// pass: a configuration error, and nothing contacted.
func TestAttackVerifyCAWithoutTheOperatorsCA(t *testing.T) {
	t.Parallel()
	fake := startFake(t, askCleartext, mysqltest.NewCA(t).ServerTLS(t))
	h, v1 := fakeHarness(t, fake, mysql.New(), "kvrotator-admin-password", "mysql-tls", "verify-ca")
	o := h.Event(secretName, v1)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "mysql-tls") || !strings.Contains(o.Reason, mysql.EnvCAFile) {
		t.Fatalf("verify-ca without a CA file: %s %s %s", o.Kind, o.Class, o.Reason)
	}
	if fake.Conns() != 0 {
		t.Fatal("the server was contacted")
	}
	if h.Versions(secretName) != 1 {
		t.Fatal("a version was written")
	}
}
