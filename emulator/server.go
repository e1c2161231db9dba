package emulator

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/emulator/internal/authn"
	"github.com/kvrotator/kvrotator/emulator/internal/delivery"
	"github.com/kvrotator/kvrotator/emulator/internal/faults"
)

// Aliases so that code outside this package can configure subscriptions, limits and faults.
type (
	// Subscription is an Event Grid subscription on the vaults' system topics.
	Subscription = delivery.Subscription
	// Limits are per-vault rate limits.
	Limits = faults.Limits
	// FaultRule scripts failures: the next Count matching calls fail with Status, a connection dropped
	// before the call is applied (Drop), or the call applied and its answer dropped (DropAfter).
	FaultRule = faults.Rule
	// FaultState is a scripted fault with its remaining count.
	FaultState = faults.RuleState
	// EventSchema selects the Event Grid or CloudEvents 1.0 schema for a subscription.
	EventSchema = delivery.Schema
)

// The event schemas a subscription can use.
const (
	EventGridSchema   = delivery.EventGridSchema
	CloudEventsSchema = delivery.CloudEventsSchema
)

// ParseFaultRule parses the CLI form of a fault rule, e.g. "op=SetSecret,status=503,count=2",
// "op=GetSecret,drop=true" (no answer, nothing applied) or "op=SetSecret,drop=after" (applied, no answer).
func ParseFaultRule(spec string) (FaultRule, error) { return faults.ParseRule(spec) }

// Server is a running (or ready to run) Key Vault emulator.
type Server struct {
	cfg   Config
	clock *Clock
	log   *slog.Logger

	mu     sync.RWMutex
	vaults map[string]*vault // key: lower-case vault name

	ca         *authn.CA
	issuer     *authn.Issuer
	identities map[string]*IdentityConfig // key: object id
	idHandler  http.Handler
	backupKey  []byte

	guard      *devGuard
	audit      *auditLog
	dispatcher *delivery.Dispatcher
	script     faults.Script
	limiters   map[string]*faults.Limiter
	topics     map[string]*topic // Event Grid topics (topic.go), key: lower-case name; fixed after New

	started     bool
	mainURL     string
	mainPort    string
	identityURL string
	vaultURLs   map[string]string // dedicated listener URL per vault key
	servers     []*http.Server
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

// New prepares an emulator from cfg: it validates the configuration, loads DataDir if set, and creates
// (or loads) the CA and the token-signing key. It opens no port; Start does.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		clock:      &Clock{},
		log:        cfg.Logger,
		vaults:     map[string]*vault{},
		identities: map[string]*IdentityConfig{},
		limiters:   map[string]*faults.Limiter{},
		vaultURLs:  map[string]string{},
	}
	if s.guard, err = newDevGuard(cfg.TrustedHosts, cfg.TrustedClients); err != nil {
		return nil, err
	}
	if err := s.loadData(); err != nil {
		return nil, err
	}
	if s.audit, err = newAuditLog(cfg.AuditLogSize, cfg.DataDir, s.log.Error); err != nil {
		return nil, fmt.Errorf("data directory: %s: %w", auditFile, err)
	}
	for _, vc := range cfg.Vaults {
		s.addVault(vc, nil)
	}
	if len(s.vaults) == 0 {
		return nil, errors.New("no vault configured: name at least one vault")
	}
	if s.topics, err = newTopics(cfg.Topics); err != nil {
		return nil, err
	}
	for i := range cfg.Identities {
		id := &cfg.Identities[i]
		s.identities[strings.ToLower(id.ObjectID)] = id
	}
	if !cfg.NoAuth {
		if s.ca, err = authn.LoadOrCreateCA(cfg.KeyDir); err != nil {
			return nil, fmt.Errorf("certificate authority: %w", err)
		}
		if s.issuer, err = authn.LoadOrCreateIssuer(cfg.KeyDir); err != nil {
			return nil, fmt.Errorf("token signing key: %w", err)
		}
		s.idHandler = (&authn.Endpoints{
			Issuer:         s.issuer,
			Directory:      s,
			TenantID:       cfg.TenantID,
			IdentityHeader: cfg.IdentityHeader,
			TokenLifetime:  cfg.TokenLifetime,
			Log:            cfg.Logger,
		}).Handler()
	}
	if s.backupKey, err = loadOrCreateKey(cfg.KeyDir, "backup.key"); err != nil {
		return nil, fmt.Errorf("backup key: %w", err)
	}
	return s, nil
}

// addVault registers a vault with its state (nil: empty).
func (s *Server) addVault(vc VaultConfig, st *vaultState) {
	key := strings.ToLower(vc.Name)
	if existing := s.vaults[key]; existing != nil {
		existing.cfg = vc
		return
	}
	if st == nil {
		st = newVaultState(vc.Name)
	}
	s.vaults[key] = &vault{name: vc.Name, state: st, cfg: vc}
	limits := s.cfg.Limits
	if vc.Limits != nil {
		limits = *vc.Limits
	}
	if !s.cfg.DisableLimits {
		s.limiters[key] = faults.NewLimiter(limits)
	}
}

