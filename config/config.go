// Package config reads kvrotator's app settings (environment variables, as the Functions host and
// local.settings.json provide them), validates them and names every problem. It makes no network call.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/keyvault"
	"github.com/kvrotator/kvrotator/rotation"
)

// App setting names. local.settings.sample.json and the README document each.
const (
	EnvVaults           = "KVROTATOR_VAULTS"                 // vaults to manage: names, URLs or name=URL, comma-separated
	EnvNearExpiryDays   = "KVROTATOR_NEAR_EXPIRY_DAYS"       // Key Vault's SecretNearExpiry lead time (30)
	EnvValidityDays     = "KVROTATOR_DEFAULT_VALIDITY_DAYS"  // validity of new versions without ValidityPeriodDays (90)
	EnvGraceHours       = "KVROTATOR_GRACE_HOURS"            // default grace before revoking a replaced credential (24)
	EnvSweepConcurrency = "KVROTATOR_SWEEP_CONCURRENCY"      // rotations a sweep runs at once per vault (8)
	EnvLogLevel         = "KVROTATOR_LOG_LEVEL"              // debug, info, warn, error (info)
	EnvSweepSchedule    = "KVROTATOR_SWEEP_SCHEDULE"         // NCRONTAB of ScheduledSweep (read by the host via function.json)
	EnvVerifyTimeout    = "KVROTATOR_VERIFY_TIMEOUT_SECONDS" // how long a new credential may take to start working (120)
	EnvLeaseSeconds     = "KVROTATOR_LEASE_SECONDS"          // blob lease per secret, renewed while rotating (30)
	EnvEventTopic       = "KVROTATOR_EVENT_TOPIC_ENDPOINT"   // Event Grid topic for outcome events (optional)
	EnvEventSchema      = "KVROTATOR_EVENT_SCHEMA"           // eventgrid (default) or cloudevents
	EnvEventKeySecret   = "KVROTATOR_EVENT_TOPIC_KEY_SECRET" // vault/secret holding the topic key, instead of the managed identity
	EnvBindings         = "KVROTATOR_BINDINGS"               // the operator's bindings: inline JSON or a file path (see package bindings)
	EnvJournalDir       = "KVROTATOR_JOURNAL_DIR"            // a directory for kvrotator's journal when there is no AzureWebJobsStorage
	EnvPause            = "KVROTATOR_PAUSE"                  // the kill switch: true stops every rotation and revocation
	EnvWindow           = "KVROTATOR_ROTATION_WINDOW"        // default rotation window ("Mon-Fri 02:00-04:00 Europe/Berlin")
	EnvSchedule         = "KVROTATOR_ROTATION_SCHEDULE"      // default schedule ("every 30d", a cron expression)
	EnvMinInterval      = "KVROTATOR_MIN_INTERVAL"           // default least time between rotations ("12h"; none)
	EnvDisableOld       = "KVROTATOR_DISABLE_OLD_VERSIONS"   // disable replaced versions once their value is dead (true)
	EnvPauseFile        = "KVROTATOR_PAUSE_FILE"             // a path: while this file exists, the kill switch is on
	EnvClockURL         = "KVROTATOR_CLOCK_URL"              // development: tell time from the Key Vault emulator's clock (loopback only)
	EnvLogWorkspace     = "KVROTATOR_LOG_WORKSPACE_ID"       // Log Analytics workspace with the vaults' audit logs: usage-aware revocation
	EnvUsageLookback    = "KVROTATOR_USAGE_LOOKBACK_HOURS"   // how far before a rotation a reader counts as a consumer (168)
	EnvMaxGraceHours    = "KVROTATOR_MAX_GRACE_HOURS"        // the longest a revocation waits for readers to move (168)
	EnvLogsEndpoint     = "KVROTATOR_LOGS_ENDPOINT"          // Log Analytics query endpoint (default: the public cloud's; the emulator's in development)
	EnvARMEndpoint      = "KVROTATOR_ARM_ENDPOINT"           // Resource Manager endpoint (default: the public cloud's)
	EnvGitHubSecret     = "KVROTATOR_GITHUB_WEBHOOK_SECRET"  // vault/secret holding the secret-scanning webhook's HMAC secret
	EnvGitHubToken      = "KVROTATOR_GITHUB_TOKEN_SECRET"    // vault/secret holding the GitHub token that reads (and resolves) alerts
	EnvGitHubAPI        = "KVROTATOR_GITHUB_API_URL"         // GitHub's REST API (default https://api.github.com)
	EnvGitHubResolve    = "KVROTATOR_GITHUB_RESOLVE_ALERTS"  // resolve a handled alert as revoked (false)
	EnvDefenderRotate   = "KVROTATOR_DEFENDER_ROTATE"        // rotate what a Defender alert's identities read, not only report it (false)
)

