package openai

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/vocab"
)

// MaxResponseBytes is the most of a response body the provider reads. A page of 100 service accounts
// or project API keys is about 30 KiB.
const MaxResponseBytes = 512 << 10

const userAgent = "kvrotator-openai/1"

// call is one request to the OpenAI API.
type call struct {
	op      string // for the error: "list service accounts", "create service account", …
	method  string
	path    string // appended to the base URL; path segments already escaped
	query   url.Values
	body    []byte // JSON, when not nil
	key     string // sent as the bearer token
	secrets []string
}

// request is c as httpx sends it, to the configured base URL.
func (p *Provider) request(cfg config, c call) httpx.Request {
	u := cfg.base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	h := http.Header{}
	h.Set("Authorization", "Bearer "+c.key)
	return httpx.Request{Op: c.op, Method: c.method, URL: u, Header: h, Body: c.body, Timeout: p.timeout, Secrets: c.secrets}
}

// do sends c and returns the response, whatever its status. Failing to get one is an *Error: transient
// for timeouts, resets and refusals; permanent for a TLS certificate the client does not trust.
func (p *Provider) do(ctx context.Context, cfg config, c call) (*httpx.Response, error) {
	return p.http.Do(ctx, p.request(cfg, c))
}

// failure turns a response with a status the caller did not expect into a classified *Error. A 429
// that says the quota is exhausted is permanent; other 429s, 408 and 5xx are transient; everything else
// is permanent. special overrides the default verdict by status (the operation knows that a new key's
// 401 is propagation, or that a 404 means the project).
func (p *Provider) failure(cfg config, c call, r *httpx.Response, special map[int]httpx.Verdict) error {
	if code, ok := outOfQuota(r); ok {
		return p.http.Fail(p.request(cfg, c), r, httpx.Verdict{Reason: fmt.Sprintf(
			"OpenAI says the quota is exhausted (%s): the organization has no credit left or project %s is over its spend limit; add credit or raise the limit, waiting does not help",
			code, cfg.project)})
	}
	v, ok := special[r.Status]
	if !ok {
		v = defaultVerdict(cfg, r.Status)
	}
	return p.http.Fail(p.request(cfg, c), r, v)
}

// broken is the permanent error for a success response that breaks OpenAI's documented contract.
func (p *Provider) broken(cfg config, c call, r *httpx.Response, reason string) *httpx.Error {
	return p.http.Error(p.request(cfg, c), r.Status, "response breaks OpenAI's contract: "+reason, true)
}

// defaultVerdict is the verdict for a status on a call made with the admin key.
func defaultVerdict(cfg config, s int) httpx.Verdict {
	switch {
	case s == http.StatusTooManyRequests:
		return httpx.Verdict{Reason: "rate-limited by OpenAI; will retry after the rate-limit window", Transient: true}
	case vocab.TransientStatus(s): // 408 and 5xx (429 above)
		return httpx.Verdict{Reason: "OpenAI is unavailable or busy; will retry", Transient: true}
	case s == http.StatusUnauthorized:
		return httpx.Verdict{Reason: fmt.Sprintf(
			"OpenAI does not accept the admin key in secret %q (tag %s): it is revoked, mistyped, not an admin key (sk-admin-…), or of another organization",
			cfg.adminSecret, TagAdminSecret)}
	case s == http.StatusForbidden:
		return httpx.Verdict{Reason: forbidden(cfg)}
	case s == http.StatusNotFound:
		return httpx.Verdict{Reason: fmt.Sprintf("not found: check %s (project %s must exist in the admin key's organization) and %s",
			TagProject, cfg.project, TagAPIURL)}
	case s >= 300 && s < 400:
		return httpx.Verdict{Reason: "redirects are not followed; set " + TagAPIURL + " to the final URL"}
	case s >= 200 && s < 300:
		return httpx.Verdict{Reason: fmt.Sprintf("unexpected success status %d", s)}
	default:
		return httpx.Verdict{Reason: "OpenAI rejected the request"}
	}
}

// forbidden says what a 403 on an admin call means.
func forbidden(cfg config) string {
	return fmt.Sprintf("the admin key in secret %q may not manage the service accounts of project %s: it needs write permission "+
		"(an admin key with read-only permissions cannot), and a project key is not an admin key", cfg.adminSecret, cfg.project)
}

// projectPath is the path of a project's service accounts (or of one of them, or of its keys).
func projectPath(cfg config, rest string) string {
	return "/v1/organization/projects/" + url.PathEscape(cfg.project) + rest
}
