package redis_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/redistest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/redis"
	"github.com/kvrotator/kvrotator/providers/registry"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// One server logs every command in SLOWLOG; each subtest has its own users on it.
func TestAgainstAServer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"slowlog-log-slower-than": "0", "slowlog-max-len": "10000"})
	p := providerFor(srv)
	ctx := context.Background()

	t.Run("alternates and never touches the active user", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "alt")
		active, activePassword := u.a, u.passwordA
		inactive := map[string]string{u.a: u.b, u.b: u.a}
		for i := range 4 { // a→b→a→b→a
			req := u.request(active, activePassword)
			before := aclUser(t, srv, active)
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
			u.mustLogin(t, cred.CredentialID, cred.Value.Reveal(), "after the rotation")
			u.mustLogin(t, active, activePassword, "the active user after the rotation")
			if !reflect.DeepEqual(aclUser(t, srv, active), before) {
				t.Fatalf("rotation %d: the active user's ACL changed", i+1)
			}
			if got, want := storedPasswords(t, srv, cred.CredentialID), "["+sha(cred.Value.Reveal())+"]"; got != want {
				t.Fatalf("rotation %d: stored %s, want only the new password's hash", i+1, got)
			}
			if len(cred.Value.Reveal()) != redis.PasswordLength || cred.Value.Reveal() == activePassword {
				t.Fatalf("rotation %d: a %d-character value", i+1, cred.Value.Len())
			}
			active, activePassword = cred.CredentialID, cred.Value.Reveal()
		}
	})

	t.Run("resetpass keeps every rule but the passwords", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "rules")
		// b has more than the common rules: several passwords, a selector, key and channel patterns,
		// a flag; after the rotation only its passwords may differ.
		srv.Do(t, "ACL", "SETUSER", u.b, ">second-password", "#"+sha("third-password"), "%R~rules:ro:*",
			"(~rules:other:* +get)", "&rules.extra.*", "+acl|whoami", "skip-sanitize-payload")
		before := aclUser(t, srv, u.b)
		cred, err := p.Create(ctx, u.request(u.a, u.passwordA))
		if err != nil {
			t.Fatal(err)
		}
		after := aclUser(t, srv, u.b)
		if fmt.Sprint(after["passwords"]) != "["+sha(cred.Value.Reveal())+"]" {
			t.Fatalf("passwords after: %v", after["passwords"])
		}
		delete(before, "passwords")
		delete(after, "passwords")
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("the rules changed:\nbefore %v\nafter  %v", before, after)
		}
		if err := p.Verify(ctx, u.request(u.a, u.passwordA), cred); err != nil {
			t.Fatal(err) // this user may run ACL WHOAMI: the verification compares the name
		}
		for _, old := range []string{u.passwordB, "second-password", "third-password"} {
			if u.login(u.b, old) == nil {
				t.Fatalf("an old password of %s still works", u.b)
			}
		}
		u.mustLogin(t, u.b, cred.Value.Reveal(), "with the new password")
	})

	t.Run("a nopass user gets a password and keeps its rules", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "nopass")
		srv.Do(t, "ACL", "SETUSER", u.b, "nopass")
		before := aclUser(t, srv, u.b)
		cred, err := p.Create(ctx, u.request(u.a, u.passwordA))
		if err != nil {
			t.Fatal(err)
		}
		after := aclUser(t, srv, u.b)
		if fmt.Sprint(after["flags"]) != strings.Replace(fmt.Sprint(before["flags"]), " nopass", "", 1) {
			t.Fatalf("flags %v, were %v", after["flags"], before["flags"])
		}
		if after["commands"] != before["commands"] || after["keys"] != before["keys"] || after["channels"] != before["channels"] {
			t.Fatal("the rules changed")
		}
		if u.login(u.b, "anything") == nil {
			t.Fatal("the user still takes any password")
		}
		u.mustLogin(t, u.b, cred.Value.Reveal(), "with the new password")
	})

	t.Run("nothing logs the password", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "logs")
		monitor := startMonitor(t, srv)
		req := u.request(u.a, u.passwordA)
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
		// A rejected verification too (an ACL LOG "auth" entry).
		if err := p.Verify(ctx, req, providers.Credential{Value: providers.NewValue("wrong-" + cred.Value.Reveal()), CredentialID: u.b}); err == nil {
			t.Fatal("verify with a wrong password succeeded")
		}
		password, hash := cred.Value.Reveal(), sha(cred.Value.Reveal())
		slowlog := fmt.Sprint(srv.Do(t, "SLOWLOG", "GET", "-1"))
		acllog := fmt.Sprint(srv.Do(t, "ACL", "LOG"))
		mon := monitor()
		for name, text := range map[string]string{"SLOWLOG": slowlog, "MONITOR": mon, "ACL LOG": acllog, "the server log": srv.Log()} {
			if strings.Contains(text, password) || strings.Contains(text, hash) {
				t.Errorf("%s holds the new password or its hash", name)
			}
			if strings.Contains(text, u.rotatorPassword) {
				t.Errorf("%s holds the admin's password", name)
			}
		}
		// What the logs did record, so that the checks above prove something: SLOWLOG the redacted
		// ACL SETUSER, MONITOR the redacted HELLO, ACL LOG the verification's NOPERM and the rejected login.
		if !strings.Contains(slowlog, "SETUSER (redacted) (redacted) (redacted)") {
			t.Errorf("SLOWLOG has no redacted ACL SETUSER: %.600s", slowlog)
		}
		if !strings.Contains(strings.ToUpper(mon), `"HELLO" "2" "AUTH" "(REDACTED)" "(REDACTED)"`) {
			t.Errorf("MONITOR saw no redacted HELLO: %.600s", mon)
		}
		if !strings.Contains(acllog, "acl|whoami") || !strings.Contains(acllog, "auth") {
			t.Errorf("ACL LOG: %.600s", acllog)
		}
		// The ACL file holds the hash (as it holds every user's), never the password.
		b, err := os.ReadFile(srv.ACLFilePath)
		if err != nil || !strings.Contains(string(b), "#"+hash) || strings.Contains(string(b), password) {
			t.Fatalf("ACL file (%v): want the new hash, not the password", err)
		}
	})

	t.Run("repeating create sets the inactive user again", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "again")
		req := u.request(u.a, u.passwordA)
		first, err1 := p.Create(ctx, req)
		second, err2 := p.Create(ctx, req)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		if first.CredentialID != u.b || second.CredentialID != u.b || first.Value.Reveal() == second.Value.Reveal() {
			t.Fatalf("created %s then %s", first.CredentialID, second.CredentialID)
		}
		u.mustLogin(t, u.b, second.Value.Reveal(), "after the second create")
		if u.login(u.b, first.Value.Reveal()) == nil {
			t.Fatal("the first attempt's password still works: two passwords for one user")
		}
		u.mustLogin(t, u.a, u.passwordA, "the active user")
	})

	t.Run("url format", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "url")
		req := u.request(u.a, u.passwordA, "redis-format", "url")
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
		pu, err := url.Parse(cred.Value.Reveal())
		if err != nil || pu.Scheme != "rediss" || pu.User.Username() != u.b || pu.Host != srv.Addr || pu.Path != "" {
			t.Fatalf("value is not rediss://%s:…@%s (err %v)", u.b, srv.Addr, err)
		}
		pw, _ := pu.User.Password()
		u.mustLogin(t, u.b, pw, "with the URL's password")

		// The next rotation's current value logs in as b; a CredentialId that still says a would make
		// it change b, the user the vault holds: refused, and b untouched.
		before := storedPasswords(t, srv, u.b)
		_, err = p.Create(ctx, u.request(u.a, cred.Value.Reveal(), "redis-format", "url"))
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != "CredentialId" {
			t.Fatalf("create with a CredentialId that contradicts the value: %v, want a ConfigError on CredentialId", err)
		}
		clean(t, err, pw)
		if storedPasswords(t, srv, u.b) != before {
			t.Fatal("the user the vault holds was changed")
		}
	})

	t.Run("a user with open connections is not reset, unless overridden", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "busy")
		// A client still connected as the inactive user (it holds the previous version's password).
		c := srv.Client(u.b, u.passwordB)
		defer c.Close()
		if err := c.Get(ctx, "busy:greeting").Err(); err != nil {
			t.Fatal(err)
		}
		before := storedPasswords(t, srv, u.b)
		_, err := p.Create(ctx, u.request(u.a, u.passwordA))
		if !errors.Is(err, redis.ErrOpenSessions) || providers.IsPermanent(err) || !strings.Contains(err.Error(), `"`+u.b+`"`) ||
			!strings.Contains(err.Error(), "(1,") {
			t.Fatalf("with a connection open: %v, want a transient ErrOpenSessions naming %s and the count", err, u.b)
		}
		if storedPasswords(t, srv, u.b) != before {
			t.Fatal("the user with an open connection was reset")
		}
		// Connections of the active user do not count.
		ca := srv.Client(u.a, u.passwordA)
		defer ca.Close()
		if err := ca.Get(ctx, "busy:greeting").Err(); err != nil {
			t.Fatal(err)
		}
		req := u.request(u.a, u.passwordA)
		req.Override = true
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatalf("override: %v", err)
		}
		// The open connection survives (Redis does not drop it); new ones need the new password.
		if err := c.Get(ctx, "busy:greeting").Err(); err != nil {
			t.Fatalf("the open connection after the override: %v", err)
		}
		u.mustLogin(t, u.b, cred.Value.Reveal(), "after the override")
	})

	t.Run("a wrong admin password is permanent", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "wrongadmin")
		req := u.request(u.a, u.passwordA)
		req.Secrets = vaultSecrets{adminSecret: "not-the-rotator-password"}
		_, err := p.Create(ctx, req)
		if err == nil || !providers.IsPermanent(err) || redisCode(err) != "WRONGPASS" {
			t.Fatalf("create: %v, want a permanent WRONGPASS", err)
		}
		clean(t, err, append(u.initialPasswords, "not-the-rotator-password")...)
		u.mustLogin(t, u.b, u.passwordB, "the inactive user after a failed rotation")
	})

	t.Run("an admin without the permissions is permanent", func(t *testing.T) {
		t.Parallel()
		for _, missing := range []string{"-acl|setuser", "-client|list", "-acl|getuser"} {
			u := makeUsers(t, srv, "weak"+strings.NewReplacer("-", "", "|", "").Replace(missing))
			srv.Do(t, "ACL", "SETUSER", u.rotator, missing)
			before := storedPasswords(t, srv, u.b)
			_, err := p.Create(ctx, u.request(u.a, u.passwordA))
			if err == nil || !providers.IsPermanent(err) || redisCode(err) != "NOPERM" {
				t.Fatalf("%s: create: %v, want a permanent NOPERM", missing, err)
			}
			clean(t, err, u.initialPasswords...)
			if storedPasswords(t, srv, u.b) != before {
				t.Fatalf("%s: the inactive user changed", missing)
			}
		}
	})

	t.Run("a missing user is a configuration error, and none is created", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "missing")
		for _, list := range []string{u.a + ",missing_c", "missing_c," + u.b} {
			active := strings.Split(list, ",")[0]
			_, err := p.Create(ctx, u.request(active, "x", "redis-users", list))
			var ce *providers.ConfigError
			if !errors.As(err, &ce) || ce.Tag != "redis-users" || !strings.Contains(err.Error(), `"missing_c" does not exist`) {
				t.Fatalf("users %s: %v, want a ConfigError on redis-users naming missing_c", list, err)
			}
		}
		if srv.Do(t, "ACL", "GETUSER", "missing_c") != nil {
			t.Fatal("ACL SETUSER created the missing user")
		}
	})

	t.Run("a user that is off is a configuration error", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "off")
		srv.Do(t, "ACL", "SETUSER", u.b, "off")
		before := storedPasswords(t, srv, u.b)
		_, err := p.Create(ctx, u.request(u.a, u.passwordA))
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "is off") {
			t.Fatalf("create: %v, want a ConfigError saying the user is off", err)
		}
		if storedPasswords(t, srv, u.b) != before {
			t.Fatal("the user that is off was changed")
		}
	})

	t.Run("a missing admin secret is reported with its name", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "nosecret")
		req := u.request(u.a, u.passwordA)
		req.Secrets = vaultSecrets{}
		_, err := p.Create(ctx, req)
		if !errors.Is(err, errNotFound) || !strings.Contains(err.Error(), adminSecret) {
			t.Fatalf("create: %v, want the reader's not-found error naming %s", err, adminSecret)
		}
		req = u.request(u.a, u.passwordA)
		req.Secret = adminSecret
		if _, err := p.Create(ctx, req); err == nil || !providers.IsPermanent(err) {
			t.Fatalf("admin secret = the rotated secret: %v, want a ConfigError", err)
		}
	})

	t.Run("verify with a wrong password is transient", func(t *testing.T) {
		t.Parallel()
		u := makeUsers(t, srv, "badverify")
		req := u.request(u.a, u.passwordA)
		err := p.Verify(ctx, req, providers.Credential{Value: providers.NewValue("not-the-password"), CredentialID: u.b})
		if err == nil || providers.IsPermanent(err) || redisCode(err) != "WRONGPASS" {
			t.Fatalf("verify: %v, want a transient WRONGPASS (the engine retries through propagation)", err)
		}
		clean(t, err, "not-the-password")
		err = p.Verify(ctx, req, providers.Credential{Value: providers.NewValue(u.passwordA), CredentialID: "someone_else"})
		if err == nil || !providers.IsPermanent(err) {
			t.Fatalf("verify of a user outside redis-users: %v, want permanent", err)
		}
	})
}

