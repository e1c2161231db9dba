package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/webhook"
)

const newValue = "NEWVALUE-must-never-leak-5c6d"

func TestCreateResponses(t *testing.T) {
	future := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second)
	okBody := `{"credentialId":"tok-2","value":"` + newValue + `"}`
	long := func(n int) string { return strings.Repeat("v", n) }
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		wantID      string // "" when an error is expected
		wantExpires *time.Time
		reason      string // for errors: a substring of the reason
	}{
		{"200", 200, "application/json", okBody, "tok-2", nil, ""},
		{"201", 201, "application/json", okBody, "tok-2", nil, ""},
		{"charset parameter", 200, "application/json; charset=utf-8", okBody, "tok-2", nil, ""},
		{"+json media type", 200, "application/vnd.tokens+json", okBody, "tok-2", nil, ""},
		{"whitespace around the object", 200, "application/json", "\n  " + okBody + "\n\n", "tok-2", nil, ""},
		{"unknown fields ignored", 200, "application/json", `{"credentialId":"tok-2","value":"` + newValue + `","extra":{"a":[1,2]},"note":null}`, "tok-2", nil, ""},
		{"expiresAt", 200, "application/json", `{"credentialId":"tok-2","value":"` + newValue + `","expiresAt":"` + future.Format(time.RFC3339) + `"}`, "tok-2", &future, ""},
		{"expiresAt null", 200, "application/json", `{"credentialId":"tok-2","value":"` + newValue + `","expiresAt":null}`, "tok-2", nil, ""},
		{"every allowed id character", 200, "application/json", `{"credentialId":"aZ09._:-","value":"` + newValue + `"}`, "aZ09._:-", nil, ""},
		{"256-character id", 200, "application/json", `{"credentialId":"` + strings.Repeat("i", 256) + `","value":"` + newValue + `"}`, strings.Repeat("i", 256), nil, ""},
		{"value of 25 KB", 200, "application/json", `{"credentialId":"tok-2","value":"` + long(webhook.MaxValueBytes) + `"}`, "tok-2", nil, ""},

		{"not JSON", 200, "application/json", "<html>" + newValue + "</html>", "", nil, "not valid JSON (at byte 1)"},
		{"truncated JSON", 200, "application/json", `{"credentialId":"tok-2","value":"` + newValue, "", nil, "not valid JSON"},
		{"text/html", 200, "text/html", okBody, "", nil, `Content-Type is "text/html"`},
		{"no Content-Type", 200, "", okBody, "", nil, "Content-Type"},
		{"empty body", 200, "application/json", "", "", nil, "empty response body"},
		{"array", 200, "application/json", `[` + okBody + `]`, "", nil, "not a JSON object"},
		{"null", 200, "application/json", `null`, "", nil, "not a JSON object"},
		{"string", 200, "application/json", `"` + newValue + `"`, "", nil, "not a JSON object"},
		{"two objects", 200, "application/json", okBody + okBody, "", nil, "data after the JSON object"},
		{"huge body", 200, "application/json", `{"credentialId":"tok-2","value":"` + newValue + `","pad":"` + long(webhook.MaxResponseBytes) + `"}`, "", nil, "exceeds 64 KiB"},
		{"credentialId missing", 200, "application/json", `{"value":"` + newValue + `"}`, "", nil, "credentialId is missing"},
		{"credentialId null", 200, "application/json", `{"credentialId":null,"value":"` + newValue + `"}`, "", nil, "credentialId is missing"},
		{"credentialId empty", 200, "application/json", `{"credentialId":"","value":"` + newValue + `"}`, "", nil, "credentialId is missing"},
		{"credentialId a number", 200, "application/json", `{"credentialId":42,"value":"` + newValue + `"}`, "", nil, "credentialId is not a string"},
		{"credentialId with a space", 200, "application/json", `{"credentialId":"tok 2","value":"` + newValue + `"}`, "", nil, "characters outside"},
		{"credentialId with a slash", 200, "application/json", `{"credentialId":"tok/2","value":"` + newValue + `"}`, "", nil, "characters outside"},
		{"credentialId not ASCII", 200, "application/json", `{"credentialId":"tök","value":"` + newValue + `"}`, "", nil, "characters outside"},
		{"credentialId is the value", 200, "application/json", `{"credentialId":"` + newValue + `!","value":"` + newValue + `"}`, "", nil, "characters outside"},
		{"credentialId too long", 200, "application/json", `{"credentialId":"` + strings.Repeat("i", 257) + `","value":"` + newValue + `"}`, "", nil, "at most 256"},
		{"credentialId is the current one", 200, "application/json", `{"credentialId":"` + currentID + `","value":"` + newValue + `"}`, "", nil, "current credential"},
		{"value missing", 200, "application/json", `{"credentialId":"tok-2"}`, "", nil, "value is missing"},
		{"value empty", 200, "application/json", `{"credentialId":"tok-2","value":""}`, "", nil, "value is missing"},
		{"value a number", 200, "application/json", `{"credentialId":"tok-2","value":12345}`, "", nil, "value is not a string"},
		{"value an object", 200, "application/json", `{"credentialId":"tok-2","value":{"v":"` + newValue + `"}}`, "", nil, "value is not a string"},
		{"value over 25 KB", 200, "application/json", `{"credentialId":"tok-2","value":"` + long(webhook.MaxValueBytes+1) + `"}`, "", nil, "at most 25600"},
		{"value is the current one", 200, "application/json", `{"credentialId":"tok-2","value":"` + currentValue + `"}`, "", nil, "current value"},
		{"expiresAt not RFC 3339", 200, "application/json", `{"credentialId":"tok-2","value":"` + newValue + `","expiresAt":"next Tuesday"}`, "", nil, "not an RFC 3339 time"},
		{"expiresAt a number", 200, "application/json", `{"credentialId":"tok-2","value":"` + newValue + `","expiresAt":1767225600}`, "", nil, "expiresAt is not a string"},
		{"expiresAt in the past", 200, "application/json", `{"credentialId":"tok-2","value":"` + newValue + `","expiresAt":"2020-01-01T00:00:00Z"}`, "", nil, "not in the future"},
		{"204", 204, "", "", "", nil, "unexpected success status"},
		{"redirect", 307, "application/json", okBody, "", nil, "redirects are not followed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := []string{}
			if tt.status == 307 {
				header = []string{"Location", "http://127.0.0.1:9/elsewhere"}
			}
			c, err := webhook.New().Create(t.Context(), request(httpxtest.Stub(t, tt.status, tt.contentType, tt.body, header...)))
			if tt.wantID != "" {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if c.CredentialID != tt.wantID {
					t.Errorf("CredentialID = %q, want %q", c.CredentialID, tt.wantID)
				}
				if (c.ExpiresAt == nil) != (tt.wantExpires == nil) || c.ExpiresAt != nil && !c.ExpiresAt.Equal(*tt.wantExpires) {
					t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, tt.wantExpires)
				}
				return
			}
			we := wantPermanent(t, err, tt.status)
			if !strings.Contains(we.Reason, tt.reason) {
				t.Errorf("reason %q does not say %q", we.Reason, tt.reason)
			}
			if !c.Value.IsZero() || c.CredentialID != "" {
				t.Error("Create returned a credential with its error")
			}
			clean(t, err, newValue)
		})
	}
}

