package datadog_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/datadog"
	"github.com/kvrotator/kvrotator/providers/datadog/datadogtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
)

const (
	adminSecret    = "datadog-admin" // the secret the datadog-admin-secret tag names
	secretName     = "app-datadog"   // the secret being rotated
	idemKey        = "kvr-0123456789abcdef"
	serviceAccount = "00000000-0000-1234-0000-00000000abcd"
	goneKeyID      = "99999999-9999-4999-8999-999999999999"
)

// appScopes are the scopes of the application key the current version holds, when it is one.
var appScopes = []string{"dashboards_read", "metrics_read"}

// fixture is a Datadog organization with admin keys and the key the current version holds.
type fixture struct {
	srv      *datadogtest.Server
	adminAPI datadogtest.Key
	adminApp datadogtest.Key
	current  datadogtest.Key
	kind     string // datadog.KeyTypeAPI or datadog.KeyTypeApplication
}

// newFixture makes an organization whose current key is of kind: an API key, or an application key of
// the admin user (owner "") or of the service account (owner serviceAccount).
func newFixture(t *testing.T, kind, owner string) *fixture {
	t.Helper()
	srv := datadogtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddServiceAccount(serviceAccount, "dashboards_read", "metrics_read")
	f := &fixture{srv: srv, kind: kind, adminAPI: srv.AddAPIKey("kvrotator admin"), adminApp: srv.AddAppKey("kvrotator admin", datadogtest.AdminUser, nil)}
	switch {
	case kind == datadog.KeyTypeAPI:
		f.current = srv.AddAPIKey("app key (made in the UI)")
	case owner == "":
		f.current = srv.AddAppKey("app key (made in the UI)", datadogtest.AdminUser, appScopes)
	default:
		f.current = srv.AddAppKey("app key (made in the UI)", owner, appScopes)
	}
	return f
}

// adminValue is the admin secret's value.
func (f *fixture) adminValue() string {
	b, _ := json.Marshal(map[string]string{"api_key": f.adminAPI.Value, "application_key": f.adminApp.Value})
	return string(b)
}

// tags are the rotated secret's tags for the fixture, with the API at base.
func (f *fixture) tags(base string) providers.Params {
	p := providers.Params{
		"rotation-provider":    datadog.Name,
		"CredentialId":         f.current.ID,
		datadog.TagAdminSecret: adminSecret,
		datadog.TagSite:        base,
	}
	if f.kind == datadog.KeyTypeApplication {
		p[datadog.TagKeyType] = datadog.KeyTypeApplication
		if f.current.Owner == serviceAccount {
			p[datadog.TagServiceAccount] = serviceAccount
		}
	}
	return p
}

// request is what the engine would send to rotate the current key, with the API at base.
func (f *fixture) request(base string) providers.Request {
	return providers.Request{
		Vault: "myvault", Secret: secretName, Version: "v1",
		Current: providers.NewValue(f.current.Value), CredentialID: f.current.ID,
		Params:         f.tags(base),
		IdempotencyKey: idemKey,
		Secrets:        httpxtest.Secrets{adminSecret: f.adminValue()},
		Now:            time.Now(),
	}
}

// secrets are the values no error may contain.
func (f *fixture) secrets(more ...string) []string {
	return append([]string{f.adminAPI.Value, f.adminApp.Value, f.current.Value}, more...)
}

// clean fails if err's text contains any of the secrets, or a 12-byte piece of one.
func clean(t *testing.T, err error, secrets ...string) {
	t.Helper()
	texts := httpxtest.ErrorTexts(err)
	httpxtest.NoSecrets(t, texts, secrets...)
	for _, text := range texts {
		for _, s := range secrets {
			for i := 0; i+12 <= len(s); i++ {
				if strings.Contains(text, s[i:i+12]) {
					t.Fatalf("error %q contains part of a key", text)
				}
			}
		}
	}
}

// wantTransient fails unless err is a transient *datadog.Error with the given status.
func wantTransient(t *testing.T, err error, status int) *datadog.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Transient[*datadog.Error](t, err), status)
}

// wantPermanent fails unless err is a permanent *datadog.Error with the given status.
func wantPermanent(t *testing.T, err error, status int) *datadog.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Permanent[*datadog.Error](t, err), status)
}

func wantStatus(t *testing.T, e *datadog.Error, status int) *datadog.Error {
	t.Helper()
	if e.Status != status {
		t.Fatalf("error %v has status %d, want %d", e, e.Status, status)
	}
	return e
}

// wantConfigError fails unless err is (or joins) a *providers.ConfigError for tag.
func wantConfigError(t *testing.T, err error, tag string) *providers.ConfigError {
	t.Helper()
	var ce *providers.ConfigError
	if !errors.As(err, &ce) || !strings.EqualFold(ce.Tag, tag) {
		t.Fatalf("error %v, want a ConfigError for tag %s", err, tag)
	}
	if !providers.IsPermanent(err) {
		t.Fatalf("ConfigError %v is not permanent", err)
	}
	return ce
}

// wantRefused fails unless err is a permanent refusal (not an *Error: nothing was asked of Datadog
// that failed) saying why.
func wantRefused(t *testing.T, err error, why string) {
	t.Helper()
	if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), why) {
		t.Fatalf("error %v, want a permanent refusal saying %q", err, why)
	}
}

// intercept puts a server in front of base that answers the routes ("METHOD /path") in routes itself
// and passes every other request on to base; it returns the new base URL.
func intercept(t *testing.T, base string, routes map[string]http.HandlerFunc) string {
	t.Helper()
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := routes[r.Method+" "+r.URL.Path]; ok {
			h(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
