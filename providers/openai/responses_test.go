package openai_test

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/openai"
)

const (
	newKey = "sk-svcacct-NewKeyNewKeyNewKeyNewKeyNewKeyNewKeyNewKeyNewKey0000"
	newID  = "svc_acct_new000000000000"
)

// Every answer to POST …/service_accounts that breaks OpenAI's contract is a permanent error; an account
// it did create (an id came back) is deleted at once, so nothing is left live and unrecorded.
func TestCreateResponses(t *testing.T) {
	name := openai.ServiceAccountName(secretName, idemKey)
	key := func(value string) string {
		return `"api_key":{"object":"organization.project.service_account.api_key","id":"key_1","name":"Secret key","value":"` + value + `","created_at":1}`
	}
	for _, tc := range []struct {
		name       string
		status     int
		ctype      string
		body       string
		reason     string // "" means success
		wantDelete bool
	}{
		{"created", 200, "application/json", `{"object":"organization.project.service_account","id":"` + newID + `","name":"` + name + `","role":"member",` + key(newKey) + `}`, "", false},
		{"201 is as good", 201, "application/json; charset=utf-8", `{"id":"` + newID + `",` + key(newKey) + `}`, "", false},
		{"not JSON", 200, "text/html", `<html>`, "Content-Type", false},
		{"array", 200, "application/json", `[]`, "not a JSON object", false},
		{"bad JSON", 200, "application/json", `{"id":`, "not valid JSON", false},
		{"trailing data", 200, "application/json", `{"id":"` + newID + `",` + key(newKey) + `} {}`, "data after", false},
		{"no id", 200, "application/json", `{` + key(newKey) + `}`, "id is missing", false},
		{"id of wrong type", 200, "application/json", `{"id":7,` + key(newKey) + `}`, "id has the wrong type", false},
		{"a key for an id", 200, "application/json", `{"id":"sk-svcacct-abc",` + key(newKey) + `}`, "id is missing or malformed", false},
		{"no key", 200, "application/json", `{"id":"` + newID + `","api_key":null}`, "created without a key", true},
		{"no value", 200, "application/json", `{"id":"` + newID + `",` + key("") + `}`, "api_key.value is missing", true},
		{"value with a space", 200, "application/json", `{"id":"` + newID + `",` + key("sk-svcacct-a b") + `}`, "not a key", true},
		{"the admin key back", 200, "application/json", `{"id":"` + newID + `",` + key("ADMIN") + `}`, "an existing key", true},
		{"the current key back", 200, "application/json", `{"id":"` + newID + `",` + key("CURRENT") + `}`, "an existing key", true},
		{"the current account", 200, "application/json", `{"id":"CURRENTID",` + key(newKey) + `}`, "the current service account's", false},
		{"another name", 200, "application/json", `{"id":"` + newID + `","name":"My Service Account",` + key(newKey) + `}`, "name is not", true},
		{"too long", 200, "application/json", `{"id":"` + newID + `","pad":"` + strings.Repeat("x", openai.MaxResponseBytes) + `"}`, "exceeds 512 KiB", false},
		{"bad request", 400, "application/json", `{"error":{"message":"Invalid 'name'.","type":"invalid_request_error","param":"name","code":null}}`, "rejected", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			body := strings.NewReplacer("ADMIN", f.admin, "CURRENTID", f.current.ID, "CURRENT", f.current.Key.Value).Replace(tc.body)
			var deleted atomic.Int32
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{
				"POST " + f.accountsPath(""): httpxtest.Answer(tc.status, tc.ctype, body),
				"DELETE " + f.accountsPath("/"+newID): func(w http.ResponseWriter, _ *http.Request) {
					deleted.Add(1)
					httpxtest.Answer(200, "application/json", `{"object":"organization.project.service_account.deleted","id":"`+newID+`","deleted":true}`)(w, nil)
				},
			})
			c, err := openai.New().Create(t.Context(), f.request(base))
			clean(t, err, f.secrets(newKey)...)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if c.CredentialID != newID || c.Value.Reveal() != newKey {
					t.Fatalf("Create returned %s", c.CredentialID)
				}
				return
			}
			e := wantPermanent(t, err, tc.status)
			if !strings.Contains(e.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", e, tc.reason)
			}
			if got := deleted.Load() == 1; got != tc.wantDelete {
				t.Errorf("the unusable account deleted: %v, want %v", got, tc.wantDelete)
			}
			if _, live := f.srv.ServiceAccount(f.current.ID); !live {
				t.Error("the current account was deleted")
			}
		})
	}
}

