package rotation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// memVault is an in-memory rotation.Vault for unit tests of the engine (integration tests use the
// Key Vault emulator through the keyvault adapter).
type memVault struct {
	name    string
	mu      sync.Mutex
	secrets map[string][]rotation.Secret // versions, oldest first
	failSet error
	sets    int
	lists   int
}

func newMemVault(name string) *memVault {
	return &memVault{name: name, secrets: map[string][]rotation.Secret{}}
}

func (v *memVault) Name() string { return v.name }

func (v *memVault) put(name, value string, tags map[string]string, exp *time.Time) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.putLocked(name, providers.NewValue(value), tags, exp, "")
}

func (v *memVault) putLocked(name string, value providers.Value, tags map[string]string, exp *time.Time, ct string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	ver := hex.EncodeToString(b)
	t := map[string]string{}
	for k, val := range tags {
		t[k] = val
	}
	v.secrets[name] = append(v.secrets[name], rotation.Secret{
		SecretProperties: rotation.SecretProperties{Vault: v.name, Name: name, Version: ver, Enabled: true, Expires: exp, Tags: t, ContentType: ct},
		Value:            value,
	})
	return ver
}

func (v *memVault) Get(_ context.Context, name, version string) (rotation.Secret, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	vs := v.secrets[name]
	if len(vs) == 0 {
		return rotation.Secret{}, fmt.Errorf("get %s: %w", name, rotation.ErrNotFound)
	}
	if version == "" {
		return vs[len(vs)-1], nil
	}
	for _, s := range vs {
		if s.Version == version {
			return s, nil
		}
	}
	return rotation.Secret{}, fmt.Errorf("get %s/%s: %w", name, version, rotation.ErrNotFound)
}

func (v *memVault) List(_ context.Context, fn func(rotation.SecretProperties) error) error {
	v.mu.Lock()
	v.lists++
	names := make([]string, 0, len(v.secrets))
	for n := range v.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	var props []rotation.SecretProperties
	for _, n := range names {
		vs := v.secrets[n]
		p := vs[len(vs)-1].SecretProperties
		props = append(props, p)
	}
	v.mu.Unlock()
	for _, p := range props {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

func (v *memVault) Set(_ context.Context, name string, nv rotation.NewVersion) (rotation.SecretProperties, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failSet != nil {
		return rotation.SecretProperties{}, v.failSet
	}
	v.sets++
	exp := nv.Expires
	v.putLocked(name, nv.Value, nv.Tags, &exp, nv.ContentType)
	vs := v.secrets[name]
	return vs[len(vs)-1].SecretProperties, nil
}

func (v *memVault) UpdateTags(_ context.Context, name, version string, tags map[string]string) (rotation.SecretProperties, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, s := range v.secrets[name] {
		if s.Version == version {
			v.secrets[name][i].Tags = tags
			return v.secrets[name][i].SecretProperties, nil
		}
	}
	return rotation.SecretProperties{}, rotation.ErrNotFound
}

func (v *memVault) versions(name string) []rotation.Secret {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]rotation.Secret(nil), v.secrets[name]...)
}

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

func (p *countingProvider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	if p.slow > 0 {
		time.Sleep(p.slow)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failCreate != nil {
		return providers.Credential{}, p.failCreate
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
	return providers.Credential{Value: providers.NewValue(val), CredentialID: id}, nil
}

func (p *countingProvider) Verify(ctx context.Context, req providers.Request, c providers.Credential) error {
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
	if p.failRevoke != nil {
		return p.failRevoke
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
