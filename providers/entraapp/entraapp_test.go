package entraapp_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/entraapp"
	"github.com/kvrotator/kvrotator/providers/entraapp/graphtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/providers/registry"
)

var ctx = context.Background()

func TestCreateVerifyRevoke(t *testing.T) {
	f := newFixture(t)
	p := f.provider()
	req := f.request()

	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	mine := f.kvrotatorPasswords(idemKey)
	if len(mine) != 1 || mine[0].KeyID != cred.CredentialID || mine[0].Secret != cred.Value.Reveal() {
		t.Fatalf("the credential is not the password Graph added: %+v", mine)
	}
	if cred.ExpiresAt == nil || !cred.ExpiresAt.Equal(mine[0].End) {
		t.Fatalf("ExpiresAt %v, password endDateTime %v", cred.ExpiresAt, mine[0].End)
	}
	if want := req.Now.Add(90 * 24 * time.Hour); cred.ExpiresAt.After(want) || want.Sub(*cred.ExpiresAt) > 2*time.Second {
		t.Fatalf("ExpiresAt %v, want about %v (ValidityPeriodDays)", cred.ExpiresAt, want)
	}
	if scopes := f.srv.Scopes(); len(scopes) == 0 || slices.ContainsFunc(scopes, func(s string) bool { return s != graphAudience+"/.default" }) {
		t.Fatalf("kvrotator asked for Graph tokens with scopes %v", scopes)
	}

	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}
	// The sweep revokes once the new version (holding the new password) is the latest.
	if err := p.Revoke(ctx, after(req, cred), f.initialID); err != nil {
		t.Fatal(err)
	}
	if ids := f.keyIDs(); len(ids) != 1 || ids[0] != cred.CredentialID {
		t.Fatalf("after revoking the old password the app holds %v", ids)
	}
}

func TestLifetime(t *testing.T) {
	for _, tc := range []struct {
		name string
		tags map[string]string
		days int
	}{
		{"default", map[string]string{"ValidityPeriodDays": ""}, entraapp.DefaultLifetimeDays},
		{"ValidityPeriodDays", map[string]string{"ValidityPeriodDays": "60"}, 60},
		{"shorter than the validity", map[string]string{"ValidityPeriodDays": "60", entraapp.TagLifetime: "40"}, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			req := f.request()
			for k, v := range tc.tags {
				req.Params[k] = v
			}
			cred, err := f.provider().Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			want := req.Now.UTC().Truncate(time.Second).Add(time.Duration(tc.days) * 24 * time.Hour)
			if !cred.ExpiresAt.Equal(want) {
				t.Fatalf("ExpiresAt %v, want %v", cred.ExpiresAt, want)
			}
		})
	}
}

// A password Graph shortened below the near-expiry window would make the new version due at once:
// it is removed and the rotation fails with a configuration error instead of looping.
func TestShortenedPasswordIsRefused(t *testing.T) {
	f := newFixture(t)
	f.srv.SetClampLifetime(14 * 24 * time.Hour)
	_, err := f.provider().Create(ctx, f.request())
	if ce := httpxtest.As[*providers.ConfigError](t, err); ce.Tag != entraapp.TagLifetime {
		t.Fatalf("got %v", err)
	}
	if ids := f.keyIDs(); len(ids) != 1 || ids[0] != f.initialID {
		t.Fatalf("the shortened password was left behind: %v", ids)
	}
}

func TestAddressedByClientID(t *testing.T) {
	f := newFixture(t)
	p := f.provider()
	req := f.request()
	delete(req.Params, entraapp.TagAddress)
	req.Params[entraapp.TagAppID] = strings.ToUpper(f.appID)
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(ctx, after(req, cred), f.initialID); err != nil {
		t.Fatal(err)
	}
	if ids := f.keyIDs(); len(ids) != 1 || ids[0] != cred.CredentialID {
		t.Fatalf("app holds %v", ids)
	}
}

