// Package datadog is kvrotator's provider for Datadog API keys and application keys (v2 key
// management API). The shape is create-then-revoke: a new key is created with the admin keys, verified
// with a read-only call made with the new key, written to Key Vault as a new version, and the key the
// previous version held is deleted after the grace period by a later sweep.
//
// The admin keys (an API key and an application key, sent as DD-API-KEY and DD-APPLICATION-KEY) are
// themselves a Key Vault secret of the same vault, named by a tag, whose value is
// {"api_key":"…","application_key":"…"}. The calls, for the collection C of the key type (API keys:
// /api/v2/api_keys; application keys of the admin key's user: /api/v2/current_user/application_keys;
// of a service account: /api/v2/service_accounts/{id}/application_keys):
//
//   - Create: GET C?filter=<name> (find keys left by an interrupted attempt, by name), DELETE each of
//     them (an application key's value is shown only when it is created, so a leftover cannot be
//     reused; an API key is treated alike), for application keys GET C/{CredentialId} (the current
//     key's scopes), then POST C {"data":{"type","attributes":{"name"[,"scopes"]}}}. The new key is named
//     kvrotator-<secret>-<idempotency key>, so a retry finds what an interrupted attempt made: never
//     two live keys for one idempotency key.
//   - Verify: an API key with GET /api/v1/validate (DD-API-KEY: the new key); an application key with
//     GET /api/v2/validate_keys (the admin API key and the new application key). A 401 or 403 right
//     after creation is propagation: transient, and the engine checks again.
//   - Revoke: GET C/{id} then DELETE C/{id}; 404 means already gone: success. The key the latest version
//     holds (by kvrotator's record, or by its value or last four characters), a key that is not the
//     replaced version's, and the admin keys are never deleted.
//
// Statuses: 408, 429 and 5xx, timeouts and connection errors are transient (Error.RetryAfter exposes
// Retry-After or X-RateLimit-Reset); 400, 401, 403 (Datadog's answer to unknown keys and to missing
// permissions alike), 404 and the other 4xx, a redirect, and a success response that breaks Datadog's
// documented contract are permanent. No retries happen inside the provider: the engine owns retries.
//
// Tags (names are case-insensitive):
//
//   - datadog-admin-secret (required): the NAME of the secret holding the admin keys.
//   - datadog-site: the Datadog site (datadoghq.com by default; us3.datadoghq.com, us5.datadoghq.com,
//     datadoghq.eu, ap1.datadoghq.com, ap2.datadoghq.com, uk1.datadoghq.com, ddog-gov.com,
//     us2.ddog-gov.com), or a base URL (https only; http only for 127.0.0.1, localhost and ::1).
//   - datadog-key-type: api (default) or application.
//   - datadog-service-account: the id of the service account whose application keys are rotated;
//     without it, those of the user who owns the admin application key.
//   - datadog-scopes: comma-separated application-key scopes, used only when the current key's scopes
//     cannot be read (no CredentialId, or that key is gone).
//   - CredentialId (the engine's tag): the id of the key the current version holds.
//
// The admin secret, any URL but a Datadog site's own, and the owner of application keys (the admin
// key's user, or the service account) are references (References): the engine checks them against the
// operator's bindings before anything is read or sent.
package datadog

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
const Name = "datadog"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) { return New(WithHTTPClient(env.HTTPClient)), nil })
}

// Limits and defaults.
const (
	// DefaultTimeout bounds each call to Datadog.
	DefaultTimeout = 15 * time.Second
	// MaxNameChars bounds the names the provider gives keys. Datadog documents no limit; 100 is a
	// conservative choice that still fits any idempotency key.
	MaxNameChars = 100
	// NamePrefix starts the name of every key the provider creates.
	NamePrefix = "kvrotator-"
	// PageSize is the page size of the list calls (page[size]; Datadog's maximum is 100).
	PageSize = 100
	// maxPages bounds the pages read from one list: the name filter leaves a handful of keys.
	maxPages = 10
	// maxKeyBytes bounds a key value Datadog returns (API keys are 32 characters, application keys 40).
	maxKeyBytes = 256
)

