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
)

// These tests play a person who may edit the tags (and write versions) of one managed secret and
// nothing else, against the engine: a tag may choose among what the operator bound, never point
// kvrotator elsewhere, and never forge kvrotator's own state.

// edit replaces the tags of the latest version, as the tag-writer's portal or CLI does.
func (f *fixture) edit(name string, set map[string]string) {
	vs := f.vault.Versions(name)
	latest := vs[len(vs)-1]
	tags := map[string]string{}
	for k, v := range latest.Tags {
		tags[k] = v
	}
	for k, v := range set {
		if v == "" {
			delete(tags, k)
		} else {
			tags[k] = v
		}
	}
	if _, err := f.vault.UpdateTags(context.Background(), name, latest.Version, tags); err != nil {
		panic(err)
	}
}

func TestForgedStartMarkDoesNotResumeOrRotate(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 200*day, managedTags("rotation-state", "started=1")) // not due, "started" in 1970
	f.clock.Advance(time.Hour)
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(rep.Outcomes) != 0 || f.prov.creates != 0 || len(f.vault.Versions("s")) != 1 {
		t.Fatalf("a forged start mark made the sweep act: %+v (%d creates)", rep.Outcomes, f.prov.creates)
	}
	st := f.eng.Status(context.Background(), time.Time{})
	if len(st.Secrets) != 1 || strings.Contains(st.Secrets[0].Action, "interrupted") {
		t.Fatalf("status believes the forged mark: %+v", st.Secrets)
	}
}

func TestForgedRevocationIsNeverExecuted(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.prov.creds["victim-key"] = "someone else's key"
	f.seed("s", 200*day, managedTags("rotation-state", "revoke=victim-key@1"))
	f.clock.Advance(48 * time.Hour)
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(f.prov.revoked) != 0 || !slices.Contains(f.prov.live(), "victim-key") {
		t.Fatalf("the sweep revoked what a tag named: %v (%+v)", f.prov.revoked, rep.Outcomes)
	}
}

// TestForgedCredentialIdAndStateAfterARotation: kvrotator wrote the latest version (credential cred-1);
// the tag-writer then points CredentialId at someone else's key and forges a pending revocation of the
// credential the latest version really holds. The next rotation replaces cred-1 (kvrotator's record),
// and only cred-1 is ever revoked; the victim's key and the new credential live.
func TestForgedCredentialIdAndStateAfterARotation(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("s", 10*day, managedTags())
	if o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1}); o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	f.prov.creds["victim-key"] = "someone else's key"
	f.edit("s", map[string]string{"CredentialId": "victim-key", "rotation-state": "revoke=cred-1@1,victim-key@1"})

	f.clock.Advance(25 * time.Hour) // cred-0's grace is over
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if !slices.Equal(f.prov.revoked, []string{"cred-0"}) {
		t.Fatalf("revoked %v, want only cred-0 (which kvrotator replaced)", f.prov.revoked)
	}
	o := f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "s", Trigger: rotation.TriggerManual, Force: true})
	if o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	if st := f.state("s"); len(st.Pending) != 1 || st.Pending[0].CredentialID != "cred-1" {
		t.Fatalf("pending %+v, want cred-1 (what the replaced version held), not the tag's victim-key", st.Pending)
	}
	f.clock.Advance(25 * time.Hour)
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if !slices.Equal(f.prov.revoked, []string{"cred-0", "cred-1"}) || !slices.Contains(f.prov.live(), "victim-key") {
		t.Fatalf("revoked %v, live %v", f.prov.revoked, f.prov.live())
	}
	latest := f.vault.Versions("s")[len(f.vault.Versions("s"))-1]
	if !slices.Contains(f.prov.live(), latest.Tags["CredentialId"]) {
		t.Fatalf("the latest version's credential %s was revoked", latest.Tags["CredentialId"])
	}
}

func TestRevokeIsGivenTheRetiredAndCurrentValues(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("s", 10*day, managedTags())
	f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	f.clock.Advance(25 * time.Hour)
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(f.prov.revokeReqs) != 1 {
		t.Fatalf("revokes: %d", len(f.prov.revokeReqs))
	}
	r := f.prov.revokeReqs[0]
	if r.Retired.Reveal() != "initial" || r.Current.Reveal() != "value-of-cred-1" || r.CredentialID != "cred-1" {
		t.Fatalf("revoke request: retired %d bytes, current %d bytes, credential %q", r.Retired.Len(), r.Current.Len(), r.CredentialID)
	}
}

