package redis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/internal/redistest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/redis"
)

// keysReady serialises the first harness of the test binary. providertest's emulators share one key
// directory (emulatortest.KeyDir) and create its CA on first use; emulators started at the same moment
// by parallel tests race to write it ("ca-key.pem does not match the certificate"). Once the first one
// has written it, the rest only read it.
var keysReady sync.Once

// newHarness is providertest.New for the provider under test, safe to call from parallel tests.
func newHarness(t *testing.T, p providers.Provider, o *providertest.Options) *providertest.Harness {
	t.Helper()
	var h *providertest.Harness
	keysReady.Do(func() { h = providertest.New(t, redis.Name, p, o) })
	if h != nil {
		return h
	}
	return providertest.New(t, redis.Name, p, o)
}

// startServer starts a redis-server that speaks TLS only, with a certificate for 127.0.0.1 and
// localhost signed by its own test CA (srv.CAFile), and its users in an ACL file (so ACL SAVE works,
// as on a production server configured with aclfile).
func startServer(t *testing.T, settings map[string]string) *redistest.Server {
	t.Helper()
	return redistest.StartServer(t, &redistest.Options{TLS: true, ACLFile: true, Settings: settings})
}

// providerFor is the provider as the operator configures it for srv: trusting srv's CA
// (KVROTATOR_REDIS_CA_FILE), so that every connection verifies the real server.
func providerFor(srv *redistest.Server) *redis.Provider {
	return redis.New(redis.WithRootCAFile(srv.CAFile))
}

// adminSecret is the secret the redis-admin-secret tag names.
const adminSecret = "cache-redis-rotator"

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

// appRules are the application's permissions, which both users have: read and write its keys, publish
// on its channels, nothing else (not even ACL WHOAMI).
func appRules(prefix string) []any {
	return []any{"~" + prefix + ":*", "&" + prefix + ".*", "+@read", "+@write", "+@connection", "-client", "+publish", "-flushdb"}
}

// rotatorRules are the admin's permissions: what the provider needs and nothing else.
var rotatorRules = []any{"+acl|getuser", "+acl|setuser", "+acl|save", "+client|list"}

// users is one application's ACL users on a test server: two users with the same permissions and a
// rotator user with only what the provider needs.
type users struct {
	srv              *redistest.Server
	prefix, a, b     string
	passwordA        string
	passwordB        string
	rotator          string
	rotatorPassword  string
	initialPasswords []string
}

// makeUsers creates prefix_a, prefix_b (appRules) and prefix_rotator (rotatorRules) on srv and a key
// only the application's users may read.
func makeUsers(t *testing.T, srv *redistest.Server, prefix string) users {
	t.Helper()
	u := users{srv: srv, prefix: prefix, a: prefix + "_a", b: prefix + "_b", rotator: prefix + "_rotator",
		passwordA: "initial-A-" + prefix, passwordB: "initial-B-" + prefix, rotatorPassword: "rotator-PW-" + prefix}
	u.initialPasswords = []string{u.passwordA, u.passwordB, u.rotatorPassword, srv.AdminPassword}
	srv.Do(t, append([]any{"ACL", "SETUSER", u.a, "reset", "on", ">" + u.passwordA}, appRules(prefix)...)...)
	srv.Do(t, append([]any{"ACL", "SETUSER", u.b, "reset", "on", ">" + u.passwordB}, appRules(prefix)...)...)
	srv.Do(t, append([]any{"ACL", "SETUSER", u.rotator, "reset", "on", ">" + u.rotatorPassword}, rotatorRules...)...)
	if srv.ACLFilePath != "" {
		srv.Do(t, "ACL", "SAVE")
	}
	srv.Do(t, "SET", prefix+":greeting", "hello")
	return u
}

// address is the ProviderAddress of srv.
func address(srv *redistest.Server) string { return "rediss://" + srv.Addr }

// tagsFor are the tags of a secret whose current version holds active's password, with changes applied
// ("" deletes a tag).
func (u users) tagsFor(active string, changes ...string) providers.Params {
	return secretTags(address(u.srv), u.a+","+u.b, active, u.rotator, changes...)
}

// secretTags are the tags of a redis secret on the server at address, with changes applied.
func secretTags(address, userList, active, admin string, changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":  redis.Name,
		"ProviderAddress":    address,
		"redis-users":        userList,
		"CredentialId":       active,
		"redis-admin-user":   admin,
		"redis-admin-secret": adminSecret,
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
func (u users) request(active, current string, changes ...string) providers.Request {
	p := u.tagsFor(active, changes...)
	return providers.Request{
		Vault: "myvault", Secret: "cache-redis", Version: "v1", Current: providers.NewValue(current),
		CredentialID: p.Get("CredentialId"), Address: p.Get("ProviderAddress"), Params: p,
		IdempotencyKey: "kvr-0123456789abcdef", Secrets: vaultSecrets{adminSecret: u.rotatorPassword}, Now: time.Now(),
	}
}

// login logs in as user with password and reads the application's key: the login works and has the
// application's permissions (the key itself is gone after a restart: the test servers keep no data).
func (u users) login(user, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := u.srv.Client(user, password)
	defer c.Close()
	v, err := c.Get(ctx, u.prefix+":greeting").Result()
	if errors.Is(err, redistest.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	if v != "hello" {
		return fmt.Errorf("read %q, want hello", v)
	}
	return nil
}

// mustLogin fails the test unless user logs in with password.
func (u users) mustLogin(t *testing.T, user, password, when string) {
	t.Helper()
	if err := u.login(user, password); err != nil {
		t.Fatalf("%s: %s cannot log in: %v", when, user, err)
	}
}

// binding is the operator's KVROTATOR_BINDINGS for the common case: every secret of the test vault
// rotated by redis may use the server at serverAddr, the users, and the admin secret.
func binding(t *testing.T, serverAddr string, logins ...string) *bindings.Policy {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"bindings": []any{map[string]any{
		"name":     "cache-redis",
		"secrets":  []string{"provider-vault/*"},
		"provider": redis.Name,
		"allow": map[string][]string{
			"server": {serverAddr},
			"login":  logins,
			"secret": {adminSecret},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bindings.Parse(doc, "test bindings", []string{redis.Name})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// binding binds u's server, its three users and the admin secret.
func (u users) binding(t *testing.T) *bindings.Policy {
	return binding(t, u.srv.Addr, u.a, u.b, u.rotator)
}

// aclUser is ACL GETUSER's reply as a map of field to value (RESP2: a flat array).
func aclUser(t *testing.T, srv *redistest.Server, user string) map[string]any {
	t.Helper()
	r, ok := srv.Do(t, "ACL", "GETUSER", user).([]any)
	if !ok {
		t.Fatalf("ACL GETUSER %s: no such user", user)
	}
	m := map[string]any{}
	for i := 0; i+1 < len(r); i += 2 {
		m[r[i].(string)] = r[i+1]
	}
	return m
}

// storedPasswords are the hashes Redis stores for user, joined.
func storedPasswords(t *testing.T, srv *redistest.Server, user string) string {
	t.Helper()
	return fmt.Sprint(aclUser(t, srv, user)["passwords"])
}

// redisCode is the Code of the redis.Error in err, "" if none.
func redisCode(err error) string {
	var e *redis.Error
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
