package azurekeys

import (
	"errors"
	"regexp"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/vocab"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagAddress is the ARM resource id of the resource whose keys rotate (the Azure samples' tag).
	TagAddress = vocab.TagAddress
	// TagCredentialID is the slot the current value belongs to (the Azure samples' tag).
	TagCredentialID = vocab.TagCredentialID
	// TagFormat is what the secret holds: FormatKey (default) or FormatConnectionString.
	TagFormat = "azure-keys-format"
	// TagVerify is how a new key is checked: VerifyAuto (default), VerifyDataPlane or VerifyListKeys.
	TagVerify = "azure-keys-verify"
	// TagAPIVersion overrides the api-version of the key actions (when Azure retires the default).
	TagAPIVersion = "azure-keys-api-version"
)

// The values of azure-keys-format.
const (
	FormatKey              = "key"               // the bare key
	FormatConnectionString = "connection-string" // a connection string built around the key
)

// The values of azure-keys-verify.
const (
	VerifyAuto      = "auto"       // a data-plane call where the type has one, else list-keys
	VerifyDataPlane = "data-plane" // a read-only data-plane call with the new key (Storage, Cosmos DB, AI Search)
	VerifyListKeys  = "list-keys"  // read the slot back through ARM and compare
)

const tagPrefix = "azure-keys-"

