// Package sendgrid is kvrotator's provider for SendGrid API keys (v3 API, /v3/api_keys). The shape is
// create-then-revoke: a new key with the same scopes as the current one is created with an admin key,
// verified with a read-only call made with the new key, written to Key Vault as a new version, and the
// key the previous version held is deleted after the grace period by a later sweep.
//
// The admin key is itself a Key Vault secret of the same vault, named by a tag; it needs the
// api_keys.read, api_keys.create and api_keys.delete scopes. The calls:
//
//   - Create: GET /v3/api_keys (find keys left by an interrupted attempt, by name), DELETE each of them
//     (SendGrid returns a key's value only when it creates it, so a leftover cannot be reused), GET
//     /v3/api_keys/{CredentialId} (the current key's scopes), POST /v3/api_keys {name, scopes}. The new
//     key is named kvrotator-<secret>-<idempotency key>, so a retry finds what an interrupted attempt
//     made: never two live keys for one idempotency key.
//   - Verify: GET /v3/scopes with the new key (any key may read its own scopes). A 401 right after
//     creation is propagation: transient, and the engine checks again.
//   - Revoke: DELETE /v3/api_keys/{id}; 404 means already gone: success. The key the latest version
//     holds (by kvrotator's record or by its "SG.<id>.…" value) is never deleted, nor a key the
//     replaced version's value does not embed, nor the admin key.
//
// Statuses: 408, 429 and 5xx, timeouts and connection errors are transient (Error.RetryAfter exposes
// Retry-After or X-RateLimit-Reset); 400, 401 (admin key), 403 and the other 4xx, a redirect, and a
// success response that breaks SendGrid's documented contract are permanent. No retries happen inside
// the provider: the engine owns retries.
//
// Tags (names are case-insensitive):
//
//   - sendgrid-admin-secret (required): the NAME of the secret holding the admin key.
//   - sendgrid-api-url: the API base URL, default https://api.sendgrid.com; https only (http only for
//     127.0.0.1, localhost and ::1, for tests).
//   - sendgrid-scopes: comma-separated scopes, used only when the current key's scopes cannot be read
//     (no CredentialId, or that key is gone).
//   - sendgrid-on-behalf-of: a subuser's username (or "account-id <id>"); the admin calls act for it.
//   - CredentialId (the engine's tag): the api_key_id of the key the current version holds; when the
//     value is "SG.<id>.…", it must be that id.
//
// The admin secret, any API URL but SendGrid's own, and the subuser are references (References): the
// engine checks them against the operator's bindings before anything is read or sent.
package sendgrid

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/vocab"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "sendgrid"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) { return New(WithHTTPClient(env.HTTPClient)), nil })
}

// Limits and defaults.
const (
	// DefaultTimeout bounds each call to SendGrid.
	DefaultTimeout = 15 * time.Second
	// MaxKeys is SendGrid's documented limit of API keys per account; creating one more is a 403.
	MaxKeys = 100
	// MaxNameChars bounds the names the provider gives keys. SendGrid documents no limit; 100 is a
	// conservative choice that still fits any idempotency key.
	MaxNameChars = 100
	// NamePrefix starts the name of every key the provider creates.
	NamePrefix = "kvrotator-"
	// maxKeyBytes bounds a key value SendGrid returns (its keys are 69 characters).
	maxKeyBytes = 1024
)

// tagCredentialID is the engine's tag naming the key the current version holds (rotation.TagCredentialID;
// a provider does not import the engine).
const tagCredentialID = vocab.TagCredentialID