func TestCreateAcceptedIsTransient(t *testing.T) {
	base := httpxtest.Stub(t, 202, "application/json", `{"status":"pending approval"}`, "Retry-After", "120")
	_, err := webhook.New().Create(t.Context(), request(base))
	we := wantTransient(t, err, http.StatusAccepted)
	if we.RetryAfter() != 2*time.Minute {
		t.Errorf("RetryAfter() = %v, want 2m", we.RetryAfter())
	}
}

func TestVerifyResponses(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		header      []string
		want        string // "ok", "transient" or the permanent reason
		retry       time.Duration
	}{
		{"valid", 200, "application/json", `{"valid":true}`, nil, "ok", 0},
		{"valid with extra fields", 200, "application/json", `{"valid":true,"checkedAt":"now"}`, nil, "ok", 0},
		{"not valid", 200, "application/json", `{"valid":false}`, nil, "transient", 0},
		{"not valid, retry after", 200, "application/json", `{"valid":false}`, []string{"Retry-After", "5"}, "transient", 5 * time.Second},
		{"valid missing", 200, "application/json", `{}`, nil, "valid is missing", 0},
		{"valid null", 200, "application/json", `{"valid":null}`, nil, "valid is missing", 0},
		{"valid a string", 200, "application/json", `{"valid":"true"}`, nil, "valid is not a boolean", 0},
		{"valid a number", 200, "application/json", `{"valid":1}`, nil, "valid is not a boolean", 0},
		{"not JSON", 200, "text/plain", "OK", nil, "Content-Type", 0},
		{"bad JSON", 200, "application/json", `{"valid":tru}`, nil, "not valid JSON", 0},
		{"huge body", 200, "application/json", `{"valid":true,"pad":"` + strings.Repeat("p", webhook.MaxResponseBytes) + `"}`, nil, "exceeds 64 KiB", 0},
		{"204", 204, "", "", nil, "unexpected success status", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.New().Verify(t.Context(), request(httpxtest.Stub(t, tt.status, tt.contentType, tt.body, tt.header...)), cred("tok-2", newValue))
			switch tt.want {
			case "ok":
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
			case "transient":
				if we := wantTransient(t, err, tt.status); we.RetryAfter() != tt.retry {
					t.Errorf("RetryAfter() = %v, want %v", we.RetryAfter(), tt.retry)
				}
			default:
				if we := wantPermanent(t, err, tt.status); !strings.Contains(we.Reason, tt.want) {
					t.Errorf("reason %q does not say %q", we.Reason, tt.want)
				}
			}
			clean(t, err, newValue)
		})
	}
}

