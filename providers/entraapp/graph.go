package entraapp

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/uuid"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/graph"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// GraphService is the cloud.Configuration service key for Microsoft Graph (graph.Service), shared by
// the providers that call Graph: an entry with it in the cloud configuration of the registry.Azure the
// providers are built with points them at another Graph endpoint (a national cloud, a test server).
// The audience defaults to the endpoint.
const GraphService = graph.Service

// Limits of what the provider reads.
const (
	maxResponseBytes = 1 << 20   // an application with every password it can hold is far smaller
	maxSecretBytes   = 25 * 1024 // a value must fit in a Key Vault secret
	userAgent        = "kvrotator-entra-app/1"
)

// client is one call's view of the environment: kvrotator's own credential, where Graph and the
// token endpoint are, and the HTTP clients that call them.
type client struct {
	cred      azcore.TokenCredential
	graph     string // Graph's base URL, without a trailing slash and without the version
	scope     string // the Graph token scope: audience + "/.default"
	authority string // the Entra authority host, without a trailing slash
	timeout   time.Duration
	graphAPI  httpx.Client // calls Microsoft Graph
	tokenAPI  httpx.Client // calls the Entra ID token endpoint (verification sign-ins)
}

// requestHeader is the header of every call: a client-request-id, which Graph and Entra ID log with
// the request.
func requestHeader() http.Header {
	h := http.Header{}
	h.Set("client-request-id", uuid.NewString())
	return h
}

// graphCall sends method to Graph's v1.0 path (with its query) with kvrotator's bearer token and body
// as JSON (none when nil), and returns the request with the answer, whatever its status. Failing to
// get the token is a transient error of the provider's own, before anything is sent.
func (cl *client) graphCall(ctx context.Context, op, method, path string, body any) (httpx.Request, *httpx.Response, error) {
	r := httpx.Request{Op: op, Method: method, URL: cl.graph + "/v1.0" + path, Header: requestHeader(), Timeout: cl.timeout}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e := cl.graphAPI.Error(r, 0, "encoding the request", true)
			e.Err = err
			return r, nil, e.Classified()
		}
		r.Body = b
	}
	tokCtx, cancel := context.WithTimeout(ctx, cl.timeout)
	tok, err := cl.cred.GetToken(tokCtx, policy.TokenRequestOptions{Scopes: []string{cl.scope}})
	cancel()
	if err != nil {
		e := cl.graphAPI.Error(r, 0, "kvrotator could not get its own Microsoft Graph token (scope "+cl.scope+")", false)
		e.Err = err
		return r, nil, e
	}
	r.Header.Set("Authorization", "Bearer "+tok.Token)
	r.Secrets = []string{tok.Token} // should Graph ever echo it
	resp, err := cl.graphAPI.Do(ctx, r)
	return r, resp, err
}

