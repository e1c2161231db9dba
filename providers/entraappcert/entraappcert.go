// Package entraappcert is kvrotator's provider for Microsoft Entra ID application certificate
// credentials (the keyCredentials of an app registration): the credential Microsoft recommends over
// client secrets for a service principal outside Azure. The shape is create-then-revoke: kvrotator
// makes a new RSA key and a self-signed certificate, adds the certificate to the application with
// Microsoft Graph's addKey, verifies it by signing in as the application with it, writes the private
// key and certificate to Key Vault as a new version (PEM or PKCS #12, with the matching content type,
// so that azidentity's certificate credentials and on-premises services load the value as it is), and
// after the grace period removes the certificate the previous version held with removeKey.
//
// addKey and removeKey require a proof of possession: a JWT signed with the private key of a
// currently valid certificate of the same application. The secret already holds one — the current
// version's — and kvrotator signs every proof with it. So kvrotator never adds a key to an application
// unless the secret proves it holds a working certificate of that application, and a secret whose
// value is not a certificate of its application is refused. README.md in this directory says more.
//
// Calls (Microsoft Graph v1.0 with plain net/http and a token for kvrotator's own identity; the
// verification sign-in with azidentity):
//
//   - GET {graph}/v1.0/applications/{id}?$select=id,appId,keyCredentials (or
//     /applications(appId='{appId}')): the application and its key credentials with their
//     certificates.
//   - POST …/addKey {"keyCredential":{"type":"AsymmetricX509Cert","usage":"Verify","key","displayName"},
//     "passwordCredential":null,"proof"} → 200 with the new key credential (its keyId).
//   - POST …/removeKey {"keyId","proof"} → 204; 404 (or a 400 saying the key does not exist) means
//     already gone.
//   - azidentity.NewClientCertificateCredential(tenant, appId, new certificate).GetToken({graph}/.default):
//     MSAL's tenant discovery and a client-credentials request with a client assertion signed by the
//     new certificate, against the cloud's authority.
//
// Idempotency: a key is named "kvrotator " + Request.IdempotencyKey (its displayName). The private
// key of a certificate exists only in the memory of the attempt that made it, so a retry that finds a
// key with its name (left by an attempt that crashed or lost Graph's answer) cannot use it: it removes
// that orphan and adds a new certificate. So there is never more than one live kvrotator key per
// idempotency key. (customKeyIdentifier is left to Graph's default, the certificate's thumbprint, which
// is how a value is tied to its key.)
//
// Tags (names are case-insensitive): ProviderAddress, the application's object id, or entra-app-id,
// its application (client) id — at least one; entra-tenant-id (required); entra-cert-format, pem
// (default) or pkcs12; entra-cert-lifetime-days (31 to 3650, at most ValidityPeriodDays; default
// ValidityPeriodDays, else 90); entra-cert-key-size (2048, 3072, 4096). CredentialId is the keyId of
// the key credential the current version holds.
//
// Microsoft Graph's endpoint follows the cloud of the registry.Azure the provider is built with, or
// the GraphService entry of its cloud configuration, or WithGraph; never a tag. The application and
// the tenant a secret's tags name are references (References) that the operator's bindings must allow.
package entraappcert

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
const Name = "entra-app-certificate"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) {
		if env.Azure == nil {
			return nil, registry.ErrNoAzure
		}
		return New(WithAzure(*env.Azure)), nil
	})
}

// DisplayNamePrefix starts the display name of every key credential kvrotator adds.
const DisplayNamePrefix = "kvrotator "

// DisplayName is the display name of the key credential created for an idempotency key; it is also
// the certificate's subject common name.
func DisplayName(idempotencyKey string) string { return DisplayNamePrefix + idempotencyKey }

// Defaults of the options.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultReplicationDelay = 10 * time.Second
)

// Provider rotates Entra ID application certificates. It is safe for concurrent use; its only state
// is a cache of object id → application id (which never changes for an application).
type Provider struct {
	azure            *registry.Azure
	graphEndpoint    string
	graphAudience    string
	authorityHost    string
	proofAudience    string
	timeout          time.Duration
	replicationDelay time.Duration
	now              func() time.Time

	appIDs sync.Map // object id (lower case) → appId
}

// Option configures a Provider.
type Option func(*Provider)

// WithAzure gives the provider its Azure environment (the application's, from registry.Env): the
// credential kvrotator calls Graph with, the cloud, and the transport that carries both the Graph
// calls and the verification sign-ins. Without it every call fails with registry.ErrNoAzure.
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

// WithProofAudience sets the aud of the proofs of possession (default ProofAudience). Microsoft's
// pages disagree on it (see ProofAudience); this is configuration, never a tag.
func WithProofAudience(aud string) Option {
	return func(p *Provider) { p.proofAudience = aud }
}

