package openai_test

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
	"github.com/kvrotator/kvrotator/providers/openai"
	"github.com/kvrotator/kvrotator/providers/openai/openaitest"
	"github.com/kvrotator/kvrotator/rotation"
)

// End to end: the real engine, the keyvault adapter and the Key Vault emulator over HTTPS, the provider,
// and the local OpenAI API.

// e2e is a vault holding the admin key and the app's key, and the OpenAI organization they belong to.
type e2e struct {
	*fixture
	h       *providertest.Harness
	version string // the app secret's first version
}

// operatorBindings is the operator's policy for these tests, as it would be written in
// KVROTATOR_BINDINGS: the app secrets of the vault may use the admin keys below, for the project, through
// the local OpenAI API at apiURL (in production the default https://api.openai.com needs no binding).
func operatorBindings(t *testing.T, apiURL, project string) *bindings.Policy {
	t.Helper()
	return parseBindings(t, `{"bindings":[{"name":"openai-app","secrets":["`+providertest.VaultName+`/app-*"],"provider":"openai",
		"allow":{"secret":["openai-admin","weak-admin","no-such-secret"],"url":["`+apiURL+`"],"account":["`+project+`"]}}]}`)
}

func parseBindings(t *testing.T, js string) *bindings.Policy {
	t.Helper()
	p, err := bindings.Parse([]byte(js), "KVROTATOR_BINDINGS", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// newE2E seeds the vault: the admin key, and the app's key due for rotation (expires in 5 days, inside
// the 30-day near-expiry window) with a 1-hour grace period. extra changes tags ("" deletes one). The
// operator's bindings (operatorBindings) apply unless o has its own.
func newE2E(t *testing.T, o *providertest.Options, extra ...string) *e2e {
	t.Helper()
	return newE2EWith(t, openai.New(), o, extra...)
}

// newE2EWith is newE2E with the provider p.
func newE2EWith(t *testing.T, p *openai.Provider, o *providertest.Options, extra ...string) *e2e {
	t.Helper()
	f := newFixture(t)
	opts := providertest.Options{}
	if o != nil {
		opts = *o
	}
	if opts.Bindings == nil {
		opts.Bindings = operatorBindings(t, f.srv.URL, f.project)
	}
	h := providertest.New(t, openai.Name, p, &opts)
	h.Seed(adminSecret, f.admin, nil, 365*24*time.Hour)
	tags := map[string]string{
		"rotation-provider":    openai.Name,
		openai.TagAdminSecret:  adminSecret,
		openai.TagProject:      f.project,
		openai.TagAPIURL:       f.srv.URL,
		"CredentialId":         f.current.ID,
		"rotation-grace-hours": "1",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(tags, extra[i])
			continue
		}
		tags[extra[i]] = extra[i+1]
	}
	v := h.Seed(secretName, f.current.Key.Value, tags, 5*24*time.Hour)
	return &e2e{fixture: f, h: h, version: v}
}

// accountName is the name of the service account a rotation of the first version creates.
func (e *e2e) accountName() string {
	return openai.ServiceAccountName(secretName, rotation.IdempotencyKey(providertest.VaultName, secretName, e.version))
}

// kvrotatorAccounts are the live service accounts the provider made.
func (e *e2e) kvrotatorAccounts() []openaitest.ServiceAccount {
	var out []openaitest.ServiceAccount
	for _, a := range e.srv.ServiceAccounts(e.project) {
		if strings.HasPrefix(a.Name, openai.NamePrefix) {
			out = append(out, a)
		}
	}
	return out
}

// allKeys are every key value that exists in the organization, for the no-leak checks.
func (e *e2e) allKeys(more ...string) []string {
	out := e.secrets(more...)
	for _, a := range e.srv.ServiceAccounts(e.project) {
		out = append(out, a.Key.Value)
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

// wantRotated checks that the vault's latest version holds a working new key of the service account its
// CredentialId names, named for the idempotency key of the first version, and that the old key still
// works (grace).
func (e *e2e) wantRotated(t *testing.T, o rotation.Outcome) openaitest.ServiceAccount {
	t.Helper()
	if o.Kind != rotation.KindRotated {
		t.Fatalf("outcome %s (%s): %s", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.allKeys()...)
	latest := e.h.Latest(secretName)
	id := latest.Tags["CredentialId"]
	sa, ok := e.srv.ServiceAccount(id)
	switch {
	case !ok || sa.Key.Value != latest.Value.Reveal() || sa.Project != e.project:
		t.Fatal("the vault's latest version does not hold the key of the service account its CredentialId names")
	case !e.srv.Works(latest.Value.Reveal()):
		t.Fatal("the vault's key does not work")
	case sa.Name != e.accountName():
		t.Errorf("new service account named %q, want %q", sa.Name, e.accountName())
	case !e.srv.Works(e.current.Key.Value):
		t.Error("the old key stopped working before its grace period")
	}
	if n := len(e.kvrotatorAccounts()); n != 1 {
		t.Errorf("%d service accounts made by kvrotator are live, want 1", n)
	}
	if n := e.h.Versions(secretName); n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
	return sa
}

// wantUnchanged checks that the vault still holds only the first version, and that no kvrotator service
// account is live at OpenAI.
func (e *e2e) wantUnchanged(t *testing.T) {
	t.Helper()
	if n := e.h.Versions(secretName); n != 1 {
		t.Errorf("%d versions, want 1: the vault changed", n)
	}
	if latest := e.h.Latest(secretName); latest.Value.Reveal() != e.current.Key.Value || latest.Version != e.version {
		t.Error("the vault's latest version changed")
	}
	if accounts := e.kvrotatorAccounts(); len(accounts) != 0 {
		t.Errorf("%d service accounts made by kvrotator are live: orphans", len(accounts))
	}
	if _, live := e.srv.ServiceAccount(e.current.ID); !live {
		t.Error("the current service account was deleted")
	}
}

func TestEndToEndTriggers(t *testing.T) {
	for _, trigger := range providertest.Triggers {
		t.Run(trigger, func(t *testing.T) {
			e := newE2E(t, nil)
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

func TestEndToEndDryRunChangesNothing(t *testing.T) {
	e := newE2E(t, nil)
	o := e.h.Manual(secretName, true)
	if o.Kind != rotation.KindPlanned || !strings.Contains(o.Reason, "revoke credential "+e.current.ID) {
		t.Fatalf("dry run: %s %s", o.Kind, o.Reason)
	}
	rep := e.h.Engine.Sweep(t.Context(), rotation.TriggerTimer, true)
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindPlanned {
		t.Fatalf("dry-run sweep: %+v", rep.Outcomes)
	}
	e.wantUnchanged(t)
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("the dry run made %d calls to OpenAI", n)
	}
}

func TestEndToEndInterruptedRotationConverges(t *testing.T) {
	for _, step := range []providertest.Step{providertest.AfterCreate, providertest.AfterVerify} {
		for _, resume := range []string{"event", "sweep"} {
			t.Run(string(step)+"/"+resume, func(t *testing.T) {
				e := newE2E(t, nil)
				if o := e.h.RotateInterrupted(secretName, e.version, step); o.Kind != rotation.KindFailed {
					t.Fatalf("interrupted rotation: %s %s", o.Kind, o.Reason)
				}
				if e.h.Versions(secretName) != 1 {
					t.Fatal("the interrupted rotation wrote a version")
				}
				orphans := e.srv.Named(e.project, e.accountName())
				if len(orphans) != 1 {
					t.Fatal("the interrupted rotation left no service account behind: the test proves nothing")
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
				sa := e.wantRotated(t, o)
				if named := e.srv.Named(e.project, e.accountName()); len(named) != 1 || named[0].ID != sa.ID {
					t.Errorf("%d service accounts for the idempotency key, want exactly the vault's", len(named))
				}
				if _, live := e.srv.ServiceAccount(orphans[0].ID); live || e.srv.Works(orphans[0].Key.Value) {
					t.Error("the orphan, whose key was lost, is still live")
				}
				if e.srv.Created() != 2 {
					t.Errorf("%d service accounts created, want 2 (the interrupted one, deleted, and the vault's)", e.srv.Created())
				}
			})
		}
	}
}

func TestEndToEndOldAccountRevokedAfterGrace(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", interrupted), func(t *testing.T) {
			e := newE2E(t, nil)
			rep := e.h.Sweep()
			if len(rep.Outcomes) != 1 {
				t.Fatalf("sweep outcomes %+v", rep.Outcomes)
			}
			sa := e.wantRotated(t, rep.Outcomes[0])

			// Within the grace period: the old service account stays.
			e.h.Clock.Advance(30 * time.Minute)
			if rep := e.h.Sweep(); len(rep.Outcomes) != 0 {
				t.Fatalf("sweep within the grace period: %+v", rep.Outcomes)
			}
			if !e.srv.Works(e.current.Key.Value) {
				t.Fatal("the old key was deleted within the grace period")
			}

			e.h.Clock.Advance(time.Hour)
			if interrupted {
				e.h.SweepInterrupted() // deleted at OpenAI, not recorded in the vault
				if _, live := e.srv.ServiceAccount(e.current.ID); live {
					t.Fatal("the interrupted sweep did not delete the old service account")
				}
			}
			rep = e.h.Sweep()
			if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
				t.Fatalf("sweep after the grace period: %+v", rep.Outcomes)
			}
			cleanOutcome(t, rep.Outcomes[0], e.allKeys(e.current.Key.Value)...)
			if _, live := e.srv.ServiceAccount(e.current.ID); live || e.srv.Works(e.current.Key.Value) {
				t.Error("the old service account is still live")
			}
			if latest := e.h.Latest(secretName); !e.srv.Works(latest.Value.Reveal()) || latest.Tags["CredentialId"] != sa.ID {
				t.Error("the vault's key was touched")
			}
			if rep := e.h.Sweep(); len(rep.Outcomes) != 0 {
				t.Errorf("revocation not recorded: %+v", rep.Outcomes)
			}
		})
	}
}

// Two rotations in a row: the second revokes a service account kvrotator made, named for it.
func TestEndToEndSecondRotationRevokesKvrotatorsAccount(t *testing.T) {
	e := newE2E(t, nil, "rotation-grace-hours", "0")
	first := e.wantRotated(t, e.h.Event(secretName, e.version))
	if rep := e.h.Sweep(); rep.Failed() != 0 {
		t.Fatalf("sweep: %+v", rep.Outcomes)
	}
	if o := e.h.Manual(secretName, false); o.Kind != rotation.KindRotated {
		t.Fatalf("second rotation: %s %s", o.Kind, o.Reason)
	}
	rep := e.h.Sweep()
	if rep.Failed() != 0 {
		t.Fatalf("sweep: %+v", rep.Outcomes)
	}
	if _, live := e.srv.ServiceAccount(first.ID); live {
		t.Error("the first rotation's service account is still live")
	}
	if accounts := e.srv.ServiceAccounts(e.project); len(accounts) != 1 || accounts[0].Key.Value != e.h.Latest(secretName).Value.Reveal() {
		t.Errorf("%d service accounts live, want the latest version's only", len(accounts))
	}
}

func TestEndToEndKeyLifetime(t *testing.T) {
	e := newE2E(t, nil, openai.TagKeyLifetimeDays, "60")
	e.wantRotated(t, e.h.Event(secretName, e.version))
	latest := e.h.Latest(secretName)
	want := e.h.Clock.Now().Add(60 * 24 * time.Hour)
	if latest.Expires == nil || latest.Expires.Sub(want).Abs() > time.Hour {
		t.Errorf("the new version expires %v, want the key's expiry, about %v", latest.Expires, want)
	}
}

func TestEndToEndBadTags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change []string
		tag    string
	}{
		{"admin secret tag missing", []string{openai.TagAdminSecret, ""}, openai.TagAdminSecret},
		{"project tag missing", []string{openai.TagProject, ""}, openai.TagProject},
		{"project name instead of id", []string{openai.TagProject, "Marketing bot"}, openai.TagProject},
		{"plain http to a remote host", []string{openai.TagAPIURL, "http://api.openai.com"}, openai.TagAPIURL},
		{"lifetime too long", []string{openai.TagKeyLifetimeDays, "400"}, openai.TagKeyLifetimeDays},
		{"misspelt tag", []string{"openai-admin-secrte", adminSecret}, "openai-admin-secrte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, nil, tc.change...)
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
				t.Errorf("%d calls to OpenAI with a bad policy", n)
			}
		})
	}
}

