package providertest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers/webhook"
	"github.com/kvrotator/kvrotator/providers/webhook/webhooktest"
	"github.com/kvrotator/kvrotator/rotation"
)

// bind is the operator's binding for the harness's webhook secret: the service and its signing key.
func bind(t *testing.T, url string) rotation.Binder {
	t.Helper()
	p, err := bindings.Parse(fmt.Appendf(nil, `{"bindings": [{"secrets": ["%s/svc"], "provider": "webhook",
		"allow": {"url": [%q], "secret": ["hook-key"]}}]}`, providertest.VaultName, url), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The harness itself, exercised with the webhook provider and its reference service.
func TestHarnessConvergesAfterEachInterruption(t *testing.T) {
	for _, step := range []providertest.Step{providertest.AfterCreate, providertest.AfterVerify} {
		t.Run(string(step), func(t *testing.T) {
			svc := webhooktest.NewServer("harness-signing-key-0123456789")
			defer svc.Close()
			h := providertest.New(t, webhook.Name, webhook.New(), &providertest.Options{Bindings: bind(t, svc.URL)})
			h.Seed("hook-key", "harness-signing-key-0123456789", nil, 365*24*time.Hour)
			svc.Seed("c0", "initial")
			v := h.Seed("svc", "initial", map[string]string{"rotation-provider": webhook.Name, "webhook-url": svc.URL,
				"webhook-signing-secret": "hook-key", "CredentialId": "c0"}, 5*24*time.Hour)
			if o := h.RotateInterrupted("svc", v, step); o.Kind != rotation.KindFailed {
				t.Fatalf("interrupted: %+v", o)
			}
			if h.Versions("svc") != 1 {
				t.Fatal("wrote after the interruption")
			}
			if o := h.Event("svc", v); o.Kind != rotation.KindRotated {
				t.Fatalf("redelivery: %+v", o)
			}
			if svc.Created() != 1 {
				t.Fatalf("%d credentials created", svc.Created())
			}
			latest := h.Latest("svc")
			if svc.Live()[latest.Tags["CredentialId"]] != latest.Value.Reveal() {
				t.Fatal("the vault's credential does not work")
			}
		})
	}
	t.Run(string(providertest.AfterRevoke), func(t *testing.T) {
		svc := webhooktest.NewServer("harness-signing-key-0123456789")
		defer svc.Close()
		h := providertest.New(t, webhook.Name, webhook.New(), &providertest.Options{Bindings: bind(t, svc.URL)})
		h.Seed("hook-key", "harness-signing-key-0123456789", nil, 365*24*time.Hour)
		svc.Seed("c0", "initial")
		h.Seed("svc", "initial", map[string]string{"rotation-provider": webhook.Name, "webhook-url": svc.URL,
			"webhook-signing-secret": "hook-key", "CredentialId": "c0", "rotation-grace-hours": "1"}, 5*24*time.Hour)
		if rep := h.Sweep(); len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRotated {
			t.Fatalf("sweep: %+v", rep.Outcomes)
		}
		h.Clock.Advance(2 * time.Hour)
		h.SweepInterrupted()
		if _, live := svc.Live()["c0"]; live {
			t.Fatal("revocation did not happen at the provider")
		}
		rep := h.Sweep()
		if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
			t.Fatalf("after the interruption: %+v", rep.Outcomes)
		}
		if rep := h.Sweep(); len(rep.Outcomes) != 0 {
			t.Fatalf("revocation not recorded: %+v", rep.Outcomes)
		}
	})
}
