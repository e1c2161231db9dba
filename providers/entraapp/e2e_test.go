package entraapp_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraapp"
	"github.com/kvrotator/kvrotator/providers/entraapp/graphtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/rotation"
)

// End to end: the provider through the real engine, the keyvault adapter and the Key Vault emulator,
// against the local Graph and token endpoint.

const secretName = "orders-api-client-secret"

type e2e struct {
	*fixture
	h        *providertest.Harness
	version  string // the seeded version
	outcomes []rotation.Outcome
}

// newE2E seeds a due secret holding the application's hand-made password. tags override the defaults
// ("" removes a tag). New secrets need two sign-ins before Entra ID accepts them (propagation).
//
// Unless o brings its own, the operator's bindings allow the fixture's application (object id and
// client id) and tenant, and whatever application or tenant tags sets: these tests are about what
// happens once the bindings allowed a secret (the attack tests, in bindings_test.go, bind less).
func newE2E(t *testing.T, tags map[string]string, o *providertest.Options) *e2e {
	t.Helper()
	f := newFixture(t)
	f.srv.SetPropagation(2)
	if o == nil {
		o = &providertest.Options{}
	}
	if o.Bindings == nil {
		apps, tenants := []string{f.objectID, f.appID}, []string{f.srv.TenantID}
		for tag, v := range tags {
			switch {
			case v == "":
			case strings.EqualFold(tag, entraapp.TagAddress), strings.EqualFold(tag, entraapp.TagAppID):
				apps = append(apps, v)
			case strings.EqualFold(tag, entraapp.TagTenant):
				tenants = append(tenants, v)
			}
		}
		o.Bindings = parseBindings(t, appBinding("entra-app-test", apps, tenants))
	}
	e := &e2e{fixture: f, h: providertest.New(t, entraapp.Name, f.provider(), o)}
	all := map[string]string{
		"rotation-provider":    entraapp.Name,
		"ProviderAddress":      f.objectID,
		"entra-tenant-id":      f.srv.TenantID,
		"CredentialId":         f.initialID,
		"rotation-grace-hours": "1",
	}
	for k, v := range tags {
		if v == "" {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	e.version = e.h.Seed(secretName, initialSecret, all, 5*24*time.Hour)
	t.Cleanup(func() { e.noLeaks(t) })
	return e
}

// record keeps an outcome for the leak check and returns it.
func (e *e2e) record(o rotation.Outcome) rotation.Outcome {
	e.outcomes = append(e.outcomes, o)
	return o
}

func (e *e2e) sweep() rotation.SweepReport {
	rep := e.h.Sweep()
	e.outcomes = append(e.outcomes, rep.Outcomes...)
	return rep
}

// noLeaks checks every outcome (reason, error, all fields) for secrets.
func (e *e2e) noLeaks(t *testing.T) {
	for _, o := range e.outcomes {
		noSecrets(t, e.srv, o.Reason, fmt.Sprintf("%+v", o), fmt.Sprint(o.Err))
	}
}

// assertRotated checks that the latest version holds a working password that kvrotator added for
// the replaced version, expiring no later than the password, and that no other kvrotator password
// exists for that rotation.
func (e *e2e) assertRotated(t *testing.T, o rotation.Outcome, from string) rotation.Secret {
	t.Helper()
	if o.Kind != rotation.KindRotated {
		t.Fatalf("outcome %s: %s", o.Kind, o.Reason)
	}
	latest := e.h.Latest(secretName)
	keyID := latest.Tags["CredentialId"]
	key := rotation.IdempotencyKey(providertest.VaultName, secretName, from)
	mine := e.kvrotatorPasswords(key)
	if len(mine) != 1 || mine[0].KeyID != keyID {
		t.Fatalf("want exactly one kvrotator password for the rotation, the one the vault holds (%s): %+v", keyID, mine)
	}
	if mine[0].Secret != latest.Value.Reveal() {
		t.Fatal("the vault's value is not the password's secret")
	}
	if latest.Expires == nil || latest.Expires.After(mine[0].End) {
		t.Fatalf("the version expires %v, after its password (%v)", latest.Expires, mine[0].End)
	}
	if ids := e.keyIDs(); len(ids) != 2 || !slices.Contains(ids, e.initialID) {
		t.Fatalf("the app should hold the old password (until the grace period ends) and the new one: %v", ids)
	}
	return latest
}

func TestEndToEndTriggers(t *testing.T) {
	for _, trigger := range []string{"event", "sweep", "manual"} {
		t.Run(trigger, func(t *testing.T) {
			e := newE2E(t, nil, nil)
			var o rotation.Outcome
			switch trigger {
			case "event":
				o = e.record(e.h.Event(secretName, e.version))
			case "sweep":
				rep := e.sweep()
				if len(rep.Outcomes) != 1 {
					t.Fatalf("sweep: %+v", rep.Outcomes)
				}
				o = rep.Outcomes[0]
			case "manual":
				o = e.record(e.h.Manual(secretName, false))
			}
			latest := e.assertRotated(t, o, e.version)
			if e.h.Versions(secretName) != 2 {
				t.Fatal("want exactly one new version")
			}

			// A duplicate delivery of the same event changes nothing.
			if o := e.record(e.h.Event(secretName, e.version)); o.Kind != rotation.KindSkipped {
				t.Fatalf("duplicate event: %s %s", o.Kind, o.Reason)
			}

			// Within the grace period both passwords stay; after it, the sweep removes the old one.
			if rep := e.sweep(); len(rep.Outcomes) != 0 || len(e.keyIDs()) != 2 {
				t.Fatalf("revoked before the grace period ended: %+v", rep.Outcomes)
			}
			e.h.Clock.Advance(2 * time.Hour)
			rep := e.sweep()
			if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
				t.Fatalf("after the grace period: %+v", rep.Outcomes)
			}
			if ids := e.keyIDs(); len(ids) != 1 || ids[0] != latest.Tags["CredentialId"] {
				t.Fatalf("the app should hold only the new password: %v", ids)
			}
			if rep := e.sweep(); len(rep.Outcomes) != 0 {
				t.Fatalf("revocation not recorded: %+v", rep.Outcomes)
			}
		})
	}
}

func TestEndToEndDryRunChangesNothing(t *testing.T) {
	e := newE2E(t, nil, nil)
	o := e.record(e.h.Manual(secretName, true))
	if o.Kind != rotation.KindPlanned || !strings.Contains(o.Reason, e.initialID) {
		t.Fatalf("dry run: %s %s", o.Kind, o.Reason)
	}
	if e.h.Versions(secretName) != 1 || e.srv.Calls(graphtest.AddPassword) != 0 || len(e.keyIDs()) != 1 {
		t.Fatal("the dry run changed something")
	}
}

func TestEndToEndInterrupted(t *testing.T) {
	for _, step := range []providertest.Step{providertest.AfterCreate, providertest.AfterVerify} {
		t.Run(string(step), func(t *testing.T) {
			e := newE2E(t, nil, nil)
			if o := e.record(e.h.RotateInterrupted(secretName, e.version, step)); o.Kind != rotation.KindFailed {
				t.Fatalf("interrupted: %s %s", o.Kind, o.Reason)
			}
			if e.h.Versions(secretName) != 1 {
				t.Fatal("wrote after the interruption")
			}
			if n := len(e.kvrotatorPasswords(rotation.IdempotencyKey(providertest.VaultName, secretName, e.version))); n != 1 {
				t.Fatalf("the interrupted attempt left %d passwords", n)
			}
			// Redelivery: the orphan (whose secret is lost) is removed and replaced.
			e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version)
			if n := e.srv.Calls(graphtest.AddPassword); n != 2 {
				t.Fatalf("%d passwords added", n)
			}
		})
	}
	t.Run(string(providertest.AfterRevoke), func(t *testing.T) {
		e := newE2E(t, nil, nil)
		e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version)
		e.h.Clock.Advance(2 * time.Hour)
		e.outcomes = append(e.outcomes, e.h.SweepInterrupted().Outcomes...)
		if slices.Contains(e.keyIDs(), e.initialID) {
			t.Fatal("the old password was not removed at Graph")
		}
		// Graph no longer has it: the rerun's removePassword gets 404, which is success.
		rep := e.sweep()
		if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
			t.Fatalf("after the interruption: %+v", rep.Outcomes)
		}
		if rep := e.sweep(); len(rep.Outcomes) != 0 {
			t.Fatalf("revocation not recorded: %+v", rep.Outcomes)
		}
		if len(e.keyIDs()) != 1 {
			t.Fatalf("passwords: %v", e.keyIDs())
		}
	})
}

