package redis_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/internal/redistest"
	"github.com/kvrotator/kvrotator/providers/redis"
	"github.com/kvrotator/kvrotator/rotation"
)

// These tests play a person who may edit the tags (and write versions) of one managed secret and
// nothing else, through the real engine with the operator's bindings in place: the tags may choose
// among what the operator bound, never point kvrotator at another server, user or secret, and no server
// kvrotator cannot verify ever receives a password.

// otherSecret is another team's admin secret in the same vault, which no binding lets the tag-writer's
// secret use; otherValue is its value.
const (
	otherSecret = "payroll-redis-admin"
	otherValue  = "payroll-admin-password-never-leaves-the-vault"
)

// fakeServer is a listener that records what reaches it: connections, completed TLS handshakes (when
// it speaks TLS) and every byte received after them. It answers nothing, and hangs up once it has
// received something (the client sees a broken connection: a transient failure, no waiting).
type fakeServer struct {
	Addr string

	mu         sync.Mutex
	conns      int
	handshakes int
	received   []byte
}

func startFake(t *testing.T, tc *tls.Config) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{Addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(15 * time.Second))
				var r io.Reader = c
				if tc != nil {
					s := tls.Server(c, tc)
					if s.Handshake() != nil {
						return
					}
					f.mu.Lock()
					f.handshakes++
					f.mu.Unlock()
					r = s
				}
				buf := make([]byte, 4096)
				for {
					n, err := r.Read(buf)
					f.mu.Lock()
					f.received = append(f.received, buf[:n]...)
					f.mu.Unlock()
					if err != nil || n > 0 {
						return
					}
				}
			}()
		}
	}()
	return f
}

func (f *fakeServer) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func (f *fakeServer) Handshakes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handshakes
}

func (f *fakeServer) Received() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.received)
}

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

// TestAttackUnboundReferences: the secret's tags point at a server, a user or a secret the operator
// did not bind. Every trigger fails with a permanent unbound error naming the tags, before anything is
// read or contacted: the recording listeners see no connection, the other secret is never read.
func TestAttackUnboundReferences(t *testing.T) {
	t.Parallel()
	bound := startFake(t, nil)    // the server the operator bound
	attacker := startFake(t, nil) // a server nobody bound
	const a, b, admin = "app_a", "app_b", "kvrotator_admin"
	pol := binding(t, bound.Addr, a, b, admin)

	for _, tc := range []struct {
		name    string
		changes []string
		want    []string // the tags the unbound errors name
	}{
		{"another server and another secret",
			[]string{"ProviderAddress", "redis://" + attacker.Addr, "redis-admin-secret", otherSecret},
			[]string{"ProviderAddress", "redis-admin-secret"}},
		{"the bound host on another port", []string{"ProviderAddress", "redis://127.0.0.1:1"}, []string{"ProviderAddress"}},
		{"another secret as the admin's password", []string{"redis-admin-secret", otherSecret}, []string{"redis-admin-secret"}},
		{"a rotated user that is not bound", []string{"redis-users", a + ",payroll_app"}, []string{"redis-users"}},
		{"an admin user that is not bound", []string{"redis-admin-user", "default"}, []string{"redis-admin-user"}},
		{"a user bound in other letter case", []string{"redis-users", "APP_A," + b, "CredentialId", "APP_A"}, []string{"redis-users"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, redis.New(), &providertest.Options{Bindings: pol})
			h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
			h.Seed(otherSecret, otherValue, nil, 365*day)
			untouched := tripwire(t, h, otherSecret)
			v1 := h.Seed(secretName, "app-a-password", secretTags("redis://"+bound.Addr, a+","+b, a, admin, tc.changes...), 5*day)

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
	// admin secret and connects to the bound server (which never answers: a transient failure).
	t.Run("control: bound references are followed", func(t *testing.T) {
		h := newHarness(t, redis.New(), &providertest.Options{Bindings: pol})
		h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
		untouched := tripwire(t, h, adminSecret)
		v1 := h.Seed(secretName, "app-a-password", secretTags("redis://"+bound.Addr, a+","+b, a, admin), 5*day)
		if o := h.Event(secretName, v1); o.Kind != rotation.KindFailed || unboundTags(o.Err) != nil {
			t.Fatalf("event: %+v", o)
		}
		if untouched() {
			t.Fatal("the tripwire did not see the bound admin secret's read")
		}
		h.Server.ClearFaults()
		if o := h.Event(secretName, v1); o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
			t.Fatalf("event against a server that hangs up: %+v", o)
		}
		if bound.Conns() == 0 {
			t.Fatal("the bound server's listener saw no connection")
		}
	})
}

// TestAttackNoBindings: with no bindings configured, a redis secret does not rotate at all.
func TestAttackNoBindings(t *testing.T) {
	t.Parallel()
	srv := startFake(t, nil)
	h := newHarness(t, redis.New(), nil)
	h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
	untouched := tripwire(t, h, adminSecret)
	v1 := h.Seed(secretName, "app-a-password", secretTags("redis://"+srv.Addr, "app_a,app_b", "app_a", "kvrotator_admin"), 5*day)
	o := h.Event(secretName, v1)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "not bound") {
		t.Fatalf("event: %+v", o)
	}
	if srv.Conns() != 0 || !untouched() {
		t.Fatal("something was contacted or read")
	}
}

