package twiliotest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/twilio/twiliotest"
)

// do sends a request with Basic credentials ("user:pass", "" for none) and a form, and returns the
// status, the header and the decoded JSON body.
func do(t *testing.T, method, u, creds string, form url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if user, pass, ok := strings.Cut(creds, ":"); ok {
		req.SetBasicAuth(user, pass)
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
			t.Fatalf("%s %s: body %q is not a JSON object", method, u, raw)
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: Content-Type %q", method, u, resp.Header.Get("Content-Type"))
		}
	}
	if !strings.HasPrefix(resp.Header.Get("Twilio-Request-Id"), "RQ") {
		t.Errorf("%s %s: no Twilio-Request-Id", method, u)
	}
	return resp.StatusCode, resp.Header, out
}

// wantError checks Twilio's error body.
func wantError(t *testing.T, body map[string]any, status, code int) {
	t.Helper()
	if body["status"] != float64(status) || body["code"] != float64(code) || body["message"] == "" ||
		!strings.HasSuffix(body["more_info"].(string), "/docs/errors/"+strings.TrimSpace(jsonNum(code))) {
		t.Errorf("error body %v, want status %d code %d", body, status, code)
	}
}

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestTheDocumentedContract(t *testing.T) {
	s := twiliotest.NewServer()
	defer s.Close()
	acct := s.Account
	main := s.AddKey(acct.SID, twiliotest.TypeMain, "main", nil)
	if len(acct.SID) != 34 || len(main.SID) != 34 || !strings.HasPrefix(main.SID, "SK") || len(main.Secret) != 32 {
		t.Fatalf("SIDs and secrets not shaped like Twilio's: %+v %+v", acct, main)
	}

	// Create a standard key: 201 with the secret, the only time.
	st, _, body := do(t, "POST", s.URL+"/v1/Keys", main.Value(), url.Values{"AccountSid": {acct.SID}, "FriendlyName": {"k1"}})
	if st != 201 || body["friendly_name"] != "k1" || body["secret"] == nil || body["policy"] != nil {
		t.Fatalf("create: %d %v", st, body)
	}
	sid := body["sid"].(string)
	st, _, body = do(t, "GET", s.URL+"/v1/Keys/"+sid, acct.Credentials(), nil)
	if st != 200 || body["secret"] != nil || body["sid"] != sid {
		t.Fatalf("get: %d %v", st, body)
	}
	// A restricted key: KeyType and Policy.
	st, _, body = do(t, "POST", s.URL+"/v1/Keys", main.Value(), url.Values{"AccountSid": {acct.SID}, "FriendlyName": {"k2"},
		"KeyType": {"restricted"}, "Policy": {`{"allow":["/twilio/messaging/messages/read"]}`}})
	if st != 201 || body["policy"] == nil {
		t.Fatalf("create restricted: %d %v", st, body)
	}
	if st, _, body := do(t, "POST", s.URL+"/v1/Keys", main.Value(), url.Values{"AccountSid": {acct.SID}, "KeyType": {"restricted"}}); st != 400 {
		t.Fatalf("restricted without a policy: %d %v", st, body)
	}
	if st, _, _ := do(t, "POST", s.URL+"/v1/Keys", main.Value(), url.Values{"AccountSid": {acct.SID}, "FriendlyName": {strings.Repeat("x", 65)}}); st != 400 {
		t.Fatalf("a 65-character name: %d", st)
	}

	// List, paged.
	st, _, body = do(t, "GET", s.URL+"/v1/Keys?AccountSid="+acct.SID+"&PageSize=2", main.Value(), nil)
	keys, _ := body["keys"].([]any)
	meta, _ := body["meta"].(map[string]any)
	if st != 200 || len(keys) != 2 || meta["key"] != "keys" || meta["next_page_url"] == nil {
		t.Fatalf("list: %d %v", st, body)
	}
	st, _, body = do(t, "GET", meta["next_page_url"].(string), main.Value(), nil)
	if keys, _ := body["keys"].([]any); st != 200 || len(keys) != 1 || body["meta"].(map[string]any)["next_page_url"] != nil {
		t.Fatalf("second page: %d %v", st, body)
	}

	// Delete, then 404.
	if st, _, _ := do(t, "DELETE", s.URL+"/v1/Keys/"+sid, main.Value(), nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	st, _, body = do(t, "DELETE", s.URL+"/v1/Keys/"+sid, main.Value(), nil)
	if st != 404 {
		t.Fatalf("delete again: %d", st)
	}
	wantError(t, body, 404, 20404)
}

func TestAuthentication(t *testing.T) {
	s := twiliotest.NewServer()
	defer s.Close()
	acct := s.Account
	std := s.AddKey(acct.SID, twiliotest.TypeStandard, "std", nil)
	rst := s.AddKey(acct.SID, twiliotest.TypeRestricted, "rst", json.RawMessage(`{"allow":["/twilio/messaging/messages/read"]}`))
	other := s.AddAccount()
	otherMain := s.AddKey(other.SID, twiliotest.TypeMain, "other", nil)
	prefix := s.URL + "/2010-04-01/Accounts/" + acct.SID
	for _, tc := range []struct {
		name, creds, method, url string
		status, code             int
	}{
		{"no credentials", "", "GET", prefix + "/Messages.json", 401, 20003},
		{"a wrong secret", std.SID + ":wrong", "GET", prefix + "/Messages.json", 401, 20003},
		{"a standard key reads messages", std.Value(), "GET", prefix + "/Messages.json?PageSize=1", 200, 0},
		{"a standard key reads the balance", std.Value(), "GET", prefix + "/Balance.json", 200, 0},
		{"a standard key may not read the account", std.Value(), "GET", prefix + ".json", 401, 20003},
		{"a standard key may not list keys", std.Value(), "GET", s.URL + "/v1/Keys?AccountSid=" + acct.SID, 401, 20003},
		{"the Auth Token reads the account", acct.Credentials(), "GET", prefix + ".json", 200, 0},
		{"a restricted key, allowed", rst.Value(), "GET", prefix + "/Messages.json", 200, 0},
		{"a restricted key, not allowed", rst.Value(), "GET", prefix + "/Balance.json", 403, 20403},
		{"another account's Main key", otherMain.Value(), "GET", s.URL + "/v1/Keys?AccountSid=" + acct.SID, 401, 20003},
		{"another account's resources", otherMain.Value(), "GET", prefix + "/Messages.json", 401, 20003},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, body := do(t, tc.method, tc.url, tc.creds, nil)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %v", st, tc.status, body)
			}
			if tc.code != 0 {
				wantError(t, body, tc.status, tc.code)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	s := twiliotest.NewServer()
	defer s.Close()
	main := s.AddKey(s.Account.SID, twiliotest.TypeMain, "main", nil)
	list := s.URL + "/v1/Keys?AccountSid=" + s.Account.SID

	s.Throttle(1, 5*time.Second)
	st, h, body := do(t, "GET", list, main.Value(), nil)
	if st != 429 || h.Get("Retry-After") != "5" {
		t.Fatalf("throttled: %d %v", st, h)
	}
	wantError(t, body, 429, 20429)
	s.FailNext(1, 503)
	if st, _, body := do(t, "GET", list, main.Value(), nil); st != 503 || body["code"] != float64(20503) {
		t.Fatalf("failing: %d %v", st, body)
	}

	s.SetPropagation(2)
	_, _, body = do(t, "POST", s.URL+"/v1/Keys", main.Value(), url.Values{"AccountSid": {s.Account.SID}})
	creds := body["sid"].(string) + ":" + body["secret"].(string)
	for i, want := range []int{401, 401, 200} {
		if st, _, _ := do(t, "GET", s.URL+"/2010-04-01/Accounts/"+s.Account.SID+"/Messages.json", creds, nil); st != want {
			t.Fatalf("use %d of a propagating key: %d, want %d", i+1, st, want)
		}
	}
	s.EchoKeys(true)
	if _, _, body := do(t, "GET", list, "SK00000000000000000000000000000000:ECHOED", nil); !strings.Contains(body["message"].(string), "ECHOED") {
		t.Fatalf("echo: %v", body)
	}
	if s.Created() != 1 || !s.Works(creds) {
		t.Fatal("the key is not counted or does not work")
	}
}
