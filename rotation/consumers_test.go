package rotation_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// auditLog is a rotation.Usage over recorded reads, aggregated as the Log Analytics query does: the
// last read per reader, address and version within the time range.
type auditLog struct {
	mu     sync.Mutex
	events []rotation.Read // one per read: Last is its time
	err    error
	calls  int
}

func (a *auditLog) read(reader, secret, version string, at time.Time) {
	a.mu.Lock()
	a.events = append(a.events, rotation.Read{Reader: reader, Secret: secret, Version: version, Last: at, Address: "10.0.0.1"})
	a.mu.Unlock()
}

func (a *auditLog) Reads(_ context.Context, vault, secret string, from, to time.Time) ([]rotation.Read, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.err != nil {
		return nil, a.err
	}
	by := map[string]rotation.Read{}
	var keys []string
	for _, e := range a.events {
		if (secret != "" && e.Secret != secret) || e.Last.Before(from) || !e.Last.Before(to) {
			continue
		}
		k := e.Reader + "|" + e.Secret + "|" + e.Version
		r, ok := by[k]
		if !ok {
			keys = append(keys, k)
		}
		if e.Last.After(r.Last) {
			r = e
		}
		r.Count++
		by[k] = r
	}
	var out []rotation.Read
	for _, k := range keys {
		out = append(out, by[k])
	}
	return out, nil
}

// refresher is a rotation.Refresher that records what it was asked and fails on script.
type refresher struct {
	mu     sync.Mutex
	calls  []string
	fail   map[string]error // by consumer kind
	values []string         // signing keys it read
}

func (r *refresher) Refresh(ctx context.Context, c rotation.Consumer, info rotation.Refresh) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c.Kind+" "+info.Secret+" "+info.Version)
	if c.SigningSecret != "" {
		v, err := info.Secrets.SecretValue(ctx, c.SigningSecret)
		if err != nil {
			return err
		}
		r.values = append(r.values, v.Reveal())
		if _, err := info.Secrets.SecretValue(ctx, "shared-admin"); err == nil {
			return errors.New("a consumer's refresh could read a secret that is not its signing key")
		}
	}
	return r.fail[c.Kind]
}

const testSub = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers"

// newConsumerFixture is a fixture whose engine has consumers bound to every secret, a refresher and,
// when log is set, the audit log; grace 1 h, maximum grace 48 h.
func newConsumerFixture(t *testing.T, shape providers.Shape, log *auditLog) (*fixture, *refresher) {
	t.Helper()
	f := newFixture(t, shape)
	f.vault.Now = f.clock.Now // versions created on the engine's clock, as Key Vault's are
	pol, err := bindings.Parse([]byte(`{"bindings":[{"name":"test","secrets":["myvault/*"],"provider":"test",
		"allow":{"secret":["shared-admin"],"url":["https://issuer.example"]},
		"consumers":[{"kind":"app-service","resource":"`+testSub+`/Microsoft.Web/sites/app"},
		             {"kind":"webhook","url":"https://hooks.example.com/x","signingSecret":"hook-key"}]}]}`), "test bindings", nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := &refresher{fail: map[string]error{}}
	cfg := rotation.Config{Vaults: []rotation.Vault{f.vault}, Clock: f.clock, Publisher: f.pub, Journal: f.jour, Bindings: pol,
		Providers: func(name string) (providers.Provider, bool) { return f.prov, name == "test" }, VerifyTimeout: 2 * time.Second,
		Refresher: ref, Defaults: rotation.Defaults{Grace: time.Hour, GraceSet: true, MaxGrace: 48 * time.Hour}}
	if log != nil {
		cfg.Usage = log
	}
	eng, err := rotation.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.eng = eng
	exp := f.clock.Now().Add(365 * day)
	f.vault.Put("hook-key", "hook-signing-key-value", nil, &exp)
	f.vault.Put("shared-admin", "admin-value", nil, &exp)
	return f, ref
}

// TestConsumersAreRefreshedAfterARotation: every consumer bound to the secret is asked, each gets an
// outcome (published, and attached to the rotation's); a failed refresh fails nothing.
func TestConsumersAreRefreshedAfterARotation(t *testing.T) {
	f, ref := newConsumerFixture(t, providers.ShapeCreateRevoke, nil)
	f.seed("s", 5*day, managedTags())
	ref.fail["webhook"] = errors.New("connection refused")
	o := f.manual("s", false)
	if o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	if len(o.Followups) != 2 || o.Followups[0].Kind != rotation.KindRefreshed || o.Followups[1].Kind != rotation.KindRefreshFailed ||
		!strings.Contains(o.Followups[1].Reason, "picks the new version up on its own schedule") || o.Followups[0].NewVersion != o.NewVersion ||
		o.Followups[0].Consumer != "app-service "+testSub+"/Microsoft.Web/sites/app" {
		t.Fatalf("followups: %+v", o.Followups)
	}
	if want := []string{"app-service s " + o.NewVersion, "webhook s " + o.NewVersion}; !slices.Equal(ref.calls, want) {
		t.Fatalf("refresh calls %q, want %q", ref.calls, want)
	}
	if !slices.Equal(ref.values, []string{"hook-signing-key-value"}) {
		t.Fatalf("the webhook consumer did not get its signing key: %q", ref.values)
	}
	if got := f.pub.kinds(); got != "rotated,refreshed,refresh-failed" {
		t.Fatalf("published %s", got)
	}
	for _, fo := range o.Followups {
		if strings.Contains(fo.Reason, "value-of-") || strings.Contains(fo.Reason, "hook-signing-key-value") {
			t.Fatal("a refresh outcome carries a value")
		}
	}
	// A dry run and a skipped rotation refresh nothing.
	calls := len(ref.calls)
	if o := f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "s", Trigger: rotation.TriggerManual, Force: true, DryRun: true}); o.Kind != rotation.KindPlanned || len(o.Followups) != 0 {
		t.Fatalf("dry run: %+v", o)
	}
	f.sweep()
	if len(ref.calls) != calls {
		t.Fatalf("refreshed without a rotation: %q", ref.calls)
	}
}

