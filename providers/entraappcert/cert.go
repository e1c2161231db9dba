package entraappcert

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/kvrotator/kvrotator/providers"
)

// maxValueBytes is the most a value may be: a Key Vault secret holds at most 25 KiB.
const maxValueBytes = 25 * 1024

// backdate is how far before now a new certificate becomes valid, for clocks that are behind.
const backdate = 5 * time.Minute

// signer is a certificate with its private key: what a secret's value holds.
type signer struct {
	cert  *x509.Certificate   // the certificate of key
	chain []*x509.Certificate // any other certificates the value holds
	key   *rsa.PrivateKey
}

// thumbprint is the certificate's SHA-1 thumbprint in upper-case hex, as the portal, Windows and
// Graph's customKeyIdentifier show it. Thumbprints are public.
func thumbprint(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// errNotACertificate says what a value must be, without anything of the value.
var errNotACertificate = errors.New("it is not a PEM file or a base64 PKCS #12 archive (without a password) holding an RSA private key and its certificate")

// parseValue reads a value as azidentity.ParseCertificates does — a PEM file with the private key
// (PKCS #8 or PKCS #1) and the certificate, or a PKCS #12 archive without a password, which Key Vault
// stores base64-encoded — and finds the certificate of the RSA private key. Errors never hold
// anything of the value.
func parseValue(v providers.Value) (signer, error) {
	raw := v.Reveal()
	if raw == "" || len(raw) > maxValueBytes {
		return signer{}, errNotACertificate
	}
	data := []byte(raw)
	if !strings.Contains(raw, "-----BEGIN") {
		der, err := base64.StdEncoding.DecodeString(strings.Map(dropSpace, raw))
		if err != nil {
			return signer{}, errNotACertificate
		}
		data = der
	}
	certs, key, err := azidentity.ParseCertificates(data, nil)
	if err != nil {
		return signer{}, errNotACertificate
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return signer{}, errors.New("its private key is not an RSA key: Entra ID certificate credentials (MSAL) sign with RSA only")
	}
	s := signer{key: rsaKey}
	for _, c := range certs {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && s.cert == nil && pub.Equal(&rsaKey.PublicKey) {
			s.cert = c
		} else {
			s.chain = append(s.chain, c)
		}
	}
	if s.cert == nil {
		return signer{}, errors.New("none of its certificates is the certificate of its private key")
	}
	return s, nil
}

func dropSpace(r rune) rune {
	if r == ' ' || r == '\n' || r == '\r' || r == '\t' {
		return -1
	}
	return r
}

// newSigner makes an RSA key of bits and a self-signed certificate for it with subject CN=cn, valid
// from now (less backdate) until notAfter: a client-authentication certificate as Entra ID's
// certificate credentials use them (Entra ID checks no chain, only the registered key).
func newSigner(bits int, cn string, now, notAfter time.Time) (signer, error) {
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return signer{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return signer{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-backdate).UTC().Truncate(time.Second),
		NotAfter:              notAfter.UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return signer{}, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return signer{}, err
	}
	return signer{cert: cert, key: key}, nil
}

// encode writes s as the secret's value in format: a PEM file (the PKCS #8 private key, then the
// certificate, as Key Vault exports application/x-pem-file) or a base64 PKCS #12 archive without a
// password (as Key Vault stores application/x-pkcs12).
func (s signer) encode(format string) (providers.Value, error) {
	if format == FormatPKCS12 {
		der, err := encodePKCS12(s.key, s.cert)
		if err != nil {
			return providers.Value{}, err
		}
		return providers.NewValue(base64.StdEncoding.EncodeToString(der)), nil
	}
	p8, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		return providers.Value{}, err
	}
	var b bytes.Buffer
	if err := pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: p8}); err != nil {
		return providers.Value{}, err
	}
	if err := pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: s.cert.Raw}); err != nil {
		return providers.Value{}, err
	}
	return providers.NewValue(b.String()), nil
}

// match is whether a key credential is a certificate.
type match int

const (
	matchUnknown match = iota // the listing says nothing that tells (no key, no thumbprint)
	matchNo
	matchYes
)

// holds tells whether the key credential is the certificate c: by its key (the certificate's DER,
// which Graph lists on $select=keyCredentials), else by its customKeyIdentifier when that is a SHA-1
// thumbprint (in hex, as Graph and the portal write it, or base64, as the app manifest writes it).
func (k keyCredential) holds(c *x509.Certificate) match {
	if k.Key != nil && *k.Key != "" {
		der, err := base64.StdEncoding.DecodeString(*k.Key)
		if err != nil {
			return matchUnknown
		}
		if bytes.Equal(der, c.Raw) {
			return matchYes
		}
		return matchNo
	}
	if k.CustomKeyIdentifier == nil {
		return matchUnknown
	}
	cki := strings.TrimSpace(*k.CustomKeyIdentifier)
	sum := sha1.Sum(c.Raw)
	if b, err := hex.DecodeString(cki); err == nil && len(b) == sha1.Size {
		if bytes.Equal(b, sum[:]) {
			return matchYes
		}
		return matchNo
	}
	if b, err := base64.StdEncoding.DecodeString(cki); err == nil && len(b) == sha1.Size {
		if bytes.Equal(b, sum[:]) {
			return matchYes
		}
		return matchNo
	}
	return matchUnknown
}
