package awsiam_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/awsiam"
	"github.com/kvrotator/kvrotator/providers/awsiam/iamtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/rotation"
)

// End to end: the real engine, the keyvault adapter and the Key Vault emulator over HTTPS, the provider
// with its Query client, and the local IAM and STS (iamtest).

// e2e is a vault holding the admin key and the app's key, and the AWS account they belong to.
type e2e struct {
	*fixture
	h       *providertest.Harness
	version string // the app secret's first version
}

// operatorBindings is the operator's policy for these tests, as it would be written in
// KVROTATOR_BINDINGS: the app secrets of the vault may use the admin key below, for the app user of the
// account, through the local IAM/STS at url (in production AWS's own endpoints need no binding).
func operatorBindings(t *testing.T, url string) *bindings.Policy {
	t.Helper()
	return parseBindings(t, `{"bindings":[{"name":"aws-apps","secrets":["`+providertest.VaultName+`/app-*"],"provider":"aws-iam",
		"allow":{"secret":["aws-admin","weak-admin","no-such-secret"],"account":["123456789012"],"login":["app-orders"],"url":["`+url+`"]}}]}`)
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
// the 30-day near-expiry window) with a 1-hour grace period. extra changes tags ("" deletes one).
func newE2E(t *testing.T, o *providertest.Options, extra ...string) *e2e {
	t.Helper()
	return newE2EWith(t, newProvider(), o, extra...)
}

func newE2EWith(t *testing.T, p *awsiam.Provider, o *providertest.Options, extra ...string) *e2e {
	t.Helper()
	f := newFixture(t)
	opts := providertest.Options{}
	if o != nil {
		opts = *o
	}
	if opts.Bindings == nil {
		opts.Bindings = operatorBindings(t, f.srv.URL)
	}
	h := providertest.New(t, awsiam.Name, p, &opts)
	h.Seed(adminSecret, f.admin.Pair(), nil, 365*24*time.Hour)
	tags := map[string]string{
		"rotation-provider":    awsiam.Name,
		awsiam.TagUser:         appUser,
		awsiam.TagAccount:      account,
		awsiam.TagAdminSecret:  adminSecret,
		awsiam.TagIAMURL:       f.srv.URL,
		awsiam.TagSTSURL:       f.srv.URL,
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
	v := h.Seed(secretName, f.current.Pair(), tags, 5*24*time.Hour)
	return &e2e{fixture: f, h: h, version: v}
}

// idem is the idempotency key of a rotation of the first version.
func (e *e2e) idem() string {
	return rotation.IdempotencyKey(providertest.VaultName, secretName, e.version)
}

// label is the label a rotation of the first version gives its key.
func (e *e2e) label() string {
	return "kvrotator " + providertest.VaultName + "/" + secretName + " created " + e.idem()
}

// cleanOutcome fails if an outcome (its reason, its error, its JSON event) contains a secret.
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

// latestKey is the key the vault's latest version holds, checked against its CredentialId tag.
func (e *e2e) latestKey(t *testing.T) iamtest.Key {
	t.Helper()
	latest := e.h.Latest(secretName)
	pair, why := awsiam.ParseKeyPair(latest.Value.Reveal())
	if why != "" {
		t.Fatalf("the latest value is not a key pair: %s", why)
	}
	if latest.Tags["CredentialId"] != pair.ID {
		t.Fatalf("CredentialId %s, the value holds %s", latest.Tags["CredentialId"], pair.ID)
	}
	k, ok := e.srv.Key(pair.ID)
	if !ok || k.Secret != pair.Secret || k.User != appUser {
		t.Fatal("the vault's latest version does not hold a key of the app user")
	}
	return k
}

// wantRotated checks that the vault's latest version holds a working new key of the app user,
// labelled for the first version's idempotency key, that the old key still works (grace), and that the
// user holds exactly those two keys.
func (e *e2e) wantRotated(t *testing.T, o rotation.Outcome) iamtest.Key {
	t.Helper()
	if o.Kind != rotation.KindRotated {
		t.Fatalf("outcome %s (%s): %s", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.secrets()...)
	k := e.latestKey(t)
	if !e.srv.Works(k.ID, k.Secret) {
		t.Fatal("the vault's key does not work")
	}
	if v, _ := e.srv.Tag(appUser, k.ID); v != e.label() {
		t.Errorf("new key labelled %q, want %q", v, e.label())
	}
	if !e.srv.Works(e.current.ID, e.current.Secret) {
		t.Error("the old key stopped working before its grace period")
	}
	if ids := keyIDs(e.srv.Keys(appUser)); len(ids) != 2 {
		t.Errorf("the user holds %v, want the old and the new key", ids)
	}
	if _, ok := e.srv.Tag(appUser, awsiam.IntentTag); ok {
		t.Error("the creation intent is still tagged")
	}
	if n := e.h.Versions(secretName); n != 2 {
		t.Errorf("%d versions, want 2", n)
	}
	return k
}

// wantUnchanged checks that the vault still holds only the first version and the user only its key.
func (e *e2e) wantUnchanged(t *testing.T) {
	t.Helper()
	if n := e.h.Versions(secretName); n != 1 {
		t.Errorf("%d versions, want 1: the vault changed", n)
	}
	if latest := e.h.Latest(secretName); latest.Value.Reveal() != e.current.Pair() || latest.Version != e.version {
		t.Error("the vault's latest version changed")
	}
	if ids := keyIDs(e.srv.Keys(appUser)); len(ids) != 1 || ids[0] != e.current.ID {
		t.Errorf("the user holds %v, want only %s: an orphan, or the current key is gone", ids, e.current.ID)
	}
	if k, _ := e.srv.Key(e.current.ID); k.Status != "Active" {
		t.Error("the current key was deactivated")
	}
}

// sweepOne runs a sweep and returns its only outcome.
func (e *e2e) sweepOne(t *testing.T) rotation.Outcome {
	t.Helper()
	rep := e.h.Sweep()
	if len(rep.Outcomes) != 1 {
		t.Fatalf("sweep outcomes %+v", rep.Outcomes)
	}
	return rep.Outcomes[0]
}

func TestEndToEndTriggers(t *testing.T) {
	for _, trigger := range []string{"event", "sweep", "manual"} {
		t.Run(trigger, func(t *testing.T) {
			e := newE2E(t, nil)
			var o rotation.Outcome
			switch trigger {
			case "event":
				o = e.h.Event(secretName, e.version)
			case "sweep":
				o = e.sweepOne(t)
			case "manual":
				o = e.h.Manual(secretName, false)
			}
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
		t.Errorf("the dry run made %d calls to AWS", n)
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
				keys := e.srv.Keys(appUser)
				if len(keys) != 2 {
					t.Fatal("the interrupted rotation left no key behind: the test proves nothing")
				}
				first := keys[1]
				var o rotation.Outcome
				if resume == "event" {
					o = e.h.Event(secretName, e.version)
				} else {
					o = e.sweepOne(t)
				}
				k := e.wantRotated(t, o)
				if k.ID == first.ID {
					t.Fatal("the vault holds the interrupted attempt's key, whose secret was lost with it")
				}
				if _, ok := e.srv.Key(first.ID); ok {
					t.Error("the interrupted attempt's key is still there")
				}
				if _, ok := e.srv.Tag(appUser, first.ID); ok {
					t.Error("the interrupted attempt's label is still there")
				}
				if e.srv.Created() != 2 {
					t.Errorf("%d keys created, want 2 (the interrupted one, deleted, and the vault's)", e.srv.Created())
				}
			})
		}
	}
}

// CreateAccessKey's answer is lost (the key exists, the secret is gone, nothing labels it): the
// engine's retry of Create finds the key by the intent tag, deletes it and creates another.
func TestEndToEndLostCreateAnswer(t *testing.T) {
	e := newE2E(t, nil)
	e.srv.LoseNext("CreateAccessKey", 1)
	k := e.wantRotated(t, e.h.Event(secretName, e.version))
	if e.srv.Created() != 2 || e.srv.Count("CreateAccessKey") != 2 {
		t.Errorf("%d keys created in %d calls, want 2 and 2 (no retry of CreateAccessKey within the call)", e.srv.Created(), e.srv.Count("CreateAccessKey"))
	}
	if ids := keyIDs(e.srv.Keys(appUser)); len(ids) != 2 || !slices.Contains(ids, e.current.ID) || !slices.Contains(ids, k.ID) {
		t.Errorf("the user holds %v", ids)
	}
}

// The new key cannot be labelled (the admin may not tag the user): it is deleted at once, and the
// failure names the missing permission.
func TestEndToEndLabelRefused(t *testing.T) {
	e := newE2E(t, nil)
	e.srv.Inject(iamtest.Fault{Action: "TagUser", Skip: 1, Count: 10, Status: http.StatusForbidden, Code: "AccessDenied"})
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "may not call iam:TagUser") {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.secrets()...)
	e.wantUnchanged(t)
	if e.srv.Created() != 1 {
		t.Errorf("%d keys created", e.srv.Created())
	}
}

func TestEndToEndOldKeyRevokedAfterGrace(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", interrupted), func(t *testing.T) {
			e := newE2E(t, nil)
			k := e.wantRotated(t, e.sweepOne(t))

			// Within the grace period: the old key stays active.
			e.h.Clock.Advance(30 * time.Minute)
			if rep := e.h.Sweep(); len(rep.Outcomes) != 0 {
				t.Fatalf("sweep within the grace period: %+v", rep.Outcomes)
			}
			if !e.srv.Works(e.current.ID, e.current.Secret) {
				t.Fatal("the old key was revoked within the grace period")
			}

			e.h.Clock.Advance(time.Hour)
			if interrupted {
				e.h.SweepInterrupted() // deactivated at AWS, not recorded in the journal
				if old, _ := e.srv.Key(e.current.ID); old.Status != "Inactive" {
					t.Fatal("the interrupted sweep did not deactivate the old key")
				}
			}
			o := e.sweepOne(t)
			if o.Kind != rotation.KindRevoked {
				t.Fatalf("sweep after the grace period: %s %s", o.Kind, o.Reason)
			}
			cleanOutcome(t, o, e.secrets()...)
			old, ok := e.srv.Key(e.current.ID)
			switch {
			case !ok:
				t.Fatal("the old key was deleted: revocation only deactivates it (the next rotation deletes it)")
			case old.Status != "Inactive" || e.srv.Works(e.current.ID, e.current.Secret):
				t.Fatal("the old key still works")
			}
			if v, _ := e.srv.Tag(appUser, e.current.ID); !strings.HasPrefix(v, "kvrotator "+providertest.VaultName+"/"+secretName+" revoked ") {
				t.Errorf("the old key is labelled %q", v)
			}
			if latest := e.latestKey(t); latest.ID != k.ID || !e.srv.Works(k.ID, k.Secret) {
				t.Error("the vault's key was touched")
			}
			if rep := e.h.Sweep(); len(rep.Outcomes) != 0 {
				t.Errorf("revocation not recorded: %+v", rep.Outcomes)
			}
		})
	}
}

