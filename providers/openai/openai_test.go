package openai_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/openai"
	"github.com/kvrotator/kvrotator/providers/openai/openaitest"
	"github.com/kvrotator/kvrotator/providers/registry"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(registry.Names(), openai.Name) {
		t.Fatalf("registry.Names() = %v, without %s", registry.Names(), openai.Name)
	}
	set, problems := registry.Build(registry.Env{}) // no Azure credential: OpenAI needs none
	if problems[openai.Name] != nil {
		t.Fatalf("building %s: %v", openai.Name, problems[openai.Name])
	}
	for _, name := range []string{"openai", "OpenAI", " OPENAI "} {
		p, ok := set.Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) found nothing", name)
		}
		if _, ok := p.(*openai.Provider); !ok {
			t.Fatalf("Lookup(%q) = %T, want *openai.Provider", name, p)
		}
		if _, ok := p.(providers.Revoker); !ok {
			t.Fatalf("the %s provider cannot revoke", name)
		}
	}
}

func TestShape(t *testing.T) {
	if s := openai.New().Shape(); s != providers.ShapeCreateRevoke {
		t.Errorf("Shape() = %q, want %q", s, providers.ShapeCreateRevoke)
	}
}

// describe lists the requests a server received as "METHOD path who".
func describe(f *fixture, newID string) []string {
	var got []string
	for _, r := range f.srv.Requests() {
		who := "admin"
		switch {
		case r.KeyOf == newID && newID != "":
			who = "new"
		case r.KeyOf == f.current.ID:
			who = "old"
		case !r.Admin:
			who = "nobody"
		}
		path := strings.ReplaceAll(r.Path, "/v1/organization/projects/"+f.project, "…")
		got = append(got, r.Method+" "+path+" "+who)
	}
	return got
}

