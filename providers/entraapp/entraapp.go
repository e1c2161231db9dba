// Package entraapp is kvrotator's provider for Microsoft Entra ID application client secrets (the
// passwordCredentials of an app registration), the secret a service principal outside Azure signs in
// with. The shape is create-then-revoke: Microsoft Graph adds a new password to the application,
// kvrotator verifies it by signing in as the application, writes it to Key Vault as a new version, and
// after the grace period removes the password the previous version held.
//
// Client secrets are the weaker credential. Where the application can, use a certificate credential,
// workload identity federation or a managed identity instead; kvrotator itself signs in with a
// managed identity or a certificate, never with a client secret. README.md in this directory says more.
//
// Calls (Microsoft Graph v1.0 with plain net/http and a token for kvrotator's own identity, the
// credential of the registry.Azure it is built with; the Graph SDK is too heavy for four calls):
//
//   - GET {graph}/v1.0/applications/{id}?$select=id,appId,passwordCredentials, or
//     /applications(appId='{appId}') when only the client id is known: the application and its
//     passwords (secretText is never returned here).
//   - POST …/removePassword {"keyId"} → 204; 404 (or a 400 saying "No password credential found")
//     means already gone. Revoke reads the application first, to check the password's hint.
//   - POST …/addPassword {"passwordCredential":{"displayName","endDateTime"}} → 200 with keyId,
//     secretText (the only time Graph returns it) and endDateTime.
//   - POST {authority}/{tenant}/oauth2/v2.0/token, client credentials with the new secret, scope
//     {graph}/.default: verification.
//
// Idempotency: a password is named "kvrotator " + Request.IdempotencyKey. Graph never returns a
// secret's text again after addPassword, so a retry that finds a password with its name (left by an
// attempt that crashed or lost the answer) cannot recover the value: it removes that orphan and adds a
// new one. So there is never more than one live kvrotator password per idempotency key.
//
// Tags (names are case-insensitive): ProviderAddress, the application's object id (as in Microsoft's
// rotation sample for Entra apps), or entra-app-id, its application (client) id — at least one;
// entra-tenant-id (required), the tenant the application is registered in; entra-secret-lifetime-days,
// the password's lifetime (31 to 3650 days, at most ValidityPeriodDays; default ValidityPeriodDays,
// else 90). CredentialId is the keyId of the password the current version holds.
//
// Microsoft Graph's endpoint follows the cloud of the registry.Azure the provider is built with
// (public, US Government, China), or the GraphService entry of its cloud configuration, or WithGraph;
// it is never read from a tag, so that whoever can edit a secret's tags cannot send kvrotator's Graph
// token elsewhere. The application and the tenant a secret's tags name are references (References)
// that the operator's bindings must allow before the engine lets the provider run.
package entraapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/graph"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "entra-app"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) {
		if env.Azure == nil {
			return nil, registry.ErrNoAzure
		}
		return New(WithAzure(*env.Azure)), nil
	})
}

// DisplayNamePrefix starts the display name of every password kvrotator adds.
const DisplayNamePrefix = "kvrotator "

// DisplayName is the display name of the password created for an idempotency key.
func DisplayName(idempotencyKey string) string { return DisplayNamePrefix + idempotencyKey }

// Defaults of the options.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultReplicationDelay = 10 * time.Second
)

// Provider rotates Entra ID application client secrets. It is safe for concurrent use; its only state
// is a cache of object id → application id (which never changes for an application).
type Provider struct {
	azure            *registry.Azure
	graphEndpoint    string
	graphAudience    string
	authorityHost    string
	timeout          time.Duration
	replicationDelay time.Duration
	now              func() time.Time

	appIDs sync.Map // object id (lower case) → appId
}

// Option configures a Provider.
type Option func(*Provider)

