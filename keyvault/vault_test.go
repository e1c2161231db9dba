package keyvault_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/keyvault"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// distinctive is a value that must never show up in an error or a log.
const distinctive = "Zq9-VALUE-MUST-NOT-LEAK-7f3c"

func set(t *testing.T, v *keyvault.Vault, name, value string, tags map[string]string) rotation.SecretProperties {
	t.Helper()
	p, err := v.Set(ctx(t), name, rotation.NewVersion{Value: providers.NewValue(value), Tags: tags})
	if err != nil {
		t.Fatalf("Set %s: %v", name, err)
	}
	return p
}

// kvErr asserts err carries a *keyvault.Error and returns it.
func kvErr(t *testing.T, err error) *keyvault.Error {
	t.Helper()
	var e *keyvault.Error
	if !errors.As(err, &e) {
		t.Fatalf("want *keyvault.Error, got %T %v", err, err)
	}
	return e
}

func TestGetLatestAndByVersion(t *testing.T) {
	srv := start(t, nil)
	v := newVault(t, srv, nil)
	if v.Name() != "myvault" {
		t.Fatalf("Name() = %q", v.Name())
	}
	p1 := set(t, v, "db-password", "first", map[string]string{"rotation-provider": "random"})
	p2 := set(t, v, "db-password", "second", map[string]string{"rotation-provider": "random", "CredentialId": "b"})
	if p1.Version == "" || p2.Version == "" || p1.Version == p2.Version {
		t.Fatalf("versions %q %q", p1.Version, p2.Version)
	}

	latest, err := v.Get(ctx(t), "db-password", "")
	if err != nil {
		t.Fatal(err)
	}
	if latest.Value.Reveal() != "second" || latest.Version != p2.Version || latest.Name != "db-password" || latest.Vault != "myvault" {
		t.Fatalf("latest: %+v (value len %d)", latest.SecretProperties, latest.Value.Len())
	}
	if latest.Tags["CredentialId"] != "b" || !latest.Enabled || latest.Created.IsZero() || latest.Updated.IsZero() {
		t.Fatalf("latest properties: %+v", latest.SecretProperties)
	}
	old, err := v.Get(ctx(t), "db-password", p1.Version)
	if err != nil {
		t.Fatal(err)
	}
	if old.Value.Reveal() != "first" || old.Version != p1.Version || old.Tags["CredentialId"] != "" || old.Tags["rotation-provider"] != "random" {
		t.Fatalf("by version: %+v", old.SecretProperties)
	}
	// The value prints redacted.
	if s := fmt.Sprintf("%v %+v", latest, latest); strings.Contains(s, "second") {
		t.Fatalf("secret printed its value: %s", s)
	}
}

