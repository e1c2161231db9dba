package mysql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strings"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/kvrotator/kvrotator/providers"
)

// connect opens a new connection to the secret's server as user, for the admin and the verification
// login alike (database "" for none). Every connection:
//
//   - speaks TLS, verified as the mysql-tls tag chose (verify-full by default: the certificate chains to
//     a trusted CA and names the host; verify-ca: it chains, any name) against the CAs the operator
//     configured (caFile, KVROTATOR_MYSQL_CA_FILE) or else the system's roots. A server that does not
//     offer TLS is refused before anything is sent; one whose certificate fails is refused in the
//     handshake, before the login name is sent. Plain text is never allowed, not even as a fallback.
//   - answers mysql_native_password, caching_sha2_password and client_ed25519, and refuses
//     mysql_clear_password and mysql_old_password before sending anything. caching_sha2_password's full
//     authentication and sha256_password send the password inside the verified TLS connection, as every
//     MySQL client does; without TLS they would send it to whichever RSA key the server offered.
//   - runs the driver's own client-side interpolation for statements with arguments (InterpolateParams),
//     so values are escaped by the driver's rules for the session (backslashes, or doubled quotes under
//     NO_BACKSLASH_ESCAPES) and no server-side prepared statement is involved.
func connect(ctx context.Context, c config, caFile, user, password, database string) (*sql.Conn, *sql.DB, error) {
	tc, err := tlsConfig(c, caFile)
	if err != nil {
		return nil, nil, &setupError{err}
	}
	mc := gomysql.NewConfig()
	mc.User, mc.Passwd, mc.DBName = user, password, database
	mc.Net, mc.Addr = "tcp", c.addr()
	mc.TLS = tc
	mc.AllowFallbackToPlaintext = false
	mc.AllowCleartextPasswords = false
	mc.AllowOldPasswords = false
	mc.AllowNativePasswords = true
	mc.AllowAllFiles = false
	mc.MultiStatements = false
	mc.InterpolateParams = true
	mc.Timeout = ConnectTimeout
	mc.ReadTimeout, mc.WriteTimeout = OperationTimeout, OperationTimeout
	mc.ConnectionAttributes = "program_name:kvrotator"
	mc.Logger = &gomysql.NopLogger{} // the driver's own diagnostics never reach stderr
	connector, err := gomysql.NewConnector(mc)
	if err != nil {
		return nil, nil, &setupError{err}
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return conn, db, nil
}

// errChainNotTrusted is verify-ca's refusal of a certificate that does not chain to a trusted CA.
var errChainNotTrusted = errors.New("certificate does not chain to a trusted CA")

// tlsConfig is the TLS configuration of every connection: the operator's CAs (or the system's roots),
// TLS 1.2 or later, and the host name checked unless the tag chose verify-ca.
func tlsConfig(c config, caFile string) (*tls.Config, error) {
	var roots *x509.CertPool // nil: the system's roots
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, errors.New(caFile + " holds no PEM certificate")
		}
	}
	if c.tlsMode == TLSVerifyFull {
		return &tls.Config{RootCAs: roots, ServerName: c.host, MinVersion: tls.VersionTLS12}, nil
	}
	if roots == nil {
		// Validate refuses this first; never verify a chain without a name against the system's roots.
		return nil, errors.New("verify-ca needs the operator's CA file (" + EnvCAFile + ")")
	}
	// verify-ca: Go's own check is turned off only to be replaced by the same chain verification
	// without the name; the handshake fails before anything else is sent when it does not pass.
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errChainNotTrusted
			}
			inter := x509.NewCertPool()
			for _, cert := range cs.PeerCertificates[1:] {
				inter.AddCert(cert)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				return fmt.Errorf("%w: %w", errChainNotTrusted, err)
			}
			return nil
		},
	}, nil
}

// setupError is a connection that could not even be configured (an unreadable CA file).
type setupError struct{ err error }

func (e *setupError) Error() string { return "connection settings: " + e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// closeConn closes a connection and its pool.
func closeConn(conn *sql.Conn, db *sql.DB) {
	_ = conn.Close()
	_ = db.Close()
}

// flavor is what the server is.
type flavor struct {
	mariaDB bool
	major   int
	minor   int
	patch   int
	version string
}

func (f flavor) atLeast(major, minor, patch int) bool {
	if f.major != major {
		return f.major > major
	}
	if f.minor != minor {
		return f.minor > minor
	}
	return f.patch >= patch
}

// parseVersion reads SELECT VERSION(): "10.11.19-MariaDB-0+deb12u1-log", "8.0.36", "8.4.3-azure",
// "5.5.5-10.6.18-MariaDB" (MariaDB behind an old protocol prefix).
func parseVersion(v string) flavor {
	f := flavor{version: v, mariaDB: strings.Contains(strings.ToLower(v), "mariadb")}
	s := strings.TrimPrefix(v, "5.5.5-")
	var nums [3]int
	i := 0
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '+' || r == ' ' })
	if len(fields) == 0 {
		return f
	}
	for _, part := range strings.SplitN(fields[0], ".", 3) {
		n := 0
		for _, r := range part {
			if r < '0' || r > '9' {
				break
			}
			n = n*10 + int(r-'0')
		}
		nums[i] = n
		i++
	}
	f.major, f.minor, f.patch = nums[0], nums[1], nums[2]
	return f
}

