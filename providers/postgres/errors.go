package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/kvrotator/kvrotator/providers"
)

// Error is a failed step against the server. Errors the engine should not retry are wrapped with
// providers.Permanent; find the Error underneath with errors.As. It never holds a password or a
// verifier: the server's and the driver's messages name users, hosts and databases, nothing more.
type Error struct {
	Step   string // "create" or "verify"
	Server string // host:port/dbname
	User   string // the role that connected
	// Reason says what went wrong, in kvrotator's words.
	Reason string
	// Code is the server's SQLSTATE, when the server answered with an error.
	Code string
	// Refusal is ErrUntrustedServer, ErrNoTLS or ErrAuthMethod when kvrotator itself refused the
	// server (errors.Is finds it); nil otherwise.
	Refusal error
	// Err is the cause.
	Err error
}

// The servers kvrotator refuses to talk to. Each is permanent: retrying cannot make the server
// trustworthy, and nothing derived from a password has been sent.
var (
	// ErrUntrustedServer: the server's TLS certificate does not chain to a trusted CA (the operator's
	// KVROTATOR_POSTGRES_CA_FILE, else PGSSLROOTCERT, else the system's roots) or, with verify-full,
	// does not name the host. No login was sent.
	ErrUntrustedServer = errors.New("the server's TLS certificate is not trusted")
	// ErrNoTLS: the server does not offer TLS, and the sslmode requires it.
	ErrNoTLS = errors.New("the server does not offer TLS")
	// ErrAuthMethod: the server asked for a cleartext or MD5 password, or let the login in without
	// authenticating it; kvrotator accepts SCRAM-SHA-256 only and sent nothing.
	ErrAuthMethod = errors.New("the server asked for an authentication method other than SCRAM-SHA-256; refused without sending the password")
)

func (e *Error) Error() string {
	msg := fmt.Sprintf("postgres %s (%s as %s): %s", e.Step, e.Server, e.User, e.Reason)
	if e.Err != nil {
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

// SQLSTATE classes and codes (PostgreSQL documentation, appendix A) that a retry can fix: the
// connection broke, the server is starting, shutting down or out of resources, a lock or a
// serialization conflict. Every other error the server reports (a bad password, a missing role or
// database, a missing privilege) is permanent.
var transientClasses = []string{"08", "40", "53", "57", "58", "XX"}

const codeInvalidPassword = "28P01"

// classify wraps err in an Error and marks it permanent when retrying cannot help. In verify, a
// rejected password is transient: a pooler or replica in front of the server may still hold the old
// verifier for a moment (the engine retries verification until its timeout).
func classify(step, server, user, reason string, err error) error {
	e := &Error{Step: step, Server: server, User: user, Reason: reason, Err: err}
	var pgErr *pgError
	if errors.As(err, &pgErr) {
		e.Code = pgErr.Code
		if step == stepVerify && pgErr.Code == codeInvalidPassword {
			e.Reason += " (the new password is not accepted yet; will try again)"
			return e
		}
		for _, class := range transientClasses {
			if strings.HasPrefix(pgErr.Code, class) {
				return e
			}
		}
		if pgErr.Code == "55P03" { // lock_not_available
			return e
		}
		return providers.Permanent(e)
	}
	var setup *setupError
	var authErr *authMethodError
	var scramErr *scramError
	var netErr net.Error
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return e
	case errors.As(err, &setup):
		e.Reason += " (check " + EnvCAFile + " or PGSSLROOTCERT: the CA file must be readable PEM)"
		return providers.Permanent(e)
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &invalid):
		e.Refusal = ErrUntrustedServer
		e.Reason += " (" + ErrUntrustedServer.Error() + ": the operator sets " + EnvCAFile + " to the CA's PEM file when the system's roots do not include it)"
		return providers.Permanent(e)
	case errors.Is(err, errServerNoTLS):
		e.Refusal = ErrNoTLS
		e.Reason += " (" + ErrNoTLS.Error() + "; " + TagSSLMode + "=disable is allowed only for loopback hosts)"
		return providers.Permanent(e)
	case errors.As(err, &scramErr):
		e.Reason += " (the server broke the SCRAM exchange: it does not prove that it holds the login's verifier)"
		return providers.Permanent(e)
	case errors.As(err, &authErr):
		e.Refusal = ErrAuthMethod
		e.Reason += " (" + ErrAuthMethod.Error() + ")"
		return providers.Permanent(e)
	}
	// Network errors (refused, reset, unreachable, DNS) and anything unknown: transient.
	return e
}