// tagCredentialID is the engine's tag naming the key the current version holds.
const tagCredentialID = vocab.TagCredentialID

var (
	// keyIDPattern is what a key id may contain: Datadog's are UUIDs. It becomes the CredentialId tag
	// and a URL path segment; a key value (hexadecimal) would match too, so ids are never quoted in
	// errors unless the issuer confirmed them.
	keyIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`) })
	// printable is what a key value may contain.
	printable = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\x21-\x7E]+$`) })
)

// Provider creates, verifies and deletes Datadog API and application keys. It holds no mutable state
// and is safe for concurrent use.
type Provider struct {
	http    httpx.Client
	timeout time.Duration
}

// Option configures a Provider.
type Option func(*Provider)

// WithHTTPClient makes the provider send its requests with c. Redirects are never followed, whatever
// c's CheckRedirect says: the admin keys go to the configured URL or nowhere.
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

// WithClock sets the clock that turns Retry-After dates into durations (default time.Now).
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
		http: httpx.Client{Provider: Name, Service: "Datadog", UserAgent: userAgent, Now: time.Now,
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

// Validate checks the datadog-* tags and CredentialId without calling anything. Every problem is a
// *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	var errs []error
	if _, err := parseConfig(p); err != nil {
		errs = append(errs, err)
	}
	if id := strings.TrimSpace(p.Get(tagCredentialID)); id != "" && !keyIDPattern().MatchString(id) {
		// Not repeated: it may be a key put in the wrong tag.
		errs = append(errs, providers.ConfigErrorf(tagCredentialID, "", "not a Datadog key id (1-128 of A-Z a-z 0-9 _ -)"))
	}
	return providers.JoinErrors(errs)
}

// References are the admin keys' secret (datadog-admin-secret, kind secret), the API's base URL
// (datadog-site, kind url; a Datadog site's own API needs no binding, any other URL does) and whose
// keys are rotated (kind account): the organization for API keys (builtin: allowed unless a binding
// covering the secret restricts accounts), and for application keys the admin key's user
// ("current-user", tag datadog-key-type) or the service account (its id, tag datadog-service-account),
// which must always be bound: an application key carries its owner's permissions.
func (*Provider) References(p providers.Params) []providers.Reference {
	c, err := parseConfig(p)
	if err != nil {
		return nil // Validate reports it; the engine never gets here
	}
	refs := []providers.Reference{
		{Kind: providers.RefSecret, Tag: TagAdminSecret, Value: c.adminSecret},
		{Kind: providers.RefURL, Tag: TagSite, Value: c.base, Builtin: builtinURL(c.base)},
	}
	switch {
	case !c.application():
		refs = append(refs, providers.Reference{Kind: providers.RefAccount, Tag: TagKeyType, Value: OwnerOrganization, Builtin: true})
	case c.serviceAccount != "":
		refs = append(refs, providers.Reference{Kind: providers.RefAccount, Tag: TagServiceAccount, Value: c.serviceAccount})
	default:
		refs = append(refs, providers.Reference{Kind: providers.RefAccount, Tag: TagKeyType, Value: OwnerCurrentUser})
	}
	return refs
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

// Create makes the new key. It first deletes every key of the secret's kind and owner named
// KeyName(secret, IdempotencyKey) (left by an interrupted attempt), then creates a key of that name;
// an application key gets the scopes of the key the current version holds (CredentialId), or, when
// that key cannot be read, those of the datadog-scopes tag (none: the owner's permissions). The key
// the current version holds is never deleted, even if it bore that name.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	if req.IdempotencyKey == "" {
		return providers.Credential{}, providers.Permanent(errors.New("datadog create: the request has no idempotency key"))
	}
	if id := strings.TrimSpace(req.CredentialID); id != "" && !keyIDPattern().MatchString(id) {
		return providers.Credential{}, providers.ConfigErrorf(tagCredentialID, "", "not a Datadog key id (1-128 of A-Z a-z 0-9 _ -)")
	}
	cfg, adm, err := p.prepare(ctx, req)
	if err != nil {
		return providers.Credential{}, err
	}
	secrets := adm.secrets(req.Current.Reveal())
	name := KeyName(req.Secret, req.IdempotencyKey)

	keys, err := p.listKeys(ctx, cfg, adm, name, secrets)
	if err != nil {
		return providers.Credential{}, err
	}
	for _, k := range keys {
		if k.Attributes.Name != name || strings.EqualFold(k.ID, strings.TrimSpace(req.CredentialID)) {
			continue
		}
		if err := p.deleteKey(ctx, cfg, adm, k.ID, secrets); err != nil {
			return providers.Credential{}, err
		}
	}

	var scopes []string
	if cfg.application() {
		if scopes, err = p.scopesFor(ctx, cfg, adm, req, secrets); err != nil {
			return providers.Credential{}, err
		}
	}
	return p.createKey(ctx, cfg, adm, req, name, scopes, secrets)
}

