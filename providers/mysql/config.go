package mysql

import (
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/vocab"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagAddress is the Azure rotation samples' tag: the server, host[:port] or host[:port]/dbname, or the
	// same after mysql:// or mariadb://. Never user information or a password.
	TagAddress = vocab.TagAddress
	// TagCredentialID is the login (user name) the current version's password belongs to.
	TagCredentialID = vocab.TagCredentialID
	// TagUsers names the two accounts that take turns: "app_a,app_b" ('app_a'@'%' and 'app_b'@'%'), or
	// with their host part, "app_a@10.0.0.%,app_b@10.0.0.%".
	TagUsers = "mysql-users"
	// TagAdminUser is the user kvrotator logs in as to set passwords.
	TagAdminUser = "mysql-admin-user"
	// TagAdminSecret is the NAME of another secret in the same vault whose value is the admin's password.
	TagAdminSecret = "mysql-admin-secret"
	// TagTLS is how every connection checks the server: verify-full (default) or verify-ca. It chooses
	// how the server is checked, never which CAs are trusted (the operator's KVROTATOR_MYSQL_CA_FILE,
	// else the system's roots). Plain text is never allowed.
	TagTLS = "mysql-tls"
	// TagFormat is what the vault stores: password (default) or url.
	TagFormat = "mysql-format"
)

// The values of mysql-format.
const (
	FormatPassword = "password" // the password alone; the login is the CredentialId tag
	FormatURL      = "url"      // mysql://user:password@host:port/dbname
)

// The values of mysql-tls.
const (
	TLSVerifyFull = "verify-full" // the certificate chains to a trusted CA and names the host (default)
	TLSVerifyCA   = "verify-ca"   // the certificate chains to a trusted CA; any name
)

// DefaultPort is the port when ProviderAddress names none.
const DefaultPort = 3306

// DefaultAccountHost is the host part of an account that mysql-users names without one: 'app_a'@'%'.
const DefaultAccountHost = "%"

const tagPrefix = "mysql-"

