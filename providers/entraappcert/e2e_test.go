package entraappcert_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraappcert"
	"github.com/kvrotator/kvrotator/providers/entraappcert/entraappcerttest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/rotation"
)

// End to end: the provider through the real engine, the keyvault adapter and the Key Vault emulator,
// against the local Graph and Entra ID.

const secretName = "orders-api-certificate"

type e2e struct {
	*fixture
	h        *providertest.Harness
	version  string // the seeded version
	outcomes []rotation.Outcome
}

// newE2E seeds a due secret holding the application's hand-registered certificate (PEM). tags
// override the defaults ("" removes a tag). New certificates need two sign-ins before Entra ID accepts
// them (propagation).
//
// Unless o brings its own, the operator's bindings allow the fixture's application (object id and
// client id) and tenant, and whatever application or tenant tags sets (the attacks, in
// attack_test.go, bind less).
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
			case strings.EqualFold(tag, entraappcert.TagAddress), strings.EqualFold(tag, entraappcert.TagAppID):
				apps = append(apps, v)
			case strings.EqualFold(tag, entraappcert.TagTenant):
				tenants = append(tenants, v)
			}
		}
		o.Bindings = parseBindings(t, appBinding("entra-app-certificate-test", apps, tenants))
	}
	e := &e2e{fixture: f, h: providertest.New(t, entraappcert.Name, f.provider(), o)}
	e.version = e.h.Seed(secretName, f.initialValue, e.tags(tags), 5*24*time.Hour)
	t.Cleanup(func() { e.noLeaks(t) })
	return e
}

