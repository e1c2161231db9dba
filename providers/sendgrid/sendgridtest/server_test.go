package sendgridtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/sendgrid/sendgridtest"
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
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON object", method, url, raw)
		}
		if resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, url, resp.Header.Get("Content-Type"))
		}
	}
	return resp.StatusCode, resp.Header, out
}

// errorMessage is the first message of a {"errors":[…]} body.
func errorMessage(body map[string]any) string {
	list, _ := body["errors"].([]any)
	if len(list) == 0 {
		return ""
	}
	e, _ := list[0].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

func TestTheDocumentedContract(t *testing.T) {
	s := sendgridtest.NewServer()
	defer s.Close()
	admin := s.AddKey("admin", sendgridtest.AdminScopes...)
	if len(admin.Value) != 69 || !strings.HasPrefix(admin.Value, "SG."+admin.ID+".") {
		t.Errorf("key %d characters, want SendGrid's 69 and SG.<id>.<secret>", len(admin.Value))
	}

	status, h, body := do(t, "POST", s.URL+"/v3/api_keys", admin.Value, `{"name":"app","scopes":["mail.send"]}`)
	if status != 201 || body["api_key"] == "" || body["api_key_id"] == "" || body["name"] != "app" {
		t.Fatalf("create: %d %v", status, body)
	}
	for _, name := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
		if h.Get(name) == "" {
			t.Errorf("no %s header", name)
		}
	}
	id, value := body["api_key_id"].(string), body["api_key"].(string)

	// The value is shown once: neither the list nor the details have it.
	for _, url := range []string{s.URL + "/v3/api_keys", s.URL + "/v3/api_keys/" + id} {
		_, _, body := do(t, "GET", url, admin.Value, "")
		if js, _ := json.Marshal(body); strings.Contains(string(js), value) {
			t.Errorf("GET %s shows the key's value", url)
		}
	}
	if _, _, body := do(t, "GET", s.URL+"/v3/api_keys/"+id, admin.Value, ""); body["scopes"] == nil {
		t.Errorf("details without scopes: %v", body)
	}
	if status, _, body := do(t, "GET", s.URL+"/v3/scopes", value, ""); status != 200 || len(body["scopes"].([]any)) != 1 {
		t.Errorf("scopes of the new key: %d %v", status, body)
	}
	if status, _, _ := do(t, "GET", s.URL+"/v3/api_keys?limit=1", admin.Value, ""); status != 200 {
		t.Errorf("limit: %d", status)
	}
	if _, _, body := do(t, "GET", s.URL+"/v3/api_keys?limit=1", admin.Value, ""); len(body["result"].([]any)) != 1 {
		t.Errorf("limit=1 returned %v", body)
	}

	// Errors.
	for _, tc := range []struct {
		method, path, key, body string
		status                  int
		message                 string
	}{
		{"GET", "/v3/api_keys", "", "", 401, "authorization required"},
		{"GET", "/v3/api_keys", "SG.nope.nope", "", 401, "authorization required"},
		{"GET", "/v3/api_keys", value, "", 403, "access forbidden"},
		{"POST", "/v3/api_keys", admin.Value, `{"scopes":[]}`, 400, "missing required argument"},
		{"GET", "/v3/api_keys/nope", admin.Value, "", 404, "unable to find API Key"},
		{"DELETE", "/v3/api_keys/nope", admin.Value, "", 404, "unable to find API Key"},
		{"GET", "/v3/nothing", admin.Value, "", 404, "not found"},
	} {
		status, _, body := do(t, tc.method, s.URL+tc.path, tc.key, tc.body)
		if status != tc.status || errorMessage(body) != tc.message {
			t.Errorf("%s %s: %d %v, want %d %q", tc.method, tc.path, status, body, tc.status, tc.message)
		}
	}

	if status, _, _ := do(t, "DELETE", s.URL+"/v3/api_keys/"+id, admin.Value, ""); status != 204 {
		t.Errorf("delete: %d", status)
	}
	if status, _, _ := do(t, "GET", s.URL+"/v3/scopes", value, ""); status != 401 {
		t.Errorf("a deleted key still authenticates: %d", status)
	}
}

func TestFullAccessWithoutScopes(t *testing.T) {
	s := sendgridtest.NewServer()
	defer s.Close()
	admin := s.AddKey("admin", sendgridtest.AdminScopes...)
	_, _, body := do(t, "POST", s.URL+"/v3/api_keys", admin.Value, `{"name":"everything"}`)
	if got := len(body["scopes"].([]any)); got != len(sendgridtest.FullAccess) {
		t.Errorf("a key created without scopes has %d scopes, want full access", got)
	}
}

func TestFaults(t *testing.T) {
	s := sendgridtest.NewServer()
	defer s.Close()
	admin := s.AddKey("admin", sendgridtest.AdminScopes...)

	s.SetMaxKeys(1)
	if status, _, _ := do(t, "POST", s.URL+"/v3/api_keys", admin.Value, `{"name":"x"}`); status != 403 {
		t.Errorf("past the key limit: %d, want 403", status)
	}
	s.SetMaxKeys(sendgridtest.DefaultMaxKeys)

	s.SetPropagation(2)
	_, _, body := do(t, "POST", s.URL+"/v3/api_keys", admin.Value, `{"name":"x","scopes":["mail.send"]}`)
	value := body["api_key"].(string)
	for i, want := range []int{401, 401, 200} {
		if status, _, _ := do(t, "GET", s.URL+"/v3/scopes", value, ""); status != want {
			t.Errorf("call %d with the new key: %d, want %d", i+1, status, want)
		}
	}

	s.Throttle(1, 30*time.Second)
	status, h, body := do(t, "GET", s.URL+"/v3/api_keys", admin.Value, "")
	reset, _ := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if status != 429 || h.Get("X-RateLimit-Remaining") != "0" || errorMessage(body) != "too many requests" ||
		time.Until(time.Unix(reset, 0)) < 25*time.Second {
		t.Errorf("throttled: %d %v %v", status, h, body)
	}

	s.FailNext(1, 503)
	if status, _, _ := do(t, "GET", s.URL+"/v3/api_keys", admin.Value, ""); status != 503 {
		t.Errorf("FailNext: %d", status)
	}
	if status, _, _ := do(t, "GET", s.URL+"/v3/api_keys", admin.Value, ""); status != 200 {
		t.Errorf("after the fault: %d", status)
	}

	s.EchoKeys(true)
	if _, _, body := do(t, "GET", s.URL+"/v3/api_keys", "SG.echo.me", ""); !strings.Contains(errorMessage(body), "SG.echo.me") {
		t.Errorf("EchoKeys: %v", body)
	}
	if n := s.Count("GET", "/v3/api_keys"); n < 4 {
		t.Errorf("Count = %d", n)
	}
}
