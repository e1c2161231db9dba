package entraapp

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
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/google/uuid"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// GraphService is the cloud.Configuration service key for Microsoft Graph. azcore's clouds do not
// describe Graph; add this entry to the cloud configuration of the registry.Azure the provider is built
// with to point it at another Graph endpoint (a national cloud not listed below, a test server). The
// audience defaults to the endpoint.
const GraphService cloud.ServiceName = "microsoftGraph"

// graphByAuthority is Microsoft Graph's endpoint for each cloud, by the cloud's Entra authority host.
// (US Government DoD uses https://dod-graph.microsoft.us with the same authority as L4: set
// GraphService for it.)
var graphByAuthority = map[string]string{
	"login.microsoftonline.com": "https://graph.microsoft.com",
	"login.microsoftonline.us":  "https://graph.microsoft.us",
	"login.chinacloudapi.cn":    "https://microsoftgraph.chinacloudapi.cn",
}

// Limits of what the provider reads.
const (
	maxResponseBytes = 1 << 20   // an application with every password it can hold is far smaller
	maxSecretBytes   = 25 * 1024 // a value must fit in a Key Vault secret
	userAgent        = "kvrotator-entra-app/1"
	jsonType         = httpx.JSONType
)

// client is one call's view of the environment: kvrotator's own credential and where Graph and the
// token endpoint are.
type client struct {
	cred      azcore.TokenCredential
	send      policy.Transporter
	graph     string // Graph's base URL, without a trailing slash and without the version
	scope     string // the Graph token scope: audience + "/.default"
	authority string // the Entra authority host, without a trailing slash
	timeout   time.Duration
	now       func() time.Time
}

// graphURL is the v1.0 URL of path (which starts with "/").
func (c *client) graphURL(path string) string { return c.graph + "/v1.0" + path }

// call is one HTTP request: to Graph with kvrotator's bearer token, or a form post to the token
// endpoint.
type call struct {
	op      string
	method  string
	url     string // without the query
	query   string
	json    any        // Graph body, or nil
	form    url.Values // token endpoint body, or nil
	bearer  bool       // send kvrotator's Graph token
	secrets []string   // redacted from anything the service says back
}

func (c call) fail(status int, reason string, cause error) *Error {
	return &Error{Op: c.op, Method: c.method, URL: c.url, Status: status, Reason: reason, Err: cause, sent: status != 0}
}

