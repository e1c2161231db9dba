package emulator_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
)

func TestChallengeAndTokenChecks(t *testing.T) {
	srv := start(t, nil)
	other := start(t, func(c *emulator.Config) { c.KeyDir = t.TempDir() }) // another signing key: its tokens are forgeries here
	sysID := emulator.DefaultIdentity().ClientID

	r := raw(t, srv, "GET", "/secrets?api-version=7.5", "", nil)
	if code, _ := r.errorCode(t); r.Status != 401 || code != "Unauthorized" {
		t.Fatalf("no token: %d %s", r.Status, code)
	}
	chal := r.Header.Get("WWW-Authenticate")
	want := regexp.MustCompile(`^Bearer authorization="https://login\.microsoftonline\.com/` + regexp.QuoteMeta(srv.TenantID()) + `", resource="https://localhost:[0-9]+"$`)
	if !want.MatchString(chal) {
		t.Fatalf("challenge %q", chal)
	}
	// The challenge comes before body validation: an unauthenticated PUT with a bad body is a 401.
	if r := raw(t, srv, "PUT", "/secrets/s?api-version=7.5", "", []byte(`{`)); r.Status != 401 {
		t.Fatalf("unauthenticated bad PUT: %d", r.Status)
	}

	expired, err := srv.IssueToken(sysID, "https://vault.azure.net", -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wrongAud, _ := srv.IssueToken(sysID, "https://management.azure.com", time.Hour)
	forged, _ := other.IssueToken(sysID, "https://vault.azure.net", time.Hour)
	for name, tok := range map[string]string{"expired": expired, "wrong audience": wrongAud, "forged signature": forged, "garbage": "not.a.jwt"} {
		t.Run(name, func(t *testing.T) {
			r := raw(t, srv, "GET", "/secrets?api-version=7.5", tok, nil)
			if code, _ := r.errorCode(t); r.Status != 401 || code != "Unauthorized" || r.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%d %s", r.Status, code)
			}
			if strings.Contains(string(r.Body), tok) {
				t.Fatal("error echoes the token")
			}
		})
	}
	if r := raw(t, srv, "GET", "/secrets?api-version=7.5", systemToken(t, srv), nil); r.Status != 200 {
		t.Fatalf("valid token: %d %s", r.Status, r.Body)
	}
}

// rbacIdentities: three user-assigned managed identities with the three built-in roles.
func rbacIdentities() []emulator.IdentityConfig {
	mk := func(name, n string, role emulator.Role) emulator.IdentityConfig {
		return emulator.IdentityConfig{Name: name, ClientID: "aaaaaaaa-0000-4000-8000-00000000000" + n, ObjectID: "bbbbbbbb-0000-4000-8000-00000000000" + n,
			Managed: true, Roles: []emulator.RoleAssignment{{Role: role, Vault: "myvault"}}}
	}
	return []emulator.IdentityConfig{
		emulator.DefaultIdentity(),
		mk("reader", "1", emulator.RoleReader),
		mk("user", "2", emulator.RoleSecretsUser),
		mk("officer", "3", emulator.RoleSecretsOfficer),
	}
}

