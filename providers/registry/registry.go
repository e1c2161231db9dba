// Package registry builds kvrotator's providers with their environment. Each provider package
// registers a constructor by name from an init function, as database/sql drivers do:
//
//	func init() { registry.Register("random", func(registry.Env) (providers.Provider, error) { return New(), nil }) }
//
// and the application builds every registered provider once, at start-up, with Build: the Azure
// credential and cloud it runs with, the HTTP client providers send requests with. Nothing is read
// from package-level state when a provider runs; tests build providers with their own Env.
//
// Registration is the only package-level state, written by init functions and read-only afterwards.
package registry

import (
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/kvrotator/kvrotator/providers"
)

// Azure is what providers that call Azure APIs (Resource Manager, Microsoft Graph) are given: the
// credential kvrotator itself runs with (its managed identity in Azure, a certificate service principal
// on-premises) and the cloud's endpoints.
type Azure struct {
	Credential azcore.TokenCredential
	// Cloud selects the Resource Manager endpoint and audience and the Entra authority host
	// (default: the public cloud).
	Cloud cloud.Configuration
	// Transport, when set, carries the providers' Azure requests (tests point it at local servers).
	Transport policy.Transporter
}

// WithDefaults returns a with the public cloud filled in when Cloud is empty.
func (a Azure) WithDefaults() Azure {
	if a.Cloud.ActiveDirectoryAuthorityHost == "" {
		a.Cloud = cloud.AzurePublic
	}
	return a
}

// Env is what a provider is built with.
type Env struct {
	// Azure is the application's Azure credential and cloud; nil when it has none (providers that
	// need it then fail to build, with a clear error, only if they are used).
	Azure *Azure
	// HTTPClient sends the HTTP providers' requests; nil is net/http's default transport. Providers
	// never follow redirects, whatever its CheckRedirect says.
	HTTPClient *http.Client
	// Logger receives provider diagnostics; nil discards.
	Logger *slog.Logger
}

// Factory builds a provider from its environment.
type Factory func(Env) (providers.Provider, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a provider available under name (the value of the rotation-provider tag). It panics
// if the name is taken or f is nil, as database/sql.Register does.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	name = strings.ToLower(name)
	if f == nil {
		panic("registry: Register factory is nil")
	}
	if _, dup := factories[name]; dup {
		panic("registry: Register called twice for provider " + name)
	}
	factories[name] = f
}

// Names lists the registered providers, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Set is the providers built for one application. It is immutable and safe for concurrent use.
type Set struct{ m map[string]providers.Provider }

// Build builds every registered provider with env. A provider that cannot be built (an Azure provider
// without an Azure credential) is left out of the set and named in the returned list of problems, so
// the application still starts and secrets using it fail with a clear "not available" error.
func Build(env Env) (*Set, map[string]error) {
	mu.RLock()
	defer mu.RUnlock()
	s := &Set{m: map[string]providers.Provider{}}
	var problems map[string]error
	for name, f := range factories {
		p, err := f(env)
		if err != nil {
			if problems == nil {
				problems = map[string]error{}
			}
			problems[name] = err
			continue
		}
		s.m[name] = p
	}
	return s, problems
}

// NewSet makes a set of the given providers (tests, and applications that wire providers by hand).
func NewSet(ps map[string]providers.Provider) *Set {
	s := &Set{m: map[string]providers.Provider{}}
	for n, p := range ps {
		s.m[strings.ToLower(n)] = p
	}
	return s
}

// Lookup returns the provider named name (case-insensitive).
func (s *Set) Lookup(name string) (providers.Provider, bool) {
	p, ok := s.m[strings.ToLower(strings.TrimSpace(name))]
	return p, ok
}

// Names lists the set's providers, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.m))
	for n := range s.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrNoAzure is what Azure providers' factories return without an Azure credential.
var ErrNoAzure = fmt.Errorf("no Azure credential: the application builds providers with registry.Env.Azure")
