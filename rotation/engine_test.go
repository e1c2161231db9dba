package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/rotation/rotationtest"
)

const day = 24 * time.Hour

type fixture struct {
	vault *rotationtest.MemVault
	prov  *countingProvider
	clock *manualClock
	pub   *recorder
	eng   *rotation.Engine
	jour  rotation.Journal
}

func newFixture(t *testing.T, shape providers.Shape) *fixture {
	t.Helper()
	f := &fixture{
		vault: rotationtest.NewMemVault("myvault"),
		prov:  newCountingProvider(shape),
		clock: &manualClock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)},
		pub:   &recorder{},
		jour:  rotation.NewMemoryJournal(),
	}
	pol, err := bindings.Parse([]byte(`{"bindings":[{"name":"test","secrets":["myvault/*"],"provider":"test",
		"allow":{"secret":["shared-admin"],"url":["https://issuer.example","https://issuer2.example"]}}]}`), "test bindings", nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := rotation.New(rotation.Config{
		Vaults:        []rotation.Vault{f.vault},
		Providers:     func(name string) (providers.Provider, bool) { return f.prov, name == "test" },
		Bindings:      pol,
		Journal:       f.jour,
		Clock:         f.clock,
		Publisher:     f.pub,
		VerifyTimeout: 2 * time.Second,
		VerifyBackoff: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.eng = eng
	return f
}

// state is kvrotator's journal entry for a secret.
func (f *fixture) state(name string) rotation.State {
	st, err := f.jour.Load(context.Background(), "myvault", name)
	if err != nil {
		panic(err)
	}
	return st
}

func managedTags(extra ...string) map[string]string {
	t := map[string]string{"rotation-provider": "test", "CredentialId": "cred-0", "ValidityPeriodDays": "60"}
	for i := 0; i+1 < len(extra); i += 2 {
		t[extra[i]] = extra[i+1]
	}
	return t
}

func (f *fixture) seed(name string, expIn time.Duration, tags map[string]string) string {
	exp := f.clock.Now().Add(expIn)
	f.prov.mu.Lock()
	f.prov.creds["cred-0"] = "initial"
	f.prov.mu.Unlock()
	return f.vault.Put(name, "initial", tags, &exp)
}

func TestEventRotatesOnceAndDuplicatesAreNoOps(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("api-key", 10*day, managedTags())
	ev := rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "api-key", Version: v1}

	o := f.eng.HandleEvent(context.Background(), ev)
	if o.Kind != rotation.KindRotated || o.OldVersion != v1 || o.NewVersion == "" {
		t.Fatalf("first event: %+v", o)
	}
	vs := f.vault.Versions("api-key")
	if len(vs) != 2 {
		t.Fatalf("versions: %d", len(vs))
	}
	latest := vs[1]
	if latest.Value.Reveal() != "value-of-cred-1" || latest.Tags["CredentialId"] != "cred-1" {
		t.Fatalf("new version value/CredentialId: %s", latest.Tags["CredentialId"])
	}
	if want := f.clock.Now().Add(60 * day); !latest.Expires.Equal(want) {
		t.Fatalf("exp %v, want now+60d", latest.Expires)
	}
	st, err := rotation.ParseState(latest.Tags["rotation-state"])
	if err != nil || st.From != v1 || st.By != rotation.TriggerEvent || len(st.Pending) != 1 || st.Pending[0].CredentialID != "cred-0" {
		t.Fatalf("state %+v %v", st, err)
	}
	if latest.Tags["ValidityPeriodDays"] != "60" || latest.Tags["rotation-provider"] != "test" {
		t.Fatal("tags were not carried forward")
	}

	// The same event again, and ten concurrent copies: nothing more.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := f.eng.HandleEvent(context.Background(), ev)
			if o.Kind == rotation.KindRotated {
				t.Error("a duplicate rotated again")
			}
			if o.Failed() && !o.Transient() {
				t.Errorf("duplicate failed permanently: %+v", o)
			}
		}()
	}
	wg.Wait()
	if again := f.eng.HandleEvent(context.Background(), ev); again.Kind != rotation.KindSkipped || !strings.Contains(again.Reason, "already rotated") {
		t.Fatalf("duplicate: %+v", again)
	}
	if n := len(f.vault.Versions("api-key")); n != 2 || f.prov.created != 1 {
		t.Fatalf("after duplicates: %d versions, %d credentials created", n, f.prov.created)
	}
}

