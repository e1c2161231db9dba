package entraapp_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraapp"
	"github.com/kvrotator/kvrotator/providers/entraapp/graphtest"
	"github.com/kvrotator/kvrotator/rotation"
)

// The attacker of issue #10 may edit the tags of one managed secret and nothing else. kvrotator's
// identity can add and remove the passwords of many applications; the operator's bindings say which
// application (and tenant) a secret may make it reach. These tests are that attacker.

// attackFixture is the fixture's application (bound, with its secret in the vault) plus another
// team's application on the same Graph, which kvrotator's identity could manage as well.
type attackFixture struct {
	*fixture
	h                     *providertest.Harness
	otherObject, otherApp string
}

// newAttack binds the fixture's application (object id and client id) and tenant for the secrets of
// the test vault, and nothing else.
func newAttack(t *testing.T) *attackFixture {
	t.Helper()
	f := newFixture(t)
	a := &attackFixture{fixture: f}
	a.otherObject, a.otherApp = f.srv.AddApp()
	f.srv.SeedPassword(a.otherObject, "team b", "TEAMB-secret-value-0123456789", time.Now().AddDate(0, 0, 20))
	a.h = providertest.New(t, entraapp.Name, f.provider(), &providertest.Options{
		Bindings: parseBindings(t, appBinding("orders-api", []string{f.objectID, f.appID}, []string{f.srv.TenantID}))})
	return a
}