// TestRevocationWaitsForReadersToMove: two applications read the secret before the rotation; the
// replaced credential is revoked only once both have read the new version.
func TestRevocationWaitsForReadersToMove(t *testing.T) {
	log := &auditLog{}
	f, _ := newConsumerFixture(t, providers.ShapeCreateRevoke, log)
	v0 := f.seed("s", 5*day, managedTags())
	log.read("app-a", "s", v0, f.clock.Now().Add(-2*time.Hour))
	log.read("app-b", "s", v0, f.clock.Now().Add(-time.Hour))
	o := f.manual("s", false)
	v1 := o.NewVersion
	f.clock.Advance(30 * time.Minute)
	log.read("app-a", "s", v1, f.clock.Now())

	f.clock.Advance(2 * time.Hour) // the grace is over
	rep := f.sweep()
	if len(f.prov.revoked) != 0 || len(rep.Outcomes) != 1 || rep.Outcomes[0].Kind != rotation.KindSkipped ||
		!strings.Contains(rep.Outcomes[0].Reason, "waits for 1 reader(s) that have not read the new version: app-b from 10.0.0.1 (last read version "+v0) ||
		len(rep.Outcomes[0].Laggards) != 1 || rep.Outcomes[0].Laggards[0].Reader != "app-b" {
		t.Fatalf("app-b has not moved: revoked %v, %+v", f.prov.revoked, rep.Outcomes)
	}
	if st := f.state("s"); len(st.Pending) != 1 || !slices.Equal(st.Pending[0].Waiting, []string{"app-b from 10.0.0.1"}) {
		t.Fatalf("journal: %+v", st.Pending)
	}
	s := f.statusOf("s")
	if len(s.Consumers) != 2 || s.Consumers[0].Reader != "app-b" || s.Consumers[0].Current || !s.Consumers[1].Current {
		t.Fatalf("status consumers: %+v", s.Consumers)
	}
	if f.enabled("s") != "++" {
		t.Fatalf("the replaced version was disabled before its readers moved: %s", f.enabled("s"))
	}

	log.read("app-b", "s", v1, f.clock.Now())
	f.clock.Advance(time.Minute)
	rep = f.sweep()
	if !slices.Equal(f.prov.revoked, []string{"cred-0"}) || rep.Outcomes[0].Kind != rotation.KindRevoked || f.enabled("s") != "-+" {
		t.Fatalf("both moved: revoked %v, %+v, %s", f.prov.revoked, rep.Outcomes, f.enabled("s"))
	}
}