func TestConcurrentDistinctTriggersRotateOnce(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.prov.slow = 20 * time.Millisecond
	v1 := f.seed("api-key", 10*day, managedTags())
	var wg sync.WaitGroup
	outcomes := make(chan rotation.Outcome, 12)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes <- f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "api-key", Version: v1})
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, o := range f.eng.Sweep(context.Background(), rotation.TriggerTimer, false).Outcomes {
			outcomes <- o
		}
	}()
	wg.Wait()
	close(outcomes)
	busy := 0
	for o := range outcomes {
		if o.Transient() {
			busy++
		}
	}
	// Whoever lost the race either saw the lock (busy: Event Grid comes back) or a newer version.
	// Retry the busy ones, as Event Grid would.
	for range busy {
		o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "api-key", Version: v1})
		if o.Kind == rotation.KindRotated {
			t.Fatal("a redelivery rotated again")
		}
	}
	if n := len(f.vault.Versions("api-key")); n != 2 || f.prov.created != 1 {
		t.Fatalf("%d versions, %d credentials", n, f.prov.created)
	}
}

func TestIgnoredEventsAndUnknownVault(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	v1 := f.seed("api-key", 10*day, managedTags())
	cases := []struct {
		ev    rotation.Event
		kind  rotation.Kind
		class rotation.Class
		why   string
	}{
		{rotation.Event{Type: rotation.EventNewVersion, Vault: "myvault", Secret: "api-key", Version: v1}, rotation.KindSkipped, "", "never triggers"},
		{rotation.Event{Type: "Microsoft.KeyVault.KeyNearExpiry", Vault: "myvault", Secret: "api-key", Version: v1}, rotation.KindSkipped, "", "not handled"},
		{rotation.Event{Type: rotation.EventNearExpiry, Vault: "othervault", Secret: "api-key", Version: v1}, rotation.KindFailed, rotation.ClassPermanent, "not configured"},
		{rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "gone", Version: v1}, rotation.KindSkipped, "", "no longer exists"},
	}
	for _, tc := range cases {
		o := f.eng.HandleEvent(context.Background(), tc.ev)
		if o.Kind != tc.kind || o.Class != tc.class || !strings.Contains(o.Reason, tc.why) {
			t.Errorf("%s %s: %+v", tc.ev.Type, tc.ev.Vault, o)
		}
	}
	if n := len(f.vault.Versions("api-key")); n != 1 {
		t.Fatalf("an ignored event wrote: %d versions", n)
	}
}

func TestBadPoliciesAreNamedPermanentErrors(t *testing.T) {
	cases := []struct {
		name string
		tags map[string]string
		want string
	}{
		{"unknown provider", map[string]string{"rotation-provider": "nope"}, "rotation-provider"},
		{"validity not a number", managedTags("ValidityPeriodDays", "ninety"), `ValidityPeriodDays="ninety"`},
		{"validity inside the near-expiry window", managedTags("ValidityPeriodDays", "20"), "near-expiry"},
		{"provider tag invalid", managedTags("test-mode", "broken"), "test-mode"},
		{"bad grace", managedTags("rotation-grace-hours", "-1"), "rotation-grace-hours"},
		{"unbound secret reference", managedTags("test-secret", "other-teams-secret"), `test-secret="other-teams-secret": not bound`},
		{"unbound url", managedTags("test-url", "https://attacker.example"), `test-url="https://attacker.example": not bound`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, providers.ShapeGenerated)
			v1 := f.seed("s", 10*day, tc.tags)
			o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
			if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, tc.want) {
				t.Fatalf("%+v", o)
			}
			if len(f.vault.Versions("s")) != 1 || f.prov.created != 0 {
				t.Fatal("a bad policy changed something")
			}
		})
	}
}

