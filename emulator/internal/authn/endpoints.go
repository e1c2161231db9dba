package authn

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Identity is a principal known to the emulator: a managed identity (served by the MSI endpoint), a
// service principal (served by the token endpoint, authenticated by certificate), or both.
type Identity struct {
	// Name is a friendly name, used in logs and as the token's app_displayname.
	Name string
	// ClientID is the application (client) id: appid/azp in tokens, client_id in requests.
	ClientID string
	// ObjectID is the principal's object id: oid/sub in tokens.
	ObjectID string
	// Managed marks a managed identity, served by the MSI endpoint.
	Managed bool
	// System marks the system-assigned managed identity, used when an MSI request names no
	// client_id, object_id or mi_res_id. It implies Managed.
	System bool
	// ResourceID is a user-assigned identity's Azure resource id, matched against mi_res_id (optional).
	ResourceID string
	// Certificates are a service principal's registered certificates: a client assertion must be
	// signed by the private key of one of them.
	Certificates []*x509.Certificate
}

// Directory supplies the identities the endpoints serve.
type Directory interface {
	// Identities returns a snapshot of the known identities. It is called once per token request.
	Identities() []Identity
}

// Endpoints configures the emulator's identity endpoints; Handler serves them.
type Endpoints struct {
	// Issuer mints the access tokens. Required.
	Issuer *Issuer
	// Directory lists the identities; nil means none.
	Directory Directory
	// TenantID is the only tenant the authority serves (tid of every token). Other tenants in a path get
	// 400 with an AADSTS90002 error. Empty accepts any tenant and uses the one in the path.
	TenantID string
	// IdentityHeader is the value the MSI endpoint requires in X-IDENTITY-HEADER (IDENTITY_HEADER on
	// the client). Empty accepts any non-empty value.
	IdentityHeader string
	// TokenLifetime is the lifetime of issued tokens; zero or negative means one hour.
	TokenLifetime time.Duration
	// Now is the wall clock; nil means time.Now.
	Now func() time.Time
	// Log receives one record per token request; nil discards. Tokens and assertions are never logged.
	Log *slog.Logger
}

const (
	msiAPIVersion       = "2019-08-01"
	jwtBearerType       = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	maxTokenRequestBody = 64 << 10
	assertionNBFLeeway  = 5 * time.Minute // Entra ID tolerates client clock skew
)

// Handler returns the HTTP handler for the identity endpoints:
//
//	GET  /msi/token                                      App Service managed identity (api-version 2019-08-01)
//	GET  /{tenant}/v2.0/.well-known/openid-configuration OpenID configuration, URLs on the request's host
//	GET  /common/discovery/instance                      Entra ID instance discovery
//	POST /{tenant}/oauth2/v2.0/token                     client_credentials with a certificate client assertion
//
// Other paths get 404, other methods on these paths 405. The managed-identity endpoint works over
// plain HTTP (as App Service's does); the authority endpoints must be served over HTTPS, which MSAL
// requires. The handler reads the Endpoints fields on every request.
func (e *Endpoints) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /msi/token", e.serveMSI)
	mux.HandleFunc("GET /common/discovery/instance", e.serveInstanceDiscovery)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", e.serveOpenIDConfiguration)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", e.serveToken)
	return mux
}

func (e *Endpoints) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Endpoints) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (e *Endpoints) lifetime() time.Duration {
	if e.TokenLifetime > 0 {
		return e.TokenLifetime
	}
	return time.Hour
}

func (e *Endpoints) identities() []Identity {
	if e.Directory == nil {
		return nil
	}
	return e.Directory.Identities()
}

// tenantOK reports whether the authority serves tenant.
func (e *Endpoints) tenantOK(tenant string) bool {
	return e.TenantID == "" || strings.EqualFold(tenant, e.TenantID)
}

