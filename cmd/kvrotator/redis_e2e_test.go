package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/redistest"
)

// TestE2ERedisThroughTheHandler: the built binary rotates a Redis ACL user pair over verified TLS with
// a client certificate (KVROTATOR_REDIS_CA_FILE, _CLIENT_CERT_FILE, _CLIENT_KEY_FILE): the vault's
// latest version logs in, the previous user still does, and no password reaches the handler's logs.
func TestE2ERedisThroughTheHandler(t *testing.T) {
	srv := redistest.StartServer(t, &redistest.Options{ClientCerts: true, ACLFile: true})
	rules := []any{"~cache:*", "+@read", "+@write", "+@connection"}
	srv.Do(t, append([]any{"ACL", "SETUSER", "cache_a", "reset", "on", ">e2e-initial-cache-a"}, rules...)...)
	srv.Do(t, append([]any{"ACL", "SETUSER", "cache_b", "reset", "on", ">e2e-initial-cache-b"}, rules...)...)
	srv.Do(t, "ACL", "SETUSER", "cache_rot", "reset", "on", ">e2e-initial-rotator-pw", "+acl|getuser", "+acl|setuser", "+acl|save", "+client|list")
	srv.Do(t, "ACL", "SAVE")

	dir := t.TempDir()
	binds := filepath.Join(dir, "bindings.json")
	if err := os.WriteFile(binds, fmt.Appendf(nil, `{"bindings":[{"name":"cache","secrets":["%s/cache-*"],"provider":"redis",
		"allow":{"server":[%q],"login":["cache_a","cache_b","cache_rot"],"secret":["cache-admin"]}}]}`, timingVault, srv.Addr), 0o644); err != nil {
		t.Fatal(err)
	}
	x := startTimingE2E(t, "KVROTATOR_BINDINGS="+binds, "KVROTATOR_REDIS_CA_FILE="+srv.CAFile,
		"KVROTATOR_REDIS_CLIENT_CERT_FILE="+srv.ClientCertFile, "KVROTATOR_REDIS_CLIENT_KEY_FILE="+srv.ClientKeyFile)
	x.seed("cache-admin", "e2e-initial-rotator-pw", 365*24*time.Hour, nil)
	x.seed("cache-password", "e2e-initial-cache-a", 5*24*time.Hour, map[string]string{"rotation-provider": "redis",
		"ProviderAddress": "rediss://" + srv.Addr, "redis-users": "cache_a,cache_b", "CredentialId": "cache_a",
		"redis-admin-user": "cache_rot", "redis-admin-secret": "cache-admin"})

	x.sweep()
	value, id := x.latest("cache-password")
	if id != "cache_b" || value == "e2e-initial-cache-a" {
		t.Fatalf("after the sweep the vault names %s\n%s", id, x.host.Output())
	}
	x.values = append(x.values, value)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for user, pw := range map[string]string{"cache_b": value, "cache_a": "e2e-initial-cache-a"} {
		c := srv.Client(user, pw)
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("%s cannot log in after the rotation: %v", user, err)
		}
		_ = c.Close()
	}
	if out := x.host.Output(); strings.Contains(out, "e2e-initial-rotator-pw") || strings.Contains(out, value) {
		t.Fatal("a password appears in the handler's logs")
	}
}
