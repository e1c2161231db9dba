package keyvault_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/keyvault"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

func TestCredentialConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"KVROTATOR_CREDENTIAL":              "certificate",
		"AZURE_CLIENT_ID":                   " app-id ",
		"AZURE_TENANT_ID":                   "tenant",
		"AZURE_CLIENT_CERTIFICATE_PATH":     "/etc/kvrotator/sp.pem",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD": " pw ",
		"AZURE_AUTHORITY_HOST":              "https://login.microsoftonline.us/",
		"AZURE_CLIENT_SECRET":               "never-read",
	}
	c := keyvault.CredentialConfigFromEnv(func(k string) string { return env[k] })
	want := keyvault.CredentialConfig{Mode: "certificate", ClientID: "app-id", TenantID: "tenant", CertificatePath: "/etc/kvrotator/sp.pem",
		CertificatePassword: " pw ", AuthorityHost: "https://login.microsoftonline.us/"}
	if c != want {
		t.Fatalf("got %#v\nwant %#v", c, want)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c)} {
		if strings.Contains(s, " pw ") {
			t.Fatalf("the password is printed: %s", s)
		}
	}
}

// TestNewCredentialAutoSelection checks which credential each environment gets. Construction only:
// any network call fails the test.
func TestNewCredentialAutoSelection(t *testing.T) {
	tc := newTestCert(t, "selection", time.Now().Add(24*time.Hour))
	pemPath := writeFile(t, "sp.pem", tc.certPEM(), tc.keyPEM(t))
	const appService = "IDENTITY_ENDPOINT=http://127.0.0.1:9/msi/token;IDENTITY_HEADER=h"
	cases := []struct {
		name string
		env  string // k=v;k=v
		cfg  keyvault.CredentialConfig
		want string // description prefix, or "error: substring"
	}{
		{"app service, system-assigned", appService, keyvault.CredentialConfig{}, "managed identity (system-assigned)"},
		{"app service, user-assigned", appService, keyvault.CredentialConfig{ClientID: "1234-5678"}, "managed identity (client id 1234-5678)"},
		{"app service wins over a certificate", appService, keyvault.CredentialConfig{CertificatePath: pemPath, TenantID: "t", ClientID: "c"}, "managed identity"},
		{"MSI_ENDPOINT", "MSI_ENDPOINT=http://127.0.0.1:9/msi", keyvault.CredentialConfig{}, "managed identity (system-assigned)"},
		{"certificate", "", keyvault.CredentialConfig{CertificatePath: pemPath, TenantID: "tenant-1", ClientID: "app-1"}, "client certificate (tenant tenant-1, app app-1, thumbprint "},
		{"certificate, private cloud", "", keyvault.CredentialConfig{CertificatePath: pemPath, TenantID: "t", ClientID: "c", AuthorityHost: "https://login.contoso.local/"}, "client certificate"},
		{"nothing: default", "", keyvault.CredentialConfig{}, "DefaultAzureCredential"},
		{"explicit default despite MI", appService, keyvault.CredentialConfig{Mode: "default"}, "DefaultAzureCredential"},
		{"explicit managed identity (IMDS)", "", keyvault.CredentialConfig{Mode: "managed-identity"}, "managed identity (system-assigned)"},
		{"mode spelled differently", "", keyvault.CredentialConfig{Mode: " Managed_Identity "}, "managed identity"},
		{"explicit certificate without file", appService, keyvault.CredentialConfig{Mode: "certificate", TenantID: "t", ClientID: "c"}, "error: AZURE_CLIENT_CERTIFICATE_PATH"},
		{"client secret in env refused", "AZURE_CLIENT_SECRET=s3cret-ENV", keyvault.CredentialConfig{}, "error: AZURE_CLIENT_SECRET is set"},
		{"password in env refused", "AZURE_USERNAME=u;AZURE_PASSWORD=p4ss-ENV", keyvault.CredentialConfig{Mode: "default"}, "error: AZURE_PASSWORD is set"},
		{"client secret ignored with MI", appService + ";AZURE_CLIENT_SECRET=s", keyvault.CredentialConfig{}, "managed identity"},
		{"client-secret mode", "", keyvault.CredentialConfig{Mode: "client-secret"}, "error: never a client secret"},
		{"unknown mode", "", keyvault.CredentialConfig{Mode: "kerberos"}, "error: unknown credential mode"},
		{"http authority", "", keyvault.CredentialConfig{CertificatePath: pemPath, TenantID: "t", ClientID: "c", AuthorityHost: "http://login.contoso.local/"}, "error: must use https"},
		{"bad AZURE_TOKEN_CREDENTIALS", "AZURE_TOKEN_CREDENTIALS=bogus", keyvault.CredentialConfig{}, "error: DefaultAzureCredential"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearCredentialEnv(t)
			for kv := range strings.SplitSeq(c.env, ";") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					t.Setenv(k, v)
				}
			}
			c.cfg.Transport = noNetwork{t}
			cred, desc, err := keyvault.NewCredential(c.cfg)
			if want, isErr := strings.CutPrefix(c.want, "error: "); isErr {
				if err == nil {
					t.Fatalf("chose %q, want an error containing %q", desc, want)
				}
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not contain %q", err, want)
				}
				for _, secret := range []string{"s3cret-ENV", "p4ss-ENV"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error echoes a secret: %s", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cred == nil || !strings.HasPrefix(desc, c.want) {
				t.Fatalf("chose %q, want %q", desc, c.want)
			}
		})
	}
}

