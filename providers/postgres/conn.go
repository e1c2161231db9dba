package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

// connect opens a new connection to the secret's database as user, for the admin and the verification
// login alike. Every connection:
//
//   - verifies the server as the sslmode tag chose (verify-full by default, verify-ca; plain text only
//     to a loopback host), against the CAs the operator configured: caFile (KVROTATOR_POSTGRES_CA_FILE)
//     when set, else libpq's PGSSLROOTCERT, else the system's roots;
//   - accepts SCRAM-SHA-256 authentication only: a server that asks for a cleartext or MD5 password,
//     or lets the login in without authenticating it, is refused before anything derived from the
//     password is sent. SCRAM proves knowledge of the password without sending it, and the server
//     proves it holds the verifier.
//
// libpq's PGSSLCERT and PGSSLKEY (client certificates) apply as well.
func connect(ctx context.Context, c config, caFile, user, password string) (*pgConn, error) {
	var tlsConfig *tls.Config
	if c.sslMode != SSLDisable {
		var err error
		if tlsConfig, err = clientTLS(c, caFile, os.Getenv); err != nil {
			// An unreadable CA file or client certificate; nothing was contacted.
			return nil, &setupError{err}
		}
	}
	addr := net.JoinHostPort(c.host, strconv.Itoa(c.port))
	return dialPG(ctx, addr, tlsConfig, ConnectTimeout, user, c.database, password)
}

// clientTLS is the TLS configuration of a connection with sslmode verify-full or verify-ca, from the
// operator's settings as libpq reads them:
//
//   - the trusted CAs: caFile, else PGSSLROOTCERT (a PEM file, or "system", which also makes the mode
//     verify-full as libpq does), else the system's roots;
//   - a client certificate: PGSSLCERT and PGSSLKEY (both or neither; a PEM key encrypted the legacy
//     way is decrypted with PGSSLPASSWORD), unless PGSSLCERTMODE is disable;
//   - SNI for a host name, unless PGSSLSNI is 0.
func clientTLS(c config, caFile string, getenv func(string) string) (*tls.Config, error) {
	cfg := &tls.Config{}
	mode := c.sslMode
	root := caFile
	if root == "" {
		root = getenv("PGSSLROOTCERT")
	}
	switch root {
	case "":
	case "system":
		pool, err := x509.SystemCertPool()
		if err != nil {
			return nil, fmt.Errorf("the system's CA certificates: %w", err)
		}
		cfg.RootCAs, mode = pool, SSLVerifyFull
	default:
		pem, err := os.ReadFile(root)
		if err != nil {
			return nil, fmt.Errorf("the CA file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the CA file %s holds no PEM certificate", root)
		}
	}

	switch mode {
	case SSLVerifyFull:
		cfg.ServerName = c.host
	case SSLVerifyCA:
		// Chain to a trusted CA, any name: crypto/tls's own check also matches the name, so it is
		// replaced by this one (as libpq's verify-ca). Only against the operator's own CA: with the
		// system's roots, any publicly issued certificate, for any domain, would pass (libpq refuses
		// verify-ca without a root file, and makes sslrootcert=system imply verify-full).
		if cfg.RootCAs == nil {
			return nil, fmt.Errorf("sslmode %s needs the operator's CA file (%s or PGSSLROOTCERT): against the system's roots any "+
				"publicly issued certificate would pass; use verify-full", SSLVerifyCA, EnvCAFile)
		}
		cfg.InsecureSkipVerify = true
		roots := cfg.RootCAs
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("the server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			var leaf *x509.Certificate
			for i, der := range raw {
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return fmt.Errorf("the server's certificate: %w", err)
				}
				if i == 0 {
					leaf = cert
				} else {
					opts.Intermediates.AddCert(cert)
				}
			}
			_, err := leaf.Verify(opts)
			return err
		}
	default:
		return nil, fmt.Errorf("sslmode %q has no TLS configuration", mode)
	}

	cert, key := getenv("PGSSLCERT"), getenv("PGSSLKEY")
	if getenv("PGSSLCERTMODE") == "disable" {
		cert, key = "", ""
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("PGSSLCERT and PGSSLKEY go together")
	}
	if cert != "" {
		pair, err := clientCertificate(cert, key, getenv("PGSSLPASSWORD"))
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if getenv("PGSSLSNI") != "0" && net.ParseIP(c.host) == nil {
		cfg.ServerName = c.host
	}
	return cfg, nil
}

