// Package twilio is kvrotator's provider for Twilio API keys (the Key resource v1 at iam.twilio.com,
// which Twilio's documentation presents as the current way to manage Standard and Restricted keys; the
// 2010-04-01 Keys resource cannot make Restricted keys). The shape is create-then-revoke: a new key is
// created with admin credentials, verified with a read-only call made with the new key, written to Key
// Vault as a new version, and the key the previous version held is deleted after the grace period.
//
// The secret's value is the key as HTTP Basic credentials, "<key SID>:<key secret>" (SK…:…); its
// CredentialId is the key SID. The admin credentials are another secret of the same vault, named by a
// tag: a Main API key ("SK…:secret") or the Account SID and Auth Token ("AC…:token") — Standard and
// Restricted keys cannot manage keys. The calls (form-encoded bodies, HTTP Basic):
//
//   - Create: GET /v1/Keys?AccountSid=…&PageSize=1000 (find keys left by an interrupted attempt, by
//     FriendlyName), DELETE /v1/Keys/{sid} for each of them (a key's secret is shown only when it is
//     created, so a leftover cannot be reused), GET /v1/Keys/{CredentialId} (the current key's policy: a
//     Restricted key is replaced by a Restricted key with the same policy), POST /v1/Keys
//     (AccountSid, FriendlyName, [KeyType=restricted, Policy]). The FriendlyName is
//     kvrotator-<secret>-<idempotency key>, at most 64 characters, so a retry finds what an
//     interrupted attempt made: never two live keys for one idempotency key.
//   - Verify: a read with the new key at api.twilio.com: GET
//     /2010-04-01/Accounts/{AccountSid}/Messages.json?PageSize=1 (or Balance.json). Not
//     /Accounts/{AccountSid}.json: Standard keys may not read the Accounts resource (Twilio answers
//     20003, twilio/twilio-python#259). A 401 right after creation is propagation: transient.
//   - Revoke: DELETE /v1/Keys/{sid}; 404 means already gone: success. The key the latest version holds
//     (by kvrotator's record or by its "SK…:" value), a key the replaced version's value is not, and the
//     admin key are never deleted.
//
// Statuses: 408, 429 (error 20429, "safe to retry after backing off") and 5xx, timeouts and connection
// errors are transient (Error.RetryAfter exposes Retry-After when Twilio sends it); 400, 401 (20003),
// 403, 404 and the other 4xx, a redirect, and a success response that breaks Twilio's documented contract
// are permanent. No retries happen inside the provider: the engine owns retries.
//
// Tags (names are case-insensitive): twilio-admin-secret (required), twilio-account-sid (required),
// twilio-key-type (standard or restricted), twilio-verify (messages or balance), twilio-iam-url and
// twilio-api-url (base URLs, Twilio's by default), and the engine's CredentialId (the key SID the
// current version holds). The admin secret, the account, any URL but Twilio's own and the key type are
// references (References): the engine checks them against the operator's bindings before anything is
// read or sent.
package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/vocab"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "twilio"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) { return New(WithHTTPClient(env.HTTPClient)), nil })
}

// Limits and defaults.
const (
	// DefaultTimeout bounds each call to Twilio.
	DefaultTimeout = 15 * time.Second
	// MaxNameChars is Twilio's limit on a key's FriendlyName: "It can be up to 64 characters long."
	MaxNameChars = 64
	// NamePrefix starts the FriendlyName of every key the provider creates.
	NamePrefix = "kvrotator-"
	// PageSize is the page size of the key list (Twilio's maximum: "The default is 50, and the maximum
	// is 1000").
	PageSize = 1000
	// maxPages bounds the pages read from the key list.
	maxPages = 20
	// maxSecretBytes bounds a key secret or Auth Token (Twilio's are 32 characters).
	maxSecretBytes = 256
	// maxPolicyBytes bounds a restricted key's policy (at most 100 permissions).
	maxPolicyBytes = 64 << 10
)

