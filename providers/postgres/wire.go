package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The provider's PostgreSQL client: the few things it needs of a connection (TLS negotiation,
// SCRAM-SHA-256 login, simple and parameterised queries with text results, the server's errors), on
// pgproto3's encoding of the wire protocol. A full driver (pgx with pgconn and pgtype, or lib/pq with
// database/sql) costs the deployed binary megabytes and start-up memory for type maps and Unicode
// tables the provider never uses (README.md, "Client library").

// pgConn is one connection, used by one goroutine from connect to close.
type pgConn struct {
	nc        net.Conn
	fe        *pgproto3.Frontend
	stopWatch func() bool // ends the context watch set up by dialPG
	mechanism string      // the SASL mechanism of the login
}

// pgError is an error the server reported (an ErrorResponse): Code is its SQLSTATE.
type pgError struct {
	Severity string
	Code     string
	Message  string
	Detail   string
}

func (e *pgError) Error() string {
	return e.Severity + ": " + e.Message + " (SQLSTATE " + e.Code + ")"
}

// authMethodError is a server that asked for an authentication method other than SCRAM-SHA-256 (or
// skipped authentication): nothing was sent in reply.
type authMethodError struct{ asked string }

func (e *authMethodError) Error() string {
	return "the server asked for " + e.asked + "; only SCRAM-SHA-256 is accepted"
}

// maxMessageLen bounds what one message from the server may make the client buffer. The provider's
// messages are a few hundred bytes (pgproto3's own limit is a gigabyte).
const maxMessageLen = 1 << 20

// errServerNoTLS is a server that answered the SSLRequest with 'N'.
var errServerNoTLS = errors.New("the server refused TLS")

// dialPG connects to addr (host:port), negotiates TLS with tlsConfig (nil: plain text) and logs in
// as user to database with SCRAM-SHA-256 only. connectTimeout bounds everything up to the first
// ReadyForQuery; ctx bounds the connection's whole life (each read and write fails once it is done,
// with an error that wraps ctx.Err()).
func dialPG(ctx context.Context, addr string, tlsConfig *tls.Config, connectTimeout time.Duration, user, database, password string) (*pgConn, error) {
	// Deadlines, not goroutines: when a context ends, the connection's deadline is set in the past,
	// which fails the read or write in progress (and every later one).
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	d := net.Dialer{KeepAlive: 5 * time.Minute}
	nc, err := d.DialContext(cctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	expire := func() { _ = nc.SetDeadline(time.Unix(1, 0)) }
	stopConnectWatch := context.AfterFunc(cctx, expire)
	c := &pgConn{nc: nc, stopWatch: context.AfterFunc(ctx, expire)}
	fail := func(err error) (*pgConn, error) {
		stopConnectWatch()
		c.stopWatch()
		_ = c.nc.Close() // no Terminate: after a refusal the server gets nothing more
		return nil, contextError(cctx, err)
	}

	if tlsConfig != nil {
		// SSLRequest, then exactly one byte: nothing the server sends before the handshake is read
		// into a buffer that could later pass for encrypted data.
		req, _ := (&pgproto3.SSLRequest{}).Encode(nil)
		if _, err := nc.Write(req); err != nil {
			return fail(err)
		}
		var answer [1]byte
		if _, err := io.ReadFull(nc, answer[:]); err != nil {
			return fail(err)
		}
		switch answer[0] {
		case 'S':
		case 'N':
			return fail(errServerNoTLS)
		default:
			return fail(fmt.Errorf("the server answered the SSLRequest with %q", answer[0]))
		}
		tc := tls.Client(nc, tlsConfig)
		if err := tc.HandshakeContext(cctx); err != nil {
			return fail(err)
		}
		c.nc = tc
	}
	c.fe = pgproto3.NewFrontend(c.nc, c.nc)
	c.fe.SetMaxBodyLen(maxMessageLen)

	params := map[string]string{"user": user, "database": database, "application_name": "kvrotator", "client_encoding": "UTF8"}
	c.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := c.fe.Flush(); err != nil {
		return fail(err)
	}
	if err := c.login(password); err != nil {
		return fail(err)
	}
	if !stopConnectWatch() { // the connect timeout expired just now
		return fail(cctx.Err())
	}
	return c, nil
}

// login answers the server's authentication request: SCRAM-SHA-256 (with channel binding when the
// server offers it over TLS), nothing else. A request for a cleartext password, an MD5 digest, GSSAPI
// or SSPI, and a login let in without authentication, are refused before anything is sent.
func (c *pgConn) login(password string) error {
	authenticated := false
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pgproto3.AuthenticationSASL:
			if authenticated {
				return errors.New("the server asked to authenticate twice")
			}
			if err := c.scram(m.AuthMechanisms, password); err != nil {
				return err
			}
			authenticated = true
		case *pgproto3.AuthenticationOk:
			if !authenticated {
				return &authMethodError{"no authentication (trust)"}
			}
		case *pgproto3.AuthenticationCleartextPassword:
			return &authMethodError{"a cleartext password"}
		case *pgproto3.AuthenticationMD5Password:
			return &authMethodError{"an MD5 password digest"}
		case *pgproto3.AuthenticationGSS, *pgproto3.AuthenticationGSSContinue:
			return &authMethodError{"GSSAPI or SSPI"}
		case *pgproto3.ErrorResponse:
			return errorFrom(m)
		case *pgproto3.ParameterStatus, *pgproto3.BackendKeyData, *pgproto3.NoticeResponse, *pgproto3.NegotiateProtocolVersion:
		case *pgproto3.ReadyForQuery:
			if !authenticated {
				return &authMethodError{"no authentication (trust)"}
			}
			return nil
		default:
			return fmt.Errorf("unexpected %T during login", msg)
		}
	}
}