// Verify checks the new key with a read-only call: an API key with GET /api/v1/validate (Datadog:
// "Check if the API key (not the APP key) is valid. If invalid, a 403 is returned."); an application
// key with GET /api/v2/validate_keys, the admin API key beside it ("Returns {"status": "ok"} on
// success, 401 or 403 otherwise"). A 401 or 403 is transient: new keys take a moment to propagate,
// and the engine checks again until its verify timeout.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return err
	}
	if cred.Value.IsZero() {
		return providers.Permanent(errors.New("datadog verify: the credential has no value"))
	}
	key := cred.Value.Reveal()
	if !cfg.application() {
		c := call{op: "verify", method: http.MethodGet, path: "/api/v1/validate", apiKey: key, secrets: []string{key, req.Current.Reveal()}}
		return p.validate(ctx, cfg, c, "valid")
	}
	_, adm, err := p.prepare(ctx, req)
	if err != nil {
		return err
	}
	c := call{op: "verify", method: http.MethodGet, path: "/api/v2/validate_keys", apiKey: adm.apiKey, appKey: key,
		secrets: adm.secrets(key, req.Current.Reveal())}
	return p.validate(ctx, cfg, c, "status")
}

// validate makes a validation call and reads its answer: {"valid":true} (field "valid") or
// {"status":"ok"} (field "status").
func (p *Provider) validate(ctx context.Context, cfg config, c call, field string) error {
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return p.failure(cfg, c, r, map[int]httpx.Verdict{
			http.StatusUnauthorized: {Reason: "Datadog does not accept the new key yet (new keys take a moment to propagate); will check again", Transient: true},
			http.StatusForbidden:    {Reason: "Datadog does not accept the new key yet (new keys take a moment to propagate); will check again", Transient: true},
		})
	}
	var body struct {
		Valid  *bool   `json:"valid"`
		Status *string `json:"status"`
	}
	reason := r.DecodeObject(&body)
	switch {
	case reason != "":
	case field == "valid" && body.Valid == nil:
		reason = "valid is missing"
	case field == "valid" && !*body.Valid:
		return p.http.Error(p.request(cfg, c), r.Status, "Datadog says the new key is not valid (yet); will check again", false)
	case field == "status" && body.Status == nil:
		reason = "status is missing"
	case field == "status" && *body.Status != "ok":
		reason = fmt.Sprintf("status is %q, not \"ok\"", quoteShort(*body.Status))
	}
	if reason != "" {
		return p.broken(cfg, c, r, reason).Classified()
	}
	return nil
}

