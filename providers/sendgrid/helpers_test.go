package sendgrid_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/sendgrid"
	"github.com/kvrotator/kvrotator/providers/sendgrid/sendgridtest"
)

const (
	adminSecret = "sendgrid-admin" // the secret the sendgrid-admin-secret tag names
	secretName  = "app-sendgrid"   // the secret being rotated
	idemKey     = "kvr-0123456789abcdef"
	// goneKey is a key that no longer exists at SendGrid, and goneKeyID its api_key_id.
	goneKey   = "SG." + goneKeyID + ".gonesecretpartgonesecretpartgonesecretpart0"
	goneKeyID = "GoneKeyId000000000000"
)

// appScopes are the scopes of the key the current version holds.
var appScopes = []string{"mail.send", "alerts.read", "2fa_required"}

// fixture is a SendGrid account with an admin key and the key the current version holds.
type fixture struct {
	srv     *sendgridtest.Server
	admin   sendgridtest.Key
	current sendgridtest.Key
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := sendgridtest.NewServer()
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, admin: srv.AddKey("kvrotator admin", sendgridtest.AdminScopes...),
		current: srv.AddKey("app key (made in the UI)", appScopes...)}
}

// request is what the engine would send to rotate the current key, with the API at base.
func (f *fixture) request(base string) providers.Request {
	return providers.Request{
		Vault: "myvault", Secret: secretName, Version: "v1",
		Current: providers.NewValue(f.current.Value), CredentialID: f.current.ID,
		Params: providers.Params{
			"rotation-provider":     sendgrid.Name,
			"CredentialId":          f.current.ID,
			sendgrid.TagAdminSecret: adminSecret,
			sendgrid.TagAPIURL:      base,
		},
		IdempotencyKey: idemKey,
		Secrets:        httpxtest.Secrets{adminSecret: f.admin.Value},
		Now:            time.Now(),
	}
}

// secrets are the values no error may contain.
func (f *fixture) secrets(more ...string) []string {
	return append([]string{f.admin.Value, f.current.Value}, more...)
}

// clean fails if err's text contains any of the secrets, or a 12-byte piece of one's secret part (a
// SendGrid key is "SG." + its api_key_id + "." + the secret part; the id is public and is named in
// errors).
func clean(t *testing.T, err error, secrets ...string) {
	t.Helper()
	texts := httpxtest.ErrorTexts(err)
	httpxtest.NoSecrets(t, texts, secrets...)
	for _, text := range texts {
		for _, s := range secrets {
			part := s
			if rest, ok := strings.CutPrefix(s, "SG."); ok {
				_, part, _ = strings.Cut(rest, ".")
			}
			for i := 0; i+12 <= len(part); i++ {
				if strings.Contains(text, part[i:i+12]) {
					t.Fatalf("error %q contains part of a key", text)
				}
			}
		}
	}
}

// wantTransient fails unless err is a transient *sendgrid.Error with the given status.
func wantTransient(t *testing.T, err error, status int) *sendgrid.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Transient[*sendgrid.Error](t, err), status)
}

// wantPermanent fails unless err is a permanent *sendgrid.Error with the given status.
func wantPermanent(t *testing.T, err error, status int) *sendgrid.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Permanent[*sendgrid.Error](t, err), status)
}

func wantStatus(t *testing.T, se *sendgrid.Error, status int) *sendgrid.Error {
	t.Helper()
	if se.Status != status {
		t.Fatalf("error %v has status %d, want %d", se, se.Status, status)
	}
	return se
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

// names lists the names of keys.
func names(keys []sendgridtest.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}
