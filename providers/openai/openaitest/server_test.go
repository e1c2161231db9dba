package openaitest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/openai/openaitest"
)

// do sends a request with a bearer key and returns the status, the header and the decoded JSON body.
func do(t *testing.T, method, url, key, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object", method, url, raw)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, url, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, resp.Header, out
}

// apiError is the {"error":{…}} of a body: its message, type and code ("" when null).
func apiError(t *testing.T, body map[string]any) (msg, typ, code string) {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %v", body)
	}
	for _, f := range []string{"message", "type", "param", "code"} {
		if _, ok := e[f]; !ok {
			t.Errorf("error object without %s: %v", f, e)
		}
	}
	msg, _ = e["message"].(string)
	typ, _ = e["type"].(string)
	code, _ = e["code"].(string)
	return msg, typ, code
}

func TestTheDocumentedContract(t *testing.T) {
	s := openaitest.NewServer()
	defer s.Close()
	project := s.AddProject()
	admin := s.AddAdminKey(true)
	base := s.URL + "/v1/organization/projects/" + project

	status, h, body := do(t, "POST", base+"/service_accounts", admin, `{"name":"app"}`)
	if status != 200 || body["object"] != "organization.project.service_account" || body["name"] != "app" || body["role"] != "member" {
		t.Fatalf("create: %d %v", status, body)
	}
	for _, name := range []string{"x-request-id", "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"} {
		if h.Get(name) == "" {
			t.Errorf("no %s header", name)
		}
	}
	id := body["id"].(string)
	key := body["api_key"].(map[string]any)
	value := key["value"].(string)
	if key["object"] != "organization.project.service_account.api_key" || !strings.HasPrefix(value, "sk-svcacct-") || key["expires_at"] != nil {
		t.Errorf("api_key %v", key)
	}

	// The value is shown once: neither the lists nor the account have it; the key list shows it redacted.
	for _, url := range []string{base + "/service_accounts", base + "/service_accounts/" + id, base + "/api_keys"} {
		_, _, body := do(t, "GET", url, admin, "")
		if js, _ := json.Marshal(body); strings.Contains(string(js), value) {
			t.Errorf("GET %s shows the key's value", url)
		}
	}
	_, _, keys := do(t, "GET", base+"/api_keys", admin, "")
	k := keys["data"].([]any)[0].(map[string]any)
	owner := k["owner"].(map[string]any)
	if k["redacted_value"] != openaitest.Redacted(value) || owner["type"] != "service_account" || owner["service_account"].(map[string]any)["id"] != id {
		t.Errorf("project key %v", k)
	}
	if status, _, body := do(t, "GET", s.URL+"/v1/models", value, ""); status != 200 || body["object"] != "list" || len(body["data"].([]any)) == 0 {
		t.Errorf("models with the new key: %d %v", status, body)
	}

	// Pages: limit and after, has_more and last_id.
	for i := range 4 {
		do(t, "POST", base+"/service_accounts", admin, fmt.Sprintf(`{"name":"more-%d"}`, i))
	}
	seen, after := 0, ""
	for range 10 {
		url := base + "/service_accounts?limit=2"
		if after != "" {
			url += "&after=" + after
		}
		status, _, page := do(t, "GET", url, admin, "")
		if status != 200 || page["object"] != "list" {
			t.Fatalf("page: %d %v", status, page)
		}
		seen += len(page["data"].([]any))
		if page["has_more"] != true {
			break
		}
		after = page["last_id"].(string)
	}
	if seen != 5 {
		t.Errorf("paging saw %d service accounts, want 5", seen)
	}

	// A key policy: expires_in_seconds required and bounded.
	s.SetMaxKeyLifetime(48 * time.Hour)
	if status, _, _ := do(t, "POST", base+"/service_accounts", admin, `{"name":"x"}`); status != 400 {
		t.Errorf("without expires_in_seconds under a policy: %d", status)
	}
	if status, _, body := do(t, "POST", base+"/service_accounts", admin, `{"name":"x","expires_in_seconds":3600}`); status != 200 ||
		body["api_key"].(map[string]any)["expires_at"] == nil {
		t.Errorf("with expires_in_seconds: %d %v", status, body)
	}
	s.SetMaxKeyLifetime(0)

	// Errors.
	reader := s.AddAdminKey(false)
	for _, tc := range []struct {
		method, path, key, body string
		status                  int
		code, message           string
	}{
		{"GET", base + "/service_accounts", "", "", 401, "invalid_api_key", "Incorrect API key provided"},
		{"GET", base + "/service_accounts", "sk-admin-nope", "", 401, "invalid_api_key", "Incorrect API key provided"},
		{"GET", base + "/service_accounts", value, "", 403, "", "Missing scopes: api.management.read"},
		{"POST", base + "/service_accounts", reader, `{"name":"x"}`, 403, "", "Missing scopes: api.management.write"},
		{"DELETE", base + "/service_accounts/" + id, reader, "", 403, "", "Missing scopes: api.management.write"},
		{"GET", s.URL + "/v1/models", admin, "", 403, "", "Admin API keys cannot be used"},
		{"POST", base + "/service_accounts", admin, `{}`, 400, "", "Missing required parameter: 'name'"},
		{"POST", base + "/service_accounts", admin, `{"name":"x","expires_in_seconds":0}`, 400, "", "Invalid 'expires_in_seconds'"},
		{"GET", base + "/service_accounts?limit=101", admin, "", 400, "", "Invalid 'limit'"},
		{"GET", base + "/service_accounts/svc_acct_nope", admin, "", 404, "", "No such service account"},
		{"DELETE", base + "/service_accounts/svc_acct_nope", admin, "", 404, "", "No such service account"},
		{"GET", s.URL + "/v1/organization/projects/proj_nope/service_accounts", admin, "", 404, "", "No such project"},
	} {
		status, _, body := do(t, tc.method, tc.path, tc.key, tc.body)
		msg, _, code := apiError(t, body)
		if status != tc.status || code != tc.code || !strings.Contains(msg, tc.message) {
			t.Errorf("%s %s: %d %v, want %d %s %q", tc.method, tc.path, status, body, tc.status, tc.code, tc.message)
		}
		if tc.key != "" && strings.Contains(msg, tc.key) {
			t.Errorf("%s %s: the message quotes the key whole", tc.method, tc.path)
		}
	}

	status, _, body = do(t, "DELETE", base+"/service_accounts/"+id, admin, "")
	if status != 200 || body["deleted"] != true || body["id"] != id || body["object"] != "organization.project.service_account.deleted" {
		t.Errorf("delete: %d %v", status, body)
	}
	if status, _, _ := do(t, "GET", s.URL+"/v1/models", value, ""); status != 401 || s.Works(value) {
		t.Errorf("the deleted account's key still authenticates: %d", status)
	}
}

