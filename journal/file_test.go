package journal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/journal"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

var ctx = context.Background()

func open(t *testing.T, dir string) *journal.File {
	t.Helper()
	f, err := journal.OpenFile(dir)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", dir, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func sample(i int) rotation.State {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
	return rotation.State{
		Version:      fmt.Sprintf("%032x", i+1),
		CredentialID: fmt.Sprintf("cred-%d", i),
		From:         fmt.Sprintf("%032x", i),
		At:           at,
		By:           rotation.TriggerEvent,
		Pending:      []rotation.Pending{{CredentialID: fmt.Sprintf("old-%d", i), Version: fmt.Sprintf("%032x", i), Due: at.Add(time.Hour)}},
		Fails:        i % 4,
	}
}

func same(t *testing.T, what string, got, want rotation.State) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func save(t *testing.T, j rotation.Journal, vault, secret string, st rotation.State) {
	t.Helper()
	if err := j.Save(ctx, vault, secret, st); err != nil {
		t.Fatalf("Save(%s/%s): %v", vault, secret, err)
	}
}

func load(t *testing.T, j rotation.Journal, vault, secret string) rotation.State {
	t.Helper()
	st, err := j.Load(ctx, vault, secret)
	if err != nil {
		t.Fatalf("Load(%s/%s): %v", vault, secret, err)
	}
	return st
}

func TestRoundTripAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal", "nested")
	j := open(t, dir)
	same(t, "missing", load(t, j, "vault1", "db-password"), rotation.State{})

	save(t, j, "vault1", "db-password", sample(1))
	same(t, "after Save", load(t, j, "vault1", "db-password"), sample(1))
	save(t, j, "vault1", "db-password", sample(2))
	save(t, j, "Vault1", "DB-Password", sample(3)) // names are case-insensitive
	same(t, "replaced", load(t, j, "VAULT1", "db-PASSWORD"), sample(3))
	save(t, j, "vault1", "zero", rotation.State{})

	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := j.Load(ctx, "vault1", "db-password"); !errors.Is(err, journal.ErrClosed) {
		t.Fatalf("Load after Close = %v, want ErrClosed", err)
	}
	if err := j.Save(ctx, "vault1", "db-password", sample(1)); !errors.Is(err, journal.ErrClosed) {
		t.Fatalf("Save after Close = %v, want ErrClosed", err)
	}

	// Another process (here: another File) finds what was saved.
	j2 := open(t, dir)
	same(t, "after reopening", load(t, j2, "vault1", "db-password"), sample(3))
	same(t, "zero state after reopening", load(t, j2, "vault1", "zero"), rotation.State{})
	if _, err := os.Stat(filepath.Join(dir, "vault1", "db-password.json")); err != nil {
		t.Fatalf("state file: %v", err)
	}
}

func TestPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := filepath.Join(t.TempDir(), "journal")
	j := open(t, dir)
	save(t, j, "vault1", "s1", sample(1))
	for p, want := range map[string]os.FileMode{
		dir:                                     0o700 | os.ModeDir,
		filepath.Join(dir, "vault1"):            0o700 | os.ModeDir,
		filepath.Join(dir, "vault1", "s1.json"): 0o600,
		filepath.Join(dir, ".lock"):             0o600,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode()&^os.ModeType | fi.Mode()&os.ModeDir; got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	if states, err := j.List(ctx, "vault1"); err != nil || len(states) != 0 {
		t.Fatalf("List of an empty journal = %v, %v", states, err)
	}
	for i := range 5 {
		save(t, j, "vault1", fmt.Sprintf("Secret-%d", i), sample(i))
	}
	save(t, j, "vault10", "secret-0", sample(9)) // another vault, whose name extends vault1's
	save(t, j, "vault-b", "secret-0", sample(8))
	// What is not a secret's state file is ignored: temporary files, notes a person left.
	for _, name := range []string{".secret-9.json.tmp-123", "README.txt", "bad name.json"} {
		if err := os.WriteFile(filepath.Join(dir, "vault1", name), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "vault1", "sub.json"), 0o700); err != nil {
		t.Fatal(err)
	}

	states, err := j.List(ctx, "VAULT1")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 5 {
		t.Fatalf("List = %d states, want 5: %v", len(states), states)
	}
	for i := range 5 {
		same(t, fmt.Sprintf("secret-%d", i), states[fmt.Sprintf("secret-%d", i)], sample(i))
	}
	other, err := j.List(ctx, "vault10")
	if err != nil || len(other) != 1 {
		t.Fatalf("List(vault10) = %v, %v", other, err)
	}
	same(t, "vault10", other["secret-0"], sample(9))
}

