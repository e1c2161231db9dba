package emulator_test

import (
	"crypto/tls"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
)

// TestEmulatorCertificateNamesEveryVault: each vault's NAME.localhost is a SAN of its own, not only
// covered by *.localhost, which Node.js refuses. That includes vaults found in the data directory
// and vaults on a dedicated listener.
func TestEmulatorCertificateNamesEveryVault(t *testing.T) {
	dir := t.TempDir()
	first := start(t, func(c *emulator.Config) {
		c.DataDir = dir
		c.Vaults = []emulator.VaultConfig{{Name: "stored-vault"}}
	})
	if _, err := newClient(t, first, "stored-vault").SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()

	srv := start(t, func(c *emulator.Config) {
		c.DataDir = dir
		c.Vaults = []emulator.VaultConfig{{Name: "myvault"}, {Name: "App-Secrets"}, {Name: "port-vault", Addr: "127.0.0.1:0"}}
	})
	want := []string{"app-secrets.localhost", "myvault.localhost", "port-vault.localhost", "stored-vault.localhost"}
	if got := srv.Vaults(); len(got) != len(want) {
		t.Fatalf("vaults %v", got)
	}
	for _, base := range []string{srv.URL(), srv.VaultAddrURL("port-vault")} {
		u, _ := url.Parse(base)
		for _, name := range want {
			conn, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: srv.CertPool(), ServerName: name})
			if err != nil {
				t.Fatalf("handshake with ServerName %s on %s: %v", name, u.Host, err)
			}
			leaf := conn.ConnectionState().PeerCertificates[0]
			_ = conn.Close()
			if err := leaf.VerifyHostname(name); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if !slices.Contains(leaf.DNSNames, name) {
				t.Errorf("certificate on %s lacks the SAN %s itself (has %s)", u.Host, name, strings.Join(leaf.DNSNames, ", "))
			}
		}
	}
}
