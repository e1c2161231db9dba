package rotation

import (
	"context"
	"strings"
	"sync"
)

// Journal keeps kvrotator's own state of each secret — the credential each version it wrote holds,
// pending revocations, start marks, failure counts — where a person who can edit the secret's tags
// cannot write: a blob in kvrotator's own storage account beside the leases (lock.BlobJournal), a file
// for the on-premises runner (journal.File), memory for the demo and tests. The rotation-state tag only
// mirrors it for people; the engine never reads state from tags.
//
// Writes happen under the secret's lock. Keys are case-insensitive (Key Vault's names are).
type Journal interface {
	// Load returns the secret's state; the zero State when there is none.
	Load(ctx context.Context, vault, secret string) (State, error)
	// Save replaces the secret's state.
	Save(ctx context.Context, vault, secret string, st State) error
	// List returns the state of every secret of the vault that has one, keyed by lower-case secret
	// name: the sweep and status call it once per vault rather than once per secret.
	List(ctx context.Context, vault string) (map[string]State, error)
}

// memoryJournal is the in-process Journal.
type memoryJournal struct {
	mu sync.Mutex
	m  map[string]map[string]State // vault → secret → state, lower-case keys
}

// NewMemoryJournal returns a Journal that lives as long as the process (the demo, tests, and
// deployments that accept losing pending revocations on restart).
func NewMemoryJournal() Journal { return &memoryJournal{m: map[string]map[string]State{}} }

func (j *memoryJournal) Load(_ context.Context, vault, secret string) (State, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.m[strings.ToLower(vault)][strings.ToLower(secret)].clone(), nil
}

func (j *memoryJournal) Save(_ context.Context, vault, secret string, st State) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := strings.ToLower(vault)
	if j.m[v] == nil {
		j.m[v] = map[string]State{}
	}
	j.m[v][strings.ToLower(secret)] = st.clone()
	return nil
}

func (j *memoryJournal) List(_ context.Context, vault string) (map[string]State, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := map[string]State{}
	for k, st := range j.m[strings.ToLower(vault)] {
		out[k] = st.clone()
	}
	return out, nil
}

// clone copies the state's slices so that a caller's changes never reach a stored state.
func (st State) clone() State {
	st.Pending = append([]Pending(nil), st.Pending...)
	st.Retire = append([]Retire(nil), st.Retire...)
	st.Emergencies = append([]Emergency(nil), st.Emergencies...)
	return st
}
