package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
)

func asResponseError(err error, re **azcore.ResponseError) bool { return errors.As(err, re) }

// start runs an emulator with one vault "myvault" (plus what mutate changes) for the test's lifetime.
func start(t testing.TB, mutate func(*emulator.Config)) *emulator.Server {
	t.Helper()
	return emulatortest.Start(t, mutate)
}

// managedIdentity returns the real azidentity ManagedIdentityCredential, pointed at the emulator's
// App Service identity endpoint through the environment as App Service does. clientID selects a
// user-assigned identity ("" = system-assigned).
func managedIdentity(t *testing.T, srv *emulator.Server, clientID string) azcore.TokenCredential {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	opts := &azidentity.ManagedIdentityCredentialOptions{}
	if clientID != "" {
		opts.ID = azidentity.ClientID(clientID)
	}
	cred, err := azidentity.NewManagedIdentityCredential(opts)
	if err != nil {
		t.Fatalf("NewManagedIdentityCredential: %v", err)
	}
	return cred
}

// clientOptions trusts the emulator's CA; retries are fast so that tests of retry behaviour stay quick.
func clientOptions(srv *emulator.Server) *azsecrets.ClientOptions {
	return &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: srv.HTTPClient(),
		Retry:     policy.RetryOptions{RetryDelay: 50 * time.Millisecond, MaxRetryDelay: 3 * time.Second},
	}}
}

// newClient is the real azsecrets client for a vault, authenticated with the system-assigned managed
// identity, with challenge-resource verification left on.
func newClient(t *testing.T, srv *emulator.Server, vault string) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(srv.VaultURL(vault), managedIdentity(t, srv, ""), clientOptions(srv))
	if err != nil {
		t.Fatalf("azsecrets.NewClient: %v", err)
	}
	return c
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func to[T any](v T) *T { return &v }

// respErr asserts err is an *azcore.ResponseError with the status and code.
func respErr(t *testing.T, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want ResponseError %d %s, got %v", status, code, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("want %d %s, got %d %s", status, code, re.StatusCode, re.ErrorCode)
	}
	return re
}

// rawResponse is a hand-made request's answer, for wire details the SDK hides.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r rawResponse) errorCode(t *testing.T) (code, inner string) {
	t.Helper()
	var e struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("error body is not Key Vault's envelope: %v", err)
	}
	if e.Error.Message == "" {
		t.Fatalf("error body without message")
	}
	if e.Error.InnerError != nil {
		inner = e.Error.InnerError.Code
	}
	return e.Error.Code, inner
}

// raw sends a hand-written request to a vault; token "" sends none.
func raw(t *testing.T, srv *emulator.Server, method, vaultURLPath, token string, body []byte) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	url := vaultURLPath
	if !strings.HasPrefix(url, "http") {
		url = srv.VaultURL("myvault") + vaultURLPath
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// systemToken is a valid token of the default identity for the vault host's challenge resource.
func systemToken(t *testing.T, srv *emulator.Server) string {
	t.Helper()
	tok, err := srv.IssueToken(emulator.DefaultIdentity().ClientID, "https://vault.azure.net", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
