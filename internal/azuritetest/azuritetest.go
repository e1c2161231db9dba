// Package azuritetest starts a private Azurite blob service for a test (DESIGN.md, "Real parts in
// tests"). Each call starts its own azurite-blob on a free loopback port with a temporary workspace, so
// tests are hermetic and may run in parallel, and the test command is safe to run twice.
//
// The azurite-blob executable is found through KVROTATOR_AZURITE_BLOB, which scripts/test.sh sets after
// installing npm azurite@3.35.0 into .tools/azurite. When it is not available, Start skips the test, or
// fails it if KVROTATOR_REQUIRE_AZURITE=1 (as the test command sets).
package azuritetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables read by Start.
const (
	// EnvBlob is the path of the azurite-blob executable.
	EnvBlob = "KVROTATOR_AZURITE_BLOB"
	// EnvRequire, when "1", turns a missing Azurite into a test failure instead of a skip.
	EnvRequire = "KVROTATOR_REQUIRE_AZURITE"
)

// Azurite's well-known development account (public; documented by Microsoft).
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Flags are the azurite-blob flags Start uses besides --blobPort and --location: loopback only; no
// telemetry (it would try to reach the internet); any storage API version (the Go SDK speaks a newer one
// than Azurite knows); loose mode (unsupported headers are ignored, not rejected); no access log.
var Flags = []string{"--blobHost", "127.0.0.1", "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent"}

const startTimeout = 60 * time.Second

var listening = regexp.MustCompile(`successfully listens on https?://[^\s]+:(\d+)`)

// Start starts azurite-blob for the test and returns the connection string of the development account
// on it ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=…;BlobEndpoint=
// http://127.0.0.1:<port>/devstoreaccount1"). Azurite listens on a port the kernel chose (--blobPort 0,
// read back from its start-up line), keeps its data in t.TempDir(), and is stopped by t.Cleanup.
func Start(t testing.TB) (connectionString string) {
	t.Helper()
	bin := os.Getenv(EnvBlob)
	if bin == "" {
		unavailable(t, EnvBlob+" is not set")
	} else if _, err := os.Stat(bin); err != nil {
		unavailable(t, fmt.Sprintf("%s=%s: %v", EnvBlob, bin, err))
	}
	p, err := Launch(bin, t.TempDir())
	if err != nil {
		t.Fatalf("azuritetest: %v", err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("azurite-blob output:\n%s", p.Output())
		}
	})
	return p.ConnectionString
}

// Process is a running azurite-blob.
type Process struct {
	// ConnectionString is the development account's connection string on it.
	ConnectionString string
	cmd              *exec.Cmd
	exited           chan error
	out              *tail
	once             sync.Once
}

// Output is the last lines Azurite printed.
func (p *Process) Output() string { return p.out.String() }

// Stop ends Azurite: SIGTERM, then SIGKILL after 10 s. Calling it again does nothing.
func (p *Process) Stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
}

// Launch starts the azurite-blob executable bin with its data in dir, on a port the kernel chooses,
// and waits until it answers (for tests through Start, and for benchmarks that have no testing.TB).
func Launch(bin, dir string) (*Process, error) {
	args := append([]string{"--blobPort", "0", "--location", dir}, Flags...)
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	p := &Process{cmd: cmd, exited: make(chan error, 1), out: &tail{}}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw

	// Pdeathsig follows the thread that started the child: start it from a thread that is not about to
	// go away.
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		err := cmd.Wait()
		pw.Close()
		p.exited <- err
	}()
	ports := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.out.add(line)
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case ports <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr) // keep draining after an over-long line
	}()

	var port string
	select {
	case port = <-ports:
	case err := <-p.exited:
		p.exited <- err // Stop reads it
		return nil, fmt.Errorf("azurite-blob exited before listening (%v):\n%s", err, p.Output())
	case <-time.After(startTimeout):
		p.Stop()
		return nil, fmt.Errorf("azurite-blob did not listen within %s:\n%s", startTimeout, p.Output())
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	if err := waitForPort(addr, 10*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%v:\n%s", err, p.Output())
	}
	p.ConnectionString = ConnectionString("http://" + addr + "/" + AccountName)
	return p, nil
}

// ConnectionString is the connection string of the development account at blobEndpoint
// (http://127.0.0.1:<port>/devstoreaccount1).
func ConnectionString(blobEndpoint string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + AccountName + ";AccountKey=" + AccountKey +
		";BlobEndpoint=" + blobEndpoint + ";"
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	msg := "azuritetest: Azurite is not available (" + why + "). Install it with scripts/test.sh, or: " +
		"npm install --prefix .tools/azurite --no-audit --no-fund azurite@3.35.0 && " +
		"export " + EnvBlob + "=$PWD/.tools/azurite/node_modules/.bin/azurite-blob"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func waitForPort(addr string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("azurite-blob is not answering on %s", addr), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tail keeps the last lines of Azurite's output for failure reports.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (b *tail) add(line string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.lines) == 200 {
		b.lines = b.lines[1:]
	}
	b.lines = append(b.lines, line)
}

func (b *tail) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}