// tokenTenant is the tid of tokens issued for a request naming tenant.
func (e *Endpoints) tokenTenant(tenant string) string {
	if e.TenantID != "" {
		return e.TenantID
	}
	return tenant
}

// ---- App Service managed identity ----

// serveMSI implements the App Service managed-identity protocol (api-version 2019-08-01).
func (e *Endpoints) serveMSI(w http.ResponseWriter, r *http.Request) {
	log := e.log().With("endpoint", "msi")
	fail := func(status int, msg string) {
		log.Warn("managed identity token request rejected", "status", status, "reason", msg)
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg, "correlationId": newUUID()})
	}
	got := r.Header.Get("X-Identity-Header")
	if got == "" {
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing.")
		return
	}
	if e.IdentityHeader != "" && subtle.ConstantTimeCompare([]byte(got), []byte(e.IdentityHeader)) != 1 {
		fail(http.StatusUnauthorized, "The X-IDENTITY-HEADER header does not match IDENTITY_HEADER.")
		return
	}
	q := r.URL.Query()
	if v := q.Get("api-version"); v != msiAPIVersion {
		fail(http.StatusBadRequest, fmt.Sprintf("The api-version query parameter must be %s, got %q.", msiAPIVersion, v))
		return
	}
	resource := q.Get("resource")
	if resource == "" {
		fail(http.StatusBadRequest, "The resource query parameter is required.")
		return
	}
	id, msg := selectManagedIdentity(e.identities(), q)
	if id == nil {
		fail(http.StatusBadRequest, msg)
		return
	}
	token, expires, ok := e.issue(w, log, *id, resource, e.TenantID, e.now())
	if !ok {
		return
	}
	log.Info("managed identity token issued", "identity", id.Name, "client_id", id.ClientID, "resource", resource,
		"expires", expires.UTC().Format(time.RFC3339))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{
		"access_token": token,
		"expires_on":   strconv.FormatInt(expires.Unix(), 10),
		"resource":     resource,
		"token_type":   "Bearer",
		"client_id":    id.ClientID,
	})
}

// selectManagedIdentity picks the identity an MSI request names (client_id, object_id or
// principal_id, mi_res_id or msi_res_id), or the system-assigned one when it names none. On failure
// it returns nil and App Service's message.
func selectManagedIdentity(ids []Identity, q url.Values) (*Identity, string) {
	clientID := q.Get("client_id")
	objectID := firstNonEmpty(q.Get("object_id"), q.Get("principal_id"))
	resID := firstNonEmpty(q.Get("mi_res_id"), q.Get("msi_res_id"))
	named := 0
	for _, v := range []string{clientID, objectID, resID} {
		if v != "" {
			named++
		}
	}
	if named > 1 {
		return nil, "Only one of client_id, object_id and mi_res_id may be specified."
	}
	for i := range ids {
		id := &ids[i]
		if !id.Managed && !id.System {
			continue
		}
		switch {
		case clientID != "":
			if strings.EqualFold(id.ClientID, clientID) {
				return id, ""
			}
		case objectID != "":
			if strings.EqualFold(id.ObjectID, objectID) {
				return id, ""
			}
		case resID != "":
			if id.ResourceID != "" && strings.EqualFold(strings.TrimSuffix(id.ResourceID, "/"), strings.TrimSuffix(resID, "/")) {
				return id, ""
			}
		default:
			if id.System {
				return id, ""
			}
		}
	}
	return nil, "Unable to load the proper Managed Identity."
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// issue mints a token for id; on failure it answers 500 and returns ok == false.
func (e *Endpoints) issue(w http.ResponseWriter, log *slog.Logger, id Identity, audience, tenant string, now time.Time) (token string, expires time.Time, ok bool) {
	if e.Issuer == nil {
		log.Error("no token issuer configured")
		http.Error(w, "no token issuer configured", http.StatusInternalServerError)
		return "", time.Time{}, false
	}
	p := Principal{ObjectID: id.ObjectID, ClientID: id.ClientID, TenantID: tenant, Name: id.Name}
	token, expires, err := e.Issuer.Issue(p, audience, e.lifetime(), now)
	if err != nil {
		log.Error("cannot issue token", "identity", id.Name, "err", err)
		http.Error(w, "cannot issue token", http.StatusInternalServerError)
		return "", time.Time{}, false
	}
	return token, expires, true
}

// ---- Entra ID authority ----

// baseURL is the scheme and host the request reached.
func baseURL(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// serveOpenIDConfiguration answers MSAL's tenant discovery. The issuer is on the request's own host,
// as MSAL requires (issuer host == authority host).
func (e *Endpoints) serveOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !e.tenantOK(tenant) {
		e.aadFail(w, r, &aadError{http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf(
			"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. This emulator serves tenant '%s' only.", tenant, e.TenantID)})
		return
	}
	base := baseURL(r) + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
		"grant_types_supported":                 []string{"client_credentials"},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"request_uri_parameter_supported":       false,
		"tenant_region_scope":                   "local",
		"cloud_instance_name":                   "kvrotator.localhost",
	})
}

