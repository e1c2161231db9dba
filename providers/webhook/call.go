package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// The headers of every call.
const (
	HeaderTimestamp      = "X-Kvrotator-Timestamp" // unix seconds when the request was signed
	HeaderSignature      = "X-Kvrotator-Signature" // "sha256=" + hex HMAC-SHA256(key, timestamp + "." + body)
	HeaderIdempotencyKey = "Idempotency-Key"       // create and verify: the body's idempotencyKey
)

// Limits of the contract.
const (
	MaxResponseBytes     = 64 << 10  // the most of a response body the provider reads
	MaxValueBytes        = 25 * 1024 // a credential value must fit in a Key Vault secret
	MaxCredentialIDChars = 256       // a credential id must fit in the CredentialId tag
)

const (
	signaturePrefix = "sha256="             // the scheme in HeaderSignature
	userAgent       = "kvrotator-webhook/1" // lets a service recognise the caller in its logs
	jsonType        = httpx.JSONType
	errorField      = "error" // the message field of a JSON error body
)

// The endpoints, appended to the base URL.
const (
	endpointCreate = "create"
	endpointVerify = "verify"
	endpointRevoke = "revoke"
)

// Sign returns the X-Kvrotator-Signature header value for a body sent at timestamp (unix seconds, as
// sent in X-Kvrotator-Timestamp): "sha256=" followed by the lower-case hex HMAC-SHA256 of
// timestamp + "." + body under key.
func Sign(key []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// call is one signed POST to an endpoint.
type call struct {
	endpoint string
	url      string
	body     any
	idemKey  string   // sent as Idempotency-Key when not empty
	secrets  []string // redacted from anything the service says back
}

// do signs and sends c and returns the response if its status is one of ok. Any other outcome is an
// *Error: transient for timeouts, connection errors, 408, 429 and 5xx; permanent (providers.Permanent)
// for the other statuses and for TLS certificate failures.
func (p *Provider) do(ctx context.Context, cfg config, key []byte, c call, ok ...int) (*httpx.Response, error) {
	fail := func(status int, reason string, cause error) *Error {
		return &Error{Endpoint: c.endpoint, URL: c.url, Status: status, Reason: reason, Err: cause}
	}
	body, err := json.Marshal(c.body)
	if err != nil {
		return nil, providers.Permanent(fail(0, "encoding the request", err))
	}
	callCtx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, providers.Permanent(fail(0, "building the request", err))
	}
	ts := strconv.FormatInt(p.now().Unix(), 10)
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("Accept", jsonType)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(key, ts, body))
	if c.idemKey != "" {
		req.Header.Set(HeaderIdempotencyKey, c.idemKey)
	}

	resp, err := p.client.Do(req)
	if err != nil {
		return nil, transportError(ctx, callCtx, cfg, fail(0, "", nil), err)
	}
	r, err := httpx.Read(resp, MaxResponseBytes)
	if err != nil {
		e := fail(resp.StatusCode, "reading the response", nil)
		return nil, transportError(ctx, callCtx, cfg, e, err)
	}
	if slices.Contains(ok, r.Status) {
		return r, nil
	}

	e := fail(r.Status, "", nil)
	e.Retry = parseRetryAfter(r.Header.Get("Retry-After"), p.now())
	e.Message = errorMessage(r, c.secrets)
	switch s := r.Status; {
	case httpx.Retryable(s):
		e.Reason = "the service is unavailable or busy; will retry"
		return nil, e
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e.Reason = "the service rejected kvrotator's signature or permissions (wrong signing key, clock skew, or not allowed)"
	case s >= 300 && s < 400:
		e.Reason = "redirects are not followed; set the tag to the final URL"
	case s >= 200 && s < 300:
		e.Reason = "unexpected success status; the contract allows " + statusList(ok)
	default:
		e.Reason = "the service refused the request"
	}
	return nil, providers.Permanent(e)
}

// transportError classifies a failure to get (or read) a response: a certificate the client does not
// trust needs a person and is permanent; timeouts, resets and refusals are transient.
func transportError(ctx, callCtx context.Context, cfg config, e *Error, err error) error {
	reasons := httpx.TransportReasons{
		Deadline:    fmt.Sprintf("no answer within %v (%s)", cfg.timeout, TagTimeout),
		Untrusted:   "the service's TLS certificate is not trusted",
		TimedOut:    "timed out",
		Unreachable: "no response",
	}
	var permanent bool
	e.Reason, e.Err, permanent = reasons.Classify(ctx, callCtx, err)
	if permanent {
		return providers.Permanent(e)
	}
	return e
}

// errorMessage is the sanitized "error" field of a JSON error body, or "".
func errorMessage(r *httpx.Response, secrets []string) string {
	if r.JSONProblem() != "" {
		return ""
	}
	var body map[string]json.RawMessage
	if json.Unmarshal(r.Body, &body) != nil {
		return ""
	}
	var msg string
	if json.Unmarshal(body[errorField], &msg) != nil {
		return ""
	}
	return messages.Sanitize(msg, secrets...)
}

func statusList(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ", ")
}

// object decodes a success body that must be one JSON object. Field names are matched exactly; unknown
// fields are ignored. The error says what is wrong without quoting the body.
func object(r *httpx.Response) (map[string]json.RawMessage, string) {
	if reason := r.JSONProblem(); reason != "" {
		return nil, "response " + reason
	}
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return nil, "empty response body"
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			// The syntax error's own text quotes a character of the body: give the offset only.
			return nil, fmt.Sprintf("response body is not valid JSON (at byte %d)", se.Offset)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, "response body is not valid JSON (cut short)"
		}
		return nil, "response body is not a JSON object"
	}
	if obj == nil {
		return nil, "response body is not a JSON object"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "response body has data after the JSON object"
	}
	return obj, ""
}

// stringField reads a string field; absent and null are "" with ok true, any other type is not ok.
func stringField(obj map[string]json.RawMessage, name string) (string, bool) {
	raw, found := obj[name]
	if !found || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
