package handler

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/kvrotator/kvrotator/rotation"
)

var statusAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func day(n int) *time.Time {
	t := statusAt.Add(time.Duration(n) * 24 * time.Hour)
	return &t
}

// sampleStatus is a report as the engine gives it: two vaults, overdue secrets first.
func sampleStatus() rotation.StatusReport {
	return rotation.StatusReport{At: statusAt, Secrets: []rotation.SecretStatus{
		{Vault: "prod-vault", Secret: "expired-token", Managed: true, Provider: "random", Enabled: true, Expires: day(-17), RotateAt: day(-47),
			Due: true, Overdue: true, Reason: "expired 2029-12-15T00:00:00Z", Action: "rotate with provider random (random), new version valid 90 days"},
		{Vault: "prod-vault", Secret: "failing-key", Managed: true, Provider: "random", Enabled: true, Expires: day(19), RotateAt: day(-11),
			Due: true, Overdue: true, Fails: 3, State: rotation.State{Fails: 3, FailedAt: statusAt.Add(-time.Hour)},
			Reason: "near expiry (2030-01-20T00:00:00Z); failing: 3 consecutive failed rotations", Action: "retry with provider random after 2030-01-01T01:00:00Z"},
		{Vault: "second-vault", Secret: "soon-key", Managed: true, Provider: "random", Enabled: true, Expires: day(29), RotateAt: day(-1),
			Window: "Sat,Sun 01:00-03:00 Europe/Berlin", NextWindow: day(4), Due: true, Reason: "near expiry (2030-01-30T00:00:00Z)", Action: "rotate with provider random (random), new version valid 90 days"},
		{Vault: "prod-vault", Secret: "db-password", Managed: true, Provider: "random", Enabled: true, Expires: day(73), RotateAt: day(43),
			LastRotated: day(-17), LastTrigger: rotation.TriggerTimer, Pending: []rotation.Pending{{CredentialID: "old-cred", Due: *day(1)}},
			Reason: "not due until 2030-02-13T00:00:00Z", Action: "nothing until 2030-02-13T00:00:00Z",
			Emergencies: []rotation.Emergency{{At: statusAt.Add(-48 * time.Hour), Source: "kvrotator leak", Done: "rotated to version v2; revoked old-cred"}}},
		{Vault: "second-vault", Secret: "cache-key", Managed: true, Provider: "random", Enabled: true, Expires: day(400), RotateAt: day(370),
			Window: "daily 02:00-04:00 UTC", Schedule: "every 30d",
			Consumers: []rotation.ConsumerView{
				{Reader: "11111111-aaaa-bbbb-cccc-000000000002", AppID: "app-2", Address: "10.0.0.2", Version: "v0", Last: statusAt.Add(-14 * time.Hour)},
				{Reader: "11111111-aaaa-bbbb-cccc-000000000001", Address: "10.0.0.1", Last: statusAt.Add(-time.Hour), Current: true}},
			Reason: "not due until 2031-01-06T00:00:00Z", Action: "nothing until 2031-01-06T00:00:00Z"},
		{Vault: "prod-vault", Secret: "broken", Managed: true, Provider: "random", Enabled: true, Expires: day(151), RotateAt: day(121),
			Reason: "not due until 2030-05-02T00:00:00Z", PolicyError: `tag random-length="8": must be between 16 and 4096`, Action: "none until the tags are fixed"},
		{Vault: "prod-vault", Secret: "legacy", Enabled: true, Expires: day(31), RotateAt: day(1), Action: "none: not managed (no rotation-provider tag)"},
	}}
}

func statusRequest(method, query string) []byte {
	q := map[string]string{"code": "FUNCTION-KEY-dddd"}
	url := "https://app.azurewebsites.net/api/RotationStatus?code=FUNCTION-KEY-dddd"
	if query != "" {
		url += "&" + query
		k, v, _ := strings.Cut(query, "=")
		q[k] = v
	}
	qj, _ := json.Marshal(q)
	return httpEnvelope(method, url, string(qj), "")
}