// tagCredentialID is the engine's tag naming the key the current version holds.
const tagCredentialID = vocab.TagCredentialID

// Provider creates, verifies and deletes Twilio API keys. It holds no mutable state and is safe for
// concurrent use.
type Provider struct {
	http    httpx.Client
	timeout time.Duration
}

// Option configures a Provider.
type Option func(*Provider)

// WithHTTPClient makes the provider send its requests with c. Redirects are never followed, whatever
// c's CheckRedirect says: the credentials go to the configured URLs or nowhere.
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
		http: httpx.Client{Provider: Name, Service: "Twilio", UserAgent: userAgent, Now: time.Now,
			MaxBody: MaxResponseBytes, Messages: messages, Details: details, RequestIDHeader: requestIDHeader},
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

// Validate checks the twilio-* tags and CredentialId without calling anything. Every problem is a
// *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	var errs []error
	if _, err := parseConfig(p); err != nil {
		errs = append(errs, err)
	}
	if id := strings.TrimSpace(p.Get(tagCredentialID)); id != "" && !keySID().MatchString(id) {
		// Not repeated: it may be a secret put in the wrong tag.
		errs = append(errs, providers.ConfigErrorf(tagCredentialID, "", "not an API key SID (SK followed by 32 hexadecimal digits)"))
	}
	return providers.JoinErrors(errs)
}

// References are the admin credentials' secret (twilio-admin-secret, kind secret), the account whose
// keys are rotated (twilio-account-sid, kind account: always bound), the IAM and REST API base URLs
// (twilio-iam-url, twilio-api-url, kind url; Twilio's own need no binding) and the key type
// (twilio-key-type, kind scope: builtin, so allowed unless a binding covering the secret restricts
// scopes — then it must list "standard" or "restricted").
func (*Provider) References(p providers.Params) []providers.Reference {
	c, err := parseConfig(p)
	if err != nil {
		return nil // Validate reports it; the engine never gets here
	}
	return []providers.Reference{
		{Kind: providers.RefSecret, Tag: TagAdminSecret, Value: c.adminSecret},
		{Kind: providers.RefAccount, Tag: TagAccountSID, Value: c.account},
		{Kind: providers.RefURL, Tag: TagIAMURL, Value: c.iam, Builtin: c.iam == DefaultIAMURL},
		{Kind: providers.RefURL, Tag: TagAPIURL, Value: c.api, Builtin: c.api == DefaultAPIURL},
		{Kind: providers.RefScope, Tag: TagKeyType, Value: c.keyType, Builtin: true},
	}
}

// KeyName is the FriendlyName the provider gives the key it creates for a secret and idempotency key:
// "kvrotator-<secret>-<idempotency key>", the secret name lower-cased and shortened so that the whole
// fits Twilio's 64 characters.
func KeyName(secret, idempotencyKey string) string {
	secret = strings.ToLower(secret)
	if room := MaxNameChars - len(NamePrefix) - 1 - len(idempotencyKey); len(secret) > room {
		secret = secret[:max(room, 0)]
	}
	return NamePrefix + secret + "-" + idempotencyKey
}

// Create makes the new key. It first deletes every key of the account named KeyName(secret,
// IdempotencyKey) (left by an interrupted attempt), then creates a key of that name, of the type
// twilio-key-type says; a restricted key gets the policy of the key the current version holds. The
// key the current version holds is never deleted, even if it bore that name. When the current value
// is a Twilio key ("SK…:…") and CredentialId names another key, it refuses before reading anything.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	if req.IdempotencyKey == "" {
		return providers.Credential{}, providers.Permanent(errors.New("twilio create: the request has no idempotency key"))
	}
	if err := currentKeyMatches(req); err != nil {
		return providers.Credential{}, err
	}
	cfg, adm, err := p.prepare(ctx, req)
	if err != nil {
		return providers.Credential{}, err
	}
	secrets := adm.secrets(req.Current.Reveal())
	name := KeyName(req.Secret, req.IdempotencyKey)
	current := strings.TrimSpace(req.CredentialID)

	keys, err := p.listKeys(ctx, cfg, adm, secrets)
	if err != nil {
		return providers.Credential{}, err
	}
	for _, k := range keys {
		if k.FriendlyName != name || strings.EqualFold(k.SID, current) || strings.EqualFold(k.SID, adm.user) {
			continue
		}
		if err := p.deleteKey(ctx, cfg, adm, k.SID, secrets); err != nil {
			return providers.Credential{}, err
		}
	}

	policy, err := p.policyFor(ctx, cfg, adm, current, secrets)
	if err != nil {
		return providers.Credential{}, err
	}
	return p.createKey(ctx, cfg, adm, req, name, policy, secrets)
}

