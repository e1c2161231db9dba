// Package entraappcerttest is a local stand-in for the parts of Microsoft Graph and Microsoft Entra ID
// that the entra-app-certificate provider uses, over HTTPS on 127.0.0.1, for tests. It is written from
// Microsoft's documented contracts rather than from the provider's code, so that the two check each
// other (the sibling of providers/entraapp/graphtest, which serves client secrets):
//
//   - Graph v1.0: GET /v1.0/applications/{id} and /v1.0/applications(appId='{appId}') — the
//     application with its keyCredentials ({customKeyIdentifier, displayName, endDateTime, key, keyId,
//     startDateTime, type, usage}; key, the certificate's base64 DER, only when $select names
//     keyCredentials, as documented). customKeyIdentifier is the certificate's SHA-1 thumbprint in
//     upper-case hex, as the portal and the "add a certificate" how-to show it.
//   - POST …/addKey {"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key":"<base64
//     DER>","displayName"},"passwordCredential":null,"proof":"<JWT>"} → 200 with the new keyCredential;
//     POST …/removeKey {"keyId","proof"} → 204. The proof is checked as documented: a JWT signed (RS256)
//     with the private key of a currently valid certificate of the same application (found by its x5t
//     header, the base64url SHA-1 thumbprint), aud 00000002-0000-0000-c000-000000000000 (SetProofAudiences
//     changes it), iss the application's object id, nbf and exp at most 10 minutes apart, no "="
//     padding. A proof that fails is answered as Graph answers it: 401 Authentication_MissingOrMalformed
//     "Access Token missing or malformed." (the reason is kept for tests: ProofFailures).
//   - Errors have Graph's shape, {"error":{"code","message","innerError":{"date","request-id",
//     "client-request-id"}}}: 401 InvalidAuthenticationToken, 403 Authorization_RequestDenied, 404
//     Request_ResourceNotFound, 400 Request_BadRequest (a key that is not standard base64: "Cannot
//     convert a primitive value to the expected type 'Edm.Binary'…"), 429 with Retry-After.
//   - Entra ID: GET /{tenant}/v2.0/.well-known/openid-configuration (MSAL's tenant discovery) and POST
//     /{tenant}/oauth2/v2.0/token with the client-credentials grant and a client assertion
//     (client_assertion_type urn:ietf:params:oauth:client-assertion-type:jwt-bearer): a JWT signed
//     RS256 or PS256 by a registered, unexpired certificate of the application, named by x5t (SHA-1) or
//     x5t#S256 (SHA-256) in base64url or standard base64, aud the token endpoint, iss = sub = client_id,
//     valid nbf/exp. Errors have Entra's shape ({"error","error_description":"AADSTSnnn: …",
//     "error_codes","timestamp","trace_id","correlation_id","error_uri"}): 700027 key not found (also for
//     the first SetPropagation sign-ins with a new certificate: eventual consistency), key expired or
//     bad signature; 700021 iss/sub; 700023 audience; 700024 time range; 700016 unknown application;
//     90002 unknown tenant.
//
// What is the stand-in's own choice where Microsoft documents nothing: the status and message of
// removeKey for a keyId the application does not have (404, "No key credential found with keyId …",
// like removePassword; SetMissingKeyStatus), and that a proof must carry x5t.
//
// Fault hooks (FailNext, SetDown, SetForbidden, SetPropagation, SetMaxLifetime) and observations (Keys,
// Calls, Requests, Proofs, ProofFailures, Assertions, Scopes) let tests drive and inspect it. A Server
// is safe for concurrent use.
package entraappcerttest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
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
	AddKey         Route = "addKey"
	RemoveKey      Route = "removeKey"
	Token          Route = "token"
	OpenIDConfig   Route = "openidConfiguration"
)

// Domain is the verified domain of the server's tenant: the token endpoint accepts it as well as
// TenantID.
const Domain = "kvrotator-test.onmicrosoft.com"

// ProofAudience is the aud Graph's addKey and removeKey pages document for the proof of possession.
const ProofAudience = "00000002-0000-0000-c000-000000000000"

