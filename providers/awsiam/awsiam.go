// Package awsiam is kvrotator's provider for the access keys of an AWS IAM user. The shape is
// create-then-revoke: a new key is created for the user with an admin key, verified by calling STS with
// the new key until IAM's eventual consistency lets it through, written to Key Vault as a new version
// ({"Version":1,"AccessKeyId":…,"SecretAccessKey":…}: the JSON the AWS CLI's and SDKs'
// credential_process reads), and the key the previous version held is revoked after the grace period.
//
// It speaks IAM's and STS's Query APIs with a small client of its own (query.go: form-encoded POSTs,
// XML answers, the AWS SDKs' retry rules and clock skew correction), signed with Signature Version 4
// by AWS's standalone signer (github.com/aws/smithy-go/aws-http-auth/sigv4), with static credentials,
// AWS's own endpoints for the partition (or endpoints the operator bound), no redirects and bounded
// answers. (It used aws-sdk-go-v2's service/iam and service/sts before; see README.md.)
//
// Two constraints of IAM shape it. A user holds at most two access keys, inactive ones included; and
// an access key has no name, and CreateAccessKey no client token, so a retry cannot ask IAM for "the
// key I made": the secret access key is returned once, by the call that creates the key. So:
//
//   - kvrotator labels the keys it creates the way the IAM console describes keys, with a tag on the
//     user whose key is the access key id ("kvrotator <vault>/<secret> created <idempotency key>"),
//     and tags the user with its intent ("kvrotator-creating") just before CreateAccessKey.
//   - Create lists the user's keys and tags first. A key labelled for this idempotency key, or an
//     unlabelled key created within minutes of this rotation's intent, is the leftover of an
//     interrupted attempt (its secret was lost with that attempt): it is deleted, and a new key is
//     created. A key kvrotator replaced and deactivated earlier is deleted too, to make room. Any other
//     key the current version does not hold — one still in its grace period, one a person activated
//     again, one kvrotator did not make, the admin key — is never touched: when it leaves no room,
//     Create refuses with a reason naming it. The key the current version holds is never deleted.
//   - CreateAccessKey is not retried within the call except on throttling (a retry after a lost answer
//     would make a second key); the engine's retry of Create finds such a key as described above.
//
// Revocation, after the grace period, deactivates the replaced key (UpdateAccessKey Status=Inactive)
// and labels it "revoked"; by default it does not delete it. The next rotation, which needs its place,
// deletes it. Between the two, a consumer that was missed can be rescued by activating the key again
// (console, or aws iam update-access-key --status Active): kvrotator then leaves it alone and refuses
// the next rotation, naming the key, until a person deactivates or deletes it. Tag aws-iam-revoke=delete
// deletes at revocation instead (deactivate, then delete). A key that never passed verification is
// deleted at once.
//
// Statuses: throttling (Throttling, 400), 5xx and ServiceFailure are transient (each call tries them
// DefaultAttempts times first; a Retry-After header, which AWS's Query APIs do not send, is honoured
// through Error.RetryAfter); AccessDenied, LimitExceeded, NoSuchEntity on the user, an admin key AWS
// does not accept, a redirect and an answer that breaks the protocol are permanent. InvalidClientTokenId
// and SignatureDoesNotMatch from STS for the NEW key are propagation: transient.
//
// Tags (names are case-insensitive):
//
//   - aws-iam-user (required): the IAM user name (kind login).
//   - aws-iam-account (required): the 12-digit account id (kind account); the admin key and the new key
//     must both belong to it (checked with GetCallerIdentity).
//   - aws-iam-admin-secret (required): the NAME of the secret holding the admin key pair (kind secret).
//   - aws-iam-partition: aws (default), aws-us-gov or aws-cn: AWS's own IAM and STS endpoints.
//   - aws-iam-url, aws-iam-sts-url: other endpoints (kind url); any but the partition's own must be bound.
//   - aws-iam-revoke: deactivate (default) or delete.
//   - CredentialId (the engine's tag): the access key id the current version holds; when the value is a
//     key pair, it must be that key's id.
//
// The admin key (an access key of another IAM user) needs iam:ListAccessKeys, CreateAccessKey,
// UpdateAccessKey, DeleteAccessKey, ListUserTags, TagUser and UntagUser on the rotated user's ARN;
// sts:GetCallerIdentity needs no permission. README.md has the policy.
package awsiam

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/vocab"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "aws-iam"

func init() {
	registry.Register(Name, func(env registry.Env) (providers.Provider, error) { return New(WithHTTPClient(env.HTTPClient)), nil })
}