func TestEndToEndAdminSecretMissingFromTheVault(t *testing.T) {
	e := newE2E(t, nil, openai.TagAdminSecret, "no-such-secret")
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, `"no-such-secret"`) {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	e.wantUnchanged(t)
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("%d calls to OpenAI", n)
	}
}

func TestEndToEndIssuerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		admin  func(*openaitest.Server) string
		reason string
	}{
		{"admin key read-only", func(s *openaitest.Server) string { return s.AddAdminKey(false) }, "needs write permission"},
		{"admin key unknown", func(*openaitest.Server) string { return "sk-admin-UnknownUnknownUnknownUnknownUnknown0" }, "does not accept the admin key"},
		{"admin key revoked", func(s *openaitest.Server) string { k := s.AddAdminKey(true); s.RevokeAdminKey(k); return k }, "does not accept the admin key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, nil, openai.TagAdminSecret, "weak-admin")
			weak := tc.admin(e.srv)
			e.h.Seed("weak-admin", weak, nil, 365*24*time.Hour)
			for _, o := range []rotation.Outcome{e.h.Event(secretName, e.version), e.h.Manual(secretName, false)} {
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, tc.reason) {
					t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
				}
				cleanOutcome(t, o, e.allKeys(weak)...)
			}
			e.wantUnchanged(t)
		})
	}
	t.Run("project gone", func(t *testing.T) {
		// Bound and well formed, but not a project of the admin key's organization (deleted, or a typo).
		binds := parseBindings(t, `{"bindings":[{"secrets":["`+providertest.VaultName+`/app-*"],"provider":"openai",
			"allow":{"secret":["openai-admin"],"url":["http://127.0.0.1:*"],"account":["proj_gone"]}}]}`)
		e := newE2E(t, &providertest.Options{Bindings: binds}, openai.TagProject, "proj_gone")
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "404") || !strings.Contains(o.Reason, openai.TagProject) {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		e.wantUnchanged(t)
	})
	t.Run("out of quota", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.ExhaustQuota(true)
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "quota is exhausted") {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		e.srv.ExhaustQuota(false)
		e.wantUnchanged(t)
	})
}

