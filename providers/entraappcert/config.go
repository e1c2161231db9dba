package entraappcert

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/vocab"
)

// The tags the provider reads. Names are case-insensitive. The application and tenant tags are the
// entra-app provider's, with the same meaning, so that a secret moves from a client secret to a
// certificate by changing rotation-provider and adding a certificate.
const (
	// TagAddress is the application's object id (the Azure rotation samples' ProviderAddress). It is
	// also the proof of possession's iss.
	TagAddress = vocab.TagAddress
	// TagAppID is the application (client) id: the client_id of the verification sign-in, and how the
	// application is found when ProviderAddress is absent.
	TagAppID = "entra-app-id"
	// TagTenant is the tenant the application lives in: the verification sign-in goes to it.
	TagTenant = "entra-tenant-id"
	// TagFormat is how the secret holds the certificate: pem (default) or pkcs12.
	TagFormat = "entra-cert-format"
	// TagLifetime is each new certificate's validity in days.
	TagLifetime = "entra-cert-lifetime-days"
	// TagKeySize is the RSA key size in bits: 2048 (default), 3072 or 4096.
	TagKeySize = "entra-cert-key-size"
	// TagCredentialID is the engine's tag for the keyId of the key credential the current version holds.
	TagCredentialID = vocab.TagCredentialID
	// tagValidity is the engine's lifetime of a new version, read here as the default lifetime.
	tagValidity = "ValidityPeriodDays"
)

// The formats a secret can hold, and their Key Vault content types.
const (
	FormatPEM    = "pem"    // PKCS #8 private key and certificate, PEM: application/x-pem-file
	FormatPKCS12 = "pkcs12" // a PKCS #12 archive without a password, base64: application/x-pkcs12

	ContentTypePEM    = "application/x-pem-file"
	ContentTypePKCS12 = "application/x-pkcs12"
)

// Lifetime bounds, in days.
const (
	// MinLifetimeDays keeps a certificate longer than Key Vault's 30-day near-expiry window: the new
	// version expires with its certificate, and a shorter one would be due for rotation at once.
	MinLifetimeDays = 31
	// MaxLifetimeDays is the engine's longest validity.
	MaxLifetimeDays = 3650
	// DefaultLifetimeDays applies when neither entra-cert-lifetime-days nor ValidityPeriodDays is set.
	DefaultLifetimeDays = 90
)

// DefaultKeySize is the RSA key size without entra-cert-key-size. Entra ID's certificate credentials
// are RSA (MSAL refuses other keys); 2048 bits is the floor Microsoft requires.
const DefaultKeySize = 2048

var keySizes = []int{2048, 3072, 4096}

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
	format   string
	lifetime time.Duration
	keySize  int
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

// contentType is the Key Vault content type of the format.
func (c config) contentType() string {
	if c.format == FormatPKCS12 {
		return ContentTypePKCS12
	}
	return ContentTypePEM
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
// Only tags are read: they are what References declared and the engine checked.
func parseConfig(p providers.Params) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagAppID, TagTenant, TagFormat, TagLifetime, TagKeySize)
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
			"missing: set it to the id (GUID) or a verified domain of the tenant the application is registered in; the new certificate is verified by signing in there"))
	case t == "common" || t == "organizations" || t == "consumers":
		errs = append(errs, providers.ConfigErrorf(TagTenant, c.tenant,
			"a client-credentials sign-in needs a specific tenant: use the tenant's id (GUID) or a verified domain"))
	case !isGUID(c.tenant) && !domainRE().MatchString(c.tenant):
		errs = append(errs, providers.ConfigErrorf(TagTenant, c.tenant, "not a tenant id (GUID) or domain name"))
	}

	switch f := strings.ToLower(strings.TrimSpace(p.Get(TagFormat))); f {
	case "", FormatPEM:
		c.format = FormatPEM
	case FormatPKCS12:
		c.format = FormatPKCS12
	default:
		errs = append(errs, providers.ConfigErrorf(TagFormat, p.Get(TagFormat),
			"must be %s (a PEM file: %s) or %s (a PKCS #12 archive, base64: %s)", FormatPEM, ContentTypePEM, FormatPKCS12, ContentTypePKCS12))
	}

	c.keySize = DefaultKeySize
	if raw := strings.TrimSpace(p.Get(TagKeySize)); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || !slices.Contains(keySizes, n) {
			errs = append(errs, providers.ConfigErrorf(TagKeySize, raw, "must be 2048, 3072 or 4096 (RSA bits)"))
		} else {
			c.keySize = n
		}
	}

	if days, err := lifetimeDays(p); err != nil {
		errs = append(errs, err)
	} else {
		c.lifetime = time.Duration(days) * 24 * time.Hour
	}

	if id := strings.TrimSpace(p.Get(TagCredentialID)); id != "" && !isGUID(id) {
		errs = append(errs, providers.ConfigErrorf(TagCredentialID, id,
			"not a key credential keyId (a GUID): set it to the Certificate ID of the certificate the current version holds, or remove it"))
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// lifetimeDays is entra-cert-lifetime-days, which may not exceed ValidityPeriodDays: a certificate
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
				"the certificate lifetime follows it and must be between %d and %d days; set %s", MinLifetimeDays, MaxLifetimeDays, TagLifetime)
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
			"must not exceed %s (%d): a certificate should not outlive the vault version that records it", tagValidity, validity)
	}
	return days, nil
}
