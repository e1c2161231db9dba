package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/providers/webhook"
	"github.com/kvrotator/kvrotator/providers/webhook/webhooktest"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(registry.Names(), webhook.Name) {
		t.Fatalf("registry.Names() = %v, without %s", registry.Names(), webhook.Name)
	}
	set, problems := registry.Build(registry.Env{}) // no Azure credential: the webhook needs none
	if problems[webhook.Name] != nil {
		t.Fatalf("building %s: %v", webhook.Name, problems[webhook.Name])
	}
	for _, name := range []string{"webhook", "Webhook", " WEBHOOK "} {
		p, ok := set.Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) found nothing", name)
		}
		if _, ok := p.(*webhook.Provider); !ok {
			t.Fatalf("Lookup(%q) = %T, want *webhook.Provider", name, p)
		}
		if _, ok := p.(providers.Revoker); !ok {
			t.Fatalf("the %s provider cannot revoke", name)
		}
	}
}

func TestShape(t *testing.T) {
	if s := webhook.New().Shape(); s != providers.ShapeCreateRevoke {
		t.Errorf("Shape() = %q, want %q", s, providers.ShapeCreateRevoke)
	}
}

// newServer starts the reference service holding the credential the current version has.
func newServer(t *testing.T) *webhooktest.Server {
	t.Helper()
	srv := webhooktest.NewServer(signingKey)
	t.Cleanup(srv.Close)
	srv.Seed(currentID, currentValue)
	return srv
}

func TestRotation(t *testing.T) {
	srv := newServer(t)
	p := webhook.New()
	req := request(srv.URL)

	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if c.CredentialID == "" || c.CredentialID == currentID {
		t.Fatalf("Create returned credential id %q, want a new one", c.CredentialID)
	}
	if got := srv.Live()[c.CredentialID]; got == "" || got != c.Value.Reveal() {
		t.Fatal("Create's value is not the value the service issued")
	}
	if c.ExpiresAt != nil {
		t.Errorf("ExpiresAt = %v, want nil (the service sent none)", c.ExpiresAt)
	}
	if err := p.Verify(t.Context(), req, c); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// After the grace period the sweep revokes the old credential; the latest version holds the new one.
	if err := p.Revoke(t.Context(), laterRequest(srv.URL, c), currentID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	if live := srv.Live(); len(live) != 1 || live[c.CredentialID] == "" {
		t.Errorf("live credentials %v, want only %s", keys(live), c.CredentialID)
	}
	if got := srv.Revoked(); !slices.Equal(got, []string{currentID}) {
		t.Errorf("Revoked() = %v, want [%s]", got, currentID)
	}
	if srv.Created() != 1 {
		t.Errorf("Created() = %d, want 1", srv.Created())
	}
	for _, e := range []string{webhooktest.Create, webhooktest.Verify, webhooktest.Revoke} {
		if n := srv.Calls(e); n != 1 {
			t.Errorf("Calls(%s) = %d, want 1", e, n)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestCreateIsIdempotent(t *testing.T) {
	srv := newServer(t)
	p := webhook.New()
	req := request(srv.URL)

	first, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	// The engine crashed after create; the retry derives the same idempotency key.
	again, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if again.CredentialID != first.CredentialID || again.Value.Reveal() != first.Value.Reveal() {
		t.Fatalf("a repeated create returned credential %s, want %s again", again.CredentialID, first.CredentialID)
	}
	if srv.Created() != 1 || srv.Calls(webhooktest.Create) != 2 {
		t.Fatalf("Created() = %d after %d calls, want 1 after 2", srv.Created(), srv.Calls(webhooktest.Create))
	}

	other := request(srv.URL)
	other.IdempotencyKey = "kvr-fedcba9876543210"
	next, err := p.Create(t.Context(), other)
	if err != nil {
		t.Fatal(err)
	}
	if next.CredentialID == first.CredentialID || srv.Created() != 2 {
		t.Errorf("another key gave credential %s (Created() = %d), want a second one", next.CredentialID, srv.Created())
	}
}

func TestConcurrentCreatesMakeOneCredential(t *testing.T) {
	srv := newServer(t)
	p := webhook.New()
	req := request(srv.URL)
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			c, err := p.Create(context.Background(), req)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.CredentialID
		})
	}
	wg.Wait()
	if srv.Created() != 1 {
		t.Fatalf("Created() = %d, want 1", srv.Created())
	}
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent creates returned %v, want one id", ids)
		}
	}
}