var (
	// userName is the user names the provider accepts: letters, digits and _ . $ -, up to 80 characters
	// (MariaDB's limit; MySQL's is 32, which its server enforces). Nothing that needs quoting beyond
	// the single quotes kvrotator always puts around it, and no @ (which separates the host part).
	// User names are case-sensitive.
	userName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,79}$`) })
	// accountHost is the host part of an account: a host name, an IP address, a pattern with % and _,
	// or an address/netmask. No quotes, backslashes, spaces or @.
	accountHost = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9%_.:/-]{1,255}$`) })
	// dbName is the database names the provider accepts.
	dbName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_$-]{1,64}$`) })
	// hostName is a DNS name (IP literals are parsed separately).
	hostName = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)
	})
)

// account is a MySQL account, 'user'@'host'.
type account struct{ user, host string }

// String is user@host, the form bindings allow (kind login) and messages show.
func (a account) String() string { return a.user + "@" + a.host }

// config is the provider's settings for one secret.
type config struct {
	host     string // DNS name or IP literal, without brackets
	port     int
	database string    // "" for none
	accounts []account // the two that take turns
	active   string    // the CredentialId: the user name the current version holds
	admin    string
	adminRef string // the name of the secret holding the admin's password
	tlsMode  string
	format   string
}

// addr is host:port, what the driver dials.
func (c config) addr() string { return net.JoinHostPort(c.host, strconv.Itoa(c.port)) }

// server is host:port, or host:port/dbname with a database: the server reference and what messages show.
func (c config) server() string {
	if c.database == "" {
		return c.addr()
	}
	return c.addr() + "/" + c.database
}

// target is the account whose password Create sets: the one of the two the current version does not hold.
func (c config) target() account {
	if c.accounts[0].user == c.active {
		return c.accounts[1]
	}
	return c.accounts[0]
}

// accountOf returns the account of user name u.
func (c config) accountOf(u string) (account, bool) {
	for _, a := range c.accounts {
		if a.user == u {
			return a, true
		}
	}
	return account{}, false
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
// address stands in for the ProviderAddress tag when that is not among p (a Request's Address).
// credentialID, the engine's record of the login the current version holds, takes precedence over the
// CredentialId tag.
func parseConfig(p providers.Params, address, credentialID string) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagUsers, TagAdminUser, TagAdminSecret, TagTLS, TagFormat)
	var c config

	raw := strings.TrimSpace(p.Get(TagAddress))
	if raw == "" {
		raw = strings.TrimSpace(address)
	}
	if raw == "" {
		errs = append(errs, providers.ConfigErrorf(TagAddress, "", "missing: set it to the server, host:port (or host:port/dbname)"))
	} else if err := c.parseAddress(raw); err != nil {
		errs = append(errs, err)
	}

	rawUsers := strings.TrimSpace(p.Get(TagUsers))
	usersOK := false
	if rawUsers == "" {
		errs = append(errs, providers.ConfigErrorf(TagUsers, "", "missing: set it to the two accounts that take turns, e.g. app_a,app_b (or app_a@10.0.0.%%,app_b@10.0.0.%%)"))
	} else {
		for _, u := range strings.Split(rawUsers, ",") {
			u = strings.TrimSpace(u)
			name, host, hasHost := strings.Cut(u, "@")
			if !hasHost {
				host = DefaultAccountHost
			}
			c.accounts = append(c.accounts, account{user: name, host: host})
		}
		switch {
		case len(c.accounts) != 2:
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers, "names %d accounts; name the two that take turns (the application logs in as either)", len(c.accounts)))
		case !validAccounts(c.accounts):
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers,
				"not two comma-separated accounts, user or user@host (users: 1-80 letters, digits, _ . $ -; hosts: letters, digits, %% _ . : / -)"))
		case c.accounts[0].user == c.accounts[1].user:
			errs = append(errs, providers.ConfigErrorf(TagUsers, rawUsers,
				"names the user %s twice; the two accounts need different user names (an application cannot choose the host part)", c.accounts[0].user))
		default:
			usersOK = true
		}
	}

	// The engine's CredentialID is kvrotator's own record of the login the latest version holds (its
	// journal; the tag only when it has none): it wins over the tag, which a tag-writer may have edited.
	c.active = strings.TrimSpace(credentialID)
	if c.active == "" {
		c.active = strings.TrimSpace(p.Get(TagCredentialID))
	}
	if usersOK {
		switch _, known := c.accountOf(c.active); {
		case c.active == "":
			errs = append(errs, providers.ConfigErrorf(TagCredentialID, "",
				"missing: set it to the user (%s or %s) whose password the current version holds; the other one is rotated", c.accounts[0].user, c.accounts[1].user))
		case !known:
			errs = append(errs, providers.ConfigErrorf(TagCredentialID, c.active,
				"is not one of the users in %s (%s); names are case-sensitive", TagUsers, rawUsers))
		}
	}

	c.admin = strings.TrimSpace(p.Get(TagAdminUser))
	switch {
	case c.admin == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminUser, "", "missing: set it to the user that sets the passwords (it needs CREATE USER and PROCESS)"))
	case !userName().MatchString(c.admin):
		errs = append(errs, providers.ConfigErrorf(TagAdminUser, c.admin, "not a user name (1-80 letters, digits, _ . $ -; no host part)"))
	case usersOK && (c.accounts[0].user == c.admin || c.accounts[1].user == c.admin):
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

	c.tlsMode = strings.ToLower(strings.TrimSpace(p.Get(TagTLS)))
	switch c.tlsMode {
	case "":
		c.tlsMode = TLSVerifyFull
	case TLSVerifyFull, TLSVerifyCA:
	case "skip-verify", "preferred", "required", "require", "true":
		errs = append(errs, providers.ConfigErrorf(TagTLS, c.tlsMode,
			"refused: it encrypts without checking the server's certificate (preferred even falls back to plain text), so whoever "+
				"answers at the address (a spoofed DNS name, a machine on the path) would receive the admin's login and, with "+
				"caching_sha2_password, the password itself; use verify-full (the default) or verify-ca, and have the operator set "+
				"%s to the server's CA if the system's roots do not include it", EnvCAFile))
	case "disable", "disabled", "false", "off":
		errs = append(errs, providers.ConfigErrorf(TagTLS, c.tlsMode,
			"refused, on loopback too: without TLS the driver sends a caching_sha2_password or sha256_password login encrypted to "+
				"whatever RSA key the answering server offers, and a mysql_native_password response any listener can attack offline; "+
				"give the server a certificate (MySQL 8 makes one itself: trust its ca.pem with %s and verify-ca)", EnvCAFile))
	default:
		errs = append(errs, providers.ConfigErrorf(TagTLS, p.Get(TagTLS), "must be %s (the default) or %s", TLSVerifyFull, TLSVerifyCA))
	}

	c.format = strings.ToLower(strings.TrimSpace(p.Get(TagFormat)))
	switch c.format {
	case "":
		c.format = FormatPassword
	case FormatPassword, FormatURL:
	default:
		errs = append(errs, providers.ConfigErrorf(TagFormat, p.Get(TagFormat), "must be %s or %s", FormatPassword, FormatURL))
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// parseAddress reads host[:port][/dbname], optionally after mysql:// or mariadb://, into c. The value
// is repeated in the error only when it cannot hold a credential.
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
	if !strings.HasPrefix(lower, "mysql://") && !strings.HasPrefix(lower, "mariadb://") {
		if strings.Contains(s, "://") {
			return fail(true, "scheme must be mysql:// or mariadb://, or none: host:port or host:port/dbname")
		}
		s = "mysql://" + s
	}
	if strings.Contains(s, "(") {
		return fail(true, "not host:port: use host:port/dbname, not the Go driver's tcp(host:port) form")
	}
	u, err := url.Parse(s)
	if err != nil {
		// url's errors quote the input: say what is wrong without them.
		return fail(false, "not host:port, host:port/dbname or mysql://host:port/dbname")
	}
	switch {
	case u.User != nil:
		return fail(false, "must not contain user information (user:password@)")
	case u.RawQuery != "" || u.ForceQuery:
		return fail(false, "must not contain a query (?…); TLS is set with "+TagTLS)
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
		return fail(true, "no host; use host:port (Unix sockets are not supported)")
	case strings.Contains(host, ","):
		return fail(true, "names several hosts; name one")
	case !validHost(host):
		return fail(true, "the host is not a DNS name or an IP address (Unix sockets are not supported)")
	}
	db, err := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), "/"))
	switch {
	case err != nil:
		return fail(true, "the path must be one database name: host:port/dbname")
	case db == "":
	case strings.Contains(db, "/"):
		return fail(true, "the path must be one database name: host:port/dbname")
	case !dbName().MatchString(db):
		return fail(true, "the database name must be 1-64 characters: letters, digits, _ $ -")
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

func validAccounts(accounts []account) bool {
	for _, a := range accounts {
		if !userName().MatchString(a.user) || !accountHost().MatchString(a.host) {
			return false
		}
	}
	return true
}
