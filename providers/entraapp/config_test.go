package entraapp_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraapp"
)

const (
	objectID = "3f2a6b1c-9d4e-4f70-8a1b-2c3d4e5f6a7b"
	clientID = "11111111-2222-4333-8444-555555555555"
	tenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	keyID    = "f0b0b335-1d71-4883-8f98-567911bfdca6"
)

func TestValidate(t *testing.T) {
	base := func() providers.Params {
		return providers.Params{"rotation-provider": entraapp.Name, "ProviderAddress": objectID, "entra-tenant-id": tenantID, "CredentialId": keyID}
	}
	for _, tc := range []struct {
		name string
		set  map[string]string // "" deletes the tag
		tags []string          // the tags the errors must name; none: valid
	}{
		{name: "object id and tenant", set: nil},
		{name: "client id instead of object id", set: map[string]string{"ProviderAddress": "", "entra-app-id": clientID}},
		{name: "both ids", set: map[string]string{"entra-app-id": clientID}},
		{name: "tenant by domain", set: map[string]string{"entra-tenant-id": "contoso.onmicrosoft.com"}},
		{name: "tag names in any case", set: map[string]string{"entra-tenant-id": "", "ENTRA-Tenant-ID": tenantID, "providerAddress": "", "ProviderAddress": "", "PROVIDERADDRESS": objectID}},
		{name: "lifetime at most the validity", set: map[string]string{"ValidityPeriodDays": "90", "entra-secret-lifetime-days": "90"}},
		{name: "lifetime bounds", set: map[string]string{"entra-secret-lifetime-days": "31"}},
		{name: "no CredentialId yet", set: map[string]string{"CredentialId": ""}},

		{name: "no application", set: map[string]string{"ProviderAddress": ""}, tags: []string{"ProviderAddress"}},
		{name: "object id not a GUID", set: map[string]string{"ProviderAddress": "/subscriptions/x/resourceGroups/y"}, tags: []string{"ProviderAddress"}},
		{name: "client id not a GUID", set: map[string]string{"entra-app-id": "my-app"}, tags: []string{"entra-app-id"}},
		{name: "no tenant", set: map[string]string{"entra-tenant-id": ""}, tags: []string{"entra-tenant-id"}},
		{name: "multi-tenant alias", set: map[string]string{"entra-tenant-id": "common"}, tags: []string{"entra-tenant-id"}},
		{name: "tenant with a path", set: map[string]string{"entra-tenant-id": "contoso.com/../evil"}, tags: []string{"entra-tenant-id"}},
		{name: "lifetime not a number", set: map[string]string{"entra-secret-lifetime-days": "ninety"}, tags: []string{"entra-secret-lifetime-days"}},
		{name: "lifetime inside the near-expiry window", set: map[string]string{"entra-secret-lifetime-days": "30"}, tags: []string{"entra-secret-lifetime-days"}},
		{name: "lifetime too long", set: map[string]string{"entra-secret-lifetime-days": "3651"}, tags: []string{"entra-secret-lifetime-days"}},
		{name: "lifetime beyond the validity", set: map[string]string{"ValidityPeriodDays": "60", "entra-secret-lifetime-days": "90"}, tags: []string{"entra-secret-lifetime-days"}},
		{name: "CredentialId not a keyId", set: map[string]string{"CredentialId": "key1"}, tags: []string{"CredentialId"}},
		{name: "misspelt tag", set: map[string]string{"entra-tenant": tenantID}, tags: []string{"entra-tenant"}},
		{name: "tag twice in different case", set: map[string]string{"Entra-Tenant-Id": tenantID}, tags: []string{"entra-tenant-id"}},
		{name: "everything wrong at once", set: map[string]string{"ProviderAddress": "x", "entra-tenant-id": "", "entra-secret-lifetime-days": "1"},
			tags: []string{"ProviderAddress", "entra-tenant-id", "entra-secret-lifetime-days"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			for k, v := range tc.set {
				if v == "" {
					delete(p, k)
				} else {
					p[k] = v
				}
			}
			err := entraapp.New().Validate(p)
			if len(tc.tags) == 0 {
				if err != nil {
					t.Fatalf("valid tags rejected: %v", err)
				}
				return
			}
			if err == nil || !providers.IsPermanent(err) {
				t.Fatalf("want a configuration error naming %v, got %v", tc.tags, err)
			}
			named := map[string]bool{}
			for _, e := range unjoin(err) {
				var ce *providers.ConfigError
				if !errors.As(e, &ce) {
					t.Fatalf("%v is not a ConfigError", e)
				}
				named[strings.ToLower(ce.Tag)] = true
			}
			for _, tag := range tc.tags {
				if !named[strings.ToLower(tag)] {
					t.Fatalf("%q does not name tag %s", err, tag)
				}
			}
			if len(named) != len(tc.tags) {
				t.Fatalf("%q names %v, want only %v", err, named, tc.tags)
			}
		})
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
