// Package mysql is kvrotator's provider for MySQL and MariaDB logins, rotated as alternating users: two
// accounts ('app_a'@'%', 'app_b'@'%') hold the same grants (directly or through a role), the vault's
// current version holds the password of one of them (the CredentialId tag), and each rotation sets a
// new password on the other one with ALTER USER, verifies it by logging in as that account, and flips
// CredentialId. The account the application is using is never touched, so open connections and pools
// keep working until they pick up the new version; the previous account keeps working until the
// rotation after next. There is nothing to revoke.
//
// The password reaches the server only where no server-side hash exists. kvrotator reads the account's
// authentication plugin and sends the stored form itself: mysql_native_password's "*" + SHA1(SHA1(pw))
// on MySQL and MariaDB, and MariaDB ed25519's public key (IDENTIFIED VIA … USING '<hash>' /
// IDENTIFIED WITH … AS '<hash>'). MariaDB writes ALTER USER … IDENTIFIED BY '<password>' as received to
// its general query log, slow query log and binary log, so that form is never used there. MySQL's
// caching_sha2_password and sha256_password hashes are salted by the server, so for those accounts
// the password is sent (inside verified TLS) in ALTER USER … IDENTIFIED WITH <plugin> BY '…', which
// MySQL rewrites out of those logs; when MySQL would log it as it is (general_log with log_raw) and the
// admin may not turn logging off for its session, Create refuses. The general log is turned off for the
// admin's session whenever it is on and the admin may.
//
// Every connection, the admin's and the verification login's, speaks TLS and verifies the server's
// certificate (verify-full by default: chain and host name; verify-ca: chain only) against CAs the
// operator chose (WithRootCAFile, which the registry fills from the KVROTATOR_MYSQL_CA_FILE app
// setting; else the system's roots, which verify Azure Database for MySQL). Plain text is never
// allowed, not even to loopback: without TLS the driver answers caching_sha2_password by encrypting the
// password to whatever RSA key the answering server sends. mysql_clear_password and the pre-4.1
// method are refused before anything is sent (ErrAuthMethod).
//
// A login with open sessions is not reset (information_schema.PROCESSLIST; the admin needs PROCESS)
// unless the rotation is an override: its clients hold the previous version and would fail on their
// next connection.
//
// The provider reads these tags (names are case-insensitive; README.md has them in full):
//
//   - ProviderAddress (required): host[:port] or host[:port]/dbname, optionally after mysql:// or
//     mariadb://, without user information or query; the port defaults to 3306.
//   - mysql-users (required): the two accounts that take turns, "app_a,app_b" (host part %) or
//     "app_a@10.0.0.%,app_b@10.0.0.%".
//   - CredentialId (required): the user whose password the current version holds.
//   - mysql-admin-user (required): the user that sets passwords (CREATE USER, PROCESS, and SELECT on
//     mysql.global_priv on MariaDB or mysql.user on MySQL).
//   - mysql-admin-secret (required): the NAME of another secret in the same vault whose value is the
//     admin's password.
//   - mysql-tls: verify-full (default) or verify-ca.
//   - mysql-format: what the vault stores, password (default; the user is the CredentialId tag) or
//     url (mysql://user:password@host:port/dbname).
//
// Every reference the tags make the provider follow is declared by References and bound by the
// operator (KVROTATOR_BINDINGS): the server (kind server, host:port or host:port/dbname), the admin
// user and the rotated accounts (kind login: the admin's name, and user@host for each account), and the
// secret holding the admin's password (kind secret).
//
// A secret whose application logs in as orders_a or orders_b to db.example.com:
//
//	rotation-provider  = mysql
//	ValidityPeriodDays = 60
//	ProviderAddress    = db.example.com:3306/orders
//	mysql-users        = orders_a,orders_b
//	CredentialId       = orders_a
//	mysql-admin-user   = kvrotator
//	mysql-admin-secret = orders-db-kvrotator
package mysql

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "mysql"

// EnvCAFile is the app setting the registered provider reads when it is built: the path of a PEM file
// holding the CA certificates that MySQL and MariaDB servers' certificates must chain to (a private CA,
// or the ca.pem a MySQL 8 server made itself). When it is empty, the system's roots apply (which verify
// Azure Database for MySQL). It is the operator's choice: no tag can change it.
const EnvCAFile = "KVROTATOR_MYSQL_CA_FILE"