func TestListResponses(t *testing.T) {
	for _, tc := range []struct{ name, body, reason string }{
		{"no data", `{"object":"list","has_more":false}`, "data is missing"},
		{"no has_more", `{"object":"list","data":[]}`, "has_more is missing"},
		{"bad id", `{"object":"list","data":[{"id":"a b","name":"x"}],"has_more":false}`, "data[0].id is missing or malformed"},
		{"more without a cursor", `{"object":"list","data":[],"has_more":true}`, "no new cursor"},
		{"the same cursor again", `{"object":"list","data":[{"id":"svc_acct_1","name":"x"}],"has_more":true,"last_id":"svc_acct_1"}`, "no new cursor"},
		{"data of wrong type", `{"object":"list","data":{},"has_more":false}`, "wrong type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET " + f.accountsPath(""): httpxtest.Answer(200, "application/json", tc.body)})
			_, err := openai.New().Create(t.Context(), f.request(base))
			if e := wantPermanent(t, err, 200); !strings.Contains(e.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", e, tc.reason)
			}
			if f.srv.Created() != 0 {
				t.Error("created although the list could not be read")
			}
		})
	}
	t.Run("the last item's id when last_id is absent", func(t *testing.T) {
		f := newFixture(t)
		var calls atomic.Int32
		base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET " + f.accountsPath(""): func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				httpxtest.Answer(200, "application/json", `{"object":"list","data":[{"id":"svc_acct_1","name":"x"}],"has_more":true}`)(w, r)
				return
			}
			if r.URL.Query().Get("after") != "svc_acct_1" {
				t.Errorf("second page asked with %q", r.URL.RawQuery)
			}
			httpxtest.Answer(200, "application/json", `{"object":"list","data":[],"has_more":false}`)(w, r)
		}})
		if _, err := openai.New().Create(t.Context(), f.request(base)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVerifyResponses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		ctype     string
		body      string
		reason    string // "" means success
		transient bool
	}{
		{"models", 200, "application/json", `{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}`, "", false},
		{"no models", 200, "application/json", `{"object":"list","data":[]}`, "", false},
		{"no data", 200, "application/json", `{"object":"list"}`, "data is missing", false},
		{"not JSON", 200, "text/plain", `ok`, "Content-Type", false},
		{"propagating", 401, "application/json", `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, "propagate", true},
		{"forbidden", 403, "application/json", `{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: model.read.","type":"invalid_request_error","param":null,"code":null}}`, "forbids the new key to list models", false},
		{"rate-limited", 429, "application/json", `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`, "rate-limited", true},
		{"out of quota", 429, "application/json", `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`, "quota is exhausted", false},
		{"spend limit", 429, "application/json", `{"error":{"message":"over","type":"invalid_request_error","param":null,"code":"project_spend_limit_exceeded"}}`, "quota is exhausted", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v1/models": httpxtest.Answer(tc.status, tc.ctype, tc.body)})
			req := f.request(base)
			err := openai.New().Verify(t.Context(), req, providers.Credential{CredentialID: newID, Value: providers.NewValue(newKey)})
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *openai.Error
			if tc.transient {
				e = wantTransient(t, err, tc.status)
			} else {
				e = wantPermanent(t, err, tc.status)
			}
			if !strings.Contains(e.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", e, tc.reason)
			}
		})
	}
}