// tags are the secret's legitimate tags with changes ("" removes a tag).
func (e *e2e) tags(changes map[string]string) map[string]string {
	all := map[string]string{
		"rotation-provider":    entraappcert.Name,
		"ProviderAddress":      e.objectID,
		"entra-tenant-id":      e.srv.TenantID,
		"CredentialId":         e.initialID,
		"rotation-grace-hours": "1",
	}
	for k, v := range changes {
		if v == "" {
			delete(all, k)
		} else {
			all[k] = v
		}
	}
	return all
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

// noLeaks checks every outcome (reason, error, all fields) for the initial value and the latest.
func (e *e2e) noLeaks(t *testing.T) {
	latest := e.h.Latest(secretName).Value.Reveal()
	for _, o := range e.outcomes {
		e.noSecrets(t, []string{o.Reason, fmt.Sprintf("%+v", o), fmt.Sprint(o.Err)}, latest)
	}
}

// assertRotated checks that the latest version holds, in the format contentType says, the private key
// and certificate of the one key kvrotator added for the replaced version, expiring no later than it.
func (e *e2e) assertRotated(t *testing.T, o rotation.Outcome, from, contentType string) rotation.Secret {
	t.Helper()
	if o.Kind != rotation.KindRotated {
		t.Fatalf("outcome %s: %s", o.Kind, o.Reason)
	}
	latest := e.h.Latest(secretName)
	if latest.ContentType != contentType {
		t.Fatalf("content type %q, want %q", latest.ContentType, contentType)
	}
	cert := load(t, latest.Value, latest.ContentType)
	key := rotation.IdempotencyKey(providertest.VaultName, secretName, from)
	mine := e.kvrotatorKeys(key)
	if len(mine) != 1 || mine[0].KeyID != latest.Tags["CredentialId"] || !bytes.Equal(mine[0].Cert.Raw, cert.Raw) {
		t.Fatalf("want exactly one kvrotator key for the rotation, the vault's certificate (%s): %+v", latest.Tags["CredentialId"], mine)
	}
	if latest.Expires == nil || latest.Expires.After(mine[0].End) {
		t.Fatalf("the version expires %v, after its certificate (%v)", latest.Expires, mine[0].End)
	}
	return latest
}

func TestEndToEndTriggers(t *testing.T) {
	for _, tc := range []struct {
		trigger, format, contentType string
	}{
		{"event", "", entraappcert.ContentTypePEM},
		{"sweep", entraappcert.FormatPEM, entraappcert.ContentTypePEM},
		{"manual", entraappcert.FormatPKCS12, entraappcert.ContentTypePKCS12},
		{"event", entraappcert.FormatPKCS12, entraappcert.ContentTypePKCS12},
	} {
		t.Run(tc.trigger+" "+cmp.Or(tc.format, "default format"), func(t *testing.T) {
			e := newE2E(t, map[string]string{entraappcert.TagFormat: tc.format}, nil)
			var o rotation.Outcome
			switch tc.trigger {
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
			latest := e.assertRotated(t, o, e.version, tc.contentType)
			if e.h.Versions(secretName) != 2 || len(e.keyIDs()) != 2 || !slices.Contains(e.keyIDs(), e.initialID) {
				t.Fatalf("want one new version and both keys until the grace period ends: %v", e.keyIDs())
			}

			// A duplicate delivery of the same event changes nothing.
			if o := e.record(e.h.Event(secretName, e.version)); o.Kind != rotation.KindSkipped {
				t.Fatalf("duplicate event: %s %s", o.Kind, o.Reason)
			}

			// Within the grace period both keys stay; after it, the sweep removes the old one.
			if rep := e.sweep(); len(rep.Outcomes) != 0 || len(e.keyIDs()) != 2 {
				t.Fatalf("revoked before the grace period ended: %+v", rep.Outcomes)
			}
			e.h.Clock.Advance(2 * time.Hour)
			rep := e.sweep()
			if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
				t.Fatalf("after the grace period: %+v", rep.Outcomes)
			}
			if ids := e.keyIDs(); len(ids) != 1 || ids[0] != latest.Tags["CredentialId"] {
				t.Fatalf("the app should hold only the new certificate: %v", ids)
			}
			if rep := e.sweep(); len(rep.Outcomes) != 0 {
				t.Fatalf("revocation not recorded: %+v", rep.Outcomes)
			}

			// The next rotation signs its proof with the certificate kvrotator wrote.
			next := e.assertRotated(t, e.record(e.h.ManualOverride(secretName)), latest.Version, tc.contentType)
			if pr := e.srv.Proofs(); pr[len(pr)-1].Signer != entraappcerttest.Thumbprint(load(t, latest.Value, latest.ContentType)) {
				t.Fatal("the second rotation's proof is not signed with the first rotation's certificate")
			}
			if next.Tags["CredentialId"] == latest.Tags["CredentialId"] {
				t.Fatal("no new key")
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
	if e.h.Versions(secretName) != 1 || e.srv.Requests() != 0 || len(e.keyIDs()) != 1 {
		t.Fatal("the dry run changed or contacted something")
	}
}

// A crash after each step converges with one kvrotator key per rotation.
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
			key := rotation.IdempotencyKey(providertest.VaultName, secretName, e.version)
			if n := len(e.kvrotatorKeys(key)); n != 1 {
				t.Fatalf("the interrupted attempt left %d keys", n)
			}
			// Redelivery: the orphan (whose private key died with the attempt) is removed and replaced.
			e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version, entraappcert.ContentTypePEM)
			if n, r := e.srv.Calls(entraappcerttest.AddKey), e.srv.Calls(entraappcerttest.RemoveKey); n != 2 || r != 1 || len(e.keyIDs()) != 2 {
				t.Fatalf("%d keys added, %d removed, keys %v", n, r, e.keyIDs())
			}
		})
	}
	t.Run(string(providertest.AfterRevoke), func(t *testing.T) {
		e := newE2E(t, nil, nil)
		latest := e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version, entraappcert.ContentTypePEM)
		e.h.Clock.Advance(2 * time.Hour)
		e.outcomes = append(e.outcomes, e.h.SweepInterrupted().Outcomes...)
		if slices.Contains(e.keyIDs(), e.initialID) {
			t.Fatal("the old key was not removed at Graph")
		}
		// Graph no longer has it: the rerun's removeKey gets 404, which is success.
		rep := e.sweep()
		if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
			t.Fatalf("after the interruption: %+v", rep.Outcomes)
		}
		if rep := e.sweep(); len(rep.Outcomes) != 0 {
			t.Fatalf("revocation not recorded: %+v", rep.Outcomes)
		}
		if ids := e.keyIDs(); len(ids) != 1 || ids[0] != latest.Tags["CredentialId"] {
			t.Fatalf("keys: %v", ids)
		}
	})
}