// serveInstanceDiscovery answers Entra ID instance discovery for an authority on this host (only
// reached by clients that send discovery to this host, e.g. through a hosts-file entry for
// login.microsoftonline.com; clients normally set DisableInstanceDiscovery).
func (e *Endpoints) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	authz := r.URL.Query().Get("authorization_endpoint")
	scheme, host, tenant := "https", r.Host, "{tenant}"
	if authz != "" {
		u, err := url.Parse(authz)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			e.aadFail(w, r, &aadError{http.StatusBadRequest, "invalid_instance", 50049, "Unknown or invalid instance."})
			return
		}
		scheme, host = u.Scheme, u.Host
		if first, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/"); first != "" {
			tenant = first
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": scheme + "://" + host + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host,
			"preferred_cache":   host,
			"aliases":           []string{host},
		}},
	})
}

// serveToken implements the v2.0 token endpoint for the client_credentials grant with a certificate
// client assertion.
func (e *Endpoints) serveToken(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	if !e.tenantOK(tenant) {
		e.aadFail(w, r, &aadError{http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf(
			"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. This emulator serves tenant '%s' only.", tenant, e.TenantID)})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBody)
	if err := r.ParseForm(); err != nil {
		e.aadFail(w, r, &aadError{http.StatusBadRequest, "invalid_request", 9002313, "Invalid request. Request is malformed or invalid."})
		return
	}
	form := r.PostForm
	for _, p := range []string{"grant_type", "client_id"} {
		if form.Get(p) == "" {
			e.aadFail(w, r, missingParameter(p))
			return
		}
	}
	if gt := form.Get("grant_type"); gt != "client_credentials" {
		e.aadFail(w, r, &aadError{http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf(
			"The app requested an unsupported grant type '%s'. This emulator supports client_credentials only.", gt)})
		return
	}
	clientID := form.Get("client_id")
	var id *Identity
	ids := e.identities()
	for i := range ids {
		if ids[i].ClientID != "" && strings.EqualFold(ids[i].ClientID, clientID) {
			id = &ids[i]
			break
		}
	}
	if id == nil {
		e.aadFail(w, r, &aadError{http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf(
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, e.tokenTenant(tenant))})
		return
	}
	if form.Get("client_secret") != "" {
		e.aadFail(w, r, &aadError{http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf(
			"Invalid client secret provided. The kvrotator emulator does not accept client secrets: app '%s' must authenticate with a certificate (client_assertion).", clientID)})
		return
	}
	assertion := form.Get("client_assertion")
	if assertion == "" {
		e.aadFail(w, r, &aadError{http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'."})
		return
	}
	if t := form.Get("client_assertion_type"); t != jwtBearerType {
		e.aadFail(w, r, &aadError{http.StatusBadRequest, "invalid_request", 9002313, fmt.Sprintf(
			"Invalid request. Request is malformed or invalid. client_assertion_type must be '%s'.", jwtBearerType)})
		return
	}
	base := baseURL(r) + "/" + tenant
	now := e.now()
	if aerr := verifyAssertion(assertion, *id, []string{base + "/oauth2/v2.0/token", base + "/oauth2/token"}, now); aerr != nil {
		e.aadFail(w, r, aerr)
		return
	}
	audience, aerr := scopeAudience(form.Get("scope"))
	if aerr != nil {
		e.aadFail(w, r, aerr)
		return
	}
	log := e.log().With("endpoint", "oauth2")
	token, expires, ok := e.issue(w, log, *id, audience, e.tokenTenant(tenant), now)
	if !ok {
		return
	}
	log.Info("service principal token issued", "identity", id.Name, "client_id", id.ClientID, "audience", audience,
		"expires", expires.UTC().Format(time.RFC3339))
	secs := int64(expires.Sub(now) / time.Second)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"access_token":   token,
	})
}

