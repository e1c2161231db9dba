package datadog_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/datadog"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/rotation"
)

// The attacks of a person who may edit the tags of one secret (app-datadog) and nothing else, run end
// to end: the real engine with the operator's bindings, the Key Vault emulator, the provider. Each
// fails with a permanent configuration error naming the unbound tag, and nothing is contacted.

// otherSecret is a secret of the same vault the attacker may not read, and otherValue its value.
const (
	otherSecret = "payments-db-password"
	otherValue  = "PAYMENTS-DB-PASSWORD-must-never-leave-7f3a"
)

// attempts runs every trigger (event, timer sweep, manual, dry run) and returns each outcome for the
// app secret.
func (e *e2e) attempts(t *testing.T) map[string]rotation.Outcome {
	t.Helper()
	out := map[string]rotation.Outcome{"event": e.h.Event(secretName, e.version)}
	for _, o := range e.h.Sweep().Outcomes {
		if o.Kind == rotation.KindFailed {
			out["sweep"] = o
		}
	}
	out["manual"] = e.h.Manual(secretName, false)
	out["dry run"] = e.h.Manual(secretName, true)
	return out
}

// wantRefused checks that every trigger failed permanently with a configuration error naming each of
// the unbound tags, and that no outcome holds a key or the other secret's value.
func (e *e2e) wantRefused(t *testing.T, unbound ...string) {
	t.Helper()
	outcomes := e.attempts(t)
	if len(outcomes) != 4 {
		t.Fatalf("outcomes %v: the sweep did not try the secret", outcomes)
	}
	for trigger, o := range outcomes {
		var ce *providers.ConfigError
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) {
			t.Fatalf("%s: %s (%s) %s; want a permanent configuration error", trigger, o.Kind, o.Class, o.Reason)
		}
		for _, tag := range unbound {
			if !strings.Contains(o.Reason, "tag "+tag+"=") || !strings.Contains(o.Reason, "not bound") {
				t.Errorf("%s: %q does not name the unbound tag %s", trigger, o.Reason, tag)
			}
		}
		cleanOutcome(t, o, e.allKeys(otherValue)...)
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("Datadog got %d requests", n)
	}
	e.wantUnchanged(t)
}

func TestAttackTagsPointAtAnotherSecretOrHost(t *testing.T) {
	for _, tc := range []struct {
		name        string
		kind, owner string
		tags        func(attacker string) []string
		unbound     []string
	}{
		{"another secret as the admin keys, sent to the attacker's host", datadog.KeyTypeAPI, "",
			func(a string) []string { return []string{datadog.TagAdminSecret, otherSecret, datadog.TagSite, a} },
			[]string{datadog.TagAdminSecret, datadog.TagSite}},
		{"the real admin keys, sent to the attacker's host", datadog.KeyTypeAPI, "",
			func(a string) []string { return []string{datadog.TagSite, a} },
			[]string{datadog.TagSite}},
		{"another secret as the admin keys", datadog.KeyTypeAPI, "",
			func(string) []string { return []string{datadog.TagAdminSecret, otherSecret} },
			[]string{datadog.TagAdminSecret}},
		{"application keys of a service account the operator did not bind", datadog.KeyTypeApplication, serviceAccount,
			func(string) []string {
				return []string{datadog.TagServiceAccount, "66666666-0000-1234-0000-000000000000"}
			},
			[]string{datadog.TagServiceAccount}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := httpxtest.NewAttacker(t)
			// A client that trusts the attacker's certificate: only the bindings stand in the way.
			p := datadog.New(datadog.WithHTTPClient(attacker.Client()))
			tags := append(tc.tags(attacker.URL), "rotation-state", "started=1")
			e := newE2EWith(t, p, tc.kind, tc.owner, nil, tags...)
			e.h.Seed(otherSecret, otherValue, nil, 365*24*time.Hour)
			e.wantRefused(t, tc.unbound...)
			attacker.Untouched(t)
		})
	}
}

