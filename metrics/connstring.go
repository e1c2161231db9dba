package metrics

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultIngestionEndpoint is where telemetry goes when a connection string names no endpoint (the
// global endpoint; it redirects to the component's region).
const DefaultIngestionEndpoint = "https://dc.services.visualstudio.com"

// DefaultAudience is the Microsoft Entra ID audience of Application Insights ingestion in the
// public cloud; a connection string's AADAudience overrides it (sovereign clouds).
const DefaultAudience = "https://monitor.azure.com"

// ConnectionString is a parsed Application Insights connection string
// (APPLICATIONINSIGHTS_CONNECTION_STRING).
type ConnectionString struct {
	// InstrumentationKey names the component; it goes in every envelope's iKey. Microsoft documents
	// it as not a secret.
	InstrumentationKey string
	// IngestionEndpoint is the base URL, https, without a trailing slash, e.g.
	// https://westeurope-5.in.applicationinsights.azure.com.
	IngestionEndpoint string
	// AADAudience is the audience for Entra ID tokens, without a trailing slash (DefaultAudience
	// unless the connection string says otherwise).
	AADAudience string
}

// Scope is the token scope for Entra ID authentication: the audience + "/.default".
func (c ConnectionString) Scope() string { return c.AADAudience + "/.default" }

// TrackURL is the ingestion API's track endpoint.
func (c ConnectionString) TrackURL() string { return c.IngestionEndpoint + "/v2.1/track" }

// ParseConnectionString parses "InstrumentationKey=…;IngestionEndpoint=https://…[;AADAudience=…]".
// Keys are case-insensitive and empty segments are ignored. InstrumentationKey is required and must
// be a GUID. Without IngestionEndpoint the endpoint is built from EndpointSuffix (and Location) as
// the Azure Monitor exporters do, or is DefaultIngestionEndpoint. Endpoints must be absolute https
// URLs. An Authorization key other than "ikey" is refused. Errors never quote the instrumentation
// key.
func ParseConnectionString(s string) (ConnectionString, error) {
	if strings.TrimSpace(s) == "" {
		return ConnectionString{}, errors.New("metrics: the Application Insights connection string is empty")
	}
	kv := map[string]string{}
	for seg := range strings.SplitSeq(s, ";") {
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		k, v, ok := strings.Cut(seg, "=")
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if !ok || k == "" {
			return ConnectionString{}, errors.New("metrics: malformed Application Insights connection string: every part must be key=value, separated by ';'")
		}
		if _, dup := kv[k]; dup {
			return ConnectionString{}, fmt.Errorf("metrics: malformed Application Insights connection string: %q appears twice", k)
		}
		kv[k] = v
	}
	if a, ok := kv["authorization"]; ok && !strings.EqualFold(a, "ikey") {
		return ConnectionString{}, fmt.Errorf("metrics: Application Insights connection string: Authorization=%q is not supported (only ikey; Entra ID is configured with a credential)", a)
	}
	var c ConnectionString
	c.InstrumentationKey = kv["instrumentationkey"]
	if c.InstrumentationKey == "" {
		return ConnectionString{}, errors.New("metrics: the Application Insights connection string has no InstrumentationKey")
	}
	if !isGUID(c.InstrumentationKey) {
		return ConnectionString{}, errors.New("metrics: the Application Insights connection string's InstrumentationKey is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
	}
	endpoint := kv["ingestionendpoint"]
	if endpoint == "" {
		endpoint = DefaultIngestionEndpoint
		if suffix := strings.Trim(kv["endpointsuffix"], "./"); suffix != "" {
			prefix := ""
			if loc := strings.Trim(kv["location"], "."); loc != "" {
				prefix = loc + "."
			}
			endpoint = "https://" + prefix + "dc." + suffix
		}
	}
	var err error
	if c.IngestionEndpoint, err = httpsBase("IngestionEndpoint", endpoint); err != nil {
		return ConnectionString{}, err
	}
	c.AADAudience = DefaultAudience
	if aud := kv["aadaudience"]; aud != "" {
		if c.AADAudience, err = httpsBase("AADAudience", aud); err != nil {
			return ConnectionString{}, err
		}
	}
	return c, nil
}

// httpsBase checks that v is an absolute https URL without user information, query or fragment and
// returns it without a trailing slash.
func httpsBase(name, v string) (string, error) {
	u, err := url.Parse(v)
	switch {
	case err != nil || u.Host == "" || !strings.EqualFold(u.Scheme, "https"):
		return "", fmt.Errorf("metrics: Application Insights connection string: %s must be an absolute https URL (e.g. https://westeurope-5.in.applicationinsights.azure.com/)", name)
	case u.User != nil:
		return "", fmt.Errorf("metrics: Application Insights connection string: %s must not contain user information", name)
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("metrics: Application Insights connection string: %s %q must not have a query or fragment", name, v)
	}
	return "https://" + u.Host + strings.TrimRight(u.Path, "/"), nil
}

// isGUID reports whether s is 8-4-4-4-12 hexadecimal digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
				return false
			}
		}
	}
	return true
}

// Authentication is a parsed APPLICATIONINSIGHTS_AUTHENTICATION_STRING.
type Authentication struct {
	// Entra is true for "Authorization=AAD": send with a Microsoft Entra ID token.
	Entra bool
	// ClientID names a user-assigned managed identity; empty means the system-assigned one.
	ClientID string
}

// ParseAuthenticationString parses APPLICATIONINSIGHTS_AUTHENTICATION_STRING, the setting Azure
// documents for Entra ID ingestion: "Authorization=AAD" (system-assigned managed identity) or
// "Authorization=AAD;ClientId=<client id>" (user-assigned). An empty string means no Entra ID
// authentication. The caller turns the result into an azcore.TokenCredential for Options.Credential.
func ParseAuthenticationString(s string) (Authentication, error) {
	var a Authentication
	if strings.TrimSpace(s) == "" {
		return a, nil
	}
	for seg := range strings.SplitSeq(s, ";") {
		seg = strings.TrimSpace(seg)
		if seg == "" {
			continue
		}
		k, v, ok := strings.Cut(seg, "=")
		if !ok {
			return Authentication{}, errors.New("metrics: malformed APPLICATIONINSIGHTS_AUTHENTICATION_STRING: every part must be key=value, separated by ';'")
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "authorization":
			if !strings.EqualFold(strings.TrimSpace(v), "AAD") {
				return Authentication{}, fmt.Errorf("metrics: APPLICATIONINSIGHTS_AUTHENTICATION_STRING: Authorization=%q is not supported (want AAD)", v)
			}
			a.Entra = true
		case "clientid":
			a.ClientID = strings.TrimSpace(v)
		default:
			return Authentication{}, fmt.Errorf("metrics: APPLICATIONINSIGHTS_AUTHENTICATION_STRING: unknown key %q", strings.TrimSpace(k))
		}
	}
	if !a.Entra {
		return Authentication{}, errors.New("metrics: APPLICATIONINSIGHTS_AUTHENTICATION_STRING has no Authorization=AAD")
	}
	return a, nil
}
