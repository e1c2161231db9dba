// Package redis is kvrotator's provider for self-hosted Redis ACL users (Redis 6.0 and later), rotated
// as alternating users: two ACL users (app_a, app_b) have the same permissions, the vault's current
// version holds the password of one of them (the CredentialId tag), and each rotation sets a new
// password on the other one, verifies it by logging in, and flips CredentialId. The user the application
// is using is never touched, so its open connections and pools keep working until they pick up the new
// version; the previous user keeps its password until the rotation after next. There is nothing to
// revoke. Azure Cache for Redis access keys are the azure-keys provider's, not this one's.
//
// The new password never reaches the server in ACL SETUSER: the provider sends
//
//	ACL SETUSER <user> resetpass #<SHA-256 of the new password, hex>
//
// resetpass removes the user's passwords (and nopass), #<hash> adds the new one, which Redis stores as
// it is (it stores every password as that hash). No other rule is named, so the user's flags, commands,
// keys, channels and selectors are left as they were; the provider reads them with ACL GETUSER before
// and after and fails (ErrRulesChanged) if anything but the passwords differs. The password is sent
// only when verifying, in HELLO/AUTH, whose arguments Redis keeps out of SLOWLOG and MONITOR.
//
// Every connection, the admin's and the verification login's, is TLS (rediss://, the default) and
// verifies the server's certificate and name against CAs the operator chose (WithRootCAFile, which the
// registry fills from KVROTATOR_REDIS_CA_FILE; else the system's roots) before anything is sent, and
// presents the operator's client certificate when one is set (KVROTATOR_REDIS_CLIENT_CERT_FILE and
// KVROTATOR_REDIS_CLIENT_KEY_FILE, for servers with tls-auth-clients yes). Plain text (redis://) is
// accepted for loopback hosts only, where the traffic never leaves the machine.
//
// The provider reads these tags (names are case-insensitive; README.md has them in full):
//
//   - ProviderAddress (required): host[:port] or rediss://host[:port] (TLS), or redis://host[:port]
//     (plain text, loopback only); the port defaults to 6379.
//   - redis-users (required): the two ACL users that take turns, "app_a,app_b".
//   - CredentialId (required): the user whose password the current version holds.
//   - redis-admin-user (required): the ACL user that sets passwords (ACL GETUSER, SETUSER, SAVE and
//     CLIENT LIST).
//   - redis-admin-secret (required): the NAME of another secret in the same vault whose value is the
//     admin's password.
//   - redis-format: password (default) or url (rediss://user:password@host:port).
//   - redis-persist: acl-save (default: ACL SAVE writes the change to the server's ACL file) or none.
//
// Every reference the tags make the provider follow is declared by References and bound by the operator
// (KVROTATOR_BINDINGS): the server (kind server, host:port), the admin user and the rotated users (kind
// login), and the secret holding the admin's password (kind secret).
//
// A user with open connections is not reset (they hold the previous version's password and would fail
// to reconnect): the rotation is refused as a transient failure, unless Request.Override.
//
// A secret whose application logs in as cache_a or cache_b to redis.example.com:
//
//	rotation-provider  = redis
//	ValidityPeriodDays = 60
//	ProviderAddress    = rediss://redis.example.com:6379
//	redis-users        = cache_a,cache_b
//	CredentialId       = cache_a
//	redis-admin-user   = kvrotator
//	redis-admin-secret = cache-redis-kvrotator
package redis

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	redigo "github.com/gomodule/redigo/redis"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "redis"

// The app settings the registered provider reads when it is built. They are the operator's: no tag can
// change them.
const (
	// EnvCAFile is the path of a PEM file holding the CA certificates that Redis servers' certificates
	// must chain to (a private CA). Empty: the system's roots.
	EnvCAFile = "KVROTATOR_REDIS_CA_FILE"
	// EnvClientCertFile and EnvClientKeyFile are a PEM client certificate and its key, presented to
	// servers that require one (tls-auth-clients yes, Redis's default when TLS is on). Both or neither.
	EnvClientCertFile = "KVROTATOR_REDIS_CLIENT_CERT_FILE"
	EnvClientKeyFile  = "KVROTATOR_REDIS_CLIENT_KEY_FILE"
)

