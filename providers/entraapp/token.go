package entraapp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// AADSTS error numbers the verification distinguishes.
const (
	aadstsInvalidSecret    = 7000215 // invalid client secret: a new one has not reached every replica yet
	aadstsExpiredSecret    = 7000222 // the secret has expired
	aadstsNoServicePrinc   = 7000229 // the application has no service principal in the tenant
	aadstsAppNotFound      = 700016  // no such application in the tenant
	aadstsTenantNotFound   = 90002   // no such tenant
	aadstsConditionalAcces = 53003   // blocked by Conditional Access
)

// tokenErrorBody is the token endpoint's error shape (RFC 6749 §5.2 plus Entra's fields).
type tokenErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
	TraceID     string `json:"trace_id"`
}

// tokenError reads the token endpoint's error body; zero when the answer is not JSON or too long.
func tokenError(resp *httpx.Response) tokenErrorBody {
	var b tokenErrorBody
	if resp.JSONProblem() != "" || json.Unmarshal(resp.Body, &b) != nil {
		return tokenErrorBody{}
	}
	return b
}

// tokenDetails is what a token endpoint error body says (httpx sanitizes it): the OAuth error, the
// first AADSTS number, the description's first line without its AADSTS prefix, and the trace id.
func tokenDetails(body []byte) httpx.Details {
	var b tokenErrorBody
	if json.Unmarshal(body, &b) != nil {
		return httpx.Details{}
	}
	d := httpx.Details{Code: b.Error, Message: aadstsStart().ReplaceAllString(firstLine(b.Description), ""), RequestID: b.TraceID}
	if len(b.Codes) > 0 {
		d.SubCode = aadstsPrefix + strconv.Itoa(b.Codes[0])
	}
	return d
}

// verifyToken signs in as the application with secret: a client-credentials token request to
// {authority}/{tenant}/oauth2/v2.0/token for Graph's .default scope, the same request the
// application itself makes. The token is discarded. A secret Entra ID does not accept yet
// (AADSTS7000215, invalid_client) is a transient error: new secrets take seconds to reach every
// replica, and the engine asks again until its verify timeout.
func (cl *client) verifyToken(ctx context.Context, tenant, appID, secret string) error {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {appID},
		"client_secret": {secret},
		"scope":         {cl.scope},
	}
	r := httpx.Request{Op: "verify", Method: http.MethodPost, URL: cl.authority + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token",
		Header: requestHeader(), Body: []byte(form.Encode()), ContentType: httpx.FormType, Timeout: cl.timeout, Secrets: []string{secret}}
	resp, err := cl.tokenAPI.Do(ctx, r)
	if err != nil {
		return err
	}
	if resp.Status == http.StatusOK {
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if reason := resp.DecodeObject(&tok); reason != "" {
			return malformed(&cl.tokenAPI, r, resp, reason)
		}
		if tok.AccessToken == "" {
			return malformed(&cl.tokenAPI, r, resp, "access_token is missing")
		}
		return nil
	}

	body := tokenError(resp)
	has := func(n int) bool { return slices.Contains(body.Codes, n) }
	var v httpx.Verdict
	switch {
	case httpx.Retryable(resp.Status):
		v = httpx.Verdict{Reason: "the Entra ID token endpoint is busy or unavailable; will retry", Transient: true}
	case resp.Status >= 300 && resp.Status < 400:
		v = httpx.Verdict{Reason: "redirects are not followed"}
	case has(aadstsInvalidSecret):
		v = httpx.Verdict{Reason: "Entra ID does not accept the new secret yet (propagation takes seconds); will check again", Transient: true}
	case has(aadstsAppNotFound):
		return providers.ConfigErrorf(TagTenant, tenant,
			"the application (client id %s) is not registered in this tenant (%s%d, trace id %s): check %s and %s",
			appID, aadstsPrefix, aadstsAppNotFound, messages.Sanitize(body.TraceID, secret), TagTenant, TagAppID)
	case has(aadstsTenantNotFound):
		return providers.ConfigErrorf(TagTenant, tenant, "Entra ID has no such tenant (%s%d, trace id %s)",
			aadstsPrefix, aadstsTenantNotFound, messages.Sanitize(body.TraceID, secret))
	case has(aadstsExpiredSecret):
		v = httpx.Verdict{Reason: "Entra ID says the new secret has already expired; check the clocks and " + TagLifetime}
	case has(aadstsNoServicePrinc):
		v = httpx.Verdict{Reason: "the application has no service principal (enterprise application) in the tenant, so it cannot sign in; create one (az ad sp create --id " + appID + ")"}
	case has(aadstsConditionalAcces):
		v = httpx.Verdict{Reason: "a Conditional Access policy blocks the application's sign-in from here"}
	case body.Error == "invalid_client":
		// Other invalid_client answers are also seen while a new secret propagates.
		v = httpx.Verdict{Reason: "Entra ID does not accept the new secret yet; will check again", Transient: true}
	default:
		v = httpx.Verdict{Reason: "Entra ID refused the sign-in with the new secret"}
	}
	return cl.tokenAPI.Fail(r, resp, v)
}

// aadstsStart starts an Entra error description; Error.SubCode holds the number.
var aadstsStart = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^` + aadstsPrefix + `\d+:\s*`) })

// firstLine is an Entra error description without the "Trace ID: … Correlation ID: … Timestamp: …"
// lines that follow it.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
