package handler

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/rotation"
)

// httpEnvelope builds an httpTrigger envelope; body "" leaves Body out, as the host does for an empty
// request body.
func httpEnvelope(method, rawURL, query, body string) []byte {
	req := `{"Url":` + jsonString(rawURL) + `,"Method":` + jsonString(method) + `,"Query":` + query +
		`,"Headers":{"Accept":["*/*"],"Content-Type":["application/json"],"x-functions-key":["FUNCTION-KEY-bbbb"]},"Params":{}`
	if body != "" {
		req += `,"Body":` + jsonString(body)
	}
	return []byte(`{"Data":{"req":` + req + `}},"Metadata":{"sys":{"MethodName":"RotateSecret","UtcNow":"2025-01-01T00:00:00Z","RandGuid":"x"}}}`)
}

func post(body string) []byte {
	return httpEnvelope("POST", "https://app.azurewebsites.net/api/RotateSecret", `{}`, body)
}

func get(query string) []byte {
	q := map[string]string{"code": "FUNCTION-KEY-cccc"}
	for _, kv := range strings.Split(query, "&") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			q[k] = v
		}
	}
	qj, _ := json.Marshal(q)
	return httpEnvelope("GET", "https://app.azurewebsites.net/api/RotateSecret?code=FUNCTION-KEY-cccc&"+query, string(qj), "")
}

const version32 = "0123456789abcdef0123456789abcdef"

func TestRotateSecretRequests(t *testing.T) {
	manual := func(vault, secret, version string, dryRun, force bool) *rotation.Request {
		return &rotation.Request{Vault: vault, Secret: secret, Version: version, Trigger: rotation.TriggerManual, DryRun: dryRun, Force: force}
	}
	tests := []struct {
		name string
		body []byte
		want *rotation.Request
	}{
		{"host envelope: POST dry run", fixture(t, "rotatesecret-post.json"), manual("myvault", "api-key", "", true, true)},
		{"host envelope: GET plans", fixture(t, "rotatesecret-get.json"), manual("myvault", "api-key", "", true, true)},
		{"POST rotates, forced by default", post(`{"vault":"myvault","secret":"api-key"}`), manual("myvault", "api-key", "", false, true)},
		{"POST force false", post(`{"vault":"myvault","secret":"api-key","force":false}`), manual("myvault", "api-key", "", false, false)},
		{"POST with version", post(`{"vault":"myvault","secret":"api-key","version":"` + version32 + `"}`), manual("myvault", "api-key", version32, false, true)},
		{"POST keys case-insensitive, names trimmed", post(`{"Vault":" myvault ","SECRET":"api-key","DryRun":"true"}`), manual("myvault", "api-key", "", true, true)},
		{"POST null version", post(`{"vault":"myvault","secret":"api-key","version":null}`), manual("myvault", "api-key", "", false, true)},
		{"POST without body takes the query", httpEnvelope("POST", "https://app/api/RotateSecret?vault=myvault&secret=api-key", `{"vault":"myvault","secret":"api-key"}`, ""),
			manual("myvault", "api-key", "", false, true)},
		{"POST lower-case method", httpEnvelope("post", "https://app/api/RotateSecret", `{}`, `{"vault":"myvault","secret":"api-key"}`), manual("myvault", "api-key", "", false, true)},
		{"GET without dryRun plans", get("vault=myvault&secret=api-key"), manual("myvault", "api-key", "", true, true)},
		{"GET bare dryRun flag", get("vault=myvault&secret=api-key&dryRun="), manual("myvault", "api-key", "", true, true)},
		{"GET force=false", get("vault=myvault&secret=api-key&force=false"), manual("myvault", "api-key", "", true, false)},
		{"GET with version", get("vault=myvault&secret=api-key&version=" + version32), manual("myvault", "api-key", version32, true, true)},
		{"GET Query string-encoded, as the docs sample", httpEnvelope("GET", "https://app/api/RotateSecret", `"{\"vault\":\"myvault\",\"secret\":\"api-key\"}"`, ""),
			manual("myvault", "api-key", "", true, true)},
		{"GET Query empty: read from the Url", httpEnvelope("GET", "https://app/api/RotateSecret?code=k&vault=myvault&secret=api-key", `{}`, ""),
			manual("myvault", "api-key", "", true, true)},
		{"GET Query without Url", httpEnvelope("GET", "", `{"vault":"myvault","secret":"api-key","dryRun":true}`, ""), manual("myvault", "api-key", "", true, true)},
		{"Body as an object", []byte(`{"Data":{"req":{"Method":"POST","Body":{"vault":"myvault","secret":"api-key"}}}}`), manual("myvault", "api-key", "", false, true)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 0)
			r.rot.outcome = rotation.Outcome{Kind: rotation.KindPlanned, Vault: "myvault", Secret: "api-key", DryRun: true, Reason: "would rotate"}
			env := readEnvelope(t, r.invoke("RotateSecret", tt.body))
			if env.status != 200 {
				t.Errorf("envelope status = %d, want 200", env.status)
			}
			if res := env.res(t); res.StatusCode != 200 {
				t.Errorf("res.statusCode = %d (%s), want 200", res.StatusCode, res.Body)
			}
			if len(r.rot.requests) != 1 || r.rot.requests[0] != *tt.want {
				t.Errorf("Rotate got %+v, want [%+v]", r.rot.requests, *tt.want)
			}
		})
	}
}

