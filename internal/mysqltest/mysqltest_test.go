package mysqltest_test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/kvrotator/kvrotator/internal/mysqltest"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func connect(t *testing.T, c *mysql.Config) (*sql.Conn, error) {
	t.Helper()
	conn, err := mysql.NewConnector(c)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	t.Cleanup(func() { _ = db.Close() })
	return db.Conn(ctx(t))
}

func TestStartServesTLSOnlyAndStops(t *testing.T) {
	t.Parallel()
	s := mysqltest.StartServer(t, &mysqltest.Options{Settings: map[string]string{"general_log": "ON", "general_log_file": "general.log"}})
	if !strings.Contains(s.Version, "MariaDB") || s.CAFile == "" {
		t.Fatalf("version %q, CA file %q", s.Version, s.CAFile)
	}
	c, err := connect(t, s.Config(s.AdminUser, s.AdminPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	var cipher, name, value string
	if err := c.QueryRowContext(ctx(t), "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &cipher); err != nil || cipher == "" {
		t.Fatalf("Ssl_cipher %q (%v): the administrator's connection is not TLS", cipher, err)
	}
	if err := c.QueryRowContext(ctx(t), "SHOW GLOBAL VARIABLES LIKE 'require_secure_transport'").Scan(&name, &value); err != nil || value != "ON" {
		t.Fatalf("require_secure_transport %q (%v)", value, err)
	}
	// root is reachable only through the socket (unix_socket): not over TCP, with any password.
	if c, err := connect(t, s.Config("root", "", "")); err == nil {
		c.Close()
		t.Fatal("root logged in over TCP without a password")
	}
	// A wrong password is error 1045.
	_, err = connect(t, s.Config(s.AdminUser, "wrong", ""))
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("a wrong password: %v, want error 1045", err)
	}
	// Plain text is refused by the server.
	plain := s.Config(s.AdminUser, s.AdminPassword, "")
	plain.TLS = nil
	if c, err := connect(t, plain); err == nil {
		c.Close()
		t.Fatal("a plain-text connection was accepted by a TLS-only server")
	}
	// Another CA does not verify the certificate.
	other := s.Config(s.AdminUser, s.AdminPassword, "")
	other.TLS = &tls.Config{RootCAs: mysqltest.NewCA(t).Pool(), ServerName: s.Host}
	if c, err := connect(t, other); err == nil {
		c.Close()
		t.Fatal("another CA verified the server's certificate")
	}
	c.Close()
	if !strings.Contains(s.Logs(), "SHOW SESSION STATUS LIKE 'Ssl_cipher'") {
		t.Fatal("the general log did not reach Logs")
	}
	if strings.Contains(s.Logs(), s.AdminPassword) {
		t.Fatal("the administrator's password is in a log")
	}

	s.Stop()
	if c, err := connect(t, s.Config(s.AdminUser, s.AdminPassword, "")); err == nil {
		c.Close()
		t.Fatal("the server still answers after Stop")
	}
	s.Stop() // twice is fine
}

func TestNoTLSAndOtherNames(t *testing.T) {
	t.Parallel()
	plain := mysqltest.StartServer(t, &mysqltest.Options{NoTLS: true})
	if plain.CAFile != "" {
		t.Fatal("a NoTLS server has a CA")
	}
	c, err := connect(t, plain.Config(plain.AdminUser, plain.AdminPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	ca := mysqltest.NewCA(t)
	named := mysqltest.StartServer(t, &mysqltest.Options{CA: ca, CertHosts: []string{"db.example.com"}})
	if named.CAFile != ca.CertFile {
		t.Fatal("the server does not expose the shared CA")
	}
	// Config verifies the chain only, as the certificate does not name 127.0.0.1.
	c, err = connect(t, named.Config(named.AdminUser, named.AdminPassword, ""))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	full := named.Config(named.AdminUser, named.AdminPassword, "")
	full.TLS = &tls.Config{RootCAs: ca.Pool(), ServerName: named.Host}
	if c, err := connect(t, full); err == nil {
		c.Close()
		t.Fatal("full verification accepted a certificate for db.example.com at 127.0.0.1")
	}
}