// scram runs the SCRAM-SHA-256 exchange (RFC 5802, RFC 7677; SCRAM-SHA-256-PLUS with
// tls-server-end-point binding, RFC 5929, when the server offers it over TLS) and checks the server's
// signature: a server that does not hold the verifier cannot complete the login.
func (c *pgConn) scram(mechanisms []string, password string) error {
	var cbData []byte
	tlsUsed := false
	if tc, ok := c.nc.(*tls.Conn); ok {
		tlsUsed = true
		for _, m := range mechanisms {
			if m == scramPlusMechanism {
				if h, err := tlsServerEndPoint(tc.ConnectionState()); err == nil {
					cbData = h
				}
			}
		}
	}
	offered := false
	for _, m := range mechanisms {
		offered = offered || m == scramMechanism
	}
	if !offered && cbData == nil {
		return &authMethodError{"SASL mechanisms " + strings.Join(mechanisms, ", ")}
	}
	sc, err := newSCRAMClient(password, tlsUsed, cbData)
	if err != nil {
		return err
	}
	c.mechanism = sc.mechanism()
	c.fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: c.mechanism, Data: sc.clientFirst()})
	if err := c.fe.Flush(); err != nil {
		return err
	}
	msg, err := c.fe.Receive()
	if err != nil {
		return err
	}
	var serverFirst []byte
	switch m := msg.(type) {
	case *pgproto3.AuthenticationSASLContinue:
		serverFirst = m.Data
	case *pgproto3.ErrorResponse:
		return errorFrom(m)
	default:
		return fmt.Errorf("SCRAM: unexpected %T for the server-first-message", msg)
	}
	final, err := sc.clientFinal(serverFirst)
	if err != nil {
		return err
	}
	c.fe.Send(&pgproto3.SASLResponse{Data: final})
	if err := c.fe.Flush(); err != nil {
		return err
	}
	if msg, err = c.fe.Receive(); err != nil {
		return err
	}
	switch m := msg.(type) {
	case *pgproto3.AuthenticationSASLFinal:
		return sc.checkServerFinal(m.Data)
	case *pgproto3.ErrorResponse:
		return errorFrom(m)
	default:
		return fmt.Errorf("SCRAM: unexpected %T for the server-final-message", msg)
	}
}

