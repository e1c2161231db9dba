package rotation_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// enabled lists which of a secret's versions are enabled, oldest first ("+" enabled, "-" disabled).
func (f *fixture) enabled(name string) string {
	var b strings.Builder
	for _, v := range f.vault.Versions(name) {
		if v.Enabled {
			b.WriteByte('+')
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()
}

func (f *fixture) sweep() rotation.SweepReport {
	return f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
}

// TestOldVersionIsDisabledAfterRevocation: a create-then-revoke secret's replaced version stays
// readable through the grace period and is disabled in the sweep that revokes its credential.
func TestOldVersionIsDisabledAfterRevocation(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "2"))
	f.sweep()
	if got := f.enabled("s"); got != "++" {
		t.Fatalf("after the rotation: %s, want ++ (the old version is readable during the grace period)", got)
	}
	f.clock.Advance(time.Hour)
	f.sweep()
	if got := f.enabled("s"); got != "++" {
		t.Fatalf("within the grace period: %s", got)
	}
	if s := f.statusOf("s"); s.NextAt == nil || !s.NextAt.Equal(f.clock.Now().Add(time.Hour)) {
		t.Fatalf("status: next at %v, want the revocation", s.NextAt)
	}
	f.clock.Advance(time.Hour)
	rep := f.sweep()
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked || !strings.Contains(rep.Outcomes[0].Reason, "disabled the replaced version") {
		t.Fatalf("after the grace period: %+v", rep.Outcomes)
	}
	if got := f.enabled("s"); got != "-+" || len(f.prov.revoked) != 1 {
		t.Fatalf("after the revocation: %s, revoked %v; want -+ and cred-0", got, f.prov.revoked)
	}
	if st := f.state("s"); len(st.Retire) != 0 || len(st.Pending) != 0 {
		t.Fatalf("state keeps work: %+v", st)
	}
	if rep := f.sweep(); len(rep.Outcomes) != 0 || f.vault.Disables != 1 {
		t.Fatalf("a later sweep: %+v, %d disables", rep.Outcomes, f.vault.Disables)
	}
}

// TestTwoSlotDisablesTheVersionWhoseSlotIsRegenerated: the second rotation regenerates the slot the
// first version held; that version is disabled as the new one is written, the previous one (still
// valid) is not.
func TestTwoSlotDisablesTheVersionWhoseSlotIsRegenerated(t *testing.T) {
	for _, shape := range []providers.Shape{providers.ShapeTwoSlot, providers.ShapeAlternating} {
		t.Run(string(shape), func(t *testing.T) {
			f := newFixture(t, shape)
			f.seed("s", 200*day, managedTags("rotation-grace-hours", "1"))
			if o := f.manual("s", false); o.Kind != rotation.KindRotated || strings.Contains(o.Reason, "disabled") {
				t.Fatalf("first: %+v", o)
			}
			if got := f.enabled("s"); got != "++" {
				t.Fatalf("after one rotation: %s (the first version's slot is still valid)", got)
			}
			f.clock.Advance(2 * time.Hour)
			o := f.manual("s", false)
			if o.Kind != rotation.KindRotated || !strings.Contains(o.Reason, "disabled the replaced version "+f.vault.Versions("s")[0].Version) {
				t.Fatalf("second: %+v", o)
			}
			if got := f.enabled("s"); got != "-++" {
				t.Fatalf("after two rotations: %s, want -++", got)
			}
			if st := f.state("s"); len(st.Retire) != 0 {
				t.Fatalf("state: %+v", st)
			}
		})
	}
}

// TestGeneratedValueIsDisabledAfterItsGrace: a generated value has nothing to revoke; its version
// is disabled once the grace period is over.
func TestGeneratedValueIsDisabledAfterItsGrace(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "3"))
	f.sweep()
	f.clock.Advance(2 * time.Hour)
	f.sweep()
	if got := f.enabled("s"); got != "++" {
		t.Fatalf("within the grace period: %s", got)
	}
	f.clock.Advance(time.Hour)
	rep := f.sweep()
	if got := f.enabled("s"); got != "-+" || len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRevoked {
		t.Fatalf("after the grace period: %s, %+v", got, rep.Outcomes)
	}
}

// TestKeepingOldVersions: the tag, and the app-wide default, turn it off; a bad value is a named error.
func TestKeepingOldVersions(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "0", "rotation-disable-old-versions", "false"))
	f.sweep()
	f.sweep()
	if got := f.enabled("s"); got != "++" || f.vault.Disables != 0 {
		t.Fatalf("tag false: %s", got)
	}

	g := newTimedFixture(t, providers.ShapeGenerated, func(c *rotation.Config) {
		c.Defaults = rotation.Defaults{Grace: 0, GraceSet: true, KeepOldVersions: true}
	})
	g.seed("s", 5*day, managedTags())
	g.seed("t", 5*day, managedTags("rotation-disable-old-versions", "true"))
	g.sweep()
	g.sweep()
	if a, b := g.enabled("s"), g.enabled("t"); a != "++" || b != "-+" {
		t.Fatalf("default keep: s %s (want ++), t with the tag %s (want -+)", a, b)
	}

	_, err := rotation.ParsePolicy(managedTags("rotation-disable-old-versions", "sometimes"), rotation.Defaults{NearExpiryLead: 30 * day, Validity: 90 * day})
	var ce *providers.ConfigError
	if !errors.As(err, &ce) || ce.Tag != "rotation-disable-old-versions" {
		t.Fatalf("bad value: %v", err)
	}
}