// The new version expires with its password when the password's lifetime is the shorter.
func TestEndToEndExpiryFollowsThePassword(t *testing.T) {
	e := newE2E(t, map[string]string{"ValidityPeriodDays": "90", "entra-secret-lifetime-days": "40"}, nil)
	latest := e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version)
	pw := e.kvrotatorPasswords(rotation.IdempotencyKey(providertest.VaultName, secretName, e.version))[0]
	if d := pw.End.Sub(*latest.Expires); d < 0 || d > time.Second {
		t.Fatalf("version expires %v, password %v", latest.Expires, pw.End)
	}
	if latest.Expires.After(e.h.Clock.Now().Add(41 * 24 * time.Hour)) {
		t.Fatalf("version expires %v: not capped by the 40-day password", latest.Expires)
	}
}

func TestEndToEndBadTags(t *testing.T) {
	for _, tc := range []struct {
		name string
		tags map[string]string
		tag  string
	}{
		{"object id not a GUID", map[string]string{"ProviderAddress": "orders-api"}, "ProviderAddress"},
		{"no application", map[string]string{"ProviderAddress": ""}, "ProviderAddress"},
		{"no tenant", map[string]string{"entra-tenant-id": ""}, "entra-tenant-id"},
		{"lifetime inside the near-expiry window", map[string]string{"entra-secret-lifetime-days": "7"}, "entra-secret-lifetime-days"},
		{"misspelt tag", map[string]string{"entra-secret-lifetime": "60"}, "entra-secret-lifetime"},
		{"CredentialId not a keyId", map[string]string{"CredentialId": "key1"}, "CredentialId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, tc.tags, nil)
			for _, dry := range []bool{true, false} {
				o := e.record(e.h.Manual(secretName, dry))
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, tc.tag) {
					t.Fatalf("dry run %v: %s %s %q", dry, o.Kind, o.Class, o.Reason)
				}
			}
			if e.h.Versions(secretName) != 1 || e.srv.Calls(graphtest.GetApplication) != 0 {
				t.Fatal("a bad configuration reached Graph or the vault")
			}
		})
	}
}