// The new version expires with its certificate when the certificate's lifetime is the shorter.
func TestEndToEndExpiryFollowsTheCertificate(t *testing.T) {
	e := newE2E(t, map[string]string{"ValidityPeriodDays": "90", entraappcert.TagLifetime: "40"}, nil)
	latest := e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version, entraappcert.ContentTypePEM)
	cert := load(t, latest.Value, latest.ContentType)
	if d := cert.NotAfter.Sub(*latest.Expires); d < 0 || d > time.Second {
		t.Fatalf("version expires %v, certificate %v", latest.Expires, cert.NotAfter)
	}
	if latest.Expires.After(e.h.Clock.Now().Add(41 * 24 * time.Hour)) {
		t.Fatalf("version expires %v: not capped by the 40-day certificate", latest.Expires)
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
		{"unknown format", map[string]string{entraappcert.TagFormat: "der"}, entraappcert.TagFormat},
		{"key size", map[string]string{entraappcert.TagKeySize: "1024"}, entraappcert.TagKeySize},
		{"lifetime inside the near-expiry window", map[string]string{entraappcert.TagLifetime: "7"}, entraappcert.TagLifetime},
		{"misspelt tag", map[string]string{"entra-cert-lifetime": "60"}, "entra-cert-lifetime"},
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
			if e.h.Versions(secretName) != 1 || e.srv.Requests() != 0 {
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
		if e.h.Versions(secretName) != 1 || e.srv.Calls(entraappcerttest.AddKey) != 0 {
			t.Fatal("changed something")
		}
	})
	t.Run("wrong tenant", func(t *testing.T) {
		e := newE2E(t, map[string]string{"entra-tenant-id": "fabrikam.onmicrosoft.com"}, nil)
		o := e.record(e.h.Manual(secretName, false))
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "entra-tenant-id") {
			t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
		}
		// The certificate that could not be verified was removed again: no orphan.
		if ids := e.keyIDs(); len(ids) != 1 || ids[0] != e.initialID || e.h.Versions(secretName) != 1 {
			t.Fatalf("keys %v, %d versions", ids, e.h.Versions(secretName))
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
	if e.h.Versions(secretName) != 1 || e.h.Latest(secretName).Value.Reveal() != e.initialValue {
		t.Fatal("the vault changed")
	}
}

func TestEndToEndIssuerDownOrThrottling(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		e := newE2E(t, nil, nil)
		e.srv.SetDown(true, "")
		o := e.record(e.h.Event(secretName, e.version))
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
			t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
		}
		if e.h.Versions(secretName) != 1 || len(e.keyIDs()) != 1 {
			t.Fatal("something changed while Graph was down")
		}
		// Event Grid redelivers once Graph is back.
		e.srv.SetDown(false, "")
		e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version, entraappcert.ContentTypePEM)
	})
	t.Run("throttling with Retry-After", func(t *testing.T) {
		e := newE2E(t, nil, nil)
		// Throttled on every call the engine's retries make within this delivery.
		e.srv.FailNext(entraappcerttest.GetApplication, 100, entraappcerttest.Fault{Status: 429, Code: "TooManyRequests", Message: "Too many requests", RetryAfter: "1"})
		o := e.record(e.h.Event(secretName, e.version))
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "429") {
			t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
		}
		if e.srv.Calls(entraappcerttest.AddKey) != 0 || e.h.Versions(secretName) != 1 {
			t.Fatal("changed something while throttled")
		}
	})
	t.Run("one 429 on addKey, then through", func(t *testing.T) {
		e := newE2E(t, nil, nil)
		e.srv.FailNext(entraappcerttest.AddKey, 1, entraappcerttest.Fault{Status: 429, Code: "TooManyRequests", Message: "Too many requests", RetryAfter: "1"})
		start := time.Now()
		e.assertRotated(t, e.record(e.h.Event(secretName, e.version)), e.version, entraappcert.ContentTypePEM)
		if time.Since(start) < time.Second {
			t.Fatal("the engine did not honour Retry-After")
		}
	})
}

// A certificate Entra ID never accepts is removed when verification gives up, not left behind.
func TestEndToEndNeverPropagates(t *testing.T) {
	e := newE2E(t, nil, &providertest.Options{VerifyTimeout: 500 * time.Millisecond})
	e.srv.SetPropagation(1 << 20)
	o := e.record(e.h.Event(secretName, e.version))
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "AADSTS700027") {
		t.Fatalf("%s %s %q", o.Kind, o.Class, o.Reason)
	}
	if ids := e.keyIDs(); len(ids) != 1 || ids[0] != e.initialID || e.h.Versions(secretName) != 1 {
		t.Fatalf("keys %v, %d versions", e.keyIDs(), e.h.Versions(secretName))
	}
}

// The engine's own debug log, through lost answers, throttling, propagation retries and an unverified
// certificate's removal, never shows a private key or a value.
func TestEndToEndLogsHoldNoSecrets(t *testing.T) {
	e := newE2E(t, nil, nil)
	var logs httpxtest.SyncBuffer
	p := e.provider()
	engine, err := rotation.New(rotation.Config{
		Vaults:        []rotation.Vault{e.h.Vault},
		Providers:     func(n string) (providers.Provider, bool) { return p, n == entraappcert.Name },
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
	// First attempt: the certificate never propagates within the timeout, so the engine removes it.
	e.srv.SetPropagation(1 << 20)
	if o := rotate(); o.Kind != rotation.KindFailed {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	// Second: addKey's answer is lost once and Graph throttles once; then propagation takes three
	// sign-ins.
	e.srv.SetPropagation(3)
	e.srv.FailNext(entraappcerttest.AddKey, 1, entraappcerttest.Fault{LoseAnswer: true})
	e.srv.FailNext(entraappcerttest.GetApplication, 1, entraappcerttest.Fault{Status: 429, Code: "TooManyRequests", RetryAfter: "1"})
	e.assertRotated(t, rotate(), e.version, entraappcert.ContentTypePEM)

	out := logs.String()
	if !strings.Contains(out, "verify failed, retrying") {
		t.Fatalf("the engine logged no verify retries; the check would prove nothing:\n%s", out)
	}
	e.noSecrets(t, []string{out}, e.h.Latest(secretName).Value.Reveal())
	if n := e.srv.Calls(entraappcerttest.AddKey); n < 3 {
		t.Fatalf("%d keys added", n)
	}
}