func TestRotateSecretOutcomeStatus(t *testing.T) {
	tests := []struct {
		out        rotation.Outcome
		status     int
		retryAfter string
	}{
		{rotation.Outcome{Kind: rotation.KindRotated, NewVersion: version32}, 200, ""},
		{rotation.Outcome{Kind: rotation.KindSkipped, Reason: "not due"}, 200, ""},
		{rotation.Outcome{Kind: rotation.KindPlanned, DryRun: true}, 200, ""},
		{rotation.Outcome{Kind: rotation.KindRevoked}, 200, ""},
		{rotation.Outcome{Kind: rotation.KindOverdue}, 200, ""},
		{rotation.Outcome{Kind: rotation.KindFailed, Class: rotation.ClassPermanent, Reason: "vault myvault is not configured"}, 422, ""},
		{rotation.Outcome{Kind: rotation.KindFailed, Reason: "unclassified"}, 422, ""},
		{rotation.Outcome{Kind: rotation.KindFailed, Class: rotation.ClassTransient, Reason: "throttled"}, 503, "30"},
	}
	for _, tt := range tests {
		name := string(tt.out.Kind) + "/" + string(tt.out.Class)
		t.Run(name, func(t *testing.T) {
			r := newRig(t, 0)
			tt.out.Vault, tt.out.Secret, tt.out.Trigger = "myvault", "api-key", rotation.TriggerManual
			r.rot.outcome = tt.out
			env := readEnvelope(t, r.invoke("RotateSecret", post(`{"vault":"myvault","secret":"api-key"}`)))
			if env.status != 200 {
				t.Errorf("envelope status = %d, want 200", env.status)
			}
			res := env.res(t)
			if res.StatusCode != tt.status {
				t.Errorf("res.statusCode = %d, want %d", res.StatusCode, tt.status)
			}
			if got := res.Headers["Retry-After"]; got != tt.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tt.retryAfter)
			}
			want, _ := json.Marshal(tt.out)
			if res.Body != string(want) {
				t.Errorf("res.body = %s, want the outcome %s", res.Body, want)
			}
			if len(env.Logs) != 1 || !strings.HasPrefix(env.Logs[0], string(tt.out.Kind)) {
				t.Errorf("Logs = %q, want one outcome line", env.Logs)
			}
		})
	}
}

