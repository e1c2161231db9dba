package twilio

import (
	"errors"
	"regexp"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagAdminSecret names another secret of the same vault whose value is the admin credentials,
	// "<SID>:<secret>": a Main API key (SK…:secret) or the Account SID and Auth Token (AC…:token). It is
	// the NAME of that secret, never the credentials.
	TagAdminSecret = "twilio-admin-secret"
	// TagAccountSID is the Account SID (AC…) whose API keys are rotated.
	TagAccountSID = "twilio-account-sid"
	// TagIAMURL is the base URL of Twilio's IAM API (the Key resource v1); DefaultIAMURL when absent.
	TagIAMURL = "twilio-iam-url"
	// TagAPIURL is the base URL of Twilio's REST API (2010-04-01), where the new key is verified;
	// DefaultAPIURL when absent.
	TagAPIURL = "twilio-api-url"
	// TagKeyType is the type of key rotated: KeyTypeStandard (default) or KeyTypeRestricted.
	TagKeyType = "twilio-key-type"
	// TagVerify chooses the read-only call that verifies a new key: VerifyMessages (default) or
	// VerifyBalance.
	TagVerify = "twilio-verify"
)

// Defaults.
const (
	DefaultIAMURL = "https://iam.twilio.com"
	DefaultAPIURL = "https://api.twilio.com"
)

// The values of TagKeyType: Twilio's key types that the REST API can create (Main keys are made only
// in the Console: twilio.com/docs/iam/api-keys/key-resource-v1, "Types of keys").
const (
	KeyTypeStandard   = "standard"
	KeyTypeRestricted = "restricted"
)

// The values of TagVerify.
const (
	// VerifyMessages reads one message: GET /2010-04-01/Accounts/{AccountSid}/Messages.json?PageSize=1
	// (a restricted key needs /twilio/messaging/messages/read).
	VerifyMessages = "messages"
	// VerifyBalance reads the account's balance: GET /2010-04-01/Accounts/{AccountSid}/Balance.json.
	VerifyBalance = "balance"
)

const tagPrefix = "twilio-"

var (
	// accountSID is an Account SID: ^AC[0-9a-fA-F]{32}$ (the Key resource's AccountSid pattern).
	accountSID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`) })
	// keySID is an API key SID: ^SK[0-9a-fA-F]{32}$ (the Key resource's sid pattern).
	keySID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`) })
	// printable is what a secret may contain.
	printable = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\x21-\x7E]+$`) })
)

// config is the provider's settings for one secret.
type config struct {
	iam, api    string // base URLs without a trailing slash
	adminSecret string
	account     string // AC…
	keyType     string
	verify      string
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
func parseConfig(p providers.Params) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagAdminSecret, TagAccountSID, TagIAMURL, TagAPIURL, TagKeyType, TagVerify)
	var c config

	c.adminSecret = strings.TrimSpace(p.Get(TagAdminSecret))
	switch {
	case c.adminSecret == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"missing: set it to the name of the secret, in the same vault, that holds a Main API key or the Account SID and Auth Token as <SID>:<secret>"))
	case !kvnames.Secret(c.adminSecret):
		// Not repeated: someone may have put the credentials themselves in the tag.
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"not a Key Vault secret name (1-127 letters, digits and hyphens); the tag names the secret, it never holds the credentials"))
	}

	c.account = strings.TrimSpace(p.Get(TagAccountSID))
	switch {
	case c.account == "":
		errs = append(errs, providers.ConfigErrorf(TagAccountSID, "", "missing: set it to the Account SID (AC followed by 32 hexadecimal digits) whose API keys are rotated"))
	case !accountSID().MatchString(c.account):
		errs = append(errs, providers.ConfigErrorf(TagAccountSID, cut(c.account), "not an Account SID (AC followed by 32 hexadecimal digits)"))
	}

	for _, u := range []struct {
		tag, def string
		dst      *string
	}{{TagIAMURL, DefaultIAMURL, &c.iam}, {TagAPIURL, DefaultAPIURL, &c.api}} {
		*u.dst = u.def
		if raw := strings.TrimSpace(p.Get(u.tag)); raw != "" {
			base, err := parseBaseURL(raw)
			if err != nil {
				shown := raw
				if strings.Contains(raw, "@") {
					shown = "(not shown: it may contain user information)"
				}
				errs = append(errs, providers.ConfigErrorf(u.tag, shown, "%s", err))
			}
			*u.dst = base
		}
	}

	switch kt := strings.ToLower(strings.TrimSpace(p.Get(TagKeyType))); kt {
	case "", KeyTypeStandard:
		c.keyType = KeyTypeStandard
	case KeyTypeRestricted:
		c.keyType = KeyTypeRestricted
	default:
		errs = append(errs, providers.ConfigErrorf(TagKeyType, cut(kt), "must be %s (the default) or %s; Main keys can be made only in the Twilio Console", KeyTypeStandard, KeyTypeRestricted))
	}

	switch v := strings.ToLower(strings.TrimSpace(p.Get(TagVerify))); v {
	case "", VerifyMessages:
		c.verify = VerifyMessages
	case VerifyBalance:
		c.verify = VerifyBalance
	default:
		errs = append(errs, providers.ConfigErrorf(TagVerify, cut(v), "must be %s (the default) or %s", VerifyMessages, VerifyBalance))
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// parseBaseURL checks a base URL (httpx.ParseBaseURL: https, http only for 127.0.0.1, localhost and
// ::1, no user information, query or fragment) and returns it without a trailing slash.
func parseBaseURL(raw string) (string, error) {
	base, err := httpx.ParseBaseURL(raw, true)
	switch httpx.URLProblemOf(err) {
	case httpx.URLPlainHTTP:
		return "", errors.New("http is allowed only for 127.0.0.1, localhost and ::1 (tests); use https")
	case httpx.URLUserInfo:
		return "", errors.New("must not contain user information; the admin credentials authenticate the calls")
	}
	return base, err
}

// cut is s cut to 40 characters (tags hold configuration, but keep errors short).
func cut(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
