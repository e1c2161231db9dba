// Package graph is what the providers that call Microsoft Graph (entra-app, entra-app-certificate)
// share about reaching it: which Graph endpoint and Entra authority a cloud has, and the checks on
// them. Endpoints come from the code's configuration (registry.Azure, a provider option), never from a
// tag.
package graph

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Service is the cloud.Configuration service key for Microsoft Graph. azcore's clouds do not describe
// Graph; an entry with this key in the cloud configuration of the registry.Azure the providers are
// built with points them at another Graph endpoint (a national cloud not listed in ByAuthority, a test
// server). The audience defaults to the endpoint.
const Service cloud.ServiceName = "microsoftGraph"

// ByAuthority is Microsoft Graph's endpoint for each cloud, by the cloud's Entra authority host. (US
// Government DoD uses https://dod-graph.microsoft.us with the same authority as L4: set Service for
// it.)
var ByAuthority = map[string]string{
	"login.microsoftonline.com": "https://graph.microsoft.com",
	"login.microsoftonline.us":  "https://graph.microsoft.us",
	"login.chinacloudapi.cn":    "https://microsoftgraph.chinacloudapi.cn",
}

// Endpoints are where one call goes: the Entra authority (token endpoint host) and Graph, both https
// URLs without a trailing slash, and the scope of the tokens Graph takes.
type Endpoints struct {
	Authority, Graph, Scope string
}

// Overrides are a provider's own endpoint options (WithAuthorityHost, WithGraph); empty fields fall
// back to the cloud configuration.
type Overrides struct {
	AuthorityHost, Graph, Audience string
}

// Resolve picks the endpoints for provider (its name, for errors) from its overrides, else az's cloud
// (the public cloud when az names none): the authority host, then Graph from the cloud's Service entry
// or, for the clouds ByAuthority knows, from the authority. Every failure is permanent: an operator's
// configuration to fix.
func Resolve(provider string, az registry.Azure, o Overrides) (Endpoints, error) {
	az = az.WithDefaults()
	authority := o.AuthorityHost
	if authority == "" {
		authority = az.Cloud.ActiveDirectoryAuthorityHost
	}
	if authority == "" {
		authority = "https://login.microsoftonline.com/"
	}
	authorityURL, err := HTTPSBase(authority)
	if err != nil {
		return Endpoints{}, providers.Permanent(fmt.Errorf("%s: Entra authority host %q: %w", provider, authority, err))
	}
	endpoint, audience := o.Graph, o.Audience
	if endpoint == "" {
		if svc, ok := az.Cloud.Services[Service]; ok && svc.Endpoint != "" {
			endpoint, audience = svc.Endpoint, svc.Audience
		} else if u, err := url.Parse(authorityURL); err == nil {
			endpoint = ByAuthority[strings.ToLower(u.Hostname())]
		}
	}
	if endpoint == "" {
		return Endpoints{}, providers.Permanent(fmt.Errorf("%s: no Microsoft Graph endpoint is known for the cloud whose authority is %s: add a cloud.Configuration service entry %q with Graph's endpoint",
			provider, authorityURL, Service))
	}
	graphURL, err := HTTPSBase(endpoint)
	if err != nil {
		return Endpoints{}, providers.Permanent(fmt.Errorf("%s: Microsoft Graph endpoint %q: %w", provider, endpoint, err))
	}
	if audience == "" {
		audience = graphURL
	}
	return Endpoints{Authority: authorityURL, Graph: graphURL, Scope: strings.TrimRight(audience, "/") + "/.default"}, nil
}

// HTTPSBase checks that raw is an absolute https URL with a host name and without user information,
// query or fragment (httpx.ParseBaseURL, plain http never allowed), and returns it without a trailing
// slash.
func HTTPSBase(raw string) (string, error) {
	base, err := httpx.ParseBaseURL(raw, false)
	switch httpx.URLProblemOf(err) {
	case httpx.URLNotAbsolute, httpx.URLScheme:
		return "", errors.New("must be an https URL")
	case httpx.URLUserInfo, httpx.URLQuery, httpx.URLFragment:
		return "", errors.New("must not contain user information, a query or a fragment")
	}
	return base, err
}
