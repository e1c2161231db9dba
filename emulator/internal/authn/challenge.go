package authn

import (
	"net/url"
	"strings"
)

// DefaultAuthority is the authority WWWAuthenticate names when given none.
const DefaultAuthority = "https://login.microsoftonline.com"

// AzureResource is Key Vault's resource in Azure's public cloud, the challenge resource for
// single-label hosts.
const AzureResource = "https://vault.azure.net"

// WWWAuthenticate returns the value of the WWW-Authenticate header of Key Vault's 401 challenge:
//
//	Bearer authorization="<authority>/<tenant>", resource="<resource>"
//
// The Key Vault SDK takes the tenant from the fourth "/"-separated part of authorization and panics
// when there is none, so the value always has a path segment: authority is reduced to scheme://host
// (any path or trailing slash dropped; https:// added when no scheme is given; empty or unusable means
// DefaultAuthority). tenant should be non-empty:
// an empty tenant makes the SDK re-challenge every request.
func WWWAuthenticate(authority, tenant, resource string) string {
	return `Bearer authorization="` + authorityBase(authority) + "/" + tenant + `", resource="` + resource + `"`
}

// authorityBase reduces an authority to scheme://host[:port]; a value without a scheme gets https://,
// and one without a usable host becomes DefaultAuthority, so the result always parses as the SDK expects.
func authorityBase(authority string) string {
	a := strings.TrimSpace(authority)
	if a == "" {
		return DefaultAuthority
	}
	if !strings.Contains(a, "://") {
		a = "https://" + a
	}
	if u, err := url.Parse(a); err == nil && u.Scheme != "" && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return DefaultAuthority
}

// ChallengeResource is the "auto" challenge resource for a request to host (the Host header, port
// included): "https://" + host without its first dot-separated label, which the SDK's resource
// verification accepts because the vault host ends with "." + that host.
// "myvault.localhost:8443" → "https://localhost:8443"; "127.0.0.1:8443" → "https://0.0.1:8443".
// A host with a single label ("localhost:8443", "[::1]:8443") cannot pass verification with any
// resource; it gets AzureResource.
func ChallengeResource(host string) string {
	if strings.HasPrefix(host, "[") {
		return AzureResource
	}
	_, rest, ok := strings.Cut(host, ".")
	if !ok || rest == "" || strings.HasPrefix(rest, ":") {
		return AzureResource
	}
	return "https://" + rest
}
