package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/kvrotator/kvrotator/internal/testca"
)

// With sslmode verify-ca and no CA configured (no KVROTATOR_POSTGRES_CA_FILE, no PGSSLROOTCERT), the
// client must not accept a certificate that merely chains to one of the system's (public) roots for some
// other name: anyone can get such a certificate for a domain of their own. libpq refuses verify-ca
// without a root file, and makes sslrootcert=system imply verify-full.
//
// The "system roots" are simulated with SSL_CERT_FILE (the system pool is loaded once per process, so
// the handshake part shows the attack only when the test runs on its own:
// go test -run TestVerifyCAWithSystemRoots ./providers/postgres/).
func TestVerifyCAWithSystemRoots(t *testing.T) {
	public := testca.New(t) // stands for any publicly trusted CA
	t.Setenv("SSL_CERT_FILE", public.CertFile)
	t.Setenv("SSL_CERT_DIR", t.TempDir())
	t.Setenv("PGSSLROOTCERT", "")
	serverTLS := public.ServerTLS(t, "attacker.example") // a certificate for the attacker's own domain

	got := make(chan string, 1)
	cfg := fakePostgres(t, SSLVerifyCA, func(c net.Conn) {
		var req [8]byte
		if _, err := io.ReadFull(c, req[:]); err != nil {
			return
		}
		if _, err := c.Write([]byte{'S'}); err != nil {
			return
		}
		tc := tls.Server(c, serverTLS)
		if tc.Handshake() != nil {
			return
		}
		be := pgproto3.NewBackend(tc, tc)
		if _, err := be.ReceiveStartupMessage(); err != nil {
			return
		}
		// A relay to a server reached without TLS offers no channel binding.
		be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}})
		if be.Flush() != nil {
			return
		}
		be.SetAuthType(pgproto3.AuthTypeSASL)
		msg, err := be.Receive()
		if first, ok := msg.(*pgproto3.SASLInitialResponse); ok && err == nil {
			got <- first.AuthMechanism + " " + string(first.Data)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := connect(ctx, cfg, "", "kvrotator_admin", "admin-password")
	if conn != nil {
		closeConn(ctx, conn)
	}
	select {
	case first := <-got:
		t.Fatalf("verify-ca without a CA file accepted a certificate for attacker.example and started SCRAM (%q); connect error: %v", first, err)
	default:
	}
	var setup *setupError
	if !errors.As(err, &setup) || !strings.Contains(err.Error(), SSLVerifyCA) {
		t.Fatalf("connect: %v, want a refusal of verify-ca without the operator's CA file", err)
	}
}