func TestListPagesWithoutPerSecretGets(t *testing.T) {
	srv := start(t, nil)
	ct := &countingTransport{next: srv.HTTPClient()}
	v := newVault(t, srv, &keyvault.Options{Transport: ct})
	const n = 61 // three pages of 25
	for i := range n {
		set(t, v, fmt.Sprintf("s%02d", i), "v", map[string]string{"i": fmt.Sprint(i)})
	}
	ct.reset()

	seen := map[string]int{}
	err := v.List(ctx(t), func(p rotation.SecretProperties) error {
		seen[p.Name]++
		if p.Version != "" || p.Vault != "myvault" || p.Tags["i"] == "" || !p.Enabled || p.Created.IsZero() {
			t.Errorf("listed properties: %+v", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != n {
		t.Fatalf("listed %d secrets, want %d", len(seen), n)
	}
	for name, c := range seen {
		if c != 1 {
			t.Fatalf("fn called %d times for %s", c, name)
		}
	}
	if pages := ct.count("GET", "/secrets", http.StatusOK); pages != 3 {
		t.Fatalf("%d list pages for %d secrets, want 3; requests: %v", pages, n, ct.all())
	}
	for _, r := range ct.all() {
		if !strings.HasPrefix(r, "GET /secrets ") {
			t.Fatalf("List sent %q: only list pages are allowed", r)
		}
	}

	// An error from fn stops the listing and comes back as it is.
	stop := errors.New("stop here")
	calls := 0
	err = v.List(ctx(t), func(rotation.SecretProperties) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("List with failing fn: err %v after %d calls", err, calls)
	}
}

func TestSetWritesVersionGetReadsBack(t *testing.T) {
	srv := start(t, nil)
	v := newVault(t, srv, nil)
	nbf := time.Now().Add(-time.Minute).Truncate(time.Second)
	exp := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	tags := map[string]string{"rotation-provider": "random", "ValidityPeriodDays": "90"}
	p, err := v.Set(ctx(t), "api-key", rotation.NewVersion{
		Value: providers.NewValue("v1"), ContentType: "text/plain", Tags: tags, NotBefore: nbf, Expires: exp,
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got rotation.SecretProperties) {
		t.Helper()
		if got.Name != "api-key" || got.Vault != "myvault" || got.Version != p.Version || !got.Enabled || got.ContentType != "text/plain" {
			t.Fatalf("%s: %+v", what, got)
		}
		if got.NotBefore == nil || !got.NotBefore.Equal(nbf) || got.Expires == nil || !got.Expires.Equal(exp) {
			t.Fatalf("%s: nbf %v exp %v, want %v %v", what, got.NotBefore, got.Expires, nbf, exp)
		}
		if got.Expires.Location() != time.UTC {
			t.Fatalf("%s: times not in UTC", what)
		}
		if len(got.Tags) != 2 || got.Tags["ValidityPeriodDays"] != "90" || got.Tags["rotation-provider"] != "random" {
			t.Fatalf("%s: tags %v", what, got.Tags)
		}
	}
	if len(p.Version) != 32 {
		t.Fatalf("version %q", p.Version)
	}
	check("Set", p)
	got, err := v.Get(ctx(t), "api-key", "")
	if err != nil {
		t.Fatal(err)
	}
	check("Get", got.SecretProperties)
	if got.Value.Reveal() != "v1" {
		t.Fatal("value not read back")
	}

	// Zero times are left unset.
	p2, err := v.Set(ctx(t), "plain", rotation.NewVersion{Value: providers.NewValue("x")})
	if err != nil {
		t.Fatal(err)
	}
	if p2.NotBefore != nil || p2.Expires != nil || p2.ContentType != "" || len(p2.Tags) != 0 {
		t.Fatalf("plain: %+v", p2)
	}
}

func TestUpdateTags(t *testing.T) {
	srv := start(t, nil)
	v := newVault(t, srv, nil)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	p, err := v.Set(ctx(t), "s", rotation.NewVersion{Value: providers.NewValue("keep"), ContentType: "text/plain",
		Tags: map[string]string{"a": "1", "b": "2"}, Expires: exp})
	if err != nil {
		t.Fatal(err)
	}
	up, err := v.UpdateTags(ctx(t), "s", p.Version, map[string]string{"a": "1", "c": "3"})
	if err != nil {
		t.Fatal(err)
	}
	if up.Version != p.Version || len(up.Tags) != 2 || up.Tags["c"] != "3" || up.Tags["b"] != "" {
		t.Fatalf("UpdateTags: %+v", up)
	}
	got, err := v.Get(ctx(t), "s", "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != p.Version || got.Value.Reveal() != "keep" || got.ContentType != "text/plain" ||
		got.Expires == nil || !got.Expires.Equal(exp) || len(got.Tags) != 2 || got.Tags["c"] != "3" {
		t.Fatalf("after UpdateTags: %+v", got.SecretProperties)
	}
	// Still one version: UpdateTags created none.
	versions := 0
	_ = v.List(ctx(t), func(p rotation.SecretProperties) error { versions++; return nil })
	if versions != 1 {
		t.Fatalf("%d secrets listed", versions)
	}
	// An empty map clears the tags ("replaces", not "merges").
	cleared, err := v.UpdateTags(ctx(t), "s", p.Version, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cleared.Tags) != 0 {
		t.Fatalf("tags after clearing: %v", cleared.Tags)
	}
}

func TestNotFound(t *testing.T) {
	srv := start(t, nil)
	v := newVault(t, srv, nil)
	set(t, v, "exists", "x", nil)
	missingVersion := strings.Repeat("0", 32)
	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"get missing secret", func() error { _, err := v.Get(ctx(t), "db-password", ""); return err },
			`keyvault: get secret "db-password" in vault "myvault": 404 Not Found (SecretNotFound)`},
		{"get missing version", func() error { _, err := v.Get(ctx(t), "exists", missingVersion); return err },
			`keyvault: get secret "exists" version "` + missingVersion + `" in vault "myvault": 404 Not Found (SecretNotFound)`},
		{"update tags of missing secret", func() error { _, err := v.UpdateTags(ctx(t), "nope", "", map[string]string{"a": "b"}); return err },
			`keyvault: update tags of secret "nope" in vault "myvault": 404 Not Found (SecretNotFound)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, rotation.ErrNotFound) {
				t.Fatalf("errors.Is(err, ErrNotFound) is false for %v", err)
			}
			if err.Error() != c.want {
				t.Fatalf("message\n got %s\nwant %s", err, c.want)
			}
			if !providers.IsPermanent(err) {
				t.Fatal("404 should not be retried")
			}
			var re *azcore.ResponseError
			if !errors.As(err, &re) || re.StatusCode != 404 {
				t.Fatal("the SDK's ResponseError is not reachable")
			}
			if e := kvErr(t, err); e.StatusCode != 404 || e.Code != "SecretNotFound" || e.Vault != "myvault" {
				t.Fatalf("Error fields: %+v", e)
			}
		})
	}
}

func TestForbiddenIsPermanentWithoutBody(t *testing.T) {
	reader := emulator.IdentityConfig{Name: "reader", Managed: true, ClientID: "aaaaaaaa-0000-4000-8000-000000000001",
		ObjectID: "bbbbbbbb-0000-4000-8000-000000000001", Roles: []emulator.RoleAssignment{{Role: emulator.RoleReader, Vault: "*"}}}
	srv := start(t, func(c *emulator.Config) { c.Identities = []emulator.IdentityConfig{emulator.DefaultIdentity(), reader} })
	admin := newVault(t, srv, nil)
	set(t, admin, "db-password", distinctive, map[string]string{"rotation-provider": "random"})

	v := newVaultAs(t, srv, reader.ClientID, nil)
	// A reader may list (metadata)…
	n := 0
	if err := v.List(ctx(t), func(rotation.SecretProperties) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("reader list: %d, %v", n, err)
	}
	// …but not read values or write.
	_, err := v.Get(ctx(t), "db-password", "")
	want := `keyvault: get secret "db-password" in vault "myvault": 403 Forbidden (ForbiddenByRbac)`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if !providers.IsPermanent(err) || errors.Is(err, rotation.ErrNotFound) {
		t.Fatal("403 must be permanent and not a NotFound")
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || !strings.Contains(re.Error(), "getSecret/action") {
		t.Fatalf("original ResponseError (with the body) should stay reachable: %v", re)
	}
	if strings.Contains(err.Error(), "action") || strings.Contains(fmt.Sprintf("%+v", err), "principal") {
		t.Fatalf("message carries the response body: %s", err)
	}

	_, err = v.Set(ctx(t), "db-password", rotation.NewVersion{Value: providers.NewValue(distinctive)})
	if !providers.IsPermanent(err) || kvErr(t, err).StatusCode != 403 || strings.Contains(err.Error(), distinctive) {
		t.Fatalf("reader set: %v", err)
	}
	_, err = v.UpdateTags(ctx(t), "db-password", "", map[string]string{"x": "y"})
	if !providers.IsPermanent(err) || kvErr(t, err).Code != "ForbiddenByRbac" {
		t.Fatalf("reader update: %v", err)
	}
}

func TestThrottledIsTransient(t *testing.T) {
	srv := start(t, func(c *emulator.Config) { c.Limits = emulator.Limits{Writes: 1} })
	v := newVault(t, srv, &keyvault.Options{Retry: noRetry()})
	set(t, v, "s", "one", nil)
	_, err := v.Set(ctx(t), "s", rotation.NewVersion{Value: providers.NewValue(distinctive)})
	if err == nil {
		t.Fatal("second write within the window was not throttled")
	}
	if providers.IsPermanent(err) || errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("429 must be transient: %v", err)
	}
	e := kvErr(t, err)
	if e.StatusCode != http.StatusTooManyRequests || e.Code != "Throttled" {
		t.Fatalf("fields: %d %s", e.StatusCode, e.Code)
	}
	if want := `keyvault: set secret "s" in vault "myvault": 429 Too Many Requests (Throttled)`; err.Error() != want {
		t.Fatalf("got %s\nwant %s", err, want)
	}
	// Reads are limited separately and still work.
	if _, err := v.Get(ctx(t), "s", ""); err != nil {
		t.Fatal(err)
	}
}

func TestServiceUnavailableIsTransient(t *testing.T) {
	srv := start(t, nil)
	v := newVault(t, srv, nil) // 2 fast retries
	set(t, v, "s", "x", nil)
	if err := srv.AddFault(emulator.FaultRule{Operation: "GetSecret", Status: 503, Count: 10}); err != nil {
		t.Fatal(err)
	}
	_, err := v.Get(ctx(t), "s", "")
	if err == nil {
		t.Fatal("no error with 503 faults")
	}
	if providers.IsPermanent(err) {
		t.Fatalf("503 must be transient: %v", err)
	}
	if want := `keyvault: get secret "s" in vault "myvault": 503 Service Unavailable`; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %s", err)
	}
	srv.ClearFaults()
	if _, err := v.Get(ctx(t), "s", ""); err != nil {
		t.Fatalf("after the faults: %v", err)
	}
}

func TestRetriesThroughTransientFaults(t *testing.T) {
	srv := start(t, nil)
	v := newVault(t, srv, nil) // 2 fast retries
	set(t, v, "s", "x", nil)
	if err := srv.AddFault(emulator.FaultRule{Operation: "GetSecret", Status: 503, Count: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx(t), "s", ""); err != nil {
		t.Fatalf("two 503s then success: %v", err)
	}
}

func TestErrorsNeverContainValue(t *testing.T) {
	srv := start(t, nil)
	v := newVault(t, srv, &keyvault.Options{Retry: noRetry()})
	set(t, v, "leaky", distinctive, nil)

	// The emulator's error bodies carry the value, as a misbehaving proxy or service might.
	for _, op := range []string{"GetSecret", "SetSecret", "UpdateSecretProperties", "ListSecretProperties"} {
		for _, status := range []int{400, 403, 409, 500} {
			if err := srv.AddFault(emulator.FaultRule{Operation: op, Status: status, Message: "echo: " + distinctive}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var errs []error
	for range 4 {
		_, err := v.Get(ctx(t), "leaky", "")
		errs = append(errs, err)
		_, err = v.Set(ctx(t), "leaky", rotation.NewVersion{Value: providers.NewValue(distinctive)})
		errs = append(errs, err)
		_, err = v.UpdateTags(ctx(t), "leaky", "", map[string]string{"a": "b"})
		errs = append(errs, err)
		errs = append(errs, v.List(ctx(t), func(rotation.SecretProperties) error { return nil }))
	}
	for i, err := range errs {
		if err == nil {
			t.Fatalf("call %d did not fail", i)
		}
		for _, s := range []string{err.Error(), fmt.Sprint(err), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", kvErr(t, err).Error())} {
			if strings.Contains(s, distinctive) {
				t.Fatalf("error text contains the value: %s", s)
			}
		}
		var re *azcore.ResponseError
		if !errors.As(err, &re) || !strings.Contains(re.Error(), distinctive) {
			t.Fatalf("the fault did not put the value in the body (test is not testing): %v", err)
		}
	}
}

func TestTransportErrorIsTransient(t *testing.T) {
	srv := start(t, nil)
	url := srv.VaultURL("myvault")
	cred := managedIdentity(t, srv, "")
	_ = srv.Close() // nothing listens any more
	v, err := keyvault.New(url, cred, &keyvault.Options{Transport: srv.HTTPClient(), Retry: noRetry()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Get(ctx(t), "s", "")
	if err == nil || providers.IsPermanent(err) || errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("transport failure: %v", err)
	}
	if e := kvErr(t, err); e.StatusCode != 0 || !strings.Contains(err.Error(), `keyvault: get secret "s" in vault "myvault": transport error`) {
		t.Fatalf("got %v", err)
	}
}

func TestInvalidNamesRefusedLocally(t *testing.T) {
	srv := start(t, nil)
	ct := &countingTransport{next: srv.HTTPClient()}
	v := newVault(t, srv, &keyvault.Options{Transport: ct})
	for _, c := range []struct{ name, version string }{{"", ""}, {"a/b", ""}, {"../x", ""}, {"a_b", ""}, {"ok", "x/y"}, {"ok", "../"}} {
		_, err := v.Get(ctx(t), c.name, c.version)
		if err == nil || !providers.IsPermanent(err) {
			t.Fatalf("Get(%q, %q): %v", c.name, c.version, err)
		}
	}
	if _, err := v.Set(ctx(t), "bad name", rotation.NewVersion{Value: providers.NewValue("x")}); !providers.IsPermanent(err) {
		t.Fatalf("Set with a bad name: %v", err)
	}
	if n := len(ct.all()); n != 0 {
		t.Fatalf("%d requests sent for invalid names", n)
	}
}

func TestDedicatedPortVault(t *testing.T) {
	srv := start(t, func(c *emulator.Config) {
		c.Vaults = append(c.Vaults, emulator.VaultConfig{Name: "portvault", Addr: "127.0.0.1:0"})
	})
	url := srv.VaultAddrURL("portvault")
	if url == "" {
		t.Fatal("no dedicated listener")
	}
	cred := managedIdentity(t, srv, "")
	if _, err := keyvault.New(url, cred, &keyvault.Options{Transport: srv.HTTPClient()}); err == nil {
		t.Fatal("an IP-address vault URL without Options.Name was accepted")
	}
	v, err := keyvault.New(url, cred, &keyvault.Options{Transport: srv.HTTPClient(), Name: "portvault"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != "portvault" {
		t.Fatalf("Name() = %q", v.Name())
	}
	p := set(t, v, "s", "x", nil)
	got, err := v.Get(ctx(t), "s", p.Version)
	if err != nil || got.Vault != "portvault" || got.Value.Reveal() != "x" {
		t.Fatalf("Get: %+v %v", got.SecretProperties, err)
	}
}

func TestVaultURL(t *testing.T) {
	cases := []struct {
		in, want string // want "" = error
	}{
		{"myvault", "https://myvault.vault.azure.net"},
		{"MyVault-01", "https://myvault-01.vault.azure.net"},
		{" myvault ", "https://myvault.vault.azure.net"},
		{"https://myvault.vault.azure.net", "https://myvault.vault.azure.net"},
		{"https://myvault.vault.azure.net/", "https://myvault.vault.azure.net"},
		{"https://MyVault.Vault.Azure.NET/", "https://myvault.vault.azure.net"},
		{"https://myvault.localhost:8443", "https://myvault.localhost:8443"},
		{"https://127.0.0.1:8444/", "https://127.0.0.1:8444"},
		{"https://myvault.vault.usgovcloudapi.net", "https://myvault.vault.usgovcloudapi.net"},
		{"", ""},
		{"ab", ""},                    // too short
		{strings.Repeat("a", 25), ""}, // too long
		{strings.Repeat("a", 24), "https://" + strings.Repeat("a", 24) + ".vault.azure.net"},
		{"1vault", ""},    // starts with a digit
		{"vault-", ""},    // ends with a hyphen
		{"my--vault", ""}, // consecutive hyphens
		{"my_vault", ""},  // underscore
		{"my.vault", ""},  // dot
		{"http://myvault.vault.azure.net", ""},
		{"https://myvault.vault.azure.net/secrets", ""},
		{"https://myvault.vault.azure.net?x=1", ""},
		{"https://myvault.vault.azure.net#frag", ""},
		{"https://user:pw@myvault.vault.azure.net", ""},
		{"https://", ""},
		{"https://myvault.vault.azure.net:99999", ""},
	}
	for _, c := range cases {
		got, err := keyvault.VaultURL(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("VaultURL(%q) = %q, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("VaultURL(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// The user-info password is not echoed.
	if _, err := keyvault.VaultURL("https://user:pw-XYZ@myvault.vault.azure.net"); err == nil || strings.Contains(err.Error(), "pw-XYZ") {
		t.Fatalf("user info: %v", err)
	}
}

func TestNewValidation(t *testing.T) {
	cred := &azfake.TokenCredential{}
	cases := []struct {
		url, name string
		want      string // vault name, "" = error
	}{
		{"https://myvault.vault.azure.net", "", "myvault"},
		{"https://myvault.vault.azure.net/", "", "myvault"},
		{"https://MyVault.vault.azure.net", "", "myvault"},
		{"https://myvault.localhost:8443", "", "myvault"},
		{"https://myvault.localhost:8443", "MYVAULT", "myvault"},
		{"https://myvault.privatelink.vaultcore.azure.net", "", "myvault"},
		{"https://127.0.0.1:8444", "portvault", "portvault"},
		{"https://[::1]:8444", "portvault", "portvault"},
		{"https://127.0.0.1:8444", "", ""},         // IP without a name
		{"https://127.0.0.1:8444", "bad_name", ""}, // invalid name
		{"https://myvault.localhost:8443", "other", ""},
		{"https://ab.vault.azure.net", "", ""}, // label is not a valid vault name
		{"http://myvault.vault.azure.net", "", ""},
		{"https://myvault.vault.azure.net/secrets/x", "", ""},
		{"myvault", "", ""},
		{"", "", ""},
		{"https://myvault.vault.azure.net?api-version=1", "", ""},
	}
	for _, c := range cases {
		v, err := keyvault.New(c.url, cred, &keyvault.Options{Name: c.name})
		if c.want == "" {
			if err == nil {
				t.Errorf("New(%q, Name %q) accepted as %q", c.url, c.name, v.Name())
			} else if !strings.HasPrefix(err.Error(), "keyvault: ") {
				t.Errorf("New(%q): unclear error %v", c.url, err)
			}
			continue
		}
		if err != nil || v.Name() != c.want {
			t.Errorf("New(%q, Name %q): %v, %v; want %q", c.url, c.name, v, err, c.want)
		}
	}
	if _, err := keyvault.New("https://myvault.vault.azure.net", nil, nil); err == nil {
		t.Error("nil credential accepted")
	}
	v, err := keyvault.New("https://myvault.vault.azure.net/", cred, nil)
	if err != nil || v.URL() != "https://myvault.vault.azure.net" {
		t.Fatalf("URL(): %v %v", v, err)
	}
}

// TestDisable: a disabled version keeps its tags, answers ErrDisabled (permanent) to Get, and the
// latest is untouched; disabling twice succeeds; a missing version is ErrNotFound; the latest ("")
// is refused without a request.
func TestDisable(t *testing.T) {
	srv := start(t, nil)
	v := newVault(t, srv, nil)
	old, err := v.Set(ctx(t), "s", rotation.NewVersion{Value: providers.NewValue("old-value"), Tags: map[string]string{"a": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Set(ctx(t), "s", rotation.NewVersion{Value: providers.NewValue("new-value")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := v.Disable(ctx(t), "s", old.Version); err != nil {
			t.Fatal(err)
		}
	}
	_, err = v.Get(ctx(t), "s", old.Version)
	if !errors.Is(err, rotation.ErrDisabled) || !providers.IsPermanent(err) || errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("get a disabled version: %v", err)
	}
	if strings.Contains(err.Error(), "old-value") {
		t.Fatal("the error carries the value")
	}
	latest, err := v.Get(ctx(t), "s", "")
	if err != nil || !latest.Enabled || latest.Value.Reveal() != "new-value" {
		t.Fatalf("latest: %+v, %v", latest.SecretProperties, err)
	}
	if err := v.Disable(ctx(t), "s", strings.Repeat("0", 32)); !errors.Is(err, rotation.ErrNotFound) {
		t.Fatalf("missing version: %v", err)
	}
	if err := v.Disable(ctx(t), "s", ""); err == nil || !providers.IsPermanent(err) {
		t.Fatalf("latest: %v", err)
	}
}
