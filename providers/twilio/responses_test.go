package twilio_test

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
	"github.com/kvrotator/kvrotator/providers/twilio"
	"github.com/kvrotator/kvrotator/providers/twilio/twiliotest"
)

const (
	newSID    = "SKfedcba9876543210fedcba9876543210"
	newSecret = "NewSecretNewSecretNewSecret01234"
)

// Every answer to POST /v1/Keys that breaks Twilio's contract is a permanent error; a key it did create
// (an SID came back) is deleted at once, so nothing is left live and unrecorded.
func TestCreateResponses(t *testing.T) {
	name := twilio.KeyName(secretName, idemKey)
	for _, tc := range []struct {
		name       string
		status     int
		ctype      string
		body       string
		reason     string
		wantDelete bool
	}{
		{"created", 201, "application/json", `{"sid":"` + newSID + `","friendly_name":"` + name + `","secret":"` + newSecret + `","policy":null}`, "", false},
		{"200 is as good", 200, "application/json; charset=utf-8", `{"sid":"` + newSID + `","secret":"` + newSecret + `"}`, "", false},
		{"not JSON", 201, "text/html", `<html>`, "Content-Type", false},
		{"no sid", 201, "application/json", `{"secret":"` + newSecret + `"}`, "sid is missing or malformed", false},
		{"an account SID", 201, "application/json", `{"sid":"AC0123456789abcdef0123456789abcdef","secret":"x"}`, "sid is missing or malformed", false},
		{"no secret", 201, "application/json", `{"sid":"` + newSID + `"}`, "secret is missing", true},
		{"secret with a space", 201, "application/json", `{"sid":"` + newSID + `","secret":"a b"}`, "not a key secret", true},
		{"the admin key back", 201, "application/json", `{"sid":"ADMIN","secret":"` + newSecret + `"}`, "an existing key's", false},
		{"another name", 201, "application/json", `{"sid":"` + newSID + `","secret":"` + newSecret + `","friendly_name":"Mine"}`, "friendly_name is not", true},
		{"too long", 201, "application/json", `{"pad":"` + strings.Repeat("x", twilio.MaxResponseBytes) + `"}`, "exceeds 1024 KiB", false},
		{"bad request", 400, "application/json", `{"code":20001,"message":"Invalid parameter","more_info":"https://www.twilio.com/docs/errors/20001","status":400}`, "rejected", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twiliotest.TypeStandard)
			body := strings.ReplaceAll(tc.body, "ADMIN", f.adminID)
			var deleted atomic.Int32
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{
				"POST /v1/Keys": httpxtest.Answer(tc.status, tc.ctype, body),
				"DELETE /v1/Keys/" + newSID: func(w http.ResponseWriter, _ *http.Request) {
					deleted.Add(1)
					w.WriteHeader(http.StatusNoContent)
				},
			})
			c, err := twilio.New().Create(t.Context(), f.request(base))
			clean(t, err, f.secrets(newSecret)...)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if c.CredentialID != newSID || c.Value.Reveal() != newSID+":"+newSecret {
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
			if _, live := f.srv.Key(f.adminID); !live {
				t.Fatal("the admin key was deleted")
			}
		})
	}
}

// A restricted key asked for and a standard key returned is deleted at once.
func TestCreateWithoutThePolicy(t *testing.T) {
	f := newFixture(t, twiliotest.TypeRestricted)
	var deleted atomic.Int32
	base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{
		"POST /v1/Keys": httpxtest.Answer(201, "application/json", `{"sid":"`+newSID+`","secret":"`+newSecret+`","policy":null}`),
		"DELETE /v1/Keys/" + newSID: func(w http.ResponseWriter, _ *http.Request) {
			deleted.Add(1)
			w.WriteHeader(http.StatusNoContent)
		},
	})
	_, err := twilio.New().Create(t.Context(), f.request(base))
	e := wantPermanent(t, err, 201)
	if !strings.Contains(e.Reason, "without the policy") || deleted.Load() != 1 {
		t.Errorf("%v (deleted %d)", e, deleted.Load())
	}
}