func TestFaults(t *testing.T) {
	s := openaitest.NewServer()
	defer s.Close()
	project := s.AddProject()
	admin := s.AddAdminKey(true)
	base := s.URL + "/v1/organization/projects/" + project

	s.SetPropagation(2)
	_, _, body := do(t, "POST", base+"/service_accounts", admin, `{"name":"x"}`)
	value := body["api_key"].(map[string]any)["value"].(string)
	for i, want := range []int{401, 401, 200} {
		if status, _, _ := do(t, "GET", s.URL+"/v1/models", value, ""); status != want {
			t.Errorf("call %d with the new key: %d, want %d", i+1, status, want)
		}
	}

	s.Throttle(1, 30*time.Second)
	status, h, body := do(t, "GET", base+"/service_accounts", admin, "")
	if _, _, code := apiError(t, body); status != 429 || code != "rate_limit_exceeded" || h.Get("x-ratelimit-remaining-requests") != "0" ||
		h.Get("x-ratelimit-reset-requests") != "30s" || h.Get("retry-after") != "30" {
		t.Errorf("throttled: %d %v %v", status, h, body)
	}

	s.ExhaustQuota(true)
	if status, _, body := do(t, "GET", s.URL+"/v1/models", value, ""); status != 429 {
		t.Errorf("out of quota: %d", status)
	} else if _, typ, code := apiError(t, body); typ != "insufficient_quota" || code != "insufficient_quota" {
		t.Errorf("out of quota: %v", body)
	}
	s.ExhaustQuota(false)

	s.FailNext(1, 503)
	if status, _, _ := do(t, "GET", base+"/service_accounts", admin, ""); status != 503 {
		t.Errorf("FailNext: %d", status)
	}
	if status, _, _ := do(t, "GET", base+"/service_accounts", admin, ""); status != 200 {
		t.Errorf("after the fault: %d", status)
	}

	s.EchoKeys(true)
	if _, _, body := do(t, "GET", base+"/service_accounts", "sk-admin-echo-me", ""); !strings.Contains(body["error"].(map[string]any)["message"].(string), "sk-admin-echo-me") {
		t.Errorf("EchoKeys: %v", body)
	}
	if n := s.Count("GET", "/v1/organization/projects/"+project+"/service_accounts"); n < 3 {
		t.Errorf("Count = %d", n)
	}
}
