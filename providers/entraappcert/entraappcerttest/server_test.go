package entraappcerttest_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/golang-jwt/jwt/v5"
	"github.com/kvrotator/kvrotator/providers/entraappcert/entraappcerttest"
)

type app struct {
	srv             *entraappcerttest.Server
	objectID, appID string
	cert            *x509.Certificate
	key             *rsa.PrivateKey
	keyID           string
	graphURL        string
}

func newApp(t *testing.T) *app {
	t.Helper()
	srv := entraappcerttest.NewServer()
	t.Cleanup(srv.Close)
	a := &app{srv: srv, graphURL: srv.URL + "/v1.0"}
	a.objectID, a.appID = srv.AddApp()
	a.cert, a.key = entraappcerttest.NewCertificate("by hand", time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour))
	a.keyID = srv.SeedKey(a.objectID, "by hand", a.cert)
	return a
}

// proof builds a proof of possession as Graph documents it, then lets change alter it.
func (a *app) proof(t *testing.T, signer *x509.Certificate, key *rsa.PrivateKey, change func(h map[string]any, c jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"aud": entraappcerttest.ProofAudience, "iss": a.objectID, "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	sum := sha1.Sum(signer.Raw)
	tok.Header["x5t"] = base64.RawURLEncoding.EncodeToString(sum[:])
	if change != nil {
		change(tok.Header, claims)
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *app) post(t *testing.T, path string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, a.graphURL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+a.srv.GraphToken)
	return do(t, a.srv.Client(), req)
}

func (a *app) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, a.graphURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.srv.GraphToken)
	return do(t, a.srv.Client(), req)
}

func do(t *testing.T, c *http.Client, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%d %s: %v", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, m
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func addKeyBody(cert *x509.Certificate, proof string) map[string]any {
	return map[string]any{"keyCredential": map[string]any{"type": "AsymmetricX509Cert", "usage": "Verify",
		"key": base64.StdEncoding.EncodeToString(cert.Raw), "displayName": "new"}, "passwordCredential": nil, "proof": proof}
}

func TestAddKeyChecksTheProof(t *testing.T) {
	a := newApp(t)
	newCert, _ := entraappcerttest.NewCertificate("new", time.Now().Add(-time.Minute), time.Now().Add(60*24*time.Hour))
	stranger, strangerKey := entraappcerttest.NewCertificate("stranger", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name  string
		proof string
	}{
		{"no proof", ""},
		{"Microsoft Graph's appId as aud", a.proof(t, a.cert, a.key, func(_ map[string]any, c jwt.MapClaims) { c["aud"] = "00000003-0000-0000-c000-000000000000" })},
		{"the client id as iss", a.proof(t, a.cert, a.key, func(_ map[string]any, c jwt.MapClaims) { c["iss"] = a.appID })},
		{"longer than 10 minutes", a.proof(t, a.cert, a.key, func(_ map[string]any, c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Hour).Unix() })},
		{"expired", a.proof(t, a.cert, a.key, func(_ map[string]any, c jwt.MapClaims) {
			c["nbf"], c["exp"] = time.Now().Add(-20*time.Minute).Unix(), time.Now().Add(-11*time.Minute).Unix()
		})},
		{"no x5t", a.proof(t, a.cert, a.key, func(h map[string]any, _ jwt.MapClaims) { delete(h, "x5t") })},
		{"signed by a certificate the application does not have", a.proof(t, stranger, strangerKey, nil)},
		{"x5t of the application's certificate, signed by another key", a.proof(t, a.cert, strangerKey, nil)},
		{"padded", a.proof(t, a.cert, a.key, nil) + "=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := a.post(t, "/applications/"+a.objectID+"/addKey", addKeyBody(newCert, tc.proof))
			if status != http.StatusUnauthorized || errCode(body) != "Authentication_MissingOrMalformed" {
				t.Fatalf("%d %v", status, body)
			}
			if n := len(a.srv.Keys(a.objectID)); n != 1 {
				t.Fatalf("%d keys", n)
			}
		})
	}
	t.Run("a documented proof", func(t *testing.T) {
		status, body := a.post(t, "/applications/"+a.objectID+"/addKey", addKeyBody(newCert, a.proof(t, a.cert, a.key, nil)))
		if status != http.StatusOK || body["keyId"] == "" || body["key"] != nil || body["customKeyIdentifier"] != entraappcerttest.Thumbprint(newCert) {
			t.Fatalf("%d %v", status, body)
		}
		if ps := a.srv.Proofs(); len(ps) != 1 || ps[0].Signer != entraappcerttest.Thumbprint(a.cert) || ps[0].Issuer != a.objectID {
			t.Fatalf("proofs %+v", ps)
		}
	})
	t.Run("a key that is not standard base64", func(t *testing.T) {
		body := addKeyBody(newCert, a.proof(t, a.cert, a.key, nil))
		body["keyCredential"].(map[string]any)["key"] = base64.RawURLEncoding.EncodeToString(newCert.Raw)
		if status, resp := a.post(t, "/applications/"+a.objectID+"/addKey", body); status != http.StatusBadRequest || !strings.Contains(resp["error"].(map[string]any)["message"].(string), "Edm.Binary") {
			t.Fatalf("%d %v", status, resp)
		}
	})
}

