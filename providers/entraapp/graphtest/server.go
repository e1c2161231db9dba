// Package graphtest is a local stand-in for the parts of Microsoft Graph and Microsoft Entra ID that
// the entra-app provider uses, over HTTPS on 127.0.0.1, for tests. It follows the documented
// contracts, written from them rather than from the provider's code so that the two check each other:
//
//   - Graph v1.0: GET /v1.0/applications/{id} and /v1.0/applications(appId='{appId}') (the
//     application with its passwordCredentials, secretText always null); POST …/addPassword
//     {"passwordCredential":{"displayName","endDateTime","startDateTime"}} → 200 with keyId,
//     secretText, hint and dates; POST …/removePassword {"keyId"} → 204. Requests need the bearer
//     token of Credential. Errors have Graph's shape, {"error":{"code","message","innerError":
//     {"date","request-id","client-request-id"}}}: 401 InvalidAuthenticationToken, 403
//     Authorization_RequestDenied, 404 Request_ResourceNotFound, 400 Request_BadRequest, 429 with
//     Retry-After.
//   - Entra ID: POST /{tenant}/oauth2/v2.0/token with the client-credentials grant and a client
//     secret. Errors have Entra's shape ({"error","error_description":"AADSTSnnn: …","error_codes",
//     "timestamp","trace_id","correlation_id","error_uri"}): 7000215 invalid secret (also for the
//     first SetPropagation attempts with a new secret: eventual consistency), 7000222 expired,
//     700016 unknown application, 90002 unknown tenant.
//
// Fault hooks (FailNext, SetDown, SetForbidden, SetHints) and observations (Passwords, Calls,
// Requests, Issued, Scopes) let tests drive and inspect it. A Server is safe for concurrent use.
package graphtest

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Route names a call, for FailNext and Calls.
type Route string

// The routes.
const (
	GetApplication Route = "getApplication"
	AddPassword    Route = "addPassword"
	RemovePassword Route = "removePassword"
	Token          Route = "token"
)

// Domain is the verified domain of the server's tenant: the token endpoint accepts it as well as
// TenantID.
const Domain = "kvrotator-test.onmicrosoft.com"

// Fault is an answer FailNext makes a route give instead of the real one.
type Fault struct {
	Status     int    // HTTP status
	Code       string // Graph error code, or the OAuth error for Token
	Message    string // Graph message, or the description for Token
	AADSTS     int    // Token: the error number
	RetryAfter string // Retry-After header, if any
	// LoseAnswer performs the request for real and then drops the connection without answering, as
	// a timeout or a crash after the service acted would.
	LoseAnswer bool
}

// Password is a password credential as the server holds it.
type Password struct {
	KeyID       string
	DisplayName string
	Start, End  time.Time
	Secret      string // the secret text (tests only: Graph never returns it after addPassword)
	attempts    int    // token requests with this secret so far
}

// App is an application registration.
type App struct {
	ObjectID  string
	AppID     string
	forbidden bool
	passwords []*Password
}

// Server is a running fake. URL is both Graph's base URL (without /v1.0) and the authority host.
type Server struct {
	URL      string
	TenantID string
	// GraphToken is the bearer token Graph accepts; Credential hands it out.
	GraphToken string

	srv *httptest.Server

	mu          sync.Mutex
	apps        []*App
	faults      map[Route][]Fault
	down        bool
	downRetry   string
	propagation int
	maxLifetime time.Duration
	clamp       time.Duration
	missing     int // status for removePassword of an unknown keyId
	calls       map[Route]int
	requests    int  // every request received, whatever its route
	noHints     bool // passwordCredentials carry no hint
	issued      []string
	scopes      []string
	now         func() time.Time
}

