package keyvault

import (
	"context"
	"errors"
	"fmt"
	"github.com/kvrotator/kvrotator/internal/kvnames"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// Options configure a Vault. The zero value (or nil) uses the SDK's defaults.
type Options struct {
	// Transport for the Key Vault client (tests pass the emulator's HTTPClient()); nil = SDK default.
	Transport policy.Transporter
	// Retry overrides azcore's retry options (nil = SDK defaults: 3 retries, honours Retry-After).
	Retry *policy.RetryOptions
	// Name is the vault name when the URL's host is an IP address (the emulator's dedicated port).
	// For a named host it may be left empty; when set it must equal the host's first label.
	Name string
}

// Vault is a rotation.Vault backed by one Azure Key Vault through the azsecrets client. It is safe
// for concurrent use.
type Vault struct {
	name   string
	url    string
	client *azsecrets.Client
}

var _ rotation.Vault = (*Vault)(nil)

// ValidVaultName reports whether name follows Key Vault's rule for vault names: 3–24 characters,
// letters, digits and hyphens, starting with a letter, ending with a letter or digit, no "--".
func ValidVaultName(name string) bool {
	return kvnames.Vault(name)
}

// versionRE accepts the service's 32-hex-digit version ids (and anything else alphanumeric, so that
// only path-breaking input is refused); names are checked by internal/kvnames.
var (
	versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-zA-Z]{1,64}$`) })
)

// VaultURL turns a vault name or URL into the vault's base URL. A name ("myvault") becomes
// https://myvault.vault.azure.net (Azure public cloud); a URL must be absolute https with no path,
// query or fragment, and is returned normalised (lower-case host, no trailing slash). Invalid vault
// names are an error.
func VaultURL(nameOrURL string) (string, error) {
	s := strings.TrimSpace(nameOrURL)
	if s == "" {
		return "", errors.New("keyvault: empty vault name or URL")
	}
	if !strings.Contains(s, "://") {
		if !ValidVaultName(s) {
			return "", fmt.Errorf("keyvault: invalid vault name %q: use 3-24 letters, digits and hyphens, starting with a letter, ending with a letter or digit, without consecutive hyphens", s)
		}
		return "https://" + strings.ToLower(s) + ".vault.azure.net", nil
	}
	u, err := parseVaultURL(s)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// parseVaultURL checks that s is an absolute https URL with a host and no path, and returns it
// normalised.
func parseVaultURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("keyvault: invalid vault URL %q: %v", s, err)
	}
	switch {
	case !strings.EqualFold(u.Scheme, "https"):
		return nil, fmt.Errorf("keyvault: vault URL %q must use https (Key Vault refuses credentials over plain http)", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("keyvault: vault URL %q has no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("keyvault: vault URL %q must not carry user information", u.Redacted())
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("keyvault: vault URL %q must have no path (want https://NAME.vault.azure.net)", s)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("keyvault: vault URL %q must have no query", s)
	case u.Fragment != "":
		return nil, fmt.Errorf("keyvault: vault URL %q must have no fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("keyvault: vault URL %q has an invalid port", s)
		}
	}
	return &url.URL{Scheme: "https", Host: strings.ToLower(u.Host)}, nil
}

// New returns the Vault at vaultURL (https://NAME.vault.azure.net, or https://IP:PORT with
// Options.Name), authenticating with cred. It makes no network call. opts may be nil.
func New(vaultURL string, cred azcore.TokenCredential, opts *Options) (*Vault, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := parseVaultURL(vaultURL)
	if err != nil {
		return nil, err
	}
	if cred == nil {
		return nil, errors.New("keyvault: a credential is required")
	}
	host := u.Hostname()
	var name string
	if net.ParseIP(host) != nil {
		if opts.Name == "" {
			return nil, fmt.Errorf("keyvault: vault URL %q has an IP address for host: set Options.Name to the vault's name", vaultURL)
		}
		name = opts.Name
	} else {
		name, _, _ = strings.Cut(host, ".")
		if opts.Name != "" && !strings.EqualFold(opts.Name, name) {
			return nil, fmt.Errorf("keyvault: Options.Name %q does not match vault URL %q (vault %q)", opts.Name, vaultURL, name)
		}
	}
	if !ValidVaultName(name) {
		return nil, fmt.Errorf("keyvault: %q is not a valid vault name (from vault URL %q)", name, vaultURL)
	}
	co := azsecrets.ClientOptions{}
	co.Transport = opts.Transport
	if opts.Retry != nil {
		co.Retry = *opts.Retry
	}
	client, err := azsecrets.NewClient(u.String(), cred, &co)
	if err != nil {
		return nil, fmt.Errorf("keyvault: vault %q: %w", name, err)
	}
	return &Vault{name: strings.ToLower(name), url: u.String(), client: client}, nil
}

// Name is the vault name, lower-case ("myvault").
func (v *Vault) Name() string { return v.name }

// URL is the vault's base URL (https://myvault.vault.azure.net).
func (v *Vault) URL() string { return v.url }

// Get returns a secret version with its value; version "" is the latest.
func (v *Vault) Get(ctx context.Context, name, version string) (rotation.Secret, error) {
	const op = "get secret"
	if err := v.checkNames(op, name, version); err != nil {
		return rotation.Secret{}, err
	}
	resp, err := v.client.GetSecret(ctx, name, version, nil)
	if err != nil {
		return rotation.Secret{}, v.wrap(op, name, version, err)
	}
	s := resp.Secret
	props := v.properties(name, s.ID, s.Attributes, s.ContentType, s.Tags)
	out := rotation.Secret{SecretProperties: props}
	if s.Value != nil {
		out.Value = vocab.NewValue(*s.Value)
	}
	return out, nil
}

// List calls fn with the latest version's properties of every secret (Version is ""), reading one
// page of 25 at a time and never fetching a secret individually. Certificate-backed secrets are
// skipped. An error from fn stops the listing and is returned as is.
func (v *Vault) List(ctx context.Context, fn func(rotation.SecretProperties) error) error {
	const op = "list secrets"
	pager := v.client.NewListSecretPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return v.wrap(op, "", "", err)
		}
		for _, item := range page.Value {
			if item == nil || (item.Managed != nil && *item.Managed) {
				continue
			}
			props := v.properties("", item.ID, item.Attributes, item.ContentType, item.Tags)
			if props.Name == "" {
				continue
			}
			if err := fn(props); err != nil {
				return err
			}
		}
	}
	return nil
}

// Set writes a new, enabled version of the secret with nv's value, content type, tags, nbf and exp
// (zero times are left unset) and returns the new version's properties.
func (v *Vault) Set(ctx context.Context, name string, nv rotation.NewVersion) (rotation.SecretProperties, error) {
	const op = "set secret"
	if err := v.checkNames(op, name, ""); err != nil {
		return rotation.SecretProperties{}, err
	}
	value := nv.Value.Reveal()
	params := azsecrets.SetSecretParameters{
		Value:            &value,
		Tags:             toAzureTags(nv.Tags),
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: ptr(true)},
	}
	if nv.ContentType != "" {
		params.ContentType = ptr(nv.ContentType)
	}
	if !nv.NotBefore.IsZero() {
		params.SecretAttributes.NotBefore = ptr(nv.NotBefore.UTC())
	}
	if !nv.Expires.IsZero() {
		params.SecretAttributes.Expires = ptr(nv.Expires.UTC())
	}
	resp, err := v.client.SetSecret(ctx, name, params, nil)
	if err != nil {
		return rotation.SecretProperties{}, v.wrap(op, name, "", err)
	}
	s := resp.Secret
	return v.properties(name, s.ID, s.Attributes, s.ContentType, s.Tags), nil
}

// UpdateTags replaces the tags of an existing version (version "" is the latest); nothing else
// changes and no version is created. A nil or empty map clears the tags.
func (v *Vault) UpdateTags(ctx context.Context, name, version string, tags map[string]string) (rotation.SecretProperties, error) {
	const op = "update tags of secret"
	if err := v.checkNames(op, name, version); err != nil {
		return rotation.SecretProperties{}, err
	}
	t := toAzureTags(tags)
	if t == nil {
		t = map[string]*string{} // sent as {}: replaces (clears) the tags; a nil map would be omitted
	}
	resp, err := v.client.UpdateSecretProperties(ctx, name, version, azsecrets.UpdateSecretPropertiesParameters{Tags: t}, nil)
	if err != nil {
		return rotation.SecretProperties{}, v.wrap(op, name, version, err)
	}
	s := resp.Secret
	return v.properties(name, s.ID, s.Attributes, s.ContentType, s.Tags), nil
}

// Disable disables a version (Key Vault's UpdateSecretProperties with enabled false); its value,
// tags and dates stay. Disabling a disabled version succeeds.
func (v *Vault) Disable(ctx context.Context, name, version string) error {
	const op = "disable secret"
	if version == "" {
		return vocab.Permanent(&Error{Op: op, Vault: v.name, Secret: name, detail: "a version is required: the latest version is never disabled"})
	}
	if err := v.checkNames(op, name, version); err != nil {
		return err
	}
	enabled := false
	_, err := v.client.UpdateSecretProperties(ctx, name, version, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: &enabled}}, nil)
	if err != nil {
		return v.wrap(op, name, version, err)
	}
	return nil
}

// checkNames refuses names and versions Key Vault would reject, before any request.
func (v *Vault) checkNames(op, name, version string) error {
	var reason string
	switch {
	case !kvnames.Secret(name):
		reason = "invalid secret name: use 1-127 letters, digits and hyphens"
	case version != "" && !versionRE().MatchString(version):
		reason = "invalid secret version"
	default:
		return nil
	}
	return vocab.Permanent(&Error{Op: op, Vault: v.name, Secret: name, Version: version, detail: reason})
}

// properties maps the SDK's secret metadata to rotation.SecretProperties. fallbackName is used when
// the id cannot be parsed.
func (v *Vault) properties(fallbackName string, id *azsecrets.ID, a *azsecrets.SecretAttributes, contentType *string, tags map[string]*string) rotation.SecretProperties {
	name, version := parseID(id)
	if name == "" {
		name = fallbackName
	}
	p := rotation.SecretProperties{
		Vault:   v.name,
		Name:    name,
		Version: version,
		Enabled: true, // Key Vault's default when the attribute is absent
		Tags:    fromAzureTags(tags),
	}
	if contentType != nil {
		p.ContentType = *contentType
	}
	if a != nil {
		if a.Enabled != nil {
			p.Enabled = *a.Enabled
		}
		p.NotBefore = utcPtr(a.NotBefore)
		p.Expires = utcPtr(a.Expires)
		if a.Created != nil {
			p.Created = a.Created.UTC()
		}
		if a.Updated != nil {
			p.Updated = a.Updated.UTC()
		}
	}
	return p
}

// parseID splits https://host/secrets/NAME[/VERSION] without the SDK's panics on malformed ids.
func parseID(id *azsecrets.ID) (name, version string) {
	if id == nil {
		return "", ""
	}
	u, err := url.Parse(string(*id))
	if err != nil {
		return "", ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || parts[0] != "secrets" {
		return "", ""
	}
	name = parts[1]
	if len(parts) > 2 {
		version = parts[2]
	}
	return name, version
}

func toAzureTags(tags map[string]string) map[string]*string {
	if tags == nil {
		return nil
	}
	out := make(map[string]*string, len(tags))
	for k, v := range tags {
		out[k] = ptr(v)
	}
	return out
}

func fromAzureTags(tags map[string]*string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func ptr[T any](v T) *T { return &v }
