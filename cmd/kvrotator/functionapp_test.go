package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The Function App files at the repository root must match what the handler serves and reads.
func TestFunctionAppFiles(t *testing.T) {
	root := filepath.Join("..", "..")
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string   `json:"defaultExecutablePath"`
				Arguments             []string `json:"arguments"`
			} `json:"description"`
			EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
		ExtensionBundle struct{ ID, Version string } `json:"extensionBundle"`
		FunctionTimeout string                       `json:"functionTimeout"`
	}
	readJSON(t, filepath.Join(root, "host.json"), &host)
	d := host.CustomHandler.Description
	if d.DefaultExecutablePath != "kvrotator" || len(d.Arguments) != 1 || d.Arguments[0] != "serve" || host.CustomHandler.EnableForwardingHTTPRequest {
		t.Errorf("host.json customHandler: %+v", host.CustomHandler)
	}
	if host.ExtensionBundle.ID != "Microsoft.Azure.Functions.ExtensionBundle" || host.ExtensionBundle.Version != "[4.*, 5.0.0)" {
		t.Errorf("extension bundle: %+v", host.ExtensionBundle)
	}
	if host.FunctionTimeout == "" {
		t.Error("no functionTimeout")
	}

	type binding struct {
		Type, Direction, Name, Schedule, AuthLevel string
		Methods                                    []string
	}
	want := map[string][]binding{
		"KeyVaultEvents": {{Type: "eventGridTrigger", Direction: "in", Name: "eventGridEvent"}},
		"ScheduledSweep": {{Type: "timerTrigger", Direction: "in", Name: "timer", Schedule: "%KVROTATOR_SWEEP_SCHEDULE%"}},
		"RotateSecret": {{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"get", "post"}},
			{Type: "http", Direction: "out", Name: "res"}},
		"RotationStatus": {{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"get"}}, {Type: "http", Direction: "out", Name: "res"}},
		"ReportLeak":     {{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"post"}}, {Type: "http", Direction: "out", Name: "res"}},
		"DefenderAlert": {{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"post"}},
			{Type: "http", Direction: "out", Name: "res"}},
		"GitHubSecretScanning": {{Type: "httpTrigger", Direction: "in", Name: "req", AuthLevel: "function", Methods: []string{"post"}},
			{Type: "http", Direction: "out", Name: "res"}},
	}
	for fn, bindings := range want {
		var f struct{ Bindings []binding }
		readJSON(t, filepath.Join(root, fn, "function.json"), &f)
		if len(f.Bindings) != len(bindings) {
			t.Errorf("%s: %d bindings", fn, len(f.Bindings))
			continue
		}
		for i, b := range bindings {
			got := f.Bindings[i]
			if got.Type != b.Type || got.Direction != b.Direction || got.Name != b.Name || got.Schedule != b.Schedule ||
				got.AuthLevel != b.AuthLevel || strings.Join(got.Methods, ",") != strings.Join(b.Methods, ",") {
				t.Errorf("%s binding %d: %+v, want %+v", fn, i, got, b)
			}
		}
	}

	// Every KVROTATOR_ setting the code reads is in local.settings.sample.json and the README.
	var settings struct {
		Values map[string]string `json:"Values"`
	}
	readJSON(t, filepath.Join(root, "local.settings.sample.json"), &settings)
	if settings.Values["FUNCTIONS_WORKER_RUNTIME"] != "Custom" {
		t.Error("FUNCTIONS_WORKER_RUNTIME must be Custom")
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	dirs := []string{"config", "keyvault", "cmd/kvrotator", "leaks", "consumers", "metrics"}
	provs, _ := filepath.Glob(filepath.Join(root, "providers", "*"))
	for _, d := range provs {
		if rel, err := filepath.Rel(root, d); err == nil {
			dirs = append(dirs, rel)
		}
	}
	for _, dir := range dirs {
		files, _ := filepath.Glob(filepath.Join(root, dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, _ := os.ReadFile(f)
			for _, m := range regexp.MustCompile(`"(KVROTATOR_[A-Z_]+)"`).FindAllStringSubmatch(string(b), -1) {
				used[m[1]] = true
			}
		}
	}
	var names []string
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 5 {
		t.Fatalf("found only %v", names)
	}
	for _, n := range names {
		if _, ok := settings.Values[n]; !ok {
			t.Errorf("%s is read by the code but missing from local.settings.sample.json", n)
		}
		if !strings.Contains(string(readme), "`"+n+"`") {
			t.Errorf("%s is not documented in README.md", n)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
