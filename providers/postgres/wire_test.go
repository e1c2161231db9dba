package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/pgtest"
)

// wireConfig is the config of a connection to srv's database with sslmode.
func wireConfig(t *testing.T, srv *pgtest.Server, sslMode string) config {
	t.Helper()
	host, port, _ := strings.Cut(srv.Addr, ":")
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return config{host: host, port: p, database: pgtest.Database, sslMode: sslMode}
}

// The client against a real server: SCRAM-SHA-256-PLUS over TLS (channel binding), plain
// SCRAM-SHA-256 without it, text results, NULLs, several statements at once, the server's errors with
// their SQLSTATE (the connection still usable after them), array parameters, and a context that ends
// in the middle of a query.
func TestWireClient(t *testing.T) {
	t.Parallel()
	tlsSrv := pgtest.StartServer(t, &pgtest.Options{TLS: true})
	plain := pgtest.StartServer(t, nil)
	for _, tc := range []struct {
		srv       *pgtest.Server
		sslMode   string
		caFile    string
		mechanism string
	}{
		{tlsSrv, SSLVerifyFull, tlsSrv.CAFile, scramPlusMechanism},
		{tlsSrv, SSLVerifyCA, tlsSrv.CAFile, scramPlusMechanism},
		{plain, SSLDisable, "", scramMechanism},
	} {
		t.Run(tc.sslMode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			conn, err := connect(ctx, wireConfig(t, tc.srv, tc.sslMode), tc.caFile, tc.srv.AdminUser, tc.srv.AdminPassword)
			if err != nil {
				t.Fatal(err)
			}
			defer closeConn(ctx, conn)
			if conn.mechanism != tc.mechanism {
				t.Errorf("logged in with %s, want %s", conn.mechanism, tc.mechanism)
			}

			row, err := queryRow(ctx, conn, 3, "SELECT current_user, $1::int + 1, $2", "41", `it's "quoted" \ too`)
			if err != nil || row[0] != tc.srv.AdminUser || row[1] != "42" || row[2] != `it's "quoted" \ too` {
				t.Fatalf("row %q, %v", row, err)
			}
			items := []string{"a", `b"c`, `d\e`, "f,g", "{h}", "", "NULL", "é"}
			rows, err := conn.query(ctx, "SELECT x FROM unnest($1::text[]) WITH ORDINALITY AS u(x, n) ORDER BY n", []uint32{oidTextArray}, textArray(items))
			if err != nil || len(rows) != len(items) {
				t.Fatalf("%d rows, %v", len(rows), err)
			}
			for i, r := range rows {
				if r[0] == nil || *r[0] != items[i] {
					t.Fatalf("item %d: %v, want %q", i, r[0], items[i])
				}
			}
			rows, err = conn.query(ctx, "SELECT NULL::text, 't'::bool", nil)
			if err != nil || len(rows) != 1 || rows[0][0] != nil || rows[0][1] == nil || *rows[0][1] != "t" {
				t.Fatalf("NULL row: %v %v", rows, err)
			}
			res, err := conn.exec(ctx, "SELECT 1; SELECT 2, 3; CREATE TEMP TABLE wire_t (i int)")
			if err != nil || len(res) != 3 || *res[1].rows[0][1] != "3" || res[2].tag != "CREATE TABLE" {
				t.Fatalf("several statements: %+v %v", res, err)
			}

			_, err = conn.exec(ctx, "SELECT 1/0")
			var pe *pgError
			if !errors.As(err, &pe) || pe.Code != "22012" || !strings.Contains(err.Error(), "(SQLSTATE 22012)") {
				t.Fatalf("division by zero: %v", err)
			}
			if _, err := conn.query(ctx, "SELECT * FROM no_such_table", nil); !errors.As(err, &pe) || pe.Code != "42P01" {
				t.Fatalf("a missing table: %v", err)
			}
			if _, err := queryRow(ctx, conn, 1, "SELECT 1"); err != nil {
				t.Fatalf("after the errors: %v", err)
			}

			short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancelShort()
			c2, err := connect(short, wireConfig(t, tc.srv, tc.sslMode), tc.caFile, tc.srv.AdminUser, tc.srv.AdminPassword)
			if err != nil {
				t.Fatal(err)
			}
			defer closeConn(ctx, c2)
			start := time.Now()
			_, err = c2.exec(short, "SELECT pg_sleep(30)")
			if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 10*time.Second {
				t.Fatalf("a query past the context's deadline: %v after %v", err, time.Since(start))
			}
		})
	}
}

// Non-ASCII passwords that the server prepared with its own SASLprep when it stored them (CREATE ROLE
// … PASSWORD 'plain text'): the client prepares them the same way, including the cases where
// PostgreSQL falls back to the raw password.
func TestNonASCIIPasswords(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t, &pgtest.Options{TLS: true})
	admin := srv.Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, pw := range []string{
		"p\u00e4ssw\u00f6rd",                         // NFKC leaves it
		"pa\u0308ssword",                             // composed by NFKC
		"\ufb01sh-\u2168-\u00aa",                     // compatibility characters
		"a\u00a0b\u00adc\u3000d",                     // spaces mapped, soft hyphen dropped
		"\u0627\u0644\u0639\u0631\u0628\u064a\u0629", // right-to-left
		"ab\u0007\u00e9",                             // a prohibited control: raw
		"\U0001F600\u00e9\ufb01",                     // unassigned in Unicode 3.2: raw
		"\u0627a\ufb01",                              // bidirectional rule broken: raw
	} {
		role := "nonascii_" + strconv.Itoa(i)
		if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+pw+"'"); err != nil {
			t.Fatal(err)
		}
		conn, err := connect(ctx, wireConfig(t, srv, SSLVerifyFull), srv.CAFile, role, pw)
		if err != nil {
			t.Errorf("case %d (role %s): %v", i, role, err) // the case, not the password
			continue
		}
		closeConn(ctx, conn)
		if pw != saslprep(pw) {
			// The other form must not log in: the test tells the two apart.
			if conn, err := connect(ctx, wireConfig(t, srv, SSLVerifyFull), srv.CAFile, role, saslprep(pw)+"x"); err == nil {
				closeConn(ctx, conn)
				t.Errorf("case %d (role %s): a wrong password logged in", i, role)
			}
		}
	}
}