// Verify finds the client id from the object id when entra-app-id is absent, even in a provider
// that did not create the credential (another instance, after a restart).
func TestVerifyLooksUpTheClientID(t *testing.T) {
	f := newFixture(t)
	req := f.request()
	cred, err := f.provider().Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	gets := f.srv.Calls(graphtest.GetApplication)
	fresh := f.provider()
	for range 2 {
		if err := fresh.Verify(ctx, req, cred); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.srv.Calls(graphtest.GetApplication) - gets; n != 1 {
		t.Fatalf("%d application reads for two verifications; the client id is cached", n)
	}
}

func TestTagsNamingDifferentApps(t *testing.T) {
	f := newFixture(t)
	_, otherAppID := f.srv.AddApp()
	req := f.request()
	req.Params[entraapp.TagAppID] = otherAppID
	_, err := f.provider().Create(ctx, req)
	if ce := httpxtest.As[*providers.ConfigError](t, err); ce.Tag != entraapp.TagAppID || !providers.IsPermanent(err) {
		t.Fatalf("got %v", err)
	}
	if f.srv.Calls(graphtest.AddPassword) != 0 {
		t.Fatal("a password was added for a mismatched configuration")
	}
}

func TestCreateIsIdempotent(t *testing.T) {
	t.Run("the answer to addPassword was lost", func(t *testing.T) {
		f := newFixture(t)
		p := f.provider()
		req := f.request()
		f.srv.FailNext(graphtest.AddPassword, 1, graphtest.Fault{LoseAnswer: true})
		_, err := p.Create(ctx, req)
		if err == nil || providers.IsPermanent(err) {
			t.Fatalf("a lost answer must be transient: %v", err)
		}
		if ra := httpxtest.As[*entraapp.Error](t, err).RetryAfter(); ra != 50*time.Millisecond {
			t.Fatalf("RetryAfter %v: the engine should wait for the directory to replicate the password the lost call added", ra)
		}
		f.clean(t, err)
		orphan := f.kvrotatorPasswords(idemKey)
		if len(orphan) != 1 {
			t.Fatalf("the lost call should have added one password: %+v", orphan)
		}

		cred, err := p.Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		mine := f.kvrotatorPasswords(idemKey)
		if len(mine) != 1 || mine[0].KeyID != cred.CredentialID || mine[0].KeyID == orphan[0].KeyID {
			t.Fatalf("want exactly one live kvrotator password for the key, the new one: %+v", mine)
		}
		if !slices.Contains(f.keyIDs(), f.initialID) {
			t.Fatal("the current password was removed")
		}
	})
	t.Run("the process died after create", func(t *testing.T) {
		f := newFixture(t)
		req := f.request()
		// Another secret's rotation holds a password on the same app: it must be left alone.
		other := req
		other.IdempotencyKey = "kvr-ffffffffffffffff"
		otherCred, err := f.provider().Create(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		first, err := f.provider().Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		second, err := f.provider().Create(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		mine := f.kvrotatorPasswords(idemKey)
		if len(mine) != 1 || mine[0].KeyID != second.CredentialID || second.CredentialID == first.CredentialID {
			t.Fatalf("want only the second attempt's password: %+v", mine)
		}
		ids := f.keyIDs()
		if len(ids) != 3 || !slices.Contains(ids, f.initialID) || !slices.Contains(ids, otherCred.CredentialID) {
			t.Fatalf("passwords of others were touched: %v", ids)
		}
	})
}

// A password carrying this rotation's name that the current version holds is never removed.
func TestCreateNeverRemovesTheCurrentPassword(t *testing.T) {
	f := newFixture(t)
	req := f.request()
	current := f.srv.SeedPassword(f.objectID, entraapp.DisplayName(idemKey), "another-hand-made-secret-value", time.Now().AddDate(0, 1, 0))
	req.CredentialID, req.Params["CredentialId"] = current, current
	_, err := f.provider().Create(ctx, req)
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), current) {
		t.Fatalf("got %v", err)
	}
	if !slices.Contains(f.keyIDs(), current) || f.srv.Calls(graphtest.AddPassword) != 0 {
		t.Fatal("the current password was removed or a new one added")
	}
}

func TestVerifyWaitsForPropagation(t *testing.T) {
	f := newFixture(t)
	p := f.provider()
	req := f.request()
	f.srv.SetPropagation(3)
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		err := p.Verify(ctx, req, cred)
		if err == nil || providers.IsPermanent(err) {
			t.Fatalf("attempt %d: a secret that has not propagated is a transient failure: %v", i+1, err)
		}
		if e := httpxtest.As[*entraapp.Error](t, err); e.SubCode != "AADSTS7000215" || e.Code != "invalid_client" || e.RequestID == "" {
			t.Fatalf("attempt %d: %+v", i+1, e)
		}
		f.clean(t, err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatalf("after propagation: %v", err)
	}
}

func TestVerifyFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		setup     func(f *fixture, req *providers.Request, cred *providers.Credential)
		permanent bool
		tag       string // the ConfigError's tag, if one
		retry     time.Duration
		says      string
	}{
		{name: "wrong secret", permanent: false, says: "AADSTS7000215",
			setup: func(f *fixture, _ *providers.Request, c *providers.Credential) {
				c.Value = providers.NewValue("not-the-secret-graph-issued-0000")
			}},
		{name: "unknown tenant", permanent: true, tag: entraapp.TagTenant, says: "AADSTS90002",
			setup: func(_ *fixture, r *providers.Request, _ *providers.Credential) {
				r.Params[entraapp.TagTenant] = "other.onmicrosoft.com"
			}},
		{name: "application not in the tenant", permanent: true, tag: entraapp.TagTenant, says: "AADSTS700016",
			setup: func(f *fixture, r *providers.Request, _ *providers.Credential) {
				delete(r.Params, entraapp.TagAddress)
				r.Params[entraapp.TagAppID] = "0a0a0a0a-0000-4000-8000-000000000001"
			}},
		{name: "expired secret", permanent: true, says: "expired",
			setup: func(f *fixture, _ *providers.Request, c *providers.Credential) {
				f.srv.SeedPassword(f.objectID, "old", "EXPIRED-secret-value-abcdefgh", time.Now().Add(-time.Hour))
				c.Value = providers.NewValue("EXPIRED-secret-value-abcdefgh")
			}},
		{name: "throttled", permanent: false, retry: 9 * time.Second, says: "busy",
			setup: func(f *fixture, _ *providers.Request, _ *providers.Credential) {
				f.srv.FailNext(graphtest.Token, 1, graphtest.Fault{Status: http.StatusTooManyRequests, Code: "temporarily_unavailable", AADSTS: 50196,
					Message: "The server terminated an operation because it encountered a client request loop.", RetryAfter: "9"})
			}},
		{name: "token endpoint down", permanent: false, says: "unavailable",
			setup: func(f *fixture, _ *providers.Request, _ *providers.Credential) { f.srv.SetDown(true, "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.provider()
			req := f.request()
			cred, err := p.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(f, &req, &cred)
			err = p.Verify(ctx, req, cred)
			switch {
			case err == nil:
				t.Fatal("verified")
			case providers.IsPermanent(err) != tc.permanent:
				t.Fatalf("permanent=%v, want %v: %v", providers.IsPermanent(err), tc.permanent, err)
			case !strings.Contains(err.Error(), tc.says):
				t.Fatalf("%q does not say %q", err, tc.says)
			}
			if tc.tag != "" {
				if ce := httpxtest.As[*providers.ConfigError](t, err); ce.Tag != tc.tag {
					t.Fatalf("names tag %s, want %s", ce.Tag, tc.tag)
				}
			}
			if tc.retry != 0 {
				if ra := httpxtest.As[*entraapp.Error](t, err).RetryAfter(); ra != tc.retry {
					t.Fatalf("RetryAfter %v, want %v", ra, tc.retry)
				}
			}
			f.clean(t, err)
			noSecrets(t, f.srv, err.Error(), "EXPIRED-secret-value-abcdefgh", "not-the-secret-graph-issued-0000")
		})
	}
}