// startMonitor runs MONITOR as the admin on its own connection and returns a function that stops it
// and returns what it saw.
func startMonitor(t *testing.T, srv *redistest.Server) func() string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", srv.Addr, srv.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "AUTH %s %s\r\nMONITOR\r\n", srv.AdminUser, srv.AdminPassword)
	r := bufio.NewReader(conn)
	for range 2 { // +OK to AUTH, +OK to MONITOR
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("MONITOR: %q %v", line, err)
		}
	}
	var mu sync.Mutex
	var seen strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			line, err := r.ReadString('\n')
			mu.Lock()
			seen.WriteString(line)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	var once sync.Once
	stop := func() string {
		once.Do(func() {
			time.Sleep(200 * time.Millisecond) // let the last commands arrive
			conn.Close()
			<-done
		})
		mu.Lock()
		defer mu.Unlock()
		return seen.String()
	}
	t.Cleanup(func() { stop() })
	return stop
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("acl-save: the new password survives a restart", func(t *testing.T) {
		t.Parallel()
		srv := startServer(t, nil)
		u := makeUsers(t, srv, "saved")
		p := providerFor(srv)
		cred, err := p.Create(ctx, u.request(u.a, u.passwordA))
		if err != nil {
			t.Fatal(err)
		}
		srv.Restart(t)
		u.mustLogin(t, u.b, cred.Value.Reveal(), "after a restart")
		if u.login(u.b, u.passwordB) == nil {
			t.Fatal("the old password came back after a restart")
		}
	})

	t.Run("acl-save without an ACL file fails before changing anything", func(t *testing.T) {
		t.Parallel()
		srv := redistest.StartServer(t, &redistest.Options{TLS: true}) // users in redis.conf
		u := makeUsers(t, srv, "noaclfile")
		p := providerFor(srv)
		before := storedPasswords(t, srv, u.b)
		_, err := p.Create(ctx, u.request(u.a, u.passwordA))
		var ce *providers.ConfigError
		if !errors.As(err, &ce) || ce.Tag != "redis-persist" || !strings.Contains(err.Error(), "redis-persist=none") {
			t.Fatalf("create: %v, want a ConfigError on redis-persist", err)
		}
		if storedPasswords(t, srv, u.b) != before {
			t.Fatal("the password changed although it could not be saved")
		}
		// redis-persist = none changes the running server only.
		req := u.request(u.a, u.passwordA, "redis-persist", "none")
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServerDownIsTransient(t *testing.T) {
	t.Parallel()
	srv := startServer(t, nil)
	u := makeUsers(t, srv, "down")
	req := u.request(u.a, u.passwordA)
	srv.Stop()
	p := providerFor(srv)
	_, err := p.Create(context.Background(), req)
	if err == nil || providers.IsPermanent(err) {
		t.Fatalf("create against a stopped server: %v, want transient", err)
	}
	clean(t, err, u.initialPasswords...)
	err = p.Verify(context.Background(), req, providers.Credential{Value: providers.NewValue("whatever-it-was"), CredentialID: u.b})
	if err == nil || providers.IsPermanent(err) {
		t.Fatalf("verify against a stopped server: %v, want transient", err)
	}
}

// A server at maxclients is Redis's way of throttling: transient. It answers "ERR max number of clients
// reached" and closes at once, so the client usually sees a reset connection.
func TestMaxClientsIsTransient(t *testing.T) {
	t.Parallel()
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain text on loopback", true: "TLS"}[useTLS], func(t *testing.T) {
			t.Parallel()
			srv := redistest.StartServer(t, &redistest.Options{TLS: useTLS, ACLFile: true, Settings: map[string]string{"maxclients": "2"}})
			u := makeUsers(t, srv, "full")
			ctx := context.Background()
			var changes []string
			if !useTLS {
				changes = []string{"ProviderAddress", "redis://" + srv.Addr}
			}
			var held []interface{ Close() error }
			for range 2 {
				c := srv.Client(u.a, u.passwordA)
				if err := c.Get(ctx, "full:greeting").Err(); err != nil {
					t.Fatal(err)
				}
				held = append(held, c)
			}
			p := providerFor(srv)
			_, err := p.Create(ctx, u.request(u.a, u.passwordA, changes...))
			if err == nil || providers.IsPermanent(err) {
				t.Fatalf("create against a full server: %v, want a transient failure", err)
			}
			for _, c := range held {
				c.Close()
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err = p.Create(ctx, u.request(u.a, u.passwordA, changes...))
				if err == nil || time.Now().After(deadline) {
					break
				}
				time.Sleep(50 * time.Millisecond) // until the server has seen the connections close
			}
			if err != nil {
				t.Fatalf("create once connections are free: %v", err)
			}
			if info := fmt.Sprint(srv.Do(t, "INFO", "stats")); strings.Contains(info, "rejected_connections:0") {
				t.Fatalf("the server rejected no connection: the test proves nothing\n%s", info)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ca := redistest.NewCA(t)
	srv := redistest.StartServer(t, &redistest.Options{CA: ca, ACLFile: true})
	u := makeUsers(t, srv, "tls")
	p := redis.New(redis.WithRootCAFile(ca.CertFile))

	// By address and by name, with and without the scheme: all TLS, verified.
	active, activePassword := u.a, u.passwordA
	for _, addr := range []string{"rediss://127.0.0.1", "127.0.0.1", "rediss://localhost", "localhost"} {
		req := u.request(active, activePassword, "ProviderAddress", addr+fmt.Sprintf(":%d", srv.Port))
		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatalf("%s: create: %v", addr, err)
		}
		if err := p.Verify(ctx, req, cred); err != nil {
			t.Fatalf("%s: verify: %v", addr, err)
		}
		active, activePassword = cred.CredentialID, cred.Value.Reveal()
	}

	// A provider that trusts another CA (or only the system's roots) refuses the server during the
	// handshake, before the login is sent.
	for name, other := range map[string]*redis.Provider{
		"another CA":         redis.New(redis.WithRootCAFile(redistest.NewCA(t).CertFile)),
		"the system's roots": redis.New(),
	} {
		req := u.request(active, activePassword)
		_, err := other.Create(ctx, req)
		if !errors.Is(err, redis.ErrUntrustedServer) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), redis.EnvCAFile) {
			t.Fatalf("%s: create: %v, want a permanent ErrUntrustedServer naming %s", name, err, redis.EnvCAFile)
		}
		err = other.Verify(ctx, req, providers.Credential{Value: providers.NewValue(activePassword), CredentialID: active})
		if !errors.Is(err, redis.ErrUntrustedServer) || !providers.IsPermanent(err) {
			t.Fatalf("%s: verify: %v, want a permanent ErrUntrustedServer", name, err)
		}
	}

	// A certificate from the trusted CA for another name: refused.
	named := redistest.StartServer(t, &redistest.Options{CA: ca, CertHosts: []string{"db.example.com"}, ACLFile: true})
	un := makeUsers(t, named, "tlsname")
	if _, err := p.Create(ctx, un.request(un.a, un.passwordA)); !errors.Is(err, redis.ErrUntrustedServer) || !providers.IsPermanent(err) {
		t.Fatalf("a certificate for another name: %v, want a permanent ErrUntrustedServer", err)
	}

	// A plain-text Redis never answers a TLS ClientHello (it waits for the end of an inline command):
	// rediss:// times out in the handshake, transient, with a hint; nothing but the ClientHello was sent.
	// redis://, allowed for loopback, works.
	plain := redistest.StartServer(t, &redistest.Options{ACLFile: true})
	up := makeUsers(t, plain, "plain")
	if _, err := p.Create(ctx, up.request(up.a, up.passwordA)); err == nil || providers.IsPermanent(err) ||
		!strings.Contains(err.Error(), "does not speak TLS") {
		t.Fatalf("rediss:// to a plain-text server: %v, want a transient handshake timeout with a hint", err)
	}
	req := up.request(up.a, up.passwordA, "ProviderAddress", "redis://"+plain.Addr)
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatalf("redis:// on loopback: %v", err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatalf("redis:// on loopback: verify: %v", err)
	}

	// The operator's CA file gone: a permanent error naming the setting.
	_, err = redis.New(redis.WithRootCAFile(filepath.Join(t.TempDir(), "missing.pem"))).Create(ctx, u.request(active, activePassword))
	if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), redis.EnvCAFile) {
		t.Fatalf("a missing CA file: %v, want a permanent error naming %s", err, redis.EnvCAFile)
	}
}