// TestPendingIsNotRevokedWhileItsVersionIsLatest: the pending revocation is journaled before the vault
// write; when that write fails, the old credential is still the latest version's and is never revoked.
func TestPendingIsNotRevokedWhileItsVersionIsLatest(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("s", 10*day, managedTags())
	f.vault.FailSet = errors.New("503 vault unavailable")
	if o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1}); o.Kind != rotation.KindFailed {
		t.Fatalf("%+v", o)
	}
	if st := f.state("s"); len(st.Pending) != 1 || st.Pending[0].Version != v1 {
		t.Fatalf("journal: %+v", st)
	}
	f.clock.Advance(48 * time.Hour) // cred-0's grace is over, but v1 (which holds it) is still the latest
	f.clock.Advance(11 * time.Minute)
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false) // the rotation fails again
	if len(f.prov.revoked) != 0 || f.vault.Versions("s")[len(f.vault.Versions("s"))-1].Version != v1 {
		t.Fatalf("revoked %v while the version holding it was the latest", f.prov.revoked)
	}
	f.vault.FailSet = nil
	f.clock.Advance(2 * time.Hour) // past the failure back-off
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	latest := f.vault.Versions("s")[len(f.vault.Versions("s"))-1]
	if latest.Version == v1 || !slices.Equal(f.prov.revoked, []string{"cred-0"}) || !slices.Contains(f.prov.live(), latest.Tags["CredentialId"]) {
		t.Fatalf("after the vault recovered: revoked %v, latest holds %s, live %v", f.prov.revoked, latest.Tags["CredentialId"], f.prov.live())
	}
}

func TestUnboundReferenceReadsAndContactsNothing(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.vault.Put("other-teams-secret", "not yours", nil, nil)
	v1 := f.seed("s", 10*day, managedTags("test-secret", "other-teams-secret", "test-url", "https://attacker.example"))
	for _, dry := range []bool{true, false} {
		o := f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "s", Version: v1, Trigger: rotation.TriggerManual, Force: true, DryRun: dry})
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent ||
			!strings.Contains(o.Reason, `test-secret="other-teams-secret": not bound`) || !strings.Contains(o.Reason, `test-url="https://attacker.example": not bound`) {
			t.Fatalf("dry run %v: %+v", dry, o)
		}
		if strings.Contains(fmt.Sprint(o), "not yours") {
			t.Fatal("the outcome carries the other secret's value")
		}
	}
	if f.prov.creates != 0 || len(f.prov.readSecrets) != 0 || len(f.vault.Versions("s")) != 1 {
		t.Fatalf("something happened: %d creates, read %d secrets", f.prov.creates, len(f.prov.readSecrets))
	}
	rep := f.eng.Status(context.Background(), time.Time{})
	if !strings.Contains(rep.Secrets[0].PolicyError, "not bound") {
		t.Fatalf("status: %+v", rep.Secrets[0])
	}
}

func TestBoundSecretIsReadAndNothingElse(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.vault.Put("shared-admin", "admin-value", nil, nil)
	v1 := f.seed("s", 10*day, managedTags("test-secret", "shared-admin", "test-url", "https://issuer.example"))
	if o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1}); o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	if !slices.Equal(f.prov.readSecrets, []string{"shared-admin=admin-value"}) {
		t.Fatalf("read %d secrets", len(f.prov.readSecrets))
	}
}

// TestProviderCannotReadUndeclaredSecrets: the reader a provider gets refuses any name it did not
// declare, even if it exists and another binding would allow it.
func TestProviderCannotReadUndeclaredSecrets(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.vault.Put("shared-admin", "admin-value", nil, nil)
	sneaky := &sneakyProvider{countingProvider: newCountingProvider(providers.ShapeGenerated)}
	f.prov = sneaky.countingProvider
	eng, err := rotation.New(rotation.Config{Vaults: []rotation.Vault{f.vault}, Clock: f.clock,
		Providers: func(string) (providers.Provider, bool) { return sneaky, true }})
	if err != nil {
		t.Fatal(err)
	}
	v1 := f.seed("s", 10*day, managedTags())
	o := eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	if o.Kind != rotation.KindFailed || !strings.Contains(o.Reason, "not a reference the provider declared") || sneaky.got != "" {
		t.Fatalf("%+v (read %d bytes)", o, len(sneaky.got))
	}
}

