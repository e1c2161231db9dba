package keyvault_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/keyvault"
)

// start runs an emulator with the vault "myvault" (plus what mutate changes) for the test's lifetime.
func start(t testing.TB, mutate func(*emulator.Config)) *emulator.Server {
	t.Helper()
	return emulatortest.Start(t, mutate)
}

// clearCredentialEnv empties every variable NewCredential or azidentity might read, so that the
// machine running the tests does not choose the credential.
func clearCredentialEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_AUTHORITY_HOST",
		"AZURE_TOKEN_CREDENTIALS", "AZURE_FEDERATED_TOKEN_FILE", "KVROTATOR_CREDENTIAL",
	} {
		t.Setenv(k, "")    // restored after the test…
		_ = os.Unsetenv(k) // …and unset meanwhile: azidentity tells unset from empty
	}
}

// managedIdentity returns the credential NewCredential picks in auto mode when App Service's
// IDENTITY_ENDPOINT / IDENTITY_HEADER point at the emulator: the real ManagedIdentityCredential.
// clientID selects a user-assigned identity ("" = system-assigned).
func managedIdentity(t *testing.T, srv *emulator.Server, clientID string) azcore.TokenCredential {
	t.Helper()
	clearCredentialEnv(t)
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, desc, err := keyvault.NewCredential(keyvault.CredentialConfig{ClientID: clientID})
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	if !strings.HasPrefix(desc, "managed identity") {
		t.Fatalf("auto mode with IDENTITY_ENDPOINT chose %q", desc)
	}
	return cred
}

// fastRetry keeps retry tests quick.
func fastRetry() *policy.RetryOptions {
	return &policy.RetryOptions{MaxRetries: 2, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond}
}

// noRetry turns azcore's retries off.
func noRetry() *policy.RetryOptions { return &policy.RetryOptions{MaxRetries: -1} }

// newVault is the Vault for "myvault" as the system-assigned managed identity.
func newVault(t *testing.T, srv *emulator.Server, opts *keyvault.Options) *keyvault.Vault {
	t.Helper()
	return newVaultAs(t, srv, "", opts)
}

// newVaultAs is the Vault for "myvault" as a managed identity (clientID "" = system-assigned).
func newVaultAs(t *testing.T, srv *emulator.Server, clientID string, opts *keyvault.Options) *keyvault.Vault {
	t.Helper()
	if opts == nil {
		opts = &keyvault.Options{}
	}
	if opts.Transport == nil {
		opts.Transport = srv.HTTPClient()
	}
	if opts.Retry == nil {
		opts.Retry = fastRetry()
	}
	v, err := keyvault.New(srv.VaultURL("myvault"), managedIdentity(t, srv, clientID), opts)
	if err != nil {
		t.Fatalf("keyvault.New: %v", err)
	}
	return v
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// countingTransport records the requests that reach the emulator.
type countingTransport struct {
	next policy.Transporter
	mu   sync.Mutex
	reqs []string // "METHOD /path status"
}

func (c *countingTransport) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.next.Do(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, req.Method+" "+req.URL.Path+" "+http.StatusText(status))
	c.mu.Unlock()
	return resp, err
}

// count returns how many recorded requests match method, path and status.
func (c *countingTransport) count(method, path string, status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.reqs {
		if r == method+" "+path+" "+http.StatusText(status) {
			n++
		}
	}
	return n
}

func (c *countingTransport) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.reqs...)
}

func (c *countingTransport) reset() {
	c.mu.Lock()
	c.reqs = nil
	c.mu.Unlock()
}

// noNetwork fails any request: constructors must not call out.
type noNetwork struct{ t *testing.T }

func (n noNetwork) Do(req *http.Request) (*http.Response, error) {
	n.t.Errorf("unexpected network call during construction: %s %s", req.Method, req.URL)
	return nil, http.ErrHandlerTimeout
}

// testCert is a self-signed RSA certificate with its key.
type testCert struct {
	cert *x509.Certificate
	key  *rsa.PrivateKey
	der  []byte
}

func newTestCert(t *testing.T, cn string, notAfter time.Time) testCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{cert: cert, key: key, der: der}
}

func (c testCert) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der})
}

func (c testCert) keyPEM(t *testing.T) []byte {
	b, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b})
}

// writeFile writes data to a file in the test's temp dir and returns its path.
func writeFile(t *testing.T, name string, data ...[]byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	if err := os.WriteFile(p, all, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
