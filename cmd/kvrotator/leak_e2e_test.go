package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/hostsim"
)

// TestE2ELeak: the built binary's ReportLeak function and `kvrotator leak` against the emulator: a dry
// run changes nothing, the response rotates and disables the leaked version at once, the same report
// again finds nothing (404, exit 3), input by SHA-256, and the value never appears in any output.
func TestE2ELeak(t *testing.T) {
	x := startTimingE2E(t)
	const leaked = "e2e-initial-LEAKED-payment-key-7d1e"
	v0 := x.seed("payment-key", leaked, 200*24*time.Hour, map[string]string{"rotation-provider": "random"})
	x.seed("other-key", "e2e-initial-other-key-value", 200*24*time.Hour, map[string]string{"rotation-provider": "random"})

	post := func(body string) hostsim.HTTPResult {
		t.Helper()
		res, err := x.invoke("ReportLeak", hostsim.HTTPEnvelope("ReportLeak", "POST", "", []byte(body))).HTTPOutput()
		if err != nil {
			t.Fatal(err)
		}
		x.output.WriteString(res.Body)
		return res
	}
	if res := post(`{"value":"` + leaked + `","dryRun":true}`); res.StatusCode.String() != "200" || !strings.Contains(res.Body, `"outcome":"planned"`) ||
		len(x.versions("payment-key")) != 1 {
		t.Fatalf("dry run: %+v", res)
	}
	res := post(`{"value":"` + leaked + `"}`)
	if res.StatusCode.String() != "200" || !strings.Contains(res.Body, `"outcome":"emergency"`) || !strings.Contains(res.Body, "payment-key") ||
		strings.Contains(res.Body, "other-key") {
		t.Fatalf("response: %+v", res)
	}
	vs := x.versions("payment-key")
	if len(vs) != 2 {
		t.Fatalf("%d versions after the emergency", len(vs))
	}
	for _, v := range vs {
		if v.ID.Version() == v0 && *v.Attributes.Enabled {
			t.Fatal("the leaked version is still enabled")
		}
	}
	if v, _ := x.latest("payment-key"); v == leaked {
		t.Fatal("the leaked value is still the latest")
	}
	if res := post(`{"value":"` + leaked + `"}`); res.StatusCode.String() != "404" || !strings.Contains(res.Body, `"found":false`) {
		t.Fatalf("the same leak again: %+v", res)
	}

	// The command line: the value on standard input, or its digest.
	leak := func(stdin string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.CommandContext(context.Background(), x.bin, append([]string{"leak"}, args...)...)
		cmd.Env = x.env
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		x.output.Write(out)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	other, _ := x.latest("other-key")
	sum := sha256.Sum256([]byte(other))
	if out, code := leak("", "--sha256", hex.EncodeToString(sum[:]), "--dry-run"); code != 0 || !strings.Contains(out, "planned") {
		t.Fatalf("dry run by digest: %d\n%s", code, out)
	}
	if out, code := leak(other + "\n"); code != 0 || !strings.Contains(out, "emergency") || len(x.versions("other-key")) != 2 {
		t.Fatalf("leak from standard input: %d\n%s", code, out)
	}
	if out, code := leak("never-stored-anywhere\n"); code != exitNotFound || !strings.Contains(out, "not found") {
		t.Fatalf("unknown value: %d\n%s", code, out)
	}
	if out, code := leak("", "positional-value"); code != exitUsage || !strings.Contains(out, "never from the command line") {
		t.Fatalf("a value on the command line: %d\n%s", code, out)
	}
	x.values = append(x.values, other)
}
