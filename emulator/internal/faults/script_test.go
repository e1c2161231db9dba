package faults

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAddValidates(t *testing.T) {
	var s Script
	_, err := s.Add(Rule{Operation: "SetSecrets", Status: 500})
	if err == nil {
		t.Fatal("unknown operation accepted")
	}
	for _, op := range Operations {
		if !strings.Contains(err.Error(), op) {
			t.Errorf("error %q does not list %s", err, op)
		}
	}
	for _, r := range []Rule{
		{Status: 200},
		{Status: 0},
		{Status: 302},
		{Status: 600},
		{Status: 500, Delay: -time.Second},
		{Status: 500, RetryAfter: -time.Second},
	} {
		if _, err := s.Add(r); err == nil {
			t.Errorf("Add(%+v) accepted", r)
		}
	}
	if len(s.Rules()) != 0 {
		t.Fatalf("invalid rules were added: %+v", s.Rules())
	}

	id1, err := s.Add(Rule{Operation: "setsecret", Status: 503, Vault: "*", Secret: "*"})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.Add(Rule{Drop: true, Count: 3, Operation: "*"})
	if err != nil {
		t.Fatal(err)
	}
	if id1 != 1 || id2 != 2 {
		t.Errorf("ids %d, %d", id1, id2)
	}
	want := []RuleState{
		{ID: 1, Rule: Rule{Operation: "SetSecret", Status: 503, Code: "ServiceUnavailable", Count: 1}, Remaining: 1},
		{ID: 2, Rule: Rule{Drop: true, Count: 3}, Remaining: 3},
	}
	if got := s.Rules(); !reflect.DeepEqual(got, want) {
		t.Errorf("Rules() = %+v\nwant %+v", got, want)
	}
}

func TestDefaultCode(t *testing.T) {
	for status, want := range map[int]string{
		400: "BadParameter", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
		429: "Throttled", 500: "InternalServerError", 503: "ServiceUnavailable", 502: "InternalServerError",
		418: "InternalServerError",
	} {
		if got := DefaultCode(status); got != want {
			t.Errorf("DefaultCode(%d) = %s, want %s", status, got, want)
		}
	}
}

func TestMatchConsumes(t *testing.T) {
	var s Script
	id, _ := s.Add(Rule{Operation: "GetSecret", Status: 500, Count: 2})
	for i := range 2 {
		r, ok := s.Match("kv", "GetSecret", "a")
		if !ok || r.Status != 500 {
			t.Fatalf("call %d: %+v %v", i, r, ok)
		}
		if i == 0 {
			if st := s.Rules(); len(st) != 1 || st[0].ID != id || st[0].Remaining != 1 {
				t.Errorf("Rules() after one match = %+v", st)
			}
		}
	}
	if _, ok := s.Match("kv", "GetSecret", "a"); ok {
		t.Error("matched a third time")
	}
	if st := s.Rules(); len(st) != 0 {
		t.Errorf("exhausted rule still listed: %+v", st)
	}
}