// The errors Create reports when the server, or the admin's privileges on it, do not allow a safe
// rotation. Each is wrapped, with details, in a permanent error (errors.Is finds it).
var (
	// ErrOpenSessions: the account whose password Create would change still has open sessions (clients
	// on the previous version). Transient: sessions end; Request.Override resets it anyway.
	ErrOpenSessions = errors.New("the login still has open sessions")
	// ErrCannotSeeSessions: the admin lacks the PROCESS privilege, so it would see only its own
	// sessions and could not tell whether the account is in use. Permanent (grant PROCESS), unless
	// Request.Override.
	ErrCannotSeeSessions = errors.New("the admin cannot see other users' sessions (it needs the PROCESS privilege)")
	// ErrUnsupported: the server version or the account's authentication plugin is one the provider
	// cannot set a password for safely.
	ErrUnsupported = errors.New("not supported")
	// ErrPasswordWouldBeLogged: MySQL would write the password as it is to its general query log
	// (general_log with log_raw) and the admin may not turn logging off for its session.
	ErrPasswordWouldBeLogged = errors.New("the server would log the password as it is")
)

// accountInfo is what the server says about an account.
type accountInfo struct {
	exists  bool
	plugin  string
	locked  bool
	methods int // MariaDB: authentication methods (IDENTIFIED VIA a OR b); 1 for most accounts
}

