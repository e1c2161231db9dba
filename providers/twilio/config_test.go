package twilio_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/twilio"
)

const testAccount = "AC0123456789abcdef0123456789abcdef"

// tags is a valid tag set with changes applied ("" deletes a tag).
func tags(changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":   "twilio",
		"CredentialId":        "SK0123456789abcdef0123456789abcdef",
		"twilio-admin-secret": "twilio-admin",
		"twilio-account-sid":  testAccount,
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
		tags("CredentialId", ""),
		tags("twilio-key-type", "Restricted"),
		tags("twilio-key-type", "standard"),
		tags("twilio-verify", "balance"),
		tags("twilio-iam-url", "https://iam.twilio.com/", "twilio-api-url", "https://api.dublin.ie1.twilio.com"),
		tags("twilio-iam-url", "http://127.0.0.1:8080", "twilio-api-url", "http://localhost:8080"),
		tags("Twilio-Admin-Secret", "other-admin", "twilio-admin-secret", ""),
	} {
		if err := twilio.New().Validate(p); err != nil {
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
		{"admin secret missing", tags("twilio-admin-secret", ""), "twilio-admin-secret", "missing"},
		{"admin secret not a name", tags("twilio-admin-secret", "SK0:secret"), "twilio-admin-secret", "not a Key Vault secret name"},
		{"account missing", tags("twilio-account-sid", ""), "twilio-account-sid", "missing"},
		{"account not an SID", tags("twilio-account-sid", "SK0123456789abcdef0123456789abcdef"), "twilio-account-sid", "not an Account SID"},
		{"account too short", tags("twilio-account-sid", "AC0123"), "twilio-account-sid", "not an Account SID"},
		{"http to a remote host", tags("twilio-iam-url", "http://iam.twilio.com"), "twilio-iam-url", "use https"},
		{"user info", tags("twilio-api-url", "https://u:p@api.twilio.com"), "twilio-api-url", "user information"},
		{"query", tags("twilio-api-url", "https://api.twilio.com/?x=1"), "twilio-api-url", "query"},
		{"main keys", tags("twilio-key-type", "main"), "twilio-key-type", "Main keys can be made only in the Twilio Console"},
		{"unknown verify", tags("twilio-verify", "account"), "twilio-verify", "must be messages"},
		{"unknown tag", tags("twilio-account", testAccount), "twilio-account", "unknown tag"},
		{"CredentialId not an SID", tags("CredentialId", "SK01:secret"), "CredentialId", "not an API key SID"},
		{"tag twice", tags("TWILIO-VERIFY", "balance", "twilio-verify", "messages"), "twilio-verify", "set 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce := wantConfigError(t, twilio.New().Validate(tc.params), tc.tag)
			if !strings.Contains(ce.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", ce, tc.reason)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := twilio.New().Validate(providers.Params{"twilio-api-url": "http://example.com", "twilio-key-type": "x", "twilio-colour": "blue"})
	n := 0
	for _, tag := range []string{"twilio-admin-secret", "twilio-account-sid", "twilio-api-url", "twilio-key-type", "twilio-colour"} {
		if strings.Contains(err.Error(), tag) {
			n++
		}
	}
	var ce *providers.ConfigError
	if n != 5 || !providers.IsPermanent(err) || !errors.As(err, &ce) {
		t.Fatalf("Validate reported %d of 5 problems: %v", n, err)
	}
}

func TestValidateNeverRepeatsASecretPutInATag(t *testing.T) {
	secret := "abcdefghijklmnopqrstuvwxyz012345"
	for _, p := range []providers.Params{
		tags("twilio-admin-secret", "SK0123456789abcdef0123456789abcdef:"+secret),
		tags("twilio-api-url", "https://u:"+secret+"@api.twilio.com"),
		tags("CredentialId", "SK0123456789abcdef0123456789abcdef:"+secret),
	} {
		err := twilio.New().Validate(p)
		if err == nil {
			t.Fatalf("Validate(%v) accepted a secret in a tag", p)
		}
		clean(t, err, secret)
	}
}

func TestReferences(t *testing.T) {
	type ref struct {
		kind    providers.RefKind
		tag     string
		value   string
		builtin bool
	}
	got := func(p providers.Params) []ref {
		var out []ref
		for _, r := range twilio.New().References(p) {
			out = append(out, ref{r.Kind, r.Tag, r.Value, r.Builtin})
		}
		return out
	}
	want := []ref{
		{providers.RefSecret, "twilio-admin-secret", "twilio-admin", false},
		{providers.RefAccount, "twilio-account-sid", testAccount, false},
		{providers.RefURL, "twilio-iam-url", "https://iam.twilio.com", true},
		{providers.RefURL, "twilio-api-url", "https://api.twilio.com", true},
		{providers.RefScope, "twilio-key-type", "standard", true},
	}
	if g := got(tags()); !slices.Equal(g, want) {
		t.Errorf("References\n got %v\nwant %v", g, want)
	}
	want[2] = ref{providers.RefURL, "twilio-iam-url", "https://proxy.example.com/iam", false}
	want[4] = ref{providers.RefScope, "twilio-key-type", "restricted", true}
	if g := got(tags("twilio-iam-url", "https://proxy.example.com/iam/", "twilio-key-type", "restricted")); !slices.Equal(g, want) {
		t.Errorf("References\n got %v\nwant %v", g, want)
	}
	if refs := twilio.New().References(tags("twilio-account-sid", "")); refs != nil {
		t.Errorf("References of invalid tags: %v", refs)
	}
}

func TestKeyName(t *testing.T) {
	if got := twilio.KeyName("App-SMS", "kvr-1"); got != "kvrotator-app-sms-kvr-1" {
		t.Errorf("KeyName = %q", got)
	}
	long := twilio.KeyName(strings.Repeat("s", 127), idemKey)
	if len(long) != twilio.MaxNameChars || !strings.HasSuffix(long, "-"+idemKey) {
		t.Errorf("KeyName of a long secret: %q (%d)", long, len(long))
	}
}