// WithTimeout bounds each HTTP call (default 30 s). The engine's own deadlines apply on top.
func WithTimeout(d time.Duration) Option {
	return func(p *Provider) {
		if d > 0 {
			p.timeout = d
		}
	}
}

// WithReplicationDelay sets how long the engine is asked to wait before retrying after an addKey
// whose outcome is unknown (default 10 s), so that the retry sees a key the lost call may have added.
func WithReplicationDelay(d time.Duration) Option {
	return func(p *Provider) {
		if d >= 0 {
			p.replicationDelay = d
		}
	}
}

// New returns a Provider; give it the Azure environment with WithAzure.
func New(opts ...Option) *Provider {
	p := &Provider{timeout: DefaultTimeout, replicationDelay: DefaultReplicationDelay, proofAudience: ProofAudience, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeCreateRevoke: a new certificate is added; the old one is removed after the
// grace period.
func (*Provider) Shape() providers.Shape { return providers.ShapeCreateRevoke }

// Validate checks ProviderAddress, CredentialId and the entra-* tags without calling anything. Every
// problem is a *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	_, err := parseConfig(p)
	return err
}

// References are the application (ProviderAddress, its object id, and/or entra-app-id, its client
// id; kind application) and its tenant (entra-tenant-id; kind tenant): an operator binds both. Values
// are lower-cased. Every Graph path, every proof's iss and the verification sign-in are made from
// exactly these values; Graph's endpoint and the Entra authority come from the application's cloud.
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

// Create makes a new RSA key and self-signed certificate and adds the certificate to the application
// (addKey, with a proof signed by the current version's certificate), named DisplayName(key), after
// removing any key of that name an interrupted attempt left (its private key is lost). It returns the
// private key and certificate in the configured format as the value, the keyId as the credential id,
// the certificate's end as ExpiresAt and the format's content type.
//
// It refuses, before adding anything, a current value that is not a certificate (with its private
// key) of this application, valid now: only such a certificate can sign the proof, and kvrotator adds
// keys only to an application whose certificate the secret holds.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	cfg, cl, err := p.prepare(req)
	if err != nil {
		return providers.Credential{}, err
	}
	if req.IdempotencyKey == "" {
		return providers.Credential{}, providers.Permanent(errors.New(Name + " create: the request has no idempotency key"))
	}
	cur, err := currentSigner("create", req.Current)
	if err != nil {
		return providers.Credential{}, err
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
	now := p.now()
	if _, err := currentKey("create", app, cur, req, now); err != nil {
		return providers.Credential{}, err
	}

	name := DisplayName(req.IdempotencyKey)
	for _, k := range app.KeyCredentials {
		if k.name() != name {
			continue
		}
		if k.holds(cur.cert) == matchYes || strings.EqualFold(k.KeyID, req.CredentialID) {
			return providers.Credential{}, providers.Permanent(fmt.Errorf(
				"%s create: key credential %s, which the current version holds, carries this rotation's display name %q; refusing to remove it", Name, k.KeyID, name))
		}
		// An earlier attempt for this key added it; its private key is lost with that attempt.
		// Remove it so that at most one kvrotator key per idempotency key is ever live.
		if err := p.removeKey(ctx, cl, app, cur, k.KeyID, true); err != nil {
			return providers.Credential{}, err
		}
	}

	notAfter := now.Add(cfg.lifetime)
	fresh, err := newSigner(cfg.keySize, name, now, notAfter)
	if err != nil {
		return providers.Credential{}, providers.Permanent(fmt.Errorf("%s create: making the key pair and certificate: %w", Name, err))
	}
	prf, err := proof(cur, app.ID, p.proofAudience, now)
	if err != nil {
		return providers.Credential{}, providers.Permanent(fmt.Errorf("%s create: signing the proof of possession: %w", Name, err))
	}
	kc, err := cl.addKey(ctx, app.ID, name, fresh.cert.Raw, prf)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Sent && !providers.IsPermanent(err) && e.Status != http.StatusTooManyRequests {
			// The key may have been added: let the directory replicate it before the retry lists.
			e.Retry = max(e.Retry, p.replicationDelay)
		}
		return providers.Credential{}, err
	}
	if kc.KeyID == "" {
		// The documented answer is the new keyCredential; one without its keyId is found by its
		// certificate in the listing.
		if kc, err = p.findKey(ctx, cl, cfg, fresh); err != nil {
			return providers.Credential{}, err
		}
	}
	value, err := fresh.encode(cfg.format)
	if err != nil {
		return providers.Credential{}, providers.Permanent(fmt.Errorf("%s create: encoding the %s value: %w", Name, cfg.format, err))
	}
	expires := fresh.cert.NotAfter
	if kc.EndDateTime != nil && kc.EndDateTime.Before(expires) {
		expires = kc.EndDateTime.UTC()
	}
	cred := providers.Credential{Value: value, CredentialID: strings.ToLower(kc.KeyID), ExpiresAt: &expires, ContentType: cfg.contentType()}
	if left := expires.Sub(now); left < MinLifetimeDays*24*time.Hour {
		// A shorter key would make the new version due for rotation at once, again and again.
		if err := p.removeKey(ctx, cl, app, cur, cred.CredentialID, true); err != nil {
			return providers.Credential{}, err
		}
		return providers.Credential{}, providers.ConfigErrorf(TagLifetime, "",
			"Microsoft Graph gave the new certificate an endDateTime of %s, %d days away; kvrotator needs at least %d days and removed it again",
			expires.Format(time.RFC3339), int(left.Hours()/24), MinLifetimeDays)
	}
	return cred, nil
}