// rotateAndRevoke rotates once and lets the grace period pass: the first key is deactivated.
func (e *e2e) rotateAndRevoke(t *testing.T) iamtest.Key {
	t.Helper()
	k := e.wantRotated(t, e.h.Event(secretName, e.version))
	e.h.Clock.Advance(2 * time.Hour)
	if o := e.sweepOne(t); o.Kind != rotation.KindRevoked {
		t.Fatalf("revocation: %s %s", o.Kind, o.Reason)
	}
	return k
}

// The second step of a revocation is the next rotation: it deletes the deactivated key to make room.
func TestEndToEndNextRotationDeletesTheDeactivatedKey(t *testing.T) {
	e := newE2E(t, nil)
	second := e.rotateAndRevoke(t)
	o := e.h.Manual(secretName, false)
	if o.Kind != rotation.KindRotated {
		t.Fatalf("second rotation: %s %s", o.Kind, o.Reason)
	}
	cleanOutcome(t, o, e.secrets()...)
	third := e.latestKey(t)
	if ids := keyIDs(e.srv.Keys(appUser)); len(ids) != 2 || !slices.Contains(ids, second.ID) || !slices.Contains(ids, third.ID) {
		t.Errorf("the user holds %v, want the second key (in its grace period) and the third", ids)
	}
	if _, ok := e.srv.Tag(appUser, e.current.ID); ok {
		t.Error("the deleted key's label is still there")
	}
}

