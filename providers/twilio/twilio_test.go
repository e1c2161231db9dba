package twilio_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/providers/twilio"
	"github.com/kvrotator/kvrotator/providers/twilio/twiliotest"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(registry.Names(), twilio.Name) {
		t.Fatalf("registry.Names() = %v, without %s", registry.Names(), twilio.Name)
	}
	set, problems := registry.Build(registry.Env{})
	if problems[twilio.Name] != nil {
		t.Fatalf("building %s: %v", twilio.Name, problems[twilio.Name])
	}
	p, ok := set.Lookup(" Twilio ")
	if !ok {
		t.Fatal("Lookup found nothing")
	}
	if _, ok := p.(*twilio.Provider); !ok {
		t.Fatalf("Lookup = %T", p)
	}
	if _, ok := p.(providers.Revoker); !ok || p.Shape() != providers.ShapeCreateRevoke {
		t.Fatal("the twilio provider is not create-then-revoke")
	}
}

// calls lists the requests the server received as "METHOD path who".
func calls(f *fixture, newSID string) []string {
	var got []string
	for _, r := range f.srv.Requests() {
		who := "admin"
		switch r.User {
		case newSID:
			who = "new"
		case f.current.SID:
			who = "current"
		case "":
			who = "nobody"
		}
		got = append(got, r.Method+" "+r.Path+" "+who)
	}
	return got
}