func TestMatchWildcards(t *testing.T) {
	type call struct{ vault, op, secret string }
	for _, tc := range []struct {
		rule  Rule
		match []call
		miss  []call
	}{
		{
			rule:  Rule{Status: 500},
			match: []call{{"kv", "GetSecret", "a"}, {"other", "ListSecretProperties", ""}, {"", "RestoreSecret", ""}},
		},
		{
			rule:  Rule{Vault: "*", Operation: "*", Secret: "*", Status: 500},
			match: []call{{"kv", "GetSecret", "a"}, {"x", "RestoreSecret", ""}},
		},
		{
			rule:  Rule{Vault: "MyVault", Status: 500},
			match: []call{{"myvault", "GetSecret", "a"}, {"MYVAULT", "SetSecret", "b"}},
			miss:  []call{{"myvault2", "GetSecret", "a"}, {"other", "GetSecret", "a"}},
		},
		{
			rule:  Rule{Operation: "SetSecret", Status: 500},
			match: []call{{"kv", "SetSecret", "a"}, {"kv", "setsecret", "a"}},
			miss:  []call{{"kv", "GetSecret", "a"}, {"kv", "RestoreSecret", ""}},
		},
		{
			rule:  Rule{Secret: "Db-Password", Status: 500},
			match: []call{{"kv", "GetSecret", "db-password"}, {"kv2", "DeleteSecret", "DB-PASSWORD"}},
			miss:  []call{{"kv", "GetSecret", "db-password2"}, {"kv", "ListSecretProperties", ""}},
		},
		{
			rule:  Rule{Vault: "kv", Operation: "GetSecret", Secret: "a", Status: 500},
			match: []call{{"KV", "GetSecret", "A"}},
			miss:  []call{{"kv", "GetSecret", "b"}, {"kv2", "GetSecret", "a"}, {"kv", "SetSecret", "a"}},
		},
	} {
		for _, c := range tc.miss {
			var s Script
			r := tc.rule
			r.Count = 100
			if _, err := s.Add(r); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Match(c.vault, c.op, c.secret); ok {
				t.Errorf("rule %v matched %+v", tc.rule, c)
			}
		}
		for _, c := range tc.match {
			var s Script
			if _, err := s.Add(tc.rule); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Match(c.vault, c.op, c.secret); !ok {
				t.Errorf("rule %v did not match %+v", tc.rule, c)
			}
		}
	}
}

func TestMatchOrder(t *testing.T) {
	var s Script
	_, _ = s.Add(Rule{Operation: "GetSecret", Secret: "a", Status: 404, Count: 1})
	_, _ = s.Add(Rule{Operation: "GetSecret", Status: 503, Count: 2})
	var got []int
	for range 4 {
		r, ok := s.Match("kv", "GetSecret", "a")
		if !ok {
			break
		}
		got = append(got, r.Status)
	}
	if !reflect.DeepEqual(got, []int{404, 503, 503}) {
		t.Errorf("statuses %v", got)
	}
	var nilScript *Script
	if _, ok := nilScript.Match("kv", "GetSecret", "a"); ok {
		t.Error("nil script matched")
	}
}

func TestMatchConcurrent(t *testing.T) {
	for _, count := range []int{1, 7, 50} {
		var s Script
		_, _ = s.Add(Rule{Operation: "SetSecret", Status: 429, Count: count})
		var hits atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 200 {
			wg.Go(func() {
				<-start
				if _, ok := s.Match("kv", "SetSecret", "s"); ok {
					hits.Add(1)
				}
				if i%20 == 0 {
					_ = s.Rules()
				}
			})
		}
		close(start)
		wg.Wait()
		if hits.Load() != int32(count) {
			t.Errorf("count %d: %d of 200 concurrent calls failed", count, hits.Load())
		}
	}
}

func TestRemoveAndClear(t *testing.T) {
	var s Script
	a, _ := s.Add(Rule{Status: 500})
	b, _ := s.Add(Rule{Status: 503})
	if !s.Remove(a) || s.Remove(a) {
		t.Error("Remove")
	}
	if st := s.Rules(); len(st) != 1 || st[0].ID != b {
		t.Errorf("Rules() = %+v", st)
	}
	s.Clear()
	if _, ok := s.Match("kv", "GetSecret", "a"); ok || len(s.Rules()) != 0 {
		t.Error("Clear left rules")
	}
	if c, _ := s.Add(Rule{Status: 500}); c != 3 {
		t.Errorf("id after Clear = %d, want 3 (ids are never reused)", c)
	}
}

