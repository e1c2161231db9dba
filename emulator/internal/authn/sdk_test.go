package authn

// Tests with the real Azure SDK clients (azidentity, MSAL, azsecrets) over real HTTP(S).
// MSAL caches managed-identity tokens process-wide per identity and resource, so every test asks for
// its own resource. Tests that set environment variables cannot run in parallel; none do.

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// uniqueResource returns a resource no other test asks for (see the MSAL cache note above).
func uniqueResource(t *testing.T) string {
	return "https://" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())) + ".test"
}

// getToken asks cred for resource's /.default scope and validates the result against resource.
func getToken(t *testing.T, cred azcore.TokenCredential, resource string) (Principal, error) {
	t.Helper()
	tok, err := cred.GetToken(testContext(t), policy.TokenRequestOptions{Scopes: []string{resource + "/.default"}})
	if err != nil {
		return Principal{}, err
	}
	if d := time.Until(tok.ExpiresOn); d < 50*time.Minute || d > 61*time.Minute {
		t.Errorf("token expires in %v, want about an hour", d)
	}
	p, err := sharedIssuer.Validate(tok.Token, []string{resource}, time.Now())
	if err != nil {
		t.Fatalf("issued token does not validate: %v", err)
	}
	return p, nil
}

func TestManagedIdentityCredential(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.endpoint.Handler())
	defer srv.Close()
	setManagedIdentityEnv(t, srv, testIdentityHeader)

	for _, tc := range []struct {
		name    string
		id      azidentity.ManagedIDKind
		wantOID string
		wantCID string
	}{
		{"system", nil, sysObjectID, sysClientID},
		{"client_id", azidentity.ClientID(userClientID), userObjectID, userClientID},
		{"object_id", azidentity.ObjectID(userObjectID), userObjectID, userClientID},
		{"resource_id", azidentity.ResourceID(userResID), userObjectID, userClientID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts *azidentity.ManagedIdentityCredentialOptions
			if tc.id != nil {
				opts = &azidentity.ManagedIdentityCredentialOptions{ID: tc.id}
			}
			cred, err := azidentity.NewManagedIdentityCredential(opts)
			if err != nil {
				t.Fatal(err)
			}
			p, err := getToken(t, cred, uniqueResource(t))
			if err != nil {
				t.Fatal(err)
			}
			if p.ObjectID != tc.wantOID || p.ClientID != tc.wantCID || p.TenantID != testTenant {
				t.Errorf("principal = %+v, want oid %s, client %s, tenant %s", p, tc.wantOID, tc.wantCID, testTenant)
			}
		})
	}

	t.Run("unknown identity", func(t *testing.T) {
		cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID("99999999-9999-9999-9999-999999999999")})
		if err != nil {
			t.Fatal(err)
		}
		_, err = getToken(t, cred, uniqueResource(t))
		if err == nil || !strings.Contains(err.Error(), "400") {
			t.Errorf("unknown identity: err = %v, want a 400 error", err)
		}
	})
}

func TestManagedIdentityCredentialWrongHeader(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.endpoint.Handler())
	defer srv.Close()
	setManagedIdentityEnv(t, srv, "not-the-header")
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = getToken(t, cred, uniqueResource(t))
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong header: err = %v, want a 401 error", err)
	}
}

func TestDefaultAzureCredentialManagedIdentity(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.endpoint.Handler())
	defer srv.Close()
	setManagedIdentityEnv(t, srv, testIdentityHeader)
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "ManagedIdentityCredential")

	t.Run("system", func(t *testing.T) {
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := getToken(t, cred, uniqueResource(t))
		if err != nil {
			t.Fatal(err)
		}
		if p.ObjectID != sysObjectID {
			t.Errorf("oid = %s, want the system identity %s", p.ObjectID, sysObjectID)
		}
	})
	t.Run("AZURE_CLIENT_ID", func(t *testing.T) {
		t.Setenv("AZURE_CLIENT_ID", userClientID)
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := getToken(t, cred, uniqueResource(t))
		if err != nil {
			t.Fatal(err)
		}
		if p.ObjectID != userObjectID {
			t.Errorf("oid = %s, want the user-assigned identity %s", p.ObjectID, userObjectID)
		}
	})
}