// The engine revokes a credential that never passed verification; the retry with the same key must
// then get a fresh one, not the revoked one.
func TestCreateAfterTheKeysCredentialWasRevoked(t *testing.T) {
	srv := newServer(t)
	p := webhook.New()
	req := request(srv.URL)
	first, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(t.Context(), req, first.CredentialID); err != nil {
		t.Fatal(err)
	}
	second, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if second.CredentialID == first.CredentialID {
		t.Fatal("create returned a revoked credential")
	}
	if err := p.Verify(t.Context(), req, second); err != nil {
		t.Errorf("Verify of the fresh credential: %v", err)
	}
}

func TestVerifyNotValidIsTransient(t *testing.T) {
	srv := newServer(t)
	p := webhook.New()
	req := request(srv.URL)
	c, err := p.Create(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("propagation", func(t *testing.T) {
		srv.SetPropagationDelay(2)
		defer srv.SetPropagationDelay(0)
		for i := range 2 {
			err := p.Verify(t.Context(), req, c)
			we := wantTransient(t, err, http.StatusOK)
			if !strings.Contains(we.Error(), "does not work (yet)") {
				t.Errorf("attempt %d: error %q does not say the credential does not work yet", i+1, we)
			}
			clean(t, err, c.Value.Reveal())
		}
		if err := p.Verify(t.Context(), req, c); err != nil {
			t.Fatalf("third Verify: %v", err)
		}
	})
	t.Run("wrong value", func(t *testing.T) {
		wrong := cred(c.CredentialID, "WRONGVALUE-must-never-leak-33aa")
		err := p.Verify(t.Context(), req, wrong)
		wantTransient(t, err, http.StatusOK)
		clean(t, err, c.Value.Reveal(), wrong.Value.Reveal())
	})
	t.Run("revoked", func(t *testing.T) {
		if err := p.Revoke(t.Context(), req, c.CredentialID); err != nil {
			t.Fatal(err)
		}
		err := p.Verify(t.Context(), req, c)
		wantTransient(t, err, http.StatusOK)
		clean(t, err, c.Value.Reveal())
	})
	t.Run("no credential", func(t *testing.T) {
		calls := srv.Calls(webhooktest.Verify)
		for _, bad := range []providers.Credential{cred("", "x"), cred("tok-1", "")} {
			if err := p.Verify(t.Context(), req, bad); !providers.IsPermanent(err) {
				t.Errorf("Verify(%q) = %v, want a permanent error", bad.CredentialID, err)
			}
		}
		if srv.Calls(webhooktest.Verify) != calls {
			t.Error("Verify called the service without a credential")
		}
	})
}

func TestSignature(t *testing.T) {
	srv := newServer(t)
	now := time.Now()
	tests := []struct {
		name   string
		key    string
		clock  time.Time
		wantOK bool
	}{
		{"right key", signingKey, now, true},
		{"wrong key", "another-key-0123456789", now, false},
		{"key with one byte changed", "S" + strings.ToLower(signingKey[1:2]) + signingKey[2:], now, false},
		{"timestamp 4 minutes old", signingKey, now.Add(-4 * time.Minute), true},
		{"timestamp 6 minutes old", signingKey, now.Add(-6 * time.Minute), false},
		{"timestamp 6 minutes ahead", signingKey, now.Add(6 * time.Minute), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := webhook.New(webhook.WithClock(func() time.Time { return tt.clock }))
			req := request(srv.URL)
			req.Secrets = httpxtest.Secrets{keySecret: tt.key}
			req.IdempotencyKey = "kvr-" + strings.ReplaceAll(tt.name, " ", "-")
			created := srv.Created()

			c, err := p.Create(t.Context(), req)
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if err := p.Verify(t.Context(), req, c); err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			// A 401 does not fix itself: a wrong key or a skewed clock needs a person.
			we := wantPermanent(t, err, http.StatusUnauthorized)
			if we.Op != "create" {
				t.Errorf("Op = %q, want create", we.Op)
			}
			clean(t, err, tt.key)
			if srv.Created() != created {
				t.Error("the service issued a credential for a badly signed request")
			}
			err = p.Verify(t.Context(), req, cred(currentID, currentValue))
			wantPermanent(t, err, http.StatusUnauthorized)
			clean(t, err, tt.key)
			later := laterRequest(srv.URL, cred("tok-next", "NEXTVALUE-0123456789abcdef"))
			later.Secrets = req.Secrets
			err = p.Revoke(t.Context(), later, currentID)
			wantPermanent(t, err, http.StatusUnauthorized)
			clean(t, err, tt.key)
			if _, live := srv.Live()[currentID]; !live {
				t.Fatal("a badly signed revoke revoked the credential")
			}
		})
	}
}

