// Package webhook is kvrotator's provider for in-house services that issue credentials themselves. Such
// a service implements three HTTPS endpoints under one base URL; kvrotator calls them. The shape is
// create-then-revoke: the service issues a new credential, kvrotator verifies it, writes it to Key Vault
// as a new version, and after the grace period revokes the credential the previous version held.
//
// The contract (README.md in this directory has it in full, with a signature check to copy):
//
//   - POST {base}/create {"action":"create","idempotencyKey","vault","secret","version","credentialId"}
//     → 200 or 201 {"credentialId","value","expiresAt"?}. The service MUST be idempotent on
//     idempotencyKey: while the credential it issued for a key is live, the same key returns that same
//     credential, never a second one. This is what makes a rotation that crashed half-way safe to run
//     again. 202 means "still issuing; ask again later with the same key".
//   - POST {base}/verify {"action":"verify","idempotencyKey","vault","secret","credentialId","value"}
//     → 200 {"valid":true}. {"valid":false} means "not working yet": kvrotator checks again until its
//     verify timeout (propagation).
//   - POST {base}/revoke {"action":"revoke","vault","secret","credentialId","retiredSha256"?,
//     "currentSha256"} → 200, 202 or 204; 404 and 410 (already gone) count as success. The digests are
//     the hex SHA-256 of the replaced and of the latest version's values: the service refuses (409) a
//     credential whose value is not the retired one, or is the current one.
//
// Every request carries Content-Type: application/json, X-Kvrotator-Timestamp (unix seconds) and
// X-Kvrotator-Signature: sha256=<hex HMAC-SHA256(key, timestamp + "." + body)>; create and verify also
// carry Idempotency-Key. The service checks the signature, rejects timestamps more than 5 minutes off,
// and checks that the body's action names the endpoint it arrived at (the signature covers the body, not
// the path).
//
// Statuses: 408, 429 and 5xx, timeouts and connection errors are transient (the engine retries; the
// Retry-After header is exposed by Error.RetryAfter); any other 4xx, a redirect, and a success response
// that breaks the contract (not JSON, over 64 KiB, a missing or mistyped field, a bad credential id) are
// permanent. No retries happen inside the provider.
//
// The provider reads these tags (names are case-insensitive):
//
//   - webhook-url (required): the base URL, https only; http only for 127.0.0.1, localhost and ::1.
//     No user information, query or fragment. When absent, ProviderAddress (the Azure samples' tag) is
//     the base URL; when both are set, webhook-url wins.
//   - webhook-signing-secret (required): the NAME of another secret in the same vault whose value is
//     the HMAC key (at least 16 bytes). The key itself never appears in tags, logs or errors.
//   - webhook-timeout-seconds: the per-call timeout, 1 to 60; default 10.
//
// The base URL and the signing secret are references (References): the engine checks both against the
// operator's bindings before anything is read or sent.
//
// A secret rotated every 30 days by an in-house token service carries these tags:
//
//	rotation-provider      = webhook
//	ValidityPeriodDays     = 30
//	CredentialId           = tok-2041
//	webhook-url            = https://tokens.internal.example.com/kvrotator
//	webhook-signing-secret = tokens-webhook-key
package webhook

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "webhook"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) { return New(WithHTTPClient(env.HTTPClient)), nil })
}

// Provider calls an in-house service's create, verify and revoke endpoints. It holds no mutable state
// and is safe for concurrent use.
type Provider struct {
	http httpx.Client
}

// Option configures a Provider.
type Option func(*Provider)

// WithHTTPClient makes the provider send its requests with c (a test server's client, a client with
// custom roots or mTLS). The provider never follows redirects, whatever c's CheckRedirect says: a
// signed request goes to the configured URL or nowhere. The per-call timeout of the
// webhook-timeout-seconds tag applies on top of c's own Timeout.
func WithHTTPClient(c *http.Client) Option {
	return func(p *Provider) {
		if c != nil {
			p.http.HTTP = c
		}
	}
}

// WithClock sets the clock that stamps X-Kvrotator-Timestamp and reads Retry-After dates. The default is
// time.Now; the engine's (possibly simulated) Request.Now is deliberately not used, since the service
// compares the timestamp with its own wall clock.
func WithClock(now func() time.Time) Option {
	return func(p *Provider) {
		if now != nil {
			p.http.Now = now
		}
	}
}

