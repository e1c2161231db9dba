package twilio_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/twilio"
	"github.com/kvrotator/kvrotator/providers/twilio/twiliotest"
	"github.com/kvrotator/kvrotator/rotation"
)

// End to end: the real engine, the keyvault adapter and the Key Vault emulator over HTTPS, the provider,
// and the local Twilio API.

// e2e is a vault holding the admin credentials and the app's key, and the Twilio account.
type e2e struct {
	*fixture
	h       *providertest.Harness
	version string // the app secret's first version
}

// operatorBindings is the operator's policy for these tests, as it would be written in
// KVROTATOR_BINDINGS: the app secrets of the vault may use the admin credentials below for the
// account, through the local Twilio API at apiURL (in production Twilio's own URLs need no binding).
func operatorBindings(t *testing.T, apiURL, account string) *bindings.Policy {
	t.Helper()
	return parseBindings(t, `{"bindings":[{"name":"twilio","secrets":["`+providertest.VaultName+`/app-*"],"provider":"twilio",
		"allow":{"secret":["twilio-admin","weak-admin","no-such-secret"],"url":["`+apiURL+`"],"account":["`+account+`"]}}]}`)
}

func parseBindings(t *testing.T, js string) *bindings.Policy {
	t.Helper()
	p, err := bindings.Parse([]byte(js), "KVROTATOR_BINDINGS", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newE2E seeds the vault: the admin credentials (a Main key), and the app's key of type typ due for
// rotation (expires in 5 days) with a 1-hour grace period. extra changes tags ("" deletes one).
func newE2E(t *testing.T, typ string, o *providertest.Options, extra ...string) *e2e {
	t.Helper()
	return newE2EWith(t, twilio.New(), typ, o, extra...)
}

// newE2EWith is newE2E with the provider p.
func newE2EWith(t *testing.T, p *twilio.Provider, typ string, o *providertest.Options, extra ...string) *e2e {
	t.Helper()
	f := newFixture(t, typ)
	opts := providertest.Options{}
	if o != nil {
		opts = *o
	}
	if opts.Bindings == nil {
		opts.Bindings = operatorBindings(t, f.srv.URL, f.srv.Account.SID)
	}
	h := providertest.New(t, twilio.Name, p, &opts)
	h.Seed(adminSecret, f.admin, nil, 365*24*time.Hour)
	tags := map[string]string{"rotation-grace-hours": "1"}
	for k, v := range f.tags(f.srv.URL) {
		tags[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(tags, extra[i])
			continue
		}
		tags[extra[i]] = extra[i+1]
	}
	v := h.Seed(secretName, f.current.Value(), tags, 5*24*time.Hour)
	return &e2e{fixture: f, h: h, version: v}
}

// keyName is the FriendlyName of the key a rotation of the first version creates.
func (e *e2e) keyName() string {
	return twilio.KeyName(secretName, rotation.IdempotencyKey(providertest.VaultName, secretName, e.version))
}

// kvrotatorKeys are the live keys the provider made.
func (e *e2e) kvrotatorKeys() []twiliotest.Key {
	var out []twiliotest.Key
	for _, k := range e.srv.Keys() {
		if strings.HasPrefix(k.FriendlyName, twilio.NamePrefix) {
			out = append(out, k)
		}
	}
	return out
}

// allSecrets are every key secret that exists in the account, and more, for the no-leak checks.
func (e *e2e) allSecrets(more ...string) []string {
	out := e.secrets(more...)
	for _, k := range e.srv.Keys() {
		out = append(out, k.Secret)
	}
	return out
}

// cleanOutcome fails if an outcome (its reason, its error, its JSON event) contains a secret.
func cleanOutcome(t *testing.T, o rotation.Outcome, secrets ...string) {
	t.Helper()
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	clean(t, errors.New(o.Reason), secrets...)
	clean(t, errors.New(string(js)), secrets...)
	clean(t, o.Err, secrets...)
}

// wantRotated checks that the vault's latest version holds a working new key of the old key's type
// (and policy), named for the idempotency key of the first version, and that the old key still works.
func (e *e2e) wantRotated(t *testing.T, o rotation.Outcome) twiliotest.Key {
	t.Helper()
	if o.Kind != rotation.KindRotated {
		t.Fatalf("outcome %s (%s): %s", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.allSecrets()...)
	latest := e.h.Latest(secretName)
	k, ok := e.srv.Key(latest.Tags["CredentialId"])
	switch {
	case !ok || k.Value() != latest.Value.Reveal():
		t.Fatal("the vault's latest version does not hold the key its CredentialId names")
	case !e.srv.Works(latest.Value.Reveal()):
		t.Fatal("the vault's key does not work")
	case k.FriendlyName != e.keyName():
		t.Errorf("new key named %q, want %q", k.FriendlyName, e.keyName())
	case k.Type != e.current.Type || !jsonEqual(k.Policy, e.current.Policy):
		t.Errorf("new key %s %s, want the old key's %s %s", k.Type, k.Policy, e.current.Type, e.current.Policy)
	case !e.srv.Works(e.current.Value()):
		t.Error("the old key stopped working before its grace period")
	}
	if n := len(e.kvrotatorKeys()); n != 1 {
		t.Errorf("%d keys made by kvrotator are live, want 1", n)
	}
	if n := e.h.Versions(secretName); n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
	return k
}

// jsonEqual compares two JSON documents (nil and null alike).
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	_ = json.Unmarshal(a, &x)
	_ = json.Unmarshal(b, &y)
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}

// wantUnchanged checks that the vault still holds only the first version, and that no kvrotator key is
// live at Twilio.
func (e *e2e) wantUnchanged(t *testing.T) {
	t.Helper()
	if n := e.h.Versions(secretName); n != 1 {
		t.Errorf("%d versions, want 1: the vault changed", n)
	}
	if latest := e.h.Latest(secretName); latest.Value.Reveal() != e.current.Value() || latest.Version != e.version {
		t.Error("the vault's latest version changed")
	}
	if keys := e.kvrotatorKeys(); len(keys) != 0 {
		t.Errorf("%d keys made by kvrotator are live: orphans", len(keys))
	}
}

var types = []string{twiliotest.TypeStandard, twiliotest.TypeRestricted}

func TestEndToEndTriggers(t *testing.T) {
	for _, typ := range types {
		for _, trigger := range providertest.Triggers {
			t.Run(typ+"/"+trigger, func(t *testing.T) {
				e := newE2E(t, typ, nil)
				o := e.h.Rotate(trigger, secretName, e.version)
				e.wantRotated(t, o)
				if o := e.h.Event(secretName, e.version); o.Kind != rotation.KindSkipped {
					t.Errorf("redelivered event: %s %s", o.Kind, o.Reason)
				}
				if e.srv.Created() != 1 || e.h.Versions(secretName) != 2 {
					t.Error("the redelivered event created something")
				}
			})
		}
	}
}

func TestEndToEndDryRunChangesNothing(t *testing.T) {
	e := newE2E(t, twiliotest.TypeStandard, nil)
	o := e.h.Manual(secretName, true)
	if o.Kind != rotation.KindPlanned || !strings.Contains(o.Reason, "revoke credential "+e.current.SID) {
		t.Fatalf("dry run: %s %s", o.Kind, o.Reason)
	}
	e.wantUnchanged(t)
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("the dry run made %d calls to Twilio", n)
	}
}

func TestEndToEndInterruptedRotationConverges(t *testing.T) {
	for _, typ := range types {
		for _, step := range []providertest.Step{providertest.AfterCreate, providertest.AfterVerify} {
			for _, resume := range []string{"event", "sweep"} {
				t.Run(typ+"/"+string(step)+"/"+resume, func(t *testing.T) {
					e := newE2E(t, typ, nil)
					if o := e.h.RotateInterrupted(secretName, e.version, step); o.Kind != rotation.KindFailed {
						t.Fatalf("interrupted rotation: %s %s", o.Kind, o.Reason)
					}
					if e.h.Versions(secretName) != 1 || len(e.srv.Named(e.keyName())) != 1 {
						t.Fatal("the interrupted rotation wrote a version, or left no key behind")
					}
					var o rotation.Outcome
					if resume == "event" {
						o = e.h.Event(secretName, e.version)
					} else {
						rep := e.h.Sweep()
						if len(rep.Outcomes) != 1 {
							t.Fatalf("sweep outcomes %+v", rep.Outcomes)
						}
						o = rep.Outcomes[0]
					}
					k := e.wantRotated(t, o)
					if named := e.srv.Named(e.keyName()); len(named) != 1 || named[0].SID != k.SID {
						t.Errorf("%d keys for the idempotency key, want exactly the vault's", len(named))
					}
					if e.srv.Created() != 2 {
						t.Errorf("%d keys created, want 2 (the interrupted one, deleted, and the vault's)", e.srv.Created())
					}
				})
			}
		}
	}
}

// The old key goes after the grace period, also when the sweep that deletes it dies before recording
// it. The first version was seeded by hand: its value "SK…:secret" proves the key by authenticating.
func TestEndToEndOldKeyRevokedAfterGrace(t *testing.T) {
	for _, typ := range types {
		for _, interrupted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/interrupted=%v", typ, interrupted), func(t *testing.T) {
				e := newE2E(t, typ, nil)
				rep := e.h.Sweep()
				if len(rep.Outcomes) != 1 {
					t.Fatalf("sweep outcomes %+v", rep.Outcomes)
				}
				k := e.wantRotated(t, rep.Outcomes[0])
				e.h.Clock.Advance(30 * time.Minute)
				if rep := e.h.Sweep(); len(rep.Outcomes) != 0 || !e.srv.Works(e.current.Value()) {
					t.Fatalf("sweep within the grace period: %+v", rep.Outcomes)
				}
				e.h.Clock.Advance(time.Hour)
				if interrupted {
					e.h.SweepInterrupted()
					if _, live := e.srv.Key(e.current.SID); live {
						t.Fatal("the interrupted sweep did not delete the old key")
					}
				}
				rep = e.h.Sweep()
				if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
					t.Fatalf("sweep after the grace period: %+v", rep.Outcomes)
				}
				cleanOutcome(t, rep.Outcomes[0], e.allSecrets(e.current.Secret)...)
				if _, live := e.srv.Key(e.current.SID); live {
					t.Error("the old key is still live")
				}
				if latest := e.h.Latest(secretName); !e.srv.Works(latest.Value.Reveal()) || latest.Tags["CredentialId"] != k.SID {
					t.Error("the vault's key was touched")
				}
				if rep := e.h.Sweep(); len(rep.Outcomes) != 0 {
					t.Errorf("revocation not recorded: %+v", rep.Outcomes)
				}
			})
		}
	}
}

