package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

func TestEmulatorHelpExplainsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"emulator", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	help := out.String()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var f emulatorFlags
	f.register(fs)
	fs.VisitAll(func(fl *flag.Flag) {
		if !strings.Contains(help, "-"+fl.Name) {
			t.Errorf("--help does not mention -%s", fl.Name)
		}
		if len(fl.Usage) < 15 {
			t.Errorf("-%s has no real explanation: %q", fl.Name, fl.Usage)
		}
	})
	if !strings.Contains(help, "Usage: kvrotator emulator") || !strings.Contains(help, "Examples:") {
		t.Errorf("help lacks usage or examples:\n%s", help)
	}
}

func TestCommandLineErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{nil, 2, "Usage"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"emulator", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"emulator", "extra"}, 2, "unexpected argument"},
		{[]string{"emulator", "--vault", "x"}, 1, "vault name"},
		{[]string{"emulator", "--identity", "name=a,color=red"}, 2, `unknown key "color"`},
		{[]string{"emulator", "--identity", "name=a,role=king@v"}, 2, "unknown role"},
		{[]string{"emulator", "--subscriber", "ftp://x"}, 2, "http:// or https://"},
		{[]string{"emulator", "--subscriber", "http://x,schema=xml"}, 2, "schema must be"},
		{[]string{"emulator", "--log-format", "yaml"}, 2, "--log-format"},
		{[]string{"emulator", "--trusted-client", "somewhere"}, 1, `trusted client "somewhere"`},
		{[]string{"emulator", "--addr", "127.0.0.1:0", "--identity-addr", "127.0.0.1:0", "--fault", "op=Nope"}, 2, "--fault"},
	}
	for _, tc := range cases {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(errOut.String(), tc.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut.String(), tc.code, tc.msg)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"version"}, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "kvrotator ") {
		t.Errorf("version: %d %q", code, out.String())
	}
}

// TestEmulatorCommandServesTheSDK builds the binary, starts `kvrotator emulator` as a user would, and
// talks to it with the real azsecrets client and managed-identity credential, using only what the
// banner prints and the CA file it writes. Then it restarts it on the same data directory.
func TestEmulatorCommandServesTheSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "kvrotator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	port, idPort, vaultPort := freePort(t), freePort(t), freePort(t)

	startEmu := func() (stop func(), banner string) {
		cmd := exec.Command(bin, "emulator", "--addr", "127.0.0.1:"+port, "--identity-addr", "127.0.0.1:"+idPort,
			"--vault", "cli-vault", "--vault", "port-vault=127.0.0.1:"+vaultPort, "--data", dir, "--ca-cert", caFile,
			"--key-dir", emulatortest.KeyDir()) // this process caches managed-identity tokens: one signing key for all its emulators
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if strings.HasPrefix(sc.Text(), "Clients that do not resolve") {
				break
			}
		}
		go func() { _, _ = io.Copy(io.Discard, stdout) }()
		return func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("emulator exit: %v", err)
				}
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Error("emulator did not stop on SIGTERM")
			}
		}, strings.Join(lines, "\n")
	}

	stop, banner := startEmu()
	m := regexp.MustCompile(`IDENTITY_ENDPOINT=(\S+) IDENTITY_HEADER=(\S+)`).FindStringSubmatch(banner)
	vaultURL := regexp.MustCompile(`vault cli-vault: (\S+)`).FindStringSubmatch(banner)
	if m == nil || vaultURL == nil {
		stop()
		t.Fatalf("banner lacks identity endpoint or vault URL:\n%s", banner)
	}
	t.Setenv("IDENTITY_ENDPOINT", m[1])
	t.Setenv("IDENTITY_HEADER", m[2])
	client := func() *azsecrets.Client {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cred, err := azidentity.NewManagedIdentityCredential(nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := azsecrets.NewClient(vaultURL[1], cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: loopbackClient(pool)}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client().SetSecret(ctx, "from-cli", azsecrets.SetSecretParameters{Value: to("v")}, nil); err != nil {
		stop()
		t.Fatalf("SetSecret against the emulator command: %v", err)
	}

	// A process that trusts the CA only through SSL_CERT_FILE, with the SDK's default transport,
	// reaching the vault on its dedicated port (no host name to resolve).
	portURL := regexp.MustCompile(`and (https://127\.0\.0\.1:[0-9]+)`).FindStringSubmatch(banner)
	if portURL == nil {
		stop()
		t.Fatalf("banner lacks the dedicated port URL:\n%s", banner)
	}
	child := exec.Command(os.Args[0], "-test.run=^TestSSLCertFileChild$", "-test.count=1")
	child.Env = append(os.Environ(), "SSL_CERT_FILE="+caFile, "KVROTATOR_CHILD_VAULT="+portURL[1])
	if out, err := child.CombinedOutput(); err != nil || !strings.Contains(string(out), "PASS") {
		stop()
		t.Fatalf("client trusting the CA through SSL_CERT_FILE failed: %v\n%s", err, out)
	}
	stop()

	stop, banner = startEmu()
	defer stop()
	// IDENTITY_HEADER is random per run: the banner tells the new one.
	m2 := regexp.MustCompile(`IDENTITY_ENDPOINT=(\S+) IDENTITY_HEADER=(\S+)`).FindStringSubmatch(banner)
	if m2 == nil || m2[2] == m[2] || m2[2] == "kvrotator-emulator" || len(m2[2]) < 20 {
		t.Fatalf("identity header after restart %q (before %q): want a fresh random value", m2, m[2])
	}
	t.Setenv("IDENTITY_HEADER", m2[2])
	got, err := client().GetSecret(ctx, "from-cli", "", nil)
	if err != nil || *got.Value != "v" {
		t.Fatalf("after restart with --data: %v", err)
	}
}

// TestSSLCertFileChild runs only as the child process of TestEmulatorCommandServesTheSDK.
func TestSSLCertFileChild(t *testing.T) {
	vaultURL := os.Getenv("KVROTATOR_CHILD_VAULT")
	if vaultURL == "" {
		t.Skip("child process only")
	}
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azsecrets.NewClient(vaultURL, cred, nil) // default transport: trust from SSL_CERT_FILE
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.SetSecret(ctx, "via-ssl-cert-file", azsecrets.SetSecretParameters{Value: to("v")}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestEmulatorSurvivesKill9: writes acknowledged before a kill -9 are all there after a restart, and
// no vault file is torn.
func TestEmulatorSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "kvrotator")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	port, idPort := freePort(t), freePort(t)
	launch := func() *exec.Cmd {
		cmd := exec.Command(bin, "emulator", "--addr", "127.0.0.1:"+port, "--identity-addr", "127.0.0.1:"+idPort,
			"--vault", "kill-vault", "--data", dir, "--no-limits", "--identity-header", "kill9-identity-header",
			"--key-dir", emulatortest.KeyDir()) // this process caches managed-identity tokens: one signing key for all its emulators
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitListening(t, "127.0.0.1:"+port)
		return cmd
	}
	cmd := launch()
	t.Setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:"+idPort+"/msi/token")
	t.Setenv("IDENTITY_HEADER", "kill9-identity-header") // the default is random per run: give one that survives the restart
	newClient := func() *azsecrets.Client {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cred, _ := azidentity.NewManagedIdentityCredential(nil)
		c, _ := azsecrets.NewClient("https://kill-vault.localhost:"+port, cred,
			&azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: loopbackClient(pool), Retry: policy.RetryOptions{MaxRetries: -1}}})
		return c
	}
	c := newClient()

	type ack struct{ name, version, value string }
	var mu sync.Mutex
	var acked []ack
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				name, value := fmt.Sprintf("s-%d-%d", w, i%5), fmt.Sprintf("value-%d-%d", w, i)
				resp, err := c.SetSecret(context.Background(), name, azsecrets.SetSecretParameters{Value: &value}, nil)
				if err != nil {
					return // the process is gone
				}
				mu.Lock()
				acked = append(acked, ack{name, resp.ID.Version(), value})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to clean up
		t.Fatal(err)
	}
	_ = cmd.Wait()
	wg.Wait()
	if len(acked) < 10 {
		t.Fatalf("only %d writes before the kill", len(acked))
	}

	files, _ := filepath.Glob(filepath.Join(dir, "vaults", "*.json"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if !json.Valid(b) {
			t.Fatalf("%s is torn after kill -9", f)
		}
	}
	cmd = launch()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c = newClient()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, a := range acked {
		got, err := c.GetSecret(ctx, a.name, a.version, nil)
		if err != nil || *got.Value != a.value {
			t.Fatalf("acknowledged write %s/%s lost after kill -9: %v", a.name, a.version, err)
		}
	}
	t.Logf("%d acknowledged writes survived kill -9", len(acked))
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never listened", addr)
}

