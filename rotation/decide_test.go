package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/rotation/rotationtest"
)

// newTimedFixture is newFixture with engine options changed (defaults, kill switch).
func newTimedFixture(t *testing.T, shape providers.Shape, adjust func(*rotation.Config)) *fixture {
	t.Helper()
	f := newFixture(t, shape)
	cfg := rotation.Config{Vaults: []rotation.Vault{f.vault}, Clock: f.clock, Publisher: f.pub, Journal: f.jour,
		Providers: func(name string) (providers.Provider, bool) { return f.prov, name == "test" }, VerifyTimeout: 2 * time.Second}
	adjust(&cfg)
	eng, err := rotation.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.eng = eng
	return f
}

func (f *fixture) manual(name string, override bool) rotation.Outcome {
	return f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: name, Trigger: rotation.TriggerManual, Force: true, Override: override})
}

func (f *fixture) event(name string) rotation.Outcome {
	vs := f.vault.Versions(name)
	return f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: name, Version: vs[len(vs)-1].Version})
}

func (f *fixture) statusOf(name string) rotation.SecretStatus {
	for _, s := range f.eng.Status(context.Background(), time.Time{}).Secrets {
		if s.Secret == name {
			return s
		}
	}
	panic("no status for " + name)
}

// TestNoBackToBackResets: two manual rotations seconds apart (an operator retrying after a 503) on a
// two-slot and on an alternating secret: the second would reset the slot/login the first left every
// client holding, so it is refused with a named reason and Conflict (HTTP 409) until the grace is
// over; Override lifts it, saying what it breaks.
func TestNoBackToBackResets(t *testing.T) {
	for _, shape := range []providers.Shape{providers.ShapeTwoSlot, providers.ShapeAlternating} {
		t.Run(string(shape), func(t *testing.T) {
			f := newFixture(t, shape)
			f.seed("s", 200*day, managedTags())
			if o := f.manual("s", false); o.Kind != rotation.KindRotated {
				t.Fatalf("first: %+v", o)
			}
			f.clock.Advance(5 * time.Second)
			o := f.manual("s", false)
			if o.Kind != rotation.KindSkipped || !o.Conflict || !strings.Contains(o.Reason, "previous version's consumers") || o.NextAt == nil {
				t.Fatalf("second: %+v", o)
			}
			if f.prov.Created() != 1 {
				t.Fatalf("created %d", f.prov.Created())
			}
			if s := f.statusOf("s"); !strings.Contains(s.Action, "nothing until") {
				t.Fatalf("status: %+v", s)
			}
			if o := f.manual("s", true); o.Kind != rotation.KindRotated || !strings.Contains(o.Reason, "") {
				t.Fatalf("override: %+v", o)
			}
			f.clock.Advance(25 * time.Hour)
			if o := f.manual("s", false); o.Kind != rotation.KindRotated {
				t.Fatalf("after the grace: %+v", o)
			}
		})
	}
}

// TestRotationWindow: outside the window an event is acknowledged and deferred to the window's start;
// the sweep reports the overdue secret and rotates it once the window is open; an expiry before the
// next window beats the window.
func TestRotationWindow(t *testing.T) {
	// The fixture's clock: Sunday 2026-11-01 12:00 UTC = 21:00 in Tokyo.
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 10*day, managedTags("rotation-window", "Mon-Fri 02:00-04:00 Asia/Tokyo"))
	o := f.event("s")
	monday := time.Date(2026, 11, 2, 2, 0, 0, 0, time.FixedZone("JST", 9*3600))
	if o.Kind != rotation.KindSkipped || o.NextAt == nil || !o.NextAt.Equal(monday) || !strings.Contains(o.Reason, "outside the rotation window") {
		t.Fatalf("event outside the window: %+v", o)
	}
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if f.prov.Created() != 0 || len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindOverdue {
		t.Fatalf("sweep outside the window: %+v", rep.Outcomes)
	}
	if s := f.statusOf("s"); s.NextWindow == nil || !s.NextWindow.Equal(monday) || !strings.HasPrefix(s.Action, "wait until") {
		t.Fatalf("status: %+v", s)
	}
	f.clock.Advance(5*time.Hour + 30*time.Minute) // 02:30 Monday in Tokyo
	rep = f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if f.prov.Created() != 1 {
		t.Fatalf("sweep inside the window: %+v", rep.Outcomes)
	}

	g := newFixture(t, providers.ShapeCreateRevoke)
	g.seed("soon", 3*time.Hour, managedTags("rotation-window", "Mon-Fri 02:00-04:00 Asia/Tokyo")) // expires before Monday 02:00
	if s := g.statusOf("soon"); !strings.Contains(s.Reason, "before the next window") {
		t.Fatalf("status of an expiry before the window: %+v", s)
	}
	if o := g.event("soon"); o.Kind != rotation.KindRotated {
		t.Fatalf("an expiry before the window: %+v", o)
	}
}

