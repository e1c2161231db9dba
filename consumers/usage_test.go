package consumers_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/query/azlogs"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/consumers"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// Two applications that read secrets, besides kvrotator's own (system-assigned) identity.
var (
	appA = emulator.IdentityConfig{Name: "orders-api", Managed: true, ClientID: "aaaaaaaa-0000-4000-8000-00000000000a", ObjectID: "aaaaaaaa-1111-4111-8111-00000000000a",
		Roles: []emulator.RoleAssignment{{Role: emulator.RoleSecretsUser, Vault: "*"}}}
	appB = emulator.IdentityConfig{Name: "billing-job", Managed: true, ClientID: "bbbbbbbb-0000-4000-8000-00000000000b", ObjectID: "bbbbbbbb-1111-4111-8111-00000000000b",
		Roles: []emulator.RoleAssignment{{Role: emulator.RoleSecretsUser, Vault: "*"}}}
)

// staticToken is a credential holding one emulator-issued token (an application's).
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

type auditRig struct {
	srv        *emulator.Server
	self       *azsecrets.Client // kvrotator's identity
	a, b       *azsecrets.Client
	la         *consumers.LogAnalytics
	credential azcore.TokenCredential
}

func startAuditRig(t *testing.T) *auditRig {
	t.Helper()
	srv, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Addr: "127.0.0.1:0", CACertFile: filepath.Join(t.TempDir(), "ca.pem"), DisableLimits: true,
		Vaults:     []emulator.VaultConfig{{Name: "audit-vault"}},
		Identities: []emulator.IdentityConfig{emulator.DefaultIdentity(), appA, appB}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}})
	if err != nil {
		t.Fatal(err)
	}
	opts := &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}}
	r := &auditRig{srv: srv, credential: cred}
	r.self, _ = azsecrets.NewClient(srv.VaultURL("audit-vault"), cred, opts)
	for _, c := range []struct {
		id  emulator.IdentityConfig
		dst **azsecrets.Client
	}{{appA, &r.a}, {appB, &r.b}} {
		tok, err := srv.IssueToken(c.id.ClientID, "https://vault.azure.net", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		*c.dst, _ = azsecrets.NewClient(srv.VaultURL("audit-vault"), staticToken(tok), opts)
	}
	r.la, err = consumers.NewLogAnalytics(consumers.LogAnalyticsOptions{Credential: cred, Workspace: srv.WorkspaceID(), Transport: srv.HTTPClient(),
		Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: srv.AuthorityHost(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			azlogs.ServiceName: {Audience: "https://api.loganalytics.io", Endpoint: srv.LogsEndpoint()}}}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func set(t *testing.T, c *azsecrets.Client, name, value string) string {
	t.Helper()
	r, err := c.SetSecret(context.Background(), name, azsecrets.SetSecretParameters{Value: &value}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.ID.Version()
}

func get(t *testing.T, c *azsecrets.Client, name, version string) {
	t.Helper()
	if _, err := c.GetSecret(context.Background(), name, version, nil); err != nil {
		t.Fatal(err)
	}
}

// TestLogAnalyticsReadsTheAuditLog: the real azlogs client against the emulator's query endpoint: who
// read which version, kvrotator's own reads left out, other secrets and failed reads left out, the time
// range honoured.
func TestLogAnalyticsReadsTheAuditLog(t *testing.T) {
	r := startAuditRig(t)
	ctx := context.Background()
	v1 := set(t, r.self, "api-key", "audit-value-1")
	set(t, r.self, "api-key-2", "another-secret")
	get(t, r.a, "api-key", "")    // the latest, v1
	get(t, r.b, "api-key", v1)    // by id
	get(t, r.self, "api-key", "") // kvrotator itself
	get(t, r.a, "api-key-2", "")  // another secret
	if _, err := r.b.GetSecret(ctx, "no-such-secret", "", nil); err == nil {
		t.Fatal("a missing secret was found")
	}
	v2 := set(t, r.self, "api-key", "audit-value-2")
	get(t, r.a, "api-key", "")

	reads, err := r.la.Reads(ctx, "audit-vault", "api-key", r.srv.Now().Add(-time.Hour), r.srv.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rd := range reads {
		got = append(got, rd.Reader+" "+rd.Version)
		if rd.Secret != "api-key" || rd.Address == "" || rd.Last.IsZero() || rd.Count < 1 {
			t.Errorf("read %+v", rd)
		}
	}
	slices.Sort(got)
	want := []string{appA.ObjectID + " " + v1, appA.ObjectID + " " + v2, appB.ObjectID + " " + v1}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("reads %q, want %q (kvrotator's own left out)", got, want)
	}

	all, err := r.la.Reads(ctx, "audit-vault", "", r.srv.Now().Add(-time.Hour), r.srv.Now().Add(time.Minute))
	if err != nil || len(all) != 4 {
		t.Fatalf("every secret of the vault: %+v, %v", all, err)
	}
	// Outside the time range: nothing.
	if old, err := r.la.Reads(ctx, "audit-vault", "api-key", r.srv.Now().Add(-3*time.Hour), r.srv.Now().Add(-2*time.Hour)); err != nil || len(old) != 0 {
		t.Fatalf("an empty range: %+v, %v", old, err)
	}
	if _, err := r.la.Reads(ctx, "audit-vault", "bad name!", time.Time{}, time.Now()); err == nil || !providers.IsPermanent(err) {
		t.Fatalf("an invalid name: %v", err)
	}
}

// TestLogAnalyticsErrors: a workspace kvrotator may not read and one that does not exist are permanent,
// named failures that never carry a value.
func TestLogAnalyticsErrors(t *testing.T) {
	r := startAuditRig(t)
	missing, err := consumers.NewLogAnalytics(consumers.LogAnalyticsOptions{Credential: r.credential, Workspace: "99999999-9999-4999-8999-999999999999",
		Transport: r.srv.HTTPClient(), Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: r.srv.AuthorityHost(), Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			azlogs.ServiceName: {Audience: "https://api.loganalytics.io", Endpoint: r.srv.LogsEndpoint()}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = missing.Reads(context.Background(), "audit-vault", "api-key", time.Now().Add(-time.Hour), time.Now())
	if err == nil || !providers.IsPermanent(err) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown workspace: %v", err)
	}
	if _, err := consumers.NewLogAnalytics(consumers.LogAnalyticsOptions{Credential: r.credential, Workspace: "my-workspace"}); err == nil {
		t.Fatal("a workspace name was accepted as an id")
	}
	var _ rotation.Usage = r.la
}