func init() {
	registry.Register(Name, func(registry.Env) (providers.Provider, error) { return FromEnv(os.Getenv) })
}

// FromEnv builds the provider with the settings getenv returns (os.Getenv in the application), checking
// the files now so that a wrong path is an error at start rather than at the first rotation.
func FromEnv(getenv func(string) string) (*Provider, error) {
	var opts []Option
	if f := strings.TrimSpace(getenv(EnvCAFile)); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("redis: %s=%s: %w", EnvCAFile, f, err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("redis: %s=%s: holds no PEM certificate", EnvCAFile, f)
		}
		opts = append(opts, WithRootCAFile(f))
	}
	cert, key := strings.TrimSpace(getenv(EnvClientCertFile)), strings.TrimSpace(getenv(EnvClientKeyFile))
	switch {
	case cert == "" && key == "":
	case cert == "" || key == "":
		return nil, fmt.Errorf("redis: set both %s and %s, or neither", EnvClientCertFile, EnvClientKeyFile)
	default:
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			return nil, fmt.Errorf("redis: %s=%s, %s=%s: %w", EnvClientCertFile, cert, EnvClientKeyFile, key, err)
		}
		opts = append(opts, WithClientCertificate(cert, key))
	}
	return New(opts...), nil
}

// Timeouts. Each connection attempt (and each reply) is bounded by ConnectTimeout, each Create or
// Verify call by OperationTimeout, and both by the engine's context.
const (
	ConnectTimeout   = 10 * time.Second
	OperationTimeout = 30 * time.Second
)

const (
	stepCreate = "create"
	stepVerify = "verify"
)

// Provider sets and verifies Redis ACL passwords. It holds no mutable state and is safe for concurrent
// use.
type Provider struct {
	// rand is the source of passwords; crypto/rand.Reader except in tests.
	rand io.Reader
	// caFile is the operator's CA file ("" for the system's roots).
	caFile string
	// certFile and keyFile are the operator's client certificate ("" for none).
	certFile, keyFile string
}

// Option configures a Provider.
type Option func(*Provider)

// WithRootCAFile makes every TLS connection trust the CA certificates in the PEM file at path, and only
// those. The file is read at each connection, so a renewed CA file is picked up without a restart.
func WithRootCAFile(path string) Option { return func(p *Provider) { p.caFile = path } }

// WithClientCertificate makes every TLS connection present the certificate in certFile (PEM) with the
// private key in keyFile, for servers that require client certificates. Read at each connection.
func WithClientCertificate(certFile, keyFile string) Option {
	return func(p *Provider) { p.certFile, p.keyFile = certFile, keyFile }
}

// New returns a Provider that draws passwords from crypto/rand.
func New(opts ...Option) *Provider {
	p := &Provider{rand: rand.Reader}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeAlternating: the inactive user gets the new password; nothing is revoked.
func (*Provider) Shape() providers.Shape { return providers.ShapeAlternating }

// Validate checks the provider's tags (and ProviderAddress and CredentialId) without connecting to
// anything. Every problem is a *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	_, err := parseConfig(p, "", "")
	return err
}