// WithAzure gives the provider its Azure environment (the application's, from registry.Env): the
// credential kvrotator calls Graph with, the cloud, and the transport that carries both the Graph
// calls and the verification sign-ins. Without it (or with no credential in it) every call fails with
// registry.ErrNoAzure, a permanent error.
func WithAzure(a registry.Azure) Option {
	return func(p *Provider) { p.azure = &a }
}

// WithGraph sets Microsoft Graph's base URL (https, without /v1.0) and the audience of kvrotator's
// Graph token (default: the endpoint). It overrides the cloud's Graph endpoint.
func WithGraph(endpoint, audience string) Option {
	return func(p *Provider) { p.graphEndpoint, p.graphAudience = endpoint, audience }
}

// WithAuthorityHost sets the Entra ID authority the verification sign-in goes to (https), instead of
// the cloud's ActiveDirectoryAuthorityHost.
func WithAuthorityHost(host string) Option {
	return func(p *Provider) { p.authorityHost = host }
}

// WithTimeout bounds each HTTP call (default 30 s). The engine's own deadlines apply on top.
func WithTimeout(d time.Duration) Option {
	return func(p *Provider) {
		if d > 0 {
			p.timeout = d
		}
	}
}

// WithReplicationDelay is how long the engine is asked to wait (RetryAfter) after an addPassword whose
// outcome is unknown — a timeout, a lost connection, a 5xx — before it retries, so that the directory
// has replicated a password the lost request may have added and the retry's listing finds and removes
// it (default 10 s).
func WithReplicationDelay(d time.Duration) Option {
	return func(p *Provider) {
		if d >= 0 {
			p.replicationDelay = d
		}
	}
}

// New returns a Provider; give it the Azure environment with WithAzure.
func New(opts ...Option) *Provider {
	p := &Provider{timeout: DefaultTimeout, replicationDelay: DefaultReplicationDelay, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeCreateRevoke: a new password is added; the old one is removed after the
// grace period.
func (*Provider) Shape() providers.Shape { return providers.ShapeCreateRevoke }

// Validate checks ProviderAddress, CredentialId and the entra-* tags without calling anything. Every
// problem is a *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	_, err := parseConfig(p)
	return err
}

// Create adds a password named DisplayName(req.IdempotencyKey) to the application, expiring after the
// configured lifetime, first removing any password of that name an interrupted attempt left (its
// secret text cannot be read back). It returns the secret text as the value, the keyId as the
// credential id and the endDateTime as ExpiresAt.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	cfg, cl, err := p.prepare(req)
	if err != nil {
		return providers.Credential{}, err
	}
	if req.IdempotencyKey == "" {
		return providers.Credential{}, providers.Permanent(errors.New(Name + " create: the request has no idempotency key"))
	}
	app, err := cl.getApplication(ctx, cfg)
	if err != nil {
		return providers.Credential{}, err
	}
	if cfg.appID != "" && !strings.EqualFold(cfg.appID, app.AppID) {
		return providers.Credential{}, providers.ConfigErrorf(TagAppID, cfg.appID,
			"application %s (%s) has client id %s: the two tags name different applications", app.ID, TagAddress, app.AppID)
	}
	p.appIDs.Store(strings.ToLower(app.ID), app.AppID)

	name := DisplayName(req.IdempotencyKey)
	for _, pw := range app.PasswordCredentials {
		if pw.DisplayName == nil || *pw.DisplayName != name {
			continue
		}
		if strings.EqualFold(pw.KeyID, req.CredentialID) {
			return providers.Credential{}, providers.Permanent(fmt.Errorf(
				"%s create: password %s, which the current version holds (%s), carries this rotation's display name %q; refusing to remove it",
				Name, pw.KeyID, TagCredentialID, name))
		}
		// Nor one whose hint says it holds the current value.
		if err := removable("create", app, pw, providers.Request{Current: req.Current, CredentialID: req.CredentialID}); err != nil {
			return providers.Credential{}, err
		}
		// An earlier attempt for this key added it; its secret is lost. Remove it so that at most
		// one kvrotator password per key is ever live.
		if err := cl.removePassword(ctx, "/applications/"+app.ID, pw.KeyID); err != nil {
			return providers.Credential{}, err
		}
	}

	now := req.Now
	if now.IsZero() {
		now = p.now()
	}
	end := now.UTC().Truncate(time.Second).Add(cfg.lifetime)
	pw, err := cl.addPassword(ctx, app.ID, name, end)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Sent && !providers.IsPermanent(err) && e.Status != http.StatusTooManyRequests {
			// The password may have been added: let the directory replicate it before the retry lists.
			e.Retry = max(e.Retry, p.replicationDelay)
		}
		return providers.Credential{}, err
	}
	cred := providers.Credential{Value: providers.NewValue(*pw.SecretText), CredentialID: strings.ToLower(pw.KeyID), ExpiresAt: &end}
	if pw.EndDateTime != nil {
		t := pw.EndDateTime.UTC()
		cred.ExpiresAt = &t
	}
	if left := cred.ExpiresAt.Sub(now); left < MinLifetimeDays*24*time.Hour {
		// A shorter password would make the new version due for rotation at once, again and again.
		if err := cl.removePassword(ctx, "/applications/"+app.ID, cred.CredentialID); err != nil {
			return providers.Credential{}, err
		}
		return providers.Credential{}, providers.ConfigErrorf(TagLifetime, "",
			"Microsoft Graph gave the new password an endDateTime of %s, %d days away (a tenant policy may cap secret lifetimes); kvrotator needs at least %d days and removed it again",
			cred.ExpiresAt.Format(time.RFC3339), int(left.Hours()/24), MinLifetimeDays)
	}
	return cred, nil
}

