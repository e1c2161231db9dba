package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/webhook"
	"github.com/kvrotator/kvrotator/providers/webhook/webhooktest"
	"github.com/kvrotator/kvrotator/rotation"
)

// End to end: the real engine with the operator's bindings, the keyvault adapter and the Key Vault
// emulator over HTTPS, the provider, and the reference service (webhooktest).

const appSecret = "app-tokens" // the secret being rotated

// otherSecret is a secret of the same vault the tag-writer may not use, and otherValue its value.
const (
	otherSecret = "payments-signing-key"
	otherValue  = "PAYMENTS-SIGNING-KEY-must-never-be-used-93e1"
)

// serviceBindings is the operator's policy, as written in KVROTATOR_BINDINGS: the app secrets of the
// vault may use the signing key in keySecret to call the service at url.
func serviceBindings(t *testing.T, url string) *bindings.Policy {
	t.Helper()
	p, err := bindings.Parse([]byte(`{"bindings":[{"name":"tokens","secrets":["`+providertest.VaultName+`/app-*"],"provider":"webhook",
		"allow":{"url":["`+url+`"],"secret":["`+keySecret+`"]}}]}`), "KVROTATOR_BINDINGS", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// e2e is a vault holding the signing key and the app's credential, and the service that issued it.
type e2e struct {
	srv     *webhooktest.Server
	h       *providertest.Harness
	version string
}

// newE2E seeds the vault: the signing key, the other secret, and the app's credential due for rotation
// (expires in 5 days) with a 1-hour grace period. extra changes tags ("" deletes one).
func newE2E(t *testing.T, p *webhook.Provider, b *bindings.Policy, extra ...string) *e2e {
	t.Helper()
	srv := newServer(t)
	if b == nil {
		b = serviceBindings(t, srv.URL)
	}
	h := providertest.New(t, webhook.Name, p, &providertest.Options{Bindings: b})
	h.Seed(keySecret, signingKey, nil, 365*24*time.Hour)
	h.Seed(otherSecret, otherValue, nil, 365*24*time.Hour)
	tags := map[string]string{
		"rotation-provider":      webhook.Name,
		webhook.TagURL:           srv.URL,
		webhook.TagSigningSecret: keySecret,
		"CredentialId":           currentID,
		"rotation-grace-hours":   "1",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(tags, extra[i])
			continue
		}
		tags[extra[i]] = extra[i+1]
	}
	return &e2e{srv: srv, h: h, version: h.Seed(appSecret, currentValue, tags, 5*24*time.Hour)}
}

// cleanOutcome fails if an outcome (reason, error, JSON event) holds a secret.
func cleanOutcome(t *testing.T, o rotation.Outcome, more ...string) {
	t.Helper()
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	secrets := append([]string{signingKey, currentValue, otherValue}, more...)
	httpxtest.NoSecrets(t, append(httpxtest.ErrorTexts(o.Err), o.Reason, string(js)), secrets...)
}

// wantRotated checks that the vault's latest version holds a live credential the service issued, and
// that the old one still works (grace).
func (e *e2e) wantRotated(t *testing.T, o rotation.Outcome) (id, value string) {
	t.Helper()
	if o.Kind != rotation.KindRotated {
		t.Fatalf("outcome %s (%s): %s", o.Kind, o.Class, o.Reason)
	}
	latest := e.h.Latest(appSecret)
	id, value = latest.Tags["CredentialId"], latest.Value.Reveal()
	live := e.srv.Live()
	switch {
	case id == currentID || live[id] != value:
		t.Fatal("the vault's latest version does not hold the credential its CredentialId names")
	case live[currentID] != currentValue:
		t.Error("the old credential was revoked before its grace period")
	case e.srv.Created() != 1 || e.h.Versions(appSecret) != 2:
		t.Errorf("%d credentials issued, %d versions; want 1 and 2", e.srv.Created(), e.h.Versions(appSecret))
	}
	cleanOutcome(t, o, value)
	return id, value
}

// wantUnchanged checks that the vault holds only the first version and the service was not called.
func (e *e2e) wantUnchanged(t *testing.T) {
	t.Helper()
	if n := e.h.Versions(appSecret); n != 1 {
		t.Errorf("%d versions, want 1", n)
	}
	for _, ep := range []string{webhooktest.Create, webhooktest.Verify, webhooktest.Revoke} {
		if n := e.srv.Calls(ep); n != 0 {
			t.Errorf("the service's %s was called %d times", ep, n)
		}
	}
}

func TestEndToEndTriggers(t *testing.T) {
	for _, trigger := range providertest.Triggers {
		t.Run(trigger, func(t *testing.T) {
			e := newE2E(t, webhook.New(), nil)
			o := e.h.Rotate(trigger, appSecret, e.version)
			e.wantRotated(t, o)
			if o := e.h.Event(appSecret, e.version); o.Kind != rotation.KindSkipped {
				t.Errorf("redelivered event: %s %s", o.Kind, o.Reason)
			}
		})
	}
}

func TestEndToEndOldCredentialRevokedAfterGrace(t *testing.T) {
	e := newE2E(t, webhook.New(), nil)
	id, _ := e.wantRotated(t, e.h.Event(appSecret, e.version))
	e.h.Clock.Advance(2 * time.Hour)
	rep := e.h.Sweep()
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
		t.Fatalf("sweep after the grace period: %+v", rep.Outcomes)
	}
	if got := e.srv.Revoked(); len(got) != 1 || got[0] != currentID {
		t.Fatalf("Revoked() = %v, want [%s]", got, currentID)
	}
	if _, live := e.srv.Live()[id]; !live {
		t.Fatal("the vault's credential was revoked")
	}
	if st := e.h.State(appSecret); len(st.Pending) != 0 {
		t.Errorf("the journal still holds %+v", st.Pending)
	}
}

