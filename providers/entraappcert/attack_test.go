package entraappcert_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraappcert"
	"github.com/kvrotator/kvrotator/providers/entraappcert/entraappcerttest"
	"github.com/kvrotator/kvrotator/rotation"
)

// The attacker of issue #10 may edit the tags of one managed secret, and write its versions, and
// nothing else. kvrotator's identity can add and remove the certificates of many applications; the
// operator's bindings say which application (and tenant) a secret may make it reach, and the proof of
// possession Graph requires means kvrotator adds a key only for a secret that holds a working
// certificate of that application. These tests are that attacker.

// attackFixture is the fixture's application (bound, with its certificate in the vault) plus another
// team's application on the same Graph, with its own certificate, which kvrotator's identity could
// manage as well.
type attackFixture struct {
	*fixture
	h                     *providertest.Harness
	otherObject, otherApp string
	otherValue            string // team b's certificate and private key
}

// newAttack binds the fixture's application (object id and client id) and tenant for the secrets of
// the test vault, and nothing else.
func newAttack(t *testing.T) *attackFixture {
	t.Helper()
	f := newFixture(t)
	a := &attackFixture{fixture: f}
	a.otherObject, a.otherApp = f.srv.AddApp()
	cert, key := entraappcerttest.NewCertificate("team b", time.Now().Add(-time.Hour), time.Now().AddDate(0, 0, 20))
	f.srv.SeedKey(a.otherObject, "team b", cert)
	a.otherValue = entraappcerttest.PEM(cert, key)
	a.h = providertest.New(t, entraappcert.Name, f.provider(), &providertest.Options{
		Bindings: parseBindings(t, appBinding("orders-api", []string{f.objectID, f.appID}, []string{f.srv.TenantID}))})
	return a
}

// tags are the legitimate tags of the secret, with changes ("" removes a tag).
func (a *attackFixture) tags(changes map[string]string) map[string]string {
	all := map[string]string{
		"rotation-provider":    entraappcert.Name,
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

// attempts runs every trigger (dry run, event, manual, sweep) and returns the outcomes.
func (a *attackFixture) attempts(t *testing.T, version string) []rotation.Outcome {
	t.Helper()
	rep := a.h.Sweep()
	out := []rotation.Outcome{a.h.Manual(secretName, true), a.h.Event(secretName, version), a.h.Manual(secretName, false)}
	for _, o := range rep.Outcomes {
		if o.Secret == secretName && o.Kind != rotation.KindOverdue {
			out = append(out, o)
		}
	}
	if len(out) != 4 {
		t.Fatalf("the sweep did not try the secret: %+v", rep.Outcomes)
	}
	return out
}

// keysOf are the keyIds of an application.
func (a *attackFixture) keysOf(objectID string) []string {
	var ids []string
	for _, k := range a.srv.Keys(objectID) {
		ids = append(ids, k.KeyID)
	}
	return ids
}

// A secret whose tags name an application or a tenant the bindings do not allow is refused by every
// trigger with a permanent error naming the tag, before anything is contacted: no Graph token, no
// Graph call, no sign-in, no key added anywhere, the vault unchanged. The control proves the attack is
// real: with a binding that allows the other application — and a value holding its certificate —
// the same tags add a key to it.
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
		}, entraappcert.TagAddress, providers.RefApplication},
		{"entra-app-id names another team's application", func(a *attackFixture) map[string]string {
			return map[string]string{"ProviderAddress": "", "entra-app-id": a.otherApp, "CredentialId": ""}
		}, entraappcert.TagAppID, providers.RefApplication},
		{"entra-app-id added beside the bound ProviderAddress", func(a *attackFixture) map[string]string {
			return map[string]string{"entra-app-id": strings.ToUpper(a.otherApp)}
		}, entraappcert.TagAppID, providers.RefApplication},
		{"a tenant that is not bound", func(*attackFixture) map[string]string {
			return map[string]string{"entra-tenant-id": otherTenant}
		}, entraappcert.TagTenant, providers.RefTenant},
		{"the bound tenant by a domain that is not bound", func(*attackFixture) map[string]string {
			return map[string]string{"entra-tenant-id": entraappcerttest.Domain}
		}, entraappcert.TagTenant, providers.RefTenant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAttack(t)
			before := map[string][]string{a.objectID: a.keysOf(a.objectID), a.otherObject: a.keysOf(a.otherObject)}
			// The attacker's value is the other team's certificate, should they have it: it does not
			// matter, nothing is contacted.
			v := a.h.Seed(secretName, a.otherValue, a.tags(tc.changes(a)), 5*24*time.Hour)
			for _, o := range a.attempts(t, v) {
				var ue *bindings.UnboundError
				var ce *providers.ConfigError
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ue) || !errors.As(o.Err, &ce) ||
					!strings.EqualFold(ce.Tag, tc.tag) || ue.Ref.Kind != tc.kind || !strings.Contains(o.Reason, "not bound") {
					t.Fatalf("%s %s %q: want a permanent unbound-reference error naming %s", o.Kind, o.Class, o.Reason, tc.tag)
				}
				a.noSecrets(t, []string{o.Reason}, a.otherValue)
			}
			if n := a.srv.Requests(); n != 0 || len(a.srv.Scopes()) != 0 {
				t.Fatalf("%d requests and %d Graph token requests: the refused secret reached Graph", n, len(a.srv.Scopes()))
			}
			for obj, keys := range before {
				if !slices.Equal(a.keysOf(obj), keys) {
					t.Fatalf("the keys of %s changed", obj)
				}
			}
			if a.h.Versions(secretName) != 1 || a.h.Latest(secretName).Value.Reveal() != a.otherValue {
				t.Fatal("the vault changed")
			}
		})
	}

	t.Run("control: bound, the same tags add a key to the other application", func(t *testing.T) {
		a := newAttack(t)
		h := providertest.New(t, entraappcert.Name, a.provider(), &providertest.Options{
			Bindings: parseBindings(t, appBinding("too-wide", []string{a.objectID, a.otherObject}, []string{a.srv.TenantID}))})
		v := h.Seed(secretName, a.otherValue, map[string]string{"rotation-provider": entraappcert.Name, "ProviderAddress": a.otherObject,
			"entra-tenant-id": a.srv.TenantID}, 5*24*time.Hour)
		if o := h.Event(secretName, v); o.Kind != rotation.KindRotated {
			t.Fatalf("%s %q", o.Kind, o.Reason)
		}
		if n := len(a.srv.Keys(a.otherObject)); n != 2 {
			t.Fatalf("the other application holds %d keys", n)
		}
	})
}