func TestRevokeResponses(t *testing.T) {
	tests := []struct {
		status      int
		contentType string
		body        string
		permanent   bool
	}{
		{200, "application/json", `{}`, false},
		{200, "text/plain", "revoked", false}, // the body of a success is ignored
		{200, "application/json", "not json", false},
		{202, "", "", false},
		{204, "", "", false},
		{404, "application/json", `{"error":"no such credential"}`, false},
		{410, "", "", false},
		{201, "application/json", `{}`, true},
		{301, "", "", true},
		{400, "application/json", `{"error":"bad request"}`, true},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status)+" "+tt.body, func(t *testing.T) {
			err := webhook.New().Revoke(t.Context(), request(httpxtest.Stub(t, tt.status, tt.contentType, tt.body)), "tok-1")
			if !tt.permanent {
				if err != nil {
					t.Fatalf("Revoke: %v", err)
				}
				return
			}
			wantPermanent(t, err, tt.status)
		})
	}
}

func TestRetryAfterForms(t *testing.T) {
	now := time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 3 ", 3 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{"1.5", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999999", 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			base := httpxtest.Stub(t, 503, "application/json", `{"error":"busy"}`, "Retry-After", tt.header)
			p := webhook.New(webhook.WithClock(func() time.Time { return now }))
			req := request(base)
			req.Now = now
			_, err := p.Create(t.Context(), req)
			if we := wantTransient(t, err, 503); we.RetryAfter() != tt.want {
				t.Errorf("RetryAfter() = %v, want %v", we.RetryAfter(), tt.want)
			}
		})
	}
}

// The service's own error message is repeated, cleaned; nothing else of its body ever is.
func TestServiceErrorMessages(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		want        string
	}{
		{"plain message", "application/json", `{"error":"quota exceeded for team a"}`, "quota exceeded for team a"},
		{"problem+json", "application/problem+json", `{"error":"no","title":"x"}`, "no"},
		{"control characters and newlines", "application/json", `{"error":"line one\nline two\r\n\tthree\u0000\u001b[31m"}`, "line one line two three [31m"},
		{"a long message is cut", "application/json", `{"error":"` + strings.Repeat("é", 500) + `"}`, strings.Repeat("é", webhook.MaxMessageChars-1) + "…"},
		{"the value is redacted", "application/json", `{"error":"value ` + newValue + ` rejected"}`, "value [redacted] rejected"},
		{"the signing key is redacted", "application/json", `{"error":"expected key ` + signingKey + `"}`, "expected key [redacted]"},
		{"the current value is redacted", "application/json", `{"error":"old ` + currentValue + `"}`, "old [redacted]"},
		{"part of the value: withheld", "application/json", `{"error":"value ` + newValue[:15] + `... rejected"}`, "[withheld: it quoted part of a secret]"},
		{"error not a string", "application/json", `{"error":{"message":"` + newValue + `"}}`, ""},
		{"no error field", "application/json", `{"message":"` + newValue + `"}`, ""},
		{"text body", "text/plain", "rejected " + newValue, ""},
		{"HTML body", "text/html", "<h1>Bad Request</h1>", ""},
		{"body not JSON", "application/json", "rejected " + newValue, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.New().Verify(t.Context(), request(httpxtest.Stub(t, 400, tt.contentType, tt.body)), cred("tok-2", newValue))
			we := wantPermanent(t, err, 400)
			if we.Message != tt.want {
				t.Errorf("Message = %q, want %q", we.Message, tt.want)
			}
			if n := len([]rune(we.Message)); n > webhook.MaxMessageChars {
				t.Errorf("Message has %d characters, more than %d", n, webhook.MaxMessageChars)
			}
			if tt.want != "" && !strings.Contains(err.Error(), strconv.Quote(tt.want)) {
				t.Errorf("error %q does not quote the message", err)
			}
			clean(t, err, newValue, newValue[:12])
		})
	}
}

