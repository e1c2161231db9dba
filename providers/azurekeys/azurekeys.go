// Package azurekeys is kvrotator's provider for the two-slot keys of Azure resources, rotated through
// Azure Resource Manager: Storage accounts, Cosmos DB, Cognitive Services / Azure OpenAI, Service Bus
// and Event Hubs authorization rules, Event Grid topics and domains, Azure Cache for Redis, Azure AI
// Search admin keys and App Configuration.
//
// Every such resource has two keys that are valid at the same time. A secret's CredentialId tag names
// the slot its current value belongs to; Create regenerates the OTHER slot (never the one CredentialId
// names), reads it back, and returns it with that slot as the new CredentialId. Applications move to
// the new key as they read the new version; the old slot keeps working until the next rotation
// regenerates it, so there is nothing to revoke.
//
// One generic client on azcore's ARM pipeline (arm.NewClient: bearer token for the cloud's Resource
// Manager audience, retries honouring Retry-After, logging with redaction) and azcore's poller for
// long-running regenerations serves every type; a small descriptor per type (resources.go) says where
// the list and regenerate actions are, what their bodies and answers look like and how a new key is
// verified.
//
// The provider reads these tags (names are case-insensitive):
//
//   - ProviderAddress (required): the ARM resource id, e.g.
//     /subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}.
//     For Service Bus and Event Hubs it is the authorization rule's id.
//   - CredentialId (required): the slot the current value belongs to (key1/key2, primary/secondary, …).
//   - azure-keys-format: key (default) or connection-string.
//   - azure-keys-verify: auto (default), data-plane or list-keys.
//   - azure-keys-api-version: overrides the api-version of the key actions.
//
// A Storage account key rotated every 60 days, stored as a connection string:
//
//	rotation-provider  = azure-keys
//	ValidityPeriodDays = 60
//	ProviderAddress    = /subscriptions/…/resourceGroups/app/providers/Microsoft.Storage/storageAccounts/appdata
//	CredentialId       = key1
//	azure-keys-format  = connection-string
//
// README.md in this directory has the permissions each type needs and how each is verified.
package azurekeys

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "azure-keys"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) {
		if env.Azure == nil {
			return nil, registry.ErrNoAzure
		}
		return New(WithAzure(*env.Azure)), nil
	})
}

// DefaultPollFrequency is how often a long-running regeneration is polled when Azure sends no
// Retry-After.
const DefaultPollFrequency = 5 * time.Second

// Provider rotates two-slot Azure resource keys. It holds no mutable state and is safe for concurrent
// use.
type Provider struct {
	azure *registry.Azure
	retry *policy.RetryOptions
	poll  time.Duration
	dns   *Endpoints
}

// Option configures a Provider.
type Option func(*Provider)

// WithAzure gives the provider the credential, cloud and transport it calls Azure with (the
// application's, from registry.Env; tests point it at local servers). Without it (or with no
// credential in it) every call fails with registry.ErrNoAzure, a permanent error.
func WithAzure(a registry.Azure) Option {
	return func(p *Provider) { p.azure = &a }
}

// WithRetry replaces azcore's default retry policy (3 retries, exponential from 800 ms, Retry-After
// honoured) for every call the provider makes.
func WithRetry(r policy.RetryOptions) Option {
	return func(p *Provider) { p.retry = &r }
}

// WithPollFrequency sets how often a long-running regeneration is polled when Azure sends no
// Retry-After (default DefaultPollFrequency; azcore refuses less than a second outside tests).
func WithPollFrequency(d time.Duration) Option {
	return func(p *Provider) {
		if d > 0 {
			p.poll = d
		}
	}
}

// WithEndpoints sets the data-plane DNS suffixes (for a cloud kvrotator does not know, or a test). By
// default they follow the Resource Manager endpoint: the public, US Government and China clouds are
// known.
func WithEndpoints(e Endpoints) Option {
	return func(p *Provider) { p.dns = &e }
}

// New returns a Provider; give it the Azure environment with WithAzure.
func New(opts ...Option) *Provider {
	p := &Provider{poll: DefaultPollFrequency}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeTwoSlot: the inactive slot is regenerated; the old one stays valid until the
// next rotation.
func (*Provider) Shape() providers.Shape { return providers.ShapeTwoSlot }

// Validate checks ProviderAddress, CredentialId and the azure-keys-* tags without calling anything.
// Every problem is a *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	_, err := parseConfig(p, "", "")
	return err
}

// config reads the request's settings. The resource is the ProviderAddress tag, the one References
// declared and the engine checked against the bindings; req.Address, which the engine fills from the
// same tag, may not name another one. The slot is req.CredentialID, the credential kvrotator recorded
// for the current version (else the CredentialId tag).
func (p *Provider) config(req providers.Request) (config, error) {
	address, tag := strings.TrimSpace(req.Address), strings.TrimSpace(req.Params.Get(TagAddress))
	switch {
	case address == "":
		address = tag
	case tag != "" && !strings.EqualFold(tag, address):
		return config{}, providers.Permanent(&Error{Op: "check the request", Resource: tag,
			Reason: fmt.Sprintf("the request's address %q is not the %s tag the bindings were checked against", address, TagAddress)})
	}
	return parseConfig(req.Params, address, strings.TrimSpace(req.CredentialID))
}