// MaxKeysPerUser is IAM's quota of access keys per user; inactive keys count.
const MaxKeysPerUser = 2

// An access key's statuses.
const (
	statusActive   = "Active"
	statusInactive = "Inactive"
)

// tagCredentialID is the engine's tag naming the key the current version holds.
const tagCredentialID = vocab.TagCredentialID

// Provider creates, verifies and revokes IAM access keys. It holds no mutable state and is safe for
// concurrent use.
type Provider struct {
	http       *http.Client
	timeout    time.Duration
	attempts   int
	maxBackoff time.Duration
	now        func() time.Time
}

// Option configures a Provider.
type Option func(*Provider)

// WithHTTPClient makes the provider send its requests with c (a test server's client, custom roots, a
// proxy). Redirects are never followed, whatever c's CheckRedirect says.
func WithHTTPClient(c *http.Client) Option {
	return func(p *Provider) {
		if c != nil {
			p.http = httpx.WithoutRedirects(c)
		}
	}
}

// WithTimeout sets the per-operation timeout (default DefaultTimeout).
func WithTimeout(d time.Duration) Option {
	return func(p *Provider) {
		if d > 0 {
			p.timeout = d
		}
	}
}

// WithRetries sets the attempts per operation and its longest wait between them (defaults
// DefaultAttempts, DefaultMaxBackoff).
func WithRetries(attempts int, maxBackoff time.Duration) Option {
	return func(p *Provider) {
		if attempts > 0 {
			p.attempts = attempts
		}
		if maxBackoff > 0 {
			p.maxBackoff = maxBackoff
		}
	}
}

// WithClock sets the clock of the labels' times and of Retry-After dates (default time.Now: they are
// compared with IAM's own times, so the engine's possibly simulated clock is not used).
func WithClock(now func() time.Time) Option {
	return func(p *Provider) {
		if now != nil {
			p.now = now
		}
	}
}

// New returns a Provider that uses net/http's default transport (which honours HTTPS_PROXY and the
// system's roots) without following redirects.
func New(opts ...Option) *Provider {
	p := &Provider{http: httpx.WithoutRedirects(nil), timeout: DefaultTimeout, attempts: DefaultAttempts, maxBackoff: DefaultMaxBackoff, now: time.Now}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Shape is providers.ShapeCreateRevoke.
func (*Provider) Shape() providers.Shape { return providers.ShapeCreateRevoke }

// Validate checks the aws-iam-* tags and CredentialId without calling anything. Every problem is a
// *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	var errs []error
	if _, err := parseConfig(p); err != nil {
		errs = append(errs, err)
	}
	if id := strings.TrimSpace(p.Get(tagCredentialID)); id != "" && !keyIDPattern().MatchString(id) {
		// Not repeated: it may be a secret access key put in the wrong tag.
		errs = append(errs, providers.ConfigErrorf(tagCredentialID, "", "not an access key id (16-128 letters, digits and _)"))
	}
	return providers.JoinErrors(errs)
}

// References are the admin key's secret (aws-iam-admin-secret, kind secret), the account
// (aws-iam-account, kind account), the user (aws-iam-user, kind login) and the IAM and STS endpoints
// (kind url: the partition's own need no binding, any other does).
func (*Provider) References(p providers.Params) []providers.Reference {
	c, err := parseConfig(p)
	if err != nil {
		return nil // Validate reports it; the engine never gets here
	}
	return []providers.Reference{
		{Kind: providers.RefSecret, Tag: TagAdminSecret, Value: c.adminSecret},
		{Kind: providers.RefAccount, Tag: TagAccount, Value: c.account},
		{Kind: providers.RefLogin, Tag: TagUser, Value: c.user},
		{Kind: providers.RefURL, Tag: TagIAMURL, Value: c.iamURL, Builtin: c.iamURL == c.partition.IAMURL},
		{Kind: providers.RefURL, Tag: TagSTSURL, Value: c.stsURL, Builtin: c.stsURL == c.partition.STSURL},
	}
}

