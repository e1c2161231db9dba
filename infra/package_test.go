package infra

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// functionFolders lists the repository's function folders (top-level folders with a function.json).
func functionFolders(t *testing.T) []string {
	t.Helper()
	matches, err := filepath.Glob("../*/function.json")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range matches {
		out = append(out, filepath.Base(filepath.Dir(m)))
	}
	sort.Strings(out)
	for _, want := range []string{"KeyVaultEvents", "RotateSecret", "ScheduledSweep"} {
		if !slices.Contains(out, want) {
			t.Fatalf("function folder %s missing (found %v)", want, out)
		}
	}
	return out
}

// TestPackageScript runs scripts/package.sh, the one packaging command, and checks the zip that
// `az functionapp deployment source config-zip` receives: host.json, the function folders and the
// linux/amd64 binary with its executable bit — nothing else.
func TestPackageScript(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds kvrotator")
	}
	zr := runPackage(t, "KVROTATOR_VERSION=9.9.9-test")

	want := []string{"host.json", "kvrotator"}
	for _, f := range functionFolders(t) {
		want = append(want, f+"/function.json")
	}
	sort.Strings(want)
	var got []string
	files := map[string]*zip.File{}
	for _, f := range zr.File {
		got = append(got, f.Name)
		files[f.Name] = f
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Fatalf("zip entries = %v, want exactly %v", got, want)
	}

	bin := files["kvrotator"]
	if bin.CreatorVersion>>8 != 3 { // 3 = Unix: the host reads the mode from the external attributes
		t.Errorf("kvrotator entry made by %d, want Unix (3)", bin.CreatorVersion>>8)
	}
	if mode := bin.ExternalAttrs >> 16; mode&0o111 != 0o111 || bin.Mode().Perm() != 0o755 {
		t.Errorf("kvrotator mode = %o (external attrs %#x), want 0755", bin.Mode().Perm(), bin.ExternalAttrs)
	}
	for name, f := range files {
		if name != "kvrotator" && f.Mode().Perm() != 0o644 {
			t.Errorf("%s mode = %o, want 0644", name, f.Mode().Perm())
		}
	}

	data := readZipFile(t, bin)
	ef, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("kvrotator is not an ELF binary: %v", err)
	}
	if ef.Machine != elf.EM_X86_64 {
		t.Errorf("kvrotator built for %v, want x86-64", ef.Machine)
	}
	if slices.ContainsFunc(ef.Progs, func(p *elf.Prog) bool { return p.Type == elf.PT_INTERP }) {
		t.Errorf("kvrotator is dynamically linked: build with CGO_ENABLED=0")
	}
	if !bytes.Contains(data, []byte("9.9.9-test")) {
		t.Errorf("the version set with -X main.version is not in the binary")
	}

	repoHost, err := os.ReadFile("../host.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readZipFile(t, files["host.json"]), repoHost) {
		t.Errorf("host.json in the zip differs from the repository's")
	}
}

// runPackage runs scripts/package.sh with env added, into a temporary dist folder, and opens its zip.
func runPackage(t *testing.T, env ...string) *zip.ReadCloser {
	t.Helper()
	dist := t.TempDir()
	cmd := exec.Command("bash", "scripts/package.sh")
	cmd.Dir = ".."
	cmd.Env = append(append(os.Environ(), "KVROTATOR_DIST="+dist), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	zr, err := zip.OpenReader(filepath.Join(dist, "kvrotator-functionapp.zip"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zr.Close() })
	return zr
}

func readZipFile(t *testing.T, f *zip.File) []byte {
	t.Helper()
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestZipAppRefusesAForeignBinary: a binary for the build machine's OS (or a script) must not be
// packaged, since the Linux workers would fail to start it only after deployment.
func TestZipAppRefusesAForeignBinary(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "kvrotator")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "./scripts/zipapp", "-root", ".", "-binary", notELF, "-o", filepath.Join(dir, "out.zip"))
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("zipapp packaged a shell script as the handler:\n%s", out)
	}
	if !strings.Contains(string(out), "not an ELF executable") {
		t.Errorf("zipapp error = %s, want it to name the problem", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.zip")); err == nil {
		t.Errorf("zipapp left a zip behind after failing")
	}
}

// TestZipAppPackagesTheOperatorsBindings: a bindings.json at the Function App root (the operator's
// bindings, KVROTATOR_BINDINGS=bindings.json) goes into the package; nothing else from the root does.
func TestZipAppPackagesTheOperatorsBindings(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds a binary")
	}
	root, dir := t.TempDir(), t.TempDir()
	for name, body := range map[string]string{
		"host.json":                    `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"kvrotator"}}}`,
		"KeyVaultEvents/function.json": `{"bindings":[]}`,
		"bindings.json":                `{"bindings":[]}`,
		"bindings.sample.json":         `{"bindings":[]}`,
		"notes.txt":                    "not packaged",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "kvrotator")
	build := exec.Command("go", "build", "-o", bin, "./scripts/zipapp")
	build.Dir = ".."
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build a linux/amd64 binary: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "app.zip")
	cmd := exec.Command("go", "run", "./scripts/zipapp", "-root", root, "-binary", bin, "-o", out)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zipapp: %v\n%s", err, b)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var got []string
	for _, f := range zr.File {
		got = append(got, f.Name)
	}
	sort.Strings(got)
	if want := []string{"KeyVaultEvents/function.json", "bindings.json", "host.json", "kvrotator"}; !slices.Equal(got, want) {
		t.Fatalf("zip entries = %v, want %v", got, want)
	}
}

// TestPackageScriptProviders: KVROTATOR_PROVIDERS links only the providers it names (by their
// rotation-provider names or build-tag names), which `kvrotator version` lists; an unknown name stops the
// build with the known ones.
func TestPackageScriptProviders(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds kvrotator")
	}
	zr := runPackage(t, "KVROTATOR_PROVIDERS=random,Entra-App-Certificate postgres")
	found := false
	for _, f := range zr.File {
		if f.Name != "kvrotator" {
			continue
		}
		found = true
		bin := filepath.Join(t.TempDir(), "kvrotator")
		if err := os.WriteFile(bin, readZipFile(t, f), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil {
			t.Fatalf("kvrotator version: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "\nproviders: entra-app-certificate postgres random\n") {
			t.Fatalf("kvrotator version of a KVROTATOR_PROVIDERS build:\n%s", out)
		}
	}
	if !found {
		t.Fatal("no kvrotator binary in the zip")
	}

	cmd := exec.Command("bash", "scripts/package.sh")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "KVROTATOR_DIST="+t.TempDir(), "KVROTATOR_PROVIDERS=random no-such-provider")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `unknown provider "no-such-provider"`) || !strings.Contains(string(out), "postgres") {
		t.Fatalf("package.sh with an unknown provider: %v\n%s", err, out)
	}
}