func TestMinimumInterval(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 200*day, managedTags("rotation-min-interval", "7d"))
	if o := f.manual("s", false); o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	f.clock.Advance(24 * time.Hour)
	if o := f.manual("s", false); o.Kind != rotation.KindSkipped || !strings.Contains(o.Reason, "rotation-min-interval") {
		t.Fatalf("a day later: %+v", o)
	}
	f.clock.Advance(6*24*time.Hour + time.Minute)
	if o := f.manual("s", false); o.Kind != rotation.KindRotated {
		t.Fatalf("a week later: %+v", o)
	}
}

// TestPause: a paused secret (tag) and the global kill switch: nothing is rotated or revoked, the
// secret is still reported; lifting the pause resumes.
func TestPause(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 5*day, managedTags("rotation-pause", "true"))
	if o := f.event("s"); o.Kind != rotation.KindSkipped || !strings.Contains(o.Reason, "paused") {
		t.Fatalf("%+v", o)
	}
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if f.prov.creates != 0 || len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindOverdue {
		t.Fatalf("%+v", rep.Outcomes)
	}

	paused := true
	g := newTimedFixture(t, providers.ShapeCreateRevoke, func(c *rotation.Config) { c.Paused = func() bool { return paused } })
	g.seed("a", 5*day, managedTags("rotation-grace-hours", "0"))
	g.seed("b", 5*day, managedTags())
	rep = g.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if g.prov.creates != 0 || len(rep.Outcomes) != 2 || !strings.Contains(rep.Outcomes[0].Reason, "KVROTATOR_PAUSE") {
		t.Fatalf("kill switch: %+v", rep.Outcomes)
	}
	if s := g.statusOf("a"); !strings.Contains(s.Action, "paused") {
		t.Fatalf("status: %+v", s)
	}
	paused = false
	g.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if g.prov.Created() != 2 {
		t.Fatalf("after the pause: %d created", g.prov.Created())
	}
	paused = true
	g.clock.Advance(time.Hour)
	g.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(g.prov.revoked) != 0 {
		t.Fatal("revoked while paused")
	}
}

// TestKillSwitchStopsASweepMidway: the switch is read for every secret, so a sweep in progress starts
// nothing new once it is set; what was started finishes whole.
func TestKillSwitchStopsASweepMidway(t *testing.T) {
	var f *fixture
	f = newTimedFixture(t, providers.ShapeCreateRevoke, func(c *rotation.Config) {
		c.Concurrency = 1
		c.Paused = func() bool { return f.prov.Created() >= 2 } // set during the sweep, after two rotations
	})
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		f.seed(n, 5*day, managedTags())
	}
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	created := f.prov.Created()
	if created == 0 || created == 6 {
		t.Fatalf("created %d of 6: the switch did not stop the sweep mid-way", created)
	}
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		vs := f.vault.Versions(n)
		if st := f.state(n); !st.Started.IsZero() && len(vs) == 1 {
			t.Fatalf("%s was left half-done", n)
		}
	}
}

func TestSchedule(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	f.vault.Now = f.clock.Now
	f.seed("s", 200*day, managedTags("rotation-schedule", "every 30d"))
	if rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false); len(rep.Outcomes) != 0 {
		t.Fatalf("not due yet: %+v", rep.Outcomes)
	}
	f.clock.Advance(31 * day) // the schedule is due, the expiry (169 days away) is not
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRotated {
		t.Fatalf("%+v", rep.Outcomes)
	}
	if s := f.statusOf("s"); s.Due {
		t.Fatalf("after the rotation: %+v", s)
	}
}

