package awsiam_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/awsiam"
	"github.com/kvrotator/kvrotator/providers/awsiam/iamtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/rotation"
)

// The attacks of a person who may edit the tags of one secret (app-aws) and nothing else, run end to
// end: the real engine with the operator's bindings (operatorBindings), the Key Vault emulator, the
// provider. Each fails with a permanent error naming the unbound tag, and nothing is contacted: not the
// attacker's host, not AWS.

// otherSecret is a secret of the same vault the attacker may not read, and otherValue its value: the
// access key of another application.
const (
	otherSecret    = "payments-aws-key"
	otherSecretKey = "PAYMENTS/must/never/leave/this/vault/7f3a0"
	otherValue     = `{"Version":1,"AccessKeyId":"AKIAPAYMENTSPAYMENTS","SecretAccessKey":"` + otherSecretKey + `"}`
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
// the unbound tags, that no outcome holds a secret, and that AWS was not called.
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
		cleanOutcome(t, o, append(e.secrets(), otherSecretKey)...)
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("AWS got %d requests", n)
	}
	e.wantUnchanged(t)
}

func TestAttackTagsPointAtAnotherSecretHostAccountOrUser(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tags    func(attacker string) []string
		unbound []string
	}{
		{"another secret as the admin key, signed requests sent to the attacker's host",
			func(a string) []string {
				return []string{awsiam.TagAdminSecret, otherSecret, awsiam.TagIAMURL, a, awsiam.TagSTSURL, a}
			},
			[]string{awsiam.TagAdminSecret, awsiam.TagIAMURL, awsiam.TagSTSURL}},
		{"the real admin key's signed CreateAccessKey sent to the attacker's host (to replay at IAM)",
			func(a string) []string { return []string{awsiam.TagIAMURL, a} },
			[]string{awsiam.TagIAMURL}},
		{"the new key verified at the attacker's host",
			func(a string) []string { return []string{awsiam.TagSTSURL, a} },
			[]string{awsiam.TagSTSURL}},
		{"another secret as the admin key",
			func(string) []string { return []string{awsiam.TagAdminSecret, otherSecret} },
			[]string{awsiam.TagAdminSecret}},
		{"another user's keys",
			func(string) []string { return []string{awsiam.TagUser, "payments"} },
			[]string{awsiam.TagUser}},
		{"another account",
			func(string) []string { return []string{awsiam.TagAccount, "999999999999"} },
			[]string{awsiam.TagAccount}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := httpxtest.NewAttacker(t)
			// A client that trusts the attacker's certificate: only the bindings stand in the way.
			p := newProvider(awsiam.WithHTTPClient(attacker.Client()))
			tags := append(tc.tags(attacker.URL), "rotation-state", "started=1") // the old "resume" trick, too
			e := newE2EWith(t, p, nil, tags...)
			e.h.Seed(otherSecret, otherValue, nil, 365*24*time.Hour)
			e.wantRefused(t, tc.unbound...)
			attacker.Untouched(t)
		})
	}
}