type sneakyProvider struct {
	*countingProvider
	got string
}

func (p *sneakyProvider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	v, err := req.Secrets.SecretValue(ctx, "shared-admin")
	if err != nil {
		return providers.Credential{}, err
	}
	p.got = v.Reveal()
	return providers.Credential{Value: providers.NewValue("x")}, nil
}

func TestNoBindingsMeansNoReferences(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	eng, err := rotation.New(rotation.Config{Vaults: []rotation.Vault{f.vault}, Clock: f.clock,
		Providers: func(string) (providers.Provider, bool) { return f.prov, true }})
	if err != nil {
		t.Fatal(err)
	}
	v1 := f.seed("s", 10*day, managedTags("test-secret", "shared-admin"))
	o := eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	if o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "no bindings are configured") || f.prov.creates != 0 {
		t.Fatalf("%+v", o)
	}
	v2 := f.seed("plain", 10*day, managedTags())
	if o := eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "plain", Version: v2}); o.Kind != rotation.KindRotated {
		t.Fatalf("a secret without references must rotate without bindings: %+v", o)
	}
}

// TestStateSurvivesTagDeletionAndPendingIsBounded: the journal is the authority (removing the mirror
// loses nothing); a secret rotated again and again stops at MaxPending replaced credentials instead of
// exhausting the issuer's key quota, and continues once they are revoked.
func TestStateSurvivesTagDeletionAndPendingIsBounded(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.seed("s", 10*day, managedTags("rotation-grace-hours", "2000"))
	manual := func() rotation.Outcome {
		return f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "s", Trigger: rotation.TriggerManual, Force: true})
	}
	for i := 0; i < rotation.MaxPending; i++ {
		if o := manual(); o.Kind != rotation.KindRotated {
			t.Fatalf("rotation %d: %+v", i, o)
		}
		f.edit("s", map[string]string{"rotation-state": ""})
	}
	if st := f.state("s"); len(st.Pending) != rotation.MaxPending {
		t.Fatalf("pending %d, want %d", len(st.Pending), rotation.MaxPending)
	}
	if o := manual(); o.Kind != rotation.KindSkipped || !strings.Contains(o.Reason, "waiting for revocation") || o.NextAt == nil || f.prov.created != rotation.MaxPending {
		t.Fatalf("one rotation too many: %+v (%d created)", o, f.prov.created)
	}
	f.clock.Advance(2001 * time.Hour)
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(f.prov.revoked) != rotation.MaxPending {
		t.Fatalf("revoked %d", len(f.prov.revoked))
	}
	if o := manual(); o.Kind != rotation.KindRotated {
		t.Fatalf("after the revocations: %+v", o)
	}
}

func TestMirrorFitsOneTag(t *testing.T) {
	st := rotation.State{From: strings.Repeat("f", 32), At: time.Unix(1700000000, 0), By: rotation.TriggerTimer}
	for i := range 40 {
		st.Pending = append(st.Pending, rotation.Pending{CredentialID: fmt.Sprintf("credential-%02d-%s", i, strings.Repeat("x", 20)), Due: time.Unix(1700086400, 0)})
	}
	m := st.Mirror()
	back, err := rotation.ParseState(m)
	if len(m) > 512 || !strings.Contains(m, "more=") || err != nil || len(back.Pending) == 0 || back.Pending[len(back.Pending)-1].CredentialID != st.Pending[39].CredentialID {
		t.Fatalf("mirror of %d characters: %q (%v)", len(m), m, err)
	}
}

// TestFullTagSetDropsOnlyTheMirror: with all 15 tags used by the owner (CredentialId among them), there
// is no room for the rotation-state mirror; the rotation succeeds without it (the journal has the
// state) instead of failing on Key Vault's tag limit.
func TestFullTagSetDropsOnlyTheMirror(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	tags := managedTags()
	for i := len(tags); i < 15; i++ {
		tags[fmt.Sprintf("owner-tag-%d", i)] = "x"
	}
	v1 := f.seed("s", 10*day, tags)
	o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	if o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	latest := f.vault.Versions("s")[1]
	if len(latest.Tags) != 15 || latest.Tags["CredentialId"] != "cred-1" || latest.Tags["rotation-state"] != "" {
		t.Fatalf("tags of the new version: %v", latest.Tags)
	}
	if st := f.state("s"); len(st.Pending) != 1 || st.Pending[0].CredentialID != "cred-0" {
		t.Fatalf("journal: %+v", st)
	}
}