// do sends c and returns whatever status came back; only a failure to get a response is an error:
// transient for timeouts, resets and refusals, permanent for untrusted certificates.
func (cl *client) do(ctx context.Context, c call) (*httpx.Response, error) {
	var body io.Reader
	contentType := ""
	switch {
	case c.json != nil:
		b, err := json.Marshal(c.json)
		if err != nil {
			return nil, providers.Permanent(c.fail(0, "encoding the request", err))
		}
		body, contentType = bytes.NewReader(b), jsonType
	case c.form != nil:
		body, contentType = strings.NewReader(c.form.Encode()), "application/x-www-form-urlencoded"
	}
	callCtx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	target := c.url
	if c.query != "" {
		target += "?" + c.query
	}
	req, err := http.NewRequestWithContext(callCtx, c.method, target, body)
	if err != nil {
		return nil, providers.Permanent(c.fail(0, "building the request", err))
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", jsonType)
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("client-request-id", uuid.NewString()) // Graph and Entra log it with the request
	if c.bearer {
		tok, err := cl.cred.GetToken(callCtx, policy.TokenRequestOptions{Scopes: []string{cl.scope}})
		if err != nil {
			return nil, c.fail(0, "kvrotator could not get its own Microsoft Graph token (scope "+cl.scope+")", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.Token)
	}
	resp, err := cl.send.Do(req)
	if err != nil {
		e := c.fail(0, "", nil)
		e.sent = true
		return nil, transportError(ctx, callCtx, cl.timeout, e, err)
	}
	r, err := httpx.Read(resp, maxResponseBytes)
	if err != nil {
		return nil, transportError(ctx, callCtx, cl.timeout, c.fail(resp.StatusCode, "reading the response", nil), err)
	}
	return r, nil
}

// transportError classifies a failure to get (or read) a response: a certificate the client does not
// trust needs a person and is permanent; timeouts, resets and refusals are transient.
func transportError(ctx, callCtx context.Context, timeout time.Duration, e *Error, err error) error {
	reasons := httpx.TransportReasons{
		Deadline:    fmt.Sprintf("no answer within %v", timeout),
		Untrusted:   "the server's TLS certificate is not trusted",
		TimedOut:    "timed out",
		Unreachable: "no response",
	}
	var permanent bool
	e.Reason, e.Err, permanent = reasons.Classify(ctx, callCtx, err)
	if permanent {
		return providers.Permanent(e)
	}
	return e
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

// graphFailure describes a Graph answer that is not a success. It is classified by status: 408, 429
// and 5xx are transient (with Retry-After); 401 and 403 name what kvrotator's identity lacks; the
// rest are permanent. Callers handle 404 themselves before asking.
func (cl *client) graphFailure(c call, r *httpx.Response) error {
	e := c.fail(r.Status, "", nil)
	e.Retry = parseRetryAfter(r.Header.Get("Retry-After"), cl.now())
	e.RequestID = r.Header.Get("request-id")
	var body graphErrorBody
	if r.JSONProblem() == "" && json.Unmarshal(r.Body, &body) == nil {
		e.Code = messages.Sanitize(body.Error.Code, c.secrets...)
		e.Message = messages.Sanitize(body.Error.Message, c.secrets...)
		if id := messages.Sanitize(body.Error.InnerError.RequestID); id != "" {
			e.RequestID = id
		}
	}
	e.RequestID = messages.Sanitize(e.RequestID)
	switch s := r.Status; {
	case httpx.Retryable(s):
		e.Reason = "Microsoft Graph is busy or unavailable; will retry"
		return e
	case s == http.StatusUnauthorized:
		e.Reason = "Microsoft Graph rejected kvrotator's token: check that the cloud configuration's Graph endpoint and audience match (" + cl.scope + ")"
	case s == http.StatusForbidden:
		e.Reason = "kvrotator's identity may not change this application's passwords: it needs the Microsoft Graph application permission Application.ReadWrite.OwnedBy (and must be an owner of the app) or Application.ReadWrite.All"
	case s >= 300 && s < 400:
		e.Reason = "redirects are not followed"
	case s >= 200 && s < 300:
		e.Reason = "unexpected success status"
	default:
		e.Reason = "Microsoft Graph refused the request"
	}
	return providers.Permanent(e)
}

// malformed is a success answer that breaks Graph's documented shape: permanent, since it does not
// fix itself.
func malformed(c call, r *httpx.Response, reason string) error {
	e := c.fail(r.Status, "response breaks the documented shape: "+reason, nil)
	e.RequestID = messages.Sanitize(r.Header.Get("request-id"))
	return providers.Permanent(e)
}

// decode reads a success body into v, or says what is wrong without quoting the body.
func decode(r *httpx.Response, v any) string {
	if reason := r.JSONProblem(); reason != "" {
		return reason
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Sprintf("body is not valid JSON (at byte %d)", se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Sprintf("field %q has the wrong type", te.Field)
		}
		return "body is not the expected JSON object"
	}
	return ""
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
	c := call{op: "read application", method: http.MethodGet, url: cl.graphURL(cfg.appPath()),
		query: "$select=id,appId,passwordCredentials", bearer: true}
	r, err := cl.do(ctx, c)
	if err != nil {
		return application{}, err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		tag, value := cfg.appRef()
		return application{}, providers.ConfigErrorf(tag, value,
			"Microsoft Graph has no such application in kvrotator's tenant, or kvrotator's identity cannot see it (with Application.ReadWrite.OwnedBy it must be an owner of the app)")
	default:
		return application{}, cl.graphFailure(c, r)
	}
	var app application
	if reason := decode(r, &app); reason != "" {
		return application{}, malformed(c, r, reason)
	}
	switch {
	case !isGUID(app.ID):
		return application{}, malformed(c, r, "id is not a GUID")
	case !isGUID(app.AppID):
		return application{}, malformed(c, r, "appId is not a GUID")
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
	c := call{op: "addPassword", method: http.MethodPost, url: cl.graphURL("/applications/" + objectID + "/addPassword"),
		json: b, bearer: true}
	r, err := cl.do(ctx, c)
	if err != nil {
		return passwordCredential{}, err
	}
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		err := cl.graphFailure(c, r)
		if r.Status == http.StatusBadRequest {
			var e *Error
			if errors.As(err, &e) {
				e.Reason = "Microsoft Graph refused to add the password (a tenant app-management policy may forbid client secrets or cap their lifetime, see " +
					TagLifetime + "; apps for personal Microsoft accounts and Azure AD B2C hold at most 2 passwords)"
			}
		}
		return passwordCredential{}, err
	}
	var pw passwordCredential
	if reason := decode(r, &pw); reason != "" {
		return passwordCredential{}, malformed(c, r, reason)
	}
	switch {
	case !isGUID(pw.KeyID):
		return passwordCredential{}, malformed(c, r, "keyId is not a GUID")
	case pw.SecretText == nil || *pw.SecretText == "":
		return passwordCredential{}, malformed(c, r, "secretText is missing")
	case len(*pw.SecretText) > maxSecretBytes:
		return passwordCredential{}, malformed(c, r, "secretText does not fit in a Key Vault secret")
	}
	return pw, nil
}

// removePassword removes keyID from the application at appPath. 404, and a 400 that says the password
// does not exist, mean it is already gone: success.
func (cl *client) removePassword(ctx context.Context, appPath, keyID string) error {
	c := call{op: "removePassword", method: http.MethodPost, url: cl.graphURL(appPath + "/removePassword"),
		json: map[string]string{"keyId": keyID}, bearer: true}
	r, err := cl.do(ctx, c)
	if err != nil {
		return err
	}
	switch {
	case r.Status == http.StatusNoContent || r.Status == http.StatusOK:
		return nil
	case r.Status == http.StatusNotFound:
		return nil
	case r.Status == http.StatusBadRequest && saysNoSuchPassword(r):
		return nil
	}
	return cl.graphFailure(c, r)
}

// saysNoSuchPassword reports whether a Graph error says the password does not exist.
func saysNoSuchPassword(r *httpx.Response) bool {
	var body graphErrorBody
	if r.TooLong || json.Unmarshal(r.Body, &body) != nil {
		return false
	}
	return strings.Contains(strings.ToLower(body.Error.Message), "no password credential found")
}
