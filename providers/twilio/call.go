package twilio

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/vocab"
)

// MaxResponseBytes is the most of a response body the provider reads. A page of 1,000 keys is about
// 200 KiB.
const MaxResponseBytes = 1 << 20

const userAgent = "kvrotator-twilio/1"

// call is one request to Twilio, authenticated with HTTP Basic (twilio.com/docs/usage/requests-to-twilio).
type call struct {
	op      string // for the error: "list keys", "create key", …
	method  string
	base    string // cfg.iam or cfg.api
	path    string // appended to base; path segments already escaped
	query   url.Values
	form    url.Values // sent form-encoded, when not nil
	user    string     // the Basic user: an SID
	pass    string     // the Basic password: a key secret or an Auth Token
	secrets []string
}

// request is c as httpx sends it.
func (p *Provider) request(c call) httpx.Request {
	u := c.base + c.path
	if len(c.query) > 0 {
		u += "?" + c.query.Encode()
	}
	r := httpx.Request{Op: c.op, Method: c.method, URL: u, Header: http.Header{}, Timeout: p.timeout, Secrets: c.secrets}
	if c.form != nil {
		r.Body, r.ContentType = []byte(c.form.Encode()), httpx.FormType
	}
	// RFC 7617, as (*http.Request).SetBasicAuth writes it.
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.user+":"+c.pass)))
	return r
}

// do sends c and returns the response, whatever its status. Failing to get one is an *Error: transient
// for timeouts, resets and refusals; permanent for a TLS certificate the client does not trust.
func (p *Provider) do(ctx context.Context, c call) (*httpx.Response, error) {
	return p.http.Do(ctx, p.request(c))
}

// failure turns a response with a status the caller did not expect into a classified *Error: 408, 429
// and 5xx are transient, everything else permanent. special overrides the default verdict by status.
func (p *Provider) failure(cfg config, c call, r *httpx.Response, special map[int]httpx.Verdict) error {
	v, ok := special[r.Status]
	if !ok {
		v = defaultVerdict(cfg, c, r.Status)
	}
	return p.http.Fail(p.request(c), r, v)
}

// broken is the permanent error for a success response that breaks Twilio's documented contract.
func (p *Provider) broken(c call, r *httpx.Response, reason string) *httpx.Error {
	return p.http.Error(p.request(c), r.Status, "response breaks Twilio's contract: "+reason, true)
}

// defaultVerdict is the verdict for a status on a call made with the admin credentials.
func defaultVerdict(cfg config, c call, s int) httpx.Verdict {
	setting := TagIAMURL
	if strings.HasPrefix(c.path, "/2010-04-01/") {
		setting = TagAPIURL
	}
	switch {
	case s == http.StatusTooManyRequests:
		// Twilio error 20429: "Requests that receive 429 responses aren't processed and are safe to
		// retry after backing off" (twilio.com/docs/api/errors/20429).
		return httpx.Verdict{Reason: "rate-limited by Twilio; will retry", Transient: true}
	case vocab.TransientStatus(s): // 408 and 5xx (429 above)
		return httpx.Verdict{Reason: "Twilio is unavailable or busy; will retry", Transient: true}
	case s == http.StatusUnauthorized:
		// Error 20003: wrong or deleted credentials, another account, or "a Standard API key for an
		// endpoint that requires a Main API key, such as /Accounts or /v1/Keys".
		return httpx.Verdict{Reason: fmt.Sprintf("Twilio does not accept the admin credentials in secret %q (tag %s): they are wrong, deleted, of another account or region, "+
			"or a Standard or Restricted key (managing keys needs a Main key, or the Account SID and Auth Token)", cfg.adminSecret, TagAdminSecret)}
	case s == http.StatusForbidden:
		return httpx.Verdict{Reason: fmt.Sprintf("Twilio forbids the admin credentials in secret %q to manage the API keys of account %s (tag %s)", cfg.adminSecret, cfg.account, TagAccountSID)}
	case s == http.StatusNotFound:
		return httpx.Verdict{Reason: "not found; check " + setting + " and " + TagAccountSID}
	case s >= 300 && s < 400:
		return httpx.Verdict{Reason: "redirects are not followed; set " + setting + " to the final URL"}
	case s >= 200 && s < 300:
		return httpx.Verdict{Reason: fmt.Sprintf("unexpected success status %d", s)}
	default:
		return httpx.Verdict{Reason: "Twilio rejected the request"}
	}
}
