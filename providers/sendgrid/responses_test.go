package sendgrid_test

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
	"github.com/kvrotator/kvrotator/providers/sendgrid"
)

const newKey = "SG.NewKeyId00000000000000.newsecretpartnewsecretpartnewsecretpart00"

// Every answer to POST /v3/api_keys that breaks SendGrid's contract is a permanent error; a key it did
// create (an id came back) is deleted at once, so nothing is left live and unrecorded.
func TestCreateResponses(t *testing.T) {
	name := sendgrid.KeyName(secretName, idemKey)
	for _, tc := range []struct {
		name       string
		status     int
		ctype      string
		body       string
		reason     string // "" means success
		wantDelete bool
	}{
		{"created", 201, "application/json", `{"api_key":"` + newKey + `","api_key_id":"NewKeyId00000000000000","name":"` + name + `","scopes":["mail.send","alerts.read","2fa_required"]}`, "", false},
		{"200 is as good", 200, "application/json; charset=utf-8", `{"api_key":"` + newKey + `","api_key_id":"NewKeyId00000000000000"}`, "", false},
		{"more scopes than asked", 201, "application/json", `{"api_key":"` + newKey + `","api_key_id":"NewKeyId00000000000000","scopes":["mail.send","alerts.read","2fa_required","sender_verification_eligible"]}`, "", false},
		{"not JSON", 201, "text/html", `<html>`, "Content-Type", false},
		{"array", 201, "application/json", `[]`, "not a JSON object", false},
		{"bad JSON", 201, "application/json", `{"api_key":`, "not valid JSON", false},
		{"trailing data", 201, "application/json", `{"api_key_id":"NewKeyId00000000000000","api_key":"` + newKey + `"} {}`, "data after", false},
		{"no id", 201, "application/json", `{"api_key":"` + newKey + `"}`, "api_key_id is missing", false},
		{"id of wrong type", 201, "application/json", `{"api_key":"` + newKey + `","api_key_id":7}`, "api_key_id has the wrong type", false},
		{"no key", 201, "application/json", `{"api_key_id":"NewKeyId00000000000000"}`, "api_key is missing", true},
		{"key with a space", 201, "application/json", `{"api_key":"SG.a b","api_key_id":"NewKeyId00000000000000"}`, "api_key is not a key", true},
		{"the admin key back", 201, "application/json", `{"api_key":"ADMIN","api_key_id":"NewKeyId00000000000000"}`, "an existing key", true},
		{"another name", 201, "application/json", `{"api_key":"` + newKey + `","api_key_id":"NewKeyId00000000000000","name":"My API Key"}`, "name is not", true},
		{"fewer scopes", 201, "application/json", `{"api_key":"` + newKey + `","api_key_id":"NewKeyId00000000000000","scopes":["mail.send"]}`, "missing alerts.read, 2fa_required", true},
		{"too long", 201, "application/json", `{"api_key_id":"NewKeyId00000000000000","pad":"` + strings.Repeat("x", sendgrid.MaxResponseBytes) + `"}`, "exceeds 256 KiB", false},
		{"bad request", 400, "application/json", `{"errors":[{"field":"scopes","message":"invalid scope"}]}`, "rejected", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			body := strings.ReplaceAll(tc.body, "ADMIN", f.admin.Value)
			var deleted atomic.Int32
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{
				"POST /v3/api_keys": httpxtest.Answer(tc.status, tc.ctype, body),
				"DELETE /v3/api_keys/NewKeyId00000000000000": func(w http.ResponseWriter, _ *http.Request) {
					deleted.Add(1)
					w.WriteHeader(http.StatusNoContent)
				},
			})
			c, err := sendgrid.New().Create(t.Context(), f.request(base))
			clean(t, err, f.secrets(newKey)...)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if c.CredentialID != "NewKeyId00000000000000" || c.Value.Reveal() != newKey {
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

func TestListResponses(t *testing.T) {
	for _, tc := range []struct{ name, body, reason string }{
		{"no result", `{}`, "result is missing"},
		{"result null", `{"result":null}`, "result is missing"},
		{"result not a list", `{"result":{}}`, "wrong type"},
		{"id missing", `{"result":[{"name":"x"}]}`, "result[0].api_key_id is missing or malformed"},
		{"id with a slash", `{"result":[{"api_key_id":"a/b","name":"x"}]}`, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v3/api_keys": httpxtest.Answer(200, "application/json", tc.body)})
			_, err := sendgrid.New().Create(t.Context(), f.request(base))
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

func TestKeyDetailsResponses(t *testing.T) {
	for _, tc := range []struct{ name, body, reason string }{
		{"no scopes", `{"api_key_id":"ID","name":"x"}`, "scopes is missing"},
		{"another key", `{"api_key_id":"Other","name":"x","scopes":["mail.send"]}`, "not the key asked for"},
		{"empty scope", `{"api_key_id":"ID","scopes":["mail.send",""]}`, "scopes[1] is empty"},
		{"result without the key", `{"result":[{"api_key_id":"Other","scopes":["mail.send"]},{"api_key_id":"More","scopes":[]}]}`, "does not contain key"},
		{"no scopes at all", `{"api_key_id":"ID","scopes":[]}`, "full access"},
		{"scopes of the wrong type", `{"api_key_id":"ID","scopes":"mail.send"}`, "wrong type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			body := strings.ReplaceAll(tc.body, `"ID"`, `"`+f.current.ID+`"`)
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v3/api_keys/" + f.current.ID: httpxtest.Answer(200, "application/json", body)})
			_, err := sendgrid.New().Create(t.Context(), f.request(base))
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
		status    int
		ctype     string
		body      string
		transient bool
		ok        bool
	}{
		{"scopes", 200, "application/json", `{"scopes":["mail.send"]}`, false, true},
		{"no scopes field", 200, "application/json", `{}`, false, false},
		{"html", 200, "text/html", `<html>`, false, false},
		{"not yet", 401, "application/json", `{"errors":[{"field":null,"message":"authorization required"}]}`, true, false},
		{"forbidden", 403, "application/json", `{"errors":[{"field":null,"message":"access forbidden"}]}`, false, false},
		{"throttled", 429, "application/json", `{"errors":[{"field":null,"message":"too many requests"}]}`, true, false},
		{"down", 503, "", ``, true, false},
		{"timeout", 408, "", ``, true, false},
		{"not found", 404, "application/json", `{"errors":[{"field":null,"message":"not found"}]}`, false, false},
		{"redirect", 302, "", ``, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v3/scopes": httpxtest.Answer(tc.status, tc.ctype, tc.body, "Location", "https://elsewhere.example.com/")})
			err := sendgrid.New().Verify(t.Context(), f.request(base), providers.Credential{Value: providers.NewValue(newKey), CredentialID: "NewKeyId00000000000000"})
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
		f := newFixture(t)
		base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"DELETE /v3/api_keys/OldKey": httpxtest.Answer(tc.status, "application/json", `{"errors":[{"field":null,"message":"x"}]}`)})
		err := sendgrid.New().Revoke(t.Context(), f.request(base), "OldKey")
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
	f := newFixture(t)
	base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v3/api_keys": httpxtest.Answer(429, "application/json",
		`{"errors":[{"field":null,"message":"too many requests"}]}`, "Retry-After", "7", "X-RateLimit-Reset", "9999999999")})
	_, err := sendgrid.New().Create(t.Context(), f.request(base))
	if e := wantTransient(t, err, 429); e.RetryAfter().Seconds() != 7 {
		t.Errorf("RetryAfter() = %v, want 7s", e.RetryAfter())
	}
}

func TestErrorMessages(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("word ", 200)
	for _, tc := range []struct{ name, body, want string }{
		{"field and message", `{"errors":[{"field":"name","message":"missing required argument"},{"field":null,"message":"and more"}]}`, "name: missing required argument; and more"},
		{"control characters", `{"errors":[{"message":"bad\r\n\tthing\u200b here"}]}`, "bad thing here"},
		{"long", `{"errors":[{"message":"` + long + `"}]}`, strings.Repeat("word ", 59) + "word…"},
		{"echoed admin key", `{"errors":[{"message":"key ADMIN is bad"}]}`, "key [redacted] is bad"},
		{"part of the admin key", `{"errors":[{"message":"key PART… is bad"}]}`, "[withheld: it quoted part of a key]"},
		{"not a list", `{"errors":"nope"}`, ""},
		{"no message", `{"errors":[{"field":"name"}]}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.ReplaceAll(tc.body, "ADMIN", f.admin.Value)
			body = strings.ReplaceAll(body, "PART", f.admin.Value[10:40])
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v3/api_keys": httpxtest.Answer(400, "application/json", body)})
			_, err := sendgrid.New().Create(t.Context(), f.request(base))
			clean(t, err, f.secrets()...)
			if e := wantPermanent(t, err, 400); e.Message != tc.want {
				t.Errorf("Message = %q, want %q", e.Message, tc.want)
			}
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	f := newFixture(t)
	var reached atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Store(true) }))
	defer other.Close()
	base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v3/api_keys": func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v3/api_keys", http.StatusTemporaryRedirect)
	}})
	client := &http.Client{} // a caller's client that would follow redirects
	_, err := sendgrid.New(sendgrid.WithHTTPClient(client)).Create(t.Context(), f.request(base))
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
	_, err := sendgrid.New().Create(t.Context(), f.request(srv.URL))
	e := wantPermanent(t, err, 0)
	if !strings.Contains(e.Reason, "TLS certificate") {
		t.Errorf("reason %q", e.Reason)
	}

	// With the server's roots it is trusted.
	_, err = sendgrid.New(sendgrid.WithHTTPClient(srv.Client())).Create(t.Context(), f.request(srv.URL))
	wantPermanent(t, err, http.StatusNotFound)
}