func TestConcurrentSaves(t *testing.T) {
	j := open(t, t.TempDir())
	const workers, rounds = 16, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				// Each worker its own secret, and all of them one shared secret.
				errs <- j.Save(ctx, "vault1", fmt.Sprintf("own-%d", w), sample(w*100+r))
				errs <- j.Save(ctx, "vault1", "shared", sample(r))
				if _, err := j.Load(ctx, "vault1", "shared"); err != nil {
					errs <- err
				}
				if _, err := j.List(ctx, "vault1"); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	states, err := j.List(ctx, "vault1")
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != workers+1 {
		t.Fatalf("List = %d states, want %d", len(states), workers+1)
	}
	for w := range workers {
		same(t, fmt.Sprintf("own-%d", w), states[fmt.Sprintf("own-%d", w)], sample(w*100+rounds-1))
	}
	if states["shared"].Version == "" {
		t.Fatalf("shared state lost: %+v", states["shared"])
	}
	entries, err := os.ReadDir(filepath.Join(j.Dir(), "vault1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != workers+1 {
		t.Fatalf("%d files in the vault directory, want %d (temporary files left behind?)", len(entries), workers+1)
	}
}

func TestCorruptFileIsAnErrorNamingIt(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	save(t, j, "vault1", "good", sample(1))
	for _, body := range []string{"", "{not json", `{"version":"a"} trailing`, `{"fails":"many"}`} {
		p := filepath.Join(dir, "vault1", "bad.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := j.Load(ctx, "vault1", "bad")
		if err == nil || !strings.Contains(err.Error(), p) || !providers.IsPermanent(err) {
			t.Errorf("Load of %q = %v, want a permanent error naming %s", body, err, p)
		}
		if _, err := j.List(ctx, "vault1"); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("List with %q = %v, want an error naming %s", body, err, p)
		}
		raw, _ := os.ReadFile(p)
		if string(raw) != body {
			t.Errorf("the corrupt file was changed to %q", raw)
		}
	}
}

func TestInvalidNames(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	for _, name := range []string{"", ".", "..", "../x", "a/b", `a\b`, "sec ret", "sécret", "x.json", strings.Repeat("a", 128)} {
		if err := j.Save(ctx, "vault1", name, sample(1)); err == nil || !providers.IsPermanent(err) {
			t.Errorf("Save(vault1, %q) = %v, want a permanent error", name, err)
		}
		if err := j.Save(ctx, name, "secret", sample(1)); err == nil {
			t.Errorf("Save(%q, secret) accepted", name)
		}
		if _, err := j.Load(ctx, name, "secret"); err == nil {
			t.Errorf("Load(%q, secret) accepted", name)
		}
		if _, err := j.List(ctx, name); err == nil {
			t.Errorf("List(%q) accepted", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 { // .lock
		t.Fatalf("invalid names created files: %v", entries)
	}
	if _, err := journal.OpenFile(""); err == nil {
		t.Fatal("OpenFile(\"\") accepted")
	}
	file := filepath.Join(dir, "plain-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.OpenFile(file); err == nil {
		t.Fatal("OpenFile of a regular file accepted")
	}
}

func TestStaleTemporaryFilesRemovedOnOpen(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock: temporary files are kept")
	}
	dir := t.TempDir()
	j := open(t, dir)
	save(t, j, "vault1", "s1", sample(1))
	j.Close()
	stale := filepath.Join(dir, "vault1", ".s1.json.tmp-42")
	if err := os.WriteFile(stale, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	j2 := open(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary file still there: %v", err)
	}
	same(t, "state kept", load(t, j2, "vault1", "s1"), sample(1))
}

// One runner at a time: a second process opening the same directory is refused while the first has it.
func TestSecondProcessRefused(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("no flock")
	}
	if dir := os.Getenv("JOURNAL_TEST_OPEN"); dir != "" {
		// The child: try to open, report the outcome on stdout.
		f, err := journal.OpenFile(dir)
		switch {
		case errors.Is(err, journal.ErrInUse):
			fmt.Println("IN-USE:", err)
		case err != nil:
			fmt.Println("ERROR:", err)
		default:
			f.Close()
			fmt.Println("OPENED")
		}
		return
	}
	child := func(dir string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSecondProcessRefused$")
		cmd.Env = append(os.Environ(), "JOURNAL_TEST_OPEN="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	dir := t.TempDir()
	j := open(t, dir)
	out := child(dir)
	if !strings.Contains(out, "IN-USE:") || !strings.Contains(out, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second process while the first has the journal: %s", out)
	}
	// In this process too, a second File on the same directory is refused.
	if _, err := journal.OpenFile(dir); !errors.Is(err, journal.ErrInUse) {
		t.Fatalf("second OpenFile in the same process = %v, want ErrInUse", err)
	}
	j.Close()
	if out := child(dir); !strings.Contains(out, "OPENED") {
		t.Fatalf("second process after Close: %s", out)
	}
}