func TestFailuresAtEachStepLeaveAWorkingCredential(t *testing.T) {
	cases := []struct {
		name      string
		setup     func(f *fixture)
		class     rotation.Class
		liveAfter int // provider credentials alive afterwards
	}{
		{"create transient", func(f *fixture) { f.prov.failCreate = errors.New("503 from provider") }, rotation.ClassTransient, 1},
		{"create forbidden", func(f *fixture) { f.prov.failCreate = providers.Permanent(errors.New("403")) }, rotation.ClassPermanent, 1},
		{"verify never works", func(f *fixture) { f.prov.failVerify = errors.New("still 401") }, rotation.ClassTransient, 1},
		{"vault write fails", func(f *fixture) { f.vault.FailSet = errors.New("429 throttled") }, rotation.ClassTransient, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, providers.ShapeCreateRevoke)
			v1 := f.seed("s", 10*day, managedTags())
			tc.setup(f)
			ev := rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1}
			o := f.eng.HandleEvent(context.Background(), ev)
			if o.Kind != rotation.KindFailed || o.Class != tc.class {
				t.Fatalf("%+v", o)
			}
			latest := f.vault.Versions("s")[len(f.vault.Versions("s"))-1]
			if latest.Version != v1 || latest.Value.Reveal() != "initial" {
				t.Fatal("the vault no longer holds the working credential")
			}
			if got := len(f.prov.live()); got != tc.liveAfter {
				t.Fatalf("live provider credentials %v", f.prov.live())
			}
			// The failure clears; the redelivered event converges with exactly one new credential.
			f.prov.failCreate, f.prov.failVerify, f.vault.FailSet = nil, nil, nil
			o = f.eng.HandleEvent(context.Background(), ev)
			if o.Kind != rotation.KindRotated {
				t.Fatalf("retry: %+v", o)
			}
			if live := f.prov.live(); len(live) != 2 {
				t.Fatalf("after retry live credentials %v, want the old one (grace) and the new one", live)
			}
		})
	}
}

func TestVerifyRetriesThroughPropagation(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.prov.verifyFlap = 3
	v1 := f.seed("s", 10*day, managedTags())
	o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventExpired, Vault: "myvault", Secret: "s", Version: v1})
	if o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
}

func TestSweepRotatesOnlyWhatIsDueAndRevokesAfterGrace(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("due-soon", 10*day, managedTags())
	f.seed("expired", -day, managedTags())
	f.seed("healthy", 200*day, managedTags())
	f.vault.Put("unmanaged", "x", nil, nil)

	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, true)
	if rep.Scanned != 4 || rep.Managed != 3 {
		t.Fatalf("dry run scanned %d managed %d", rep.Scanned, rep.Managed)
	}
	for _, o := range rep.Outcomes {
		if o.Kind != rotation.KindPlanned {
			t.Fatalf("dry run outcome %+v", o)
		}
	}
	if f.vault.Sets != 0 || f.prov.created != 0 {
		t.Fatal("dry run changed something")
	}

	rep = f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	rotated := map[string]bool{}
	for _, o := range rep.Outcomes {
		if o.Kind == rotation.KindRotated {
			rotated[o.Secret] = true
		}
	}
	if len(rotated) != 2 || !rotated["due-soon"] || !rotated["expired"] {
		t.Fatalf("rotated %v", rotated)
	}
	if len(f.vault.Versions("healthy")) != 1 || len(f.vault.Versions("unmanaged")) != 1 {
		t.Fatal("the sweep touched a secret that was not due")
	}
	// Nothing more to do until the grace period (24 h) is over; then the old credentials go.
	if rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false); len(rep.Outcomes) != 0 {
		t.Fatalf("second sweep: %+v", rep.Outcomes)
	}
	f.clock.Advance(25 * time.Hour)
	rep = f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	revoked := 0
	for _, o := range rep.Outcomes {
		if o.Kind == rotation.KindRevoked {
			revoked++
		}
	}
	if revoked != 2 || len(f.prov.revoked) != 2 {
		t.Fatalf("revocations %d %v", revoked, f.prov.revoked)
	}
	// Revocation is recorded: the next sweep does nothing.
	if rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false); len(rep.Outcomes) != 0 {
		t.Fatalf("after revocation: %+v", rep.Outcomes)
	}
	// Every live credential is one a latest version holds.
	live := f.prov.live()
	for _, name := range []string{"due-soon", "expired"} {
		vs := f.vault.Versions(name)
		id := vs[len(vs)-1].Tags["CredentialId"]
		found := false
		for _, l := range live {
			found = found || l == id
		}
		if !found {
			t.Fatalf("latest credential %s of %s was revoked", id, name)
		}
	}
}