// A secret that is bound, but whose value the attacker replaced (they may write versions), makes
// kvrotator add nothing: the value must be a currently valid certificate of the bound application
// with its private key, because that is what signs Graph's proof of possession. Whatever the value —
// the attacker's own certificate, another application's, the application's own certificate (public,
// in Graph's listing) with the attacker's key, a client secret — every trigger fails permanently and
// no key is added or removed. And a CredentialId tag pointing at another key of the application (so
// that kvrotator would remove it after the grace period) is refused before anything is added.
func TestAttackValueIsNotACertificateOfTheApplication(t *testing.T) {
	attackerCert, attackerKey := entraappcerttest.NewCertificate("attacker", time.Now().Add(-time.Hour), time.Now().AddDate(0, 1, 0))
	personCert, _ := entraappcerttest.NewCertificate("a person's", time.Now().Add(-time.Hour), time.Now().AddDate(0, 2, 0))
	for _, tc := range []struct {
		name  string
		value func(a *attackFixture) string
		tags  func(a *attackFixture) map[string]string
		want  string
	}{
		{"the attacker's own certificate", func(*attackFixture) string { return entraappcerttest.PEM(attackerCert, attackerKey) },
			func(*attackFixture) map[string]string { return map[string]string{"CredentialId": ""} }, "is not a certificate of application"},
		{"another application's certificate", func(a *attackFixture) string { return a.otherValue },
			func(*attackFixture) map[string]string { return map[string]string{"CredentialId": ""} }, "is not a certificate of application"},
		{"the application's certificate with the attacker's key", func(a *attackFixture) string {
			// The certificate is public (Graph lists it); the private key is the attacker's.
			v := entraappcerttest.PEM(a.initialCert, attackerKey)
			return v[strings.Index(v, "-----BEGIN CERTIFICATE-----"):] + v[:strings.Index(v, "-----BEGIN CERTIFICATE-----")]
		}, func(*attackFixture) map[string]string { return nil }, "none of its certificates is the certificate of its private key"},
		{"a client secret", func(*attackFixture) string { return "Abc8Q~client-secret-value-0123456789abcd" },
			func(*attackFixture) map[string]string { return nil }, "not a PEM file or a base64 PKCS #12"},
		{"CredentialId names a person's key of the application", func(a *attackFixture) string { return a.initialValue },
			func(a *attackFixture) map[string]string {
				return map[string]string{"CredentialId": a.srv.SeedKey(a.objectID, "a person's", personCert)}
			}, "CredentialId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAttack(t)
			value, tags := tc.value(a), a.tags(tc.tags(a))
			before := a.keysOf(a.objectID)
			v := a.h.Seed(secretName, value, tags, 5*24*time.Hour)
			for _, o := range a.attempts(t, v)[1:] { // the dry run does not read the value
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, tc.want) {
					t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
				}
				a.noSecrets(t, []string{o.Reason}, value, a.otherValue)
			}
			if a.srv.Calls(entraappcerttest.AddKey)+a.srv.Calls(entraappcerttest.RemoveKey) != 0 || !slices.Equal(a.keysOf(a.objectID), before) {
				t.Fatal("a key was added or removed")
			}
			if a.h.Versions(secretName) != 1 || a.h.Latest(secretName).Value.Reveal() != value {
				t.Fatal("the vault changed")
			}
		})
	}
}
