package emulator

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"github.com/kvrotator/kvrotator/internal/kvnames"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/emulator/internal/delivery"
	"github.com/kvrotator/kvrotator/emulator/internal/faults"
)

// Config describes an emulator: its vaults, how clients authenticate, where events go and which limits apply.
// The zero value plus at least one vault is a working HTTPS emulator with authentication on.
type Config struct {
	// Addr is the shared HTTPS listener; vaults on it are told apart by the first label of the Host
	// (https://myvault.localhost:8443). Default "127.0.0.1:8443"; use "127.0.0.1:0" in tests.
	Addr string
	// Vaults to serve. Vaults found in DataDir are served too.
	Vaults []VaultConfig

	// NoAuth serves plain HTTP without authentication (clients pass a nil credential). Dev mode only.
	NoAuth bool
	// TenantID is the tenant named in the challenge and served by the identity endpoints.
	// Default: $AZURE_TENANT_ID, else DefaultTenantID.
	TenantID string
	// Authority is the authority URL in the challenge (default https://login.microsoftonline.com).
	// Only the tenant is read from it by the SDK; a local authority host is passed to credentials directly.
	Authority string
	// Resource is the resource named in the challenge: "auto" (default: https:// + host minus its first
	// label, so the SDK's resource verification passes on *.localhost), "azure" (https://vault.azure.net)
	// or a literal URL.
	Resource string
	// Identities that can get tokens, with their role assignments. Default: one system-assigned managed
	// identity with Key Vault Secrets Officer on every vault.
	Identities []IdentityConfig
	// IdentityAddr is the plain-HTTP listener of the managed-identity endpoint, as App Service serves it
	// (http://127.0.0.1:PORT/msi/token), so credentials need no CA to fetch tokens. Default "127.0.0.1:0".
	IdentityAddr string
	// IdentityHeader is the secret the managed-identity endpoint expects in X-IDENTITY-HEADER
	// (what App Service puts in IDENTITY_HEADER). Default: a random value made for each run
	// (crypto/rand); Server.IdentityHeader returns it.
	IdentityHeader string
	// TrustedHosts are Host header values the development endpoints (the admin API /_emulator/... and
	// the managed-identity endpoint) accept besides loopback addresses, "localhost" and "*.localhost":
	// host names or IP addresses, "*.example.com" wildcards, ports ignored. Requests naming another
	// host, as a web page using DNS rebinding does, get 403.
	TrustedHosts []string
	// TrustedClients are caller addresses the development endpoints accept besides loopback: IP
	// addresses or CIDR prefixes ("10.0.0.0/8"); "*" accepts any caller. Others get 403.
	TrustedClients []string
	// TokenLifetime of issued access tokens (default 1h).
	TokenLifetime time.Duration
	// ExtraHosts are added to the TLS certificate's names (127.0.0.1, ::1, localhost, *.localhost and
	// NAME.localhost for every vault served always are).
	ExtraHosts []string

	// DataDir keeps vaults, the CA and the signing keys across restarts. Empty: memory only.
	DataDir string
	// KeyDir keeps the CA, the token-signing key and the backup key, so that clients keep trusting the
	// emulator and backups stay restorable across restarts. Default: DataDir (empty: fresh keys each run).
	KeyDir string
	// CACertFile, when set, receives the CA certificate (PEM) that clients must trust.
	CACertFile string

	// Events: subscriptions receiving the vaults' system-topic events, and the near-expiry lead time
	// (default 30 days, as Key Vault).
	Subscriptions  []delivery.Subscription
	NearExpiryLead time.Duration
	// Topics are Event Grid custom topics that clients publish to, served on the shared listener at
	// /topics/<name>/api/events (see TopicConfig and Server.TopicEndpoint).
	Topics []TopicConfig
	// ScanInterval is how often expiry events are checked against the clock (default 1s).
	ScanInterval time.Duration
	// SubscriptionID and ResourceGroup make up the vaults' ARM ids (the events' topic).
	SubscriptionID string
	ResourceGroup  string

	// Limits applied per vault unless the vault sets its own. Zero fields take Azure's defaults
	// (300 secret writes and 4,000 other operations per 10 s). DisableLimits turns them off.
	Limits        faults.Limits
	DisableLimits bool
	// Latency is added to every vault request (per-vault Latency adds to it).
	Latency time.Duration

	// AuditLogSize is how many audit records (Server.AuditLog, the AZKVAuditLogs table of the query
	// endpoint) are kept, the oldest dropped first: 0 means DefaultAuditLogSize (100,000), negative
	// turns the audit log off. With DataDir they are kept in DataDir/audit.jsonl across restarts.
	AuditLogSize int

	// Workspaces are the Log Analytics workspace ids (GUIDs) the query endpoint (Server.LogsEndpoint)
	// serves; each holds the audit records of every vault. Default: DefaultWorkspaceID.
	Workspaces []string
	// LogReaders are the client ids or object ids of the identities allowed to query the logs; others
	// get 403 InsufficientAccessError. Empty: every identity with a token from this emulator.
	LogReaders []string

	// Logger receives one line per request (never a value or token). Nil: discard.
	Logger *slog.Logger
}