func init() {
	registry.Register(Name, func(registry.Env) (providers.Provider, error) { return FromEnv(os.Getenv) })
}

// FromEnv builds the provider with the settings getenv returns (os.Getenv in the application): the CA
// file of EnvCAFile, checked now so that a wrong path is an error at start rather than at the first
// rotation.
func FromEnv(getenv func(string) string) (*Provider, error) {
	f := strings.TrimSpace(getenv(EnvCAFile))
	if f == "" {
		return New(), nil
	}
	if err := checkCAFile(f); err != nil {
		return nil, fmt.Errorf("mysql: %s=%s: %w", EnvCAFile, f, err)
	}
	return New(WithRootCAFile(f)), nil
}

// checkCAFile reports whether path is a readable PEM file with at least one certificate.
func checkCAFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return errors.New("holds no PEM certificate")
	}
	return nil
}

// Timeouts. Each connection attempt is bounded by ConnectTimeout, each Create or Verify call by
// OperationTimeout, and both by the engine's context.
const (
	ConnectTimeout   = 10 * time.Second
	OperationTimeout = 30 * time.Second
)

const (
	stepCreate = "create"
	stepVerify = "verify"
)

// Provider sets and verifies MySQL and MariaDB passwords. It holds no mutable state and is safe for
// concurrent use.
type Provider struct {
	// rand is the source of passwords; crypto/rand.Reader except in tests.
	rand io.Reader
	// caFile is the operator's CA file ("" for the system's roots).
	caFile string
}

// Option configures a Provider.
type Option func(*Provider)

// WithRootCAFile makes every connection trust the CA certificates in the PEM file at path, and only
// those. The file is read at each connection, so a renewed CA file is picked up without a restart;
// FromEnv checks it once at start.
func WithRootCAFile(path string) Option { return func(p *Provider) { p.caFile = path } }

// New returns a Provider that draws passwords from crypto/rand.
func New(opts ...Option) *Provider {
	p := &Provider{rand: rand.Reader}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeAlternating: the inactive account gets the new password; nothing is revoked.
func (*Provider) Shape() providers.Shape { return providers.ShapeAlternating }

// Validate checks the provider's tags (and ProviderAddress and CredentialId) without connecting to
// anything. Every problem is a *providers.ConfigError; when there are several, they are joined.
func (pr *Provider) Validate(p providers.Params) error {
	c, err := parseConfig(p, "", "")
	if err != nil {
		return err
	}
	return pr.checkTLSMode(c, p)
}

// checkTLSMode refuses verify-ca without the operator's CA file: checked against the system's roots
// and no name, any publicly issued certificate for any domain would pass, and caching_sha2_password
// sends the password itself inside that connection.
func (pr *Provider) checkTLSMode(c config, p providers.Params) error {
	if c.tlsMode == TLSVerifyCA && pr.caFile == "" {
		return providers.ConfigErrorf(TagTLS, p.Get(TagTLS), "verify-ca needs the operator's CA file (%s): against the system's roots it would accept any publicly issued certificate, for any name; use verify-full (the default)", EnvCAFile)
	}
	return nil
}

// Create sets a new password on the account the current version does not hold and returns it, with
// that account's user as CredentialID. The password is 40 random letters and digits. The account the
// current version holds is never altered.
//
// Create is idempotent by nature: a second call after an interrupted first one sets the inactive
// account's password again, and only the last one is ever written to the vault. Nothing is created, so
// nothing can be orphaned.
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
		return providers.Credential{}, fmt.Errorf("mysql create: %w", err)
	}
	if err := setPassword(ctx, cfg, p.caFile, adminPassword, target, password, req.Override); err != nil {
		return providers.Credential{}, err
	}
	return providers.Credential{Value: providers.NewValue(cfg.value(target.user, password)), CredentialID: target.user}, nil
}