// Verify makes a read-only call with the new key at the REST API (twilio-verify: one message, or the
// balance). A 401 is transient: new keys take a moment to propagate, and the engine checks again until
// its verify timeout. A 403 is permanent: the key authenticates but its policy does not allow the call
// (Twilio: "The request used a Restricted API key that does not include permission for the resource").
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return err
	}
	sid, secret, ok := splitKey(cred.Value.Reveal())
	if !ok {
		return providers.Permanent(errors.New("twilio verify: the credential is not <key SID>:<secret>"))
	}
	c := verifyCall(cfg, sid, secret, secretParts(secret, req.Current.Reveal()))
	r, err := p.do(ctx, c)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return p.failure(cfg, c, r, map[int]httpx.Verdict{
			http.StatusUnauthorized: {Reason: "Twilio does not accept the new key yet (new keys take a moment to propagate); will check again", Transient: true},
			http.StatusForbidden: {Reason: fmt.Sprintf("the new key authenticates, but may not make the verification call (%s): a restricted key's policy must allow it; set %s to a call it may make",
				cfg.verify, TagVerify)},
		})
	}
	var body map[string]json.RawMessage
	if reason := r.DecodeObject(&body); reason != "" {
		return p.broken(c, r, reason).Classified()
	}
	return nil
}

// verifyCall is the read-only call twilio-verify chooses, made as sid:secret.
func verifyCall(cfg config, sid, secret string, secrets []string) call {
	c := call{op: "verify", method: http.MethodGet, base: cfg.api, user: sid, pass: secret, secrets: secrets}
	prefix := "/2010-04-01/Accounts/" + url.PathEscape(cfg.account)
	switch cfg.verify {
	case VerifyBalance:
		c.path = prefix + "/Balance.json"
	default:
		c.path, c.query = prefix+"/Messages.json", url.Values{"PageSize": {"1"}}
	}
	return c
}

// Revoke deletes the key credentialID (DELETE /v1/Keys/{sid}); 404 means it is already gone: success.
// Before calling anything it refuses the key the latest version holds (req.CredentialID, or the SID in
// req.Current's "SK…:…" value) and, when req.Retired is a Twilio key, any key but its SID. For a
// version kvrotator did not write (req.HandWritten) the replaced value must be "<credentialID>:…" and
// authenticate at Twilio. It also refuses the admin key itself.
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	if !keySID().MatchString(credentialID) {
		return providers.Permanent(errors.New("twilio revoke: credential id is not an API key SID (SK followed by 32 hexadecimal digits)"))
	}
	if strings.EqualFold(credentialID, strings.TrimSpace(req.CredentialID)) {
		return providers.Permanent(fmt.Errorf("twilio revoke: refusing to delete key %s: the latest version of secret %q holds it", credentialID, req.Secret))
	}
	if sid, _, ok := splitKey(req.Current.Reveal()); ok && strings.EqualFold(sid, credentialID) {
		return providers.Permanent(fmt.Errorf("twilio revoke: refusing to delete key %s: the latest version of secret %q holds it (its value is that key)", credentialID, req.Secret))
	}
	retiredSID, retiredSecret, retiredShaped := splitKey(req.Retired.Reveal())
	if retiredShaped && !strings.EqualFold(retiredSID, credentialID) {
		return providers.Permanent(fmt.Errorf("twilio revoke: refusing to delete key %s: the replaced version of secret %q holds key %s, not that one",
			credentialID, req.Secret, retiredSID))
	}
	if req.HandWritten && !retiredShaped {
		return providers.Permanent(fmt.Errorf("twilio revoke: not deleting key %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and that version's value is not a Twilio key (<SID>:<secret>) that proves it; delete the key by hand if it is really retired", credentialID))
	}
	cfg, adm, err := p.prepare(ctx, req)
	if err != nil {
		return err
	}
	if strings.EqualFold(adm.user, credentialID) {
		return providers.Permanent(fmt.Errorf("twilio revoke: refusing to delete key %s: it is the admin key in secret %q", credentialID, cfg.adminSecret))
	}
	secrets := adm.secrets(req.Current.Reveal(), req.Retired.Reveal())
	if req.HandWritten {
		proven, err := p.retiredProves(ctx, cfg, adm, retiredSID, retiredSecret, secrets)
		if err != nil || !proven {
			return err // nil when the key is already gone: nothing to revoke
		}
	}
	return p.deleteKey(ctx, cfg, adm, credentialID, secrets)
}

