package authn

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testPrincipal = Principal{ObjectID: userObjectID, ClientID: userClientID, TenantID: testTenant, Name: "rotator-mi"}

// checkNoToken fails if err's message contains the token or any of its parts.
func checkNoToken(t *testing.T, err error, token string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 && strings.Contains(msg, part) {
			t.Errorf("error message contains (part of) the token")
		}
	}
}

func TestIssueValidateRoundTrip(t *testing.T) {
	now := time.Now()
	tok, exp, err := sharedIssuer.Issue(testPrincipal, "https://vault.azure.net", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(now.Add(time.Hour).Unix(), 0); !exp.Equal(want) {
		t.Errorf("expires = %v, want %v", exp, want)
	}
	for _, aud := range [][]string{
		{"https://vault.azure.net"},
		{"https://vault.azure.net/"},
		{"https://other", "HTTPS://VAULT.AZURE.NET"},
	} {
		p, err := sharedIssuer.Validate(tok, aud, now.Add(59*time.Minute))
		if err != nil {
			t.Fatalf("Validate(%v): %v", aud, err)
		}
		if p != testPrincipal {
			t.Errorf("principal = %+v, want %+v", p, testPrincipal)
		}
	}

	// Header and claims have Entra ID's shape.
	parts := strings.Split(tok, ".")
	var hdr, claims map[string]any
	for i, v := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if hdr["alg"] != "RS256" || hdr["kid"] == "" || hdr["kid"] == nil {
		t.Errorf("header = %v", hdr)
	}
	want := map[string]any{
		"aud": "https://vault.azure.net", "iss": "https://sts.windows.net/" + testTenant + "/",
		"oid": userObjectID, "sub": userObjectID, "appid": userClientID, "azp": userClientID, "tid": testTenant, "ver": "1.0",
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	for _, k := range []string{"iat", "nbf", "exp"} {
		if _, ok := claims[k].(float64); !ok {
			t.Errorf("claim %s = %v, want a number", k, claims[k])
		}
	}

	if _, _, err := sharedIssuer.Issue(testPrincipal, "", time.Hour, now); err == nil {
		t.Error("Issue with an empty audience: no error")
	}
	if _, _, err := sharedIssuer.Issue(Principal{}, "https://vault.azure.net", time.Hour, now); err == nil {
		t.Error("Issue without an object id: no error")
	}
}

func TestValidateExpired(t *testing.T) {
	now := time.Now()
	tok, exp, err := sharedIssuer.Issue(testPrincipal, "https://vault.azure.net", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{exp, exp.Add(time.Second), exp.Add(24 * time.Hour)} {
		_, err = sharedIssuer.Validate(tok, []string{"https://vault.azure.net"}, at)
		if !errors.Is(err, ErrExpired) {
			t.Errorf("Validate at exp%+v: err = %v, want ErrExpired", at.Sub(exp), err)
		}
		checkNoToken(t, err, tok)
	}
	// A negative lifetime mints an already expired token.
	old, _, err := sharedIssuer.Issue(testPrincipal, "https://vault.azure.net", -time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sharedIssuer.Validate(old, []string{"https://vault.azure.net"}, now); !errors.Is(err, ErrExpired) {
		t.Errorf("negative lifetime: err = %v, want ErrExpired", err)
	}
	// Not yet valid (beyond the one-minute skew allowance).
	if _, err := sharedIssuer.Validate(tok, []string{"https://vault.azure.net"}, now.Add(-2*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("before nbf: err = %v, want ErrExpired", err)
	}
	if _, err := sharedIssuer.Validate(tok, []string{"https://vault.azure.net"}, now.Add(-30*time.Second)); err != nil {
		t.Errorf("30s before nbf: err = %v, want nil (skew allowance)", err)
	}
}

func TestValidateAudience(t *testing.T) {
	now := time.Now()
	tok, _, err := sharedIssuer.Issue(testPrincipal, "https://localhost:8443/", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sharedIssuer.Validate(tok, []string{"https://localhost:8443"}, now); err != nil {
		t.Errorf("trailing slash on the token side: %v", err)
	}
	for _, aud := range [][]string{{"https://vault.azure.net"}, {"https://localhost:8444"}, {}, {""}} {
		_, err := sharedIssuer.Validate(tok, aud, now)
		if !errors.Is(err, ErrAudience) {
			t.Errorf("Validate(%q): err = %v, want ErrAudience", aud, err)
		}
		checkNoToken(t, err, tok)
	}
}

func TestValidateForged(t *testing.T) {
	now := time.Now()
	other := NewIssuer(nil)
	forged, _, err := other.Issue(testPrincipal, "https://vault.azure.net", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sharedIssuer.Validate(forged, []string{"https://vault.azure.net"}, now)
	if !errors.Is(err, ErrSignature) {
		t.Fatalf("token from another issuer: err = %v, want ErrSignature", err)
	}
	checkNoToken(t, err, forged)

	// Tampered payload: our header and signature, altered claims.
	tok, _, _ := sharedIssuer.Issue(testPrincipal, "https://vault.azure.net", time.Hour, now)
	parts := strings.Split(tok, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	claims = []byte(strings.Replace(string(claims), userObjectID, sysObjectID, 1))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(claims) + "." + parts[2]
	if _, err := sharedIssuer.Validate(tampered, []string{"https://vault.azure.net"}, now); !errors.Is(err, ErrSignature) {
		t.Errorf("tampered claims: err = %v, want ErrSignature", err)
	}
}

func TestValidateRejectsOtherAlgorithms(t *testing.T) {
	now := time.Now()
	claims := jwt.MapClaims{
		"aud": "https://vault.azure.net", "oid": userObjectID, "appid": userClientID, "tid": testTenant,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// HS256 keyed with the issuer's public key: the classic algorithm-confusion forgery.
	pubDER, err := x509.MarshalPKIXPublicKey(&sharedIssuer.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pubDER)
	if err != nil {
		t.Fatal(err)
	}
	// PS256 with our own key is still not RS256.
	ps, err := jwt.NewWithClaims(jwt.SigningMethodPS256, claims).SignedString(sharedIssuer.key)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"none": none, "HS256": hs, "PS256": ps} {
		_, err := sharedIssuer.Validate(tok, []string{"https://vault.azure.net"}, now)
		if !errors.Is(err, ErrSignature) {
			t.Errorf("alg %s: err = %v, want ErrSignature", name, err)
		}
		checkNoToken(t, err, tok)
	}
}

func TestValidateMalformed(t *testing.T) {
	now := time.Now()
	b64 := base64.RawURLEncoding.EncodeToString
	header := b64([]byte(`{"alg":"RS256","typ":"JWT"}`))
	// Signed tokens missing required claims are malformed too.
	noOID, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"aud": "https://vault.azure.net", "exp": now.Add(time.Hour).Unix()}).SignedString(sharedIssuer.key)
	if err != nil {
		t.Fatal(err)
	}
	noExp, err := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"aud": "https://vault.azure.net", "oid": "x"}).SignedString(sharedIssuer.key)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{
		"empty":        "",
		"garbage":      "this is not a token",
		"two parts":    header + "." + b64([]byte(`{}`)),
		"bad base64":   header + ".!!!.sig",
		"bad json":     header + "." + b64([]byte(`{"aud":`)) + ".c2ln",
		"missing oid":  noOID,
		"missing exp":  noExp,
		"bad exp type": mustSign(t, jwt.MapClaims{"aud": "https://vault.azure.net", "oid": "x", "exp": "tomorrow"}),
	} {
		_, err := sharedIssuer.Validate(tok, []string{"https://vault.azure.net"}, now)
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
		checkNoToken(t, err, tok)
	}
}

func mustSign(t *testing.T, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, c).SignedString(sharedIssuer.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLoadOrCreateIssuer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	a, err := LoadOrCreateIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, TokenKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", st.Mode().Perm())
	}
	b, err := LoadOrCreateIssuer(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !a.key.Equal(b.key) || a.kid != b.kid {
		t.Error("second LoadOrCreateIssuer returned a different key")
	}
	now := time.Now()
	tok, _, err := a.Issue(testPrincipal, "https://vault.azure.net", time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Validate(tok, []string{"https://vault.azure.net"}, now); err != nil {
		t.Errorf("token from the first load fails with the second: %v", err)
	}

	mem, err := LoadOrCreateIssuer("")
	if err != nil {
		t.Fatal(err)
	}
	if mem.key.Equal(a.key) {
		t.Error("in-memory issuer reused the stored key")
	}

	// A non-RSA key is refused.
	bad := t.TempDir()
	ca, _ := NewCA()
	pemKey, _ := encodePrivateKey(ca.Key)
	if err := os.WriteFile(filepath.Join(bad, TokenKeyFile), pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIssuer(bad); err == nil {
		t.Error("LoadOrCreateIssuer accepted an ECDSA key")
	}
}