// A consumer that was missed breaks when the old key is deactivated; a person activates the key again
// to rescue it. kvrotator leaves that key alone: the next rotation is refused, naming it, until the
// person deactivates it again; then it goes ahead and deletes it.
func TestEndToEndRescuedKeyIsLeftAlone(t *testing.T) {
	e := newE2E(t, nil)
	e.rotateAndRevoke(t)
	e.srv.SetStatus(e.current.ID, "Active") // the rescue

	o := e.h.Manual(secretName, false)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, e.current.ID) ||
		!strings.Contains(o.Reason, "a person has activated again") {
		t.Fatalf("rotation with a rescued key: %s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	cleanOutcome(t, o, e.secrets()...)
	if !e.srv.Works(e.current.ID, e.current.Secret) {
		t.Fatal("the rescued key was touched")
	}
	if e.srv.Created() != 1 {
		t.Fatal("a key was created")
	}

	e.srv.SetStatus(e.current.ID, "Inactive") // the consumer moved on
	e.h.Clock.Advance(24 * time.Hour)         // past the failure back-off
	if o := e.h.Manual(secretName, false); o.Kind != rotation.KindRotated {
		t.Fatalf("rotation after the rescue ended: %s %s", o.Kind, o.Reason)
	}
	if _, ok := e.srv.Key(e.current.ID); ok {
		t.Error("the deactivated key was not deleted")
	}
}

func TestEndToEndRevokeDelete(t *testing.T) {
	e := newE2E(t, nil, awsiam.TagRevoke, "delete")
	e.rotateAndRevoke(t)
	if _, ok := e.srv.Key(e.current.ID); ok {
		t.Fatal("aws-iam-revoke=delete left the old key")
	}
	if _, ok := e.srv.Tag(appUser, e.current.ID); ok {
		t.Error("the deleted key's label is still there")
	}
	if n := e.srv.Count("UpdateAccessKey"); n != 1 {
		t.Errorf("%d UpdateAccessKey calls, want 1: deactivated first, then deleted", n)
	}
}

// A rotation forced while the previous key is still in its grace period has no room for a third key:
// for the first rotation's predecessor (made by a person, unlabelled) and for a key kvrotator made.
func TestEndToEndRotationWithinTheGracePeriodIsRefused(t *testing.T) {
	e := newE2E(t, nil)
	second := e.wantRotated(t, e.h.Event(secretName, e.version))
	o := e.h.Manual(secretName, false)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, e.current.ID) ||
		!strings.Contains(o.Reason, "still in its grace period") {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	if e.srv.Created() != 1 || !e.srv.Works(e.current.ID, e.current.Secret) {
		t.Error("the refused rotation changed the keys")
	}

	e.h.Clock.Advance(2 * time.Hour) // past the grace period: the first key is deactivated
	if o := e.sweepOne(t); o.Kind != rotation.KindRevoked {
		t.Fatalf("revocation: %s %s", o.Kind, o.Reason)
	}
	e.h.Clock.Advance(24 * time.Hour) // past the failure back-off
	if o := e.h.Manual(secretName, false); o.Kind != rotation.KindRotated {
		t.Fatalf("third key: %s %s", o.Kind, o.Reason)
	}
	o = e.h.Manual(secretName, false)
	if o.Kind != rotation.KindFailed || !strings.Contains(o.Reason, second.ID) || !strings.Contains(o.Reason, "has not revoked yet") {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	if !e.srv.Works(second.ID, second.Secret) {
		t.Error("the second key was touched within its grace period")
	}
}

// The user also holds a key kvrotator did not make: it is never touched, and the rotation is refused
// with a reason naming it. Nothing is created; no intent is left.
func TestEndToEndForeignKeyBlocks(t *testing.T) {
	e := newE2E(t, nil)
	foreign := e.srv.AddKey(appUser)
	for _, o := range []rotation.Outcome{e.h.Event(secretName, e.version), e.h.Manual(secretName, false)} {
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, foreign.ID) ||
			!strings.Contains(o.Reason, "a key kvrotator did not create") || !strings.Contains(o.Reason, "IAM's limit") {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		cleanOutcome(t, o, e.secrets()...)
	}
	if !e.srv.Works(foreign.ID, foreign.Secret) || !e.srv.Works(e.current.ID, e.current.Secret) || e.srv.Created() != 0 {
		t.Fatal("the refused rotation changed the keys")
	}
	if _, ok := e.srv.Tag(appUser, awsiam.IntentTag); ok {
		t.Error("an intent was tagged")
	}
}

func TestEndToEndBadTags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change []string
		tag    string
	}{
		{"admin secret tag missing", []string{awsiam.TagAdminSecret, ""}, awsiam.TagAdminSecret},
		{"user missing", []string{awsiam.TagUser, ""}, awsiam.TagUser},
		{"user with a path", []string{awsiam.TagUser, "apps/app-orders"}, awsiam.TagUser},
		{"account not 12 digits", []string{awsiam.TagAccount, "12345"}, awsiam.TagAccount},
		{"unknown partition", []string{awsiam.TagPartition, "aws-iso"}, awsiam.TagPartition},
		{"plain http to a remote host", []string{awsiam.TagIAMURL, "http://iam.amazonaws.com"}, awsiam.TagIAMURL},
		{"an endpoint with a path", []string{awsiam.TagSTSURL, "https://sts.amazonaws.com/x"}, awsiam.TagSTSURL},
		{"bad revoke mode", []string{awsiam.TagRevoke, "disable"}, awsiam.TagRevoke},
		{"misspelt tag", []string{"aws-iam-usr", appUser}, "aws-iam-usr"},
		{"CredentialId is a secret access key", []string{"CredentialId", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, "CredentialId"},
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
				cleanOutcome(t, o, append(e.secrets(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")...)
			}
			e.wantUnchanged(t)
			if n := len(e.srv.Requests()); n != 0 {
				t.Errorf("%d calls to AWS with a bad policy", n)
			}
		})
	}
}

func TestEndToEndAdminSecretMissingFromTheVault(t *testing.T) {
	e := newE2E(t, nil, awsiam.TagAdminSecret, "no-such-secret")
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, `"no-such-secret"`) {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	e.wantUnchanged(t)
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("%d calls to AWS", n)
	}
}

func TestEndToEndIssuerRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(e *e2e) string // returns the weak admin's value
		reason string
	}{
		{"admin may not create keys", func(e *e2e) string {
			e.srv.Revoke(adminUser, "CreateAccessKey")
			return e.admin.Pair()
		}, "may not call iam:CreateAccessKey on arn:aws:iam::123456789012:user/app-orders"},
		{"admin may not list keys", func(e *e2e) string {
			e.srv.Revoke(adminUser, "ListAccessKeys")
			return e.admin.Pair()
		}, "may not call iam:ListAccessKeys"},
		{"admin key unknown", func(e *e2e) string {
			return iamtest.Key{ID: "AKIAUNKNOWNUNKNOWN00", Secret: "unknownsecretunknownsecretunknownsecret0"}.Pair()
		}, "does not accept the admin key"},
		{"admin key deactivated", func(e *e2e) string {
			e.srv.SetStatus(e.admin.ID, "Inactive")
			return e.admin.Pair()
		}, "does not accept the admin key"},
		{"admin secret wrong", func(e *e2e) string {
			return iamtest.Key{ID: e.admin.ID, Secret: "wrongsecretwrongsecretwrongsecretwrong00"}.Pair()
		}, "does not match its AccessKeyId"},
		{"admin secret not a key pair", func(e *e2e) string { return "hunter2" }, "not an access key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newE2E(t, nil, awsiam.TagAdminSecret, "weak-admin")
			weak := tc.setup(e)
			e.h.Seed("weak-admin", weak, nil, 365*24*time.Hour)
			for _, o := range []rotation.Outcome{e.h.Event(secretName, e.version), e.h.Manual(secretName, false)} {
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, tc.reason) {
					t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
				}
				cleanOutcome(t, o, append(e.secrets(), "wrongsecretwrongsecretwrongsecretwrong00", "unknownsecretunknownsecretunknownsecret0", "hunter2")...)
			}
			e.wantUnchanged(t)
		})
	}
}