func TestRotation(t *testing.T) {
	for _, typ := range []string{twiliotest.TypeStandard, twiliotest.TypeRestricted} {
		t.Run(typ, func(t *testing.T) {
			f := newFixture(t, typ)
			p := twilio.New()
			req := f.request(f.srv.URL)

			c, err := p.Create(t.Context(), req)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			k, ok := f.srv.Key(c.CredentialID)
			if !ok || k.Value() != c.Value.Reveal() || k.Account != f.srv.Account.SID || k.Type != typ {
				t.Fatalf("Create's credential is not the key Twilio created: %+v", k)
			}
			if typ == twiliotest.TypeRestricted {
				var got, want bytes.Buffer
				_ = json.Compact(&got, k.Policy)
				_ = json.Compact(&want, appPolicy)
				if got.String() != want.String() {
					t.Errorf("policy %s, want the current key's %s", got.String(), want.String())
				}
			}
			if want := twilio.KeyName(secretName, idemKey); k.FriendlyName != want || want != "kvrotator-app-twilio-kvr-0123456789abcdef" {
				t.Errorf("new key named %q, want %q", k.FriendlyName, want)
			}
			if err := p.Verify(t.Context(), req, c); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			later := req
			later.CredentialID, later.Current, later.Retired = c.CredentialID, c.Value, providers.NewValue(f.current.Value())
			if err := p.Revoke(t.Context(), later, f.current.SID); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if _, live := f.srv.Key(f.current.SID); live {
				t.Error("the old key is still live after Revoke")
			}
			want := []string{
				"GET /v1/Keys admin",
				"GET /v1/Keys/" + f.current.SID + " admin",
				"POST /v1/Keys admin",
				"GET /2010-04-01/Accounts/" + f.srv.Account.SID + "/Messages.json new",
				"DELETE /v1/Keys/" + f.current.SID + " admin",
			}
			if got := calls(f, c.CredentialID); !slices.Equal(got, want) {
				t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			reqs := f.srv.Requests()
			if q := reqs[0].Query; q != "AccountSid="+f.srv.Account.SID+"&PageSize=1000" {
				t.Errorf("list query %q", q)
			}
			if form := reqs[2].Form; form.Get("AccountSid") != f.srv.Account.SID || form.Get("FriendlyName") != k.FriendlyName ||
				(typ == twiliotest.TypeRestricted) != (form.Get("KeyType") == "restricted") {
				t.Errorf("create form %v", form)
			}
		})
	}
}

// Twilio does not let a Standard key read /Accounts/{AccountSid}.json (error 20003): verification reads
// a sub-resource instead. The fake follows Twilio, so the test shows why.
func TestStandardKeysCannotReadTheAccount(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, f.srv.URL+"/2010-04-01/Accounts/"+f.srv.Account.SID+".json", nil)
	req.SetBasicAuth(f.current.SID, f.current.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestVerifyChoices(t *testing.T) {
	for _, tc := range []struct {
		verify, path string
		policy       string // the restricted key's allow list; "" for a standard key
		forbidden    bool
	}{
		{twilio.VerifyMessages, "/Messages.json", "", false},
		{twilio.VerifyBalance, "/Balance.json", "", false},
		{twilio.VerifyMessages, "/Messages.json", `{"allow":["/twilio/messaging/messages/read"]}`, false},
		{twilio.VerifyBalance, "/Balance.json", `{"allow":["/twilio/messaging/messages/read"]}`, true},
	} {
		t.Run(tc.verify+"/"+tc.policy, func(t *testing.T) {
			f := newFixture(t, twiliotest.TypeStandard)
			typ := twiliotest.TypeStandard
			if tc.policy != "" {
				typ = twiliotest.TypeRestricted
			}
			k := f.srv.AddKey(f.srv.Account.SID, typ, "new", json.RawMessage(tc.policy))
			req := f.request(f.srv.URL)
			req.Params[twilio.TagVerify] = tc.verify
			err := twilio.New().Verify(t.Context(), req, providers.Credential{Value: providers.NewValue(k.Value()), CredentialID: k.SID})
			if tc.forbidden {
				e := wantPermanent(t, err, http.StatusForbidden)
				if !strings.Contains(e.Reason, "twilio-verify") || e.Code != "20403" {
					t.Errorf("%v", e)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if n := f.srv.Count(http.MethodGet, "/2010-04-01/Accounts/"+f.srv.Account.SID+tc.path); n != 1 {
				t.Errorf("%d calls to %s", n, tc.path)
			}
		})
	}
}

func TestKeyTypeIsNeverChangedSilently(t *testing.T) {
	for _, tc := range []struct {
		name    string
		current string // the current key's type
		tag     string // twilio-key-type
		credID  string // "" for the current key's SID, "-" for none, else an SID
		reason  string
	}{
		{"restricted key, standard tag", twiliotest.TypeRestricted, twilio.KeyTypeStandard, "", "does not replace it with a standard key"},
		{"standard key, restricted tag", twiliotest.TypeStandard, twilio.KeyTypeRestricted, "", "no policy to give a restricted key"},
		{"restricted tag, no CredentialId", twiliotest.TypeRestricted, twilio.KeyTypeRestricted, "-", "no CredentialId"},
		{"restricted tag, current key gone", twiliotest.TypeRestricted, twilio.KeyTypeRestricted, goneKeySID, goneKeySID + " no longer exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.current)
			req := f.request(f.srv.URL)
			req.Params[twilio.TagKeyType] = tc.tag
			switch tc.credID {
			case "":
			case "-":
				req.CredentialID = ""
			default:
				req.CredentialID = tc.credID
				req.Current = providers.NewValue(tc.credID + ":whatever")
			}
			_, err := twilio.New().Create(t.Context(), req)
			ce := wantConfigError(t, err, twilio.TagKeyType)
			if !strings.Contains(ce.Error(), tc.reason) {
				t.Errorf("%q does not say %q", ce, tc.reason)
			}
			if f.srv.Created() != 0 {
				t.Fatal("a key was created")
			}
		})
	}
	t.Run("standard, no CredentialId: a standard key", func(t *testing.T) {
		f := newFixture(t, twiliotest.TypeStandard)
		req := f.request(f.srv.URL)
		req.CredentialID = ""
		c, err := twilio.New().Create(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if k, _ := f.srv.Key(c.CredentialID); k.Type != twiliotest.TypeStandard {
			t.Fatalf("type %s", k.Type)
		}
	})
}

func TestCreateIsIdempotent(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	p := twilio.New()
	req := f.request(f.srv.URL)
	first, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	named := f.srv.Named(twilio.KeyName(secretName, idemKey))
	if len(named) != 1 || named[0].SID != second.CredentialID || first.CredentialID == second.CredentialID {
		t.Fatalf("%d keys of the name after a retry; want only the second", len(named))
	}
}

func TestCreateFindsLeftoversOnLaterPages(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	for range 3 {
		f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeStandard, "filler", nil)
	}
	leftover := f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeStandard, twilio.KeyName(secretName, idemKey), nil)
	// The provider asks for pages of 1,000; a server in front asks the fake for pages of 2, so the
	// leftover is on the third page and the provider must follow next_page_url to find it.
	paged := intercept(t, f.srv.URL, map[string]http.HandlerFunc{"GET /v1/Keys": func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Set("PageSize", "2")
		r.URL.RawQuery = q.Encode()
		pass(t, f.srv.URL, w, r)
	}})
	if _, err := twilio.New().Create(t.Context(), f.request(paged)); err != nil {
		t.Fatal(err)
	}
	if _, live := f.srv.Key(leftover.SID); live {
		t.Fatal("the leftover on a later page was not deleted")
	}
	if n := f.srv.Count(http.MethodGet, "/v1/Keys"); n != 3 {
		t.Fatalf("%d list pages read, want 3", n)
	}
}

// pass forwards r to base and copies the answer to w.
func pass(t *testing.T, base string, w http.ResponseWriter, r *http.Request) {
	t.Helper()
	out, err := http.NewRequestWithContext(r.Context(), r.Method, base+r.URL.RequestURI(), r.Body)
	if err != nil {
		t.Fatal(err)
	}
	out.Header, out.Host = r.Header.Clone(), r.Host // the fake builds next_page_url from Host
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	_, _ = w.Write(buf.Bytes())
}

func TestCreateNeverDeletesTheCurrentOrAdminKey(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	name := twilio.KeyName(secretName, idemKey)
	named := f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeStandard, name, nil)
	admin := f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeMain, name, nil)
	req := f.request(f.srv.URL)
	req.CredentialID, req.Current = named.SID, providers.NewValue(named.Value())
	req.Secrets = httpxtest.Secrets{adminSecret: admin.Value()}
	if _, err := twilio.New().Create(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, live := f.srv.Key(named.SID); !live {
		t.Fatal("the current key was deleted because of its name")
	}
	if _, live := f.srv.Key(admin.SID); !live {
		t.Fatal("the admin key was deleted because of its name")
	}
}