// Create makes the new key (see the package documentation): it lists the user's keys and tags, deletes
// the leftovers of interrupted attempts at this rotation and the keys kvrotator revoked earlier,
// refuses when what remains leaves no room, tags its intent, creates the key, labels it, and returns
// its pair as the JSON document with the key id as CredentialID.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	if req.IdempotencyKey == "" {
		return providers.Credential{}, providers.Permanent(errors.New("aws-iam create: the request has no idempotency key"))
	}
	current, err := currentKey(req)
	if err != nil {
		return providers.Credential{}, err
	}
	c, err := p.connect(ctx, req, "create", current)
	if err != nil {
		return providers.Credential{}, err
	}
	keys, err := c.listKeys(ctx)
	if err != nil {
		return providers.Credential{}, err
	}
	tags, err := c.listTags(ctx)
	if err != nil {
		return providers.Credential{}, err
	}
	own := owner(req.Vault, req.Secret)
	intent := tags.get(IntentTag)
	live := 0
	var blockers []string
	for _, k := range keys {
		if k.id == current {
			live++
			continue
		}
		desc, labelled := tags.lookup(k.id)
		m, ours := parseMark(desc)
		ours = ours && m.owner == own
		switch {
		case k.id == c.admin.ID:
			blockers = append(blockers, fmt.Sprintf("%s, the admin key (secret %q): use an admin key of another IAM user", k.id, c.cfg.adminSecret))
		case ours && m.state == stateCreated && m.detail == req.IdempotencyKey,
			!labelled && explains(intent, own, req.IdempotencyKey, k.created):
			// Left by an interrupted attempt at this rotation; its secret is lost. Delete it.
			if err := c.remove(ctx, k.id); err != nil {
				return providers.Credential{}, err
			}
			continue
		case ours && k.status == statusInactive:
			// Replaced and deactivated by an earlier revocation: the second step, deletion.
			if err := c.remove(ctx, k.id); err != nil {
				return providers.Credential{}, err
			}
			continue
		default:
			blockers = append(blockers, describe(k, m, ours, labelled, own))
		}
		live++
	}
	c.forgetLabels(ctx, tags, keys, own)
	if live >= MaxKeysPerUser {
		return providers.Credential{}, providers.Permanent(fmt.Errorf(
			"aws-iam create: IAM user %q already holds %d access keys, IAM's limit (inactive keys count), and kvrotator deletes neither the key the current version holds nor one it cannot prove is a leftover of its own: %s",
			c.cfg.user, live, strings.Join(blockers, "; ")))
	}
	if err := c.tag(ctx, "tag the user with the creation intent", IntentTag, intentValue(own, req.IdempotencyKey, p.now())); err != nil {
		return providers.Credential{}, err
	}
	pair, err := c.createKey(ctx, current)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && e.Status >= 400 && e.Status < 500 {
			// IAM refused: no key was made, so no intent is pending (best effort).
			_ = c.untag(ctx, "clear the creation intent", IntentTag)
		}
		return providers.Credential{}, err
	}
	if err := c.tag(ctx, "label the new key", pair.ID, createdMark(own, req.IdempotencyKey)); err != nil {
		// An unlabelled key: delete it now rather than leave it (best effort; the intent lets the next
		// attempt find it otherwise).
		_ = c.deleteKey(ctx, pair.ID)
		return providers.Credential{}, err
	}
	// Done with the intent (best effort: a stale intent names this idempotency key only).
	_ = c.untag(ctx, "clear the creation intent", IntentTag)
	return providers.Credential{Value: providers.NewValue(pair.Value()), CredentialID: pair.ID}, nil
}

