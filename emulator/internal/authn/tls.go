package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CACommonName is the subject common name of certificate authorities made by NewCA.
const CACommonName = "kvrotator Key Vault emulator CA"

// File names used by LoadOrCreateCA and LoadOrCreateIssuer inside their directory.
const (
	CACertFile   = "ca.pem"
	CAKeyFile    = "ca-key.pem"
	TokenKeyFile = "token-key.pem"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 397 * 24 * time.Hour
	backdate     = time.Hour // certificates start an hour early to absorb clock skew
)

// CA is the emulator's local certificate authority. It signs the server certificate; clients trust
// CertPEM (through SSL_CERT_FILE or an *http.Client from NewClient).
type CA struct {
	// Cert is the self-signed CA certificate.
	Cert *x509.Certificate
	// Key is the CA's private key.
	Key crypto.Signer
	// CertPEM is Cert in PEM form, ready for a trust store or SSL_CERT_FILE.
	CertPEM []byte
}

// NewCA creates a self-signed ECDSA P-256 certificate authority, valid for ten years, with the common
// name CACommonName. It is kept in memory only; see LoadOrCreateCA to persist one.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CACommonName, Organization: []string{"kvrotator"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// LoadOrCreateCA returns the CA kept in dir: it loads dir/ca.pem and dir/ca-key.pem, or, when neither
// exists, creates a CA with NewCA and writes both files atomically (the key with mode 0600), creating
// dir (mode 0700) if needed. Only one of the two files existing is an error, as is a key that does not
// match the certificate. An empty dir means an in-memory CA (NewCA).
func LoadOrCreateCA(dir string) (*CA, error) {
	if dir == "" {
		return NewCA()
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certOK, err := exists(certPath)
	if err != nil {
		return nil, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return nil, err
	}
	switch {
	case certOK && keyOK:
		return loadCA(certPath, keyPath)
	case certOK:
		return nil, fmt.Errorf("%s exists but %s does not: restore the key or remove the certificate", certPath, keyPath)
	case keyOK:
		return nil, fmt.Errorf("%s exists but %s does not: restore the certificate or remove the key", keyPath, certPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := NewCA()
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodePrivateKey(ca.Key)
	if err != nil {
		return nil, err
	}
	// The key goes first: a crash in between leaves a key without a certificate, reported on the next
	// start, never a certificate whose key is lost.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := ca.WritePEM(certPath); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return ca, nil
}

// loadCA reads a CA certificate and its key and checks they belong together.
func loadCA(certPath, keyPath string) (*CA, error) {
	cb, err := readPEMBlock(certPath, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s: not a CA certificate", certPath)
	}
	kb, err := readPEMBlock(keyPath, "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	key, err := parsePrivateKey(kb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not match the certificate in %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})}, nil
}

// WritePEM writes the CA certificate (CertPEM) to path atomically with mode 0644, for SSL_CERT_FILE or
// an operating-system trust store.
func (ca *CA) WritePEM(path string) error {
	return writeFileAtomic(path, ca.CertPEM, 0o644)
}

// CertPool returns a new pool holding only the CA certificate.
func (ca *CA) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	return pool
}

// ServerTLSConfig returns a server TLS configuration with a fresh ECDSA P-256 leaf certificate signed
// by the CA. The leaf is made once per call and serves every handshake. Its subject alternative names
// are 127.0.0.1, ::1, localhost and *.localhost plus extraHosts: IP addresses or DNS names, wildcards
// such as "*.vault.azure.net" allowed, an optional ":port" ignored, empty entries skipped. The leaf is
// valid for 397 days (never past the CA). TLS 1.2 is the minimum; ALPN offers h2 and http/1.1.
func (ca *CA) ServerTLSConfig(extraHosts ...string) (*tls.Config, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kvrotator Key Vault emulator", Organization: []string{"kvrotator"}},
		DNSNames:    []string{"localhost", "*.localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range extraHosts {
		if err := addSAN(tmpl, h); err != nil {
			return nil, err
		}
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	now := time.Now()
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(leafValidity)
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	if !tmpl.NotAfter.After(now) {
		return nil, fmt.Errorf("the CA certificate expired on %s: remove %s and %s to create a new one", ca.Cert.NotAfter.Format(time.RFC3339), CACertFile, CAKeyFile)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate server key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse server certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}},
	}, nil
}

// addSAN adds host (an IP address or a DNS name, optionally with a port) to the certificate's
// subject alternative names, skipping duplicates.
func addSAN(tmpl *x509.Certificate, host string) error {
	h := strings.TrimSpace(host)
	if h == "" {
		return nil
	}
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	if ip := net.ParseIP(h); ip != nil {
		if v4 := ip.To4(); v4 != nil {
			ip = v4
		}
		for _, have := range tmpl.IPAddresses {
			if have.Equal(ip) {
				return nil
			}
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		return nil
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if !validDNSName(h) {
		return fmt.Errorf("invalid host name %q for the server certificate", host)
	}
	for _, have := range tmpl.DNSNames {
		if have == h {
			return nil
		}
	}
	tmpl.DNSNames = append(tmpl.DNSNames, h)
	return nil
}

// validDNSName accepts lower-case host names made of letters, digits, '-' and '_', whose first label
// may be the wildcard "*".
func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i, label := range strings.Split(h, ".") {
		if label == "*" && i == 0 && strings.Contains(h, ".") {
			continue
		}
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// randomSerial returns a random positive 128-bit certificate serial number.
func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	if serial.Sign() == 0 {
		return nil, errors.New("certificate serial: zero")
	}
	return serial, nil
}

// NewClient returns an *http.Client for the emulator, suitable as azcore ClientOptions.Transport:
//
//   - it trusts pool (nil: the system roots) and requires TLS 1.2 or later;
//   - it dials "localhost" and every "NAME.localhost" on 127.0.0.1, same port, because Go does not
//     resolve *.localhost to loopback on Linux; TLS still verifies the requested name;
//   - it never sends those hosts through a proxy (other hosts follow HTTP(S)_PROXY / NO_PROXY);
//   - it speaks HTTP/2 when the server offers it, with connect, TLS-handshake, response-header and
//     idle-connection timeouts but no overall request timeout (callers use contexts).
func NewClient(pool *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy: func(r *http.Request) (*url.URL, error) {
			if isLocalhostName(r.URL.Hostname()) {
				return nil, nil
			}
			return http.ProxyFromEnvironment(r)
		},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil && isLocalhostName(host) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: t}
}

// isLocalhostName reports whether host is "localhost" or a name under ".localhost" (RFC 6761).
func isLocalhostName(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}
