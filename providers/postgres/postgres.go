// Package postgres is kvrotator's provider for PostgreSQL logins, rotated as alternating users: two
// logins (app_a, app_b) hold the application's privileges through a common group role, the vault's
// current version holds the password of one of them (the CredentialId tag), and each rotation sets a
// new password on the other one, verifies it by logging in, and flips CredentialId. The login the
// application is using is never touched, so running connections and connection pools keep working
// until they pick up the new version; the previous login keeps working until the rotation after next
// changes its password again. There is nothing to revoke.
//
// The new password never reaches the server: the provider computes its SCRAM-SHA-256 verifier itself
// (RFC 5802, RFC 7677) and sends ALTER ROLE … PASSWORD '<verifier>', which PostgreSQL stores as it is,
// and the verification login uses SCRAM only (the client proves it knows the password without sending
// it). Server logs and pg_stat_statements therefore never see the password; when the admin may change
// logging settings, the verifier is kept out of the statement log as well.
//
// Every connection, the admin's and the verification login's, verifies the server's TLS certificate
// (verify-full by default) against CAs the operator chose (WithRootCAFile, which the registry fills from
// the KVROTATOR_POSTGRES_CA_FILE app setting; else libpq's PGSSLROOTCERT; else the system's roots), and
// authenticates with SCRAM-SHA-256 only: a server that asks for a cleartext or MD5 password is refused
// before anything is sent (ErrAuthMethod), so neither the admin's password nor a new one can reach a
// server that merely claims to be the database.
//
// The provider reads these tags (names are case-insensitive; README.md has them in full):
//
//   - ProviderAddress (required): host[:port]/dbname or postgres://host[:port]/dbname, without user
//     information or query; the port defaults to 5432.
//   - postgres-users (required): the two logins that take turns, "app_a,app_b"; one login selects
//     single-user mode (see below).
//   - CredentialId (required with two logins): the login whose password the current version holds.
//   - postgres-admin-user (required): the role that sets passwords (CREATEROLE, or a superuser).
//   - postgres-admin-secret (required): the NAME of another secret in the same vault whose value is
//     the admin's password.
//   - postgres-sslmode: verify-full (default) or verify-ca; disable only for loopback hosts. require is
//     refused: it does not check who answers.
//   - postgres-format: what the vault stores, password (default; the login is the CredentialId tag) or
//     connection-string (postgres://login:password@host:port/dbname?sslmode=…).
//
// Every reference the tags make the provider follow is declared by References and bound by the
// operator (KVROTATOR_BINDINGS): the server (kind server, host:port/database), the admin login and the
// rotated logins (kind login), and the secret holding the admin's password (kind secret).
//
// Single-user mode (one login in postgres-users) sets a new password on the login the application
// uses. PostgreSQL has one password per role, so the old password stops working for new connections
// the moment the rotation sets the new one: an application that opens a connection with the old value
// before it has reloaded the secret fails to log in. There is no grace period; use it only for
// applications that reread the secret on a failed login.
//
// Failures are classified once: a connection that is refused or times out, a server that is starting
// or shutting down, and too many connections are transient (the engine retries); a wrong admin
// password, a missing role, database or privilege, and an untrusted certificate are permanent.
//
// A secret whose application logs in as app_a or app_b to the database orders on db.example.com:
//
//	rotation-provider     = postgres
//	ValidityPeriodDays    = 60
//	ProviderAddress       = db.example.com:5432/orders
//	postgres-users        = orders_a,orders_b
//	CredentialId          = orders_a
//	postgres-admin-user   = rotator
//	postgres-admin-secret = orders-db-rotator
package postgres

import (
	"context"
	"crypto/rand"
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

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "postgres"

// EnvCAFile is the app setting the registered provider reads when it is built: the path of a PEM file
// holding the CA certificates that PostgreSQL servers' certificates must chain to (for example a
// private CA). When it is empty, libpq's PGSSLROOTCERT applies, else the system's roots (which verify
// Azure Database for PostgreSQL). It is the operator's choice: no tag can change it.
const EnvCAFile = "KVROTATOR_POSTGRES_CA_FILE"

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
		return nil, fmt.Errorf("postgres: %s=%s: %w", EnvCAFile, f, err)
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

// Provider sets and verifies PostgreSQL passwords. It holds no mutable state and is safe for
// concurrent use.
type Provider struct {
	// rand is the source of passwords and salts; crypto/rand.Reader except in tests.
	rand io.Reader
	// caFile is the operator's CA file ("" for PGSSLROOTCERT or the system's roots).
	caFile string
}

// Option configures a Provider.
type Option func(*Provider)

// WithRootCAFile makes every connection trust the CA certificates in the PEM file at path, and only
// those, as libpq's sslrootcert does (it takes precedence over PGSSLROOTCERT). The file is read at each
// connection, so a renewed CA file is picked up without a restart; FromEnv checks it once at start.
func WithRootCAFile(path string) Option { return func(p *Provider) { p.caFile = path } }

// New returns a Provider that draws passwords and salts from crypto/rand.
func New(opts ...Option) *Provider {
	p := &Provider{rand: rand.Reader}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeAlternating: the inactive login gets the new password; nothing is revoked.
func (*Provider) Shape() providers.Shape { return providers.ShapeAlternating }

// Validate checks the provider's tags (and ProviderAddress and CredentialId) without connecting to
// anything. Every problem is a *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	_, err := parseConfig(p, "", "")
	return err
}

// Create sets a new password on the login the current version does not hold (in single-user mode, on
// the only login) and returns it, with that login as CredentialID. The password is 40 random letters
// and digits; only its SCRAM-SHA-256 verifier is sent to the server. The login the current version
// holds is never altered.
//
// Create is idempotent by nature: a second call after an interrupted first one sets the inactive
// login's password again, and only the last one is ever written to the vault. Nothing is created, so
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
		return providers.Credential{}, fmt.Errorf("postgres create: %w", err)
	}
	verifier, err := newVerifier(p.rand, password)
	if err != nil {
		return providers.Credential{}, fmt.Errorf("postgres create: %w", err)
	}
	if err := setPassword(ctx, cfg, p.caFile, adminPassword, target, verifier, req.Override); err != nil {
		return providers.Credential{}, err
	}
	return providers.Credential{Value: providers.NewValue(cfg.value(target, password)), CredentialID: target}, nil
}