// tags are the legitimate tags of the secret, with changes ("" removes a tag).
func (a *attackFixture) tags(changes map[string]string) map[string]string {
	all := map[string]string{
		"rotation-provider":    entraapp.Name,
		"ProviderAddress":      a.objectID,
		"entra-tenant-id":      a.srv.TenantID,
		"CredentialId":         a.initialID,
		"rotation-grace-hours": "1",
	}
	for k, v := range changes {
		if v == "" {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	return all
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

// A secret whose tags name an application or a tenant the bindings do not allow is refused by every
// trigger with a permanent error naming the tag, before anything is contacted: no Graph token, no
// Graph call, no sign-in, no password added anywhere, the vault unchanged. The control proves the
// attack is real: with a binding that allows the other application, the same tags add a password to it.
func TestAttackUnboundApplicationOrTenant(t *testing.T) {
	const otherTenant = "0b0b0b0b-0000-4000-8000-000000000001"
	for _, tc := range []struct {
		name    string
		changes func(a *attackFixture) map[string]string
		tag     string
		kind    providers.RefKind
	}{
		{"ProviderAddress names another team's application", func(a *attackFixture) map[string]string {
			return map[string]string{"ProviderAddress": a.otherObject, "CredentialId": ""}
		}, entraapp.TagAddress, providers.RefApplication},
		{"entra-app-id names another team's application", func(a *attackFixture) map[string]string {
			return map[string]string{"ProviderAddress": "", "entra-app-id": a.otherApp, "CredentialId": ""}
		}, entraapp.TagAppID, providers.RefApplication},
		{"entra-app-id added beside the bound ProviderAddress", func(a *attackFixture) map[string]string {
			return map[string]string{"entra-app-id": strings.ToUpper(a.otherApp)}
		}, entraapp.TagAppID, providers.RefApplication},
		{"a tenant that is not bound", func(*attackFixture) map[string]string {
			return map[string]string{"entra-tenant-id": otherTenant}
		}, entraapp.TagTenant, providers.RefTenant},
		{"the bound tenant by a domain that is not bound", func(*attackFixture) map[string]string {
			return map[string]string{"entra-tenant-id": graphtest.Domain}
		}, entraapp.TagTenant, providers.RefTenant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAttack(t)
			before := map[string][]graphtest.Password{a.objectID: a.srv.Passwords(a.objectID), a.otherObject: a.srv.Passwords(a.otherObject)}
			v := a.h.Seed(secretName, initialSecret, a.tags(tc.changes(a)), 5*24*time.Hour)

			rep := a.h.Sweep()
			for _, o := range []rotation.Outcome{a.h.Manual(secretName, true), a.h.Event(secretName, v), a.h.Manual(secretName, false), sweepOutcome(t, rep, secretName)} {
				var ue *bindings.UnboundError
				var ce *providers.ConfigError
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ue) || !errors.As(o.Err, &ce) ||
					!strings.EqualFold(ce.Tag, tc.tag) || ue.Ref.Kind != tc.kind || !strings.Contains(o.Reason, "not bound") {
					t.Fatalf("%s %s %q: want a permanent unbound-reference error naming %s", o.Kind, o.Class, o.Reason, tc.tag)
				}
				noSecrets(t, a.srv, o.Reason)
			}
			if n := a.srv.Requests(); n != 0 || len(a.srv.Scopes()) != 0 {
				t.Fatalf("%d requests and %d Graph token requests: the refused secret reached Graph", n, len(a.srv.Scopes()))
			}
			for obj, pws := range before {
				if got := a.srv.Passwords(obj); !slices.EqualFunc(got, pws, func(x, y graphtest.Password) bool { return x.KeyID == y.KeyID }) {
					t.Fatalf("the passwords of %s changed", obj)
				}
			}
			if a.h.Versions(secretName) != 1 || a.h.Latest(secretName).Value.Reveal() != initialSecret {
				t.Fatal("the vault changed")
			}
		})
	}

	t.Run("control: bound, the same tags add a password to the other application", func(t *testing.T) {
		f := newFixture(t)
		otherObject, otherApp := f.srv.AddApp()
		h := providertest.New(t, entraapp.Name, f.provider(), &providertest.Options{
			Bindings: parseBindings(t, appBinding("too-wide", []string{f.objectID, otherObject}, []string{f.srv.TenantID}))})
		v := h.Seed(secretName, initialSecret, map[string]string{"rotation-provider": entraapp.Name, "ProviderAddress": otherObject,
			"entra-tenant-id": f.srv.TenantID}, 5*24*time.Hour)
		if o := h.Event(secretName, v); o.Kind != rotation.KindRotated {
			t.Fatalf("%s %q", o.Kind, o.Reason)
		}
		if n := len(f.srv.Passwords(otherObject)); n != 1 || otherApp == "" {
			t.Fatalf("the other application holds %d passwords", n)
		}
	})
}

// revokeFixture is an application with three passwords whose secrets start differently: the one the
// replaced version held (initialSecret, "INI…"), the one the latest version holds ("CUR…"), and a
// third that belongs to neither ("OTH…"; another secret's, or a person's).
type revokeFixture struct {
	*fixture
	currentID, otherID string
}

const (
	currentSecret = "CUR8Q~current-secret-value-0123456789ab"
	otherSecret   = "OTH8Q~someone-elses-secret-value-012345"
)

func newRevokeFixture(t *testing.T) *revokeFixture {
	f := newFixture(t)
	r := &revokeFixture{fixture: f}
	r.currentID = f.srv.SeedPassword(f.objectID, entraapp.DisplayName("kvr-1111111111111111"), currentSecret, time.Now().AddDate(0, 3, 0))
	r.otherID = f.srv.SeedPassword(f.objectID, "someone else's", otherSecret, time.Now().AddDate(0, 3, 0))
	return r
}

// revokeRequest is what the sweep sends once the version holding currentSecret is the latest and the
// replaced version (initialSecret) is past its grace period.
func (r *revokeFixture) revokeRequest() providers.Request {
	req := r.request()
	req.Current, req.Retired, req.CredentialID = providers.NewValue(currentSecret), providers.NewValue(initialSecret), r.currentID
	req.Params["CredentialId"] = r.currentID
	return req
}

// Revoke refuses, by Graph's hint (the first three characters of each password's secret), to remove
// the password the current value holds and one that is not the retired value's, even when the keyId
// it is asked to remove is not the one req.CredentialID names; nothing is removed. It removes the
// retired value's password.
func TestRevokeChecksTheHint(t *testing.T) {
	t.Run("refuses the password req.Current holds", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		// The replaced version can no longer be read, and the credential id kvrotator was given for the
		// latest version is not the password it really holds: only the hint can tell.
		req.Retired, req.CredentialID = providers.Value{}, r.initialID
		err := r.provider().Revoke(ctx, req, r.currentID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "the current version holds") || !strings.Contains(err.Error(), r.currentID) {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("refuses a password that is not req.Retired's", func(t *testing.T) {
		r := newRevokeFixture(t)
		err := r.provider().Revoke(ctx, r.revokeRequest(), r.otherID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "not the replaced version's") || !strings.Contains(err.Error(), r.otherID) {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("refuses the current password even when it matches req.Retired", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		req.Retired, req.CredentialID = req.Current, r.initialID
		err := r.provider().Revoke(ctx, req, r.currentID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "the current version holds") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("removes the retired value's password", func(t *testing.T) {
		r := newRevokeFixture(t)
		if err := r.provider().Revoke(ctx, r.revokeRequest(), r.initialID); err != nil {
			t.Fatal(err)
		}
		if ids := r.keyIDs(); slices.Contains(ids, r.initialID) || len(ids) != 2 {
			t.Fatalf("passwords %v", ids)
		}
	})
	t.Run("values that start alike: removable when the current password accounts for the current value", func(t *testing.T) {
		f := newFixture(t)
		lookalike := initialSecret[:3] + "-a-different-secret-value-0123456789"
		currentID := f.srv.SeedPassword(f.objectID, "new", lookalike, time.Now().AddDate(0, 3, 0))
		req := f.request()
		req.Current, req.Retired = providers.NewValue(lookalike), providers.NewValue(initialSecret)

		req.CredentialID = "0a0a0a0a-0000-4000-8000-00000000000a" // names no listed password: cannot tell
		if err := f.provider().Revoke(ctx, req, f.initialID); !providers.IsPermanent(err) {
			t.Fatalf("got %v", err)
		}
		req.CredentialID = currentID
		if err := f.provider().Revoke(ctx, req, f.initialID); err != nil {
			t.Fatal(err)
		}
		if ids := f.keyIDs(); len(ids) != 1 || ids[0] != currentID {
			t.Fatalf("passwords %v", ids)
		}
	})
	t.Run("without hints only the keyId check is left", func(t *testing.T) {
		r := newRevokeFixture(t)
		r.srv.SetHints(false)
		if err := r.provider().Revoke(ctx, r.revokeRequest(), r.currentID); !providers.IsPermanent(err) {
			t.Fatalf("the password req.CredentialID names: %v", err)
		}
		if err := r.provider().Revoke(ctx, r.revokeRequest(), r.otherID); err != nil {
			t.Fatalf("without a hint the provider cannot tell: %v", err)
		}
	})
}

func (r *revokeFixture) assertNothingRemoved(t *testing.T, err error) {
	t.Helper()
	if n := r.srv.Calls(graphtest.RemovePassword); n != 0 {
		t.Fatalf("%d removePassword calls", n)
	}
	if ids := r.keyIDs(); len(ids) != 3 {
		t.Fatalf("passwords %v", ids)
	}
	r.clean(t, err)
	noSecrets(t, r.srv, err.Error(), currentSecret, otherSecret)
}

// Create removes an orphan of an interrupted attempt (a password with this rotation's display name),
// but not one whose hint says it holds the current value.
func TestCreateKeepsAnOrphanThatLooksCurrent(t *testing.T) {
	f := newFixture(t)
	req := f.request()
	lookalike := initialSecret[:3] + "-orphan-secret-value-0123456789abcdef"
	orphan := f.srv.SeedPassword(f.objectID, entraapp.DisplayName(idemKey), lookalike, time.Now().AddDate(0, 3, 0))
	req.Current, req.CredentialID = providers.NewValue(lookalike), ""
	delete(req.Params, "CredentialId")
	_, err := f.provider().Create(ctx, req)
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "the current version holds") {
		t.Fatalf("got %v", err)
	}
	if !slices.Contains(f.keyIDs(), orphan) || f.srv.Calls(graphtest.RemovePassword)+f.srv.Calls(graphtest.AddPassword) != 0 {
		t.Fatal("the password was removed or a new one added")
	}
}

// A secret made for Microsoft's Key Vault rotation sample for Entra app secrets (tags CredentialId,
// the password's keyId; ProviderAddress, the application's object id; ValidityPeriodDays) keeps
// working once it has rotation-provider and entra-tenant-id tags and the operator binds its
// application and tenant: it rotates, and after the grace period the old password is removed.
func TestAzureSampleSecretKeepsWorking(t *testing.T) {
	f := newFixture(t)
	h := providertest.New(t, entraapp.Name, f.provider(), &providertest.Options{
		Bindings: parseBindings(t, appBinding("sample", []string{f.objectID}, []string{f.srv.TenantID}))})
	v := h.Seed("appSecret", initialSecret, map[string]string{
		"rotation-provider":  entraapp.Name,
		"entra-tenant-id":    f.srv.TenantID,
		"CredentialId":       f.initialID,
		"ProviderAddress":    f.objectID,
		"ValidityPeriodDays": "60",
	}, 5*24*time.Hour)
	if o := h.Event("appSecret", v); o.Kind != rotation.KindRotated {
		t.Fatalf("%s %q", o.Kind, o.Reason)
	}
	latest := h.Latest("appSecret")
	mine := f.kvrotatorPasswords(rotation.IdempotencyKey(providertest.VaultName, "appSecret", v))
	if len(mine) != 1 || mine[0].KeyID != latest.Tags["CredentialId"] || mine[0].Secret != latest.Value.Reveal() {
		t.Fatal("the new version does not hold the new password")
	}
	if d := mine[0].End.Sub(h.Clock.Now()); d < 59*24*time.Hour || d > 61*24*time.Hour {
		t.Fatalf("the password lives %v, want ValidityPeriodDays=60", d)
	}
	h.Clock.Advance(25 * time.Hour)
	rep := h.Sweep()
	if o := sweepOutcome(t, rep, "appSecret"); o.Kind != rotation.KindRevoked {
		t.Fatalf("%s %q", o.Kind, o.Reason)
	}
	if ids := f.keyIDs(); len(ids) != 1 || ids[0] != latest.Tags["CredentialId"] {
		t.Fatalf("passwords %v", ids)
	}
}

// References name the application by each tag that names it and the tenant, lower-cased, whether or
// not the values are well formed (Validate refuses what is not).
func TestReferences(t *testing.T) {
	p := entraapp.New()
	got := p.References(providers.Params{"ProviderAddress": " " + strings.ToUpper(objectID) + " ", "Entra-App-Id": strings.ToUpper(clientID),
		"entra-tenant-id": "Contoso.onmicrosoft.com", "CredentialId": keyID})
	want := []providers.Reference{
		{Kind: providers.RefApplication, Tag: entraapp.TagAddress, Value: objectID},
		{Kind: providers.RefApplication, Tag: entraapp.TagAppID, Value: clientID},
		{Kind: providers.RefTenant, Tag: entraapp.TagTenant, Value: "contoso.onmicrosoft.com"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("References = %v, want %v", got, want)
	}
	got = p.References(providers.Params{"entra-app-id": "not-a-guid"})
	want = []providers.Reference{
		{Kind: providers.RefApplication, Tag: entraapp.TagAppID, Value: "not-a-guid"},
		{Kind: providers.RefTenant, Tag: entraapp.TagTenant, Value: ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("References of malformed tags = %v, want %v", got, want)
	}
}

// A request whose Address is not the ProviderAddress tag (the one the bindings were checked against)
// is refused before anything is contacted.
func TestAddressMustBeTheBoundTag(t *testing.T) {
	f := newFixture(t)
	otherObject, _ := f.srv.AddApp()
	req := f.request()
	req.Address = otherObject
	_, err := f.provider().Create(ctx, req)
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "not the ProviderAddress tag") {
		t.Fatalf("got %v", err)
	}
	req.Address = strings.ToUpper(f.objectID) // the same application
	if _, err := f.provider().Create(ctx, req); err != nil {
		t.Fatal(err)
	}
	if n := len(f.srv.Passwords(otherObject)); n != 0 {
		t.Fatalf("the other application holds %d passwords", n)
	}
}

// TestRevokeOfAHandWrittenIDNeedsProof: when the id to remove is only the CredentialId tag of a version
// kvrotator did not write, the replaced value must be that password: same hint and a working sign-in.
// A forged value with the right first characters is refused, nothing removed; the real one is removed.
func TestRevokeOfAHandWrittenIDNeedsProof(t *testing.T) {
	t.Run("a forged value with the victim's hint", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		req.HandWritten = true
		req.Retired = providers.NewValue(initialSecret[:3] + "-forged-by-the-tag-writer-0123456789")
		err := r.provider().Revoke(ctx, req, r.initialID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "does not sign in") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("no replaced value to prove it", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		req.HandWritten, req.Retired = true, providers.Value{}
		err := r.provider().Revoke(ctx, req, r.initialID)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "cannot be shown") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingRemoved(t, err)
	})
	t.Run("the real password", func(t *testing.T) {
		r := newRevokeFixture(t)
		req := r.revokeRequest()
		req.HandWritten = true
		if err := r.provider().Revoke(ctx, req, r.initialID); err != nil {
			t.Fatal(err)
		}
		if ids := r.keyIDs(); slices.Contains(ids, r.initialID) {
			t.Fatalf("passwords %v", ids)
		}
	})
}
