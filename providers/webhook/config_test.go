package webhook_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/webhook"
)

// configErrors returns the ConfigErrors in err (one, or several joined) and fails if anything else is there.
func configErrors(t *testing.T, err error) []*providers.ConfigError {
	t.Helper()
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*providers.ConfigError
		for _, e := range j.Unwrap() {
			out = append(out, configErrors(t, e)...)
		}
		return out
	}
	var ce *providers.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *providers.ConfigError", err, err)
	}
	return []*providers.ConfigError{ce}
}

// wantConfigError fails unless err is exactly one ConfigError for tag whose reason contains reason.
func wantConfigError(t *testing.T, err error, tag, reason string) {
	t.Helper()
	ces := configErrors(t, err)
	if len(ces) != 1 || !strings.EqualFold(ces[0].Tag, tag) || !strings.Contains(ces[0].Reason, reason) {
		t.Fatalf("error %v, want one ConfigError for %s saying %q", err, tag, reason)
	}
}

// params are valid tags with changes applied; a "" value removes the tag.
func params(changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":      "webhook",
		webhook.TagURL:           "https://tokens.example.com/kvrotator",
		webhook.TagSigningSecret: "tokens-webhook-key",
	}
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == "" {
			delete(p, changes[i])
		} else {
			p[changes[i]] = changes[i+1]
		}
	}
	return p
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		params providers.Params
	}{
		{"https", params()},
		{"https with port and path", params(webhook.TagURL, "https://tokens.example.com:8443/a/b")},
		{"https with a trailing slash", params(webhook.TagURL, "https://tokens.example.com/")},
		{"https host only", params(webhook.TagURL, "https://tokens.example.com")},
		{"upper-case scheme", params(webhook.TagURL, "HTTPS://tokens.example.com")},
		{"surrounding spaces", params(webhook.TagURL, "  https://tokens.example.com  ")},
		{"http on 127.0.0.1", params(webhook.TagURL, "http://127.0.0.1:8080")},
		{"http on localhost", params(webhook.TagURL, "http://localhost/hooks")},
		{"http on LOCALHOST", params(webhook.TagURL, "http://LOCALHOST:1234")},
		{"http on ::1", params(webhook.TagURL, "http://[::1]:9000")},
		{"ProviderAddress instead of webhook-url", params(webhook.TagURL, "", webhook.TagAddress, "https://tokens.example.com")},
		{"ProviderAddress not a URL but webhook-url set", params(webhook.TagAddress, "/subscriptions/x/resourceGroups/y")},
		{"timeout 1", params(webhook.TagTimeout, "1")},
		{"timeout 60", params(webhook.TagTimeout, "60")},
		{"timeout with spaces", params(webhook.TagTimeout, " 30 ")},
		{"empty timeout means default", params(webhook.TagTimeout, " ")},
		{"tag names in mixed case", providers.Params{
			"Webhook-URL": "https://tokens.example.com", "WEBHOOK-SIGNING-SECRET": "k", "Webhook-Timeout-Seconds": "5",
		}},
		{"127-character secret name", params(webhook.TagSigningSecret, strings.Repeat("a", 126)+"-")},
		{"other providers' tags", params("random-length", "32", "webhooks", "x")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := webhook.New().Validate(tt.params); err != nil {
				t.Fatalf("Validate(%v) = %v, want nil", tt.params, err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		params providers.Params
		tag    string // the tag the ConfigError names
		reason string // a substring of its reason
	}{
		{"no URL", params(webhook.TagURL, ""), webhook.TagURL, "missing"},
		{"only the signing secret", providers.Params{webhook.TagSigningSecret: "k"}, webhook.TagURL, "missing"},
		{"http to another host", params(webhook.TagURL, "http://tokens.example.com"), webhook.TagURL, "http is allowed only for"},
		{"http to 127.0.0.2", params(webhook.TagURL, "http://127.0.0.2"), webhook.TagURL, "http is allowed only for"},
		{"http to a name under localhost", params(webhook.TagURL, "http://localhost.example.com"), webhook.TagURL, "http is allowed only for"},
		{"http to 0.0.0.0", params(webhook.TagURL, "http://0.0.0.0:80"), webhook.TagURL, "http is allowed only for"},
		{"ftp", params(webhook.TagURL, "ftp://tokens.example.com"), webhook.TagURL, "scheme must be https"},
		{"no scheme", params(webhook.TagURL, "tokens.example.com/kvrotator"), webhook.TagURL, "not an absolute URL"},
		{"opaque", params(webhook.TagURL, "https:tokens.example.com"), webhook.TagURL, "not an absolute URL"},
		{"no host", params(webhook.TagURL, "https:///kvrotator"), webhook.TagURL, "no host"},
		{"port only", params(webhook.TagURL, "https://:443"), webhook.TagURL, "no host"},
		{"user information", params(webhook.TagURL, "https://svc:hunter2@tokens.example.com"), webhook.TagURL, "user information"},
		{"query", params(webhook.TagURL, "https://tokens.example.com/?tenant=a"), webhook.TagURL, "query"},
		{"empty query", params(webhook.TagURL, "https://tokens.example.com/?"), webhook.TagURL, "query"},
		{"fragment", params(webhook.TagURL, "https://tokens.example.com/#x"), webhook.TagURL, "fragment"},
		{"not a URL", params(webhook.TagURL, "https://tokens example.com"), webhook.TagURL, "not a URL"},
		{"ProviderAddress is an ARM id", params(webhook.TagURL, "", webhook.TagAddress, "/subscriptions/x/resourceGroups/y"), webhook.TagAddress, "not an absolute URL"},
		{"ProviderAddress over http", params(webhook.TagURL, "", webhook.TagAddress, "http://tokens.example.com"), webhook.TagAddress, "http is allowed only for"},
		{"no signing secret", params(webhook.TagSigningSecret, ""), webhook.TagSigningSecret, "missing"},
		{"signing secret with underscore", params(webhook.TagSigningSecret, "tokens_key"), webhook.TagSigningSecret, "not a Key Vault secret name"},
		{"signing secret looks like a key", params(webhook.TagSigningSecret, "c2VjcmV0IGtleQ=="), webhook.TagSigningSecret, "never holds the key"},
		{"signing secret name too long", params(webhook.TagSigningSecret, strings.Repeat("a", 128)), webhook.TagSigningSecret, "1-127"},
		{"timeout 0", params(webhook.TagTimeout, "0"), webhook.TagTimeout, "between 1 and 60"},
		{"timeout 61", params(webhook.TagTimeout, "61"), webhook.TagTimeout, "between 1 and 60"},
		{"negative timeout", params(webhook.TagTimeout, "-5"), webhook.TagTimeout, "between 1 and 60"},
		{"timeout in words", params(webhook.TagTimeout, "ten"), webhook.TagTimeout, "not a whole number"},
		{"timeout with a unit", params(webhook.TagTimeout, "10s"), webhook.TagTimeout, "not a whole number"},
		{"misspelt tag", params("webhook-ulr", "https://x.example.com"), "webhook-ulr", "unknown tag"},
		{"tag set twice in different case", params("Webhook-Url", "https://other.example.com"), webhook.TagURL, "set 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantConfigError(t, webhook.New().Validate(tt.params), tt.tag, tt.reason)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := webhook.New().Validate(providers.Params{webhook.TagTimeout: "600", "webhook-extra": "1"})
	got := map[string]bool{}
	for _, ce := range configErrors(t, err) {
		got[ce.Tag] = true
	}
	for _, tag := range []string{webhook.TagURL, webhook.TagSigningSecret, webhook.TagTimeout, "webhook-extra"} {
		if !got[tag] {
			t.Errorf("Validate reported %v; %s is missing", got, tag)
		}
	}
}

func TestValidateNeverRepeatsAKeyPutInTheSigningSecretTag(t *testing.T) {
	err := webhook.New().Validate(params(webhook.TagSigningSecret, "c2VjcmV0IGtleQ=="))
	if err == nil || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("Validate = %v; want an error that does not repeat the tag's value", err)
	}
}

func TestValidateNeverRepeatsUserInformation(t *testing.T) {
	for _, raw := range []string{"https://svc:hunter2@tokens.example.com", "http://svc:hunter2@tokens.example.com", "https://svc:hunter2@bad host"} {
		err := webhook.New().Validate(params(webhook.TagURL, raw))
		if err == nil {
			t.Fatalf("Validate accepted %q", raw)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error %q repeats the password", err)
		}
	}
}
