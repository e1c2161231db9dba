package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/rotation"
)

var update = flag.Bool("update", false, "rewrite the golden files of the operator commands")

type opsEnv struct {
	t      *testing.T
	bin    string
	env    []string
	client *azsecrets.Client
}

// startOps serves vault ops-vault with secrets whose expiries are fixed around 2030-01-01, so that
// status and plan --at 2030-01-01 print the same table every time.
func startOps(t *testing.T) *opsEnv {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	x := &opsEnv{t: t, bin: buildBinary(t)}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	srv, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Addr: "127.0.0.1:0", CACertFile: ca, Vaults: []emulator.VaultConfig{{Name: "ops-vault", Addr: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	x.env = append(cleanEnv(os.Environ()), "KVROTATOR_VAULTS=ops-vault="+srv.VaultAddrURL("ops-vault"),
		"IDENTITY_ENDPOINT="+srv.IdentityEndpoint(), "IDENTITY_HEADER="+srv.IdentityHeader(), "SSL_CERT_FILE="+ca)
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, _ := azidentity.NewManagedIdentityCredential(nil)
	x.client, _ = azsecrets.NewClient(srv.VaultURL("ops-vault"), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}})
	seed := func(name, exp string, tags map[string]string) {
		e, _ := time.Parse("2006-01-02", exp)
		tt := map[string]*string{}
		for k, v := range tags {
			tt[k] = &v
		}
		if _, err := x.client.SetSecret(context.Background(), name, azsecrets.SetSecretParameters{Value: to("ops-value-" + name), Tags: tt,
			SecretAttributes: &azsecrets.SecretAttributes{Expires: &e}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	seed("api-key", "2030-01-20", map[string]string{"rotation-provider": "random"})
	seed("db-password", "2030-03-15", map[string]string{"rotation-provider": "random", "ValidityPeriodDays": "60"})
	seed("expired-token", "2029-12-15", map[string]string{"rotation-provider": "random"})
	seed("broken", "2030-06-01", map[string]string{"rotation-provider": "random", "random-length": "8"})
	seed("legacy", "2030-02-01", nil)
	return x
}

func (x *opsEnv) run(args ...string) (stdout, stderr string, code int) {
	x.t.Helper()
	cmd := exec.Command(x.bin, args...)
	cmd.Env = x.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		x.t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

var hexVersion = regexp.MustCompile(`\b[0-9a-f]{8}\b`)

func golden(t *testing.T, name, got string) {
	t.Helper()
	got = hexVersion.ReplaceAllString(got, "<ver>")
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Ops -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestOpsStatusAndPlanGolden(t *testing.T) {
	x := startOps(t)
	out, _, code := x.run("status", "--at", "2030-01-01")
	if code != exitProblem {
		t.Fatalf("status exit %d, want %d (overdue and bad tags)", code, exitProblem)
	}
	golden(t, "status.golden", out)
	out, _, code = x.run("plan", "--at", "2030-01-01")
	if code != exitProblem {
		t.Fatalf("plan exit %d", code)
	}
	golden(t, "plan.golden", out)

	out, _, _ = x.run("status", "--json", "--at", "2030-01-01")
	var rep struct {
		Secrets []struct {
			Secret  string `json:"secret"`
			Overdue bool   `json:"overdue"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Secrets) != 5 || !rep.Secrets[0].Overdue {
		t.Fatalf("status --json: %v %s", err, out)
	}
	if strings.Contains(out, "ops-value-") {
		t.Fatal("status printed a value")
	}
	// A point of view where nothing is wrong but the bad tags.
	if _, _, code := x.run("status", "--at", "2029-06-01"); code != exitProblem {
		t.Fatalf("bad tags must still fail status: %d", code)
	}
}

func TestOpsRotateAndSweep(t *testing.T) {
	x := startOps(t)
	versions := func(name string) int {
		n := 0
		p := x.client.NewListSecretPropertiesVersionsPager(name, nil)
		for p.More() {
			page, err := p.NextPage(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			n += len(page.Value)
		}
		return n
	}
	out, _, code := x.run("rotate", "--dry-run", "ops-vault", "db-password")
	if code != exitOK || !strings.HasPrefix(out, "planned ops-vault/db-password") || versions("db-password") != 1 {
		t.Fatalf("dry run: %d %q", code, out)
	}
	out, _, code = x.run("rotate", "ops-vault", "db-password")
	if code != exitOK || !strings.HasPrefix(out, "rotated ops-vault/db-password") || versions("db-password") != 2 {
		t.Fatalf("rotate: %d %q", code, out)
	}
	if _, _, code = x.run("rotate", "ops-vault", "no-such-secret"); code != exitProblem {
		t.Fatalf("missing secret: exit %d", code)
	}
	if _, errOut, code := x.run("rotate", "ops-vault"); code != exitUsage || !strings.Contains(errOut, "VAULT SECRET") {
		t.Fatalf("usage: %d %q", code, errOut)
	}
	if _, _, code = x.run("rotate", "other-vault", "db-password"); code != exitProblem {
		t.Fatalf("unconfigured vault: exit %d", code)
	}
	// The sweep reports the bad tags (exit 1), with progress lines on stderr.
	out, errOut, code := x.run("sweep", "--dry-run")
	if code != exitProblem || !strings.Contains(errOut, "sweeping ops-vault") || !strings.Contains(out, "random-length") {
		t.Fatalf("sweep: %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, "ops-value-") {
		t.Fatal("sweep printed a value")
	}
	// Configuration errors are exit 2 with the setting named.
	cmd := exec.Command(x.bin, "status")
	cmd.Env = cleanEnv(os.Environ())
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage || !strings.Contains(string(b), "KVROTATOR_VAULTS") {
		t.Fatalf("no vaults: %v %s", err, b)
	}
}

// TestPrintConsumers: plan lists each secret's readers, who has not moved first, and status marks the
// secret.
func TestPrintConsumers(t *testing.T) {
	at := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	rep := rotation.StatusReport{At: at, Secrets: []rotation.SecretStatus{
		{Vault: "kv", Secret: "orders-key", Managed: true, Provider: "webhook", Consumers: []rotation.ConsumerView{
			{Reader: "bbbb", AppID: "app-b", Address: "10.0.0.2", Version: "v0", Last: at.Add(-5 * time.Hour)},
			{Reader: "aaaa", Address: "10.0.0.1", Version: "v1", Last: at.Add(-time.Hour), Current: true}}},
		{Vault: "kv", Secret: "quiet", Managed: true, Provider: "random"},
	}}
	var plan strings.Builder
	printConsumers(&plan, rep)
	want := `
Consumers (readers in Key Vault's audit log):
  kv/orders-key: 2 reader(s), 1 not on the latest version
    NOT MOVED bbbb (app app-b) from 10.0.0.2, last read 2026-12-04T03:00:00Z, version v0
    current   aaaa from 10.0.0.1, last read 2026-12-04T07:00:00Z, version v1
`
	if plan.String() != want {
		t.Fatalf("plan consumers:\n%s\nwant:\n%s", plan.String(), want)
	}
	var status strings.Builder
	printStatus(&status, rep)
	if !strings.Contains(status.String(), "[1 of 2 readers not on the latest version]") || strings.Count(status.String(), "readers not on") != 1 {
		t.Fatalf("status:\n%s", status.String())
	}
}