// A server that requires client certificates (tls-auth-clients yes, Redis's default with TLS): the
// operator's certificate gets in, no certificate is refused.
func TestClientCertificate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.StartServer(t, &redistest.Options{ClientCerts: true, ACLFile: true})
	u := makeUsers(t, srv, "mtls")
	with := redis.New(redis.WithRootCAFile(srv.CAFile), redis.WithClientCertificate(srv.ClientCertFile, srv.ClientKeyFile))
	req := u.request(u.a, u.passwordA)
	cred, err := with.Create(ctx, req)
	if err != nil {
		t.Fatalf("with the client certificate: %v", err)
	}
	if err := with.Verify(ctx, req, cred); err != nil {
		t.Fatalf("with the client certificate: verify: %v", err)
	}
	without := providerFor(srv)
	_, err = without.Create(ctx, u.request(u.b, cred.Value.Reveal()))
	if !errors.Is(err, redis.ErrTLSRefused) || !providers.IsPermanent(err) || !strings.Contains(err.Error(), redis.EnvClientCertFile) {
		t.Fatalf("without a client certificate: %v, want a permanent ErrTLSRefused naming %s", err, redis.EnvClientCertFile)
	}
	clean(t, err, u.initialPasswords...)
}

// The registered provider reads the operator's CA and client certificate when it is built
// (t.Setenv: not parallel).
func TestSettingsFromTheEnvironment(t *testing.T) {
	srv := redistest.StartServer(t, &redistest.Options{ClientCerts: true, ACLFile: true})
	u := makeUsers(t, srv, "envca")
	ctx := context.Background()

	t.Setenv(redis.EnvCAFile, srv.CAFile)
	t.Setenv(redis.EnvClientCertFile, srv.ClientCertFile)
	t.Setenv(redis.EnvClientKeyFile, srv.ClientKeyFile)
	set, problems := registry.Build(registry.Env{})
	if problems[redis.Name] != nil {
		t.Fatal(problems[redis.Name])
	}
	p, ok := set.Lookup(redis.Name)
	if !ok || p.Shape() != providers.ShapeAlternating {
		t.Fatal("redis is not registered as an alternating provider")
	}
	if _, isRevoker := p.(providers.Revoker); isRevoker {
		t.Fatal("redis has nothing to revoke but implements Revoker")
	}
	req := u.request(u.a, u.passwordA)
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatalf("with the settings: %v", err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}

	notPEM := filepath.Join(t.TempDir(), "file.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ setting, value, want string }{
		{redis.EnvCAFile, filepath.Join(t.TempDir(), "missing.pem"), redis.EnvCAFile},
		{redis.EnvCAFile, notPEM, redis.EnvCAFile},
		{redis.EnvClientKeyFile, "", redis.EnvClientKeyFile},
		{redis.EnvClientKeyFile, notPEM, redis.EnvClientKeyFile},
	} {
		t.Setenv(redis.EnvCAFile, srv.CAFile)
		t.Setenv(redis.EnvClientKeyFile, srv.ClientKeyFile)
		t.Setenv(tc.setting, tc.value)
		_, problems = registry.Build(registry.Env{})
		if err := problems[redis.Name]; err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s=%q: %v, want a build error naming %s", tc.setting, tc.value, err, tc.want)
		}
	}
}
