package sendgrid_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/providers/sendgrid"
	"github.com/kvrotator/kvrotator/providers/sendgrid/sendgridtest"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(registry.Names(), sendgrid.Name) {
		t.Fatalf("registry.Names() = %v, without %s", registry.Names(), sendgrid.Name)
	}
	set, problems := registry.Build(registry.Env{}) // no Azure credential: SendGrid needs none
	if problems[sendgrid.Name] != nil {
		t.Fatalf("building %s: %v", sendgrid.Name, problems[sendgrid.Name])
	}
	for _, name := range []string{"sendgrid", "SendGrid", " SENDGRID "} {
		p, ok := set.Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) found nothing", name)
		}
		if _, ok := p.(*sendgrid.Provider); !ok {
			t.Fatalf("Lookup(%q) = %T, want *sendgrid.Provider", name, p)
		}
		if _, ok := p.(providers.Revoker); !ok {
			t.Fatalf("the %s provider cannot revoke", name)
		}
	}
}

func TestShape(t *testing.T) {
	if s := sendgrid.New().Shape(); s != providers.ShapeCreateRevoke {
		t.Errorf("Shape() = %q, want %q", s, providers.ShapeCreateRevoke)
	}
}

func TestRotation(t *testing.T) {
	f := newFixture(t)
	p := sendgrid.New()
	req := f.request(f.srv.URL)

	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	k, ok := f.srv.Key(c.CredentialID)
	if !ok || k.Value != c.Value.Reveal() {
		t.Fatal("Create's credential is not the key SendGrid created")
	}
	if want := sendgrid.KeyName(secretName, idemKey); k.Name != want || want != "kvrotator-app-sendgrid-kvr-0123456789abcdef" {
		t.Errorf("new key named %q, want %q", k.Name, want)
	}
	if !slices.Equal(k.Scopes, appScopes) {
		t.Errorf("new key has scopes %v, want the current key's %v", k.Scopes, appScopes)
	}
	if c.ExpiresAt != nil {
		t.Errorf("ExpiresAt = %v, want nil (SendGrid keys do not expire)", c.ExpiresAt)
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// After the grace period the sweep revokes the old key; the latest version now holds the new one.
	later := req
	later.CredentialID, later.Current = c.CredentialID, c.Value
	if err := p.Revoke(t.Context(), later, f.current.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, live := f.srv.Key(f.current.ID); live {
		t.Error("the old key is still live after Revoke")
	}
	if got := names(f.srv.Keys()); !slices.Equal(got, []string{"kvrotator admin", k.Name}) {
		t.Errorf("live keys %v, want the admin key and the new one", got)
	}

	// The calls, in order, and who made them: admin calls with the admin key, verify with the new key.
	var got []string
	for _, r := range f.srv.Requests() {
		who := "admin"
		if r.KeyID == c.CredentialID {
			who = "new"
		}
		got = append(got, r.Method+" "+r.Path+" "+who)
	}
	want := []string{
		"GET /v3/api_keys admin",
		"GET /v3/api_keys/" + f.current.ID + " admin",
		"POST /v3/api_keys admin",
		"GET /v3/scopes new",
		"DELETE /v3/api_keys/" + f.current.ID + " admin",
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if q := f.srv.Requests()[0].Query; q != "limit=100" {
		t.Errorf("list query %q, want limit=100 (SendGrid's key limit: one page holds them all)", q)
	}
}

func TestScopesAreCopiedFromTheCurrentKey(t *testing.T) {
	// SendGrid answers GET /v3/api_keys/{id} with the key's object; its OpenAPI document wraps it in
	// {"result":[…]}. Both work.
	for _, wrapped := range []bool{false, true} {
		f := newFixture(t)
		f.srv.WrapKeyDetails(wrapped)
		req := f.request(f.srv.URL)
		req.Params[sendgrid.TagScopes] = "stats.read" // only a fallback: the current key's scopes win
		c, err := sendgrid.New().Create(t.Context(), req)
		if err != nil {
			t.Fatalf("wrapped=%v: Create: %v", wrapped, err)
		}
		if k, _ := f.srv.Key(c.CredentialID); !slices.Equal(k.Scopes, appScopes) {
			t.Errorf("wrapped=%v: scopes %v, want %v", wrapped, k.Scopes, appScopes)
		}
	}
}

func TestScopesTagIsTheFallback(t *testing.T) {
	for _, tc := range []struct {
		name      string
		credID    func(f *fixture) string
		tag       string
		wantScope []string // nil: a ConfigError for sendgrid-scopes
		wantWhy   string
	}{
		{"no CredentialId", func(*fixture) string { return "" }, "mail.send, stats.read", []string{"mail.send", "stats.read"}, ""},
		{"current key gone", func(*fixture) string { return goneKeyID }, "mail.send", []string{"mail.send"}, ""},
		{"no CredentialId, no tag", func(*fixture) string { return "" }, "", nil, "no CredentialId"},
		{"current key gone, no tag", func(*fixture) string { return goneKeyID }, "", nil, goneKeyID + " no longer exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			req := f.request(f.srv.URL)
			req.CredentialID = tc.credID(f)
			req.Params["CredentialId"] = req.CredentialID
			if req.CredentialID == goneKeyID {
				req.Current = providers.NewValue(goneKey) // the value is the gone key
			}
			if tc.tag != "" {
				req.Params[sendgrid.TagScopes] = tc.tag
			}
			c, err := sendgrid.New().Create(t.Context(), req)
			if tc.wantScope == nil {
				ce := wantConfigError(t, err, sendgrid.TagScopes)
				if !strings.Contains(ce.Error(), tc.wantWhy) {
					t.Errorf("error %q does not say why (%q)", ce, tc.wantWhy)
				}
				if n := f.srv.Count(http.MethodPost, "/v3/api_keys"); n != 0 {
					t.Errorf("%d keys created without knowing their scopes", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if k, _ := f.srv.Key(c.CredentialID); !slices.Equal(k.Scopes, tc.wantScope) {
				t.Errorf("scopes %v, want %v", k.Scopes, tc.wantScope)
			}
		})
	}
}

func TestNeverCreatesAFullAccessKey(t *testing.T) {
	// A key created without scopes gets full access: a current key without scopes is not copied.
	f := newFixture(t)
	bare := f.srv.AddKey("no scopes")
	req := f.request(f.srv.URL)
	req.CredentialID, req.Current = bare.ID, providers.NewValue(bare.Value)
	err := func() error { _, err := sendgrid.New().Create(t.Context(), req); return err }()
	e := wantPermanent(t, err, http.StatusOK)
	if !strings.Contains(e.Reason, "full access") {
		t.Errorf("reason %q does not explain the refusal", e.Reason)
	}
	if f.srv.Created() != 0 {
		t.Error("a key was created")
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	// An interrupted attempt left a key; its value cannot be read back, so the retry deletes it and
	// creates another: never two live keys for one idempotency key.
	f := newFixture(t)
	p := sendgrid.New()
	req := f.request(f.srv.URL)
	first, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if first.CredentialID == second.CredentialID || first.Value.Reveal() == second.Value.Reveal() {
		t.Fatal("the retry returned the first key")
	}
	named := f.srv.Named(sendgrid.KeyName(secretName, idemKey))
	if len(named) != 1 || named[0].ID != second.CredentialID {
		t.Fatalf("%d live keys for the idempotency key, want exactly the second", len(named))
	}
	if f.srv.Works(first.Value.Reveal()) {
		t.Error("the first key still works")
	}
	if _, live := f.srv.Key(f.current.ID); !live {
		t.Error("the current key was deleted")
	}

	// A different source version is a different idempotency key: its key is left alone.
	other := req
	other.IdempotencyKey = "kvr-fedcba9876543210"
	if _, err := p.Create(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	if _, live := f.srv.Key(second.CredentialID); !live {
		t.Error("another idempotency key's key was deleted")
	}
}

func TestCreateDeletesEveryLeftoverOfTheSameName(t *testing.T) {
	// SendGrid names need not be unique: every key with the name goes.
	f := newFixture(t)
	name := sendgrid.KeyName(secretName, idemKey)
	f.srv.AddKey(name, "mail.send")
	f.srv.AddKey(name, "mail.send")
	f.srv.AddKey(name+"-not-quite", "mail.send")
	c, err := sendgrid.New().Create(t.Context(), f.request(f.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	named := f.srv.Named(name)
	if len(named) != 1 || named[0].ID != c.CredentialID {
		t.Fatalf("live keys named %s: %d, want only the new one", name, len(named))
	}
	if len(f.srv.Named(name+"-not-quite")) != 1 {
		t.Error("a key with a similar name was deleted")
	}
}

func TestCreateNeverDeletesTheCurrentKey(t *testing.T) {
	// Even if the current key bore the name (set by hand), it is not a leftover.
	f := newFixture(t)
	name := sendgrid.KeyName(secretName, idemKey)
	cur := f.srv.AddKey(name, appScopes...)
	req := f.request(f.srv.URL)
	req.CredentialID, req.Current = cur.ID, providers.NewValue(cur.Value)
	if _, err := sendgrid.New().Create(t.Context(), req); err != nil {
		t.Fatal(err)
	}
	if _, live := f.srv.Key(cur.ID); !live {
		t.Fatal("the current key was deleted")
	}
}

func TestCreateNeedsAnIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	req := f.request(f.srv.URL)
	req.IdempotencyKey = ""
	_, err := sendgrid.New().Create(t.Context(), req)
	if !providers.IsPermanent(err) || f.srv.Created() != 0 {
		t.Fatalf("Create without an idempotency key: %v", err)
	}
}

func TestKeyName(t *testing.T) {
	long := strings.Repeat("A", 127)
	name := sendgrid.KeyName(long, idemKey)
	if len(name) > sendgrid.MaxNameChars || !strings.HasPrefix(name, "kvrotator-aaaa") || !strings.HasSuffix(name, "-"+idemKey) {
		t.Errorf("KeyName(127 chars) = %q (%d chars)", name, len(name))
	}
	if sendgrid.KeyName("App-Key", idemKey) != sendgrid.KeyName("app-key", idemKey) {
		t.Error("KeyName depends on the letter case of the secret name")
	}
}

func TestVerifyWaitsForPropagation(t *testing.T) {
	f := newFixture(t)
	f.srv.SetPropagation(2)
	p := sendgrid.New()
	req := f.request(f.srv.URL)
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		e := wantTransient(t, p.Verify(t.Context(), req, c), http.StatusUnauthorized)
		if !strings.Contains(e.Reason, "propagate") {
			t.Errorf("attempt %d: reason %q", i+1, e.Reason)
		}
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatalf("Verify after propagation: %v", err)
	}
}

func TestVerifyNeedsAValue(t *testing.T) {
	f := newFixture(t)
	err := sendgrid.New().Verify(t.Context(), f.request(f.srv.URL), providers.Credential{CredentialID: "x"})
	if !providers.IsPermanent(err) {
		t.Fatalf("Verify without a value: %v", err)
	}
}

func TestRevokeOfAGoneKeySucceeds(t *testing.T) {
	f := newFixture(t)
	if err := sendgrid.New().Revoke(t.Context(), f.request(f.srv.URL), "AlreadyGone00000000000"); err != nil {
		t.Fatalf("Revoke of a gone key: %v", err)
	}
	if n := f.srv.Count(http.MethodDelete, "/v3/api_keys/AlreadyGone00000000000"); n != 1 {
		t.Errorf("%d DELETE requests, want 1", n)
	}
}

func TestRevokeRefusesTheLatestVersionsKey(t *testing.T) {
	f := newFixture(t)
	req := f.request(f.srv.URL) // req.CredentialID is the latest version's key
	for _, id := range []string{f.current.ID, strings.ToLower(f.current.ID)} {
		err := sendgrid.New().Revoke(t.Context(), req, id)
		if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "latest version") {
			t.Fatalf("Revoke(%s): %v", id, err)
		}
	}
	if _, live := f.srv.Key(f.current.ID); !live || len(f.srv.Requests()) != 0 {
		t.Fatal("the latest version's key was touched")
	}
}

func TestRevokeRefusesTheAdminKey(t *testing.T) {
	// A CredentialId set to the admin key's id by mistake must not cost the admin key.
	f := newFixture(t)
	err := sendgrid.New().Revoke(t.Context(), f.request(f.srv.URL), f.admin.ID)
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), "admin key") {
		t.Fatalf("Revoke(admin key): %v", err)
	}
	clean(t, err, f.secrets()...)
	if _, live := f.srv.Key(f.admin.ID); !live {
		t.Fatal("the admin key was deleted")
	}
}

func TestRevokeChecksTheCredentialID(t *testing.T) {
	f := newFixture(t)
	for _, id := range []string{"", "a/b", "../v3/scopes", f.current.Value, strings.Repeat("a", 129)} {
		err := sendgrid.New().Revoke(t.Context(), f.request(f.srv.URL), id)
		if !providers.IsPermanent(err) {
			t.Errorf("Revoke(%q): %v, want permanent", id, err)
		}
		clean(t, err, f.secrets()...)
	}
	if len(f.srv.Requests()) != 0 {
		t.Error("a malformed id reached SendGrid")
	}
}

func TestAdminKeyProblems(t *testing.T) {
	f := newFixture(t)
	readOnly := f.srv.AddKey("read only", "api_keys.read")
	noRead := f.srv.AddKey("create and delete", "api_keys.create", "api_keys.delete")
	for _, tc := range []struct {
		name    string
		value   string // the admin secret's value; "-" for no such secret
		op      string // create or revoke
		status  int
		wantTag bool // a ConfigError for sendgrid-admin-secret instead of an HTTP error
		reason  string
	}{
		{"wrong admin key", "SG.WrongKeyId0000000000000.wrongsecretpartwrongsecretpartwrongsecret", "create", http.StatusUnauthorized, false, `admin key in secret "sendgrid-admin"`},
		{"lacks api_keys.create", readOnly.Value, "create", http.StatusForbidden, false, "lacks api_keys.create"},
		{"lacks api_keys.read", noRead.Value, "create", http.StatusForbidden, false, "lacks api_keys.read"},
		{"lacks api_keys.delete", readOnly.Value, "revoke", http.StatusForbidden, false, "lacks api_keys.delete"},
		{"empty", "  \n", "create", 0, true, "empty"},
		{"not a key", "SG.abc def\nxyz", "create", 0, true, "not a SendGrid API key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := f.request(f.srv.URL)
			req.Secrets = httpxtest.Secrets{adminSecret: tc.value}
			var err error
			if tc.op == "create" {
				_, err = sendgrid.New().Create(t.Context(), req)
			} else {
				err = sendgrid.New().Revoke(t.Context(), req, "SomeOldKey000000000000")
			}
			clean(t, err, tc.value, f.admin.Value, f.current.Value, readOnly.Value, noRead.Value)
			if tc.wantTag {
				ce := wantConfigError(t, err, sendgrid.TagAdminSecret)
				if !strings.Contains(ce.Reason, tc.reason) {
					t.Errorf("reason %q, want %q", ce.Reason, tc.reason)
				}
				return
			}
			e := wantPermanent(t, err, tc.status)
			if !strings.Contains(e.Reason, tc.reason) {
				t.Errorf("reason %q, want it to say %q", e.Reason, tc.reason)
			}
		})
	}
	if f.srv.Created() != 0 {
		t.Error("a key was created")
	}
}

func TestAdminSecretProblems(t *testing.T) {
	f := newFixture(t)

	req := f.request(f.srv.URL)
	req.Secrets = httpxtest.Secrets{}
	_, err := sendgrid.New().Create(t.Context(), req)
	if !errors.Is(err, httpxtest.ErrNotFound) || !strings.Contains(err.Error(), `secret "sendgrid-admin"`) {
		t.Errorf("admin secret missing: %v, want the vault's not-found error, naming the secret", err)
	}

	req = f.request(f.srv.URL)
	req.Params[sendgrid.TagAdminSecret] = secretName
	_, err = sendgrid.New().Create(t.Context(), req)
	wantConfigError(t, err, sendgrid.TagAdminSecret)

	req = f.request(f.srv.URL)
	req.Secrets = nil
	if _, err := sendgrid.New().Create(t.Context(), req); !providers.IsPermanent(err) {
		t.Errorf("no secret reader: %v", err)
	}
	if len(f.srv.Requests()) != 0 {
		t.Error("SendGrid was called")
	}
}

func TestKeyLimit(t *testing.T) {
	f := newFixture(t)
	f.srv.SetMaxKeys(3)
	f.srv.AddKey("someone else's", "mail.send")
	_, err := sendgrid.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantPermanent(t, err, http.StatusForbidden)
	if !strings.Contains(e.Reason, "limit is 100") && !strings.Contains(e.Reason, "lacks api_keys.create") {
		t.Errorf("reason %q", e.Reason)
	}
	if e.Message == "" {
		t.Error("SendGrid's own message was dropped")
	}

	// At SendGrid's real limit the reason says so.
	f = newFixture(t)
	for i := 2; i < sendgridtest.DefaultMaxKeys; i++ {
		f.srv.AddKey("filler", "mail.send")
	}
	_, err = sendgrid.New().Create(t.Context(), f.request(f.srv.URL))
	e = wantPermanent(t, err, http.StatusForbidden)
	if !strings.Contains(e.Reason, "the account holds 100 API keys") {
		t.Errorf("reason %q does not name the limit", e.Reason)
	}

	// A leftover of this rotation frees its slot before the create.
	f = newFixture(t)
	f.srv.AddKey(sendgrid.KeyName(secretName, idemKey), "mail.send")
	for i := 3; i < sendgridtest.DefaultMaxKeys; i++ {
		f.srv.AddKey("filler", "mail.send")
	}
	if _, err := sendgrid.New().Create(t.Context(), f.request(f.srv.URL)); err != nil {
		t.Fatalf("Create at the limit with a leftover to delete: %v", err)
	}
}

func TestRateLimited(t *testing.T) {
	f := newFixture(t)
	f.srv.Throttle(1, 30*time.Second)
	_, err := sendgrid.New().Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, http.StatusTooManyRequests)
	if ra := e.RetryAfter(); ra < 29*time.Second || ra > 31*time.Second {
		t.Errorf("RetryAfter() = %v, want about 30 s (X-RateLimit-Reset)", ra)
	}
	var withRetry interface{ RetryAfter() time.Duration }
	if !errors.As(err, &withRetry) {
		t.Error("the error does not expose RetryAfter to the engine")
	}
	if e.Message != "too many requests" {
		t.Errorf("Message = %q", e.Message)
	}
	if _, err := sendgrid.New().Create(t.Context(), f.request(f.srv.URL)); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestUnavailable(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable} {
		f := newFixture(t)
		f.srv.FailNext(1, status)
		_, err := sendgrid.New().Create(t.Context(), f.request(f.srv.URL))
		wantTransient(t, err, status)
	}
}

func TestAPIDown(t *testing.T) {
	f := newFixture(t)
	req := f.request(f.srv.URL)
	f.srv.Close()
	p := sendgrid.New()
	_, err := p.Create(t.Context(), req)
	e := wantTransient(t, err, 0)
	if e.Err == nil {
		t.Error("the connection error is not the cause")
	}
	wantTransient(t, p.Verify(t.Context(), req, providers.Credential{Value: providers.NewValue("SG.a.b"), CredentialID: "a"}), 0)
	wantTransient(t, p.Revoke(t.Context(), req, "SomeOldKey000000000000"), 0)
}

func TestTimeout(t *testing.T) {
	f := newFixture(t)
	f.srv.SetDelay(2 * time.Second)
	start := time.Now()
	_, err := sendgrid.New(sendgrid.WithTimeout(100*time.Millisecond)).Create(t.Context(), f.request(f.srv.URL))
	e := wantTransient(t, err, 0)
	if !strings.Contains(e.Reason, "no answer within 100ms") {
		t.Errorf("reason %q", e.Reason)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v; the timeout did not apply", d)
	}
}

func TestNoKeyInAnyError(t *testing.T) {
	// A careless server echoes the key it rejects; no error repeats it.
	f := newFixture(t)
	f.srv.EchoKeys(true)
	readOnly := f.srv.AddKey("read only", "api_keys.read")
	wrong := "SG.WrongKeyId0000000000000.wrongsecretpartwrongsecretpartwrongsecret"
	all := f.secrets(readOnly.Value, wrong)
	p := sendgrid.New()

	for _, admin := range []string{wrong, readOnly.Value} {
		req := f.request(f.srv.URL)
		req.Secrets = httpxtest.Secrets{adminSecret: admin}
		_, err := p.Create(t.Context(), req)
		if err == nil {
			t.Fatal("Create succeeded with a bad admin key")
		}
		clean(t, err, all...)
		if e := httpxtest.As[*sendgrid.Error](t, err); !strings.Contains(e.Message, "[redacted]") && !strings.Contains(e.Message, "withheld") {
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
}

func TestOnBehalfOf(t *testing.T) {
	f := newFixture(t)
	req := f.request(f.srv.URL)
	req.Params[sendgrid.TagOnBehalfOf] = "subuser-eu"
	p := sendgrid.New()
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(t.Context(), req, f.current.ID+"x"); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.srv.Requests() {
		want := "subuser-eu"
		if r.Path == "/v3/scopes" {
			want = "" // the new key is the subuser's own: no on-behalf-of
		}
		if r.OnBehalfOf != want {
			t.Errorf("%s %s: on-behalf-of %q, want %q", r.Method, r.Path, r.OnBehalfOf, want)
		}
	}
}

// countingSecrets is a secret reader that counts its reads.
type countingSecrets struct {
	httpxtest.Secrets
	reads *int
}

func (c countingSecrets) SecretValue(ctx context.Context, name string) (providers.Value, error) {
	*c.reads++
	return c.Secrets.SecretValue(ctx, name)
}

// refused checks that err is a permanent refusal saying want, and that nothing was read or called.
func refused(t *testing.T, f *fixture, err error, reads int, want ...string) {
	t.Helper()
	if !providers.IsPermanent(err) {
		t.Fatalf("error %v, want a permanent refusal", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	clean(t, err, f.secrets()...)
	if reads != 0 || len(f.srv.Requests()) != 0 {
		t.Fatalf("%d secret reads and %d calls to SendGrid before the refusal", reads, len(f.srv.Requests()))
	}
}

func TestRevokeRefusesTheKeyTheCurrentValueIs(t *testing.T) {
	// The engine's record of the latest version's key may be missing or stale (a version written by
	// hand, a tag edited): the value itself says which key it is.
	f := newFixture(t)
	reads := 0
	for _, id := range []string{f.current.ID, strings.ToLower(f.current.ID)} {
		req := f.request(f.srv.URL)
		req.CredentialID = "" // no record
		req.Secrets = countingSecrets{httpxtest.Secrets{adminSecret: f.admin.Value}, &reads}
		refused(t, f, sendgrid.New().Revoke(t.Context(), req, id), reads, "refusing to delete key "+id, "holds it")
	}
	if _, live := f.srv.Key(f.current.ID); !live {
		t.Fatal("the current key was deleted")
	}
}

func TestRevokeRefusesAKeyTheRetiredVersionDoesNotHold(t *testing.T) {
	f := newFixture(t)
	old := f.srv.AddKey("the replaced version's key", appScopes...)
	victim := f.srv.AddKey("someone else's key", "mail.send")
	reads := 0
	req := f.request(f.srv.URL)
	req.Retired = providers.NewValue(old.Value)
	req.Secrets = countingSecrets{httpxtest.Secrets{adminSecret: f.admin.Value}, &reads}
	for _, id := range []string{victim.ID, f.admin.ID, strings.ToLower(old.ID)} {
		refused(t, f, sendgrid.New().Revoke(t.Context(), req, id), reads, "refusing to delete key "+id, "holds key "+old.ID)
	}
	if _, live := f.srv.Key(victim.ID); !live {
		t.Fatal("the victim's key was deleted")
	}

	// The key the retired value is: deleted.
	if err := sendgrid.New().Revoke(t.Context(), req, old.ID); err != nil {
		t.Fatalf("Revoke of the retired version's own key: %v", err)
	}
	if _, live := f.srv.Key(old.ID); live {
		t.Fatal("the retired key is still live")
	}
	// A retired value that is not shaped like a SendGrid key says nothing: the id is trusted (it is
	// kvrotator's own record).
	req.Retired = providers.NewValue("not-a-sendgrid-key")
	if err := sendgrid.New().Revoke(t.Context(), req, "AlreadyGone00000000000"); err != nil {
		t.Fatalf("Revoke with an opaque retired value: %v", err)
	}
}

func TestCreateRefusesACredentialIdThatIsNotTheCurrentKey(t *testing.T) {
	f := newFixture(t)
	victim := f.srv.AddKey("someone else's key", "mail.send", "billing.read")
	reads := 0
	for _, tc := range []struct{ id, shown string }{
		{victim.ID, victim.ID},
		{strings.ToLower(f.current.ID), strings.ToLower(f.current.ID)}, // ids are case-sensitive
		{"SG.not.an-id", ""}, // never repeated
	} {
		req := f.request(f.srv.URL)
		req.CredentialID = tc.id
		req.Secrets = countingSecrets{httpxtest.Secrets{adminSecret: f.admin.Value}, &reads}
		_, err := sendgrid.New().Create(t.Context(), req)
		ce := wantConfigError(t, err, "CredentialId")
		if ce.Value != tc.shown || !strings.Contains(ce.Reason, "api_key_id "+f.current.ID) {
			t.Errorf("ConfigError %q (value %q), want it to show %q and name %s", ce, ce.Value, tc.shown, f.current.ID)
		}
		refused(t, f, err, reads)
	}
	if f.srv.Created() != 0 {
		t.Fatal("a key was created")
	}
}

func TestReferences(t *testing.T) {
	p := sendgrid.New()
	for _, tc := range []struct {
		name   string
		params providers.Params
		want   []providers.Reference
	}{
		{"default API URL: built in", tags(), []providers.Reference{
			{Kind: providers.RefSecret, Tag: sendgrid.TagAdminSecret, Value: "sendgrid-admin"},
			{Kind: providers.RefURL, Tag: sendgrid.TagAPIURL, Value: sendgrid.DefaultAPIURL, Builtin: true},
			{Kind: providers.RefAccount, Tag: sendgrid.TagOnBehalfOf, Builtin: true},
		}},
		{"privileged scopes are references", tags("sendgrid-scopes", "mail.send,api_keys.read,user.profile.read"), []providers.Reference{
			{Kind: providers.RefSecret, Tag: sendgrid.TagAdminSecret, Value: "sendgrid-admin"},
			{Kind: providers.RefURL, Tag: sendgrid.TagAPIURL, Value: sendgrid.DefaultAPIURL, Builtin: true},
			{Kind: providers.RefAccount, Tag: sendgrid.TagOnBehalfOf, Builtin: true},
			{Kind: providers.RefScope, Tag: sendgrid.TagScopes, Value: "api_keys.read"},
			{Kind: providers.RefScope, Tag: sendgrid.TagScopes, Value: "user.profile.read"},
		}},
		{"every reference", tags("sendgrid-api-url", "https://api.eu.sendgrid.com/", "sendgrid-on-behalf-of", " team-a "), []providers.Reference{
			{Kind: providers.RefSecret, Tag: sendgrid.TagAdminSecret, Value: "sendgrid-admin"},
			{Kind: providers.RefURL, Tag: sendgrid.TagAPIURL, Value: "https://api.eu.sendgrid.com"},
			{Kind: providers.RefAccount, Tag: sendgrid.TagOnBehalfOf, Value: "team-a"},
		}},
		{"the default URL written in the tag: built in", tags("sendgrid-api-url", sendgrid.DefaultAPIURL+"/"), []providers.Reference{
			{Kind: providers.RefSecret, Tag: sendgrid.TagAdminSecret, Value: "sendgrid-admin"},
			{Kind: providers.RefURL, Tag: sendgrid.TagAPIURL, Value: sendgrid.DefaultAPIURL, Builtin: true},
			{Kind: providers.RefAccount, Tag: sendgrid.TagOnBehalfOf, Builtin: true},
		}},
		{"a look-alike of the default: bound or refused", tags("sendgrid-api-url", "https://api.sendgrid.com.attacker.example"), []providers.Reference{
			{Kind: providers.RefSecret, Tag: sendgrid.TagAdminSecret, Value: "sendgrid-admin"},
			{Kind: providers.RefURL, Tag: sendgrid.TagAPIURL, Value: "https://api.sendgrid.com.attacker.example"},
			{Kind: providers.RefAccount, Tag: sendgrid.TagOnBehalfOf, Builtin: true},
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
}