// describe says why a key blocks the rotation.
func describe(k keyInfo, m mark, ours, labelled bool, own string) string {
	active := k.status == statusActive
	switch {
	case ours && m.state == stateCreated && active:
		return fmt.Sprintf("%s, which kvrotator created for this secret (rotation %s) and has not revoked yet: the version holding it is still in its grace period, or its revocation failed; the rotation can go ahead once it is revoked",
			k.id, m.detail)
	case ours && m.state == stateRevoked && active:
		return fmt.Sprintf("%s, which kvrotator deactivated at revocation (%s) and a person has activated again, presumably for a consumer that still uses it: deactivate or delete it by hand once that consumer reads the new value",
			k.id, m.detail)
	case labelled && m.owner != "" && m.owner != own:
		return fmt.Sprintf("%s, which kvrotator manages for secret %s: each secret needs an IAM user of its own (two keys per user)", k.id, m.owner)
	}
	if active && !labelled {
		// kvrotator labels a key before it deactivates it: an unlabelled active key is either the key a
		// version written by hand held (the first rotation's predecessor), still in its grace period, or
		// someone else's.
		return fmt.Sprintf("%s (created %s), which carries no kvrotator label: either the key a version written by hand held, still in its grace period "+
			"(the rotation can go ahead once it is revoked), or a key kvrotator did not create (delete it by hand if nothing uses it, or give the secret another IAM user)",
			k.id, k.created.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("%s (%s, created %s), which kvrotator did not create: delete it by hand if nothing uses it, or give the secret another IAM user",
		k.id, strings.ToLower(k.status), k.created.UTC().Format(time.RFC3339))
}

// Verify calls STS GetCallerIdentity signed with the new key: a read-only call that needs no
// permission. InvalidClientTokenId and SignatureDoesNotMatch are IAM's eventual consistency (a new key
// takes seconds to be accepted everywhere): transient, and the engine checks again. The answer must
// name the tagged account and user.
func (p *Provider) Verify(ctx context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return err
	}
	k, why := ParseKeyPair(cred.Value.Reveal())
	switch {
	case why != "":
		return providers.Permanent(fmt.Errorf("aws-iam verify: the new value is not an access key: %s", why))
	case cred.CredentialID != "" && cred.CredentialID != k.ID:
		return providers.Permanent(fmt.Errorf("aws-iam verify: the new value holds key %s, not %s", k.ID, cred.CredentialID))
	}
	propagating := verdict{"AWS does not accept the new key yet (IAM changes take seconds to propagate); will check again", true}
	id, err := p.callerIdentity(ctx, cfg, k, "verify", []string{k.Secret, req.Current.Reveal()},
		map[string]verdict{"InvalidClientTokenId": propagating, "SignatureDoesNotMatch": propagating},
		func(code string, status int) verdict {
			if transientCodes[code] {
				return verdict{"AWS STS is throttling or failing; will retry", true}
			}
			return statusVerdict("STS", status)
		})
	if err != nil {
		return err
	}
	if id.Account != cfg.account || !strings.EqualFold(userOf(id.Arn, cfg), cfg.user) {
		return providers.Permanent(fmt.Errorf("aws-iam verify: the new key %s authenticates as %s, not as IAM user %q of account %s", k.ID, id.Arn, cfg.user, cfg.account))
	}
	return nil
}

// Revoke retires key credentialID of the user: by default it labels it "revoked" and deactivates it
// (the next rotation deletes it); with aws-iam-revoke=delete it deactivates and deletes it. A key the
// user no longer has counts as revoked. The key of a rotation that never passed verification (labelled
// with req.IdempotencyKey) is deleted at once. Before reading or calling anything it refuses the key
// the latest version holds (by kvrotator's record or its value), and any key but the one the replaced
// version's value holds; it refuses the admin key. When the replaced version was written by hand, the
// key is revoked only if that version's value authenticates as the user (GetCallerIdentity with it).
func (p *Provider) Revoke(ctx context.Context, req providers.Request, credentialID string) error {
	if !keyIDPattern().MatchString(credentialID) {
		return providers.Permanent(errors.New("aws-iam revoke: credential id is not an access key id (16-128 letters, digits and _)"))
	}
	if credentialID == strings.TrimSpace(req.CredentialID) {
		return providers.Permanent(fmt.Errorf("aws-iam revoke: refusing to revoke key %s: the latest version of secret %q holds it", credentialID, req.Secret))
	}
	if cur, why := ParseKeyPair(req.Current.Reveal()); why == "" && cur.ID == credentialID {
		return providers.Permanent(fmt.Errorf("aws-iam revoke: refusing to revoke key %s: the latest version of secret %q holds it (its value is that key)", credentialID, req.Secret))
	}
	retired, why := ParseKeyPair(req.Retired.Reveal())
	retiredPair := why == ""
	if retiredPair && retired.ID != credentialID {
		return providers.Permanent(fmt.Errorf("aws-iam revoke: refusing to revoke key %s: the replaced version of secret %q holds key %s, not that one",
			credentialID, req.Secret, retired.ID))
	}
	if req.HandWritten && !retiredPair {
		return providers.Permanent(fmt.Errorf("aws-iam revoke: not revoking key %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and that version's value is not an access key that proves it; revoke the key by hand if it is really retired", credentialID))
	}
	current, _ := currentKey(req)
	c, err := p.connect(ctx, req, "revoke", current)
	if err != nil {
		return err
	}
	if credentialID == c.admin.ID {
		return providers.Permanent(fmt.Errorf("aws-iam revoke: refusing to revoke key %s: it is the admin key in secret %q", credentialID, c.cfg.adminSecret))
	}
	proven := !req.HandWritten
	if req.HandWritten {
		c.secrets = append(c.secrets, retired.Secret)
		if proven, err = c.proves(ctx, retired); err != nil {
			return err
		}
	}
	keys, err := c.listKeys(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(keys, func(k keyInfo) bool { return k.id == credentialID })
	if i < 0 {
		return nil // already gone (or never this user's): nothing to revoke
	}
	k := keys[i]
	tags, err := c.listTags(ctx)
	if err != nil {
		return err
	}
	own := owner(req.Vault, req.Secret)
	desc, _ := tags.lookup(k.id)
	m, ours := parseMark(desc)
	ours = ours && m.owner == own
	if ours && m.state == stateCreated && req.IdempotencyKey != "" && m.detail == req.IdempotencyKey {
		// This rotation's own new key, which never passed verification: nobody holds it.
		return c.remove(ctx, k.id)
	}
	inactive := k.status == statusInactive
	if !proven {
		if inactive && c.cfg.revoke == RevokeDeactivate {
			return nil // what revocation would do is done; its value proves nothing, so nothing more
		}
		return providers.Permanent(fmt.Errorf("aws-iam revoke: not revoking key %s: it is named only by the CredentialId tag of a version kvrotator did not write, "+
			"and that version's value does not authenticate at AWS; revoke the key by hand if it is really retired", credentialID))
	}
	if c.cfg.revoke == RevokeDelete {
		if !inactive {
			if err := c.setStatus(ctx, k.id, statusInactive); err != nil {
				return err
			}
		}
		return c.remove(ctx, k.id)
	}
	if ours && m.state == stateRevoked {
		// Revoked already (a revocation whose record was lost). If a person activated it again since,
		// they had a reason: leave it.
		return nil
	}
	if err := c.tag(ctx, "label the revoked key", k.id, revokedMark(own, p.now())); err != nil {
		return err
	}
	if inactive {
		return nil
	}
	return c.setStatus(ctx, k.id, statusInactive)
}

// currentKey is the access key id the current version holds: the current value's own AccessKeyId when
// it is a key pair (CredentialId must then be the same), else CredentialId. Nothing is called.
func currentKey(req providers.Request) (string, error) {
	id := strings.TrimSpace(req.CredentialID)
	if id != "" && !keyIDPattern().MatchString(id) {
		return "", providers.ConfigErrorf(tagCredentialID, "", "not an access key id (16-128 letters, digits and _)")
	}
	k, why := ParseKeyPair(req.Current.Reveal())
	if why != "" {
		return id, nil
	}
	if id != "" && id != k.ID {
		return "", providers.ConfigErrorf(tagCredentialID, id,
			"names another key than the one the secret's value is (AccessKeyId %s): kvrotator revokes the key %s names after the grace period, so it must be the value's own key; set %s to %s",
			k.ID, tagCredentialID, tagCredentialID, k.ID)
	}
	return k.ID, nil
}

// conn is one operation's view of IAM: the configuration, the admin key and an IAM client signed with
// it.
type conn struct {
	p       *Provider
	cfg     config
	admin   KeyPair
	iam     *client
	secrets []string // redacted from anything AWS says back
}

// connect reads the tags and the admin key, refuses an admin key that is the rotated key, and checks
// with GetCallerIdentity that the admin key belongs to the tagged account.
func (p *Provider) connect(ctx context.Context, req providers.Request, op, current string) (*conn, error) {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(cfg.adminSecret, req.Secret) {
		return nil, providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"names the secret being rotated; keep the admin key in a different secret (two admin keys can rotate each other)")
	}
	if req.Secrets == nil {
		return nil, providers.Permanent(errors.New("aws-iam: the request has no secret reader for the admin key"))
	}
	v, err := req.Secrets.SecretValue(ctx, cfg.adminSecret)
	if err != nil {
		// Wrapped, so the engine sees a missing secret as its own not-found error.
		return nil, fmt.Errorf("aws-iam: reading the admin key from secret %q (tag %s): %w", cfg.adminSecret, TagAdminSecret, err)
	}
	admin, why := ParseKeyPair(v.Reveal())
	if why != "" {
		return nil, providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"the secret's value is not an access key ({\"AccessKeyId\":…,\"SecretAccessKey\":…} or an AWS credentials file): %s", why)
	}
	if current != "" && admin.ID == current {
		return nil, providers.ConfigErrorf(TagAdminSecret, cfg.adminSecret,
			"holds the same access key (%s) as the secret being rotated: rotating it would leave the admin secret with a revoked key; use another key as the admin key", admin.ID)
	}
	c := &conn{p: p, cfg: cfg, admin: admin, iam: p.iamClient(cfg, admin), secrets: []string{admin.Secret}}
	if cur, why := ParseKeyPair(req.Current.Reveal()); why == "" {
		c.secrets = append(c.secrets, cur.Secret)
	}
	id, err := p.callerIdentity(ctx, cfg, admin, op+": identify the admin key", c.secrets, nil, cfg.adminVerdict("STS", "GetCallerIdentity"))
	if err != nil {
		return nil, err
	}
	if id.Account != cfg.account || !strings.HasPrefix(id.Arn, "arn:"+cfg.partition.Name+":") {
		return nil, providers.ConfigErrorf(TagAccount, cfg.account,
			"the admin key in secret %q is %s, not a principal of account %s in partition %s: kvrotator acts only in the account the tag names",
			cfg.adminSecret, id.Arn, cfg.account, cfg.partition.Name)
	}
	return c, nil
}

