// Package bindings is the operator's side of kvrotator's trust boundary: which secrets may make
// kvrotator reach what. A secret's tags are untrusted input (a person may hold tag rights on one secret
// and nothing else), so a tag may only choose among what the operator allowed here. Every reference a
// provider declares (providers.Reference: URLs, other secrets, ARM resources, Entra applications and
// tenants, database servers and logins) must match a binding that covers the secret and its provider.
//
// The policy is JSON, given by the operator in the KVROTATOR_BINDINGS app setting (inline, or the path
// of a file deployed with the Function App), which a tag-writer cannot change:
//
//	{"bindings": [
//	  {"name": "sendgrid-mail",
//	   "secrets": ["kv-prod/sendgrid-*"],
//	   "provider": "sendgrid",
//	   "allow": {"secret": ["sendgrid-admin"]}},
//	  {"name": "team-a-storage",
//	   "secrets": ["kv-prod/storage-*"],
//	   "provider": "azure-keys",
//	   "allow": {"resource": ["/subscriptions/0000…/resourceGroups/team-a/providers/Microsoft.Storage/storageAccounts/*"]}}
//	]}
//
// Patterns use path.Match syntax: "*" matches any run of characters except "/", "?" one character,
// "[…]" a class; in allow patterns, {vault} and {secret} stand for the covered secret's own vault and
// name (".../storageAccounts/{secret}": each secret only the account named like it). Everything but logins is compared case-insensitively (Key Vault names, ARM ids, host
// names and GUIDs are case-insensitive; database role names are not). A reference is allowed when one
// binding whose secrets pattern matches "<vault>/<secret>" and whose provider is the secret's provider
// (or "*") lists a matching pattern for the reference's kind. The package makes no network call.
package bindings

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// Binding allows the secrets it covers, rotated by its provider, to reach what it lists.
type Binding struct {
	// Name identifies the binding in messages.
	Name string `json:"name"`
	// Secrets are patterns of "<vault>/<secret>" ("kv-prod/sendgrid-*", "*/db-*").
	Secrets []string `json:"secrets"`
	// Provider is the provider name the binding is for, or "*" for any.
	Provider string `json:"provider"`
	// Allow maps a reference kind (url, secret, resource, application, tenant, server, login) to the
	// patterns of the values allowed.
	Allow map[providers.RefKind][]string `json:"allow"`
	// Consumers are the applications that read the secrets the binding covers: after each rotation
	// kvrotator asks them to pick up the new version (rotation.Consumer). Resource and URL may use the
	// {vault} and {secret} placeholders.
	Consumers []rotation.Consumer `json:"consumers,omitempty"`
}

// Policy is the operator's set of bindings. The zero Policy (no bindings) allows no reference: only
// providers that reach nothing outside the secret (random) rotate.
type Policy struct {
	Bindings []Binding `json:"bindings"`
	// Source says where the policy came from, for messages ("KVROTATOR_BINDINGS", a file path).
	Source string `json:"-"`
}

