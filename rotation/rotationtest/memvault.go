// Package rotationtest provides test doubles for code built on package rotation, as net/http/httptest
// does for net/http.
package rotationtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// MemVault is an in-memory rotation.Vault for unit tests and benchmarks of code above the vault
// (integration tests use the Key Vault emulator through the keyvault adapter). Safe for concurrent use.
type MemVault struct {
	name    string
	mu      sync.Mutex
	secrets map[string][]rotation.Secret // versions, oldest first

	// FailSet, when set, makes Set fail with it; FailDisable, Disable.
	FailSet     error
	FailDisable error
	// Sets, Lists and Disables count calls.
	Sets     int
	Lists    int
	Disables int
	// Now, when set, stamps new versions' creation time (tests drive it with the engine's clock);
	// unset, versions are numbered from 2001 as below.
	Now func() time.Time
	// created numbers the versions: version n was created n seconds after the Unix epoch + 1e9, so
	// creation times are distinct and ordered, as Key Vault's are at one-second resolution.
	created int64
}

// NewMemVault returns an empty vault with that name.
func NewMemVault(name string) *MemVault {
	return &MemVault{name: name, secrets: map[string][]rotation.Secret{}}
}

// Name implements rotation.Vault.
func (v *MemVault) Name() string { return v.name }

// Put writes a version directly (seeding) and returns its version id.
func (v *MemVault) Put(name, value string, tags map[string]string, exp *time.Time) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.putLocked(name, providers.NewValue(value), tags, exp, "")
}

func (v *MemVault) putLocked(name string, value providers.Value, tags map[string]string, exp *time.Time, ct string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	ver := hex.EncodeToString(b)
	t := map[string]string{}
	for k, val := range tags {
		t[k] = val
	}
	v.created++
	at := time.Unix(1e9+v.created, 0).UTC()
	if v.Now != nil {
		at = v.Now().UTC().Truncate(time.Second)
	}
	v.secrets[name] = append(v.secrets[name], rotation.Secret{
		SecretProperties: rotation.SecretProperties{Vault: v.name, Name: name, Version: ver, Enabled: true, Expires: exp, Tags: t, ContentType: ct,
			Created: at, Updated: at},
		Value: value,
	})
	return ver
}

// Get implements rotation.Vault.
func (v *MemVault) Get(_ context.Context, name, version string) (rotation.Secret, error) {
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
			if !s.Enabled {
				// As Key Vault: 403 Forbidden (SecretDisabled), which no retry changes.
				return rotation.Secret{}, providers.Permanent(fmt.Errorf("get %s/%s: %w", name, version, rotation.ErrDisabled))
			}
			return s, nil
		}
	}
	return rotation.Secret{}, fmt.Errorf("get %s/%s: %w", name, version, rotation.ErrNotFound)
}

// List implements rotation.Vault.
func (v *MemVault) List(_ context.Context, fn func(rotation.SecretProperties) error) error {
	v.mu.Lock()
	v.Lists++
	names := make([]string, 0, len(v.secrets))
	for n := range v.secrets {
		names = append(names, n)
	}
	sort.Strings(names)
	var props []rotation.SecretProperties
	for _, n := range names {
		vs := v.secrets[n]
		p := vs[len(vs)-1].SecretProperties
		p.Version = "" // Key Vault's list items name the secret, not its latest version
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

// Set implements rotation.Vault.
func (v *MemVault) Set(_ context.Context, name string, nv rotation.NewVersion) (rotation.SecretProperties, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.FailSet != nil {
		return rotation.SecretProperties{}, v.FailSet
	}
	v.Sets++
	exp := nv.Expires
	v.putLocked(name, nv.Value, nv.Tags, &exp, nv.ContentType)
	vs := v.secrets[name]
	return vs[len(vs)-1].SecretProperties, nil
}

// UpdateTags implements rotation.Vault.
func (v *MemVault) UpdateTags(_ context.Context, name, version string, tags map[string]string) (rotation.SecretProperties, error) {
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

// Disable implements rotation.Vault.
func (v *MemVault) Disable(_ context.Context, name, version string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.Disables++
	if v.FailDisable != nil {
		return v.FailDisable
	}
	for i, s := range v.secrets[name] {
		if s.Version == version {
			v.secrets[name][i].Enabled = false
			return nil
		}
	}
	return fmt.Errorf("disable %s/%s: %w", name, version, rotation.ErrNotFound)
}

// SetEnabled enables or disables a version, as a person in the portal would.
func (v *MemVault) SetEnabled(name, version string, enabled bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, s := range v.secrets[name] {
		if s.Version == version {
			v.secrets[name][i].Enabled = enabled
		}
	}
}

// Versions returns a secret's versions, oldest first.
func (v *MemVault) Versions(name string) []rotation.Secret {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]rotation.Secret(nil), v.secrets[name]...)
}
