package entraapp

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/vocab"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagAddress is the Azure rotation samples' tag: the application's object id (the sample for
	// Entra apps passes it to New-AzADAppCredential -ObjectId).
	TagAddress = vocab.TagAddress
	// TagAppID is the application (client) id: the client_id of the verification token request, and
	// how the application is found when ProviderAddress is absent.
	TagAppID = "entra-app-id"
	// TagTenant is the tenant the application lives in: the verification token request goes to it.
	TagTenant = "entra-tenant-id"
	// TagLifetime is each new password's lifetime in days (its endDateTime).
	TagLifetime = "entra-secret-lifetime-days"
	// TagCredentialID is the engine's tag for the keyId of the password the current version holds.
	TagCredentialID = vocab.TagCredentialID
	// tagValidity is the engine's lifetime of a new version, read here as the default lifetime.
	tagValidity = "ValidityPeriodDays"
)

// Lifetime bounds, in days.
const (
	// MinLifetimeDays keeps a password longer than Key Vault's 30-day near-expiry window: the new
	// version expires with its password, and a shorter one would be due for rotation at once.
	MinLifetimeDays = 31
	// MaxLifetimeDays is the engine's longest validity.
	MaxLifetimeDays = 3650
	// DefaultLifetimeDays applies when neither entra-secret-lifetime-days nor ValidityPeriodDays is
	// set; it is the engine's default validity.
	DefaultLifetimeDays = 90
)

const tagPrefix = "entra-"

// guidRE is a GUID in its usual 8-4-4-4-12 hex form: Entra object ids, application ids, key ids.
var guidRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
})

// domainRE is a verified domain a tenant can be named by (contoso.onmicrosoft.com).
var domainRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)
})

// isGUID reports whether s is a GUID.
func isGUID(s string) bool { return guidRE().MatchString(s) }

// config is the provider's settings for one secret.
type config struct {
	objectID string // the application's object id; "" when addressed by appId
	appID    string // the application (client) id from entra-app-id; "" when not set
	tenant   string
	lifetime time.Duration
}

// appPath is the Graph path of the application: by object id, or by appId when that is all we have.
func (c config) appPath() string {
	if c.objectID != "" {
		return "/applications/" + c.objectID
	}
	return "/applications(appId='" + c.appID + "')"
}

// appRef names the application in messages, with the tag it came from.
func (c config) appRef() (tag, value string) {
	if c.objectID != "" {
		return TagAddress, c.objectID
	}
	return TagAppID, c.appID
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
// Only tags are read: they are what References declared and the engine checked.
func parseConfig(p providers.Params) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagAppID, TagTenant, TagLifetime)
	var c config

	c.objectID = strings.TrimSpace(p.Get(TagAddress))
	if c.objectID != "" && !isGUID(c.objectID) {
		errs = append(errs, providers.ConfigErrorf(TagAddress, c.objectID,
			"not an application object id (a GUID such as 3f2a…-…); use the Object ID from the app registration's overview, or set %s to the Application (client) ID instead", TagAppID))
	}
	c.appID = strings.TrimSpace(p.Get(TagAppID))
	if c.appID != "" && !isGUID(c.appID) {
		errs = append(errs, providers.ConfigErrorf(TagAppID, c.appID, "not an application (client) id (a GUID)"))
	}
	if c.objectID == "" && c.appID == "" {
		errs = append(errs, providers.ConfigErrorf(TagAddress, "",
			"missing: set %s to the application's object id, or %s to its application (client) id", TagAddress, TagAppID))
	}

	c.tenant = strings.TrimSpace(p.Get(TagTenant))
	switch t := strings.ToLower(c.tenant); {
	case t == "":
		errs = append(errs, providers.ConfigErrorf(TagTenant, "",
			"missing: set it to the id (GUID) or a verified domain of the tenant the application is registered in; the new secret is verified by signing in there"))
	case t == "common" || t == "organizations" || t == "consumers":
		errs = append(errs, providers.ConfigErrorf(TagTenant, c.tenant,
			"a client-credentials sign-in needs a specific tenant: use the tenant's id (GUID) or a verified domain"))
	case !isGUID(c.tenant) && !domainRE().MatchString(c.tenant):
		errs = append(errs, providers.ConfigErrorf(TagTenant, c.tenant, "not a tenant id (GUID) or domain name"))
	}

	if days, err := lifetimeDays(p); err != nil {
		errs = append(errs, err)
	} else {
		c.lifetime = time.Duration(days) * 24 * time.Hour
	}

	if id := strings.TrimSpace(p.Get(TagCredentialID)); id != "" && !isGUID(id) {
		errs = append(errs, providers.ConfigErrorf(TagCredentialID, id,
			"not a password keyId (a GUID): set it to the Secret ID of the client secret the current version holds, or remove it"))
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// lifetimeDays is entra-secret-lifetime-days, which may not exceed ValidityPeriodDays: a password
// should not outlive the vault version that records it. Absent, it is ValidityPeriodDays, then
// DefaultLifetimeDays.
func lifetimeDays(p providers.Params) (int, error) {
	validity := 0
	if v, err := strconv.Atoi(strings.TrimSpace(p.Get(tagValidity))); err == nil && v > 0 {
		validity = v // a bad ValidityPeriodDays is the engine's to report
	}
	raw := strings.TrimSpace(p.Get(TagLifetime))
	if raw == "" {
		switch {
		case validity == 0:
			return DefaultLifetimeDays, nil
		case validity < MinLifetimeDays || validity > MaxLifetimeDays:
			return 0, providers.ConfigErrorf(tagValidity, strconv.Itoa(validity),
				"the password lifetime follows it and must be between %d and %d days; set %s", MinLifetimeDays, MaxLifetimeDays, TagLifetime)
		default:
			return validity, nil
		}
	}
	days, err := p.Int(TagLifetime, 0, MinLifetimeDays, MaxLifetimeDays)
	if err != nil {
		return 0, err
	}
	if validity > 0 && days > validity {
		return 0, providers.ConfigErrorf(TagLifetime, raw,
			"must not exceed %s (%d): a password should not outlive the vault version that records it", tagValidity, validity)
	}
	return days, nil
}