func TestListingAndRemoveKey(t *testing.T) {
	a := newApp(t)
	_, body := a.get(t, "/applications/"+a.objectID)
	kcs := body["keyCredentials"].([]any)
	if len(kcs) != 1 || kcs[0].(map[string]any)["key"] != nil {
		t.Fatalf("without $select the certificate is not listed: %v", kcs)
	}
	_, body = a.get(t, "/applications(appId='"+a.appID+"')?$select=id,keyCredentials")
	kc := body["keyCredentials"].([]any)[0].(map[string]any)
	if kc["key"] != base64.StdEncoding.EncodeToString(a.cert.Raw) || kc["keyId"] != a.keyID || body["appId"] != nil {
		t.Fatalf("with $select: %v", body)
	}
	status, resp := a.post(t, "/applications/"+a.objectID+"/removeKey", map[string]any{"keyId": "0a0a0a0a-0000-4000-8000-000000000001", "proof": a.proof(t, a.cert, a.key, nil)})
	if status != http.StatusNotFound || !strings.Contains(resp["error"].(map[string]any)["message"].(string), "No key credential found") {
		t.Fatalf("%d %v", status, resp)
	}
	// A key may sign its own removal: it is a current certificate of the application.
	if status, resp := a.post(t, "/applications/"+a.objectID+"/removeKey", map[string]any{"keyId": a.keyID, "proof": a.proof(t, a.cert, a.key, nil)}); status != http.StatusNoContent {
		t.Fatalf("%d %v", status, resp)
	}
	if len(a.srv.Keys(a.objectID)) != 0 {
		t.Fatal("not removed")
	}
}

// The token endpoint accepts azidentity's certificate credential (MSAL's PS256 assertion with
// x5t#S256) for a registered certificate, after SetPropagation's refusals, and refuses an unknown one
// with AADSTS700027.
func TestTokenEndpointWithAzidentity(t *testing.T) {
	a := newApp(t)
	cred := func(cert *x509.Certificate, key *rsa.PrivateKey) azcore.TokenCredential {
		c, err := azidentity.NewClientCertificateCredential(a.srv.TenantID, a.appID, []*x509.Certificate{cert}, key, &azidentity.ClientCertificateCredentialOptions{
			ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: a.srv.URL + "/"}, Transport: a.srv.Client(), Retry: policy.RetryOptions{MaxRetries: -1}},
			DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	scope := policy.TokenRequestOptions{Scopes: []string{"https://graph.microsoft.com/.default"}}
	if _, err := cred(a.cert, a.key).GetToken(context.Background(), scope); err != nil {
		t.Fatal(err)
	}
	if as := a.srv.Assertions(); len(as) != 1 || as[0].Alg != "PS256" || as[0].Signer != entraappcerttest.Thumbprint(a.cert) {
		t.Fatalf("assertions %+v", as)
	}
	stranger, strangerKey := entraappcerttest.NewCertificate("stranger", time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
	_, err := cred(stranger, strangerKey).GetToken(context.Background(), scope)
	var afe *azidentity.AuthenticationFailedError
	if err == nil || !strings.Contains(err.Error(), "AADSTS700027") || !errors.As(err, &afe) || afe.RawResponse.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %v", err)
	}
	// A certificate added through addKey is refused twice (propagation), then accepted.
	a.srv.SetPropagation(2)
	if status, body := a.post(t, "/applications/"+a.objectID+"/addKey", addKeyBody(stranger, a.proof(t, a.cert, a.key, nil))); status != http.StatusOK {
		t.Fatalf("%d %v", status, body)
	}
	for range 2 {
		if _, err := cred(stranger, strangerKey).GetToken(context.Background(), scope); err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
			t.Fatalf("got %v", err)
		}
	}
	if _, err := cred(stranger, strangerKey).GetToken(context.Background(), scope); err != nil {
		t.Fatal(err)
	}
}
