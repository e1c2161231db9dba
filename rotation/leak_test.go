package rotation_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

func (f *fixture) leak(value string, dryRun bool) rotation.LeakReport {
	rep, err := f.eng.Leak(context.Background(), rotation.LeakRequest{Value: providers.NewValue(value), DryRun: dryRun, Source: "test"})
	if err != nil {
		panic(err)
	}
	return rep
}

// TestLeakOfTheCurrentValue: a dry run says what it would do and changes nothing; the response rotates
// at once (outside any timing rule) and revokes the leaked credential without grace, disabling its version.
func TestLeakOfTheCurrentValue(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 200*day, managedTags("rotation-grace-hours", "24", "rotation-min-interval", "30d"))
	f.seed("other", 200*day, managedTags())
	f.vault.Put("other", "unrelated", managedTags(), nil)

	plan := f.leak("initial", true)
	if len(plan.Outcomes) != 1 || plan.Outcomes[0].Secret != "s" || plan.Outcomes[0].Kind != rotation.KindPlanned || !strings.Contains(plan.Outcomes[0].Reason, "would rotate 1 time(s)") ||
		!strings.Contains(plan.Outcomes[0].Reason, "revoke the leaked credential at once") {
		t.Fatalf("dry run: %+v", plan.Outcomes)
	}
	if f.prov.Created() != 0 || len(f.vault.Versions("s")) != 1 {
		t.Fatal("the dry run changed something")
	}

	rep := f.leak("initial", false)
	var o rotation.Outcome
	for _, x := range rep.Outcomes {
		if x.Secret == "s" {
			o = x
		}
	}
	if o.Kind != rotation.KindEmergency || o.Class != "" || !strings.Contains(o.Reason, "the value is in the latest version of myvault/s") ||
		!strings.Contains(o.Reason, "rotated to version") || !strings.Contains(o.Reason, "revoked cred-0") {
		t.Fatalf("emergency: %+v", o)
	}
	if !slices.Contains(f.prov.revoked, "cred-0") || f.enabled("s") != "-+" {
		t.Fatalf("revoked %v, versions %s: the leaked credential must die now, its version disabled", f.prov.revoked, f.enabled("s"))
	}
	for _, x := range rep.Outcomes {
		if strings.Contains(x.Reason, "initial") {
			t.Fatal("an outcome echoes the value")
		}
	}
	if st := f.statusOf("s"); len(st.Emergencies) != 1 || st.OpenEmergency || !strings.Contains(st.Emergencies[0].Done, "revoked cred-0") ||
		st.Emergencies[0].Source != "test" {
		t.Fatalf("status: %+v", st.Emergencies)
	}
	// Reported twice: the value is nowhere readable any more.
	if again := f.leak("initial", false); again.Found() {
		t.Fatalf("the same leak again: %+v", again.Outcomes)
	}
	if !strings.Contains(f.pub.kinds(), "emergency") {
		t.Fatalf("published %s", f.pub.kinds())
	}
}

// TestLeakBySHA256AndUnknownValue: the digest finds the same secret; an unknown value or digest
// finds nothing and changes nothing; a malformed digest is an error.
func TestLeakBySHA256AndUnknownValue(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 200*day, managedTags())
	if rep := f.leak("not-a-value-we-hold", false); rep.Found() || f.prov.Created() != 0 {
		t.Fatalf("unknown value: %+v", rep.Outcomes)
	}
	sum := sha256.Sum256([]byte("initial"))
	rep, err := f.eng.Leak(context.Background(), rotation.LeakRequest{SHA256: strings.ToUpper(hex.EncodeToString(sum[:])), DryRun: true})
	if err != nil || len(rep.Outcomes) != 1 || rep.Outcomes[0].Secret != "s" {
		t.Fatalf("by digest: %+v %v", rep.Outcomes, err)
	}
	if _, err := f.eng.Leak(context.Background(), rotation.LeakRequest{SHA256: "abc"}); !errors.Is(err, rotation.ErrBadDigest) {
		t.Fatalf("bad digest: %v", err)
	}
}

// TestLeakOfAReplacedValue: the value of a version already replaced, whose credential waits for its
// grace: revoked now, no new rotation.
func TestLeakOfAReplacedValue(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 5*day, managedTags("rotation-grace-hours", "48"))
	f.sweep() // cred-0 → cred-1, cred-0 pending for 48 h
	rep := f.leak("initial", false)
	if len(rep.Outcomes) != 1 || !strings.Contains(rep.Outcomes[0].Reason, "replaced version") || f.prov.Created() != 1 ||
		!slices.Equal(f.prov.revoked, []string{"cred-0"}) {
		t.Fatalf("%+v; created %d, revoked %v", rep.Outcomes, f.prov.Created(), f.prov.revoked)
	}
}