var (
	apiVersionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`) })
	guidRE       = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	})
	// dnsLabelRE is a resource name that can be the first label of a host name. Names that end up in
	// data-plane host names (Storage, Cosmos DB, Redis, AI Search) must match, so that a tag can never
	// point the new key at another host.
	dnsLabelRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`) })
	// segmentRE is a resource id segment kvrotator is willing to put in a request path.
	segmentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\p{L}\p{N}._()~-]+$`) })
)

// config is the provider's settings for one secret.
type config struct {
	id      *arm.ResourceID
	kind    *kind
	active  slot // the slot the current version holds (CredentialId)
	target  slot // its partner: the slot a rotation regenerates
	format  string
	verify  verifyMethod
	version string // api-version
	// known are the secret values this call has seen (the current value, the keys listKeys returned):
	// redacted from any message Azure sends back.
	known []string
}

// learn adds the values of ks to the values redacted from Azure's messages.
func (c *config) learn(ks keySet) {
	for _, k := range ks {
		c.known = append(c.known, k.Value, k.Conn)
	}
}

// parseConfig reads the provider's tags. address and credentialID, when set, stand for the
// ProviderAddress and CredentialId tags (a Request carries both). Every problem is a
// *providers.ConfigError; several are joined.
func parseConfig(p providers.Params, address, credentialID string) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagFormat, TagVerify, TagAPIVersion)
	var c config

	if address == "" {
		address = strings.TrimSpace(p.Get(TagAddress))
	}
	c.id, c.kind, errs = parseAddress(address, errs)

	if credentialID == "" {
		credentialID = strings.TrimSpace(p.Get(TagCredentialID))
	}
	if c.kind != nil {
		switch s, ok := c.kind.slotByName(credentialID); {
		case credentialID == "":
			errs = append(errs, providers.ConfigErrorf(TagCredentialID, "",
				"missing: set it to the %s slot the current value belongs to (%s); the rotation regenerates the other one", c.kind.title, c.kind.slotIDs()))
		case !ok:
			errs = append(errs, providers.ConfigErrorf(TagCredentialID, credentialID,
				"not a key slot of a %s (%s); use %s", c.kind.title, c.kind.resourceType, c.kind.slotIDs()))
		default:
			c.active, c.target = s, c.kind.partner(s)
		}
	}

	c.format = strings.ToLower(strings.TrimSpace(p.Get(TagFormat)))
	switch c.format {
	case "", FormatKey:
		c.format = FormatKey
	case FormatConnectionString:
		if c.kind != nil && c.kind.conn == nil {
			errs = append(errs, providers.ConfigErrorf(TagFormat, p.Get(TagFormat),
				"a %s has no connection string; store the bare key (%s=%s or no tag)", c.kind.title, TagFormat, FormatKey))
		}
	default:
		errs = append(errs, providers.ConfigErrorf(TagFormat, p.Get(TagFormat), "use %s or %s", FormatKey, FormatConnectionString))
	}

	switch v := strings.ToLower(strings.TrimSpace(p.Get(TagVerify))); v {
	case "", VerifyAuto:
		if c.kind != nil {
			c.verify = c.kind.verify
		}
	case VerifyListKeys:
		c.verify = verifyListKeys
	case VerifyDataPlane:
		if c.kind != nil {
			if c.kind.verify == verifyListKeys {
				errs = append(errs, providers.ConfigErrorf(TagVerify, p.Get(TagVerify),
					"kvrotator has no data-plane check for a %s; use %s or %s", c.kind.title, VerifyAuto, VerifyListKeys))
			}
			c.verify = c.kind.verify
		}
	default:
		errs = append(errs, providers.ConfigErrorf(TagVerify, p.Get(TagVerify), "use %s, %s or %s", VerifyAuto, VerifyDataPlane, VerifyListKeys))
	}

	c.version = strings.TrimSpace(p.Get(TagAPIVersion))
	if c.version == "" && c.kind != nil {
		c.version = c.kind.apiVersion
	} else if c.version != "" && !apiVersionRE().MatchString(c.version) {
		errs = append(errs, providers.ConfigErrorf(TagAPIVersion, c.version, "not an api-version (YYYY-MM-DD or YYYY-MM-DD-preview)"))
	}
	return c, errors.Join(errs...)
}

// parseAddress checks ProviderAddress: an ARM resource id of a supported type, in a resource group of a
// subscription, with nothing after the resource (no extension resources, no query).
func parseAddress(address string, errs []error) (*arm.ResourceID, *kind, []error) {
	bad := func(format string, args ...any) (*arm.ResourceID, *kind, []error) {
		return nil, nil, append(errs, providers.ConfigErrorf(TagAddress, address, format, args...))
	}
	if address == "" {
		return bad("missing: set it to the ARM resource id of the resource whose keys rotate, e.g. " +
			"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}")
	}
	if strings.ContainsAny(address, "?#%\\") || strings.ContainsFunc(address, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return bad("not an ARM resource id: it may not contain spaces, '?', '#', '%%' or '\\'")
	}
	id, err := arm.ParseResourceID(address)
	if err != nil {
		return bad("not an ARM resource id (/subscriptions/{subscription}/resourceGroups/{group}/providers/{namespace}/{type}/{name})")
	}
	for p := id; p != nil && p.Parent != nil; p = p.Parent {
		if p.Name == "" || !segmentRE().MatchString(p.Name) || p.Name == "." || p.Name == ".." {
			return bad("resource id segment %q is not a resource name", p.Name)
		}
	}
	k, ok := kinds[strings.ToLower(id.ResourceType.String())]
	if !ok {
		return bad("%s", unsupported(id))
	}
	if err := id.ValidateResourceTypeChain(chain(k.resourceType)); err != nil {
		return bad("not a %s resource id in a resource group: /subscriptions/{subscription}/resourceGroups/{group}/providers/%s/…", k.title, k.resourceType)
	}
	if !guidRE().MatchString(id.SubscriptionID) {
		return bad("subscription %q is not a subscription id (a GUID)", id.SubscriptionID)
	}
	if needsHostName(k.family) && !dnsLabelRE().MatchString(strings.ToLower(id.Name)) {
		return bad("%q is not a valid %s name (lower-case letters, digits and hyphens)", id.Name, k.title)
	}
	return id, k, errs
}

// unsupported explains why a resource id's type is not one the provider rotates.
func unsupported(id *arm.ResourceID) string {
	t := id.ResourceType
	var hint string
	switch ns := strings.ToLower(t.Namespace); {
	case ns == "microsoft.servicebus" || ns == "microsoft.eventhub":
		hint = "; the address of a Service Bus or Event Hubs key is its authorization rule: …/namespaces/{namespace}/authorizationRules/{rule} " +
			"(or …/queues/{queue}/…, …/topics/{topic}/…, …/eventhubs/{hub}/…)"
	default:
		var same []string
		for _, name := range kindNames() {
			if ns, _, _ := strings.Cut(name, "/"); strings.EqualFold(ns, t.Namespace) {
				same = append(same, name)
			}
		}
		if len(same) > 0 {
			hint = "; for " + t.Namespace + " the supported type is " + strings.Join(same, " or ")
		}
	}
	return t.String() + " is not a resource type the azure-keys provider rotates" + hint +
		" (supported: " + strings.Join(kindNames(), ", ") + ")"
}

// chain is the full ancestry of a resource-group-scoped resource of type t, for ValidateResourceTypeChain.
func chain(t string) []arm.ResourceType {
	ns, rest, _ := strings.Cut(t, "/")
	out := []arm.ResourceType{
		arm.TenantResourceType,
		arm.SubscriptionResourceType,
		arm.ResourceGroupResourceType,
	}
	types := strings.Split(rest, "/")
	for i := range types {
		out = append(out, arm.NewResourceType(ns, strings.Join(types[:i+1], "/")))
	}
	return out
}

// needsHostName reports whether the family's resource name becomes part of a data-plane host name.
func needsHostName(f family) bool {
	return f == famStorage || f == famCosmos || f == famRedis || f == famSearch
}
