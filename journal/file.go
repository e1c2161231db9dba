// Package journal keeps kvrotator's journal (rotation.Journal) in a local directory, for the
// on-premises runner and the demo, where there is no storage account for lock.BlobJournal.
//
// The directory holds one JSON file per secret, <dir>/<vault>/<secret>.json in lower case, written
// atomically (a temporary file in the same directory, fsync, rename, fsync of the directory), so a
// crash leaves either the old state or the new one, never a torn file. The directory is created with
// mode 0700 and the files with 0600: the journal names credentials (their ids, never their values) and
// decides what gets revoked, so only kvrotator's user may read or change it.
//
// One runner at a time: OpenFile takes an exclusive lock (flock) on <dir>/.lock for as long as the File
// is open, so a second process opening the same directory fails with ErrInUse instead of working beside
// the first (whose rotation lock, rotation.NewMemoryLocker, it could not see). On systems without flock
// (Windows, Plan 9, …) that check is skipped and running one runner at a time is up to the operator.
package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// ErrInUse is wrapped by OpenFile's error when another process has the directory open.
var ErrInUse = errors.New("the journal directory is in use by another process")

// ErrClosed is returned by the methods of a closed File.
var ErrClosed = errors.New("the journal is closed")

const (
	lockName   = ".lock"
	ext        = ".json"
	tempMarker = ".tmp-" // in the names of temporary files: ".<secret>.json.tmp-<random>"
	dirMode    = 0o700
)

// File is a rotation.Journal in a directory (see the package comment). It is safe for concurrent use:
// Saves of one secret are serialised within the process, Saves of different secrets run in parallel,
// and a Load or List never sees a partly written file.
type File struct {
	dir string

	mu     sync.RWMutex // guards lock (nil once closed) against Close
	lock   *os.File
	keysMu sync.Mutex
	keys   map[string]*sync.Mutex // "<vault>/<secret>" → the lock serialising its Saves
}

var _ rotation.Journal = (*File)(nil)

// OpenFile opens the journal in dir, creating the directory (mode 0700) if needed, and locks it for this
// process until Close (see the package comment; the error wraps ErrInUse when another process holds
// it). Temporary files a crashed process left behind are removed. An existing directory's permissions
// are left as they are.
func OpenFile(dir string) (*File, error) {
	if strings.TrimSpace(dir) == "" {
		return nil, errors.New("journal directory: empty path")
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("journal directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("journal directory %s: not a directory", dir)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal lock file: %w", err)
	}
	exclusive, err := lockFile(lf)
	if err != nil {
		holder := ""
		if b, rerr := os.ReadFile(lf.Name()); rerr == nil && len(bytes.TrimSpace(b)) > 0 {
			holder = " (pid " + string(bytes.TrimSpace(b)) + ")"
		}
		lf.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("journal directory %s: %w%s: run one kvrotator runner at a time", dir, ErrInUse, holder)
		}
		return nil, fmt.Errorf("journal directory %s: lock %s: %w", dir, lockName, err)
	}
	if exclusive {
		// For the message a second runner gets; the lock itself is the flock, not this content.
		_ = lf.Truncate(0)
		_, _ = lf.WriteAt([]byte(fmt.Sprintf("%d\n", os.Getpid())), 0)
		removeTemporaries(dir)
	}
	return &File{dir: dir, lock: lf, keys: map[string]*sync.Mutex{}}, nil
}

// Dir is the journal's directory.
func (f *File) Dir() string { return f.dir }

// Close releases the directory's lock. The File cannot be used afterwards; Close is idempotent.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lock == nil {
		return nil
	}
	err := f.lock.Close() // releases the flock
	f.lock = nil
	return err
}

// path returns the file of a secret, after checking both names (1 to 127 letters, digits and hyphens,
// so a path is never built from anything else).
func (f *File) path(vault, secret string) (string, error) {
	if !kvnames.Secret(vault) || !kvnames.Secret(secret) {
		return "", providers.Permanent(fmt.Errorf("invalid journal key %q/%q: want letters, digits and hyphens", vault, secret))
	}
	return filepath.Join(f.dir, strings.ToLower(vault), strings.ToLower(secret)+ext), nil
}