// TestLeakOfATwoSlotKey: both slots are regenerated, so no key that existed when the value leaked
// survives; the back-to-back guard does not stop an emergency.
func TestLeakOfATwoSlotKey(t *testing.T) {
	for _, shape := range []providers.Shape{providers.ShapeTwoSlot, providers.ShapeAlternating} {
		t.Run(string(shape), func(t *testing.T) {
			f := newFixture(t, shape)
			f.seed("s", 200*day, managedTags())
			rep := f.leak("initial", false)
			if len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindEmergency || f.prov.Created() != 2 || len(f.vault.Versions("s")) != 3 ||
				strings.Count(rep.Outcomes[0].Reason, "rotated to version") != 2 {
				t.Fatalf("%+v; created %d", rep.Outcomes, f.prov.Created())
			}
		})
	}
}

// TestLeakSkipsTheWaitForReaders: readers that have not moved hold a normal revocation, not this one.
func TestLeakSkipsTheWaitForReaders(t *testing.T) {
	log := &auditLog{}
	f, _ := newConsumerFixture(t, providers.ShapeCreateRevoke, log)
	v0 := f.seed("s", 5*day, managedTags())
	log.read("slow-app", "s", v0, f.clock.Now().Add(-time.Hour))
	if rep := f.leak("initial", false); len(rep.Outcomes) != 1 || !slices.Equal(f.prov.revoked, []string{"cred-0"}) {
		t.Fatalf("%+v; revoked %v", rep.Outcomes, f.prov.revoked)
	}
}

// TestLeakWhilePaused: found and reported; nothing rotated.
func TestLeakWhilePaused(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 200*day, managedTags("rotation-pause", "true"))
	rep := f.leak("initial", false)
	if len(rep.Outcomes) != 1 || !strings.Contains(rep.Outcomes[0].Reason, "nothing done: rotation is paused") || f.prov.Created() != 0 {
		t.Fatalf("%+v", rep.Outcomes)
	}
	if st := f.statusOf("s"); !st.OpenEmergency || !st.Overdue {
		t.Fatalf("an unanswered leak is not shown open: %+v", st)
	}
}

// TestSuspiciousAccess: the secrets a suspicious identity or address read in the window are planned by
// default and rotated with Rotate; other readers' secrets are left alone; no audit log, no answer.
func TestSuspiciousAccess(t *testing.T) {
	log := &auditLog{}
	f, _ := newConsumerFixture(t, providers.ShapeCreateRevoke, log)
	v0 := f.seed("s", 200*day, managedTags())
	f.seed("t", 200*day, managedTags())
	exp := f.clock.Now().Add(200 * day)
	f.vault.Put("by-hand", "manual-value", nil, &exp)
	now := f.clock.Now()
	log.read("attacker-oid", "s", v0, now.Add(-30*time.Minute))
	log.read("attacker-oid", "by-hand", "", now.Add(-20*time.Minute))
	log.read("good-app", "t", "", now.Add(-10*time.Minute))
	log.events = append(log.events, rotation.Read{Reader: "other", Address: "203.0.113.9", Secret: "t", Last: now.Add(-3 * time.Hour)}) // outside the window
	req := rotation.SuspiciousRequest{Vault: "myvault", Identities: []string{"ATTACKER-OID"}, Addresses: []string{"203.0.113.9"},
		From: now.Add(-time.Hour), To: now.Add(time.Minute), Source: "Defender KV_SuspiciousIPAccess"}

	rep, err := f.eng.Suspicious(context.Background(), req)
	if err != nil || len(rep.Outcomes) != 2 || f.prov.Created() != 0 {
		t.Fatalf("plan: %+v %v", rep.Outcomes, err)
	}
	for _, o := range rep.Outcomes {
		switch o.Secret {
		case "s":
			if o.Kind != rotation.KindPlanned || !strings.Contains(o.Reason, "attacker-oid from 10.0.0.1 (Defender KV_SuspiciousIPAccess) read myvault/s version "+v0) ||
				!strings.Contains(o.Reason, "KVROTATOR_DEFENDER_ROTATE") {
				t.Fatalf("plan for s: %+v", o)
			}
		case "by-hand":
			if !strings.Contains(o.Reason, "not managed by kvrotator: rotate it by hand") {
				t.Fatalf("unmanaged: %+v", o)
			}
		default:
			t.Fatalf("unexpected: %+v", o)
		}
	}
	req.Rotate = true
	rep, err = f.eng.Suspicious(context.Background(), req)
	if err != nil || f.prov.Created() != 1 || !slices.Equal(f.prov.revoked, []string{"cred-0"}) || len(f.vault.Versions("t")) != 1 {
		t.Fatalf("rotate: %+v %v; created %d revoked %v", rep.Outcomes, err, f.prov.Created(), f.prov.revoked)
	}
	if st := f.statusOf("s"); len(st.Emergencies) != 1 {
		t.Fatalf("not recorded: %+v", st.Emergencies)
	}

	g := newFixture(t, providers.ShapeCreateRevoke)
	if _, err := g.eng.Suspicious(context.Background(), rotation.SuspiciousRequest{Vault: "myvault"}); !errors.Is(err, rotation.ErrNoAuditLog) {
		t.Fatalf("no audit log: %v", err)
	}
}