// statusRes invokes RotationStatus and decodes Outputs.res (exactly statusCode, headers, body).
func statusRes(t *testing.T, r *rig, envelope []byte) (gotEnvelope, gotRes) {
	t.Helper()
	env := readEnvelope(t, r.invoke("RotationStatus", envelope))
	if env.status != 200 {
		t.Fatalf("envelope status = %d, want 200", env.status)
	}
	raw, ok := env.Outputs["res"]
	if !ok {
		t.Fatalf("Outputs has no res: %v", env.Outputs)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil || len(keys) != 3 {
		t.Fatalf("Outputs.res = %s, want statusCode, headers, body", raw)
	}
	var res gotRes
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("Outputs.res: %v", err)
	}
	return env, res
}

// page parses an HTML body as a browser would.
func page(t *testing.T, body string) *html.Node {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	return doc
}

func walk(n *html.Node, fn func(*html.Node)) {
	fn(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, fn)
	}
}

func elements(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	walk(n, func(c *html.Node) {
		if c.Type == html.ElementNode && match(c) {
			out = append(out, c)
		}
	})
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasClass(n *html.Node, class string) bool {
	return slices.Contains(strings.Fields(attr(n, "class")), class)
}

func textOf(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data + " ")
		}
	})
	return strings.Join(strings.Fields(b.String()), " ")
}

func tag(name string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Data == name }
}

// checkSelfContained fails on anything that could load or run something: scripts, style attributes
// (the CSP would block them), embedded or linked resources, and any URL in an attribute. It also
// checks that the CSP's hash is the page's one style element.
func checkSelfContained(t *testing.T, doc *html.Node, csp string) {
	t.Helper()
	for _, name := range []string{"script", "link", "img", "iframe", "object", "embed", "form", "base", "video", "audio", "source", "svg"} {
		if n := elements(doc, tag(name)); len(n) > 0 {
			t.Errorf("page has a <%s> element", name)
		}
	}
	walk(doc, func(n *html.Node) {
		for _, a := range n.Attr {
			v := strings.ToLower(a.Val)
			switch {
			case a.Key == "style" || strings.HasPrefix(a.Key, "on"):
				t.Errorf("<%s> has attribute %s=%q", n.Data, a.Key, a.Val)
			case a.Key == "src" || a.Key == "href" || a.Key == "srcset" || a.Key == "action" || a.Key == "poster",
				strings.Contains(v, "http://"), strings.Contains(v, "https://"), strings.Contains(v, "//"):
				t.Errorf("<%s> has a link: %s=%q", n.Data, a.Key, a.Val)
			}
		}
	})
	styles := elements(doc, tag("style"))
	if len(styles) != 1 {
		t.Fatalf("%d <style> elements, want 1", len(styles))
	}
	css := textOf(styles[0])
	for _, bad := range []string{"url(", "@import", "@font-face", "//"} {
		if strings.Contains(strings.ToLower(css), bad) {
			t.Errorf("the style sheet contains %q", bad)
		}
	}
	raw := styles[0].FirstChild.Data
	sum := sha256.Sum256([]byte(raw))
	want := "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if !strings.HasPrefix(csp, want+";") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q, want it to start with %q", csp, want)
	}
}

type pageRow struct{ vault, secret, state, badge string }

func pageRows(doc *html.Node) []pageRow {
	var out []pageRow
	for _, sec := range elements(doc, func(n *html.Node) bool { return n.Data == "section" && hasClass(n, "vault") }) {
		for _, tr := range elements(sec, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-secret") != "" }) {
			b := elements(tr, func(n *html.Node) bool { return hasClass(n, "badge") && !hasClass(n, "extra") })
			row := pageRow{vault: attr(sec, "data-vault"), secret: attr(tr, "data-secret"), state: attr(tr, "data-state")}
			if len(b) == 1 {
				row.badge = textOf(b[0]) + " " + attr(b[0], "class")
			}
			out = append(out, row)
		}
	}
	return out
}