// The control for the test above: the same tags with bindings that allow them send requests signed
// with the other secret's key to the attacker's host. So the attack tests fail because of the bindings,
// not for another reason.
func TestAttackControlBoundReferencesAreReached(t *testing.T) {
	attacker := httpxtest.NewAttacker(t)
	f := newFixture(t)
	careless := parseBindings(t, `{"bindings":[{"secrets":["`+providertest.VaultName+`/app-*"],"provider":"aws-iam",
		"allow":{"secret":["`+otherSecret+`"],"account":["*"],"login":["*"],"url":["`+attacker.URL+`"]}}]}`)
	h := providertest.New(t, awsiam.Name, newProvider(awsiam.WithHTTPClient(attacker.Client())), &providertest.Options{Bindings: careless})
	h.Seed(otherSecret, otherValue, nil, 365*24*time.Hour)
	v := h.Seed(secretName, f.current.Pair(), map[string]string{"rotation-provider": awsiam.Name, "CredentialId": f.current.ID,
		awsiam.TagUser: appUser, awsiam.TagAccount: account, awsiam.TagAdminSecret: otherSecret,
		awsiam.TagIAMURL: attacker.URL, awsiam.TagSTSURL: attacker.URL}, 5*24*time.Hour)
	if o := h.Event(secretName, v); o.Kind != rotation.KindFailed {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	if !attacker.Saw("Credential=AKIAPAYMENTSPAYMENTS/") {
		t.Fatal("with the references bound, the attacker did not get a request signed with the other secret's key: the attack tests prove nothing")
	}
	if attacker.Saw(otherSecretKey) {
		t.Fatal("a secret access key was sent: SigV4 sends signatures only")
	}
}

// CredentialId naming another key of the user made kvrotator treat that key as the one the secret
// holds, and revoke it after the grace period. The secret's value is the attacker's own key pair, so
// the provider refuses before reading or calling anything.
func TestAttackCredentialIdNamesAnotherKey(t *testing.T) {
	e := newE2E(t, nil)
	victim := e.srv.AddKey(appUser) // a person's CLI key on the same user
	latest := e.h.Latest(secretName)
	tags := map[string]string{}
	for k, v := range latest.Tags {
		tags[k] = v
	}
	tags["CredentialId"] = victim.ID
	e.version = e.h.Seed(secretName, e.current.Pair(), tags, 5*24*time.Hour)
	for trigger, o := range map[string]rotation.Outcome{"event": e.h.Event(secretName, e.version), "manual": e.h.Manual(secretName, false)} {
		var ce *providers.ConfigError
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) || ce.Tag != "CredentialId" {
			t.Fatalf("%s: %s (%s) %s; want a configuration error naming CredentialId", trigger, o.Kind, o.Class, o.Reason)
		}
		if !strings.Contains(o.Reason, e.current.ID) {
			t.Errorf("%s: %q does not say which key the value is", trigger, o.Reason)
		}
		cleanOutcome(t, o, e.secrets()...)
	}
	if n := len(e.srv.Requests()); n != 0 || e.srv.Created() != 0 {
		t.Fatalf("AWS got %d requests, %d keys created", n, e.srv.Created())
	}
	if !e.srv.Works(victim.ID, victim.Secret) {
		t.Fatal("the victim's key was touched")
	}
}

// A version written by hand claims, in CredentialId and in a forged value, to hold a key a person uses
// on the same user. The rotation makes a new key; after the grace period the revocation asks AWS to
// prove the claim — the forged value does not authenticate, the key still exists — and refuses: the
// victim's key lives, and the refusal is not retried.
func TestAttackHandWrittenVersionClaimsAnotherKey(t *testing.T) {
	e := newE2E(t, nil, "rotation-grace-hours", "0")
	e.srv.DeleteKey(e.current.ID) // the secret's own key is gone; the user holds only the victim's
	victim := e.srv.AddKey(appUser)
	latest := e.h.Latest(secretName)
	tags := map[string]string{}
	for k, v := range latest.Tags {
		tags[k] = v
	}
	tags["CredentialId"] = victim.ID
	forged := iamtest.Key{ID: victim.ID, Secret: "forgedbythetagwriterforgedbythetagwriter"}.Pair()
	e.version = e.h.Seed(secretName, forged, tags, 5*24*time.Hour)
	if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindRotated {
		t.Fatalf("%s: %s", o.Kind, o.Reason)
	}
	rep := e.h.Sweep()
	if rep.Failed() != 1 || !strings.Contains(rep.Outcomes[0].Reason, "does not authenticate") {
		t.Fatalf("sweep: %+v", rep.Outcomes)
	}
	if !e.srv.Works(victim.ID, victim.Secret) {
		t.Fatal("the victim's key was revoked on a tag's word")
	}
	if v, ok := e.srv.Tag(appUser, victim.ID); ok {
		t.Fatalf("the victim's key was labelled %q", v)
	}
	if st := e.h.State(secretName); len(st.Pending) != 0 {
		t.Fatalf("the refused entry is retried forever: %+v", st.Pending)
	}
}

// The control: a version written by hand whose value really is the key it names is revoked, once AWS
// has accepted that value.
func TestEndToEndHandWrittenVersionWithItsOwnKeyIsRevoked(t *testing.T) {
	e := newE2E(t, nil, "rotation-grace-hours", "0")
	if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindRotated {
		t.Fatalf("%s: %s", o.Kind, o.Reason)
	}
	if o := e.sweepOne(t); o.Kind != rotation.KindRevoked {
		t.Fatalf("sweep: %s %s", o.Kind, o.Reason)
	}
	if k, _ := e.srv.Key(e.current.ID); k.Status != "Inactive" {
		t.Fatal("the hand-written version's key was not deactivated")
	}
}