// TestLatestVersionIsNeverDisabled: even a journal entry naming the latest version leaves it enabled.
func TestLatestVersionIsNeverDisabled(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	v := f.seed("s", 200*day, managedTags())
	st := rotation.State{Retire: []rotation.Retire{{Version: v, Due: f.clock.Now().Add(-time.Hour)}}}
	if err := f.jour.Save(context.Background(), "myvault", "s", st); err != nil {
		t.Fatal(err)
	}
	f.sweep()
	if got := f.enabled("s"); got != "+" || len(f.state("s").Retire) != 0 {
		t.Fatalf("versions %s, state %+v: want + and the entry dropped", got, f.state("s"))
	}
	if f.vault.Disables != 0 {
		t.Fatalf("%d disables: the entry for the latest version was acted on", f.vault.Disables)
	}
}

// TestFailedDisableIsRetriedAndParked: a transient failure stays for the next sweep; a refusal is
// parked with back-off and reported; neither touches the credentials.
func TestFailedDisableIsRetriedAndParked(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "0"))
	f.vault.FailDisable = errors.New("503 service unavailable")
	// With no grace the replaced version is disabled as the new one is written: a failure there is
	// logged and leaves the rotation done.
	if rep := f.sweep(); len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindRotated {
		t.Fatalf("rotation: %+v", rep.Outcomes)
	}
	rep := f.sweep()
	if rep.Failed() != 1 || !strings.Contains(rep.Outcomes[0].Reason, "disable version") {
		t.Fatalf("transient: %+v", rep.Outcomes)
	}
	f.vault.FailDisable = providers.Permanent(errors.New("403 forbidden"))
	rep = f.sweep()
	if rep.Failed() != 1 || !strings.Contains(rep.Outcomes[0].Reason, "refused 1 times") {
		t.Fatalf("refused: %+v", rep.Outcomes)
	}
	calls := f.vault.Disables
	f.sweep()
	if f.vault.Disables != calls {
		t.Fatal("a parked disable was retried at once")
	}
	f.vault.FailDisable = nil
	f.clock.Advance(11 * time.Minute)
	f.sweep()
	if got := f.enabled("s"); got != "-+" || len(f.state("s").Retire) != 0 {
		t.Fatalf("after the back-off: %s, %+v", got, f.state("s"))
	}
}

// TestPausedDisablesNothing: paused secrets keep every version as it is.
func TestPausedDisablesNothing(t *testing.T) {
	f := newFixture(t, providers.ShapeGenerated)
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "1"))
	f.sweep()
	f.edit("s", map[string]string{"rotation-pause": "true"})
	f.clock.Advance(2 * time.Hour)
	f.sweep()
	if got := f.enabled("s"); got != "++" || f.vault.Disables != 0 {
		t.Fatalf("paused: %s", got)
	}
}

// TestRevocationSurvivesAVersionDisabledByHand: a person disabled the replaced version before its
// grace was over; the revocation still runs (the provider gets no retired value) and nothing sticks.
func TestRevocationSurvivesAVersionDisabledByHand(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "1"))
	f.sweep()
	f.clock.Advance(time.Hour)
	f.sweep() // cred-0 revoked, the first version disabled
	if o := f.manual("s", true); o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	f.vault.SetEnabled("s", f.vault.Versions("s")[1].Version, false)
	f.clock.Advance(time.Hour)
	rep := f.sweep()
	if rep.Failed() != 0 || len(f.prov.revoked) != 2 || f.enabled("s") != "--+" || len(f.state("s").Pending) != 0 || len(f.state("s").Retire) != 0 {
		t.Fatalf("%+v; revoked %v; state %+v", rep.Outcomes, f.prov.revoked, f.state("s"))
	}
}

// TestVersionWrittenByHandAfterAFailedWriteIsNotCredited: a rotation's write fails (nothing applied);
// a minute later a person writes a version by hand. kvrotator must not take it for the version it was
// writing (which would credit it with the new credential and revoke what it really holds).
func TestVersionWrittenByHandAfterAFailedWriteIsNotCredited(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.vault.Now = f.clock.Now
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "1"))
	f.vault.FailSet = providers.Permanent(errors.New("403 forbidden"))
	if o := f.manual("s", false); o.Kind != rotation.KindFailed {
		t.Fatalf("%+v", o)
	}
	f.vault.FailSet = nil
	f.clock.Advance(time.Minute)
	exp := f.clock.Now().Add(200 * day)
	f.vault.Put("s", "initial", managedTags(), &exp) // the old credential, re-written by a person
	f.clock.Advance(2 * time.Hour)
	f.sweep()
	f.sweep()
	if s := f.statusOf("s"); s.LastRotated != nil {
		t.Fatalf("the hand-written version was credited to kvrotator: %+v", s)
	}
	if len(f.prov.revoked) != 0 {
		t.Fatalf("revoked %v: the credential the latest version holds", f.prov.revoked)
	}
}