// open runs fn while the File is open.
func (f *File) open(fn func() error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.lock == nil {
		return ErrClosed
	}
	return fn()
}

// Load returns the secret's state; the zero State when it has none. A file that does not hold a
// state is an error naming it (permanent: a person must fix or delete it), never a silent reset.
func (f *File) Load(_ context.Context, vault, secret string) (rotation.State, error) {
	p, err := f.path(vault, secret)
	if err != nil {
		return rotation.State{}, err
	}
	var st rotation.State
	err = f.open(func() error {
		var err error
		st, err = readState(p)
		if errors.Is(err, fs.ErrNotExist) {
			st, err = rotation.State{}, nil
		}
		return err
	})
	return st, err
}

// Save replaces the secret's state atomically.
func (f *File) Save(_ context.Context, vault, secret string, st rotation.State) error {
	p, err := f.path(vault, secret)
	if err != nil {
		return err
	}
	body, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the journal state of %s/%s: %w", vault, secret, err)
	}
	body = append(body, '\n')
	return f.open(func() error {
		mu := f.keyLock(p)
		mu.Lock()
		defer mu.Unlock()
		if err := os.MkdirAll(filepath.Dir(p), dirMode); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		return writeAtomic(p, body)
	})
}

// List returns the state of every secret of the vault that has one, keyed by lower-case secret name.
// Files that are not a secret's (temporary files, anything a person put there) are ignored; a secret's
// file that does not hold a state is an error naming it.
func (f *File) List(_ context.Context, vault string) (map[string]rotation.State, error) {
	if !kvnames.Secret(vault) {
		return nil, providers.Permanent(fmt.Errorf("invalid journal vault name %q: want letters, digits and hyphens", vault))
	}
	out := map[string]rotation.State{}
	err := f.open(func() error {
		vdir := filepath.Join(f.dir, strings.ToLower(vault))
		entries, err := os.ReadDir(vdir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		for _, e := range entries {
			secret, ok := strings.CutSuffix(e.Name(), ext)
			if !ok || !e.Type().IsRegular() || !kvnames.Secret(secret) {
				continue
			}
			st, err := readState(filepath.Join(vdir, e.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				continue // replaced or removed since ReadDir: a rename never leaves it missing
			}
			if err != nil {
				return err
			}
			out[strings.ToLower(secret)] = st
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (f *File) keyLock(p string) *sync.Mutex {
	f.keysMu.Lock()
	defer f.keysMu.Unlock()
	mu := f.keys[p]
	if mu == nil {
		mu = &sync.Mutex{}
		f.keys[p] = mu
	}
	return mu
}

// readState reads one state file. A missing file is returned as fs.ErrNotExist; a file that is not
// the JSON of a State is a permanent error naming it.
func readState(p string) (rotation.State, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return rotation.State{}, err
	}
	if err != nil {
		return rotation.State{}, fmt.Errorf("journal: %w", err)
	}
	var st rotation.State
	dec := json.NewDecoder(bytes.NewReader(b))
	if err = dec.Decode(&st); err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err != nil {
		return rotation.State{}, providers.Permanent(fmt.Errorf("journal file %s is corrupt (%v): fix or delete it; kvrotator then forgets the secret's pending revocations", p, err))
	}
	return st, nil
}

// writeAtomic replaces p with body: a temporary file beside it (os.CreateTemp makes it 0600), fsync, rename, and an fsync
// of the directory so that the rename survives a crash.
func writeAtomic(p string, body []byte) (err error) {
	dir := filepath.Dir(p)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(p)+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(body); err != nil {
		return fmt.Errorf("journal: write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("journal: close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err = syncDir(dir); err != nil {
		return fmt.Errorf("journal: sync directory %s: %w", dir, err)
	}
	return nil
}

// removeTemporaries removes the temporary files a crashed process left in the vault directories. Only
// called while this process holds the directory's lock, so none of them is being written.
func removeTemporaries(dir string) {
	vaults, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, v := range vaults {
		if !v.IsDir() || !kvnames.Secret(v.Name()) {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, v.Name()))
		if err != nil {
			continue
		}
		for _, e := range files {
			if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ext+tempMarker) && e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(dir, v.Name(), e.Name()))
			}
		}
	}
}