// AssertionType is the client_assertion_type of a certificate sign-in.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxProofLifetime is the longest exp − nbf a proof may have ("nbf + 10 mins").
const maxProofLifetime = 10 * time.Minute

// clockSkew is how far in the future a proof's or assertion's nbf may be.
const clockSkew = 5 * time.Minute

// Fault is an answer FailNext makes a route give instead of the real one.
type Fault struct {
	Status     int    // HTTP status
	Code       string // Graph error code, or the OAuth error for Token
	Message    string // Graph message, or the description for Token
	AADSTS     int    // Token: the error number
	RetryAfter string // Retry-After header, if any
	Location   string // Location header, if any (a redirect)
	// LoseAnswer performs the request for real and then drops the connection without answering, as
	// a timeout or a crash after the service acted would.
	LoseAnswer bool
}

// Key is a key credential as the server holds it.
type Key struct {
	KeyID               string
	DisplayName         string
	Type, Usage         string
	Start, End          time.Time
	CustomKeyIdentifier string
	Cert                *x509.Certificate
	attempts            int // sign-ins with this key so far
}

// Thumbprint is the key's certificate's SHA-1 thumbprint in upper-case hex.
func (k Key) Thumbprint() string { return Thumbprint(k.Cert) }

// Thumbprint is a certificate's SHA-1 thumbprint in upper-case hex, as Windows and the portal show it.
func Thumbprint(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// Proof is a proof of possession the server accepted.
type Proof struct {
	Route     Route
	ObjectID  string // the application it was for
	Header    map[string]any
	Audience  string
	Issuer    string
	Signer    string // the signing certificate's thumbprint
	NotBefore time.Time
	Expires   time.Time
}

// Assertion is a client assertion the token endpoint accepted.
type Assertion struct {
	ClientID string
	Alg      string
	Signer   string // the signing certificate's thumbprint
	Audience string
}

// App is an application registration.
type App struct {
	ObjectID  string
	AppID     string
	forbidden bool
	keys      []*Key
}

// Server is a running fake. URL is both Graph's base URL (without /v1.0) and the authority host.
type Server struct {
	URL      string
	TenantID string
	// GraphToken is the bearer token Graph accepts; Credential hands it out.
	GraphToken string

	srv *httptest.Server

	mu            sync.Mutex
	apps          []*App
	faults        map[Route][]Fault
	down          bool
	downRetry     string
	propagation   int
	maxLifetime   time.Duration
	missing       int
	audiences     []string
	calls         map[Route]int
	requests      int
	proofs        []Proof
	proofFailures []string
	assertions    []Assertion
	scopes        []string
	now           func() time.Time
}

// NewServer starts a server with one tenant and no applications.
func NewServer() *Server {
	s := &Server{TenantID: newGUID(), GraphToken: "graph-token-" + randomString(24),
		faults: map[Route][]Fault{}, calls: map[Route]int{}, missing: http.StatusNotFound, audiences: []string{ProofAudience}, now: time.Now}
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

// SeedKey registers a certificate on an application as someone did by hand (it works at once; its
// validity is the certificate's) and returns its keyId.
func (s *Server) SeedKey(objectID, displayName string, cert *x509.Certificate) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(objectID, "")
	if a == nil {
		panic("entraappcerttest: no application " + objectID)
	}
	k := &Key{KeyID: newGUID(), DisplayName: displayName, Type: "AsymmetricX509Cert", Usage: "Verify", Start: cert.NotBefore.UTC(),
		End: cert.NotAfter.UTC(), CustomKeyIdentifier: Thumbprint(cert), Cert: cert, attempts: 1 << 30}
	a.keys = append(a.keys, k)
	return k.KeyID
}

// Keys returns copies of an application's key credentials, in creation order.
func (s *Server) Keys(objectID string) []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.app(objectID, "")
	if a == nil {
		return nil
	}
	out := make([]Key, len(a.keys))
	for i, k := range a.keys {
		out[i] = *k
	}
	return out
}