// The admin key belongs to another account than the tag names (and the operator bound): nothing is
// read or changed in IAM.
func TestEndToEndAdminOfAnotherAccount(t *testing.T) {
	binds := parseBindings(t, `{"bindings":[{"secrets":["`+providertest.VaultName+`/app-*"],"provider":"aws-iam",
		"allow":{"secret":["aws-admin"],"account":["210987654321"],"login":["app-orders"],"url":["http://127.0.0.1:*"]}}]}`)
	e := newE2E(t, &providertest.Options{Bindings: binds}, awsiam.TagAccount, "210987654321")
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !strings.Contains(o.Reason, "not a principal of account 210987654321") {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	if n := e.srv.Count("GetCallerIdentity"); n != len(e.srv.Requests()) {
		t.Errorf("IAM was called: %+v", e.srv.Requests())
	}
	e.wantUnchanged(t)
}

func TestEndToEndIssuerDown(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.Close()
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "unreachable") {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		cleanOutcome(t, o, e.secrets()...)
	})
	t.Run("throttled for a minute", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.Throttle(1000, time.Minute) // longer than the engine waits in-process: left to redelivery
		start := time.Now()
		o := e.h.Event(secretName, e.version)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "Throttling") ||
			!strings.Contains(o.Reason, "retry after 1m0s") {
			t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
		}
		if time.Since(start) > 10*time.Second {
			t.Error("the engine waited out the throttling in-process")
		}
		if n := e.srv.Count("GetCallerIdentity"); n != 3 {
			t.Errorf("%d attempts, want the call's 3", n)
		}
		e.wantUnchanged(t)
	})
	t.Run("briefly throttled", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.Throttle(2, 0) // the call's own retries get through
		e.wantRotated(t, e.h.Event(secretName, e.version))
	})
	t.Run("CreateAccessKey throttled", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.Inject(iamtest.Fault{Action: "CreateAccessKey", Count: 2, Status: http.StatusBadRequest, Code: "Throttling"})
		e.wantRotated(t, e.h.Event(secretName, e.version))
		if e.srv.Created() != 1 {
			t.Errorf("%d keys created", e.srv.Created())
		}
	})
	t.Run("briefly failing", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.FailNext(1, http.StatusInternalServerError, "ServiceFailure")
		e.wantRotated(t, e.h.Event(secretName, e.version))
	})
	t.Run("CreateAccessKey fails", func(t *testing.T) {
		e := newE2E(t, nil)
		e.srv.FailAction("CreateAccessKey", 1, http.StatusInternalServerError, "ServiceFailure") // not retried within the call; the engine retries Create
		e.wantRotated(t, e.h.Event(secretName, e.version))
		if n := e.srv.Count("CreateAccessKey"); n != 2 {
			t.Errorf("%d CreateAccessKey calls, want 2", n)
		}
	})
}

