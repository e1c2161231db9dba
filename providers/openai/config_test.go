package openai_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/openai"
)

// tags is a valid tag set with changes applied ("" deletes a tag).
func tags(changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":   "openai",
		"CredentialId":        "svc_acct_0123456789abcdef",
		"openai-admin-secret": "openai-admin",
		"openai-project":      "proj_abc123XYZ",
	}
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == "" {
			delete(p, changes[i])
			continue
		}
		p[changes[i]] = changes[i+1]
	}
	return p
}

func TestValidateAccepts(t *testing.T) {
	for _, p := range []providers.Params{
		tags(),
		tags("CredentialId", ""), // the first version may not name its service account: nothing to revoke
		tags("openai-api-url", "https://api.openai.com"),
		tags("openai-api-url", "https://api.openai.com/"),
		tags("openai-api-url", "https://proxy.internal.example.com:8443/openai"),
		tags("openai-api-url", "http://127.0.0.1:8080"),
		tags("openai-api-url", "http://localhost:8080"),
		tags("openai-key-lifetime-days", "90"),
		tags("openai-key-lifetime-days", " 365 "),
		tags("openai-project", " proj_with-dash_and_underscore "),
		tags("OpenAI-Admin-Secret", "other-admin", "openai-admin-secret", ""), // tag names are case-insensitive
	} {
		if err := openai.New().Validate(p); err != nil {
			t.Errorf("Validate(%v): %v", p, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params providers.Params
		tag    string
		reason string
	}{
		{"admin secret missing", tags("openai-admin-secret", ""), "openai-admin-secret", "missing"},
		{"admin secret blank", tags("openai-admin-secret", "  "), "openai-admin-secret", "missing"},
		{"admin secret not a name", tags("openai-admin-secret", "my_admin.key"), "openai-admin-secret", "not a Key Vault secret name"},
		{"project missing", tags("openai-project", ""), "openai-project", "missing"},
		{"project name, not id", tags("openai-project", "My Project"), "openai-project", "not an OpenAI project id"},
		{"project path", tags("openai-project", "proj_abc/../proj_other"), "openai-project", "not an OpenAI project id"},
		{"plain http to a remote host", tags("openai-api-url", "http://api.openai.com"), "openai-api-url", "http is allowed only"},
		{"not a URL", tags("openai-api-url", "api.openai.com"), "openai-api-url", "not an absolute URL"},
		{"user information", tags("openai-api-url", "https://user:pw@api.openai.com"), "openai-api-url", "user information"},
		{"query", tags("openai-api-url", "https://api.openai.com?x=1"), "openai-api-url", "query"},
		{"with /v1", tags("openai-api-url", "https://api.openai.com/v1"), "openai-api-url", "ends in /v1"},
		{"lifetime not a number", tags("openai-key-lifetime-days", "ninety"), "openai-key-lifetime-days", "not a whole number"},
		{"lifetime zero", tags("openai-key-lifetime-days", "0"), "openai-key-lifetime-days", "between 1 and 365"},
		{"lifetime too long", tags("openai-key-lifetime-days", "366"), "openai-key-lifetime-days", "between 1 and 365"},
		{"misspelt tag", tags("openai-projekt", "proj_x"), "openai-projekt", "unknown tag"},
		{"twice in different case", tags("OPENAI-PROJECT", "proj_other"), "openai-project", "set 2 times"},
		{"CredentialId not an id", tags("CredentialId", "svc acct/1"), "CredentialId", "not an OpenAI service account id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := openai.New().Validate(tc.params)
			var ce *providers.ConfigError
			if !errors.As(err, &ce) || !providers.IsPermanent(err) {
				t.Fatalf("Validate = %v, want a ConfigError", err)
			}
			found := false
			for _, e := range unjoin(err) {
				if errors.As(e, &ce) && strings.EqualFold(ce.Tag, tc.tag) && strings.Contains(ce.Error(), tc.reason) {
					found = true
				}
			}
			if !found {
				t.Errorf("Validate = %v, want tag %s: %s", err, tc.tag, tc.reason)
			}
		})
	}
}

// unjoin flattens joined errors.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := openai.New().Validate(tags("openai-admin-secret", "", "openai-project", "", "openai-api-url", "ftp://x", "openai-colour", "blue"))
	got := map[string]bool{}
	for _, e := range unjoin(err) {
		var ce *providers.ConfigError
		if errors.As(e, &ce) {
			got[ce.Tag] = true
		}
	}
	for _, tag := range []string{"openai-admin-secret", "openai-project", "openai-api-url", "openai-colour"} {
		if !got[tag] {
			t.Errorf("no error for %s in %v", tag, err)
		}
	}
}

func TestValidateNeverRepeatsAKeyPutInATag(t *testing.T) {
	key := "sk-svcacct-THISISTHEKEYTHISISTHEKEYTHISISTHEKEY"
	for _, tag := range []string{"openai-admin-secret", "openai-project", "CredentialId"} {
		err := openai.New().Validate(tags(tag, key))
		if err == nil {
			t.Fatalf("a key in %s was accepted", tag)
		}
		if strings.Contains(err.Error(), "THISISTHEKEY") {
			t.Errorf("the error for %s repeats the key: %v", tag, err)
		}
	}
}