// Revoke deletes the key credentialID; 404 means it is already gone: success. Before calling anything
// it refuses the key the latest version holds by kvrotator's record (req.CredentialID); it then reads
// the key (GET) and refuses, before deleting, a key whose value (or, when Datadog shows only its last
// four characters, those) is the latest version's or an admin key's, and a key that is not the value
// req.Retired holds. For a version kvrotator did not write (req.HandWritten) the key must be proven to
// be req.Retired's: Datadog shows the key and it is req.Retired, or it shows its last four characters,
// they are req.Retired's, and req.Retired authenticates at Datadog as a key of that kind.
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	if !keyIDPattern().MatchString(credentialID) {
		return providers.Permanent(errors.New("datadog revoke: credential id is not a Datadog key id (1-128 of A-Z a-z 0-9 _ -)"))
	}
	if strings.EqualFold(credentialID, strings.TrimSpace(req.CredentialID)) {
		return providers.Permanent(fmt.Errorf("datadog revoke: refusing to delete key %s: the latest version of secret %q holds it", credentialID, req.Secret))
	}
	retired := strings.TrimSpace(req.Retired.Reveal())
	if req.HandWritten && retired == "" {
		return providers.Permanent(fmt.Errorf("datadog revoke: not deleting key %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and that version's value cannot be read to prove it; delete the key by hand if it is really retired", credentialID))
	}
	cfg, adm, err := p.prepare(ctx, req)
	if err != nil {
		return err
	}
	secrets := adm.secrets(req.Current.Reveal(), retired)
	k, found, err := p.getKey(ctx, cfg, adm, credentialID, "look up key", secrets)
	if err != nil || !found {
		return err // nil when the key is already gone: nothing to revoke
	}
	if err := p.revocable(ctx, cfg, adm, req, k, secrets); err != nil {
		return err
	}
	return p.deleteKey(ctx, cfg, adm, credentialID, secrets)
}

// revocable checks, against what Datadog shows of key k, that it may be deleted (see Revoke).
func (p *Provider) revocable(ctx context.Context, cfg config, adm admin, req providers.Request, k keyObject, secrets []string) error {
	id := k.ID
	current := strings.TrimSpace(req.Current.Reveal())
	retired := strings.TrimSpace(req.Retired.Reveal())
	refuse := func(format string, args ...any) error {
		return providers.Permanent(fmt.Errorf("datadog revoke: refusing to delete key %s: "+format, append([]any{id}, args...)...))
	}
	if v := k.value(); v != "" {
		switch {
		case v == current:
			return refuse("the latest version of secret %q holds it (its value is that key)", req.Secret)
		case v == adm.apiKey || v == adm.appKey:
			return refuse("it is an admin key in secret %q", cfg.adminSecret)
		case retired != "" && v != retired:
			return refuse("the replaced version of secret %q holds another key", req.Secret)
		}
		return nil
	}
	// Datadog shows only the last four characters (application keys in One-Time-Read mode, service
	// accounts' keys): compare those.
	last4 := k.Attributes.Last4
	switch {
	case last4 == "" && req.HandWritten:
		return refuse("it is named only by the CredentialId tag of a version kvrotator did not write, and Datadog shows nothing of it that proves it is that version's; delete the key by hand if it is really retired")
	case last4 == "":
		return nil
	case last4 == lastFour(current):
		return refuse("it ends like the key the latest version of secret %q holds (…%s), so kvrotator cannot tell them apart; delete it by hand if it is really retired", req.Secret, last4)
	case last4 == lastFour(adm.ownKey(cfg)):
		return refuse("it ends like the admin key in secret %q (…%s), so kvrotator cannot tell them apart; delete it by hand if it is really retired", cfg.adminSecret, last4)
	case retired != "" && last4 != lastFour(retired):
		return refuse("the replaced version of secret %q holds another key (Datadog's key ends …%s, that version's value does not)", req.Secret, last4)
	}
	if !req.HandWritten {
		return nil
	}
	ok, err := p.authenticates(ctx, cfg, adm, retired, secrets)
	switch {
	case err != nil:
		return err
	case !ok:
		return refuse("it is named only by the CredentialId tag of a version kvrotator did not write, and that version's value does not authenticate at Datadog; delete the key by hand if it is really retired")
	}
	return nil
}