// SetForbidden makes addKey and removeKey on the application answer 403 Authorization_RequestDenied,
// as for an identity with Application.ReadWrite.OwnedBy that does not own it.
func (s *Server) SetForbidden(objectID string, forbidden bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.app(objectID, ""); a != nil {
		a.forbidden = forbidden
	}
}

// SetPropagation makes the token endpoint reject each new key with AADSTS700027 ("the key was not
// found") for its first n sign-ins, as Entra ID does until a new certificate has replicated.
func (s *Server) SetPropagation(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.propagation = n
}

// SetMaxLifetime makes addKey refuse a certificate valid for longer than d, as a tenant
// app-management policy does (0: no limit).
func (s *Server) SetMaxLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxLifetime = d
}

// SetMissingKeyStatus sets what removeKey answers for a keyId the application does not have: 404
// (the default) or 400, both saying "No key credential found with keyId …".
func (s *Server) SetMissingKeyStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.missing = status
}

// SetProofAudiences sets the aud values a proof may carry (default: ProofAudience only).
func (s *Server) SetProofAudiences(aud ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audiences = slices.Clone(aud)
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

// Requests counts every request the server received, whatever its route: tests that prove nothing
// was contacted check that it is 0.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Proofs lists the proofs of possession addKey and removeKey accepted.
func (s *Server) Proofs() []Proof {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.proofs)
}

// ProofFailures lists why refused proofs were refused (Graph says only "Access Token missing or
// malformed.").
func (s *Server) ProofFailures() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.proofFailures)
}