// VaultSetting is one configured vault.
type VaultSetting struct {
	Name string // vault name
	URL  string // https URL of the vault
}

// Settings are kvrotator's app settings.
type Settings struct {
	Vaults           []VaultSetting
	Credential       keyvault.CredentialConfig
	NearExpiryLead   time.Duration
	DefaultValidity  time.Duration
	DefaultGrace     time.Duration
	SweepConcurrency int
	VerifyTimeout    time.Duration
	LeaseDuration    time.Duration
	LogLevel         slog.Level
	// Outcome events: topic endpoint ("" = none), schema, and optionally the vault/secret holding the
	// topic key (else the managed identity publishes).
	EventTopic     string
	EventSchema    string
	EventKeyVault  string
	EventKeySecret string
	// Bindings is the KVROTATOR_BINDINGS setting as given (inline JSON or a path); the application
	// parses it with bindings.Load, which knows the providers.
	Bindings string
	// JournalDir is where the file journal lives ("" = the blob journal beside the leases, or memory).
	JournalDir string
	// Paused is the kill switch as read at start (the app re-reads the setting while it runs).
	Paused bool
	// Window, Schedule and MinInterval are the timing defaults for secrets without their own tags.
	Window      string
	Schedule    string
	MinInterval time.Duration
	// KeepOldVersions is KVROTATOR_DISABLE_OLD_VERSIONS=false: replaced versions stay enabled.
	KeepOldVersions bool
	// PauseFile is a kill switch that needs no restart: while the file exists nothing is rotated or
	// revoked ("" = none).
	PauseFile string
	// LogWorkspace is the Log Analytics workspace id holding the vaults' audit logs ("" = time-based
	// grace only); UsageLookback and MaxGrace tune usage-aware revocation.
	LogWorkspace  string
	UsageLookback time.Duration
	MaxGrace      time.Duration
	// LogsEndpoint and ARMEndpoint override the public cloud's Log Analytics and Resource Manager
	// endpoints ("" = public cloud).
	LogsEndpoint string
	ARMEndpoint  string
	// GitHub secret scanning: where the webhook secret and the API token are kept (vault, secret), the
	// API URL, and whether handled alerts are resolved.
	GitHubSecret, GitHubToken VaultSecret
	GitHubAPI                 string
	GitHubResolve             bool
	// DefenderRotate: a Defender alert's secrets are rotated as leaks (default: reported as a plan).
	DefenderRotate bool
	// ClockURL, for development and tests, is the Key Vault emulator's clock endpoint: the engine tells
	// time from it so that expiry, windows and grace periods follow the emulator's driven clock.
	ClockURL string
}

// ParsePause reads KVROTATOR_PAUSE: true/false (also 1/0, yes/no); empty is false.
func ParsePause(v string) (bool, error) { return parseBool(EnvPause, v, false) }

// parseBool reads a true/false setting (also 1/0, yes/no); empty is def.
func parseBool(name, v string, def bool) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return def, nil
	case "false", "0", "no":
		return false, nil
	case "true", "1", "yes":
		return true, nil
	}
	return def, fmt.Errorf("%s=%q: want true or false", name, v)
}

