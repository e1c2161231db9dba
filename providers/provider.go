// Package providers is the contract between kvrotator's rotation engine and the services that issue
// credentials, and the registry of providers by name.
//
// A provider knows how to create (or regenerate), verify and revoke one kind of credential. It knows
// nothing about Azure Functions, Key Vault or when to rotate: the engine (package rotation) owns when
// and why, a provider owns how. Every credential shape fits the same four calls:
//
//   - Two slots (Azure Storage, Cosmos DB, …): Create regenerates the slot the current version does
//     not use and returns it with its slot as CredentialID; nothing to revoke later.
//   - Create new, revoke old (SendGrid, Entra app secrets, …): Create makes a credential named after
//     Request.IdempotencyKey (so a retry finds it instead of making a second one); the engine revokes
//     the previous CredentialID after the grace period with Revoke.
//   - Alternating users (PostgreSQL, MySQL, Redis ACL): Create sets the password of the user the current
//     version does not hold; CredentialID is that user.
//   - Generated (random values the application owns): Create returns a fresh value.
//
// Providers register a constructor by name with package providers/registry, which builds them with
// their environment (Azure credential, HTTP client); this package knows nothing of Azure, so the engine
// that uses it links no Azure SDK.
package providers

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/vocab"
)

// Value is a credential value (vocab.Value): it prints as [redacted] in logs, errors, %v and JSON.
type Value = vocab.Value

// NewValue wraps s.
func NewValue(s string) Value { return vocab.NewValue(s) }

// Shape is the kind of credential a provider manages; the engine uses it to decide about revocation.
type Shape string

// The credential shapes of DESIGN.md.
const (
	ShapeTwoSlot      Shape = "two-slot"      // regenerate the inactive slot; the old one stays valid, no revocation
	ShapeCreateRevoke Shape = "create-revoke" // create a new credential, revoke the old one after the grace period
	ShapeAlternating  Shape = "alternating"   // set the inactive user's password, flip CredentialId
	ShapeGenerated    Shape = "generated"     // the value is generated; nothing outside the vault to change
)

// Params are the secret's tags, read by name. Tag names are matched case-insensitively, as Azure tag
// names are.
type Params map[string]string

// Get returns the tag's value, "" if absent. When several names match in different letter case
// (which the engine refuses before any provider runs: see Duplicates), the first in byte order wins,
// so every caller reads the same value.
func (p Params) Get(name string) string {
	found, value := "", ""
	for k, v := range p {
		if strings.EqualFold(k, name) && (found == "" || k < found) {
			found, value = k, v
		}
	}
	return value
}

// Duplicates lists, sorted, the tag names set more than once in different letter case. Key Vault keeps
// "ProviderAddress" and "providerAddress" apart, but tag names are case-insensitive to kvrotator: two
// spellings would let one part of kvrotator check one value and another use the other.
func (p Params) Duplicates() []string {
	seen := map[string]int{}
	for k := range p {
		seen[strings.ToLower(k)]++
	}
	var dups []string
	for k, n := range seen {
		if n > 1 {
			dups = append(dups, k)
		}
	}
	sort.Strings(dups)
	return dups
}

// Int returns the tag as an integer within [min, max], def when absent, or a ConfigError.
func (p Params) Int(name string, def, min, max int) (int, error) {
	s := strings.TrimSpace(p.Get(name))
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, ConfigErrorf(name, s, "not a whole number")
	}
	if n < min || n > max {
		return 0, ConfigErrorf(name, s, "must be between %d and %d", min, max)
	}
	return n, nil
}

// SecretReader reads other secrets of the same vault, e.g. a provider's admin credential named by a tag.
type SecretReader interface {
	SecretValue(ctx context.Context, name string) (Value, error)
}