// NewServer starts a server with one tenant and no applications.
func NewServer() *Server {
	s := &Server{TenantID: newGUID(), GraphToken: "graph-token-" + randomString(24, alnum),
		faults: map[Route][]Fault{}, calls: map[Route]int{}, missing: http.StatusNotFound, now: time.Now}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// Client is an HTTP client that trusts the server's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Credential is kvrotator's own identity: a static token credential whose token Graph accepts. The
// scopes it is asked for are recorded (Scopes).
func (s *Server) Credential() azcore.TokenCredential { return credential{s} }

type credential struct{ s *Server }

func (c credential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.s.mu.Lock()
	c.s.scopes = append(c.s.scopes, o.Scopes...)
	c.s.mu.Unlock()
	return azcore.AccessToken{Token: c.s.GraphToken, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// AddApp registers an application and returns its object id and application (client) id.
func (s *Server) AddApp() (objectID, appID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &App{ObjectID: newGUID(), AppID: newGUID()}
	s.apps = append(s.apps, a)
	return a.ObjectID, a.AppID
}

// SeedPassword adds a password as someone did by hand (it works at once) and returns its keyId.
func (s *Server) SeedPassword(objectID, displayName, secret string, end time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(objectID, "")
	if a == nil {
		panic("graphtest: no application " + objectID)
	}
	p := &Password{KeyID: newGUID(), DisplayName: displayName, Start: s.now().UTC(), End: end.UTC(), Secret: secret,
		attempts: 1 << 30}
	a.passwords = append(a.passwords, p)
	return p.KeyID
}

// Passwords returns copies of an application's passwords, in creation order.
func (s *Server) Passwords(objectID string) []Password {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(objectID, "")
	if a == nil {
		return nil
	}
	out := make([]Password, len(a.passwords))
	for i, p := range a.passwords {
		out[i] = *p
	}
	return out
}

// SetForbidden makes addPassword and removePassword on the application answer 403
// Authorization_RequestDenied, as for an identity with Application.ReadWrite.OwnedBy that does not own
// it.
func (s *Server) SetForbidden(objectID string, forbidden bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.app(objectID, ""); a != nil {
		a.forbidden = forbidden
	}
}

// SetPropagation makes the token endpoint reject each new password's secret with AADSTS7000215 for
// its first n sign-ins, as Entra ID does until a new secret has replicated.
func (s *Server) SetPropagation(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.propagation = n
}

// SetMaxLifetime makes addPassword refuse an endDateTime further than d away, as a tenant
// app-management policy does (0: no limit).
func (s *Server) SetMaxLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxLifetime = d
}

// SetClampLifetime makes addPassword shorten an endDateTime further than d away to d, instead of
// refusing it (0: no clamping). Graph documents refusals; this checks that a client copes with a
// service that silently shortens.
func (s *Server) SetClampLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clamp = d
}

// SetMissingPasswordStatus sets what removePassword answers for a keyId the application does not
// have: 404 (the default) or 400, both with the message "No password credential found with keyId …".
func (s *Server) SetMissingPasswordStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missing = status
}

// SetDown makes every request answer 503 (with Retry-After retryAfter when not empty), or restores
// service.
func (s *Server) SetDown(down bool, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down, s.downRetry = down, retryAfter
}

// FailNext makes the next n calls of route answer f.
func (s *Server) FailNext(route Route, n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[route] = append(s.faults[route], f)
	}
}

// Calls counts the requests a route received (including failed ones).
func (s *Server) Calls(route Route) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route]
}

// Requests counts every request the server received (Graph, the token endpoint, and anything else):
// tests that prove nothing was contacted check that it is 0.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// SetHints makes the application's passwordCredentials carry their hint (the first three characters
// of the secret text, the default, as Graph documents) or leave it null.
func (s *Server) SetHints(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noHints = !on
}

// Issued lists every secret text addPassword returned, so tests can check that none leaks.
func (s *Server) Issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// Scopes lists the scopes Credential was asked for.
func (s *Server) Scopes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.scopes)
}

// app finds an application by object id or app id (case-insensitive); the caller holds mu.
func (s *Server) app(objectID, appID string) *App {
	for _, a := range s.apps {
		if (objectID != "" && strings.EqualFold(a.ObjectID, objectID)) || (appID != "" && strings.EqualFold(a.AppID, appID)) {
			return a
		}
	}
	return nil
}

// ---- routing ----

var (
	byObjectID = regexp.MustCompile(`^/v1\.0/applications/([^/()]+)(/addPassword|/removePassword)?$`)
	byAppID    = regexp.MustCompile(`^/v1\.0/applications\(appId='([^']+)'\)(/addPassword|/removePassword)?$`)
	tokenPath  = regexp.MustCompile(`^/([^/]+)/oauth2/v2\.0/token$`)
)

const maxRequestBytes = 1 << 20

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBytes)
	if m := tokenPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
		s.token(w, r, m[1])
		return
	}
	var objectID, appID, action string
	if m := byObjectID.FindStringSubmatch(r.URL.Path); m != nil {
		objectID, action = m[1], m[2]
	} else if m := byAppID.FindStringSubmatch(r.URL.Path); m != nil {
		appID, action = m[1], m[2]
	} else {
		graphError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+r.URL.Path+"'.")
		return
	}
	route := map[string]Route{"": GetApplication, "/addPassword": AddPassword, "/removePassword": RemovePassword}[action]
	want := map[Route]string{GetApplication: http.MethodGet, AddPassword: http.MethodPost, RemovePassword: http.MethodPost}[route]
	if r.Method != want {
		graphError(w, r, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
		return
	}
	if f, ok := s.takeFault(route); ok && !f.LoseAnswer {
		s.graphFault(w, r, f)
		return
	} else if ok {
		s.graph(httptest.NewRecorder(), r, route, objectID, appID)
		loseAnswer(w)
		return
	}
	s.graph(w, r, route, objectID, appID)
}

