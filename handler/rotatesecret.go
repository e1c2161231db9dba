package handler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/kvrotator/kvrotator/events"
	"github.com/kvrotator/kvrotator/rotation"
)

// httpRequest is the httpTrigger's Data value in envelope mode. Headers, Params and Identities are
// not needed and not read.
type httpRequest struct {
	URL    string          `json:"Url"`
	Method string          `json:"Method"`
	Query  json.RawMessage `json:"Query"` // an object (name → string); older docs show it string-encoded
	Body   json.RawMessage `json:"Body"`  // the raw body as a string; absent when empty
	// Headers are read only by webhook functions (signatures).
	Headers map[string][]string `json:"Headers"`
}

// httpOutput is the http output binding's value (Outputs.res).
type httpOutput struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// retryAfterSeconds is what a transient failure tells the caller to wait.
const retryAfterSeconds = 30

// rotateSecret handles the httpTrigger function: POST rotates one secret now (even if not due, unless
// "force":false), GET plans one (a dry run: GET never changes anything). The envelope is always 200;
// the caller's status is in Outputs.res.
func (h *handler) rotateSecret(inv *invocation, r *http.Request) reply {
	data, ierr := h.readData(r, "req")
	if ierr != nil {
		if ierr.tooLarge {
			return inv.reject(http.StatusRequestEntityTooLarge, nil, ierr.msg, "")
		}
		return inv.reject(http.StatusBadRequest, nil, ierr.msg, "")
	}
	var req httpRequest
	if data = bytes.TrimSpace(data); len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &req) != nil {
		return inv.reject(http.StatusBadRequest, nil, "the invocation's HTTP request (Data.req) is malformed", "")
	}
	method := strings.ToUpper(strings.TrimSpace(req.Method))
	if method != http.MethodGet && method != http.MethodPost {
		return inv.reject(http.StatusMethodNotAllowed, map[string]string{"Allow": "GET, POST"},
			fmt.Sprintf("method %q is not allowed: POST to rotate, GET to plan", clip(req.Method)), "")
	}
	in, ferr := parseRotateInput(method, req)
	if ferr != nil {
		return inv.reject(http.StatusBadRequest, nil, ferr.Error, ferr.Field)
	}
	if in == nil {
		inv.logf("usage served")
		return respond(http.StatusOK, nil, usage)
	}
	o := h.rotator.Rotate(r.Context(), *in)
	inv.outcome(r.Context(), o, inv.elapsedMS())
	status := statusFor(o)
	var headers map[string]string
	if status == http.StatusServiceUnavailable {
		headers = map[string]string{"Retry-After": strconv.Itoa(retryAfterSeconds)}
	}
	return respond(status, headers, o)
}

// statusFor maps an outcome to the caller's HTTP status: failures the caller can retry are 503, other
// failures (bad policy, unknown vault, provider refused) 422, a rotation refused because it would reset
// a slot or login still in use 409 (override lifts it), anything else 200.
func statusFor(o rotation.Outcome) int {
	switch {
	case o.Conflict:
		return http.StatusConflict
	case o.Transient():
		return http.StatusServiceUnavailable
	case o.Failed():
		return http.StatusUnprocessableEntity
	default:
		return http.StatusOK
	}
}

