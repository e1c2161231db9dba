package datadog

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

// MaxResponseBytes is the most of a response body the provider reads. A page of 100 keys is about
// 40 KiB.
const MaxResponseBytes = 512 << 10

const userAgent = "kvrotator-datadog/1"

// The authentication headers of Datadog's API: they hold key values, not ids
// (docs.datadoghq.com/api/latest/authentication/).
const (
	headerAPIKey = "DD-API-KEY"
	headerAppKey = "DD-APPLICATION-KEY"
)

// call is one request to the Datadog API.
type call struct {
	op      string // for the error: "list keys", "create key", …
	method  string
	path    string // appended to the base URL; path segments already escaped
	query   url.Values
	body    []byte // JSON, when not nil
	apiKey  string // sent as DD-API-KEY
	appKey  string // sent as DD-APPLICATION-KEY, when not empty
	secrets []string
}

// request is c as httpx sends it, to the configured base URL.
func (p *Provider) request(cfg config, c call) httpx.Request {
	u := cfg.base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	h := http.Header{}
	h.Set(headerAPIKey, c.apiKey)
	if c.appKey != "" {
		h.Set(headerAppKey, c.appKey)
	}
	return httpx.Request{Op: c.op, Method: c.method, URL: u, Header: h, Body: c.body, Timeout: p.timeout, Secrets: c.secrets}
}

// do sends c and returns the response, whatever its status. Failing to get one is an *Error: transient
// for timeouts, resets and refusals; permanent for a TLS certificate the client does not trust.
func (p *Provider) do(ctx context.Context, cfg config, c call) (*httpx.Response, error) {
	return p.http.Do(ctx, p.request(cfg, c))
}

// failure turns a response with a status the caller did not expect into a classified *Error: 408, 429
// and 5xx are transient, everything else permanent. special overrides the default verdict by status.
func (p *Provider) failure(cfg config, c call, r *httpx.Response, special map[int]httpx.Verdict) error {
	v, ok := special[r.Status]
	if !ok {
		v = defaultVerdict(cfg, r.Status)
	}
	return p.http.Fail(p.request(cfg, c), r, v)
}

// broken is the permanent error for a success response that breaks Datadog's documented contract.
func (p *Provider) broken(cfg config, c call, r *httpx.Response, reason string) *httpx.Error {
	return p.http.Error(p.request(cfg, c), r.Status, "response breaks Datadog's contract: "+reason, true)
}

// defaultVerdict is the verdict for a status on a call made with the admin keys.
func defaultVerdict(cfg config, s int) httpx.Verdict {
	switch {
	case s == http.StatusTooManyRequests:
		return httpx.Verdict{Reason: "rate-limited by Datadog; will retry after the rate-limit window", Transient: true}
	case vocab.TransientStatus(s): // 408 and 5xx (429 above)
		return httpx.Verdict{Reason: "Datadog is unavailable or busy; will retry", Transient: true}
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		// Datadog answers 403 both for keys it does not know and for missing permissions.
		return httpx.Verdict{Reason: forbidden(cfg, permissionsFor(cfg))}
	case s == http.StatusNotFound:
		return httpx.Verdict{Reason: notFound(cfg)}
	case s >= 300 && s < 400:
		return httpx.Verdict{Reason: "redirects are not followed; set " + TagSite + " to the API's final URL"}
	case s >= 200 && s < 300:
		return httpx.Verdict{Reason: fmt.Sprintf("unexpected success status %d", s)}
	default:
		return httpx.Verdict{Reason: "Datadog rejected the request"}
	}
}

// forbidden says what a 401 or 403 on an admin call means.
func forbidden(cfg config, perms string) string {
	return fmt.Sprintf("Datadog refuses the admin keys in secret %q (tag %s): they are revoked, mistyped, of another organization or site (%s), or lack %s",
		cfg.adminSecret, TagAdminSecret, TagSite, perms)
}

// notFound says what a 404 on an admin call means.
func notFound(cfg config) string {
	if cfg.serviceAccount != "" {
		return fmt.Sprintf("not found: no service account %s (tag %s) in the admin keys' organization, or the wrong %s", cfg.serviceAccount, TagServiceAccount, TagSite)
	}
	return "not found; check " + TagSite
}

// permissionsFor names the permissions the admin keys need for cfg's key type.
func permissionsFor(cfg config) string {
	switch {
	case !cfg.application():
		return "the api_keys_read, api_keys_write and api_keys_delete permissions"
	case cfg.serviceAccount != "":
		return "the service_account_write permission"
	}
	return "the user_app_keys permission"
}

// errorMessage is Datadog's error list from a JSON error body as "message; …", or "". Datadog's
// documented error body is {"errors":["…"]} (every key-management page, "API error response"); some
// v2 endpoints answer with JSON:API error objects ({"errors":[{"title","detail"}]}), read too. httpx
// sanitizes the result.
func errorMessage(body []byte) string {
	var b struct {
		Errors []json.RawMessage `json:"errors"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	var parts []string
	for _, raw := range b.Errors {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			if s != "" {
				parts = append(parts, s)
			}
			continue
		}
		var o struct {
			Title  any `json:"title"`
			Detail any `json:"detail"`
		}
		if json.Unmarshal(raw, &o) == nil {
			if d, _ := o.Detail.(string); d != "" {
				parts = append(parts, d)
			} else if t, _ := o.Title.(string); t != "" {
				parts = append(parts, t)
			}
		}
	}
	return strings.Join(parts, "; ")
}