func TestRevokeWhatIsAlreadyGone(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusBadRequest} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			f := newFixture(t)
			f.srv.SetMissingPasswordStatus(status)
			p := f.provider()
			req := f.request()
			cred, err := p.Create(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if err := p.Revoke(ctx, after(req, cred), f.initialID); err != nil {
					t.Fatalf("revoke #%d: %v", i+1, err)
				}
			}
			if f.srv.Calls(graphtest.RemovePassword) != 2 {
				t.Fatal("removePassword not called twice")
			}
		})
	}
}

func TestRevokeRefuses(t *testing.T) {
	f := newFixture(t)
	p := f.provider()
	req := f.request()
	for name, id := range map[string]string{"the current password": f.initialID, "not a keyId": "tok-1"} {
		if err := p.Revoke(ctx, req, id); !providers.IsPermanent(err) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if f.srv.Calls(graphtest.RemovePassword) != 0 || !slices.Contains(f.keyIDs(), f.initialID) {
		t.Fatal("a password was removed")
	}
}

func TestForbiddenIsPermanent(t *testing.T) {
	f := newFixture(t)
	p := f.provider()
	req := f.request()
	f.srv.SetForbidden(f.objectID, true)
	_, createErr := p.Create(ctx, req)
	revokeErr := p.Revoke(ctx, req, "0a0a0a0a-0000-4000-8000-000000000002")
	for _, err := range []error{createErr, revokeErr} {
		if !providers.IsPermanent(err) {
			t.Fatalf("403 must be permanent: %v", err)
		}
		e := httpxtest.As[*entraapp.Error](t, err)
		if e.Status != http.StatusForbidden || e.Code != "Authorization_RequestDenied" || e.RequestID == "" {
			t.Fatalf("%+v", e)
		}
		for _, want := range []string{"Application.ReadWrite.OwnedBy", "owner", "Application.ReadWrite.All", "Insufficient privileges"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("%q does not mention %q", err, want)
			}
		}
		f.clean(t, err)
	}
}

func TestGraphFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      func(f *fixture)
		permanent bool
		retry     time.Duration // RetryAfter, exactly
		tag       string
	}{
		{name: "throttled (429 Retry-After)", retry: 7 * time.Second, fail: func(f *fixture) {
			f.srv.FailNext(graphtest.GetApplication, 1, graphtest.Fault{Status: http.StatusTooManyRequests, Code: "TooManyRequests",
				Message: "Too many requests.", RetryAfter: "7"})
		}},
		{name: "addPassword throttled", retry: 3 * time.Second, fail: func(f *fixture) {
			f.srv.FailNext(graphtest.AddPassword, 1, graphtest.Fault{Status: http.StatusTooManyRequests, Code: "TooManyRequests", RetryAfter: "3"})
		}},
		{name: "Graph down (503 everywhere)", retry: 2 * time.Second, fail: func(f *fixture) { f.srv.SetDown(true, "2") }},
		{name: "addPassword 500: the outcome is unknown", retry: 50 * time.Millisecond, fail: func(f *fixture) {
			f.srv.FailNext(graphtest.AddPassword, 1, graphtest.Fault{Status: http.StatusInternalServerError, Code: "UnknownError"})
		}},
		{name: "connection refused", fail: func(f *fixture) { f.srv.Close() }},
		{name: "token rejected (401)", permanent: true, fail: func(f *fixture) {
			f.srv.FailNext(graphtest.GetApplication, 1, graphtest.Fault{Status: http.StatusUnauthorized, Code: "InvalidAuthenticationToken", Message: "Access token has expired or is not yet valid."})
		}},
		{name: "tenant policy refuses the lifetime (400)", permanent: true, fail: func(f *fixture) { f.srv.SetMaxLifetime(30 * 24 * time.Hour) }},
		{name: "no such application", permanent: true, tag: entraapp.TagAddress, fail: func(f *fixture) { f.objectID = "0a0a0a0a-0000-4000-8000-000000000003" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := f.provider()
			tc.fail(f)
			req := f.request()
			req.Params[entraapp.TagAddress] = f.objectID
			_, err := p.Create(ctx, req)
			if err == nil || providers.IsPermanent(err) != tc.permanent {
				t.Fatalf("permanent=%v, want %v: %v", providers.IsPermanent(err), tc.permanent, err)
			}
			if tc.tag != "" {
				if ce := httpxtest.As[*providers.ConfigError](t, err); ce.Tag != tc.tag {
					t.Fatalf("names tag %s, want %s", ce.Tag, tc.tag)
				}
			} else if ra := httpxtest.As[*entraapp.Error](t, err).RetryAfter(); tc.retry != 0 && ra != tc.retry {
				t.Fatalf("RetryAfter %v, want %v", ra, tc.retry)
			}
			f.clean(t, err)
		})
	}
}