func TestTagNamesInDifferentCaseAreRefused(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("s", 10*day, managedTags("test-url", "https://issuer.example", "TEST-URL", "https://attacker.example",
		"PROVIDERADDRESS", "a", "providerAddress", "b"))
	o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	if o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "tag test-url: set more than once in different letter case") ||
		!strings.Contains(o.Reason, "tag provideraddress: set more than once") || f.prov.creates != 0 {
		t.Fatalf("%+v", o)
	}
	if got := providers.Params(map[string]string{"b-Tag": "2", "B-tag": "1", "b-tag": "3"}).Get("B-TAG"); got != "1" {
		t.Fatalf("Get must be deterministic (first name in byte order): %q", got)
	}
}

// TestHandWrittenCredentialIsRevokedOnlyWithProof: a version written by hand names someone else's
// credential in CredentialId. kvrotator rotates it, but the provider is told the id is only a tag's
// word: it refuses, the entry is dropped and reported, the victim's credential lives.
func TestHandWrittenCredentialIsRevokedOnlyWithProof(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	f.prov.creds["victim-key"] = "someone else's key"
	v1 := f.seed("s", 10*day, managedTags("CredentialId", "victim-key", "rotation-grace-hours", "0"))
	if o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1}); o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	if st := f.state("s"); len(st.Pending) != 1 || !st.Pending[0].HandWritten {
		t.Fatalf("pending %+v, want the tag's id marked hand-written", st.Pending)
	}
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(f.prov.revoked) != 0 || !slices.Contains(f.prov.live(), "victim-key") || rep.Failed() != 1 {
		t.Fatalf("revoked %v; outcomes %+v", f.prov.revoked, rep.Outcomes)
	}
	if len(f.state("s").Pending) != 0 {
		t.Fatal("an unprovable hand-written entry must be dropped after it is reported, not retried forever")
	}
	// The honest case: the hand-written version's CredentialId is its value's credential: revoked.
	f.seed("t", 10*day, managedTags("rotation-grace-hours", "0")) // cred-0 holds "initial"
	f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "t", Trigger: rotation.TriggerManual, Force: true})
	f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if !slices.Equal(f.prov.revoked, []string{"cred-0"}) {
		t.Fatalf("revoked %v, want cred-0", f.prov.revoked)
	}
}

// TestChangedReferencesDropPendingRevocations: after a rotation, the tag-writer points the secret at
// another bound issuer; the replaced credential's id means nothing there and is never sent to it.
func TestChangedReferencesDropPendingRevocations(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("s", 10*day, managedTags("test-url", "https://issuer.example", "rotation-grace-hours", "1"))
	if o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1}); o.Kind != rotation.KindRotated {
		t.Fatalf("%+v", o)
	}
	f.edit("s", map[string]string{"test-url": "https://issuer2.example"})
	f.clock.Advance(2 * time.Hour)
	rep := f.eng.Sweep(context.Background(), rotation.TriggerTimer, false)
	if len(f.prov.revokeReqs) != 0 || rep.Failed() != 1 || !strings.Contains(rep.Outcomes[0].Reason, "references changed") {
		t.Fatalf("revoke calls %d; %+v", len(f.prov.revokeReqs), rep.Outcomes)
	}
	// The next rotation no longer trusts the journal's credential id for the latest version.
	o := f.eng.Rotate(context.Background(), rotation.Request{Vault: "myvault", Secret: "s", Trigger: rotation.TriggerManual, Force: true})
	if o.Kind != rotation.KindRotated || !f.state("s").Pending[0].HandWritten {
		t.Fatalf("%+v %+v", o, f.state("s"))
	}
}

func TestProviderTagCannotForgeLogLines(t *testing.T) {
	f := newFixture(t, providers.ShapeCreateRevoke)
	v1 := f.seed("s", 10*day, map[string]string{"rotation-provider": "test\noutcome=rotated vault=other"})
	o := f.eng.HandleEvent(context.Background(), rotation.Event{Type: rotation.EventNearExpiry, Vault: "myvault", Secret: "s", Version: v1})
	if strings.ContainsAny(o.Provider, "\n\r") || strings.ContainsAny(o.Reason, "\n\r") || o.Kind != rotation.KindFailed {
		t.Fatalf("%+v", o)
	}
}
