package postgres

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/kvrotator/kvrotator/internal/testca"
	"github.com/kvrotator/kvrotator/providers"
)

// A server (or a machine on the path) that follows its 'S' with plain-text protocol messages before
// the TLS handshake (CVE-2021-23222): the client must not take them for the server's answers after
// the handshake. It reads exactly one byte, so the bytes reach the TLS layer and the handshake fails.
func TestSSLRequestAnswerInjection(t *testing.T) {
	ca := testca.New(t)
	cfg := fakePostgres(t, SSLVerifyFull, func(c net.Conn) {
		var req [8]byte
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		injected := []byte{'S'}
		injected, _ = (&pgproto3.AuthenticationOk{}).Encode(injected)
		injected, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(injected)
		_, _ = c.Write(injected)
		tc := tls.Server(c, ca.ServerTLS(t))
		_ = tc.Handshake()
		_, _ = io.Copy(io.Discard, tc)
	})
	conn, err := connect(context.Background(), cfg, ca.CertFile, "app", "pw")
	if err == nil {
		closeConn(context.Background(), conn)
		t.Fatal("connected: the injected plain-text messages were taken for the server's")
	}
}

// A server that cannot prove it holds the verifier is refused for good: retrying only hands a possible
// impostor more client proofs.
func TestSCRAMFailureIsPermanent(t *testing.T) {
	sc, err := newSCRAMClient("pw", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc.clientFirst()
	if _, err := sc.clientFinal([]byte("r=" + sc.clientNonce + "x,s=c2FsdA==,i=4096")); err != nil {
		t.Fatal(err)
	}
	err = sc.checkServerFinal([]byte("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	if err == nil {
		t.Fatal("a wrong server signature was accepted")
	}
	for _, step := range []string{stepCreate, stepVerify} {
		if got := classify(step, "db:5432/postgres", "app", "logging in", err); !providers.IsPermanent(got) {
			t.Errorf("%s: %v is transient, want permanent", step, got)
		}
	}
}
