package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"golang.org/x/net/html"

	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/internal/hostsim"
	"github.com/kvrotator/kvrotator/journal"
	"github.com/kvrotator/kvrotator/rotation"
)

// The status page's colours the screenshot check looks for (handler/status.html): solid badge
// backgrounds, one per state.
var (
	colOverdue   = [3]uint8{0xc6, 0x28, 0x28}
	colOK        = [3]uint8{0x2e, 0x7d, 0x32}
	colBadTags   = [3]uint8{0xf2, 0x99, 0x00}
	colDue       = [3]uint8{0xfd, 0xd8, 0x35}
	colUnmanaged = [3]uint8{0x78, 0x90, 0x9c}
)

const (
	shotWidth, shotHeight = 1280, 900
	pagePath              = "/api/RotationStatus"
)

// chromiumPath finds Debian's chromium (KVROTATOR_CHROMIUM, else chromium on PATH). Without it the
// test skips, unless KVROTATOR_REQUIRE_CHROMIUM=1 (scripts/test.sh sets it), when it fails.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("KVROTATOR_CHROMIUM")
	if p == "" {
		p, _ = exec.LookPath("chromium")
	}
	if p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("KVROTATOR_REQUIRE_CHROMIUM") == "1" {
		t.Fatalf("KVROTATOR_REQUIRE_CHROMIUM=1 but no Chromium (KVROTATOR_CHROMIUM=%q); apt-get install chromium", os.Getenv("KVROTATOR_CHROMIUM"))
	}
	t.Skip("Chromium is not installed (apt-get install chromium, or set KVROTATOR_CHROMIUM); set KVROTATOR_REQUIRE_CHROMIUM=1 to fail instead")
	return ""
}

// runChromium runs headless Chromium on url with a fresh profile and no way off the machine: every
// host name but 127.0.0.1 resolves to nothing, so an external asset could not load.
func runChromium(t *testing.T, bin, url string, args ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio",
		"--user-data-dir=" + t.TempDir(),
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--enable-logging=stderr", "--v=0", // console messages (CSP violations, failed loads) go to stderr
		"--hide-scrollbars", "--force-device-scale-factor=1", "--force-color-profile=srgb",
		fmt.Sprintf("--window-size=%d,%d", shotWidth, shotHeight),
	}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	cmd.WaitDelay = 10 * time.Second
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errOut.String())
	}
	// Chromium's console lines: the page must cause none (a CSP violation or a failed load would).
	for _, line := range strings.Split(errOut.String(), "\n") {
		if strings.Contains(line, ":CONSOLE") || strings.Contains(line, "Content Security Policy") || strings.Contains(line, "ERR_NAME_NOT_RESOLVED") {
			t.Errorf("chromium console: %s", line)
		}
	}
	return out.String(), errOut.String()
}