func TestCertificateErrors(t *testing.T) {
	good := newTestCert(t, "good", time.Now().Add(24*time.Hour))
	other := newTestCert(t, "other", time.Now().Add(24*time.Hour))
	expired := newTestCert(t, "expired", time.Now().Add(-time.Hour))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	ecPKCS8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ecTmpl := &x509.Certificate{SerialNumber: good.cert.SerialNumber, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	ecCertDER, _ := x509.CreateCertificate(rand.Reader, ecTmpl, ecTmpl, &ecKey.PublicKey, ecKey)
	ecCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ecCertDER})
	const password = "hunter2-DO-NOT-ECHO"

	dir := t.TempDir()
	unreadable := filepath.Join(dir, "unreadable.pem")
	if err := os.WriteFile(unreadable, good.certPEM(), 0o000); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		cfg  keyvault.CredentialConfig
		want string
	}{
		{"no path", keyvault.CredentialConfig{TenantID: "t", ClientID: "c"}, "no certificate file"},
		{"no tenant", keyvault.CredentialConfig{CertificatePath: "/x.pem", ClientID: "c"}, "no tenant (set AZURE_TENANT_ID)"},
		{"bad tenant", keyvault.CredentialConfig{CertificatePath: "/x.pem", TenantID: "a/b", ClientID: "c"}, "invalid tenant id"},
		{"no client id", keyvault.CredentialConfig{CertificatePath: "/x.pem", TenantID: "t"}, "no application (client) id"},
		{"missing file", keyvault.CredentialConfig{CertificatePath: filepath.Join(dir, "nope.pem")}, "does not exist"},
		{"directory", keyvault.CredentialConfig{CertificatePath: dir}, "cannot be read"},
		{"empty file", keyvault.CredentialConfig{CertificatePath: writeFile(t, "empty.pem")}, "is empty"},
		{"certificate without key", keyvault.CredentialConfig{CertificatePath: writeFile(t, "cert.pem", good.certPEM())}, "no private key found"},
		{"certificate without key, password set", keyvault.CredentialConfig{CertificatePath: writeFile(t, "cert.pem", good.certPEM()), CertificatePassword: password}, "no private key found"},
		{"key without certificate", keyvault.CredentialConfig{CertificatePath: writeFile(t, "key.pem", good.keyPEM(t))}, "no certificate found"},
		{"key of another certificate", keyvault.CredentialConfig{CertificatePath: writeFile(t, "mixed.pem", good.certPEM(), other.keyPEM(t))}, "does not belong"},
		{"expired", keyvault.CredentialConfig{CertificatePath: writeFile(t, "expired.pem", expired.certPEM(), expired.keyPEM(t))}, "expired on"},
		{"EC key (SEC1)", keyvault.CredentialConfig{CertificatePath: writeFile(t, "ec.pem", ecCert, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))}, "need an RSA key"},
		{"EC key (PKCS#8)", keyvault.CredentialConfig{CertificatePath: writeFile(t, "ec8.pem", ecCert, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecPKCS8}))}, "need an RSA key"},
		{"encrypted PEM key", keyvault.CredentialConfig{CertificatePath: writeFile(t, "enc.pem", good.certPEM(), pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}}))}, "encrypted"},
		{"garbage", keyvault.CredentialConfig{CertificatePath: writeFile(t, "junk.pfx", []byte("this is not a certificate"))}, "not a PEM file, and not a PKCS#12 file readable without a password"},
		{"garbage with password", keyvault.CredentialConfig{CertificatePath: writeFile(t, "junk.pfx", []byte("this is not a certificate")), CertificatePassword: password}, "wrong AZURE_CLIENT_CERTIFICATE_PASSWORD?"},
	}
	if os.Geteuid() != 0 { // root reads any file
		cases = append(cases, struct {
			name string
			cfg  keyvault.CredentialConfig
			want string
		}{"unreadable", keyvault.CredentialConfig{CertificatePath: unreadable}, "permission denied"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearCredentialEnv(t)
			c.cfg.Mode = "certificate"
			if c.cfg.TenantID == "" && c.cfg.ClientID == "" {
				c.cfg.TenantID, c.cfg.ClientID = "tenant", "app"
			}
			c.cfg.Transport = noNetwork{t}
			_, desc, err := keyvault.NewCredential(c.cfg)
			if err == nil {
				t.Fatalf("accepted as %q", desc)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "keyvault: ") {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("error echoes the password: %s", err)
			}
		})
	}
}

