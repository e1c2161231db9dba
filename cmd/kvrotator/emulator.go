//go:build !lean

package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/emulator"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

const emulatorHelp = `Usage: kvrotator emulator [flags]

Runs a local Azure Key Vault (secrets) that the real Azure SDKs talk to over HTTPS, with
managed-identity and client-certificate token endpoints, Azure RBAC roles, Event Grid delivery of
SecretNewVersionCreated / SecretNearExpiry / SecretExpired, Azure's rate limits and scripted faults.
Every vault request is recorded in an audit log (AZKVAuditLogs), which the Log Analytics query API
at https://127.0.0.1:PORT/v1 serves to the azlogs client (a KQL subset). It runs until interrupted.

Address a vault as https://NAME.localhost:PORT (add "127.0.0.1 NAME.localhost" to /etc/hosts for
clients that do not resolve *.localhost), or give it its own port with --vault NAME=ADDR.
Trust the CA written to --ca-cert (SSL_CERT_FILE=<file> for Go on Linux).

Examples:
  kvrotator emulator --vault myvault
  kvrotator emulator --vault app1 --vault app2=127.0.0.1:8444 --data ./kv-data
  kvrotator emulator --vault myvault --subscriber http://localhost:7071/runtime/webhooks/eventgrid?functionName=KeyVaultEvents
  kvrotator emulator --vault myvault --no-auth --addr 127.0.0.1:8080

Flags:
`

type emulatorFlags struct {
	addr, idAddr, data, keyDir, caCert, tenant, authority, resource, idHeader string
	logLevel, logFormat                                                       string
	noAuth, noLimits, purgeProtection                                         bool
	tokenLifetime, nearExpiry, scanInterval, latency, window                  time.Duration
	writeLimit, otherLimit, recoverableDays, auditSize                        int
	vaults, identities, hosts, subscribers, faultSpecs, topics                multiFlag
	trustedHosts, trustedClients, workspaces, logReaders                      multiFlag
}

func (f *emulatorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8443", "shared listener `address`; vaults on it are told apart by host name")
	fs.Var(&f.vaults, "vault", "serve a vault: `NAME` or NAME=ADDR for a dedicated listener (repeatable; default myvault)")
	fs.StringVar(&f.data, "data", "", "keep vaults, CA and keys in `DIR` across restarts (default: in memory)")
	fs.StringVar(&f.keyDir, "key-dir", "", "keep the CA, token-signing and backup keys in `DIR`, so clients keep trusting the emulator across restarts (default: --data)")
	fs.StringVar(&f.caCert, "ca-cert", "", "write the CA certificate clients must trust to `FILE` (default DIR/ca.pem with --data, else kvrotator-emulator-ca.pem in the temp dir)")
	fs.BoolVar(&f.noAuth, "no-auth", false, "dev mode: plain HTTP, no authentication (clients pass a nil credential)")
	fs.StringVar(&f.tenant, "tenant", "", "tenant `ID` in the challenge and served by the token endpoint (default $AZURE_TENANT_ID or "+emulator.DefaultTenantID+")")
	fs.StringVar(&f.authority, "authority", "https://login.microsoftonline.com", "authority `URL` named in the challenge")
	fs.StringVar(&f.resource, "resource", "auto", "challenge resource: auto (https:// + host minus first label), azure (https://vault.azure.net) or a `URL`")
	fs.StringVar(&f.idAddr, "identity-addr", "127.0.0.1:8081", "plain-HTTP `address` of the managed-identity endpoint (IDENTITY_ENDPOINT), as App Service serves it")
	fs.StringVar(&f.idHeader, "identity-header", "", "`SECRET` the managed-identity endpoint expects (clients set IDENTITY_HEADER to it; default: a random value for each run, printed in the banner)")
	fs.Var(&f.trustedHosts, "trusted-host", "accept `HOST` (a name, an IP address or *.example.com) in the Host header of the admin API and the managed-identity endpoint, besides loopback addresses, localhost and *.localhost (repeatable)")
	fs.Var(&f.trustedClients, "trusted-client", "let callers from `ADDR` (an IP address, a CIDR prefix, or * for any) use the admin API and the managed-identity endpoint, besides loopback (repeatable)")
	fs.Var(&f.identities, "identity", "an identity: `name=N,client-id=ID,object-id=ID,(system|managed|cert=FILE.pem),role=ROLE@VAULT,...` (repeatable; ROLE is reader, secrets-user, secrets-officer or administrator; VAULT may be *). Default: a system-assigned managed identity, secrets-officer on every vault")
	fs.DurationVar(&f.tokenLifetime, "token-lifetime", time.Hour, "lifetime of issued access tokens")
	fs.Var(&f.hosts, "host", "extra `NAME` for the TLS certificate (repeatable; 127.0.0.1, localhost and *.localhost are always included)")
	fs.Var(&f.subscribers, "subscriber", "deliver vault events to `URL[,schema=cloudevents][,types=T1|T2]` (repeatable)")
	fs.Var(&f.topics, "topic", "serve an Event Grid topic for outcome events: `NAME[:KEY]` at https://127.0.0.1:PORT/topics/NAME/api/events (repeatable; the key is optional, emulator tokens are always accepted)")
	fs.DurationVar(&f.nearExpiry, "near-expiry", 30*24*time.Hour, "SecretNearExpiry lead time")
	fs.DurationVar(&f.scanInterval, "scan-interval", time.Second, "how often expiry events are checked")
	fs.IntVar(&f.writeLimit, "write-limit", 300, "secret writes allowed per vault per --limit-window (Azure: 300)")
	fs.IntVar(&f.otherLimit, "other-limit", 4000, "other operations allowed per vault per --limit-window (Azure: 4000)")
	fs.DurationVar(&f.window, "limit-window", 10*time.Second, "rate-limit window")
	fs.BoolVar(&f.noLimits, "no-limits", false, "turn rate limits off")
	fs.DurationVar(&f.latency, "latency", 0, "delay added to every vault request")
	fs.Var(&f.faultSpecs, "fault", "script a failure: `op=SetSecret,status=503,count=2[,vault=V][,secret=S][,retry-after=1s][,drop=true|after][,delay=100ms][,code=C]` (repeatable; drop=true closes the connection before the call is applied, drop=after applies it and then closes the connection)")
	fs.Var(&f.workspaces, "workspace", "serve the Log Analytics workspace `GUID` (repeatable; default "+emulator.DefaultWorkspaceID+"); every workspace holds the audit records of every vault")
	fs.Var(&f.logReaders, "log-reader", "let the identity with this client or object `ID` query the logs (repeatable; default: every identity)")
	fs.IntVar(&f.auditSize, "audit-size", emulator.DefaultAuditLogSize, "audit records kept, the oldest dropped first (negative: no audit log); with --data they survive restarts")
	fs.IntVar(&f.recoverableDays, "recoverable-days", 90, "soft-delete retention in days (7-90)")
	fs.BoolVar(&f.purgeProtection, "purge-protection", false, "forbid purging deleted secrets")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `format`: text or json (to stderr)")
}