func TestRotationStatusPage(t *testing.T) {
	r := newRig(t, 0)
	r.rot.status = sampleStatus()
	env, res := statusRes(t, r, statusRequest("GET", ""))
	if res.StatusCode != 200 {
		t.Fatalf("res.statusCode = %d: %s", res.StatusCode, res.Body)
	}
	for k, want := range map[string]string{
		"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
		"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
	} {
		if got := res.Headers[k]; got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if len(r.rot.statuses) != 1 || !r.rot.statuses[0].IsZero() {
		t.Errorf("Status calls: %v, want one as of now (zero time)", r.rot.statuses)
	}
	if !env.logsContain("status served: 7 secrets, 2 overdue, 1 with bad tags") {
		t.Errorf("Logs = %q", env.Logs)
	}
	if len(r.logs.withMessage(t, "status served")) != 1 {
		t.Errorf("structured log: %s", r.logs.String())
	}
	if !strings.HasPrefix(res.Body, "<!DOCTYPE html>\n<html lang=\"en\">") || !strings.HasSuffix(strings.TrimSpace(res.Body), "</html>") {
		t.Errorf("not a complete document: %.80q … %q", res.Body, res.Body[max(0, len(res.Body)-40):])
	}
	doc := page(t, res.Body)
	checkSelfContained(t, doc, res.Headers["Content-Security-Policy"])

	if title := textOf(elements(doc, tag("title"))[0]); title != "2 overdue · kvrotator status" {
		t.Errorf("title = %q", title)
	}
	summary := textOf(elements(doc, func(n *html.Node) bool { return attr(n, "id") == "summary" })[0])
	if want := "6 managed secrets in 2 vaults · 2 overdue · 1 with bad tags · 1 due · 1 unmanaged · as of 2030-01-01 00:00:00 UTC"; summary != want {
		t.Errorf("summary = %q\nwant      %q", summary, want)
	}
	want := []pageRow{
		{"prod-vault", "expired-token", "overdue", "OVERDUE badge b-overdue"},
		{"prod-vault", "failing-key", "overdue", "OVERDUE badge b-overdue"},
		{"prod-vault", "db-password", "ok", "OK badge b-ok"},
		{"prod-vault", "broken", "badtags", "BAD TAGS badge b-badtags"},
		{"prod-vault", "legacy", "unmanaged", "UNMANAGED badge b-unmanaged"},
		{"second-vault", "soon-key", "due", "DUE badge b-due"},
		{"second-vault", "cache-key", "ok", "OK badge b-ok"},
	}
	if got := pageRows(doc); !slices.Equal(got, want) {
		t.Errorf("rows:\n got %v\nwant %v", got, want)
	}

	rows := elements(doc, func(n *html.Node) bool { return n.Data == "tr" && attr(n, "data-secret") != "" })
	cells := func(secret string) []string {
		for _, tr := range rows {
			if attr(tr, "data-secret") == secret {
				var out []string
				for _, td := range elements(tr, tag("td")) {
					out = append(out, textOf(td))
				}
				return out
			}
		}
		t.Fatalf("no row for %s", secret)
		return nil
	}
	// secret, provider, state, expiry, last rotated, fails, pending, action, reason
	if c := cells("failing-key"); c[3] != "2030-01-20 00:00 (in 19d)" || c[4] != "—" || c[5] != "3" || c[6] != "0" ||
		!strings.HasPrefix(c[7], "retry with provider random") || !strings.Contains(c[8], "3 consecutive failed rotations") {
		t.Errorf("failing-key cells: %q", c)
	}
	if c := cells("expired-token"); c[3] != "2029-12-15 00:00 (expired 17d ago)" {
		t.Errorf("expired-token cells: %q", c)
	}
	if c := cells("db-password"); c[4] != "2029-12-15 00:00 17d ago · timer" || c[5] != "0" || c[6] != "1" {
		t.Errorf("db-password cells: %q", c)
	}
	if c := cells("broken"); c[8] != `Tags: tag random-length="8": must be between 16 and 4096 not due until 2030-05-02T00:00:00Z` {
		t.Errorf("broken cells: %q", c)
	}
	if c := cells("legacy"); c[1] != "—" || c[7] != "none: not managed (no rotation-provider tag)" {
		t.Errorf("legacy cells: %q", c)
	}

	// Timelines: every class the page uses is defined in its style sheet.
	css := textOf(elements(doc, tag("style"))[0])
	walk(doc, func(n *html.Node) {
		for _, c := range strings.Fields(attr(n, "class")) {
			if !strings.Contains(css, "."+c+"{") && !strings.Contains(css, "."+c+",") && !strings.Contains(css, "."+c+" ") && !strings.Contains(css, "."+c+".") {
				t.Errorf("class %q is not in the style sheet", c)
			}
		}
	})
	timeline := func(secret string) []string {
		for _, tr := range rows {
			if attr(tr, "data-secret") == secret {
				var out []string
				for _, tl := range elements(tr, func(n *html.Node) bool { return hasClass(n, "tl") }) {
					for _, s := range elements(tl, tag("span")) {
						out = append(out, attr(s, "class"))
					}
				}
				return out
			}
		}
		return nil
	}
	for secret, want := range map[string][]string{
		// expired 17 days ago, rotation point off the track: overdue from the track's start to now.
		"expired-token": {"band overdue l0 w13", "late l0 w30", "now l30", "exp l13 past"},
		"failing-key":   {"band overdue l19 w30", "late l19 w11", "rot l19", "now l30", "exp l49"},
		"db-password":   {"band ok l73 w30", "rot l73", "now l30", "exp l103"},
		"cache-key":     {"win l0 w150", "now l30", "exp l150 off after"}, // a daily window: one strip
	} {
		if got := timeline(secret); !slices.Equal(got, want) {
			t.Errorf("%s timeline = %q, want %q", secret, got, want)
		}
	}
	// A weekend window: a two-day mark each weekend on the track (a one-day one at either end).
	var weekends []string
	for _, c := range timeline("soon-key") {
		if strings.HasPrefix(c, "win ") {
			weekends = append(weekends, c)
		}
	}
	if n := len(weekends); n < 21 || n > 23 || !slices.Contains(weekends, "win l34 w2") {
		t.Errorf("soon-key window marks = %q; want one per weekend, the next on 2030-01-05 (day 34)", weekends)
	}
	if got := timeline("soon-key"); !slices.Equal(got[:1], []string{"band due l29 w30"}) || !slices.Equal(got[len(got)-3:], []string{"rot l29", "now l30", "exp l59"}) {
		t.Errorf("soon-key timeline = %q", got)
	}
	if c := cells("soon-key"); !strings.Contains(c[7], "window Sat,Sun 01:00-03:00 Europe/Berlin · opens 2030-01-05 00:00 UTC") {
		t.Errorf("soon-key action cell: %q", c[7])
	}
	if c := cells("cache-key"); !strings.Contains(c[7], "✗ 11111111-aaaa-bbbb-cccc-000000000002 (app app-2) from 10.0.0.2 · 2029-12-31 10:00 · v0") ||
		!strings.Contains(c[7], "✓ 11111111-aaaa-bbbb-cccc-000000000001 from 10.0.0.1 · 2029-12-31 23:00") {
		t.Errorf("cache-key consumers: %q", c[7])
	}
	if c := cells("db-password"); !strings.Contains(c[7], "leak response 2029-12-30 00:00, kvrotator leak: rotated to version v2; revoked old-cred") {
		t.Errorf("db-password emergency: %q", c[7])
	}
	if c := cells("cache-key"); !strings.Contains(c[7], "window daily 02:00-04:00 UTC") || !strings.Contains(c[7], "schedule every 30d") {
		t.Errorf("cache-key action cell: %q", c[7])
	}
}

func TestRotationStatusOverdueFirstWhateverTheOrder(t *testing.T) {
	r := newRig(t, 0)
	rep := sampleStatus()
	slices.Reverse(rep.Secrets)
	r.rot.status = rep
	_, res := statusRes(t, r, statusRequest("GET", ""))
	got := pageRows(page(t, res.Body))
	var states []string
	for _, row := range got {
		states = append(states, row.vault+":"+row.state)
	}
	want := []string{"prod-vault:overdue", "prod-vault:overdue", "prod-vault:unmanaged", "prod-vault:badtags", "prod-vault:ok",
		"second-vault:ok", "second-vault:due"}
	if !slices.Equal(states, want) {
		t.Errorf("rows %v, want %v", states, want)
	}
}

func TestRotationStatusJSON(t *testing.T) {
	for _, query := range []string{"format=json", "FORMAT=JSON", "format=%20json%20"} {
		t.Run(query, func(t *testing.T) {
			r := newRig(t, 0)
			r.rot.status = sampleStatus()
			r.rot.status.Errors = []string{"vault gone-vault: 403 Forbidden"}
			env, res := statusRes(t, r, statusRequest("GET", strings.ReplaceAll(query, "%20", " ")))
			if res.StatusCode != 200 || res.Headers["Content-Type"] != "application/json" || res.Headers["Cache-Control"] != "no-store" ||
				res.Headers["X-Content-Type-Options"] != "nosniff" {
				t.Fatalf("res %d %v", res.StatusCode, res.Headers)
			}
			var rep rotation.StatusReport
			if err := json.Unmarshal([]byte(res.Body), &rep); err != nil {
				t.Fatalf("body: %v\n%s", err, res.Body)
			}
			if !rep.At.Equal(statusAt) || len(rep.Secrets) != 7 || rep.Overdue() != 2 || rep.PolicyErrors() != 1 || rep.Secrets[0].Secret != "expired-token" ||
				rep.Secrets[1].Fails != 3 || len(rep.Errors) != 1 {
				t.Errorf("report: %+v", rep)
			}
			if !env.logsContain("error: vault gone-vault: 403 Forbidden") {
				t.Errorf("Logs = %q", env.Logs)
			}
		})
	}
	r := newRig(t, 0)
	r.rot.status = sampleStatus()
	_, res := statusRes(t, r, statusRequest("GET", "format=xml"))
	if res.StatusCode != 400 || !strings.Contains(res.Body, `"field":"format"`) {
		t.Errorf("format=xml: %d %s", res.StatusCode, res.Body)
	}
	if len(r.rot.statuses) != 0 {
		t.Error("a bad request reached the rotator")
	}
	_, res = statusRes(t, r, statusRequest("GET", "format=html"))
	if res.StatusCode != 200 || res.Headers["Content-Type"] != "text/html; charset=utf-8" {
		t.Errorf("format=html: %d %v", res.StatusCode, res.Headers)
	}
}

func TestRotationStatusEscapes(t *testing.T) {
	const hostile = `<script>alert("x")</script><img src=https://evil.example/p.png onerror=alert(1)>`
	r := newRig(t, 0)
	r.rot.status = rotation.StatusReport{At: statusAt,
		Errors: []string{`vault <b>x</b>: "><link rel=stylesheet href=//evil.example/s.css>`},
		Secrets: []rotation.SecretStatus{{
			Vault: `v"><svg onload=alert(1)>`, Secret: `s'><iframe src=javascript:alert(1)>`, Managed: true, Provider: `</style><script>p</script>`,
			Enabled: true, Expires: day(-1), RotateAt: day(-31), Due: true, Overdue: true, Reason: hostile, Action: "&amp; {{.}}",
			PolicyError: `tag x="</td></tr></table><script>"`, LastTrigger: `"><b>t`, LastRotated: day(-3),
		}}}
	_, res := statusRes(t, r, statusRequest("GET", ""))
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	for _, raw := range []string{"<script", "<img", "<iframe", "<svg", "<b>x", "<b>t", "<link", "</style><"} {
		if strings.Contains(res.Body, raw) {
			t.Errorf("the page contains %q unescaped", raw)
		}
	}
	doc := page(t, res.Body)
	checkSelfContained(t, doc, res.Headers["Content-Security-Policy"])
	rows := pageRows(doc)
	if len(rows) != 1 || rows[0].vault != `v"><svg onload=alert(1)>` || rows[0].secret != `s'><iframe src=javascript:alert(1)>` || rows[0].state != "overdue" {
		t.Fatalf("rows: %q", rows)
	}
	text := textOf(doc)
	for _, s := range []string{hostile, "&amp; {{.}}", `tag x="</td></tr></table><script>"`, `vault <b>x</b>: "><link rel=stylesheet href=//evil.example/s.css>`, `3d ago · "><b>t`} {
		if !strings.Contains(text, s) {
			t.Errorf("the page does not show %q as text", s)
		}
	}
}

func TestRotationStatusEmpty(t *testing.T) {
	r := newRig(t, 0)
	r.rot.status = rotation.StatusReport{At: statusAt, Errors: []string{"vault prod-vault: 403 Forbidden"}}
	_, res := statusRes(t, r, statusRequest("GET", ""))
	doc := page(t, res.Body)
	checkSelfContained(t, doc, res.Headers["Content-Security-Policy"])
	text := textOf(doc)
	if !strings.Contains(text, "No secrets in the configured vaults.") || !strings.Contains(text, "Vaults that could not be listed vault prod-vault: 403 Forbidden") ||
		!strings.Contains(text, "0 managed secrets in 0 vaults · 0 overdue") {
		t.Errorf("page text: %s", text)
	}
}

func TestRotationStatusMethods(t *testing.T) {
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "HEAD", ""} {
		r := newRig(t, 0)
		r.rot.status = sampleStatus()
		_, res := statusRes(t, r, statusRequest(method, ""))
		if res.StatusCode != 405 || res.Headers["Allow"] != "GET" || !json.Valid([]byte(res.Body)) {
			t.Errorf("%q: res %d %v %s", method, res.StatusCode, res.Headers, res.Body)
		}
		if len(r.rot.statuses) != 0 {
			t.Errorf("%q reached the rotator", method)
		}
	}
	r := newRig(t, 0)
	for _, body := range [][]byte{[]byte(`{"Data":{"req":"GET"}}`), []byte(`not json`)} {
		if _, res := statusRes(t, r, body); res.StatusCode != 400 {
			t.Errorf("%s: res %d", body, res.StatusCode)
		}
	}
	// lower-case get is GET
	r.rot.status = sampleStatus()
	if _, res := statusRes(t, r, statusRequest("get", "")); res.StatusCode != 200 {
		t.Errorf("get: %d", res.StatusCode)
	}
}

func TestRelativeAndDayPos(t *testing.T) {
	for d, want := range map[time.Duration]string{
		19 * 24 * time.Hour: "in 19d", 47 * time.Hour: "in 47h", 30 * time.Minute: "within the hour", -time.Minute: "under an hour ago",
		-5 * time.Hour: "5h ago", -17*24*time.Hour - time.Hour: "17d ago",
	} {
		if got := relative(d); got != want {
			t.Errorf("relative(%v) = %q, want %q", d, got, want)
		}
	}
	for days, want := range map[float64]struct {
		pos int
		off string
	}{0: {30, ""}, -30: {0, ""}, -30.6: {0, "before"}, 120: {150, ""}, 121: {150, "after"}, 0.4: {30, ""}, 0.6: {31, ""}, -0.6: {29, ""}} {
		pos, off := dayPos(statusAt.Add(time.Duration(days*24*float64(time.Hour))), statusAt)
		if pos != want.pos || off != want.off {
			t.Errorf("dayPos(%v days) = %d %q, want %d %q", days, pos, off, want.pos, want.off)
		}
	}
}
