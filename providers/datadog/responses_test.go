package datadog_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/datadog"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
)

const (
	newKey   = "fedcba9876543210fedcba9876543210"
	newKeyID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
)

// Every answer to POST /api/v2/api_keys that breaks Datadog's contract is a permanent error; a key it
// did create (an id came back) is deleted at once, so nothing is left live and unrecorded.
func TestCreateResponses(t *testing.T) {
	name := datadog.KeyName(secretName, idemKey)
	obj := func(attrs string) string {
		return `{"data":{"id":"` + newKeyID + `","type":"api_keys","attributes":{` + attrs + `}}}`
	}
	for _, tc := range []struct {
		name       string
		status     int
		ctype      string
		body       string
		reason     string // "" means success
		wantDelete bool
	}{
		{"created", 201, "application/json", obj(`"key":"` + newKey + `","last4":"6789","name":"` + name + `"`), "", false},
		{"200 is as good", 200, "application/json; charset=utf-8", obj(`"key":"` + newKey + `"`), "", false},
		{"not JSON", 201, "text/html", `<html>`, "Content-Type", false},
		{"array", 201, "application/json", `[]`, "not a JSON object", false},
		{"no data", 201, "application/json", `{}`, "data.id is missing", false},
		{"id with a slash", 201, "application/json", `{"data":{"id":"a/b","attributes":{"key":"` + newKey + `"}}}`, "data.id is missing or malformed", false},
		{"no key", 201, "application/json", obj(`"name":"` + name + `"`), "attributes.key is missing", true},
		{"key with a space", 201, "application/json", obj(`"key":"ab cd"`), "attributes.key is not a key", true},
		{"the admin key back", 201, "application/json", obj(`"key":"ADMIN"`), "an existing key", true},
		{"another name", 201, "application/json", obj(`"key":"` + newKey + `","name":"Mine"`), "attributes.name is not", true},
		{"another type", 201, "application/json", `{"data":{"id":"` + newKeyID + `","type":"application_keys","attributes":{"key":"` + newKey + `"}}}`, "data.type is not", true},
		{"too long", 201, "application/json", `{"pad":"` + strings.Repeat("x", datadog.MaxResponseBytes) + `"}`, "exceeds 512 KiB", false},
		{"bad request", 400, "application/json", `{"errors":["name is required"]}`, "rejected", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, datadog.KeyTypeAPI, "")
			body := strings.ReplaceAll(tc.body, "ADMIN", f.adminAPI.Value)
			var deleted atomic.Int32
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{
				"POST /api/v2/api_keys": httpxtest.Answer(tc.status, tc.ctype, body),
				"DELETE /api/v2/api_keys/" + newKeyID: func(w http.ResponseWriter, _ *http.Request) {
					deleted.Add(1)
					w.WriteHeader(http.StatusNoContent)
				},
			})
			c, err := datadog.New().Create(t.Context(), f.request(base))
			clean(t, err, f.secrets(newKey)...)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if c.CredentialID != newKeyID || c.Value.Reveal() != newKey {
					t.Fatalf("Create returned %s", c.CredentialID)
				}
				return
			}
			e := wantPermanent(t, err, tc.status)
			if !strings.Contains(e.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", e, tc.reason)
			}
			if got := deleted.Load() == 1; got != tc.wantDelete {
				t.Errorf("the unusable key deleted: %v, want %v", got, tc.wantDelete)
			}
		})
	}
}

// An application key granted fewer scopes than asked is deleted at once.
func TestCreateFewerScopes(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeApplication, "")
	var deleted atomic.Int32
	base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{
		"POST /api/v2/current_user/application_keys": httpxtest.Answer(201, "application/json",
			`{"data":{"id":"`+newKeyID+`","type":"application_keys","attributes":{"key":"`+newKey+`","scopes":["dashboards_read"]}}}`),
		"DELETE /api/v2/current_user/application_keys/" + newKeyID: func(w http.ResponseWriter, _ *http.Request) {
			deleted.Add(1)
			w.WriteHeader(http.StatusNoContent)
		},
	})
	_, err := datadog.New().Create(t.Context(), f.request(base))
	e := wantPermanent(t, err, 201)
	if !strings.Contains(e.Reason, "missing metrics_read") || deleted.Load() != 1 {
		t.Errorf("%v (deleted %d)", e, deleted.Load())
	}
}

func TestListResponses(t *testing.T) {
	for _, tc := range []struct{ name, body, reason string }{
		{"no data", `{}`, "data is missing"},
		{"data null", `{"data":null}`, "data is missing"},
		{"data not a list", `{"data":{}}`, "wrong type"},
		{"id missing", `{"data":[{"attributes":{"name":"x"}}]}`, "data[0].id is missing or malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, datadog.KeyTypeAPI, "")
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /api/v2/api_keys": httpxtest.Answer(200, "application/json", tc.body)})
			_, err := datadog.New().Create(t.Context(), f.request(base))
			e := wantPermanent(t, err, 200)
			if !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("reason %q, want %q", e.Reason, tc.reason)
			}
			if f.srv.Created() != 0 {
				t.Error("a key was created")
			}
		})
	}
}