// findKey finds the key credential of s's certificate in the application's listing; not yet listed
// is transient (replication).
func (p *Provider) findKey(ctx context.Context, cl *client, cfg config, s signer) (keyCredential, error) {
	app, err := cl.getApplication(ctx, cfg)
	if err != nil {
		return keyCredential{}, err
	}
	for _, k := range app.KeyCredentials {
		if k.holds(s.cert) == matchYes && isGUID(k.KeyID) {
			return k, nil
		}
	}
	e := cl.graphAPI.Error(httpx.Request{Op: "addKey", Method: http.MethodPost, URL: cl.graph + "/v1.0/applications/" + app.ID + "/addKey"}, http.StatusOK,
		"addKey's answer had no keyId and the new certificate is not listed yet; will retry", false)
	e.Retry = p.replicationDelay
	return keyCredential{}, e
}

// Verify signs in as the application with the new certificate (azidentity's
// ClientCertificateCredential against the tenant's token endpoint). Entra ID rejects a new certificate
// with AADSTS700027 until it has propagated, usually seconds: that is a transient error, and the
// engine checks again until its verify timeout.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, cl, err := p.prepare(req)
	if err != nil {
		return err
	}
	if cred.CredentialID == "" || cred.Value.IsZero() {
		return providers.Permanent(errors.New(Name + " verify: the credential has no keyId or no value"))
	}
	s, err := parseValue(cred.Value)
	if err != nil {
		return providers.Permanent(fmt.Errorf("%s verify: the new value cannot be read back: %w", Name, err))
	}
	appID := cfg.appID
	if appID == "" {
		if appID, err = p.appID(ctx, cl, cfg); err != nil {
			return err
		}
	}
	return cl.verifyCertificate(ctx, cfg.tenant, appID, s)
}

// Revoke removes the key credential credentialID (a keyId) from the application, with a proof signed
// by the latest version's certificate (req.Current). A key that is already gone is success.
//
// It refuses, permanently and before removing anything, a credentialID that is not a keyId, the keyId
// of req.CredentialID, the key whose certificate req.Current holds, and — when req.Retired can be read
// — a key whose certificate is not req.Retired's. When the replaced version was hand-written
// (req.HandWritten), req.Retired must prove the key is its own: its certificate is the key's and it
// holds that certificate's private key.
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	cfg, cl, err := p.prepare(req)
	if err != nil {
		return err
	}
	credentialID = strings.ToLower(strings.TrimSpace(credentialID))
	switch {
	case !isGUID(credentialID):
		return providers.Permanent(fmt.Errorf("%s revoke: credential id %q is not a key credential keyId (a GUID)", Name, credentialID))
	case strings.EqualFold(credentialID, req.CredentialID):
		return providers.Permanent(fmt.Errorf("%s revoke: key credential %s is the one the current version holds; refusing to remove it", Name, credentialID))
	}
	cur, err := currentSigner("revoke", req.Current)
	if err != nil {
		return err
	}
	// A 404 is a configuration error naming the tag, as in Create: kvrotator cannot tell "deleted"
	// from "the tags now name another application", and only the former means the key is gone.
	app, err := cl.getApplication(ctx, cfg)
	if err != nil {
		return err
	}
	if _, err := currentKey("revoke", app, cur, req, p.now()); err != nil {
		return err
	}
	k, listed := app.key(credentialID)
	if listed {
		if err := removable(k, cur, req); err != nil {
			return err
		}
	} else if req.HandWritten {
		// Nothing to prove it against; and nothing to remove unless the listing is behind.
		return nil
	}
	// Not listed: gone, or (just added, in the unverified credential's clean-up) not replicated to the
	// replica that answered yet; removeKey tells which.
	return p.removeKey(ctx, cl, app, cur, credentialID, listed)
}