// TestStatusPageInChromium runs the real binary under the host simulator against the Key Vault
// emulator, takes the RotationStatus page from the invocation's res output, serves it as the host
// would (/api/RotationStatus, with the res headers) and loads it in headless Chromium: the rendered
// DOM lists every secret with overdue ones first, and a screenshot shows the state colours in that
// order. The page needs nothing from the network and shows no value.
func TestStatusPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and Chromium")
	}
	chromium := chromiumPath(t)
	bin := buildBinary(t)

	ca := filepath.Join(t.TempDir(), "ca.pem")
	srv, err := emulator.New(emulator.Config{KeyDir: emulatortest.KeyDir(), Addr: "127.0.0.1:0", CACertFile: ca,
		Vaults: []emulator.VaultConfig{{Name: "status-vault", Addr: "127.0.0.1:0"}, {Name: "backup-vault", Addr: "127.0.0.1:0"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*azsecrets.Client{}
	for _, v := range []string{"status-vault", "backup-vault"} {
		clients[v], _ = azsecrets.NewClient(srv.VaultURL(v), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: srv.HTTPClient()}})
	}

	var values []string // every value written or read; none may reach the page
	now := time.Now()
	const day = 24 * time.Hour
	created := map[string]time.Time{}
	seed := func(vault, name string, expIn time.Duration, tags map[string]string) string {
		t.Helper()
		value := fmt.Sprintf("statuspage-value-%s-%d", name, time.Now().UnixNano())
		values = append(values, value)
		tt := map[string]*string{}
		for k, v := range tags {
			tt[k] = to(v)
		}
		exp := now.Add(expIn)
		r, err := clients[vault].SetSecret(context.Background(), name, azsecrets.SetSecretParameters{Value: &value, Tags: tt,
			SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil)
		if err != nil {
			t.Fatalf("seed %s/%s: %v", vault, name, err)
		}
		created[name] = *r.Attributes.Created
		return r.ID.Version()
	}
	random := map[string]string{"rotation-provider": "random"}
	seed("status-vault", "expired-token", -5*day, random)
	// kvrotator's own state is in its journal (here the on-premises file journal), never in tags.
	failing := seed("status-vault", "failing-key", 12*day, map[string]string{"rotation-provider": "random"})
	dbpw := seed("status-vault", "db-password", 75*day, map[string]string{"rotation-provider": "random", "ValidityPeriodDays": "90"})
	journalDir := filepath.Join(t.TempDir(), "journal")
	jf, err := journal.OpenFile(journalDir)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) time.Time { return now.Add(d).UTC().Truncate(time.Second) }
	for name, st := range map[string]rotation.State{
		"failing-key": {Version: failing, At: at(-78 * day), By: rotation.TriggerTimer, Attempted: failing, AttemptedCreated: created["failing-key"], Fails: 3, FailedAt: at(-2 * time.Hour)},
		"db-password": {Version: dbpw, At: at(-15 * day), By: rotation.TriggerEvent,
			Pending: []rotation.Pending{{CredentialID: "old-cred-1", Version: "0123456789abcdef", Due: at(day)}}},
	} {
		if err := jf.Save(context.Background(), "status-vault", name, st); err != nil {
			t.Fatal(err)
		}
	}
	if err := jf.Close(); err != nil {
		t.Fatal(err)
	}
	seed("status-vault", "broken", 60*day, map[string]string{"rotation-provider": "random", "random-length": "8"})
	seed("status-vault", "legacy", 45*day, nil)
	seed("status-vault", "rotated-key", 3*day, random) // rotated below, through RotateSecret
	seed("backup-vault", "cache-key", 100*day, random)
	seed("backup-vault", "soon-key", 29*day+12*time.Hour, random) // 12 hours past its rotation point: due, not overdue

	env := append(cleanEnv(os.Environ()),
		"KVROTATOR_VAULTS=status-vault="+srv.VaultAddrURL("status-vault")+",backup-vault="+srv.VaultAddrURL("backup-vault"),
		"IDENTITY_ENDPOINT="+srv.IdentityEndpoint(), "IDENTITY_HEADER="+srv.IdentityHeader(), "SSL_CERT_FILE="+ca,
		"KVROTATOR_JOURNAL_DIR="+journalDir)
	host, err := hostsim.Start(context.Background(), hostsim.Options{Binary: bin, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Stop() })
	invoke := func(function string, envelope []byte) hostsim.HTTPResult {
		t.Helper()
		r, err := host.Invoke(context.Background(), function, envelope)
		if err != nil || !r.OK() {
			t.Fatalf("%s: %v %v %s", function, err, r, host.Output())
		}
		res, err := r.HTTPOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", function, err, r.Body)
		}
		return res
	}
	if res := invoke("RotateSecret", hostsim.HTTPEnvelope("RotateSecret", "POST", "", []byte(`{"vault":"status-vault","secret":"rotated-key"}`))); res.StatusCode != "200" {
		t.Fatalf("rotate: %s %s", res.StatusCode, res.Body)
	}
	latest, err := clients["status-vault"].GetSecret(context.Background(), "rotated-key", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	values = append(values, *latest.Value)

	res := invoke("RotationStatus", hostsim.HTTPEnvelope("RotationStatus", "GET", "", nil))
	if res.StatusCode != "200" || res.Headers["Content-Type"] != "text/html; charset=utf-8" ||
		!strings.HasPrefix(res.Headers["Content-Security-Policy"], "default-src 'none'; style-src 'sha256-") {
		t.Fatalf("RotationStatus: %s %v\n%.300s", res.StatusCode, res.Headers, res.Body)
	}
	jsonRes := invoke("RotationStatus", hostsim.HTTPEnvelope("RotationStatus", "GET", "format=json", nil))
	if jsonRes.StatusCode != "200" || !strings.Contains(jsonRes.Body, `"secret":"failing-key"`) {
		t.Fatalf("RotationStatus ?format=json: %s %.300s", jsonRes.StatusCode, jsonRes.Body)
	}
	for _, v := range values {
		for what, s := range map[string]string{"page": res.Body, "JSON": jsonRes.Body, "handler output": host.Output()} {
			if strings.Contains(s, v) {
				t.Fatalf("the %s contains a secret value", what)
			}
		}
	}

	// Serve the page as the host serves the function's res: status, headers and body as given.
	var mu sync.Mutex
	var requests []string
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.URL.Path != pagePath {
			http.NotFound(w, r)
			return
		}
		for k, v := range res.Headers {
			w.Header().Set(k, v)
		}
		code, _ := strconv.Atoi(res.StatusCode.String())
		w.WriteHeader(code)
		_, _ = io.WriteString(w, res.Body)
	}))
	t.Cleanup(web.Close)
	url := web.URL + pagePath + "?code=function-key"

	// The rendered DOM.
	dom, _ := runChromium(t, chromium, url, "--dump-dom")
	doc, err := html.Parse(strings.NewReader(dom))
	if err != nil || !strings.Contains(dom, "kvrotator status") {
		t.Fatalf("dump-dom: %v\n%.500s", err, dom)
	}
	type row struct{ vault, secret, state, badge string }
	var rows []row
	var summary string
	walkDOM(doc, func(n *html.Node) {
		if domAttr(n, "id") == "summary" {
			summary = domText(n)
		}
		if n.Data != "tr" || domAttr(n, "data-secret") == "" {
			return
		}
		r := row{secret: domAttr(n, "data-secret"), state: domAttr(n, "data-state")}
		for p := n.Parent; p != nil; p = p.Parent {
			if v := domAttr(p, "data-vault"); v != "" {
				r.vault = v
				break
			}
		}
		walkDOM(n, func(c *html.Node) {
			if r.badge == "" && strings.HasPrefix(domAttr(c, "class"), "badge ") {
				r.badge = domText(c)
			}
		})
		rows = append(rows, r)
	})
	want := []row{
		{"status-vault", "expired-token", "overdue", "OVERDUE"},
		{"status-vault", "failing-key", "overdue", "OVERDUE"},
		{"status-vault", "broken", "badtags", "BAD TAGS"},
		{"status-vault", "db-password", "ok", "OK"},
		{"status-vault", "rotated-key", "ok", "OK"},
		{"status-vault", "legacy", "unmanaged", "UNMANAGED"},
		{"backup-vault", "soon-key", "due", "DUE"},
		{"backup-vault", "cache-key", "ok", "OK"},
	}
	if !slices.Equal(rows, want) {
		t.Errorf("rendered rows:\n got %v\nwant %v", rows, want)
	}
	if !strings.HasPrefix(summary, "7 managed secrets in 2 vaults · 2 overdue · 1 with bad tags · 1 due · 1 unmanaged · as of ") {
		t.Errorf("summary: %q", summary)
	}
	for _, s := range []string{"3 consecutive failed rotations", "manual", "timer", `random-length="8"`} {
		if !strings.Contains(domText(doc), s) {
			t.Errorf("the rendered page does not show %q", s)
		}
	}

	// The screenshot.
	shot := filepath.Join(t.TempDir(), "status-page.png")
	runChromium(t, chromium, url, "--screenshot="+shot)
	checkScreenshot(t, shot)
	if *update {
		b, err := os.ReadFile(shot)
		if err == nil {
			err = os.MkdirAll(filepath.Join("..", "..", "docs"), 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, r := range requests {
		// The page and nothing else (Chromium may ask for /favicon.ico by itself; the page links none).
		if r != "GET "+pagePath && r != "GET /favicon.ico" {
			t.Errorf("Chromium requested %s", r)
		}
	}
	if n := slices.Index(requests, "GET "+pagePath); n < 0 || len(requests) > 4 {
		t.Errorf("requests: %v", requests)
	}
}

// checkScreenshot decodes the PNG and checks what a person would see: a full-size, non-blank page
// whose red OVERDUE badges are all above the other states' badges, in the upper part of the page.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	if b.Dx() != shotWidth || b.Dy() != shotHeight {
		t.Fatalf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), shotWidth, shotHeight)
	}
	colours := map[[3]uint8]bool{}
	nonWhite := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := rgb(img, x, y)
			colours[c] = true
			if c != [3]uint8{255, 255, 255} {
				nonWhite++
			}
		}
	}
	if frac := float64(nonWhite) / float64(b.Dx()*b.Dy()); frac < 0.05 || len(colours) < 50 {
		t.Fatalf("the screenshot looks blank: %.1f%% non-white, %d colours", 100*frac, len(colours))
	}
	rowsOf := func(col [3]uint8) []int { return solidRows(img, col, 16) }
	red, green := rowsOf(colOverdue), rowsOf(colOK)
	if len(red) < 8 || len(green) < 8 {
		t.Fatalf("badge colours missing: %d rows with the overdue red #c62828, %d with the ok green #2e7d32", len(red), len(green))
	}
	lastRed := slices.Max(red)
	if lastRed > shotHeight/2 {
		t.Errorf("overdue red reaches y=%d: not in the upper part of the page", lastRed)
	}
	for name, col := range map[string][3]uint8{"ok green": colOK, "bad-tags amber": colBadTags, "due yellow": colDue, "unmanaged grey": colUnmanaged} {
		ys := rowsOf(col)
		if len(ys) < 8 {
			t.Errorf("no %s badge in the screenshot", name)
			continue
		}
		if first := slices.Min(ys); first <= lastRed {
			t.Errorf("%s at y=%d, above the last overdue red at y=%d: overdue rows must come first", name, first, lastRed)
		}
	}
	t.Logf("screenshot %s: overdue red at y=%d…%d, ok green from y=%d; %d colours", path, slices.Min(red), lastRed, slices.Min(green), len(colours))
}

// solidRows lists the rows that hold a horizontal run of at least minRun pixels of exactly col: a
// badge or a timeline bar, not anti-aliased text.
func solidRows(img image.Image, col [3]uint8, minRun int) []int {
	var ys []int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		run := 0
		for x := b.Min.X; x < b.Max.X; x++ {
			if rgb(img, x, y) != col {
				run = 0
				continue
			}
			if run++; run == minRun {
				ys = append(ys, y)
				break
			}
		}
	}
	return ys
}

func rgb(img image.Image, x, y int) [3]uint8 {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
}

func walkDOM(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walkDOM(c, fn)
	}
}

func domAttr(n *html.Node, key string) string {
	if n.Type != html.ElementNode {
		return ""
	}
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func domText(n *html.Node) string {
	var b strings.Builder
	walkDOM(n, func(c *html.Node) {
		if c.Type == html.TextNode && (c.Parent == nil || (c.Parent.Data != "style" && c.Parent.Data != "title")) {
			b.WriteString(c.Data + " ")
		}
	})
	return strings.Join(strings.Fields(b.String()), " ")
}
