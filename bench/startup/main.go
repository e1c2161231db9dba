// Command startup measures how fast the kvrotator custom handler becomes ready and how much memory it
// holds once ready, against a bare Go binary that links the same Azure SDK modules (bench/bare):
//
//	go run ./bench/startup [-n 30]
//
// For each run it starts the binary as the Functions host does (FUNCTIONS_CUSTOMHANDLER_PORT), polls
// GET / every millisecond until it answers, reads VmRSS from /proc/<pid>/status, and kills it. Runs of
// the binaries alternate so that machine noise hits them alike. It prints medians and p90s and the
// ratios the targets are stated in (issue #13: ready and RSS ≤ 1.2× the bare binary), and, for
// information, the ratios against bare-clients: the bare binary built with -tags clients, which also
// builds the credential, a secrets client and a JSON log line at start-up (bench/bare).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 30, "runs per binary")
	tags := flag.String("tags", "lean", "build tags for kvrotator (scripts/package.sh builds with lean; add kvrotator_no_<provider> to leave providers out)")
	flag.Parse()
	dir, err := os.MkdirTemp("", "kvrotator-startup-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	// kvrotator as scripts/package.sh deploys it: the lean build (no emulator, demo or test host).
	bins := map[string][]string{"kvrotator": {"-tags", *tags, "./cmd/kvrotator"}, "bare": {"./bench/bare"},
		"bare-clients": {"-tags", "clients", "./bench/bare"}}
	names := []string{"bare", "bare-clients", "kvrotator"}
	for name, pkg := range bins {
		args := append([]string{"build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, name)}, pkg...)
		build := exec.Command("go", args...)
		build.Env = append(os.Environ(), "CGO_ENABLED=0") // as scripts/package.sh builds
		out, err := build.CombinedOutput()
		if err != nil {
			fail(fmt.Errorf("build %s: %v\n%s", pkg, err, out))
		}
	}
	env := append(os.Environ(),
		"KVROTATOR_VAULTS=myvault",
		"IDENTITY_ENDPOINT=http://127.0.0.1:9/msi/token", "IDENTITY_HEADER=x", // managed identity, as in Azure; never called
	)
	ready := map[string][]time.Duration{}
	rss := map[string][]int{}
	for i := 0; i < *n; i++ {
		for _, name := range names {
			args := []string{}
			if name == "kvrotator" {
				args = []string{"serve"}
			}
			d, kb, err := measure(filepath.Join(dir, name), args, env)
			if err != nil {
				fail(fmt.Errorf("%s: %w", name, err))
			}
			ready[name] = append(ready[name], d)
			rss[name] = append(rss[name], kb)
		}
	}
	fmt.Printf("runs per binary: %d\n", *n)
	fmt.Printf("%-13s %10s %14s %14s %12s %12s\n", "binary", "size", "ready median", "ready p90", "RSS median", "RSS p90")
	for _, name := range names {
		r, m := ready[name], rss[name]
		size := int64(0)
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil {
			size = fi.Size()
		}
		fmt.Printf("%-13s %7.1f MB %14v %14v %9d KB %9d KB\n", name, float64(size)/1e6, pct(r, 50), pct(r, 90), pcti(m, 50), pcti(m, 90))
	}
	for _, base := range []string{"bare", "bare-clients"} {
		fmt.Printf("ratio kvrotator/%s: ready %.2f×, RSS %.2f×\n", base,
			float64(pct(ready["kvrotator"], 50))/float64(pct(ready[base], 50)),
			float64(pcti(rss["kvrotator"], 50))/float64(pcti(rss[base], 50)))
	}
}

// measure starts one process and returns the time until GET / answers and its RSS then.
func measure(bin string, args, env []string) (time.Duration, int, error) {
	port, err := freePort()
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(env, "FUNCTIONS_CUSTOMHANDLER_PORT="+port)
	client := &http.Client{Timeout: time.Second}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for time.Since(start) < 30*time.Second {
		resp, err := client.Get("http://127.0.0.1:" + port + "/")
		if err == nil {
			resp.Body.Close()
			d := time.Since(start)
			kb, err := vmRSS(cmd.Process.Pid)
			return d, kb, err
		}
		time.Sleep(time.Millisecond)
	}
	return 0, 0, fmt.Errorf("not ready after 30 s")
}

func vmRSS(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func pct(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100].Round(100 * time.Microsecond)
}

func pcti(d []int, p int) int {
	s := append([]int(nil), d...)
	sort.Ints(s)
	return s[(len(s)-1)*p/100]
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, p, err := net.SplitHostPort(l.Addr().String())
	return p, err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "startup:", err)
	os.Exit(1)
}