func TestSweepReportsOverdueWhenRotationFails(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("expired", -day, managedTags())
	f.prov.failCreate = providers.Permanent(errors.New("account suspended"))
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	kinds := map[rotation.Kind]int{}
	for _, o := range rep.Outcomes {
		kinds[o.Kind]++
		if o.Kind == rotation.KindOverdue && !strings.Contains(o.Reason, "account suspended") {
			t.Fatalf("overdue without the reason: %q", o.Reason)
		}
	}
	if kinds[rotation.KindFailed] != 1 || kinds[rotation.KindOverdue] != 1 {
		t.Fatalf("%v", kinds)
	}
	if !strings.Contains(f.pub.kinds(), "overdue") {
		t.Fatal("overdue was not published")
	}
}

func TestManualRotateAndDryRun(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	f.seed("healthy", 200*day, managedTags())
	o := f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "healthy", Trigger: rotation.TriggerManual, DryRun: true, Force: true})
	if o.Kind != rotation.KindPlanned || f.vault.Sets != 0 {
		t.Fatalf("dry run: %+v", o)
	}
	o = f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "healthy", Trigger: rotation.TriggerManual})
	if o.Kind != rotation.KindSkipped || !strings.Contains(o.Reason, "not due") {
		t.Fatalf("unforced manual on a healthy secret: %+v", o)
	}
	o = f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "healthy", Trigger: rotation.TriggerManual, Force: true})
	if o.Kind != rotation.KindRotated {
		t.Fatalf("forced: %+v", o)
	}
	o = f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "missing", Trigger: rotation.TriggerManual, Force: true})
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent {
		t.Fatalf("missing: %+v", o)
	}
}