// transporterFunc is an azcore policy.Transporter that is not an *http.Client.
type transporterFunc func(*http.Request) (*http.Response, error)

func (f transporterFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// Any transport the Azure environment gives carries the Graph calls and the verification sign-in.
func TestAnyTransporter(t *testing.T) {
	f := newFixture(t)
	var graph, token atomic.Int32
	az := f.azure()
	az.Transport = transporterFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
			token.Add(1)
		} else {
			graph.Add(1)
		}
		return f.srv.Client().Do(r)
	})
	p := entraapp.New(entraapp.WithAzure(az))
	req := f.request()
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}
	if graph.Load() == 0 || token.Load() == 0 || int(graph.Load()+token.Load()) != f.srv.Requests() {
		t.Fatalf("%d Graph calls and %d sign-ins through the transport, %d requests served", graph.Load(), token.Load(), f.srv.Requests())
	}
}

// A provider built without WithAzure (or with no credential in it) fails every call with
// registry.ErrNoAzure, a permanent error, before anything is contacted.
func TestNoAzureCredential(t *testing.T) {
	f := newFixture(t)
	req := f.request()
	for name, p := range map[string]*entraapp.Provider{
		"no WithAzure":             entraapp.New(),
		"WithAzure, no credential": entraapp.New(entraapp.WithAzure(registry.Azure{Transport: f.srv.Client()})),
	} {
		_, createErr := p.Create(ctx, req)
		verifyErr := p.Verify(ctx, req, providers.Credential{Value: providers.NewValue("x"), CredentialID: f.initialID})
		revokeErr := p.Revoke(ctx, req, "0a0a0a0a-0000-4000-8000-000000000002")
		for _, err := range []error{createErr, verifyErr, revokeErr} {
			if !providers.IsPermanent(err) || !errors.Is(err, registry.ErrNoAzure) {
				t.Fatalf("%s: %v, want a permanent registry.ErrNoAzure", name, err)
			}
		}
	}
	if n := f.srv.Requests(); n != 0 {
		t.Fatalf("%d requests without an Azure environment", n)
	}
}

func TestUnknownCloudNeedsAGraphEndpoint(t *testing.T) {
	f := newFixture(t)
	az := f.azure()
	az.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: f.srv.URL}
	_, err := entraapp.New(entraapp.WithAzure(az)).Create(ctx, f.request())
	if !providers.IsPermanent(err) || !strings.Contains(err.Error(), string(entraapp.GraphService)) {
		t.Fatalf("got %v", err)
	}
	// WithGraph fills the gap.
	p := entraapp.New(entraapp.WithAzure(az), entraapp.WithGraph(f.srv.URL+"/", graphAudience))
	if _, err := p.Create(ctx, f.request()); err != nil {
		t.Fatal(err)
	}
}

// The registry builds the provider with the application's Azure environment; without one it is left
// out with registry.ErrNoAzure. It is a create-revoke provider and a providers.Revoker.
func TestRegistered(t *testing.T) {
	f := newFixture(t)
	az := f.azure()
	set, problems := registry.Build(registry.Env{Azure: &az})
	if err := problems[entraapp.Name]; err != nil {
		t.Fatalf("registry.Build: %v", err)
	}
	p, ok := set.Lookup(" Entra-App ")
	if !ok {
		t.Fatal("entra-app is not registered")
	}
	if _, ok := p.(providers.Revoker); !ok || p.Shape() != providers.ShapeCreateRevoke {
		t.Fatalf("%T: shape %s, want a create-revoke providers.Revoker", p, p.Shape())
	}
	req := f.request()
	cred, err := p.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(ctx, req, cred); err != nil {
		t.Fatal(err)
	}
	if _, problems := registry.Build(registry.Env{}); !errors.Is(problems[entraapp.Name], registry.ErrNoAzure) {
		t.Fatalf("registry.Build without Azure: %v, want registry.ErrNoAzure", problems[entraapp.Name])
	}
}