func TestEndToEndBadTags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change []string
		tag    string
	}{
		{"admin secret tag missing", []string{twilio.TagAdminSecret, ""}, twilio.TagAdminSecret},
		{"account missing", []string{twilio.TagAccountSID, ""}, twilio.TagAccountSID},
		{"account not an SID", []string{twilio.TagAccountSID, "AC123"}, twilio.TagAccountSID},
		{"plain http to a remote host", []string{twilio.TagIAMURL, "http://iam.twilio.com"}, twilio.TagIAMURL},
		{"main keys", []string{twilio.TagKeyType, "main"}, twilio.TagKeyType},
		{"misspelt tag", []string{"twilio-verfiy", "balance"}, "twilio-verfiy"},
		{"CredentialId not an SID", []string{"CredentialId", "SK1"}, "CredentialId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, twiliotest.TypeStandard, nil, tc.change...)
			for _, dry := range []bool{true, false} {
				o := e.h.Manual(secretName, dry)
				var ce *providers.ConfigError
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) || !strings.Contains(o.Reason, tc.tag) {
					t.Fatalf("dry=%v: %s (%s) %s", dry, o.Kind, o.Class, o.Reason)
				}
				cleanOutcome(t, o, e.allSecrets()...)
			}
			e.wantUnchanged(t)
			if n := len(e.srv.Requests()); n != 0 {
				t.Errorf("%d calls to Twilio with a bad policy", n)
			}
		})
	}
}