// result is what one statement returned: its rows, every value as text (nil for NULL), and its
// command tag.
type result struct {
	rows [][]*string
	tag  string
}

// exec runs sql, which may hold several statements, with the simple query protocol; it returns the
// first error the server reports, after the server is ready again.
func (c *pgConn) exec(ctx context.Context, sql string) ([]result, error) {
	c.fe.Send(&pgproto3.Query{String: sql})
	return c.results(ctx)
}

// query runs one statement with text parameters (the extended protocol with the unnamed statement,
// which poolers in transaction mode accept). oids are the parameters' types, 0 to let the server infer.
func (c *pgConn) query(ctx context.Context, sql string, oids []uint32, args ...string) ([][]*string, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	c.fe.Send(&pgproto3.Parse{Query: sql, ParameterOIDs: oids})
	c.fe.Send(&pgproto3.Bind{Parameters: params})
	c.fe.Send(&pgproto3.Describe{ObjectType: 'P'})
	c.fe.Send(&pgproto3.Execute{})
	c.fe.Send(&pgproto3.Sync{})
	res, err := c.results(ctx)
	if err != nil {
		return nil, err
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("%d results for one statement", len(res))
	}
	return res[0].rows, nil
}

// results reads the server's answers up to ReadyForQuery.
func (c *pgConn) results(ctx context.Context) ([]result, error) {
	if err := c.fe.Flush(); err != nil {
		return nil, contextError(ctx, err)
	}
	var out []result
	var cur result
	var firstErr error
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			return nil, contextError(ctx, err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			row := make([]*string, len(m.Values))
			for i, v := range m.Values {
				if v != nil {
					s := string(v)
					row[i] = &s
				}
			}
			cur.rows = append(cur.rows, row)
		case *pgproto3.CommandComplete:
			cur.tag = string(m.CommandTag)
			out = append(out, cur)
			cur = result{}
		case *pgproto3.EmptyQueryResponse:
			out = append(out, cur)
			cur = result{}
		case *pgproto3.ErrorResponse:
			if firstErr == nil {
				firstErr = errorFrom(m)
			}
		case *pgproto3.ReadyForQuery:
			if firstErr != nil {
				return nil, firstErr
			}
			return out, nil
		case *pgproto3.ParseComplete, *pgproto3.BindComplete, *pgproto3.RowDescription, *pgproto3.NoData,
			*pgproto3.NoticeResponse, *pgproto3.ParameterStatus, *pgproto3.NotificationResponse:
		case *pgproto3.CopyInResponse, *pgproto3.CopyOutResponse, *pgproto3.CopyBothResponse:
			return nil, errors.New("the statement started a COPY, which this client does not do")
		default:
			return nil, fmt.Errorf("unexpected %T in a query's results", msg)
		}
	}
}

// close sends Terminate and closes the connection; ctx bounds the goodbye.
func (c *pgConn) close(ctx context.Context) {
	c.stopWatch()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(5 * time.Second)
	}
	_ = c.nc.SetDeadline(deadline)
	c.fe.Send(&pgproto3.Terminate{})
	_ = c.fe.Flush()
	_ = c.nc.Close()
}

// contextError explains an I/O error that the context's end caused.
func contextError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		return fmt.Errorf("%w (%w)", ctxErr, err)
	}
	return err
}

func errorFrom(m *pgproto3.ErrorResponse) *pgError {
	return &pgError{Severity: m.Severity, Code: m.Code, Message: m.Message, Detail: m.Detail}
}

// quoteIdentifier quotes a role name for SQL ("" doubled, NUL dropped), as pgx.Identifier did.
func quoteIdentifier(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), `"`, `""`) + `"`
}

// textArray is the text form of a text[] value.
func textArray(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return "{" + strings.Join(quoted, ",") + "}"
}