// clientCertificate reads PGSSLCERT and PGSSLKEY; a key encrypted the legacy PEM way (PKCS#1 with
// DEK-Info, as openssl genrsa -aes256 writes) is decrypted with password.
func clientCertificate(certFile, keyFile, password string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("the client certificate (PGSSLCERT): %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("the client key (PGSSLKEY): %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return tls.Certificate{}, errors.New("the client key (PGSSLKEY) is not PEM")
	}
	//lint:ignore SA1019 libpq (and pgx before) accept legacy encrypted PEM keys with sslpassword
	if x509.IsEncryptedPEMBlock(block) {
		if password == "" {
			return tls.Certificate{}, errors.New("the client key (PGSSLKEY) is encrypted and PGSSLPASSWORD is not set")
		}
		//lint:ignore SA1019 see above
		der, err := x509.DecryptPEMBlock(block, []byte(password))
		if err != nil {
			return tls.Certificate{}, errors.New("the client key (PGSSLKEY) does not decrypt with PGSSLPASSWORD")
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("the client certificate and key (PGSSLCERT, PGSSLKEY): %w", err)
	}
	return pair, nil
}

// setupError is a connection that could not even be configured (an unreadable CA file).
type setupError struct{ err error }

func (e *setupError) Error() string { return "connection settings: " + e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// closeConn closes a connection politely even when ctx is done.
func closeConn(ctx context.Context, conn *pgConn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	conn.close(ctx)
}

// setPassword connects as the admin and stores verifier as target's password. It first checks that the
// secret's logins exist and that target may log in, so that a misconfiguration is a clear
// configuration error and the ALTER ROLE statement (which holds the verifier) never fails into the
// server's error log. When the admin may change logging settings, the statement is kept out of the
// statement log too.
func setPassword(ctx context.Context, c config, caFile, adminPassword, target, verifier string, override bool) error {
	// The verifier is base64, digits, '$' and ':' (scramVerifier): nothing that could end the literal.
	if strings.ContainsAny(verifier, `'\`) || !strings.HasPrefix(verifier, "SCRAM-SHA-256$") {
		return providers.Permanent(errors.New("postgres create: refusing a malformed SCRAM verifier"))
	}
	ctx, cancel := context.WithTimeout(ctx, OperationTimeout)
	defer cancel()
	fail := func(reason string, err error) error { return classify(stepCreate, c.server(), c.admin, reason, err) }

	conn, err := connect(ctx, c, caFile, c.admin, adminPassword)
	if err != nil {
		return fail("connecting as the admin", err)
	}
	defer closeConn(ctx, conn)

	if err := checkRoles(ctx, conn, c, target); err != nil {
		return err
	}
	if !override {
		if err := checkSessions(ctx, conn, c, target); err != nil {
			return err
		}
	}
	quiet, err := canSilenceLog(ctx, conn)
	if err != nil {
		return fail("reading the admin's privileges", err)
	}

	if _, err := conn.exec(ctx, "BEGIN"); err != nil {
		return fail("BEGIN", err)
	}
	committed := false
	defer func() {
		if !committed {
			_, _ = conn.exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	if quiet {
		// SET LOCAL ends with the transaction. Best effort: a refusal rolls back to the savepoint and
		// the statement is logged as the server is configured to (it holds the verifier, never the
		// password).
		if _, err := conn.exec(ctx, "SAVEPOINT kvrotator_quiet"); err != nil {
			return fail("SAVEPOINT", err)
		}
		if _, err := conn.exec(ctx, "SET LOCAL log_statement = 'none'; SET LOCAL log_min_error_statement = 'panic'; SET LOCAL log_min_duration_statement = -1"); err != nil {
			if _, err := conn.exec(ctx, "ROLLBACK TO SAVEPOINT kvrotator_quiet"); err != nil {
				return fail("ROLLBACK TO SAVEPOINT", err)
			}
		}
	}
	// Utility statements take no bind parameters: the identifier is quoted, the literal is checked above.
	if _, err := conn.exec(ctx, "ALTER ROLE "+quoteIdentifier(target)+" PASSWORD '"+verifier+"'"); err != nil {
		return fail("ALTER ROLE "+target+" PASSWORD", err)
	}
	res, err := conn.exec(ctx, "COMMIT")
	if err != nil {
		return fail("COMMIT", err)
	}
	committed = true
	if len(res) != 1 || res[0].tag != "COMMIT" {
		// A transaction that failed ends with ROLLBACK, whatever COMMIT asked.
		return fail("COMMIT", errors.New("the server rolled the transaction back"))
	}
	return nil
}

// oidTextArray is the type of a text[] parameter.
const oidTextArray = 1009

// checkRoles checks that every login of the secret exists and that target can log in.
func checkRoles(ctx context.Context, conn *pgConn, c config, target string) error {
	rows, err := conn.query(ctx, "SELECT rolname, rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = ANY($1)",
		[]uint32{oidTextArray}, textArray(c.users))
	if err != nil {
		return classify(stepCreate, c.server(), c.admin, "looking up the logins", err)
	}
	canLogin := map[string]bool{}
	for _, row := range rows {
		if len(row) != 2 || row[0] == nil || row[1] == nil {
			return classify(stepCreate, c.server(), c.admin, "looking up the logins", errors.New("an unexpected row"))
		}
		canLogin[*row[0]] = *row[1] == "t"
	}
	for _, u := range c.users {
		if _, ok := canLogin[u]; !ok {
			return providers.ConfigErrorf(TagUsers, strings.Join(c.users, ","),
				"role %q does not exist on %s (names are case-sensitive)", u, c.server())
		}
	}
	if !canLogin[target] {
		return providers.ConfigErrorf(TagUsers, strings.Join(c.users, ","),
			"role %q cannot log in on %s: ALTER ROLE %s LOGIN", target, c.server(), quoteIdentifier(target))
	}
	return nil
}

// ErrOpenSessions is wrapped by Create's error when the login it would reset still has open sessions.
var ErrOpenSessions = errors.New("the login still has open sessions")

// checkSessions refuses to reset a login that still has sessions (pg_stat_activity): the clients that
// hold them use the previous version's password and would fail on their next connection. The refusal
// is transient (sessions end); rotation.Request.Override skips the check in an emergency.
func checkSessions(ctx context.Context, conn *pgConn, c config, target string) error {
	row, err := queryRow(ctx, conn, 1, "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", target)
	if err != nil {
		return classify(stepCreate, c.server(), c.admin, "counting the sessions of "+target, err)
	}
	n, err := strconv.Atoi(row[0])
	if err != nil {
		return classify(stepCreate, c.server(), c.admin, "counting the sessions of "+target, errors.New("a count that is not a number"))
	}
	if n > 0 {
		return fmt.Errorf("postgres create: not resetting the password of %q on %s: %w (%d, e.g. clients still on the previous version); "+
			"it is tried again later, or override in an emergency", target, c.server(), ErrOpenSessions, n)
	}
	return nil
}

// canSilenceLog reports whether the session may change the statement-logging settings: superusers,
// and on PostgreSQL 15 and later roles granted SET on them.
func canSilenceLog(ctx context.Context, conn *pgConn) (bool, error) {
	row, err := queryRow(ctx, conn, 2, "SELECT current_setting('is_superuser') = 'on', current_setting('server_version_num')::int")
	if err != nil {
		return false, err
	}
	super := row[0] == "t"
	version, err := strconv.Atoi(row[1])
	if err != nil {
		return false, errors.New("server_version_num is not a number")
	}
	if super || version < 150000 {
		return super, nil
	}
	row, err = queryRow(ctx, conn, 1, `SELECT has_parameter_privilege('log_statement', 'SET')
		AND has_parameter_privilege('log_min_error_statement', 'SET')
		AND has_parameter_privilege('log_min_duration_statement', 'SET')`)
	if err != nil {
		return false, err
	}
	return row[0] == "t", nil
}

// queryRow runs a query that returns exactly one row of columns non-NULL values, each as text.
func queryRow(ctx context.Context, conn *pgConn, columns int, sql string, args ...string) ([]string, error) {
	rows, err := conn.query(ctx, sql, nil, args...)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || len(rows[0]) != columns {
		return nil, fmt.Errorf("%d rows, want one of %d columns", len(rows), columns)
	}
	out := make([]string, columns)
	for i, v := range rows[0] {
		if v == nil {
			return nil, errors.New("an unexpected NULL")
		}
		out[i] = *v
	}
	return out, nil
}