// Verify signs in as the application with the new secret (client credentials against the tenant's
// token endpoint). Entra ID rejects a new secret with AADSTS7000215 until it has propagated, usually
// seconds: that is a transient error, and the engine checks again until its verify timeout.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, cl, err := p.prepare(req)
	if err != nil {
		return err
	}
	if cred.CredentialID == "" || cred.Value.IsZero() {
		return providers.Permanent(errors.New(Name + " verify: the credential has no keyId or no value"))
	}
	appID := cfg.appID
	if appID == "" {
		if appID, err = p.appID(ctx, cl, cfg); err != nil {
			return err
		}
	}
	return cl.verifyToken(ctx, cfg.tenant, appID, cred.Value.Reveal())
}

// References are the application (ProviderAddress, its object id, and/or entra-app-id, its
// application (client) id; kind application) and its tenant (entra-tenant-id; kind tenant): an
// operator binds both. Values are lower-cased (GUIDs and domain names are case-insensitive). Every
// Graph path and the verification sign-in are made from exactly these values; Graph's endpoint and
// the Entra authority come from the application's cloud, never from a tag.
//
// The values are read from the tags as the provider reads them, whether or not they are well formed
// (Validate refuses what is not), so that nothing a tag names is ever left out of the check.
func (*Provider) References(p providers.Params) []providers.Reference {
	var refs []providers.Reference
	if v := strings.TrimSpace(p.Get(TagAddress)); v != "" {
		refs = append(refs, providers.Reference{Kind: providers.RefApplication, Tag: TagAddress, Value: strings.ToLower(v)})
	}
	if v := strings.TrimSpace(p.Get(TagAppID)); v != "" {
		refs = append(refs, providers.Reference{Kind: providers.RefApplication, Tag: TagAppID, Value: strings.ToLower(v)})
	}
	return append(refs, providers.Reference{Kind: providers.RefTenant, Tag: TagTenant, Value: strings.ToLower(strings.TrimSpace(p.Get(TagTenant)))})
}