func TestEndToEndDryRunChangesNothing(t *testing.T) {
	e := newE2E(t, webhook.New(), nil)
	if o := e.h.Manual(appSecret, true); o.Kind != rotation.KindPlanned {
		t.Fatalf("dry run: %s %s", o.Kind, o.Reason)
	}
	e.wantUnchanged(t)
}

// The attacks of issue #10 by a person who may edit the tags of one secret (app-tokens): signed
// requests to a host of their choosing, with a signing key they cannot read. The provider's client
// trusts the attacker's certificate, so only the bindings stand in the way; each trigger fails with a
// permanent error naming the unbound tags, and nothing is contacted.
func TestAttackTagsPointAtAnotherHostOrKey(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tags    func(attacker string) []string
		unbound []string
	}{
		{"another host and another secret as the signing key",
			func(a string) []string {
				return []string{webhook.TagURL, a + "/internal", webhook.TagSigningSecret, otherSecret}
			},
			[]string{webhook.TagURL, webhook.TagSigningSecret}},
		{"another host, the bound signing key",
			func(a string) []string { return []string{webhook.TagURL, a} },
			[]string{webhook.TagURL}},
		{"another host through ProviderAddress",
			func(a string) []string { return []string{webhook.TagURL, "", webhook.TagAddress, a} },
			[]string{webhook.TagAddress}},
		{"another secret as the signing key, the bound host",
			func(string) []string { return []string{webhook.TagSigningSecret, otherSecret} },
			[]string{webhook.TagSigningSecret}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			attacker := httpxtest.NewAttacker(t)
			e := newE2E(t, webhook.New(webhook.WithHTTPClient(attacker.Client())), nil, tc.tags(attacker.URL)...)
			outcomes := map[string]rotation.Outcome{"event": e.h.Event(appSecret, e.version), "manual": e.h.Manual(appSecret, false),
				"dry run": e.h.Manual(appSecret, true)}
			for _, o := range e.h.Sweep().Outcomes {
				if o.Kind == rotation.KindFailed {
					outcomes["sweep"] = o
				}
			}
			if len(outcomes) != 4 {
				t.Fatalf("outcomes %v", outcomes)
			}
			for trigger, o := range outcomes {
				var ce *providers.ConfigError
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) {
					t.Fatalf("%s: %s (%s) %s; want a permanent configuration error", trigger, o.Kind, o.Class, o.Reason)
				}
				for _, tag := range tc.unbound {
					if !strings.Contains(o.Reason, "tag "+tag+"=") || !strings.Contains(o.Reason, "not bound") {
						t.Errorf("%s: %q does not name the unbound tag %s", trigger, o.Reason, tag)
					}
				}
				cleanOutcome(t, o)
			}
			attacker.Untouched(t)
			e.wantUnchanged(t)
		})
	}
}

