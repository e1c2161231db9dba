package datadog_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/datadog"
	"github.com/kvrotator/kvrotator/providers/datadog/datadogtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(registry.Names(), datadog.Name) {
		t.Fatalf("registry.Names() = %v, without %s", registry.Names(), datadog.Name)
	}
	set, problems := registry.Build(registry.Env{})
	if problems[datadog.Name] != nil {
		t.Fatalf("building %s: %v", datadog.Name, problems[datadog.Name])
	}
	p, ok := set.Lookup(" Datadog ")
	if !ok {
		t.Fatal("Lookup found nothing")
	}
	if _, ok := p.(*datadog.Provider); !ok {
		t.Fatalf("Lookup = %T", p)
	}
	if _, ok := p.(providers.Revoker); !ok || p.Shape() != providers.ShapeCreateRevoke {
		t.Fatal("the datadog provider is not create-then-revoke")
	}
}

// calls lists the requests the server received, as "METHOD path who" (who: the key that
// authenticated, by role).
func calls(f *fixture, newID string) []string {
	var got []string
	for _, r := range f.srv.Requests() {
		who := "admin"
		switch {
		case r.APIKeyID == newID || r.AppKeyID == newID:
			who = "new"
		case r.APIKeyID == f.current.ID || r.AppKeyID == f.current.ID:
			who = "current"
		case r.APIKeyID == "" && r.AppKeyID == "":
			who = "nobody"
		}
		got = append(got, r.Method+" "+r.Path+" "+who)
	}
	return got
}