// keyIDPattern is what an api_key_id may contain: SendGrid's are base64url ("qfTQ6KG0QBiwWdJ0-pCLCA").
// It becomes the CredentialId tag and a URL path segment. It excludes ".", so a key ("SG.….…") put in
// CredentialId by mistake is never taken for an id, nor quoted in an error.
var keyIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`) })

// Provider creates, verifies and deletes SendGrid API keys. It holds no mutable state and is safe for
// concurrent use.
type Provider struct {
	http    httpx.Client
	timeout time.Duration
}

// Option configures a Provider.
type Option func(*Provider)

// WithHTTPClient makes the provider send its requests with c (a test server's client, a client with
// custom roots or a proxy). Redirects are never followed, whatever c's CheckRedirect says: the admin key
// goes to the configured URL or nowhere.
func WithHTTPClient(c *http.Client) Option {
	return func(p *Provider) {
		if c != nil {
			p.http.HTTP = c
		}
	}
}

// WithTimeout sets the per-call timeout (default DefaultTimeout).
func WithTimeout(d time.Duration) Option {
	return func(p *Provider) {
		if d > 0 {
			p.timeout = d
		}
	}
}

// WithClock sets the clock that turns X-RateLimit-Reset and Retry-After dates into durations (default
// time.Now: they are SendGrid's wall-clock times, so the engine's possibly simulated clock is not used).
func WithClock(now func() time.Time) Option {
	return func(p *Provider) {
		if now != nil {
			p.http.Now = now
		}
	}
}

// New returns a Provider that uses net/http's default transport (which honours HTTPS_PROXY and the
// system's roots) without following redirects.
func New(opts ...Option) *Provider {
	p := &Provider{
		http: httpx.Client{Provider: Name, Service: "SendGrid", UserAgent: userAgent, Now: time.Now,
			MaxBody: MaxResponseBytes, Messages: messages, Message: errorMessage, RetryAfter: retryAfter},
		timeout: DefaultTimeout,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeCreateRevoke: a new key is created; the old one is deleted after the grace
// period.
func (*Provider) Shape() providers.Shape { return providers.ShapeCreateRevoke }

// Validate checks the sendgrid-* tags without calling anything, and that the new key's scopes can be
// known: CredentialId names a key (whose scopes Create copies) or sendgrid-scopes lists them. Every
// problem is a *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	var errs []error
	if _, err := parseConfig(p); err != nil {
		errs = append(errs, err)
	}
	switch id := strings.TrimSpace(p.Get(tagCredentialID)); {
	case id != "" && !keyIDPattern().MatchString(id):
		// Not repeated: it may be a key put in the wrong tag.
		errs = append(errs, providers.ConfigErrorf(tagCredentialID, "", "not a SendGrid api_key_id (1-128 of A-Z a-z 0-9 _ -)"))
	case id == "" && strings.TrimSpace(p.Get(TagScopes)) == "":
		errs = append(errs, providers.ConfigErrorf(TagScopes, "",
			"missing, and needed: the secret has no %s naming the current key, so its scopes cannot be copied; set %s to the new key's scopes (comma-separated, e.g. mail.send), or %s to the current key's api_key_id",
			tagCredentialID, TagScopes, tagCredentialID))
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// References are the admin key's secret (sendgrid-admin-secret, kind secret), the API URL
// (sendgrid-api-url, kind url; SendGrid's own DefaultAPIURL needs no binding, any other URL does, the
// EU region's included) and the subuser or account the calls act for (sendgrid-on-behalf-of, kind
// account).
func (*Provider) References(p providers.Params) []providers.Reference {
	c, err := parseConfig(p)
	if err != nil {
		return nil // Validate reports it; the engine never gets here
	}
	refs := []providers.Reference{
		{Kind: providers.RefSecret, Tag: TagAdminSecret, Value: c.adminSecret},
		// SendGrid's own API, whether by default or written in the tag, needs no binding.
		{Kind: providers.RefURL, Tag: TagAPIURL, Value: c.base, Builtin: c.base == DefaultAPIURL},
	}
	// The account the calls act on: a subuser, or (no tag) the admin key's own account, which is
	// allowed unless a binding covering the secret restricts accounts.
	refs = append(refs, providers.Reference{Kind: providers.RefAccount, Tag: TagOnBehalfOf, Value: c.onBehalfOf, Builtin: c.onBehalfOf == ""})
	// Privileged scopes the new key would get (keys that manage keys, users or subusers) must be bound.
	for _, s := range c.scopes {
		if Privileged(s) {
			refs = append(refs, providers.Reference{Kind: providers.RefScope, Tag: TagScopes, Value: s})
		}
	}
	return refs
}

// privilegedPrefixes are SendGrid scope families that manage the account rather than use it: a key
// with them can create, read or delete other keys, users, subusers, teammates or credentials.
var privilegedPrefixes = []string{"api_keys.", "subusers.", "teammates.", "sso.", "credentials.", "user.", "access_settings.", "billing."}

// Privileged reports whether a SendGrid scope manages the account (api_keys.*, subusers.*, user.*, …).
// The provider grants such a scope to a new key only when sendgrid-scopes lists it and a binding
// allows it (allow.scope): a tag-writer must not be able to mint an admin key.
func Privileged(scope string) bool {
	for _, p := range privilegedPrefixes {
		if strings.HasPrefix(scope, p) {
			return true
		}
	}
	return false
}

// KeyName is the name the provider gives the key it creates for a secret and idempotency key:
// "kvrotator-<secret>-<idempotency key>", the secret name lower-cased (Key Vault names are
// case-insensitive, so every trigger derives the same name) and shortened if the whole would exceed
// MaxNameChars.
func KeyName(secret, idempotencyKey string) string {
	secret = strings.ToLower(secret)
	if room := MaxNameChars - len(NamePrefix) - 1 - len(idempotencyKey); len(secret) > room {
		secret = secret[:max(room, 0)]
	}
	return NamePrefix + secret + "-" + idempotencyKey
}

// Create makes the new key. It first deletes every key named KeyName(secret, IdempotencyKey) (left by
// an interrupted attempt: SendGrid shows a key's value only at creation, so it cannot be reused), then
// creates a key of that name with the scopes of the key the current version holds (CredentialId), or,
// when that key cannot be read, those of the sendgrid-scopes tag. The key the current version holds is
// never deleted, even if it bore that name. When the current value is a SendGrid key ("SG.<id>.…") and
// CredentialId names another key, it refuses before reading anything: a tag-writer must not make
// kvrotator copy the scopes of (and later delete) a key the secret does not hold.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	if req.IdempotencyKey == "" {
		return providers.Credential{}, providers.Permanent(errors.New("sendgrid create: the request has no idempotency key"))
	}
	if err := currentKeyMatches(req); err != nil {
		return providers.Credential{}, err
	}
	cfg, admin, err := p.prepare(ctx, req)
	if err != nil {
		return providers.Credential{}, err
	}
	secrets := []string{admin, req.Current.Reveal()}
	name := KeyName(req.Secret, req.IdempotencyKey)
	adminID, _ := embeddedID(admin)

	keys, err := p.listKeys(ctx, cfg, admin, secrets)
	if err != nil {
		return providers.Credential{}, err
	}
	live := len(keys)
	for _, k := range keys {
		if k.Name != name || strings.EqualFold(k.ID, req.CredentialID) || k.ID == adminID {
			continue
		}
		if err := p.deleteKey(ctx, cfg, admin, k.ID, secrets); err != nil {
			return providers.Credential{}, err
		}
		live--
	}

	scopes, err := p.scopesFor(ctx, cfg, admin, req, secrets)
	if err != nil {
		return providers.Credential{}, err
	}
	return p.createKey(ctx, cfg, admin, req, name, scopes, live, secrets)
}

// Verify reads the new key's own scopes with the new key (GET /v3/scopes, which any key may call). A
// 401 is transient: new keys take a moment to propagate, and the engine checks again until its verify
// timeout.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return err
	}
	if cred.Value.IsZero() {
		return providers.Permanent(errors.New("sendgrid verify: the credential has no value"))
	}
	c := call{op: "verify", method: http.MethodGet, path: "/v3/scopes", key: cred.Value.Reveal(),
		secrets: []string{cred.Value.Reveal(), req.Current.Reveal()}}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return p.failure(cfg, c, r, map[int]httpx.Verdict{
			http.StatusUnauthorized: {Reason: "SendGrid does not accept the new key yet (new keys take a moment to propagate); will check again", Transient: true},
			http.StatusForbidden:    {Reason: "SendGrid forbids the new key to read its own scopes"},
		})
	}
	var body struct {
		Scopes *[]string `json:"scopes"`
	}
	reason := r.DecodeObject(&body)
	if reason == "" && body.Scopes == nil {
		reason = "scopes is missing"
	}
	if reason != "" {
		return p.broken(cfg, c, r, reason).Classified()
	}
	return nil
}

// Revoke deletes the key credentialID (DELETE /v3/api_keys/{id}); 404 means it is already gone:
// success. Before reading or calling anything it refuses to delete the key the latest version holds
// (req.CredentialID, or the key embedded in req.Current's "SG.<id>.…" value) and, when req.Retired is a
// SendGrid key, any key but the one it embeds: the engine never asks for those, and this is the last
// line of defence against a credential id that names someone else's key. It also refuses to delete
// the admin key itself.
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	if !keyIDPattern().MatchString(credentialID) {
		return providers.Permanent(errors.New("sendgrid revoke: credential id is not a SendGrid api_key_id (1-128 of A-Z a-z 0-9 _ -)"))
	}
	if strings.EqualFold(credentialID, strings.TrimSpace(req.CredentialID)) {
		return providers.Permanent(fmt.Errorf("sendgrid revoke: refusing to delete key %s: the latest version of secret %q holds it", credentialID, req.Secret))
	}
	if id, ok := embeddedID(strings.TrimSpace(req.Current.Reveal())); ok && strings.EqualFold(id, credentialID) {
		return providers.Permanent(fmt.Errorf("sendgrid revoke: refusing to delete key %s: the latest version of secret %q holds it (its value is that key)", credentialID, req.Secret))
	}
	retiredID, retiredShaped := embeddedID(strings.TrimSpace(req.Retired.Reveal()))
	if retiredShaped && retiredID != credentialID {
		return providers.Permanent(fmt.Errorf("sendgrid revoke: refusing to delete key %s: the replaced version of secret %q holds key %s, not that one",
			credentialID, req.Secret, retiredID))
	}
	if req.HandWritten && !retiredShaped {
		return providers.Permanent(fmt.Errorf("sendgrid revoke: not deleting key %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and that version's value is not a SendGrid key that proves it; delete the key by hand if it is really retired", credentialID))
	}
	cfg, admin, err := p.prepare(ctx, req)
	if err != nil {
		return err
	}
	if req.HandWritten {
		// The value says "SG.<id>.…", but anyone can write that: only a key SendGrid accepts proves it.
		proven, err := p.retiredProves(ctx, cfg, admin, req, credentialID)
		if err != nil || !proven {
			return err // nil when the key is already gone: nothing to revoke
		}
	}
	if id, ok := embeddedID(admin); ok && id == credentialID {
		return providers.Permanent(fmt.Errorf("sendgrid revoke: refusing to delete key %s: it is the admin key in secret %q", credentialID, cfg.adminSecret))
	}
	return p.deleteKey(ctx, cfg, admin, credentialID, []string{admin, req.Current.Reveal()})
}

// retiredProves checks a hand-written version's claim that its value is key credentialID: the value
// must authenticate at SendGrid (GET /v3/scopes with it). When it does not, the key may simply be gone
// already (a revocation interrupted after the delete): the admin key looks it up, and a 404 means there
// is nothing left to do (false, nil). Otherwise the claim is refused, permanently.
func (p *Provider) retiredProves(ctx context.Context, cfg config, admin string, req providers.Request, credentialID string) (bool, error) {
	retired := strings.TrimSpace(req.Retired.Reveal())
	secrets := []string{admin, retired, req.Current.Reveal()}
	c := call{op: "prove the retired key", method: http.MethodGet, path: "/v3/scopes", key: retired, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return false, err
	}
	switch r.Status {
	case http.StatusOK:
		return true, nil
	case http.StatusUnauthorized, http.StatusForbidden:
	default:
		return false, p.failure(cfg, c, r, nil)
	}
	look := call{op: "look up key", method: http.MethodGet, path: "/v3/api_keys/" + url.PathEscape(credentialID),
		key: admin, onBehalfOf: cfg.onBehalfOf, secrets: secrets}
	r, err = p.do(ctx, cfg, look)
	if err != nil {
		return false, err
	}
	switch r.Status {
	case http.StatusNotFound:
		return false, nil
	case http.StatusOK:
		return false, providers.Permanent(fmt.Errorf("sendgrid revoke: not deleting key %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and that version's value does not authenticate at SendGrid; delete the key by hand if it is really retired", credentialID))
	}
	return false, p.failure(cfg, look, r, map[int]httpx.Verdict{http.StatusForbidden: {Reason: forbidden(cfg, "api_keys.read")}})
}

// embeddedID is the api_key_id inside a key shaped "SG.<id>.<secret>", as SendGrid's keys are. The
// shape is not part of the documented contract, so this serves only to refuse (deleting the admin key
// would stop every later rotation), never to decide anything else.
func embeddedID(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "SG.")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, ".")
	return id, ok && keyIDPattern().MatchString(id)
}

// currentKeyMatches refuses a CredentialID that is not the key the current value embeds, when the
// current value is shaped like a SendGrid key ("SG.<id>.<secret>"). Nothing is read or called first.
func currentKeyMatches(req providers.Request) error {
	want, ok := embeddedID(strings.TrimSpace(req.Current.Reveal()))
	got := strings.TrimSpace(req.CredentialID)
	if !ok || got == "" || got == want {
		return nil
	}
	shown := got
	if !keyIDPattern().MatchString(got) {
		shown = "" // not an id: perhaps a key put in the wrong tag; never repeated
	}
	return providers.ConfigErrorf(tagCredentialID, shown,
		"names another key than the one the secret's value is (api_key_id %s): kvrotator copies the scopes of the key %s names and deletes it after the grace period, so it must be the value's own key; set %s to %s",
		want, tagCredentialID, tagCredentialID, want)
}

// prepare reads the tags and the admin key.
func (p *Provider) prepare(ctx context.Context, req providers.Request) (config, string, error) {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return config{}, "", err
	}
	if strings.EqualFold(cfg.adminSecret, req.Secret) {
		return config{}, "", providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"names the secret being rotated; keep the admin key in a different secret (two admin keys can rotate each other)")
	}
	if req.Secrets == nil {
		return config{}, "", providers.Permanent(errors.New("sendgrid: the request has no secret reader for the admin key"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.adminSecret)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return config{}, "", fmt.Errorf("sendgrid: reading the admin key from secret %q (tag %s): %w", cfg.adminSecret, TagAdminSecret, err)
	}
	admin := strings.TrimSpace(v.Reveal())
	switch {
	case admin == "":
		return config{}, "", providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret, "the secret is empty; it must hold a SendGrid API key")
	case len(admin) > maxKeyBytes || !printable().MatchString(admin) || strings.Contains(admin, " "):
		// Never quoted: it is (or contains) the key.
		return config{}, "", providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"the secret's value is not a SendGrid API key (it has spaces, control or non-ASCII characters, or is over %d bytes)", maxKeyBytes)
	}
	return cfg, admin, nil
}

// keySummary is an entry of GET /v3/api_keys.
type keySummary struct {
	ID   string `json:"api_key_id"`
	Name string `json:"name"`
}

// listKeys lists the account's keys (names and ids; SendGrid never returns values here). The API pages
// by limit only; MaxKeys is the most an account can hold, so one page of MaxKeys holds them all.
func (p *Provider) listKeys(ctx context.Context, cfg config, admin string, secrets []string) ([]keySummary, error) {
	c := call{op: "list keys", method: http.MethodGet, path: "/v3/api_keys", query: url.Values{"limit": {strconv.Itoa(MaxKeys)}},
		key: admin, onBehalfOf: cfg.onBehalfOf, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, p.failure(cfg, c, r, map[int]httpx.Verdict{http.StatusForbidden: {Reason: forbidden(cfg, "api_keys.read")}})
	}
	var body struct {
		Result *[]keySummary `json:"result"`
	}
	reason := r.DecodeObject(&body)
	if reason == "" && body.Result == nil {
		reason = "result is missing"
	}
	if reason == "" {
		for i, k := range *body.Result {
			if !keyIDPattern().MatchString(k.ID) {
				reason = fmt.Sprintf("result[%d].api_key_id is missing or malformed", i)
				break
			}
		}
	}
	if reason != "" {
		return nil, p.broken(cfg, c, r, reason).Classified()
	}
	return *body.Result, nil
}

// deleteKey deletes a key; 404 (already gone) is success.
func (p *Provider) deleteKey(ctx context.Context, cfg config, admin, id string, secrets []string) error {
	c := call{op: "delete key", method: http.MethodDelete, path: "/v3/api_keys/" + url.PathEscape(id),
		key: admin, onBehalfOf: cfg.onBehalfOf, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return err
	}
	switch r.Status {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound:
		return nil
	}
	return p.failure(cfg, c, r, map[int]httpx.Verdict{http.StatusForbidden: {Reason: forbidden(cfg, "api_keys.delete")}})
}

// keyDetails is GET /v3/api_keys/{id}. SendGrid answers with the key's object; its OpenAPI document
// describes the same object wrapped in {"result":[…]}. Both are read.
type keyDetails struct {
	ID     string        `json:"api_key_id"`
	Name   string        `json:"name"`
	Scopes *[]string     `json:"scopes"`
	Result *[]keyDetails `json:"result"`
}

// scopesFor is the scopes the new key gets: those of the key the current version holds, or the
// sendgrid-scopes tag when that key cannot be read. It never returns an empty list: SendGrid gives a
// key created without scopes full access.
func (p *Provider) scopesFor(ctx context.Context, cfg config, admin string, req providers.Request, secrets []string) ([]string, error) {
	scopes, err := p.copyScopes(ctx, cfg, admin, req, secrets)
	if err != nil {
		return nil, err
	}
	var privileged []string
	for _, s := range scopes {
		if Privileged(s) && !slices.Contains(cfg.scopes, s) {
			privileged = append(privileged, s)
		}
	}
	if len(privileged) > 0 {
		return nil, providers.ConfigErrorf(TagScopes, "",
			"the key being replaced has scopes that manage the account (%s); kvrotator grants them to a new key only when %s lists them and a binding allows them (allow.scope)",
			strings.Join(privileged, ", "), TagScopes)
	}
	return scopes, nil
}

// copyScopes is the scopes of the key the current version holds, or the sendgrid-scopes tag when that
// key cannot be read.
func (p *Provider) copyScopes(ctx context.Context, cfg config, admin string, req providers.Request, secrets []string) ([]string, error) {
	id := strings.TrimSpace(req.CredentialID)
	fallback := func(why string) ([]string, error) {
		if len(cfg.scopes) > 0 {
			return cfg.scopes, nil
		}
		return nil, providers.ConfigErrorf(TagScopes, "",
			"missing, and needed: %s, so its scopes cannot be copied; set %s to the new key's scopes (comma-separated, e.g. mail.send)", why, TagScopes)
	}
	if id == "" {
		return fallback("the secret has no CredentialId naming the current key")
	}
	if !keyIDPattern().MatchString(id) {
		return nil, providers.ConfigErrorf(tagCredentialID, "", "not a SendGrid api_key_id (1-128 of A-Z a-z 0-9 _ -)")
	}
	c := call{op: "read key", method: http.MethodGet, path: "/v3/api_keys/" + url.PathEscape(id),
		key: admin, onBehalfOf: cfg.onBehalfOf, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return nil, err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return fallback(fmt.Sprintf("the current key %s no longer exists", id))
	default:
		return nil, p.failure(cfg, c, r, map[int]httpx.Verdict{http.StatusForbidden: {Reason: forbidden(cfg, "api_keys.read")}})
	}
	var body keyDetails
	reason := r.DecodeObject(&body)
	var scopes []string
	if reason == "" {
		scopes, reason = body.scopesOf(id)
	}
	if reason != "" {
		return nil, p.broken(cfg, c, r, reason).Classified()
	}
	if len(scopes) == 0 {
		return nil, p.http.Error(p.request(cfg, c), r.Status, fmt.Sprintf(
			"the current key %s has no scopes; refusing to create a key without scopes (SendGrid would give it full access)", id), true).Classified()
	}
	return scopes, nil
}

// scopesOf finds the scopes of key id in either form of the answer; the string says what breaks the
// contract.
func (d keyDetails) scopesOf(id string) ([]string, string) {
	obj := d
	if d.Scopes == nil && d.Result != nil {
		found := false
		for _, k := range *d.Result {
			if k.ID == id || (k.ID == "" && len(*d.Result) == 1) {
				obj, found = k, true
				break
			}
		}
		if !found {
			return nil, "result does not contain key " + id
		}
	}
	switch {
	case obj.ID != "" && obj.ID != id:
		return nil, "api_key_id is not the key asked for"
	case obj.Scopes == nil:
		return nil, "scopes is missing"
	}
	for i, s := range *obj.Scopes {
		if strings.TrimSpace(s) == "" {
			return nil, fmt.Sprintf("scopes[%d] is empty", i)
		}
	}
	return *obj.Scopes, ""
}

// createdKey is the answer to POST /v3/api_keys: the only time SendGrid shows a key's value.
type createdKey struct {
	APIKey string    `json:"api_key"`
	ID     string    `json:"api_key_id"`
	Name   string    `json:"name"`
	Scopes *[]string `json:"scopes"`
}

// createKey creates the key. live is how many keys the account holds now, to explain a 403.
func (p *Provider) createKey(ctx context.Context, cfg config, admin string, req providers.Request, name string, scopes []string, live int, secrets []string) (providers.Credential, error) {
	body, err := json.Marshal(struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}{name, scopes})
	if err != nil {
		return providers.Credential{}, providers.Permanent(fmt.Errorf("sendgrid create key: encoding the request: %w", err))
	}
	c := call{op: "create key", method: http.MethodPost, path: "/v3/api_keys", body: body,
		key: admin, onBehalfOf: cfg.onBehalfOf, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return providers.Credential{}, err
	}
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		why := forbidden(cfg, "api_keys.create")
		if live >= MaxKeys {
			why = fmt.Sprintf("the account holds %d API keys, SendGrid's limit is %d: delete unused keys (or %s)", live, MaxKeys, why)
		}
		return providers.Credential{}, p.failure(cfg, c, r, map[int]httpx.Verdict{http.StatusForbidden: {Reason: why}})
	}
	var k createdKey
	reason := r.DecodeObject(&k)
	if reason == "" && !keyIDPattern().MatchString(k.ID) {
		reason = "api_key_id is missing or malformed"
	}
	if reason != "" {
		// No usable id: the next attempt finds the key by its name and deletes it.
		return providers.Credential{}, p.broken(cfg, c, r, reason).Classified()
	}
	secrets = append(secrets, k.APIKey)
	switch {
	case k.APIKey == "":
		reason = "api_key is missing or empty"
	case len(k.APIKey) > maxKeyBytes || !printable().MatchString(k.APIKey) || strings.Contains(k.APIKey, " "):
		reason = "api_key is not a key (spaces, control or non-ASCII characters, or too long)"
	case k.APIKey == admin || k.APIKey == req.Current.Reveal():
		reason = "api_key is an existing key, not a new one"
	case strings.EqualFold(k.ID, req.CredentialID):
		reason = "api_key_id is the current key's"
	case k.Name != "" && k.Name != name:
		reason = fmt.Sprintf("name is not %q as asked", name)
	case k.Scopes != nil:
		if missing := without(scopes, *k.Scopes); len(missing) > 0 {
			reason = fmt.Sprintf("the key was granted fewer scopes than asked (missing %s); the admin key may lack them", strings.Join(missing, ", "))
		}
	}
	if reason != "" {
		e := p.broken(cfg, c, r, reason)
		if !strings.EqualFold(k.ID, req.CredentialID) {
			// Unusable, and recorded nowhere: delete it now (best effort; a retry would find it by name).
			if derr := p.deleteKey(ctx, cfg, admin, k.ID, secrets); derr != nil {
				e.Reason += "; deleting it failed too, a retry deletes it by name"
			}
		}
		return providers.Credential{}, e.Classified()
	}
	return providers.Credential{Value: providers.NewValue(k.APIKey), CredentialID: k.ID}, nil
}

// without is want minus have.
func without(want, have []string) []string {
	var missing []string
	for _, s := range want {
		if !slices.Contains(have, s) {
			missing = append(missing, s)
		}
	}
	return missing
}

// Provider must satisfy the contract.
var _ providers.Provider = (*Provider)(nil)
