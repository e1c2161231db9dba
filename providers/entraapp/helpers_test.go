package entraapp_test

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraapp"
	"github.com/kvrotator/kvrotator/providers/entraapp/graphtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
)

const (
	idemKey       = "kvr-0123456789abcdef"
	initialSecret = "INITIALSECRET~must.never-leak-7c1e"
	graphAudience = "https://graph.microsoft.com"
)

// fixture is a local Graph + token endpoint with one application that holds one hand-made password.
type fixture struct {
	srv       *graphtest.Server
	objectID  string
	appID     string
	initialID string // keyId of the password the current version holds
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := graphtest.NewServer()
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv}
	f.objectID, f.appID = srv.AddApp()
	f.initialID = srv.SeedPassword(f.objectID, "set up by hand", initialSecret, time.Now().AddDate(0, 0, 20))
	return f
}

// azure is kvrotator's environment pointed at the fixture: its own credential, a cloud whose authority
// and Graph endpoint are the local server, and a transport that trusts its certificate.
func (f *fixture) azure() registry.Azure {
	return registry.Azure{
		Credential: f.srv.Credential(),
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: f.srv.URL + "/",
			Services:                     map[cloud.ServiceName]cloud.ServiceConfiguration{entraapp.GraphService: {Endpoint: f.srv.URL, Audience: graphAudience}},
		},
		Transport: f.srv.Client(),
	}
}

// provider is an entra-app provider for the fixture, with a short replication delay for tests.
func (f *fixture) provider(opts ...entraapp.Option) *entraapp.Provider {
	return entraapp.New(append([]entraapp.Option{entraapp.WithAzure(f.azure()), entraapp.WithReplicationDelay(50 * time.Millisecond),
		entraapp.WithTimeout(5 * time.Second)}, opts...)...)
}

// request is what the engine sends for a secret that holds the initial password.
func (f *fixture) request() providers.Request {
	return providers.Request{
		Vault: "myvault", Secret: "app-secret", Version: "v1",
		Current: providers.NewValue(initialSecret), CredentialID: f.initialID,
		Params: providers.Params{
			"rotation-provider":  entraapp.Name,
			"CredentialId":       f.initialID,
			entraapp.TagAddress:  f.objectID,
			entraapp.TagTenant:   f.srv.TenantID,
			"ValidityPeriodDays": "90",
		},
		IdempotencyKey: idemKey,
		Now:            time.Now(),
	}
}

// after is the request the sweep sends to revoke req's password once the version holding cred is the
// latest: Current is the new value, Retired the replaced one.
func after(req providers.Request, cred providers.Credential) providers.Request {
	req.Current, req.Retired = cred.Value, req.Current
	req.CredentialID = cred.CredentialID
	req.Params = maps.Clone(req.Params)
	req.Params["CredentialId"] = cred.CredentialID
	return req
}

// kvrotatorPasswords are the application's passwords named for key.
func (f *fixture) kvrotatorPasswords(key string) []graphtest.Password {
	var out []graphtest.Password
	for _, p := range f.srv.Passwords(f.objectID) {
		if p.DisplayName == entraapp.DisplayName(key) {
			out = append(out, p)
		}
	}
	return out
}

// keyIDs lists the application's password keyIds.
func (f *fixture) keyIDs() []string {
	var ids []string
	for _, p := range f.srv.Passwords(f.objectID) {
		ids = append(ids, p.KeyID)
	}
	return ids
}

// clean fails if err's text holds the initial secret, kvrotator's Graph token, or any secret the
// server issued.
func (f *fixture) clean(t *testing.T, err error) {
	t.Helper()
	noSecrets(t, f.srv, httpxtest.ErrorTexts(err)...)
}

func noSecrets(t *testing.T, srv *graphtest.Server, texts ...string) {
	t.Helper()
	httpxtest.NoSecrets(t, texts, append([]string{initialSecret, srv.GraphToken}, srv.Issued()...)...)
}

// binding is one entry of the operator's bindings document (KVROTATOR_BINDINGS), written as JSON and
// parsed the way the application parses it.
type binding struct {
	Name     string              `json:"name"`
	Secrets  []string            `json:"secrets"`
	Provider string              `json:"provider"`
	Allow    map[string][]string `json:"allow"`
}

// appBinding lets the entra-app secrets of the test vault reach the applications (object ids or
// client ids) and tenants given.
func appBinding(name string, apps, tenants []string) binding {
	return binding{Name: name, Secrets: []string{providertest.VaultName + "/*"}, Provider: entraapp.Name,
		Allow: map[string][]string{"application": apps, "tenant": tenants}}
}

func parseBindings(t testing.TB, bs ...binding) *bindings.Policy {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"bindings": bs})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bindings.Parse(doc, "test bindings", []string{entraapp.Name})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}
