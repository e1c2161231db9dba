package webhooktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const key = "reference-server-key-0123456789"

// post sends body to endpoint, signed with k at time at, and decodes a JSON answer into a map.
func post(t *testing.T, s *Server, endpoint, k string, at time.Time, body string, header ...string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/"+endpoint, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(k))
	mac.Write([]byte(ts + "." + body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Kvrotator-Timestamp", ts)
	req.Header.Set("X-Kvrotator-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	var b struct {
		IdempotencyKey string `json:"idempotencyKey"`
	}
	if json.Unmarshal([]byte(body), &b) == nil && b.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", b.IdempotencyKey)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

func newServer(t *testing.T) *Server {
	t.Helper()
	s := NewServer(key)
	t.Cleanup(s.Close)
	return s
}

func create(idem string) string {
	return `{"action":"create","idempotencyKey":"` + idem + `","vault":"kv","secret":"api","version":"v1","credentialId":""}`
}

func verify(id, value string) string {
	return `{"action":"verify","idempotencyKey":"k1","vault":"kv","secret":"api","credentialId":"` + id + `","value":"` + value + `"}`
}

func revoke(id string) string {
	return `{"action":"revoke","vault":"kv","secret":"api","credentialId":"` + id + `"}`
}

func TestLifecycle(t *testing.T) {
	s := newServer(t)
	now := time.Now()
	s.Seed("old", "old-value")

	status, _, got := post(t, s, Create, key, now, create("k1"))
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, got)
	}
	id, value := got["credentialId"].(string), got["value"].(string)
	if !regexp.MustCompile(`^cred-[0-9a-f]{16}$`).MatchString(id) || !regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`).MatchString(value) {
		t.Errorf("create returned id %q and a value of %d characters", id, len(value))
	}

	status, _, again := post(t, s, Create, key, now, create("k1"))
	if status != http.StatusOK || again["credentialId"] != id || again["value"] != value {
		t.Errorf("repeated create: %d, id %v; want 200 and the same credential", status, again["credentialId"])
	}
	if s.Created() != 1 {
		t.Errorf("Created() = %d, want 1", s.Created())
	}

	for _, tt := range []struct {
		id, value string
		valid     bool
	}{{id, value, true}, {id, "other", false}, {"old", "old-value", true}, {"nobody", value, false}} {
		status, _, got := post(t, s, Verify, key, now, verify(tt.id, tt.value))
		if status != http.StatusOK || got["valid"] != tt.valid {
			t.Errorf("verify %s: %d %v, want valid=%v", tt.id, status, got, tt.valid)
		}
	}

	if status, _, _ := post(t, s, Revoke, key, now, revoke("old")); status != http.StatusNoContent {
		t.Errorf("revoke: %d, want 204", status)
	}
	if status, _, _ := post(t, s, Revoke, key, now, revoke("old")); status != http.StatusNotFound {
		t.Errorf("second revoke: %d, want 404", status)
	}
	if r := s.Revoked(); len(r) != 1 || r[0] != "old" {
		t.Errorf("Revoked() = %v, want [old]", r)
	}
	live := s.Live()
	if len(live) != 1 || live[id] != value {
		t.Errorf("Live() has %d credentials, want only the new one", len(live))
	}
	live["x"] = "y"
	if _, ok := s.Live()["x"]; ok {
		t.Error("Live() is not a copy")
	}
	if s.Calls(Create) != 2 || s.Calls(Verify) != 4 || s.Calls(Revoke) != 2 {
		t.Errorf("Calls = %d, %d, %d; want 2, 4, 2", s.Calls(Create), s.Calls(Verify), s.Calls(Revoke))
	}
}

func TestCreateAfterRevokeIssuesAFreshCredential(t *testing.T) {
	s := newServer(t)
	now := time.Now()
	_, _, first := post(t, s, Create, key, now, create("k1"))
	post(t, s, Revoke, key, now, revoke(first["credentialId"].(string)))
	status, _, second := post(t, s, Create, key, now, create("k1"))
	if status != http.StatusCreated || second["credentialId"] == first["credentialId"] {
		t.Errorf("create after revoke: %d, %v; want 201 and a new credential", status, second["credentialId"])
	}
}

func TestConcurrentCreatesWithOneKey(t *testing.T) {
	s := newServer(t)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, s.URL+"/create", bytes.NewBufferString(create("same")))
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			mac := hmac.New(sha256.New, []byte(key))
			mac.Write([]byte(ts + "." + create("same")))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Kvrotator-Timestamp", ts)
			req.Header.Set("X-Kvrotator-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
			req.Header.Set("Idempotency-Key", "same")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	wg.Wait()
	if s.Created() != 1 || len(s.Live()) != 1 {
		t.Errorf("Created() = %d, %d live; want 1, 1", s.Created(), len(s.Live()))
	}
}

func TestRejects(t *testing.T) {
	s := newServer(t)
	now := time.Now()
	tests := []struct {
		name     string
		endpoint string
		key      string
		at       time.Time
		body     string
		header   []string
		want     int
	}{
		{"wrong key", Create, "another-key-0123456789", now, create("k"), nil, 401},
		{"no signature", Create, key, now, create("k"), []string{"X-Kvrotator-Signature", ""}, 401},
		{"signature not hex", Create, key, now, create("k"), []string{"X-Kvrotator-Signature", "sha256=zz"}, 401},
		{"signature without scheme", Create, key, now, create("k"), []string{"X-Kvrotator-Signature", "00"}, 401},
		{"no timestamp", Create, key, now, create("k"), []string{"X-Kvrotator-Timestamp", ""}, 401},
		{"timestamp 6 minutes old", Create, key, now.Add(-6 * time.Minute), create("k"), nil, 401},
		{"timestamp 6 minutes ahead", Create, key, now.Add(6 * time.Minute), create("k"), nil, 401},
		{"timestamp changed after signing", Create, key, now, create("k"), []string{"X-Kvrotator-Timestamp", strconv.FormatInt(now.Unix()+1, 10)}, 401},
		{"create replayed at revoke", Revoke, key, now, create("k"), nil, 400},
		{"Idempotency-Key differs", Create, key, now, create("k"), []string{"Idempotency-Key", "other"}, 400},
		{"no idempotency key", Create, key, now, create(""), nil, 400},
		{"no vault", Revoke, key, now, `{"action":"revoke","secret":"api","credentialId":"x"}`, nil, 400},
		{"verify without value", Verify, key, now, verify("x", ""), nil, 400},
		{"not JSON", Create, key, now, `create please`, nil, 400},
		{"wrong Content-Type", Create, key, now, create("k"), []string{"Content-Type", "text/plain"}, 415},
		{"unknown endpoint", "rotate", key, now, create("k"), nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, got := post(t, s, tt.endpoint, tt.key, tt.at, tt.body, tt.header...)
			if status != tt.want {
				t.Errorf("status %d, want %d", status, tt.want)
			}
			if msg, _ := got["error"].(string); msg == "" {
				t.Errorf("answer %v has no error message", got)
			}
		})
	}
	if s.Created() != 0 {
		t.Errorf("Created() = %d after only bad requests", s.Created())
	}
	resp, err := http.Get(s.URL + "/create")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /create: %d, want 405", resp.StatusCode)
	}
}

func TestFailNext(t *testing.T) {
	s := newServer(t)
	now := time.Now()
	s.FailNext(Create, http.StatusServiceUnavailable, 2)
	for i := range 2 {
		status, h, got := post(t, s, Create, key, now, create("k"))
		if status != 503 || h.Get("Retry-After") != "1" || got["error"] != "injected fault" {
			t.Fatalf("call %d: %d, Retry-After %q, %v", i+1, status, h.Get("Retry-After"), got)
		}
	}
	if status, _, _ := post(t, s, Create, key, now, create("k")); status != http.StatusCreated {
		t.Fatalf("third call: %d, want 201", status)
	}
	// A badly signed request does not use up a fault.
	s.FailNext(Revoke, http.StatusBadRequest, 1)
	if status, _, _ := post(t, s, Revoke, "another-key-0123456789", now, revoke("x")); status != 401 {
		t.Fatalf("badly signed: %d, want 401", status)
	}
	if status, h, _ := post(t, s, Revoke, key, now, revoke("x")); status != 400 || h.Get("Retry-After") != "" {
		t.Fatalf("fault: %d, Retry-After %q; want 400 without Retry-After", status, h.Get("Retry-After"))
	}
	if s.Created() != 1 || s.Calls(Create) != 3 || s.Calls(Revoke) != 2 {
		t.Errorf("Created %d, Calls(create) %d, Calls(revoke) %d; want 1, 3, 2", s.Created(), s.Calls(Create), s.Calls(Revoke))
	}
}

func TestPropagationDelayIsPerCredential(t *testing.T) {
	s := newServer(t)
	now := time.Now()
	s.Seed("a", "value-a")
	s.Seed("b", "value-b")
	s.SetPropagationDelay(2)
	for i, want := range []bool{false, false, true, true} {
		if _, _, got := post(t, s, Verify, key, now, verify("a", "value-a")); got["valid"] != want {
			t.Errorf("verify a #%d: %v, want %v", i+1, got["valid"], want)
		}
	}
	if _, _, got := post(t, s, Verify, key, now, verify("b", "value-b")); got["valid"] != false {
		t.Errorf("first verify of b: %v, want false", got["valid"])
	}
}

func TestMisuse(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("NewServer with a short key", func() { NewServer("short") })
	s := newServer(t)
	mustPanic("FailNext with an unknown endpoint", func() { s.FailNext("Create", 500, 1) })
	mustPanic("Calls with an unknown endpoint", func() { s.Calls("delete") })
}

func digest(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// revokeWith is a revoke body carrying the digests of the retired and the current value ("" omits one).
func revokeWith(id, retired, current string) string {
	b := map[string]string{"action": "revoke", "vault": "kv", "secret": "api", "credentialId": id}
	if retired != "" {
		b["retiredSha256"] = retired
	}
	if current != "" {
		b["currentSha256"] = current
	}
	js, _ := json.Marshal(b)
	return string(js)
}

func TestRevokeChecksTheValues(t *testing.T) {
	s := newServer(t)
	now := time.Now()
	s.Seed("old", "old-value")
	s.Seed("new", "new-value")
	for _, tt := range []struct {
		name string
		body string
		want int
	}{
		{"retired value is another credential's", revokeWith("new", digest("old-value"), ""), http.StatusConflict},
		{"retired value unknown", revokeWith("old", digest("something else"), ""), http.StatusConflict},
		{"the current value's credential", revokeWith("new", "", digest("new-value")), http.StatusConflict},
		{"the current value's credential, retired value matching", revokeWith("old", digest("old-value"), digest("old-value")), http.StatusConflict},
		{"digest in upper case", revokeWith("old", strings.ToUpper(digest("old-value")), ""), http.StatusBadRequest},
		{"digest too short", revokeWith("old", "", digest("new-value")[:63]), http.StatusBadRequest},
		{"unknown credential", revokeWith("gone", digest("x"), digest("y")), http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, _, got := post(t, s, Revoke, key, now, tt.body)
			if status != tt.want {
				t.Errorf("status %d %v, want %d", status, got, tt.want)
			}
			if msg, _ := got["error"].(string); msg == "" {
				t.Errorf("answer %v has no error message", got)
			}
		})
	}
	if len(s.Revoked()) != 0 || len(s.Live()) != 2 {
		t.Fatalf("refused revocations revoked %v", s.Revoked())
	}
	if status, _, _ := post(t, s, Revoke, key, now, revokeWith("old", digest("old-value"), digest("new-value"))); status != http.StatusNoContent {
		t.Fatalf("revoke with the right digests: %d", status)
	}
	if r := s.Revoked(); len(r) != 1 || r[0] != "old" {
		t.Errorf("Revoked() = %v, want [old]", r)
	}
}