func TestEndToEndPropagation(t *testing.T) {
	e := newE2E(t, nil)
	e.srv.SetPropagation(3)
	e.wantRotated(t, e.h.Event(secretName, e.version))
	if n := e.srv.Count("GetCallerIdentity"); n != 5 {
		t.Errorf("%d GetCallerIdentity calls, want 5 (the admin's, 3 refused, 1 accepted)", n)
	}
}

func TestEndToEndKeyThatNeverWorksIsDeleted(t *testing.T) {
	e := newE2E(t, &providertest.Options{VerifyTimeout: 300 * time.Millisecond})
	e.srv.SetPropagation(1 << 20)
	o := e.h.Event(secretName, e.version)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "verify") {
		t.Fatalf("%s (%s) %s", o.Kind, o.Class, o.Reason)
	}
	refused := 0
	for _, r := range e.srv.Requests() {
		if r.Code == "InvalidClientTokenId" {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("the new key was never refused: the test proves nothing")
	}
	cleanOutcome(t, o, e.secrets()...)
	e.wantUnchanged(t) // the engine revoked the unverified key, and the provider deleted it: no orphan
	if e.srv.Created() != 1 {
		t.Errorf("%d keys created", e.srv.Created())
	}
	if tags := e.srv.Tags(appUser); len(tags) != 0 {
		t.Errorf("tags left: %v", tags)
	}
}

