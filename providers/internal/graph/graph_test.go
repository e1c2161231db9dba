package graph

import (
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

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
		got, err := HTTPSBase(raw)
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("HTTPSBase(%q) = %q, want %q", raw, got, want)
		}
	}
}

// Overrides win; else the cloud's Graph service entry; else the Graph of a known authority; an unknown
// cloud without an entry, or a plain-http endpoint, is a permanent configuration error.
func TestResolve(t *testing.T) {
	gov := registry.Azure{Cloud: cloud.AzureGovernment}
	for _, c := range []struct {
		name string
		az   registry.Azure
		o    Overrides
		want Endpoints
		err  string
	}{
		{"public by default", registry.Azure{}, Overrides{},
			Endpoints{"https://login.microsoftonline.com", "https://graph.microsoft.com", "https://graph.microsoft.com/.default"}, ""},
		{"US Government", gov, Overrides{},
			Endpoints{"https://login.microsoftonline.us", "https://graph.microsoft.us", "https://graph.microsoft.us/.default"}, ""},
		{"service entry", registry.Azure{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: "https://login.example.test/",
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{Service: {Endpoint: "https://graph.example.test", Audience: "https://aud.example.test/"}}}}, Overrides{},
			Endpoints{"https://login.example.test", "https://graph.example.test", "https://aud.example.test/.default"}, ""},
		{"overrides", gov, Overrides{AuthorityHost: "https://127.0.0.1:8443/", Graph: "https://127.0.0.1:9443/"},
			Endpoints{"https://127.0.0.1:8443", "https://127.0.0.1:9443", "https://127.0.0.1:9443/.default"}, ""},
		{"unknown cloud", registry.Azure{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: "https://login.example.test/"}}, Overrides{},
			Endpoints{}, "no Microsoft Graph endpoint is known"},
		{"plain http Graph", registry.Azure{}, Overrides{Graph: "http://graph.example.test"}, Endpoints{}, "must be an https URL"},
		{"plain http authority", registry.Azure{}, Overrides{AuthorityHost: "http://login.example.test"}, Endpoints{}, "must be an https URL"},
	} {
		got, err := Resolve("entra-app", c.az, c.o)
		if c.err != "" {
			if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "entra-app") {
				t.Errorf("%s: %v, want a permanent error naming the provider and %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
}