func TestEndToEndIssuerDown(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.Close()
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		cleanOutcome(t, o, e.allKeys()...)
		e.wantUnchanged(t)
	})
	t.Run("rate-limited for a minute", func(t *testing.T) {
		e := newE2E(t, nil)
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
	t.Run("rate-limited for a moment", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.Throttle(1, time.Second) // the engine honours retry-after and gets through
		e.wantRotated(t, e.h.Event(secretName, e.version))
	})
	t.Run("briefly unavailable", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.FailNext(1, 503) // the engine's own retry gets through
		e.wantRotated(t, e.h.Event(secretName, e.version))
	})
}

func TestEndToEndPropagation(t *testing.T) {
	e := newE2E(t, nil)
	e.srv.SetPropagation(3)
	e.wantRotated(t, e.h.Event(secretName, e.version))
}

func TestEndToEndKeyThatNeverWorksIsDeleted(t *testing.T) {
	e := newE2E(t, &providertest.Options{VerifyTimeout: 300 * time.Millisecond})
	e.srv.SetPropagation(1 << 20)
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.allKeys()...)
	e.wantUnchanged(t) // the engine revoked the unverified service account: no orphan
	if e.srv.Created() != 1 {
		t.Errorf("%d service accounts created", e.srv.Created())
	}
}