// recorded is a request as the service received it.
type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// recorder answers every endpoint per the contract and records the requests.
func recorder(t *testing.T) (base string, got func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, recorded{r.Method, r.URL.Path, r.Header.Clone(), body})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/create"):
			_, _ = io.WriteString(w, `{"credentialId":"tok-2","value":"`+newValue+`"}`)
		case strings.HasSuffix(r.URL.Path, "/verify"):
			_, _ = io.WriteString(w, `{"valid":true}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), reqs...)
	}
}

func TestWireFormat(t *testing.T) {
	base, got := recorder(t)
	now := time.Unix(1_790_000_000, 0)
	p := webhook.New(webhook.WithClock(func() time.Time { return now }))
	req := request(base + "/hooks/kvrotator/") // a base path, with a trailing slash
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatal(err)
	}
	later := laterRequest(base+"/hooks/kvrotator/", c) // after the grace period: the latest version holds c
	if err := p.Revoke(t.Context(), later, currentID); err != nil {
		t.Fatal(err)
	}
	later.Retired = providers.Value{} // the replaced version could no longer be read
	if err := p.Revoke(t.Context(), later, currentID); err != nil {
		t.Fatal(err)
	}

	digest := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	want := []struct {
		path    string
		body    map[string]any
		idemKey string
	}{
		{"/hooks/kvrotator/create", map[string]any{"action": "create", "idempotencyKey": idemKey, "vault": "myvault",
			"secret": "tokens-api-key", "version": "v1", "credentialId": currentID}, idemKey},
		{"/hooks/kvrotator/verify", map[string]any{"action": "verify", "idempotencyKey": idemKey, "vault": "myvault",
			"secret": "tokens-api-key", "credentialId": "tok-2", "value": newValue}, idemKey},
		{"/hooks/kvrotator/revoke", map[string]any{"action": "revoke", "vault": "myvault", "secret": "tokens-api-key",
			"credentialId": currentID, "retiredSha256": digest(currentValue), "currentSha256": digest(newValue)}, ""},
		{"/hooks/kvrotator/revoke", map[string]any{"action": "revoke", "vault": "myvault", "secret": "tokens-api-key",
			"credentialId": currentID, "currentSha256": digest(newValue)}, ""},
	}
	reqs := got()
	if len(reqs) != len(want) {
		t.Fatalf("the service got %d requests, want %d", len(reqs), len(want))
	}
	for i, w := range want {
		r := reqs[i]
		if r.method != http.MethodPost || r.path != w.path {
			t.Errorf("request %d: %s %s, want POST %s", i, r.method, r.path, w.path)
		}
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("request %d: body is not JSON: %v", i, err)
		}
		if !reflect.DeepEqual(body, w.body) {
			t.Errorf("request %d: body %v, want %v", i, body, w.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("request %d: Content-Type %q", i, ct)
		}
		if ts := r.header.Get(webhook.HeaderTimestamp); ts != "1790000000" {
			t.Errorf("request %d: %s = %q, want the clock's unix seconds", i, webhook.HeaderTimestamp, ts)
		}
		mac := hmac.New(sha256.New, []byte(signingKey))
		mac.Write([]byte("1790000000." + string(r.body)))
		if sig, want := r.header.Get(webhook.HeaderSignature), "sha256="+hex.EncodeToString(mac.Sum(nil)); sig != want {
			t.Errorf("request %d: %s = %q, want %q", i, webhook.HeaderSignature, sig, want)
		}
		if k, ok := r.header[webhook.HeaderIdempotencyKey]; w.idemKey == "" && ok || w.idemKey != "" && (len(k) != 1 || k[0] != w.idemKey) {
			t.Errorf("request %d: %s = %v, want %q", i, webhook.HeaderIdempotencyKey, k, w.idemKey)
		}
		if ua := r.header.Get("User-Agent"); !strings.HasPrefix(ua, "kvrotator-webhook/") {
			t.Errorf("request %d: User-Agent %q", i, ua)
		}
		if strings.Contains(string(r.body), currentValue) || (r.path != "/hooks/kvrotator/verify" && strings.Contains(string(r.body), newValue)) {
			t.Errorf("request %d sent a value it must not", i)
		}
	}
}

func TestSign(t *testing.T) {
	// Vectors computed independently with Python's hmac module.
	tests := []struct{ key, ts, body, want string }{
		{"key", "1700000000", "{}", "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"},
		{"0123456789abcdef0123456789abcdef", "1700000000",
			`{"action":"revoke","vault":"myvault","secret":"tokens-api-key","credentialId":"tok-2041"}`,
			"sha256=4339c7a8a93181b751930a78d0ce9e2d2f2a34fc40418223213c6ebc4f55fbd5"},
	}
	for _, tt := range tests {
		if got := webhook.Sign([]byte(tt.key), tt.ts, []byte(tt.body)); got != tt.want {
			t.Errorf("Sign(%q, %q, %q) = %q, want %q", tt.key, tt.ts, tt.body, got, tt.want)
		}
	}
}

func TestTimeouts(t *testing.T) {
	// hang answers nothing until the client gives up (or the test ends).
	done := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client hang up
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(done) }) // runs first

	t.Run("tag timeout", func(t *testing.T) {
		req := request(hang.URL)
		req.Params[webhook.TagTimeout] = "1"
		start := time.Now()
		_, err := webhook.New().Create(t.Context(), req)
		if d := time.Since(start); d < time.Second || d > 5*time.Second {
			t.Errorf("Create gave up after %v, want about 1s", d)
		}
		we := wantTransient(t, err, 0)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(we.Reason, webhook.TagTimeout) {
			t.Errorf("error %v does not say it timed out after the tag's timeout", err)
		}
	})
	t.Run("client timeout", func(t *testing.T) {
		p := webhook.New(webhook.WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
		err := p.Verify(t.Context(), request(hang.URL), cred("tok-2", newValue))
		we := wantTransient(t, err, 0)
		if !strings.HasPrefix(we.Reason, "timed out") {
			t.Errorf("reason %q, want timed out", we.Reason)
		}
		clean(t, err, newValue)
	})
	t.Run("engine cancels", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err := webhook.New().Revoke(ctx, request(hang.URL), "tok-1")
		wantTransient(t, err, 0)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap the engine's deadline", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		_, err := webhook.New().Create(t.Context(), request(closed.URL))
		if we := wantTransient(t, err, 0); we.Err == nil {
			t.Errorf("error %v has no cause", err)
		}
	})
}

func TestUntrustedCertificateIsPermanent(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failed handshake is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, err := webhook.New().Create(t.Context(), request(srv.URL)) // the default client does not trust httptest's CA
	wantPermanent(t, err, 0)

	// With the test server's client (which trusts it) the call goes through to the handler's 404.
	_, err = webhook.New(webhook.WithHTTPClient(srv.Client())).Create(t.Context(), request(srv.URL))
	wantPermanent(t, err, http.StatusNotFound)
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var followed bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed = true }))
	t.Cleanup(target.Close)
	base := httpxtest.Stub(t, http.StatusTemporaryRedirect, "", "", "Location", target.URL+"/create")
	// Even a client that would follow redirects does not.
	p := webhook.New(webhook.WithHTTPClient(&http.Client{}))
	_, err := p.Create(t.Context(), request(base))
	wantPermanent(t, err, http.StatusTemporaryRedirect)
	if followed {
		t.Error("the redirect was followed")
	}
}

var _ providers.Provider = webhook.New()
