package postgres

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
	// TagAddress is the Azure rotation samples' tag: the server and database, host[:port]/dbname or
	// postgres://host[:port]/dbname. Never user information or a password.
	TagAddress = vocab.TagAddress
	// TagCredentialID is the login the current version's password belongs to (kvrotator updates it).
	TagCredentialID = vocab.TagCredentialID
	// TagUsers names the two logins that take turns ("app_a,app_b"), or one login for single-user mode.
	TagUsers = "postgres-users"
	// TagAdminUser is the role kvrotator logs in as to set passwords.
	TagAdminUser = "postgres-admin-user"
	// TagAdminSecret is the NAME of another secret in the same vault whose value is the admin's password.
	TagAdminSecret = "postgres-admin-secret"
	// TagSSLMode is the TLS mode of every connection: verify-full (default) or verify-ca, or disable
	// for loopback hosts only. It chooses how the server is checked, never which CAs are trusted: that
	// is the operator's (KVROTATOR_POSTGRES_CA_FILE, PGSSLROOTCERT, else the system's roots).
	TagSSLMode = "postgres-sslmode"
	// TagFormat is what the vault stores: password (default) or connection-string.
	TagFormat = "postgres-format"
)

// The values of postgres-format.
const (
	FormatPassword         = "password"          // the password alone; the login is the CredentialId tag
	FormatConnectionString = "connection-string" // postgres://user:password@host:port/db?sslmode=…
)

// The values of postgres-sslmode. require is refused (it encrypts without checking who answers), and
// so are prefer and allow (they fall back to plain text).
const (
	SSLDisable    = "disable"     // loopback hosts only
	SSLVerifyCA   = "verify-ca"   // the certificate chains to the operator's CA file (never the system's roots); any name
	SSLVerifyFull = "verify-full" // the certificate chains to a trusted CA and names the host (default)
)

// DefaultPort is the port when ProviderAddress names none.
const DefaultPort = 5432

const tagPrefix = "postgres-"

var (
	// secretName is a Key Vault secret name: 1-127 letters, digits and hyphens.
	// roleName is the role names the provider accepts: PostgreSQL allows almost anything in a quoted
	// identifier, but these are the names people use, and they are safe in logs and URLs. The provider
	// always quotes them, so they are case-sensitive: App_A is not app_a.
	roleName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.@$-]{0,62}$`) })
	// dbName likewise for database names.
	dbName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}$`) })
	// hostName is a DNS name (IP literals are parsed separately).
	hostName = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)
	})
)

// config is the provider's settings for one secret.
type config struct {
	host     string // DNS name or IP literal, without brackets
	port     int
	database string
	users    []string // one (single-user mode) or two (alternating)
	active   string   // the CredentialId tag: the login the current version holds ("" only in single-user mode)
	admin    string
	adminRef string // the name of the secret holding the admin's password
	sslMode  string
	format   string
}

func (c config) single() bool { return len(c.users) == 1 }

// server is host:port/database, for messages.
func (c config) server() string {
	return net.JoinHostPort(c.host, strconv.Itoa(c.port)) + "/" + c.database
}

