package datadog_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/datadog"
)

// tags is a valid tag set with changes applied ("" deletes a tag).
func tags(changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":    "datadog",
		"CredentialId":         "00112233-4455-6677-8899-aabbccddeeff",
		"datadog-admin-secret": "datadog-admin",
	}
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == "" {
			delete(p, changes[i])
			continue
		}
		p[changes[i]] = changes[i+1]
	}
	return p
}

func TestValidateAccepts(t *testing.T) {
	for _, p := range []providers.Params{
		tags(),
		tags("CredentialId", ""),
		tags("datadog-site", "datadoghq.eu"),
		tags("datadog-site", "US3.datadoghq.com"),
		tags("datadog-site", "app.ddog-gov.com"),
		tags("datadog-site", "https://api.datadoghq.com/"),
		tags("datadog-site", "https://proxy.internal.example.com:8443/datadog"),
		tags("datadog-site", "http://127.0.0.1:8080"),
		tags("datadog-key-type", "API"),
		tags("datadog-key-type", "application"),
		tags("datadog-key-type", "application", "datadog-service-account", "00000000-0000-1234-0000-000000000000"),
		tags("datadog-key-type", "application", "datadog-scopes", " dashboards_read , metrics_read "),
		tags("Datadog-Admin-Secret", "other-admin", "datadog-admin-secret", ""),
	} {
		if err := datadog.New().Validate(p); err != nil {
			t.Errorf("Validate(%v): %v", p, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params providers.Params
		tag    string
		reason string
	}{
		{"admin secret missing", tags("datadog-admin-secret", ""), "datadog-admin-secret", "missing"},
		{"admin secret not a name", tags("datadog-admin-secret", `{"api_key":"x"}`), "datadog-admin-secret", "not a Key Vault secret name"},
		{"unknown site", tags("datadog-site", "datadoghq.cn"), "datadog-site", "not a Datadog site"},
		{"http to a remote host", tags("datadog-site", "http://api.datadoghq.com"), "datadog-site", "use https"},
		{"user info", tags("datadog-site", "https://u:p@api.datadoghq.com"), "datadog-site", "user information"},
		{"query", tags("datadog-site", "https://api.datadoghq.com/?x=1"), "datadog-site", "query"},
		{"unknown key type", tags("datadog-key-type", "app"), "datadog-key-type", "must be api"},
		{"service account for API keys", tags("datadog-service-account", "00000000-0000-1234-0000-000000000000"), "datadog-service-account", "belong to the organization"},
		{"service account not a UUID", tags("datadog-key-type", "application", "datadog-service-account", "robot"), "datadog-service-account", "not a service account id"},
		{"scopes for API keys", tags("datadog-scopes", "dashboards_read"), "datadog-scopes", "only application keys"},
		{"empty scope", tags("datadog-key-type", "application", "datadog-scopes", "a,,b"), "datadog-scopes", "empty item"},
		{"bad scope", tags("datadog-key-type", "application", "datadog-scopes", "Dashboards.Read"), "datadog-scopes", "not a Datadog permission name"},
		{"duplicate scope", tags("datadog-key-type", "application", "datadog-scopes", "a_b,a_b"), "datadog-scopes", "listed twice"},
		{"unknown tag", tags("datadog-sites", "datadoghq.eu"), "datadog-sites", "unknown tag"},
		{"CredentialId not an id", tags("CredentialId", "abc.def"), "CredentialId", "not a Datadog key id"},
		{"tag twice", tags("DATADOG-SITE", "datadoghq.eu", "datadog-site", "datadoghq.com"), "datadog-site", "set 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce := wantConfigError(t, datadog.New().Validate(tc.params), tc.tag)
			if !strings.Contains(ce.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", ce, tc.reason)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := datadog.New().Validate(providers.Params{"datadog-site": "http://example.com", "datadog-key-type": "x", "datadog-colour": "blue"})
	n := 0
	for _, tag := range []string{"datadog-admin-secret", "datadog-site", "datadog-key-type", "datadog-colour"} {
		if strings.Contains(err.Error(), tag) {
			n++
		}
	}
	var ce *providers.ConfigError
	if n != 4 || !providers.IsPermanent(err) || !errors.As(err, &ce) {
		t.Fatalf("Validate reported %d of 4 problems: %v", n, err)
	}
}

func TestValidateNeverRepeatsAKeyPutInATag(t *testing.T) {
	key := "0123456789abcdef0123456789abcdef"
	for _, p := range []providers.Params{
		tags("datadog-admin-secret", key+"!"),
		tags("datadog-site", "https://u:"+key+"@api.datadoghq.com"),
		tags("CredentialId", key+"."),
	} {
		err := datadog.New().Validate(p)
		if err == nil {
			t.Fatalf("Validate(%v) accepted a key in a tag", p)
		}
		clean(t, err, key)
	}
}

func TestReferences(t *testing.T) {
	type ref struct {
		kind    providers.RefKind
		tag     string
		value   string
		builtin bool
	}
	for _, tc := range []struct {
		name string
		p    providers.Params
		want []ref
	}{
		{"API key, default site", tags(), []ref{
			{providers.RefSecret, "datadog-admin-secret", "datadog-admin", false},
			{providers.RefURL, "datadog-site", "https://api.datadoghq.com", true},
			{providers.RefAccount, "datadog-key-type", "organization", true},
		}},
		{"EU site by name", tags("datadog-site", "datadoghq.eu"), []ref{
			{providers.RefSecret, "datadog-admin-secret", "datadog-admin", false},
			{providers.RefURL, "datadog-site", "https://api.datadoghq.eu", true},
			{providers.RefAccount, "datadog-key-type", "organization", true},
		}},
		{"a site's own URL", tags("datadog-site", "https://API.us5.datadoghq.com/"), []ref{
			{providers.RefSecret, "datadog-admin-secret", "datadog-admin", false},
			{providers.RefURL, "datadog-site", "https://API.us5.datadoghq.com", true},
			{providers.RefAccount, "datadog-key-type", "organization", true},
		}},
		{"another URL", tags("datadog-site", "https://proxy.example.com/dd"), []ref{
			{providers.RefSecret, "datadog-admin-secret", "datadog-admin", false},
			{providers.RefURL, "datadog-site", "https://proxy.example.com/dd", false},
			{providers.RefAccount, "datadog-key-type", "organization", true},
		}},
		{"the admin user's application keys", tags("datadog-key-type", "application"), []ref{
			{providers.RefSecret, "datadog-admin-secret", "datadog-admin", false},
			{providers.RefURL, "datadog-site", "https://api.datadoghq.com", true},
			{providers.RefAccount, "datadog-key-type", "current-user", false},
		}},
		{"a service account's application keys", tags("datadog-key-type", "application", "datadog-service-account", "00000000-0000-1234-0000-00000000ABCD"), []ref{
			{providers.RefSecret, "datadog-admin-secret", "datadog-admin", false},
			{providers.RefURL, "datadog-site", "https://api.datadoghq.com", true},
			{providers.RefAccount, "datadog-service-account", "00000000-0000-1234-0000-00000000abcd", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []ref
			for _, r := range datadog.New().References(tc.p) {
				got = append(got, ref{r.Kind, r.Tag, r.Value, r.Builtin})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("References\n got %v\nwant %v", got, tc.want)
			}
		})
	}
	if refs := datadog.New().References(tags("datadog-admin-secret", "")); refs != nil {
		t.Errorf("References of invalid tags: %v", refs)
	}
}

func TestSites(t *testing.T) {
	for site, want := range map[string]string{
		"datadoghq.com": "https://api.datadoghq.com", "us3.datadoghq.com": "https://api.us3.datadoghq.com",
		"us5.datadoghq.com": "https://api.us5.datadoghq.com", "datadoghq.eu": "https://api.datadoghq.eu",
		"ap1.datadoghq.com": "https://api.ap1.datadoghq.com", "ddog-gov.com": "https://api.ddog-gov.com",
	} {
		if got, ok := datadog.SiteURL(site); !ok || got != want {
			t.Errorf("SiteURL(%q) = %q, %v; want %q", site, got, ok, want)
		}
	}
	if _, ok := datadog.SiteURL("api.datadoghq.com"); ok {
		t.Error("an API host is not a site name")
	}
}