func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvrotator emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f emulatorFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), emulatorHelp)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "kvrotator emulator: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := f.config(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "kvrotator emulator: %v\n", err)
		return 2
	}
	srv, err := emulator.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "kvrotator emulator: %v\n", err)
		return 1
	}
	for _, spec := range f.faultSpecs {
		rule, err := emulator.ParseFaultRule(spec)
		if err == nil {
			err = srv.AddFault(rule)
		}
		if err != nil {
			fmt.Fprintf(stderr, "kvrotator emulator: --fault %q: %v\n", spec, err)
			return 2
		}
	}
	if err := srv.Start(); err != nil {
		fmt.Fprintf(stderr, "kvrotator emulator: %v\n", err)
		return 1
	}
	printBanner(stdout, srv, cfg)
	<-ctx.Done()
	fmt.Fprintln(stdout, "kvrotator emulator: stopping")
	if err := srv.Close(); err != nil {
		fmt.Fprintf(stderr, "kvrotator emulator: %v\n", err)
		return 1
	}
	return 0
}

func (f *emulatorFlags) config(stderr io.Writer) (emulator.Config, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return emulator.Config{}, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch f.logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return emulator.Config{}, fmt.Errorf("--log-format must be text or json, not %q", f.logFormat)
	}
	cfg := emulator.Config{
		Addr: f.addr, DataDir: f.data, KeyDir: f.keyDir, CACertFile: f.caCert, NoAuth: f.noAuth, TenantID: f.tenant,
		Authority: f.authority, Resource: f.resource, IdentityAddr: f.idAddr, IdentityHeader: f.idHeader, TokenLifetime: f.tokenLifetime,
		ExtraHosts: f.hosts, TrustedHosts: f.trustedHosts, TrustedClients: f.trustedClients, NearExpiryLead: f.nearExpiry, ScanInterval: f.scanInterval, Latency: f.latency,
		DisableLimits: f.noLimits, Logger: slog.New(h), Workspaces: f.workspaces, LogReaders: f.logReaders, AuditLogSize: f.auditSize,
		Limits: emulator.Limits{Writes: f.writeLimit, Others: f.otherLimit, Window: f.window},
	}
	if cfg.CACertFile == "" && !cfg.NoAuth {
		if cfg.DataDir != "" {
			cfg.CACertFile = filepath.Join(cfg.DataDir, "ca.pem")
		} else {
			cfg.CACertFile = filepath.Join(os.TempDir(), "kvrotator-emulator-ca.pem")
		}
	}
	vaults := f.vaults
	if len(vaults) == 0 && f.data == "" {
		vaults = multiFlag{"myvault"}
	}
	for _, v := range vaults {
		name, addr, _ := strings.Cut(v, "=")
		cfg.Vaults = append(cfg.Vaults, emulator.VaultConfig{Name: name, Addr: addr, RecoverableDays: f.recoverableDays, PurgeProtection: f.purgeProtection})
	}
	for _, spec := range f.identities {
		id, err := parseIdentity(spec)
		if err != nil {
			return cfg, fmt.Errorf("--identity %q: %w", spec, err)
		}
		cfg.Identities = append(cfg.Identities, id)
	}
	for _, spec := range f.topics {
		name, key, _ := strings.Cut(spec, ":")
		cfg.Topics = append(cfg.Topics, emulator.TopicConfig{Name: name, Key: key})
	}
	for i, spec := range f.subscribers {
		sub, err := parseSubscriber(spec, i)
		if err != nil {
			return cfg, fmt.Errorf("--subscriber %q: %w", spec, err)
		}
		cfg.Subscriptions = append(cfg.Subscriptions, sub)
	}
	return cfg, nil
}