func TestParseRule(t *testing.T) {
	good := []struct {
		spec string
		want Rule
	}{
		{"op=SetSecret,status=503,count=2,vault=myvault,secret=x,retry-after=1s,delay=100ms,code=X",
			Rule{Operation: "SetSecret", Status: 503, Count: 2, Vault: "myvault", Secret: "x", RetryAfter: time.Second,
				Delay: 100 * time.Millisecond, Code: "X"}},
		{"status=500", Rule{Status: 500, Count: 1, Code: "InternalServerError"}},
		{" OP = getsecret , Status=429 ,retry-after=2", Rule{Operation: "GetSecret", Status: 429, Count: 1, Code: "Throttled", RetryAfter: 2 * time.Second}},
		{"op=*,vault=*,secret=*,status=404", Rule{Status: 404, Count: 1, Code: "NotFound"}},
		{"drop=true,op=GetSecret", Rule{Drop: true, Operation: "GetSecret", Count: 1}},
		{"drop,delay=2s", Rule{Drop: true, Count: 1, Delay: 2 * time.Second}},
		{"drop=1,status=500", Rule{Drop: true, Status: 500, Count: 1}},
		{"drop=after,op=SetSecret", Rule{DropAfter: true, Operation: "SetSecret", Count: 1}},
		{"op=SetSecret,DROP=After,delay=50ms,count=2", Rule{DropAfter: true, Operation: "SetSecret", Count: 2, Delay: 50 * time.Millisecond}},
		{"drop=before", Rule{Drop: true, Count: 1}},
		{"operation=PurgeDeletedSecret,status=409,message=busy right now", Rule{Operation: "PurgeDeletedSecret", Status: 409, Count: 1, Code: "Conflict", Message: "busy right now"}},
		{"status=503,retryafter=1500ms,", Rule{Status: 503, Count: 1, Code: "ServiceUnavailable", RetryAfter: 1500 * time.Millisecond}},
	}
	for _, tc := range good {
		got, err := ParseRule(tc.spec)
		if err != nil {
			t.Errorf("ParseRule(%q): %v", tc.spec, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseRule(%q)\n got %+v\nwant %+v", tc.spec, got, tc.want)
		}
		// String round-trips.
		again, err := ParseRule(got.String())
		if err != nil || again != got {
			t.Errorf("ParseRule(%q.String() = %q) = %+v, %v", tc.spec, got.String(), again, err)
		}
	}

	bad := []struct{ spec, errPart string }{
		{"", "empty rule"},
		{" , ", "empty rule"},
		{"op=SetSecret", "status is required"},
		{"op=SetSecrets,status=500", "unknown operation"},
		{"status=500,colour=red", `unknown key "colour"`},
		{"status=500,retry", `unknown key "retry"`},
		{"status", `key "status" needs a value`},
		{"status=abc", `status "abc" is not a number`},
		{"status=200", "not an error status"},
		{"status=700", "not an error status"},
		{"status=500,count=0", "not a positive number"},
		{"status=500,count=-1", "not a positive number"},
		{"status=500,count=x", "not a positive number"},
		{"status=500,drop=maybe", "not a boolean"},
		{"drop=afterwards", "before or after"},
		{"drop=after,drop=true", "given twice"},
		{"status=500,delay=100", "not a duration"},
		{"status=500,delay=-1s", "not a duration"},
		{"status=500,retry-after=soon", "retry-after"},
		{"status=500,retry-after=-1s", "retry-after"},
		{"status=500,status=503", "given twice"},
		{"op=GetSecret,operation=SetSecret,status=500", "given twice"},
	}
	for _, tc := range bad {
		_, err := ParseRule(tc.spec)
		if err == nil {
			t.Errorf("ParseRule(%q) accepted", tc.spec)
			continue
		}
		if !strings.Contains(err.Error(), tc.errPart) || !strings.Contains(err.Error(), tc.spec) {
			t.Errorf("ParseRule(%q) error %q: want it to contain %q and the spec", tc.spec, err, tc.errPart)
		}
	}
}

func TestRuleJSON(t *testing.T) {
	r := Rule{Vault: "kv", Operation: "SetSecret", Status: 429, Count: 2, Code: "Throttled", RetryAfter: 1500 * time.Millisecond, Delay: time.Second}
	b, err := json.Marshal(RuleState{ID: 4, Rule: r, Remaining: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":4,"rule":{"vault":"kv","operation":"SetSecret","count":2,"status":429,"code":"Throttled","retryAfter":"1.5s","delay":"1s"},"remaining":1}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	var back RuleState
	if err := json.Unmarshal(b, &back); err != nil || back.Rule != r {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	for _, in := range []string{`{"colour":"red"}`, `{"delay":"soon"}`, `{"retryAfter":"x"}`} {
		var r Rule
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("Unmarshal(%s) accepted", in)
		}
	}
}

func TestRespond(t *testing.T) {
	var s Script
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r, ok := s.Match("kv", "GetSecret", "a"); ok {
			r.Respond(w, req)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	get := func() (*http.Response, string, error) {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}

	_, _ = s.Add(Rule{Status: 503, RetryAfter: 1500 * time.Millisecond, Delay: 30 * time.Millisecond})
	start := time.Now()
	resp, body, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 30*time.Millisecond {
		t.Errorf("answered after %v, want >= 30ms delay", el)
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if want := `{"error":{"code":"ServiceUnavailable","message":"` + injectedMessage + `"}}`; body != want {
		t.Errorf("body %s, want %s", body, want)
	}

	_, _ = s.Add(Rule{Status: 429})
	resp, body, err = get()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "" {
		t.Errorf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if want := `{"error":{"code":"Throttled","message":"` + ThrottledMessage + `"}}`; body != want {
		t.Errorf("body %s, want %s", body, want)
	}

	_, _ = s.Add(Rule{Status: 409, Code: "Conflict", Message: "custom"})
	if _, body, _ = get(); body != `{"error":{"code":"Conflict","message":"custom"}}` {
		t.Errorf("body %s", body)
	}

	// A fresh connection: Go's transport silently retries an idempotent request once when a reused
	// keep-alive connection closes before answering.
	_, _ = s.Add(Rule{Drop: true})
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := fresh.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Error("dropped request got an answer")
	}
	// Rules exhausted: normal service again.
	if resp, _, err := get(); err != nil || resp.StatusCode != 200 {
		t.Errorf("after the rules: %v %v", resp, err)
	}
}

func TestRespondDropHTTP2(t *testing.T) {
	rule := Rule{Drop: true}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rule.Respond(w, req)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got an answer over %s", resp.Proto)
	}
}

func TestRespondDelayClientGone(t *testing.T) {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		Rule{Status: 500, Delay: time.Hour}.Respond(w, req)
		close(done)
	}))
	defer srv.Close()
	client := &http.Client{Timeout: 20 * time.Millisecond}
	_, err := client.Get(srv.URL)
	if err == nil {
		t.Fatal("expected a client timeout")
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Respond kept waiting after the client went away")
	}
}

func TestWriteThrottled(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteThrottled(rec, 250*time.Millisecond)
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "1" || body.Error.Code != "Throttled" || body.Error.Message != ThrottledMessage {
		t.Errorf("%d %v %+v", rec.Code, rec.Header(), body)
	}
}

func TestEmulatorFaultDropAfterRule(t *testing.T) {
	var s Script
	if _, err := s.Add(Rule{Drop: true, DropAfter: true}); err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Fatalf("Drop and DropAfter together: %v", err)
	}
	// No status needed, none invented.
	id, err := s.Add(Rule{DropAfter: true, Operation: "setsecret"})
	if err != nil {
		t.Fatal(err)
	}
	want := []RuleState{{ID: id, Rule: Rule{DropAfter: true, Operation: "SetSecret", Count: 1}, Remaining: 1}}
	if got := s.Rules(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Rules() = %+v, want %+v", got, want)
	}
	r, ok := s.Match("kv", "SetSecret", "x")
	if !ok || !r.DropAfter || r.Drop {
		t.Fatalf("Match = %+v, %v", r, ok)
	}
	if got := r.String(); got != "op=SetSecret,drop=after,count=1" {
		t.Errorf("String() = %q", got)
	}
	b, err := json.Marshal(r)
	if err != nil || string(b) != `{"operation":"SetSecret","count":1,"dropAfter":true}` {
		t.Fatalf("JSON %s, %v", b, err)
	}
	var back Rule
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Fatalf("JSON round trip: %+v, %v", back, err)
	}
	// Respond drops a DropAfter rule's answer as it drops Drop's.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { r.Respond(w, req) }))
	defer srv.Close()
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := fresh.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("DropAfter: got an answer")
	}
}
