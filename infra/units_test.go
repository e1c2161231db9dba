package infra

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// unit is a parsed systemd unit file: section → key → values (a key may repeat).
type unit map[string]map[string][]string

func loadUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not key=value in a section", path, n, line)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns the single value of a key, failing when it is missing or repeated.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Errorf("[%s] %s: want exactly one value, got %q", section, key, v)
		return ""
	}
	return v[0]
}

func TestSweepServiceUnit(t *testing.T) {
	u := loadUnit(t, "../deploy/kvrotator-sweep.service")
	want := map[string]string{
		"Type":                  "oneshot",
		"User":                  "kvrotator",
		"Group":                 "kvrotator",
		"ExecStart":             "/usr/local/bin/kvrotator sweep",
		"EnvironmentFile":       "/etc/kvrotator/kvrotator.env",
		"NoNewPrivileges":       "yes",
		"ProtectSystem":         "strict",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"PrivateDevices":        "yes",
		"ReadOnlyPaths":         "/etc/kvrotator",
		"CapabilityBoundingSet": "",
		"AmbientCapabilities":   "",
		"RestrictSUIDSGID":      "yes",
		"UMask":                 "0077",
		// The journal: kvrotator's own state, writable by the service user only (never tags).
		"StateDirectory":     "kvrotator",
		"StateDirectoryMode": "0700",
	}
	for k, v := range want {
		if got := u.one(t, "Service", k); got != v {
			t.Errorf("[Service] %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"ExecStartPre", "ExecStartPost", "Environment", "DynamicUser", "ReadWritePaths"} {
		if v, ok := u["Service"][k]; ok {
			t.Errorf("[Service] %s = %q: the sweep writes only its StateDirectory and takes its settings from the env file", k, v)
		}
	}
	if _, ok := u["Install"]; ok {
		t.Errorf("the service has an [Install] section: it must only run from the timer")
	}
	if !slices.Contains(u["Unit"]["After"], "network-online.target") {
		t.Errorf("[Unit] After = %q, want network-online.target", u["Unit"]["After"])
	}
}

func TestSweepTimerUnit(t *testing.T) {
	u := loadUnit(t, "../deploy/kvrotator-sweep.timer")
	for k, v := range map[string]string{
		"OnCalendar":         "*-*-* 00/6:00:00",
		"Persistent":         "true",
		"RandomizedDelaySec": "15min",
		"Unit":               "kvrotator-sweep.service",
	} {
		if got := u.one(t, "Timer", k); got != v {
			t.Errorf("[Timer] %s = %q, want %q", k, got, v)
		}
	}
	if got := u.one(t, "Install", "WantedBy"); got != "timers.target" {
		t.Errorf("[Install] WantedBy = %q", got)
	}
}

func TestEnvExampleUsesACertificateNeverASecret(t *testing.T) {
	b, err := os.ReadFile("../deploy/kvrotator.env.example")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("kvrotator.env.example: %q is not KEY=value", line)
		}
		env[k] = v
	}
	for _, k := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH", "KVROTATOR_VAULTS"} {
		if env[k] == "" {
			t.Errorf("%s is not set", k)
		}
	}
	if env["KVROTATOR_CREDENTIAL"] != "certificate" {
		t.Errorf("KVROTATOR_CREDENTIAL = %q, want certificate", env["KVROTATOR_CREDENTIAL"])
	}
	for k := range env {
		if strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") || k == "AzureWebJobsStorage" {
			t.Errorf("%s: the env file holds identifiers only", k)
		}
	}
	if !strings.HasPrefix(env["AZURE_CLIENT_CERTIFICATE_PATH"], "/etc/kvrotator/") {
		t.Errorf("the certificate must sit in /etc/kvrotator (ReadOnlyPaths of the unit), got %q", env["AZURE_CLIENT_CERTIFICATE_PATH"])
	}
}

// TestUnitsVerify runs systemd-analyze verify when systemd is installed, with ExecStart pointed at an
// existing binary (the real one is installed only on the server).
func TestUnitsVerify(t *testing.T) {
	bin, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	dir := t.TempDir()
	svc, err := os.ReadFile("../deploy/kvrotator-sweep.service")
	if err != nil {
		t.Fatal(err)
	}
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to stand in for the binary")
	}
	svc = []byte(strings.ReplaceAll(string(svc), "/usr/local/bin/kvrotator", trueBin))
	if err := os.WriteFile(filepath.Join(dir, "kvrotator-sweep.service"), svc, 0o644); err != nil {
		t.Fatal(err)
	}
	timer, err := os.ReadFile("../deploy/kvrotator-sweep.timer")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kvrotator-sweep.timer"), timer, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "verify", filepath.Join(dir, "kvrotator-sweep.service"), filepath.Join(dir, "kvrotator-sweep.timer")).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Unknown key") || strings.Contains(string(out), "Failed to parse") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
