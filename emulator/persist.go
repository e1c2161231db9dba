package emulator

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Data directory layout:
//
//	DIR/vaults/<name>.json   one file per vault, rewritten atomically after every change
//	DIR/emulator.json        the clock offset
//	DIR/audit.jsonl          the audit log, one record per line (audit.go)
//	DIR/ca.pem, ca-key.pem   the CA (ca.pem is what clients trust)
//	DIR/token-key.pem        the token-signing key
//	DIR/backup.key           the key that seals backup blobs
//
// Vault files hold secret values in clear: the directory is created 0700 and files 0600.

type metaFile struct {
	ClockOffsetSeconds int64 `json:"clockOffsetSeconds"`
}

// loadData reads the vaults and the clock offset from DataDir.
func (s *Server) loadData() error {
	dir := s.cfg.DataDir
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "vaults"), 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "emulator.json")); err == nil {
		var m metaFile
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("data directory: emulator.json: %w", err)
		}
		s.clock.setOffset(time.Duration(m.ClockOffsetSeconds) * time.Second)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("data directory: %w", err)
	}
	// Temp files of writes cut short by a kill are garbage: the rename never happened.
	if stale, _ := filepath.Glob(filepath.Join(dir, "vaults", ".*.tmp-*")); len(stale) > 0 {
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	files, err := filepath.Glob(filepath.Join(dir, "vaults", "*.json"))
	if err != nil {
		return err
	}
	configured := map[string]VaultConfig{}
	for _, vc := range s.cfg.Vaults {
		configured[strings.ToLower(vc.Name)] = vc
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		var st vaultState
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("data directory: %s is not a vault file: %w", filepath.Base(f), err)
		}
		if !validVaultName(st.Name) {
			return fmt.Errorf("data directory: %s names an invalid vault %q", filepath.Base(f), st.Name)
		}
		if st.Secrets == nil {
			st.Secrets = map[string]*secretEntry{}
		}
		if st.Deleted == nil {
			st.Deleted = map[string]*secretEntry{}
		}
		for _, m := range []map[string]*secretEntry{st.Secrets, st.Deleted} {
			for k, e := range m {
				if e == nil || len(e.Versions) == 0 {
					delete(m, k)
				}
			}
		}
		vc, ok := configured[strings.ToLower(st.Name)]
		if !ok {
			vc = VaultConfig{Name: st.Name, RecoverableDays: 90}
		}
		s.addVault(vc, &st)
	}
	return nil
}

// persist writes a vault's state; the caller holds v.mu. No-op without a data directory.
func (s *Server) persist(v *vault) *kvError {
	if s.cfg.DataDir == "" {
		return nil
	}
	b, err := json.Marshal(v.state)
	if err == nil {
		err = writeFileAtomic(filepath.Join(s.cfg.DataDir, "vaults", strings.ToLower(v.name)+".json"), b, 0o600)
	}
	if err != nil {
		s.log.Error("persisting vault failed", "vault", v.name, "error", err)
		return &kvError{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "The vault could not store the change."}
	}
	return nil
}

// saveMeta writes the clock offset.
func (s *Server) saveMeta() {
	if s.cfg.DataDir == "" {
		return
	}
	b, _ := json.Marshal(metaFile{ClockOffsetSeconds: int64(s.clock.Offset() / time.Second)})
	if err := writeFileAtomic(filepath.Join(s.cfg.DataDir, "emulator.json"), b, 0o600); err != nil {
		s.log.Error("persisting the clock failed", "error", err)
	}
}

// writeFileAtomic writes data so that path holds either the old or the new content, never a torn
// file: temp file in the same directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadOrCreateFileKey returns the 32-byte key in dir/name, creating it if missing.
func loadOrCreateFileKey(dir, name string) ([]byte, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: expected 32 bytes, found %d", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return k, writeFileAtomic(path, k, 0o600)
}
