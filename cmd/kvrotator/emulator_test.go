package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
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
	port, idPort := freePort(t), freePort(t)

	startEmu := func() (stop func(), banner string) {
		cmd := exec.Command(bin, "emulator", "--addr", "127.0.0.1:"+port, "--identity-addr", "127.0.0.1:"+idPort, "--vault", "cli-vault", "--data", dir, "--ca-cert", caFile)
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
	stop()

	stop, _ = startEmu()
	defer stop()
	got, err := client().GetSecret(ctx, "from-cli", "", nil)
	if err != nil || *got.Value != "v" {
		t.Fatalf("after restart with --data: %v", err)
	}
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