// parseIdentity reads name=N,client-id=ID,object-id=ID,(system|managed|cert=FILE),role=ROLE@VAULT,...
func parseIdentity(spec string) (emulator.IdentityConfig, error) {
	var id emulator.IdentityConfig
	for _, part := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "name":
			id.Name = v
		case "client-id":
			id.ClientID = v
		case "object-id":
			id.ObjectID = v
		case "resource-id":
			id.ResourceID = v
		case "system":
			id.System, id.Managed = true, true
		case "managed":
			id.Managed = true
		case "cert":
			certs, err := readCertificates(v)
			if err != nil {
				return id, err
			}
			id.Certificates = append(id.Certificates, certs...)
		case "role":
			roleName, vault, ok := strings.Cut(v, "@")
			if !ok {
				vault = "*"
			}
			role, err := emulator.ParseRole(roleName)
			if err != nil {
				return id, err
			}
			id.Roles = append(id.Roles, emulator.RoleAssignment{Role: role, Vault: vault})
		default:
			return id, fmt.Errorf("unknown key %q (want name, client-id, object-id, resource-id, system, managed, cert, role)", k)
		}
	}
	if id.Name == "" {
		id.Name = id.ClientID
	}
	return id, nil
}

func readCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return certs, nil
}

// parseSubscriber reads URL[,schema=cloudevents|eventgrid][,types=T1|T2].
func parseSubscriber(spec string, index int) (emulator.Subscription, error) {
	parts := strings.Split(spec, ",")
	sub := emulator.Subscription{Name: fmt.Sprintf("subscriber-%d", index+1), URL: parts[0], Schema: emulator.EventGridSchema}
	if !strings.HasPrefix(sub.URL, "http://") && !strings.HasPrefix(sub.URL, "https://") {
		return sub, errors.New("the URL must start with http:// or https://")
	}
	for _, p := range parts[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "schema":
			switch v {
			case "eventgrid":
				sub.Schema = emulator.EventGridSchema
			case "cloudevents":
				sub.Schema = emulator.CloudEventsSchema
			default:
				return sub, fmt.Errorf("schema must be eventgrid or cloudevents, not %q", v)
			}
		case "types":
			for _, t := range strings.Split(v, "|") {
				if !strings.Contains(t, ".") {
					t = "Microsoft.KeyVault." + t
				}
				sub.EventTypes = append(sub.EventTypes, t)
			}
		case "name":
			sub.Name = v
		default:
			return sub, fmt.Errorf("unknown option %q (want schema, types, name)", k)
		}
	}
	return sub, nil
}

func printBanner(w io.Writer, srv *emulator.Server, cfg emulator.Config) {
	fmt.Fprintf(w, "kvrotator Key Vault emulator listening on %s\n", srv.URL())
	for _, name := range srv.Vaults() {
		line := "  vault " + name + ": " + srv.VaultURL(name)
		if u := srv.VaultAddrURL(name); u != "" {
			line += " and " + u
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "Log Analytics query endpoint (azlogs, audience %s): %s, workspace %s, table AZKVAuditLogs\n", emulator.LogsAudience, srv.LogsEndpoint(), srv.WorkspaceID())
	if cfg.NoAuth {
		fmt.Fprintln(w, "no-auth mode: plain HTTP, pass a nil credential to azsecrets.NewClient")
		return
	}
	for _, t := range cfg.Topics {
		fmt.Fprintf(w, "  Event Grid topic %s: %s\n", t.Name, srv.TopicEndpoint(t.Name))
	}
	fmt.Fprintf(w, "CA certificate: %s\n", cfg.CACertFile)
	fmt.Fprintln(w, "Environment for the Azure SDK (managed identity):")
	fmt.Fprintf(w, "  export SSL_CERT_FILE=%s\n", cfg.CACertFile)
	fmt.Fprintf(w, "  export IDENTITY_ENDPOINT=%s IDENTITY_HEADER=%s\n", srv.IdentityEndpoint(), srv.IdentityHeader())
	fmt.Fprintf(w, "Service principals: authority host %s (set DisableInstanceDiscovery), tenant %s\n", srv.AuthorityHost(), srv.TenantID())
	fmt.Fprintf(w, "Clients that do not resolve *.localhost need a hosts line: 127.0.0.1 %s\n", hostsLine(srv))
}

func hostsLine(srv *emulator.Server) string {
	var names []string
	for _, n := range srv.Vaults() {
		names = append(names, strings.ToLower(n)+".localhost")
	}
	return strings.Join(names, " ")
}
