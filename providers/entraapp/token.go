package entraapp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
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

// verifyToken signs in as the application with secret: a client-credentials token request to
// {authority}/{tenant}/oauth2/v2.0/token for Graph's .default scope, the same request the
// application itself makes. The token is discarded. A secret Entra ID does not accept yet
// (AADSTS7000215, invalid_client) is a transient error: new secrets take seconds to reach every
// replica, and the engine asks again until its verify timeout.
func (cl *client) verifyToken(ctx context.Context, tenant, appID, secret string) error {
	c := call{op: "verify", method: http.MethodPost,
		url: cl.authority + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token",
		form: url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {appID},
			"client_secret": {secret},
			"scope":         {cl.scope},
		},
		secrets: []string{secret},
	}
	r, err := cl.do(ctx, c)
	if err != nil {
		return err
	}
	if r.Status == http.StatusOK {
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if reason := decode(r, &tok); reason != "" {
			return malformed(c, r, reason)
		}
		if tok.AccessToken == "" {
			return malformed(c, r, "access_token is missing")
		}
		return nil
	}

	e := c.fail(r.Status, "", nil)
	e.Retry = parseRetryAfter(r.Header.Get("Retry-After"), cl.now())
	var body tokenErrorBody
	if !r.TooLong && json.Unmarshal(r.Body, &body) == nil {
		e.Code = messages.Sanitize(body.Error, secret)
		e.RequestID = messages.Sanitize(body.TraceID, secret)
		e.Message = messages.Sanitize(aadstsPrefix().ReplaceAllString(firstLine(body.Description), ""), secret)
		if len(body.Codes) > 0 {
			e.AADSTS = body.Codes[0]
		}
	}
	has := func(n int) bool { return slices.Contains(body.Codes, n) }
	switch {
	case httpx.Retryable(r.Status):
		e.Reason = "the Entra ID token endpoint is busy or unavailable; will retry"
		return e
	case has(aadstsInvalidSecret):
		e.Reason = "Entra ID does not accept the new secret yet (propagation takes seconds); will check again"
		return e
	case has(aadstsAppNotFound):
		return providers.ConfigErrorf(TagTenant, tenant,
			"the application (client id %s) is not registered in this tenant (AADSTS%d, trace id %s): check %s and %s",
			appID, aadstsAppNotFound, e.RequestID, TagTenant, TagAppID)
	case has(aadstsTenantNotFound):
		return providers.ConfigErrorf(TagTenant, tenant, "Entra ID has no such tenant (AADSTS%d, trace id %s)", aadstsTenantNotFound, e.RequestID)
	case has(aadstsExpiredSecret):
		e.Reason = "Entra ID says the new secret has already expired; check the clocks and " + TagLifetime
	case has(aadstsNoServicePrinc):
		e.Reason = "the application has no service principal (enterprise application) in the tenant, so it cannot sign in; create one (az ad sp create --id " + appID + ")"
	case has(aadstsConditionalAcces):
		e.Reason = "a Conditional Access policy blocks the application's sign-in from here"
	case e.Code == "invalid_client":
		// Other invalid_client answers are also seen while a new secret propagates.
		e.Reason = "Entra ID does not accept the new secret yet; will check again"
		return e
	default:
		e.Reason = "Entra ID refused the sign-in with the new secret"
	}
	return providers.Permanent(e)
}

// aadstsPrefix starts an Entra error description; Error.AADSTS holds the number.
var aadstsPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^AADSTS\d+:\s*`) })

// firstLine is an Entra error description without the "Trace ID: … Correlation ID: … Timestamp: …"
// lines that follow it.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}
