package keyvault_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets/fake"
	"github.com/kvrotator/kvrotator/keyvault"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// The azsecrets fake server covers what the emulator cannot produce: certificate-backed (managed)
// secrets in a listing, and every HTTP status.

func fakeVault(t *testing.T, srv *fake.Server) *keyvault.Vault {
	t.Helper()
	v, err := keyvault.New("https://fake-vault.vault.azure.net", &azfake.TokenCredential{},
		&keyvault.Options{Transport: fake.NewServerTransport(srv), Retry: noRetry()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func props(id string, managed bool) *azsecrets.SecretProperties {
	sid := azsecrets.ID(id)
	p := &azsecrets.SecretProperties{ID: &sid, Tags: map[string]*string{"k": new("v"), "nil": nil}}
	if managed {
		p.Managed = new(true)
	}
	return p
}

func TestListSkipsCertificateBackedSecrets(t *testing.T) {
	srv := &fake.Server{
		NewListSecretPropertiesPager: func(*azsecrets.ListSecretPropertiesOptions) (resp azfake.PagerResponder[azsecrets.ListSecretPropertiesResponse]) {
			resp.AddPage(http.StatusOK, azsecrets.ListSecretPropertiesResponse{SecretPropertiesListResult: azsecrets.SecretPropertiesListResult{
				Value: []*azsecrets.SecretProperties{
					props("https://fake-vault.vault.azure.net/secrets/plain-a", false),
					props("https://fake-vault.vault.azure.net/secrets/tls-cert", true),
					nil,
				},
			}}, nil)
			resp.AddPage(http.StatusOK, azsecrets.ListSecretPropertiesResponse{SecretPropertiesListResult: azsecrets.SecretPropertiesListResult{
				Value: []*azsecrets.SecretProperties{props("https://fake-vault.vault.azure.net/secrets/plain-b", false)},
			}}, nil)
			return
		},
	}
	var names []string
	err := fakeVault(t, srv).List(ctx(t), func(p rotation.SecretProperties) error {
		names = append(names, p.Name)
		if p.Vault != "fake-vault" || p.Version != "" || p.Tags["k"] != "v" || !p.Enabled {
			t.Errorf("properties: %+v", p)
		}
		if v, ok := p.Tags["nil"]; !ok || v != "" {
			t.Errorf("nil tag value: %q %v", v, ok)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "plain-a,plain-b" {
		t.Fatalf("listed %v", names)
	}
}

func TestStatusClassification(t *testing.T) {
	cases := []struct {
		status    int
		code      string
		permanent bool
		notFound  bool
	}{
		{400, "BadParameter", true, false},
		{401, "Unauthorized", true, false},
		{403, "Forbidden", true, false},
		{404, "SecretNotFound", true, true},
		{405, "MethodNotAllowed", true, false},
		{409, "Conflict", true, false},
		{412, "PreconditionFailed", true, false},
		{408, "RequestTimeout", false, false},
		{429, "Throttled", false, false},
		{500, "InternalServerError", false, false},
		{502, "BadGateway", false, false},
		{503, "ServiceUnavailable", false, false},
		{504, "GatewayTimeout", false, false},
	}
	for _, c := range cases {
		srv := &fake.Server{
			GetSecret: func(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], errResp azfake.ErrorResponder) {
				errResp.SetResponseError(c.status, c.code)
				return
			},
		}
		_, err := fakeVault(t, srv).Get(ctx(t), "db-password", "")
		if err == nil {
			t.Fatalf("%d: no error", c.status)
		}
		if providers.IsPermanent(err) != c.permanent || errors.Is(err, rotation.ErrNotFound) != c.notFound {
			t.Errorf("%d: permanent %v notFound %v, want %v %v", c.status, providers.IsPermanent(err), errors.Is(err, rotation.ErrNotFound), c.permanent, c.notFound)
		}
		want := fmt.Sprintf(`keyvault: get secret "db-password" in vault "fake-vault": %d %s (%s)`, c.status, http.StatusText(c.status), c.code)
		if err.Error() != want {
			t.Errorf("%d: message %s", c.status, err)
		}
	}
}

func TestCanceledContextIsTransient(t *testing.T) {
	srv := &fake.Server{
		GetSecret: func(ctx context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], errResp azfake.ErrorResponder) {
			errResp.SetError(ctx.Err())
			return
		},
	}
	c, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fakeVault(t, srv).Get(c, "s", "")
	if err == nil || providers.IsPermanent(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if !strings.HasSuffix(err.Error(), ": canceled") {
		t.Fatalf("message: %s", err)
	}
}

func TestMalformedIDFallsBackToRequestedName(t *testing.T) {
	srv := &fake.Server{
		GetSecret: func(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], errResp azfake.ErrorResponder) {
			id := azsecrets.ID("not a url ::")
			resp.SetResponse(http.StatusOK, azsecrets.GetSecretResponse{Secret: azsecrets.Secret{ID: &id, Value: new("v")}}, nil)
			return
		},
	}
	s, err := fakeVault(t, srv).Get(ctx(t), "s", "")
	if err != nil || s.Name != "s" || s.Version != "" || s.Value.Reveal() != "v" {
		t.Fatalf("%+v %v", s.SecretProperties, err)
	}
}