// Revoke removes the password credentialID (a keyId) from the application. A password that is already
// gone (removePassword answers 404 or Graph's "No password credential found") is success.
//
// It refuses, permanently and before removing anything, a credentialID that is not a keyId, the keyId
// of req.CredentialID (the password the latest version holds), and — where Graph's hint tells (the
// first three characters of each password's secret text) — a password whose hint is not the start of
// req.Retired (it is not the replaced version's password) or is the start of req.Current (it is the
// password the latest version holds).
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	cfg, cl, err := p.prepare(req)
	if err != nil {
		return err
	}
	credentialID = strings.ToLower(strings.TrimSpace(credentialID))
	switch {
	case !isGUID(credentialID):
		return providers.Permanent(fmt.Errorf("%s revoke: credential id %q is not a password keyId (a GUID)", Name, credentialID))
	case strings.EqualFold(credentialID, req.CredentialID):
		return providers.Permanent(fmt.Errorf("%s revoke: password %s is the one the current version holds; refusing to remove it", Name, credentialID))
	}
	// The application is read first, for the password's hint. A 404 is a configuration error naming
	// the tag, as in Create: kvrotator cannot tell "deleted" from "the tags now name another
	// application", and only the former means the password is gone.
	app, err := cl.getApplication(ctx, cfg)
	if err != nil {
		return err
	}
	pw, listed := app.password(credentialID)
	if listed {
		if err := removable("revoke", app, pw, req); err != nil {
			return err
		}
	}
	if listed && req.HandWritten {
		// The id is only the CredentialId tag of a version kvrotator did not write: the replaced
		// value must prove it is that password — it signs in (a password of this application) and its
		// first characters are the password's hint.
		if err := p.proveRetired(ctx, cl, cfg, pw, req); err != nil {
			return err
		}
	}
	// Not listed: gone, or (just added, in the unverified credential's clean-up) not replicated to
	// the replica that answered yet; removePassword tells which.
	return cl.removePassword(ctx, "/applications/"+app.ID, credentialID)
}

// proveRetired checks that req.Retired is the password pw: Graph's hint matches its first characters
// and it signs in to the application. Anything less is refused permanently; a sign-in that fails
// transiently is returned as it is, to be retried.
func (p *Provider) proveRetired(ctx context.Context, cl *client, cfg config, pw passwordCredential, req providers.Request) error {
	refuse := func(why string) error {
		return providers.Permanent(fmt.Errorf("%s revoke: not removing password %s: it is named only by the CredentialId tag of a version kvrotator did not write, and %s; remove it by hand if it is really retired",
			Name, pw.KeyID, why))
	}
	hint := ""
	if pw.Hint != nil {
		hint = *pw.Hint
	}
	if req.Retired.IsZero() || len(hint) != hintLen || hintOf(req.Retired) != hint {
		return refuse("that version's value cannot be shown to be that password (by its hint)")
	}
	appID := cfg.appID
	if appID == "" {
		var err error
		if appID, err = p.appID(ctx, cl, cfg); err != nil {
			return err
		}
	}
	if err := cl.verifyToken(ctx, cfg.tenant, appID, req.Retired.Reveal()); err != nil {
		// A refused sign-in (invalid_client is "not propagated yet" for a new secret, but this one is
		// old) is a refusal; an unavailable endpoint is retried.
		var he *httpx.Error
		if providers.IsPermanent(err) || (errors.As(err, &he) && he.Status >= 400 && !httpx.Retryable(he.Status)) {
			return refuse("that version's value does not sign in to the application")
		}
		return err
	}
	return nil
}

// hintLen is how many leading characters of a secret Graph's passwordCredential hint holds.
const hintLen = 3

// hintOf is what Graph's hint would be for a secret value: its first three characters, "" when the
// value is unknown or shorter.
func hintOf(v providers.Value) string {
	s := v.Reveal()
	if len(s) < hintLen {
		return ""
	}
	return s[:hintLen]
}

