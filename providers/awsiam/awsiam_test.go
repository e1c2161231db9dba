package awsiam_test

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/awsiam"
	"github.com/kvrotator/kvrotator/providers/awsiam/iamtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
)

// The provider against the local IAM and STS, call by call.

const owner = vaultName + "/" + secretName

func TestCreate(t *testing.T) {
	f := newFixture(t)
	p := newProvider()
	cred, err := p.Create(t.Context(), f.request())
	if err != nil {
		t.Fatal(err)
	}
	k, why := awsiam.ParseKeyPair(cred.Value.Reveal())
	if why != "" || k.ID != cred.CredentialID {
		t.Fatalf("credential %s: %s", cred.CredentialID, why)
	}
	sk, ok := f.srv.Key(k.ID)
	if !ok || sk.Secret != k.Secret || sk.User != appUser || sk.Status != "Active" {
		t.Fatalf("the server does not hold the new key: %+v", sk)
	}
	if v, _ := f.srv.Tag(appUser, k.ID); v != "kvrotator "+owner+" created "+idemKey {
		t.Errorf("label %q", v)
	}
	if tags := f.srv.Tags(appUser); len(tags) != 1 {
		t.Errorf("tags %v, want the label only", tags)
	}
	// The calls, in order: identify the admin, list, tag the intent, create, label, clear the intent.
	var actions []string
	for _, r := range f.srv.Requests() {
		actions = append(actions, r.Action)
		if r.Action != "GetCallerIdentity" && r.Params.Get("UserName") != appUser {
			t.Errorf("%s acts on user %q", r.Action, r.Params.Get("UserName"))
		}
		if r.KeyID != f.admin.ID {
			t.Errorf("%s signed with %s, want the admin key", r.Action, r.KeyID)
		}
	}
	want := "GetCallerIdentity ListAccessKeys ListUserTags TagUser CreateAccessKey TagUser UntagUser"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	if err := p.Verify(t.Context(), f.request(), cred); err != nil {
		t.Fatal(err)
	}
}

// Leftovers of interrupted attempts at this rotation are deleted; the new key takes their place.
func TestCreateDeletesLeftoversOfThisRotation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(f *fixture) iamtest.Key
	}{
		{"labelled for this idempotency key", func(f *fixture) iamtest.Key {
			k := f.srv.AddKey(appUser)
			f.srv.SetTag(appUser, k.ID, "kvrotator "+owner+" created "+idemKey)
			return k
		}},
		{"unlabelled, created right after this rotation's intent", func(f *fixture) iamtest.Key {
			f.srv.SetTag(appUser, awsiam.IntentTag, owner+" "+idemKey+" "+time.Now().UTC().Add(-time.Minute).Format(time.RFC3339))
			return f.srv.AddKey(appUser)
		}},
		{"deactivated by an earlier revocation", func(f *fixture) iamtest.Key {
			k := f.srv.AddKeyAt(appUser, time.Now().Add(-90*24*time.Hour))
			f.srv.SetTag(appUser, k.ID, "kvrotator "+owner+" revoked 2026-01-02T03:04:05Z")
			f.srv.SetStatus(k.ID, "Inactive")
			return k
		}},
		{"made by kvrotator for this secret, then deactivated by a person", func(f *fixture) iamtest.Key {
			k := f.srv.AddKey(appUser)
			f.srv.SetTag(appUser, k.ID, "kvrotator "+owner+" created kvr-ffffffffffffffff")
			f.srv.SetStatus(k.ID, "Inactive")
			return k
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			left := tc.setup(f)
			cred, err := newProvider().Create(t.Context(), f.request())
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := f.srv.Key(left.ID); ok {
				t.Error("the leftover is still there")
			}
			if _, ok := f.srv.Tag(appUser, left.ID); ok {
				t.Error("the leftover's label is still there")
			}
			ids := keyIDs(f.srv.Keys(appUser))
			if len(ids) != 2 || ids[0] != f.current.ID || ids[1] != cred.CredentialID {
				t.Errorf("the user holds %v", ids)
			}
		})
	}
}