// FromEnv reads the settings through getenv (os.Getenv in production). All problems are reported
// together, each naming its setting.
func FromEnv(getenv func(string) string) (Settings, error) {
	var errs []error
	s := Settings{Credential: keyvault.CredentialConfigFromEnv(getenv)}
	intSetting := func(name string, def, min, max int) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			errs = append(errs, fmt.Errorf("%s=%q: want a whole number from %d to %d", name, v, min, max))
			return def
		}
		return n
	}
	s.NearExpiryLead = time.Duration(intSetting(EnvNearExpiryDays, 30, 1, 365)) * 24 * time.Hour
	s.DefaultValidity = time.Duration(intSetting(EnvValidityDays, 90, 2, 3650)) * 24 * time.Hour
	s.DefaultGrace = time.Duration(intSetting(EnvGraceHours, 24, 0, 24*90)) * time.Hour
	s.SweepConcurrency = intSetting(EnvSweepConcurrency, 8, 1, 64)
	s.VerifyTimeout = time.Duration(intSetting(EnvVerifyTimeout, 120, 1, 600)) * time.Second
	s.LeaseDuration = time.Duration(intSetting(EnvLeaseSeconds, 30, 15, 60)) * time.Second
	s.UsageLookback = time.Duration(intSetting(EnvUsageLookback, 168, 1, 24*90)) * time.Hour
	s.MaxGrace = time.Duration(intSetting(EnvMaxGraceHours, 168, 0, 24*90)) * time.Hour
	if s.MaxGrace < s.DefaultGrace {
		errs = append(errs, fmt.Errorf("%s (%v) must not be less than %s (%v)", EnvMaxGraceHours, s.MaxGrace, EnvGraceHours, s.DefaultGrace))
	}
	if s.LogWorkspace = strings.TrimSpace(getenv(EnvLogWorkspace)); s.LogWorkspace != "" && !isGUID(s.LogWorkspace) {
		errs = append(errs, fmt.Errorf("%s=%q: want the workspace id, a GUID (the workspace's customerId)", EnvLogWorkspace, s.LogWorkspace))
	}
	for _, e := range []struct {
		name string
		dst  *string
	}{{EnvLogsEndpoint, &s.LogsEndpoint}, {EnvARMEndpoint, &s.ARMEndpoint}} {
		if *e.dst = strings.TrimRight(strings.TrimSpace(getenv(e.name)), "/"); *e.dst != "" {
			if u, err := url.Parse(*e.dst); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want an https URL", e.name, *e.dst))
			}
		}
	}
	if s.DefaultValidity <= s.NearExpiryLead {
		errs = append(errs, fmt.Errorf("%s (%d days) must exceed %s (%d days), or every new version would be due at once",
			EnvValidityDays, int(s.DefaultValidity.Hours()/24), EnvNearExpiryDays, int(s.NearExpiryLead.Hours()/24)))
	}
	if lvl := strings.TrimSpace(getenv(EnvLogLevel)); lvl != "" {
		if err := s.LogLevel.UnmarshalText([]byte(lvl)); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want debug, info, warn or error", EnvLogLevel, lvl))
		}
	}
	s.EventTopic = strings.TrimSpace(getenv(EnvEventTopic))
	s.EventSchema = strings.ToLower(strings.TrimSpace(getenv(EnvEventSchema)))
	if s.EventSchema != "" && s.EventSchema != "eventgrid" && s.EventSchema != "cloudevents" {
		errs = append(errs, fmt.Errorf("%s=%q: want eventgrid or cloudevents", EnvEventSchema, s.EventSchema))
	}
	if ref := strings.TrimSpace(getenv(EnvEventKeySecret)); ref != "" {
		v, sec, ok := strings.Cut(ref, "/")
		if !ok || v == "" || sec == "" {
			errs = append(errs, fmt.Errorf("%s=%q: want <vault>/<secret name>", EnvEventKeySecret, ref))
		}
		s.EventKeyVault, s.EventKeySecret = v, sec
	}
	var err error
	if s.Paused, err = ParsePause(getenv(EnvPause)); err != nil {
		errs = append(errs, err)
	}
	s.Window = strings.TrimSpace(getenv(EnvWindow))
	if s.Window != "" {
		if _, err := rotation.ParseWindow(s.Window); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvWindow, s.Window, err))
		}
	}
	s.Schedule = strings.TrimSpace(getenv(EnvSchedule))
	if s.Schedule != "" {
		if _, err := rotation.ParseSchedule(s.Schedule); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvSchedule, s.Schedule, err))
		}
	}
	if v := strings.TrimSpace(getenv(EnvMinInterval)); v != "" {
		if s.MinInterval, err = rotation.ParseInterval(v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvMinInterval, v, err))
		}
	}
	disableOld, err := parseBool(EnvDisableOld, getenv(EnvDisableOld), true)
	if err != nil {
		errs = append(errs, err)
	}
	s.KeepOldVersions = !disableOld
	if s.PauseFile = strings.TrimSpace(getenv(EnvPauseFile)); s.PauseFile != "" && !filepath.IsAbs(s.PauseFile) {
		errs = append(errs, fmt.Errorf("%s=%q: want an absolute path", EnvPauseFile, s.PauseFile))
	}
	if s.ClockURL = strings.TrimSpace(getenv(EnvClockURL)); s.ClockURL != "" {
		if err := checkLoopbackURL(s.ClockURL); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvClockURL, s.ClockURL, err))
		}
	}
	for _, e := range []struct {
		name string
		dst  *VaultSecret
	}{{EnvGitHubSecret, &s.GitHubSecret}, {EnvGitHubToken, &s.GitHubToken}} {
		if ref := strings.TrimSpace(getenv(e.name)); ref != "" {
			v, sec, ok := strings.Cut(ref, "/")
			if !ok || !kvnames.Vault(v) || !kvnames.Secret(sec) {
				errs = append(errs, fmt.Errorf("%s=%q: want <vault>/<secret name>", e.name, ref))
			}
			*e.dst = VaultSecret{Vault: v, Secret: sec}
		}
	}
	if (s.GitHubSecret.Vault == "") != (s.GitHubToken.Vault == "") {
		errs = append(errs, fmt.Errorf("%s and %s go together: the webhook secret verifies deliveries, the token reads the alert's secret", EnvGitHubSecret, EnvGitHubToken))
	}
	s.GitHubAPI = strings.TrimSpace(getenv(EnvGitHubAPI))
	if s.GitHubResolve, err = parseBool(EnvGitHubResolve, getenv(EnvGitHubResolve), false); err != nil {
		errs = append(errs, err)
	}
	if s.DefenderRotate, err = parseBool(EnvDefenderRotate, getenv(EnvDefenderRotate), false); err != nil {
		errs = append(errs, err)
	}
	s.Bindings = strings.TrimSpace(getenv(EnvBindings))
	s.JournalDir = strings.TrimSpace(getenv(EnvJournalDir))
	vaults, err := ParseVaults(getenv(EnvVaults))
	if err != nil {
		errs = append(errs, err)
	}
	s.Vaults = vaults
	if s.EventKeyVault != "" {
		found := false
		for _, v := range vaults {
			found = found || strings.EqualFold(v.Name, s.EventKeyVault)
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s names vault %q, which is not in %s", EnvEventKeySecret, s.EventKeyVault, EnvVaults))
		}
	}
	for _, e := range []struct {
		name string
		vs   VaultSecret
	}{{EnvGitHubSecret, s.GitHubSecret}, {EnvGitHubToken, s.GitHubToken}} {
		if e.vs.Vault == "" {
			continue
		}
		found := false
		for _, v := range vaults {
			found = found || strings.EqualFold(v.Name, e.vs.Vault)
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s names vault %q, which is not in %s", e.name, e.vs.Vault, EnvVaults))
		}
	}
	return s, errors.Join(errs...)
}