// proves reports whether a hand-written version's value authenticates as the user (GetCallerIdentity
// signed with it). A value AWS does not accept proves nothing (false, nil): the key may be gone
// already, or the value forged. A value that is another principal's key is refused.
func (c *conn) proves(ctx context.Context, k KeyPair) (bool, error) {
	var refused bool
	notAccepted := map[string]verdict{"InvalidClientTokenId": {}, "SignatureDoesNotMatch": {}}
	id, err := c.p.callerIdentity(ctx, c.cfg, k, "revoke: prove the replaced key", c.secrets, notAccepted, c.cfg.adminVerdict("STS", "GetCallerIdentity"))
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			_, refused = notAccepted[e.Code]
		}
		if !refused {
			return false, err
		}
		return false, nil
	}
	if id.Account != c.cfg.account || !strings.EqualFold(userOf(id.Arn, c.cfg), c.cfg.user) {
		return false, providers.Permanent(fmt.Errorf("aws-iam revoke: not revoking key %s: the replaced version's value is a key of %s, not of IAM user %q of account %s",
			k.ID, id.Arn, c.cfg.user, c.cfg.account))
	}
	return true, nil
}

// keyInfo is an entry of ListAccessKeys.
type keyInfo struct {
	id      string
	status  string
	created time.Time
}

