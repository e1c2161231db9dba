package sendgrid_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/sendgrid"
)

// tags is a valid tag set with changes applied ("" deletes a tag).
func tags(changes ...string) providers.Params {
	p := providers.Params{
		"rotation-provider":     "sendgrid",
		"CredentialId":          "qfTQ6KG0QBiwWdJ0-pCLCA",
		"sendgrid-admin-secret": "sendgrid-admin",
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
		tags("sendgrid-api-url", "https://api.eu.sendgrid.com"),
		tags("sendgrid-api-url", "https://api.sendgrid.com/"),
		tags("sendgrid-api-url", "https://proxy.internal.example.com:8443/sendgrid"),
		tags("sendgrid-api-url", "http://127.0.0.1:8080"),
		tags("sendgrid-api-url", "http://localhost:8080"),
		tags("sendgrid-api-url", "http://[::1]:8080"),
		tags("sendgrid-scopes", "mail.send"),
		tags("sendgrid-scopes", " mail.send , alerts.read,2fa_required,user.scheduled_sends.read "),
		tags("sendgrid-on-behalf-of", "subuser-eu"),
		tags("sendgrid-on-behalf-of", "account-id 1234"),
		tags("SendGrid-Admin-Secret", "other-admin", "sendgrid-admin-secret", ""), // tag names are case-insensitive
		tags("CredentialId", "", "sendgrid-scopes", "mail.send"),                  // no current key to copy: the tag says
	} {
		if err := sendgrid.New().Validate(p); err != nil {
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
		{"admin secret missing", tags("sendgrid-admin-secret", ""), "sendgrid-admin-secret", "missing"},
		{"admin secret blank", tags("sendgrid-admin-secret", "  "), "sendgrid-admin-secret", "missing"},
		{"admin secret not a name", tags("sendgrid-admin-secret", "my_admin.key"), "sendgrid-admin-secret", "not a Key Vault secret name"},
		{"http to a remote host", tags("sendgrid-api-url", "http://api.sendgrid.com"), "sendgrid-api-url", "use https"},
		{"other scheme", tags("sendgrid-api-url", "ftp://api.sendgrid.com"), "sendgrid-api-url", "scheme must be https"},
		{"relative", tags("sendgrid-api-url", "api.sendgrid.com"), "sendgrid-api-url", "absolute"},
		{"no host", tags("sendgrid-api-url", "https://"), "sendgrid-api-url", "no host"},
		{"query", tags("sendgrid-api-url", "https://api.sendgrid.com/?x=1"), "sendgrid-api-url", "query"},
		{"fragment", tags("sendgrid-api-url", "https://api.sendgrid.com/#x"), "sendgrid-api-url", "fragment"},
		{"user info", tags("sendgrid-api-url", "https://apikey:SG.x.y@api.sendgrid.com"), "sendgrid-api-url", "user information"},
		{"not a URL", tags("sendgrid-api-url", "https://api.sendgrid.com:port"), "sendgrid-api-url", "not a URL"},
		{"empty scope", tags("sendgrid-scopes", "mail.send,,alerts.read"), "sendgrid-scopes", "empty item"},
		{"trailing comma", tags("sendgrid-scopes", "mail.send,"), "sendgrid-scopes", "empty item"},
		{"scope with spaces", tags("sendgrid-scopes", "mail send"), "sendgrid-scopes", "not a SendGrid scope name"},
		{"upper-case scope", tags("sendgrid-scopes", "Mail.Send"), "sendgrid-scopes", "not a SendGrid scope name"},
		{"scope with a star", tags("sendgrid-scopes", "api_keys.*"), "sendgrid-scopes", "not a SendGrid scope name"},
		{"duplicate scope", tags("sendgrid-scopes", "mail.send,mail.send"), "sendgrid-scopes", "listed twice"},
		{"on-behalf-of blank", tags("sendgrid-on-behalf-of", "   "), "sendgrid-on-behalf-of", "empty"},
		{"on-behalf-of header injection", tags("sendgrid-on-behalf-of", "sub\r\nX-Evil: 1"), "sendgrid-on-behalf-of", "printable ASCII"},
		{"unknown tag", tags("sendgrid-scope", "mail.send"), "sendgrid-scope", "unknown tag"},
		{"no CredentialId and no scopes", tags("CredentialId", ""), "sendgrid-scopes", "no CredentialId"},
		{"CredentialId not an id", tags("CredentialId", "SG.abc.def"), "CredentialId", "not a SendGrid api_key_id"},
		{"tag twice", tags("SENDGRID-SCOPES", "mail.send", "sendgrid-scopes", "alerts.read"), "sendgrid-scopes", "set 2 times"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sendgrid.New().Validate(tc.params)
			ce := wantConfigError(t, err, tc.tag)
			if !strings.Contains(ce.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", ce, tc.reason)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := sendgrid.New().Validate(providers.Params{"sendgrid-api-url": "http://example.com", "sendgrid-scopes": "a,,b", "sendgrid-colour": "blue"})
	var n int
	for _, tag := range []string{"sendgrid-admin-secret", "sendgrid-api-url", "sendgrid-scopes", "sendgrid-colour"} {
		if strings.Contains(err.Error(), tag) {
			n++
		}
	}
	if n != 4 || !providers.IsPermanent(err) {
		t.Fatalf("Validate reported %d of 4 problems: %v", n, err)
	}
	var ce *providers.ConfigError
	if !errors.As(err, &ce) {
		t.Fatal("the joined error holds no ConfigError")
	}
}

func TestValidateNeverRepeatsAKeyPutInATag(t *testing.T) {
	key := "SG.qfTQ6KG0QBiwWdJ0-pCLCA.secretpartsecretpartsecretpartsecretpart0"
	for _, p := range []providers.Params{
		tags("sendgrid-admin-secret", key),
		tags("sendgrid-api-url", "https://apikey:"+key+"@api.sendgrid.com"),
		tags("sendgrid-on-behalf-of", key+"\nX-Evil: 1"),
	} {
		err := sendgrid.New().Validate(p)
		if err == nil {
			t.Fatalf("Validate(%v) accepted a key in a tag", p)
		}
		clean(t, err, key)
	}
}