// TestRevocationAtTheMaximumGraceGoesAhead: a reader that never moves holds the revocation until the
// maximum grace period, then it is revoked anyway and the reader named.
func TestRevocationAtTheMaximumGraceGoesAhead(t *testing.T) {
	log := &auditLog{}
	f, _ := newConsumerFixture(t, providers.ShapeCreateRevoke, log)
	v0 := f.seed("s", 5*day, managedTags())
	log.read("stuck-app", "s", v0, f.clock.Now().Add(-time.Hour))
	f.manual("s", false)
	f.clock.Advance(47 * time.Hour)
	f.sweep()
	if len(f.prov.revoked) != 0 {
		t.Fatal("revoked before the maximum grace period")
	}
	f.clock.Advance(time.Hour)
	rep := f.sweep()
	o := rep.Outcomes[0]
	if !slices.Equal(f.prov.revoked, []string{"cred-0"}) || o.Kind != rotation.KindRevoked ||
		!strings.Contains(o.Reason, "cred-0 revoked at the maximum grace period although 1 reader(s) had not moved: stuck-app") ||
		len(o.Laggards) != 1 {
		t.Fatalf("at the maximum grace: revoked %v, %+v", f.prov.revoked, o)
	}
}

// TestReadingTheOldVersionByIDAfterTheRotationIsNotMoving: an application that fetched the new version
// but then reads the old one by its id still uses the old credential.
func TestReadingTheOldVersionByIDAfterTheRotationIsNotMoving(t *testing.T) {
	log := &auditLog{}
	f, _ := newConsumerFixture(t, providers.ShapeCreateRevoke, log)
	v0 := f.seed("s", 5*day, managedTags())
	log.read("pinned-app", "s", v0, f.clock.Now().Add(-time.Hour))
	v1 := f.manual("s", false).NewVersion
	f.clock.Advance(10 * time.Minute)
	log.read("pinned-app", "s", v1, f.clock.Now())
	f.clock.Advance(10 * time.Minute)
	log.read("pinned-app", "s", v0, f.clock.Now())
	f.clock.Advance(2 * time.Hour)
	f.sweep()
	if len(f.prov.revoked) != 0 {
		t.Fatal("revoked while an application reads the old version by id")
	}
	// Reading the latest without naming a version (what most applications do) counts as moving.
	log.read("pinned-app", "s", "", f.clock.Now())
	f.clock.Advance(time.Minute)
	f.sweep()
	if len(f.prov.revoked) != 1 {
		t.Fatal("not revoked after the application read the latest version")
	}
}

// TestNobodyReadsOrNoAuditLog: without readers the revocation runs at the grace period; without an
// audit log configured the behaviour is the time-based grace, unchanged; an unreadable audit log holds
// the revocation until the maximum grace.
func TestNobodyReadsOrNoAuditLog(t *testing.T) {
	log := &auditLog{}
	f, _ := newConsumerFixture(t, providers.ShapeCreateRevoke, log)
	f.seed("s", 5*day, managedTags())
	f.manual("s", false)
	f.clock.Advance(time.Hour)
	f.sweep()
	if len(f.prov.revoked) != 1 || log.calls == 0 {
		t.Fatalf("nobody read it: revoked %v, %d audit queries", f.prov.revoked, log.calls)
	}

	g, _ := newConsumerFixture(t, providers.ShapeCreateRevoke, nil)
	g.seed("s", 5*day, managedTags())
	g.manual("s", false)
	g.clock.Advance(time.Hour)
	g.sweep()
	if len(g.prov.revoked) != 1 || g.statusOf("s").Consumers != nil {
		t.Fatalf("no audit log: revoked %v", g.prov.revoked)
	}

	broken := &auditLog{err: errors.New("403 InsufficientAccessError")}
	h, _ := newConsumerFixture(t, providers.ShapeCreateRevoke, broken)
	h.seed("s", 5*day, managedTags())
	h.manual("s", false)
	h.clock.Advance(2 * time.Hour)
	rep := h.sweep()
	if len(h.prov.revoked) != 0 || !strings.Contains(rep.Outcomes[0].Reason, "the audit log could not be read: 403 InsufficientAccessError") {
		t.Fatalf("unreadable audit log: revoked %v, %+v", h.prov.revoked, rep.Outcomes)
	}
	if rep := h.eng.Status(context.Background(), time.Time{}); len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "audit log") {
		t.Fatalf("status errors: %v", rep.Errors)
	}
	h.clock.Advance(46 * time.Hour)
	rep = h.sweep()
	if len(h.prov.revoked) != 1 || !strings.Contains(rep.Outcomes[0].Reason, "revoked at the maximum grace period although the audit log could not be read") {
		t.Fatalf("unreadable audit log at the maximum grace: revoked %v, %+v", h.prov.revoked, rep.Outcomes)
	}
}
