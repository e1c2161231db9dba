package azurekeys_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/azurekeys"
	"github.com/kvrotator/kvrotator/rotation"
)

// The attacker of issue #10 may edit the tags of one managed secret and nothing else. kvrotator's
// identity can regenerate the keys of many resources; the operator's bindings say which ones a secret
// may make it reach. These tests are that attacker.

// Resources of two teams in one subscription that kvrotator's identity can manage.
var (
	teamA        = "/subscriptions/" + sub + "/resourceGroups/team-a/providers/"
	teamB        = "/subscriptions/" + sub + "/resourceGroups/team-b/providers/"
	teamAStorage = teamA + "Microsoft.Storage/storageAccounts/teamadata"
	teamACosmos  = teamA + "Microsoft.DocumentDB/databaseAccounts/teamadb"
	teamBStorage = teamB + "Microsoft.Storage/storageAccounts/teambdata"
	teamBCosmos  = teamB + "Microsoft.DocumentDB/databaseAccounts/teambdb"
	teamBOpenAI  = teamB + "Microsoft.CognitiveServices/accounts/teamb-openai"
)

// teamAStorageAccounts is the binding of the common case: every storage account of one resource
// group, for the secrets of the test vault.
func teamAStorageAccounts(t testing.TB) *providertest.Options {
	return bound(t, "/subscriptions/"+sub+"/resourceGroups/team-a/providers/Microsoft.Storage/storageAccounts/*")
}

// assertUnbound checks that an outcome is the engine's refusal of an unbound ProviderAddress: failed,
// permanent, a *bindings.UnboundError that is a *providers.ConfigError naming the tag.
func assertUnbound(t *testing.T, o rotation.Outcome, address string) {
	t.Helper()
	var ue *bindings.UnboundError
	var ce *providers.ConfigError
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ue) || !errors.As(o.Err, &ce) ||
		ce.Tag != azurekeys.TagAddress || ue.Ref.Kind != providers.RefResource || !strings.EqualFold(ue.Ref.Value, address) {
		t.Fatalf("outcome %s %s %q (%T), want a permanent unbound-reference error naming %s", o.Kind, o.Class, o.Reason, o.Err, azurekeys.TagAddress)
	}
	if !strings.Contains(o.Reason, "not bound") {
		t.Fatalf("the reason does not say the address is not bound: %q", o.Reason)
	}
}

// sweepOutcome is the sweep's rotation outcome for a secret (it also reports a refused secret as
// overdue when it nears expiry).
func sweepOutcome(t *testing.T, rep rotation.SweepReport, secret string) rotation.Outcome {
	t.Helper()
	for _, o := range rep.Outcomes {
		if o.Secret == secret && o.Kind != rotation.KindOverdue {
			return o
		}
	}
	t.Fatalf("the sweep reported nothing for %s", secret)
	return rotation.Outcome{}
}

// A secret whose ProviderAddress names another team's Storage account, Cosmos DB account or Azure
// OpenAI resource is refused by every trigger before anything is contacted: no token, no ARM call, no
// regeneration, the vault unchanged. The control proves each attack is real: with a binding that
// allows the resource, the same secret regenerates its key.
func TestAttackAnotherTeamsResource(t *testing.T) {
	for _, tc := range []struct{ name, id, slot, other string }{
		{"storage account", teamBStorage, "key1", "key2"},
		{"cosmos db", teamBCosmos, "primary", "secondary"},
		{"azure openai", teamBOpenAI, "Key1", "Key2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.add(tc.id)
			f.add(teamAStorage)
			keysBefore := f.key(tc.id, tc.other)
			h := providertest.New(t, azurekeys.Name, f.provider(), teamAStorageAccounts(t))
			// The attacker's own secret, re-tagged to point at the other team's resource.
			v := h.Seed("mine", "whatever-the-attacker-had", secretTags(tc.id, tc.slot), due)

			rep := h.Sweep()
			for _, o := range []rotation.Outcome{h.Manual("mine", true), h.Event("mine", v), h.Manual("mine", false), sweepOutcome(t, rep, "mine")} {
				assertUnbound(t, o, tc.id)
			}
			if n := f.requestCount(""); n != 0 || len(f.cred.Scopes()) != 0 {
				t.Fatalf("%d requests and %d token requests: the refused secret reached Azure", n, len(f.cred.Scopes()))
			}
			if got := f.regenerated(tc.id); len(got) != 0 || f.key(tc.id, tc.other) != keysBefore {
				t.Fatalf("regenerated %v on another team's resource", got)
			}
			if h.Versions("mine") != 1 || h.Latest("mine").Value.Reveal() != "whatever-the-attacker-had" {
				t.Fatal("the attacker's secret received a key")
			}

			t.Run("control: bound, the same secret rotates", func(t *testing.T) {
				f := newFake(t)
				f.add(tc.id)
				h := providertest.New(t, azurekeys.Name, f.provider(), bound(t, tc.id))
				v := h.Seed("mine", f.key(tc.id, tc.slot), secretTags(tc.id, tc.slot), due)
				if o := h.Event("mine", v); o.Kind != rotation.KindRotated {
					t.Fatalf("%s %q", o.Kind, o.Reason)
				}
				if got := f.regenerated(tc.id); !slices.Equal(got, []string{tc.other}) {
					t.Fatalf("regenerated %v", got)
				}
			})
		})
	}
}