// The control for the test above: with bindings that allow them, the same tags send a request signed
// with the other secret to the attacker.
func TestAttackControlBoundReferencesAreReached(t *testing.T) {
	attacker := httpxtest.NewAttacker(t)
	careless, err := bindings.Parse([]byte(`{"bindings":[{"secrets":["`+providertest.VaultName+`/app-*"],"provider":"webhook",
		"allow":{"url":["`+attacker.URL+`"],"secret":["`+otherSecret+`"]}}]}`), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newE2E(t, webhook.New(webhook.WithHTTPClient(attacker.Client())), careless, webhook.TagURL, attacker.URL, webhook.TagSigningSecret, otherSecret)
	if o := e.h.Event(appSecret, e.version); o.Kind != rotation.KindFailed {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	if attacker.Requests() != 1 || !attacker.Saw(webhook.HeaderSignature) {
		t.Fatal("with the references bound, the attacker got no signed request: the attack tests prove nothing")
	}
}

// CredentialId naming someone else's credential on one's own secret: kvrotator rotates the secret
// (the service issues the tag-writer a new credential), but when the grace period ends, the revoke
// request carries the digest of the replaced version's value, which is not the victim's: the service
// refuses, the victim's credential stays live.
func TestAttackCredentialIdNamesAnotherCredential(t *testing.T) {
	e := newE2E(t, webhook.New(), nil, "CredentialId", "tok-victim")
	e.srv.Seed("tok-victim", "VICTIMVALUE-must-stay-live-71c2")
	if o := e.h.Event(appSecret, e.version); o.Kind != rotation.KindRotated {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	e.h.Clock.Advance(2 * time.Hour)
	var o rotation.Outcome
	for _, out := range e.h.Sweep().Outcomes {
		if out.Secret == appSecret {
			o = out
		}
	}
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "409") {
		t.Fatalf("revocation: %s (%s) %s; want the service's permanent refusal", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.h.Latest(appSecret).Value.Reveal())
	if _, live := e.srv.Live()["tok-victim"]; !live || len(e.srv.Revoked()) != 0 {
		t.Fatalf("the victim's credential was revoked: %v", e.srv.Revoked())
	}
}

// TestEndToEndTimeoutAfterCommitConverges: Key Vault applies the new-version write and the answer is
// lost (emulator fault drop=after). Once, the SDK's retry writes it again: rotated, one credential.
// Every time, the rotation fails; the next run recognises the version that was written (the journal's
// Writing mark) and makes no second credential; the revocation after the grace revokes only the old one.
func TestEndToEndTimeoutAfterCommitConverges(t *testing.T) {
	t.Run("once", func(t *testing.T) {
		e := newE2E(t, webhook.New(), nil)
		rule, err := emulator.ParseFaultRule("op=SetSecret,secret=" + appSecret + ",drop=after,count=1")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.h.Server.AddFault(rule); err != nil {
			t.Fatal(err)
		}
		o := e.h.Event(appSecret, e.version)
		if o.Kind != rotation.KindRotated || e.srv.Created() != 1 || e.h.Versions(appSecret) != 3 {
			t.Fatalf("%+v; %d credentials, %d versions (want 1 and 3: the write applied twice)", o, e.srv.Created(), e.h.Versions(appSecret))
		}
		latest := e.h.Latest(appSecret)
		if id := latest.Tags["CredentialId"]; e.srv.Live()[id] != latest.Value.Reveal() {
			t.Fatal("the latest version does not hold the live new credential")
		}
	})
	t.Run("every retry", func(t *testing.T) {
		e := newE2E(t, webhook.New(), nil)
		rule, err := emulator.ParseFaultRule("op=SetSecret,secret=" + appSecret + ",drop=after,count=50")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.h.Server.AddFault(rule); err != nil {
			t.Fatal(err)
		}
		o := e.h.Event(appSecret, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
			t.Fatalf("every answer lost: %+v", o)
		}
		written := e.h.Versions(appSecret)
		if written < 2 || e.srv.Created() != 1 {
			t.Fatalf("%d versions, %d credentials", written, e.srv.Created())
		}
		e.h.Server.ClearFaults()
		// Event Grid redelivers the event (its version is no longer the latest), and the sweep runs.
		if o := e.h.Event(appSecret, e.version); o.Kind != rotation.KindSkipped {
			t.Fatalf("redelivered event: %+v", o)
		}
		if rep := e.h.Sweep(); len(rep.Outcomes) != 0 {
			t.Fatalf("sweep after the lost answers: %+v", rep.Outcomes)
		}
		if e.srv.Created() != 1 || e.h.Versions(appSecret) != written {
			t.Fatalf("a second credential or version: %d credentials, %d versions (was %d)", e.srv.Created(), e.h.Versions(appSecret), written)
		}
		latest := e.h.Latest(appSecret)
		id := latest.Tags["CredentialId"]
		if id == currentID || e.srv.Live()[id] != latest.Value.Reveal() {
			t.Fatal("the latest version does not hold the live new credential")
		}
		var status rotation.SecretStatus
		for _, s := range e.h.Engine.Status(context.Background(), time.Time{}).Secrets {
			if s.Secret == appSecret {
				status = s
			}
		}
		if status.LastRotated == nil || status.Due || status.Fails != 0 || len(status.Pending) != 1 || status.Pending[0].CredentialID != currentID {
			t.Fatalf("kvrotator did not recognise the written version: %+v", status)
		}
		e.h.Clock.Advance(2 * time.Hour)
		e.h.Sweep()
		if got := e.srv.Revoked(); len(got) != 1 || got[0] != currentID {
			t.Fatalf("revoked %v, want only %s", got, currentID)
		}
		if _, live := e.srv.Live()[id]; !live {
			t.Fatal("the new credential was revoked")
		}
	})
}
