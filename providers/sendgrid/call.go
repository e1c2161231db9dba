package sendgrid

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// MaxResponseBytes is the most of a response body the provider reads. A list of SendGrid's maximum of
// 100 keys is about 10 KiB.
const MaxResponseBytes = 256 << 10

const (
	userAgent  = "kvrotator-sendgrid/1"
	jsonType   = httpx.JSONType
	onBehalfOf = "on-behalf-of"
)

// call is one request to the SendGrid API.
type call struct {
	op         string // for the error: "list keys", "read key", …
	method     string
	path       string // appended to the base URL; path segments already escaped
	query      url.Values
	body       any    // JSON-encoded when not nil
	key        string // sent as the bearer token
	onBehalfOf string
	secrets    []string // redacted from anything SendGrid says back
}

// errorf starts an *Error for c.
func (c call) errorf(cfg config, status int, reason string, cause error) *Error {
	return &Error{Op: c.op, Method: c.method, URL: cfg.base + c.path, Status: status, Reason: reason, Err: cause}
}

// do sends c and returns the response, whatever its status. Failing to get one is an *Error: transient
// for timeouts, resets and refusals; permanent for a TLS certificate the client does not trust.
func (p *Provider) do(ctx context.Context, cfg config, c call) (*httpx.Response, error) {
	var body io.Reader
	if c.body != nil {
		b, err := json.Marshal(c.body)
		if err != nil {
			return nil, providers.Permanent(c.errorf(cfg, 0, "encoding the request", err))
		}
		body = bytes.NewReader(b)
	}
	u := cfg.base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	callCtx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(callCtx, c.method, u, body)
	if err != nil {
		return nil, providers.Permanent(c.errorf(cfg, 0, "building the request", nil))
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", jsonType)
	req.Header.Set("User-Agent", userAgent)
	if c.body != nil {
		req.Header.Set("Content-Type", jsonType)
	}
	if c.onBehalfOf != "" {
		req.Header.Set(onBehalfOf, c.onBehalfOf)
	}

	resp, err := p.client.Do(req)
	if err != nil {
		return nil, p.transportError(ctx, callCtx, c.errorf(cfg, 0, "", nil), err)
	}
	r, err := httpx.Read(resp, MaxResponseBytes)
	if err != nil {
		return nil, p.transportError(ctx, callCtx, c.errorf(cfg, resp.StatusCode, "reading the response", nil), err)
	}
	return r, nil
}

// transportError classifies a failure to get (or read) a response. The cause's text is kept: net/http
// errors name the URL and the network problem, never a header.
func (p *Provider) transportError(ctx, callCtx context.Context, e *Error, err error) error {
	reasons := httpx.TransportReasons{
		Deadline:    fmt.Sprintf("no answer within %v; will retry", p.timeout),
		Untrusted:   "the server's TLS certificate is not trusted",
		TimedOut:    "timed out; will retry",
		Unreachable: "SendGrid could not be reached; will retry",
	}
	var permanent bool
	e.Reason, e.Err, permanent = reasons.Classify(ctx, callCtx, err)
	if permanent {
		return providers.Permanent(e)
	}
	return e
}

// verdict is how a status is reported: the reason, and whether retrying can help.
type verdict struct {
	reason    string
	transient bool
}

// failure turns a response with a status the caller did not expect into a classified *Error: 408, 429
// and 5xx are transient, everything else permanent. special overrides the default verdict by status
// (the operation knows which scope a 403 means, and that a new key's 401 is propagation).
func (p *Provider) failure(cfg config, c call, r *httpx.Response, special map[int]verdict) error {
	e := c.errorf(cfg, r.Status, "", nil)
	e.Retry = retryAfter(r.Status, r.Header, p.now())
	e.Message = errorMessage(r, c.secrets)
	v, ok := special[r.Status]
	if !ok {
		v = defaultVerdict(cfg, r.Status)
	}
	e.Reason = v.reason
	if v.transient {
		return e
	}
	return providers.Permanent(e)
}

// defaultVerdict is the verdict for a status on a call made with the admin key.
func defaultVerdict(cfg config, s int) verdict {
	switch {
	case s == http.StatusTooManyRequests:
		return verdict{"rate-limited by SendGrid; will retry after the rate-limit window", true}
	case s == http.StatusRequestTimeout || s >= 500:
		return verdict{"SendGrid is unavailable or busy; will retry", true}
	case s == http.StatusUnauthorized:
		return verdict{fmt.Sprintf("SendGrid does not accept the admin key in secret %q (tag %s): it is revoked, mistyped or of another account",
			cfg.adminSecret, TagAdminSecret), false}
	case s == http.StatusForbidden:
		return verdict{forbidden(cfg, "the api_keys.* scopes"), false}
	case s == http.StatusNotFound:
		return verdict{"not found; check " + TagAPIURL, false}
	case s >= 300 && s < 400:
		return verdict{"redirects are not followed; set " + TagAPIURL + " to the final URL", false}
	case s >= 200 && s < 300:
		return verdict{fmt.Sprintf("unexpected success status %d", s), false}
	default:
		return verdict{"SendGrid rejected the request", false}
	}
}

// forbidden says what a 403 on an admin call means.
func forbidden(cfg config, scope string) string {
	msg := fmt.Sprintf("the admin key in secret %q lacks %s", cfg.adminSecret, scope)
	if cfg.onBehalfOf != "" {
		msg += fmt.Sprintf(", or may not act on behalf of %q", cfg.onBehalfOf)
	}
	return msg
}

// errorMessage is SendGrid's error list from a JSON error body ({"errors":[{"field","message"}]}),
// sanitized, or "".
func errorMessage(r *httpx.Response, secrets []string) string {
	if r.JSONProblem() != "" {
		return ""
	}
	var body struct {
		Errors []struct {
			Field   any `json:"field"`
			Message any `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.Body, &body) != nil {
		return ""
	}
	var parts []string
	for _, e := range body.Errors {
		msg, _ := e.Message.(string)
		if msg == "" {
			continue
		}
		if field, _ := e.Field.(string); field != "" && field != "null" {
			msg = field + ": " + msg
		}
		parts = append(parts, msg)
	}
	return messages.Sanitize(strings.Join(parts, "; "), secrets...)
}

// decode reads a success body that must be one JSON object into v; the string says what breaks the
// contract, "" if nothing. It never quotes the body. Unknown fields are ignored.
func decode(r *httpx.Response, v any) string {
	if reason := r.JSONProblem(); reason != "" {
		return "response " + reason
	}
	switch body := bytes.TrimSpace(r.Body); {
	case len(body) == 0:
		return "empty response body"
	case body[0] != '{':
		return "response body is not a JSON object"
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			// The syntax error's own text quotes a character of the body: give the offset only.
			return fmt.Sprintf("response body is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			return fmt.Sprintf("field %s has the wrong type (JSON %s)", te.Field, te.Value)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return "response body is not valid JSON (cut short)"
		default:
			return "response body is not valid JSON"
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return "response body has data after the JSON object"
	}
	return ""
}