// The engine's own log (debug level included: every verify retry logs the provider's error) never
// holds a key, through a rotation with propagation delays, failures, and the revocation.
func TestEndToEndNoKeyInTheLog(t *testing.T) {
	e := newE2E(t, nil)
	var logged httpxtest.SyncBuffer
	eng, err := rotation.New(rotation.Config{
		Vaults:        []rotation.Vault{e.h.Vault},
		Providers:     func(n string) (providers.Provider, bool) { return openai.New(), n == openai.Name },
		Bindings:      operatorBindings(t, e.srv.URL, e.project),
		Clock:         e.h.Clock,
		Logger:        slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})),
		VerifyTimeout: 5 * time.Second, VerifyBackoff: 20 * time.Millisecond, RetryBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.EchoKeys(true)
	var outcomes []rotation.Outcome
	e.srv.FailNext(1, 500)
	e.srv.SetPropagation(3)
	outcomes = append(outcomes, eng.HandleEvent(t.Context(), rotation.Event{Type: rotation.EventNearExpiry, Vault: providertest.VaultName, Secret: secretName, Version: e.version}))
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
		t.Fatalf("the log holds no verify retry with OpenAI's (echoed, redacted) message: the test proves nothing\n%s", logged.String())
	}
	keys := e.allKeys(e.current.Key.Value, e.h.Latest(secretName).Value.Reveal())
	clean(t, errors.New(logged.String()), keys...)
	for _, o := range outcomes {
		cleanOutcome(t, o, keys...)
	}
}