// retiredProves checks a hand-written version's claim that its value is key sid: the value must
// authenticate at Twilio (the verification call with it: 200, or 403 — authenticated, not permitted).
// When it does not, the key may simply be gone already (a revocation interrupted after the delete):
// the admin credentials look it up, and a 404 means there is nothing left to do (false, nil).
// Otherwise the claim is refused, permanently.
func (p *Provider) retiredProves(ctx context.Context, cfg config, adm admin, sid, secret string, secrets []string) (bool, error) {
	c := verifyCall(cfg, sid, secret, secrets)
	c.op = "prove the retired key"
	r, err := p.do(ctx, c)
	if err != nil {
		return false, err
	}
	switch r.Status {
	case http.StatusOK, http.StatusForbidden:
		return true, nil
	case http.StatusUnauthorized:
	default:
		return false, p.failure(cfg, c, r, nil)
	}
	_, found, err := p.getKey(ctx, cfg, adm, sid, "look up key", secrets)
	switch {
	case err != nil:
		return false, err
	case !found:
		return false, nil
	}
	return false, providers.Permanent(fmt.Errorf("twilio revoke: not deleting key %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
		"and that version's value does not authenticate at Twilio; delete the key by hand if it is really retired", sid))
}

// splitKey splits "<SID>:<secret>" with an API key SID; false when the value is not shaped so.
func splitKey(v string) (sid, secret string, ok bool) {
	sid, secret, ok = strings.Cut(strings.TrimSpace(v), ":")
	if !ok || !keySID().MatchString(sid) || secret == "" {
		return "", "", false
	}
	return sid, secret, true
}

// currentKeyMatches refuses a CredentialID that is not the key the current value is, when the current
// value is shaped like a Twilio key ("SK…:…"). Nothing is read or called first.
func currentKeyMatches(req providers.Request) error {
	want, _, ok := splitKey(req.Current.Reveal())
	got := strings.TrimSpace(req.CredentialID)
	if !ok || got == "" || strings.EqualFold(got, want) {
		return nil
	}
	shown := got
	if !keySID().MatchString(got) {
		shown = "" // not an SID: perhaps a secret put in the wrong tag; never repeated
	}
	return providers.ConfigErrorf(tagCredentialID, shown,
		"names another key than the one the secret's value is (%s): kvrotator copies the policy of the key %s names and deletes it after the grace period, so it must be the value's own key; set %s to %s",
		want, tagCredentialID, tagCredentialID, want)
}

// admin is the admin credentials: an Account SID and Auth Token, or a Main key's SID and secret.
type admin struct{ user, pass string }

// secrets are the admin secret and the secret parts of more values: what to redact from anything
// Twilio says back. SIDs are public (errors name them), so a value "SID:secret" contributes its secret
// only: a message that names the SID is not withheld for quoting part of it.
func (a admin) secrets(more ...string) []string {
	return append([]string{a.pass}, secretParts(more...)...)
}