func TestRotateSecretRejects(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		status int
		field  string
		error  string // substring
	}{
		{"invalid vault", post(`{"vault":"bad_vault","secret":"api-key"}`), 400, "vault", `vault "bad_vault" is not a valid vault name`},
		{"vault a host name", post(`{"vault":"evil.example.com","secret":"api-key"}`), 400, "vault", "not a valid vault name"},
		{"vault with double hyphen", get("vault=my--vault&secret=api-key"), 400, "vault", "not a valid vault name"},
		{"vault given twice in the query", get("vault=myvault,other&secret=api-key"), 400, "vault", "not a valid vault name"},
		{"invalid secret", post(`{"vault":"myvault","secret":"../api-key"}`), 400, "secret", `secret "../api-key" is not a valid secret name`},
		{"invalid version", post(`{"vault":"myvault","secret":"api-key","version":"latest"}`), 400, "version", `version "latest" is not a valid version`},
		{"missing vault", post(`{"secret":"api-key"}`), 400, "vault", "vault is required"},
		{"missing secret", get("vault=myvault"), 400, "secret", "secret is required"},
		{"empty POST", post(""), 400, "vault", "vault is required"},
		{"unknown field", post(`{"vault":"myvault","secret":"api-key","dry_run":true}`), 400, "dry_run", `unknown field "dry_run"`},
		{"field twice", post(`{"vault":"myvault","Vault":"myvault","secret":"api-key"}`), 400, "vault", "more than once"},
		{"vault not a string", post(`{"vault":["myvault"],"secret":"api-key"}`), 400, "vault", "vault must be a string"},
		{"dryRun not a bool", post(`{"vault":"myvault","secret":"api-key","dryRun":"yes"}`), 400, "dryRun", "dryRun must be true or false"},
		{"empty dryRun string in a body", post(`{"vault":"myvault","secret":"api-key","dryRun":""}`), 400, "dryRun", "must be true or false"},
		{"force a number", post(`{"vault":"myvault","secret":"api-key","force":2}`), 400, "force", "force must be true or false"},
		{"body not JSON", post(`vault=myvault&secret=api-key`), 400, "", "the body is not a JSON object"},
		{"body a JSON array", post(`[{"vault":"myvault","secret":"api-key"}]`), 400, "", "the body is not a JSON object"},
		{"body broken JSON", post(`{"vault":"myvault"`), 400, "", "the body is not a JSON object"},
		{"Body a number", []byte(`{"Data":{"req":{"Method":"POST","Body":5}}}`), 400, "", "not text"},
		{"GET asking for a rotation", get("vault=myvault&secret=api-key&dryRun=false"), 400, "dryRun", "GET only plans a rotation; POST to rotate"},
		{"PUT", httpEnvelope("PUT", "https://app/api/RotateSecret", `{}`, `{"vault":"myvault","secret":"api-key"}`), 405, "", `method "PUT" is not allowed`},
		{"no Method", []byte(`{"Data":{"req":{"Body":"{}"}}}`), 405, "", "not allowed"},
		{"req not an object", []byte(`{"Data":{"req":"POST"}}`), 400, "", "Data.req) is malformed"},
		{"req with a wrong type", []byte(`{"Data":{"req":{"Method":7}}}`), 400, "", "Data.req) is malformed"},
		{"invocation not an object", []byte(`[]`), 400, "", "not a JSON object"},
		{"invocation without req", []byte(`{"Data":{"a":{},"b":{}}}`), 400, "", "no Data.req"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 0)
			env := readEnvelope(t, r.invoke("RotateSecret", tt.body))
			if env.status != 200 {
				t.Errorf("envelope status = %d, want 200", env.status)
			}
			res := env.res(t)
			if res.StatusCode != tt.status {
				t.Errorf("res.statusCode = %d, want %d", res.StatusCode, tt.status)
			}
			var body errorBody
			if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
				t.Fatalf("res.body: %v", err)
			}
			if body.Field != tt.field || !strings.Contains(body.Error, tt.error) {
				t.Errorf("res.body = %+v, want field %q and an error containing %q", body, tt.field, tt.error)
			}
			if r.rot.calls() != 0 {
				t.Errorf("the rotator was called for a bad request: %+v", r.rot.requests)
			}
			if rejected := r.logs.withMessage(t, "request rejected"); len(rejected) != 1 || rejected[0]["level"] != "WARN" {
				t.Errorf("want one WARN line \"request rejected\", got %v", r.logs.lines(t))
			}
			if tt.status == 405 && res.Headers["Allow"] != "GET, POST" {
				t.Errorf("405 without Allow: GET, POST: %v", res.Headers)
			}
		})
	}
}