func TestZeroGraceMeansZero(t *testing.T) {
	f := newTimedFixture(t, providers.ShapeCreateRevoke, func(c *rotation.Config) {
		c.Defaults = rotation.Defaults{Grace: 0, GraceSet: true}
	})
	f.seed("s", 5*day, managedTags())
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if !slices.Equal(f.prov.revoked, []string{"cred-0"}) {
		t.Fatalf("revoked %v", f.prov.revoked)
	}
	if _, err := rotation.New(rotation.Config{Vaults: []rotation.Vault{rotationtest.NewMemVault("v")},
		Providers: func(string) (providers.Provider, bool) { return nil, false }, Defaults: rotation.Defaults{Grace: -time.Hour}}); err == nil {
		t.Fatal("a negative grace was accepted")
	}
}

// TestStatusAndSweepAgree: a fresh start mark and a disabled latest version are described by status
// exactly as the sweep treats them.
func TestStatusAndSweepAgree(t *testing.T) {
	f2 := newFixture(t, providers.ShapeCreateRevoke)
	f2.seed("s", 200*day, managedTags())
	f2.prov.verifyGate = make(chan struct{})
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() {
		f2.eng.Rotate(ctx2, rotation.Request{Vault: "myvault", Secret: "s", Trigger: rotation.TriggerManual, Force: true})
		close(done2)
	}()
	for f2.prov.Created() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel2()
	<-done2
	close(f2.prov.verifyGate)
	s := f2.statusOf("s")
	rep := f2.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if !strings.HasPrefix(s.Action, "wait until") || len(rep.Outcomes) != 0 {
		t.Fatalf("fresh mark: status %q, sweep %+v", s.Action, rep.Outcomes)
	}
	f2.clock.Advance(11 * time.Minute)
	if s := f2.statusOf("s"); !strings.Contains(s.Action, "finish the interrupted rotation") {
		t.Fatalf("old mark: status %q", s.Action)
	}

	g := newFixture(t, providers.ShapeCreateRevoke)
	v := g.seed("d", 5*day, managedTags())
	g.vault.SetEnabled("d", v, false)
	s = g.statusOf("d")
	for range 3 {
		rep := g.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
		if rep.Failed() != 0 || len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindOverdue || !strings.Contains(rep.Outcomes[0].Reason, "disabled") {
			t.Fatalf("disabled: %+v", rep.Outcomes)
		}
	}
	if !strings.Contains(s.Action, "disabled") || !s.Overdue {
		t.Fatalf("disabled status: %+v", s)
	}
}

// TestRefusedRevocationIsParked: a revocation the provider refuses for good is reported and retried
// with back-off, not every sweep and not forgotten.
func TestRefusedRevocationIsParked(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "0"))
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false) // rotates: cred-0 → cred-1
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false) // revokes cred-0
	if o := f.manual("s", true); o.Kind != rotation.KindRotated {   // cred-1 (kvrotator's own) → cred-2
		t.Fatalf("%+v", o)
	}
	f.prov.failRevoke = providers.Permanent(errors.New("403 forbidden"))
	calls := len(f.prov.revokeReqs)
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if rep.Failed() != 1 || len(f.prov.revokeReqs) != calls+1 || !strings.Contains(rep.Outcomes[0].Reason, "refused 1 times") {
		t.Fatalf("first refusal: %+v", rep.Outcomes)
	}
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(f.prov.revokeReqs) != calls+1 {
		t.Fatal("a parked revocation was retried at once")
	}
	f.prov.failRevoke = nil
	f.clock.Advance(11 * time.Minute)
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if !slices.Equal(f.prov.revoked, []string{"cred-0", "cred-1"}) || len(f.state("s").Pending) != 0 {
		t.Fatalf("after the back-off: revoked %v; state %+v", f.prov.revoked, f.state("s"))
	}
}