// secretParts is, for each value, its secret when it is "<SID>:<secret>", else the whole value.
func secretParts(values ...string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if user, secret, ok := strings.Cut(strings.TrimSpace(v), ":"); ok && (keySID().MatchString(user) || accountSID().MatchString(user)) {
			v = secret
		}
		out = append(out, v)
	}
	return out
}

// prepare reads the tags and the admin credentials.
func (p *Provider) prepare(ctx context.Context, req providers.Request) (config, admin, error) {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return config{}, admin{}, err
	}
	if strings.EqualFold(cfg.adminSecret, req.Secret) {
		return config{}, admin{}, providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"names the secret being rotated; keep the admin credentials in a different secret (Standard keys cannot manage keys anyway)")
	}
	if req.Secrets == nil {
		return config{}, admin{}, providers.Permanent(errors.New("twilio: the request has no secret reader for the admin credentials"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.adminSecret)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return config{}, admin{}, fmt.Errorf("twilio: reading the admin credentials from secret %q (tag %s): %w", cfg.adminSecret, TagAdminSecret, err)
	}
	user, pass, ok := strings.Cut(strings.TrimSpace(v.Reveal()), ":")
	switch {
	case !ok || !(accountSID().MatchString(user) || keySID().MatchString(user)):
		// Never quoted: it is (or contains) the credentials.
		return config{}, admin{}, providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"the secret's value is not <SID>:<secret> with a Main API key SID (SK…) or the Account SID (AC…)")
	case pass == "" || len(pass) > maxSecretBytes || !printable().MatchString(pass):
		return config{}, admin{}, providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"the secret's value has no secret after the SID, or one with spaces, control or non-ASCII characters, or over %d bytes", maxSecretBytes)
	}
	return cfg, admin{user: user, pass: pass}, nil
}

// keyResource is a Key resource v1: {sid, friendly_name, date_created, date_updated, policy[, secret]}
// (the secret only in the answer that creates the key).
type keyResource struct {
	SID          string          `json:"sid"`
	FriendlyName string          `json:"friendly_name"`
	Secret       *string         `json:"secret"`
	Policy       json.RawMessage `json:"policy"`
}

// restricted reports whether the key has a policy (a Restricted key); null or absent is a Standard key.
func (k keyResource) restricted() bool {
	p := bytes.TrimSpace(k.Policy)
	return len(p) > 0 && !bytes.Equal(p, []byte("null"))
}

// listKeys lists the account's keys (SIDs and names; never secrets): GET /v1/Keys?AccountSid=…, then
// each meta.next_page_url, which must stay on the IAM base URL and path.
func (p *Provider) listKeys(ctx context.Context, cfg config, adm admin, secrets []string) ([]keyResource, error) {
	var out []keyResource
	c := call{op: "list keys", method: http.MethodGet, base: cfg.iam, path: "/v1/Keys",
		query: url.Values{"AccountSid": {cfg.account}, "PageSize": {strconv.Itoa(PageSize)}}, user: adm.user, pass: adm.pass, secrets: secrets}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, p.http.Error(p.request(c), 0, fmt.Sprintf("the account has more than %d pages of API keys; delete unused keys", maxPages), true).Classified()
		}
		r, err := p.do(ctx, c)
		if err != nil {
			return nil, err
		}
		if r.Status != http.StatusOK {
			return nil, p.failure(cfg, c, r, nil)
		}
		var body struct {
			Keys *[]keyResource `json:"keys"`
			Meta *struct {
				NextPageURL *string `json:"next_page_url"`
			} `json:"meta"`
		}
		reason := r.DecodeObject(&body)
		if reason == "" && body.Keys == nil {
			reason = "keys is missing"
		}
		if reason == "" {
			for i, k := range *body.Keys {
				if !keySID().MatchString(k.SID) {
					reason = fmt.Sprintf("keys[%d].sid is missing or malformed", i)
					break
				}
			}
		}
		var next string
		if reason == "" && body.Meta != nil && body.Meta.NextPageURL != nil {
			next = *body.Meta.NextPageURL
			if c.query, reason = nextPage(cfg, next); reason != "" {
				reason = "meta.next_page_url " + reason
			}
		}
		if reason != "" {
			return nil, p.broken(c, r, reason).Classified()
		}
		out = append(out, *body.Keys...)
		if next == "" {
			return out, nil
		}
	}
}