// Assertions lists the client assertions the token endpoint accepted.
func (s *Server) Assertions() []Assertion {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.assertions)
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
	byObjectID = regexp.MustCompile(`^/v1\.0/applications/([^/()]+)(/addKey|/removeKey)?$`)
	byAppID    = regexp.MustCompile(`^/v1\.0/applications\(appId='([^']+)'\)(/addKey|/removeKey)?$`)
	tokenPath  = regexp.MustCompile(`^/([^/]+)/oauth2/v2\.0/token$`)
	oidcPath   = regexp.MustCompile(`^/([^/]+)/v2\.0/\.well-known/openid-configuration$`)
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
	if m := oidcPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodGet {
		s.openIDConfiguration(w, r, m[1])
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
	route := map[string]Route{"": GetApplication, "/addKey": AddKey, "/removeKey": RemoveKey}[action]
	want := map[Route]string{GetApplication: http.MethodGet, AddKey: http.MethodPost, RemoveKey: http.MethodPost}[route]
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
		graphError(w, r, http.StatusNotFound, "Request_ResourceNotFound",
			fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", objectID+appID))
		return
	}
	switch route {
	case GetApplication:
		s.getApplication(w, r, a)
	case AddKey:
		s.addKey(w, r, a)
	case RemoveKey:
		s.removeKey(w, r, a)
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
		if route == Token || route == OpenIDConfig {
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
		panic("entraappcerttest: LoseAnswer needs HTTP/1.1")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func (s *Server) graphFault(w http.ResponseWriter, r *http.Request, f Fault) {
	faultHeaders(w, f)
	graphError(w, r, f.Status, f.Code, f.Message)
}

// faultHeaders sets a fault's Retry-After and Location.
func faultHeaders(w http.ResponseWriter, f Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Location != "" {
		w.Header().Set("Location", f.Location)
	}
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

// keyJSON is Graph's keyCredential resource; key (the certificate) only when withKey.
func keyJSON(k *Key, withKey bool) map[string]any {
	var key any
	if withKey {
		key = base64.StdEncoding.EncodeToString(k.Cert.Raw)
	}
	var name any
	if k.DisplayName != "" {
		name = k.DisplayName
	}
	return map[string]any{
		"customKeyIdentifier": k.CustomKeyIdentifier, "displayName": name, "endDateTime": k.End.Format(time.RFC3339),
		"key": key, "keyId": k.KeyID, "startDateTime": k.Start.Format(time.RFC3339), "type": k.Type, "usage": k.Usage,
	}
}

func (s *Server) getApplication(w http.ResponseWriter, r *http.Request, a *App) {
	sel := r.URL.Query().Get("$select")
	fields := map[string]bool{}
	for f := range strings.SplitSeq(sel, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields[f] = true
		}
	}
	kcs := make([]any, 0, len(a.keys))
	for _, k := range a.keys {
		kcs = append(kcs, keyJSON(k, fields["keyCredentials"]))
	}
	all := map[string]any{"id": a.ObjectID, "appId": a.AppID, "displayName": "app " + a.AppID[:8],
		"signInAudience": "AzureADMyOrg", "passwordCredentials": []any{}, "keyCredentials": kcs}
	out := map[string]any{"@odata.context": s.URL + "/v1.0/$metadata#applications/$entity"}
	for k, v := range all {
		if len(fields) == 0 || fields[k] {
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

// malformedProof is Graph's answer to a proof it does not accept.
func malformedProof(w http.ResponseWriter, r *http.Request) {
	graphError(w, r, http.StatusUnauthorized, "Authentication_MissingOrMalformed", "Access Token missing or malformed.")
}

func (s *Server) addKey(w http.ResponseWriter, r *http.Request, a *App) {
	var body struct {
		KeyCredential *struct {
			Type                string  `json:"type"`
			Usage               string  `json:"usage"`
			Key                 *string `json:"key"`
			DisplayName         string  `json:"displayName"`
			CustomKeyIdentifier *string `json:"customKeyIdentifier"`
			KeyID               *string `json:"keyId"`
		} `json:"keyCredential"`
		PasswordCredential json.RawMessage `json:"passwordCredential"`
		Proof              string          `json:"proof"`
	}
	if !jsonBody(w, r, &body) {
		return
	}
	if a.forbidden {
		graphError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	kc := body.KeyCredential
	switch {
	case kc == nil:
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "The request body must contain 'keyCredential'.")
		return
	case kc.Type != "AsymmetricX509Cert" || kc.Usage != "Verify":
		// X509CertAndPassword/Sign is documented too; the provider never sends it.
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Key credential type and usage must be AsymmetricX509Cert and Verify.")
		return
	case len(body.PasswordCredential) > 0 && string(body.PasswordCredential) != "null":
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "passwordCredential must be null for keys of type AsymmetricX509Cert.")
		return
	case kc.KeyID != nil:
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "The property 'keyId' must be null.")
		return
	case kc.Key == nil:
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "The key credential must contain 'key'.")
		return
	}
	der, err := base64.StdEncoding.Strict().DecodeString(*kc.Key)
	if err != nil {
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Cannot convert a primitive value to the expected type 'Edm.Binary'. See the inner exception for more details.")
		return
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Key credential is not a valid certificate.")
		return
	}
	if !s.checkProof(w, r, a, AddKey, body.Proof) {
		return
	}
	now := s.now().UTC()
	switch {
	case !cert.NotAfter.After(now) || !cert.NotAfter.After(cert.NotBefore):
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Key credential end date is invalid.")
		return
	case s.maxLifetime > 0 && cert.NotAfter.Sub(cert.NotBefore) > s.maxLifetime:
		graphError(w, r, http.StatusBadRequest, "Request_BadRequest", "Credential lifetime exceeds the max value allowed as per assigned policy.")
		return
	}
	cki := Thumbprint(cert)
	if kc.CustomKeyIdentifier != nil && *kc.CustomKeyIdentifier != "" {
		cki = *kc.CustomKeyIdentifier
	}
	k := &Key{KeyID: newGUID(), DisplayName: kc.DisplayName, Type: kc.Type, Usage: kc.Usage, Start: cert.NotBefore.UTC(), End: cert.NotAfter.UTC(),
		CustomKeyIdentifier: cki, Cert: cert}
	a.keys = append(a.keys, k)
	m := keyJSON(k, false)
	m["@odata.context"] = s.URL + "/v1.0/$metadata#microsoft.graph.keyCredential"
	writeJSON(w, http.StatusOK, m)
}

func (s *Server) removeKey(w http.ResponseWriter, r *http.Request, a *App) {
	var body struct {
		KeyID string `json:"keyId"`
		Proof string `json:"proof"`
	}
	if !jsonBody(w, r, &body) {
		return
	}
	if a.forbidden {
		graphError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	if !s.checkProof(w, r, a, RemoveKey, body.Proof) {
		return
	}
	i := slices.IndexFunc(a.keys, func(k *Key) bool { return strings.EqualFold(k.KeyID, body.KeyID) })
	if i < 0 {
		code := "Request_ResourceNotFound"
		if s.missing == http.StatusBadRequest {
			code = "Request_BadRequest"
		}
		graphError(w, r, s.missing, code, fmt.Sprintf("No key credential found with keyId '%s'.", body.KeyID))
		return
	}
	a.keys = slices.Delete(a.keys, i, i+1)
	w.Header().Set("request-id", newGUID())
	w.WriteHeader(http.StatusNoContent)
}

// checkProof checks addKey's or removeKey's proof of possession (the caller holds mu) and answers 401
// when it fails.
func (s *Server) checkProof(w http.ResponseWriter, r *http.Request, a *App, route Route, proof string) bool {
	p, why := s.verifyProof(a, proof)
	if why != "" {
		s.proofFailures = append(s.proofFailures, string(route)+": "+why)
		malformedProof(w, r)
		return false
	}
	p.Route, p.ObjectID = route, a.ObjectID
	s.proofs = append(s.proofs, p)
	return true
}

// verifyProof returns the proof, or why it is refused.
func (s *Server) verifyProof(a *App, proof string) (Proof, string) {
	if proof == "" {
		return Proof{}, "no proof"
	}
	if strings.Contains(proof, "=") {
		return Proof{}, "padding in the JWT"
	}
	jwt, why := parseJWT(proof)
	if why != "" {
		return Proof{}, why
	}
	if jwt.header["alg"] != "RS256" {
		return Proof{}, fmt.Sprintf("alg %v, want RS256", jwt.header["alg"])
	}
	x5t, _ := jwt.header["x5t"].(string)
	if x5t == "" {
		return Proof{}, "no x5t header"
	}
	now := s.now()
	var signer *Key
	for _, k := range a.keys {
		sum := sha1.Sum(k.Cert.Raw)
		if x5t == base64.RawURLEncoding.EncodeToString(sum[:]) {
			signer = k
		}
	}
	switch {
	case signer == nil:
		return Proof{}, "x5t names no certificate of the application"
	case now.Before(signer.Start) || !now.Before(signer.End) || now.After(signer.Cert.NotAfter):
		return Proof{}, "the signing certificate is not currently valid"
	case !jwt.verify(signer.Cert, "RS256"):
		return Proof{}, "bad signature"
	}
	var claims struct {
		Aud any             `json:"aud"`
		Iss string          `json:"iss"`
		Nbf json.RawMessage `json:"nbf"`
		Exp json.RawMessage `json:"exp"`
	}
	if err := json.Unmarshal(jwt.payload, &claims); err != nil {
		return Proof{}, "claims are not a JSON object"
	}
	aud, _ := claims.Aud.(string)
	nbf, okN := numericDate(claims.Nbf)
	exp, okE := numericDate(claims.Exp)
	switch {
	case !slices.Contains(s.audiences, aud):
		return Proof{}, fmt.Sprintf("aud %q", aud)
	case !strings.EqualFold(claims.Iss, a.ObjectID):
		return Proof{}, fmt.Sprintf("iss %q is not the application's object id", claims.Iss)
	case !okN || !okE:
		return Proof{}, "nbf or exp missing"
	case nbf.After(now.Add(clockSkew)) || !exp.After(now):
		return Proof{}, "not within nbf..exp"
	case exp.Sub(nbf) > maxProofLifetime:
		return Proof{}, fmt.Sprintf("exp - nbf is %v, more than 10 minutes", exp.Sub(nbf))
	}
	return Proof{Header: jwt.header, Audience: aud, Issuer: claims.Iss, Signer: Thumbprint(signer.Cert), NotBefore: nbf, Expires: exp}, ""
}

// ---- JWTs ----

type parsedJWT struct {
	header  map[string]any
	payload []byte
	signed  []byte // header.payload, as sent
	sig     []byte
}

// parseJWT splits and decodes a compact JWS (base64url without padding).
func parseJWT(s string) (parsedJWT, string) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return parsedJWT{}, "not three segments"
	}
	var j parsedJWT
	h, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(h, &j.header) != nil {
		return parsedJWT{}, "bad header"
	}
	if j.payload, err = base64.RawURLEncoding.DecodeString(parts[1]); err != nil {
		return parsedJWT{}, "bad payload"
	}
	if j.sig, err = base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		return parsedJWT{}, "bad signature encoding"
	}
	j.signed = []byte(parts[0] + "." + parts[1])
	return j, ""
}

// verify checks the signature with the certificate's RSA key.
func (j parsedJWT) verify(c *x509.Certificate, alg string) bool {
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok {
		return false
	}
	sum := sha256.Sum256(j.signed)
	switch alg {
	case "RS256":
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], j.sig) == nil
	case "PS256":
		return rsa.VerifyPSS(pub, crypto.SHA256, sum[:], j.sig, nil) == nil
	}
	return false
}

