package awsiam_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/awsiam"
	"github.com/kvrotator/kvrotator/providers/awsiam/iamtest"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
)

const (
	adminSecret = "aws-admin" // the secret the aws-iam-admin-secret tag names
	secretName  = "app-aws"   // the secret being rotated
	vaultName   = "myvault"
	appUser     = "app-orders"      // the IAM user whose key the secret holds
	adminUser   = "kvrotator-admin" // the IAM user of the admin key
	account     = "123456789012"
	idemKey     = "kvr-0123456789abcdef"
)

// fixture is an AWS account with an admin user allowed to manage the app user's keys, and the app
// user's current key (made two days ago in the console).
type fixture struct {
	srv     *iamtest.Server
	admin   iamtest.Key
	current iamtest.Key
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := iamtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddUser(adminUser, "/")
	srv.AddUser(appUser, "/apps/")
	srv.AddUser("payments", "/")
	srv.Grant(adminUser, []string{appUser})
	return &fixture{srv: srv, admin: srv.AddKey(adminUser), current: srv.AddKeyAt(appUser, time.Now().Add(-48*time.Hour))}
}

// newProvider is a provider with short back-offs between attempts.
func newProvider(opts ...awsiam.Option) *awsiam.Provider {
	return awsiam.New(append([]awsiam.Option{awsiam.WithRetries(3, 5*time.Millisecond)}, opts...)...)
}

// params are the secret's tags.
func (f *fixture) params(extra ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":   awsiam.Name,
		"CredentialId":        f.current.ID,
		awsiam.TagUser:        appUser,
		awsiam.TagAccount:     account,
		awsiam.TagAdminSecret: adminSecret,
		awsiam.TagIAMURL:      f.srv.URL,
		awsiam.TagSTSURL:      f.srv.URL,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(p, extra[i])
			continue
		}
		p[extra[i]] = extra[i+1]
	}
	return p
}

// request is what the engine would send to rotate the current key.
func (f *fixture) request(extra ...string) providers.Request {
	return providers.Request{
		Vault: vaultName, Secret: secretName, Version: "v1",
		Current: providers.NewValue(f.current.Pair()), CredentialID: f.current.ID,
		Params:         f.params(extra...),
		IdempotencyKey: idemKey,
		Secrets:        httpxtest.Secrets{adminSecret: f.admin.Pair()},
		Now:            time.Now(),
	}
}

// secrets are every secret access key the server knows or knew, and more: no error may contain one.
func (f *fixture) secrets(more ...string) []string {
	out := append([]string{f.admin.Secret, f.current.Secret}, more...)
	for _, u := range []string{appUser, adminUser, "payments"} {
		for _, k := range f.srv.Keys(u) {
			out = append(out, k.Secret)
		}
	}
	return out
}

// clean fails if err's text contains any of the secrets, or an 8-byte piece of one.
func clean(t *testing.T, err error, secrets ...string) {
	t.Helper()
	texts := httpxtest.ErrorTexts(err)
	httpxtest.NoSecrets(t, texts, secrets...)
	for _, text := range texts {
		for _, s := range secrets {
			for i := 0; i+8 <= len(s); i++ {
				if strings.Contains(text, s[i:i+8]) {
					t.Fatalf("error %q contains part of a secret access key", text)
				}
			}
		}
	}
}

// wantConfigError fails unless err is (or joins) a *providers.ConfigError for tag.
func wantConfigError(t *testing.T, err error, tag string) *providers.ConfigError {
	t.Helper()
	var ce *providers.ConfigError
	if !errors.As(err, &ce) || !strings.EqualFold(ce.Tag, tag) {
		t.Fatalf("error %v, want a ConfigError for tag %s", err, tag)
	}
	if !providers.IsPermanent(err) {
		t.Fatalf("ConfigError %v is not permanent", err)
	}
	return ce
}

// wantTransient fails unless err is a transient *awsiam.Error.
func wantTransient(t *testing.T, err error) *awsiam.Error {
	t.Helper()
	return httpxtest.Transient[*awsiam.Error](t, err)
}

// wantPermanent fails unless err is a permanent *awsiam.Error.
func wantPermanent(t *testing.T, err error) *awsiam.Error {
	t.Helper()
	return httpxtest.Permanent[*awsiam.Error](t, err)
}

// keyIDs lists the ids of keys.
func keyIDs(keys []iamtest.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	return out
}