// nextPage checks a next_page_url (it must be the IAM base URL's /v1/Keys for the same account: the
// admin credentials go nowhere else) and returns its query; the string says what is wrong.
func nextPage(cfg config, next string) (url.Values, string) {
	u, err := url.Parse(next)
	if err != nil || u.User != nil || u.Fragment != "" {
		return nil, "is not a URL"
	}
	q := u.Query()
	u.RawQuery = ""
	if !strings.EqualFold(u.String(), cfg.iam+"/v1/Keys") {
		return nil, "leads elsewhere than " + cfg.iam + "/v1/Keys"
	}
	if q.Get("AccountSid") != cfg.account {
		return nil, "is for another account"
	}
	return q, ""
}

// getKey reads one key; false when Twilio says it does not exist (404).
func (p *Provider) getKey(ctx context.Context, cfg config, adm admin, sid, op string, secrets []string) (keyResource, bool, error) {
	c := call{op: op, method: http.MethodGet, base: cfg.iam, path: "/v1/Keys/" + url.PathEscape(sid), user: adm.user, pass: adm.pass, secrets: secrets}
	r, err := p.do(ctx, c)
	if err != nil {
		return keyResource{}, false, err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return keyResource{}, false, nil
	default:
		return keyResource{}, false, p.failure(cfg, c, r, nil)
	}
	var k keyResource
	reason := r.DecodeObject(&k)
	if reason == "" && !strings.EqualFold(k.SID, sid) {
		reason = "sid is not the key asked for"
	}
	if reason == "" && k.restricted() && !json.Valid(k.Policy) {
		reason = "policy is not JSON"
	}
	if reason != "" {
		return keyResource{}, false, p.broken(c, r, reason).Classified()
	}
	return k, true, nil
}

// deleteKey deletes a key; 404 (already gone) is success.
func (p *Provider) deleteKey(ctx context.Context, cfg config, adm admin, sid string, secrets []string) error {
	c := call{op: "delete key", method: http.MethodDelete, base: cfg.iam, path: "/v1/Keys/" + url.PathEscape(sid), user: adm.user, pass: adm.pass, secrets: secrets}
	r, err := p.do(ctx, c)
	if err != nil {
		return err
	}
	switch r.Status {
	case http.StatusNoContent, http.StatusOK, http.StatusNotFound:
		return nil
	}
	return p.failure(cfg, c, r, nil)
}