// Tags that are well formed but wrong are found when the rotation calls out, and are permanent.
func TestEndToEndWrongTags(t *testing.T) {
	t.Run("no such application", func(t *testing.T) {
		e := newE2E(t, map[string]string{"ProviderAddress": "0a0a0a0a-0000-4000-8000-000000000004"}, nil)
		if o := e.record(e.h.Manual(secretName, true)); o.Kind != rotation.KindPlanned {
			t.Fatalf("dry run: %s %s", o.Kind, o.Reason)
		}
		o := e.record(e.h.Manual(secretName, false))
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "ProviderAddress") {
			t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
		}
		if e.h.Versions(secretName) != 1 || e.srv.Calls(graphtest.AddPassword) != 0 {
			t.Fatal("changed something")
		}
	})
	t.Run("wrong tenant", func(t *testing.T) {
		e := newE2E(t, map[string]string{"entra-tenant-id": "fabrikam.onmicrosoft.com"}, nil)
		o := e.record(e.h.Manual(secretName, false))
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "entra-tenant-id") {
			t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
		}
		// The password that could not be verified was removed again: no orphan.
		if ids := e.keyIDs(); len(ids) != 1 || ids[0] != e.initialID || e.h.Versions(secretName) != 1 {
			t.Fatalf("passwords %v, %d versions", ids, e.h.Versions(secretName))
		}
	})
}