// VaultSecret names a secret of a configured vault ("" Vault: not set).
type VaultSecret struct{ Vault, Secret string }

// isGUID reports whether s looks like a GUID.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if r != '-' {
				return false
			}
		} else if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// checkLoopbackURL accepts an http(s) URL whose host is a loopback address or localhost: the clock
// override is for the emulator on the same machine, never a production clock.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("want an http(s) URL such as https://127.0.0.1:8443/_emulator/clock")
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); (ip == nil || !ip.IsLoopback()) && !strings.EqualFold(host, "localhost") {
		return errors.New("only a loopback address is allowed: the clock override is for the Key Vault emulator in development and tests")
	}
	return nil
}

// ParseVaults reads "myvault, other=https://127.0.0.1:8444, https://third.vault.azure.net".
func ParseVaults(v string) ([]VaultSetting, error) {
	if strings.TrimSpace(v) == "" {
		return nil, fmt.Errorf("%s is not set: name the vaults kvrotator manages (e.g. %s=myvault)", EnvVaults, EnvVaults)
	}
	var out []VaultSetting
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, rawURL, hasURL := strings.Cut(item, "=")
		if !hasURL {
			rawURL = item
			name = ""
		}
		u, err := keyvault.VaultURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: %w", EnvVaults, item, err)
		}
		if name == "" {
			name = firstLabel(u)
		}
		if !kvnames.Vault(name) {
			return nil, fmt.Errorf("%s: %q: %q is not a vault name; for an address without the vault's name in it, write name=URL", EnvVaults, item, name)
		}
		if seen[strings.ToLower(name)] {
			return nil, fmt.Errorf("%s: vault %q is listed twice", EnvVaults, name)
		}
		seen[strings.ToLower(name)] = true
		out = append(out, VaultSetting{Name: name, URL: u})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s names no vault", EnvVaults)
	}
	return out, nil
}

func firstLabel(u string) string {
	host := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	host, _, _ = strings.Cut(host, "/")
	host, _, _ = strings.Cut(host, ":")
	label, _, _ := strings.Cut(host, ".")
	return label
}