// graphErrorBody is Graph's error shape: {"error":{"code","message","innerError":{"request-id",…}}}.
type graphErrorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID string `json:"request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// graphDetails is what a Graph error body says (httpx sanitizes it); the request-id header is used
// when the body has none.
func graphDetails(body []byte) httpx.Details {
	var b graphErrorBody
	if json.Unmarshal(body, &b) != nil {
		return httpx.Details{}
	}
	return httpx.Details{Code: b.Error.Code, Message: b.Error.Message, RequestID: b.Error.InnerError.RequestID}
}

// graphVerdict is what a Graph status the caller does not handle means: 408, 429 and 5xx are
// transient (with Retry-After); 401 and 403 name what kvrotator's identity lacks; the rest are
// permanent. Callers handle 404 themselves.
func (cl *client) graphVerdict(s int) httpx.Verdict {
	switch {
	case httpx.Retryable(s):
		return httpx.Verdict{Reason: "Microsoft Graph is busy or unavailable; will retry", Transient: true}
	case s == http.StatusUnauthorized:
		return httpx.Verdict{Reason: "Microsoft Graph rejected kvrotator's token: check that the cloud configuration's Graph endpoint and audience match (" + cl.scope + ")"}
	case s == http.StatusForbidden:
		return httpx.Verdict{Reason: "kvrotator's identity may not change this application's passwords: it needs the Microsoft Graph application permission Application.ReadWrite.OwnedBy (and must be an owner of the app) or Application.ReadWrite.All"}
	case s >= 300 && s < 400:
		return httpx.Verdict{Reason: "redirects are not followed"}
	case s >= 200 && s < 300:
		return httpx.Verdict{Reason: "unexpected success status"}
	default:
		return httpx.Verdict{Reason: "Microsoft Graph refused the request"}
	}
}

// malformed is a success answer that breaks the documented shape: permanent, since it does not fix
// itself.
func malformed(api *httpx.Client, r httpx.Request, resp *httpx.Response, reason string) error {
	return api.Fail(r, resp, httpx.Verdict{Reason: "response breaks the documented shape: " + reason})
}

// passwordCredential is Graph's passwordCredential resource. SecretText is set only in addPassword's
// answer; listings return null. Hint is "the first three characters of the password" (Graph's
// documentation of the resource): what lets Revoke tell which value a password belongs to.
type passwordCredential struct {
	KeyID         string     `json:"keyId"`
	DisplayName   *string    `json:"displayName"`
	Hint          *string    `json:"hint"`
	SecretText    *string    `json:"secretText"`
	StartDateTime *time.Time `json:"startDateTime"`
	EndDateTime   *time.Time `json:"endDateTime"`
}

// application is what the provider reads of Graph's application resource.
type application struct {
	ID                  string               `json:"id"`
	AppID               string               `json:"appId"`
	PasswordCredentials []passwordCredential `json:"passwordCredentials"`
}

// password finds the application's password keyID (case-insensitive).
func (a application) password(keyID string) (passwordCredential, bool) {
	keyID = strings.TrimSpace(keyID)
	if keyID == "" {
		return passwordCredential{}, false
	}
	for _, pw := range a.PasswordCredentials {
		if strings.EqualFold(pw.KeyID, keyID) {
			return pw, true
		}
	}
	return passwordCredential{}, false
}

// getApplication reads the application's id, appId and passwords. 404 is a ConfigError naming the tag
// that addressed it.
func (cl *client) getApplication(ctx context.Context, cfg config) (application, error) {
	r, resp, err := cl.graphCall(ctx, "read application", http.MethodGet, cfg.appPath()+"?$select=id,appId,passwordCredentials", nil)
	if err != nil {
		return application{}, err
	}
	switch resp.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		tag, value := cfg.appRef()
		return application{}, providers.ConfigErrorf(tag, value,
			"Microsoft Graph has no such application in kvrotator's tenant, or kvrotator's identity cannot see it (with Application.ReadWrite.OwnedBy it must be an owner of the app)")
	default:
		return application{}, cl.graphAPI.Fail(r, resp, cl.graphVerdict(resp.Status))
	}
	var app application
	if reason := resp.DecodeObject(&app); reason != "" {
		return application{}, malformed(&cl.graphAPI, r, resp, reason)
	}
	switch {
	case !isGUID(app.ID):
		return application{}, malformed(&cl.graphAPI, r, resp, "id is not a GUID")
	case !isGUID(app.AppID):
		return application{}, malformed(&cl.graphAPI, r, resp, "appId is not a GUID")
	}
	return app, nil
}

// addPassword asks Graph for a new password on the application. Its answer is the only time Graph
// ever returns the secret text.
func (cl *client) addPassword(ctx context.Context, objectID, displayName string, end time.Time) (passwordCredential, error) {
	type body struct {
		PasswordCredential struct {
			DisplayName string `json:"displayName"`
			EndDateTime string `json:"endDateTime"`
		} `json:"passwordCredential"`
	}
	var b body
	b.PasswordCredential.DisplayName = displayName
	b.PasswordCredential.EndDateTime = end.UTC().Format(time.RFC3339)
	r, resp, err := cl.graphCall(ctx, "addPassword", http.MethodPost, "/applications/"+objectID+"/addPassword", b)
	if err != nil {
		return passwordCredential{}, err
	}
	if resp.Status != http.StatusOK && resp.Status != http.StatusCreated {
		v := cl.graphVerdict(resp.Status)
		if resp.Status == http.StatusBadRequest {
			v.Reason = "Microsoft Graph refused to add the password (a tenant app-management policy may forbid client secrets or cap their lifetime, see " +
				TagLifetime + "; apps for personal Microsoft accounts and Azure AD B2C hold at most 2 passwords)"
		}
		return passwordCredential{}, cl.graphAPI.Fail(r, resp, v)
	}
	var pw passwordCredential
	if reason := resp.DecodeObject(&pw); reason != "" {
		return passwordCredential{}, malformed(&cl.graphAPI, r, resp, reason)
	}
	switch {
	case !isGUID(pw.KeyID):
		return passwordCredential{}, malformed(&cl.graphAPI, r, resp, "keyId is not a GUID")
	case pw.SecretText == nil || *pw.SecretText == "":
		return passwordCredential{}, malformed(&cl.graphAPI, r, resp, "secretText is missing")
	case len(*pw.SecretText) > maxSecretBytes:
		return passwordCredential{}, malformed(&cl.graphAPI, r, resp, "secretText does not fit in a Key Vault secret")
	}
	return pw, nil
}

// removePassword removes keyID from the application at appPath. 404, and a 400 that says the password
// does not exist, mean it is already gone: success.
func (cl *client) removePassword(ctx context.Context, appPath, keyID string) error {
	r, resp, err := cl.graphCall(ctx, "removePassword", http.MethodPost, appPath+"/removePassword", map[string]string{"keyId": keyID})
	if err != nil {
		return err
	}
	switch {
	case resp.Status == http.StatusNoContent || resp.Status == http.StatusOK:
		return nil
	case resp.Status == http.StatusNotFound:
		return nil
	case resp.Status == http.StatusBadRequest && saysNoSuchPassword(resp):
		return nil
	}
	return cl.graphAPI.Fail(r, resp, cl.graphVerdict(resp.Status))
}

// saysNoSuchPassword reports whether a Graph error says the password does not exist.
func saysNoSuchPassword(r *httpx.Response) bool {
	var body graphErrorBody
	if r.TooLong || json.Unmarshal(r.Body, &body) != nil {
		return false
	}
	return strings.Contains(strings.ToLower(body.Error.Message), "no password credential found")
}
