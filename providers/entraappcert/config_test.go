package entraappcert_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraappcert"
	"github.com/kvrotator/kvrotator/providers/registry"
)

const (
	objectID = "3f2a6b1c-9d4e-4f70-8a1b-2c3d4e5f6a7b"
	clientID = "11111111-2222-4333-8444-555555555555"
	tenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	keyID    = "f0b0b335-1d71-4883-8f98-567911bfdca6"
)

func baseParams() providers.Params {
	return providers.Params{"rotation-provider": entraappcert.Name, "ProviderAddress": objectID, "entra-tenant-id": tenantID, "CredentialId": keyID}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  map[string]string // "" deletes the tag
		tags []string          // the tags the errors must name; none: valid
	}{
		{name: "object id and tenant", set: nil},
		{name: "client id instead of object id", set: map[string]string{"ProviderAddress": "", "entra-app-id": clientID}},
		{name: "both ids", set: map[string]string{"entra-app-id": clientID}},
		{name: "tenant by domain", set: map[string]string{"entra-tenant-id": "contoso.onmicrosoft.com"}},
		{name: "tag names in any case", set: map[string]string{"entra-tenant-id": "", "ENTRA-Tenant-ID": tenantID, "ProviderAddress": "", "PROVIDERADDRESS": objectID}},
		{name: "pem", set: map[string]string{"entra-cert-format": "pem"}},
		{name: "pkcs12 in any case", set: map[string]string{"entra-cert-format": "PKCS12"}},
		{name: "key sizes", set: map[string]string{"entra-cert-key-size": "4096"}},
		{name: "lifetime at most the validity", set: map[string]string{"ValidityPeriodDays": "365", "entra-cert-lifetime-days": "365"}},
		{name: "no CredentialId yet", set: map[string]string{"CredentialId": ""}},

		{name: "no application", set: map[string]string{"ProviderAddress": ""}, tags: []string{"ProviderAddress"}},
		{name: "object id not a GUID", set: map[string]string{"ProviderAddress": "/subscriptions/x/resourceGroups/y"}, tags: []string{"ProviderAddress"}},
		{name: "client id not a GUID", set: map[string]string{"entra-app-id": "my-app"}, tags: []string{"entra-app-id"}},
		{name: "no tenant", set: map[string]string{"entra-tenant-id": ""}, tags: []string{"entra-tenant-id"}},
		{name: "multi-tenant alias", set: map[string]string{"entra-tenant-id": "organizations"}, tags: []string{"entra-tenant-id"}},
		{name: "tenant with a path", set: map[string]string{"entra-tenant-id": "contoso.com/../evil"}, tags: []string{"entra-tenant-id"}},
		{name: "a format Key Vault has no content type for", set: map[string]string{"entra-cert-format": "der"}, tags: []string{"entra-cert-format"}},
		{name: "a key too small", set: map[string]string{"entra-cert-key-size": "1024"}, tags: []string{"entra-cert-key-size"}},
		{name: "lifetime inside the near-expiry window", set: map[string]string{"entra-cert-lifetime-days": "30"}, tags: []string{"entra-cert-lifetime-days"}},
		{name: "lifetime beyond the validity", set: map[string]string{"ValidityPeriodDays": "60", "entra-cert-lifetime-days": "90"}, tags: []string{"entra-cert-lifetime-days"}},
		{name: "the client secret provider's lifetime tag", set: map[string]string{"entra-secret-lifetime-days": "90"}, tags: []string{"entra-secret-lifetime-days"}},
		{name: "CredentialId not a keyId", set: map[string]string{"CredentialId": "key1"}, tags: []string{"CredentialId"}},
		{name: "tag twice in different case", set: map[string]string{"Entra-Cert-Format": "pem", "entra-cert-format": "pkcs12"}, tags: []string{"entra-cert-format"}},
		{name: "everything wrong at once", set: map[string]string{"ProviderAddress": "x", "entra-tenant-id": "", "entra-cert-lifetime-days": "1"},
			tags: []string{"ProviderAddress", "entra-tenant-id", "entra-cert-lifetime-days"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := baseParams()
			for k, v := range tc.set {
				if v == "" {
					delete(p, k)
				} else {
					p[k] = v
				}
			}
			err := entraappcert.New().Validate(p)
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

// References name every application and tenant a tag makes the provider reach, lower-cased, even when
// the tags are malformed; nothing else (Graph and the authority come from the cloud, not from tags).
func TestReferences(t *testing.T) {
	p := baseParams()
	p["entra-app-id"] = strings.ToUpper(clientID)
	p["entra-cert-format"] = "pkcs12"
	got := entraappcert.New().References(p)
	want := []providers.Reference{
		{Kind: providers.RefApplication, Tag: "ProviderAddress", Value: objectID},
		{Kind: providers.RefApplication, Tag: "entra-app-id", Value: clientID},
		{Kind: providers.RefTenant, Tag: "entra-tenant-id", Value: tenantID},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v", got)
	}
	// Malformed or missing values are still declared: the engine checks them before anything runs.
	got = entraappcert.New().References(providers.Params{"ProviderAddress": " Not-A-GUID "})
	if len(got) != 2 || got[0].Value != "not-a-guid" || got[1].Kind != providers.RefTenant || got[1].Value != "" {
		t.Fatalf("got %v", got)
	}
}

// The provider registers itself, needs kvrotator's Azure environment, and is create-then-revoke.
func TestRegistration(t *testing.T) {
	if !slices.Contains(registry.Names(), entraappcert.Name) {
		t.Fatal("not registered")
	}
	set, problems := registry.Build(registry.Env{})
	if _, ok := set.Lookup(entraappcert.Name); ok || !errors.Is(problems[entraappcert.Name], registry.ErrNoAzure) {
		t.Fatalf("built without Azure: %v", problems)
	}
	set, _ = registry.Build(registry.Env{Azure: &registry.Azure{}})
	p, ok := set.Lookup(entraappcert.Name)
	if _, revoker := p.(providers.Revoker); !ok || !revoker || p.Shape() != providers.ShapeCreateRevoke {
		t.Fatal("not a create-then-revoke provider")
	}
}