func TestRoleBasedAccess(t *testing.T) {
	ids := rbacIdentities()
	srv := start(t, func(c *emulator.Config) { c.Identities = ids })
	admin := newClient(t, srv, "myvault")
	if _, err := admin.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatal(err)
	}
	client := func(clientID string) *azsecrets.Client {
		c, err := azsecrets.NewClient(srv.VaultURL("myvault"), managedIdentity(t, srv, clientID), clientOptions(srv))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	list := func(c *azsecrets.Client) error {
		_, err := c.NewListSecretPropertiesPager(nil).NextPage(ctx(t))
		return err
	}
	get := func(c *azsecrets.Client) error { _, err := c.GetSecret(ctx(t), "s", "", nil); return err }
	set := func(c *azsecrets.Client) error {
		_, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("y")}, nil)
		return err
	}
	del := func(c *azsecrets.Client) error { _, err := c.DeleteSecret(ctx(t), "nothing-here", nil); return err }

	reader, user, officer := client(ids[1].ClientID), client(ids[2].ClientID), client(ids[3].ClientID)
	allowed := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	denied := func(name string, err error) {
		t.Helper()
		respErr(t, err, http.StatusForbidden, "Forbidden")
	}
	allowed("reader list", list(reader))
	denied("reader get", get(reader))
	denied("reader set", set(reader))
	allowed("user list", list(user))
	allowed("user get", get(user))
	denied("user set", set(user))
	denied("user delete", del(user))
	allowed("officer set", set(officer))
	allowed("officer get", get(officer))

	// The 403 body is Key Vault's RBAC denial, naming the action.
	tok, _ := srv.IssueToken(ids[1].ClientID, "https://vault.azure.net", time.Hour)
	r := raw(t, srv, "GET", "/secrets/s?api-version=7.5", tok, nil)
	if code, inner := r.errorCode(t); code != "Forbidden" || inner != "ForbiddenByRbac" || !strings.Contains(string(r.Body), "secrets/getSecret/action") {
		t.Fatalf("403 body: %s", r.Body)
	}
}

// TestServicePrincipalCertificate is the on-premises case: the real ClientCertificateCredential gets
// a token from the emulator's OpenID Connect endpoint with a local authority host.
func TestServicePrincipalCertificate(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048) // ClientCertificateCredential takes RSA keys
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "onprem-rotator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sp := emulator.IdentityConfig{Name: "onprem", ClientID: "cccccccc-0000-4000-8000-000000000001", ObjectID: "dddddddd-0000-4000-8000-000000000001",
		Certificates: []*x509.Certificate{cert}, Roles: []emulator.RoleAssignment{{Role: emulator.RoleSecretsOfficer, Vault: "*"}}}
	srv := start(t, func(c *emulator.Config) { c.Identities = []emulator.IdentityConfig{sp} })

	cred, err := azidentity.NewClientCertificateCredential(srv.TenantID(), sp.ClientID, []*x509.Certificate{cert}, key,
		&azidentity.ClientCertificateCredentialOptions{
			ClientOptions: azcore.ClientOptions{
				Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: srv.AuthorityHost()},
				Transport: srv.HTTPClient(),
			},
			DisableInstanceDiscovery: true,
		})
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(srv.VaultURL("myvault"), cred, clientOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx(t), "onprem-secret", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatalf("SetSecret as service principal: %v", err)
	}

	// A certificate the emulator does not know is refused by the token endpoint.
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	otherDER, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &otherKey.PublicKey, otherKey)
	otherCert, _ := x509.ParseCertificate(otherDER)
	bad, _ := azidentity.NewClientCertificateCredential(srv.TenantID(), sp.ClientID, []*x509.Certificate{otherCert}, otherKey,
		&azidentity.ClientCertificateCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: srv.AuthorityHost()}, Transport: srv.HTTPClient()},
			DisableInstanceDiscovery: true,
		})
	cb, _ := azsecrets.NewClient(srv.VaultURL("myvault"), bad, clientOptions(srv))
	if _, err := cb.GetSecret(ctx(t), "onprem-secret", "", nil); err == nil {
		t.Fatal("an unregistered certificate got access")
	}
}

func TestDefaultAzureCredentialUsesManagedIdentity(t *testing.T) {
	srv := start(t, nil)
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(srv.VaultURL("myvault"), cred, clientOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatalf("DefaultAzureCredential: %v", err)
	}
}

func TestWrongIdentityHeaderFails(t *testing.T) {
	srv := start(t, nil)
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", "wrong")
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := azsecrets.NewClient(srv.VaultURL("myvault"), cred, clientOptions(srv))
	if _, err := c.GetSecret(ctx(t), "s", "", nil); err == nil {
		t.Fatal("a wrong IDENTITY_HEADER got a token")
	}
}
