package postgres

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// A server that does not hold the login's verifier cannot finish the SCRAM exchange: it can answer the
// client-first-message with any salt, but not with the signature only the verifier gives. The client
// refuses a wrong signature, a missing one, and a server that skips to AuthenticationOk.
func TestSCRAMRefusesAServerWithoutTheVerifier(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		final func(*pgproto3.Backend)
		want  string
	}{
		{"a wrong signature", func(be *pgproto3.Backend) {
			be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)))})
			be.Send(&pgproto3.AuthenticationOk{})
		}, "signature is wrong"},
		{"no server-final-message", func(be *pgproto3.Backend) {
			be.Send(&pgproto3.AuthenticationOk{})
		}, "unexpected *pgproto3.AuthenticationOk"},
		{"an error instead", func(be *pgproto3.Backend) {
			be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"})
		}, "SQLSTATE 28P01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fakePostgres(t, SSLDisable, func(c net.Conn) {
				be := pgproto3.NewBackend(c, c)
				if _, err := be.ReceiveStartupMessage(); err != nil {
					return
				}
				be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}})
				if be.Flush() != nil {
					return
				}
				be.SetAuthType(pgproto3.AuthTypeSASL)
				msg, err := be.Receive()
				first, ok := msg.(*pgproto3.SASLInitialResponse)
				if err != nil || !ok {
					return
				}
				_, bare, _ := strings.Cut(string(first.Data), ",,")
				nonce := strings.TrimPrefix(bare, "n=,r=")
				be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte("r=" + nonce + "server,s=" + base64.StdEncoding.EncodeToString([]byte("salt")) + ",i=4096")})
				if be.Flush() != nil {
					return
				}
				be.SetAuthType(pgproto3.AuthTypeSASLContinue)
				if _, err := be.Receive(); err != nil {
					return
				}
				tc.final(be)
				be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				_ = be.Flush()
				_, _ = be.Receive() // until the client goes
			})
			conn, err := connect(context.Background(), cfg, "", "app", "the-password")
			if err == nil {
				closeConn(context.Background(), conn)
				t.Fatal("logged in")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "the-password") {
				t.Fatalf("error %q, want %q", err, tc.want)
			}
		})
	}
}

// fakePostgres listens on 127.0.0.1 and serves the first connection with serve (within 10 s); the
// returned config reaches it with sslMode.
func fakePostgres(t *testing.T, sslMode string, serve func(c net.Conn)) config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(c)
	}()
	host, port, _ := strings.Cut(ln.Addr().String(), ":")
	p, _ := strconv.Atoi(port)
	return config{host: host, port: p, database: "postgres", sslMode: sslMode}
}