// Verify logs in as the credential's login with its new password (SCRAM-SHA-256 only, over a new
// connection) and checks that the server says it is that login. A password the server rejects is a
// transient failure, which the engine retries until its verify timeout (a pooler or replica may still
// hold the old verifier); anything else the server refuses is permanent.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params, req.Address, req.CredentialID)
	if err != nil {
		return err
	}
	user := cred.CredentialID
	if !slices.Contains(cfg.users, user) {
		return providers.Permanent(fmt.Errorf("postgres verify: credential id %q is not one of the logins in %s", user, TagUsers))
	}
	password, err := cfg.passwordOf(cred.Value, user)
	if err != nil {
		return providers.Permanent(fmt.Errorf("postgres verify: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, OperationTimeout)
	defer cancel()
	conn, err := connect(ctx, cfg, p.caFile, user, password)
	if err != nil {
		return classify(stepVerify, cfg.server(), user, "logging in with the new password", err)
	}
	defer closeConn(ctx, conn)
	row, err := queryRow(ctx, conn, 1, "SELECT current_user")
	if err != nil {
		return classify(stepVerify, cfg.server(), user, "SELECT current_user", err)
	}
	who := row[0]
	if who != user {
		return providers.Permanent(&Error{Step: stepVerify, Server: cfg.server(), User: user,
			Reason: fmt.Sprintf("logged in, but the server says the session is %q (a pooler mapping logins?)", who)})
	}
	return nil
}

// References are the server (host:port/database, the port always written out), the admin login and the
// rotated logins, and the secret holding the admin's password: an operator binds each (kinds server,
// login, secret). Create and Verify reach nothing else: they connect only to that server, log in only
// as those logins, alter only the rotated ones, and read only that secret.
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

// adminPassword reads the admin's password from the secret the postgres-admin-secret tag names.
func (p *Provider) adminPassword(ctx context.Context, req providers.Request, cfg config) (string, error) {
	if strings.EqualFold(cfg.adminRef, req.Secret) {
		return "", providers.ConfigErrorf(TagAdminSecret, cfg.adminRef,
			"names the secret being rotated; the admin's password must be kept in a different secret")
	}
	if req.Secrets == nil {
		return "", providers.Permanent(errors.New("postgres: the request has no secret reader for the admin's password"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.adminRef)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return "", fmt.Errorf("postgres: reading the admin's password from secret %q (tag %s): %w", cfg.adminRef, TagAdminSecret, err)
	}
	if v.IsZero() {
		return "", providers.ConfigErrorf(TagAdminSecret, cfg.adminRef, "the secret's value is empty; it must be the password of %s", cfg.admin)
	}
	return v.Reveal(), nil
}

// checkCurrent refuses to go on when the current value itself says it belongs to the login about to
// be changed: the CredentialId tag is then wrong, and following it would break the application. Only a
// connection string names its login; a bare password cannot be checked.
func (c config) checkCurrent(current providers.Value, target string) error {
	if c.single() || c.format != FormatConnectionString || current.IsZero() {
		return nil
	}
	u, err := url.Parse(current.Reveal())
	if err != nil || u.User == nil {
		return nil // not one of ours (a hand-written first version): nothing to compare
	}
	if u.User.Username() == target {
		return providers.ConfigErrorf(TagCredentialID, c.active,
			"the current version's connection string logs in as %s, the login this rotation would change; set %s to %s",
			target, TagCredentialID, target)
	}
	return nil
}

// value is what the vault stores for login's new password.
func (c config) value(login, password string) string {
	if c.format != FormatConnectionString {
		return password
	}
	return c.connectionURL(login, password)
}

// connectionURL is postgres://login:password@host:port/dbname?sslmode=…, which libpq, pgx, psycopg,
// node-postgres and most other drivers accept.
func (c config) connectionURL(login, password string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(login, password),
		Host: net.JoinHostPort(c.host, strconv.Itoa(c.port)), Path: "/" + c.database,
		RawQuery: url.Values{"sslmode": {c.sslMode}}.Encode()}
	return u.String()
}

// passwordOf takes the password out of a stored value.
func (c config) passwordOf(v providers.Value, login string) (string, error) {
	if v.IsZero() {
		return "", errors.New("the credential has no value")
	}
	if c.format != FormatConnectionString {
		return v.Reveal(), nil
	}
	u, err := url.Parse(v.Reveal())
	if err != nil || u.User == nil {
		return "", errors.New("the value is not a postgres:// connection string with a login")
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" || u.User.Username() != login {
		return "", fmt.Errorf("the connection string does not hold a password for %s", login)
	}
	return pw, nil
}

// Provider must satisfy the contract.
var _ providers.Provider = (*Provider)(nil)
