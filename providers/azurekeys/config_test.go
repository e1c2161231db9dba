package azurekeys_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/azurekeys"
)

func TestValidate(t *testing.T) {
	tags := func(address, credentialID string, extra ...string) providers.Params {
		p := providers.Params{"rotation-provider": azurekeys.Name, "ValidityPeriodDays": "60"}
		if address != "" {
			p["ProviderAddress"] = address
		}
		if credentialID != "" {
			p["CredentialId"] = credentialID
		}
		for i := 0; i+1 < len(extra); i += 2 {
			p[extra[i]] = extra[i+1]
		}
		return p
	}
	rg := "/subscriptions/" + sub + "/resourceGroups/app/providers/"
	cases := []struct {
		name   string
		params providers.Params
		tag    string // the tag the (first) ConfigError names; "" when valid
		says   string
	}{
		{"storage", tags(storageID, "key1"), "", ""},
		{"storage, tag names in other case", providers.Params{"providerAddress": storageID, "credentialid": "KEY2", "Azure-Keys-Format": "Connection-String"}, "", ""},
		{"cosmos read-only slot", tags(cosmosID, "secondaryReadonly"), "", ""},
		{"service bus topic rule", tags(rg+"Microsoft.ServiceBus/namespaces/bus/topics/t1/authorizationRules/r1", "PrimaryKey"), "", ""},
		{"event grid domain", tags(rg+"Microsoft.EventGrid/domains/d1", "key1", "azure-keys-verify", "list-keys"), "", ""},
		{"app configuration, spaced slot", tags(appConfigID, "Secondary Read Only"), "", ""},
		{"explicit api-version", tags(redisID, "Primary", "azure-keys-api-version", "2023-08-01"), "", ""},

		{"missing ProviderAddress", tags("", "key1"), "ProviderAddress", "missing"},
		{"ProviderAddress not a resource id", tags("appdata", "key1"), "ProviderAddress", "not an ARM resource id"},
		{"ProviderAddress a URL", tags("https://appdata.blob.core.windows.net/", "key1"), "ProviderAddress", "not an ARM resource id"},
		{"ProviderAddress with a query", tags(storageID+"?api-version=1", "key1"), "ProviderAddress", "may not contain"},
		{"subscription not a GUID", tags("/subscriptions/prod/resourceGroups/app/providers/Microsoft.Storage/storageAccounts/appdata", "key1"), "ProviderAddress", "GUID"},
		{"unsupported type", tags(rg+"Microsoft.Web/sites/app", "key1"), "ProviderAddress", "Microsoft.Web/sites is not a resource type"},
		{"storage sub-resource", tags(storageID+"/blobServices/default", "key1"), "ProviderAddress", "supported type is Microsoft.Storage/storageAccounts"},
		{"service bus namespace instead of its rule", tags(rg+"Microsoft.ServiceBus/namespaces/bus", "PrimaryKey"), "ProviderAddress", "authorization rule"},
		{"extension resource on a storage account", tags(storageID+"/providers/Microsoft.Storage/storageAccounts/other", "key1"), "ProviderAddress", "not a Storage account resource id"},
		{"subscription-level id", tags("/subscriptions/"+sub+"/providers/Microsoft.Storage/storageAccounts/appdata", "key1"), "ProviderAddress", "in a resource group"},
		{"storage name that is not a host label", tags(rg+"Microsoft.Storage/storageAccounts/app.evil.com", "key1"), "ProviderAddress", "not a valid Storage account name"},

		{"missing CredentialId", tags(storageID, ""), "CredentialId", "missing"},
		{"CredentialId of another type", tags(storageID, "primary"), "CredentialId", "use key1 or key2"},
		{"CredentialId kerb1", tags(storageID, "kerb1"), "CredentialId", "not a key slot of a Storage account"},
		{"redis CredentialId key1", tags(redisID, "key1"), "CredentialId", "Primary or Secondary"},

		{"bad format", tags(storageID, "key1", "azure-keys-format", "json"), "azure-keys-format", "use key or connection-string"},
		{"connection string of a type without one", tags(cognitiveID, "Key1", "azure-keys-format", "connection-string"), "azure-keys-format", "has no connection string"},
		{"bad verify", tags(storageID, "key1", "azure-keys-verify", "ping"), "azure-keys-verify", "use auto"},
		{"data-plane for a type without one", tags(redisID, "Primary", "azure-keys-verify", "data-plane"), "azure-keys-verify", "no data-plane check"},
		{"bad api-version", tags(storageID, "key1", "azure-keys-api-version", "latest"), "azure-keys-api-version", "not an api-version"},
		{"misspelt provider tag", tags(storageID, "key1", "azure-keys-fromat", "key"), "azure-keys-fromat", "unknown tag"},
	}
	p := azurekeys.New()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Validate(tc.params)
			if tc.tag == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var ce *providers.ConfigError
			if !errors.As(err, &ce) || !providers.IsPermanent(err) {
				t.Fatalf("Validate = %v, want a ConfigError", err)
			}
			if !strings.EqualFold(ce.Tag, tc.tag) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Validate = %v, want tag %s saying %q", err, tc.tag, tc.says)
			}
		})
	}
}

// Several problems are reported together.
func TestValidateReportsEveryProblem(t *testing.T) {
	err := azurekeys.New().Validate(providers.Params{"ProviderAddress": storageID, "CredentialId": "primary",
		"azure-keys-format": "xml", "azure-keys-verify": "maybe"})
	for _, tag := range []string{"CredentialId", "azure-keys-format", "azure-keys-verify"} {
		if err == nil || !strings.Contains(err.Error(), "tag "+tag) {
			t.Errorf("%v does not report %s", err, tag)
		}
	}
}
