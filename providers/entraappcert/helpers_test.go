package entraappcert_test

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraappcert"
	"github.com/kvrotator/kvrotator/providers/entraappcert/entraappcerttest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
)

const (
	idemKey       = "kvr-0123456789abcdef"
	graphAudience = "https://graph.microsoft.com"
)

var ctx = context.Background()

// fixture is a local Graph + Entra ID with one application that holds one certificate someone
// registered by hand, and that certificate with its private key: the secret's initial value.
type fixture struct {
	srv          *entraappcerttest.Server
	objectID     string
	appID        string
	initialCert  *x509.Certificate
	initialKey   *rsa.PrivateKey
	initialValue string // PEM: the private key and the certificate
	initialID    string // keyId of the key credential the current version holds
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := entraappcerttest.NewServer()
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv}
	f.objectID, f.appID = srv.AddApp()
	f.initialCert, f.initialKey = entraappcerttest.NewCertificate("orders-api (by hand)", time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 20))
	f.initialValue = entraappcerttest.PEM(f.initialCert, f.initialKey)
	f.initialID = srv.SeedKey(f.objectID, "set up by hand", f.initialCert)
	return f
}

// azure is kvrotator's environment pointed at the fixture: its own credential, a cloud whose authority
// and Graph endpoint are the local server, and a transport that trusts its certificate.
func (f *fixture) azure() registry.Azure {
	return registry.Azure{
		Credential: f.srv.Credential(),
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: f.srv.URL + "/",
			Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{entraappcert.GraphService: {Endpoint: f.srv.URL, Audience: graphAudience}},
		},
		Transport: f.srv.Client(),
	}
}

// provider is a provider for the fixture, with a short replication delay for tests.
func (f *fixture) provider(opts ...entraappcert.Option) *entraappcert.Provider {
	return entraappcert.New(append([]entraappcert.Option{entraappcert.WithAzure(f.azure()), entraappcert.WithReplicationDelay(50 * time.Millisecond),
		entraappcert.WithTimeout(5 * time.Second)}, opts...)...)
}

// request is what the engine sends for a secret that holds the initial certificate.
func (f *fixture) request() providers.Request {
	return providers.Request{
		Vault: "myvault", Secret: "app-cert", Version: "v1",
		Current: providers.NewValue(f.initialValue), CredentialID: f.initialID,
		Params: providers.Params{
			"rotation-provider":     entraappcert.Name,
			"CredentialId":          f.initialID,
			entraappcert.TagAddress: f.objectID,
			entraappcert.TagTenant:  f.srv.TenantID,
			"ValidityPeriodDays":    "90",
		},
		IdempotencyKey: idemKey,
		Now:            time.Now(),
	}
}

// after is the request the sweep sends to revoke req's key once the version holding cred is the
// latest: Current is the new value, Retired the replaced one.
func after(req providers.Request, cred providers.Credential) providers.Request {
	req.Current, req.Retired = cred.Value, req.Current
	req.CredentialID = cred.CredentialID
	req.Params = maps.Clone(req.Params)
	req.Params["CredentialId"] = cred.CredentialID
	return req
}

// kvrotatorKeys are the application's key credentials named for key.
func (f *fixture) kvrotatorKeys(key string) []entraappcerttest.Key {
	var out []entraappcerttest.Key
	for _, k := range f.srv.Keys(f.objectID) {
		if k.DisplayName == entraappcert.DisplayName(key) {
			out = append(out, k)
		}
	}
	return out
}

// keyIDs lists the application's keyIds.
func (f *fixture) keyIDs() []string {
	var ids []string
	for _, k := range f.srv.Keys(f.objectID) {
		ids = append(ids, k.KeyID)
	}
	return ids
}

// load reads a value as a consumer does (azidentity.ParseCertificates; a PKCS #12 value is base64, as
// Key Vault stores it) and returns its certificate.
func load(t *testing.T, v providers.Value, contentType string) *x509.Certificate {
	t.Helper()
	data := []byte(v.Reveal())
	if contentType == entraappcert.ContentTypePKCS12 {
		var err error
		if data, err = base64.StdEncoding.DecodeString(v.Reveal()); err != nil {
			t.Fatalf("a PKCS #12 value is not base64: %v", err)
		}
	}
	certs, key, err := azidentity.ParseCertificates(data, nil)
	if err != nil {
		t.Fatalf("azidentity cannot load the value: %v", err)
	}
	if _, ok := key.(*rsa.PrivateKey); !ok || len(certs) != 1 {
		t.Fatal("the value is not one RSA key and its certificate")
	}
	return certs[0]
}

// secretParts are the pieces of a value that must never appear in an error or a log: the value, and
// every line (PEM) or 48-character run (base64) of it. Certificates are public, but a value's pieces
// cannot be told apart from its private key's.
func secretParts(values ...string) []string {
	var out []string
	for _, v := range values {
		if v == "" {
			continue
		}
		out = append(out, v)
		if strings.Contains(v, "-----BEGIN PRIVATE KEY-----") {
			body := v[:strings.Index(v, "-----END PRIVATE KEY-----")]
			for _, line := range strings.Split(body, "\n") {
				if len(line) >= 40 {
					out = append(out, line)
				}
			}
			continue
		}
		for i := 0; i+48 <= len(v); i += 48 {
			out = append(out, v[i:i+48])
		}
	}
	return out
}

// noSecrets fails if any text holds a piece of the initial value, of extra values, kvrotator's Graph
// token, or "PRIVATE KEY".
func (f *fixture) noSecrets(t *testing.T, texts []string, extra ...string) {
	t.Helper()
	httpxtest.NoSecrets(t, texts, append(secretParts(append([]string{f.initialValue}, extra...)...), f.srv.GraphToken, "PRIVATE KEY")...)
}

// clean fails if err's text holds a secret.
func (f *fixture) clean(t *testing.T, err error, extra ...string) {
	t.Helper()
	f.noSecrets(t, httpxtest.ErrorTexts(err), extra...)
}

// binding is one entry of the operator's bindings document (KVROTATOR_BINDINGS).
type binding struct {
	Name     string              `json:"name"`
	Secrets  []string            `json:"secrets"`
	Provider string              `json:"provider"`
	Allow    map[string][]string `json:"allow"`
}

// appBinding lets the entra-app-certificate secrets of the test vault reach the applications and
// tenants given.
func appBinding(name string, apps, tenants []string) binding {
	return binding{Name: name, Secrets: []string{providertest.VaultName + "/*"}, Provider: entraappcert.Name,
		Allow: map[string][]string{"application": apps, "tenant": tenants}}
}

func parseBindings(t testing.TB, bs ...binding) *bindings.Policy {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"bindings": bs})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bindings.Parse(doc, "test bindings", []string{entraappcert.Name})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}
