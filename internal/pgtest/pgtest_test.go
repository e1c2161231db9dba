package pgtest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/kvrotator/kvrotator/internal/pgtest"
)

func TestStartServesSCRAMLoginsAndStops(t *testing.T) {
	t.Parallel()
	s := pgtest.StartServer(t, &pgtest.Options{Settings: map[string]string{"log_statement": "all"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var method string
	if err := s.Admin(t).QueryRow(ctx, "SELECT left(rolpassword, 13) FROM pg_authid WHERE rolname = current_user").Scan(&method); err != nil {
		t.Fatal(err)
	}
	if method != "SCRAM-SHA-256" {
		t.Fatalf("the admin's password is stored as %q, want a SCRAM-SHA-256 verifier", method)
	}
	var methods []string
	if err := s.Admin(t).QueryRow(ctx, "SELECT array_agg(DISTINCT auth_method) FROM pg_hba_file_rules").Scan(&methods); err != nil {
		t.Fatal(err)
	}
	if len(methods) != 1 || methods[0] != "scram-sha-256" {
		t.Fatalf("pg_hba.conf methods %v, want scram-sha-256 only", methods)
	}
	if _, err := pgx.Connect(ctx, s.ConnString(s.AdminUser, "wrong", pgtest.Database)); err == nil || !strings.Contains(err.Error(), "28P01") {
		t.Fatalf("a wrong password: %v, want SQLSTATE 28P01", err)
	}
	if !strings.Contains(s.Log(), "SELECT left(rolpassword, 13) FROM pg_authid") {
		t.Fatal("log_statement=all did not reach the server log")
	}

	s.Stop()
	if c, err := pgx.Connect(ctx, s.ConnString(s.AdminUser, s.AdminPassword, pgtest.Database)); err == nil {
		c.Close(ctx)
		t.Fatal("the server still answers after Stop")
	}
	s.Stop() // twice is fine
}

func TestStartWithTLS(t *testing.T) {
	t.Parallel()
	s := pgtest.StartServer(t, &pgtest.Options{TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.CAFile == "" || s.CA == nil || !strings.Contains(s.ConnString("u", "p", "d"), "sslmode=verify-full") {
		t.Fatalf("CAFile %q; ConnString does not verify the server", s.CAFile)
	}
	// verify-full to both names in the certificate, trusting only the server's CA.
	for _, host := range []string{"127.0.0.1", "localhost"} {
		cs := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=verify-full sslrootcert=%s",
			host, s.Port, s.AdminUser, s.AdminPassword, pgtest.Database, s.CAFile)
		c, err := pgx.Connect(ctx, cs)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		var ssl bool
		err = c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)
		c.Close(ctx)
		if err != nil || !ssl {
			t.Fatalf("%s: ssl=%v err=%v", host, ssl, err)
		}
	}

	// The certificate is the CA's, not self-signed: another CA does not verify it.
	other := pgtest.NewCA(t)
	cs := strings.Replace(s.ConnString(s.AdminUser, s.AdminPassword, pgtest.Database), s.CAFile, other.CertFile, 1)
	if c, err := pgx.Connect(ctx, cs); err == nil {
		c.Close(ctx)
		t.Fatal("verify-full succeeded with another CA")
	} else if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("another CA: %v, want an unknown authority", err)
	}

	// TCP without TLS has no pg_hba.conf entry.
	cs = fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", s.Port, s.AdminUser, s.AdminPassword, pgtest.Database)
	if c, err := pgx.Connect(ctx, cs); err == nil {
		c.Close(ctx)
		t.Fatal("a plain-text connection was accepted by a TLS server")
	} else if !strings.Contains(err.Error(), "28000") {
		t.Fatalf("plain text: %v, want SQLSTATE 28000 (no pg_hba.conf entry)", err)
	}
}

func TestSharedCAAndOtherNames(t *testing.T) {
	t.Parallel()
	ca := pgtest.NewCA(t)
	a := pgtest.StartServer(t, &pgtest.Options{CA: ca})
	b := pgtest.StartServer(t, &pgtest.Options{CA: ca, CertHosts: []string{"db.example.com"}})
	if a.CAFile != ca.CertFile || b.CAFile != ca.CertFile {
		t.Fatal("the servers do not expose the shared CA")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// b's certificate does not name 127.0.0.1: verify-ca accepts it (ConnString falls back to it),
	// verify-full does not.
	if !strings.Contains(b.ConnString("u", "p", "d"), "sslmode=verify-ca") {
		t.Fatal("ConnString for a certificate without 127.0.0.1 is not verify-ca")
	}
	c, err := pgx.Connect(ctx, b.ConnString(b.AdminUser, b.AdminPassword, pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	full := strings.Replace(b.ConnString(b.AdminUser, b.AdminPassword, pgtest.Database), "verify-ca", "verify-full", 1)
	if c, err := pgx.Connect(ctx, full); err == nil {
		c.Close(ctx)
		t.Fatal("verify-full accepted a certificate for db.example.com at 127.0.0.1")
	}
	// A CA-signed certificate for a fake server.
	if cfg := ca.ServerTLS(t, "localhost"); len(cfg.Certificates) != 1 {
		t.Fatal("ServerTLS has no certificate")
	}
}

func TestPrependHBA(t *testing.T) {
	t.Parallel()
	s := pgtest.StartServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Admin(t).Exec(ctx, "CREATE ROLE blocked LOGIN PASSWORD 'blocked-pw'"); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, s.ConnString("blocked", "blocked-pw", pgtest.Database))
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	s.PrependHBA(t, "host all blocked 127.0.0.1/32 reject")
	if c, err := pgx.Connect(ctx, s.ConnString("blocked", "blocked-pw", pgtest.Database)); err == nil {
		c.Close(ctx)
		t.Fatal("the prepended reject line did not take effect")
	} else if !strings.Contains(err.Error(), "28000") {
		t.Fatalf("%v, want SQLSTATE 28000", err)
	}
}

func TestStartReturnsAddressAndAdmin(t *testing.T) {
	t.Parallel()
	addr, user, password := pgtest.Start(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") || user != pgtest.AdminUser || len(password) < 16 {
		t.Fatalf("Start = %q, %q, (%d-byte password)", addr, user, len(password))
	}
}