// scopeAudience turns a client-credentials scope list into the token audience: the first scope
// ending in "/.default", without that suffix.
func scopeAudience(scope string) (string, *aadError) {
	if strings.TrimSpace(scope) == "" {
		return "", missingParameter("scope")
	}
	for _, s := range strings.Fields(scope) {
		if aud, ok := strings.CutSuffix(s, "/.default"); ok && aud != "" {
			return aud, nil
		}
	}
	return "", &aadError{http.StatusBadRequest, "invalid_scope", 1002012, fmt.Sprintf(
		"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)}
}

// verifyAssertion checks a client assertion: signed (PS256 or RS256) by one of id's certificates,
// selected by the x5t#S256 or x5t header; iss == sub == id.ClientID; aud one of audiences; exp after
// now, nbf not after now (5 minutes' skew); the certificate valid at now.
func verifyAssertion(assertion string, id Identity, audiences []string, now time.Time) *aadError {
	var (
		cert      *x509.Certificate
		thumb     string
		keyReason string
		claims    jwt.RegisteredClaims
		invalid   = func(num int, msg string) *aadError {
			return &aadError{http.StatusUnauthorized, "invalid_client", num, msg}
		}
	)
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"PS256", "RS256"}), jwt.WithoutClaimsValidation())
	_, err := parser.ParseWithClaims(assertion, &claims, func(t *jwt.Token) (any, error) {
		cert, thumb, keyReason = findCertificate(t.Header, id.Certificates)
		if keyReason != "" {
			return nil, errors.New("no matching certificate")
		}
		return cert.PublicKey, nil
	})
	switch {
	case keyReason != "":
		return invalid(700027, fmt.Sprintf(
			"Client assertion contains an invalid signature. [Reason - %s, Thumbprint of key used by client: '%s', Register the certificate on identity '%s' (app Id '%s') in the emulator configuration.]",
			keyReason, thumb, id.Name, id.ClientID))
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid(50027, "JWT token is invalid or malformed.")
	case err != nil && cert == nil:
		return invalid(700027, "Client assertion contains an invalid signature. [Reason - The signing algorithm is not supported: use PS256 or RS256.]")
	case err != nil:
		return invalid(700027, fmt.Sprintf(
			"Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s']",
			thumb, cert.NotBefore.UTC().Format("01/02/2006 15:04:05"), cert.NotAfter.UTC().Format("01/02/2006 15:04:05")))
	}
	if !strings.EqualFold(claims.Issuer, id.ClientID) || !strings.EqualFold(claims.Subject, id.ClientID) {
		return invalid(700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
	}
	if !audienceMatches(claims.Audience, audiences) {
		return invalid(50013, fmt.Sprintf("Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '%s' and the expected audience is '%s'.",
			strings.Join(claims.Audience, " "), audiences[0]))
	}
	if claims.ExpiresAt == nil {
		return invalid(50027, "JWT token is invalid or malformed. The client assertion has no exp claim.")
	}
	timeErr := func() *aadError {
		from := "(none)"
		if claims.NotBefore != nil {
			from = claims.NotBefore.UTC().Format(time.RFC3339)
		}
		return invalid(700024, fmt.Sprintf("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s.",
			now.UTC().Format(time.RFC3339), from, claims.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if !now.Before(claims.ExpiresAt.Time) {
		return timeErr()
	}
	if claims.NotBefore != nil && now.Add(assertionNBFLeeway).Before(claims.NotBefore.Time) {
		return timeErr()
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return invalid(700027, fmt.Sprintf("Client assertion failed signature validation. [Reason - The key used is expired or not yet valid., Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s']",
			thumb, cert.NotBefore.UTC().Format("01/02/2006 15:04:05"), cert.NotAfter.UTC().Format("01/02/2006 15:04:05")))
	}
	return nil
}

// findCertificate selects the certificate named by the assertion header's x5t#S256 (SHA-256) or x5t
// (SHA-1) thumbprint, base64 in any of the standard or URL alphabets. thumb is the thumbprint in
// upper-case hex, for error messages; reason is set when no certificate matches.
func findCertificate(header map[string]any, certs []*x509.Certificate) (cert *x509.Certificate, thumb, reason string) {
	var sum func([]byte) []byte
	raw, _ := header["x5t#S256"].(string)
	if raw != "" {
		sum = func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
	} else if raw, _ = header["x5t"].(string); raw != "" {
		sum = func(b []byte) []byte { s := sha1.Sum(b); return s[:] }
	} else {
		return nil, "", "The client assertion has no x5t#S256 or x5t header."
	}
	want, ok := decodeBase64Any(raw)
	if !ok {
		return nil, "", "The x5t thumbprint is not valid base64."
	}
	thumb = strings.ToUpper(hex.EncodeToString(want))
	for _, c := range certs {
		if c != nil && subtle.ConstantTimeCompare(sum(c.Raw), want) == 1 {
			return c, thumb, ""
		}
	}
	return nil, thumb, "The key was not found."
}

// decodeBase64Any decodes s as standard or URL base64, padded or not.
func decodeBase64Any(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// ---- errors and helpers ----

// aadError is an Entra ID (AADSTS) error response.
type aadError struct {
	status int
	code   string // OAuth error code: invalid_client, invalid_request…
	num    int    // AADSTS number
	desc   string // description without the "AADSTSnnn: " prefix
}

func missingParameter(p string) *aadError {
	return &aadError{http.StatusBadRequest, "invalid_request", 900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", p)}
}

// aadFail writes err in Entra ID's error shape and logs it (never the request's credentials).
func (e *Endpoints) aadFail(w http.ResponseWriter, r *http.Request, err *aadError) {
	traceID := newUUID()
	correlationID := r.Header.Get("client-request-id")
	if !isUUID(correlationID) {
		correlationID = newUUID()
	}
	ts := e.now().UTC().Format("2006-01-02 15:04:05Z")
	e.log().Warn("identity request rejected", "endpoint", "oauth2", "path", r.URL.Path, "client_id", r.PostForm.Get("client_id"),
		"status", err.status, "error", err.code, "aadsts", err.num, "reason", err.desc)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("x-ms-request-id", traceID)
	writeJSON(w, err.status, map[string]any{
		"error": err.code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			err.num, err.desc, traceID, correlationID, ts),
		"error_codes":    []int{err.num},
		"timestamp":      ts,
		"trace_id":       traceID,
		"correlation_id": correlationID,
		"error_uri":      baseURL(r) + "/error?code=" + strconv.Itoa(err.num),
	})
}

// writeJSON writes v as a JSON response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "cannot encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// isUUID reports whether s has the 8-4-4-4-12 hex form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
				return false
			}
		}
	}
	return true
}