// clientTimeout is a backstop above the longest per-call timeout; the tag's timeout is what applies.
const clientTimeout = (MaxTimeoutSeconds + 5) * time.Second

// New returns a Provider that uses net/http's default transport (which honours HTTPS_PROXY and the
// system's roots) without following redirects.
func New(opts ...Option) *Provider {
	p := &Provider{http: httpx.Client{Provider: Name, Service: "the service", UserAgent: userAgent,
		HTTP: &http.Client{Timeout: clientTimeout}, Now: time.Now, MaxBody: MaxResponseBytes,
		Messages: messages, Message: errorMessage, TimeoutSetting: TagTimeout}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// now is the provider's clock.
func (p *Provider) now() time.Time { return p.http.Now() }

// Shape is providers.ShapeCreateRevoke: the service issues a new credential; the old one is revoked
// after the grace period.
func (*Provider) Shape() providers.Shape { return providers.ShapeCreateRevoke }

// Validate checks the webhook-* tags (and ProviderAddress when it stands in for webhook-url) without
// calling anything. Every problem is a *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	_, err := parseConfig(p, "")
	return err
}

// The request bodies. "action" repeats the endpoint inside the signed body, so a captured create
// request cannot be replayed against /revoke.
type (
	createRequest struct {
		Action         string `json:"action"`
		IdempotencyKey string `json:"idempotencyKey"`
		Vault          string `json:"vault"`
		Secret         string `json:"secret"`
		Version        string `json:"version"`
		CredentialID   string `json:"credentialId"`
	}
	verifyRequest struct {
		Action         string `json:"action"`
		IdempotencyKey string `json:"idempotencyKey"`
		Vault          string `json:"vault"`
		Secret         string `json:"secret"`
		CredentialID   string `json:"credentialId"`
		Value          string `json:"value"`
	}
	revokeRequest struct {
		Action       string `json:"action"`
		Vault        string `json:"vault"`
		Secret       string `json:"secret"`
		CredentialID string `json:"credentialId"`
		// RetiredSHA256 is the hex SHA-256 of the replaced version's value: the service refuses (409)
		// unless it is the digest of credentialId's value. Absent when that version could not be read.
		RetiredSHA256 string `json:"retiredSha256,omitempty"`
		// CurrentSHA256 is the hex SHA-256 of the latest version's value: the service refuses (409) to
		// revoke the credential whose value it is.
		CurrentSHA256 string `json:"currentSha256,omitempty"`
	}
)

// Create asks the service for a new credential, sending req.IdempotencyKey; the service returns the same
// credential for the same key, so a retry after a crash finds what the interrupted attempt made. The
// current value is never sent. The response is checked strictly: a credential id of 1-256 characters
// from A-Z a-z 0-9 . _ : -, a value of 1 byte to 25 KB that differs from the current one, an optional
// RFC 3339 expiresAt in the future.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	cfg, key, err := p.prepare(ctx, req)
	if err != nil {
		return providers.Credential{}, err
	}
	if req.IdempotencyKey == "" {
		return providers.Credential{}, providers.Permanent(errors.New("webhook create: the request has no idempotency key"))
	}
	c := call{
		endpoint: endpointCreate, idemKey: req.IdempotencyKey,
		body: createRequest{Action: endpointCreate, IdempotencyKey: req.IdempotencyKey, Vault: req.Vault,
			Secret: req.Secret, Version: req.Version, CredentialID: req.CredentialID},
		secrets: []string{string(key), req.Current.Reveal()},
	}
	hr, r, err := p.do(ctx, cfg, key, c, http.StatusOK, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return providers.Credential{}, err
	}
	if r.Status == http.StatusAccepted {
		return providers.Credential{}, p.http.Fail(hr, r, httpx.Verdict{
			Reason: "the service is still issuing the credential; will ask again with the same idempotency key", Transient: true})
	}
	now := req.Now
	if now.IsZero() {
		now = p.now()
	}
	cred, reason := parseCreated(r, req, now)
	if reason != "" {
		return providers.Credential{}, p.http.Fail(hr, r, httpx.Verdict{Reason: "response breaks the contract: " + reason})
	}
	return cred, nil
}