// certOptions are the ClientCertificateCredential options for an emulator authority at url.
func certOptions(url string, pool *x509.CertPool) *azidentity.ClientCertificateCredentialOptions {
	return &azidentity.ClientCertificateCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: url},
			Transport: NewClient(pool),
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableInstanceDiscovery: true,
	}
}

func TestClientCertificateCredential(t *testing.T) {
	f := newFixture(t)
	srv := newTLSServer(t, f.ca, f.endpoint.Handler())
	t.Setenv("AZURE_AUTHORITY_HOST", "")

	t.Run("registered certificate", func(t *testing.T) {
		for _, sendChain := range []bool{false, true} {
			opts := certOptions(srv.URL, f.ca.CertPool())
			opts.SendCertificateChain = sendChain
			cred, err := azidentity.NewClientCertificateCredential(testTenant, spClientID, []*x509.Certificate{f.spCert}, f.spKey, opts)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := cred.GetToken(testContext(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
			if err != nil {
				t.Fatalf("GetToken: %v", err)
			}
			p, err := f.issuer.Validate(tok.Token, []string{"https://vault.azure.net"}, time.Now())
			if err != nil {
				t.Fatalf("issued token does not validate: %v", err)
			}
			want := Principal{ObjectID: spObjectID, ClientID: spClientID, TenantID: testTenant, Name: "rotator-sp"}
			if p != want {
				t.Errorf("principal = %+v, want %+v", p, want)
			}
		}
	})

	t.Run("authority host with trailing slash", func(t *testing.T) {
		cred, err := azidentity.NewClientCertificateCredential(testTenant, spClientID, []*x509.Certificate{f.spCert}, f.spKey, certOptions(srv.URL+"/", f.ca.CertPool()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cred.GetToken(testContext(t), policy.TokenRequestOptions{Scopes: []string{"https://localhost:8443/.default"}}); err != nil {
			t.Fatalf("GetToken: %v", err)
		}
	})

	t.Run("unregistered certificate", func(t *testing.T) {
		cert, key := newSPCert(t, "stranger")
		cred, err := azidentity.NewClientCertificateCredential(testTenant, spClientID, []*x509.Certificate{cert}, key, certOptions(srv.URL, f.ca.CertPool()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(testContext(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
			t.Errorf("unregistered certificate: err = %v, want AADSTS700027", err)
		}
	})

	t.Run("unknown client", func(t *testing.T) {
		cred, err := azidentity.NewClientCertificateCredential(testTenant, "44444444-4444-4444-4444-444444444444", []*x509.Certificate{f.spCert}, f.spKey, certOptions(srv.URL, f.ca.CertPool()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(testContext(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS700016") {
			t.Errorf("unknown client: err = %v, want AADSTS700016", err)
		}
	})

	t.Run("wrong tenant", func(t *testing.T) {
		cred, err := azidentity.NewClientCertificateCredential("00000000-0000-0000-0000-00000000beef", spClientID, []*x509.Certificate{f.spCert}, f.spKey, certOptions(srv.URL, f.ca.CertPool()))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(testContext(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS90002") {
			t.Errorf("wrong tenant: err = %v, want AADSTS90002", err)
		}
	})

	t.Run("client secret refused", func(t *testing.T) {
		cred, err := azidentity.NewClientSecretCredential(testTenant, spClientID, "s3cret", &azidentity.ClientSecretCredentialOptions{
			ClientOptions:            certOptions(srv.URL, f.ca.CertPool()).ClientOptions,
			DisableInstanceDiscovery: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(testContext(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}})
		if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("client secret: err = %v, want AADSTS7000215 without the secret", err)
		}
	})

	t.Run("untrusted authority", func(t *testing.T) {
		opts := certOptions(srv.URL, x509.NewCertPool())
		cred, err := azidentity.NewClientCertificateCredential(testTenant, spClientID, []*x509.Certificate{f.spCert}, f.spKey, opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cred.GetToken(testContext(t), policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}); err == nil {
			t.Error("GetToken succeeded against an untrusted authority")
		}
	})
}

// fakeVault answers like Key Vault for GET /secrets/s/: a 401 challenge without a valid token, a
// secret with one. It records the principals it saw.
type fakeVault struct {
	issuer    *Issuer
	authority string

	mu         sync.Mutex
	challenges int
	principals []Principal
}

func (v *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	resource := ChallengeResource(r.Host)
	challenge := func(msg string) {
		v.mu.Lock()
		v.challenges++
		v.mu.Unlock()
		w.Header().Set("WWW-Authenticate", WWWAuthenticate(v.authority, testTenant, resource))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "Unauthorized", "message": msg}})
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		challenge("AKV10000: Request is missing a Bearer or PoP token.")
		return
	}
	p, err := v.issuer.Validate(token, []string{resource}, time.Now())
	if err != nil {
		challenge("AKV10001: " + err.Error())
		return
	}
	v.mu.Lock()
	v.principals = append(v.principals, p)
	v.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"value":"x","id":"https://%s/secrets/s/0123456789abcdef0123456789abcdef","attributes":{"enabled":true,"created":1,"updated":1}}`, r.Host)
}

// TestAzsecretsChallenge runs the real azsecrets client, with challenge resource verification on,
// against https://myvault.localhost:PORT, authenticated by the managed-identity endpoint and by a
// certificate service principal.
func TestAzsecretsChallenge(t *testing.T) {
	f := newFixture(t)
	msi := httptest.NewServer(f.endpoint.Handler())
	defer msi.Close()
	setManagedIdentityEnv(t, msi, testIdentityHeader)

	// One HTTPS listener serves both the vault and the authority, as the emulator does.
	vault := &fakeVault{issuer: f.issuer}
	mux := http.NewServeMux()
	mux.Handle("/secrets/", vault)
	mux.Handle("/", f.endpoint.Handler())
	srv := newTLSServer(t, f.ca, mux)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	vault.authority = "https://localhost:" + port
	vaultURL := "https://myvault.localhost:" + port

	miCred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	spCred, err := azidentity.NewClientCertificateCredential(testTenant, spClientID, []*x509.Certificate{f.spCert}, f.spKey, certOptions(srv.URL, f.ca.CertPool()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cred    azcore.TokenCredential
		wantOID string
	}{
		{"managed identity", miCred, sysObjectID},
		{"client certificate", spCred, spObjectID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vault.mu.Lock()
			vault.challenges, vault.principals = 0, nil
			vault.mu.Unlock()
			client, err := azsecrets.NewClient(vaultURL, tc.cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{
				Transport: NewClient(f.ca.CertPool()),
				Retry:     policy.RetryOptions{MaxRetries: -1},
			}})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				resp, err := client.GetSecret(testContext(t), "s", "", nil)
				if err != nil {
					t.Fatalf("GetSecret: %v", err)
				}
				if resp.Value == nil || *resp.Value != "x" || resp.ID.Name() != "s" {
					t.Fatalf("GetSecret: unexpected response %+v", resp)
				}
			}
			vault.mu.Lock()
			defer vault.mu.Unlock()
			if vault.challenges != 1 {
				t.Errorf("%d challenges, want 1 (the client should cache tenant and token)", vault.challenges)
			}
			if len(vault.principals) != 3 || vault.principals[0].ObjectID != tc.wantOID {
				t.Errorf("vault saw principals %+v, want 3 × oid %s", vault.principals, tc.wantOID)
			}
		})
	}
}