// maxPages bounds the pages of a list (IAM answers up to 100 items a page; a user holds 2 keys and 50
// tags).
const maxPages = 10

// iamCall runs one IAM action on the user (UserName is added to params) with its timeout, decodes its
// result into out (nil: none), and classifies its failure. Only idempotent actions are retried on
// other failures than throttling.
func (c *conn) iamCall(ctx context.Context, action, op string, params url.Values, idempotent bool, out any, byCode map[string]verdict) error {
	if params == nil {
		params = url.Values{}
	}
	params.Set("UserName", c.cfg.user)
	cctx, cancel := c.p.withTimeout(ctx)
	defer cancel()
	if err := c.iam.call(cctx, action, params, idempotent, out); err != nil {
		return c.p.fail(ctx, cctx, call{service: "IAM", action: action, op: op, url: c.cfg.iamURL, secrets: c.secrets}, err, byCode, c.cfg.adminVerdict("IAM", action))
	}
	return nil
}

// broken is the permanent error for a success answer that breaks IAM's documented contract.
func (c *conn) broken(action, op, reason string) error {
	return (&Error{Provider: Name, Service: "AWS IAM", Op: op + " (" + action + ")", Method: http.MethodPost, URL: c.cfg.iamURL + "/",
		Status: http.StatusOK, Reason: "the answer breaks IAM's contract: " + reason, Permanent: true}).Classified()
}

// keyMetadata is an entry of ListAccessKeys (<AccessKeyMetadata><member>).
type keyMetadata struct {
	UserName    *string `xml:"UserName"`
	AccessKeyID string  `xml:"AccessKeyId"`
	Status      string  `xml:"Status"`
	CreateDate  string  `xml:"CreateDate"`
}

// listKeysResult is <ListAccessKeysResult>.
type listKeysResult struct {
	Members     []keyMetadata `xml:"AccessKeyMetadata>member"`
	IsTruncated bool          `xml:"IsTruncated"`
	Marker      string        `xml:"Marker"`
}

// protocol is the permanent error for a success answer whose XML does not decode (a value of the wrong
// type).
func (c *conn) protocol(action, op string) error {
	return (&Error{Provider: Name, Service: "AWS IAM", Op: op + " (" + action + ")", Method: http.MethodPost, URL: c.cfg.iamURL + "/",
		Status: http.StatusOK, Reason: "the answer breaks the Query protocol's contract (not the XML the operation returns)", Permanent: true, Sent: true}).Classified()
}