// Verify logs in as the credential's account with its new password over a new, verified TLS connection
// (to the database of ProviderAddress, when it names one) and checks that the server says the session
// is that account (SELECT CURRENT_USER()). A refused login (1045) is a transient failure, which the
// engine retries until its verify timeout (a proxy or replica may still hold the old password); anything
// else the server refuses is permanent.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params, req.Address, req.CredentialID)
	if err != nil {
		return err
	}
	acct, ok := cfg.accountOf(cred.CredentialID)
	if !ok {
		return providers.Permanent(fmt.Errorf("mysql verify: credential id %q is not one of the users in %s", cred.CredentialID, TagUsers))
	}
	password, err := cfg.passwordOf(cred.Value, acct.user)
	if err != nil {
		return providers.Permanent(fmt.Errorf("mysql verify: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, OperationTimeout)
	defer cancel()
	conn, db, err := connect(ctx, cfg, p.caFile, acct.user, password, cfg.database)
	if err != nil {
		return classify(stepVerify, cfg.server(), acct.user, "logging in with the new password", err)
	}
	defer closeConn(conn, db)
	var who string
	if err := conn.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&who); err != nil {
		return classify(stepVerify, cfg.server(), acct.user, "SELECT CURRENT_USER()", err)
	}
	if u, h, _ := strings.Cut(who, "@"); u != acct.user || !strings.EqualFold(h, acct.host) {
		return providers.Permanent(&Error{Step: stepVerify, Server: cfg.server(), User: acct.user,
			Reason: fmt.Sprintf("logged in, but as the account %q, not %s (a more specific host part matches kvrotator's address first, or a proxy maps logins)", who, acct)})
	}
	return nil
}

// References are the server (host:port or host:port/dbname, the port always written out), the admin
// user and the rotated accounts (user@host), and the secret holding the admin's password: an operator
// binds each (kinds server, login, secret). Create and Verify reach nothing else: they connect only to
// that server, log in only as those users, alter only the rotated accounts, and read only that secret.
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
	for _, a := range c.accounts {
		refs = append(refs, providers.Reference{Kind: providers.RefLogin, Tag: TagUsers, Value: a.String()})
	}
	return refs
}

// adminPassword reads the admin's password from the secret the mysql-admin-secret tag names.
func (p *Provider) adminPassword(ctx context.Context, req providers.Request, cfg config) (string, error) {
	if strings.EqualFold(cfg.adminRef, req.Secret) {
		return "", providers.ConfigErrorf(TagAdminSecret, cfg.adminRef,
			"names the secret being rotated; the admin's password must be kept in a different secret")
	}
	if req.Secrets == nil {
		return "", providers.Permanent(errors.New("mysql: the request has no secret reader for the admin's password"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.adminRef)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return "", fmt.Errorf("mysql: reading the admin's password from secret %q (tag %s): %w", cfg.adminRef, TagAdminSecret, err)
	}
	if v.IsZero() {
		return "", providers.ConfigErrorf(TagAdminSecret, cfg.adminRef, "the secret's value is empty; it must be the password of %s", cfg.admin)
	}
	return v.Reveal(), nil
}

// checkCurrent refuses to go on when the current value itself says it belongs to the account about to be
// changed: the CredentialId tag is then wrong, and following it would break the application. Only a URL
// names its user; a bare password cannot be checked.
func (c config) checkCurrent(current providers.Value, target account) error {
	if c.format != FormatURL || current.IsZero() {
		return nil
	}
	u, err := url.Parse(current.Reveal())
	if err != nil || u.User == nil {
		return nil // not one of ours (a hand-written first version): nothing to compare
	}
	if u.User.Username() == target.user {
		return providers.ConfigErrorf(TagCredentialID, c.active,
			"the current version's URL logs in as %s, the user this rotation would change; set %s to %s",
			target.user, TagCredentialID, target.user)
	}
	return nil
}

// value is what the vault stores for user's new password.
func (c config) value(user, password string) string {
	if c.format != FormatURL {
		return password
	}
	u := url.URL{Scheme: "mysql", User: url.UserPassword(user, password), Host: c.addr(), Path: "/" + c.database}
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
		return "", errors.New("the value is not a mysql:// URL with a user")
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || u.User.Username() != user {
		return "", fmt.Errorf("the URL does not hold a password for %s", user)
	}
	return pw, nil
}

// Provider must satisfy the contract.
var _ providers.Provider = (*Provider)(nil)