// The control for the test above: the same tags with bindings that allow them send the other secret's
// value to the attacker's host. So the attack tests fail because of the bindings, not for another
// reason.
func TestAttackControlBoundReferencesAreReached(t *testing.T) {
	attacker := httpxtest.NewAttacker(t)
	f := newFixture(t, datadog.KeyTypeAPI, "")
	careless := parseBindings(t, `{"bindings":[{"secrets":["`+providertest.VaultName+`/app-*"],"provider":"datadog",
		"allow":{"secret":["`+otherSecret+`"],"url":["`+attacker.URL+`"]}}]}`)
	h := providertest.New(t, datadog.Name, datadog.New(datadog.WithHTTPClient(attacker.Client())), &providertest.Options{Bindings: careless})
	secret := `{"api_key":"` + otherValue + `","application_key":"` + otherValue + `"}`
	h.Seed(otherSecret, secret, nil, 365*24*time.Hour)
	v := h.Seed(secretName, f.current.Value, map[string]string{"rotation-provider": datadog.Name, "CredentialId": f.current.ID,
		datadog.TagAdminSecret: otherSecret, datadog.TagSite: attacker.URL}, 5*24*time.Hour)
	if o := h.Event(secretName, v); o.Kind != rotation.KindFailed {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	if !attacker.Saw(otherValue) {
		t.Fatal("with the references bound, the attacker did not get the other secret: the attack tests prove nothing")
	}
}

// Application keys carry their owner's permissions: a tag-writer whose secret is bound to API keys (the
// organization) only cannot switch it to application keys of the admin user, nor of a service account.
func TestAttackSwitchingToApplicationKeys(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tags    []string
		unbound string
	}{
		{"the admin user's application keys", []string{datadog.TagKeyType, datadog.KeyTypeApplication}, datadog.TagKeyType},
		{"a service account's application keys", []string{datadog.TagKeyType, datadog.KeyTypeApplication, datadog.TagServiceAccount, serviceAccount}, datadog.TagServiceAccount},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apiOnly := parseBindings(t, `{"bindings":[{"name":"api-keys-only","secrets":["`+providertest.VaultName+`/app-*"],"provider":"datadog",
				"allow":{"secret":["datadog-admin"],"url":["http://127.0.0.1:*"],"account":["organization"]}}]}`)
			e := newE2E(t, datadog.KeyTypeAPI, "", &providertest.Options{Bindings: apiOnly}, tc.tags...)
			e.wantRefused(t, tc.unbound)
		})
	}
	t.Run("control: API keys rotate with that binding", func(t *testing.T) {
		apiOnly := parseBindings(t, `{"bindings":[{"name":"api-keys-only","secrets":["`+providertest.VaultName+`/app-*"],"provider":"datadog",
			"allow":{"secret":["datadog-admin"],"url":["http://127.0.0.1:*"],"account":["organization"]}}]}`)
		e := newE2E(t, datadog.KeyTypeAPI, "", &providertest.Options{Bindings: apiOnly})
		e.wantRotated(t, e.h.Event(secretName, e.version))
	})
}

// Where the operator confines a secret to one service account's application keys, switching to API
// keys (the organization) is refused too.
func TestAttackLeavingTheBoundServiceAccount(t *testing.T) {
	saOnly := parseBindings(t, `{"bindings":[{"name":"robot-only","secrets":["`+providertest.VaultName+`/app-*"],"provider":"datadog",
		"allow":{"secret":["datadog-admin"],"url":["http://127.0.0.1:*"],"account":["`+serviceAccount+`"]}}]}`)
	e := newE2E(t, datadog.KeyTypeApplication, serviceAccount, &providertest.Options{Bindings: saOnly},
		datadog.TagKeyType, "", datadog.TagServiceAccount, "")
	e.wantRefused(t, datadog.TagKeyType)
}

// A version written by hand claims, in CredentialId, to hold someone else's key, with a value that is
// not that key. The rotation goes on (the new key is the attacker's to have); after the grace period
// the revocation finds that the value is not the key's and refuses: the victim's key lives.
func TestAttackHandWrittenVersionClaimsAnotherKey(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := newE2E(t, k.kind, k.owner, nil, "rotation-grace-hours", "0")
			var victimID string
			if k.kind == datadog.KeyTypeAPI {
				victimID = e.srv.AddAPIKey("payments team key").ID
			} else {
				owner := k.owner
				if owner == "" {
					owner = e.current.Owner
				}
				victimID = e.srv.AddAppKey("payments team key", owner, nil).ID
			}
			victim, _ := e.srv.Key(victimID)
			latest := e.h.Latest(secretName)
			tags := map[string]string{}
			for k, v := range latest.Tags {
				tags[k] = v
			}
			tags["CredentialId"] = victim.ID
			// The forged value even ends like the victim's key.
			forged := strings.Repeat("f", len(victim.Value)-4) + victim.Value[len(victim.Value)-4:]
			e.version = e.h.Seed(secretName, forged, tags, 5*24*time.Hour)
			if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindRotated {
				t.Fatalf("%s: %s", o.Kind, o.Reason)
			}
			rep := e.h.Sweep()
			if rep.Failed() != 1 || !strings.Contains(rep.Outcomes[0].Reason, "refusing to delete key "+victim.ID) {
				t.Fatalf("sweep: %+v", rep.Outcomes)
			}
			cleanOutcome(t, rep.Outcomes[0], e.allKeys(forged)...)
			if _, live := e.srv.Key(victim.ID); !live {
				t.Fatal("the victim's key was deleted on a tag's word")
			}
			if st := e.h.State(secretName); len(st.Pending) != 0 {
				t.Fatalf("the refused entry is retried forever: %+v", st.Pending)
			}
		})
	}
}