func TestCreateRefusesACredentialIdThatIsNotTheCurrentKey(t *testing.T) {
	f := newFixture(t, twiliotest.TypeRestricted)
	victim := f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeRestricted, "payments", json.RawMessage(`{"allow":["/twilio/voice/calls/create"]}`))
	req := f.request(f.srv.URL)
	req.CredentialID = victim.SID
	_, err := twilio.New().Create(t.Context(), req)
	ce := wantConfigError(t, err, "CredentialId")
	if !strings.Contains(ce.Error(), f.current.SID) {
		t.Errorf("%q does not name the value's key", ce)
	}
	if n := len(f.srv.Requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestCreateNeedsAnIdempotencyKey(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	req := f.request(f.srv.URL)
	req.IdempotencyKey = ""
	if _, err := twilio.New().Create(t.Context(), req); err == nil || !providers.IsPermanent(err) {
		t.Fatalf("Create without an idempotency key: %v", err)
	}
}

func TestVerifyWaitsForPropagation(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	f.srv.SetPropagation(2)
	p := twilio.New()
	req := f.request(f.srv.URL)
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		err := p.Verify(t.Context(), req, c)
		e := wantTransient(t, err, http.StatusUnauthorized)
		if !strings.Contains(e.Reason, "propagate") || e.Code != "20003" || !strings.HasPrefix(e.RequestID, "RQ") {
			t.Errorf("%v", e)
		}
		clean(t, err, f.secrets(secretOf(c.Value.Reveal()))...)
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatalf("after propagation: %v", err)
	}
}

func TestVerifyNeedsAKey(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	for _, v := range []string{"", "nocolon", "AC0123456789abcdef0123456789abcdef:token", "SK0123456789abcdef0123456789abcdef:"} {
		err := twilio.New().Verify(t.Context(), f.request(f.srv.URL), providers.Credential{Value: providers.NewValue(v)})
		if err == nil || !providers.IsPermanent(err) {
			t.Fatalf("Verify(%q): %v", v, err)
		}
		clean(t, err, "0123456789abcdef0123456789abcdef")
	}
}

func TestRevokeOfAGoneKeySucceeds(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	if err := twilio.New().Revoke(t.Context(), f.request(f.srv.URL), goneKeySID); err != nil {
		t.Fatal(err)
	}
	// A hand-written version whose key is gone: its value no longer authenticates, the lookup finds
	// nothing: nothing to revoke.
	req := f.request(f.srv.URL)
	req.HandWritten, req.Retired = true, providers.NewValue(goneKeySID+":oldsecret")
	if err := twilio.New().Revoke(t.Context(), req, goneKeySID); err != nil {
		t.Fatal(err)
	}
}

func TestRevokeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(f *fixture, req *providers.Request) string
		refusal string
		calls   bool
	}{
		{"not an SID", func(f *fixture, req *providers.Request) string { return "SK01" }, "not an API key SID", false},
		{"the latest version's key by kvrotator's record", func(f *fixture, req *providers.Request) string { return f.current.SID }, "latest version", false},
		{"the latest version's key by its value", func(f *fixture, req *providers.Request) string {
			req.CredentialID = goneKeySID
			return f.current.SID
		}, "its value is that key", false},
		{"a key the replaced version does not hold", func(f *fixture, req *providers.Request) string {
			retired := f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeStandard, "retired", nil)
			req.Retired = providers.NewValue(retired.Value())
			return f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeStandard, "someone else's", nil).SID
		}, "holds key", false},
		{"hand-written, the value not a key", func(f *fixture, req *providers.Request) string {
			req.HandWritten, req.Retired = true, providers.NewValue("not-a-key")
			return f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeStandard, "victim", nil).SID
		}, "not a Twilio key", false},
		{"hand-written, a forged value", func(f *fixture, req *providers.Request) string {
			victim := f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeStandard, "victim", nil)
			req.HandWritten, req.Retired = true, providers.NewValue(victim.SID+":forged-by-the-tag-writer")
			return victim.SID
		}, "does not authenticate", true},
		{"the admin key", func(f *fixture, req *providers.Request) string { return f.adminID }, "admin key", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twiliotest.TypeStandard)
			req := f.request(f.srv.URL)
			id := tc.setup(f, &req)
			err := twilio.New().Revoke(t.Context(), req, id)
			wantRefused(t, err, tc.refusal)
			clean(t, err, f.secrets()...)
			if n := f.srv.Count(http.MethodDelete, "/v1/Keys/"+id); n != 0 {
				t.Fatal("a DELETE was sent")
			}
			if n := len(f.srv.Requests()); !tc.calls && n != 0 {
				t.Fatalf("%d requests before refusing", n)
			}
		})
	}
}

func TestRevokeOfAHandWrittenVersion(t *testing.T) {
	for _, typ := range []string{twiliotest.TypeStandard, twiliotest.TypeRestricted} {
		t.Run(typ, func(t *testing.T) {
			// The replaced version's value authenticates: a 200, or a 403 for a restricted key whose
			// policy does not allow the verification call, both prove it.
			f := newFixture(t, typ)
			var policy json.RawMessage
			if typ == twiliotest.TypeRestricted {
				policy = json.RawMessage(`{"allow":["/twilio/voice/calls/read"]}`)
			}
			old := f.srv.AddKey(f.srv.Account.SID, typ, "old", policy)
			req := f.request(f.srv.URL)
			req.HandWritten, req.Retired = true, providers.NewValue(old.Value())
			if err := twilio.New().Revoke(t.Context(), req, old.SID); err != nil {
				t.Fatal(err)
			}
			if _, live := f.srv.Key(old.SID); live {
				t.Fatal("the proven key is still live")
			}
		})
	}
}

