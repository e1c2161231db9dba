// Package openai is kvrotator's provider for OpenAI project API keys, held by project service accounts
// and managed through the organization's Administration API (/v1/organization/…). The shape is
// create-then-revoke: a new service account, and with it a new API key, is created in the project
// with an admin key; the key is verified with a read-only call made with it, written to Key Vault as a
// new version, and the service account the previous version held is deleted after the grace period by
// a later sweep (which deletes its key with it).
//
// One service account per rotation: OpenAI returns a service account's key only in the answer that
// creates it, and offers no call that deletes one key of a service account, so revoking the old key
// means deleting its service account. The calls:
//
//   - Create: GET …/projects/{project}/service_accounts (paged: find accounts left by an interrupted
//     attempt, by name), DELETE each of them (their key was shown once, to an attempt that did not
//     survive: it is lost, so the account is an orphan), POST …/service_accounts {"name"} → {"id",
//     "api_key":{"id","value"}}. The account is named kvrotator-<secret>-<idempotency key>, so a retry
//     finds what an interrupted attempt made: never two live accounts for one idempotency key.
//   - Verify: GET /v1/models with the new key, a read-only call any project key may make. A 401 right
//     after creation is propagation: transient, and the engine checks again.
//   - Revoke: GET …/service_accounts/{id}, then DELETE …/service_accounts/{id}; 404 means already gone:
//     success. The account the latest version holds is never deleted, nor one kvrotator did not create
//     (unless a hand-stored version's value proves it is that account's key, see Revoke).
//
// Statuses: 408, 429 (unless it says the quota is exhausted) and 5xx, timeouts and connection errors
// are transient (Error.RetryAfter exposes retry-after-ms, Retry-After or x-ratelimit-reset-*); 400,
// 401 (admin key), 403 and the other 4xx, a 429 with insufficient_quota, a redirect, and a success
// response that breaks OpenAI's documented contract are permanent. No retries happen inside the
// provider: the engine owns retries.
//
// Tags (names are case-insensitive):
//
//   - openai-admin-secret (required): the NAME of the secret holding the admin key (sk-admin-…).
//   - openai-project (required): the project id (proj_…) whose service accounts are rotated.
//   - openai-api-url: the API base URL without /v1, default https://api.openai.com; https only (http
//     only for 127.0.0.1, localhost and ::1, for tests).
//   - openai-key-lifetime-days: the new key's lifetime (1-365 days, OpenAI's expires_in_seconds).
//   - CredentialId (the engine's tag): the id of the service account the current version's key
//     belongs to.
//
// The admin secret, the project and any API URL but OpenAI's own are references (References): the
// engine checks them against the operator's bindings before anything is read or sent.
package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
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
const Name = "openai"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) { return New(WithHTTPClient(env.HTTPClient)), nil })
}

// Limits and defaults.
const (
	// DefaultTimeout bounds each call to OpenAI.
	DefaultTimeout = 15 * time.Second
	// MaxNameChars bounds the names the provider gives service accounts. OpenAI documents no limit;
	// 64 is a conservative choice that still fits any idempotency key (the secret's name is shortened).
	MaxNameChars = 64
	// NamePrefix starts the name of every service account the provider creates.
	NamePrefix = "kvrotator-"
	// PageSize is how many items each list call asks for: OpenAI's maximum limit.
	PageSize = 100
	// MaxPages bounds a listing: 100 pages of 100.
	MaxPages = 100
	// maxKeyBytes bounds a key value OpenAI returns (its keys are under 200 characters).
	maxKeyBytes = 1024
	// minRevealed is the fewest trailing characters a redacted key value must show to be compared with
	// a value (OpenAI shows the last four).
	minRevealed = 4
)

// tagCredentialID is the engine's tag naming the service account the current version's key belongs to.
const tagCredentialID = vocab.TagCredentialID

