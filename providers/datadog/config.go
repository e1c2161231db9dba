package datadog

import (
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagAdminSecret names another secret of the same vault whose value holds the admin keys, as JSON
	// {"api_key":"…","application_key":"…"}. It is the NAME of that secret, never the keys.
	TagAdminSecret = "datadog-admin-secret"
	// TagSite is the Datadog site (datadoghq.com, us3.datadoghq.com, datadoghq.eu, ddog-gov.com, …),
	// or the base URL of the API (https://…, a proxy or a test server). DefaultSite when absent.
	TagSite = "datadog-site"
	// TagKeyType chooses what is rotated: KeyTypeAPI (default) or KeyTypeApplication.
	TagKeyType = "datadog-key-type"
	// TagServiceAccount is the id (a UUID) of the service account whose application keys are rotated;
	// without it, application keys belong to the user who owns the admin application key.
	TagServiceAccount = "datadog-service-account"
	// TagScopes is a comma-separated list of application-key scopes, used only when the current key's
	// scopes cannot be read (no CredentialId, or that key no longer exists).
	TagScopes = "datadog-scopes"
)

// The values of TagKeyType.
const (
	KeyTypeAPI         = "api"
	KeyTypeApplication = "application"
)

// DefaultSite is Datadog's US1 site.
const DefaultSite = "datadoghq.com"

// Owner names in references (kind account): the organization (API keys), the admin application key's
// user (application keys without TagServiceAccount). A service account is named by its id.
const (
	OwnerOrganization = "organization"
	OwnerCurrentUser  = "current-user"
)

// sites maps every Datadog site name to its API base URL. The API of site S is https://api.S; the
// sites' web addresses (app.datadoghq.com, …) are accepted as names too. Source: the "Datadog site /
// API endpoint" table of every page of docs.datadoghq.com/api/latest/key-management/.
var sites = map[string]string{
	"datadoghq.com":     "https://api.datadoghq.com",
	"app.datadoghq.com": "https://api.datadoghq.com",
	"us3.datadoghq.com": "https://api.us3.datadoghq.com",
	"us5.datadoghq.com": "https://api.us5.datadoghq.com",
	"datadoghq.eu":      "https://api.datadoghq.eu",
	"app.datadoghq.eu":  "https://api.datadoghq.eu",
	"ap1.datadoghq.com": "https://api.ap1.datadoghq.com",
	"ap2.datadoghq.com": "https://api.ap2.datadoghq.com",
	"uk1.datadoghq.com": "https://api.uk1.datadoghq.com",
	"ddog-gov.com":      "https://api.ddog-gov.com",
	"app.ddog-gov.com":  "https://api.ddog-gov.com",
	"us2.ddog-gov.com":  "https://api.us2.ddog-gov.com",
}

// SiteURL returns the API base URL of a Datadog site name ("us3.datadoghq.com"), and whether it is one.
func SiteURL(site string) (string, bool) {
	u, ok := sites[strings.ToLower(strings.TrimSpace(site))]
	return u, ok
}