// authenticates reports whether key is a live key of cfg's kind: an API key that GET /api/v1/validate
// accepts, or an application key that GET /api/v2/validate_keys accepts beside the admin API key.
func (p *Provider) authenticates(ctx context.Context, cfg config, adm admin, key string, secrets []string) (bool, error) {
	c := call{op: "prove the retired key", method: http.MethodGet, path: "/api/v1/validate", apiKey: key, secrets: secrets}
	if cfg.application() {
		c.path, c.apiKey, c.appKey = "/api/v2/validate_keys", adm.apiKey, key
	}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return false, err
	}
	switch r.Status {
	case http.StatusOK:
		return true, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return false, nil
	}
	return false, p.failure(cfg, c, r, nil)
}

// lastFour is the last four characters of a key, as Datadog's last4 shows them ("" for a shorter one).
func lastFour(key string) string {
	if len(key) < 4 {
		return ""
	}
	return key[len(key)-4:]
}

// admin is the admin keys.
type admin struct{ apiKey, appKey string }

// secrets are the admin keys and more: the values to redact from anything Datadog says back.
func (a admin) secrets(more ...string) []string { return append([]string{a.apiKey, a.appKey}, more...) }

// ownKey is the admin key of cfg's kind: the one a key being deleted must not be.
func (a admin) ownKey(cfg config) string {
	if cfg.application() {
		return a.appKey
	}
	return a.apiKey
}

// prepare reads the tags and the admin keys.
func (p *Provider) prepare(ctx context.Context, req providers.Request) (config, admin, error) {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return config{}, admin{}, err
	}
	if strings.EqualFold(cfg.adminSecret, req.Secret) {
		return config{}, admin{}, providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"names the secret being rotated; keep the admin keys in a different secret")
	}
	if req.Secrets == nil {
		return config{}, admin{}, providers.Permanent(errors.New("datadog: the request has no secret reader for the admin keys"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.adminSecret)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return config{}, admin{}, fmt.Errorf("datadog: reading the admin keys from secret %q (tag %s): %w", cfg.adminSecret, TagAdminSecret, err)
	}
	adm, reason := parseAdmin(v.Reveal())
	if reason != "" {
		// Never quoted: it is (or contains) the keys.
		return config{}, admin{}, providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret, "%s", reason)
	}
	return cfg, adm, nil
}

// parseAdmin reads the admin secret's value, {"api_key":"…","application_key":"…"}; the string says
// what is wrong with it, without quoting it.
func parseAdmin(value string) (admin, string) {
	var raw struct {
		APIKey *string `json:"api_key"`
		AppKey *string `json:"application_key"`
	}
	dec := json.NewDecoder(strings.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil || dec.More() {
		return admin{}, `the secret's value is not {"api_key":"…","application_key":"…"} (JSON with exactly those two fields)`
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"api_key", raw.APIKey}, {"application_key", raw.AppKey}} {
		switch {
		case f.v == nil || strings.TrimSpace(*f.v) == "":
			return admin{}, "the secret's " + f.name + " is missing or empty"
		case len(strings.TrimSpace(*f.v)) > maxKeyBytes || !printable().MatchString(strings.TrimSpace(*f.v)):
			return admin{}, fmt.Sprintf("the secret's %s is not a Datadog key (it has spaces, control or non-ASCII characters, or is over %d bytes)", f.name, maxKeyBytes)
		}
	}
	return admin{apiKey: strings.TrimSpace(*raw.APIKey), appKey: strings.TrimSpace(*raw.AppKey)}, ""
}

// collection is the path of the keys of cfg's kind and owner.
func collection(cfg config) string {
	switch {
	case !cfg.application():
		return "/api/v2/api_keys"
	case cfg.serviceAccount != "":
		return "/api/v2/service_accounts/" + url.PathEscape(cfg.serviceAccount) + "/application_keys"
	}
	return "/api/v2/current_user/application_keys"
}

// resourceType is the JSON:API type of cfg's keys.
func resourceType(cfg config) string {
	if cfg.application() {
		return "application_keys"
	}
	return "api_keys"
}

// keyObject is one key as Datadog's v2 API returns it: {"id","type","attributes":{…}}. The key value
// (attributes.key) comes only in some answers: always when a key is created, and on GET for API keys
// and (outside One-Time-Read mode) current-user application keys; lists show last4 only.
type keyObject struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Attributes struct {
		Key    *string   `json:"key"`
		Last4  string    `json:"last4"`
		Name   string    `json:"name"`
		Scopes *[]string `json:"scopes"`
	} `json:"attributes"`
}

