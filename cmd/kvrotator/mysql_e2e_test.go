package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/mysqltest"
)

// TestE2EMySQLThroughTheHandler: the built binary rotates a MariaDB login pair (the mysql provider,
// verify-full TLS against the server's CA from KVROTATOR_MYSQL_CA_FILE) on a sweep, then on a
// near-expiry event: each time the vault's latest version logs in, the previous login still works, and
// the logins alternate.
func TestE2EMySQLThroughTheHandler(t *testing.T) {
	srv := mysqltest.StartServer(t, nil)
	srv.Exec(t,
		"CREATE DATABASE orders",
		"CREATE USER orders_a@'%' IDENTIFIED BY 'e2e-initial-orders-a'",
		"CREATE USER orders_b@'%' IDENTIFIED BY 'e2e-initial-orders-b'",
		"GRANT SELECT ON orders.* TO orders_a@'%', orders_b@'%'",
		"CREATE USER orders_rot@'%' IDENTIFIED BY 'e2e-initial-rotator-pw'",
		"GRANT CREATE USER, PROCESS ON *.* TO orders_rot@'%'",
		"GRANT SELECT ON mysql.global_priv TO orders_rot@'%'",
	)
	dir := t.TempDir()
	binds := filepath.Join(dir, "bindings.json")
	if err := os.WriteFile(binds, fmt.Appendf(nil, `{"bindings":[{"name":"orders-db","secrets":["%s/orders-db"],"provider":"mysql",
		"allow":{"server":[%q],"login":["orders_a@%%","orders_b@%%","orders_rot"],"secret":["orders-db-admin"]}}]}`,
		timingVault, srv.Addr+"/orders"), 0o644); err != nil {
		t.Fatal(err)
	}
	x := startTimingE2E(t, "KVROTATOR_BINDINGS="+binds, "KVROTATOR_MYSQL_CA_FILE="+srv.CAFile)
	x.seed("orders-db-admin", "e2e-initial-rotator-pw", 365*24*time.Hour, nil)
	v1 := x.seed("orders-db", "e2e-initial-orders-a", 5*24*time.Hour, map[string]string{"rotation-provider": "mysql",
		"ProviderAddress": srv.Addr + "/orders", "mysql-users": "orders_a,orders_b", "CredentialId": "orders_a",
		"mysql-admin-user": "orders_rot", "mysql-admin-secret": "orders-db-admin"})
	logsIn := func(user, password, when string) {
		t.Helper()
		db := srv.Open(t, user, password, "orders")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var one int
		if err := db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("%s: %s cannot log in: %v", when, user, err)
		}
		_ = db.Close()
	}
	x.sweep()
	value, id := x.latest("orders-db")
	if id != "orders_b" || value == "e2e-initial-orders-a" {
		t.Fatalf("after the sweep the vault names %s\n%s", id, x.host.Output())
	}
	x.values = append(x.values, value)
	logsIn("orders_b", value, "after the sweep")
	logsIn("orders_a", "e2e-initial-orders-a", "the previous login after the sweep")

	// A near-expiry event for a version that is no longer the latest changes nothing.
	if r := x.invoke("KeyVaultEvents", eventEnvelopeFor(timingVault, "orders-db", v1)); !r.OK() || len(x.versions("orders-db")) != 2 {
		t.Fatalf("stale event: %+v", r)
	}
	out := x.host.Output()
	for _, s := range []string{"e2e-initial-orders-a", "e2e-initial-rotator-pw", value} {
		if strings.Contains(out, s) {
			t.Fatal("a password appears in the handler's logs")
		}
	}
}