func TestStatusClassification(t *testing.T) {
	tests := []struct {
		endpoint  string
		status    int
		permanent bool
		retry     time.Duration // webhooktest sends Retry-After: 1 with 429 and 503
	}{
		{webhooktest.Create, 500, false, 0},
		{webhooktest.Create, 502, false, 0},
		{webhooktest.Create, 503, false, time.Second},
		{webhooktest.Create, 429, false, time.Second},
		{webhooktest.Create, 408, false, 0},
		{webhooktest.Create, 400, true, 0},
		{webhooktest.Create, 403, true, 0},
		{webhooktest.Create, 404, true, 0},
		{webhooktest.Create, 409, true, 0},
		{webhooktest.Create, 422, true, 0},
		{webhooktest.Verify, 503, false, time.Second},
		{webhooktest.Verify, 429, false, time.Second},
		{webhooktest.Verify, 401, true, 0},
		{webhooktest.Verify, 403, true, 0},
		{webhooktest.Verify, 404, true, 0},
		{webhooktest.Revoke, 500, false, 0},
		{webhooktest.Revoke, 429, false, time.Second},
		{webhooktest.Revoke, 400, true, 0},
		{webhooktest.Revoke, 403, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint+"/"+http.StatusText(tt.status), func(t *testing.T) {
			srv := newServer(t)
			p := webhook.New()
			req := request(srv.URL)
			c, err := p.Create(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			call := func() error {
				switch tt.endpoint {
				case webhooktest.Create:
					_, err := p.Create(t.Context(), req)
					return err
				case webhooktest.Verify:
					return p.Verify(t.Context(), req, c)
				default:
					return p.Revoke(t.Context(), laterRequest(srv.URL, c), currentID)
				}
			}
			srv.FailNext(tt.endpoint, tt.status, 1)
			err = call()
			var we *webhook.Error
			if tt.permanent {
				we = wantPermanent(t, err, tt.status)
			} else {
				we = wantTransient(t, err, tt.status)
			}
			if we.Op != tt.endpoint || we.Message != "injected fault" {
				t.Errorf("Error = endpoint %q, message %q; want %q, %q", we.Op, we.Message, tt.endpoint, "injected fault")
			}
			var ra interface{ RetryAfter() time.Duration }
			if !errors.As(err, &ra) || ra.RetryAfter() != tt.retry {
				t.Errorf("RetryAfter() = %v, want %v", ra.RetryAfter(), tt.retry)
			}
			text := err.Error()
			for _, want := range []string{"webhook " + tt.endpoint, "HTTP " + strconv.Itoa(tt.status)} {
				if !strings.Contains(text, want) {
					t.Errorf("error %q does not mention %q", text, want)
				}
			}
			clean(t, err, c.Value.Reveal())
			if err := call(); err != nil {
				t.Errorf("the call after the fault: %v", err)
			}
		})
	}
}

func TestRevokeOfAGoneCredentialSucceeds(t *testing.T) {
	srv := newServer(t)
	p := webhook.New()
	req := laterRequest(srv.URL, cred("tok-next", "NEXTVALUE-0123456789abcdef"))
	for i := range 2 {
		if err := p.Revoke(t.Context(), req, currentID); err != nil {
			t.Fatalf("Revoke #%d: %v", i+1, err)
		}
	}
	if err := p.Revoke(t.Context(), req, "tok-never-existed"); err != nil {
		t.Fatalf("Revoke of an unknown credential: %v", err)
	}
	if got := srv.Revoked(); !slices.Equal(got, []string{currentID}) {
		t.Errorf("Revoked() = %v, want [%s]", got, currentID)
	}
}

func TestRevokeChecksTheCredentialID(t *testing.T) {
	srv := newServer(t)
	p := webhook.New()
	for _, id := range []string{"", "tok 1", "tok/1", `tok"1`, "tök", strings.Repeat("a", webhook.MaxCredentialIDChars+1)} {
		err := p.Revoke(t.Context(), request(srv.URL), id)
		if !providers.IsPermanent(err) {
			t.Errorf("Revoke(%q) = %v, want a permanent error", id, err)
		}
	}
	if n := srv.Calls(webhooktest.Revoke); n != 0 {
		t.Errorf("the service was called %d times with bad ids", n)
	}
	id := strings.Repeat("a", webhook.MaxCredentialIDChars-9) + "Z09._:-"
	if err := p.Revoke(t.Context(), request(srv.URL), id); err != nil {
		t.Errorf("Revoke of a %d-character id with every kind of allowed character: %v", len(id), err)
	}
}

func TestSigningKeyProblems(t *testing.T) {
	srv := newServer(t)
	p := webhook.New()
	tests := []struct {
		name   string
		modify func(*providers.Request)
		check  func(t *testing.T, err error)
	}{
		{"signing secret missing", func(r *providers.Request) { r.Secrets = httpxtest.Secrets{} }, func(t *testing.T, err error) {
			if !errors.Is(err, httpxtest.ErrNotFound) {
				t.Errorf("error %v does not wrap the reader's error", err)
			}
			if !strings.Contains(err.Error(), keySecret) || !strings.Contains(err.Error(), webhook.TagSigningSecret) {
				t.Errorf("error %q names neither the secret nor the tag", err)
			}
		}},
		{"signing key too short", func(r *providers.Request) { r.Secrets = httpxtest.Secrets{keySecret: "SHORTKEY-leak"} }, func(t *testing.T, err error) {
			wantConfigError(t, err, webhook.TagSigningSecret, "at least 16")
			clean(t, err, "SHORTKEY-leak")
		}},
		{"signing key empty", func(r *providers.Request) { r.Secrets = httpxtest.Secrets{keySecret: ""} }, func(t *testing.T, err error) {
			wantConfigError(t, err, webhook.TagSigningSecret, "at least 16")
		}},
		{"no secret reader", func(r *providers.Request) { r.Secrets = nil }, func(t *testing.T, err error) {
			if !providers.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
		}},
		{"signing secret is the rotated secret", func(r *providers.Request) { r.Params[webhook.TagSigningSecret] = "Tokens-API-Key" }, func(t *testing.T, err error) {
			wantConfigError(t, err, webhook.TagSigningSecret, "secret being rotated")
		}},
		{"bad tags", func(r *providers.Request) { r.Params[webhook.TagTimeout] = "0" }, func(t *testing.T, err error) {
			wantConfigError(t, err, webhook.TagTimeout, "between 1 and 60")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(srv.URL)
			tt.modify(&req)
			_, err := p.Create(t.Context(), req)
			if err == nil {
				t.Fatal("Create succeeded")
			}
			tt.check(t, err)
			clean(t, err)
			if err := p.Verify(t.Context(), req, cred(currentID, currentValue)); err == nil {
				t.Error("Verify succeeded")
			}
			later := laterRequest(srv.URL, cred("tok-next", "NEXTVALUE-0123456789abcdef"))
			later.Params, later.Secrets = req.Params, req.Secrets
			if err := p.Revoke(t.Context(), later, currentID); err == nil {
				t.Error("Revoke succeeded")
			}
		})
	}
	for _, e := range []string{webhooktest.Create, webhooktest.Verify, webhooktest.Revoke} {
		if n := srv.Calls(e); n != 0 {
			t.Errorf("%s was called %d times without a usable signing key", e, n)
		}
	}
}

func TestCreateNeedsAnIdempotencyKey(t *testing.T) {
	srv := newServer(t)
	req := request(srv.URL)
	req.IdempotencyKey = ""
	if _, err := webhook.New().Create(t.Context(), req); !providers.IsPermanent(err) {
		t.Errorf("Create without an idempotency key = %v, want a permanent error", err)
	}
	if srv.Calls(webhooktest.Create) != 0 {
		t.Error("the service was called")
	}
}

func TestBaseURL(t *testing.T) {
	srv := newServer(t)
	unused := "http://127.0.0.1:9" // the discard port: nothing answers there
	tests := []struct {
		name    string
		params  providers.Params
		address string
	}{
		{"webhook-url", providers.Params{webhook.TagURL: srv.URL}, ""},
		{"webhook-url with a trailing slash", providers.Params{webhook.TagURL: srv.URL + "/"}, ""},
		{"ProviderAddress alone", providers.Params{webhook.TagAddress: srv.URL}, ""},
		{"webhook-url wins over ProviderAddress", providers.Params{webhook.TagURL: srv.URL, webhook.TagAddress: unused}, ""},
		{"webhook-url wins over Request.Address", providers.Params{webhook.TagURL: srv.URL}, unused},
		{"Request.Address when no tag", providers.Params{}, srv.URL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request("")
			req.Params = tt.params
			req.Params[webhook.TagSigningSecret] = keySecret
			req.Address = tt.address
			if err := webhook.New().Revoke(t.Context(), req, "tok-unknown"); err != nil {
				t.Fatalf("Revoke: %v", err)
			}
		})
	}
	if n := srv.Calls(webhooktest.Revoke); n != len(tests) {
		t.Errorf("the server got %d revokes, want %d", n, len(tests))
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

func TestRevokeRefusesTheLatestVersionsCredential(t *testing.T) {
	srv := newServer(t)
	reads := 0
	next := cred("tok-next", "NEXTVALUE-0123456789abcdef")
	for _, tc := range []struct {
		name string
		req  providers.Request
		id   string
		want string
	}{
		{"the latest version's id", request(srv.URL), currentID, "latest version"},
		{"the latest version's id in other letter case", request(srv.URL), strings.ToUpper(currentID), "latest version"},
		{"a retired value that is the current value", func() providers.Request {
			r := laterRequest(srv.URL, next)
			r.Retired = next.Value
			return r
		}(), currentID, "is the latest version's"},
		{"a hand-written id with no retired value to prove it", func() providers.Request {
			r := laterRequest(srv.URL, next)
			r.Retired, r.HandWritten = providers.Value{}, true
			return r
		}(), currentID + "-other", "can no longer be read to prove it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Secrets = countingSecrets{httpxtest.Secrets{keySecret: signingKey}, &reads}
			err := webhook.New().Revoke(t.Context(), tc.req, tc.id)
			if !providers.IsPermanent(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Revoke: %v, want a permanent refusal saying %q", err, tc.want)
			}
			clean(t, err, next.Value.Reveal())
		})
	}
	if reads != 0 || srv.Calls(webhooktest.Revoke) != 0 {
		t.Fatalf("%d signing-key reads, %d revoke calls before the refusal", reads, srv.Calls(webhooktest.Revoke))
	}
}

// The provider cannot tell which credential a value is; the service can, from the digests the revoke
// request carries (webhooktest does what the contract asks).
func TestServiceRefusesToRevokeACredentialTheValuesDoNotName(t *testing.T) {
	srv := newServer(t)
	srv.Seed("tok-victim", "VICTIMVALUE-must-stay-live-71c2")
	p := webhook.New()
	c, err := p.Create(t.Context(), request(srv.URL))
	if err != nil {
		t.Fatal(err)
	}

	// A CredentialId that named someone else's credential: the retired value is not its value.
	err = p.Revoke(t.Context(), laterRequest(srv.URL, c), "tok-victim")
	we := wantPermanent(t, err, http.StatusConflict)
	if !strings.Contains(we.Message, "retiredSha256") {
		t.Errorf("message %q", we.Message)
	}
	clean(t, err, c.Value.Reveal())

	// The engine's record of the latest version is missing, and it asks for the credential the
	// current value is: the service refuses by currentSha256.
	noRecord := laterRequest(srv.URL, c)
	noRecord.CredentialID, noRecord.Retired = "", providers.Value{}
	err = p.Revoke(t.Context(), noRecord, c.CredentialID)
	we = wantPermanent(t, err, http.StatusConflict)
	if !strings.Contains(we.Message, "currentSha256") {
		t.Errorf("message %q", we.Message)
	}
	if live := srv.Live(); live["tok-victim"] == "" || live[c.CredentialID] == "" || len(srv.Revoked()) != 0 {
		t.Fatalf("a refused revocation revoked %v", srv.Revoked())
	}

	// The credential the replaced version really held: revoked.
	if err := p.Revoke(t.Context(), laterRequest(srv.URL, c), currentID); err != nil {
		t.Fatal(err)
	}
	if got := srv.Revoked(); !slices.Equal(got, []string{currentID}) {
		t.Errorf("Revoked() = %v", got)
	}
}

func TestReferences(t *testing.T) {
	p := webhook.New()
	for _, tc := range []struct {
		name   string
		params providers.Params
		want   []providers.Reference
	}{
		{"webhook-url", providers.Params{webhook.TagURL: "https://tokens.example.com/kvrotator/", webhook.TagSigningSecret: keySecret},
			[]providers.Reference{{Kind: providers.RefURL, Tag: webhook.TagURL, Value: "https://tokens.example.com/kvrotator"},
				{Kind: providers.RefSecret, Tag: webhook.TagSigningSecret, Value: keySecret}}},
		{"ProviderAddress", providers.Params{webhook.TagAddress: "https://tokens.example.com", webhook.TagSigningSecret: keySecret},
			[]providers.Reference{{Kind: providers.RefURL, Tag: webhook.TagAddress, Value: "https://tokens.example.com"},
				{Kind: providers.RefSecret, Tag: webhook.TagSigningSecret, Value: keySecret}}},
		{"webhook-url wins", providers.Params{webhook.TagURL: "https://a.example.com", webhook.TagAddress: "https://b.example.com", webhook.TagSigningSecret: keySecret},
			[]providers.Reference{{Kind: providers.RefURL, Tag: webhook.TagURL, Value: "https://a.example.com"},
				{Kind: providers.RefSecret, Tag: webhook.TagSigningSecret, Value: keySecret}}},
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