// VaultConfig is one emulated vault.
type VaultConfig struct {
	// Name is the vault name: 3–24 letters, digits and hyphens, starting with a letter.
	Name string
	// Addr, when set, is a dedicated listener for this vault (e.g. "127.0.0.1:8444"), so clients can
	// reach it as https://127.0.0.1:8444 without a host name.
	Addr string
	// RecoverableDays is the soft-delete retention (7–90, default 90).
	RecoverableDays int
	// PurgeProtection forbids purging deleted secrets (recovery level "Recoverable").
	PurgeProtection bool
	// Limits overrides Config.Limits for this vault.
	Limits *faults.Limits
	// Latency is added to every request to this vault.
	Latency time.Duration
}

// IdentityConfig is an identity the emulator issues tokens to, and what it may do.
type IdentityConfig struct {
	Name     string
	ClientID string
	ObjectID string
	// Managed identities get tokens from the managed-identity endpoint; System marks the system-assigned
	// one (used when a request names no client id).
	Managed bool
	System  bool
	// ResourceID of a user-assigned managed identity (optional, for mi_res_id).
	ResourceID string
	// Certificates of a service principal (client-certificate credential); PEM files are read by the CLI.
	Certificates []*x509.Certificate
	// Roles assigned to this identity.
	Roles []RoleAssignment
}

// RoleAssignment grants a built-in role on a vault ("*" for every vault).
type RoleAssignment struct {
	Role  Role
	Vault string
}

// DefaultTenantID is the tenant used when neither Config.TenantID nor AZURE_TENANT_ID is set.
const DefaultTenantID = "72f988bf-0000-4000-8000-00000000cafe"

// DefaultSubscriptionID is the subscription id in the vaults' ARM ids unless configured.
const DefaultSubscriptionID = "00000000-0000-0000-0000-000000000000"

// validVaultName reports whether name is a valid Key Vault name.
func validVaultName(name string) bool {
	return kvnames.Vault(name)
}

// withDefaults returns a copy of c with defaults filled in, or an error naming what is wrong.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8443"
	}
	if c.KeyDir == "" {
		c.KeyDir = c.DataDir
	}
	if c.TenantID == "" {
		c.TenantID = os.Getenv("AZURE_TENANT_ID")
	}
	if c.TenantID == "" {
		c.TenantID = DefaultTenantID
	}
	if c.Authority == "" {
		c.Authority = "https://login.microsoftonline.com"
	}
	c.Authority = strings.TrimRight(c.Authority, "/")
	if c.Resource == "" {
		c.Resource = "auto"
	}
	if c.IdentityAddr == "" {
		c.IdentityAddr = "127.0.0.1:0"
	}
	if c.IdentityHeader == "" {
		c.IdentityHeader = rand.Text() // 26 base32 characters, 128 bits
	}
	ws, err := workspaceIDs(c.Workspaces)
	if err != nil {
		return c, err
	}
	c.Workspaces = ws
	if c.AuditLogSize == 0 {
		c.AuditLogSize = DefaultAuditLogSize
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = time.Hour
	}
	if c.NearExpiryLead <= 0 {
		c.NearExpiryLead = 30 * 24 * time.Hour
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = time.Second
	}
	if c.SubscriptionID == "" {
		c.SubscriptionID = DefaultSubscriptionID
	}
	if c.ResourceGroup == "" {
		c.ResourceGroup = "kvrotator-emulator"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Identities) == 0 {
		c.Identities = []IdentityConfig{DefaultIdentity()}
	}
	seen := map[string]bool{}
	vaults := make([]VaultConfig, 0, len(c.Vaults))
	for _, v := range c.Vaults {
		if !validVaultName(v.Name) {
			return c, fmt.Errorf("vault name %q is invalid: use 3-24 letters, digits and hyphens, starting with a letter, ending with a letter or digit, no consecutive hyphens", v.Name)
		}
		key := strings.ToLower(v.Name)
		if seen[key] {
			return c, fmt.Errorf("vault %q is configured twice", v.Name)
		}
		seen[key] = true
		if v.RecoverableDays == 0 {
			v.RecoverableDays = 90
		}
		if v.RecoverableDays < 7 || v.RecoverableDays > 90 {
			return c, fmt.Errorf("vault %q: recoverable days %d outside 7-90", v.Name, v.RecoverableDays)
		}
		vaults = append(vaults, v)
	}
	c.Vaults = vaults
	for i, id := range c.Identities {
		if id.ClientID == "" || id.ObjectID == "" {
			return c, fmt.Errorf("identity %q needs a client id and an object id", id.Name)
		}
		if !id.Managed && len(id.Certificates) == 0 {
			return c, fmt.Errorf("identity %q is neither a managed identity nor a service principal with a certificate", id.Name)
		}
		for _, ra := range id.Roles {
			if _, ok := roleActions[ra.Role]; !ok {
				return c, fmt.Errorf("identity %q: unknown role %q", id.Name, ra.Role)
			}
		}
		c.Identities[i] = id
	}
	return c, nil
}

// DefaultIdentity is the identity used when none is configured: the system-assigned managed identity,
// Key Vault Secrets Officer on every vault.
func DefaultIdentity() IdentityConfig {
	return IdentityConfig{
		Name:     "system",
		ClientID: "11111111-1111-4111-8111-111111111111",
		ObjectID: "22222222-2222-4222-8222-222222222222",
		Managed:  true,
		System:   true,
		Roles:    []RoleAssignment{{Role: RoleSecretsOfficer, Vault: "*"}},
	}
}