// Create regenerates the slot CredentialId does not name, reads it back and returns it (as a key or a
// connection string) with that slot as CredentialID. It never regenerates the slot CredentialId names:
// before regenerating, it checks through listKeys that the current value is not the other slot's key
// (a CredentialId tag that does not match the value), and refuses if it is.
//
// Create is idempotent in the sense the engine needs: a second call after an interrupted first one
// regenerates the same inactive slot again, which nothing uses yet, and returns the newer key; there is
// never more than one new credential.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	c, err := p.config(req)
	if err != nil {
		return providers.Credential{}, err
	}
	a, err := p.connect()
	if err != nil {
		return providers.Credential{}, err
	}
	c.known = append(c.known, req.Current.Reveal())
	keys, err := a.listKeys(ctx, c)
	if err != nil {
		return providers.Credential{}, err
	}
	c.learn(keys)
	if err := checkCurrent(c, keys, req.Current.Reveal()); err != nil {
		return providers.Credential{}, err
	}
	// What would fail after the regeneration fails before it: the value's form and the data-plane
	// endpoint Verify will need (both depend on the cloud, which Validate cannot see).
	if _, err := p.format(a.env, c, keys[c.target.ID]); err != nil {
		return providers.Credential{}, err
	}
	if c.verify != verifyListKeys {
		if _, err := p.endpoints(a.env); err != nil {
			return providers.Credential{}, err
		}
	}
	old := keys[c.target.ID].Value
	if err := a.regenerate(ctx, c, c.target, keys); err != nil {
		return providers.Credential{}, err
	}
	if keys, err = a.listKeys(ctx, c); err != nil {
		return providers.Credential{}, err
	}
	k, ok := keys[c.target.ID]
	switch {
	case !ok:
		return providers.Credential{}, &Error{Op: "read back " + c.target.ID, Resource: c.id.String(), Reason: "listKeys reported no value for the slot after regenerating it"}
	case k.Value == old:
		return providers.Credential{}, &Error{Op: "read back " + c.target.ID, Resource: c.id.String(), Reason: "the slot still holds its old key after regenerating it"}
	}
	v, err := p.format(a.env, c, k)
	if err != nil {
		return providers.Credential{}, err
	}
	return providers.Credential{Value: providers.NewValue(v), CredentialID: c.target.ID}, nil
}

// checkCurrent refuses a rotation whose CredentialId does not match the value: if the current value is
// the key of the slot about to be regenerated, regenerating it would cut off whoever uses it.
func checkCurrent(c config, keys keySet, current string) error {
	if current == "" {
		return nil
	}
	target, active := keys[c.target.ID].Value, keys[c.active.ID].Value
	if target == "" || !strings.Contains(current, target) || (active != "" && strings.Contains(current, active)) {
		return nil
	}
	return providers.Permanent(&Error{Op: "regenerate " + c.target.ID, Resource: c.id.String(), Reason: fmt.Sprintf(
		"the current value is the %s key, but %s says %s: refusing to regenerate the key in use; set %s=%s",
		c.target.ID, TagCredentialID, c.active.ID, TagCredentialID, c.target.ID)})
}

// format returns the value the secret holds for key k: the key itself or its connection string.
func (p *Provider) format(env registry.Azure, c config, k key) (string, error) {
	if c.format != FormatConnectionString {
		return k.Value, nil
	}
	s, err := c.kind.conn(c, k, func() (Endpoints, error) { return p.endpoints(env) })
	if errors.Is(err, errNoConn) {
		return "", providers.Permanent(&Error{Op: "connection string", Resource: c.id.String(), Reason: err.Error()})
	}
	return s, err
}

// Verify checks the new key: with a read-only data-plane call where the type has a cheap one (Storage:
// Get Blob Service Properties with Shared Key; Cosmos DB: Get Database Account with the master key; AI
// Search: service statistics with the admin key), else by reading the slot back through Resource
// Manager and comparing (tag azure-keys-verify chooses). A refused key is transient (propagation); a
// resource that refuses keys altogether is permanent.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	c, err := p.config(req)
	if err != nil {
		return err
	}
	c.known = append(c.known, req.Current.Reveal(), cred.Value.Reveal())
	s, ok := c.kind.slotByName(cred.CredentialID)
	if !ok || cred.Value.IsZero() {
		return providers.Permanent(&Error{Op: "verify", Resource: c.id.String(),
			Reason: fmt.Sprintf("the credential to verify names no slot of a %s (%q) or has no value", c.kind.title, cred.CredentialID)})
	}
	if c.verify == verifyListKeys {
		a, err := p.connect()
		if err != nil {
			return err
		}
		return p.verifyByListKeys(ctx, a, c, s, cred.Value.Reveal())
	}
	env, err := p.environment()
	if err != nil {
		return providers.Permanent(fmt.Errorf("azure-keys: %w", err))
	}
	return p.verifyDataPlane(ctx, env, c, s, cred.Value.Reveal())
}

// References is the resource whose keys rotate (ProviderAddress, kind resource): an operator binds
// resource ids or patterns of them (every storage account of a resource group:
// /subscriptions/…/resourceGroups/team-a/providers/Microsoft.Storage/storageAccounts/*).
//
// The value is the id exactly as the provider will use it: the resource id parsed from the tag and
// written back out (azcore drops empty segments, so "//" in a tag cannot make the bound string differ
// from the called one). Every request path and every data-plane host name is made from that id and
// the application's cloud, never from any other tag. A tag that does not parse (which Validate has
// already refused) is declared as written, so that it is never bound by accident.
func (*Provider) References(p providers.Params) []providers.Reference {
	raw := strings.TrimSpace(p.Get(TagAddress))
	value := raw
	if id, _, errs := parseAddress(raw, nil); len(errs) == 0 && id != nil {
		value = id.String()
	}
	return []providers.Reference{{Kind: providers.RefResource, Tag: TagAddress, Value: value}}
}

// There is no Revoke (the provider is not a providers.Revoker): a two-slot key is never revoked. The
// previous slot stays valid until the next rotation regenerates it, which is what lets applications
// that have not re-read the secret yet keep working in between.

// Provider must satisfy the contract, and must not be a Revoker.
var _ providers.Provider = (*Provider)(nil)