// graph performs a Graph call.
func (s *Server) graph(w http.ResponseWriter, r *http.Request, route Route, objectID, appID string) {
	if r.Header.Get("Authorization") != "Bearer "+s.GraphToken {
		graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(objectID, appID)
	if a == nil {
		id := objectID + appID
		graphError(w, r, http.StatusNotFound, "Request_ResourceNotFound",
			fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", id))
		return
	}
	switch route {
	case GetApplication:
		s.getApplication(w, r, a)
	case AddPassword:
		s.addPassword(w, r, a)
	case RemovePassword:
		s.removePassword(w, r, a)
	}
}

// takeFault counts the call and returns the fault to answer with, if any.
func (s *Server) takeFault(route Route) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[route]++
	if s.down {
		f := Fault{Status: http.StatusServiceUnavailable, Code: "serviceNotAvailable", Message: "The service is temporarily unavailable. Please retry later.",
			RetryAfter: s.downRetry}
		if route == Token {
			f.Code, f.AADSTS, f.Message = "temporarily_unavailable", 90033, "A transient error has occurred. Please try again."
		}
		return f, true
	}
	if q := s.faults[route]; len(q) > 0 {
		s.faults[route] = q[1:]
		return q[0], true
	}
	return Fault{}, false
}

// loseAnswer closes the connection without a response: the request was performed, the answer is lost.
func loseAnswer(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("graphtest: LoseAnswer needs HTTP/1.1")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func (s *Server) graphFault(w http.ResponseWriter, r *http.Request, f Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	graphError(w, r, f.Status, f.Code, f.Message)
}

// graphError writes Graph's error shape.
func graphError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	reqID := newGUID()
	w.Header().Set("request-id", reqID)
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": message,
		"innerError": map[string]string{
			"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": reqID,
			"client-request-id": r.Header.Get("client-request-id"),
		},
	}})
}

const graphJSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", graphJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// passwordJSON is Graph's passwordCredential resource; secretText is null except in addPassword's
// answer. hint is "the first three characters of the password" (null when hints are off).
func passwordJSON(p *Password, withSecret, hints bool) map[string]any {
	var hint any
	if hints {
		h := p.Secret
		if len(h) > 3 {
			h = h[:3]
		}
		hint = h
	}
	m := map[string]any{
		"customKeyIdentifier": nil, "displayName": nullable(p.DisplayName), "endDateTime": p.End.Format(time.RFC3339Nano),
		"hint": hint, "keyId": p.KeyID, "secretText": nil, "startDateTime": p.Start.Format(time.RFC3339Nano),
	}
	if withSecret {
		m["secretText"] = p.Secret
	}
	return m
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) getApplication(w http.ResponseWriter, r *http.Request, a *App) {
	pcs := make([]any, 0, len(a.passwords))
	for _, p := range a.passwords {
		pcs = append(pcs, passwordJSON(p, false, !s.noHints))
	}
	all := map[string]any{"id": a.ObjectID, "appId": a.AppID, "displayName": "app " + a.AppID[:8],
		"signInAudience": "AzureADMyOrg", "passwordCredentials": pcs, "keyCredentials": []any{}}
	out := map[string]any{"@odata.context": s.URL + "/v1.0/$metadata#applications/$entity"}
	if sel := r.URL.Query().Get("$select"); sel != "" {
		for _, f := range strings.Split(sel, ",") {
			if v, ok := all[strings.TrimSpace(f)]; ok {
				out[strings.TrimSpace(f)] = v
			}
		}
	} else {
		for k, v := range all {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// jsonBody decodes a Graph request body, answering 400 (and returning false) when it is not JSON.
func jsonBody(w http.ResponseWriter, r *http.Request, v any) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" {
		graphError(w, r, http.StatusUnsupportedMediaType, "Request_BadRequest", "Content-Type must be application/json.")
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid request body.")
		return false
	}
	return true
}

func (s *Server) addPassword(w http.ResponseWriter, r *http.Request, a *App) {
	var body struct {
		PasswordCredential *struct {
			DisplayName   string  `json:"displayName"`
			EndDateTime   *string `json:"endDateTime"`
			StartDateTime *string `json:"startDateTime"`
			SecretText    *string `json:"secretText"`
		} `json:"passwordCredential"`
	}
	if !jsonBody(w, r, &body) {
		return
	}
	if a.forbidden {
		graphError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	pc := body.PasswordCredential
	if pc == nil {
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "The request body must contain 'passwordCredential'.")
		return
	}
	if pc.SecretText != nil {
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "The property 'secretText' is read-only.")
		return
	}
	now := s.now().UTC()
	p := &Password{KeyID: newGUID(), DisplayName: pc.DisplayName, Start: now, End: now.AddDate(2, 0, 0),
		Secret: randomString(40, secretChars)}
	for _, f := range []struct {
		raw *string
		t   *time.Time
	}{{pc.StartDateTime, &p.Start}, {pc.EndDateTime, &p.End}} {
		if f.raw == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, *f.raw)
		if err != nil {
			graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.")
			return
		}
		*f.t = t.UTC()
	}
	switch {
	case !p.End.After(p.Start) || !p.End.After(now):
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Key credential end date is invalid.")
		return
	case s.maxLifetime > 0 && p.End.Sub(p.Start) > s.maxLifetime:
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Credential lifetime exceeds the max value allowed as per assigned policy.")
		return
	}
	if s.clamp > 0 && p.End.Sub(p.Start) > s.clamp {
		p.End = p.Start.Add(s.clamp)
	}
	a.passwords = append(a.passwords, p)
	s.issued = append(s.issued, p.Secret)
	m := passwordJSON(p, true, !s.noHints)
	m["@odata.context"] = s.URL + "/v1.0/$metadata#microsoft.graph.passwordCredential"
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) removePassword(w http.ResponseWriter, r *http.Request, a *App) {
	var body struct {
		KeyID string `json:"keyId"`
	}
	if !jsonBody(w, r, &body) {
		return
	}
	if a.forbidden {
		graphError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	i := slices.IndexFunc(a.passwords, func(p *Password) bool { return strings.EqualFold(p.KeyID, body.KeyID) })
	if i < 0 {
		code := "Request_ResourceNotFound"
		if s.missing == http.StatusBadRequest {
			code = "Request_BadRequest"
		}
		graphError(w, r, s.missing, code, fmt.Sprintf("No password credential found with keyId '%s'.", body.KeyID))
		return
	}
	a.passwords = slices.Delete(a.passwords, i, i+1)
	w.Header().Set("request-id", newGUID())
	w.WriteHeader(http.StatusNoContent)
}

// ---- the token endpoint ----

func (s *Server) token(w http.ResponseWriter, r *http.Request, tenant string) {
	if f, ok := s.takeFault(Token); ok {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		aadError(w, r, f.Status, f.Code, f.AADSTS, f.Message)
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm == nil {
		aadError(w, r, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	for _, p := range []string{"grant_type", "client_id", "scope"} {
		if f.Get(p) == "" {
			aadError(w, r, http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p))
			return
		}
	}
	if f.Get("grant_type") != "client_credentials" {
		aadError(w, r, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
		return
	}
	if !strings.EqualFold(tenant, s.TenantID) && !strings.EqualFold(tenant, Domain) {
		aadError(w, r, http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	if !strings.HasSuffix(f.Get("scope"), "/.default") || strings.Contains(f.Get("scope"), " ") {
		aadError(w, r, http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clientID := f.Get("client_id")
	a := s.app("", clientID)
	if a == nil {
		aadError(w, r, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, tenant))
		return
	}
	secret := f.Get("client_secret")
	if secret == "" {
		aadError(w, r, http.StatusBadRequest, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	invalid := func() {
		aadError(w, r, http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", a.AppID))
	}
	i := slices.IndexFunc(a.passwords, func(p *Password) bool { return subtle.ConstantTimeCompare([]byte(p.Secret), []byte(secret)) == 1 })
	if i < 0 {
		invalid()
		return
	}
	p := a.passwords[i]
	now := s.now()
	if !now.Before(p.End) {
		aadError(w, r, http.StatusUnauthorized, "invalid_client", 7000222,
			fmt.Sprintf("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app.", a.AppID))
		return
	}
	if p.attempts < s.propagation {
		p.attempts++
		invalid()
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
		"access_token": "app-token-" + randomString(32, alnum)})
}

// aadError writes Entra ID's error shape.
func aadError(w http.ResponseWriter, r *http.Request, status int, code string, num int, desc string) {
	trace, corr := newGUID(), r.Header.Get("client-request-id")
	if corr == "" {
		corr = newGUID()
	}
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", num, desc, trace, corr, ts),
		"error_codes":       []int{num},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         "https://" + r.Host + "/error?code=" + strconv.Itoa(num),
	})
}

// ---- randomness ----

const (
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	secretChars = alnum + "~._-" // what Entra ID's generated secrets are made of
)

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

func newGUID() string {
	var b [16]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
