package datadogtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/datadog/datadogtest"
)

// do sends a request with the two key headers and returns the status, the header and the decoded
// JSON body.
func do(t *testing.T, method, url, apiKey, appKey, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if apiKey != "" {
		req.Header.Set("DD-API-KEY", apiKey)
	}
	if appKey != "" {
		req.Header.Set("DD-APPLICATION-KEY", appKey)
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

// firstError is the first message of a {"errors":["…"]} body.
func firstError(body map[string]any) string {
	list, _ := body["errors"].([]any)
	if len(list) == 0 {
		return ""
	}
	s, _ := list[0].(string)
	return s
}

// attrs is data.attributes of a one-key answer.
func attrs(body map[string]any) map[string]any {
	d, _ := body["data"].(map[string]any)
	a, _ := d["attributes"].(map[string]any)
	return a
}

func TestTheDocumentedContract(t *testing.T) {
	s := datadogtest.NewServer()
	defer s.Close()
	api := s.AddAPIKey("admin api key")
	app := s.AddAppKey("admin app key", datadogtest.AdminUser, nil)
	if len(api.Value) != 32 || len(app.Value) != 40 {
		t.Errorf("keys of %d and %d characters, want Datadog's 32 and 40", len(api.Value), len(app.Value))
	}

	// Validation.
	if st, _, body := do(t, "GET", s.URL+"/api/v1/validate", api.Value, "", ""); st != 200 || body["valid"] != true {
		t.Fatalf("validate: %d %v", st, body)
	}
	if st, _, body := do(t, "GET", s.URL+"/api/v1/validate", "nope", "", ""); st != 403 || firstError(body) != "Forbidden" {
		t.Fatalf("validate with a bad key: %d %v", st, body)
	}
	if st, _, body := do(t, "GET", s.URL+"/api/v2/validate_keys", api.Value, app.Value, ""); st != 200 || body["status"] != "ok" {
		t.Fatalf("validate_keys: %d %v", st, body)
	}
	if st, _, _ := do(t, "GET", s.URL+"/api/v2/validate_keys", api.Value, "nope", ""); st != 401 {
		t.Fatalf("validate_keys with a bad application key: %d", st)
	}

	// API keys: create shows the key; list does not; get does.
	st, _, body := do(t, "POST", s.URL+"/api/v2/api_keys", api.Value, app.Value, `{"data":{"type":"api_keys","attributes":{"name":"k1"}}}`)
	a := attrs(body)
	if st != 201 || a["name"] != "k1" || len(a["key"].(string)) != 32 || a["last4"] != a["key"].(string)[28:] {
		t.Fatalf("create: %d %v", st, body)
	}
	id := body["data"].(map[string]any)["id"].(string)
	st, h, body := do(t, "GET", s.URL+"/api/v2/api_keys?filter=K1&page%5Bsize%5D=100", api.Value, app.Value, "")
	data, _ := body["data"].([]any)
	if st != 200 || len(data) != 1 || data[0].(map[string]any)["attributes"].(map[string]any)["key"] != nil {
		t.Fatalf("list: %d %v", st, body)
	}
	for _, name := range []string{"X-RateLimit-Limit", "X-RateLimit-Period", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Name"} {
		if h.Get(name) == "" {
			t.Errorf("no %s header", name)
		}
	}
	if st, _, body := do(t, "GET", s.URL+"/api/v2/api_keys/"+id, api.Value, app.Value, ""); st != 200 || attrs(body)["key"] == nil {
		t.Fatalf("get: %d %v", st, body)
	}
	if st, _, _ := do(t, "DELETE", s.URL+"/api/v2/api_keys/"+id, api.Value, app.Value, ""); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if st, _, body := do(t, "DELETE", s.URL+"/api/v2/api_keys/"+id, api.Value, app.Value, ""); st != 404 || firstError(body) == "" {
		t.Fatalf("delete again: %d %v", st, body)
	}
	if st, _, _ := do(t, "POST", s.URL+"/api/v2/api_keys", api.Value, app.Value, `{"data":{"type":"application_keys","attributes":{"name":"x"}}}`); st != 400 {
		t.Fatalf("create with the wrong type: %d", st)
	}

	// Current-user application keys: One-Time-Read by default.
	st, _, body = do(t, "POST", s.URL+"/api/v2/current_user/application_keys", api.Value, app.Value,
		`{"data":{"type":"application_keys","attributes":{"name":"k2","scopes":["dashboards_read"]}}}`)
	if st != 201 || attrs(body)["key"] == nil || len(attrs(body)["scopes"].([]any)) != 1 {
		t.Fatalf("create app key: %d %v", st, body)
	}
	appID := body["data"].(map[string]any)["id"].(string)
	if st, _, body := do(t, "GET", s.URL+"/api/v2/current_user/application_keys/"+appID, api.Value, app.Value, ""); st != 200 || attrs(body)["key"] != nil {
		t.Fatalf("get app key in One-Time-Read mode: %d %v", st, body)
	}
	s.SetOneTimeRead(false)
	if st, _, body := do(t, "GET", s.URL+"/api/v2/current_user/application_keys/"+appID, api.Value, app.Value, ""); st != 200 || attrs(body)["key"] == nil {
		t.Fatalf("get app key outside One-Time-Read mode: %d %v", st, body)
	}

	// Service accounts' keys: never shown on GET; an unknown service account is 404.
	const sa = "00000000-0000-1234-0000-000000000000"
	s.AddServiceAccount(sa)
	st, _, body = do(t, "POST", s.URL+"/api/v2/service_accounts/"+sa+"/application_keys", api.Value, app.Value,
		`{"data":{"type":"application_keys","attributes":{"name":"k3"}}}`)
	if st != 201 {
		t.Fatalf("create service account key: %d %v", st, body)
	}
	saID := body["data"].(map[string]any)["id"].(string)
	if k, _ := s.Key(saID); k.Owner != sa {
		t.Fatalf("owner %q", k.Owner)
	}
	if st, _, body := do(t, "GET", s.URL+"/api/v2/service_accounts/"+sa+"/application_keys/"+saID, api.Value, app.Value, ""); st != 200 || attrs(body)["key"] != nil {
		t.Fatalf("get service account key: %d %v", st, body)
	}
	if st, _, _ := do(t, "GET", s.URL+"/api/v2/current_user/application_keys/"+saID, api.Value, app.Value, ""); st != 404 {
		t.Fatalf("another owner's key through current_user: %d", st)
	}
	if st, _, _ := do(t, "GET", s.URL+"/api/v2/service_accounts/99999999-0000-1234-0000-000000000000/application_keys", api.Value, app.Value, ""); st != 404 {
		t.Fatalf("unknown service account: %d", st)
	}
}

func TestPermissionsAndScopes(t *testing.T) {
	s := datadogtest.NewServer()
	defer s.Close()
	api := s.AddAPIKey("api")
	s.AddUser("reader", "api_keys_read")
	reader := s.AddAppKey("reader", "reader", nil)
	scoped := s.AddAppKey("scoped admin", datadogtest.AdminUser, []string{"api_keys_read"})
	for _, tc := range []struct {
		app    string
		method string
		want   int
	}{
		{reader.Value, "GET", 200},
		{reader.Value, "POST", 403},
		{scoped.Value, "GET", 200},
		{scoped.Value, "POST", 403},
		{"unknown", "GET", 403},
	} {
		st, _, body := do(t, tc.method, s.URL+"/api/v2/api_keys", api.Value, tc.app, `{"data":{"type":"api_keys","attributes":{"name":"x"}}}`)
		if st != tc.want || (st == 403 && firstError(body) == "") {
			t.Errorf("%s: %d %v, want %d", tc.method, st, body, tc.want)
		}
	}
}

func TestFaults(t *testing.T) {
	s := datadogtest.NewServer()
	defer s.Close()
	api := s.AddAPIKey("api")
	app := s.AddAppKey("app", datadogtest.AdminUser, nil)

	s.Throttle(1, 7*time.Second)
	st, h, body := do(t, "GET", s.URL+"/api/v1/validate", api.Value, "", "")
	if st != 429 || h.Get("X-RateLimit-Reset") != "7" || h.Get("X-RateLimit-Remaining") != "0" || firstError(body) == "" {
		t.Fatalf("throttled: %d %v %v", st, h, body)
	}
	s.FailNext(1, 503)
	if st, _, _ := do(t, "GET", s.URL+"/api/v1/validate", api.Value, "", ""); st != 503 {
		t.Fatalf("failing: %d", st)
	}

	s.SetPropagation(2)
	_, _, body = do(t, "POST", s.URL+"/api/v2/api_keys", api.Value, app.Value, `{"data":{"type":"api_keys","attributes":{"name":"new"}}}`)
	key := attrs(body)["key"].(string)
	for i, want := range []int{403, 403, 200} {
		if st, _, _ := do(t, "GET", s.URL+"/api/v1/validate", key, "", ""); st != want {
			t.Fatalf("use %d of a propagating key: %d, want %d", i+1, st, want)
		}
	}

	s.EchoKeys(true)
	if _, _, body := do(t, "GET", s.URL+"/api/v1/validate", "ECHOED-KEY", "", ""); !strings.Contains(firstError(body), "ECHOED-KEY") {
		t.Fatalf("echo: %v", body)
	}
	if s.Created() != 1 || s.Count("GET", "/api/v1/validate") < 4 {
		t.Fatalf("created %d, requests %d", s.Created(), s.Count("GET", "/api/v1/validate"))
	}
}
