package rotation_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// countingProvider is a create-then-revoke provider test double that counts what it created and
// revoked, finds credentials by idempotency key, and fails on script.
type countingProvider struct {
	shape      providers.Shape
	mu         sync.Mutex
	creds      map[string]string // credential id → value (live credentials)
	byKey      map[string]string // idempotency key → credential id
	created    int
	revoked    []string
	failCreate error
	failVerify error
	verifyFlap int // fail this many verifies with a transient error first
	failRevoke error
	slow       time.Duration
	// verifyGate, when set, makes Verify wait for it or for the context (a rotation dying mid-way).
	verifyGate chan struct{}
	// createErrs are returned by the next Create calls, one each.
	createErrs []error
	creates    int
	// readSecrets records name=value of every other secret Create read through req.Secrets.
	readSecrets []string
	// revokeReqs records the request of every Revoke.
	revokeReqs []providers.Request
	// lifetime, when set, is how long the issuer lets a new credential live (Credential.ExpiresAt).
	lifetime time.Duration
	// contentType, when set, is what Create says the new value is (Credential.ContentType).
	contentType string
}

func newCountingProvider(shape providers.Shape) *countingProvider {
	return &countingProvider{shape: shape, creds: map[string]string{}, byKey: map[string]string{}}
}

func (p *countingProvider) Shape() providers.Shape { return p.shape }

func (p *countingProvider) Validate(params providers.Params) error {
	if v := params.Get("test-mode"); v != "" && v != "ok" {
		return providers.ConfigErrorf("test-mode", v, "must be ok")
	}
	return nil
}

// References declares the tags test-secret (another secret the provider reads) and test-url (a host it
// calls): what the bindings must allow.
func (p *countingProvider) References(params providers.Params) []providers.Reference {
	var refs []providers.Reference
	if s := params.Get("test-secret"); s != "" {
		refs = append(refs, providers.Reference{Kind: providers.RefSecret, Tag: "test-secret", Value: s})
	}
	if u := params.Get("test-url"); u != "" {
		refs = append(refs, providers.Reference{Kind: providers.RefURL, Tag: "test-url", Value: u})
	}
	return refs
}

func (p *countingProvider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	if p.slow > 0 {
		time.Sleep(p.slow)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creates++
	if len(p.createErrs) > 0 {
		err := p.createErrs[0]
		p.createErrs = p.createErrs[1:]
		return providers.Credential{}, err
	}
	if p.failCreate != nil {
		return providers.Credential{}, p.failCreate
	}
	if s := req.Params.Get("test-secret"); s != "" {
		p.mu.Unlock()
		v, err := req.Secrets.SecretValue(ctx, s)
		p.mu.Lock()
		if err != nil {
			return providers.Credential{}, err
		}
		p.readSecrets = append(p.readSecrets, s+"="+v.Reveal())
	}
	if id, ok := p.byKey[req.IdempotencyKey]; ok {
		if val, live := p.creds[id]; live {
			return providers.Credential{Value: providers.NewValue(val), CredentialID: id}, nil
		}
	}
	p.created++
	id := fmt.Sprintf("cred-%d", p.created)
	val := "value-of-" + id
	p.creds[id] = val
	p.byKey[req.IdempotencyKey] = id
	c := providers.Credential{Value: providers.NewValue(val), CredentialID: id, ContentType: p.contentType}
	if p.lifetime > 0 {
		exp := req.Now.Add(p.lifetime)
		c.ExpiresAt = &exp
	}
	return c, nil
}

func (p *countingProvider) Verify(ctx context.Context, req providers.Request, c providers.Credential) error {
	if p.verifyGate != nil {
		select {
		case <-p.verifyGate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.verifyFlap > 0 {
		p.verifyFlap--
		return errors.New("not propagated yet")
	}
	if p.failVerify != nil {
		return p.failVerify
	}
	if p.creds[c.CredentialID] != c.Value.Reveal() {
		return providers.Permanent(errors.New("credential does not work"))
	}
	return nil
}

func (p *countingProvider) Revoke(ctx context.Context, req providers.Request, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revokeReqs = append(p.revokeReqs, req)
	if p.failRevoke != nil {
		return p.failRevoke
	}
	if val, live := p.creds[id]; req.HandWritten && live && val != req.Retired.Reveal() {
		// A provider that can tell which credential a value is: the tag's id is not the retired value's.
		return providers.Permanent(fmt.Errorf("credential %s does not hold the retired value", id))
	}
	delete(p.creds, id)
	p.revoked = append(p.revoked, id)
	return nil
}

func (p *countingProvider) live() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for id := range p.creds {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// manualClock is a Clock tests move.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recorder is a Publisher that keeps outcomes.
type recorder struct {
	mu       sync.Mutex
	outcomes []rotation.Outcome
}

func (r *recorder) Publish(_ context.Context, o rotation.Outcome) error {
	r.mu.Lock()
	r.outcomes = append(r.outcomes, o)
	r.mu.Unlock()
	return nil
}

func (r *recorder) kinds() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []string
	for _, o := range r.outcomes {
		ks = append(ks, string(o.Kind))
	}
	return strings.Join(ks, ",")
}

// throttled is a transient provider error that asks for a wait.
type throttled struct{ after time.Duration }

func (t throttled) Error() string             { return "429 too many requests" }
func (t throttled) RetryAfter() time.Duration { return t.after }

// losingLocker hands out a lock whose context the test cancels (a lease lost mid-way).
type losingLocker struct {
	mu     sync.Mutex
	cancel context.CancelCauseFunc
}

func (l *losingLocker) Lock(ctx context.Context, key string) (context.Context, func(), error) {
	held, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	l.cancel = cancel
	l.mu.Unlock()
	return held, func() { cancel(nil) }, nil
}

func (l *losingLocker) lose() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancel(errors.New("lease lost: renewal failed"))
}

func (p *countingProvider) Created() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.created
}
