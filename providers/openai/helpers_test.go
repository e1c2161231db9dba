package openai_test

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
	"github.com/kvrotator/kvrotator/providers/openai"
	"github.com/kvrotator/kvrotator/providers/openai/openaitest"
)

const (
	adminSecret = "openai-admin" // the secret the openai-admin-secret tag names
	secretName  = "app-openai"   // the secret being rotated
	idemKey     = "kvr-0123456789abcdef"
)

// fixture is an OpenAI organization with a project, an admin key, and the service account (made in the
// UI) whose key the current version holds.
type fixture struct {
	srv     *openaitest.Server
	project string
	admin   string
	current openaitest.ServiceAccount
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := openaitest.NewServer()
	t.Cleanup(srv.Close)
	project := srv.AddProject()
	return &fixture{srv: srv, project: project, admin: srv.AddAdminKey(true), current: srv.AddServiceAccount(project, "app (made in the UI)")}
}

// params are the current version's tags, with the API at base.
func (f *fixture) params(base string) providers.Params {
	return providers.Params{
		"rotation-provider":   openai.Name,
		"CredentialId":        f.current.ID,
		openai.TagAdminSecret: adminSecret,
		openai.TagProject:     f.project,
		openai.TagAPIURL:      base,
	}
}

// request is what the engine would send to rotate the current key, with the API at base.
func (f *fixture) request(base string) providers.Request {
	return providers.Request{
		Vault: "myvault", Secret: secretName, Version: "v1",
		Current: providers.NewValue(f.current.Key.Value), CredentialID: f.current.ID,
		Params:         f.params(base),
		IdempotencyKey: idemKey,
		Secrets:        httpxtest.Secrets{adminSecret: f.admin},
		Now:            time.Now(),
	}
}

// revokeRequest is what a sweep sends to revoke the service account that retired held, once the latest
// version holds latest.
func (f *fixture) revokeRequest(base string, latest providers.Credential, retired string, handWritten bool) providers.Request {
	req := f.request(base)
	req.IdempotencyKey = ""
	req.CredentialID, req.Current = latest.CredentialID, latest.Value
	req.Retired, req.HandWritten = providers.NewValue(retired), handWritten
	return req
}

// secrets are the values no error may contain.
func (f *fixture) secrets(more ...string) []string {
	return append([]string{f.admin, f.current.Key.Value}, more...)
}

// clean fails if err's text contains any of the secrets, or a 12-byte piece of one's secret part (an
// OpenAI key is a public prefix, "sk-admin-", "sk-svcacct-", and a secret part).
func clean(t *testing.T, err error, secrets ...string) {
	t.Helper()
	texts := httpxtest.ErrorTexts(err)
	httpxtest.NoSecrets(t, texts, secrets...)
	for _, text := range texts {
		for _, s := range secrets {
			part := s
			for _, p := range []string{"sk-admin-", "sk-svcacct-", "sk-proj-", "sk-"} {
				if rest, ok := strings.CutPrefix(s, p); ok {
					part = rest
					break
				}
			}
			for i := 0; i+12 <= len(part); i++ {
				if strings.Contains(text, part[i:i+12]) {
					t.Fatalf("error %q contains part of a key", text)
				}
			}
		}
	}
}

// wantTransient fails unless err is a transient *openai.Error with the given status.
func wantTransient(t *testing.T, err error, status int) *openai.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Transient[*openai.Error](t, err), status)
}

// wantPermanent fails unless err is a permanent *openai.Error with the given status.
func wantPermanent(t *testing.T, err error, status int) *openai.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Permanent[*openai.Error](t, err), status)
}

func wantStatus(t *testing.T, e *openai.Error, status int) *openai.Error {
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

// wantRefused fails unless err is a permanent error (not from a call) whose text says want.
func wantRefused(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want a permanent refusal saying %q", err, want)
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

// accountsPath is the path of a project's service accounts (and, with rest, of one of them).
func (f *fixture) accountsPath(rest string) string {
	return "/v1/organization/projects/" + f.project + "/service_accounts" + rest
}
