package datadog_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/datadog"
	"github.com/kvrotator/kvrotator/providers/datadog/datadogtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/rotation"
)

// End to end: the real engine, the keyvault adapter and the Key Vault emulator over HTTPS, the provider,
// and the local Datadog API.

// e2e is a vault holding the admin keys and the app's key, and the Datadog organization they belong to.
type e2e struct {
	*fixture
	h       *providertest.Harness
	version string // the app secret's first version
}

// operatorBindings is the operator's policy for these tests, as it would be written in
// KVROTATOR_BINDINGS: the app secrets of the vault may use the admin keys below, through the local
// Datadog API at apiURL (in production a Datadog site needs no binding), for API keys (the
// organization), the admin user's application keys and the service account's.
func operatorBindings(t *testing.T, apiURL string) *bindings.Policy {
	t.Helper()
	return parseBindings(t, `{"bindings":[{"name":"datadog","secrets":["`+providertest.VaultName+`/app-*"],"provider":"datadog",
		"allow":{"secret":["datadog-admin","weak-admin","no-such-secret"],"url":["`+apiURL+`"],
		"account":["organization","current-user","`+serviceAccount+`"]}}]}`)
}

func parseBindings(t *testing.T, js string) *bindings.Policy {
	t.Helper()
	p, err := bindings.Parse([]byte(js), "KVROTATOR_BINDINGS", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newE2E seeds the vault: the admin keys, and the app's key of kind and owner due for rotation
// (expires in 5 days, inside the 30-day near-expiry window) with a 1-hour grace period. extra changes
// tags ("" deletes one). The operator's bindings (operatorBindings) apply unless o has its own.
func newE2E(t *testing.T, kind, owner string, o *providertest.Options, extra ...string) *e2e {
	t.Helper()
	return newE2EWith(t, datadog.New(), kind, owner, o, extra...)
}

// newE2EWith is newE2E with the provider p.
func newE2EWith(t *testing.T, p *datadog.Provider, kind, owner string, o *providertest.Options, extra ...string) *e2e {
	t.Helper()
	f := newFixture(t, kind, owner)
	opts := providertest.Options{}
	if o != nil {
		opts = *o
	}
	if opts.Bindings == nil {
		opts.Bindings = operatorBindings(t, f.srv.URL)
	}
	h := providertest.New(t, datadog.Name, p, &opts)
	h.Seed(adminSecret, f.adminValue(), nil, 365*24*time.Hour)
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
	v := h.Seed(secretName, f.current.Value, tags, 5*24*time.Hour)
	return &e2e{fixture: f, h: h, version: v}
}

// keyName is the name of the key a rotation of the first version creates.
func (e *e2e) keyName() string {
	return datadog.KeyName(secretName, rotation.IdempotencyKey(providertest.VaultName, secretName, e.version))
}

// kvrotatorKeys are the live keys the provider made.
func (e *e2e) kvrotatorKeys() []datadogtest.Key {
	var out []datadogtest.Key
	for _, k := range e.srv.Keys() {
		if strings.HasPrefix(k.Name, datadog.NamePrefix) {
			out = append(out, k)
		}
	}
	return out
}

// allKeys are every key value that exists in the organization, and more, for the no-leak checks.
func (e *e2e) allKeys(more ...string) []string {
	out := e.secrets(more...)
	for _, k := range e.srv.Keys() {
		out = append(out, k.Value)
	}
	return out
}

// cleanOutcome fails if an outcome (its reason, its error, its JSON event) contains a key.
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

// wantRotated checks that the vault's latest version holds a working new key of the right kind, owner
// and scopes, named for the idempotency key of the first version, and that the old key still works.
func (e *e2e) wantRotated(t *testing.T, o rotation.Outcome) datadogtest.Key {
	t.Helper()
	if o.Kind != rotation.KindRotated {
		t.Fatalf("outcome %s (%s): %s", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.allKeys()...)
	latest := e.h.Latest(secretName)
	k, ok := e.srv.Key(latest.Tags["CredentialId"])
	switch {
	case !ok || k.Value != latest.Value.Reveal():
		t.Fatal("the vault's latest version does not hold the key its CredentialId names")
	case !e.srv.Works(latest.Value.Reveal()):
		t.Fatal("the vault's key does not work")
	case k.Name != e.keyName():
		t.Errorf("new key named %q, want %q", k.Name, e.keyName())
	case k.Kind != e.current.Kind || k.Owner != e.current.Owner || !slices.Equal(k.Scopes, e.current.Scopes):
		t.Errorf("new key %s of %q with scopes %v, want the old key's (%s of %q, %v)", k.Kind, k.Owner, k.Scopes, e.current.Kind, e.current.Owner, e.current.Scopes)
	case !e.srv.Works(e.current.Value):
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

// wantUnchanged checks that the vault still holds only the first version, and that no kvrotator key is
// live at Datadog.
func (e *e2e) wantUnchanged(t *testing.T) {
	t.Helper()
	if n := e.h.Versions(secretName); n != 1 {
		t.Errorf("%d versions, want 1: the vault changed", n)
	}
	if latest := e.h.Latest(secretName); latest.Value.Reveal() != e.current.Value || latest.Version != e.version {
		t.Error("the vault's latest version changed")
	}
	if keys := e.kvrotatorKeys(); len(keys) != 0 {
		t.Errorf("%d keys made by kvrotator are live: orphans", len(keys))
	}
}

// kinds are the three things the provider rotates: API keys, the admin user's application keys, a
// service account's application keys.
var kinds = []struct{ name, kind, owner string }{
	{"api", datadog.KeyTypeAPI, ""},
	{"application", datadog.KeyTypeApplication, ""},
	{"service-account", datadog.KeyTypeApplication, serviceAccount},
}

func TestEndToEndTriggers(t *testing.T) {
	for _, k := range kinds {
		for _, trigger := range providertest.Triggers {
			t.Run(k.name+"/"+trigger, func(t *testing.T) {
				e := newE2E(t, k.kind, k.owner, nil)
				o := e.h.Rotate(trigger, secretName, e.version)
				e.wantRotated(t, o)

				// The same event again: the work is done, nothing changes.
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
	e := newE2E(t, datadog.KeyTypeAPI, "", nil)
	o := e.h.Manual(secretName, true)
	if o.Kind != rotation.KindPlanned || !strings.Contains(o.Reason, "revoke credential "+e.current.ID) {
		t.Fatalf("dry run: %s %s", o.Kind, o.Reason)
	}
	e.wantUnchanged(t)
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("the dry run made %d calls to Datadog", n)
	}
}

func TestEndToEndInterruptedRotationConverges(t *testing.T) {
	for _, k := range kinds {
		for _, step := range []providertest.Step{providertest.AfterCreate, providertest.AfterVerify} {
			for _, resume := range []string{"event", "sweep"} {
				t.Run(k.name+"/"+string(step)+"/"+resume, func(t *testing.T) {
					e := newE2E(t, k.kind, k.owner, nil)
					if o := e.h.RotateInterrupted(secretName, e.version, step); o.Kind != rotation.KindFailed {
						t.Fatalf("interrupted rotation: %s %s", o.Kind, o.Reason)
					}
					if e.h.Versions(secretName) != 1 {
						t.Fatal("the interrupted rotation wrote a version")
					}
					if len(e.srv.Named(e.keyName())) != 1 {
						t.Fatal("the interrupted rotation left no key behind: the test proves nothing")
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
					key := e.wantRotated(t, o)
					if named := e.srv.Named(e.keyName()); len(named) != 1 || named[0].ID != key.ID {
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
// it (AfterRevoke). The first version was written by hand (seeded), so the provider proves from its
// value that the key is its: by the value Datadog shows (API keys), or by the last four characters and
// the value authenticating (application keys in One-Time-Read mode, service accounts' keys).
func TestEndToEndOldKeyRevokedAfterGrace(t *testing.T) {
	for _, k := range kinds {
		for _, interrupted := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/interrupted=%v", k.name, interrupted), func(t *testing.T) {
				e := newE2E(t, k.kind, k.owner, nil)
				rep := e.h.Sweep()
				if len(rep.Outcomes) != 1 {
					t.Fatalf("sweep outcomes %+v", rep.Outcomes)
				}
				key := e.wantRotated(t, rep.Outcomes[0])

				e.h.Clock.Advance(30 * time.Minute)
				if rep := e.h.Sweep(); len(rep.Outcomes) != 0 {
					t.Fatalf("sweep within the grace period: %+v", rep.Outcomes)
				}
				if !e.srv.Works(e.current.Value) {
					t.Fatal("the old key was deleted within the grace period")
				}

				e.h.Clock.Advance(time.Hour)
				if interrupted {
					e.h.SweepInterrupted() // deleted at Datadog, not recorded in the vault
					if _, live := e.srv.Key(e.current.ID); live {
						t.Fatal("the interrupted sweep did not delete the old key")
					}
				}
				rep = e.h.Sweep()
				if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
					t.Fatalf("sweep after the grace period: %+v", rep.Outcomes)
				}
				cleanOutcome(t, rep.Outcomes[0], e.allKeys(e.current.Value)...)
				if _, live := e.srv.Key(e.current.ID); live {
					t.Error("the old key is still live")
				}
				if latest := e.h.Latest(secretName); !e.srv.Works(latest.Value.Reveal()) || latest.Tags["CredentialId"] != key.ID {
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
		{"admin secret tag missing", []string{datadog.TagAdminSecret, ""}, datadog.TagAdminSecret},
		{"unknown site", []string{datadog.TagSite, "datadoghq.cn"}, datadog.TagSite},
		{"plain http to a remote host", []string{datadog.TagSite, "http://api.datadoghq.com"}, datadog.TagSite},
		{"unknown key type", []string{datadog.TagKeyType, "apps"}, datadog.TagKeyType},
		{"scopes on an API key", []string{datadog.TagScopes, "dashboards_read"}, datadog.TagScopes},
		{"misspelt tag", []string{"datadog-admin-secrte", adminSecret}, "datadog-admin-secrte"},
		{"CredentialId not an id", []string{"CredentialId", "a.b"}, "CredentialId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, datadog.KeyTypeAPI, "", nil, tc.change...)
			for _, dry := range []bool{true, false} {
				o := e.h.Manual(secretName, dry)
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent {
					t.Fatalf("dry=%v: %s (%s) %s", dry, o.Kind, o.Class, o.Reason)
				}
				var ce *providers.ConfigError
				if !errors.As(o.Err, &ce) || !strings.Contains(o.Reason, tc.tag) {
					t.Errorf("dry=%v: %q is not a ConfigError naming %s", dry, o.Reason, tc.tag)
				}
				cleanOutcome(t, o, e.allKeys()...)
			}
			e.wantUnchanged(t)
			if n := len(e.srv.Requests()); n != 0 {
				t.Errorf("%d calls to Datadog with a bad policy", n)
			}
		})
	}
}

func TestEndToEndAdminSecretMissingFromTheVault(t *testing.T) {
	e := newE2E(t, datadog.KeyTypeAPI, "", nil, datadog.TagAdminSecret, "no-such-secret")
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, `"no-such-secret"`) {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	e.wantUnchanged(t)
}

func TestEndToEndIssuerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		kind   string
		owner  string
		scopes []string // the weak admin application key's; nil: keys Datadog does not know
		reason string
	}{
		{"admin keys unknown", datadog.KeyTypeAPI, "", nil, "refuses the admin keys"},
		{"admin key lacks api_keys_write", datadog.KeyTypeAPI, "", []string{"api_keys_read"}, "api_keys_write"},
		{"admin key lacks service_account_write", datadog.KeyTypeApplication, serviceAccount, []string{"user_app_keys"}, "service_account_write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, tc.kind, tc.owner, nil, datadog.TagAdminSecret, "weak-admin")
			weak := `{"api_key":"0000000000000000000000000000dead","application_key":"000000000000000000000000000000000000beef"}`
			if tc.scopes != nil {
				app := e.srv.AddAppKey("weak admin", datadogtest.AdminUser, tc.scopes)
				weak = `{"api_key":"` + e.adminAPI.Value + `","application_key":"` + app.Value + `"}`
			}
			e.h.Seed("weak-admin", weak, nil, 365*24*time.Hour)
			for _, o := range []rotation.Outcome{e.h.Event(secretName, e.version), e.h.Manual(secretName, false)} {
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, tc.reason) {
					t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
				}
				cleanOutcome(t, o, e.allKeys()...)
			}
			e.wantUnchanged(t)
		})
	}
}

func TestEndToEndIssuerDown(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		e := newE2E(t, datadog.KeyTypeAPI, "", nil)
		e.srv.Close()
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		cleanOutcome(t, o, e.allKeys()...)
		e.wantUnchanged(t)
	})
	t.Run("rate-limited for a minute", func(t *testing.T) {
		e := newE2E(t, datadog.KeyTypeAPI, "", nil)
		e.srv.Throttle(100, time.Minute) // longer than the engine waits in-process: left to redelivery
		start := time.Now()
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "429") {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		if time.Since(start) > 10*time.Second {
			t.Error("the engine waited out the rate-limit window in-process")
		}
		e.wantUnchanged(t)
	})
	t.Run("rate-limited for a second", func(t *testing.T) {
		e := newE2E(t, datadog.KeyTypeAPI, "", nil)
		e.srv.Throttle(1, time.Second) // X-RateLimit-Reset: 1; the engine waits it out and goes on
		start := time.Now()
		e.wantRotated(t, e.h.Event(secretName, e.version))
		if time.Since(start) < time.Second {
			t.Error("the engine did not wait for the rate-limit window")
		}
	})
	t.Run("briefly unavailable", func(t *testing.T) {
		e := newE2E(t, datadog.KeyTypeAPI, "", nil)
		e.srv.FailNext(1, 503)
		e.wantRotated(t, e.h.Event(secretName, e.version))
	})
}

func TestEndToEndPropagation(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := newE2E(t, k.kind, k.owner, nil)
			e.srv.SetPropagation(3)
			e.wantRotated(t, e.h.Event(secretName, e.version))
		})
	}
}

func TestEndToEndKeyThatNeverWorksIsDeleted(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			e := newE2E(t, k.kind, k.owner, &providertest.Options{VerifyTimeout: 300 * time.Millisecond})
			e.srv.SetPropagation(1 << 20)
			o := e.h.Event(secretName, e.version)
			if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
				t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
			}
			cleanOutcome(t, o, e.allKeys()...)
			e.wantUnchanged(t) // the engine revoked the unverified key: no orphan
			if e.srv.Created() != 1 {
				t.Errorf("%d keys created", e.srv.Created())
			}
		})
	}
}

// The engine's own log (debug level included: every verify retry logs the provider's error) never
// holds a key, through a rotation with propagation delays, failures, and the revocation.
func TestEndToEndNoKeyInTheLog(t *testing.T) {
	e := newE2E(t, datadog.KeyTypeApplication, "", nil)
	var logged httpxtest.SyncBuffer
	eng, err := rotation.New(rotation.Config{
		Vaults:        []rotation.Vault{e.h.Vault},
		Providers:     func(n string) (providers.Provider, bool) { return datadog.New(), n == datadog.Name },
		Bindings:      operatorBindings(t, e.srv.URL),
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
		t.Fatalf("the log holds no verify retry with Datadog's (echoed, redacted) message: the test proves nothing\n%s", logged.String())
	}
	keys := e.allKeys(e.current.Value, e.h.Latest(secretName).Value.Reveal())
	clean(t, errors.New(logged.String()), keys...)
	for _, o := range outcomes {
		cleanOutcome(t, o, keys...)
	}
}
