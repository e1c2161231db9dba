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
// Calls (Microsoft Graph v1.0 with plain net/http and a token for kvrotator's own identity from
// registry.AzureEnv; the Graph SDK is too heavy for four calls):
//
//   - GET {graph}/v1.0/applications/{id}?$select=id,appId,passwordCredentials, or
//     /applications(appId='{appId}') when only the client id is known: the application and its
//     passwords (secretText is never returned here).
//   - POST …/removePassword {"keyId"} → 204; 404 (or a 400 saying "No password credential found")
//     means already gone.
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
// Microsoft Graph's endpoint follows the cloud of registry.AzureEnv (public, US Government, China), or
// the GraphService entry of its cloud configuration, or WithGraph; it is never read from a tag, so
// that whoever can edit a secret's tags cannot send kvrotator's Graph token elsewhere.
package entraapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
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

// WithAzure makes the provider use a instead of what the application recorded with
// providers.SetAzure: the credential kvrotator calls Graph with, the cloud, and the transport that
// carries both the Graph calls and the verification sign-ins.
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

// New returns a Provider that reads the Azure environment (registry.AzureEnv) at each call.
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
	_, err := parseConfig(p, "")
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
		if errors.As(err, &e) && e.sent && !providers.IsPermanent(err) && e.Status != http.StatusTooManyRequests {
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

// References are the application (ProviderAddress, its object id, or entra-app-id, its application
// id; kind application) and its tenant (entra-tenant-id; kind tenant): an operator binds both.
func (*Provider) References(p providers.Params) []providers.Reference {
	c, err := parseConfig(p, "")
	if err != nil {
		return nil // Validate reports it; the engine never gets here
	}
	var refs []providers.Reference
	if c.objectID != "" {
		refs = append(refs, providers.Reference{Kind: providers.RefApplication, Tag: TagAddress, Value: strings.ToLower(c.objectID)})
	}
	if c.appID != "" {
		refs = append(refs, providers.Reference{Kind: providers.RefApplication, Tag: TagAppID, Value: strings.ToLower(c.appID)})
	}
	return append(refs, providers.Reference{Kind: providers.RefTenant, Tag: TagTenant, Value: strings.ToLower(c.tenant)})
}

// Revoke removes the password credentialID (a keyId) from the application. A password that is already
// gone (404, or Graph's "No password credential found") is success. It refuses to remove the
// password the current version holds.
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	cfg, cl, err := p.prepare(req)
	if err != nil {
		return err
	}
	credentialID = strings.TrimSpace(credentialID)
	switch {
	case !isGUID(credentialID):
		return providers.Permanent(fmt.Errorf("%s revoke: credential id %q is not a password keyId (a GUID)", Name, credentialID))
	case strings.EqualFold(credentialID, req.CredentialID):
		return providers.Permanent(fmt.Errorf("%s revoke: password %s is the one the current version holds; refusing to remove it", Name, credentialID))
	}
	return cl.removePassword(ctx, cfg.appPath(), strings.ToLower(credentialID))
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
	cfg, err := parseConfig(req.Params, req.Address)
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
	authority := p.authorityHost
	if authority == "" {
		authority = az.Cloud.ActiveDirectoryAuthorityHost
	}
	if authority == "" {
		authority = "https://login.microsoftonline.com/"
	}
	authorityURL, err := httpsBase(authority)
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("%s: Entra authority host %q: %w", Name, authority, err))
	}
	endpoint, audience := p.graphEndpoint, p.graphAudience
	if endpoint == "" {
		if svc, ok := az.Cloud.Services[GraphService]; ok && svc.Endpoint != "" {
			endpoint, audience = svc.Endpoint, svc.Audience
		} else if u, err := url.Parse(authorityURL); err == nil {
			endpoint = graphByAuthority[strings.ToLower(u.Hostname())]
		}
	}
	if endpoint == "" {
		return nil, providers.Permanent(fmt.Errorf("%s: no Microsoft Graph endpoint is known for the cloud whose authority is %s: add a cloud.Configuration service entry %q with Graph's endpoint",
			Name, authorityURL, GraphService))
	}
	graphURL, err := httpsBase(endpoint)
	if err != nil {
		return nil, providers.Permanent(fmt.Errorf("%s: Microsoft Graph endpoint %q: %w", Name, endpoint, err))
	}
	if audience == "" {
		audience = graphURL
	}
	// Bearer tokens and secrets go where configured or nowhere.
	send := az.Transport
	switch t := send.(type) {
	case nil:
		send = httpx.WithoutRedirects(nil)
	case *http.Client:
		send = httpx.WithoutRedirects(t)
	}
	return &client{cred: az.Credential, send: send, graph: graphURL, scope: strings.TrimRight(audience, "/") + "/.default",
		authority: authorityURL, timeout: p.timeout, now: p.now}, nil
}

// httpsBase checks that raw is an absolute https URL with a host name and without user information,
// query or fragment (httpx.ParseBaseURL, plain http never allowed), and returns it without a trailing
// slash.
func httpsBase(raw string) (string, error) {
	base, err := httpx.ParseBaseURL(raw, false)
	switch httpx.URLProblemOf(err) {
	case httpx.URLNotAbsolute, httpx.URLScheme:
		return "", errors.New("must be an https URL")
	case httpx.URLUserInfo, httpx.URLQuery, httpx.URLFragment:
		return "", errors.New("must not contain user information, a query or a fragment")
	}
	return base, err
}

// Provider must satisfy the contract.
var _ providers.Provider = (*Provider)(nil)