// credentialIDPattern is what a credential id may contain; it becomes the CredentialId tag.
var credentialIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._:-]+$`) })

// checkCredentialID says what is wrong with a credential id, or "". It never quotes the id: a service
// that puts the value in the wrong field must not get it logged.
func checkCredentialID(id string) string {
	switch {
	case id == "":
		return "credentialId is missing or empty"
	case len(id) > MaxCredentialIDChars:
		return fmt.Sprintf("credentialId has %d characters; at most %d", len(id), MaxCredentialIDChars)
	case !credentialIDPattern().MatchString(id):
		return "credentialId has characters outside A-Z a-z 0-9 . _ : -"
	}
	return ""
}

// parseCreated reads a create response; the string says what breaks the contract, "" if nothing.
func parseCreated(r *httpx.Response, req providers.Request, now time.Time) (providers.Credential, string) {
	obj, reason := object(r)
	if reason != "" {
		return providers.Credential{}, reason
	}
	id, ok := stringField(obj, "credentialId")
	if !ok {
		return providers.Credential{}, "credentialId is not a string"
	}
	if reason := checkCredentialID(id); reason != "" {
		return providers.Credential{}, reason
	}
	value, ok := stringField(obj, "value")
	switch {
	case !ok:
		return providers.Credential{}, "value is not a string"
	case value == "":
		return providers.Credential{}, "value is missing or empty"
	case len(value) > MaxValueBytes:
		return providers.Credential{}, fmt.Sprintf("value is %d bytes; at most %d fit in a Key Vault secret", len(value), MaxValueBytes)
	case value == req.Current.Reveal():
		return providers.Credential{}, "value is the current value; the service must issue a new one"
	case req.CredentialID != "" && id == req.CredentialID:
		return providers.Credential{}, "credentialId is the current credential's; the service must issue a new one"
	}
	cred := providers.Credential{Value: providers.NewValue(value), CredentialID: id}
	exp, ok := stringField(obj, "expiresAt")
	if !ok {
		return providers.Credential{}, "expiresAt is not a string"
	}
	if exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return providers.Credential{}, "expiresAt is not an RFC 3339 time"
		}
		if !t.After(now) {
			return providers.Credential{}, "expiresAt is not in the future"
		}
		cred.ExpiresAt = &t
	}
	return cred, ""
}

// Verify asks the service whether the new credential works. {"valid":false} is a transient error: the
// engine checks again, with backoff, until its verify timeout, which covers propagation delays. A
// response that breaks the contract, or a 4xx other than 408 and 429, is permanent.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, key, err := p.prepare(ctx, req)
	if err != nil {
		return err
	}
	if cred.CredentialID == "" || cred.Value.IsZero() {
		return providers.Permanent(errors.New("webhook verify: the credential has no id or no value"))
	}
	c := call{
		endpoint: endpointVerify, idemKey: req.IdempotencyKey,
		body: verifyRequest{Action: endpointVerify, IdempotencyKey: req.IdempotencyKey, Vault: req.Vault,
			Secret: req.Secret, CredentialID: cred.CredentialID, Value: cred.Value.Reveal()},
		secrets: []string{string(key), cred.Value.Reveal(), req.Current.Reveal()},
	}
	hr, r, err := p.do(ctx, cfg, key, c, http.StatusOK)
	if err != nil {
		return err
	}
	malformed := func(reason string) error {
		return p.http.Fail(hr, r, httpx.Verdict{Reason: "response breaks the contract: " + reason})
	}
	obj, reason := object(r)
	if reason != "" {
		return malformed(reason)
	}
	raw, found := obj["valid"]
	if !found || string(raw) == "null" {
		return malformed("valid is missing")
	}
	var valid bool
	if json.Unmarshal(raw, &valid) != nil {
		return malformed("valid is not a boolean")
	}
	if !valid {
		return p.http.Fail(hr, r, httpx.Verdict{Reason: "the service says the credential does not work (yet); will check again", Transient: true})
	}
	return nil
}

// References are the service's base URL (webhook-url, or ProviderAddress; kind url) and the secret
// holding the signing key (webhook-signing-secret; kind secret): an operator binds both.
func (*Provider) References(p providers.Params) []providers.Reference {
	c, err := parseConfig(p, "")
	if err != nil {
		return nil // Validate reports it; the engine never gets here
	}
	tag := TagURL
	if strings.TrimSpace(p.Get(TagURL)) == "" {
		tag = TagAddress
	}
	return []providers.Reference{
		{Kind: providers.RefURL, Tag: tag, Value: c.base},
		{Kind: providers.RefSecret, Tag: TagSigningSecret, Value: c.signingRef},
	}
}

// Revoke asks the service to retire credentialID. 404 and 410 mean it is already gone: success. The
// body of a success response is ignored.
//
// Before reading or sending anything it refuses to revoke the credential the latest version holds
// (req.CredentialID), and a retired value that is the current value. The request carries the proof
// the service needs to refuse the rest: retiredSha256, the SHA-256 of the replaced version's value
// (the credential being revoked must be the one with that value), and currentSha256, that of the
// latest version's value (which must not be revoked). A service that answers 409 to a mismatch makes
// the revocation fail permanently.
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	if reason := checkCredentialID(credentialID); reason != "" {
		return providers.Permanent(errors.New("webhook revoke: " + reason))
	}
	switch {
	case strings.EqualFold(credentialID, strings.TrimSpace(req.CredentialID)):
		return providers.Permanent(fmt.Errorf("webhook revoke: refusing to revoke credential %s: the latest version of secret %q holds it", credentialID, req.Secret))
	case !req.Retired.IsZero() && req.Retired.Reveal() == req.Current.Reveal():
		return providers.Permanent(fmt.Errorf("webhook revoke: refusing to revoke credential %s: the replaced version's value is the latest version's", credentialID))
	case req.HandWritten && req.Retired.IsZero():
		// The id is only a tag's word and there is no value whose digest lets the service check it.
		return providers.Permanent(fmt.Errorf("webhook revoke: not revoking credential %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and that version can no longer be read to prove it; revoke it by hand if it is really retired", credentialID))
	}
	cfg, key, err := p.prepare(ctx, req)
	if err != nil {
		return err
	}
	body := revokeRequest{Action: endpointRevoke, Vault: req.Vault, Secret: req.Secret, CredentialID: credentialID,
		RetiredSHA256: valueDigest(req.Retired), CurrentSHA256: valueDigest(req.Current)}
	c := call{endpoint: endpointRevoke, body: body, secrets: []string{string(key), req.Current.Reveal(), req.Retired.Reveal()}}
	_, _, err = p.do(ctx, cfg, key, c, http.StatusOK, http.StatusAccepted, http.StatusNoContent, http.StatusNotFound, http.StatusGone)
	return err
}

// valueDigest is the lower-case hex SHA-256 of a credential value, as the revoke request carries it;
// "" for no value.
func valueDigest(v providers.Value) string {
	if v.IsZero() {
		return ""
	}
	sum := sha256.Sum256([]byte(v.Reveal()))
	return hex.EncodeToString(sum[:])
}

// prepare reads the tags and the signing key.
func (p *Provider) prepare(ctx context.Context, req providers.Request) (config, []byte, error) {
	cfg, err := parseConfig(req.Params, req.Address)
	if err != nil {
		return config{}, nil, err
	}
	if strings.EqualFold(cfg.signingRef, req.Secret) {
		return config{}, nil, providers.ConfigErrorf(TagSigningSecret, cfg.signingRef,
			"names the secret being rotated; the signing key must be kept in a different secret")
	}
	if req.Secrets == nil {
		return config{}, nil, providers.Permanent(errors.New("webhook: the request has no secret reader for the signing key"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.signingRef)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return config{}, nil, fmt.Errorf("webhook: reading the signing key from secret %q (tag %s): %w", cfg.signingRef, TagSigningSecret, err)
	}
	if v.Len() < MinSigningKeyBytes {
		return config{}, nil, providers.ConfigErrorf(TagSigningSecret, cfg.signingRef,
			"the secret's value is %d bytes; a signing key needs at least %d", v.Len(), MinSigningKeyBytes)
	}
	return cfg, []byte(v.Reveal()), nil
}

// Provider must satisfy the contract.
var _ providers.Provider = (*Provider)(nil)