// TestAttackUntrustedCertificate: the bound address answers with a certificate the operator's CA did
// not sign, or that the trusted CA signed for another name. The handshake fails on kvrotator's side:
// the server never completes it and receives not one byte of application data, so neither the admin's
// user name nor its password.
func TestAttackUntrustedCertificate(t *testing.T) {
	t.Parallel()
	const adminPassword = "kvrotator-admin-password-never-sent"
	trusted := redistest.NewCA(t)
	for _, tc := range []struct {
		name string
		tls  func(t *testing.T) *tls.Config
	}{
		{"signed by another CA", func(t *testing.T) *tls.Config { return redistest.NewCA(t).ServerTLS(t) }},
		{"the trusted CA, another name", func(t *testing.T) *tls.Config { return trusted.ServerTLS(t, "redis.example.com") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fake := startFake(t, tc.tls(t))
			h := newHarness(t, redis.New(redis.WithRootCAFile(trusted.CertFile)),
				&providertest.Options{Bindings: binding(t, fake.Addr, "app_a", "app_b", "kvrotator_admin")})
			h.Seed(adminSecret, adminPassword, nil, 365*day)
			v1 := h.Seed(secretName, "app-a-password", secretTags("rediss://"+fake.Addr, "app_a,app_b", "app_a", "kvrotator_admin"), 5*day)
			o := h.Event(secretName, v1)
			if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.Is(o.Err, redis.ErrUntrustedServer) {
				t.Fatalf("event: %s %s %s, want a permanent ErrUntrustedServer", o.Kind, o.Class, o.Reason)
			}
			if strings.Contains(o.Reason, adminPassword) {
				t.Fatal("the reason holds the admin's password")
			}
			if fake.Conns() == 0 {
				t.Fatal("the fake server was not contacted: the test proves nothing")
			}
			if fake.Handshakes() != 0 || len(fake.Received()) != 0 {
				t.Fatalf("%d handshakes, %d bytes received: the client went on past the certificate", fake.Handshakes(), len(fake.Received()))
			}
			if h.Versions(secretName) != 1 {
				t.Fatal("a version was written")
			}
		})
	}

	// Control: the same fake with a certificate the operator trusts for its address completes the
	// handshake and receives the login (Redis has no challenge-response login): what the refusals
	// above kept from untrusted servers.
	t.Run("control: a trusted certificate", func(t *testing.T) {
		t.Parallel()
		fake := startFake(t, trusted.ServerTLS(t))
		p := redis.New(redis.WithRootCAFile(trusted.CertFile))
		h := newHarness(t, p, &providertest.Options{Bindings: binding(t, fake.Addr, "app_a", "app_b", "kvrotator_admin"),
			VerifyTimeout: time.Second})
		h.Seed(adminSecret, adminPassword, nil, 365*day)
		v1 := h.Seed(secretName, "app-a-password", secretTags("rediss://"+fake.Addr, "app_a,app_b", "app_a", "kvrotator_admin"), 5*day)
		if o := h.Event(secretName, v1); o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
			t.Fatalf("event against a trusted server that hangs up: %+v", o)
		}
		if got := string(fake.Received()); fake.Handshakes() == 0 || !strings.Contains(strings.ToUpper(got), "HELLO") || !strings.Contains(got, adminPassword) {
			t.Fatalf("the trusted fake completed %d handshakes and received %d bytes", fake.Handshakes(), len(got))
		}
	})
}

// TestAttackForgedCredentialIdAfterARotation: after kvrotator rotated (the latest version holds app_b),
// the tag-writer sets CredentialId back to app_a so that the next rotation would change app_b, the user
// the application uses. kvrotator follows its own journal: the next rotation changes app_a, and the
// user the latest version holds keeps working.
func TestAttackForgedCredentialIdAfterARotation(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	u := makeUsers(t, srv, "forged")
	h, v1 := harness(t, u, u.rotatorPassword)
	if o := h.Event(secretName, v1); o.Kind != rotation.KindRotated {
		t.Fatalf("event: %+v", o)
	}
	s := h.Latest(secretName)
	if s.Tags["CredentialId"] != u.b {
		t.Fatalf("CredentialId %q after the first rotation", s.Tags["CredentialId"])
	}
	tags := map[string]*string{}
	for k, v := range s.Tags {
		tags[k] = &v
	}
	forged := u.a
	tags["CredentialId"] = &forged
	if _, err := h.Client.UpdateSecretProperties(context.Background(), secretName, s.Version,
		azsecrets.UpdateSecretPropertiesParameters{Tags: tags}, nil); err != nil {
		t.Fatal(err)
	}
	if o := h.ManualOverride(secretName); o.Kind != rotation.KindRotated {
		t.Fatalf("manual: %+v", o)
	}
	u.mustLogin(t, u.b, s.Value.Reveal(), "the user the replaced version holds")
	if latest := h.Latest(secretName); latest.Tags["CredentialId"] != u.a {
		t.Fatalf("the second rotation changed %s, want %s", latest.Tags["CredentialId"], u.a)
	}
	latestLogsIn(t, h, u, "after the forged CredentialId")
}

// TestAttackPlainTextToARemoteHost: the tag-writer switches the bound server's address to redis:// to
// have the admin's password sent in plain text. Refused unless the host is loopback, before anything
// is read or contacted.
func TestAttackPlainTextToARemoteHost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, redis.New(), &providertest.Options{
		Bindings: binding(t, "redis.example.com:6379", "app_a", "app_b", "kvrotator_admin")})
	h.Seed(adminSecret, "kvrotator-admin-password", nil, 365*day)
	untouched := tripwire(t, h, adminSecret)
	v1 := h.Seed(secretName, "app-a-password", secretTags("redis://redis.example.com:6379", "app_a,app_b", "app_a", "kvrotator_admin"), 5*day)
	for _, o := range []rotation.Outcome{h.Manual(secretName, true), h.Event(secretName, v1)} {
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "loopback") {
			t.Fatalf("%+v, want a permanent configuration error", o)
		}
	}
	if !untouched() {
		t.Fatal("the admin secret was read")
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}