// policyFor is the policy of the new key: nil for a Standard key; for a Restricted key, the compact
// JSON of the policy of the key the current version holds. It refuses to change the type of key: a
// Restricted key is never replaced by a Standard one (that would widen it) unless the operator's
// bindings allow twilio-key-type=standard and the tag says so, nor a Standard key by a Restricted one
// without a policy to give it.
func (p *Provider) policyFor(ctx context.Context, cfg config, adm admin, current string, secrets []string) ([]byte, error) {
	var k keyResource
	found := false
	if current != "" {
		var err error
		if k, found, err = p.getKey(ctx, cfg, adm, current, "read key", secrets); err != nil {
			return nil, err
		}
	}
	restricted := cfg.keyType == KeyTypeRestricted
	switch {
	case !found && restricted:
		why := "the secret has no CredentialId naming the current key"
		if current != "" {
			why = "the current key " + current + " no longer exists"
		}
		return nil, providers.ConfigErrorf(TagKeyType, KeyTypeRestricted,
			"a restricted key gets the policy of the key it replaces, but %s; create the first restricted key in the Twilio Console and set %s to its SID", why, tagCredentialID)
	case !found:
		return nil, nil
	case k.restricted() && !restricted:
		return nil, providers.ConfigErrorf(TagKeyType, cfg.keyType,
			"the current key %s is a restricted key; kvrotator does not replace it with a standard key (which may call almost any Twilio API): set %s=%s", current, TagKeyType, KeyTypeRestricted)
	case !k.restricted() && restricted:
		return nil, providers.ConfigErrorf(TagKeyType, cfg.keyType,
			"the current key %s is a standard key, so there is no policy to give a restricted key; set %s=%s, or store a restricted key made in the Twilio Console", current, TagKeyType, KeyTypeStandard)
	case !restricted:
		return nil, nil
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, k.Policy); err != nil || compact.Len() > maxPolicyBytes || compact.Bytes()[0] != '{' {
		return nil, p.http.Error(p.request(call{op: "read key", method: http.MethodGet, base: cfg.iam, path: "/v1/Keys/" + url.PathEscape(current)}),
			http.StatusOK, "response breaks Twilio's contract: policy is not a JSON object (or is over 64 KiB)", true).Classified()
	}
	return compact.Bytes(), nil
}

// createKey creates the key: POST /v1/Keys, form-encoded.
func (p *Provider) createKey(ctx context.Context, cfg config, adm admin, req providers.Request, name string, policy []byte, secrets []string) (providers.Credential, error) {
	form := url.Values{"AccountSid": {cfg.account}, "FriendlyName": {name}}
	if policy != nil {
		form.Set("KeyType", KeyTypeRestricted)
		form.Set("Policy", string(policy))
	}
	c := call{op: "create key", method: http.MethodPost, base: cfg.iam, path: "/v1/Keys", form: form, user: adm.user, pass: adm.pass, secrets: secrets}
	r, err := p.do(ctx, c)
	if err != nil {
		return providers.Credential{}, err
	}
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		return providers.Credential{}, p.failure(cfg, c, r, nil)
	}
	var k keyResource
	reason := r.DecodeObject(&k)
	if reason == "" && !keySID().MatchString(k.SID) {
		reason = "sid is missing or malformed"
	}
	if reason != "" {
		// No usable SID: the next attempt finds the key by its name and deletes it.
		return providers.Credential{}, p.broken(c, r, reason).Classified()
	}
	secret := ""
	if k.Secret != nil {
		secret = *k.Secret
	}
	c.secrets = append(c.secrets, secret)
	value := k.SID + ":" + secret
	switch {
	case secret == "":
		reason = "secret is missing or empty"
	case len(secret) > maxSecretBytes || !printable().MatchString(secret):
		reason = "secret is not a key secret (spaces, control or non-ASCII characters, or too long)"
	case strings.EqualFold(k.SID, strings.TrimSpace(req.CredentialID)) || strings.EqualFold(k.SID, adm.user) || value == strings.TrimSpace(req.Current.Reveal()):
		reason = "sid is an existing key's, not a new one's"
	case k.FriendlyName != "" && k.FriendlyName != name:
		reason = fmt.Sprintf("friendly_name is not %q as asked", name)
	case policy != nil && !k.restricted():
		reason = "the key was created without the policy asked for (a standard key)"
	}
	if reason != "" {
		e := p.broken(c, r, reason)
		if !strings.EqualFold(k.SID, strings.TrimSpace(req.CredentialID)) && !strings.EqualFold(k.SID, adm.user) {
			// Unusable, and recorded nowhere: delete it now (best effort; a retry would find it by name).
			if derr := p.deleteKey(ctx, cfg, adm, k.SID, c.secrets); derr != nil {
				e.Reason += "; deleting it failed too, a retry deletes it by name"
			}
		}
		return providers.Credential{}, e.Classified()
	}
	return providers.Credential{Value: providers.NewValue(value), CredentialID: k.SID}, nil
}

// Provider must satisfy the contract.
var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Revoker  = (*Provider)(nil)
)
