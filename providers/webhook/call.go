package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/webhook/signature"
)

// The headers of every call.
const (
	HeaderTimestamp      = signature.HeaderTimestamp // unix seconds when the request was signed
	HeaderSignature      = signature.HeaderSignature // "sha256=" + hex HMAC-SHA256(key, timestamp + "." + body)
	HeaderIdempotencyKey = "Idempotency-Key"         // create and verify: the body's idempotencyKey
)

// Limits of the contract.
const (
	MaxResponseBytes     = 64 << 10  // the most of a response body the provider reads
	MaxValueBytes        = 25 * 1024 // a credential value must fit in a Key Vault secret
	MaxCredentialIDChars = 256       // a credential id must fit in the CredentialId tag
)

const (
	signaturePrefix = signature.Prefix      // the scheme in HeaderSignature
	userAgent       = "kvrotator-webhook/1" // lets a service recognise the caller in its logs
	errorField      = "error"               // the message field of a JSON error body
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
	return signature.Sign(key, timestamp, body)
}

// call is one signed POST to an endpoint.
type call struct {
	endpoint string
	body     any
	idemKey  string   // sent as Idempotency-Key when not empty
	secrets  []string // redacted from anything the service says back
}

// request encodes and signs c, stamped with the provider's clock, for the base URL of cfg.
func (p *Provider) request(cfg config, key []byte, c call) (httpx.Request, error) {
	r := httpx.Request{Op: c.endpoint, Method: http.MethodPost, URL: cfg.endpoint(c.endpoint), Timeout: cfg.timeout, Secrets: c.secrets}
	body, err := json.Marshal(c.body)
	if err != nil {
		e := p.http.Error(r, 0, "encoding the request", true)
		e.Err = err
		return r, e.Classified()
	}
	ts := strconv.FormatInt(p.now().Unix(), 10)
	r.Body, r.Header = body, http.Header{}
	r.Header.Set(HeaderTimestamp, ts)
	r.Header.Set(HeaderSignature, Sign(key, ts, body))
	if c.idemKey != "" {
		r.Header.Set(HeaderIdempotencyKey, c.idemKey)
	}
	return r, nil
}

// do signs and sends c and returns the request and the response if its status is one of ok. Any other
// outcome is an *Error: transient for timeouts, connection errors, 408, 429 and 5xx; permanent
// (providers.Permanent) for the other statuses and for TLS certificate failures.
func (p *Provider) do(ctx context.Context, cfg config, key []byte, c call, ok ...int) (httpx.Request, *httpx.Response, error) {
	r, err := p.request(cfg, key, c)
	if err != nil {
		return r, nil, err
	}
	resp, err := p.http.Do(ctx, r)
	if err != nil {
		return r, nil, err
	}
	if slices.Contains(ok, resp.Status) {
		return r, resp, nil
	}
	return r, nil, p.http.Fail(r, resp, verdict(resp.Status, ok))
}

// verdict is what a status the endpoint does not answer with under the contract means.
func verdict(s int, ok []int) httpx.Verdict {
	switch {
	case httpx.Retryable(s):
		return httpx.Verdict{Reason: "the service is unavailable or busy; will retry", Transient: true}
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		return httpx.Verdict{Reason: "the service rejected kvrotator's signature or permissions (wrong signing key, clock skew, or not allowed)"}
	case s >= 300 && s < 400:
		return httpx.Verdict{Reason: "redirects are not followed; set the tag to the final URL"}
	case s >= 200 && s < 300:
		return httpx.Verdict{Reason: "unexpected success status; the contract allows " + statusList(ok)}
	default:
		return httpx.Verdict{Reason: "the service refused the request"}
	}
}

// errorMessage is the "error" field of a JSON error body, or "". httpx sanitizes it.
func errorMessage(body []byte) string {
	var b map[string]json.RawMessage
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	var msg string
	if json.Unmarshal(b[errorField], &msg) != nil {
		return ""
	}
	return msg
}

func statusList(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ", ")
}

// object decodes a success body that must be one JSON object. Field names are matched exactly; unknown
// fields are ignored. The reason says what is wrong without quoting the body.
func object(r *httpx.Response) (map[string]json.RawMessage, string) {
	var obj map[string]json.RawMessage
	return obj, r.DecodeObject(&obj)
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
