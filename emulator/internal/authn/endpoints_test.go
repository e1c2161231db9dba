package authn

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// doJSON sends req with client and decodes a JSON answer.
func doJSON(t *testing.T, client *http.Client, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", req.Method, req.URL.Path, body, err)
		}
	}
	return resp.StatusCode, m
}

func msiRequest(t *testing.T, base string, query url.Values, header string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/msi/token?"+query.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set("x-identity-header", header) // any case
	}
	return req
}

func TestMSIEndpointProtocol(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	f.endpoint.Log = slog.New(slog.NewTextHandler(&logs, nil))
	fixedNow := time.Unix(1_900_000_000, 0)
	f.endpoint.Now = func() time.Time { return fixedNow }
	f.endpoint.TokenLifetime = 2 * time.Hour
	srv := httptest.NewServer(f.endpoint.Handler())
	defer srv.Close()
	c := srv.Client()

	q := url.Values{"api-version": {"2019-08-01"}, "resource": {"https://vault.azure.net"}, "client_id": {userClientID}}
	status, m := doJSON(t, c, msiRequest(t, srv.URL, q, testIdentityHeader))
	if status != http.StatusOK {
		t.Fatalf("status %d, body %v", status, m)
	}
	wantExp := strconv.FormatInt(fixedNow.Add(2*time.Hour).Unix(), 10)
	if m["expires_on"] != wantExp || m["resource"] != "https://vault.azure.net" || m["token_type"] != "Bearer" || m["client_id"] != userClientID {
		t.Errorf("response fields: expires_on %v (want %s), resource %v, token_type %v, client_id %v", m["expires_on"], wantExp, m["resource"], m["token_type"], m["client_id"])
	}
	token, _ := m["access_token"].(string)
	p, err := f.issuer.Validate(token, []string{"https://vault.azure.net"}, fixedNow)
	if err != nil || p.ObjectID != userObjectID {
		t.Errorf("Validate: %+v, %v", p, err)
	}
	if strings.Contains(logs.String(), strings.Split(token, ".")[2]) {
		t.Error("the log contains the token")
	}

	for _, tc := range []struct {
		name   string
		query  url.Values
		header string
		status int
	}{
		{"no header", q, "", http.StatusUnauthorized},
		{"wrong header", q, "nope", http.StatusUnauthorized},
		{"no api-version", url.Values{"resource": {"r"}}, testIdentityHeader, http.StatusBadRequest},
		{"old api-version", url.Values{"api-version": {"2017-09-01"}, "resource": {"r"}}, testIdentityHeader, http.StatusBadRequest},
		{"no resource", url.Values{"api-version": {"2019-08-01"}}, testIdentityHeader, http.StatusBadRequest},
		{"unknown client_id", url.Values{"api-version": {"2019-08-01"}, "resource": {"r"}, "client_id": {"nope"}}, testIdentityHeader, http.StatusBadRequest},
		{"service principal is not managed", url.Values{"api-version": {"2019-08-01"}, "resource": {"r"}, "client_id": {spClientID}}, testIdentityHeader, http.StatusBadRequest},
		{"two selectors", url.Values{"api-version": {"2019-08-01"}, "resource": {"r"}, "client_id": {userClientID}, "object_id": {userObjectID}}, testIdentityHeader, http.StatusBadRequest},
	} {
		status, m := doJSON(t, c, msiRequest(t, srv.URL, tc.query, tc.header))
		if status != tc.status || m["message"] == nil || m["statusCode"] != float64(tc.status) {
			t.Errorf("%s: status %d body %v, want %d with App Service's error shape", tc.name, status, m, tc.status)
		}
	}

	// Selection by principal_id / msi_res_id aliases, and the system identity by default.
	for _, sel := range []url.Values{{"principal_id": {userObjectID}}, {"msi_res_id": {userResID}}, {"mi_res_id": {strings.ToUpper(userResID)}}} {
		sel.Set("api-version", "2019-08-01")
		sel.Set("resource", "r")
		if status, m := doJSON(t, c, msiRequest(t, srv.URL, sel, testIdentityHeader)); status != http.StatusOK || m["client_id"] != userClientID {
			t.Errorf("select %v: status %d, client_id %v", sel, status, m["client_id"])
		}
	}

	// Any non-empty header value is accepted when IdentityHeader is empty.
	f.endpoint.IdentityHeader = ""
	q.Del("client_id")
	if status, m := doJSON(t, c, msiRequest(t, srv.URL, q, "anything")); status != http.StatusOK || m["client_id"] != sysClientID {
		t.Errorf("open header: status %d, client_id %v", status, m["client_id"])
	}
	if status, _ := doJSON(t, c, msiRequest(t, srv.URL, q, "")); status != http.StatusUnauthorized {
		t.Errorf("open header, none sent: status %d, want 401", status)
	}

	// No system identity.
	f.endpoint.Directory = staticDirectory{f.dir[1]}
	if status, _ := doJSON(t, c, msiRequest(t, srv.URL, q, "x")); status != http.StatusBadRequest {
		t.Errorf("no system identity: status %d, want 400", status)
	}
}