func TestEndToEndAdminSecretMissingFromTheVault(t *testing.T) {
	e := newE2E(t, twiliotest.TypeStandard, nil, twilio.TagAdminSecret, "no-such-secret")
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, `"no-such-secret"`) {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	e.wantUnchanged(t)
}

func TestEndToEndIssuerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		admin  func(e *e2e) string
		reason string
	}{
		{"a Standard key as the admin", func(e *e2e) string {
			return e.srv.AddKey(e.srv.Account.SID, twiliotest.TypeStandard, "standard", nil).Value()
		}, "managing keys needs a Main key"},
		{"a deleted Main key", func(*e2e) string { return "SK00000000000000000000000000000000:gonegonegonegonegonegonegonegone" }, "does not accept the admin credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, twiliotest.TypeStandard, nil, twilio.TagAdminSecret, "weak-admin")
			admin := tc.admin(e)
			e.h.Seed("weak-admin", admin, nil, 365*24*time.Hour)
			for _, o := range []rotation.Outcome{e.h.Event(secretName, e.version), e.h.Manual(secretName, false)} {
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, tc.reason) || !strings.Contains(o.Reason, "20003") {
					t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
				}
				cleanOutcome(t, o, e.allSecrets(secretOf(admin))...)
			}
			e.wantUnchanged(t)
		})
	}
	t.Run("restricted key type on a standard key", func(t *testing.T) {
		e := newE2E(t, twiliotest.TypeStandard, nil, twilio.TagKeyType, twilio.KeyTypeRestricted)
		o := e.h.Event(secretName, e.version)
		var ce *providers.ConfigError
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) || !strings.Contains(o.Reason, "standard key") {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		e.wantUnchanged(t)
	})
}

