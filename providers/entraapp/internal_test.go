package entraapp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
)

type staticCredential struct{}

func (staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestEndpointsFollowTheCloud(t *testing.T) {
	custom := cloud.Configuration{ActiveDirectoryAuthorityHost: "https://login.example.test/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{GraphService: {Endpoint: "https://graph.example.test/"}}}
	for _, tc := range []struct {
		name                    string
		cloud                   cloud.Configuration
		opts                    []Option
		graph, scope, authority string
		err                     string
	}{
		{name: "public (default)", graph: "https://graph.microsoft.com", scope: "https://graph.microsoft.com/.default", authority: "https://login.microsoftonline.com"},
		{name: "public", cloud: cloud.AzurePublic, graph: "https://graph.microsoft.com", scope: "https://graph.microsoft.com/.default", authority: "https://login.microsoftonline.com"},
		{name: "US Government", cloud: cloud.AzureGovernment, graph: "https://graph.microsoft.us", scope: "https://graph.microsoft.us/.default", authority: "https://login.microsoftonline.us"},
		{name: "China", cloud: cloud.AzureChina, graph: "https://microsoftgraph.chinacloudapi.cn", scope: "https://microsoftgraph.chinacloudapi.cn/.default", authority: "https://login.chinacloudapi.cn"},
		{name: "Graph service entry", cloud: custom, graph: "https://graph.example.test", scope: "https://graph.example.test/.default", authority: "https://login.example.test"},
		{name: "options win", cloud: custom, opts: []Option{WithGraph("https://127.0.0.1:8443", "https://graph.microsoft.com/"), WithAuthorityHost("https://127.0.0.1:8443/")},
			graph: "https://127.0.0.1:8443", scope: "https://graph.microsoft.com/.default", authority: "https://127.0.0.1:8443"},
		{name: "unknown cloud", cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: "https://login.example.test/"}, err: string(GraphService)},
		{name: "plain http Graph", opts: []Option{WithGraph("http://graph.example.test", "")}, err: "https"},
		{name: "plain http authority", opts: []Option{WithAuthorityHost("http://login.example.test")}, err: "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(append([]Option{WithAzure(registry.Azure{Credential: staticCredential{}, Cloud: tc.cloud})}, tc.opts...)...)
			c, err := p.client()
			if tc.err != "" {
				if !providers.IsPermanent(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("want a permanent error about %q, got %v", tc.err, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.graph != tc.graph || c.scope != tc.scope || c.authority != tc.authority {
				t.Fatalf("graph %s scope %s authority %s", c.graph, c.scope, c.authority)
			}
		})
	}
}

// A redirect from Graph or the token endpoint is never followed, whatever the transport's CheckRedirect
// says: kvrotator's token and the new secret go where configured or nowhere.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var followed atomic.Int32
	target := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Add(1) }))
	defer target.Close()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	follows := &http.Client{Transport: srv.Client().Transport} // trusts both servers' certificate, follows redirects
	p := New(WithAzure(registry.Azure{Credential: staticCredential{}, Transport: follows}), WithGraph(srv.URL, ""), WithAuthorityHost(srv.URL))
	c, err := p.client()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "NEWSECRET~never.sent-anywhere-else-0123"
	_, graphErr := c.getApplication(t.Context(), config{objectID: "0a0a0a0a-0000-4000-8000-000000000001"})
	tokenErr := c.verifyToken(t.Context(), "contoso.onmicrosoft.com", "0a0a0a0a-0000-4000-8000-000000000002", secret)
	for name, err := range map[string]error{"Graph": graphErr, "token endpoint": tokenErr} {
		var e *Error
		if !providers.IsPermanent(err) || !errors.As(err, &e) || e.Status != http.StatusTemporaryRedirect || !strings.Contains(err.Error(), "redirects are not followed") {
			t.Errorf("%s: %v, want a permanent error about the redirect", name, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error holds the secret", name)
		}
	}
	if followed.Load() != 0 || follows.CheckRedirect != nil {
		t.Fatalf("%d requests followed the redirect; CheckRedirect changed: %v", followed.Load(), follows.CheckRedirect != nil)
	}
}

func TestSanitize(t *testing.T) {
	const secret = "Abc8Q~very.secret-value_0123456789abcdef"
	for _, tc := range []struct{ in, want string }{
		{"Invalid client secret provided.\r\nTrace ID: 1", "Invalid client secret provided. Trace ID: 1"},
		{"the secret " + secret + " is wrong", "the secret [redacted] is wrong"},
		{"starts with " + secret[:12], "[withheld: it quoted part of a secret]"},
		{strings.Repeat("x", 300), strings.Repeat("x", MaxMessageChars-1) + "…"},
		{"a\u202eb\x00c", "a b c"},
	} {
		if got := messages.Sanitize(tc.in, secret); got != tc.want {
			t.Errorf("messages.Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Errors name the provider, what it did and where, and what the service said, with the secret
// redacted: Graph's code and request id, the token endpoint's OAuth error, AADSTS number and trace id.
func TestErrorText(t *testing.T) {
	c, err := New(WithAzure(registry.Azure{Credential: staticCredential{}})).client()
	if err != nil {
		t.Fatal(err)
	}
	e := c.graphAPI.Error(httpx.Request{Op: "addPassword", Method: http.MethodPost, URL: c.graph + "/v1.0/applications/x/addPassword"}, 429, "busy", false)
	e.Code, e.Message, e.RequestID, e.Retry = "TooManyRequests", "Too many requests", "r-1", 3*time.Second
	want := `entra-app addPassword (POST https://graph.microsoft.com/v1.0/applications/x/addPassword): HTTP 429 TooManyRequests: busy: Microsoft Graph says "Too many requests" (request id r-1) (retry after 3s)`
	if e.Error() != want {
		t.Errorf("%s\nwant %s", e.Error(), want)
	}

	const secret = "Abc8Q~very.secret-value_0123456789abcdef"
	r := httpx.Request{Op: "verify", Method: http.MethodPost, URL: c.authority + "/contoso.onmicrosoft.com/oauth2/v2.0/token", Secrets: []string{secret}}
	resp := &httpx.Response{Status: 401, Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Ms-Request-Id": {"hdr"}}, Limit: maxResponseBytes,
		Body: []byte(`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret ` + secret + ` provided.\r\nTrace ID: tr-1\r\nCorrelation ID: c-1","error_codes":[7000215],"trace_id":"tr-1"}`)}
	err = c.tokenAPI.Fail(r, resp, httpx.Verdict{Reason: "not yet", Transient: true})
	want = `entra-app verify (POST https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token): HTTP 401 invalid_client AADSTS7000215: not yet: the Entra ID token endpoint says "Invalid client secret [redacted] provided." (request id tr-1)`
	if e := httpxtest.As[*Error](t, err); err.Error() != want || e.SubCode != "AADSTS7000215" || !e.Sent {
		t.Errorf("%s\nwant %s", err, want)
	}
}
