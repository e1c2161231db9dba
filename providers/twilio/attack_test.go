package twilio_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/twilio"
	"github.com/kvrotator/kvrotator/providers/twilio/twiliotest"
	"github.com/kvrotator/kvrotator/rotation"
)

// The attacks of a person who may edit the tags of one secret (app-twilio) and nothing else, run end to
// end with the operator's bindings. Each fails with a permanent configuration error naming the unbound
// tag, and nothing is contacted.

const (
	otherSecret = "payments-db-password"
	otherValue  = "PAYMENTS-DB-PASSWORD-must-never-leave-7f3a"
)

// attempts runs every trigger and returns each outcome for the app secret.
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
// the unbound tags, and that nothing reached Twilio.
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
		cleanOutcome(t, o, e.allSecrets(otherValue)...)
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("Twilio got %d requests", n)
	}
	e.wantUnchanged(t)
}

func TestAttackTagsPointAtAnotherSecretHostOrAccount(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tags    func(attacker string) []string
		unbound []string
	}{
		{"another secret as the admin credentials, sent to the attacker's host",
			func(a string) []string { return []string{twilio.TagAdminSecret, otherSecret, twilio.TagIAMURL, a} },
			[]string{twilio.TagAdminSecret, twilio.TagIAMURL}},
		{"the real admin credentials, sent to the attacker's host",
			func(a string) []string { return []string{twilio.TagIAMURL, a} },
			[]string{twilio.TagIAMURL}},
		{"the new key, sent to the attacker's host for verification",
			func(a string) []string { return []string{twilio.TagAPIURL, a} },
			[]string{twilio.TagAPIURL}},
		{"another secret as the admin credentials",
			func(string) []string { return []string{twilio.TagAdminSecret, otherSecret} },
			[]string{twilio.TagAdminSecret}},
		{"keys of an account the operator did not bind",
			func(string) []string { return []string{twilio.TagAccountSID, "AC99999999999999999999999999999999"} },
			[]string{twilio.TagAccountSID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := httpxtest.NewAttacker(t)
			p := twilio.New(twilio.WithHTTPClient(attacker.Client()))
			tags := append(tc.tags(attacker.URL), "rotation-state", "started=1")
			e := newE2EWith(t, p, twiliotest.TypeStandard, nil, tags...)
			e.h.Seed(otherSecret, otherValue, nil, 365*24*time.Hour)
			e.wantRefused(t, tc.unbound...)
			attacker.Untouched(t)
		})
	}
}