// Keys that are not leftovers of this rotation are never touched; when they leave no room the
// rotation is refused with a reason naming them, before anything changes.
func TestCreateRefusesWhenNoRoom(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(f *fixture) iamtest.Key
		reason string
	}{
		{"a person's key", func(f *fixture) iamtest.Key { return f.srv.AddKey(appUser) }, "a key kvrotator did not create"},
		{"a person's inactive key", func(f *fixture) iamtest.Key {
			k := f.srv.AddKey(appUser)
			f.srv.SetStatus(k.ID, "Inactive")
			return k
		}, "(inactive, created"},
		{"a person's key with a description", func(f *fixture) iamtest.Key {
			k := f.srv.AddKey(appUser)
			f.srv.SetTag(appUser, k.ID, "laptop of J. Doe")
			return k
		}, "kvrotator did not create"},
		{"unlabelled, created long after this rotation's intent", func(f *fixture) iamtest.Key {
			f.srv.SetTag(appUser, awsiam.IntentTag, owner+" "+idemKey+" "+time.Now().UTC().Add(-time.Hour).Format(time.RFC3339))
			return f.srv.AddKey(appUser)
		}, "carries no kvrotator label"},
		{"unlabelled, with another rotation's intent", func(f *fixture) iamtest.Key {
			f.srv.SetTag(appUser, awsiam.IntentTag, owner+" kvr-ffffffffffffffff "+time.Now().UTC().Format(time.RFC3339))
			return f.srv.AddKey(appUser)
		}, "carries no kvrotator label"},
		{"kvrotator's, in its grace period", func(f *fixture) iamtest.Key {
			k := f.srv.AddKey(appUser)
			f.srv.SetTag(appUser, k.ID, "kvrotator "+owner+" created kvr-ffffffffffffffff")
			return k
		}, "has not revoked yet"},
		{"kvrotator's, revoked and activated again", func(f *fixture) iamtest.Key {
			k := f.srv.AddKey(appUser)
			f.srv.SetTag(appUser, k.ID, "kvrotator "+owner+" revoked 2026-01-02T03:04:05Z")
			return k
		}, "a person has activated again"},
		{"kvrotator's, for another secret", func(f *fixture) iamtest.Key {
			k := f.srv.AddKey(appUser)
			f.srv.SetTag(appUser, k.ID, "kvrotator myvault/other-aws created "+idemKey)
			f.srv.SetStatus(k.ID, "Inactive")
			return k
		}, "which kvrotator manages for secret myvault/other-aws"},
		{"the admin key", func(f *fixture) iamtest.Key {
			f.srv.Grant(appUser, []string{appUser})
			return f.srv.AddKey(appUser)
		}, "the admin key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			other := tc.setup(f)
			req := f.request()
			if tc.reason == "the admin key" {
				req.Secrets = httpxtest.Secrets{adminSecret: other.Pair()}
			}
			before := f.srv.Tags(appUser)
			other, _ = f.srv.Key(other.ID)
			_, err := newProvider().Create(t.Context(), req)
			if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), other.ID) || !strings.Contains(err.Error(), tc.reason) ||
				!strings.Contains(err.Error(), "already holds 2 access keys") {
				t.Fatalf("error %v", err)
			}
			clean(t, err, f.secrets()...)
			if k, ok := f.srv.Key(other.ID); !ok || k.Status != other.Status {
				t.Error("the other key was touched")
			}
			if f.srv.Created() != 0 || len(f.srv.Tags(appUser)) != len(before) {
				t.Error("the refused rotation changed something")
			}
		})
	}
}

// A key the current version holds is never deleted, whatever its label says.
func TestCreateNeverDeletesTheCurrentKey(t *testing.T) {
	f := newFixture(t)
	f.srv.SetTag(appUser, f.current.ID, "kvrotator "+owner+" created "+idemKey)
	f.srv.SetStatus(f.current.ID, "Inactive")
	if _, err := newProvider().Create(t.Context(), f.request()); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.srv.Key(f.current.ID); !ok {
		t.Fatal("the current key was deleted")
	}
}

