package pgtest_test

import (
	"context"
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
	cs := strings.Replace(s.ConnString(s.AdminUser, s.AdminPassword, pgtest.Database), "sslmode=disable",
		"sslmode=verify-full sslrootcert="+s.RootCertFile, 1)
	c, err := pgx.Connect(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var ssl bool
	if err := c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
		t.Fatalf("ssl=%v err=%v", ssl, err)
	}
}

func TestStartReturnsAddressAndAdmin(t *testing.T) {
	t.Parallel()
	addr, user, password := pgtest.Start(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") || user != pgtest.AdminUser || len(password) < 16 {
		t.Fatalf("Start = %q, %q, (%d-byte password)", addr, user, len(password))
	}
}