func TestRotation(t *testing.T) {
	f := newFixture(t)
	p := openai.New()
	req := f.request(f.srv.URL)

	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	sa, ok := f.srv.ServiceAccount(c.CredentialID)
	if !ok || sa.Key.Value != c.Value.Reveal() || sa.Project != f.project {
		t.Fatal("Create's credential is not the key of the service account OpenAI created in the project")
	}
	if want := openai.ServiceAccountName(secretName, idemKey); sa.Name != want || want != "kvrotator-app-openai-kvr-0123456789abcdef" {
		t.Errorf("new service account named %q, want %q", sa.Name, want)
	}
	if c.ExpiresAt != nil {
		t.Errorf("ExpiresAt = %v, want nil (no lifetime asked, no policy)", c.ExpiresAt)
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	// After the grace period the sweep revokes the old service account; the latest version now holds
	// the new one. The old one was stored by hand: its value proves it.
	if err := p.Revoke(t.Context(), f.revokeRequest(f.srv.URL, c, f.current.Key.Value, true), f.current.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, live := f.srv.ServiceAccount(f.current.ID); live || f.srv.Works(f.current.Key.Value) {
		t.Error("the old service account is still live after Revoke")
	}
	if got := f.srv.ServiceAccounts(f.project); len(got) != 1 || got[0].ID != c.CredentialID {
		t.Errorf("live service accounts %v, want the new one only", got)
	}

	want := []string{
		"GET …/service_accounts admin",
		"POST …/service_accounts admin",
		"GET /v1/models new",
		"GET …/service_accounts/" + f.current.ID + " admin",
		"GET /v1/models old",
		"GET …/api_keys admin",
		"DELETE …/service_accounts/" + f.current.ID + " admin",
	}
	if got := describe(f, c.CredentialID); !slices.Equal(got, want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if q := f.srv.Requests()[0].Query; q != "limit=100" {
		t.Errorf("list query %q, want limit=100", q)
	}

	// The next rotation revokes a service account kvrotator made (no proof needed, no value read).
	next := f.request(f.srv.URL)
	next.IdempotencyKey, next.CredentialID, next.Current = "kvr-fedcba9876543210", c.CredentialID, c.Value
	c2, err := p.Create(t.Context(), next)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(t.Context(), f.revokeRequest(f.srv.URL, c2, "", false), c.CredentialID); err != nil {
		t.Fatalf("Revoke of kvrotator's own: %v", err)
	}
	if _, live := f.srv.ServiceAccount(c.CredentialID); live {
		t.Error("the replaced kvrotator service account is still live")
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	// An attempt dies after OpenAI created the service account (its key shown to that attempt only):
	// the retry deletes that orphan and creates again. Never two live accounts for one idempotency key.
	f := newFixture(t)
	p := openai.New()
	req := f.request(f.srv.URL)
	first, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	named := f.srv.Named(f.project, openai.ServiceAccountName(secretName, idemKey))
	if len(named) != 1 || named[0].ID != second.CredentialID || first.CredentialID == second.CredentialID {
		t.Fatalf("%d service accounts named for the idempotency key, want the second attempt's only", len(named))
	}
	if f.srv.Works(first.Value.Reveal()) {
		t.Error("the first attempt's key still works")
	}
	if _, live := f.srv.ServiceAccount(f.current.ID); !live {
		t.Error("the current service account was deleted")
	}
	if f.srv.Created() != 2 {
		t.Errorf("%d created", f.srv.Created())
	}
}

func TestCreateDeletesEveryLeftoverOfTheSameName(t *testing.T) {
	f := newFixture(t)
	name := openai.ServiceAccountName(secretName, idemKey)
	f.srv.AddServiceAccount(f.project, name)
	f.srv.AddServiceAccount(f.project, name)
	other := f.srv.AddServiceAccount(f.project, openai.ServiceAccountName(secretName, "kvr-ffffffffffffffff"))
	c, err := openai.New().Create(t.Context(), f.request(f.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if named := f.srv.Named(f.project, name); len(named) != 1 || named[0].ID != c.CredentialID {
		t.Errorf("%d accounts of that name live, want the new one only", len(named))
	}
	if _, live := f.srv.ServiceAccount(other.ID); !live {
		t.Error("an account of another rotation was deleted")
	}
}

func TestCreateFindsLeftoversOnLaterPages(t *testing.T) {
	f := newFixture(t)
	for i := range 2*openai.PageSize + 5 {
		f.srv.AddServiceAccount(f.project, fmt.Sprintf("someone else's %d", i))
	}
	orphan := f.srv.AddServiceAccount(f.project, openai.ServiceAccountName(secretName, idemKey))
	if _, err := openai.New().Create(t.Context(), f.request(f.srv.URL)); err != nil {
		t.Fatal(err)
	}
	if _, live := f.srv.ServiceAccount(orphan.ID); live {
		t.Error("the leftover on the third page was not deleted")
	}
	var queries []string
	for _, r := range f.srv.Requests() {
		if r.Method == http.MethodGet {
			queries = append(queries, r.Query)
		}
	}
	if len(queries) != 3 || !strings.Contains(queries[1], "after=") || !strings.Contains(queries[2], "after=") {
		t.Errorf("list queries %v, want three pages", queries)
	}
}

func TestCreateNeverDeletesTheCurrentServiceAccount(t *testing.T) {
	// Even if the account the current version holds bore the idempotency key's name.
	f := newFixture(t)
	f.current = f.srv.AddServiceAccount(f.project, openai.ServiceAccountName(secretName, idemKey))
	c, err := openai.New().Create(t.Context(), f.request(f.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, live := f.srv.ServiceAccount(f.current.ID); !live || c.CredentialID == f.current.ID {
		t.Error("the current service account was deleted or returned")
	}
}

func TestCreateNeedsAnIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	req := f.request(f.srv.URL)
	req.IdempotencyKey = ""
	if _, err := openai.New().Create(t.Context(), req); err == nil || !providers.IsPermanent(err) {
		t.Fatalf("Create without an idempotency key: %v", err)
	}
	if n := len(f.srv.Requests()); n != 0 {
		t.Errorf("%d requests", n)
	}
}

func TestServiceAccountName(t *testing.T) {
	long := strings.Repeat("Long-Secret-Name-", 8)
	for _, tc := range []struct{ secret, want string }{
		{"App-OpenAI", "kvrotator-app-openai-kvr-0123456789abcdef"},
		{long, "kvrotator-" + strings.ToLower(long)[:openai.MaxNameChars-len("kvrotator-")-1-len(idemKey)] + "-" + idemKey},
	} {
		got := openai.ServiceAccountName(tc.secret, idemKey)
		if got != tc.want || len(got) > openai.MaxNameChars {
			t.Errorf("ServiceAccountName(%q) = %q (%d), want %q", tc.secret, got, len(got), tc.want)
		}
	}
}

func TestKeyLifetime(t *testing.T) {
	t.Run("asked", func(t *testing.T) {
		f := newFixture(t)
		req := f.request(f.srv.URL)
		req.Params[openai.TagKeyLifetimeDays] = "30"
		c, err := openai.New().Create(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		sa, _ := f.srv.ServiceAccount(c.CredentialID)
		want := time.Now().Add(30 * 24 * time.Hour)
		if c.ExpiresAt == nil || c.ExpiresAt.Sub(want).Abs() > time.Minute || sa.Key.ExpiresAt != c.ExpiresAt.Unix() {
			t.Errorf("ExpiresAt = %v, want about %v and OpenAI's %d", c.ExpiresAt, want, sa.Key.ExpiresAt)
		}
	})
	t.Run("required by a policy", func(t *testing.T) {
		f := newFixture(t)
		f.srv.SetMaxKeyLifetime(90 * 24 * time.Hour)
		_, err := openai.New().Create(t.Context(), f.request(f.srv.URL))
		e := wantPermanent(t, err, http.StatusBadRequest)
		if !strings.Contains(e.Message, "expires_in_seconds") {
			t.Errorf("message %q", e.Message)
		}
		req := f.request(f.srv.URL)
		req.Params[openai.TagKeyLifetimeDays] = "90"
		if _, err := openai.New().Create(t.Context(), req); err != nil {
			t.Fatalf("with the tag: %v", err)
		}
	})
}

func TestVerifyWaitsForPropagation(t *testing.T) {
	f := newFixture(t)
	f.srv.SetPropagation(2)
	p := openai.New()
	req := f.request(f.srv.URL)
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		e := wantTransient(t, p.Verify(t.Context(), req, c), http.StatusUnauthorized)
		if !strings.Contains(e.Reason, "propagate") {
			t.Errorf("reason %q", e.Reason)
		}
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatalf("after propagation: %v", err)
	}
}

func TestVerifyNeedsAValue(t *testing.T) {
	f := newFixture(t)
	err := openai.New().Verify(t.Context(), f.request(f.srv.URL), providers.Credential{CredentialID: "svc_acct_x"})
	if err == nil || !providers.IsPermanent(err) {
		t.Fatalf("Verify without a value: %v", err)
	}
}

func TestVerifyOutOfQuotaIsPermanent(t *testing.T) {
	f := newFixture(t)
	p := openai.New()
	req := f.request(f.srv.URL)
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ExhaustQuota(true)
	e := wantPermanent(t, p.Verify(t.Context(), req, c), http.StatusTooManyRequests)
	if !strings.Contains(e.Reason, "quota is exhausted") || e.Code != "insufficient_quota" {
		t.Errorf("error %v", e)
	}
}

func TestRevokeOfAGoneAccountSucceeds(t *testing.T) {
	f := newFixture(t)
	p := openai.New()
	c, err := p.Create(t.Context(), f.request(f.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	for _, hand := range []bool{false, true} {
		if err := p.Revoke(t.Context(), f.revokeRequest(f.srv.URL, c, "sk-svcacct-gone", hand), "svc_acct_gone"); err != nil {
			t.Errorf("handWritten=%v: %v", hand, err)
		}
	}
}

func TestRevokeRefuses(t *testing.T) {
	f := newFixture(t)
	p := openai.New()
	c, err := p.Create(t.Context(), f.request(f.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	victim := f.srv.AddServiceAccount(f.project, "payments team")
	mine := f.srv.AddServiceAccount(f.project, openai.ServiceAccountName(secretName, "kvr-1111111111111111"))
	for _, tc := range []struct {
		name   string
		req    providers.Request
		id     string
		calls  bool // the refusal needs OpenAI's word
		reason string
	}{
		{"not an id", f.revokeRequest(f.srv.URL, c, f.current.Key.Value, false), "svc acct", false, "not an OpenAI service account id"},
		{"a key for an id", f.revokeRequest(f.srv.URL, c, f.current.Key.Value, false), "sk-svcacct-abc", false, "not an OpenAI service account id"},
		{"the latest version's account", f.revokeRequest(f.srv.URL, c, f.current.Key.Value, false), c.CredentialID, false, "the latest version of secret"},
		{"the same key in both versions", f.revokeRequest(f.srv.URL, c, c.Value.Reveal(), false), mine.ID, false, "holds the same key as the latest version"},
		{"hand-written, value unknown", f.revokeRequest(f.srv.URL, c, "", true), victim.ID, false, "cannot be read to prove it"},
		{"not kvrotator's", f.revokeRequest(f.srv.URL, c, f.current.Key.Value, false), victim.ID, true, "kvrotator did not create it"},
		{"hand-written, value does not authenticate", f.revokeRequest(f.srv.URL, c, "sk-svcacct-forgedforgedforgedforged", true), victim.ID, true, "does not authenticate"},
		{"hand-written, value is another account's key", f.revokeRequest(f.srv.URL, c, f.current.Key.Value, true), victim.ID, true, "lists no key of it"},
		{"hand-written, value is the admin key", f.revokeRequest(f.srv.URL, c, f.admin, true), victim.ID, true, "that version's value may not list models"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(f.srv.Requests())
			err := p.Revoke(t.Context(), tc.req, tc.id)
			wantRefused(t, err, tc.reason)
			clean(t, err, f.secrets(c.Value.Reveal(), victim.Key.Value)...)
			if calls := len(f.srv.Requests()) > n; calls != tc.calls {
				t.Errorf("OpenAI called: %v, want %v", calls, tc.calls)
			}
		})
	}
	for _, sa := range []openaitest.ServiceAccount{victim, mine, f.current} {
		if _, live := f.srv.ServiceAccount(sa.ID); !live {
			t.Errorf("service account %q was deleted", sa.Name)
		}
	}
	if _, live := f.srv.ServiceAccount(c.CredentialID); !live {
		t.Error("the latest version's service account was deleted")
	}
	if n := f.srv.Count(http.MethodDelete, f.accountsPath("/"+victim.ID)); n != 0 {
		t.Errorf("%d deletes", n)
	}
}

// A hand-written latest version whose value is a key of the account being revoked (restored by hand)
// is refused: OpenAI lists a key of that account that fits the latest value.
func TestRevokeRefusesTheAccountTheCurrentValueIs(t *testing.T) {
	f := newFixture(t)
	p := openai.New()
	old := f.srv.AddServiceAccount(f.project, "old")
	// Both versions' values are keys of the same account: a person pasted the same key (a copy
	// with trailing white space) into the latest version.
	latest := providers.Credential{CredentialID: "svc_acct_tagword", Value: providers.NewValue(old.Key.Value + " ")}
	err := p.Revoke(t.Context(), f.revokeRequest(f.srv.URL, latest, old.Key.Value, true), old.ID)
	wantRefused(t, err, "holds the same key as the latest version")

	// A key of the account whose redacted form fits the latest value.
	lookalike := old.Key.Value[:8] + "DIFFERENTMIDDLEPART" + old.Key.Value[len(old.Key.Value)-4:]
	latest.Value = providers.NewValue(lookalike)
	err = p.Revoke(t.Context(), f.revokeRequest(f.srv.URL, latest, old.Key.Value, true), old.ID)
	wantRefused(t, err, "looks like the latest version's value")
	if _, live := f.srv.ServiceAccount(old.ID); !live {
		t.Fatal("deleted")
	}
}

func TestAdminKeyProblems(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		admin  string
		status int // 0: refused before any call
		reason string
	}{
		{"unknown", "sk-admin-UnknownUnknownUnknownUnknownUnknown", 401, "does not accept the admin key"},
		{"read-only", f.srv.AddAdminKey(false), 403, "needs write permission"},
		{"a project key", f.current.Key.Value, 0, "project API key, not an admin key"},
		{"empty", "  ", 0, "the secret is empty"},
		{"with a space", "sk-admin-abc def", 0, "not an OpenAI API key"},
		{"too long", "sk-admin-" + strings.Repeat("x", 2000), 0, "not an OpenAI API key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := len(f.srv.Requests())
			req := f.request(f.srv.URL)
			req.Secrets = httpxtest.Secrets{adminSecret: tc.admin}
			_, err := openai.New().Create(t.Context(), req)
			clean(t, err, f.secrets(tc.admin)...)
			if tc.status == 0 {
				ce := wantConfigError(t, err, openai.TagAdminSecret)
				if !strings.Contains(ce.Reason, tc.reason) {
					t.Errorf("reason %q", ce.Reason)
				}
				if len(f.srv.Requests()) != n {
					t.Error("OpenAI was called")
				}
				return
			}
			e := wantPermanent(t, err, tc.status)
			if !strings.Contains(e.Reason, tc.reason) || !strings.Contains(e.Reason, adminSecret) {
				t.Errorf("reason %q", e.Reason)
			}
		})
	}
}

func TestAdminSecretProblems(t *testing.T) {
	f := newFixture(t)
	t.Run("missing from the vault", func(t *testing.T) {
		req := f.request(f.srv.URL)
		req.Secrets = httpxtest.Secrets{}
		_, err := openai.New().Create(t.Context(), req)
		if !errors.Is(err, httpxtest.ErrNotFound) || !strings.Contains(err.Error(), `"openai-admin"`) {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("the rotated secret itself", func(t *testing.T) {
		req := f.request(f.srv.URL)
		req.Params[openai.TagAdminSecret] = secretName
		_, err := openai.New().Create(t.Context(), req)
		wantConfigError(t, err, openai.TagAdminSecret)
	})
	t.Run("no secret reader", func(t *testing.T) {
		req := f.request(f.srv.URL)
		req.Secrets = nil
		if _, err := openai.New().Create(t.Context(), req); err == nil || !providers.IsPermanent(err) {
			t.Fatalf("error %v", err)
		}
	})
	if n := len(f.srv.Requests()); n != 0 {
		t.Errorf("%d requests", n)
	}
}

func TestUnknownProject(t *testing.T) {
	f := newFixture(t)
	req := f.request(f.srv.URL)
	req.Params[openai.TagProject] = "proj_doesnotexist"
	_, err := openai.New().Create(t.Context(), req)
	e := wantPermanent(t, err, http.StatusNotFound)
	if !strings.Contains(e.Reason, "openai-project") || !strings.Contains(e.Message, "No such project") {
		t.Errorf("error %v", e)
	}
}

func TestRateLimited(t *testing.T) {
	f := newFixture(t)
	f.srv.Throttle(1, 30*time.Second)
	_, err := openai.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, http.StatusTooManyRequests)
	if e.RetryAfter() != 30*time.Second || e.Code != "rate_limit_exceeded" || e.RequestID == "" {
		t.Errorf("error %v: RetryAfter %v, code %q, request id %q", e, e.RetryAfter(), e.Code, e.RequestID)
	}
	if f.srv.Created() != 0 {
		t.Error("created while rate-limited")
	}
}

func TestOutOfQuota(t *testing.T) {
	f := newFixture(t)
	f.srv.ExhaustQuota(true)
	_, err := openai.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantPermanent(t, err, http.StatusTooManyRequests)
	if !strings.Contains(e.Reason, "waiting does not help") || !strings.Contains(e.Reason, f.project) {
		t.Errorf("reason %q", e.Reason)
	}
}

func TestUnavailable(t *testing.T) {
	f := newFixture(t)
	for _, status := range []int{500, 502, 503, 504, 408} {
		f.srv.FailNext(1, status)
		_, err := openai.New().Create(t.Context(), f.request(f.srv.URL))
		wantTransient(t, err, status)
	}
}

func TestAPIDown(t *testing.T) {
	f := newFixture(t)
	f.srv.Close()
	_, err := openai.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, 0)
	if !strings.Contains(e.Reason, "could not be reached") {
		t.Errorf("reason %q", e.Reason)
	}
}

func TestTimeout(t *testing.T) {
	f := newFixture(t)
	f.srv.SetDelay(2 * time.Second)
	start := time.Now()
	_, err := openai.New(openai.WithTimeout(100*time.Millisecond)).Create(t.Context(), f.request(f.srv.URL))
	wantTransient(t, err, 0)
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v; the timeout did not apply", d)
	}
}

func TestNoKeyInAnyError(t *testing.T) {
	// A careless server echoes the key it rejects; no error repeats it.
	f := newFixture(t)
	f.srv.EchoKeys(true)
	readOnly := f.srv.AddAdminKey(false)
	wrong := "sk-admin-WrongWrongWrongWrongWrongWrongWrongWrong"
	all := f.secrets(readOnly, wrong)
	p := openai.New()

	for _, admin := range []string{wrong, readOnly} {
		req := f.request(f.srv.URL)
		req.Secrets = httpxtest.Secrets{adminSecret: admin}
		_, err := p.Create(t.Context(), req)
		if err == nil {
			t.Fatal("Create succeeded with a bad admin key")
		}
		clean(t, err, all...)
		if e := httpxtest.As[*openai.Error](t, err); !strings.Contains(e.Message, "[redacted]") {
			t.Errorf("Message %q: the echoed key should show as redacted", e.Message)
		}
	}

	f.srv.SetPropagation(1)
	req := f.request(f.srv.URL)
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Verify(t.Context(), req, c)
	wantTransient(t, err, http.StatusUnauthorized)
	clean(t, err, append(all, c.Value.Reveal())...)
	// A refused proof quotes nothing of the value it tried.
	err = p.Revoke(t.Context(), f.revokeRequest(f.srv.URL, c, "sk-svcacct-forgedforgedforgedforged", true), f.current.ID)
	wantRefused(t, err, "does not authenticate")
	clean(t, err, append(all, c.Value.Reveal(), "sk-svcacct-forgedforgedforgedforged")...)
}

// countingSecrets counts the secrets read.
type countingSecrets struct {
	httpxtest.Secrets
	reads *int
}

func (c countingSecrets) SecretValue(ctx context.Context, name string) (providers.Value, error) {
	*c.reads++
	return c.Secrets.SecretValue(ctx, name)
}

// The refusals that need no call read no secret either.
func TestRefusalsReadNothing(t *testing.T) {
	f := newFixture(t)
	reads := 0
	req := f.revokeRequest(f.srv.URL, providers.Credential{CredentialID: f.current.ID, Value: providers.NewValue(f.current.Key.Value)}, f.current.Key.Value, false)
	req.Secrets = countingSecrets{httpxtest.Secrets{adminSecret: f.admin}, &reads}
	wantRefused(t, openai.New().Revoke(t.Context(), req, f.current.ID), "the latest version")
	if reads != 0 || len(f.srv.Requests()) != 0 {
		t.Errorf("%d reads, %d requests", reads, len(f.srv.Requests()))
	}
}

func TestReferences(t *testing.T) {
	p := openai.New()
	for _, tc := range []struct {
		name   string
		params providers.Params
		want   []providers.Reference
	}{
		{"default API URL: built in", tags(), []providers.Reference{
			{Kind: providers.RefSecret, Tag: openai.TagAdminSecret, Value: "openai-admin"},
			{Kind: providers.RefAccount, Tag: openai.TagProject, Value: "proj_abc123XYZ"},
			{Kind: providers.RefURL, Tag: openai.TagAPIURL, Value: openai.DefaultAPIURL, Builtin: true},
		}},
		{"a proxy", tags("openai-api-url", "https://proxy.example.com/openai/", "openai-project", " proj_other "), []providers.Reference{
			{Kind: providers.RefSecret, Tag: openai.TagAdminSecret, Value: "openai-admin"},
			{Kind: providers.RefAccount, Tag: openai.TagProject, Value: "proj_other"},
			{Kind: providers.RefURL, Tag: openai.TagAPIURL, Value: "https://proxy.example.com/openai"},
		}},
		{"the default URL written in the tag: built in", tags("openai-api-url", openai.DefaultAPIURL+"/"), []providers.Reference{
			{Kind: providers.RefSecret, Tag: openai.TagAdminSecret, Value: "openai-admin"},
			{Kind: providers.RefAccount, Tag: openai.TagProject, Value: "proj_abc123XYZ"},
			{Kind: providers.RefURL, Tag: openai.TagAPIURL, Value: openai.DefaultAPIURL, Builtin: true},
		}},
		{"a look-alike of the default: bound or refused", tags("openai-api-url", "https://api.openai.com.attacker.example"), []providers.Reference{
			{Kind: providers.RefSecret, Tag: openai.TagAdminSecret, Value: "openai-admin"},
			{Kind: providers.RefAccount, Tag: openai.TagProject, Value: "proj_abc123XYZ"},
			{Kind: providers.RefURL, Tag: openai.TagAPIURL, Value: "https://api.openai.com.attacker.example"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.Validate(tc.params); err != nil {
				t.Fatal(err)
			}
			if got := p.References(tc.params); !slices.Equal(got, tc.want) {
				t.Errorf("References = %v, want %v", got, tc.want)
			}
		})
	}
	if refs := p.References(tags("openai-project", "")); refs != nil {
		t.Errorf("References of invalid tags = %v, want nil", refs)
	}
}