// Identities implements authn.Directory.
func (s *Server) Identities() []authn.Identity {
	out := make([]authn.Identity, 0, len(s.cfg.Identities))
	for _, id := range s.cfg.Identities {
		out = append(out, authn.Identity{
			Name: id.Name, ClientID: id.ClientID, ObjectID: id.ObjectID, Managed: id.Managed, System: id.System,
			ResourceID: id.ResourceID, Certificates: id.Certificates,
		})
	}
	return out
}

// Start opens the listeners, writes the CA certificate file and starts event delivery and the expiry
// scanner. It returns once the emulator accepts connections.
func (s *Server) Start() error {
	if s.started {
		return errors.New("emulator already started")
	}
	var listeners []net.Listener
	closeAll := func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}
	// The CA file exists before any port accepts, so a client that sees the port can trust it.
	if s.cfg.CACertFile != "" && s.ca != nil {
		if err := s.ca.WritePEM(s.cfg.CACertFile); err != nil {
			return fmt.Errorf("write CA certificate: %w", err)
		}
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	listeners = append(listeners, ln)
	_, s.mainPort, _ = net.SplitHostPort(ln.Addr().String())
	s.mainURL = s.scheme() + "://" + hostForURL(ln.Addr())
	handlers := []http.Handler{s.handler(nil)}
	plain := map[int]bool{} // listeners served without TLS
	if s.idHandler != nil {
		il, err := net.Listen("tcp", s.cfg.IdentityAddr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen on %s for the managed-identity endpoint: %w", s.cfg.IdentityAddr, err)
		}
		plain[len(listeners)] = true
		listeners = append(listeners, il)
		s.identityURL = "http://" + hostForURL(il.Addr()) + "/msi/token"
		handlers = append(handlers, s.guarded(s.idHandler))
	}
	for _, v := range s.vaultList() {
		if v.cfg.Addr == "" {
			continue
		}
		vl, err := net.Listen("tcp", v.cfg.Addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("listen on %s for vault %s: %w", v.cfg.Addr, v.name, err)
		}
		listeners = append(listeners, vl)
		s.vaultURLs[strings.ToLower(v.name)] = s.scheme() + "://" + hostForURL(vl.Addr())
		handlers = append(handlers, s.handler(v))
	}
	// Every vault by name, besides *.localhost: some clients (Node.js) refuse a wildcard directly
	// under "localhost".
	certHosts := slices.Clone(s.cfg.ExtraHosts)
	for _, v := range s.vaultList() {
		certHosts = append(certHosts, strings.ToLower(v.name)+".localhost")
	}
	var tlsConfigErr error
	for i := range listeners {
		srv := &http.Server{
			Handler:           handlers[i],
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			// Handshake failures from clients that do not trust the CA are expected; keep them quiet.
			ErrorLog: log.New(io.Discard, "", 0),
		}
		if s.ca != nil && !plain[i] {
			tc, err := s.ca.ServerTLSConfig(certHosts...)
			if err != nil {
				tlsConfigErr = err
				break
			}
			srv.TLSConfig = tc
		}
		s.servers = append(s.servers, srv)
	}
	if tlsConfigErr != nil {
		closeAll()
		return fmt.Errorf("TLS configuration: %w", tlsConfigErr)
	}
	if len(s.cfg.Subscriptions) > 0 {
		s.dispatcher = delivery.NewDispatcher(s.cfg.Subscriptions, s.log)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for i, srv := range s.servers {
		l := listeners[i]
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var err error
			if srv.TLSConfig != nil {
				err = srv.ServeTLS(l, "", "")
			} else {
				err = srv.Serve(l)
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("emulator listener stopped", "addr", l.Addr().String(), "error", err)
			}
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.scanLoop(ctx)
	}()
	s.started = true
	s.scan()
	return nil
}

// Close stops the listeners, the scanner and event delivery (undelivered events are dropped).
func (s *Server) Close() error {
	if !s.started {
		return nil
	}
	s.cancel()
	// A short grace for requests in flight; HTTP/2 clients keep idle connections open until GOAWAY
	// is acknowledged, which a development emulator need not wait for.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var errs []error
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, srv.Close())
		}
	}
	s.wg.Wait()
	if s.dispatcher != nil {
		s.dispatcher.Close()
	}
	s.audit.close()
	s.started = false
	return errors.Join(errs...)
}

func (s *Server) scheme() string {
	if s.cfg.NoAuth {
		return "http"
	}
	return "https"
}

func hostForURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if tcp.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", tcp.Port)
	}
	return tcp.String()
}

// URL is the shared listener's base URL (https://127.0.0.1:PORT): the identity endpoints and the
// admin API live there.
func (s *Server) URL() string { return s.mainURL }