// removable checks that key k may be removed on req's word: it is not the certificate req.Current
// holds, and it is req.Retired's certificate when that value is known (which a hand-written retired
// version must be).
func removable(k keyCredential, cur signer, req providers.Request) error {
	refuse := func(why string) error {
		return providers.Permanent(fmt.Errorf("%s revoke: not removing key credential %s: %s", Name, k.KeyID, why))
	}
	if k.holds(cur.cert) == matchYes {
		return refuse("its certificate is the one the current version holds")
	}
	if req.Retired.IsZero() {
		if req.HandWritten {
			return refuse("it is named only by the CredentialId tag of a version kvrotator did not write, and that version's value cannot be read to show it is its certificate; remove it by hand if it is really retired")
		}
		return nil
	}
	ret, err := parseValue(req.Retired)
	if err != nil {
		return refuse("the replaced version's value cannot be read as a certificate (" + err.Error() + "), so it cannot be shown to be that version's")
	}
	switch k.holds(ret.cert) {
	case matchYes:
		return nil
	case matchNo:
		return refuse("its certificate is not the replaced version's")
	}
	if req.HandWritten {
		return refuse("Graph's listing does not say which certificate it is, so it cannot be shown to be the replaced version's")
	}
	return nil
}

// removeKey removes keyID from the application with a proof signed by cur.
func (p *Provider) removeKey(ctx context.Context, cl *client, app application, cur signer, keyID string, listed bool) error {
	prf, err := proof(cur, app.ID, p.proofAudience, p.now())
	if err != nil {
		return providers.Permanent(fmt.Errorf("%s: signing the proof of possession: %w", Name, err))
	}
	return cl.removeKey(ctx, app.ID, keyID, prf, listed)
}

// currentSigner reads the current version's value: the certificate whose private key signs the proofs.
func currentSigner(op string, v providers.Value) (signer, error) {
	if v.IsZero() {
		return signer{}, providers.Permanent(fmt.Errorf("%s %s: the current version's value cannot be read, and only its certificate can sign the proof of possession Graph requires", Name, op))
	}
	s, err := parseValue(v)
	if err != nil {
		return signer{}, providers.Permanent(fmt.Errorf("%s %s: refusing the current version's value: %w; kvrotator signs Graph's proof of possession with the certificate the secret holds", Name, op, err))
	}
	return s, nil
}

// currentKey finds the key credential of the current version's certificate and checks that it can
// sign a proof now: a certificate of this application, within its dates, and the key the engine says
// the current version holds.
func currentKey(op string, app application, cur signer, req providers.Request, now time.Time) (keyCredential, error) {
	thumb := thumbprint(cur.cert)
	var k keyCredential
	found := false
	for _, kc := range app.KeyCredentials {
		if kc.holds(cur.cert) == matchYes {
			k, found = kc, true
			break
		}
	}
	if !found {
		return keyCredential{}, providers.Permanent(fmt.Errorf(
			"%s %s: refusing: the current version's certificate (thumbprint %s) is not a certificate of application %s; kvrotator adds and removes keys only with a proof of possession signed by a current certificate of the application, which the secret must hold",
			Name, op, thumb, app.ID))
	}
	if req.CredentialID != "" && !strings.EqualFold(k.KeyID, req.CredentialID) {
		return keyCredential{}, providers.ConfigErrorf(TagCredentialID, req.CredentialID,
			"the current version's certificate (thumbprint %s) is key credential %s of the application, not this one", thumb, k.KeyID)
	}
	if !k.validAt(now) || now.Before(cur.cert.NotBefore) || !now.Before(cur.cert.NotAfter) {
		return keyCredential{}, providers.Permanent(fmt.Errorf(
			"%s %s: the current version's certificate (key credential %s, thumbprint %s, valid %s to %s) is not valid now, and Graph's addKey and removeKey accept only a proof signed by a currently valid certificate; "+
				"add a new certificate to the application by hand and write it, with its private key, as a new version whose CredentialId is its key id",
			Name, op, k.KeyID, thumb, cur.cert.NotBefore.UTC().Format(time.RFC3339), cur.cert.NotAfter.UTC().Format(time.RFC3339)))
	}
	return k, nil
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
	// Bearer tokens, proofs and client assertions go where configured or nowhere: no redirect is
	// followed.
	api := func(service string, details func([]byte) httpx.Details, requestIDHeader string) httpx.Client {
		return httpx.Client{Provider: Name, Service: service, UserAgent: userAgent, HTTP: az.Transport, Now: p.now,
			MaxBody: maxResponseBytes, Messages: messages, Details: details, RequestIDHeader: requestIDHeader}
	}
	return &client{cred: az.Credential, graph: ep.Graph, scope: ep.Scope,
		authority: ep.Authority, timeout: p.timeout,
		graphAPI:  api("Microsoft Graph", graphDetails, "request-id"),
		tokenAPI:  api("the Entra ID token endpoint", tokenDetails, "x-ms-request-id"),
		transport: noRedirects(az.Transport)}, nil
}

// Provider must satisfy the contract, with revocation.
var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Revoker  = (*Provider)(nil)
)
