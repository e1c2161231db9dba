package openai_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/openai"
	"github.com/kvrotator/kvrotator/rotation"
)

// The attacks of a person who may edit the tags of one secret (app-openai) and nothing else, run end to
// end: the real engine with the operator's bindings (operatorBindings), the Key Vault emulator, the
// provider. Each fails with a permanent error naming the unbound tag, and nothing is contacted.

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
		t.Errorf("OpenAI got %d requests", n)
	}
	e.wantUnchanged(t)
}

func TestAttackTagsPointAtAnotherSecretHostOrProject(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tags    func(attacker string) []string
		unbound []string
	}{
		{"another secret as the admin key, sent to the attacker's host",
			func(a string) []string { return []string{openai.TagAdminSecret, otherSecret, openai.TagAPIURL, a} },
			[]string{openai.TagAdminSecret, openai.TagAPIURL}},
		{"the real admin key, sent to the attacker's host",
			func(a string) []string { return []string{openai.TagAPIURL, a} },
			[]string{openai.TagAPIURL}},
		{"another secret as the admin key",
			func(string) []string { return []string{openai.TagAdminSecret, otherSecret} },
			[]string{openai.TagAdminSecret}},
		{"another project of the organization",
			func(string) []string { return []string{openai.TagProject, "proj_payments0000"} },
			[]string{openai.TagProject}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := httpxtest.NewAttacker(t)
			// A client that trusts the attacker's certificate: only the bindings stand in the way.
			p := openai.New(openai.WithHTTPClient(attacker.Client()))
			tags := append(tc.tags(attacker.URL), "rotation-state", "started=1") // the old "resume" trick, too
			e := newE2EWith(t, p, nil, tags...)
			e.h.Seed(otherSecret, otherValue, nil, 365*24*time.Hour)
			e.wantRefused(t, tc.unbound...)
			attacker.Untouched(t)
		})
	}
}

// With no bindings at all, nothing but OpenAI's own URL passes: the admin secret and the project are
// refused, and nothing is read or contacted.
func TestAttackNoBindings(t *testing.T) {
	e := newE2E(t, &providertest.Options{Bindings: parseBindings(t, `{"bindings":[]}`)}, openai.TagAPIURL, "")
	e.wantRefused(t, openai.TagAdminSecret, openai.TagProject)
}

// The control for the tests above: the same tags with bindings that allow them send the other secret's
// value to the attacker's host. So the attack tests fail because of the bindings, not for another
// reason.
func TestAttackControlBoundReferencesAreReached(t *testing.T) {
	attacker := httpxtest.NewAttacker(t)
	f := newFixture(t)
	careless := parseBindings(t, `{"bindings":[{"secrets":["`+providertest.VaultName+`/app-*"],"provider":"openai",
		"allow":{"secret":["`+otherSecret+`"],"url":["`+attacker.URL+`"],"account":["`+f.project+`"]}}]}`)
	h := providertest.New(t, openai.Name, openai.New(openai.WithHTTPClient(attacker.Client())), &providertest.Options{Bindings: careless})
	h.Seed(otherSecret, otherValue, nil, 365*24*time.Hour)
	v := h.Seed(secretName, f.current.Key.Value, map[string]string{"rotation-provider": openai.Name, "CredentialId": f.current.ID,
		openai.TagAdminSecret: otherSecret, openai.TagProject: f.project, openai.TagAPIURL: attacker.URL}, 5*24*time.Hour)
	if o := h.Event(secretName, v); o.Kind != rotation.KindFailed {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	if !attacker.Saw("Bearer " + otherValue) {
		t.Fatal("with the references bound, the attacker did not get the other secret: the attack tests prove nothing")
	}
}

// writeVersion writes a version of the app secret by hand (as a person with write access to that one
// secret can), with the current tags and CredentialId set to id.
func (e *e2e) writeVersion(value, id string, change ...string) {
	latest := e.h.Latest(secretName)
	tags := map[string]string{}
	for k, v := range latest.Tags {
		tags[k] = v
	}
	tags["CredentialId"] = id
	for i := 0; i+1 < len(change); i += 2 {
		tags[change[i]] = change[i+1]
	}
	e.version = e.h.Seed(secretName, value, tags, 5*24*time.Hour)
}

// A version written by hand claims, in CredentialId, to hold another team's service account of the same
// (bound) project. The rotation itself copies nothing from that account; after the grace period the
// revocation asks OpenAI to prove the claim — the value does not authenticate, or is a key of another
// account — and refuses, once: the victim's account lives.
func TestAttackHandWrittenVersionClaimsAnotherAccount(t *testing.T) {
	for _, tc := range []struct {
		name   string
		value  func(e *e2e) string
		reason string
	}{
		{"a forged value", func(*e2e) string { return "sk-svcacct-forged-by-the-tag-writer-0000000000" }, "does not authenticate"},
		{"the writer's own working key", func(e *e2e) string { return e.srv.AddServiceAccount(e.project, "the writer's").Key.Value }, "lists no key of it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, nil, "rotation-grace-hours", "0")
			victim := e.srv.AddServiceAccount(e.project, "payments team")
			e.writeVersion(tc.value(e), victim.ID)
			if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindRotated {
				t.Fatalf("%s: %s", o.Kind, o.Reason)
			}
			rep := e.h.Sweep()
			if rep.Failed() != 1 || !strings.Contains(rep.Outcomes[0].Reason, tc.reason) {
				t.Fatalf("sweep: %+v", rep.Outcomes)
			}
			cleanOutcome(t, rep.Outcomes[0], e.allKeys(victim.Key.Value)...)
			if _, live := e.srv.ServiceAccount(victim.ID); !live {
				t.Fatal("the victim's service account was deleted on a tag's word")
			}
			if st := e.h.State(secretName); len(st.Pending) != 0 {
				t.Fatalf("the refused entry is retried forever: %+v", st.Pending)
			}
		})
	}
}

// CredentialId holding a key instead of an id is refused before anything is read, and never repeated.
func TestAttackKeyInCredentialId(t *testing.T) {
	e := newE2E(t, nil, "CredentialId", "sk-svcacct-THEKEYTHEKEYTHEKEYTHEKEY")
	for _, dry := range []bool{true, false} {
		o := e.h.Manual(secretName, dry)
		var ce *providers.ConfigError
		if o.Kind != rotation.KindFailed || !errors.As(o.Err, &ce) || ce.Tag != "CredentialId" || strings.Contains(o.Reason, "THEKEY") {
			t.Fatalf("dry=%v: %s %s", dry, o.Kind, o.Reason)
		}
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("OpenAI got %d requests", n)
	}
}