// Parse reads and validates a policy. Every problem is reported, each naming the binding and field.
// knownProviders, when not nil, are the provider names a binding may name (besides "*").
func Parse(data []byte, source string, knownProviders []string) (*Policy, error) {
	var p Policy
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: not a bindings document ({\"bindings\": [{\"secrets\": […], \"provider\": …, \"allow\": {…}}]}): %w", source, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: unexpected data after the bindings document", source)
	}
	p.Source = source
	var errs []error
	names := map[string]bool{}
	for i := range p.Bindings {
		b := &p.Bindings[i]
		where := fmt.Sprintf("%s: binding %d", source, i+1)
		if b.Name != "" {
			where += fmt.Sprintf(" (%q)", b.Name)
			if names[strings.ToLower(b.Name)] {
				errs = append(errs, fmt.Errorf("%s: the name is used twice", where))
			}
			names[strings.ToLower(b.Name)] = true
		} else {
			b.Name = fmt.Sprintf("#%d", i+1)
		}
		b.Provider = strings.ToLower(strings.TrimSpace(b.Provider))
		switch {
		case b.Provider == "":
			errs = append(errs, fmt.Errorf("%s: provider is missing (a provider name, or \"*\" for any)", where))
		case b.Provider != "*" && knownProviders != nil && !slices.Contains(knownProviders, b.Provider):
			errs = append(errs, fmt.Errorf("%s: provider %q is not one of %s", where, b.Provider, strings.Join(knownProviders, ", ")))
		}
		if len(b.Secrets) == 0 {
			errs = append(errs, fmt.Errorf("%s: secrets is empty: list the \"<vault>/<secret>\" patterns the binding covers", where))
		}
		for _, s := range b.Secrets {
			v, n, ok := strings.Cut(s, "/")
			if !ok || v == "" || n == "" || strings.Contains(n, "/") {
				errs = append(errs, fmt.Errorf("%s: secrets pattern %q: want <vault>/<secret> (patterns allowed in both, e.g. kv-prod/sendgrid-*)", where, s))
				continue
			}
			if _, err := path.Match(s, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s: secrets pattern %q: %v", where, s, err))
			}
		}
		if len(b.Allow) == 0 && len(b.Consumers) == 0 {
			errs = append(errs, fmt.Errorf("%s: allow is empty: list what the secrets may reach by kind (%s), or the consumers to refresh", where, kinds()))
		}
		for j, c := range b.Consumers {
			if err := checkConsumer(c); err != nil {
				errs = append(errs, fmt.Errorf("%s: consumers[%d]: %w", where, j, err))
			}
		}
		for k, pats := range b.Allow {
			if !slices.Contains(providers.RefKinds, k) {
				errs = append(errs, fmt.Errorf("%s: allow.%s: not a reference kind (%s)", where, k, kinds()))
				continue
			}
			if len(pats) == 0 {
				errs = append(errs, fmt.Errorf("%s: allow.%s is empty", where, k))
			}
			for _, pat := range pats {
				if strings.TrimSpace(pat) == "" {
					errs = append(errs, fmt.Errorf("%s: allow.%s has an empty pattern", where, k))
				} else if _, err := path.Match(pat, ""); err != nil {
					errs = append(errs, fmt.Errorf("%s: allow.%s pattern %q: %v", where, k, pat, err))
				} else if k == providers.RefURL && !strings.Contains(pat, "://") {
					errs = append(errs, fmt.Errorf("%s: allow.url pattern %q: want a base URL with its scheme (https://api.example.com)", where, pat))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &p, nil
}

// Load reads the policy from setting, the value of the KVROTATOR_BINDINGS app setting: inline JSON
// (starting with "{"), or the path of a JSON file (relative paths from the working directory, which
// for the Functions host is the Function App's root). An empty setting is the empty policy.
func Load(setting, settingName string, knownProviders []string) (*Policy, error) {
	setting = strings.TrimSpace(setting)
	switch {
	case setting == "":
		return &Policy{Source: settingName}, nil
	case strings.HasPrefix(setting, "{"):
		return Parse([]byte(setting), settingName, knownProviders)
	}
	data, err := os.ReadFile(setting)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the bindings file: %w", settingName, err)
	}
	return Parse(data, setting, knownProviders)
}

func kinds() string {
	var s []string
	for _, k := range providers.RefKinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// match reports whether value matches pattern; case-insensitively unless caseSensitive.
func match(pattern, value string, caseSensitive bool) bool {
	if !caseSensitive {
		pattern, value = strings.ToLower(pattern), strings.ToLower(value)
	}
	ok, err := path.Match(pattern, value)
	return err == nil && ok
}

// covers reports whether b applies to the secret vault/secret rotated by provider.
func (b *Binding) covers(vault, secret, provider string) bool {
	if b.Provider != "*" && !strings.EqualFold(b.Provider, provider) {
		return false
	}
	for _, s := range b.Secrets {
		if match(s, vault+"/"+secret, false) {
			return true
		}
	}
	return false
}

// allows reports whether b lets ref, a reference of secret vault/secret, through: a pattern of its kind
// matches it, or ref is the provider's builtin default and b does not restrict that kind. The
// placeholders {vault} and {secret} in a pattern stand for the secret's own vault and name, so one
// binding can tie each secret to what is named after it.
func (b *Binding) allows(ref providers.Reference, vault, secret string) bool {
	pats, restricted := b.Allow[ref.Kind]
	if ref.Builtin && !restricted {
		return true
	}
	for _, pat := range pats {
		// Key Vault names are letters, digits and hyphens: nothing a glob would read as a pattern.
		pat = strings.NewReplacer("{vault}", vault, "{secret}", secret).Replace(pat)
		if matchRef(ref.Kind, pat, ref.Value) {
			return true
		}
	}
	return false
}

// matchRef matches a reference's value: database logins case-sensitively; a server's host:port
// case-insensitively and its database (after the first "/") case-sensitively, as PostgreSQL and MySQL
// name them; everything else case-insensitively.
func matchRef(kind providers.RefKind, pattern, value string) bool {
	switch kind {
	case providers.RefLogin:
		return match(pattern, value, true)
	case providers.RefServer:
		ph, pd, _ := strings.Cut(pattern, "/")
		vh, vd, _ := strings.Cut(value, "/")
		return match(ph, vh, false) && match(pd, vd, true)
	}
	return match(pattern, value, false)
}

// UnboundError is a reference that no binding allows: a permanent configuration error that names the
// tag, the value and what the operator would add. It unwraps to a *providers.ConfigError.
type UnboundError struct {
	Vault, Secret, Provider string
	Ref                     providers.Reference
	Source                  string // where the bindings come from
	Covering                []string
	// None says no bindings are configured at all.
	None bool
}

func (e *UnboundError) Error() string { return e.config().Error() }

// Unwrap makes the error a *providers.ConfigError for errors.As: permanent, never retried.
func (e *UnboundError) Unwrap() error { return e.config() }

func (e *UnboundError) config() *providers.ConfigError {
	var why string
	switch {
	case e.None:
		why = fmt.Sprintf("not bound: no bindings are configured (%s is empty), so secret %s/%s may not make provider %s reach %s %q; the operator adds a binding whose allow.%s lists it",
			e.Source, e.Vault, e.Secret, e.Provider, e.Ref.Kind, e.Ref.Value, e.Ref.Kind)
	case len(e.Covering) == 0:
		why = fmt.Sprintf("not bound: no binding in %s covers secret %s/%s with provider %s; the operator adds one whose allow.%s lists it",
			e.Source, e.Vault, e.Secret, e.Provider, e.Ref.Kind)
	default:
		why = fmt.Sprintf("not bound: the bindings covering secret %s/%s (%s) do not allow %s %q together with the rotation's other references "+
			"(one binding must allow them all); the operator adds it to allow.%s in %s",
			e.Vault, e.Secret, strings.Join(e.Covering, ", "), e.Ref.Kind, e.Ref.Value, e.Ref.Kind, e.Source)
	}
	tag := e.Ref.Tag
	if tag == "" {
		tag = string(e.Ref.Kind)
	}
	return providers.ConfigErrorf(tag, e.Ref.Value, "%s", why)
}

// Check returns nil when one binding covering the secret vault/secret rotated by provider allows every
// reference, or the references that the closest binding does not allow (each an *UnboundError, joined).
// One binding must allow them all: an admin key bound for one service is never sent to a URL another
// binding allows. Builtin references (a provider's fixed default) pass when no binding covers the secret,
// or the binding does not restrict their kind.
func (p *Policy) Check(vault, secret, provider string, refs []providers.Reference) error {
	var covering []*Binding
	if p != nil {
		for i := range p.Bindings {
			if p.Bindings[i].covers(vault, secret, provider) {
				covering = append(covering, &p.Bindings[i])
			}
		}
	}
	var best []providers.Reference
	bestSet := false
	if len(covering) == 0 {
		for _, r := range refs {
			if !r.Builtin {
				best = append(best, r)
			}
		}
		bestSet = true
	}
	for _, b := range covering {
		var missing []providers.Reference
		for _, r := range refs {
			if !b.allows(r, vault, secret) {
				missing = append(missing, r)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if !bestSet || len(missing) < len(best) {
			best, bestSet = missing, true
		}
	}
	var errs []error
	for _, r := range best {
		e := &UnboundError{Vault: vault, Secret: secret, Provider: provider, Ref: r, Source: "the bindings (KVROTATOR_BINDINGS)"}
		if p != nil && p.Source != "" {
			e.Source = p.Source
		}
		e.None = p == nil || len(p.Bindings) == 0
		for _, b := range covering {
			e.Covering = append(e.Covering, b.Name)
		}
		errs = append(errs, e)
	}
	return providers.JoinErrors(errs)
}

// The ARM ids a consumer may name ({vault} and {secret} stand in for letters, digits and hyphens).
var (
	// Compiled on first use: start-up stays free of work only some configurations need.
	appServiceID = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Web/sites/[^/]+(/slots/[^/]+)?$`)
	})
	containerAppID = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.App/containerApps/[^/]+$`)
	})
)

// checkConsumer validates one consumer entry.
func checkConsumer(c rotation.Consumer) error {
	switch c.Kind {
	case rotation.ConsumerAppService:
		if !appServiceID().MatchString(c.Resource) || c.URL != "" || c.SigningSecret != "" {
			return fmt.Errorf("an app-service consumer needs resource: the app's ARM id (/subscriptions/…/resourceGroups/…/providers/Microsoft.Web/sites/NAME[/slots/SLOT]) and nothing else; got %q", c.Resource)
		}
	case rotation.ConsumerContainerApp:
		if !containerAppID().MatchString(c.Resource) || c.URL != "" || c.SigningSecret != "" {
			return fmt.Errorf("a container-app consumer needs resource: the app's ARM id (/subscriptions/…/resourceGroups/…/providers/Microsoft.App/containerApps/NAME) and nothing else; got %q", c.Resource)
		}
	case rotation.ConsumerWebhook:
		if c.Resource != "" {
			return errors.New("a webhook consumer has url and signingSecret, not resource")
		}
		if err := checkWebhookURL(c.URL); err != nil {
			return fmt.Errorf("url %q: %w", c.URL, err)
		}
		if !kvnames.Secret(c.SigningSecret) {
			return fmt.Errorf("signingSecret %q: want the name of the secret (same vault) holding the HMAC key", c.SigningSecret)
		}
	default:
		return fmt.Errorf("kind %q: want %s, %s or %s", c.Kind, rotation.ConsumerAppService, rotation.ConsumerContainerApp, rotation.ConsumerWebhook)
	}
	return nil
}

// checkWebhookURL accepts https URLs, and http only on a loopback host (local development).
func checkWebhookURL(raw string) error {
	raw = strings.NewReplacer("{vault}", "v", "{secret}", "s").Replace(raw)
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("want an https URL without credentials, query or fragment")
	}
	host := u.Hostname()
	loopback := strings.EqualFold(host, "localhost")
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		loopback = true
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loopback) {
		return errors.New("want https (http only for a loopback host)")
	}
	return nil
}

// Consumers returns the consumers of every binding that covers the secret vault/secret rotated by
// provider, placeholders filled in, each once.
func (p *Policy) Consumers(vault, secret, provider string) []rotation.Consumer {
	if p == nil {
		return nil
	}
	fill := strings.NewReplacer("{vault}", vault, "{secret}", secret)
	var out []rotation.Consumer
	seen := map[string]bool{}
	for i := range p.Bindings {
		b := &p.Bindings[i]
		if !b.covers(vault, secret, provider) {
			continue
		}
		for _, c := range b.Consumers {
			c.Resource, c.URL = fill.Replace(c.Resource), fill.Replace(c.URL)
			key := strings.ToLower(c.Kind + "|" + c.Resource + "|" + c.URL)
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, c)
		}
	}
	return out
}
