package entraappcert

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// AADSTS error numbers the verification distinguishes.
const (
	aadstsKeyNotFound      = 700027  // the certificate is not (yet) registered, expired, or the signature is bad
	aadstsTimeRange        = 700024  // the assertion is not within its valid time range: clocks
	aadstsAppNotFound      = 700016  // no such application in the tenant
	aadstsTenantNotFound   = 90002   // no such tenant
	aadstsNoServicePrinc   = 7000229 // the application has no service principal in the tenant
	aadstsConditionalAcces = 53003   // blocked by Conditional Access
)

// tokenErrorBody is the token endpoint's error shape (RFC 6749 §5.2 plus Entra's fields).
type tokenErrorBody struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
	TraceID     string `json:"trace_id"`
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

// verifyCertificate signs in as the application with the certificate s — a client-credentials token
// request with a client assertion signed by s, for Graph's .default scope — through azidentity's
// ClientCertificateCredential, the credential the application itself uses (MSAL builds the
// assertion: PS256 with x5t#S256). The token is discarded; a new credential each time, so that no
// cached token hides a certificate that stopped working.
//
// Entra ID answers AADSTS700027 ("the key was not found") until a new certificate has reached every
// replica: a transient error, and the engine asks again until its verify timeout.
func (cl *client) verifyCertificate(ctx context.Context, tenant, appID string, s signer) error {
	r := httpx.Request{Op: "verify", Method: http.MethodPost, URL: cl.authority + "/" + tenant + "/oauth2/v2.0/token"}
	opts := &azidentity.ClientCertificateCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: cl.authority + "/"},
			Transport: cl.transport,
			// The engine retries, with its own back-off and Retry-After handling.
			Retry: policy.RetryOptions{MaxRetries: -1},
		},
		// The authority comes from kvrotator's cloud configuration, never from a tag; Microsoft's
		// own hosts skip instance discovery anyway.
		DisableInstanceDiscovery: true,
	}
	cred, err := azidentity.NewClientCertificateCredential(tenant, appID, append([]*x509.Certificate{s.cert}, s.chain...), s.key, opts)
	if err != nil {
		// Only argument checks fail here (Validate has checked the tenant; parseValue the key).
		return providers.Permanent(fmt.Errorf("%s verify: azidentity refuses the certificate credential: %s", Name, httpx.Clean(err.Error(), MaxMessageChars)))
	}
	callCtx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	_, err = cred.GetToken(callCtx, policy.TokenRequestOptions{Scopes: []string{cl.scope}})
	if err == nil {
		return nil
	}

	var afe *azidentity.AuthenticationFailedError
	if !errors.As(err, &afe) || afe.RawResponse == nil {
		// No answer: the endpoint could not be reached, or the call timed out or was stopped. The
		// text of azidentity's error is not kept: only what kind of failure it was.
		e := cl.tokenAPI.Error(r, 0, "", false)
		e.Sent = true
		switch text := err.Error(); {
		case ctx.Err() != nil:
			e.Reason, e.Err = httpx.ReasonStopped, ctx.Err()
		case errors.Is(callCtx.Err(), context.DeadlineExceeded):
			e.Reason, e.Err = "no answer within "+cl.timeout.String()+"; will retry", context.DeadlineExceeded
		case strings.Contains(text, "x509: ") || strings.Contains(text, "tls: "):
			e.Reason, e.Permanent = "the token endpoint's TLS certificate is not trusted", true
		default:
			e.Reason = "the Entra ID token endpoint could not be reached; will retry"
		}
		return e.Classified()
	}
	// The answer that failed (the token request, or MSAL's tenant discovery before it): its status and
	// what its JSON body says, nothing more.
	raw := afe.RawResponse
	if raw.Request != nil && raw.Request.URL != nil {
		r.Method, r.URL = raw.Request.Method, raw.Request.URL.String()
	}
	body, _ := runtime.Payload(raw)
	resp := &httpx.Response{Status: raw.StatusCode, Header: raw.Header, Body: body, Limit: maxResponseBytes}
	if int64(len(body)) > maxResponseBytes {
		resp.Body, resp.TooLong = nil, true
	}
	var b tokenErrorBody
	if resp.JSONProblem() == "" {
		_ = json.Unmarshal(resp.Body, &b)
	}
	has := func(n int) bool { return slices.Contains(b.Codes, n) }
	var v httpx.Verdict
	switch {
	case httpx.Retryable(resp.Status):
		v = httpx.Verdict{Reason: "the Entra ID token endpoint is busy or unavailable; will retry", Transient: true}
	case resp.Status >= 300 && resp.Status < 400:
		v = httpx.Verdict{Reason: "redirects are not followed"}
	case has(aadstsAppNotFound):
		return providers.ConfigErrorf(TagTenant, tenant,
			"the application (client id %s) is not registered in this tenant (%s%d, trace id %s): check %s and %s",
			appID, aadstsPrefix, aadstsAppNotFound, messages.Sanitize(b.TraceID), TagTenant, TagAppID)
	case has(aadstsTenantNotFound):
		return providers.ConfigErrorf(TagTenant, tenant, "Entra ID has no such tenant (%s%d, trace id %s)",
			aadstsPrefix, aadstsTenantNotFound, messages.Sanitize(b.TraceID))
	case has(aadstsKeyNotFound) && strings.Contains(strings.ToLower(b.Description), "expired"):
		v = httpx.Verdict{Reason: "Entra ID says the new certificate has expired; check the clocks and " + TagLifetime}
	case has(aadstsKeyNotFound):
		v = httpx.Verdict{Reason: "Entra ID does not accept the new certificate yet (propagation takes seconds); will check again", Transient: true}
	case has(aadstsTimeRange):
		v = httpx.Verdict{Reason: "Entra ID says the client assertion is not within its valid time range: check this machine's clock"}
	case has(aadstsNoServicePrinc):
		v = httpx.Verdict{Reason: "the application has no service principal (enterprise application) in the tenant, so it cannot sign in; create one (az ad sp create --id " + appID + ")"}
	case has(aadstsConditionalAcces):
		v = httpx.Verdict{Reason: "a Conditional Access policy blocks the application's sign-in from here"}
	case b.Error == "invalid_client":
		// Other invalid_client answers are also seen while a new credential propagates.
		v = httpx.Verdict{Reason: "Entra ID does not accept the new certificate yet; will check again", Transient: true}
	default:
		v = httpx.Verdict{Reason: "Entra ID refused the sign-in with the new certificate"}
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

// noRedirects is the transport of the verification sign-in: the application's transport, or
// net/http's default. An *http.Client (the usual transport) is used through its RoundTripper, which
// sends each request once and follows no redirect — a 3xx is the answer, and a client assertion goes
// to the configured authority or nowhere. (Not through http.Client with a CheckRedirect that stops:
// for a 307 or 308 it rewinds the request body, which azcore shares with the request still being
// written, before asking.) Any other Transporter is used as it is and must not follow redirects.
func noRedirects(t policy.Transporter) policy.Transporter {
	switch c := t.(type) {
	case nil:
		return roundTripper{http.DefaultTransport}
	case *http.Client:
		if c.Transport == nil {
			return roundTripper{http.DefaultTransport}
		}
		return roundTripper{c.Transport}
	}
	return t
}

// roundTripper is a policy.Transporter that sends a request once.
type roundTripper struct{ rt http.RoundTripper }

func (t roundTripper) Do(r *http.Request) (*http.Response, error) { return t.rt.RoundTrip(r) }