func TestAuthorityDiscovery(t *testing.T) {
	f := newFixture(t)
	srv := newTLSServer(t, f.ca, f.endpoint.Handler())
	c := NewClient(f.ca.CertPool())
	defer c.CloseIdleConnections()
	get := func(path string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		return doJSON(t, c, req)
	}

	status, m := get("/" + testTenant + "/v2.0/.well-known/openid-configuration")
	if status != http.StatusOK {
		t.Fatalf("openid-configuration: %d %v", status, m)
	}
	base := srv.URL + "/" + testTenant
	if m["issuer"] != base+"/v2.0" || m["token_endpoint"] != base+"/oauth2/v2.0/token" || m["authorization_endpoint"] != base+"/oauth2/v2.0/authorize" {
		t.Errorf("openid-configuration endpoints: %v", m)
	}
	// Upper-case tenant ids are the same tenant.
	if status, _ := get("/" + strings.ToUpper(testTenant) + "/v2.0/.well-known/openid-configuration"); status != http.StatusOK {
		t.Errorf("upper-case tenant: %d", status)
	}
	status, m = get("/other-tenant/v2.0/.well-known/openid-configuration")
	if status != http.StatusBadRequest || m["error"] != "invalid_tenant" || !strings.HasPrefix(m["error_description"].(string), "AADSTS90002:") {
		t.Errorf("other tenant: %d %v", status, m)
	}
	if codes, _ := m["error_codes"].([]any); len(codes) != 1 || codes[0] != float64(90002) {
		t.Errorf("error_codes = %v", m["error_codes"])
	}

	authz := url.QueryEscape(srv.URL + "/" + testTenant + "/oauth2/v2.0/authorize")
	status, m = get("/common/discovery/instance?api-version=1.1&authorization_endpoint=" + authz)
	if status != http.StatusOK || m["tenant_discovery_endpoint"] != base+"/v2.0/.well-known/openid-configuration" {
		t.Errorf("instance discovery: %d %v", status, m)
	}
	host := strings.TrimPrefix(srv.URL, "https://")
	if md, _ := m["metadata"].([]any); len(md) != 1 || md[0].(map[string]any)["preferred_network"] != host {
		t.Errorf("instance discovery metadata: %v", m["metadata"])
	}
	status, m = get("/common/discovery/instance?api-version=1.1&authorization_endpoint=" + url.QueryEscape("https://evil.example/t/oauth2/v2.0/authorize"))
	if status != http.StatusBadRequest || m["error"] != "invalid_instance" {
		t.Errorf("foreign instance: %d %v", status, m)
	}

	for path, want := range map[string]int{"/nope": 404, "/msi": 404, "/" + testTenant + "/oauth2/v2.0/authorize": 404} {
		if status, _ := get(path); status != want {
			t.Errorf("GET %s: %d, want %d", path, status, want)
		}
	}
}

