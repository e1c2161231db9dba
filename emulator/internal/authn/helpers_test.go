package authn

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// Fixed identities used across the tests.
const (
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

	sysClientID  = "11111111-1111-1111-1111-111111111111"
	sysObjectID  = "11111111-0000-0000-0000-000000000001"
	userClientID = "22222222-2222-2222-2222-222222222222"
	userObjectID = "22222222-0000-0000-0000-000000000002"
	userResID    = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/rotator"
	spClientID   = "33333333-3333-3333-3333-333333333333"
	spObjectID   = "33333333-0000-0000-0000-000000000003"

	testIdentityHeader = "local-identity-header"
)

// staticDirectory is a fixed Directory.
type staticDirectory []Identity

func (d staticDirectory) Identities() []Identity { return append([]Identity(nil), d...) }

// newSPCert makes a self-signed RSA certificate and key, as a service principal would register.
func newSPCert(t *testing.T, cn string) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// fixture is an issuer, a CA and the standard identities.
type fixture struct {
	issuer   *Issuer
	ca       *CA
	spCert   *x509.Certificate
	spKey    *rsa.PrivateKey
	dir      staticDirectory
	endpoint *Endpoints
}

var (
	sharedIssuer = NewIssuer(nil)
	sharedCA     = func() *CA {
		ca, err := NewCA()
		if err != nil {
			panic(err)
		}
		return ca
	}()
)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cert, key := newSPCert(t, "rotator-sp")
	f := &fixture{issuer: sharedIssuer, ca: sharedCA, spCert: cert, spKey: key}
	f.dir = staticDirectory{
		{Name: "system", ClientID: sysClientID, ObjectID: sysObjectID, Managed: true, System: true},
		{Name: "rotator-mi", ClientID: userClientID, ObjectID: userObjectID, Managed: true, ResourceID: userResID},
		{Name: "rotator-sp", ClientID: spClientID, ObjectID: spObjectID, Certificates: []*x509.Certificate{cert}},
	}
	f.endpoint = &Endpoints{
		Issuer:         f.issuer,
		Directory:      f.dir,
		TenantID:       testTenant,
		IdentityHeader: testIdentityHeader,
	}
	return f
}

// newTLSServer serves h over HTTPS with a certificate from ca.ServerTLSConfig.
func newTLSServer(t *testing.T, ca *CA, h http.Handler) *httptest.Server {
	t.Helper()
	cfg, err := ca.ServerTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // tests provoke TLS handshake failures on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// setManagedIdentityEnv points azidentity's managed identity at srv (App Service protocol) and unsets
// variables that would select another source or identity (azidentity tells unset from empty).
func setManagedIdentityEnv(t *testing.T, srv *httptest.Server, header string) {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", srv.URL+"/msi/token")
	t.Setenv("IDENTITY_HEADER", header)
	for _, k := range []string{"IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
		"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS"} {
		t.Setenv(k, "") // restores the original value after the test
		_ = os.Unsetenv(k)
	}
}