// VaultURL is the URL clients use for a vault: https://NAME.localhost:PORT on the shared listener.
// The name's first label selects the vault; the SDK's challenge-resource check passes on it.
func (s *Server) VaultURL(name string) string {
	if s.mainURL == "" {
		return s.scheme() + "://" + strings.ToLower(name) + ".localhost"
	}
	return s.scheme() + "://" + strings.ToLower(name) + ".localhost:" + s.mainPort
}

// VaultAddrURL is the URL of a vault's dedicated listener (https://127.0.0.1:PORT), or "" if it has none.
func (s *Server) VaultAddrURL(name string) string { return s.vaultURLs[strings.ToLower(name)] }

// Vaults lists the names of the vaults served.
func (s *Server) Vaults() []string {
	var names []string
	for _, v := range s.vaultList() {
		names = append(names, v.name)
	}
	return names
}

// CACertPEM is the CA certificate that clients must trust (nil in no-auth mode).
func (s *Server) CACertPEM() []byte {
	if s.ca == nil {
		return nil
	}
	return s.ca.CertPEM
}

// CertPool holds the CA certificate, for custom transports.
func (s *Server) CertPool() *x509.CertPool {
	if s.ca == nil {
		return x509.NewCertPool()
	}
	return s.ca.CertPool()
}

// HTTPClient returns a client that trusts the emulator's CA and reaches NAME.localhost on loopback:
// pass it as azcore.ClientOptions.Transport.
func (s *Server) HTTPClient() *http.Client { return authn.NewClient(s.CertPool()) }

// TenantID is the tenant named in the challenge.
func (s *Server) TenantID() string { return s.cfg.TenantID }

// IdentityEndpoint is the managed-identity endpoint for IDENTITY_ENDPOINT: plain HTTP on loopback, as
// App Service serves it (the shared HTTPS listener serves /msi/token too).
func (s *Server) IdentityEndpoint() string { return s.identityURL }

// IdentityHeader is the value managed-identity clients must send (IDENTITY_HEADER).
func (s *Server) IdentityHeader() string { return s.cfg.IdentityHeader }

// AuthorityHost is the authority for service-principal credentials (ClientOptions.Cloud.ActiveDirectoryAuthorityHost);
// those credentials must set DisableInstanceDiscovery.
func (s *Server) AuthorityHost() string { return s.mainURL + "/" }

// IssueToken mints an access token for a configured identity (by client id), as the identity endpoints
// do. A negative lifetime yields an expired token; tests use it.
func (s *Server) IssueToken(clientID, audience string, lifetime time.Duration) (string, error) {
	if s.issuer == nil {
		return "", errors.New("no-auth mode issues no tokens")
	}
	for _, id := range s.cfg.Identities {
		if strings.EqualFold(id.ClientID, clientID) {
			tok, _, err := s.issuer.Issue(authn.Principal{ObjectID: id.ObjectID, ClientID: id.ClientID, TenantID: s.cfg.TenantID, Name: id.Name}, audience, lifetime, time.Now())
			return tok, err
		}
	}
	return "", fmt.Errorf("no identity with client id %q", clientID)
}

// AddFault scripts a failure; see FaultRule.
func (s *Server) AddFault(r FaultRule) error {
	_, err := s.script.Add(r)
	return err
}

// Faults lists the scripted failures that have not been used up.
func (s *Server) Faults() []FaultState { return s.script.Rules() }

// ClearFaults removes all scripted failures.
func (s *Server) ClearFaults() { s.script.Clear() }

func (s *Server) vaultList() []*vault {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*vault, 0, len(s.vaults))
	for _, v := range s.vaults {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *vault) int { return strings.Compare(a.name, b.name) })
	return out
}

var ipLike = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9.]+$|:`) })

// resolveVault finds the vault a request addresses: the dedicated listener's vault, else the first
// label of the host name, else the only vault when the host is an IP address or "localhost".
func (s *Server) resolveVault(hostport string, fixed *vault) (*vault, *kvError) {
	if fixed != nil {
		return fixed, nil
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	s.mu.RLock()
	defer s.mu.RUnlock()
	if label, _, found := strings.Cut(host, "."); found && !ipLike().MatchString(host) {
		if v := s.vaults[strings.ToLower(label)]; v != nil {
			return v, nil
		}
	} else if len(s.vaults) == 1 {
		for _, v := range s.vaults {
			return v, nil
		}
	}
	names := make([]string, 0, len(s.vaults))
	for _, v := range s.vaults {
		names = append(names, v.name)
	}
	slices.Sort(names)
	return nil, &kvError{Status: http.StatusNotFound, Code: "VaultNotFound", Message: fmt.Sprintf(
		"No vault is served at host %q. This emulator serves %s; address a vault as https://<name>.localhost:%s.",
		host, strings.Join(names, ", "), s.mainPort)}
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func loadOrCreateKey(dir, name string) ([]byte, error) {
	if dir == "" {
		k := make([]byte, 32)
		_, err := rand.Read(k)
		return k, err
	}
	return loadOrCreateFileKey(dir, name)
}
