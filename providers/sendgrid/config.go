package sendgrid

import (
	"errors"
	"github.com/kvrotator/kvrotator/internal/kvnames"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagAdminSecret names another secret of the same vault whose value is a SendGrid API key with the
	// api_keys.* scopes. It is the NAME of that secret, never the key.
	TagAdminSecret = "sendgrid-admin-secret"
	// TagAPIURL is the API's base URL; DefaultAPIURL when absent (https://api.eu.sendgrid.com for EU
	// regional subusers).
	TagAPIURL = "sendgrid-api-url"
	// TagScopes is a comma-separated scope list, used only when the current key's scopes cannot be read
	// (the secret has no CredentialId, or that key no longer exists).
	TagScopes = "sendgrid-scopes"
	// TagOnBehalfOf makes every admin call on behalf of a subuser (its username) or a customer account
	// ("account-id <id>"): SendGrid's on-behalf-of header.
	TagOnBehalfOf = "sendgrid-on-behalf-of"
)

// DefaultAPIURL is SendGrid's global API.
const DefaultAPIURL = "https://api.sendgrid.com"

const (
	tagPrefix        = "sendgrid-"
	maxOnBehalfChars = 256
)

var (
	// secretName is a Key Vault secret name: 1-127 letters, digits and hyphens.
	// scopeName is a SendGrid scope: lower-case dotted words (mail.send, 2fa_required,
	// user.scheduled_sends.read).
	scopeName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9_-]+(\.[a-z0-9_-]+)*$`) })
	// printable is what an on-behalf-of header value may contain.
	printable = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\x20-\x7E]+$`) })
)

// config is the provider's settings for one secret.
type config struct {
	base        string   // API base URL without a trailing slash
	adminSecret string   // name of the secret holding the admin key
	scopes      []string // the sendgrid-scopes tag, nil when absent
	onBehalfOf  string
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
func parseConfig(p providers.Params) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagAdminSecret, TagAPIURL, TagScopes, TagOnBehalfOf)
	var c config

	c.adminSecret = strings.TrimSpace(p.Get(TagAdminSecret))
	switch {
	case c.adminSecret == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"missing: set it to the name of the secret, in the same vault, that holds a SendGrid API key with the api_keys.* scopes"))
	case !kvnames.Secret(c.adminSecret):
		// Not repeated: someone may have put the key itself in the tag.
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"not a Key Vault secret name (1-127 letters, digits and hyphens); the tag names the secret, it never holds the key"))
	}

	c.base = DefaultAPIURL
	if raw := strings.TrimSpace(p.Get(TagAPIURL)); raw != "" {
		base, err := parseBaseURL(raw)
		if err != nil {
			shown := raw
			if strings.Contains(raw, "@") {
				shown = "(not shown: it may contain user information)"
			}
			errs = append(errs, providers.ConfigErrorf(TagAPIURL, shown, "%s", err))
		}
		c.base = base
	}

	if raw := strings.TrimSpace(p.Get(TagScopes)); raw != "" {
		scopes, err := parseScopes(raw)
		if err != nil {
			errs = append(errs, providers.ConfigErrorf(TagScopes, raw, "%s", err))
		}
		c.scopes = scopes
	}

	if raw := p.Get(TagOnBehalfOf); raw != "" {
		c.onBehalfOf = strings.TrimSpace(raw)
		switch {
		case c.onBehalfOf == "":
			errs = append(errs, providers.ConfigErrorf(TagOnBehalfOf, "", "empty: remove the tag, or set a subuser's username or \"account-id <id>\""))
		case len(c.onBehalfOf) > maxOnBehalfChars || !printable().MatchString(c.onBehalfOf):
			errs = append(errs, providers.ConfigErrorf(TagOnBehalfOf, "",
				"must be 1-%d printable ASCII characters: a subuser's username or \"account-id <id>\"", maxOnBehalfChars))
		}
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// parseBaseURL checks a base URL (httpx.ParseBaseURL: https, http only for 127.0.0.1, localhost and
// ::1, no user information, query or fragment) and returns it without a trailing slash. The error is
// the reason only; the caller names the tag.
func parseBaseURL(raw string) (string, error) {
	base, err := httpx.ParseBaseURL(raw, true)
	switch httpx.URLProblemOf(err) {
	case httpx.URLNotAbsolute:
		return "", errors.New("not an absolute URL; use https://host[:port]")
	case httpx.URLPlainHTTP:
		return "", errors.New("http is allowed only for 127.0.0.1, localhost and ::1 (tests); use https")
	case httpx.URLUserInfo:
		return "", errors.New("must not contain user information; the admin key authenticates the calls")
	}
	return base, err
}

// parseScopes reads a comma-separated scope list: no empty items, no duplicates, SendGrid's spelling.
func parseScopes(raw string) ([]string, error) {
	var scopes []string
	for item := range strings.SplitSeq(raw, ",") {
		s := strings.TrimSpace(item)
		switch {
		case s == "":
			return nil, errors.New("an empty item; separate scopes with single commas (mail.send,alerts.read)")
		case !scopeName().MatchString(s):
			return nil, errors.New("scope " + quoteShort(s) + " is not a SendGrid scope name (lower-case words joined by dots, e.g. mail.send)")
		case slices.Contains(scopes, s):
			return nil, errors.New("scope " + s + " is listed twice")
		}
		scopes = append(scopes, s)
	}
	return scopes, nil
}

// quoteShort quotes s, cut to 40 characters (tags hold configuration, but keep errors short).
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}