// accountIDPattern is what a service account id may contain ("svc_acct_…" in OpenAI's documentation). It
// becomes the CredentialId tag and a URL path segment.
var accountIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`) })

// validAccountID reports whether id can be a service account id. A key ("sk-…") put in CredentialId by
// mistake is not one, and is never quoted.
func validAccountID(id string) bool {
	return accountIDPattern().MatchString(id) && !strings.HasPrefix(id, "sk-")
}

// Provider creates, verifies and deletes OpenAI project service accounts and their keys. It holds no
// mutable state and is safe for concurrent use.
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

// WithClock sets the clock that turns Retry-After dates into durations (default time.Now: they are
// OpenAI's wall-clock times, so the engine's possibly simulated clock is not used).
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
		http: httpx.Client{Provider: Name, Service: "OpenAI", UserAgent: userAgent, Now: time.Now, MaxBody: MaxResponseBytes,
			Messages: messages, Details: errorDetails, RequestIDHeader: requestIDHeader, RetryAfter: retryAfter},
		timeout: DefaultTimeout,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeCreateRevoke: a new service account and key are created; the old account is
// deleted after the grace period.
func (*Provider) Shape() providers.Shape { return providers.ShapeCreateRevoke }

// Validate checks the openai-* tags and CredentialId without calling anything. Every problem is a
// *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	var errs []error
	if _, err := parseConfig(p); err != nil {
		errs = append(errs, err)
	}
	if id := strings.TrimSpace(p.Get(tagCredentialID)); id != "" && !validAccountID(id) {
		// Not repeated: it may be a key put in the wrong tag.
		errs = append(errs, providers.ConfigErrorf(tagCredentialID, "",
			"not an OpenAI service account id (1-128 of A-Z a-z 0-9 _ -, e.g. svc_acct_…); it names the service account, never the key"))
	}
	return providers.JoinErrors(errs)
}

// References are the admin key's secret (openai-admin-secret, kind secret), the project whose service
// accounts are created and deleted (openai-project, kind account: always bound, the admin key reaches
// every project of the organization) and the API URL (openai-api-url, kind url; OpenAI's own
// DefaultAPIURL needs no binding, any other URL does).
func (*Provider) References(p providers.Params) []providers.Reference {
	c, err := parseConfig(p)
	if err != nil {
		return nil // Validate reports it; the engine never gets here
	}
	return []providers.Reference{
		{Kind: providers.RefSecret, Tag: TagAdminSecret, Value: c.adminSecret},
		{Kind: providers.RefAccount, Tag: TagProject, Value: c.project},
		// OpenAI's own API, whether by default or written in the tag, needs no binding.
		{Kind: providers.RefURL, Tag: TagAPIURL, Value: c.base, Builtin: c.base == DefaultAPIURL},
	}
}

// ServiceAccountName is the name the provider gives the service account it creates for a secret and
// idempotency key: "kvrotator-<secret>-<idempotency key>", the secret name lower-cased (Key Vault names
// are case-insensitive, so every trigger derives the same name) and shortened if the whole would exceed
// MaxNameChars. The idempotency key alone tells rotations apart, so shortening is harmless.
func ServiceAccountName(secret, idempotencyKey string) string {
	secret = strings.ToLower(secret)
	if room := MaxNameChars - len(NamePrefix) - 1 - len(idempotencyKey); len(secret) > room {
		secret = secret[:max(room, 0)]
	}
	return NamePrefix + secret + "-" + idempotencyKey
}

// Create makes the new service account and key. It first deletes every service account of the project
// named ServiceAccountName(secret, IdempotencyKey): one left by an interrupted attempt, whose key OpenAI
// showed only to that attempt and which is therefore lost. Then it creates a service account of that
// name, whose key is the new credential and whose id the new CredentialId. The service account the
// current version holds is never deleted, even if it bore that name.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	if req.IdempotencyKey == "" {
		return providers.Credential{}, providers.Permanent(errors.New("openai create: the request has no idempotency key"))
	}
	current := strings.TrimSpace(req.CredentialID)
	if current != "" && !validAccountID(current) {
		return providers.Credential{}, providers.ConfigErrorf(tagCredentialID, "", "not an OpenAI service account id (1-128 of A-Z a-z 0-9 _ -)")
	}
	cfg, admin, err := p.prepare(ctx, req)
	if err != nil {
		return providers.Credential{}, err
	}
	secrets := secretsOf(admin, req.Current.Reveal())
	name := ServiceAccountName(req.Secret, req.IdempotencyKey)

	accounts, err := p.listServiceAccounts(ctx, cfg, admin, secrets)
	if err != nil {
		return providers.Credential{}, err
	}
	for _, sa := range accounts {
		if sa.Name != name || strings.EqualFold(sa.ID, current) {
			continue
		}
		if err := p.deleteServiceAccount(ctx, cfg, admin, sa.ID, secrets); err != nil {
			return providers.Credential{}, err
		}
	}
	return p.createServiceAccount(ctx, cfg, admin, req, name, secrets)
}

// Verify lists the models with the new key (GET /v1/models, read-only, open to any project key). A 401
// is transient: new keys take a moment to propagate, and the engine checks again until its verify
// timeout.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return err
	}
	key := strings.TrimSpace(cred.Value.Reveal())
	if key == "" {
		return providers.Permanent(errors.New("openai verify: the credential has no value"))
	}
	c := call{op: "verify", method: http.MethodGet, path: "/v1/models", key: key, secrets: secretsOf(key, req.Current.Reveal())}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return p.failure(cfg, c, r, map[int]httpx.Verdict{
			http.StatusUnauthorized: {Reason: "OpenAI does not accept the new key yet (new keys take a moment to propagate); will check again", Transient: true},
			http.StatusForbidden:    {Reason: fmt.Sprintf("OpenAI forbids the new key to list models: project %s restricts what its service accounts may do, or blocks this network", cfg.project)},
		})
	}
	if reason := modelList(r); reason != "" {
		return p.broken(cfg, c, r, reason).Classified()
	}
	return nil
}

// modelList checks a GET /v1/models answer: {"object":"list","data":[…]}; the string says what breaks
// the contract.
func modelList(r *httpx.Response) string {
	var body struct {
		Data *[]json.RawMessage `json:"data"`
	}
	reason := r.DecodeObject(&body)
	if reason == "" && body.Data == nil {
		reason = "data is missing"
	}
	return reason
}

// Revoke deletes the service account credentialID (DELETE …/service_accounts/{id}), and with it its
// key; 404 means it is already gone: success. Before reading or calling anything it refuses to delete
// the service account the latest version holds (req.CredentialID), and any when the replaced version's
// value is the latest version's (the same key). It then deletes only a service account kvrotator created
// (named kvrotator-…), except when the replaced version was written by hand (its CredentialId is only a
// tag's word): then the replaced value must prove it is that account's key (retiredProves).
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	if !validAccountID(credentialID) {
		return providers.Permanent(errors.New("openai revoke: credential id is not an OpenAI service account id (1-128 of A-Z a-z 0-9 _ -)"))
	}
	if strings.EqualFold(credentialID, strings.TrimSpace(req.CredentialID)) {
		return providers.Permanent(fmt.Errorf("openai revoke: refusing to delete service account %s: the latest version of secret %q holds its key", credentialID, req.Secret))
	}
	retired := strings.TrimSpace(req.Retired.Reveal())
	if retired != "" && retired == strings.TrimSpace(req.Current.Reveal()) {
		return providers.Permanent(fmt.Errorf("openai revoke: refusing to delete service account %s: the replaced version of secret %q holds the same key as the latest version",
			credentialID, req.Secret))
	}
	if req.HandWritten && retired == "" {
		return providers.Permanent(fmt.Errorf("openai revoke: not deleting service account %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and that version's value cannot be read to prove it; delete the service account by hand if it is really retired", credentialID))
	}
	cfg, admin, err := p.prepare(ctx, req)
	if err != nil {
		return err
	}
	secrets := secretsOf(admin, req.Current.Reveal(), retired)
	sa, found, err := p.getServiceAccount(ctx, cfg, admin, credentialID, secrets)
	if err != nil || !found {
		return err // nil when it is already gone: nothing to revoke
	}
	if req.HandWritten {
		if err := p.retiredProves(ctx, cfg, admin, req, sa, secrets); err != nil {
			return err
		}
	} else if !strings.HasPrefix(sa.Name, NamePrefix) {
		return providers.Permanent(fmt.Errorf("openai revoke: refusing to delete service account %s (%s): kvrotator did not create it (its service accounts are named %s…); delete it by hand if it is really retired",
			credentialID, shownName(sa.Name), NamePrefix))
	}
	return p.deleteServiceAccount(ctx, cfg, admin, credentialID, secrets)
}

// retiredProves checks a hand-written version's claim that its value is the key of service account
// sa. The value must authenticate at OpenAI (GET /v1/models with it), and OpenAI's list of the
// project's keys must show a key of sa whose redacted value ("sk-abc...wxyz") fits it, and none that
// fits the latest version's value. Otherwise the claim is refused, permanently: the engine reports it
// once and leaves the account to a person.
func (p *Provider) retiredProves(ctx context.Context, cfg config, admin string, req providers.Request, sa serviceAccount, secrets []string) error {
	retired := strings.TrimSpace(req.Retired.Reveal())
	current := strings.TrimSpace(req.Current.Reveal())
	refuse := func(why string) error {
		return providers.Permanent(fmt.Errorf("openai revoke: not deleting service account %s (%s): it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and %s; delete it by hand if it is really retired", sa.ID, shownName(sa.Name), why))
	}
	c := call{op: "prove the retired key", method: http.MethodGet, path: "/v1/models", key: retired, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return err
	}
	switch {
	case r.Status == http.StatusUnauthorized:
		return refuse("that version's value does not authenticate at OpenAI")
	case r.Status == http.StatusForbidden:
		return refuse("that version's value may not list models, so it cannot be proven to be a key")
	case r.Status != http.StatusOK:
		return p.failure(cfg, c, r, nil)
	}
	if reason := modelList(r); reason != "" {
		return p.broken(cfg, c, r, reason).Classified()
	}
	keys, err := p.listProjectKeys(ctx, cfg, admin, secrets)
	if err != nil {
		return err
	}
	fits := false
	for _, k := range keys {
		if k.Owner.ServiceAccount == nil || k.Owner.ServiceAccount.ID != sa.ID {
			continue
		}
		if current != "" && redactedFits(k.RedactedValue, current) {
			return refuse("OpenAI lists a key of it that looks like the latest version's value")
		}
		fits = fits || redactedFits(k.RedactedValue, retired)
	}
	if !fits {
		return refuse("OpenAI lists no key of it that the value of that version can be")
	}
	return nil
}

// redactedFits reports whether value can be the key OpenAI shows as redacted: "<prefix>...<suffix>"
// (or "…", or a run of "*"), the prefix starting with "sk-" and the suffix showing at least minRevealed
// characters; value must start with the prefix, end with the suffix and be longer than both. A redacted
// value of another form proves nothing.
func redactedFits(redacted, value string) bool {
	prefix, suffix, ok := splitRedacted(strings.TrimSpace(redacted))
	return ok && len(value) > len(prefix)+len(suffix) && strings.HasPrefix(value, prefix) && strings.HasSuffix(value, suffix)
}

// splitRedacted splits a redacted key value around its mask.
func splitRedacted(r string) (prefix, suffix string, ok bool) {
	switch {
	case strings.Contains(r, "..."):
		prefix, suffix, _ = strings.Cut(r, "...")
	case strings.Contains(r, "…"):
		prefix, suffix, _ = strings.Cut(r, "…")
	case strings.Contains(r, "*"):
		i := strings.IndexByte(r, '*')
		prefix, suffix = r[:i], strings.TrimLeft(r[i:], "*")
	default:
		return "", "", false
	}
	ok = strings.HasPrefix(prefix, "sk-") && len(suffix) >= minRevealed && !strings.ContainsAny(suffix, ".*…") && printable().MatchString(suffix)
	return prefix, suffix, ok
}

// shownName is a service account's name as errors show it: quoted, cleaned, short. Names are
// configuration a person typed, never a credential.
func shownName(name string) string { return strconv.Quote(httpx.Clean(name, 80)) }

// prepare reads the tags and the admin key.
func (p *Provider) prepare(ctx context.Context, req providers.Request) (config, string, error) {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return config{}, "", err
	}
	if strings.EqualFold(cfg.adminSecret, req.Secret) {
		return config{}, "", providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"names the secret being rotated; keep the admin key in a different secret (this provider rotates project keys, not admin keys)")
	}
	if req.Secrets == nil {
		return config{}, "", providers.Permanent(errors.New("openai: the request has no secret reader for the admin key"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.adminSecret)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return config{}, "", fmt.Errorf("openai: reading the admin key from secret %q (tag %s): %w", cfg.adminSecret, TagAdminSecret, err)
	}
	admin := strings.TrimSpace(v.Reveal())
	switch {
	case admin == "":
		return config{}, "", providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret, "the secret is empty; it must hold an OpenAI admin API key (sk-admin-…)")
	case len(admin) > maxKeyBytes || !printable().MatchString(admin):
		// Never quoted: it is (or contains) the key.
		return config{}, "", providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"the secret's value is not an OpenAI API key (it has spaces, control or non-ASCII characters, or is over %d bytes)", maxKeyBytes)
	case strings.HasPrefix(admin, "sk-proj-"), strings.HasPrefix(admin, "sk-svcacct-"):
		return config{}, "", providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"the secret holds a project API key, not an admin key: create an admin key (sk-admin-…) in the organization's settings")
	case admin == strings.TrimSpace(req.Current.Reveal()):
		return config{}, "", providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret, "the secret holds the same key as the secret being rotated")
	}
	return cfg, admin, nil
}

// serviceAccount is a project service account as OpenAI lists and returns it.
type serviceAccount struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// projectKey is an entry of GET …/projects/{project}/api_keys: never the value, only a redacted form.
type projectKey struct {
	ID            string `json:"id"`
	RedactedValue string `json:"redacted_value"`
	Owner         struct {
		Type           string          `json:"type"`
		ServiceAccount *serviceAccount `json:"service_account"`
	} `json:"owner"`
}

// page is one page of an OpenAI list: {"object":"list","data":[…],"first_id","last_id","has_more"}.
type page[T any] struct {
	Data    *[]T   `json:"data"`
	HasMore *bool  `json:"has_more"`
	LastID  string `json:"last_id"`
}

// listAll reads every page of a list: limit=PageSize, then after=<last_id> while has_more (the last
// item's id when last_id is absent), at most MaxPages pages. check says what breaks the contract in an
// item ("" if nothing); idOf is an item's id.
func listAll[T any](ctx context.Context, p *Provider, cfg config, c call, idOf func(T) string, check func(T) string) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	after := ""
	for n := 0; ; n++ {
		if n == MaxPages {
			return nil, p.http.Error(p.request(cfg, c), http.StatusOK, fmt.Sprintf("more than %d pages of %d: too many to list", MaxPages, PageSize), true).Classified()
		}
		c.query = url.Values{"limit": {strconv.Itoa(PageSize)}}
		if after != "" {
			c.query.Set("after", after)
		}
		r, err := p.do(ctx, cfg, c)
		if err != nil {
			return nil, err
		}
		if r.Status != http.StatusOK {
			return nil, p.failure(cfg, c, r, nil)
		}
		var pg page[T]
		reason := r.DecodeObject(&pg)
		switch {
		case reason != "":
		case pg.Data == nil:
			reason = "data is missing"
		case pg.HasMore == nil:
			reason = "has_more is missing"
		default:
			for i, item := range *pg.Data {
				if why := check(item); why != "" {
					reason = fmt.Sprintf("data[%d].%s", i, why)
					break
				}
			}
		}
		if reason != "" {
			return nil, p.broken(cfg, c, r, reason).Classified()
		}
		all = append(all, *pg.Data...)
		if !*pg.HasMore {
			return all, nil
		}
		next := pg.LastID
		if next == "" && len(*pg.Data) > 0 {
			next = idOf((*pg.Data)[len(*pg.Data)-1])
		}
		if next == "" || seen[next] {
			return nil, p.broken(cfg, c, r, "has_more is true, but the page gives no new cursor (last_id)").Classified()
		}
		seen[next], after = true, next
	}
}

// listServiceAccounts lists the project's service accounts (names and ids).
func (p *Provider) listServiceAccounts(ctx context.Context, cfg config, admin string, secrets []string) ([]serviceAccount, error) {
	c := call{op: "list service accounts", method: http.MethodGet, path: projectPath(cfg, "/service_accounts"), key: admin, secrets: secrets}
	return listAll(ctx, p, cfg, c, func(sa serviceAccount) string { return sa.ID }, func(sa serviceAccount) string {
		if !validAccountID(sa.ID) {
			return "id is missing or malformed"
		}
		return ""
	})
}

// listProjectKeys lists the project's API keys (redacted, with their owners).
func (p *Provider) listProjectKeys(ctx context.Context, cfg config, admin string, secrets []string) ([]projectKey, error) {
	c := call{op: "list project keys", method: http.MethodGet, path: projectPath(cfg, "/api_keys"), key: admin, secrets: secrets}
	return listAll(ctx, p, cfg, c, func(k projectKey) string { return k.ID }, func(projectKey) string { return "" })
}

// getServiceAccount reads one service account; found is false when OpenAI says 404.
func (p *Provider) getServiceAccount(ctx context.Context, cfg config, admin, id string, secrets []string) (serviceAccount, bool, error) {
	c := call{op: "read service account", method: http.MethodGet, path: projectPath(cfg, "/service_accounts/"+url.PathEscape(id)), key: admin, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return serviceAccount{}, false, err
	}
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		return serviceAccount{}, false, nil
	default:
		return serviceAccount{}, false, p.failure(cfg, c, r, nil)
	}
	var sa serviceAccount
	reason := r.DecodeObject(&sa)
	if reason == "" && sa.ID != id {
		reason = "id is not the service account asked for"
	}
	if reason != "" {
		return serviceAccount{}, false, p.broken(cfg, c, r, reason).Classified()
	}
	return sa, true, nil
}

// deleteServiceAccount deletes a service account and its keys; 404 (already gone) is success.
func (p *Provider) deleteServiceAccount(ctx context.Context, cfg config, admin, id string, secrets []string) error {
	c := call{op: "delete service account", method: http.MethodDelete, path: projectPath(cfg, "/service_accounts/"+url.PathEscape(id)), key: admin, secrets: secrets}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return err
	}
	switch r.Status {
	case http.StatusNotFound, http.StatusNoContent:
		return nil
	case http.StatusOK:
	default:
		return p.failure(cfg, c, r, nil)
	}
	var body struct {
		Deleted *bool `json:"deleted"`
	}
	reason := r.DecodeObject(&body)
	if reason == "" && (body.Deleted == nil || !*body.Deleted) {
		reason = "deleted is not true"
	}
	if reason != "" {
		return p.broken(cfg, c, r, reason).Classified()
	}
	return nil
}

// createdServiceAccount is the answer to POST …/service_accounts: the only time OpenAI shows the key.
type createdServiceAccount struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	APIKey *struct {
		ID        string `json:"id"`
		Value     string `json:"value"`
		ExpiresAt *int64 `json:"expires_at"`
	} `json:"api_key"`
}

// createServiceAccount creates the service account, and with it the new key.
func (p *Provider) createServiceAccount(ctx context.Context, cfg config, admin string, req providers.Request, name string, secrets []string) (providers.Credential, error) {
	body := struct {
		Name      string `json:"name"`
		ExpiresIn int64  `json:"expires_in_seconds,omitempty"`
	}{Name: name, ExpiresIn: int64(cfg.lifetime / time.Second)}
	js, err := json.Marshal(body)
	if err != nil {
		return providers.Credential{}, providers.Permanent(fmt.Errorf("openai create service account: encoding the request: %w", err))
	}
	c := call{op: "create service account", method: http.MethodPost, path: projectPath(cfg, "/service_accounts"), body: js, key: admin, secrets: secrets}
	asked := req.Now
	if asked.IsZero() {
		asked = time.Now()
	}
	r, err := p.do(ctx, cfg, c)
	if err != nil {
		return providers.Credential{}, err
	}
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		return providers.Credential{}, p.failure(cfg, c, r, nil)
	}
	var sa createdServiceAccount
	reason := r.DecodeObject(&sa)
	if reason == "" && !validAccountID(sa.ID) {
		reason = "id is missing or malformed"
	}
	if reason != "" {
		// No usable id: the next attempt finds the service account by its name and deletes it.
		return providers.Credential{}, p.broken(cfg, c, r, reason).Classified()
	}
	value := ""
	if sa.APIKey != nil {
		value = sa.APIKey.Value
		c.secrets = append(c.secrets, secretsOf(value)...)
	}
	current := strings.TrimSpace(req.Current.Reveal())
	switch {
	case sa.APIKey == nil:
		reason = "api_key is missing: the service account was created without a key"
	case value == "":
		reason = "api_key.value is missing or empty"
	case len(value) > maxKeyBytes || !printable().MatchString(value):
		reason = "api_key.value is not a key (spaces, control or non-ASCII characters, or too long)"
	case value == admin || value == current:
		reason = "api_key.value is an existing key, not a new one"
	case strings.EqualFold(sa.ID, strings.TrimSpace(req.CredentialID)):
		reason = "id is the current service account's"
	case sa.Name != "" && sa.Name != name:
		reason = fmt.Sprintf("name is not %q as asked", name)
	}
	if reason != "" {
		e := p.broken(cfg, c, r, reason)
		if !strings.EqualFold(sa.ID, strings.TrimSpace(req.CredentialID)) {
			// Unusable, and recorded nowhere: delete it now (best effort; a retry would find it by name).
			if derr := p.deleteServiceAccount(ctx, cfg, admin, sa.ID, c.secrets); derr != nil {
				e.Reason += "; deleting it failed too, a retry deletes it by name"
			}
		}
		return providers.Credential{}, e.Classified()
	}
	cred := providers.Credential{Value: providers.NewValue(value), CredentialID: sa.ID}
	switch {
	case sa.APIKey.ExpiresAt != nil && *sa.APIKey.ExpiresAt > 0:
		t := time.Unix(*sa.APIKey.ExpiresAt, 0).UTC()
		cred.ExpiresAt = &t
	case cfg.lifetime > 0:
		// Asked for, not echoed: the key expires no later than that after it was asked for.
		t := asked.Add(cfg.lifetime).UTC()
		cred.ExpiresAt = &t
	}
	return cred, nil
}

// Provider must satisfy the contract.
var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Revoker  = (*Provider)(nil)
)