// Another partition: signed for its region, checked against its ARN partition.
func TestEndToEndPartition(t *testing.T) {
	srv := iamtest.NewServerWith(iamtest.Config{Partition: "aws-cn", IAMRegion: "cn-north-1", STSRegion: "cn-north-1"})
	t.Cleanup(srv.Close)
	srv.AddUser(adminUser, "/")
	srv.AddUser(appUser, "/")
	srv.Grant(adminUser, []string{appUser})
	admin, cur := srv.AddKey(adminUser), srv.AddKeyAt(appUser, time.Now().Add(-time.Hour))
	h := providertest.New(t, awsiam.Name, newProvider(), &providertest.Options{Bindings: operatorBindings(t, srv.URL)})
	h.Seed(adminSecret, admin.Pair(), nil, 365*24*time.Hour)
	v := h.Seed(secretName, cur.Pair(), map[string]string{"rotation-provider": awsiam.Name, awsiam.TagUser: appUser, awsiam.TagAccount: account,
		awsiam.TagAdminSecret: adminSecret, awsiam.TagPartition: "aws-cn", awsiam.TagIAMURL: srv.URL, awsiam.TagSTSURL: srv.URL, "CredentialId": cur.ID}, 5*24*time.Hour)
	if o := h.Event(secretName, v); o.Kind != rotation.KindRotated {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
	// The same secret tagged with the aws partition signs for us-east-1: the server refuses.
	v = h.Seed(secretName, h.Latest(secretName).Value.Reveal(), map[string]string{"rotation-provider": awsiam.Name, awsiam.TagUser: appUser,
		awsiam.TagAccount: account, awsiam.TagAdminSecret: adminSecret, awsiam.TagIAMURL: srv.URL, awsiam.TagSTSURL: srv.URL,
		"CredentialId": h.Latest(secretName).Tags["CredentialId"]}, 5*24*time.Hour)
	if o := h.Event(secretName, v); o.Kind != rotation.KindFailed || !strings.Contains(o.Reason, "SignatureDoesNotMatch") {
		t.Fatalf("%s %s", o.Kind, o.Reason)
	}
}

// The engine's own log (debug level included: every verify retry logs the provider's error) never
// holds a secret access key, through a rotation with propagation delays, failures, a server that
// echoes secrets, and the revocation.
func TestEndToEndNoSecretInTheLog(t *testing.T) {
	e := newE2E(t, nil)
	var logged httpxtest.SyncBuffer
	eng, err := rotation.New(rotation.Config{
		Vaults:        []rotation.Vault{e.h.Vault},
		Providers:     func(n string) (providers.Provider, bool) { return newProvider(), n == awsiam.Name },
		Bindings:      operatorBindings(t, e.srv.URL),
		Clock:         e.h.Clock,
		Logger:        slog.New(slog.NewJSONHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})),
		VerifyTimeout: 5 * time.Second, VerifyBackoff: 20 * time.Millisecond, RetryBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.EchoSecrets(true)
	e.srv.SetPropagation(3)
	e.srv.FailNext(3, http.StatusInternalServerError, "ServiceFailure")
	outcomes := []rotation.Outcome{eng.HandleEvent(t.Context(), rotation.Event{Type: rotation.EventNearExpiry, Vault: providertest.VaultName, Secret: secretName, Version: e.version})}
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
		t.Fatalf("the log holds no verify retry with AWS's (echoed, redacted) message: the test proves nothing\n%s", logged.String())
	}
	secrets := e.secrets(e.latestKey(t).Secret)
	clean(t, errors.New(logged.String()), secrets...)
	for _, o := range outcomes {
		cleanOutcome(t, o, secrets...)
	}
}