// removable checks, by Graph's hint, that pw may be removed: it must be the password of the value
// req.Retired (when known) and not the password of req.Current (when known). When both values start
// alike the hint cannot tell them apart; pw is then removable only if the password the latest version
// holds (req.CredentialID) is another one, listed, with that same hint, which accounts for req.Current.
// A password without a hint, or values that are unknown, cannot be told apart: nothing to refuse.
func removable(op string, app application, pw passwordCredential, req providers.Request) error {
	hint := ""
	if pw.Hint != nil {
		hint = *pw.Hint
	}
	if len(hint) != hintLen {
		return nil
	}
	retired, current := hintOf(req.Retired), hintOf(req.Current)
	if retired != "" && hint != retired {
		return providers.Permanent(fmt.Errorf(
			"%s %s: password %s is not the replaced version's: its hint (the first %d characters of its secret) does not match that version's value; refusing to remove it",
			Name, op, pw.KeyID, hintLen))
	}
	if current == "" || hint != current {
		return nil
	}
	if cur, ok := app.password(req.CredentialID); ok && !strings.EqualFold(cur.KeyID, pw.KeyID) && cur.Hint != nil && *cur.Hint == current {
		return nil
	}
	return providers.Permanent(fmt.Errorf(
		"%s %s: password %s looks like the one the current version holds: its hint (the first %d characters of its secret) matches the current value; refusing to remove it",
		Name, op, pw.KeyID, hintLen))
}

// appID returns the application (client) id of the application at cfg's object id, from the cache or
// from Graph.
func (p *Provider) appID(ctx context.Context, cl *client, cfg config) (string, error) {
	if v, ok := p.appIDs.Load(strings.ToLower(cfg.objectID)); ok {
		return v.(string), nil
	}
	app, err := cl.getApplication(ctx, cfg)
	if err != nil {
		return "", err
	}
	p.appIDs.Store(strings.ToLower(app.ID), app.AppID)
	return app.AppID, nil
}

// prepare reads the tags and the Azure environment.
func (p *Provider) prepare(req providers.Request) (config, *client, error) {
	// The application is the one the tags name, which the engine checked against the bindings
	// (References); req.Address, filled by the engine from the same ProviderAddress tag, may not name
	// another.
	if a := strings.TrimSpace(req.Address); a != "" && !strings.EqualFold(a, strings.TrimSpace(req.Params.Get(TagAddress))) {
		return config{}, nil, providers.Permanent(fmt.Errorf("%s: the request's address %q is not the %s tag the bindings were checked against", Name, a, TagAddress))
	}
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return config{}, nil, err
	}
	cl, err := p.client()
	if err != nil {
		return config{}, nil, err
	}
	return cfg, cl, nil
}

// client resolves kvrotator's credential, Graph's endpoint and the authority for one call.
func (p *Provider) client() (*client, error) {
	if p.azure == nil || p.azure.Credential == nil {
		return nil, providers.Permanent(registry.ErrNoAzure)
	}
	az := p.azure.WithDefaults()
	ep, err := graph.Resolve(Name, az, graph.Overrides{AuthorityHost: p.authorityHost, Graph: p.graphEndpoint, Audience: p.graphAudience})
	if err != nil {
		return nil, err
	}
	// Bearer tokens and secrets go where configured or nowhere: httpx follows no redirect with an
	// *http.Client (the usual transport; one of another kind must not follow them itself).
	api := func(service string, details func([]byte) httpx.Details, requestIDHeader string) httpx.Client {
		return httpx.Client{Provider: Name, Service: service, UserAgent: userAgent, HTTP: az.Transport, Now: p.now,
			MaxBody: maxResponseBytes, Messages: messages, Details: details, RequestIDHeader: requestIDHeader}
	}
	return &client{cred: az.Credential, graph: ep.Graph, scope: ep.Scope,
		authority: ep.Authority, timeout: p.timeout,
		graphAPI: api("Microsoft Graph", graphDetails, "request-id"),
		tokenAPI: api("the Entra ID token endpoint", tokenDetails, "x-ms-request-id")}, nil
}

// Provider must satisfy the contract, with revocation.
var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Revoker  = (*Provider)(nil)
)
