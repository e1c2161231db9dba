package postgres

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/pgtest"
)

// A server whose pg_hba.conf line also requires a client certificate (clientcert=verify-ca): libpq's
// PGSSLCERT and PGSSLKEY give one, a legacy-encrypted key with PGSSLPASSWORD; without them the server
// refuses the login.
func TestClientCertificates(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t, &pgtest.Options{TLS: true})
	caPEM, certPEM, keyPEM, encKeyPEM := clientPKI(t, "certuser")
	if err := os.WriteFile(filepath.Join(srv.Dir, "data", "client-ca.pem"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	admin := srv.Admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range []string{"ALTER SYSTEM SET ssl_ca_file = 'client-ca.pem'", "CREATE ROLE certuser LOGIN PASSWORD 'cert-user-pw'"} {
		if _, err := admin.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	srv.PrependHBA(t, "hostssl all certuser 127.0.0.1/32 scram-sha-256 clientcert=verify-ca")

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile, encKeyFile := write("client.crt", certPEM), write("client.key", keyPEM), write("client-enc.key", encKeyPEM)
	cfg := wireConfig(t, srv, SSLVerifyFull)
	login := func(env map[string]string) error {
		tlsConfig, err := clientTLS(cfg, srv.CAFile, func(k string) string { return env[k] })
		if err != nil {
			return &setupError{err}
		}
		conn, err := dialPG(ctx, srv.Addr, tlsConfig, ConnectTimeout, "certuser", cfg.database, "cert-user-pw")
		if err != nil {
			return err
		}
		closeConn(ctx, conn)
		return nil
	}

	var pe *pgError
	if err := login(nil); !errors.As(err, &pe) || pe.Code != "28000" {
		t.Fatalf("without a client certificate: %v, want the server's refusal (28000)", err)
	}
	if err := login(map[string]string{"PGSSLCERT": certFile, "PGSSLKEY": keyFile}); err != nil {
		t.Fatalf("PGSSLCERT and PGSSLKEY: %v", err)
	}
	if err := login(map[string]string{"PGSSLCERT": certFile, "PGSSLKEY": encKeyFile, "PGSSLPASSWORD": "key-pass"}); err != nil {
		t.Fatalf("an encrypted key with PGSSLPASSWORD: %v", err)
	}
	if err := login(map[string]string{"PGSSLCERT": certFile, "PGSSLKEY": keyFile, "PGSSLCERTMODE": "disable"}); !errors.As(err, &pe) || pe.Code != "28000" {
		t.Fatalf("PGSSLCERTMODE=disable: %v, want the server's refusal", err)
	}
	var setup *setupError
	for name, env := range map[string]map[string]string{
		"PGSSLCERT alone":               {"PGSSLCERT": certFile},
		"PGSSLKEY alone":                {"PGSSLKEY": keyFile},
		"a missing key file":            {"PGSSLCERT": certFile, "PGSSLKEY": filepath.Join(dir, "missing.key")},
		"no PGSSLPASSWORD":              {"PGSSLCERT": certFile, "PGSSLKEY": encKeyFile},
		"a wrong PGSSLPASSWORD":         {"PGSSLCERT": certFile, "PGSSLKEY": encKeyFile, "PGSSLPASSWORD": "wrong"},
		"a key for another certificate": {"PGSSLCERT": certFile, "PGSSLKEY": write("other.key", pemKey(t))},
	} {
		err := login(env)
		if !errors.As(err, &setup) || strings.Contains(err.Error(), "key-pass") {
			t.Errorf("%s: %v, want a settings error", name, err)
		}
	}
}

// PGSSLROOTCERT=system trusts the system's roots and verifies the name, as libpq does; PGSSLSNI=0
// leaves SNI out for a host name; verify-ca needs the operator's CA.
func TestClientTLSFromTheEnvironment(t *testing.T) {
	c := config{host: "db.example.com", port: 5432, database: "postgres", sslMode: SSLVerifyCA}
	cfg, err := clientTLS(c, "", func(k string) string { return map[string]string{"PGSSLROOTCERT": "system"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.InsecureSkipVerify || cfg.ServerName != "db.example.com" || cfg.RootCAs == nil {
		t.Fatalf("sslrootcert=system: %+v, want verify-full with the system's roots", cfg)
	}
	cfg, err = clientTLS(c, pgtest.NewCA(t).CertFile, func(k string) string { return map[string]string{"PGSSLSNI": "0"}[k] })
	if err != nil || cfg.ServerName != "" || !cfg.InsecureSkipVerify || cfg.VerifyPeerCertificate == nil {
		t.Fatalf("verify-ca without SNI: %+v %v", cfg, err)
	}
	// verify-ca against the system's roots would take any publicly issued certificate: refused.
	if _, err := clientTLS(c, "", func(string) string { return "" }); err == nil {
		t.Fatal("verify-ca without the operator's CA file was accepted")
	}
	c.sslMode = SSLVerifyFull
	if cfg, err := clientTLS(c, "", func(string) string { return "" }); err != nil || cfg.ServerName != "db.example.com" || cfg.InsecureSkipVerify {
		t.Fatalf("verify-full: %+v %v", cfg, err)
	}
	if _, err := clientTLS(c, filepath.Join(t.TempDir(), "missing.pem"), func(string) string { return "" }); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

// clientPKI makes a CA and a client certificate for cn with an RSA key, plain and encrypted (legacy
// PEM encryption, password key-pass).
func clientPKI(t *testing.T, cn string) (caPEM, certPEM, keyPEM, encKeyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the legacy encryption is what PGSSLPASSWORD decrypts
	enc, err := x509.EncryptPEMBlock(rand.Reader, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key), []byte("key-pass"), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		pem.EncodeToMemory(enc)
}

func pemKey(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}
