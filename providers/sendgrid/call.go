package sendgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/vocab"
)

// MaxResponseBytes is the most of a response body the provider reads. A list of SendGrid's maximum of
// 100 keys is about 10 KiB.
const MaxResponseBytes = 256 << 10

const (
	userAgent  = "kvrotator-sendgrid/1"
	onBehalfOf = "on-behalf-of"
)

// call is one request to the SendGrid API.
type call struct {
	op         string // for the error: "list keys", "read key", …
	method     string
	path       string // appended to the base URL; path segments already escaped
	query      url.Values
	body       []byte // JSON, when not nil
	key        string // sent as the bearer token
	onBehalfOf string
	secrets    []string // redacted from anything SendGrid says back
}

// request is c as httpx sends it, to the configured base URL.
func (p *Provider) request(cfg config, c call) httpx.Request {
	u := cfg.base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+c.key)
	if c.onBehalfOf != "" {
		h.Set(onBehalfOf, c.onBehalfOf)
	}
	return httpx.Request{Op: c.op, Method: c.method, URL: u, Header: h, Body: c.body, Timeout: p.timeout, Secrets: c.secrets}
}

// do sends c and returns the response, whatever its status. Failing to get one is an *Error: transient
// for timeouts, resets and refusals; permanent for a TLS certificate the client does not trust.
func (p *Provider) do(ctx context.Context, cfg config, c call) (*httpx.Response, error) {
	return p.http.Do(ctx, p.request(cfg, c))
}

// failure turns a response with a status the caller did not expect into a classified *Error: 408, 429
// and 5xx are transient, everything else permanent. special overrides the default verdict by status
// (the operation knows which scope a 403 means, and that a new key's 401 is propagation).
func (p *Provider) failure(cfg config, c call, r *httpx.Response, special map[int]httpx.Verdict) error {
	v, ok := special[r.Status]
	if !ok {
		v = defaultVerdict(cfg, r.Status)
	}
	return p.http.Fail(p.request(cfg, c), r, v)
}

// broken is the permanent error for a success response that breaks SendGrid's documented contract.
func (p *Provider) broken(cfg config, c call, r *httpx.Response, reason string) *httpx.Error {
	return p.http.Error(p.request(cfg, c), r.Status, "response breaks SendGrid's contract: "+reason, true)
}

// defaultVerdict is the verdict for a status on a call made with the admin key.
func defaultVerdict(cfg config, s int) httpx.Verdict {
	switch {
	case s == http.StatusTooManyRequests:
		return httpx.Verdict{Reason: "rate-limited by SendGrid; will retry after the rate-limit window", Transient: true}
	case vocab.TransientStatus(s): // 408 and 5xx (429 above)
		return httpx.Verdict{Reason: "SendGrid is unavailable or busy; will retry", Transient: true}
	case s == http.StatusUnauthorized:
		return httpx.Verdict{Reason: fmt.Sprintf("SendGrid does not accept the admin key in secret %q (tag %s): it is revoked, mistyped or of another account",
			cfg.adminSecret, TagAdminSecret)}
	case s == http.StatusForbidden:
		return httpx.Verdict{Reason: forbidden(cfg, "the api_keys.* scopes")}
	case s == http.StatusNotFound:
		return httpx.Verdict{Reason: "not found; check " + TagAPIURL}
	case s >= 300 && s < 400:
		return httpx.Verdict{Reason: "redirects are not followed; set " + TagAPIURL + " to the final URL"}
	case s >= 200 && s < 300:
		return httpx.Verdict{Reason: fmt.Sprintf("unexpected success status %d", s)}
	default:
		return httpx.Verdict{Reason: "SendGrid rejected the request"}
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

// errorMessage is SendGrid's error list from a JSON error body ({"errors":[{"field","message"}]}) as
// "field: message; …", or "". httpx sanitizes it.
func errorMessage(body []byte) string {
	var b struct {
		Errors []struct {
			Field   any `json:"field"`
			Message any `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	var parts []string
	for _, e := range b.Errors {
		msg, _ := e.Message.(string)
		if msg == "" {
			continue
		}
		if field, _ := e.Field.(string); field != "" && field != "null" {
			msg = field + ": " + msg
		}
		parts = append(parts, msg)
	}
	return strings.Join(parts, "; ")
}