// The current key may be gone (deleted by a person): the rotation still makes a key.
func TestCreateWhenTheCurrentKeyIsGone(t *testing.T) {
	f := newFixture(t)
	f.srv.DeleteKey(f.current.ID)
	cred, err := newProvider().Create(t.Context(), f.request())
	if err != nil {
		t.Fatal(err)
	}
	if ids := keyIDs(f.srv.Keys(appUser)); len(ids) != 1 || ids[0] != cred.CredentialID {
		t.Fatalf("the user holds %v", ids)
	}
}

// Labels of this secret's keys that no longer exist are removed; other tags are not.
func TestCreateForgetsStaleLabels(t *testing.T) {
	f := newFixture(t)
	f.srv.SetTag(appUser, "AKIAGONEGONEGONEGONE", "kvrotator "+owner+" revoked 2026-01-02T03:04:05Z")
	f.srv.SetTag(appUser, "AKIAOTHEROTHEROTHERX", "kvrotator myvault/other created kvr-1")
	f.srv.SetTag(appUser, "team", "orders")
	if _, err := newProvider().Create(t.Context(), f.request()); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.srv.Tag(appUser, "AKIAGONEGONEGONEGONE"); ok {
		t.Error("the stale label is still there")
	}
	for _, k := range []string{"AKIAOTHEROTHEROTHERX", "team"} {
		if _, ok := f.srv.Tag(appUser, k); !ok {
			t.Errorf("tag %s was removed", k)
		}
	}
}

func TestCreateRefusals(t *testing.T) {
	f := newFixture(t)
	p := newProvider()
	t.Run("CredentialId names another key than the value", func(t *testing.T) {
		req := f.request()
		req.CredentialID = "AKIAOTHEROTHEROTHERX"
		_, err := p.Create(t.Context(), req)
		ce := wantConfigError(t, err, "CredentialId")
		if !strings.Contains(ce.Reason, f.current.ID) {
			t.Errorf("%v", err)
		}
	})
	t.Run("admin secret is the rotated secret", func(t *testing.T) {
		_, err := p.Create(t.Context(), f.request(awsiam.TagAdminSecret, secretName))
		wantConfigError(t, err, awsiam.TagAdminSecret)
	})
	t.Run("admin secret holds the rotated key", func(t *testing.T) {
		req := f.request()
		req.Secrets = httpxtest.Secrets{adminSecret: f.current.Pair()}
		_, err := p.Create(t.Context(), req)
		wantConfigError(t, err, awsiam.TagAdminSecret)
	})
	t.Run("no idempotency key", func(t *testing.T) {
		req := f.request()
		req.IdempotencyKey = ""
		if _, err := p.Create(t.Context(), req); !providers.IsPermanent(err) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("admin of another account", func(t *testing.T) {
		_, err := p.Create(t.Context(), f.request(awsiam.TagAccount, "210987654321"))
		ce := wantConfigError(t, err, awsiam.TagAccount)
		if !strings.Contains(ce.Reason, "arn:aws:iam::123456789012:user/kvrotator-admin") {
			t.Errorf("%v", err)
		}
	})
	t.Run("user does not exist", func(t *testing.T) {
		f.srv.Grant(adminUser, []string{"ghost"})
		_, err := p.Create(t.Context(), f.request(awsiam.TagUser, "ghost"))
		e := wantPermanent(t, err)
		if e.Code != "NoSuchEntity" || !strings.Contains(e.Reason, `IAM user "ghost" does not exist`) {
			t.Fatalf("%v", err)
		}
	})
	if n := f.srv.Count("CreateAccessKey"); n != 0 {
		t.Errorf("%d keys created", n)
	}
}

// Someone adds a key between the list and the creation: LimitExceeded, permanent, and the intent is
// cleared (IAM made nothing).
func TestCreateLimitExceededRace(t *testing.T) {
	f := newFixture(t)
	f.srv.FailAction("CreateAccessKey", 1, http.StatusConflict, "LimitExceeded")
	_, err := newProvider().Create(t.Context(), f.request())
	e := wantPermanent(t, err)
	if e.Code != "LimitExceeded" || !strings.Contains(e.Reason, "someone added one since kvrotator listed them") {
		t.Fatalf("%v", err)
	}
	if _, ok := f.srv.Tag(appUser, awsiam.IntentTag); ok {
		t.Error("the intent is still tagged")
	}
}

// An answer to CreateAccessKey that breaks the contract: the key (when it has an id) is deleted at
// once and the failure is permanent.
func TestCreateBrokenAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, body, reason string
		deleted            bool
	}{
		{"empty", ``, "breaks the Query protocol's contract", false},
		{"no secret", `<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey><UserName>app-orders</UserName><AccessKeyId>AKIABROKENBROKEN0000</AccessKeyId><Status>Active</Status></AccessKey></CreateAccessKeyResult></CreateAccessKeyResponse>`,
			"SecretAccessKey is missing", true},
		{"another user's key", `<CreateAccessKeyResponse><CreateAccessKeyResult><AccessKey><UserName>payments</UserName><AccessKeyId>AKIABROKENBROKEN0000</AccessKeyId><Status>Active</Status><SecretAccessKey>abcdefghabcdefghabcdefgh</SecretAccessKey></AccessKey></CreateAccessKeyResult></CreateAccessKeyResponse>`,
			"belongs to another user", true},
		{"not XML", `{"AccessKey":{}}`, "breaks the Query protocol's contract", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			deletes := 0
			base := intercept(t, f.srv.URL, map[string]http.HandlerFunc{
				"CreateAccessKey": httpxtest.Answer(http.StatusOK, "text/xml", tc.body),
				"DeleteAccessKey": func(w http.ResponseWriter, r *http.Request) {
					deletes++
					_, _ = w.Write([]byte(`<DeleteAccessKeyResponse><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></DeleteAccessKeyResponse>`))
				},
			})
			_, err := newProvider().Create(t.Context(), f.request(awsiam.TagIAMURL, base))
			e := wantPermanent(t, err)
			if !strings.Contains(e.Reason, tc.reason) {
				t.Fatalf("%v", err)
			}
			clean(t, err, "abcdefghabcdefghabcdefgh")
			if (deletes == 1) != tc.deleted {
				t.Errorf("%d deletes", deletes)
			}
		})
	}
}

