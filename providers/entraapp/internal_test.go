package entraapp

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/kvrotator/kvrotator/providers"
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

func TestHTTPSBase(t *testing.T) {
	for raw, want := range map[string]string{
		"https://graph.example.test/":    "https://graph.example.test",
		"https://127.0.0.1:8443/base//":  "https://127.0.0.1:8443/base",
		"http://graph.example.test":      "must be an https URL",
		"http://127.0.0.1:8443":          "must be an https URL",
		"graph.example.test":             "must be an https URL",
		"https:graph.example.test":       "must be an https URL",
		"https://":                       "no host",
		"https://:443":                   "no host",
		"https://u:p@graph.example.test": "must not contain user information, a query or a fragment",
		"https://graph.example.test?":    "must not contain user information, a query or a fragment",
		"https://graph.example.test/#":   "must not contain user information, a query or a fragment",
		"https://graph.example.test/%zz": "not a URL",
	} {
		got, err := httpsBase(raw)
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("httpsBase(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	p := New(WithAzure(registry.Azure{Credential: staticCredential{}, Transport: &http.Client{}}))
	c, err := p.client()
	if err != nil {
		t.Fatal(err)
	}
	if hc := c.send.(*http.Client); hc.CheckRedirect == nil {
		t.Fatal("the transport follows redirects with kvrotator's token")
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

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"Sun, 29 Nov 2026 10:00:30 GMT": 30 * time.Second,
		"Sun, 29 Nov 2026 09:00:00 GMT": 0,
		"999999999":                     maxRetryAfter,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Op: "addPassword", Method: "POST", URL: "https://graph.microsoft.com/v1.0/applications/x/addPassword", Status: 429,
		Code: "TooManyRequests", Reason: "busy", Message: "Too many requests", RequestID: "r-1", Retry: 3 * time.Second}
	want := `entra-app addPassword (POST https://graph.microsoft.com/v1.0/applications/x/addPassword): HTTP 429 TooManyRequests: busy: service says "Too many requests" (request id r-1) (retry after 3s)`
	if e.Error() != want {
		t.Fatalf("%s\nwant %s", e.Error(), want)
	}
}