// listKeys lists the user's access keys.
func (c *conn) listKeys(ctx context.Context) ([]keyInfo, error) {
	var keys []keyInfo
	marker := ""
	for range maxPages {
		var out listKeysResult
		if err := c.iamCall(ctx, "ListAccessKeys", "list keys", page(marker), true, &out, nil); err != nil {
			return nil, err
		}
		for _, m := range out.Members {
			id := m.AccessKeyID
			created, ok := parseTime(m.CreateDate)
			switch {
			case !keyIDPattern().MatchString(id):
				return nil, c.broken("ListAccessKeys", "list keys", "an AccessKeyId is missing or malformed")
			case m.Status != statusActive && m.Status != statusInactive:
				return nil, c.broken("ListAccessKeys", "list keys", "key "+id+" has no Status Active or Inactive")
			case m.UserName != nil && !strings.EqualFold(*m.UserName, c.cfg.user):
				return nil, c.broken("ListAccessKeys", "list keys", "key "+id+" belongs to another user")
			case !ok:
				return nil, c.protocol("ListAccessKeys", "list keys")
			}
			keys = append(keys, keyInfo{id: id, status: m.Status, created: created})
		}
		if !out.IsTruncated {
			return keys, nil
		}
		if out.Marker == "" {
			return nil, c.broken("ListAccessKeys", "list keys", "IsTruncated without a Marker")
		}
		marker = out.Marker
	}
	return nil, c.broken("ListAccessKeys", "list keys", fmt.Sprintf("more than %d pages", maxPages))
}

// page is the parameters of one page of a list: MaxItems=100, and the Marker of the page before.
func page(marker string) url.Values {
	v := url.Values{"MaxItems": {"100"}}
	if marker != "" {
		v.Set("Marker", marker)
	}
	return v
}

// parseTime reads an ISO 8601 timestamp of an answer; "" is the zero time (the element is absent).
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// userTags are a user's tags. IAM treats tag keys case-insensitively.
type userTags map[string]string

