package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadBindingsStopTheHandler: the operator's bindings are validated when the app is built (start-up
// of serve and of every operator command), with an error naming the setting, the binding and the field;
// a typo never becomes a silent allow or a silent deny.
func TestBadBindingsStopTheHandler(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "bindings.json")
	if err := os.WriteFile(good, []byte(`{"bindings": [{"name": "mail", "secrets": ["myvault/mail-*"], "provider": "sendgrid",
		"allow": {"secret": ["sendgrid-admin"]}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		settings map[string]string
		want     string // "" = builds
	}{
		{"a bindings file", map[string]string{"KVROTATOR_BINDINGS": good}, ""},
		{"inline bindings", map[string]string{"KVROTATOR_BINDINGS": `{"bindings": []}`}, ""},
		{"no bindings", nil, ""},
		{"a provider that does not exist", map[string]string{"KVROTATOR_BINDINGS": `{"bindings": [{"name": "x", "secrets": ["myvault/*"],
			"provider": "sendgird", "allow": {"secret": ["a"]}}]}`}, `KVROTATOR_BINDINGS: binding 1 ("x"): provider "sendgird" is not one of`},
		{"a kind that does not exist", map[string]string{"KVROTATOR_BINDINGS": `{"bindings": [{"secrets": ["myvault/*"],
			"provider": "*", "allow": {"hosts": ["a"]}}]}`}, "allow.hosts: not a reference kind"},
		{"a missing file", map[string]string{"KVROTATOR_BINDINGS": filepath.Join(dir, "nope.json")}, "KVROTATOR_BINDINGS: reading the bindings file"},
		{"a journal directory that is a file", map[string]string{"KVROTATOR_JOURNAL_DIR": notADir}, "KVROTATOR_JOURNAL_DIR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"KVROTATOR_VAULTS": "myvault", "KVROTATOR_CREDENTIAL": "managed-identity"}
			for k, v := range tc.settings {
				env[k] = v
			}
			_, err := newApp(func(k string) string { return env[k] }, io.Discard, io.Discard, nil)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("want the app built, got %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