func TestAdminSecretProblems(t *testing.T) {
	for _, tc := range []struct{ name, value, reason string }{
		{"no colon", "SK0123456789abcdef0123456789abcdefsecretsecret", "is not <SID>:<secret>"},
		{"not an SID", "user:secretsecretsecretsecretsecret", "is not <SID>:<secret>"},
		{"no secret", "AC0123456789abcdef0123456789abcdef:", "no secret after the SID"},
		{"a space", "AC0123456789abcdef0123456789abcdef:secret secret", "no secret after the SID, or one with spaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twiliotest.TypeStandard)
			req := f.request(f.srv.URL)
			req.Secrets = httpxtest.Secrets{adminSecret: tc.value}
			_, err := twilio.New().Create(t.Context(), req)
			ce := wantConfigError(t, err, twilio.TagAdminSecret)
			if !strings.Contains(ce.Error(), tc.reason) {
				t.Errorf("%q does not say %q", ce, tc.reason)
			}
			clean(t, err, "secretsecretsecret")
			if n := len(f.srv.Requests()); n != 0 {
				t.Fatalf("%d requests", n)
			}
		})
	}
	t.Run("missing secret", func(t *testing.T) {
		f := newFixture(t, twiliotest.TypeStandard)
		req := f.request(f.srv.URL)
		req.Secrets = httpxtest.Secrets{}
		_, err := twilio.New().Create(t.Context(), req)
		if !errors.Is(err, httpxtest.ErrNotFound) || !strings.Contains(err.Error(), `"twilio-admin"`) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("the rotated secret itself", func(t *testing.T) {
		f := newFixture(t, twiliotest.TypeStandard)
		req := f.request(f.srv.URL)
		req.Params[twilio.TagAdminSecret] = secretName
		_, err := twilio.New().Create(t.Context(), req)
		wantConfigError(t, err, twilio.TagAdminSecret)
	})
}

func TestAdminCredentials(t *testing.T) {
	t.Run("the Account SID and Auth Token work", func(t *testing.T) {
		f := newFixture(t, twiliotest.TypeStandard)
		req := f.request(f.srv.URL)
		req.Secrets = httpxtest.Secrets{adminSecret: f.srv.Account.Credentials()}
		if _, err := twilio.New().Create(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	})
	for _, tc := range []struct {
		name  string
		admin func(f *fixture) string
	}{
		{"a Standard key cannot manage keys", func(f *fixture) string {
			return f.srv.AddKey(f.srv.Account.SID, twiliotest.TypeStandard, "standard", nil).Value()
		}},
		{"unknown credentials", func(*fixture) string { return "SK00000000000000000000000000000000:nope" }},
		{"another account's Main key", func(f *fixture) string {
			other := f.srv.AddAccount()
			return f.srv.AddKey(other.SID, twiliotest.TypeMain, "other", nil).Value()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, twiliotest.TypeStandard)
			req := f.request(f.srv.URL)
			admin := tc.admin(f)
			req.Secrets = httpxtest.Secrets{adminSecret: admin}
			_, err := twilio.New().Create(t.Context(), req)
			e := wantPermanent(t, err, http.StatusUnauthorized)
			if e.Code != "20003" || !strings.Contains(e.Reason, "managing keys needs a Main key") {
				t.Errorf("%v", e)
			}
			clean(t, err, f.secrets(secretOf(admin))...)
		})
	}
}

func TestRateLimited(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	f.srv.Throttle(1, 9*time.Second)
	_, err := twilio.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, http.StatusTooManyRequests)
	if e.Code != "20429" || e.RetryAfter() != 9*time.Second {
		t.Fatalf("%v", e)
	}
	f.srv.Throttle(1, 0) // without Retry-After: the engine's back-off
	_, err = twilio.New().Create(t.Context(), f.request(f.srv.URL))
	if e := wantTransient(t, err, http.StatusTooManyRequests); e.RetryAfter() != 0 {
		t.Fatalf("%v", e)
	}
}

func TestUnavailable(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	f.srv.FailNext(1, http.StatusServiceUnavailable)
	_, err := twilio.New().Create(t.Context(), f.request(f.srv.URL))
	wantTransient(t, err, http.StatusServiceUnavailable)
}

func TestAPIDown(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	f.srv.Close()
	_, err := twilio.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, 0)
	if !strings.Contains(e.Reason, "could not be reached") {
		t.Errorf("%v", e)
	}
}

func TestTimeout(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	f.srv.SetDelay(2 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := twilio.New(twilio.WithTimeout(100*time.Millisecond)).Create(ctx, f.request(f.srv.URL))
	e := wantTransient(t, err, 0)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(e.Reason, "no answer within 100ms") {
		t.Errorf("%v", e)
	}
}

// A server that echoes the credentials it rejects never gets them into an error.
func TestNoSecretInAnyError(t *testing.T) {
	f := newFixture(t, twiliotest.TypeStandard)
	f.srv.EchoKeys(true)
	f.srv.SetPropagation(1)
	p := twilio.New()
	req := f.request(f.srv.URL)
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Verify(t.Context(), req, c)
	e := wantTransient(t, err, http.StatusUnauthorized)
	if !strings.Contains(e.Message, "[redacted]") {
		t.Fatalf("the server's echo was not redacted (or not made): %q", e.Message)
	}
	clean(t, err, f.secrets(secretOf(c.Value.Reveal()))...)

	bad := f.adminID + ":wrongsecretwrongsecretwrongsecret"
	req.Secrets = httpxtest.Secrets{adminSecret: bad}
	_, err = p.Create(t.Context(), req)
	wantPermanent(t, err, http.StatusUnauthorized)
	clean(t, err, f.secrets(secretOf(bad))...)
}