// intercept puts a server in front of base that answers the actions in routes itself and passes
// every other request on to base; it returns the new base URL.
func intercept(t *testing.T, base string, routes map[string]http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := readBody(r)
		if h, ok := routes[formValue(body, "Action")]; ok {
			h(w, r)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.Path, strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return
		}
		req.Header = r.Header.Clone()
		req.Host = r.Host // the signature covers the host the client called
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = copyBody(w, resp)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	p := newProvider()
	newKey := f.srv.AddKey(appUser)
	cred := providers.Credential{Value: providers.NewValue(newKey.Pair()), CredentialID: newKey.ID}
	if err := p.Verify(t.Context(), f.request(), cred); err != nil {
		t.Fatal(err)
	}
	if n := len(f.srv.Requests()); n != 1 || f.srv.Requests()[0].KeyID != newKey.ID {
		t.Fatalf("verify made %+v, want one call signed with the new key", f.srv.Requests())
	}

	t.Run("propagating", func(t *testing.T) {
		g := newFixture(t)
		g.srv.SetPropagation(1)
		cred, err := p.Create(t.Context(), g.request())
		if err != nil {
			t.Fatal(err)
		}
		err = p.Verify(t.Context(), g.request(), cred)
		e := wantTransient(t, err)
		if e.Code != "InvalidClientTokenId" || !strings.Contains(e.Reason, "propagate") {
			t.Fatalf("%v", err)
		}
		clean(t, err, g.secrets()...)
		if err := p.Verify(t.Context(), g.request(), cred); err != nil {
			t.Fatalf("after propagation: %v", err)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := iamtest.Key{ID: newKey.ID, Secret: "wrongwrongwrongwrongwrongwrongwrongwrong"}
		err := p.Verify(t.Context(), f.request(), providers.Credential{Value: providers.NewValue(bad.Pair()), CredentialID: bad.ID})
		if e := wantTransient(t, err); e.Code != "SignatureDoesNotMatch" {
			t.Fatalf("%v", err)
		}
		clean(t, err, bad.Secret)
	})
	t.Run("another user's key", func(t *testing.T) {
		other := f.srv.AddKey("payments")
		err := p.Verify(t.Context(), f.request(), providers.Credential{Value: providers.NewValue(other.Pair()), CredentialID: other.ID})
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "user/payments, not as IAM user \"app-orders\"") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("not a key pair", func(t *testing.T) {
		err := p.Verify(t.Context(), f.request(), providers.Credential{Value: providers.NewValue("hunter2"), CredentialID: "AKIAHUNTERHUNTER2222"})
		if !providers.IsPermanent(err) || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("CredentialID is not the value's key", func(t *testing.T) {
		err := p.Verify(t.Context(), f.request(), providers.Credential{Value: providers.NewValue(newKey.Pair()), CredentialID: f.current.ID})
		if !providers.IsPermanent(err) {
			t.Fatalf("%v", err)
		}
	})
}

// revokeRequest is what the sweep sends to revoke the fixture's current key after a rotation to next.
func (f *fixture) revokeRequest(next iamtest.Key, extra ...string) providers.Request {
	req := f.request(extra...)
	req.IdempotencyKey = ""
	req.Current, req.CredentialID, req.Retired = providers.NewValue(next.Pair()), next.ID, providers.NewValue(f.current.Pair())
	req.Params["CredentialId"] = next.ID
	return req
}

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	next := f.srv.AddKey(appUser)
	p := newProvider()
	if err := p.Revoke(t.Context(), f.revokeRequest(next), f.current.ID); err != nil {
		t.Fatal(err)
	}
	k, ok := f.srv.Key(f.current.ID)
	if !ok || k.Status != "Inactive" {
		t.Fatalf("old key %+v, want kept and inactive", k)
	}
	label, _ := f.srv.Tag(appUser, f.current.ID)
	if !strings.HasPrefix(label, "kvrotator "+owner+" revoked ") {
		t.Errorf("label %q", label)
	}
	if !f.srv.Works(next.ID, next.Secret) {
		t.Error("the current key was touched")
	}

	// Again (a revocation whose record was lost): nothing changes, the label keeps its time.
	n := f.srv.Count("UpdateAccessKey") + f.srv.Count("TagUser")
	if err := p.Revoke(t.Context(), f.revokeRequest(next), f.current.ID); err != nil {
		t.Fatal(err)
	}
	if f.srv.Count("UpdateAccessKey")+f.srv.Count("TagUser") != n {
		t.Error("the second revocation changed something")
	}
	// A person activated it again in between: left alone.
	f.srv.SetStatus(f.current.ID, "Active")
	if err := p.Revoke(t.Context(), f.revokeRequest(next), f.current.ID); err != nil {
		t.Fatal(err)
	}
	if !f.srv.Works(f.current.ID, f.current.Secret) {
		t.Error("the rescued key was deactivated again")
	}
	// Gone: success.
	f.srv.DeleteKey(f.current.ID)
	if err := p.Revoke(t.Context(), f.revokeRequest(next), f.current.ID); err != nil {
		t.Fatal(err)
	}
}

func TestRevokeDelete(t *testing.T) {
	f := newFixture(t)
	next := f.srv.AddKey(appUser)
	if err := newProvider().Revoke(t.Context(), f.revokeRequest(next, awsiam.TagRevoke, "delete"), f.current.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.srv.Key(f.current.ID); ok {
		t.Fatal("the old key is still there")
	}
	if f.srv.Count("UpdateAccessKey") != 1 || f.srv.Count("DeleteAccessKey") != 1 {
		t.Error("not deactivated, then deleted")
	}
}

// The engine revokes a new key that never passed verification with the rotation's own request: it is
// deleted at once, label and all.
func TestRevokeUnverifiedKey(t *testing.T) {
	f := newFixture(t)
	p := newProvider()
	req := f.request()
	cred, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	rreq := req
	rreq.Retired = cred.Value
	if err := p.Revoke(t.Context(), rreq, cred.CredentialID); err != nil {
		t.Fatal(err)
	}
	if ids := keyIDs(f.srv.Keys(appUser)); len(ids) != 1 || ids[0] != f.current.ID {
		t.Fatalf("the user holds %v", ids)
	}
	if tags := f.srv.Tags(appUser); len(tags) != 0 {
		t.Errorf("tags %v", tags)
	}
}

func TestRevokeRefusals(t *testing.T) {
	f := newFixture(t)
	next := f.srv.AddKey(appUser)
	p := newProvider()
	for _, tc := range []struct {
		name   string
		req    func() providers.Request
		id     string
		reason string
	}{
		{"the latest version's key by record", func() providers.Request { return f.revokeRequest(next) }, next.ID, "the latest version of secret"},
		{"the latest version's key by value", func() providers.Request {
			r := f.revokeRequest(next)
			r.CredentialID = ""
			return r
		}, next.ID, "its value is that key"},
		{"not the replaced version's key", func() providers.Request { return f.revokeRequest(next) }, "AKIAOTHEROTHEROTHERX", "holds key " + f.current.ID},
		{"hand-written without a key pair", func() providers.Request {
			r := f.revokeRequest(next)
			r.HandWritten, r.Retired = true, providers.NewValue("hunter2")
			return r
		}, f.current.ID, "named only by the CredentialId tag"},
		{"the admin key", func() providers.Request {
			r := f.revokeRequest(next)
			r.Retired = providers.NewValue(f.admin.Pair())
			return r
		}, f.admin.ID, "it is the admin key"},
		{"not an id", func() providers.Request { return f.revokeRequest(next) }, "AKIA/../x", "not an access key id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.srv.Requests())
			err := p.Revoke(t.Context(), tc.req(), tc.id)
			if !providers.IsPermanent(err) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("%v", err)
			}
			clean(t, err, f.secrets()...)
			for _, r := range f.srv.Requests()[before:] {
				if r.Action != "GetCallerIdentity" {
					t.Errorf("the refused revocation called %s", r.Action)
				}
			}
		})
	}
	if !f.srv.Works(next.ID, next.Secret) || !f.srv.Works(f.current.ID, f.current.Secret) || !f.srv.Works(f.admin.ID, f.admin.Secret) {
		t.Fatal("a key was revoked")
	}
}

// A version written by hand: its key is revoked only when its value authenticates as the user.
func TestRevokeHandWritten(t *testing.T) {
	f := newFixture(t)
	next := f.srv.AddKey(appUser)
	p := newProvider()
	hand := func(retired string) providers.Request {
		r := f.revokeRequest(next)
		r.HandWritten, r.Retired = true, providers.NewValue(retired)
		return r
	}
	forged := iamtest.Key{ID: f.current.ID, Secret: "forgedforgedforgedforgedforgedforged0000"}.Pair()
	err := p.Revoke(t.Context(), hand(forged), f.current.ID)
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "does not authenticate") {
		t.Fatalf("forged: %v", err)
	}
	clean(t, err, append(f.secrets(), "forgedforgedforgedforgedforgedforged0000")...)
	if !f.srv.Works(f.current.ID, f.current.Secret) {
		t.Fatal("revoked on a forged value")
	}

	other := f.srv.AddKey("payments")
	err = p.Revoke(t.Context(), hand(other.Pair()), other.ID)
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "is a key of arn:aws:iam::123456789012:user/payments") {
		t.Fatalf("another user's key: %v", err)
	}

	if err := p.Revoke(t.Context(), hand(f.current.Pair()), f.current.ID); err != nil {
		t.Fatalf("proven: %v", err)
	}
	if k, _ := f.srv.Key(f.current.ID); k.Status != "Inactive" {
		t.Fatal("not deactivated")
	}
	// Now the value no longer authenticates (inactive), and revocation is done: success.
	if err := p.Revoke(t.Context(), hand(f.current.Pair()), f.current.ID); err != nil {
		t.Fatalf("again: %v", err)
	}
	// Gone: success.
	f.srv.DeleteKey(f.current.ID)
	if err := p.Revoke(t.Context(), hand(forged), f.current.ID); err != nil {
		t.Fatalf("gone: %v", err)
	}
}