func TestVerifyResponses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		path      string
		status    int
		ctype     string
		body      string
		transient bool
		ok        bool
	}{
		{"valid", "/api/v1/validate", 200, "application/json", `{"valid":true}`, false, true},
		{"not valid", "/api/v1/validate", 200, "application/json", `{"valid":false}`, true, false},
		{"no valid field", "/api/v1/validate", 200, "application/json", `{}`, false, false},
		{"html", "/api/v1/validate", 200, "text/html", `<html>`, false, false},
		{"not yet", "/api/v1/validate", 403, "application/json", `{"errors":["Forbidden"]}`, true, false},
		{"throttled", "/api/v1/validate", 429, "application/json", `{"errors":["Too many requests"]}`, true, false},
		{"down", "/api/v1/validate", 503, "", ``, true, false},
		{"not found", "/api/v1/validate", 404, "application/json", `{"errors":["Not found"]}`, false, false},
		{"redirect", "/api/v1/validate", 302, "", ``, false, false},
		{"ok", "/api/v2/validate_keys", 200, "application/json", `{"status":"ok"}`, false, true},
		{"another status", "/api/v2/validate_keys", 200, "application/json", `{"status":"meh"}`, false, false},
		{"app key not yet (401)", "/api/v2/validate_keys", 401, "application/json", `{"errors":["Unauthorized"]}`, true, false},
		{"app key not yet (403)", "/api/v2/validate_keys", 403, "application/json", `{"errors":["Forbidden"]}`, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind := datadog.KeyTypeAPI
			if tc.path == "/api/v2/validate_keys" {
				kind = datadog.KeyTypeApplication
			}
			f := newFixture(t, kind, "")
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET " + tc.path: httpxtest.Answer(tc.status, tc.ctype, tc.body, "Location", "https://elsewhere.example.com/")})
			err := datadog.New().Verify(t.Context(), f.request(base), providers.Credential{Value: providers.NewValue(newKey), CredentialID: newKeyID})
			clean(t, err, f.secrets(newKey)...)
			switch {
			case tc.ok:
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
			case tc.transient:
				wantTransient(t, err, tc.status)
			default:
				wantPermanent(t, err, tc.status)
			}
		})
	}
}

func TestDeleteResponses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		ok        bool
		transient bool
	}{
		{204, true, false}, {200, true, false}, {404, true, false},
		{400, false, false}, {401, false, false}, {403, false, false}, {405, false, false},
		{429, false, true}, {500, false, true}, {503, false, true},
	} {
		f := newFixture(t, datadog.KeyTypeAPI, "")
		old := f.srv.AddAPIKey("old")
		req := f.request("")
		req.Retired = providers.NewValue(old.Value)
		base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"DELETE /api/v2/api_keys/" + old.ID: httpxtest.Answer(tc.status, "application/json", `{"errors":["x"]}`)})
		req.Params[datadog.TagSite] = base
		err := datadog.New().Revoke(t.Context(), req, old.ID)
		switch {
		case tc.ok:
			if err != nil {
				t.Errorf("DELETE %d: %v", tc.status, err)
			}
		case tc.transient:
			wantTransient(t, err, tc.status)
		default:
			wantPermanent(t, err, tc.status)
		}
	}
}

func TestRetryAfterHeaderWins(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /api/v2/api_keys": httpxtest.Answer(429, "application/json",
		`{"errors":["Too many requests"]}`, "Retry-After", "7", "X-RateLimit-Reset", "3600")})
	_, err := datadog.New().Create(t.Context(), f.request(base))
	if e := wantTransient(t, err, 429); e.RetryAfter().Seconds() != 7 {
		t.Errorf("RetryAfter() = %v, want 7s", e.RetryAfter())
	}
}

func TestErrorMessages(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	long := strings.Repeat("word ", 200)
	for _, tc := range []struct{ name, body, want string }{
		{"strings", `{"errors":["name is required","and more"]}`, "name is required; and more"},
		{"JSON:API objects", `{"errors":[{"title":"Bad Request","detail":"page[size] too big"},{"title":"Only a title"}]}`, "page[size] too big; Only a title"},
		{"control characters", `{"errors":["bad\r\n\tthing\u200b here"]}`, "bad thing here"},
		{"long", `{"errors":["` + long + `"]}`, strings.Repeat("word ", 59) + "word…"},
		{"echoed admin key", `{"errors":["key ADMIN is bad"]}`, "key [redacted] is bad"},
		{"part of the admin key", `{"errors":["key PART… is bad"]}`, "[withheld: it quoted part of a key]"},
		{"not a list", `{"errors":"nope"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.ReplaceAll(tc.body, "ADMIN", f.adminApp.Value)
			body = strings.ReplaceAll(body, "PART", f.adminApp.Value[10:30])
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /api/v2/api_keys": httpxtest.Answer(400, "application/json", body)})
			_, err := datadog.New().Create(t.Context(), f.request(base))
			clean(t, err, f.secrets()...)
			if e := wantPermanent(t, err, 400); e.Message != tc.want {
				t.Errorf("Message = %q, want %q", e.Message, tc.want)
			}
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	var reached atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Store(true) }))
	defer other.Close()
	base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /api/v2/api_keys": func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/api/v2/api_keys", http.StatusTemporaryRedirect)
	}})
	_, err := datadog.New(datadog.WithHTTPClient(&http.Client{})).Create(t.Context(), f.request(base))
	e := wantPermanent(t, err, http.StatusTemporaryRedirect)
	if !strings.Contains(e.Reason, "redirects are not followed") || reached.Load() {
		t.Errorf("redirect followed, or not reported: %v", err)
	}
}

func TestUntrustedCertificateIsPermanent(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	_, err := datadog.New().Create(t.Context(), f.request(srv.URL))
	e := wantPermanent(t, err, 0)
	if !strings.Contains(e.Reason, "TLS certificate") {
		t.Errorf("reason %q", e.Reason)
	}
	_, err = datadog.New(datadog.WithHTTPClient(srv.Client())).Create(t.Context(), f.request(srv.URL))
	wantPermanent(t, err, http.StatusNotFound)
}
