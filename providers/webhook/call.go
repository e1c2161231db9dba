package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/kvrotator/kvrotator/providers"
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
	jsonType        = "application/json"
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

// response is an answer whose status the caller handles: the body is read up to MaxResponseBytes, and
// tooLong says there was more.
type response struct {
	status  int
	header  http.Header
	body    []byte
	tooLong bool
}

// do signs and sends c and returns the response if its status is one of ok. Any other outcome is an
// *Error: transient for timeouts, connection errors, 408, 429 and 5xx; permanent (providers.Permanent)
// for the other statuses and for TLS certificate failures.
func (p *Provider) do(ctx context.Context, cfg config, key []byte, c call, ok ...int) (*response, error) {
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
	defer resp.Body.Close()
	r := &response{status: resp.StatusCode, header: resp.Header}
	r.body, err = io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		e := fail(resp.StatusCode, "reading the response", nil)
		return nil, transportError(ctx, callCtx, cfg, e, err)
	}
	if len(r.body) > MaxResponseBytes {
		r.body, r.tooLong = nil, true
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			return r, nil
		}
	}

	e := fail(resp.StatusCode, "", nil)
	e.Retry = parseRetryAfter(resp.Header.Get("Retry-After"), p.now())
	e.Message = errorMessage(r, c.secrets)
	switch s := resp.StatusCode; {
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
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
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		// The engine's own deadline or cancellation: report it as such.
		e.Reason, e.Err = "stopped by the caller", ctx.Err()
		return e
	case errors.Is(callCtx.Err(), context.DeadlineExceeded):
		e.Reason, e.Err = fmt.Sprintf("no answer within %v (%s)", cfg.timeout, TagTimeout), context.DeadlineExceeded
		return e
	case errors.As(err, &certErr):
		e.Reason, e.Err = "the service's TLS certificate is not trusted", err
		return providers.Permanent(e)
	case errors.As(err, &netErr) && netErr.Timeout():
		e.Reason, e.Err = "timed out", err
		return e
	default:
		e.Reason, e.Err = "no response", err
		return e
	}
}

// errorMessage is the sanitized "error" field of a JSON error body, or "".
func errorMessage(r *response, secrets []string) string {
	if r.tooLong || !isJSON(r.header) {
		return ""
	}
	var body map[string]json.RawMessage
	if json.Unmarshal(r.body, &body) != nil {
		return ""
	}
	var msg string
	if json.Unmarshal(body[errorField], &msg) != nil {
		return ""
	}
	return sanitizeMessage(msg, secrets...)
}

// isJSON reports whether the response says its body is JSON (application/json or a +json type).
func isJSON(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && (mt == jsonType || strings.HasSuffix(mt, "+json"))
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
func (r *response) object() (map[string]json.RawMessage, string) {
	switch {
	case r.tooLong:
		return nil, fmt.Sprintf("response body exceeds %d KiB", MaxResponseBytes>>10)
	case !isJSON(r.header):
		return nil, fmt.Sprintf("response Content-Type is %q, want %s", r.header.Get("Content-Type"), jsonType)
	case len(bytes.TrimSpace(r.body)) == 0:
		return nil, "empty response body"
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
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
