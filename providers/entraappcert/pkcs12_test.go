package entraappcert

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/kvrotator/kvrotator/providers"
)

// RFC 7292's key derivation, checked against golang.org/x/crypto/pkcs12's test vectors (one whose
// intermediate I_j has a leading zero byte).
func TestPKCS12KDF(t *testing.T) {
	sesame := []byte{0, 's', 0, 'e', 0, 's', 0, 'a', 0, 'm', 0, 'e', 0, 0}
	for _, tc := range []struct {
		password, salt []byte
		want           string
	}{
		{sesame, bytes.Repeat([]byte{0xff}, 8), "7cd9fd3e2b3be7691a44e3bef0f9ea0fb9b897d4e325d9d1"},
		{[]byte{0, 0}, []byte("\xf3\x7e\x05\xb5\x18\x32\x4b\x4b"), "00f759ff47d14dd03665d5943cb3c4a39a2555c02aed66e1"},
	} {
		if got := hex.EncodeToString(pkcs12KDF(tc.password, tc.salt, 1, 2048, 24)); got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
	}
}

func testSigner(t *testing.T) signer {
	t.Helper()
	s, err := newSigner(2048, DisplayName("kvr-0123456789abcdef"), time.Now(), time.Now().Add(40*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Both formats load with azidentity.ParseCertificates as they are (PKCS #12 once base64-decoded, as
// Key Vault stores it) and give back the same key and certificate; parseValue reads both.
func TestValueFormatsLoadWithAzidentity(t *testing.T) {
	s := testSigner(t)
	for _, format := range []string{FormatPEM, FormatPKCS12} {
		t.Run(format, func(t *testing.T) {
			v, err := s.encode(format)
			if err != nil {
				t.Fatal(err)
			}
			data := []byte(v.Reveal())
			if format == FormatPKCS12 {
				if data, err = base64.StdEncoding.DecodeString(v.Reveal()); err != nil {
					t.Fatal(err)
				}
			} else if !strings.HasPrefix(v.Reveal(), "-----BEGIN PRIVATE KEY-----\n") || !strings.Contains(v.Reveal(), "-----BEGIN CERTIFICATE-----") {
				t.Fatal("not a PEM file with the private key, then the certificate")
			}
			certs, key, err := azidentity.ParseCertificates(data, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(certs) != 1 || !bytes.Equal(certs[0].Raw, s.cert.Raw) || !s.key.Equal(key) {
				t.Fatal("azidentity read back another key or certificate")
			}
			back, err := parseValue(v)
			if err != nil || !bytes.Equal(back.cert.Raw, s.cert.Raw) || !s.key.Equal(back.key) {
				t.Fatalf("parseValue: %v", err)
			}
		})
	}
}

// OpenSSL 3 (without its legacy provider) reads the PKCS #12 archive with an empty password, finds
// the certificate and the key, and the MAC verifies; it reads the PEM file's key and certificate.
// Skipped where openssl is not installed.
func TestValueFormatsLoadWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	s := testSigner(t)
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	wantCN := "CN" // subject lines differ between versions; the common name is there in any case
	for _, format := range []string{FormatPKCS12, FormatPEM} {
		v, err := s.encode(format)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "value."+format)
		data := []byte(v.Reveal())
		if format == FormatPKCS12 {
			data, _ = base64.StdEncoding.DecodeString(v.Reveal())
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var out string
		if format == FormatPKCS12 {
			out = run("pkcs12", "-in", path, "-passin", "pass:", "-nodes")
		} else {
			out = run("x509", "-in", path, "-noout", "-subject", "-fingerprint", "-sha1") + run("pkey", "-in", path, "-noout", "-text_pub")
		}
		if !strings.Contains(out, wantCN) || !strings.Contains(out, "kvrotator kvr-0123456789abcdef") {
			t.Fatalf("%s: openssl did not show the certificate", format)
		}
		if format == FormatPKCS12 && (!strings.Contains(out, "-----BEGIN PRIVATE KEY-----") || !strings.Contains(out, "-----BEGIN CERTIFICATE-----")) {
			t.Fatal("openssl did not find both the key and the certificate")
		}
		if format == FormatPEM && !strings.Contains(strings.ReplaceAll(out, ":", ""), thumbprint(s.cert)) {
			t.Fatal("openssl shows another certificate")
		}
	}
}

// Values that are not an RSA key with its certificate are refused, and the error holds nothing of
// them.
func TestParseValueRefuses(t *testing.T) {
	s := testSigner(t)
	other := testSigner(t)
	good, _ := s.encode(FormatPEM)
	otherPEM, _ := other.encode(FormatPEM)
	keyOnly := good.Reveal()[:strings.Index(good.Reveal(), "-----BEGIN CERTIFICATE-----")]
	certOnly := good.Reveal()[strings.Index(good.Reveal(), "-----BEGIN CERTIFICATE-----"):]
	otherKey := otherPEM.Reveal()[:strings.Index(otherPEM.Reveal(), "-----BEGIN CERTIFICATE-----")]
	for name, v := range map[string]string{
		"a client secret":                     "Abc8Q~client-secret-value-0123456789abcd",
		"the private key alone":               keyOnly,
		"the certificate alone":               certOnly,
		"a certificate with another key":      otherKey + certOnly,
		"base64 that is no PKCS #12":          base64.StdEncoding.EncodeToString([]byte("not a pfx at all, just some text")),
		"too long for a Key Vault secret":     strings.Repeat("A", maxValueBytes+4),
		"empty":                               "",
		"a PEM file of something else":        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
		"a certificate with another key (p2)": certOnly + otherKey,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseValue(providers.NewValue(v))
			if err == nil {
				t.Fatal("accepted")
			}
			if len(v) >= 16 && strings.Contains(err.Error(), v[len(v)/2:len(v)/2+8]) {
				t.Fatal("the error quotes the value")
			}
		})
	}
}