// numericDate reads a JWT NumericDate.
func numericDate(raw json.RawMessage) (time.Time, bool) {
	var f float64
	if len(raw) == 0 || json.Unmarshal(raw, &f) != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// ---- the Entra ID endpoints ----

func (s *Server) knownTenant(tenant string) bool {
	return strings.EqualFold(tenant, s.TenantID) || strings.EqualFold(tenant, Domain)
}

func (s *Server) openIDConfiguration(w http.ResponseWriter, r *http.Request, tenant string) {
	if f, ok := s.takeFault(OpenIDConfig); ok {
		faultHeaders(w, f)
		aadError(w, r, f.Status, f.Code, f.AADSTS, f.Message)
		return
	}
	if !s.knownTenant(tenant) {
		aadError(w, r, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	base := s.URL + "/" + tenant
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              s.URL + "/" + s.TenantID + "/discovery/v2.0/keys",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                s.URL + "/" + s.TenantID + "/v2.0",
		"tenant_region_scope":                   "EU",
	})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request, tenant string) {
	if f, ok := s.takeFault(Token); ok {
		faultHeaders(w, f)
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
	if !s.knownTenant(tenant) {
		aadError(w, r, http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	if !clientCredentialsScope(f.Get("scope")) {
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
	assertion := f.Get("client_assertion")
	if assertion == "" {
		aadError(w, r, http.StatusBadRequest, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	if f.Get("client_assertion_type") != AssertionType {
		aadError(w, r, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_assertion_type'.")
		return
	}
	jwt, why := parseJWT(assertion)
	if why != "" {
		aadError(w, r, http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed.")
		return
	}
	alg, _ := jwt.header["alg"].(string)
	sum, thumbprintOK := assertionThumbprint(jwt.header)
	keyNotFound := func(thumb string) {
		aadError(w, r, http.StatusUnauthorized, "invalid_client", 700027, fmt.Sprintf(
			"The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments to determine the corresponding service endpoint and https://docs.microsoft.com/en-us/graph/api/application-get?view=graph-rest-1.0&tabs=http to build a query request URL, such as 'https://graph.microsoft.com/beta/applications/%s']",
			thumb, a.AppID, a.AppID))
	}
	if !thumbprintOK || (alg != "RS256" && alg != "PS256") {
		keyNotFound("")
		return
	}
	var k *Key
	for _, c := range a.keys {
		if sum(c.Cert) {
			k = c
		}
	}
	if k == nil {
		keyNotFound("")
		return
	}
	thumb := Thumbprint(k.Cert)
	now := s.now()
	if now.After(k.End) || now.After(k.Cert.NotAfter) {
		aadError(w, r, http.StatusUnauthorized, "invalid_client", 700027, fmt.Sprintf(
			"Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s']",
			thumb, k.Start.Format("01/02/2006 15:04:05"), k.End.Format("01/02/2006 15:04:05")))
		return
	}
	if k.attempts < s.propagation {
		k.attempts++
		keyNotFound(thumb)
		return
	}
	if !jwt.verify(k.Cert, alg) {
		aadError(w, r, http.StatusUnauthorized, "invalid_client", 700027, fmt.Sprintf(
			"Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '%s']", thumb))
		return
	}
	var claims struct {
		Aud string          `json:"aud"`
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Nbf json.RawMessage `json:"nbf"`
		Exp json.RawMessage `json:"exp"`
	}
	if json.Unmarshal(jwt.payload, &claims) != nil {
		aadError(w, r, http.StatusBadRequest, "invalid_request", 50027, "JWT token is invalid or malformed.")
		return
	}
	nbf, okN := numericDate(claims.Nbf)
	exp, okE := numericDate(claims.Exp)
	endpoint := "https://" + r.Host + "/" + tenant + "/oauth2/v2.0/token"
	switch {
	case claims.Iss != clientID || claims.Sub != clientID:
		aadError(w, r, http.StatusUnauthorized, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .")
		return
	case !strings.EqualFold(claims.Aud, endpoint):
		aadError(w, r, http.StatusUnauthorized, "invalid_client", 700023, "Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .")
		return
	case !okN || !okE || nbf.After(now.Add(clockSkew)) || !exp.After(now):
		aadError(w, r, http.StatusUnauthorized, "invalid_client", 700024, "Client assertion is not within its valid time range.")
		return
	}
	s.assertions = append(s.assertions, Assertion{ClientID: clientID, Alg: alg, Signer: thumb, Audience: claims.Aud})
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
		"access_token": "app-token-" + randomString(32)})
}

// clientCredentialsScope reports whether scope is one resource's /.default, with the OpenID Connect
// scopes MSAL adds to every request (openid, offline_access, profile).
func clientCredentialsScope(scope string) bool {
	resources := 0
	for _, s := range strings.Fields(scope) {
		switch {
		case s == "openid" || s == "offline_access" || s == "profile":
		case strings.HasSuffix(s, "/.default"):
			resources++
		default:
			return false
		}
	}
	return resources == 1
}

// assertionThumbprint reads the certificate named by a client assertion's header: x5t#S256 (SHA-256)
// or x5t (SHA-1), in base64url or standard base64 (MSAL Go sends the latter). It returns a matcher.
func assertionThumbprint(h map[string]any) (func(*x509.Certificate) bool, bool) {
	decode := func(v any) []byte {
		s, _ := v.(string)
		for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
			if b, err := enc.DecodeString(s); err == nil && s != "" {
				return b
			}
		}
		return nil
	}
	if b := decode(h["x5t#S256"]); len(b) == sha256.Size {
		return func(c *x509.Certificate) bool { sum := sha256.Sum256(c.Raw); return bytes.Equal(sum[:], b) }, true
	}
	if b := decode(h["x5t"]); len(b) == sha1.Size {
		return func(c *x509.Certificate) bool { sum := sha1.Sum(c.Raw); return bytes.Equal(sum[:], b) }, true
	}
	return nil, false
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

// ---- certificates for tests ----

// NewCertificate makes an RSA 2048 key and a self-signed certificate for it, valid from notBefore to
// notAfter: a certificate someone made by hand.
func NewCertificate(cn string, notBefore, notAfter time.Time) (*x509.Certificate, *rsa.PrivateKey) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return cert, key
}

// PEM is the private key (PKCS #8) and the certificate as a PEM file, as Key Vault exports a
// certificate with content type application/x-pem-file.
func PEM(cert *x509.Certificate, key *rsa.PrivateKey) string {
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

// ---- randomness ----

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alnum))))
		if err != nil {
			panic(err)
		}
		b[i] = alnum[k.Int64()]
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