// TestShortProviderLifetimeIsRefused: a credential the issuer lets live less than the near-expiry lead
// (a webhook answering a one-hour expiresAt) would make the secret due again at once: refused, named,
// the new credential retired, no loop.
func TestShortProviderLifetimeIsRefused(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.prov.lifetime = time.Hour
	f.seed("s", 5*day, managedTags())
	o := f.event("s")
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "due again at once") {
		t.Fatalf("%+v", o)
	}
	if len(f.vault.Versions("s")) != 1 || !slices.Equal(f.prov.live(), []string{"cred-0"}) {
		t.Fatalf("versions %d, live %v", len(f.vault.Versions("s")), f.prov.live())
	}
}

// blockingVault holds every Set until gate is closed: a vault that is throttled or slow.
type blockingVault struct {
	*rotationtest.MemVault
	gate chan struct{}
}

func (b blockingVault) Set(ctx context.Context, name string, nv rotation.NewVersion) (rotation.SecretProperties, error) {
	select {
	case <-b.gate:
	case <-ctx.Done():
		return rotation.SecretProperties{}, ctx.Err()
	}
	return b.MemVault.Set(ctx, name, nv)
}

// TestVaultsAreSweptInParallel: while one vault's writes are held (throttled), another vault's due
// secret is rotated in the same sweep.
func TestVaultsAreSweptInParallel(t *testing.T) {
	slow := blockingVault{MemVault: rotationtest.NewMemVault("slow-vault"), gate: make(chan struct{})}
	fast := rotationtest.NewMemVault("fast-vault")
	prov := newCountingProvider(providers.ShapeGenerated)
	eng, err := rotation.New(rotation.Config{Vaults: []rotation.Vault{slow, fast}, Concurrency: 1,
		Providers: func(name string) (providers.Provider, bool) { return prov, name == "test" }})
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(5 * day)
	slow.Put("s", "initial", managedTags(), &exp)
	fast.Put("s", "initial", managedTags(), &exp)
	done := make(chan rotation.SweepReport, 1)
	go func() { done <- eng.Sweep(context.Background(), rotation.TriggerTimer, false) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(fast.Versions("s")) != 2 {
		if time.Now().After(deadline) {
			close(slow.gate)
			t.Fatal("the fast vault waited for the slow one")
		}
		time.Sleep(time.Millisecond)
	}
	if n := len(slow.Versions("s")); n != 1 {
		t.Fatalf("the held vault has %d versions", n)
	}
	close(slow.gate)
	rep := <-done
	if len(rep.Outcomes) != 2 || rep.Outcomes[0].Kind != rotation.KindRotated || rep.Outcomes[1].Kind != rotation.KindRotated ||
		rep.Outcomes[0].Vault != "fast-vault" || rep.Scanned != 2 {
		t.Fatalf("%+v", rep)
	}
}

// failingLocker refuses every lock with err.
type failingLocker struct{ err error }

func (l failingLocker) Lock(context.Context, string) (context.Context, func(), error) {
	return nil, nil, l.err
}

// TestLockFailuresAreClassifiedOnce: busy is transient (the trigger comes back), a lock the identity
// may not take is permanent (acknowledged and reported), through the one classification.
func TestLockFailuresAreClassifiedOnce(t *testing.T) {
	for _, tc := range []struct {
		err   error
		class rotation.Class
	}{
		{fmt.Errorf("%w (held by another instance)", rotation.ErrBusy), rotation.ClassTransient},
		{providers.Permanent(errors.New("acquire lease: 403 AuthorizationPermissionMismatch")), rotation.ClassPermanent},
		{errors.New("acquire lease: connection reset"), rotation.ClassTransient},
	} {
		f := newTimedFixture(t, providers.ShapeGenerated, func(c *rotation.Config) { c.Locker = failingLocker{tc.err} })
		f.seed("s", 5*day, managedTags())
		if o := f.manual("s", false); o.Kind != rotation.KindFailed || o.Class != tc.class || !strings.HasPrefix(o.Reason, "lock: ") {
			t.Errorf("%v: %+v, want %s", tc.err, o, tc.class)
		}
	}
}
