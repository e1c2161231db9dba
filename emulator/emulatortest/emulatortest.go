// Package emulatortest starts Key Vault emulators for tests, the way net/http/httptest starts
// servers: on a free loopback port, stopped when the test ends.
//
// Every emulator started here shares one CA and one token-signing key (KeyDir) for the whole test
// binary. azidentity caches managed-identity tokens process-wide per resource, and emulators on
// reused ports would otherwise reject a cached token signed by an earlier emulator.
package emulatortest

import (
	"os"
	"sync"
	"testing"

	"github.com/kvrotator/kvrotator/emulator"
)

var (
	keyDirOnce sync.Once
	keyDir     string
)

// KeyDir is the key directory shared by this test binary's emulators (a temporary directory).
func KeyDir() string {
	keyDirOnce.Do(func() {
		d, err := os.MkdirTemp("", "kvrotator-emulator-keys-")
		if err != nil {
			panic(err)
		}
		keyDir = d
		// Create the CA and the keys now, once: emulators started in parallel would otherwise race
		// to create them in the shared directory.
		srv, err := emulator.New(emulator.Config{Addr: "127.0.0.1:0", KeyDir: d, Vaults: []emulator.VaultConfig{{Name: "warmup"}}})
		if err != nil {
			panic(err)
		}
		_ = srv.Close()
	})
	return keyDir
}

// Start runs an emulator for the test's lifetime. The configuration starts as one vault "myvault" on
// 127.0.0.1:0 with the shared KeyDir; mutate changes it (a mutate that clears KeyDir gets keys of
// its own, e.g. to test forged tokens).
func Start(t testing.TB, mutate func(*emulator.Config)) *emulator.Server {
	t.Helper()
	cfg := emulator.Config{Addr: "127.0.0.1:0", KeyDir: KeyDir(), Vaults: []emulator.VaultConfig{{Name: "myvault"}}}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("emulator Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}