// Sites lists the site names the provider knows, sorted.
func Sites() []string {
	var out []string
	for s := range sites {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// builtinURL reports whether base is the API URL of a Datadog site.
func builtinURL(base string) bool {
	for _, u := range sites {
		if strings.EqualFold(u, base) {
			return true
		}
	}
	return false
}

const (
	tagPrefix = "datadog-"
	// maxScopes bounds the scope list (Datadog documents none; its permission list is about 200 long).
	maxScopes = 256
)

var (
	// scopeName is a Datadog permission name: lower-case words joined by underscores (dashboards_read).
	scopeName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`) })
	// uuidPattern is a service account id.
	uuidPattern = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	})
)

// config is the provider's settings for one secret.
type config struct {
	base           string // API base URL without a trailing slash
	adminSecret    string // name of the secret holding the admin keys
	keyType        string // KeyTypeAPI or KeyTypeApplication
	serviceAccount string // lower-case UUID; "" for the current user
	scopes         []string
}

// application reports whether the secret holds an application key.
func (c config) application() bool { return c.keyType == KeyTypeApplication }

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
func parseConfig(p providers.Params) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagAdminSecret, TagSite, TagKeyType, TagServiceAccount, TagScopes)
	var c config

	c.adminSecret = strings.TrimSpace(p.Get(TagAdminSecret))
	switch {
	case c.adminSecret == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			`missing: set it to the name of the secret, in the same vault, that holds the admin keys as {"api_key":"…","application_key":"…"}`))
	case !kvnames.Secret(c.adminSecret):
		// Not repeated: someone may have put a key itself in the tag.
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"not a Key Vault secret name (1-127 letters, digits and hyphens); the tag names the secret, it never holds the keys"))
	}

	c.base = sites[DefaultSite]
	if raw := strings.TrimSpace(p.Get(TagSite)); raw != "" {
		base, err := parseSite(raw)
		if err != nil {
			shown := raw
			if strings.Contains(raw, "@") {
				shown = "(not shown: it may contain user information)"
			}
			errs = append(errs, providers.ConfigErrorf(TagSite, shown, "%s", err))
		}
		c.base = base
	}

	switch kt := strings.ToLower(strings.TrimSpace(p.Get(TagKeyType))); kt {
	case "", KeyTypeAPI:
		c.keyType = KeyTypeAPI
	case KeyTypeApplication:
		c.keyType = KeyTypeApplication
	default:
		errs = append(errs, providers.ConfigErrorf(TagKeyType, quoteShort(kt), "must be %s (the default) or %s", KeyTypeAPI, KeyTypeApplication))
	}

	if raw := p.Get(TagServiceAccount); raw != "" {
		sa := strings.TrimSpace(raw)
		switch {
		case !uuidPattern().MatchString(sa):
			errs = append(errs, providers.ConfigErrorf(TagServiceAccount, quoteShort(sa), "not a service account id (a UUID such as 00000000-0000-1234-0000-000000000000)"))
		case c.keyType == KeyTypeAPI:
			errs = append(errs, providers.ConfigErrorf(TagServiceAccount, sa, "API keys belong to the organization, not to a service account; remove the tag or set %s=%s", TagKeyType, KeyTypeApplication))
		}
		c.serviceAccount = strings.ToLower(sa)
	}

	if raw := strings.TrimSpace(p.Get(TagScopes)); raw != "" {
		scopes, err := parseScopes(raw)
		switch {
		case err != nil:
			errs = append(errs, providers.ConfigErrorf(TagScopes, quoteShort(raw), "%s", err))
		case c.keyType == KeyTypeAPI:
			errs = append(errs, providers.ConfigErrorf(TagScopes, "", "only application keys have scopes; remove the tag or set %s=%s", TagKeyType, KeyTypeApplication))
		}
		c.scopes = scopes
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// parseSite reads the datadog-site tag: a site name, or a base URL (httpx.ParseBaseURL: https, http
// only for 127.0.0.1, localhost and ::1, no user information, query or fragment). The error is the
// reason only; the caller names the tag.
func parseSite(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		if u, ok := SiteURL(raw); ok {
			return u, nil
		}
		return "", errors.New("not a Datadog site (" + strings.Join(Sites(), ", ") + ") nor a URL (https://…)")
	}
	base, err := httpx.ParseBaseURL(raw, true)
	switch httpx.URLProblemOf(err) {
	case httpx.URLPlainHTTP:
		return "", errors.New("http is allowed only for 127.0.0.1, localhost and ::1 (tests); use https")
	case httpx.URLUserInfo:
		return "", errors.New("must not contain user information; the admin keys authenticate the calls")
	}
	return base, err
}

// parseScopes reads a comma-separated scope list: no empty items, no duplicates, Datadog's spelling.
func parseScopes(raw string) ([]string, error) {
	var scopes []string
	for item := range strings.SplitSeq(raw, ",") {
		s := strings.TrimSpace(item)
		switch {
		case s == "":
			return nil, errors.New("an empty item; separate scopes with single commas (dashboards_read,metrics_read)")
		case !scopeName().MatchString(s):
			return nil, errors.New("scope " + strconv.Quote(quoteShort(s)) + " is not a Datadog permission name (lower-case words joined by underscores, e.g. dashboards_read)")
		case slices.Contains(scopes, s):
			return nil, errors.New("scope " + s + " is listed twice")
		case len(scopes) == maxScopes:
			return nil, errors.New("more than " + strconv.Itoa(maxScopes) + " scopes")
		}
		scopes = append(scopes, s)
	}
	return scopes, nil
}

// quoteShort is s cut to 40 characters (tags hold configuration, but keep errors short).
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