// respond builds a RotateSecret reply: envelope 200, Outputs.res carrying status and a JSON body.
func respond(status int, headers map[string]string, body any) reply {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the body is read by people and scripts, not embedded in HTML
	if err := enc.Encode(body); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"encoding the response failed"}`)
	}
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range headers {
		h[k] = v
	}
	return reply{status: http.StatusOK, outputs: map[string]any{
		"res": httpOutput{StatusCode: status, Headers: h, Body: strings.TrimSuffix(buf.String(), "\n")},
	}}
}

// errorBody is the JSON body of a rejected request.
type errorBody struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

// reject reports a request the caller got wrong and answers it with status. Nothing reaches the
// Rotator.
func (inv *invocation) reject(status int, headers map[string]string, msg, field string) reply {
	inv.log.Warn("request rejected", "error", msg, "field", field, "status", status)
	inv.logf("rejected: %s (%d)", msg, status)
	return respond(status, headers, errorBody{Error: msg, Field: field})
}

// usage is the answer to a GET without vault and secret.
var usage = struct {
	Usage  string            `json:"usage"`
	Fields map[string]string `json:"fields"`
}{
	Usage: `POST {"vault":"myvault","secret":"api-key"} rotates the secret now, even if it is not due. ` +
		`GET ?vault=myvault&secret=api-key plans the rotation without changing anything.`,
	Fields: map[string]string{
		"vault":   "the Key Vault name (required; it must be configured)",
		"secret":  "the secret name (required)",
		"version": "rotate only if this is still the latest version (optional, 32 hex digits)",
		"dryRun":  "true: say what would happen, change nothing (POST default false; GET is always a dry run)",
		"force":   "false: rotate only if the secret is due (POST default true)",
		"override": "true: ignore the rotation window, the minimum interval and the back-to-back guard (an emergency: " +
			"consumers of the previous version's slot or login break); a refusal by the guard answers 409",
	},
}

// fieldError names the input field a request got wrong.
type fieldError struct{ Field, Error string }

// inputFields maps the lower-cased input names to their canonical spelling.
var inputFields = map[string]string{"vault": "vault", "secret": "secret", "version": "version", "dryrun": "dryRun", "force": "force", "override": "override"}

// parseRotateInput reads the request's inputs: for POST the JSON body (or, when the body is empty,
// the query string), for GET the query string. It returns nil, nil for a GET asking for nothing
// (usage). Names are validated as Key Vault validates them; unknown body fields are refused, so a
// misspelt "dryRun" never turns a plan into a rotation.
func parseRotateInput(method string, req httpRequest) (*rotation.Request, *fieldError) {
	var values map[string]json.RawMessage
	strict := false
	body, ferr := bodyText(req.Body)
	if ferr != nil {
		return nil, ferr
	}
	if method == http.MethodPost && body != "" {
		if !strings.HasPrefix(body, "{") || json.Unmarshal([]byte(body), &values) != nil {
			return nil, &fieldError{Error: `the body is not a JSON object (expected {"vault":"…","secret":"…"})`}
		}
		strict = true
	} else {
		values = queryValues(req)
	}

	in := &rotation.Request{Trigger: rotation.TriggerManual, Force: true, DryRun: method == http.MethodGet}
	strs := map[string]*string{"vault": &in.Vault, "secret": &in.Secret, "version": &in.Version}
	bools := map[string]*bool{"dryRun": &in.DryRun, "force": &in.Force, "override": &in.Override}
	seen := map[string]bool{}
	for _, key := range slices.Sorted(maps.Keys(values)) { // sorted: the same input gets the same error
		name, known := inputFields[strings.ToLower(strings.TrimSpace(key))]
		switch {
		case !known && strict:
			return nil, &fieldError{Field: clip(key), Error: fmt.Sprintf("unknown field %q (fields: vault, secret, version, dryRun, force, override)", clip(key))}
		case !known: // query parameters such as the function key (code) are not ours
			continue
		case seen[name]:
			return nil, &fieldError{Field: name, Error: name + " is given more than once"}
		}
		seen[name] = true
		if p, isBool := bools[name]; isBool {
			v, ok := boolValue(values[key], !strict)
			if !ok {
				return nil, &fieldError{Field: name, Error: name + " must be true or false"}
			}
			*p = v
			continue
		}
		var s string
		if json.Unmarshal(values[key], &s) != nil {
			return nil, &fieldError{Field: name, Error: name + " must be a string"}
		}
		*strs[name] = strings.TrimSpace(s)
	}
	if method == http.MethodGet {
		if in.Vault == "" && in.Secret == "" {
			return nil, nil
		}
		if !in.DryRun {
			return nil, &fieldError{Field: "dryRun", Error: "GET only plans a rotation; POST to rotate"}
		}
	}
	if ferr := checkNames(in); ferr != nil {
		return nil, ferr
	}
	return in, nil
}

// checkNames validates the vault, secret and (optional) version.
func checkNames(in *rotation.Request) *fieldError {
	for _, f := range []struct {
		name, value string
		check       func(string) error
		required    bool
	}{
		{"vault", in.Vault, events.CheckVaultName, true},
		{"secret", in.Secret, events.CheckSecretName, true},
		{"version", in.Version, events.CheckVersion, false},
	} {
		if f.value == "" {
			if f.required {
				return &fieldError{Field: f.name, Error: f.name + " is required"}
			}
			continue
		}
		if err := f.check(f.value); err != nil {
			return &fieldError{Field: f.name, Error: f.name + " " + err.Error()}
		}
	}
	return nil
}

// bodyText returns the request body: Body is a JSON string (or absent); an object is taken as is.
func bodyText(raw json.RawMessage) (string, *fieldError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '{' {
		return string(raw), nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", &fieldError{Error: "the request body is not text"}
	}
	return strings.TrimSpace(s), nil
}

// queryValues returns the query parameters as JSON strings: from Query (an object, possibly
// string-encoded), or, when that is empty, from the Url.
func queryValues(req httpRequest) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	q := bytes.TrimSpace(req.Query)
	if len(q) > 0 && q[0] == '"' {
		var s string
		if json.Unmarshal(q, &s) == nil {
			q = []byte(s)
		}
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(q, &m) == nil {
		for k, v := range m {
			if v = bytes.TrimSpace(v); len(v) > 0 && v[0] != '"' { // a number or bool: keep its text
				v, _ = json.Marshal(string(v))
			}
			out[k] = v
		}
	}
	if len(out) == 0 {
		if u, err := url.Parse(req.URL); err == nil {
			for k, vs := range u.Query() {
				out[k], _ = json.Marshal(strings.Join(vs, ","))
			}
		}
	}
	return out
}

// boolValue reads a JSON bool, or a string such as "true", "false", "1" or "0"; with bareFlag, the
// empty string (a query's ?dryRun) is true.
func boolValue(raw json.RawMessage, bareFlag bool) (bool, bool) {
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false, false
	}
	if s = strings.TrimSpace(s); s == "" {
		return bareFlag, bareFlag
	}
	b, err := strconv.ParseBool(s)
	return b, err == nil
}
