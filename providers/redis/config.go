package redis

import (
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/vocab"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagAddress is the server: host[:port], rediss://host[:port] (both TLS, verified), or
	// redis://host[:port] (plain text, loopback hosts only). Never user information or a password.
	TagAddress = vocab.TagAddress
	// TagCredentialID is the ACL user the current version's password belongs to (kvrotator updates it).
	TagCredentialID = vocab.TagCredentialID
	// TagUsers names the two ACL users that take turns ("app_a,app_b").
	TagUsers = "redis-users"
	// TagAdminUser is the ACL user kvrotator logs in as to set passwords.
	TagAdminUser = "redis-admin-user"
	// TagAdminSecret is the NAME of another secret in the same vault whose value is the admin's password.
	TagAdminSecret = "redis-admin-secret"
	// TagFormat is what the vault stores: password (default) or url.
	TagFormat = "redis-format"
	// TagPersist is whether the change is saved to the server's ACL file: acl-save (default) or none.
	TagPersist = "redis-persist"
)

// The values of redis-format.
const (
	FormatPassword = "password" // the password alone; the user is the CredentialId tag
	FormatURL      = "url"      // rediss://user:password@host:port
)

// The values of redis-persist.
const (
	// PersistACLSave runs ACL SAVE after the change (and once before it, to find out whether the server
	// has an ACL file before anything is changed): the new password survives a restart of the server.
	PersistACLSave = "acl-save"
	// PersistNone changes the running server only: a restart brings back whatever the server's
	// configuration says (for servers whose ACLs are managed elsewhere).
	PersistNone = "none"
)

// DefaultPort is the port when ProviderAddress names none.
const DefaultPort = 6379

const tagPrefix = "redis-"

