package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLeanBuildCarriesNoDevelopmentCode: the deployed build (-tags lean, scripts/package.sh) links
// neither the emulator nor the test host simulator, has no demo or emulator command, refuses the
// emulator clock, and -tags kvrotator_no_<provider> leaves a provider out.
func TestLeanBuildCarriesNoDevelopmentCode(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	deps, err := exec.Command("go", "list", "-deps", "-tags", "lean kvrotator_no_postgres kvrotator_no_mysql kvrotator_no_redis", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, deps)
	}
	for _, pkg := range []string{"/emulator", "/internal/hostsim", "/rotation/rotationtest", "/providers/postgres", "jackc/pgx", "/providers/mysql", "go-sql-driver/mysql", "/providers/redis", "gomodule/redigo"} {
		for _, d := range strings.Fields(string(deps)) {
			if strings.Contains(d, pkg) {
				t.Errorf("the lean build links %s", d)
			}
		}
	}
	bin := filepath.Join(t.TempDir(), "kvrotator")
	if out, err := exec.Command("go", "build", "-tags", "lean", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build -tags lean: %v\n%s", err, out)
	}
	out, _ := exec.Command(bin, "help").CombinedOutput()
	if strings.Contains(string(out), "demo") || strings.Contains(string(out), "emulator") || !strings.Contains(string(out), "serve") {
		t.Fatalf("lean commands:\n%s", out)
	}
	if out, err := exec.Command(bin, "emulator").CombinedOutput(); err == nil || !strings.Contains(string(out), `unknown command "emulator"`) {
		t.Fatalf("lean emulator command: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "status")
	cmd.Env = append(cleanEnv(os.Environ()), "KVROTATOR_VAULTS=myvault", "KVROTATOR_CLOCK_URL=https://127.0.0.1:8443/_emulator/clock",
		"IDENTITY_ENDPOINT=http://127.0.0.1:9/msi/token", "IDENTITY_HEADER=x")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "KVROTATOR_CLOCK_URL is a development setting") {
		t.Fatalf("lean build with the emulator clock: %v\n%s", err, out)
	}
}