// The common binding, "every storage account of resource group team-a", allows team-a's account and
// refuses team-b's account and a Cosmos DB account in team-a (another type): one sweep rotates the
// first and contacts nothing for the other two.
func TestBindingEveryStorageAccountOfOneGroup(t *testing.T) {
	f := newFake(t)
	for _, id := range []string{teamAStorage, teamBStorage, teamACosmos} {
		f.add(id)
	}
	h := providertest.New(t, azurekeys.Name, f.provider(), teamAStorageAccounts(t))
	h.Seed("team-a-storage", f.key(teamAStorage, "key1"), secretTags(teamAStorage, "key1"), due)
	h.Seed("team-b-storage", "stale", secretTags(teamBStorage, "key1"), due)
	h.Seed("team-a-cosmos", "stale", secretTags(teamACosmos, "primary"), due)

	rep := h.Sweep()
	if o := sweepOutcome(t, rep, "team-a-storage"); o.Kind != rotation.KindRotated {
		t.Fatalf("team-a's storage account: %s %q", o.Kind, o.Reason)
	}
	if h.Latest("team-a-storage").Value.Reveal() != f.key(teamAStorage, "key2") || h.Latest("team-a-storage").Tags["CredentialId"] != "key2" {
		t.Fatal("team-a's secret does not hold the new key2")
	}
	assertUnbound(t, sweepOutcome(t, rep, "team-b-storage"), teamBStorage)
	assertUnbound(t, sweepOutcome(t, rep, "team-a-cosmos"), teamACosmos)

	if got := f.regenerated(teamAStorage); !slices.Equal(got, []string{"key2"}) {
		t.Fatalf("team-a's account: regenerated %v, want [key2]", got)
	}
	if n := f.requestCount("/resourcegroups/team-b/") + f.requestCount("/microsoft.documentdb/") + f.requestCount(".documents."); n != 0 {
		t.Fatalf("%d requests for the refused resources", n)
	}
	if len(f.regenerated(teamBStorage))+len(f.regenerated(teamACosmos)) != 0 {
		t.Fatal("a refused resource was regenerated")
	}
	for _, s := range []string{"team-b-storage", "team-a-cosmos"} {
		if h.Versions(s) != 1 {
			t.Fatalf("%s got a new version", s)
		}
	}
}

// A secret made for Microsoft's Key Vault rotation sample for Storage account keys (tags CredentialId,
// ProviderAddress, ValidityPeriodDays, value the account key) keeps working once it has a
// rotation-provider tag and the operator binds its ProviderAddress.
func TestAzureSampleSecretKeepsWorking(t *testing.T) {
	f := newFake(t)
	h := providertest.New(t, azurekeys.Name, f.provider(), bound(t, storageID))
	tags := map[string]string{
		"rotation-provider":  azurekeys.Name,
		"CredentialId":       "key1",
		"ProviderAddress":    storageID,
		"ValidityPeriodDays": "60",
	}
	v := h.Seed("storageKey", f.key(storageID, "key1"), tags, due)
	if o := h.Event("storageKey", v); o.Kind != rotation.KindRotated {
		t.Fatalf("%s %q", o.Kind, o.Reason)
	}
	latest := h.Latest("storageKey")
	if latest.Tags["CredentialId"] != "key2" || latest.Value.Reveal() != f.key(storageID, "key2") {
		t.Fatal("the new version is not key2's new key")
	}
	if latest.Expires == nil || latest.Expires.Sub(h.Clock.Now()) < 59*24*time.Hour || latest.Expires.Sub(h.Clock.Now()) > 61*24*time.Hour {
		t.Fatalf("expires %v, want ValidityPeriodDays=60 from now", latest.Expires)
	}
	if got := f.regenerated(storageID); !slices.Equal(got, []string{"key2"}) {
		t.Fatalf("regenerated %v", got)
	}
}

// The reference is the resource id the provider calls: as written for a well-formed id, with empty
// segments dropped (azcore drops them when parsing, so the bound string is the called one), and as
// written for what does not parse (Validate refuses it; never bound by accident).
func TestReferences(t *testing.T) {
	p := azurekeys.New()
	for _, tc := range []struct{ address, want string }{
		{storageID, storageID},
		{"  " + storageID + " ", storageID},
		{strings.Replace(storageID, "/resourceGroups/app/", "/resourceGroups//app/", 1), storageID},
		{"appdata", "appdata"},
		{"", ""},
	} {
		refs := p.References(providers.Params{"ProviderAddress": tc.address, "CredentialId": "key1"})
		want := []providers.Reference{{Kind: providers.RefResource, Tag: azurekeys.TagAddress, Value: tc.want}}
		if !slices.Equal(refs, want) {
			t.Errorf("References(%q) = %v, want %v", tc.address, refs, want)
		}
	}
}

// A request whose Address is not the ProviderAddress tag (the one the bindings were checked against)
// is refused before anything is contacted.
func TestAddressMustBeTheBoundTag(t *testing.T) {
	f := newFake(t)
	f.add(teamBStorage)
	req := request(storageID, "key1", f.key(storageID, "key1"), nil)
	req.Address = teamBStorage
	_, err := f.provider().Create(t.Context(), req)
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "not the ProviderAddress tag") {
		t.Fatalf("err = %v", err)
	}
	if n := f.requestCount(""); n != 0 {
		t.Fatalf("%d requests", n)
	}
}
