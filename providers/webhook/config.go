package webhook

import (
	"errors"
	"github.com/kvrotator/kvrotator/internal/kvnames"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/vocab"
)

// The tags the provider reads. Names are case-insensitive.
const (
	TagURL           = "webhook-url"             // base URL of the service; the endpoints are {base}/create, /verify, /revoke
	TagSigningSecret = "webhook-signing-secret"  // name of the secret (same vault) holding the HMAC key
	TagTimeout       = "webhook-timeout-seconds" // per-call timeout, 1..60
	// TagAddress is the Azure rotation samples' tag; it is the base URL when webhook-url is absent.
	TagAddress = vocab.TagAddress
)

// Timeout bounds, in seconds.
const (
	DefaultTimeoutSeconds = 10
	MinTimeoutSeconds     = 1
	MaxTimeoutSeconds     = 60
)

// MinSigningKeyBytes is the shortest HMAC key the provider accepts: a shorter one is guessable.
const MinSigningKeyBytes = 16

const tagPrefix = "webhook-"

// secretName is a Key Vault secret name: 1-127 letters, digits and hyphens.

// config is the provider's settings for one secret.
type config struct {
	base       string // the base URL without a trailing slash
	signingRef string // the name of the secret holding the HMAC key
	timeout    time.Duration
}

func (c config) endpoint(name string) string { return c.base + "/" + name }

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
// address is used as the base URL when neither webhook-url nor ProviderAddress is among the tags (a
// Request's Address, for callers that fill it but not Params).
func parseConfig(p providers.Params, address string) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagURL, TagSigningSecret, TagTimeout)

	var c config
	// webhook-url wins over ProviderAddress: it is specific to this provider, ProviderAddress is shared
	// with the Azure samples and may have been set for something else.
	tag, raw := TagURL, strings.TrimSpace(p.Get(TagURL))
	if raw == "" {
		tag, raw = TagAddress, strings.TrimSpace(p.Get(TagAddress))
	}
	if raw == "" {
		tag, raw = TagAddress, strings.TrimSpace(address)
	}
	if raw == "" {
		errs = append(errs, providers.ConfigErrorf(TagURL, "",
			"missing: set it to the service's base URL (https://…); %s is used when %s is absent", TagAddress, TagURL))
	} else if base, err := parseBaseURL(raw); err != nil {
		shown := raw
		if strings.Contains(raw, "@") {
			// user:password@ is a credential: never repeat it.
			shown = "(not shown: it may contain user information)"
		}
		errs = append(errs, providers.ConfigErrorf(tag, shown, "%s", err))
	} else {
		c.base = base
	}

	c.signingRef = strings.TrimSpace(p.Get(TagSigningSecret))
	switch {
	case c.signingRef == "":
		errs = append(errs, providers.ConfigErrorf(TagSigningSecret, "",
			"missing: set it to the name of the secret, in the same vault, that holds the HMAC signing key"))
	case !kvnames.Secret(c.signingRef):
		// Not repeated: someone may have put the key itself in the tag.
		errs = append(errs, providers.ConfigErrorf(TagSigningSecret, "",
			"not a Key Vault secret name (1-127 letters, digits and hyphens); the tag names the secret, it never holds the key"))
	}

	secs, err := p.Int(TagTimeout, DefaultTimeoutSeconds, MinTimeoutSeconds, MaxTimeoutSeconds)
	if err != nil {
		errs = append(errs, err)
	}
	c.timeout = time.Duration(secs) * time.Second

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
	if httpx.URLProblemOf(err) == httpx.URLUserInfo {
		return "", errors.New("must not contain user information; the signature authenticates the calls")
	}
	return base, err
}