// value is the key's value, "" when Datadog did not show it.
func (k keyObject) value() string {
	if k.Attributes.Key == nil {
		return ""
	}
	return *k.Attributes.Key
}

// listKeys lists the keys of cfg's kind and owner whose name matches Datadog's filter for name (names,
// ids and last4; never values). Datadog pages with page[size] (at most 100) and page[number].
func (p *Provider) listKeys(ctx context.Context, cfg config, adm admin, name string, secrets []string) ([]keyObject, error) {
	var out []keyObject
	for page := 0; page < maxPages; page++ {
		q := url.Values{"filter": {name}, "page[size]": {strconv.Itoa(PageSize)}, "page[number]": {strconv.Itoa(page)}}
		c := call{op: "list keys", method: http.MethodGet, path: collection(cfg), query: q, apiKey: adm.apiKey, appKey: adm.appKey, secrets: secrets}
		r, err := p.do(ctx, cfg, c)
		if err != nil {
			return nil, err
		}
		if r.Status != http.StatusOK {
			return nil, p.failure(cfg, c, r, nil)
		}
		var body struct {
			Data *[]keyObject `json:"data"`
		}
		reason := r.DecodeObject(&body)
		if reason == "" && body.Data == nil {
			reason = "data is missing"
		}
		if reason == "" {
			for i, k := range *body.Data {
				if !keyIDPattern().MatchString(k.ID) {
					reason = fmt.Sprintf("data[%d].id is missing or malformed", i)
					break
				}
			}
		}
		if reason != "" {
			return nil, p.broken(cfg, c, r, reason).Classified()
		}
		out = append(out, *body.Data...)
		if len(*body.Data) < PageSize {
			break
		}
	}
	return out, nil
}

// getKey reads one key; false when Datadog says it does not exist (404).
func (p *Provider) getKey(ctx context.Context, cfg config, adm admin, id, op string, secrets []string) (keyObject, bool, error) {
	c := keyCall(cfg, adm, http.MethodGet, id, op, secrets)
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return keyObject{}, false, err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return keyObject{}, false, nil
	default:
		return keyObject{}, false, p.failure(cfg, c, r, nil)
	}
	var body struct {
		Data *keyObject `json:"data"`
	}
	reason := r.DecodeObject(&body)
	switch {
	case reason != "":
	case body.Data == nil:
		reason = "data is missing"
	case !strings.EqualFold(body.Data.ID, id):
		reason = "data.id is not the key asked for"
	}
	if reason != "" {
		return keyObject{}, false, p.broken(cfg, c, r, reason).Classified()
	}
	return *body.Data, true, nil
}

// keyCall is a call about key id, made with the admin keys.
func keyCall(cfg config, adm admin, method, id, op string, secrets []string) call {
	return call{op: op, method: method, path: collection(cfg) + "/" + url.PathEscape(id), apiKey: adm.apiKey, appKey: adm.appKey, secrets: secrets}
}

// deleteKey deletes a key; 404 (already gone) is success.
func (p *Provider) deleteKey(ctx context.Context, cfg config, adm admin, id string, secrets []string) error {
	c := keyCall(cfg, adm, http.MethodDelete, id, "delete key", secrets)
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return err
	}
	switch r.Status {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound:
		return nil
	}
	return p.failure(cfg, c, r, nil)
}

