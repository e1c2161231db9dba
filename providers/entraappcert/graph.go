package entraappcert

import (
	"context"
	"encoding/base64"
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
	// maxResponseBytes bounds an answer: an application listing every key credential with its
	// certificate (about 1.5 KiB each) fits many times over.
	maxResponseBytes = 4 << 20
	userAgent        = "kvrotator-entra-app-certificate/1"
)

// client is one call's view of the environment: kvrotator's own credential, where Graph and the
// token endpoint are, and how to call them.
type client struct {
	cred      azcore.TokenCredential
	graph     string // Graph's base URL, without a trailing slash and without the version
	scope     string // the Graph token scope: audience + "/.default"
	authority string // the Entra authority host, without a trailing slash
	timeout   time.Duration
	graphAPI  httpx.Client       // calls Microsoft Graph
	tokenAPI  httpx.Client       // describes the Entra ID token endpoint's failures
	transport policy.Transporter // carries the verification sign-in (azidentity), following no redirect
}

// requestHeader is the header of every call: a client-request-id, which Graph logs with the request.
func requestHeader() http.Header {
	h := http.Header{}
	h.Set("client-request-id", uuid.NewString())
	return h
}

// graphCall sends method to Graph's v1.0 path (with its query) with kvrotator's bearer token and body
// as JSON (none when nil), and returns the request with the answer, whatever its status. secrets are
// redacted from anything Graph says back (the proof). Failing to get the token is a transient error
// of the provider's own, before anything is sent.
func (cl *client) graphCall(ctx context.Context, op, method, path string, body any, secrets ...string) (httpx.Request, *httpx.Response, error) {
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
	r.Secrets = append([]string{tok.Token}, secrets...) // should Graph ever echo them
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

// graphError reads Graph's error body; zero when it is not JSON or too long.
func graphError(r *httpx.Response) graphErrorBody {
	var b graphErrorBody
	if r.JSONProblem() != "" || json.Unmarshal(r.Body, &b) != nil {
		return graphErrorBody{}
	}
	return b
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

// codeProofRefused is what Graph answers (401) to an addKey or removeKey whose proof of possession it
// does not accept — and to a request without a valid token.
const codeProofRefused = "Authentication_MissingOrMalformed"

// graphVerdict is what a Graph answer the caller does not handle means: 408, 429 and 5xx are
// transient (with Retry-After); 401 and 403 name what is missing; the rest are permanent. Callers
// handle 404 themselves.
func (cl *client) graphVerdict(resp *httpx.Response, withProof bool) httpx.Verdict {
	s := resp.Status
	switch {
	case httpx.Retryable(s):
		return httpx.Verdict{Reason: "Microsoft Graph is busy or unavailable; will retry", Transient: true}
	case s == http.StatusUnauthorized && withProof && graphError(resp).Error.Code == codeProofRefused:
		return httpx.Verdict{Reason: "Microsoft Graph refused the proof of possession signed with the current version's certificate: " +
			"the certificate must be a currently valid certificate of this application (and the proof's audience what Graph expects, see WithProofAudience)"}
	case s == http.StatusUnauthorized:
		return httpx.Verdict{Reason: "Microsoft Graph rejected kvrotator's token: check that the cloud configuration's Graph endpoint and audience match (" + cl.scope + ")"}
	case s == http.StatusForbidden:
		return httpx.Verdict{Reason: "kvrotator's identity may not change this application's certificates: it needs the Microsoft Graph application permission Application.ReadWrite.OwnedBy (and must be an owner of the app) or Application.ReadWrite.All"}
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

// keyCredential is Graph's keyCredential resource. Key (the certificate's base64 DER) is listed only
// on GET /applications/{id}?$select=keyCredentials; CustomKeyIdentifier defaults to the certificate's
// thumbprint.
type keyCredential struct {
	KeyID               string     `json:"keyId"`
	DisplayName         *string    `json:"displayName"`
	CustomKeyIdentifier *string    `json:"customKeyIdentifier"`
	Key                 *string    `json:"key"`
	Type                string     `json:"type"`
	Usage               string     `json:"usage"`
	StartDateTime       *time.Time `json:"startDateTime"`
	EndDateTime         *time.Time `json:"endDateTime"`
}

// name is the display name, "" when null.
func (k keyCredential) name() string {
	if k.DisplayName == nil {
		return ""
	}
	return *k.DisplayName
}

// validAt reports whether the key credential is within its dates at t (dates Graph leaves out do not
// limit it).
func (k keyCredential) validAt(t time.Time) bool {
	return (k.StartDateTime == nil || !t.Before(*k.StartDateTime)) && (k.EndDateTime == nil || t.Before(*k.EndDateTime))
}

// application is what the provider reads of Graph's application resource.
type application struct {
	ID             string          `json:"id"`
	AppID          string          `json:"appId"`
	KeyCredentials []keyCredential `json:"keyCredentials"`
}

// key finds the application's key credential keyID (case-insensitive).
func (a application) key(keyID string) (keyCredential, bool) {
	keyID = strings.TrimSpace(keyID)
	if keyID == "" {
		return keyCredential{}, false
	}
	for _, k := range a.KeyCredentials {
		if strings.EqualFold(k.KeyID, keyID) {
			return k, true
		}
	}
	return keyCredential{}, false
}

// getApplication reads the application's id, appId and key credentials with their certificates. 404
// is a ConfigError naming the tag that addressed it.
func (cl *client) getApplication(ctx context.Context, cfg config) (application, error) {
	r, resp, err := cl.graphCall(ctx, "read application", http.MethodGet, cfg.appPath()+"?$select=id,appId,keyCredentials", nil)
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
		return application{}, cl.graphAPI.Fail(r, resp, cl.graphVerdict(resp, false))
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

// addKey adds the certificate's public key to the application, named displayName, with a proof of
// possession of a current certificate. The answer is the new key credential.
func (cl *client) addKey(ctx context.Context, objectID, displayName string, certDER []byte, proofJWT string) (keyCredential, error) {
	type kc struct {
		Type        string `json:"type"`
		Usage       string `json:"usage"`
		Key         string `json:"key"`
		DisplayName string `json:"displayName"`
	}
	body := struct {
		KeyCredential      kc     `json:"keyCredential"`
		PasswordCredential any    `json:"passwordCredential"`
		Proof              string `json:"proof"`
	}{kc{Type: "AsymmetricX509Cert", Usage: "Verify", Key: base64.StdEncoding.EncodeToString(certDER), DisplayName: displayName}, nil, proofJWT}
	r, resp, err := cl.graphCall(ctx, "addKey", http.MethodPost, "/applications/"+objectID+"/addKey", body, proofJWT)
	if err != nil {
		return keyCredential{}, err
	}
	if resp.Status != http.StatusOK && resp.Status != http.StatusCreated {
		v := cl.graphVerdict(resp, true)
		if resp.Status == http.StatusBadRequest {
			v.Reason = "Microsoft Graph refused to add the certificate (a tenant app-management policy may cap certificate lifetimes, see " +
				TagLifetime + ", or forbid certificates of this kind)"
		}
		return keyCredential{}, cl.graphAPI.Fail(r, resp, v)
	}
	var k keyCredential
	if reason := resp.DecodeObject(&k); reason != "" {
		return keyCredential{}, malformed(&cl.graphAPI, r, resp, reason)
	}
	if k.KeyID != "" && !isGUID(k.KeyID) {
		return keyCredential{}, malformed(&cl.graphAPI, r, resp, "keyId is not a GUID")
	}
	return k, nil
}

// removeKey removes keyID from the application with a proof of possession of a current certificate.
// 404, and a 400 that says the key does not exist, mean it is already gone: success. When the
// application's listing no longer had the key (listed false), any 400 is taken as gone too: what
// Graph answers for a key it does not have is not documented.
func (cl *client) removeKey(ctx context.Context, objectID, keyID, proofJWT string, listed bool) error {
	r, resp, err := cl.graphCall(ctx, "removeKey", http.MethodPost, "/applications/"+objectID+"/removeKey",
		map[string]string{"keyId": keyID, "proof": proofJWT}, proofJWT)
	if err != nil {
		return err
	}
	switch {
	case resp.Status == http.StatusNoContent || resp.Status == http.StatusOK:
		return nil
	case resp.Status == http.StatusNotFound:
		return nil
	case resp.Status == http.StatusBadRequest && (!listed || saysNoSuchKey(resp)):
		return nil
	}
	return cl.graphAPI.Fail(r, resp, cl.graphVerdict(resp, true))
}

// saysNoSuchKey reports whether a Graph error says the key credential does not exist.
func saysNoSuchKey(r *httpx.Response) bool {
	m := strings.ToLower(graphError(r).Error.Message)
	return strings.Contains(m, "no key credential found") || strings.Contains(m, "does not exist")
}