func TestEndToEndIssuerRefuses(t *testing.T) {
	e := newE2E(t, nil, nil)
	e.srv.SetForbidden(e.objectID, true)
	o := e.record(e.h.Event(secretName, e.version))
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "Application.ReadWrite.OwnedBy") {
		t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
	}
	if e.h.Versions(secretName) != 1 || e.h.Latest(secretName).Value.Reveal() != initialSecret {
		t.Fatal("the vault changed")
	}
}

func TestEndToEndIssuerDown(t *testing.T) {
	e := newE2E(t, nil, nil)
	e.srv.SetDown(true, "")
	o := e.record(e.h.Event(secretName, e.version))
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
		t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
	}
	if e.h.Versions(secretName) != 1 || e.h.Latest(secretName).Value.Reveal() != initialSecret || len(e.keyIDs()) != 1 {
		t.Fatal("something changed while Graph was down")
	}
	// Event Grid redelivers once Graph is back.
	e.srv.SetDown(false, "")
	e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version)
}

// A secret Entra ID never accepts is removed when verification gives up, not left behind.
func TestEndToEndNeverPropagates(t *testing.T) {
	e := newE2E(t, nil, &providertest.Options{VerifyTimeout: 500 * time.Millisecond})
	e.srv.SetPropagation(1 << 20)
	o := e.record(e.h.Event(secretName, e.version))
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "AADSTS7000215") {
		t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
	}
	if ids := e.keyIDs(); len(ids) != 1 || ids[0] != e.initialID || e.h.Versions(secretName) != 1 {
		t.Fatalf("passwords %v, %d versions", e.keyIDs(), e.h.Versions(secretName))
	}
}

// The engine's own debug log, through lost answers, throttling, propagation retries and an
// unverified password's removal, never shows a secret.
func TestEndToEndLogsHoldNoSecrets(t *testing.T) {
	e := newE2E(t, nil, nil)
	var logs httpxtest.SyncBuffer
	p := e.provider()
	engine, err := rotation.New(rotation.Config{
		Vaults:        []rotation.Vault{e.h.Vault},
		Providers:     func(n string) (providers.Provider, bool) { return p, n == entraapp.Name },
		Bindings:      parseBindings(t, appBinding("orders-api", []string{e.objectID}, []string{e.srv.TenantID})),
		Clock:         e.h.Clock,
		Logger:        slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		VerifyTimeout: time.Second,
		VerifyBackoff: 20 * time.Millisecond,
		RetryBackoff:  10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rotate := func() rotation.Outcome {
		return e.record(engine.Rotate(context.Background(), rotation.Request{Vault: providertest.VaultName, Secret: secretName,
			Trigger: rotation.TriggerManual, Force: true}))
	}

	// First attempt: the secret never propagates within the timeout, so the engine removes it.
	e.srv.SetPropagation(1 << 20)
	if o := rotate(); o.Kind != rotation.KindFailed {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	// Second: addPassword's answer is lost once and Graph throttles once; then propagation takes
	// three sign-ins.
	e.srv.SetPropagation(3)
	e.srv.FailNext(graphtest.AddPassword, 1, graphtest.Fault{LoseAnswer: true})
	e.srv.FailNext(graphtest.GetApplication, 1, graphtest.Fault{Status: 429, Code: "TooManyRequests", RetryAfter: "1"})
	e.assertRotated(t, rotate(), e.version)

	out := logs.String()
	if !strings.Contains(out, "verify failed, retrying") {
		t.Fatalf("the engine logged no verify retries; the check would prove nothing:\n%s", out)
	}
	noSecrets(t, e.srv, out)
	if len(e.srv.Issued()) < 3 {
		t.Fatalf("%d secrets issued", len(e.srv.Issued()))
	}
}
