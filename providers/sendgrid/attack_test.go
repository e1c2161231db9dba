package sendgrid_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/sendgrid"
	"github.com/kvrotator/kvrotator/rotation"
)

// The attacks of issue #10, by a person who may edit the tags of one secret (app-sendgrid) and nothing
// else, run end to end: the real engine with the operator's bindings (operatorBindings), the Key Vault
// emulator, the provider. Each would have succeeded before the bindings; each now fails with a
// permanent error naming the unbound tag, and nothing is contacted.

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
		t.Errorf("SendGrid got %d requests", n)
	}
	e.wantUnchanged(t)
}

func TestAttackTagsPointAtAnotherSecretOrHost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tags    func(attacker string) []string
		unbound []string
	}{
		{"another secret as the admin key, sent to the attacker's host",
			func(a string) []string { return []string{sendgrid.TagAdminSecret, otherSecret, sendgrid.TagAPIURL, a} },
			[]string{sendgrid.TagAdminSecret, sendgrid.TagAPIURL}},
		{"the real admin key, sent to the attacker's host",
			func(a string) []string { return []string{sendgrid.TagAPIURL, a} },
			[]string{sendgrid.TagAPIURL}},
		{"another secret as the admin key",
			func(string) []string { return []string{sendgrid.TagAdminSecret, otherSecret} },
			[]string{sendgrid.TagAdminSecret}},
		{"on behalf of a subuser the operator did not bind",
			func(string) []string { return []string{sendgrid.TagOnBehalfOf, "payments-subuser"} },
			[]string{sendgrid.TagOnBehalfOf}},
		{"on behalf of a customer account the operator did not bind",
			func(string) []string { return []string{sendgrid.TagOnBehalfOf, "account-id 4242"} },
			[]string{sendgrid.TagOnBehalfOf}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := httpxtest.NewAttacker(t)
			// A client that trusts the attacker's certificate: only the bindings stand in the way.
			p := sendgrid.New(sendgrid.WithHTTPClient(attacker.Client()))
			tags := append(tc.tags(attacker.URL), "rotation-state", "started=1") // the old "resume" trick, too
			e := newE2EWith(t, p, nil, tags...)
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
	f := newFixture(t)
	careless := parseBindings(t, `{"bindings":[{"secrets":["`+providertest.VaultName+`/app-*"],"provider":"sendgrid",
		"allow":{"secret":["`+otherSecret+`"],"url":["`+attacker.URL+`"]}}]}`)
	h := providertest.New(t, sendgrid.Name, sendgrid.New(sendgrid.WithHTTPClient(attacker.Client())), &providertest.Options{Bindings: careless})
	h.Seed(otherSecret, otherValue, nil, 365*24*time.Hour)
	v := h.Seed(secretName, f.current.Value, map[string]string{"rotation-provider": sendgrid.Name, "CredentialId": f.current.ID,
		sendgrid.TagAdminSecret: otherSecret, sendgrid.TagAPIURL: attacker.URL}, 5*24*time.Hour)
	if o := h.Event(secretName, v); o.Kind != rotation.KindFailed {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	if !attacker.Saw("Bearer " + otherValue) {
		t.Fatal("with the references bound, the attacker did not get the other secret: the attack tests prove nothing")
	}
}

// CredentialId naming someone else's key made kvrotator copy that key's scopes into the attacker's
// secret and, after the grace period, delete it with the shared admin key. The secret's value is the
// attacker's own key ("SG.<id>.…"), so the provider refuses before reading or calling anything.
func TestAttackCredentialIdNamesAnotherKey(t *testing.T) {
	e := newE2E(t, nil)
	victim := e.srv.AddKey("payments team key", "mail.send", "billing.read", "user.account.read")
	// The tag-writer writes a version with the victim's id in CredentialId (the value stays theirs).
	latest := e.h.Latest(secretName)
	tags := map[string]string{}
	for k, v := range latest.Tags {
		tags[k] = v
	}
	tags["CredentialId"] = victim.ID
	e.version = e.h.Seed(secretName, e.current.Value, tags, 5*24*time.Hour)
	for trigger, o := range map[string]rotation.Outcome{"event": e.h.Event(secretName, e.version), "manual": e.h.Manual(secretName, false)} {
		var ce *providers.ConfigError
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) || ce.Tag != "CredentialId" {
			t.Fatalf("%s: %s (%s) %s; want a configuration error naming CredentialId", trigger, o.Kind, o.Class, o.Reason)
		}
		if !strings.Contains(o.Reason, e.current.ID) {
			t.Errorf("%s: %q does not say which key the value is", trigger, o.Reason)
		}
		cleanOutcome(t, o, e.allKeys()...)
	}
	if n := len(e.srv.Requests()); n != 0 || e.srv.Created() != 0 {
		t.Fatalf("SendGrid got %d requests, %d keys created", n, e.srv.Created())
	}
	if _, live := e.srv.Key(victim.ID); !live {
		t.Fatal("the victim's key was deleted")
	}
}

// The positive path with a subuser the operator bound: every admin call carries on-behalf-of.
func TestEndToEndOnBehalfOfABoundSubuser(t *testing.T) {
	e := newE2E(t, nil, sendgrid.TagOnBehalfOf, "team-a")
	e.wantRotated(t, e.h.Event(secretName, e.version))
	for _, r := range e.srv.Requests() {
		if want := map[bool]string{true: "", false: "team-a"}[r.Path == "/v3/scopes"]; r.OnBehalfOf != want {
			t.Errorf("%s %s: on-behalf-of %q, want %q", r.Method, r.Path, r.OnBehalfOf, want)
		}
	}
	if n := e.srv.Count(http.MethodPost, "/v3/api_keys"); n != 1 {
		t.Errorf("%d keys created", n)
	}
}

// A version written by hand claims, in CredentialId and in a value shaped like the victim's key
// ("SG.<victim id>.forged"), to hold someone else's key. The rotation copies only the victim key's
// ordinary scopes; after the grace period the revocation asks SendGrid to prove the claim — the forged
// value does not authenticate, the key still exists — and refuses: the victim's key lives.
func TestAttackHandWrittenVersionClaimsAnotherKey(t *testing.T) {
	e := newE2E(t, nil, "rotation-grace-hours", "0")
	victim := e.srv.AddKey("payments team key", "mail.send")
	latest := e.h.Latest(secretName)
	tags := map[string]string{}
	for k, v := range latest.Tags {
		tags[k] = v
	}
	tags["CredentialId"] = victim.ID
	e.version = e.h.Seed(secretName, "SG."+victim.ID+".forged-by-the-tag-writer", tags, 5*24*time.Hour)
	if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindRotated {
		t.Fatalf("%s: %s", o.Kind, o.Reason)
	}
	rep := e.h.Sweep()
	if rep.Failed() != 1 || !strings.Contains(rep.Outcomes[0].Reason, "does not authenticate") {
		t.Fatalf("sweep: %+v", rep.Outcomes)
	}
	if _, live := e.srv.Key(victim.ID); !live {
		t.Fatal("the victim's key was deleted on a tag's word")
	}
	if st := e.h.State(secretName); len(st.Pending) != 0 {
		t.Fatalf("the refused entry is retried forever: %+v", st.Pending)
	}
}

// Privileged scopes (keys that manage keys, users, subusers) are never minted on a tag's word: listed
// in sendgrid-scopes they are references the operator must bind; copied from a key the version claims
// to hold, they are refused unless sendgrid-scopes lists them (and so the bindings allow them).
func TestAttackPrivilegedScopes(t *testing.T) {
	t.Run("listed in sendgrid-scopes, not bound", func(t *testing.T) {
		e := newE2E(t, nil, "CredentialId", "", sendgrid.TagScopes, "mail.send,api_keys.create,api_keys.delete,api_keys.read")
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, `scope "api_keys.create"`) ||
			!strings.Contains(o.Reason, "not bound") {
			t.Fatalf("%s (%s): %s", o.Kind, o.Class, o.Reason)
		}
		if n := len(e.srv.Requests()); n != 0 {
			t.Fatalf("SendGrid got %d requests", n)
		}
	})
	t.Run("copied from the key the version claims", func(t *testing.T) {
		e := newE2E(t, nil)
		admin := e.srv.AddKey("someone's admin", "api_keys.create", "api_keys.read", "mail.send")
		latest := e.h.Latest(secretName)
		tags := map[string]string{}
		for k, v := range latest.Tags {
			tags[k] = v
		}
		tags["CredentialId"] = admin.ID
		e.version = e.h.Seed(secretName, "SG."+admin.ID+".forged", tags, 5*24*time.Hour)
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "manage the account (api_keys.create, api_keys.read)") {
			t.Fatalf("%s (%s): %s", o.Kind, o.Class, o.Reason)
		}
		if e.srv.Created() != 0 {
			t.Fatal("a key was created")
		}
	})
	t.Run("listed and bound", func(t *testing.T) {
		e := newE2E(t, nil, "CredentialId", "", sendgrid.TagScopes, "mail.send,api_keys.read", sendgrid.TagOnBehalfOf, "team-a")
		if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindRotated {
			t.Fatalf("%s: %s", o.Kind, o.Reason)
		}
	})
}

// Where the operator confines a secret to a subuser, removing sendgrid-on-behalf-of (so the admin
// calls would act on the parent account) is refused.
func TestAttackLeavingTheBoundSubuser(t *testing.T) {
	binds := parseBindings(t, `{"bindings":[{"name":"team-a-only","secrets":["`+providertest.VaultName+`/app-*"],"provider":"sendgrid",
		"allow":{"secret":["sendgrid-admin"],"url":["http://127.0.0.1:*"],"account":["team-a"]}}]}`)
	e := newE2E(t, &providertest.Options{Bindings: binds})
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || !strings.Contains(o.Reason, "tag sendgrid-on-behalf-of") || !strings.Contains(o.Reason, "not bound") ||
		strings.Contains(o.Reason, sendgrid.TagAPIURL) {
		t.Fatalf("%s: %s", o.Kind, o.Reason)
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Fatalf("SendGrid got %d requests", n)
	}
	// The control: with the subuser named, the same binding rotates.
	e = newE2E(t, &providertest.Options{Bindings: binds}, sendgrid.TagOnBehalfOf, "team-a")
	if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindRotated {
		t.Fatalf("control: %s: %s", o.Kind, o.Reason)
	}
}