// scopesFor is the scopes the new application key gets: those of the key the current version holds,
// or the datadog-scopes tag when that key cannot be read. nil means no scopes: the key has its owner's
// permissions, which the binding of the owner allows.
func (p *Provider) scopesFor(ctx context.Context, cfg config, adm admin, req providers.Request, secrets []string) ([]string, error) {
	id := strings.TrimSpace(req.CredentialID)
	if id == "" {
		return cfg.scopes, nil
	}
	k, found, err := p.getKey(ctx, cfg, adm, id, "read key", secrets)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return cfg.scopes, nil
	case k.Attributes.Scopes == nil:
		return nil, nil
	}
	for i, s := range *k.Attributes.Scopes {
		if !scopeName().MatchString(s) {
			c := keyCall(cfg, adm, http.MethodGet, id, "read key", secrets)
			return nil, p.broken(cfg, c, &httpx.Response{Status: http.StatusOK}, fmt.Sprintf("attributes.scopes[%d] is not a permission name", i)).Classified()
		}
	}
	return *k.Attributes.Scopes, nil
}

// createKey creates the key.
func (p *Provider) createKey(ctx context.Context, cfg config, adm admin, req providers.Request, name string, scopes []string, secrets []string) (providers.Credential, error) {
	type attributes struct {
		Name string `json:"name"`
		// Scopes is omitted for nil (no scopes: the owner's permissions), and sent as [] for an empty
		// list, so a key whose scope list is empty is never replaced by an unscoped one.
		Scopes *[]string `json:"scopes,omitempty"`
	}
	var body struct {
		Data struct {
			Type       string     `json:"type"`
			Attributes attributes `json:"attributes"`
		} `json:"data"`
	}
	body.Data.Type, body.Data.Attributes = resourceType(cfg), attributes{Name: name}
	if scopes != nil {
		body.Data.Attributes.Scopes = &scopes
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return providers.Credential{}, providers.Permanent(fmt.Errorf("datadog create key: encoding the request: %w", err))
	}
	c := call{op: "create key", method: http.MethodPost, path: collection(cfg), body: raw, apiKey: adm.apiKey, appKey: adm.appKey, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return providers.Credential{}, err
	}
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		return providers.Credential{}, p.failure(cfg, c, r, nil)
	}
	var got struct {
		Data *keyObject `json:"data"`
	}
	reason := r.DecodeObject(&got)
	if reason == "" && (got.Data == nil || !keyIDPattern().MatchString(got.Data.ID)) {
		reason = "data.id is missing or malformed"
	}
	if reason != "" {
		// No usable id: the next attempt finds the key by its name and deletes it.
		return providers.Credential{}, p.broken(cfg, c, r, reason).Classified()
	}
	k := *got.Data
	key := k.value()
	c.secrets = append(c.secrets, key)
	switch {
	case key == "":
		reason = "attributes.key is missing or empty"
	case len(key) > maxKeyBytes || !printable().MatchString(key):
		reason = "attributes.key is not a key (spaces, control or non-ASCII characters, or too long)"
	case key == adm.apiKey || key == adm.appKey || key == strings.TrimSpace(req.Current.Reveal()):
		reason = "attributes.key is an existing key, not a new one"
	case strings.EqualFold(k.ID, strings.TrimSpace(req.CredentialID)):
		reason = "data.id is the current key's"
	case k.Type != "" && k.Type != resourceType(cfg):
		reason = fmt.Sprintf("data.type is not %q", resourceType(cfg))
	case k.Attributes.Name != "" && k.Attributes.Name != name:
		reason = fmt.Sprintf("attributes.name is not %q as asked", name)
	case k.Attributes.Scopes != nil:
		if missing := without(scopes, *k.Attributes.Scopes); len(missing) > 0 {
			reason = fmt.Sprintf("the key was granted fewer scopes than asked (missing %s)", strings.Join(missing, ", "))
		}
	}
	if reason != "" {
		e := p.broken(cfg, c, r, reason)
		if !strings.EqualFold(k.ID, strings.TrimSpace(req.CredentialID)) {
			// Unusable, and recorded nowhere: delete it now (best effort; a retry would find it by name).
			if derr := p.deleteKey(ctx, cfg, adm, k.ID, c.secrets); derr != nil {
				e.Reason += "; deleting it failed too, a retry deletes it by name"
			}
		}
		return providers.Credential{}, e.Classified()
	}
	return providers.Credential{Value: providers.NewValue(key), CredentialID: k.ID}, nil
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
var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Revoker  = (*Provider)(nil)
)