// Request is what the engine tells a provider about the rotation at hand.
type Request struct {
	Vault   string // vault name
	Secret  string // secret name
	Version string // the version being replaced (the current latest)
	// Current is the value of the latest version (two-slot providers compare slots with it; webhooks
	// send it). In Revoke it is the value the latest version holds: a provider that can tell which
	// credential a value belongs to refuses to revoke that one.
	Current Value
	// Retired, in Revoke only, is the value of the version whose credential is being revoked (the
	// version kvrotator replaced); zero when that version can no longer be read. A provider that can
	// tell which credential a value belongs to checks that the id it is asked to revoke is this one.
	Retired Value
	// CredentialID is the credential the latest version holds: the slot, user or key id, as kvrotator
	// recorded it when it wrote that version (else the CredentialId tag).
	CredentialID string
	// HandWritten says kvrotator did not write the version in question (in Create and Verify the latest;
	// in Revoke the retired one), or wrote it with other references: its CredentialID comes from a tag
	// and its value from whoever wrote it, both untrusted. Create must not let them widen what it
	// creates (SendGrid refuses to copy privileged scopes from such a key); Revoke must refuse unless it
	// can prove from Retired that credentialID is the retired value's credential.
	HandWritten bool
	// Address is the ProviderAddress tag: ARM resource id, host, account. The engine has checked it
	// against the operator's bindings when the provider declared it as a Reference.
	Address string
	// Params are all the secret's tags. Every reference a provider follows from them must be one it
	// declared in References: the engine checks those against the operator's bindings first.
	Params Params
	// IdempotencyKey is stable for one source version: deterministic names made from it let a retry find
	// what an interrupted attempt created. Short, lower-case letters, digits and hyphens.
	IdempotencyKey string
	// Secrets reads other secrets of the same vault: only those the provider declared as references
	// of kind RefSecret and the operator bound; any other name is refused without a read.
	Secrets SecretReader
	// Now is the engine's clock.
	Now time.Time
	// Override says a person overrode the timing guards for an emergency (rotation.Request.Override):
	// a provider may then skip the checks that protect the previous version's consumers (PostgreSQL:
	// open sessions of the login it resets).
	Override bool
}

// Credential is a new credential from Create.
type Credential struct {
	Value Value
	// CredentialID is recorded as the new version's CredentialId tag: the slot, user or key id.
	CredentialID string
	// ExpiresAt, when the issuer fixes a lifetime (Entra app secrets), caps the new version's exp.
	ExpiresAt *time.Time
	// ContentType, when set, is the new version's content type (a certificate provider writes
	// application/x-pem-file or application/x-pkcs12, so that consumers load the value by it); empty
	// keeps the current version's.
	ContentType string
}

// Provider creates and verifies one kind of credential. Implementations must be safe for concurrent
// use; errors must never contain a credential value. Providers whose old credentials must be retired
// (ShapeCreateRevoke) implement Revoker too.
type Provider interface {
	// Shape says how the provider's credentials are replaced.
	Shape() Shape
	// Validate checks the provider-specific tags without calling anything; errors are ConfigErrors.
	// The dry run and the plan use it.
	Validate(p Params) error
	// References lists everything outside the secret that the tags p make the provider reach: hosts
	// and URLs, other secrets, ARM resources, applications, database servers and logins. It is called
	// only after Validate accepted p, calls nothing, and must name every reference Create, Verify and
	// Revoke follow: the engine checks them against the operator's bindings before anything is read,
	// contacted or sent, and refuses the rotation if one is not bound.
	References(p Params) []Reference
	// Create issues the new credential. It must be idempotent for one IdempotencyKey: a second call
	// after an interrupted first one finds or replaces what the first made, never leaves two.
	Create(ctx context.Context, req Request) (Credential, error)
	// Verify checks that the credential works (a login, a read-only call). The engine retries it
	// through propagation delays.
	Verify(ctx context.Context, req Request, cred Credential) error
}

// Revoker is the optional capability of providers whose replaced credentials must be retired
// (ShapeCreateRevoke), as database/sql's optional driver interfaces are.
type Revoker interface {
	// Revoke retires the credential identified by credentialID: one that kvrotator itself replaced on
	// this secret (never a tag's word). Revoking one that is already gone succeeds. req.Current is the
	// latest version's value and req.Retired the replaced version's: where the provider can tell which
	// credential a value belongs to, it refuses to revoke the one req.Current holds, and one that is not
	// req.Retired's.
	Revoke(ctx context.Context, req Request, credentialID string) error
}