func TestErrors(t *testing.T) {
	t.Run("throttled, with Retry-After", func(t *testing.T) {
		f := newFixture(t)
		f.srv.Throttle(10, 7*time.Second)
		_, err := newProvider().Create(t.Context(), f.request())
		e := wantTransient(t, err)
		if e.Code != "Throttling" || e.Status != http.StatusBadRequest || e.RetryAfter() != 7*time.Second || e.RequestID == "" {
			t.Fatalf("%v", err)
		}
		if n := len(f.srv.Requests()); n != awsiam.DefaultAttempts {
			t.Errorf("%d attempts, want %d", n, awsiam.DefaultAttempts)
		}
	})
	t.Run("service failure", func(t *testing.T) {
		f := newFixture(t)
		f.srv.FailNext(10, http.StatusInternalServerError, "ServiceFailure")
		_, err := newProvider(awsiam.WithRetries(1, time.Millisecond)).Create(t.Context(), f.request())
		if e := wantTransient(t, err); e.Status != 500 || e.Code != "ServiceFailure" {
			t.Fatalf("%v", err)
		}
	})
	t.Run("unavailable without a body", func(t *testing.T) {
		base := httpxtest.Stub(t, http.StatusServiceUnavailable, "text/html", "<html>down</html>")
		f := newFixture(t)
		_, err := newProvider().Create(t.Context(), f.request(awsiam.TagSTSURL, base))
		if e := wantTransient(t, err); e.Status != http.StatusServiceUnavailable {
			t.Fatalf("%v", err)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		f := newFixture(t)
		base := httpxtest.Stub(t, http.StatusTemporaryRedirect, "text/plain", "", "Location", f.srv.URL+"/")
		_, err := newProvider().Create(t.Context(), f.request(awsiam.TagSTSURL, base))
		if e := wantPermanent(t, err); !strings.Contains(e.Reason, "redirects are not followed") {
			t.Fatalf("%v", err)
		}
		if len(f.srv.Requests()) != 0 {
			t.Fatal("the redirect was followed")
		}
	})
	t.Run("answer too large", func(t *testing.T) {
		base := httpxtest.Stub(t, http.StatusOK, "text/xml", "<GetCallerIdentityResponse>"+strings.Repeat(" ", awsiam.MaxResponseBytes)+"</GetCallerIdentityResponse>")
		f := newFixture(t)
		_, err := newProvider().Create(t.Context(), f.request(awsiam.TagSTSURL, base))
		if e := wantPermanent(t, err); !strings.Contains(e.Reason, "exceeds") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
		tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0)
		tlsSrv.StartTLS()
		t.Cleanup(tlsSrv.Close)
		f := newFixture(t)
		_, err := newProvider().Create(t.Context(), f.request(awsiam.TagSTSURL, tlsSrv.URL))
		if e := wantPermanent(t, err); !strings.Contains(e.Reason, "not trusted") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		block := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
		t.Cleanup(func() { close(block); slow.Close() })
		f := newFixture(t)
		_, err := newProvider(awsiam.WithTimeout(100*time.Millisecond)).Create(t.Context(), f.request(awsiam.TagSTSURL, slow.URL))
		if e := wantTransient(t, err); !strings.Contains(e.Reason, "no answer in time") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("echoed secrets are redacted", func(t *testing.T) {
		f := newFixture(t)
		f.srv.EchoSecrets(true)
		f.srv.Revoke(adminUser, "ListAccessKeys")
		_, err := newProvider().Create(t.Context(), f.request())
		e := wantPermanent(t, err)
		if e.Code != "AccessDenied" || !strings.Contains(e.Message, "[redacted]") {
			t.Fatalf("%v", err)
		}
		clean(t, err, f.secrets()...)
	})
	t.Run("errors.As finds the Error", func(t *testing.T) {
		f := newFixture(t)
		f.srv.Revoke(adminUser, "TagUser")
		_, err := newProvider().Create(t.Context(), f.request())
		var e *awsiam.Error
		if !errors.As(err, &e) || e.Provider != awsiam.Name || e.Service != "AWS IAM" || !strings.Contains(e.Op, "TagUser") ||
			e.URL != f.srv.URL+"/" || e.Status != http.StatusForbidden {
			t.Fatalf("%+v", e)
		}
	})
}

func readBody(r *http.Request) (string, error) {
	b, err := io.ReadAll(r.Body)
	return string(b), err
}

func formValue(body, key string) string {
	q, _ := url.ParseQuery(body)
	return q.Get(key)
}

func copyBody(w io.Writer, resp *http.Response) (int64, error) { return io.Copy(w, resp.Body) }
