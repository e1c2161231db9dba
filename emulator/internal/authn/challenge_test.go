package authn

import (
	"strings"
	"testing"
)

func TestWWWAuthenticate(t *testing.T) {
	for _, tc := range []struct {
		authority, tenant, resource, want string
	}{
		{"https://login.microsoftonline.com", testTenant, "https://vault.azure.net",
			`Bearer authorization="https://login.microsoftonline.com/` + testTenant + `", resource="https://vault.azure.net"`},
		{"https://login.microsoftonline.com/", "t1", "https://localhost:8443",
			`Bearer authorization="https://login.microsoftonline.com/t1", resource="https://localhost:8443"`},
		{"https://127.0.0.1:8443/", "t1", "https://0.0.1:8443",
			`Bearer authorization="https://127.0.0.1:8443/t1", resource="https://0.0.1:8443"`},
		{"https://login.example/some/path", "t1", "r", `Bearer authorization="https://login.example/t1", resource="r"`},
		{"login.example:8443", "t1", "r", `Bearer authorization="https://login.example:8443/t1", resource="r"`},
		{"", "t1", "r", `Bearer authorization="https://login.microsoftonline.com/t1", resource="r"`},
		{"https://", "t1", "r", `Bearer authorization="https://login.microsoftonline.com/t1", resource="r"`},
		{"https://login.microsoftonline.com", "", "r", `Bearer authorization="https://login.microsoftonline.com/", resource="r"`},
	} {
		got := WWWAuthenticate(tc.authority, tc.tenant, tc.resource)
		if got != tc.want {
			t.Errorf("WWWAuthenticate(%q, %q, %q)\n got %s\nwant %s", tc.authority, tc.tenant, tc.resource, got, tc.want)
		}
		// The SDK reads the tenant as the fourth "/"-part of authorization and panics without one.
		authz := strings.TrimSuffix(strings.TrimPrefix(strings.Fields(got)[1], `authorization="`), `",`)
		if parts := strings.Split(authz, "/"); len(parts) < 4 || parts[3] != tc.tenant {
			t.Errorf("WWWAuthenticate(%q, ...): authorization %q does not carry the tenant as the SDK parses it", tc.authority, authz)
		}
	}
}

func TestChallengeResource(t *testing.T) {
	for host, want := range map[string]string{
		"myvault.localhost:8443":          "https://localhost:8443",
		"myvault.localhost":               "https://localhost",
		"127.0.0.1:8443":                  "https://0.0.1:8443",
		"myvault.vault.azure.net":         "https://vault.azure.net",
		"myvault.vault.azure.net:18443":   "https://vault.azure.net:18443",
		"a.b.c.example:1":                 "https://b.c.example:1",
		"localhost:8443":                  AzureResource,
		"localhost":                       AzureResource,
		"[::1]:8443":                      AzureResource,
		"":                                AzureResource,
		"host.:8443":                      AzureResource,
		"myvault.localhost.:8443":         "https://localhost.:8443",
		"kv-prod.privatelink.example:443": "https://privatelink.example:443",
	} {
		if got := ChallengeResource(host); got != want {
			t.Errorf("ChallengeResource(%q) = %q, want %q", host, got, want)
		}
		// Whenever a resource other than the fallback is produced, the SDK's check passes:
		// the request host ends with "." + the resource host.
		if want != AzureResource {
			if !strings.HasSuffix(host, "."+strings.TrimPrefix(want, "https://")) {
				t.Errorf("host %q does not end with .%s", host, strings.TrimPrefix(want, "https://"))
			}
		}
	}
}