var (
	// userName is the ACL user names the provider accepts. Redis allows any name without spaces or
	// NUL; these are the names people use, and they are safe in logs, URLs and ACL rules (no name can
	// start like a rule: on, >, ~, +, …).
	userName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.@$-]{0,127}$`) })
	// hostName is a DNS name (IP literals are parsed separately).
	hostName = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)
	})
)

// config is the provider's settings for one secret.
type config struct {
	host     string // DNS name or IP literal, without brackets
	port     int
	tls      bool     // false only for redis:// to a loopback host
	users    []string // the two users that take turns
	active   string   // the user the current version holds
	admin    string
	adminRef string // the name of the secret holding the admin's password
	format   string
	persist  string
}

// server is host:port, the reference's value and what errors name.
func (c config) server() string { return net.JoinHostPort(c.host, strconv.Itoa(c.port)) }

// scheme is rediss, or redis for plain text.
func (c config) scheme() string {
	if c.tls {
		return "rediss"
	}
	return "redis"
}

// target is the user whose password Create sets: the one of the two the current version does not hold.
func (c config) target() string {
	if c.users[0] == c.active {
		return c.users[1]
	}
	return c.users[0]
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
// address stands in for the ProviderAddress tag when that is not among p (a Request's Address).
// credentialID, the engine's record of the user the current version holds, takes precedence over the
// CredentialId tag.
func parseConfig(p providers.Params, address, credentialID string) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagUsers, TagAdminUser, TagAdminSecret, TagFormat, TagPersist)
	var c config

	raw := strings.TrimSpace(p.Get(TagAddress))
	if raw == "" {
		raw = strings.TrimSpace(address)
	}
	if raw == "" {
		errs = append(errs, providers.ConfigErrorf(TagAddress, "", "missing: set it to the server, host:port or rediss://host:port"))
	} else if err := c.parseAddress(raw); err != nil {
		errs = append(errs, err)
	}

	rawUsers := strings.TrimSpace(p.Get(TagUsers))
	if rawUsers == "" {
		errs = append(errs, providers.ConfigErrorf(TagUsers, "", "missing: set it to the two ACL users that take turns, e.g. app_a,app_b"))
	} else {
		for _, u := range strings.Split(rawUsers, ",") {
			c.users = append(c.users, strings.TrimSpace(u))
		}
		switch {
		case len(c.users) != 2:
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers,
				"names %d user(s); name two that take turns (Redis keeps the application's current user untouched while the other one is changed)", len(c.users)))
		case !validUsers(c.users):
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers,
				"not two comma-separated ACL user names (1-128 characters: letters, digits, _ . @ $ -, not starting with . @ $ -)"))
		case c.users[0] == c.users[1]:
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers, "names the same user twice; name two different users"))
		}
	}

	// The engine's CredentialID is kvrotator's own record (its journal; the tag only when it has none):
	// it wins over the tag, which a tag-writer may have edited.
	c.active = strings.TrimSpace(credentialID)
	if c.active == "" {
		c.active = strings.TrimSpace(p.Get(TagCredentialID))
	}
	if len(c.users) == 2 && validUsers(c.users) && c.users[0] != c.users[1] {
		switch {
		case c.active == "":
			errs = append(errs, providers.ConfigErrorf(TagCredentialID, "",
				"missing: set it to the user (%s or %s) whose password the current version holds; the other one is rotated", c.users[0], c.users[1]))
		case !slices.Contains(c.users, c.active):
			errs = append(errs, providers.ConfigErrorf(TagCredentialID, c.active,
				"is not one of the users in %s (%s); names are case-sensitive", TagUsers, rawUsers))
		}
	}

	c.admin = strings.TrimSpace(p.Get(TagAdminUser))
	switch {
	case c.admin == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminUser, "", "missing: set it to the ACL user that sets the passwords"))
	case !userName().MatchString(c.admin):
		errs = append(errs, providers.ConfigErrorf(TagAdminUser, c.admin, "not an ACL user name (1-128 characters: letters, digits, _ . @ $ -)"))
	case slices.Contains(c.users, c.admin):
		errs = append(errs, providers.ConfigErrorf(TagAdminUser, c.admin, "is one of the rotated users in %s; use a separate admin user", TagUsers))
	}

	c.adminRef = strings.TrimSpace(p.Get(TagAdminSecret))
	switch {
	case c.adminRef == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"missing: set it to the name of the secret, in the same vault, that holds the admin's password"))
	case !kvnames.Secret(c.adminRef):
		// Not repeated: someone may have put the password itself in the tag.
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"not a Key Vault secret name (1-127 letters, digits and hyphens); the tag names the secret, it never holds the password"))
	}

	c.format = strings.ToLower(strings.TrimSpace(p.Get(TagFormat)))
	switch c.format {
	case "":
		c.format = FormatPassword
	case FormatPassword, FormatURL:
	default:
		errs = append(errs, providers.ConfigErrorf(TagFormat, p.Get(TagFormat), "must be %s or %s", FormatPassword, FormatURL))
	}

	c.persist = strings.ToLower(strings.TrimSpace(p.Get(TagPersist)))
	switch c.persist {
	case "":
		c.persist = PersistACLSave
	case PersistACLSave, PersistNone:
	default:
		errs = append(errs, providers.ConfigErrorf(TagPersist, p.Get(TagPersist), "must be %s (the default) or %s", PersistACLSave, PersistNone))
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// parseAddress reads host[:port], rediss://host[:port] or redis://host[:port] into c. The value is
// repeated in the error only when it cannot hold a credential.
func (c *config) parseAddress(raw string) error {
	fail := func(shown bool, reason string) error {
		v := raw
		if !shown {
			v = "(not shown: it may hold a credential)"
		}
		return providers.ConfigErrorf(TagAddress, v, "%s", reason)
	}
	if strings.Contains(raw, "@") {
		return fail(false, "must not contain user information (user:password@); the admin's password is read from the secret named by "+TagAdminSecret)
	}
	s := raw
	lower := strings.ToLower(s)
	useTLS := true
	switch {
	case strings.HasPrefix(lower, "rediss://"):
	case strings.HasPrefix(lower, "redis://"):
		useTLS = false
	case strings.Contains(s, "://"):
		return fail(true, "scheme must be rediss:// (TLS) or redis:// (plain text, loopback hosts only), or none: host:port (TLS)")
	default:
		s = "rediss://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url's errors quote the input: say what is wrong without them.
		return fail(false, "not host:port or rediss://host:port")
	}
	switch {
	case u.User != nil:
		return fail(false, "must not contain user information (user:password@)")
	case u.RawQuery != "" || u.ForceQuery:
		return fail(false, "must not contain a query (?…)")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fail(false, "must not contain a fragment (#…)")
	case u.Opaque != "":
		return fail(false, "not host:port or rediss://host:port")
	case u.Path != "" && u.Path != "/":
		return fail(true, "must not name a database or path: ACL users belong to the whole server; use host:port")
	}
	host, portStr := u.Hostname(), u.Port()
	if strings.HasSuffix(u.Host, ":") {
		return fail(true, "the port is empty")
	}
	port := DefaultPort
	if portStr != "" {
		n, err := strconv.Atoi(portStr)
		if err != nil || n < 1 || n > 65535 {
			return fail(false, "the port must be a number from 1 to 65535")
		}
		port = n
	}
	switch {
	case host == "":
		return fail(true, "no host; use host:port (Unix sockets are not supported)")
	case strings.Contains(host, ","):
		return fail(true, "names several hosts; name one")
	case !validHost(host):
		return fail(true, "the host is not a DNS name or an IP address (Unix sockets are not supported)")
	case !useTLS && !isLoopback(host):
		return fail(true, "redis:// (plain text) is allowed only for loopback hosts (127.0.0.1, ::1, localhost): "+
			"the admin's password and the new one would cross the network readable by anyone on the path; "+
			"use rediss://"+net.JoinHostPort(host, strconv.Itoa(port))+" (TLS, the default)")
	}
	c.host, c.port, c.tls = host, port, useTLS
	return nil
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return !strings.Contains(h, "%") // no IPv6 zones
	}
	return len(h) <= 253 && hostName().MatchString(h)
}

// isLoopback reports whether a connection to host never leaves the machine.
func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func validUsers(names []string) bool {
	for _, n := range names {
		if !userName().MatchString(n) {
			return false
		}
	}
	return true
}
