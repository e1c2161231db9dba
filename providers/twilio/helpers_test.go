package twilio_test

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
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/twilio"
	"github.com/kvrotator/kvrotator/providers/twilio/twiliotest"
)

const (
	adminSecret = "twilio-admin" // the secret the twilio-admin-secret tag names
	secretName  = "app-twilio"   // the secret being rotated
	idemKey     = "kvr-0123456789abcdef"
	goneKeySID  = "SK99999999999999999999999999999999"
)

// appPolicy is the policy of the restricted key the current version holds, when it is one.
var appPolicy = json.RawMessage(`{"allow":["/twilio/messaging/messages/read","/twilio/messaging/messages/create"]}`)

// fixture is a Twilio account with admin credentials (a Main key) and the key the current version
// holds.
type fixture struct {
	srv     *twiliotest.Server
	admin   string // "SID:secret" of the Main key
	adminID string
	current twiliotest.Key
}

// newFixture makes an account whose current key is of type typ (twiliotest.TypeStandard or
// TypeRestricted, the latter with appPolicy).
func newFixture(t *testing.T, typ string) *fixture {
	t.Helper()
	srv := twiliotest.NewServer()
	t.Cleanup(srv.Close)
	main := srv.AddKey(srv.Account.SID, twiliotest.TypeMain, "kvrotator admin", nil)
	var policy json.RawMessage
	if typ == twiliotest.TypeRestricted {
		policy = appPolicy
	}
	return &fixture{srv: srv, admin: main.Value(), adminID: main.SID, current: srv.AddKey(srv.Account.SID, typ, "app key (made in the Console)", policy)}
}

// tags are the rotated secret's tags, with both APIs at base.
func (f *fixture) tags(base string) providers.Params {
	p := providers.Params{
		"rotation-provider":   twilio.Name,
		"CredentialId":        f.current.SID,
		twilio.TagAdminSecret: adminSecret,
		twilio.TagAccountSID:  f.srv.Account.SID,
		twilio.TagIAMURL:      base,
		twilio.TagAPIURL:      base,
	}
	if f.current.Type == twiliotest.TypeRestricted {
		p[twilio.TagKeyType] = twilio.KeyTypeRestricted
	}
	return p
}

// request is what the engine would send to rotate the current key, with both APIs at base.
func (f *fixture) request(base string) providers.Request {
	return providers.Request{
		Vault: "myvault", Secret: secretName, Version: "v1",
		Current: providers.NewValue(f.current.Value()), CredentialID: f.current.SID,
		Params:         f.tags(base),
		IdempotencyKey: idemKey,
		Secrets:        httpxtest.Secrets{adminSecret: f.admin},
		Now:            time.Now(),
	}
}

// secrets are the values no error may contain: the secrets (SIDs are public and named in errors).
func (f *fixture) secrets(more ...string) []string {
	return append([]string{secretOf(f.admin), f.current.Secret, f.srv.Account.AuthToken}, more...)
}

// secretOf is the secret part of "SID:secret".
func secretOf(v string) string {
	_, s, _ := strings.Cut(v, ":")
	return s
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
					t.Fatalf("error %q contains part of a secret", text)
				}
			}
		}
	}
}

// wantTransient fails unless err is a transient *twilio.Error with the given status.
func wantTransient(t *testing.T, err error, status int) *twilio.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Transient[*twilio.Error](t, err), status)
}

// wantPermanent fails unless err is a permanent *twilio.Error with the given status.
func wantPermanent(t *testing.T, err error, status int) *twilio.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Permanent[*twilio.Error](t, err), status)
}

func wantStatus(t *testing.T, e *twilio.Error, status int) *twilio.Error {
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

// wantRefused fails unless err is a permanent refusal saying why.
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