func TestRotationAPIKey(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	p := datadog.New()
	req := f.request(f.srv.URL)

	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	k, ok := f.srv.Key(c.CredentialID)
	if !ok || k.Value != c.Value.Reveal() || k.Kind != datadogtest.KindAPI {
		t.Fatal("Create's credential is not the API key Datadog created")
	}
	if want := datadog.KeyName(secretName, idemKey); k.Name != want || want != "kvrotator-app-datadog-kvr-0123456789abcdef" {
		t.Errorf("new key named %q, want %q", k.Name, want)
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	later := req
	later.CredentialID, later.Current, later.Retired = c.CredentialID, c.Value, providers.NewValue(f.current.Value)
	if err := p.Revoke(t.Context(), later, f.current.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, live := f.srv.Key(f.current.ID); live {
		t.Error("the old key is still live after Revoke")
	}
	want := []string{
		"GET /api/v2/api_keys admin",
		"POST /api/v2/api_keys admin",
		"GET /api/v1/validate new",
		"GET /api/v2/api_keys/" + f.current.ID + " admin",
		"DELETE /api/v2/api_keys/" + f.current.ID + " admin",
	}
	if got := calls(f, c.CredentialID); !slices.Equal(got, want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if q := f.srv.Requests()[0].Query; !strings.Contains(q, "filter=kvrotator-app-datadog-kvr-0123456789abcdef") || !strings.Contains(q, "page%5Bsize%5D=100") {
		t.Errorf("list query %q", q)
	}
}

func TestRotationApplicationKey(t *testing.T) {
	for _, owner := range []string{"", serviceAccount} {
		t.Run("owner="+owner, func(t *testing.T) {
			f := newFixture(t, datadog.KeyTypeApplication, owner)
			p := datadog.New()
			req := f.request(f.srv.URL)
			c, err := p.Create(t.Context(), req)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			k, _ := f.srv.Key(c.CredentialID)
			wantOwner := owner
			if owner == "" {
				wantOwner = datadogtest.AdminUser
			}
			if k.Value != c.Value.Reveal() || k.Kind != datadogtest.KindApplication || k.Owner != wantOwner {
				t.Fatalf("new key %+v", k)
			}
			if !slices.Equal(k.Scopes, appScopes) {
				t.Errorf("scopes %v, want the current key's %v", k.Scopes, appScopes)
			}
			if err := p.Verify(t.Context(), req, c); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			later := req
			later.CredentialID, later.Current, later.Retired = c.CredentialID, c.Value, providers.NewValue(f.current.Value)
			if err := p.Revoke(t.Context(), later, f.current.ID); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
			if _, live := f.srv.Key(f.current.ID); live {
				t.Error("the old key is still live after Revoke")
			}
			coll := "/api/v2/current_user/application_keys"
			if owner != "" {
				coll = "/api/v2/service_accounts/" + owner + "/application_keys"
			}
			want := []string{
				"GET " + coll + " admin",
				"GET " + coll + "/" + f.current.ID + " admin",
				"POST " + coll + " admin",
				"GET /api/v2/validate_keys new",
				"GET " + coll + "/" + f.current.ID + " admin",
				"DELETE " + coll + "/" + f.current.ID + " admin",
			}
			if got := calls(f, c.CredentialID); !slices.Equal(got, want) {
				t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestScopesTagIsTheFallback(t *testing.T) {
	for _, tc := range []struct {
		name     string
		credID   string
		tag      string
		unscoped bool
		want     []string
	}{
		{"no CredentialId", "", "metrics_read", false, []string{"metrics_read"}},
		{"current key gone", goneKeyID, "metrics_read", false, []string{"metrics_read"}},
		{"no CredentialId, no tag: the owner's permissions", "", "", false, nil},
		{"the current key has no scopes", "current", "metrics_read", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, datadog.KeyTypeApplication, "")
			req := f.request(f.srv.URL)
			switch tc.credID {
			case "current":
				if tc.unscoped {
					f.current = f.srv.AddAppKey("unscoped", datadogtest.AdminUser, nil)
					req.Current = providers.NewValue(f.current.Value)
				}
				req.CredentialID = f.current.ID
			default:
				req.CredentialID = tc.credID
			}
			req.Params["CredentialId"] = req.CredentialID
			if tc.tag != "" {
				req.Params[datadog.TagScopes] = tc.tag
			}
			c, err := datadog.New().Create(t.Context(), req)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if k, _ := f.srv.Key(c.CredentialID); !slices.Equal(k.Scopes, tc.want) {
				t.Errorf("scopes %v, want %v", k.Scopes, tc.want)
			}
		})
	}
}

// A current key with an empty scope list is replaced by a key with an empty list, never by an unscoped
// key (which would have all its owner's permissions).
func TestEmptyScopesStayEmpty(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeApplication, "")
	f.current = f.srv.AddAppKey("no permissions", datadogtest.AdminUser, []string{})
	req := f.request(f.srv.URL)
	c, err := datadog.New().Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := f.srv.Key(c.CredentialID); k.Scopes == nil || len(k.Scopes) != 0 {
		t.Fatalf("scopes %#v, want an empty list", k.Scopes)
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	for _, kind := range []string{datadog.KeyTypeAPI, datadog.KeyTypeApplication} {
		t.Run(kind, func(t *testing.T) {
			// An interrupted attempt left a key; the retry deletes it and creates another: never two live
			// keys for one idempotency key.
			f := newFixture(t, kind, "")
			p := datadog.New()
			req := f.request(f.srv.URL)
			first, err := p.Create(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			second, err := p.Create(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			named := f.srv.Named(datadog.KeyName(secretName, idemKey))
			if len(named) != 1 || named[0].ID != second.CredentialID || first.CredentialID == second.CredentialID {
				t.Fatalf("%d keys of the name after a retry; want only the second", len(named))
			}
			if _, live := f.srv.Key(f.current.ID); !live {
				t.Fatal("the current key was deleted")
			}
		})
	}
}

func TestCreateNeverDeletesTheCurrentKey(t *testing.T) {
	// The current key bears the name (a retry after the vault write, say): it stays.
	f := newFixture(t, datadog.KeyTypeAPI, "")
	named := f.srv.AddAPIKey(datadog.KeyName(secretName, idemKey))
	req := f.request(f.srv.URL)
	req.CredentialID, req.Current = named.ID, providers.NewValue(named.Value)
	if _, err := datadog.New().Create(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, live := f.srv.Key(named.ID); !live {
		t.Fatal("the current key was deleted because of its name")
	}
}

func TestCreateNeedsAnIdempotencyKey(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	req := f.request(f.srv.URL)
	req.IdempotencyKey = ""
	if _, err := datadog.New().Create(t.Context(), req); err == nil || !providers.IsPermanent(err) {
		t.Fatalf("Create without an idempotency key: %v", err)
	}
	if n := len(f.srv.Requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestKeyName(t *testing.T) {
	if got := datadog.KeyName("App-DB", "kvr-1"); got != "kvrotator-app-db-kvr-1" {
		t.Errorf("KeyName = %q", got)
	}
	long := datadog.KeyName(strings.Repeat("s", 127), idemKey)
	if len(long) != datadog.MaxNameChars || !strings.HasSuffix(long, "-"+idemKey) {
		t.Errorf("KeyName of a long secret: %q (%d)", long, len(long))
	}
}

func TestVerifyWaitsForPropagation(t *testing.T) {
	for _, kind := range []string{datadog.KeyTypeAPI, datadog.KeyTypeApplication} {
		t.Run(kind, func(t *testing.T) {
			f := newFixture(t, kind, "")
			f.srv.SetPropagation(2)
			p := datadog.New()
			req := f.request(f.srv.URL)
			c, err := p.Create(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				err := p.Verify(t.Context(), req, c)
				status := http.StatusForbidden
				if kind == datadog.KeyTypeApplication {
					status = http.StatusUnauthorized
				}
				e := wantTransient(t, err, status)
				if !strings.Contains(e.Reason, "propagate") {
					t.Errorf("attempt %d: reason %q", i, e.Reason)
				}
				clean(t, err, f.secrets(c.Value.Reveal())...)
			}
			if err := p.Verify(t.Context(), req, c); err != nil {
				t.Fatalf("after propagation: %v", err)
			}
		})
	}
}

func TestVerifyNeedsAValue(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	if err := datadog.New().Verify(t.Context(), f.request(f.srv.URL), providers.Credential{CredentialID: "x"}); err == nil || !providers.IsPermanent(err) {
		t.Fatalf("Verify without a value: %v", err)
	}
}

func TestRevokeOfAGoneKeySucceeds(t *testing.T) {
	for _, kind := range []string{datadog.KeyTypeAPI, datadog.KeyTypeApplication} {
		f := newFixture(t, kind, "")
		req := f.request(f.srv.URL)
		req.HandWritten, req.Retired = true, providers.NewValue("0123456789abcdef0123456789abcdef")
		if err := datadog.New().Revoke(t.Context(), req, goneKeyID); err != nil {
			t.Fatalf("%s: Revoke of a gone key: %v", kind, err)
		}
	}
}

// A version kvrotator did not write names the key to revoke only by its CredentialId tag: the key is
// deleted only when the replaced version's value proves it.
func TestRevokeOfAHandWrittenVersion(t *testing.T) {
	for _, tc := range []struct {
		name        string
		kind, owner string
		readable    bool   // One-Time-Read off: Datadog shows current-user application keys
		retired     string // "key": the key's own value; "forged": same last four, not a key; "other": another key's
		refusal     string // "" for deleted
	}{
		{"API key, its own value", datadog.KeyTypeAPI, "", false, "key", ""},
		{"API key, forged value", datadog.KeyTypeAPI, "", false, "forged", "holds another key"},
		{"API key, no value", datadog.KeyTypeAPI, "", false, "", "cannot be read"},
		{"application key in One-Time-Read mode, its own value", datadog.KeyTypeApplication, "", false, "key", ""},
		{"application key in One-Time-Read mode, forged value", datadog.KeyTypeApplication, "", false, "forged", "does not authenticate"},
		{"application key in One-Time-Read mode, another key's value", datadog.KeyTypeApplication, "", false, "other", "holds another key"},
		{"readable application key, its own value", datadog.KeyTypeApplication, "", true, "key", ""},
		{"readable application key, forged value", datadog.KeyTypeApplication, "", true, "forged", "holds another key"},
		{"service account's key, its own value", datadog.KeyTypeApplication, serviceAccount, false, "key", ""},
		{"service account's key, forged value", datadog.KeyTypeApplication, serviceAccount, false, "forged", "does not authenticate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.kind, tc.owner)
			f.srv.SetOneTimeRead(!tc.readable)
			// The version being revoked held f.current; the latest holds a new key.
			victim := f.current
			var latest datadogtest.Key
			if tc.kind == datadog.KeyTypeAPI {
				latest = f.srv.AddAPIKey("latest")
			} else {
				owner := tc.owner
				if owner == "" {
					owner = datadogtest.AdminUser
				}
				latest = f.srv.AddAppKey("latest", owner, appScopes)
				f.current = latest
			}
			req := f.request(f.srv.URL)
			req.CredentialID, req.Current, req.HandWritten = latest.ID, providers.NewValue(latest.Value), true
			switch tc.retired {
			case "key":
				req.Retired = providers.NewValue(victim.Value)
			case "forged":
				req.Retired = providers.NewValue(strings.Repeat("f", len(victim.Value)-4) + victim.Value[len(victim.Value)-4:])
			case "other":
				other := f.srv.AddAppKey("other", datadogtest.AdminUser, nil)
				req.Retired = providers.NewValue(other.Value)
			}
			err := datadog.New().Revoke(t.Context(), req, victim.ID)
			_, live := f.srv.Key(victim.ID)
			if tc.refusal == "" {
				if err != nil || live {
					t.Fatalf("Revoke: %v (live %v)", err, live)
				}
				return
			}
			wantRefused(t, err, tc.refusal)
			clean(t, err, f.secrets(victim.Value, latest.Value)...)
			if !live {
				t.Fatal("the key was deleted on a tag's word")
			}
		})
	}
}

func TestRevokeRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kind    string
		setup   func(f *fixture, req *providers.Request) string // returns the id to revoke
		refusal string
		calls   bool // whether Datadog may be called before the refusal
	}{
		{"the latest version's key by kvrotator's record", datadog.KeyTypeAPI,
			func(f *fixture, req *providers.Request) string { return f.current.ID }, "latest version", false},
		{"not a key id", datadog.KeyTypeAPI,
			func(f *fixture, req *providers.Request) string { return "a.b" }, "not a Datadog key id", false},
		{"the latest version's key by its value", datadog.KeyTypeAPI,
			func(f *fixture, req *providers.Request) string { req.CredentialID = goneKeyID; return f.current.ID }, "its value is that key", true},
		{"the admin API key", datadog.KeyTypeAPI,
			func(f *fixture, req *providers.Request) string { return f.adminAPI.ID }, "admin key", true},
		{"another key than the replaced version's", datadog.KeyTypeAPI,
			func(f *fixture, req *providers.Request) string {
				req.Retired = providers.NewValue(f.srv.AddAPIKey("retired").Value)
				return f.srv.AddAPIKey("someone else's").ID
			}, "holds another key", true},
		{"an application key ending like the latest version's", datadog.KeyTypeApplication,
			func(f *fixture, req *providers.Request) string {
				other := f.srv.AddAppKey("other", datadogtest.AdminUser, nil)
				req.CredentialID = goneKeyID
				req.Current = providers.NewValue(strings.Repeat("0", 36) + other.Value[36:])
				return other.ID
			}, "cannot tell them apart", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.kind, "")
			req := f.request(f.srv.URL)
			id := tc.setup(f, &req)
			err := datadog.New().Revoke(t.Context(), req, id)
			wantRefused(t, err, tc.refusal)
			clean(t, err, f.secrets()...)
			if _, live := f.srv.Key(id); !live && tc.refusal != "not a Datadog key id" {
				t.Fatal("the key was deleted")
			}
			if n := len(f.srv.Requests()); !tc.calls && n != 0 {
				t.Fatalf("%d requests before refusing", n)
			}
			if n := f.srv.Count(http.MethodDelete, "/api/v2/api_keys/"+id) + f.srv.Count(http.MethodDelete, "/api/v2/current_user/application_keys/"+id); n != 0 {
				t.Fatal("a DELETE was sent")
			}
		})
	}
}

func TestAdminSecretProblems(t *testing.T) {
	for _, tc := range []struct {
		name, value, reason string
	}{
		{"not JSON", "0123456789abcdef0123456789abcdef", "is not"},
		{"no application key", `{"api_key":"0123456789abcdef0123456789abcdef"}`, "application_key is missing"},
		{"empty API key", `{"api_key":" ","application_key":"x"}`, "api_key is missing"},
		{"extra field", `{"api_key":"a","application_key":"b","site":"x"}`, "exactly those two fields"},
		{"a space in a key", `{"api_key":"ab cd","application_key":"b"}`, "not a Datadog key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, datadog.KeyTypeAPI, "")
			req := f.request(f.srv.URL)
			req.Secrets = httpxtest.Secrets{adminSecret: tc.value}
			_, err := datadog.New().Create(t.Context(), req)
			ce := wantConfigError(t, err, datadog.TagAdminSecret)
			if !strings.Contains(ce.Error(), tc.reason) {
				t.Errorf("%q does not say %q", ce, tc.reason)
			}
			clean(t, err, "0123456789abcdef0123456789abcdef")
			if n := len(f.srv.Requests()); n != 0 {
				t.Fatalf("%d requests", n)
			}
		})
	}
	t.Run("missing secret", func(t *testing.T) {
		f := newFixture(t, datadog.KeyTypeAPI, "")
		req := f.request(f.srv.URL)
		req.Secrets = httpxtest.Secrets{}
		_, err := datadog.New().Create(t.Context(), req)
		if !errors.Is(err, httpxtest.ErrNotFound) || !strings.Contains(err.Error(), `"datadog-admin"`) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("the rotated secret itself", func(t *testing.T) {
		f := newFixture(t, datadog.KeyTypeAPI, "")
		req := f.request(f.srv.URL)
		req.Params[datadog.TagAdminSecret] = secretName
		_, err := datadog.New().Create(t.Context(), req)
		wantConfigError(t, err, datadog.TagAdminSecret)
	})
}

func TestIssuerRefuses(t *testing.T) {
	t.Run("unknown admin keys", func(t *testing.T) {
		f := newFixture(t, datadog.KeyTypeAPI, "")
		req := f.request(f.srv.URL)
		req.Secrets = httpxtest.Secrets{adminSecret: `{"api_key":"0000000000000000000000000000dead","application_key":"000000000000000000000000000000000000beef"}`}
		_, err := datadog.New().Create(t.Context(), req)
		e := wantPermanent(t, err, http.StatusForbidden)
		if !strings.Contains(e.Reason, "refuses the admin keys") || !strings.Contains(e.Reason, "api_keys_write") || e.Message != "Forbidden" {
			t.Errorf("%v", e)
		}
	})
	t.Run("admin keys without the permission", func(t *testing.T) {
		f := newFixture(t, datadog.KeyTypeApplication, serviceAccount)
		weak := f.srv.AddAppKey("weak", datadogtest.AdminUser, []string{"api_keys_read"})
		f.adminApp = weak
		_, err := datadog.New().Create(t.Context(), f.request(f.srv.URL))
		e := wantPermanent(t, err, http.StatusForbidden)
		if !strings.Contains(e.Reason, "service_account_write") {
			t.Errorf("%v", e)
		}
		if f.srv.Created() != 0 {
			t.Fatal("a key was created")
		}
	})
	t.Run("unknown service account", func(t *testing.T) {
		f := newFixture(t, datadog.KeyTypeApplication, serviceAccount)
		req := f.request(f.srv.URL)
		req.Params[datadog.TagServiceAccount] = "77777777-0000-1234-0000-000000000000"
		_, err := datadog.New().Create(t.Context(), req)
		e := wantPermanent(t, err, http.StatusNotFound)
		if !strings.Contains(e.Reason, "no service account 77777777-0000-1234-0000-000000000000") {
			t.Errorf("%v", e)
		}
	})
}

func TestRateLimited(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	f.srv.Throttle(1, 42*time.Second)
	_, err := datadog.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, http.StatusTooManyRequests)
	if e.RetryAfter() != 42*time.Second || !strings.Contains(err.Error(), "retry after 42s") {
		t.Fatalf("RetryAfter %v: %v", e.RetryAfter(), err)
	}
}

func TestUnavailable(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	f.srv.FailNext(1, http.StatusServiceUnavailable)
	_, err := datadog.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, http.StatusServiceUnavailable)
	if e.RetryAfter() != 0 {
		t.Errorf("a 503 with rate limit to spare asks to wait %v", e.RetryAfter())
	}
}

func TestAPIDown(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	f.srv.Close()
	_, err := datadog.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, 0)
	if !strings.Contains(e.Reason, "could not be reached") {
		t.Errorf("%v", e)
	}
}

func TestTimeout(t *testing.T) {
	f := newFixture(t, datadog.KeyTypeAPI, "")
	f.srv.SetDelay(2 * time.Second)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := datadog.New(datadog.WithTimeout(100*time.Millisecond)).Create(ctx, f.request(f.srv.URL))
	e := wantTransient(t, err, 0)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(e.Reason, "no answer within 100ms") {
		t.Errorf("%v", e)
	}
}

// A server that echoes the keys it rejects never gets them into an error.
func TestNoKeyInAnyError(t *testing.T) {
	for _, kind := range []string{datadog.KeyTypeAPI, datadog.KeyTypeApplication} {
		f := newFixture(t, kind, "")
		f.srv.EchoKeys(true)
		f.srv.SetPropagation(1)
		p := datadog.New()
		req := f.request(f.srv.URL)
		c, err := p.Create(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Verify(t.Context(), req, c)
		e := wantTransient(t, err, map[string]int{datadog.KeyTypeAPI: 403, datadog.KeyTypeApplication: 401}[kind])
		if !strings.Contains(e.Message, "[redacted]") {
			t.Fatalf("the server's echo was not redacted (or not made): %q", e.Message)
		}
		clean(t, err, f.secrets(c.Value.Reveal())...)

		req.Secrets = httpxtest.Secrets{adminSecret: `{"api_key":"` + f.adminAPI.Value + `","application_key":"0123456789abcdef0123456789abcdef01234567"}`}
		_, err = p.Create(t.Context(), req)
		wantPermanent(t, err, http.StatusForbidden)
		clean(t, err, f.secrets("0123456789abcdef0123456789abcdef01234567")...)
	}
}
