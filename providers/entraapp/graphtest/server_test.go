package graphtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/entraapp/graphtest"
)

// call sends a request to the server and decodes the JSON answer (nil for an empty body).
func call(t *testing.T, s *graphtest.Server, method, path, contentType, body string, bearer bool) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer {
		req.Header.Set("Authorization", "Bearer "+s.GraphToken)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, raw)
		}
	}
	return resp.StatusCode, out
}

func TestGraphContract(t *testing.T) {
	s := graphtest.NewServer()
	defer s.Close()
	obj, appID := s.AddApp()

	status, pw := call(t, s, "POST", "/v1.0/applications/"+obj+"/addPassword", "application/json",
		`{"passwordCredential":{"displayName":"kvrotator k1","endDateTime":"2099-01-01T00:00:00Z"}}`, true)
	secret, _ := pw["secretText"].(string)
	if status != 200 || len(secret) != 40 || pw["keyId"] == nil || pw["hint"] != secret[:3] || pw["endDateTime"] != "2099-01-01T00:00:00Z" {
		t.Fatalf("addPassword: %d %v", status, pw)
	}

	status, app := call(t, s, "GET", "/v1.0/applications(appId='"+appID+"')?$select=id,appId,passwordCredentials", "", "", true)
	pcs, _ := app["passwordCredentials"].([]any)
	if status != 200 || app["id"] != obj || len(pcs) != 1 || pcs[0].(map[string]any)["secretText"] != nil || app["displayName"] != nil {
		t.Fatalf("get: %d %v", status, app)
	}

	status, body := call(t, s, "POST", "/v1.0/applications/"+obj+"/removePassword", "application/json", `{"keyId":"`+pw["keyId"].(string)+`"}`, true)
	if status != 204 || body != nil {
		t.Fatalf("removePassword: %d %v", status, body)
	}
	status, body = call(t, s, "POST", "/v1.0/applications/"+obj+"/removePassword", "application/json", `{"keyId":"`+pw["keyId"].(string)+`"}`, true)
	if e := body["error"].(map[string]any); status != 404 || !strings.Contains(e["message"].(string), "No password credential found") {
		t.Fatalf("removePassword again: %d %v", status, body)
	}

	if status, body := call(t, s, "GET", "/v1.0/applications/"+obj, "", "", false); status != 401 || body["error"].(map[string]any)["code"] != "InvalidAuthenticationToken" {
		t.Fatalf("no token: %d %v", status, body)
	}
	s.SetForbidden(obj, true)
	status, body = call(t, s, "POST", "/v1.0/applications/"+obj+"/addPassword", "application/json", `{"passwordCredential":{}}`, true)
	e := body["error"].(map[string]any)
	if status != 403 || e["code"] != "Authorization_RequestDenied" || e["innerError"].(map[string]any)["request-id"] == "" {
		t.Fatalf("forbidden: %d %v", status, body)
	}
	s.FailNext(graphtest.GetApplication, 1, graphtest.Fault{Status: 429, Code: "TooManyRequests", RetryAfter: "5"})
	if status, _ := call(t, s, "GET", "/v1.0/applications/"+obj, "", "", true); status != 429 {
		t.Fatalf("throttled: %d", status)
	}
}

func TestTokenContract(t *testing.T) {
	s := graphtest.NewServer()
	defer s.Close()
	obj, appID := s.AddApp()
	s.SeedPassword(obj, "", "seeded-secret-value-0123456789", time.Now().Add(time.Hour))
	token := func(tenant, clientID, secret string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
			"scope": {"https://graph.microsoft.com/.default"}}
		return call(t, s, "POST", "/"+tenant+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", form.Encode(), false)
	}
	codes := func(body map[string]any) float64 { return body["error_codes"].([]any)[0].(float64) }

	if status, body := token(s.TenantID, appID, "seeded-secret-value-0123456789"); status != 200 || body["access_token"] == "" {
		t.Fatalf("sign-in: %d %v", status, body)
	}
	if status, body := token(graphtest.Domain, appID, "wrong"); status != 401 || body["error"] != "invalid_client" || codes(body) != 7000215 ||
		!strings.HasPrefix(body["error_description"].(string), "AADSTS7000215: ") {
		t.Fatalf("wrong secret: %d %v", status, body)
	}
	if status, body := token("other.onmicrosoft.com", appID, "x"); status != 400 || codes(body) != 90002 {
		t.Fatalf("unknown tenant: %d %v", status, body)
	}
	if status, body := token(s.TenantID, "0a0a0a0a-0000-4000-8000-000000000009", "x"); status != 400 || codes(body) != 700016 {
		t.Fatalf("unknown app: %d %v", status, body)
	}

	// A new password is rejected for its first sign-ins (propagation); a seeded one is not.
	s.SetPropagation(2)
	_, pw := call(t, s, "POST", "/v1.0/applications/"+obj+"/addPassword", "application/json", `{"passwordCredential":{}}`, true)
	for i := range 2 {
		if status, body := token(s.TenantID, appID, pw["secretText"].(string)); status != 401 || codes(body) != 7000215 {
			t.Fatalf("attempt %d: %d %v", i+1, status, body)
		}
	}
	if status, _ := token(s.TenantID, appID, pw["secretText"].(string)); status != 200 {
		t.Fatalf("after propagation: %d", status)
	}
}

// Listings carry each password's hint, the first three characters of its secret text, unless hints
// are off; Requests counts every request, whatever its route.
func TestHintsAndRequests(t *testing.T) {
	s := graphtest.NewServer()
	defer s.Close()
	obj, _ := s.AddApp()
	s.SeedPassword(obj, "by hand", "Abc8Q~seeded-secret-value", time.Now().Add(time.Hour))
	if n := s.Requests(); n != 0 {
		t.Fatalf("%d requests before any", n)
	}
	hint := func() any {
		_, app := call(t, s, "GET", "/v1.0/applications/"+obj+"?$select=passwordCredentials", "", "", true)
		return app["passwordCredentials"].([]any)[0].(map[string]any)["hint"]
	}
	if h := hint(); h != "Abc" {
		t.Fatalf("hint %v, want Abc", h)
	}
	s.SetHints(false)
	if h := hint(); h != nil {
		t.Fatalf("hint %v with hints off", h)
	}
	call(t, s, "GET", "/not/a/route", "", "", true)
	if n := s.Requests(); n != 3 {
		t.Fatalf("Requests() = %d, want 3", n)
	}
}