// assertion builds a client assertion the way MSAL does, with overrides.
type assertion struct {
	alg      jwt.SigningMethod
	thumbKey string // "x5t#S256", "x5t" or "" (none)
	claims   jwt.MapClaims
}

func (a assertion) sign(t *testing.T, cert *x509.Certificate, key *rsa.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(a.alg, a.claims)
	tok.Header = map[string]any{"alg": a.alg.Alg(), "typ": "JWT"}
	switch a.thumbKey {
	case "x5t#S256":
		s := sha256.Sum256(cert.Raw)
		tok.Header[a.thumbKey] = base64.StdEncoding.EncodeToString(s[:])
	case "x5t":
		s := sha1.Sum(cert.Raw)
		tok.Header[a.thumbKey] = base64.RawURLEncoding.EncodeToString(s[:])
	}
	var signKey any = key
	if a.alg == jwt.SigningMethodHS256 {
		signKey = []byte("shared")
	}
	s, err := tok.SignedString(signKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	f.endpoint.Log = slog.New(slog.NewTextHandler(&logs, nil))
	srv := newTLSServer(t, f.ca, f.endpoint.Handler())
	c := NewClient(f.ca.CertPool())
	defer c.CloseIdleConnections()
	tokenURL := srv.URL + "/" + testTenant + "/oauth2/v2.0/token"
	now := time.Now()
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		m := jwt.MapClaims{"aud": tokenURL, "iss": spClientID, "sub": spClientID, "jti": "j",
			"nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		if mod != nil {
			mod(m)
		}
		return m
	}
	post := func(form url.Values) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return doJSON(t, c, req)
	}
	form := func(assertion string, mod func(url.Values)) url.Values {
		v := url.Values{
			"grant_type": {"client_credentials"}, "client_id": {spClientID},
			"scope":                 {"https://vault.azure.net/.default openid offline_access profile"},
			"client_assertion_type": {jwtBearerType}, "client_assertion": {assertion},
		}
		if mod != nil {
			mod(v)
		}
		return v
	}

	good := assertion{jwt.SigningMethodPS256, "x5t#S256", claims(nil)}
	for name, a := range map[string]assertion{
		"PS256 x5t#S256": good,
		"RS256 x5t":      {jwt.SigningMethodRS256, "x5t", claims(nil)},
		"v1 audience":    {jwt.SigningMethodPS256, "x5t#S256", claims(func(m jwt.MapClaims) { m["aud"] = srv.URL + "/" + testTenant + "/oauth2/token" })},
	} {
		signed := a.sign(t, f.spCert, f.spKey)
		status, m := post(form(signed, nil))
		if status != http.StatusOK {
			t.Errorf("%s: status %d, %v", name, status, m)
			continue
		}
		if m["token_type"] != "Bearer" || m["expires_in"] != float64(3600) && m["expires_in"] != float64(3599) || m["ext_expires_in"] == nil {
			t.Errorf("%s: response %v", name, m)
		}
		tok, _ := m["access_token"].(string)
		if _, err := f.issuer.Validate(tok, []string{"https://vault.azure.net"}, time.Now()); err != nil {
			t.Errorf("%s: token does not validate: %v", name, err)
		}
		if strings.Contains(logs.String(), strings.Split(signed, ".")[2]) || strings.Contains(logs.String(), strings.Split(tok, ".")[2]) {
			t.Errorf("%s: the log contains the assertion or the token", name)
		}
	}

	// Scope to audience: the first scope ending in /.default.
	status, m := post(form(good.sign(t, f.spCert, f.spKey), func(v url.Values) { v.Set("scope", "openid https://localhost:8443/.default") }))
	if status != http.StatusOK {
		t.Fatalf("custom scope: %d %v", status, m)
	}
	if _, err := f.issuer.Validate(m["access_token"].(string), []string{"https://localhost:8443"}, time.Now()); err != nil {
		t.Errorf("custom scope: %v", err)
	}

	other, otherKey := newSPCert(t, "other")
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		err    string
		code   int
	}{
		{"unregistered certificate", form(good.sign(t, other, otherKey), nil), 401, "invalid_client", 700027},
		{"thumbprint of ours, key of another", form(func() string {
			// Header names our certificate but the signature comes from another key.
			s := good.sign(t, f.spCert, f.spKey)
			o := good.sign(t, f.spCert, otherKey)
			return s[:strings.LastIndex(s, ".")] + o[strings.LastIndex(o, "."):]
		}(), nil), 401, "invalid_client", 700027},
		{"no thumbprint", form(assertion{jwt.SigningMethodPS256, "", claims(nil)}.sign(t, f.spCert, f.spKey), nil), 401, "invalid_client", 700027},
		{"HS256", form(assertion{jwt.SigningMethodHS256, "x5t#S256", claims(nil)}.sign(t, f.spCert, f.spKey), nil), 401, "invalid_client", 700027},
		{"wrong audience", form(assertion{jwt.SigningMethodPS256, "x5t#S256", claims(func(m jwt.MapClaims) {
			m["aud"] = "https://login.microsoftonline.com/" + testTenant + "/oauth2/v2.0/token"
		})}.sign(t, f.spCert, f.spKey), nil), 401, "invalid_client", 50013},
		{"issuer mismatch", form(assertion{jwt.SigningMethodPS256, "x5t#S256", claims(func(m jwt.MapClaims) { m["iss"] = userClientID })}.sign(t, f.spCert, f.spKey), nil), 401, "invalid_client", 700021},
		{"subject mismatch", form(assertion{jwt.SigningMethodPS256, "x5t#S256", claims(func(m jwt.MapClaims) { m["sub"] = userClientID })}.sign(t, f.spCert, f.spKey), nil), 401, "invalid_client", 700021},
		{"expired", form(assertion{jwt.SigningMethodPS256, "x5t#S256", claims(func(m jwt.MapClaims) { m["exp"] = now.Add(-time.Second).Unix() })}.sign(t, f.spCert, f.spKey), nil), 401, "invalid_client", 700024},
		{"not yet valid", form(assertion{jwt.SigningMethodPS256, "x5t#S256", claims(func(m jwt.MapClaims) { m["nbf"] = now.Add(time.Hour).Unix(); m["exp"] = now.Add(2 * time.Hour).Unix() })}.sign(t, f.spCert, f.spKey), nil), 401, "invalid_client", 700024},
		{"no exp", form(assertion{jwt.SigningMethodPS256, "x5t#S256", claims(func(m jwt.MapClaims) { delete(m, "exp") })}.sign(t, f.spCert, f.spKey), nil), 401, "invalid_client", 50027},
		{"garbage assertion", form("not.a.jwt", nil), 401, "invalid_client", 50027},
		{"client secret", form("", func(v url.Values) { v.Del("client_assertion"); v.Set("client_secret", "s3cret") }), 401, "invalid_client", 7000215},
		{"no credential", form("", func(v url.Values) { v.Del("client_assertion") }), 401, "invalid_client", 7000218},
		{"bad assertion type", form(good.sign(t, f.spCert, f.spKey), func(v url.Values) { v.Set("client_assertion_type", "saml") }), 400, "invalid_request", 9002313},
		{"unknown client", form(good.sign(t, f.spCert, f.spKey), func(v url.Values) { v.Set("client_id", "nobody") }), 400, "unauthorized_client", 700016},
		{"no client_id", form(good.sign(t, f.spCert, f.spKey), func(v url.Values) { v.Del("client_id") }), 400, "invalid_request", 900144},
		{"no grant_type", form(good.sign(t, f.spCert, f.spKey), func(v url.Values) { v.Del("grant_type") }), 400, "invalid_request", 900144},
		{"password grant", form(good.sign(t, f.spCert, f.spKey), func(v url.Values) { v.Set("grant_type", "password") }), 400, "unsupported_grant_type", 70003},
		{"no scope", form(good.sign(t, f.spCert, f.spKey), func(v url.Values) { v.Del("scope") }), 400, "invalid_request", 900144},
		{"scope without /.default", form(good.sign(t, f.spCert, f.spKey), func(v url.Values) { v.Set("scope", "https://vault.azure.net/user_impersonation") }), 400, "invalid_scope", 1002012},
	} {
		status, m := post(tc.form)
		desc, _ := m["error_description"].(string)
		if status != tc.status || m["error"] != tc.err || !strings.HasPrefix(desc, "AADSTS"+strconv.Itoa(tc.code)+":") {
			t.Errorf("%s: %d %v %q, want %d %s AADSTS%d", tc.name, status, m["error"], desc, tc.status, tc.err, tc.code)
		}
		if codes, _ := m["error_codes"].([]any); len(codes) != 1 || codes[0] != float64(tc.code) {
			t.Errorf("%s: error_codes %v", tc.name, m["error_codes"])
		}
		if m["trace_id"] == nil || m["correlation_id"] == nil || m["timestamp"] == nil {
			t.Errorf("%s: missing trace_id/correlation_id/timestamp: %v", tc.name, m)
		}
		if a := tc.form.Get("client_assertion"); a != "" && len(a) > 20 && strings.Contains(desc, a[len(a)-20:]) {
			t.Errorf("%s: error description echoes the assertion", tc.name)
		}
		if strings.Contains(desc, "s3cret") || strings.Contains(logs.String(), "s3cret") {
			t.Errorf("%s: the client secret leaked", tc.name)
		}
	}

	// Wrong tenant in the path; GET on the token endpoint.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/another/oauth2/v2.0/token", strings.NewReader(form(good.sign(t, f.spCert, f.spKey), nil).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, m := doJSON(t, c, req); status != 400 || !strings.HasPrefix(m["error_description"].(string), "AADSTS90002:") {
		t.Errorf("other tenant: %d %v", status, m)
	}
	req, _ = http.NewRequest(http.MethodGet, tokenURL, nil)
	if status, _ := doJSON(t, c, req); status != http.StatusMethodNotAllowed {
		t.Errorf("GET token endpoint: %d, want 405", status)
	}
	// An oversized body is rejected.
	req, _ = http.NewRequest(http.MethodPost, tokenURL, strings.NewReader("client_id="+strings.Repeat("a", 100<<10)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, _ := doJSON(t, c, req); status != 400 {
		t.Errorf("oversized body: %d, want 400", status)
	}

	// A certificate outside its validity period is refused even with a valid signature.
	f.endpoint.Now = func() time.Time { return f.spCert.NotAfter.Add(time.Minute) }
	late := assertion{jwt.SigningMethodPS256, "x5t#S256", jwt.MapClaims{"aud": tokenURL, "iss": spClientID, "sub": spClientID,
		"nbf": f.spCert.NotAfter.Unix(), "exp": f.spCert.NotAfter.Add(10 * time.Minute).Unix()}}
	if status, m := post(form(late.sign(t, f.spCert, f.spKey), nil)); status != 401 || !strings.HasPrefix(m["error_description"].(string), "AADSTS700027:") {
		t.Errorf("expired certificate: %d %v", status, m)
	}
}

func TestEndpointsWithoutTenantOrIssuer(t *testing.T) {
	f := newFixture(t)
	f.endpoint.TenantID = ""
	srv := newTLSServer(t, f.ca, f.endpoint.Handler())
	c := NewClient(f.ca.CertPool())
	defer c.CloseIdleConnections()
	// Any tenant is served and becomes the token's tid.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/anytenant/v2.0/.well-known/openid-configuration", nil)
	if status, _ := doJSON(t, c, req); status != http.StatusOK {
		t.Errorf("empty TenantID: openid-configuration %d", status)
	}
	// Without an issuer, token requests fail with 500 instead of panicking.
	f.endpoint.Issuer = nil
	q := url.Values{"api-version": {"2019-08-01"}, "resource": {"r"}}
	resp, err := c.Do(msiRequest(t, srv.URL, q, testIdentityHeader))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("no issuer: %d, want 500", resp.StatusCode)
	}
}