func TestDeleteResponses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		reason string // "" means success
	}{
		{"deleted", 200, `{"object":"organization.project.service_account.deleted","id":"ID","deleted":true}`, ""},
		{"gone", 404, `{"error":{"message":"No such service account","type":"invalid_request_error","param":null,"code":null}}`, ""},
		{"not deleted", 200, `{"id":"ID","deleted":false}`, "deleted is not true"},
		{"nothing said", 200, `{}`, "deleted is not true"},
		{"archived project", 400, `{"error":{"message":"Project is archived","type":"invalid_request_error","param":null,"code":null}}`, "rejected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := openai.New()
			c, err := p.Create(t.Context(), f.request(f.srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			mine := f.srv.AddServiceAccount(f.project, openai.ServiceAccountName(secretName, "kvr-2222222222222222"))
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"DELETE " + f.accountsPath("/"+mine.ID): httpxtest.Answer(tc.status, "application/json",
				strings.ReplaceAll(tc.body, "ID", mine.ID))})
			err = p.Revoke(t.Context(), f.revokeRequest(base, c, "", false), mine.ID)
			if tc.reason == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if e := wantPermanent(t, err, tc.status); !strings.Contains(e.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", e, tc.reason)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("word ", 200)
	for _, tc := range []struct{ name, body, code, want string }{
		{"message and code", `{"error":{"message":"Invalid 'limit'.","type":"invalid_request_error","param":"limit","code":"invalid_value"}}`, "invalid_value", "Invalid 'limit'."},
		{"no code: the type", `{"error":{"message":"Bad.","type":"invalid_request_error","param":null,"code":null}}`, "invalid_request_error", "Bad."},
		{"control characters", `{"error":{"message":"bad\r\n\tthing\u200b here","type":"x","code":"x"}}`, "x", "bad thing here"},
		{"long", `{"error":{"message":"` + long + `","type":"x","code":"x"}}`, "x", strings.Repeat("word ", 59) + "word…"},
		{"echoed admin key", `{"error":{"message":"Incorrect API key provided: ADMIN.","type":"invalid_request_error","code":"invalid_api_key"}}`, "invalid_api_key", "Incorrect API key provided: sk-admin-[redacted]."},
		{"part of the admin key", `{"error":{"message":"key PART is bad","type":"x","code":"x"}}`, "x", "[withheld: it quoted part of a key]"},
		{"as OpenAI shows a key", `{"error":{"message":"Incorrect API key provided: sk-ad****SHOWN.","type":"invalid_request_error","code":"invalid_api_key"}}`, "invalid_api_key", "Incorrect API key provided: sk-ad****SHOWN."},
		{"not an object", `{"error":"nope"}`, "", ""},
		{"no message", `{"error":{"type":"x"}}`, "x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.ReplaceAll(tc.body, "ADMIN", f.admin)
			body = strings.ReplaceAll(body, "PART", f.admin[12:40])
			want := strings.ReplaceAll(tc.want, "SHOWN", f.admin[len(f.admin)-4:])
			body = strings.ReplaceAll(body, "SHOWN", f.admin[len(f.admin)-4:])
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET " + f.accountsPath(""): httpxtest.Answer(400, "application/json", body,
				"x-request-id", "req_0123456789")})
			_, err := openai.New().Create(t.Context(), f.request(base))
			clean(t, err, f.secrets()...)
			e := wantPermanent(t, err, 400)
			if e.Message != want || e.Code != tc.code || e.RequestID != "req_0123456789" {
				t.Errorf("Message = %q, code %q, request id %q; want %q, %q", e.Message, e.Code, e.RequestID, want, tc.code)
			}
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	f := newFixture(t)
	var reached atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Store(true) }))
	defer other.Close()
	base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET " + f.accountsPath(""): func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}})
	client := &http.Client{} // a caller's client that would follow redirects
	_, err := openai.New(openai.WithHTTPClient(client)).Create(t.Context(), f.request(base))
	e := wantPermanent(t, err, http.StatusTemporaryRedirect)
	if !strings.Contains(e.Reason, "redirects are not followed") || reached.Load() {
		t.Errorf("redirect followed, or not reported: %v", err)
	}
}

func TestUntrustedCertificateIsPermanent(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	_, err := openai.New().Create(t.Context(), f.request(srv.URL))
	e := wantPermanent(t, err, 0)
	if !strings.Contains(e.Reason, "TLS certificate") {
		t.Errorf("reason %q", e.Reason)
	}

	// With the server's roots it is trusted.
	_, err = openai.New(openai.WithHTTPClient(srv.Client())).Create(t.Context(), f.request(srv.URL))
	wantPermanent(t, err, http.StatusNotFound)
}