func TestRotateSecretOversize(t *testing.T) {
	r := newRig(t, 512)
	body := post(`{"vault":"myvault","secret":"api-key","pad":"` + strings.Repeat("x", 600) + `"}`)
	env := readEnvelope(t, r.invoke("RotateSecret", body))
	if env.status != 200 {
		t.Errorf("envelope status = %d, want 200", env.status)
	}
	if res := env.res(t); res.StatusCode != 413 {
		t.Errorf("res.statusCode = %d, want 413", res.StatusCode)
	}
	if r.rot.calls() != 0 {
		t.Error("the rotator was called")
	}
}

func TestRotateSecretUsage(t *testing.T) {
	for _, body := range [][]byte{get(""), get("dryRun=true"), httpEnvelope("GET", "https://app/api/RotateSecret", `{}`, "")} {
		r := newRig(t, 0)
		res := readEnvelope(t, r.invoke("RotateSecret", body)).res(t)
		if res.StatusCode != 200 || !strings.Contains(res.Body, `"usage"`) || !strings.Contains(res.Body, `"dryRun"`) {
			t.Errorf("usage response = %d %s", res.StatusCode, res.Body)
		}
		if r.rot.calls() != 0 {
			t.Error("the rotator was called for a usage request")
		}
	}
}

// TestReportLeakInput: the leak function takes exactly one of value and sha256 by POST, answers 404
// when nothing holds the value, and never repeats the value in its answer or logs.
func TestReportLeakInput(t *testing.T) {
	const leaked = "LEAKED-value-never-echo-5f2c"
	for _, tc := range []struct {
		name, method, body string
		status             int
	}{
		{"value, not found", "POST", `{"value":"` + leaked + `"}`, 404},
		{"sha256, not found", "POST", `{"sha256":"` + strings.Repeat("ab", 32) + `"}`, 404},
		{"both", "POST", `{"value":"` + leaked + `","sha256":"` + strings.Repeat("ab", 32) + `"}`, 400},
		{"neither", "POST", `{"dryRun":true}`, 400},
		{"empty value", "POST", `{"value":""}`, 400},
		{"bad digest", "POST", `{"sha256":"xyz"}`, 400},
		{"unknown field", "POST", `{"value":"` + leaked + `","vault":"x"}`, 400},
		{"not JSON", "POST", leaked, 400},
		{"GET", "GET", "", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, 0)
			body, _ := json.Marshal(tc.body)
			env := readEnvelope(t, r.invoke("ReportLeak", []byte(`{"Data":{"req":{"Url":"https://localhost/api/ReportLeak","Method":"`+tc.method+`","Body":`+string(body)+`}},"Metadata":{}}`)))
			res := env.res(t)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, res.Body)
			}
			if strings.Contains(res.Body, leaked) || strings.Contains(r.logs.String(), leaked) || strings.Contains(strings.Join(env.Logs, " "), leaked) {
				t.Fatal("the leaked value was echoed")
			}
		})
	}
	r := newRig(t, 0)
	r.rot.leak = rotation.LeakReport{Outcomes: []rotation.Outcome{{Kind: rotation.KindEmergency, Vault: "kv", Secret: "s", Reason: "rotated"}}}
	env := readEnvelope(t, r.invoke("ReportLeak", []byte(`{"Data":{"req":{"Url":"https://localhost/api/ReportLeak","Method":"POST","Body":"{\"value\":\"x\",\"dryRun\":true}"}},"Metadata":{}}`)))
	if res := env.res(t); res.StatusCode != 200 || !strings.Contains(res.Body, `"found":true`) || len(r.rot.leaks) != 1 || !r.rot.leaks[0].DryRun {
		t.Fatalf("found: %+v, %+v", res, r.rot.leaks)
	}
}