// target is the login whose password Create sets: the one of the two that the current version does not
// hold, or the only one in single-user mode.
func (c config) target() string {
	if c.single() {
		return c.users[0]
	}
	if c.users[0] == c.active {
		return c.users[1]
	}
	return c.users[0]
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
// address stands in for the ProviderAddress tag when that is not among p (a Request's Address, for
// callers that fill it but not Params). credentialID, the engine's record of the login the current
// version holds, takes precedence over the CredentialId tag.
func parseConfig(p providers.Params, address, credentialID string) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagUsers, TagAdminUser, TagAdminSecret, TagSSLMode, TagFormat)
	var c config

	raw := strings.TrimSpace(p.Get(TagAddress))
	if raw == "" {
		raw = strings.TrimSpace(address)
	}
	if raw == "" {
		errs = append(errs, providers.ConfigErrorf(TagAddress, "", "missing: set it to the server and database, host:port/dbname"))
	} else if err := c.parseAddress(raw); err != nil {
		errs = append(errs, err)
	}

	rawUsers := strings.TrimSpace(p.Get(TagUsers))
	if rawUsers == "" {
		errs = append(errs, providers.ConfigErrorf(TagUsers, "",
			"missing: set it to the two logins that take turns, e.g. app_a,app_b (or one login for single-user mode)"))
	} else {
		for _, u := range strings.Split(rawUsers, ",") {
			c.users = append(c.users, strings.TrimSpace(u))
		}
		switch {
		case len(c.users) > 2:
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers, "names %d logins; name two that take turns (or one)", len(c.users)))
		case !validRoles(c.users):
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers,
				"not a comma-separated list of role names (1-63 characters: letters, digits, _ . @ $ -, not starting with . @ $ -)"))
		case len(c.users) == 2 && c.users[0] == c.users[1]:
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers, "names the same login twice; name two different logins"))
		}
	}

	// The engine's CredentialID is kvrotator's own record of the login the latest version holds (its
	// journal; the tag only when it has none): it wins over the tag, which a tag-writer may have edited.
	c.active = strings.TrimSpace(credentialID)
	if c.active == "" {
		c.active = strings.TrimSpace(p.Get(TagCredentialID))
	}
	if len(c.users) > 0 && len(c.users) <= 2 && validRoles(c.users) {
		switch {
		case len(c.users) == 2 && c.active == "":
			errs = append(errs, providers.ConfigErrorf(TagCredentialID, "",
				"missing: set it to the login (%s or %s) whose password the current version holds; the other one is rotated", c.users[0], c.users[1]))
		case c.active != "" && !slices.Contains(c.users, c.active):
			errs = append(errs, providers.ConfigErrorf(TagCredentialID, c.active,
				"is not one of the logins in %s (%s); names are case-sensitive", TagUsers, rawUsers))
		}
	}

	c.admin = strings.TrimSpace(p.Get(TagAdminUser))
	switch {
	case c.admin == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminUser, "", "missing: set it to the role that sets the passwords (it needs CREATEROLE)"))
	case !roleName().MatchString(c.admin):
		errs = append(errs, providers.ConfigErrorf(TagAdminUser, c.admin, "not a role name (1-63 characters: letters, digits, _ . @ $ -)"))
	case slices.Contains(c.users, c.admin):
		errs = append(errs, providers.ConfigErrorf(TagAdminUser, c.admin, "is one of the rotated logins in %s; use a separate admin role", TagUsers))
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

	c.sslMode = strings.ToLower(strings.TrimSpace(p.Get(TagSSLMode)))
	switch c.sslMode {
	case "":
		c.sslMode = SSLVerifyFull
	case SSLVerifyCA, SSLVerifyFull:
	case SSLDisable:
		if c.host != "" && !isLoopback(c.host) {
			errs = append(errs, providers.ConfigErrorf(TagSSLMode, c.sslMode,
				"allowed only for loopback hosts (127.0.0.1, ::1, localhost); %s is %s: use verify-full (the default)", TagAddress, c.host))
		}
	case "require":
		errs = append(errs, providers.ConfigErrorf(TagSSLMode, c.sslMode,
			"refused: require encrypts without checking the server's certificate, so whoever answers at the address "+
				"(a spoofed DNS name, a machine on the path) would receive the admin's login; use verify-full (the default) "+
				"or verify-ca, and have the operator set %s to the server's CA if the system's roots do not include it", EnvCAFile))
	default:
		errs = append(errs, providers.ConfigErrorf(TagSSLMode, p.Get(TagSSLMode),
			"must be verify-full (the default) or verify-ca (disable only for loopback hosts); prefer and allow may fall back to plain text"))
	}

	c.format = strings.ToLower(strings.TrimSpace(p.Get(TagFormat)))
	switch c.format {
	case "":
		c.format = FormatPassword
	case FormatPassword, FormatConnectionString:
	default:
		errs = append(errs, providers.ConfigErrorf(TagFormat, p.Get(TagFormat), "must be %s or %s", FormatPassword, FormatConnectionString))
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// parseAddress reads host[:port]/dbname or postgres[ql]://host[:port]/dbname into c. The value is
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
	if !strings.HasPrefix(lower, "postgres://") && !strings.HasPrefix(lower, "postgresql://") {
		if strings.Contains(s, "://") {
			return fail(true, "scheme must be postgres:// or postgresql://, or none: host:port/dbname")
		}
		s = "postgres://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url's errors quote the input: say what is wrong without them.
		return fail(false, "not host:port/dbname or postgres://host:port/dbname")
	}
	switch {
	case u.User != nil:
		return fail(false, "must not contain user information (user:password@)")
	case u.RawQuery != "" || u.ForceQuery:
		return fail(false, "must not contain a query (?…); TLS is set with "+TagSSLMode)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fail(false, "must not contain a fragment (#…)")
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
		return fail(true, "no host; use host:port/dbname (Unix sockets are not supported)")
	case strings.Contains(host, ","):
		return fail(true, "names several hosts; name one")
	case !validHost(host):
		return fail(true, "the host is not a DNS name or an IP address (Unix sockets are not supported)")
	}
	db, err := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/"))
	switch {
	case err != nil || db == "":
		return fail(true, "no database; use host:port/dbname")
	case strings.Contains(db, "/"):
		return fail(true, "the path must be one database name: host:port/dbname")
	case !dbName().MatchString(db):
		return fail(true, "the database name must be 1-63 characters: letters, digits, _ . $ -")
	}
	c.host, c.port, c.database = host, port, db
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

func validRoles(names []string) bool {
	for _, n := range names {
		if !roleName().MatchString(n) {
			return false
		}
	}
	return true
}
