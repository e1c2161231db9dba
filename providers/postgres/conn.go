package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kvrotator/kvrotator/providers"
)

// connect opens a new connection to the secret's database as user, for the admin and the verification
// login alike. Every connection:
//
//   - verifies the server as the sslmode tag chose (verify-full by default, verify-ca; plain text only
//     to a loopback host), against the CAs the operator configured: caFile (KVROTATOR_POSTGRES_CA_FILE)
//     when set, else libpq's PGSSLROOTCERT, else the system's roots;
//   - accepts SCRAM-SHA-256 authentication only (require_auth=scram-sha-256): a server that asks for a
//     cleartext or MD5 password, or lets the login in without authenticating it, is refused before
//     anything derived from the password is sent. SCRAM proves knowledge of the password without
//     sending it, and the server proves it holds the verifier.
//
// libpq's PGSSLCERT and PGSSLKEY (client certificates) apply as well.
func connect(ctx context.Context, c config, caFile, user, password string) (*pgx.Conn, error) {
	dsn := fmt.Sprintf("host=%s port=%d dbname=%s sslmode=%s connect_timeout=%d application_name=kvrotator require_auth=scram-sha-256",
		quote(c.host), c.port, quote(c.database), c.sslMode, int(ConnectTimeout/time.Second))
	if caFile != "" && c.sslMode != SSLDisable {
		dsn += " sslrootcert=" + quote(caFile)
	}
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		// An unreadable CA file (or a bad libpq environment variable); the dsn holds no user, no password.
		return nil, &setupError{err}
	}
	cc.User, cc.Password = user, password
	cc.RequireAuth = "scram-sha-256" // what the dsn says; set again so that no environment variable can change it
	if len(cc.Fallbacks) != 0 || (c.sslMode != SSLDisable && cc.TLSConfig == nil) {
		return nil, &setupError{errors.New("the connection settings would allow plain text")}
	}
	// No named prepared statements: they break behind transaction-mode poolers (PgBouncer).
	cc.DefaultQueryExecMode = pgx.QueryExecModeExec
	cc.StatementCacheCapacity, cc.DescriptionCacheCapacity = 0, 0
	return pgx.ConnectConfig(ctx, cc)
}

// setupError is a connection that could not even be configured (an unreadable CA file).
type setupError struct{ err error }

func (e *setupError) Error() string { return "connection settings: " + e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// closeConn closes a connection politely even when ctx is done.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// quote quotes a keyword/value connection-string value.
func quote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
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

	tx, err := conn.Begin(ctx)
	if err != nil {
		return fail("BEGIN", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if quiet {
		// SET LOCAL ends with the transaction. Best effort: a refusal rolls back to the savepoint and
		// the statement is logged as the server is configured to (it holds the verifier, never the
		// password).
		if _, err := tx.Exec(ctx, "SAVEPOINT kvrotator_quiet"); err != nil {
			return fail("SAVEPOINT", err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL log_statement = 'none'; SET LOCAL log_min_error_statement = 'panic'; SET LOCAL log_min_duration_statement = -1"); err != nil {
			if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT kvrotator_quiet"); err != nil {
				return fail("ROLLBACK TO SAVEPOINT", err)
			}
		}
	}
	// Utility statements take no bind parameters: the identifier is quoted, the literal is checked above.
	if _, err := tx.Exec(ctx, "ALTER ROLE "+pgx.Identifier{target}.Sanitize()+" PASSWORD '"+verifier+"'"); err != nil {
		return fail("ALTER ROLE "+target+" PASSWORD", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail("COMMIT", err)
	}
	return nil
}

// checkRoles checks that every login of the secret exists and that target can log in.
func checkRoles(ctx context.Context, conn *pgx.Conn, c config, target string) error {
	rows, err := conn.Query(ctx, "SELECT rolname, rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = ANY($1)", c.users)
	if err != nil {
		return classify(stepCreate, c.server(), c.admin, "looking up the logins", err)
	}
	canLogin := map[string]bool{}
	for rows.Next() {
		var name string
		var login bool
		if err := rows.Scan(&name, &login); err != nil {
			rows.Close()
			return classify(stepCreate, c.server(), c.admin, "looking up the logins", err)
		}
		canLogin[name] = login
	}
	if err := rows.Err(); err != nil {
		return classify(stepCreate, c.server(), c.admin, "looking up the logins", err)
	}
	for _, u := range c.users {
		if _, ok := canLogin[u]; !ok {
			return providers.ConfigErrorf(TagUsers, strings.Join(c.users, ","),
				"role %q does not exist on %s (names are case-sensitive)", u, c.server())
		}
	}
	if !canLogin[target] {
		return providers.ConfigErrorf(TagUsers, strings.Join(c.users, ","),
			"role %q cannot log in on %s: ALTER ROLE %s LOGIN", target, c.server(), pgx.Identifier{target}.Sanitize())
	}
	return nil
}

// ErrOpenSessions is wrapped by Create's error when the login it would reset still has open sessions.
var ErrOpenSessions = errors.New("the login still has open sessions")

// checkSessions refuses to reset a login that still has sessions (pg_stat_activity): the clients that
// hold them use the previous version's password and would fail on their next connection. The refusal
// is transient (sessions end); rotation.Request.Override skips the check in an emergency.
func checkSessions(ctx context.Context, conn *pgx.Conn, c config, target string) error {
	var n int
	err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()", target).Scan(&n)
	if err != nil {
		return classify(stepCreate, c.server(), c.admin, "counting the sessions of "+target, err)
	}
	if n > 0 {
		return fmt.Errorf("postgres create: not resetting the password of %q on %s: %w (%d, e.g. clients still on the previous version); "+
			"it is tried again later, or override in an emergency", target, c.server(), ErrOpenSessions, n)
	}
	return nil
}

// canSilenceLog reports whether the session may change the statement-logging settings: superusers,
// and on PostgreSQL 15 and later roles granted SET on them.
func canSilenceLog(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var super bool
	var version int
	err := conn.QueryRow(ctx, "SELECT current_setting('is_superuser') = 'on', current_setting('server_version_num')::int").Scan(&super, &version)
	if err != nil || super || version < 150000 {
		return super, err
	}
	var granted bool
	err = conn.QueryRow(ctx, `SELECT has_parameter_privilege('log_statement', 'SET')
		AND has_parameter_privilege('log_min_error_statement', 'SET')
		AND has_parameter_privilege('log_min_duration_statement', 'SET')`).Scan(&granted)
	return granted, err
}