// TestCertificateCredentialAgainstEmulator is the on-premises path end to end: NewCredential in
// certificate mode (auto-selected from the environment) with the emulator as the authority host —
// which only works if instance discovery is disabled for a non-Microsoft host — then the real
// azsecrets client writing and reading through Vault.
func TestCertificateCredentialAgainstEmulator(t *testing.T) {
	tc := newTestCert(t, "onprem-rotator", time.Now().Add(24*time.Hour))
	sp := emulator.IdentityConfig{Name: "onprem", ClientID: "cccccccc-0000-4000-8000-0000000000c1", ObjectID: "dddddddd-0000-4000-8000-0000000000d1",
		Certificates: []*x509.Certificate{tc.cert}, Roles: []emulator.RoleAssignment{{Role: emulator.RoleSecretsOfficer, Vault: "*"}}}
	srv := start(t, func(c *emulator.Config) { c.Identities = []emulator.IdentityConfig{sp} })

	clearCredentialEnv(t)
	t.Setenv("AZURE_CLIENT_ID", sp.ClientID)
	t.Setenv("AZURE_TENANT_ID", srv.TenantID())
	t.Setenv("AZURE_CLIENT_CERTIFICATE_PATH", writeFile(t, "sp.pem", tc.certPEM(), tc.keyPEM(t)))
	t.Setenv("AZURE_AUTHORITY_HOST", srv.AuthorityHost())
	cfg := keyvault.CredentialConfigFromEnv(os.Getenv)
	cfg.Transport = srv.HTTPClient()
	cred, desc, err := keyvault.NewCredential(cfg) // auto: no managed identity here, a certificate is configured
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(desc, "client certificate (tenant "+srv.TenantID()+", app "+sp.ClientID) {
		t.Fatalf("chose %q", desc)
	}
	v, err := keyvault.New(srv.VaultURL("myvault"), cred, &keyvault.Options{Transport: srv.HTTPClient(), Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	p := set(t, v, "onprem-secret", "x", map[string]string{"a": "b"})
	got, err := v.Get(ctx(t), "onprem-secret", p.Version)
	if err != nil || got.Value.Reveal() != "x" {
		t.Fatalf("Get as service principal: %v", err)
	}

	// Explicit mode, same result.
	cfg.Mode = "certificate"
	if _, _, err := keyvault.NewCredential(cfg); err != nil {
		t.Fatal(err)
	}

	// A certificate the directory does not know: the token endpoint refuses it, a permanent failure
	// that says so without quoting the identity endpoint's answer.
	stranger := newTestCert(t, "stranger", time.Now().Add(24*time.Hour))
	cfg.CertificatePath = writeFile(t, "stranger.pem", stranger.certPEM(), stranger.keyPEM(t))
	bad, _, err := keyvault.NewCredential(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bv, err := keyvault.New(srv.VaultURL("myvault"), bad, &keyvault.Options{Transport: srv.HTTPClient(), Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bv.Get(ctx(t), "onprem-secret", "")
	if err == nil || !providers.IsPermanent(err) || errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("unknown certificate: %v", err)
	}
	if !strings.Contains(err.Error(), `keyvault: get secret "onprem-secret" in vault "myvault": authentication failed (ClientCertificateCredential): 401 Unauthorized`) ||
		strings.Contains(err.Error(), "\n") || len(err.Error()) > 200 {
		t.Fatalf("message: %q", err)
	}
}

// TestPKCS12Certificate loads a password-protected PKCS#12 file made by openssl.
func TestPKCS12Certificate(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	tc := newTestCert(t, "pfx", time.Now().Add(24*time.Hour))
	dir := t.TempDir()
	pemPath := writeFile(t, "in.pem", tc.certPEM(), tc.keyPEM(t))
	pfx := filepath.Join(dir, "sp.pfx")
	const password = "pfx-PASSWORD-9"
	// SHA1/3DES: what golang.org/x/crypto/pkcs12 (used by azidentity) reads.
	out, err := exec.Command(openssl, "pkcs12", "-export", "-in", pemPath, "-out", pfx, "-passout", "pass:"+password,
		"-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1").CombinedOutput()
	if err != nil {
		t.Skipf("openssl pkcs12: %v\n%s", err, out)
	}
	clearCredentialEnv(t)
	cfg := keyvault.CredentialConfig{Mode: "certificate", TenantID: "t", ClientID: "c", CertificatePath: pfx, CertificatePassword: password, Transport: noNetwork{t}}
	if _, desc, err := keyvault.NewCredential(cfg); err != nil || !strings.HasPrefix(desc, "client certificate") {
		t.Fatalf("PKCS#12 with password: %q %v", desc, err)
	}
	cfg.CertificatePassword = "wrong-" + password
	_, _, err = keyvault.NewCredential(cfg)
	if err == nil || !strings.Contains(err.Error(), "wrong AZURE_CLIENT_CERTIFICATE_PASSWORD?") || strings.Contains(err.Error(), password) {
		t.Fatalf("wrong password: %v", err)
	}
	cfg.CertificatePassword = ""
	if _, _, err = keyvault.NewCredential(cfg); err == nil || !strings.Contains(err.Error(), "set AZURE_CLIENT_CERTIFICATE_PASSWORD") {
		t.Fatalf("missing password: %v", err)
	}
}

func TestIsMicrosoftLoginHost(t *testing.T) {
	for host, want := range map[string]bool{
		"https://login.microsoftonline.com/":              true,
		"https://login.microsoftonline.com":               true,
		"https://LOGIN.microsoftonline.US/":               true,
		"https://login.chinacloudapi.cn/":                 true,
		"login.microsoftonline.com":                       true,
		"https://login.microsoftonline.com:8443/":         false,
		"https://127.0.0.1:8443/":                         false,
		"https://login.contoso.local/":                    false,
		"https://login.microsoftonline.com.evil.example/": false,
	} {
		if got := keyvault.IsMicrosoftLoginHost(host); got != want {
			t.Errorf("IsMicrosoftLoginHost(%q) = %v", host, got)
		}
	}
}