func to[T any](v T) *T { return &v }

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// loopbackClient trusts pool and dials *.localhost on loopback, as a user's own code would.
func loopbackClient(pool *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, _ := net.SplitHostPort(addr)
		if strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr}
}

// TestEmulatorCommandAuditFaultAndHeaderFlags runs `kvrotator emulator` in-process with the flags of
// the audit log, the query endpoint, the drop=after fault and the trusted hosts, and checks what the
// banner tells and the admin API reports.
func TestEmulatorCommandAuditFaultAndHeaderFlags(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	const ws = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"emulator", "--addr", "127.0.0.1:0", "--identity-addr", "127.0.0.1:0", "--vault", "flag-vault",
			"--ca-cert", caFile, "--fault", "op=SetSecret,drop=after,count=2", "--workspace", ws, "--log-reader", "11111111-1111-4111-8111-111111111111",
			"--audit-size", "10", "--trusted-host", "emu.test"}, pw, io.Discard)
		pw.Close()
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d", code)
		}
	}()
	sc := bufio.NewScanner(pr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.HasPrefix(sc.Text(), "Clients that do not resolve") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	banner := strings.Join(lines, "\n")
	logs := regexp.MustCompile(`Log Analytics query endpoint \(azlogs, audience https://api\.loganalytics\.io\): (https://127\.0\.0\.1:[0-9]+)/v1, workspace ` + ws).FindStringSubmatch(banner)
	header := regexp.MustCompile(`IDENTITY_HEADER=(\S+)`).FindStringSubmatch(banner)
	if logs == nil || header == nil || len(header[1]) < 20 || header[1] == "kvrotator-emulator" {
		t.Fatalf("banner:\n%s", banner)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := loopbackClient(pool)
	get := func(path, host string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, logs[1]+path, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get("/_emulator/faults", ""); st != 200 || !strings.Contains(body, `"dropAfter":true`) || !strings.Contains(body, `"remaining":2`) {
		t.Fatalf("faults: %d %s", st, body)
	}
	if st, _ := get("/_emulator/audit", "emu.test"); st != 200 {
		t.Fatalf("trusted host: %d", st)
	}
	if st, body := get("/_emulator/audit", "evil.example"); st != 403 || !strings.Contains(body, "--trusted-host") {
		t.Fatalf("foreign host: %d %s", st, body)
	}
	if st, body := get("/v1/workspaces/"+ws+"/query", ""); st != 401 || !strings.Contains(body, "AuthenticationFailed") {
		t.Fatalf("query without token: %d %s", st, body)
	}
}
