package openai

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagAdminSecret names another secret of the same vault whose value is an OpenAI admin API key
	// (sk-admin-…). It is the NAME of that secret, never the key.
	TagAdminSecret = "openai-admin-secret"
	// TagProject is the id of the project (proj_…) whose service accounts the provider creates and
	// deletes. The operator must bind it (allow.account).
	TagProject = "openai-project"
	// TagAPIURL is the API's base URL, without /v1; DefaultAPIURL when absent.
	TagAPIURL = "openai-api-url"
	// TagKeyLifetimeDays makes every new key expire after that many days (OpenAI's
	// expires_in_seconds); absent, the key does not expire unless the organization's or project's
	// key policy says otherwise.
	TagKeyLifetimeDays = "openai-key-lifetime-days"
)

// DefaultAPIURL is OpenAI's API (the paths the provider calls start with /v1).
const DefaultAPIURL = "https://api.openai.com"

// MaxKeyLifetimeDays is the longest lifetime TagKeyLifetimeDays may ask for: OpenAI's limit on
// expires_in_seconds is 31,536,000 seconds, 365 days.
const MaxKeyLifetimeDays = 365

const tagPrefix = "openai-"

var (
	// projectID is an OpenAI project id: "proj_" and letters, digits, "_" or "-". It becomes a URL
	// path segment and a binding's value.
	projectID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^proj_[A-Za-z0-9_-]{1,128}$`) })
	// printable is what a key value may contain: printable ASCII.
	printable = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\x21-\x7E]+$`) })
)

// config is the provider's settings for one secret.
type config struct {
	base        string // API base URL without a trailing slash (and without /v1)
	adminSecret string // name of the secret holding the admin key
	project     string // the project id
	lifetime    time.Duration
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
func parseConfig(p providers.Params) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagAdminSecret, TagProject, TagAPIURL, TagKeyLifetimeDays)
	var c config

	c.adminSecret = strings.TrimSpace(p.Get(TagAdminSecret))
	switch {
	case c.adminSecret == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"missing: set it to the name of the secret, in the same vault, that holds an OpenAI admin API key (sk-admin-…)"))
	case looksLikeKey(c.adminSecret):
		// Not repeated: it is the key itself.
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"holds an API key, not a secret's name: store the admin key in a secret of the vault and put that secret's name here"))
	case !kvnames.Secret(c.adminSecret):
		// Not repeated: someone may have put the key itself in the tag.
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"not a Key Vault secret name (1-127 letters, digits and hyphens); the tag names the secret, it never holds the key"))
	}

	c.project = strings.TrimSpace(p.Get(TagProject))
	switch {
	case c.project == "":
		errs = append(errs, providers.ConfigErrorf(TagProject, "",
			"missing: set it to the id of the OpenAI project whose service account keys are rotated (proj_…, shown in the project's settings)"))
	case strings.HasPrefix(c.project, "sk-"):
		errs = append(errs, providers.ConfigErrorf(TagProject, "", "holds an API key, not a project id; set it to the project's id (proj_…)"))
	case !projectID().MatchString(c.project):
		errs = append(errs, providers.ConfigErrorf(TagProject, quoteShort(c.project),
			"not an OpenAI project id (proj_ followed by letters, digits, _ or -); the project's name is not its id"))
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

	days, err := p.Int(TagKeyLifetimeDays, 0, 1, MaxKeyLifetimeDays)
	if err != nil {
		errs = append(errs, err)
	}
	c.lifetime = time.Duration(days) * 24 * time.Hour

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// looksLikeKey reports whether a tag's value is an OpenAI key put in the wrong place ("sk-admin-…",
// "sk-proj-…", "sk-svcacct-…").
func looksLikeKey(v string) bool {
	for _, p := range []string{"sk-admin-", "sk-proj-", "sk-svcacct-"} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return false
}

// parseBaseURL checks a base URL (httpx.ParseBaseURL: https, http only for 127.0.0.1, localhost and
// ::1, no user information, query or fragment) and returns it without a trailing slash. The error is
// the reason only; the caller names the tag.
func parseBaseURL(raw string) (string, error) {
	base, err := httpx.ParseBaseURL(raw, true)
	switch httpx.URLProblemOf(err) {
	case httpx.URLNotAbsolute:
		return "", errors.New("not an absolute URL; use https://host[:port][/path], without /v1")
	case httpx.URLPlainHTTP:
		return "", errors.New("http is allowed only for 127.0.0.1, localhost and ::1 (tests); use https")
	case httpx.URLUserInfo:
		return "", errors.New("must not contain user information; the admin key authenticates the calls")
	case 0:
		if strings.HasSuffix(strings.ToLower(base), "/v1") {
			return "", errors.New("ends in /v1: give the base URL without it (https://api.openai.com), kvrotator adds /v1/…")
		}
	}
	return base, err
}

// quoteShort cuts s to 40 characters (tags hold configuration, but keep errors short).
func quoteShort(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