// References are the server (host:port, the port always written out), the admin user and the rotated
// users, and the secret holding the admin's password: an operator binds each (kinds server, login,
// secret). Create and Verify reach nothing else: they connect only to that server, log in only as those
// users, change only the rotated ones, and read only that secret.
func (*Provider) References(p providers.Params) []providers.Reference {
	c, err := parseConfig(p, "", "")
	if err != nil {
		return nil // Validate reports it; the engine never gets here
	}
	refs := []providers.Reference{
		{Kind: providers.RefServer, Tag: TagAddress, Value: c.server()},
		{Kind: providers.RefSecret, Tag: TagAdminSecret, Value: c.adminRef},
		{Kind: providers.RefLogin, Tag: TagAdminUser, Value: c.admin},
	}
	for _, u := range c.users {
		refs = append(refs, providers.Reference{Kind: providers.RefLogin, Tag: TagUsers, Value: u})
	}
	return refs
}

// Create sets a new password on the user the current version does not hold and returns it, with that
// user as CredentialID. The password is 40 random letters and digits; only its SHA-256 is sent to the
// server (ACL SETUSER <user> resetpass #<hash>). The user the current version holds is never altered.
//
// Create is idempotent by nature: a second call after an interrupted first one sets the inactive
// user's password again (resetpass drops the first attempt's), and only the last one is ever written
// to the vault. Nothing is created, so nothing can be orphaned.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	cfg, err := parseConfig(req.Params, req.Address, req.CredentialID)
	if err != nil {
		return providers.Credential{}, err
	}
	target := cfg.target()
	if err := cfg.checkCurrent(req.Current, target); err != nil {
		return providers.Credential{}, err
	}
	adminPassword, err := p.adminPassword(ctx, req, cfg)
	if err != nil {
		return providers.Credential{}, err
	}
	password, err := generatePassword(p.rand)
	if err != nil {
		return providers.Credential{}, fmt.Errorf("redis create: %w", err)
	}
	if err := p.setPassword(ctx, cfg, adminPassword, target, passwordHash(password), req.Override); err != nil {
		return providers.Credential{}, err
	}
	return providers.Credential{Value: providers.NewValue(cfg.value(target, password)), CredentialID: target}, nil
}

