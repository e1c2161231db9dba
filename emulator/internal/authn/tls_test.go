package authn

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if c.Subject.CommonName != CACommonName || !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("CA subject %q, IsCA %v", c.Subject.CommonName, c.IsCA)
	}
	if c.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("CA key algorithm %v, want ECDSA", c.PublicKeyAlgorithm)
	}
	if d := time.Until(c.NotAfter); d < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v, want ~10 years", d)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA lacks the cert-sign key usage")
	}
	if !strings.HasPrefix(string(ca.CertPEM), "-----BEGIN CERTIFICATE-----") {
		t.Error("CertPEM is not a PEM certificate")
	}
}

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	a, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	for file, mode := range map[string]os.FileMode{CACertFile: 0o644, CAKeyFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode = %v, want %v", file, st.Mode().Perm(), mode)
		}
	}
	b, err := LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Cert.Equal(b.Cert) || string(a.CertPEM) != string(b.CertPEM) {
		t.Error("second LoadOrCreateCA returned a different certificate")
	}
	if pub, ok := b.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(a.Key.Public()) {
		t.Error("second LoadOrCreateCA returned a different key")
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want 2", len(entries))
	}
	// A leaf from the reloaded CA is trusted by the first one's pool.
	cfg, err := b.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Certificates[0].Leaf.Verify(x509.VerifyOptions{Roots: a.CertPool(), DNSName: "myvault.localhost"}); err != nil {
		t.Error(err)
	}

	mem, err := LoadOrCreateCA("")
	if err != nil {
		t.Fatal(err)
	}
	if mem.Cert.Equal(a.Cert) {
		t.Error("in-memory CA reused the stored one")
	}

	// Half a pair, or a mismatched pair, is an error.
	half := t.TempDir()
	if err := a.WritePEM(filepath.Join(half, CACertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(half); err == nil {
		t.Error("certificate without key: no error")
	}
	other, _ := NewCA()
	otherKey, _ := encodePrivateKey(other.Key)
	if err := os.WriteFile(filepath.Join(half, CAKeyFile), otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(half); err == nil {
		t.Error("mismatched key: no error")
	}
}

func TestWritePEM(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.crt")
	if err := sharedCA.WritePEM(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(sharedCA.CertPEM) {
		t.Error("file content differs from CertPEM")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", st.Mode().Perm())
	}
	// Overwrite works (atomic replace).
	if err := sharedCA.WritePEM(path); err != nil {
		t.Fatal(err)
	}
}

func TestServerTLSConfig(t *testing.T) {
	cfg, err := sharedCA.ServerTLSConfig("kv.example.test", "*.vault.azure.net", "10.1.2.3", "[fd00::1]:8443", "host.internal:9443", "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x", cfg.MinVersion)
	}
	if strings.Join(cfg.NextProtos, ",") != "h2,http/1.1" {
		t.Errorf("NextProtos = %v", cfg.NextProtos)
	}
	leaf := cfg.Certificates[0].Leaf
	pool := sharedCA.CertPool()
	for _, name := range []string{"localhost", "myvault.localhost", "kv.example.test", "myvault.vault.azure.net", "host.internal"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.1.2.3", "fd00::1"} {
		if err := leaf.VerifyHostname(ip); err != nil {
			t.Errorf("verify %s: %v", ip, err)
		}
	}
	for _, name := range []string{"a.b.localhost", "example.com", "10.1.2.4"} {
		if err := leaf.VerifyHostname(name); err == nil {
			t.Errorf("%s unexpectedly matches", name)
		}
	}
	if leaf.NotAfter.After(sharedCA.Cert.NotAfter) {
		t.Error("leaf outlives the CA")
	}
	for _, bad := range []string{"bad host", "*", "a..b", "foo.*.com", "-x.localhost"} {
		if _, err := sharedCA.ServerTLSConfig(bad); err == nil {
			t.Errorf("ServerTLSConfig(%q): no error", bad)
		}
	}
	// One leaf per call, shared by every handshake.
	cfg2, _ := sharedCA.ServerTLSConfig()
	if cfg2.Certificates[0].Leaf.Equal(leaf) {
		t.Error("two calls returned the same leaf")
	}
}

func TestNewClientLocalhost(t *testing.T) {
	var gotHost, gotProto string
	srv := newTLSServer(t, sharedCA, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotProto = r.Host, r.Proto
		_, _ = io.WriteString(w, "hello")
	}))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	client := NewClient(sharedCA.CertPool())
	defer client.CloseIdleConnections()
	for _, host := range []string{"myvault.localhost", "MyVault.LocalHost", "localhost", "127.0.0.1"} {
		u := "https://" + net.JoinHostPort(host, port) + "/x"
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(body) != "hello" || !strings.EqualFold(gotHost, net.JoinHostPort(host, port)) {
			t.Errorf("GET %s: body %q, server saw host %q", u, body, gotHost)
		}
		if resp.ProtoMajor != 2 || gotProto != "HTTP/2.0" {
			t.Errorf("GET %s: protocol %s / %s, want HTTP/2", u, resp.Proto, gotProto)
		}
	}

	// Without the CA the same request fails certificate verification.
	untrusting := NewClient(nil)
	defer untrusting.CloseIdleConnections()
	_, err := untrusting.Get("https://myvault.localhost:" + port + "/x")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("client without the CA: err = %v, want x509.UnknownAuthorityError", err)
	}

	// A name outside the certificate fails hostname verification even though it is dialled locally.
	other := NewClient(sharedCA.CertPool())
	defer other.CloseIdleConnections()
	if _, err := other.Get("https://a.b.localhost:" + port + "/x"); err == nil {
		t.Error("a.b.localhost (not in the certificate) was accepted")
	}
}

func TestIsLocalhostName(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "myvault.localhost": true, "a.b.localhost.": true,
		"localhost.example": false, "notlocalhost": false, "127.0.0.1": false, "": false,
	} {
		if got := isLocalhostName(host); got != want {
			t.Errorf("isLocalhostName(%q) = %v, want %v", host, got, want)
		}
	}
}