// setPassword connects as the admin and gives target the new password, as a hash wherever the server
// accepts one (see alterStatement). Before altering, it checks that both accounts exist, that target
// can log in and uses a plugin the provider knows, and (unless override) that target has no open
// sessions; so a misconfiguration is a clear error and the ALTER USER statement does not fail.
func setPassword(ctx context.Context, c config, caFile, adminPassword string, target account, password string, override bool) error {
	ctx, cancel := context.WithTimeout(ctx, OperationTimeout)
	defer cancel()
	fail := func(reason string, err error) error { return classify(stepCreate, c.server(), c.admin, reason, err) }

	conn, db, err := connect(ctx, c, caFile, c.admin, adminPassword, "")
	if err != nil {
		return fail("connecting as the admin", err)
	}
	defer closeConn(conn, db)

	var version string
	var generalLog bool
	if err := conn.QueryRowContext(ctx, "SELECT VERSION(), @@global.general_log").Scan(&version, &generalLog); err != nil {
		return fail("reading the server's version", err)
	}
	f := parseVersion(version)
	switch {
	case f.mariaDB && !f.atLeast(10, 4, 0):
		return permanentf(c, "MariaDB %s is %w: the provider needs MariaDB 10.4 or later (mysql.global_priv)", version, ErrUnsupported)
	case !f.mariaDB && !f.atLeast(5, 7, 6):
		return permanentf(c, "MySQL %s is %w: the provider needs MySQL 5.7.6 or later (ALTER USER … IDENTIFIED WITH)", version, ErrUnsupported)
	}

	infos := map[account]accountInfo{}
	for _, a := range c.accounts {
		info, err := readAccount(ctx, conn, f, a)
		if err != nil {
			var myErr *gomysql.MySQLError
			if errors.As(err, &myErr) && (myErr.Number == 1142 || myErr.Number == 1143 || myErr.Number == 1044) {
				table := "mysql.user"
				if f.mariaDB {
					table = "mysql.global_priv"
				}
				return providers.Permanent(&Error{Step: stepCreate, Server: c.server(), User: c.admin, Code: myErr.Number, Err: err,
					Reason: fmt.Sprintf("reading account %s: the admin needs SELECT on %s to see the accounts' authentication plugins (GRANT SELECT ON %s TO '%s'@…)",
						a, table, table, c.admin)})
			}
			return fail("reading account "+a.String(), err)
		}
		if !info.exists {
			return providers.ConfigErrorf(TagUsers, accountsString(c.accounts),
				"account '%s'@'%s' does not exist on %s (user names are case-sensitive; the host part must be the account's, e.g. %%)", a.user, a.host, c.server())
		}
		infos[a] = info
	}
	info := infos[target]
	if info.locked {
		return providers.ConfigErrorf(TagUsers, accountsString(c.accounts),
			"account '%s'@'%s' is locked on %s and could not log in: ALTER USER '%s'@'%s' ACCOUNT UNLOCK", target.user, target.host, c.server(), target.user, target.host)
	}
	if info.methods > 1 {
		return permanentf(c, "account %s has %d authentication methods (IDENTIFIED VIA … OR …), which setting a password would replace: %w; give it one",
			target, info.methods, ErrUnsupported)
	}
	stmt, err := alterStatement(f, info.plugin, target, password)
	if err != nil {
		return permanentf(c, "account %s: %w", target, err)
	}

	if !override {
		if err := checkSessions(ctx, conn, c, target); err != nil {
			return err
		}
	}

	// The general query log records every statement as received. MariaDB is sent a hash only; MySQL
	// rewrites the password out of the statement unless log_raw is on. Turn the general log off for this
	// session when it is on (sql_log_off needs SUPER on MariaDB, SYSTEM_VARIABLES_ADMIN or
	// SESSION_VARIABLES_ADMIN on MySQL); when that is refused, go on only if no password would be logged.
	if generalLog {
		if _, err := conn.ExecContext(ctx, "SET SESSION sql_log_off = ON"); err != nil && stmt.plaintext {
			var raw bool
			if err := conn.QueryRowContext(ctx, "SELECT @@global.log_raw").Scan(&raw); err != nil || raw {
				return permanentf(c, "%w: general_log and log_raw are on and the admin may not set sql_log_off; turn log_raw off, "+
					"or grant the admin SYSTEM_VARIABLES_ADMIN", ErrPasswordWouldBeLogged)
			}
		}
	}

	// The statement goes to the driver's connection directly: its interpolation escapes the arguments,
	// and if it declined to (driver.ErrSkip), database/sql would fall back to a server-side prepared
	// statement, whose parameters some servers log; that is refused instead.
	err = conn.Raw(func(dc any) error {
		execer, ok := dc.(driver.ExecerContext)
		if !ok {
			return errors.New("the driver connection cannot execute statements directly")
		}
		args := make([]driver.NamedValue, len(stmt.args))
		for i, a := range stmt.args {
			args[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
		}
		_, err := execer.ExecContext(ctx, stmt.query, args)
		if errors.Is(err, driver.ErrSkip) {
			return errors.New("the driver would not interpolate the statement; refusing a server-side prepared statement")
		}
		return err
	})
	if err != nil {
		return fail("ALTER USER "+target.String(), redact(err, stmt.secrets()...))
	}
	return nil
}

// permanentf is a permanent Error of the create step.
func permanentf(c config, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return providers.Permanent(&Error{Step: stepCreate, Server: c.server(), User: c.admin, Reason: err.Error(), Err: errors.Unwrap(err)})
}

func accountsString(accounts []account) string {
	s := make([]string, len(accounts))
	for i, a := range accounts {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// readAccount reads an account's authentication plugin and lock from the grant tables: MariaDB's
// mysql.global_priv (which also shows several authentication methods), MySQL's mysql.user.
func readAccount(ctx context.Context, conn *sql.Conn, f flavor, a account) (accountInfo, error) {
	var info accountInfo
	var err error
	if f.mariaDB {
		var plugin, locked sql.NullString
		var orMethods sql.NullInt64
		err = conn.QueryRowContext(ctx, `SELECT JSON_VALUE(Priv, '$.plugin'), JSON_LENGTH(Priv, '$.auth_or'), JSON_VALUE(Priv, '$.account_locked')
			FROM mysql.global_priv WHERE User = ? AND Host = ?`, a.user, a.host).Scan(&plugin, &orMethods, &locked)
		// JSON_VALUE gives a JSON true as "1" (10.11); "true" is accepted as well.
		info.plugin, info.locked, info.methods = plugin.String, locked.String == "1" || locked.String == "true", 1
		if orMethods.Valid && orMethods.Int64 > 1 {
			info.methods = int(orMethods.Int64)
		}
	} else {
		var plugin, locked sql.NullString
		err = conn.QueryRowContext(ctx, "SELECT plugin, account_locked FROM mysql.user WHERE User = ? AND Host = ?", a.user, a.host).Scan(&plugin, &locked)
		info.plugin, info.locked, info.methods = plugin.String, locked.String == "Y", 1
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return accountInfo{}, nil
	case err != nil:
		return accountInfo{}, err
	}
	info.exists = true
	if info.plugin == "" {
		info.plugin = "mysql_native_password" // MariaDB's accounts created before plugins were recorded
	}
	return info, nil
}

// checkSessions refuses to reset an account whose user still has sessions: the clients that hold them
// use the previous version's password and would fail on their next connection. Sessions are counted by
// user name in information_schema.PROCESSLIST (it has no account host column, so sessions of another
// account with the same name count too: the safe side). Without the PROCESS privilege the admin would
// see only its own sessions, so that is refused rather than taken for "none".
func checkSessions(ctx context.Context, conn *sql.Conn, c config, target account) error {
	fail := func(reason string, err error) error { return classify(stepCreate, c.server(), c.admin, reason, err) }
	var process int
	err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.USER_PRIVILEGES
		WHERE PRIVILEGE_TYPE = 'PROCESS' AND GRANTEE = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')`).Scan(&process)
	if err != nil {
		return fail("reading the admin's privileges", err)
	}
	if process == 0 {
		return providers.Permanent(&Error{Step: stepCreate, Server: c.server(), User: c.admin, Err: ErrCannotSeeSessions,
			Reason: fmt.Sprintf("not resetting %s: GRANT PROCESS ON *.* TO '%s'@… (granted to the user itself, not through a role), or override in an emergency", target, c.admin)})
	}
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND ID <> CONNECTION_ID()", target.user).Scan(&n); err != nil {
		return fail("counting the sessions of "+target.user, err)
	}
	if n > 0 {
		return fmt.Errorf("mysql create: not resetting the password of %s on %s: %w (%d, e.g. clients still on the previous version); "+
			"it is tried again later, or override in an emergency", target, c.server(), ErrOpenSessions, n)
	}
	return nil
}

// statement is an ALTER USER statement with its arguments, interpolated by the driver.
type statement struct {
	query string
	args  []any
	// plaintext says the password itself is an argument (MySQL's caching_sha2_password and
	// sha256_password, which only the server can hash); otherwise a hash is.
	plaintext bool
	secret    string // the password or hash argument, for redaction
}

func (s statement) secrets() []string { return []string{s.secret} }

// alterStatement is the ALTER USER statement that gives an account of plugin the password, keeping the
// plugin. Wherever the server accepts a precomputed hash, the hash is sent and the password never
// reaches the server:
//
//   - MariaDB mysql_native_password: ALTER USER ?@? IDENTIFIED VIA mysql_native_password USING '<*hash>'
//   - MariaDB ed25519:               ALTER USER ?@? IDENTIFIED VIA ed25519 USING '<public key>'
//   - MySQL mysql_native_password:   ALTER USER ?@? IDENTIFIED WITH mysql_native_password AS '<*hash>'
//   - MySQL caching_sha2_password and sha256_password: ALTER USER ?@? IDENTIFIED WITH <plugin> BY
//     '<password>', which MySQL rewrites out of its general, slow and binary logs (salted hashes only
//     the server computes).
//
// MariaDB writes an ALTER USER … IDENTIFIED BY '<password>' statement to its general query log, slow
// query log and binary log as received (seen with 10.11), which is why it is never used there. Any
// other plugin (unix_socket, pam, gssapi, parsec, …) is refused.
func alterStatement(f flavor, plugin string, target account, password string) (statement, error) {
	const prefix = "ALTER USER ?@? IDENTIFIED "
	st := func(query, secret string, plaintext bool) statement {
		return statement{query: prefix + query, args: []any{target.user, target.host, secret}, plaintext: plaintext, secret: secret}
	}
	switch {
	case plugin == "mysql_native_password":
		h := nativeHash(password)
		if f.mariaDB {
			return st("VIA mysql_native_password USING ?", h, false), nil
		}
		return st("WITH mysql_native_password AS ?", h, false), nil
	case plugin == "ed25519" && f.mariaDB:
		h, err := ed25519Hash(password)
		if err != nil {
			return statement{}, err
		}
		return st("VIA ed25519 USING ?", h, false), nil
	case (plugin == "caching_sha2_password" || plugin == "sha256_password") && !f.mariaDB:
		return st("WITH "+plugin+" BY ?", password, true), nil
	}
	return statement{}, fmt.Errorf("its authentication plugin %q is %w (mysql_native_password, caching_sha2_password, sha256_password on MySQL, ed25519 on MariaDB)",
		plugin, ErrUnsupported)
}

// redact returns err with secrets replaced in its text. A server error keeps its number (a syntax error's
// message quotes the statement near the fault).
func redact(err error, secrets ...string) error {
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "[redacted]")
		}
	}
	if clean == msg {
		return err
	}
	var myErr *gomysql.MySQLError
	if errors.As(err, &myErr) {
		m := *myErr
		for _, s := range secrets {
			if s != "" {
				m.Message = strings.ReplaceAll(m.Message, s, "[redacted]")
			}
		}
		return &m
	}
	return errors.New(clean)
}