// The control: the same tags with bindings that allow them send the other secret's value to the
// attacker's host. So the attack tests fail because of the bindings.
func TestAttackControlBoundReferencesAreReached(t *testing.T) {
	attacker := httpxtest.NewAttacker(t)
	f := newFixture(t, twiliotest.TypeStandard)
	careless := parseBindings(t, `{"bindings":[{"secrets":["`+providertest.VaultName+`/app-*"],"provider":"twilio",
		"allow":{"secret":["`+otherSecret+`"],"url":["`+attacker.URL+`","https://api.twilio.com"],"account":["`+f.srv.Account.SID+`"]}}]}`)
	h := providertest.New(t, twilio.Name, twilio.New(twilio.WithHTTPClient(attacker.Client())), &providertest.Options{Bindings: careless})
	stolen := "AC0123456789abcdef0123456789abcdef:" + otherValue
	h.Seed(otherSecret, stolen, nil, 365*24*time.Hour)
	v := h.Seed(secretName, f.current.Value(), map[string]string{"rotation-provider": twilio.Name, "CredentialId": f.current.SID,
		twilio.TagAdminSecret: otherSecret, twilio.TagAccountSID: f.srv.Account.SID, twilio.TagIAMURL: attacker.URL}, 5*24*time.Hour)
	if o := h.Event(secretName, v); o.Kind != rotation.KindFailed {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	if !attacker.Saw("Basic " + base64.StdEncoding.EncodeToString([]byte(stolen))) {
		t.Fatal("with the references bound, the attacker did not get the other secret: the attack tests prove nothing")
	}
}

// Where the operator allows only restricted keys for a secret (allow.scope), switching it to a standard
// key is refused before anything is called.
func TestAttackWideningARestrictedKey(t *testing.T) {
	restrictedOnly := func(account string) *providertest.Options {
		return &providertest.Options{Bindings: parseBindings(t, `{"bindings":[{"name":"restricted-only","secrets":["`+providertest.VaultName+`/app-*"],"provider":"twilio",
			"allow":{"secret":["twilio-admin"],"url":["http://127.0.0.1:*"],"account":["`+account+`"],"scope":["restricted"]}}]}`)}
	}
	e := newE2EWithAccountBinding(t, twiliotest.TypeRestricted, restrictedOnly, twilio.TagKeyType, twilio.KeyTypeStandard)
	e.wantRefused(t, twilio.TagKeyType)

	// The control: the restricted key rotates under that binding.
	e = newE2EWithAccountBinding(t, twiliotest.TypeRestricted, restrictedOnly)
	e.wantRotated(t, e.h.Event(secretName, e.version))
}

// newE2EWithAccountBinding is newE2E with bindings made for the fixture's own account.
func newE2EWithAccountBinding(t *testing.T, typ string, binds func(account string) *providertest.Options, extra ...string) *e2e {
	t.Helper()
	f := newFixture(t, typ)
	opts := binds(f.srv.Account.SID)
	h := providertest.New(t, twilio.Name, twilio.New(), opts)
	h.Seed(adminSecret, f.admin, nil, 365*24*time.Hour)
	tags := map[string]string{"rotation-grace-hours": "1"}
	for k, v := range f.tags(f.srv.URL) {
		tags[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		tags[extra[i]] = extra[i+1]
	}
	v := h.Seed(secretName, f.current.Value(), tags, 5*24*time.Hour)
	return &e2e{fixture: f, h: h, version: v}
}

// Even where standard keys are allowed, a restricted key is never replaced by a standard one on a tag's
// word: the provider refuses once it sees the current key's policy.
func TestAttackRestrictedKeyToStandardByTag(t *testing.T) {
	e := newE2E(t, twiliotest.TypeRestricted, nil, twilio.TagKeyType, twilio.KeyTypeStandard)
	o := e.h.Event(secretName, e.version)
	var ce *providers.ConfigError
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) || !strings.Contains(o.Reason, "does not replace it with a standard key") {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	if e.srv.Created() != 0 {
		t.Fatal("a key was created")
	}
}

// CredentialId naming someone else's key (to copy its policy, and delete it later): the value is the
// attacker's own key ("SK…:…"), so the provider refuses before calling anything.
func TestAttackCredentialIdNamesAnotherKey(t *testing.T) {
	e := newE2E(t, twiliotest.TypeRestricted, nil)
	victim := e.srv.AddKey(e.srv.Account.SID, twiliotest.TypeRestricted, "payments", json.RawMessage(`{"allow":["/twilio/voice/calls/create"]}`))
	tags := map[string]string{}
	for k, v := range e.h.Latest(secretName).Tags {
		tags[k] = v
	}
	tags["CredentialId"] = victim.SID
	e.version = e.h.Seed(secretName, e.current.Value(), tags, 5*24*time.Hour)
	o := e.h.Event(secretName, e.version)
	var ce *providers.ConfigError
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) || ce.Tag != "CredentialId" {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("Twilio got %d requests", n)
	}
}

// A version written by hand claims, in CredentialId and in a value "SK<victim>:forged", to hold someone
// else's key. The rotation copies the victim's policy (a restricted key for the attacker, within the
// bound account and key type); after the grace period the revocation asks Twilio to prove the claim —
// the forged value does not authenticate, the key exists — and refuses: the victim's key lives.
func TestAttackHandWrittenVersionClaimsAnotherKey(t *testing.T) {
	e := newE2E(t, twiliotest.TypeStandard, nil, "rotation-grace-hours", "0")
	victim := e.srv.AddKey(e.srv.Account.SID, twiliotest.TypeStandard, "payments", nil)
	tags := map[string]string{}
	for k, v := range e.h.Latest(secretName).Tags {
		tags[k] = v
	}
	tags["CredentialId"] = victim.SID
	e.version = e.h.Seed(secretName, victim.SID+":forged-by-the-tag-writer", tags, 5*24*time.Hour)
	if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindRotated {
		t.Fatalf("%s: %s", o.Kind, o.Reason)
	}
	rep := e.h.Sweep()
	if rep.Failed() != 1 || !strings.Contains(rep.Outcomes[0].Reason, "does not authenticate") {
		t.Fatalf("sweep: %+v", rep.Outcomes)
	}
	if _, live := e.srv.Key(victim.SID); !live {
		t.Fatal("the victim's key was deleted on a tag's word")
	}
	if st := e.h.State(secretName); len(st.Pending) != 0 {
		t.Fatalf("the refused entry is retried forever: %+v", st.Pending)
	}
}