func (t userTags) lookup(key string) (string, bool) {
	if v, ok := t[key]; ok {
		return v, true
	}
	for k, v := range t {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

func (t userTags) get(key string) string { v, _ := t.lookup(key); return v }

// listTagsResult is <ListUserTagsResult>.
type listTagsResult struct {
	Tags []struct {
		Key   string `xml:"Key"`
		Value string `xml:"Value"`
	} `xml:"Tags>member"`
	IsTruncated bool   `xml:"IsTruncated"`
	Marker      string `xml:"Marker"`
}

// listTags lists the user's tags.
func (c *conn) listTags(ctx context.Context) (userTags, error) {
	tags := userTags{}
	marker := ""
	for range maxPages {
		var out listTagsResult
		if err := c.iamCall(ctx, "ListUserTags", "list the user's tags", page(marker), true, &out, nil); err != nil {
			return nil, err
		}
		for _, t := range out.Tags {
			tags[t.Key] = t.Value
		}
		if !out.IsTruncated {
			return tags, nil
		}
		if out.Marker == "" {
			return nil, c.broken("ListUserTags", "list the user's tags", "IsTruncated without a Marker")
		}
		marker = out.Marker
	}
	return nil, c.broken("ListUserTags", "list the user's tags", fmt.Sprintf("more than %d pages", maxPages))
}

// tag sets one user tag.
func (c *conn) tag(ctx context.Context, op, key, value string) error {
	return c.iamCall(ctx, "TagUser", op, url.Values{"Tags.member.1.Key": {key}, "Tags.member.1.Value": {value}}, true, nil, map[string]verdict{
		"LimitExceeded": {reason: fmt.Sprintf("IAM user %q has 50 tags, IAM's limit: kvrotator needs room for one per key it manages and one while it creates a key", c.cfg.user)},
	})
}

// untag removes user tags.
func (c *conn) untag(ctx context.Context, op string, keys ...string) error {
	params := url.Values{}
	for i, k := range keys {
		params.Set("TagKeys.member."+strconv.Itoa(i+1), k)
	}
	return c.iamCall(ctx, "UntagUser", op, params, true, nil, nil)
}

// forgetLabels removes, best effort, this secret's labels of keys the user no longer has (a key a
// person deleted, or an earlier removal whose untag failed).
func (c *conn) forgetLabels(ctx context.Context, tags userTags, keys []keyInfo, own string) {
	var stale []string
	for k, v := range tags {
		m, ok := parseMark(v)
		if !ok || m.owner != own || !keyIDPattern().MatchString(k) {
			continue
		}
		if !slices.ContainsFunc(keys, func(ki keyInfo) bool { return strings.EqualFold(ki.id, k) }) {
			stale = append(stale, k)
		}
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		_ = c.untag(ctx, "remove stale labels", stale...)
	}
}

// setStatus activates or deactivates a key. NoSuchEntity (the key is gone) is success for a
// deactivation.
func (c *conn) setStatus(ctx context.Context, id, status string) error {
	err := c.iamCall(ctx, "UpdateAccessKey", "deactivate key "+id, url.Values{"AccessKeyId": {id}, "Status": {status}}, true, nil, nil)
	if isCode(err, "NoSuchEntity") && status == statusInactive {
		return nil
	}
	return err
}

// deleteKey deletes a key; NoSuchEntity (already gone) is success.
func (c *conn) deleteKey(ctx context.Context, id string) error {
	err := c.iamCall(ctx, "DeleteAccessKey", "delete key "+id, url.Values{"AccessKeyId": {id}}, true, nil, nil)
	if isCode(err, "NoSuchEntity") {
		return nil
	}
	return err
}

// remove deletes a key and then its label (the label best effort: a stale one is removed later).
func (c *conn) remove(ctx context.Context, id string) error {
	if err := c.deleteKey(ctx, id); err != nil {
		return err
	}
	_ = c.untag(ctx, "remove the label of deleted key "+id, id)
	return nil
}

// isCode reports whether err is an Error with the AWS error code.
func isCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// createResult is <CreateAccessKeyResult>.
type createResult struct {
	AccessKey *struct {
		UserName        *string `xml:"UserName"`
		AccessKeyID     string  `xml:"AccessKeyId"`
		Status          string  `xml:"Status"`
		SecretAccessKey string  `xml:"SecretAccessKey"`
		CreateDate      string  `xml:"CreateDate"`
	} `xml:"AccessKey"`
}

// createKey calls CreateAccessKey, retried only on throttling. The answer is checked strictly; an
// unusable key is deleted at once.
func (c *conn) createKey(ctx context.Context, current string) (KeyPair, error) {
	const action, op = "CreateAccessKey", "create key"
	var out createResult
	err := c.iamCall(ctx, action, op, nil, false, &out, map[string]verdict{
		"LimitExceeded": {reason: fmt.Sprintf("IAM user %q already holds %d access keys: someone added one since kvrotator listed them; the next attempt looks again", c.cfg.user, MaxKeysPerUser)},
	})
	if err != nil {
		return KeyPair{}, err
	}
	if out.AccessKey != nil {
		if _, ok := parseTime(out.AccessKey.CreateDate); !ok {
			// Not the answer's XML: as if the key was not returned (the next attempt finds it through the intent).
			return KeyPair{}, c.protocol(action, op)
		}
	}
	if out.AccessKey == nil || !keyIDPattern().MatchString(out.AccessKey.AccessKeyID) {
		// No usable id: the next attempt finds the key through the intent and deletes it.
		return KeyPair{}, c.broken(action, op, "AccessKey.AccessKeyId is missing or malformed")
	}
	k := KeyPair{ID: out.AccessKey.AccessKeyID, Secret: out.AccessKey.SecretAccessKey}
	c.secrets = append(c.secrets, k.Secret)
	reason := ""
	switch {
	case k.Secret == "" || len(k.Secret) > maxSecretBytes || !printableNoSpace(k.Secret):
		reason = "AccessKey.SecretAccessKey is missing, too long, or has spaces, control or non-ASCII characters"
	case k.ID == current || k.ID == c.admin.ID || k.Secret == c.admin.Secret:
		reason = "the key is an existing key, not a new one"
	case out.AccessKey.UserName != nil && !strings.EqualFold(*out.AccessKey.UserName, c.cfg.user):
		reason = "the key belongs to another user"
	case out.AccessKey.Status != "" && out.AccessKey.Status != statusActive:
		reason = "the new key is not Active"
	}
	if reason != "" {
		err := c.broken(action, op, reason)
		if k.ID != current && k.ID != c.admin.ID {
			_ = c.deleteKey(ctx, k.ID) // best effort; the intent lets the next attempt find it
		}
		return KeyPair{}, err
	}
	return k, nil
}

// Provider must satisfy the contract.
var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Revoker  = (*Provider)(nil)
)
