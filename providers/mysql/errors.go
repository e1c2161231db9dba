package mysql

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/kvrotator/kvrotator/providers"
)

// Error is a failed step against the server. Errors the engine should not retry are wrapped with
// providers.Permanent; find the Error underneath with errors.As. It never holds a password or a hash:
// the server's and the driver's messages name users, hosts and databases, nothing more.
type Error struct {
	Step   string // "create" or "verify"
	Server string // host:port or host:port/dbname
	User   string // the user that connected
	// Reason says what went wrong, in kvrotator's words.
	Reason string
	// Code is the server's error number (1045 access denied, …) when the server answered with an error.
	Code uint16
	// Refusal is ErrUntrustedServer, ErrNoTLS or ErrAuthMethod when kvrotator itself refused the
	// server (errors.Is finds it); nil otherwise.
	Refusal error
	// Err is the cause.
	Err error
}

// The servers kvrotator refuses to talk to. Each is permanent: retrying cannot make the server
// trustworthy, and no password has been sent.
var (
	// ErrUntrustedServer: the server's TLS certificate does not chain to a trusted CA (the operator's
	// KVROTATOR_MYSQL_CA_FILE, else the system's roots) or, with verify-full, does not name the host.
	// No login name was sent.
	ErrUntrustedServer = errors.New("the server's TLS certificate is not trusted")
	// ErrNoTLS: the server does not offer TLS. Nothing was sent.
	ErrNoTLS = errors.New("the server does not offer TLS")
	// ErrAuthMethod: the server asked for an authentication method kvrotator does not answer
	// (mysql_clear_password, which would send the password as it is; the pre-4.1 mysql_old_password;
	// a plugin the driver does not know, such as dialog or parsec). The password was not sent.
	ErrAuthMethod = errors.New("the server asked for an authentication method kvrotator does not answer (cleartext, pre-4.1 or unknown); refused without sending the password")
)

func (e *Error) Error() string {
	msg := fmt.Sprintf("mysql %s (%s as %s): %s", e.Step, e.Server, e.User, e.Reason)
	if e.Err != nil && !strings.Contains(msg, e.Err.Error()) {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the refusal, when kvrotator refused the server, and the cause.
func (e *Error) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Refusal, e.Err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// Server error numbers (MySQL's and MariaDB's error references) worth retrying: the server is busy,
// starting, shutting down or in a lock conflict, or the connection broke. Every other error the server
// reports (a wrong password, a missing account, database or privilege, a locked account) is permanent.
var transientCodes = []uint16{
	1040, // ER_CON_COUNT_ERROR: too many connections
	1053, // ER_SERVER_SHUTDOWN
	1077, // ER_NORMAL_SHUTDOWN
	1152, // ER_ABORTING_CONNECTION
	1153, // ER_NET_PACKET_TOO_LARGE
	1158, // ER_NET_READ_ERROR
	1159, // ER_NET_READ_INTERRUPTED
	1160, // ER_NET_ERROR_ON_WRITE
	1161, // ER_NET_WRITE_INTERRUPTED
	1203, // ER_TOO_MANY_USER_CONNECTIONS
	1205, // ER_LOCK_WAIT_TIMEOUT
	1213, // ER_LOCK_DEADLOCK
	1226, // ER_USER_LIMIT_REACHED (max_connections_per_hour …)
	1927, // ER_CONNECTION_KILLED (MariaDB)
	1969, // ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
	3024, // ER_QUERY_TIMEOUT (MySQL max_execution_time)
	3032, // ER_SERVER_OFFLINE_MODE (MySQL)
	4031, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL)
}

const codeAccessDenied = 1045 // ER_ACCESS_DENIED_ERROR: wrong password (or no such account)

// classify wraps err in an Error and marks it permanent when retrying cannot help. In verify, a refused
// login (1045) is transient: a proxy (ProxySQL, MaxScale) or a replica in front of the server may still
// hold the old password for a moment (the engine retries verification until its timeout).
func classify(step, server, user, reason string, err error) error {
	e := &Error{Step: step, Server: server, User: user, Reason: reason, Err: err}
	var myErr *gomysql.MySQLError
	if errors.As(err, &myErr) {
		e.Code = myErr.Number
		if step == stepVerify && myErr.Number == codeAccessDenied {
			e.Reason += " (the new password is not accepted yet; will try again)"
			return e
		}
		if slices.Contains(transientCodes, myErr.Number) {
			return e
		}
		return providers.Permanent(e)
	}
	var setup *setupError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return e
	case errors.As(err, &setup):
		e.Reason += " (check " + EnvCAFile + ": the CA file must be readable PEM)"
		return providers.Permanent(e)
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &invalid),
		errors.Is(err, errChainNotTrusted):
		e.Refusal = ErrUntrustedServer
		e.Reason += " (" + ErrUntrustedServer.Error() + ": the operator sets " + EnvCAFile + " to the CA's PEM file when the system's roots do not include it)"
		return providers.Permanent(e)
	case errors.Is(err, gomysql.ErrNoTLS):
		e.Refusal = ErrNoTLS
		e.Reason += " (" + ErrNoTLS.Error() + "; kvrotator never logs in over plain text)"
		return providers.Permanent(e)
	case errors.Is(err, gomysql.ErrCleartextPassword), errors.Is(err, gomysql.ErrOldPassword), errors.Is(err, gomysql.ErrUnknownPlugin),
		errors.Is(err, gomysql.ErrNativePassword):
		e.Refusal = ErrAuthMethod
		e.Reason += " (" + ErrAuthMethod.Error() + ")"
		return providers.Permanent(e)
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, gomysql.ErrInvalidConn), errors.As(err, &netErr):
		return e
	}
	// Anything unknown (a malformed packet, a broken connection the driver describes in its own words):
	// transient.
	return e
}
