package emulator

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"strings"
	"sync"
)

// secretVersion is one version of a secret as the vault keeps it.
type secretVersion struct {
	Version     string            `json:"version"`
	Value       string            `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Enabled     bool              `json:"enabled"`
	NotBefore   *int64            `json:"nbf,omitempty"`
	Expires     *int64            `json:"exp,omitempty"`
	Created     int64             `json:"created"`
	Updated     int64             `json:"updated"`
	Tags        map[string]string `json:"tags,omitempty"`

	// Event bookkeeping, persisted so a restart does not repeat events.
	NearExpirySent bool `json:"nearExpirySent,omitempty"`
	ExpiredSent    bool `json:"expiredSent,omitempty"`
}

// secretEntry is a secret name with all its versions, oldest first; the last one is the latest.
type secretEntry struct {
	Name     string           `json:"name"`
	Versions []*secretVersion `json:"versions"`

	// Set while the secret is soft-deleted.
	DeletedDate        int64 `json:"deletedDate,omitempty"`
	ScheduledPurgeDate int64 `json:"scheduledPurgeDate,omitempty"`
}

func (e *secretEntry) latest() *secretVersion { return e.Versions[len(e.Versions)-1] }

func (e *secretEntry) version(v string) *secretVersion {
	if v == "" {
		return e.latest()
	}
	for _, sv := range e.Versions {
		if strings.EqualFold(sv.Version, v) {
			return sv
		}
	}
	return nil
}

// vaultState is everything one vault holds; it is the unit of persistence.
type vaultState struct {
	Name    string                  `json:"name"`
	Secrets map[string]*secretEntry `json:"secrets"` // key: lower-case name (names are case-insensitive)
	Deleted map[string]*secretEntry `json:"deleted"`
}

func newVaultState(name string) *vaultState {
	return &vaultState{Name: name, Secrets: map[string]*secretEntry{}, Deleted: map[string]*secretEntry{}}
}

// sortedKeys returns the keys of m in order, for stable paging.
func sortedKeys(m map[string]*secretEntry) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// vault is one emulated Key Vault: its state and the lock that serialises changes and their persistence.
type vault struct {
	name  string
	mu    sync.RWMutex
	state *vaultState
	cfg   VaultConfig
}

// newVersionID returns a fresh 32-character lower-case hex version id, as Key Vault generates.
func newVersionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func cloneTags(t map[string]string) map[string]string {
	if t == nil {
		return nil
	}
	c := make(map[string]string, len(t))
	for k, v := range t {
		c[k] = v
	}
	return c
}

func cloneInt(p *int64) *int64 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func (v *secretVersion) clone() *secretVersion {
	c := *v
	c.Tags = cloneTags(v.Tags)
	c.NotBefore = cloneInt(v.NotBefore)
	c.Expires = cloneInt(v.Expires)
	return &c
}