func TestEndToEndIssuerDown(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		e := newE2E(t, twiliotest.TypeStandard, nil)
		e.srv.Close()
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		cleanOutcome(t, o, e.allSecrets()...)
		e.wantUnchanged(t)
	})
	t.Run("rate-limited for a minute", func(t *testing.T) {
		e := newE2E(t, twiliotest.TypeStandard, nil)
		e.srv.Throttle(100, time.Minute)
		start := time.Now()
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "20429") {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		if time.Since(start) > 10*time.Second {
			t.Error("the engine waited out the rate-limit window in-process")
		}
		e.wantUnchanged(t)
	})
	t.Run("rate-limited for a second", func(t *testing.T) {
		e := newE2E(t, twiliotest.TypeStandard, nil)
		e.srv.Throttle(1, time.Second)
		start := time.Now()
		e.wantRotated(t, e.h.Event(secretName, e.version))
		if time.Since(start) < time.Second {
			t.Error("the engine did not honour Retry-After")
		}
	})
	t.Run("rate-limited without Retry-After", func(t *testing.T) {
		e := newE2E(t, twiliotest.TypeStandard, nil)
		e.srv.Throttle(1, 0)
		e.wantRotated(t, e.h.Event(secretName, e.version))
	})
	t.Run("briefly unavailable", func(t *testing.T) {
		e := newE2E(t, twiliotest.TypeStandard, nil)
		e.srv.FailNext(1, 503)
		e.wantRotated(t, e.h.Event(secretName, e.version))
	})
}

func TestEndToEndPropagation(t *testing.T) {
	e := newE2E(t, twiliotest.TypeRestricted, nil)
	e.srv.SetPropagation(3)
	e.wantRotated(t, e.h.Event(secretName, e.version))
}

func TestEndToEndKeyThatNeverWorksIsDeleted(t *testing.T) {
	e := newE2E(t, twiliotest.TypeStandard, &providertest.Options{VerifyTimeout: 300 * time.Millisecond})
	e.srv.SetPropagation(1 << 20)
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.allSecrets()...)
	e.wantUnchanged(t)
	if e.srv.Created() != 1 {
		t.Errorf("%d keys created", e.srv.Created())
	}
}

// The engine's own log (debug level included) never holds a secret, through a rotation with
// propagation delays, failures, and the revocation.
func TestEndToEndNoSecretInTheLog(t *testing.T) {
	e := newE2E(t, twiliotest.TypeStandard, nil)
	var logged httpxtest.SyncBuffer
	eng, err := rotation.New(rotation.Config{
		Vaults:        []rotation.Vault{e.h.Vault},
		Providers:     func(n string) (providers.Provider, bool) { return twilio.New(), n == twilio.Name },
		Bindings:      operatorBindings(t, e.srv.URL, e.srv.Account.SID),
		Clock:         e.h.Clock,
		Logger:        slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})),
		VerifyTimeout: 5 * time.Second, VerifyBackoff: 20 * time.Millisecond, RetryBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.EchoKeys(true)
	e.srv.FailNext(1, 500)
	e.srv.SetPropagation(3)
	outcomes := []rotation.Outcome{eng.HandleEvent(t.Context(), rotation.Event{Type: rotation.EventNearExpiry, Vault: providertest.VaultName, Secret: secretName, Version: e.version})}
	if outcomes[0].Kind != rotation.KindRotated {
		t.Fatalf("%s %s", outcomes[0].Kind, outcomes[0].Reason)
	}
	e.h.Clock.Advance(2 * time.Hour)
	e.srv.Throttle(1, time.Second)
	outcomes = append(outcomes, eng.Sweep(t.Context(), rotation.TriggerTimer, false).Outcomes...)
	if len(outcomes) != 2 || outcomes[1].Kind != rotation.KindRevoked {
		t.Fatalf("sweep after the grace period: %+v", outcomes[1:])
	}
	if !strings.Contains(logged.String(), "verify failed") || !strings.Contains(logged.String(), "[redacted]") {
		t.Fatalf("the log holds no verify retry with Twilio's (echoed, redacted) message: the test proves nothing\n%s", logged.String())
	}
	secrets := e.allSecrets(e.current.Secret, secretOf(e.h.Latest(secretName).Value.Reveal()))
	clean(t, errors.New(logged.String()), secrets...)
	for _, o := range outcomes {
		cleanOutcome(t, o, secrets...)
	}
}
