// Command zipapp writes the Azure Functions deployment package of kvrotator: a zip holding host.json,
// every function folder (a top-level folder with a function.json), the custom-handler binary and, when
// the root has one, the operator's bindings.json — nothing else. scripts/package.sh runs it after cross-compiling the binary.
//
// The binary is stored with mode 0755 in the zip's Unix external attributes, so the Linux host can
// execute it after extraction (a zip made with Windows tools or Python's zipfile loses the bit, and the
// Functions host then fails to start the handler). Entries are sorted and stamped with one fixed time
// (SOURCE_DATE_EPOCH when set), so the same inputs give the same bytes.
//
// Usage:
//
//	go run ./scripts/zipapp -root . -binary /tmp/build/kvrotator -o dist/kvrotator-functionapp.zip
package main

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

func main() {
	root := flag.String("root", ".", "the Function App root: the folder with host.json and the function folders")
	binary := flag.String("binary", "", "the linux/amd64 custom-handler `executable` to package")
	out := flag.String("o", "dist/kvrotator-functionapp.zip", "the zip to write")
	flag.Parse()
	if *binary == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := build(*root, *binary, *out, stamp()); err != nil {
		fmt.Fprintln(os.Stderr, "zipapp:", err)
		os.Exit(1)
	}
}

// stamp is the modification time of every entry: SOURCE_DATE_EPOCH, or 2000-01-01 (zip's DOS times
// cannot go before 1980).
func stamp() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 315532800 {
			return time.Unix(n, 0).UTC()
		}
	}
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
}

// entry is one file of the package.
type entry struct {
	name string // slash-separated path in the zip
	src  string // file to copy
	mode fs.FileMode
}

// BindingsFile is the operator's bindings file, packaged when the Function App root has one.
const BindingsFile = "bindings.json"

// build writes the package of root with binary to out, through a temporary file renamed into place.
func build(root, binary, out string, modified time.Time) error {
	exe, err := handlerName(root)
	if err != nil {
		return err
	}
	if err := checkLinuxAMD64(binary); err != nil {
		return err
	}
	funcs, err := functionFiles(root)
	if err != nil {
		return err
	}
	entries := append([]entry{{name: "host.json", src: filepath.Join(root, "host.json"), mode: 0o644}}, funcs...)
	entries = append(entries, entry{name: exe, src: binary, mode: 0o755})
	// The operator's bindings (README "Security model"), deployed with the app so that only those who
	// deploy can change them; KVROTATOR_BINDINGS=bindings.json points at it.
	if _, err := os.Stat(filepath.Join(root, BindingsFile)); err == nil {
		entries = append(entries, entry{name: BindingsFile, src: filepath.Join(root, BindingsFile), mode: 0o644})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })

	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".zipapp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	zw := zip.NewWriter(tmp)
	for _, e := range entries {
		if err := add(zw, e, modified); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := zw.Close(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// handlerName reads customHandler.description.defaultExecutablePath from host.json: the binary must sit
// at that path in the package, or the host looks for a command of that name on PATH instead.
func handlerName(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		return "", err
	}
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string `json:"defaultExecutablePath"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	if err := json.Unmarshal(b, &host); err != nil {
		return "", fmt.Errorf("host.json: %w", err)
	}
	p := host.CustomHandler.Description.DefaultExecutablePath
	if p == "" || filepath.IsAbs(p) || p != filepath.Base(p) {
		return "", fmt.Errorf("host.json: customHandler.description.defaultExecutablePath %q: want a file name at the app root", p)
	}
	return p, nil
}

// functionFiles lists <folder>/function.json for every top-level folder that has one.
func functionFiles(root string) ([]entry, error) {
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []entry
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		src := filepath.Join(root, d.Name(), "function.json")
		if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, entry{name: d.Name() + "/function.json", src: src, mode: 0o644})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no function folder (a folder with function.json)", root)
	}
	return out, nil
}

// checkLinuxAMD64 refuses anything but a linux/amd64 ELF executable: the Functions Linux workers run
// x86-64, and a binary built for the build machine would fail only after deployment.
func checkLinuxAMD64(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: not an ELF executable (build with GOOS=linux GOARCH=amd64): %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("%s: ELF for %v, want x86-64 (GOARCH=amd64)", path, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s: ELF type %v is not an executable", path, f.Type)
	}
	return nil
}

// add copies one file into the zip with its Unix mode.
func add(zw *zip.Writer, e entry, modified time.Time) error {
	b, err := os.ReadFile(e.src)
	if err != nil {
		return err
	}
	h := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: modified}
	h.SetMode(e.mode) // Unix creator and mode in the external attributes
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, bytes.NewReader(b))
	return err
}
