package redis

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	redigo "github.com/gomodule/redigo/redis"

	"github.com/kvrotator/kvrotator/providers"
)

// Error is a failed step against the server. Errors the engine should not retry are wrapped with
// providers.Permanent; find the Error underneath with errors.As. It never holds a password or a
// password's hash: Redis's error replies name users and commands, and the provider removes anything
// it sent from the texts it keeps.
type Error struct {
	Step   string // "create" or "verify"
	Server string // host:port
	User   string // the ACL user that connected
	// Reason says what went wrong, in kvrotator's words.
	Reason string
	// Code is the first word of the server's error reply (WRONGPASS, NOPERM, ERR, LOADING, …), when
	// the server answered with an error.
	Code string
	// Refusal is ErrUntrustedServer, ErrNoTLS or ErrTLSRefused when the TLS connection failed (errors.Is
	// finds it); nil otherwise.
	Refusal error
	// Err is the cause.
	Err error
}

// The TLS failures. Each is permanent: retrying cannot make the server trustworthy.
var (
	// ErrUntrustedServer: the server's certificate does not chain to a trusted CA (the operator's
	// KVROTATOR_REDIS_CA_FILE, else the system's roots) or does not name the host. Nothing was sent:
	// the handshake stopped before any command.
	ErrUntrustedServer = errors.New("the server's TLS certificate is not trusted")
	// ErrNoTLS: the server at the address does not speak TLS (a plain-text Redis). Nothing but the TLS
	// ClientHello was sent.
	ErrNoTLS = errors.New("the server does not speak TLS")
	// ErrTLSRefused: the server ended the TLS handshake, typically because it requires a client
	// certificate (tls-auth-clients yes) and none, or one it does not trust, was presented.
	ErrTLSRefused = errors.New("the server refused the TLS connection")
)

// ErrOpenSessions is wrapped by Create's error when the user it would reset still has open connections.
var ErrOpenSessions = errors.New("the user still has open connections")

// ErrRulesChanged is wrapped by Create's error when, after ACL SETUSER, the user's rules (flags other
// than nopass, commands, keys, channels, selectors) are not what they were before: the change was meant
// to touch its passwords only.
var ErrRulesChanged = errors.New("the user's ACL rules changed")

func (e *Error) Error() string {
	msg := fmt.Sprintf("redis %s (%s as %s): %s", e.Step, e.Server, e.User, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the refusal, when the TLS connection failed, and the cause.
func (e *Error) Unwrap() []error {
	var errs []error
	for _, err := range []error{e.Refusal, e.Err} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// transientCodes are the error replies a retry can fix: the server is loading its data set, busy with a
// script, a replica without its master, a cluster resharding or down.
var transientCodes = []string{"LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"}

// classify wraps err in an Error and marks it permanent when retrying cannot help. In verify, a rejected
// password (WRONGPASS) is transient: the engine retries verification until its timeout, for a proxy or
// a replica that has not seen the change yet.
func classify(step, server, user, reason string, err error) error {
	e := &Error{Step: step, Server: server, User: user, Reason: reason, Err: err}
	var rerr redigo.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		e.Code, _, _ = strings.Cut(msg, " ")
		switch {
		case step == stepVerify && e.Code == "WRONGPASS":
			e.Reason += " (the new password is not accepted yet; will try again)"
			return e
		case strings.HasPrefix(msg, "ERR max number of clients reached"):
			e.Reason += " (the server is at maxclients; will try again)"
			return e
		case strings.HasPrefix(msg, "ERR There was an error trying to save the ACLs"):
			e.Reason += " (the server could not write its ACL file; see its log; will try again)"
			return e
		}
		for _, code := range transientCodes {
			if e.Code == code {
				return e
			}
		}
		return providers.Permanent(e)
	}
	var setup *setupError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	var refused *certRefusedError
	switch {
	case errors.As(err, &setup):
		e.Reason += " (check " + EnvCAFile + ", " + EnvClientCertFile + " and " + EnvClientKeyFile + ": the files must be readable PEM)"
		return providers.Permanent(e)
	case errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &badHost), errors.As(err, &invalid):
		e.Refusal = ErrUntrustedServer
		e.Reason += " (" + ErrUntrustedServer.Error() + ": the operator sets " + EnvCAFile + " to the CA's PEM file when the system's roots do not include it)"
		return providers.Permanent(e)
	case errors.As(err, &record):
		e.Refusal = ErrNoTLS
		e.Reason += " (" + ErrNoTLS.Error() + "; redis:// (plain text) is allowed only for loopback hosts)"
		return providers.Permanent(e)
	case errors.As(err, &refused), strings.Contains(err.Error(), "remote error: tls:"):
		e.Refusal = ErrTLSRefused
		e.Reason += " (" + ErrTLSRefused.Error() + ": the server asked for a client certificate and then ended the connection; " +
			"if it requires one (tls-auth-clients yes), the operator sets " + EnvClientCertFile + " and " + EnvClientKeyFile +
			" to a certificate signed by a CA in its tls-ca-cert-file)"
		return providers.Permanent(e)
	}
	var handshake *handshakeError
	var netErr net.Error
	if errors.As(err, &handshake) && errors.As(err, &netErr) && netErr.Timeout() {
		e.Reason += " (the TLS handshake got no answer: a server that does not speak TLS, such as a plain-text Redis, " +
			"never answers the ClientHello; check that the server listens with TLS at " + server + "; will try again)"
	}
	// Network errors (refused, reset, unreachable, DNS, timeouts, the engine's deadline) and anything
	// unknown: transient.
	return e
}

// setupError is a connection that could not even be configured (an unreadable CA or client certificate).
type setupError struct{ err error }

func (e *setupError) Error() string { return "connection settings: " + e.err.Error() }
func (e *setupError) Unwrap() error { return e.err }

// scrub returns err with every occurrence of the secrets replaced by [redacted]. Redis echoes the
// offending rule in ACL SETUSER errors ("Error in ACL SETUSER modifier '#…'"), so errors of steps that
// sent something derived from a password pass through it.
func scrub(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	var rerr redigo.Error
	if errors.As(err, &rerr) {
		// Still an error reply, so that classify reads its code, but never the original text. A
		// login's reply keeps its wrapping (see commandNoPerm).
		var lerr *loginError
		if errors.As(err, &lerr) {
			return &loginError{redigo.Error(msg)}
		}
		return redigo.Error(msg)
	}
	return errors.New(msg)
}
