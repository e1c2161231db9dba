package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"syscall"
	"time"
)

// Azurite, started the way internal/azuritetest starts it for tests (that package needs a testing.TB):
// azurite-blob on a port the kernel chooses, a temporary workspace, the same flags.

// envAzuriteBlob is the path of the azurite-blob executable (what scripts/test.sh exports).
const envAzuriteBlob = "KVROTATOR_AZURITE_BLOB"

// defaultAzuriteBlob is where scripts/test.sh installs it, relative to the repository root.
const defaultAzuriteBlob = ".tools/azurite/node_modules/.bin/azurite-blob"

// Azurite's well-known development account (public; documented by Microsoft).
const (
	devAccountName = "devstoreaccount1"
	devAccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

var azuriteListening = regexp.MustCompile(`successfully listens on https?://[^\s]+:(\d+)`)

type azuriteProc struct {
	connectionString string
	cmd              *exec.Cmd
	exited           chan error
	dir              string
}

func startAzurite() (*azuriteProc, error) {
	bin := os.Getenv(envAzuriteBlob)
	if bin == "" {
		bin = defaultAzuriteBlob
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("azurite is not available (%s unset or wrong, and no %s here: %v); run from the repository root after scripts/test.sh installed it", envAzuriteBlob, defaultAzuriteBlob, err)
	}
	dir, err := os.MkdirTemp("", "kvrotator-sweep-azurite-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--blobPort", "0", "--location", dir, "--blobHost", "127.0.0.1", "--disableTelemetry",
		"--skipApiVersionCheck", "--loose", "--silent")
	cmd.SysProcAttr = sysProcAttr()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	// Pdeathsig follows the thread that started the child: start it from a thread that is not about to
	// go away.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	a := &azuriteProc{cmd: cmd, exited: make(chan error, 1), dir: dir}
	go func() {
		err := cmd.Wait()
		pw.Close()
		a.exited <- err
	}()
	ports := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := azuriteListening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case ports <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	var port string
	select {
	case port = <-ports:
	case err := <-a.exited:
		a.exited <- err
		a.stop()
		return nil, fmt.Errorf("azurite-blob exited before listening: %v", err)
	case <-time.After(60 * time.Second):
		a.stop()
		return nil, errors.New("azurite-blob did not listen within 60 s")
	}
	addr := net.JoinHostPort("127.0.0.1", port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			a.stop()
			return nil, fmt.Errorf("azurite-blob is not answering on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.connectionString = "DefaultEndpointsProtocol=http;AccountName=" + devAccountName + ";AccountKey=" + devAccountKey +
		";BlobEndpoint=http://" + addr + "/" + devAccountName + ";"
	return a, nil
}

// stop ends Azurite (SIGTERM, then SIGKILL after 10 s) and removes its workspace.
func (a *azuriteProc) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	os.RemoveAll(a.dir)
}