func TestOutcomesNeverCarryValues(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("s", 10*day, managedTags())
	f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	for _, o := range f.pub.outcomes {
		s := fmt.Sprintf("%+v", o)
		if strings.Contains(s, "initial") || strings.Contains(s, "value-of-") {
			t.Fatalf("outcome carries a value: %s", s)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	st := rotation.State{From: "abc", At: time.Unix(1700000000, 0).UTC(), By: rotation.TriggerTimer,
		Pending: []rotation.Pending{{CredentialID: "key;with=odd@chars", Due: time.Unix(1700086400, 0).UTC()}}}
	back, err := rotation.ParseState(st.String())
	if err != nil || back.From != st.From || !back.At.Equal(st.At) || back.By != st.By || len(back.Pending) != 1 || !reflect.DeepEqual(back.Pending[0], st.Pending[0]) {
		t.Fatalf("%q → %+v %v", st.String(), back, err)
	}
}

// TestInterruptedRotationIsFinishedBySweep: a forced rotation dies after the provider created the
// credential (its context ends during verify); the mark it left makes the sweep finish it with the
// same idempotency key, so the provider hands back the same credential: one credential, one version.
func TestInterruptedRotationIsFinishedBySweep(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 200*day, managedTags()) // not due: only the mark brings the sweep back
	f.prov.verifyGate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan rotation.Outcome)
	go func() {
		done <- f.eng.Rotate(ctx, rotation.Request{Vault: "myvault", Secret: "s", Trigger: rotation.TriggerManual, Force: true})
	}()
	for f.prov.Created() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel() // the process dies here
	if o := <-done; o.Kind != rotation.KindFailed {
		t.Fatalf("interrupted: %+v", o)
	}
	close(f.prov.verifyGate)
	vs := f.vault.Versions("s")
	st := f.state("s")
	if len(vs) != 1 || st.Started.IsZero() {
		t.Fatalf("after the crash: %d versions, state %+v", len(vs), st)
	}
	if rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false); len(rep.Outcomes) != 0 {
		t.Fatalf("a fresh mark must not be resumed yet (the rotation may still be running): %+v", rep.Outcomes)
	}
	f.clock.Advance(11 * time.Minute)
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRotated {
		t.Fatalf("resume: %+v", rep.Outcomes)
	}
	if f.prov.Created() != 1 || len(f.vault.Versions("s")) != 2 {
		t.Fatalf("created %d credentials, %d versions", f.prov.Created(), len(f.vault.Versions("s")))
	}
}

func TestFailingSecretIsReportedNotHammered(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 5*day, managedTags())
	f.prov.failCreate = providers.Permanent(errors.New("403 from the issuer"))
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if rep.Failed() != 1 || f.prov.creates != 1 {
		t.Fatalf("first sweep: %+v (%d creates)", rep.Outcomes, f.prov.creates)
	}
	// Within the back-off the sweep reports, without calling the provider.
	rep = f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindOverdue || !strings.Contains(rep.Outcomes[0].Reason, "1 consecutive") || f.prov.creates != 1 {
		t.Fatalf("second sweep: %+v (%d creates)", rep.Outcomes, f.prov.creates)
	}
	f.clock.Advance(11 * time.Minute)
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if f.prov.creates != 2 {
		t.Fatalf("after the back-off the sweep must try again: %d creates", f.prov.creates)
	}
	// Two failures: the wait doubles.
	f.clock.Advance(11 * time.Minute)
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if f.prov.creates != 2 {
		t.Fatalf("back-off did not double: %d creates", f.prov.creates)
	}
	// Fixed: the next attempt after the back-off succeeds and the new version starts clean.
	f.prov.failCreate = nil
	f.clock.Advance(10 * time.Minute)
	rep = f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRotated {
		t.Fatalf("after the fix: %+v", rep.Outcomes)
	}
	vs := f.vault.Versions("s")
	if st := f.state("s").For(vs[len(vs)-1].Version); st.Fails != 0 || !st.Started.IsZero() {
		t.Fatalf("new version carries old failure state: %+v", st)
	}
}

func TestProviderRetryHonoursRetryAfter(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("s", 5*day, managedTags())
	f.prov.createErrs = []error{throttled{after: 30 * time.Millisecond}, throttled{after: 30 * time.Millisecond}}
	o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	if o.Kind != rotation.KindRotated || f.prov.creates != 3 {
		t.Fatalf("%+v after %d creates", o, f.prov.creates)
	}
	// A Retry-After beyond what an invocation can wait is left to the trigger's redelivery.
	v2 := f.vault.Versions("s")[1].Version
	f.prov.createErrs = []error{throttled{after: time.Minute}}
	o = f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v2})
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
		t.Fatalf("long Retry-After: %+v", o)
	}
}