// RefKind is what a Reference points at. The operator's bindings allow values per kind.
type RefKind string

// The kinds of reference. Each is matched against the patterns of the same name in a binding's allow.
const (
	RefURL         RefKind = "url"         // a base URL the provider calls (and sends credentials to)
	RefSecret      RefKind = "secret"      // another secret of the same vault the provider reads
	RefResource    RefKind = "resource"    // an ARM resource id whose keys the provider changes
	RefApplication RefKind = "application" // an Entra application (object id or application id)
	RefTenant      RefKind = "tenant"      // an Entra tenant (id or domain)
	RefServer      RefKind = "server"      // a database server: host:port/database
	RefLogin       RefKind = "login"       // a database login the provider logs in as or changes
	RefAccount     RefKind = "account"     // an account within an issuer the admin credential reaches (a SendGrid subuser)
	RefScope       RefKind = "scope"       // a privileged permission a new credential would get (SendGrid's api_keys.*)
)

// RefKinds lists every kind, for validating an operator's bindings.
var RefKinds = []RefKind{RefURL, RefSecret, RefResource, RefApplication, RefTenant, RefServer, RefLogin, RefAccount, RefScope}

// Reference is one thing outside the secret that a rotation reaches.
type Reference struct {
	Kind RefKind
	// Tag is the tag the value came from ("" for a Builtin).
	Tag string
	// Value is the normalised value the provider will use (a base URL without a trailing slash, an ARM
	// id as written, host:port/database, …). It is configuration, never a credential.
	Value string
	// Builtin marks the provider's own fixed default (a vendor's public API URL) that no tag chose:
	// it needs no binding.
	Builtin bool
}

// String is "kind value".
func (r Reference) String() string { return string(r.Kind) + " " + strconv.Quote(r.Value) }

// ConfigError is a bad or missing tag: a permanent failure, reported and not retried (vocab.ConfigError).
type ConfigError = vocab.ConfigError

// ConfigErrorf builds a ConfigError.
func ConfigErrorf(tag, value, format string, args ...any) *ConfigError {
	return vocab.ConfigErrorf(tag, value, format, args...)
}

// PermanentError marks a provider failure that retrying cannot fix (forbidden, rejected, not found).
// Errors not marked permanent are treated as transient; an error that knows when to try again
// implements vocab.RetryAfterer (the retry contract, see package vocab).
type PermanentError = vocab.PermanentError

// Permanent wraps err as a PermanentError (nil stays nil).
func Permanent(err error) error { return vocab.Permanent(err) }

// IsPermanent reports whether err is a ConfigError or a PermanentError.
func IsPermanent(err error) bool { return vocab.IsPermanent(err) }

// CheckTags reports the provider-specific tags (those starting with prefix, e.g. "random-") that are
// not among known, and known tags set more than once in different letter case (which value wins would
// be arbitrary). Each problem is a ConfigError; providers call it first in Validate so that typos
// such as random-lenght are caught instead of ignored.
func (p Params) CheckTags(provider, prefix string, known ...string) []error {
	var errs []error
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, prefix) && !containsFold(known, lk) {
			errs = append(errs, ConfigErrorf(k, "", "unknown tag; the %s provider reads only %s", provider, strings.Join(known, ", ")))
		}
	}
	for _, tag := range known {
		n := 0
		for _, k := range keys {
			if strings.EqualFold(k, tag) {
				n++
			}
		}
		if n > 1 {
			errs = append(errs, ConfigErrorf(tag, "", "set %d times in different letter case; tag names are case-insensitive, keep one", n))
		}
	}
	return errs
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// JoinErrors returns nil for no errors, the error itself for one (so that errors.As and messages stay
// simple), and errors.Join for several: how Validate reports every tag problem at once.
func JoinErrors(errs []error) error { return vocab.JoinErrors(errs) }
