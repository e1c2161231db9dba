// Package testca is a throwaway certificate authority for tests that start real servers over TLS
// (internal/pgtest, internal/mysqltest, internal/redistest): server and client certificates made with
// crypto/x509, no openssl needed.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// DefaultCertHosts are the names a server certificate is valid for unless Options.CertHosts says
// otherwise: the loopback addresses the servers listen on, and localhost.
var DefaultCertHosts = []string{"127.0.0.1", "::1", "localhost"}

// CA is a throwaway certificate authority made with crypto/x509 (no openssl needed). Servers started
// with it present a certificate it signed; clients trust it through CertFile, as a client's CA file.
// A test that needs a second, untrusted authority simply makes another CA.
type CA struct {
	// CertFile is the CA's certificate (PEM): what a client trusts (KVROTATOR_POSTGRES_CA_FILE, KVROTATOR_MYSQL_CA_FILE, KVROTATOR_REDIS_CA_FILE).
	CertFile string
	// CertPEM is the same certificate.
	CertPEM []byte

	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// New makes a CA for the test; its certificate file is removed when the test ends.
func New(t testing.TB) *CA {
	t.Helper()
	ca, err := NewIn(t.TempDir())
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	return ca
}

// NewIn makes a CA whose certificate file is written in dir.
func NewIn(dir string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "testca CA " + randomHex(4)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	ca := &CA{CertFile: filepath.Join(dir, "ca.crt"), CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		cert: cert, key: key}
	if err := os.WriteFile(ca.CertFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// Pool is a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue makes a server certificate signed by the CA, valid for hosts (IP addresses and DNS names;
// DefaultCertHosts when none), and returns it and its private key, PEM-encoded.
func (ca *CA) Issue(hosts ...string) (certPEM, keyPEM []byte, err error) {
	if len(hosts) == 0 {
		hosts = DefaultCertHosts
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// IssueClient makes a client certificate signed by the CA for the common name cn (ExtKeyUsage
// ClientAuth), PEM-encoded: what a client presents to a server started with Options.ClientCerts.
func (ca *CA) IssueClient(cn string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// ClientCertFiles writes a client certificate for cn and its key into dir and returns their paths.
func (ca *CA) ClientCertFiles(t testing.TB, cn string) (certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueClient(cn)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatalf("testca: %v", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatalf("testca: %v", err)
	}
	return certFile, keyFile
}

// ServerTLS is a server-side TLS configuration presenting a certificate the CA issued for hosts
// (DefaultCertHosts when none): for fake servers that must look like a trusted Redis server.
func (ca *CA) ServerTLS(t testing.TB, hosts ...string) *tls.Config {
	t.Helper()
	certPEM, keyPEM, err := ca.Issue(hosts...)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("testca: %v", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("testca: random serial: %v", err))
	}
	return n.Add(n, big.NewInt(1))
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("testca: random: %v", err))
	}
	return fmt.Sprintf("%x", b)
}

// VerifyChain checks that the certificate a server presented chains to roots, for any name: what a
// client that verifies the CA but not the host name does.
func VerifyChain(cs tls.ConnectionState, roots *x509.CertPool) ([][]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	return cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
}