func TestListResponses(t *testing.T) {
	for _, tc := range []struct{ name, body, reason string }{
		{"no keys", `{}`, "keys is missing"},
		{"keys not a list", `{"keys":{}}`, "wrong type"},
		{"sid missing", `{"keys":[{"friendly_name":"x"}]}`, "keys[0].sid is missing or malformed"},
		{"next page elsewhere", `{"keys":[],"meta":{"next_page_url":"https://evil.example.com/v1/Keys?AccountSid=ACCOUNT"}}`, "leads elsewhere"},
		{"next page for another account", `{"keys":[],"meta":{"next_page_url":"BASE/v1/Keys?AccountSid=AC99999999999999999999999999999999"}}`, "another account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twiliotest.TypeStandard)
			var base string
			base = intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v1/Keys": func(w http.ResponseWriter, r *http.Request) {
				body := strings.ReplaceAll(strings.ReplaceAll(tc.body, "ACCOUNT", f.srv.Account.SID), "BASE", base)
				httpxtest.Answer(200, "application/json", body)(w, r)
			}})
			_, err := twilio.New().Create(t.Context(), f.request(base))
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
		{"a page", 200, "application/json", `{"messages":[],"page":0}`, false, true},
		{"html", 200, "text/html", `<html>`, false, false},
		{"not yet", 401, "application/json", `{"code":20003,"message":"Authenticate","more_info":"x","status":401}`, true, false},
		{"not permitted", 403, "application/json", `{"code":20403,"message":"Forbidden","more_info":"x","status":403}`, false, false},
		{"throttled", 429, "application/json", `{"code":20429,"message":"Too Many Requests","more_info":"x","status":429}`, true, false},
		{"down", 503, "", ``, true, false},
		{"not found", 404, "application/json", `{"code":20404,"message":"not found","more_info":"x","status":404}`, false, false},
		{"redirect", 302, "", ``, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twiliotest.TypeStandard)
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{
				"GET /2010-04-01/Accounts/" + f.srv.Account.SID + "/Messages.json": httpxtest.Answer(tc.status, tc.ctype, tc.body, "Location", "https://elsewhere.example.com/")})
			err := twilio.New().Verify(t.Context(), f.request(base), providers.Credential{Value: providers.NewValue(newSID + ":" + newSecret), CredentialID: newSID})
			clean(t, err, f.secrets(newSecret)...)
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
		f := newFixture(t, twiliotest.TypeStandard)
		old := "SK0000000000000000000000000000a1d0"
		base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"DELETE /v1/Keys/" + old: httpxtest.Answer(tc.status, "application/json",
			`{"code":20001,"message":"x","more_info":"x","status":400}`)})
		err := twilio.New().Revoke(t.Context(), f.request(base), old)
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

func TestErrorDetails(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	for _, tc := range []struct{ name, body, code, message string }{
		{"Twilio's shape", `{"code":20404,"message":"The requested resource was not found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}`, "20404", "The requested resource was not found"},
		{"control characters", `{"code":20404,"message":"bad\r\n\tthing\u200b here"}`, "20404", "bad thing here"},
		{"echoed admin secret", `{"code":20003,"message":"secret ADMIN is bad"}`, "20003", "secret [redacted] is bad"},
		{"part of the admin secret", `{"code":20003,"message":"secret PART… is bad"}`, "20003", "[withheld: it quoted part of a secret]"},
		{"a code that is not a number", `{"code":"x","message":"m"}`, "", "m"},
		{"not an object", `[]`, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.ReplaceAll(tc.body, "ADMIN", secretOf(f.admin))
			body = strings.ReplaceAll(body, "PART", secretOf(f.admin)[4:20])
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v1/Keys": httpxtest.Answer(404, "application/json", body, "Twilio-Request-Id", "RQ0123")})
			_, err := twilio.New().Create(t.Context(), f.request(base))
			clean(t, err, f.secrets()...)
			e := wantPermanent(t, err, 404)
			if e.Code != tc.code || e.Message != tc.message || e.RequestID != "RQ0123" {
				t.Errorf("Code %q Message %q RequestID %q; want %q %q", e.Code, e.Message, e.RequestID, tc.code, tc.message)
			}
		})
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	var reached atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Store(true) }))
	defer other.Close()
	base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v1/Keys": func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v1/Keys", http.StatusTemporaryRedirect)
	}})
	_, err := twilio.New(twilio.WithHTTPClient(&http.Client{})).Create(t.Context(), f.request(base))
	e := wantPermanent(t, err, http.StatusTemporaryRedirect)
	if !strings.Contains(e.Reason, "redirects are not followed; set twilio-iam-url") || reached.Load() {
		t.Errorf("redirect followed, or not reported: %v", err)
	}
}

func TestUntrustedCertificateIsPermanent(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	_, err := twilio.New().Create(t.Context(), f.request(srv.URL))
	e := wantPermanent(t, err, 0)
	if !strings.Contains(e.Reason, "TLS certificate") {
		t.Errorf("reason %q", e.Reason)
	}
}