// Verify logs in as the credential's user with its new password over a new connection (verified TLS,
// HELLO AUTH) and checks with ACL WHOAMI that the server says it is that user. A user whose permissions
// do not include ACL WHOAMI is verified by the login alone (Redis answers NOPERM only to an authenticated
// connection). A password the server rejects (WRONGPASS) is a transient failure, which the engine
// retries until its verify timeout; anything else the server refuses is permanent.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params, req.Address, req.CredentialID)
	if err != nil {
		return err
	}
	user := cred.CredentialID
	if !slices.Contains(cfg.users, user) {
		return providers.Permanent(fmt.Errorf("redis verify: credential id %q is not one of the users in %s", user, TagUsers))
	}
	password, err := cfg.passwordOf(cred.Value, user)
	if err != nil {
		return providers.Permanent(fmt.Errorf("redis verify: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, OperationTimeout)
	defer cancel()
	fail := func(reason string, err error) error {
		return classify(stepVerify, cfg.server(), user, reason, scrub(err, password))
	}
	rdb, notes, err := p.open(cfg, user, password)
	if err != nil {
		return fail("connecting with the new password", err)
	}
	defer rdb.Close()
	who, err := redigo.String(rdb.Do(ctx, "ACL", "WHOAMI"))
	err = notes.explain(err)
	switch {
	case err != nil && commandNoPerm(err):
		return nil // logged in; the user may not run ACL WHOAMI
	case err != nil:
		return fail("logging in with the new password (HELLO AUTH, then ACL WHOAMI)", err)
	case who != user:
		return providers.Permanent(&Error{Step: stepVerify, Server: cfg.server(), User: user,
			Reason: fmt.Sprintf("logged in, but the server says the connection is %q (a proxy mapping users?)", who)})
	}
	return nil
}

// commandNoPerm reports whether err is the server's NOPERM reply to a command itself, not an error of
// the connection's set-up (login wraps those in a loginError).
func commandNoPerm(err error) bool {
	rerr, ok := err.(redigo.Error)
	return ok && strings.HasPrefix(string(rerr), "NOPERM")
}

// adminPassword reads the admin's password from the secret the redis-admin-secret tag names.
func (p *Provider) adminPassword(ctx context.Context, req providers.Request, cfg config) (string, error) {
	if strings.EqualFold(cfg.adminRef, req.Secret) {
		return "", providers.ConfigErrorf(TagAdminSecret, cfg.adminRef,
			"names the secret being rotated; the admin's password must be kept in a different secret")
	}
	if req.Secrets == nil {
		return "", providers.Permanent(errors.New("redis: the request has no secret reader for the admin's password"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.adminRef)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return "", fmt.Errorf("redis: reading the admin's password from secret %q (tag %s): %w", cfg.adminRef, TagAdminSecret, err)
	}
	if v.IsZero() {
		return "", providers.ConfigErrorf(TagAdminSecret, cfg.adminRef, "the secret's value is empty; it must be the password of %s", cfg.admin)
	}
	return v.Reveal(), nil
}

// checkCurrent refuses to go on when the current value itself says it belongs to the user about to be
// changed: the CredentialId tag is then wrong, and following it would break the application. Only a
// URL names its user; a bare password cannot be checked.
func (c config) checkCurrent(current providers.Value, target string) error {
	if c.format != FormatURL || current.IsZero() {
		return nil
	}
	u, err := url.Parse(current.Reveal())
	if err != nil || u.User == nil {
		return nil // not one of ours (a hand-written first version): nothing to compare
	}
	if u.User.Username() == target {
		return providers.ConfigErrorf(TagCredentialID, c.active,
			"the current version's URL logs in as %s, the user this rotation would change; set %s to %s",
			target, TagCredentialID, target)
	}
	return nil
}

// value is what the vault stores for user's new password.
func (c config) value(user, password string) string {
	if c.format != FormatURL {
		return password
	}
	return c.url(user, password)
}

// url is rediss://user:password@host:port (redis:// for plain text on loopback), which redis-py,
// go-redis, node-redis, ioredis, Lettuce and redis-cli -u accept.
func (c config) url(user, password string) string {
	u := url.URL{Scheme: c.scheme(), User: url.UserPassword(user, password), Host: net.JoinHostPort(c.host, strconv.Itoa(c.port))}
	return u.String()
}

// passwordOf takes the password out of a stored value.
func (c config) passwordOf(v providers.Value, user string) (string, error) {
	if v.IsZero() {
		return "", errors.New("the credential has no value")
	}
	if c.format != FormatURL {
		return v.Reveal(), nil
	}
	u, err := url.Parse(v.Reveal())
	if err != nil || u.User == nil {
		return "", errors.New("the value is not a redis URL with a user")
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || u.User.Username() != user {
		return "", fmt.Errorf("the URL does not hold a password for %s", user)
	}
	return pw, nil
}

// passwordAlphabet is what generated passwords are drawn from: letters and digits need no quoting in
// URLs, shells or ACL files.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// PasswordLength is the length of generated passwords: 40 characters of 62 is about 238 bits, far
// beyond guessing from the unsalted SHA-256 that Redis stores.
const PasswordLength = 40

// generatePassword draws PasswordLength characters uniformly from passwordAlphabet: bytes at or above
// the largest multiple of the alphabet's size are rejected, not folded in with a modulo.
func generatePassword(r io.Reader) (string, error) {
	const n = len(passwordAlphabet)
	const limit = 256 - 256%n
	out := make([]byte, 0, PasswordLength)
	buf := make([]byte, 2*PasswordLength)
	for round := 0; len(out) < PasswordLength; round++ {
		if round == 100 {
			return "", errors.New("random source: it keeps returning the same bytes")
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("random source: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < PasswordLength {
				out = append(out, passwordAlphabet[int(b)%n])
			}
		}
	}
	return string(out), nil
}

// Provider must satisfy the contract.
var _ providers.Provider = (*Provider)(nil)
