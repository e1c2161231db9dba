package postgres_test

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// fakeMode is how a fakeServer answers a login.
type fakeMode int

const (
	// recordOnly accepts TCP connections, counts them and closes them: the listener that proves
	// nothing was contacted.
	recordOnly fakeMode = iota
	// askCleartext answers the StartupMessage with AuthenticationCleartextPassword.
	askCleartext
	// askMD5 answers with AuthenticationMD5Password.
	askMD5
	// askNothing lets the login in without authenticating it (AuthenticationOk, as "trust" does).
	askNothing
)

// fakeServer is a hostile PostgreSQL server: it speaks just enough of the protocol to get a client
// to the point of authenticating (SSLRequest, TLS with whatever certificate it is given, the
// StartupMessage, an authentication request of its choice) and records everything the client sends
// after that. It never completes a login.
type fakeServer struct {
	Addr string
	ln   net.Listener
	tls  *tls.Config // nil: answer SSLRequest with 'N'
	mode fakeMode
	wg   sync.WaitGroup

	mu         sync.Mutex
	conns      int      // TCP connections accepted
	handshakes int      // TLS handshakes completed
	users      []string // the user of each StartupMessage received
	afterAuth  []byte   // every byte received after an authentication request, all connections
}

// startFake listens on a free loopback port until the test ends.
func startFake(t *testing.T, mode fakeMode, tlsConfig *tls.Config) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{Addr: ln.Addr().String(), ln: ln, tls: tlsConfig, mode: mode}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeServer) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns++
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(15 * time.Second))
			if f.mode != recordOnly {
				f.serve(c)
			}
		}()
	}
}

func (f *fakeServer) serve(c net.Conn) {
	be := pgproto3.NewBackend(c, c)
	for {
		msg, err := be.ReceiveStartupMessage()
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *pgproto3.SSLRequest:
			if f.tls == nil {
				if _, err := c.Write([]byte{'N'}); err != nil {
					return
				}
				continue
			}
			if _, err := c.Write([]byte{'S'}); err != nil {
				return
			}
			tc := tls.Server(c, f.tls)
			if err := tc.Handshake(); err != nil {
				return // the client did not trust the certificate
			}
			f.mu.Lock()
			f.handshakes++
			f.mu.Unlock()
			defer tc.Close()
			c = tc
			be = pgproto3.NewBackend(tc, tc)
		case *pgproto3.GSSEncRequest:
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
		case *pgproto3.StartupMessage:
			f.mu.Lock()
			f.users = append(f.users, m.Parameters["user"])
			f.mu.Unlock()
			switch f.mode {
			case askCleartext:
				be.Send(&pgproto3.AuthenticationCleartextPassword{})
			case askMD5:
				be.Send(&pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}})
			case askNothing:
				be.Send(&pgproto3.AuthenticationOk{})
				be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: "15.0"})
				be.Send(&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{0, 0, 0, 7}})
				be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			}
			if err := be.Flush(); err != nil {
				return
			}
			// Whatever comes now would be a password, a digest of it, or a query: keep every byte.
			var buf bytes.Buffer
			_, _ = io.Copy(&buf, c)
			f.mu.Lock()
			f.afterAuth = append(f.afterAuth, buf.Bytes()...)
			f.mu.Unlock()
			return
		default:
			return
		}
	}
}

// Conns is the number of TCP connections accepted so far.
func (f *fakeServer) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// Handshakes is the number of TLS handshakes the clients completed.
func (f *fakeServer) Handshakes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handshakes
}

// Users are the users named in the StartupMessages received.
func (f *fakeServer) Users() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.users...)
}

// AfterAuth is what clients sent after an authentication request, and the types of the messages in
// it ('p' is a PasswordMessage or SASL response, 'Q' a query).
func (f *fakeServer) AfterAuth() ([]byte, []byte, error) {
	f.mu.Lock()
	raw := append([]byte(nil), f.afterAuth...)
	f.mu.Unlock()
	var types []byte
	for rest := raw; len(rest) > 0; {
		if len(rest) < 5 {
			return raw, types, errors.New("a truncated message")
		}
		n := int(binary.BigEndian.Uint32(rest[1:5]))
		types = append(types, rest[0])
		if n < 4 || len(rest) < 1+n {
			return raw, types, errors.New("a truncated message")
		}
		rest = rest[1+n:]
	}
	return raw, types, nil
}