func TestLeaseLostBeforeWriteWritesNothing(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	locker := &losingLocker{}
	eng, err := rotation.New(rotation.Config{
		Vaults: []rotation.Vault{f.vault}, Locker: locker, Clock: f.clock,
		Providers:     func(string) (providers.Provider, bool) { return f.prov, true },
		VerifyTimeout: 2 * time.Second, VerifyBackoff: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	v1 := f.seed("s", 5*day, managedTags())
	f.prov.verifyGate = make(chan struct{})
	done := make(chan rotation.Outcome)
	go func() {
		done <- eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	}()
	for f.prov.Created() == 0 {
		time.Sleep(time.Millisecond)
	}
	locker.lose()
	o := <-done
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient {
		t.Fatalf("%+v", o)
	}
	if len(f.vault.Versions("s")) != 1 {
		t.Fatal("wrote a version after losing the lease")
	}
}

func TestSweepReportsOverdueForBadTags(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	f.seed("expired-bad", -day, managedTags("ValidityPeriodDays", "ninety"))
	f.seed("healthy-bad", 200*day, managedTags("ValidityPeriodDays", "ninety"))
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	got := map[string][]rotation.Kind{}
	for _, o := range rep.Outcomes {
		got[o.Secret] = append(got[o.Secret], o.Kind)
	}
	if fmt.Sprint(got["expired-bad"]) != "[failed overdue]" || fmt.Sprint(got["healthy-bad"]) != "[failed]" {
		t.Fatalf("%v", got)
	}
}

func TestStatusOrdersOverdueFirstAndNamesActions(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("healthy", 200*day, managedTags())
	f.seed("expired", -day, managedTags())
	f.seed("bad-tags", 100*day, managedTags("ValidityPeriodDays", "ninety"))
	f.seed("soon", 30*day-12*time.Hour, managedTags()) // past its rotation point by 12 h: due, not yet overdue
	f.vault.Put("plain", "x", nil, nil)
	rep := f.eng.Status(context.Background(), time.Time{})
	var order []string
	for _, s := range rep.Secrets {
		order = append(order, s.Secret)
	}
	if strings.Join(order, ",") != "expired,soon,bad-tags,healthy,plain" {
		t.Fatalf("order %v", order)
	}
	byName := map[string]rotation.SecretStatus{}
	for _, s := range rep.Secrets {
		byName[s.Secret] = s
	}
	if !byName["expired"].Overdue || byName["soon"].Overdue || !byName["soon"].Due || byName["healthy"].Due {
		t.Fatalf("due/overdue: %+v", rep.Secrets)
	}
	if !strings.Contains(byName["bad-tags"].PolicyError, "ValidityPeriodDays") || rep.PolicyErrors() != 1 || rep.Overdue() != 1 {
		t.Fatalf("policy errors: %+v", byName["bad-tags"])
	}
	if !strings.HasPrefix(byName["soon"].Action, "rotate with provider test") || !strings.HasPrefix(byName["healthy"].Action, "nothing until") {
		t.Fatalf("actions: %q %q", byName["soon"].Action, byName["healthy"].Action)
	}
	// As of a later date, the healthy one is due too.
	later := f.eng.Status(context.Background(), f.clock.Now().Add(180*day))
	for _, s := range later.Secrets {
		if s.Secret == "healthy" && !s.Due {
			t.Fatal("--at does not move the point of view")
		}
	}
}

// A provider that says what its value is (a PEM file, a PKCS#12 archive) sets the new version's content
// type; one that does not keeps the current version's.
func TestProviderSetsContentType(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	f.seed("cert", 200*day, managedTags())
	rotate := func() rotation.Secret {
		t.Helper()
		o := f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "cert", Trigger: rotation.TriggerManual, Force: true, Override: true})
		if o.Kind != rotation.KindRotated {
			t.Fatalf("%+v", o)
		}
		vs := f.vault.Versions("cert")
		return vs[len(vs)-1]
	}
	f.prov.contentType = "application/x-pem-file"
	if ct := rotate().ContentType; ct != "application/x-pem-file" {
		t.Fatalf("content type %q, want the provider's", ct)
	}
	f.prov.contentType = ""
	if ct := rotate().ContentType; ct != "application/x-pem-file" {
		t.Fatalf("content type %q, want the current version's", ct)
	}
}
