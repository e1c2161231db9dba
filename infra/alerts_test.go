package infra

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

// The alert rules and the workbook read kvrotator's own log lines in Application Insights: the Functions
// host logs each line a custom handler writes to stdout or stderr, unchanged, as a trace (category
// Host.Function.Console), so `traces | extend d = parse_json(message)` gives the JSON object slog wrote.
// The checks below read the field names and message texts from the Go source that writes the lines
// (handler/*.go) and the outcome, class and trigger values from rotation/types.go, so a renamed key or
// message breaks this test instead of silently silencing an alert.

// API versions of the monitoring resources, each the newest non-preview version Microsoft documents:
//   - Microsoft.Insights/scheduledQueryRules 2023-12-01: the stable version in azure-rest-api-specs
//     (specification/monitor/resource-manager/Microsoft.Insights/stable/2023-12-01/scheduledQueryRule_API.json);
//     the template reference change log lists it after 2023-03-15-preview with no property changes;
//     2024-01-01-preview and 2025-01-01-preview are previews.
//   - Microsoft.Insights/actionGroups 2023-01-01: the newest version in the template reference change log
//     that is not a preview (2023-09-01-preview, 2024-10-01-preview are).
//   - Microsoft.Insights/workbooks 2023-06-01: the newest version in the template reference change log.
var monitoringAPIVersions = map[string]string{
	"Microsoft.Insights/scheduledQueryRules": "2023-12-01",
	"Microsoft.Insights/actionGroups":        "2023-01-01",
	"Microsoft.Insights/workbooks":           "2023-06-01",
}

const alertsCondition = "[variables('alertsEnabled')]"

// logSchema is what kvrotator's handler writes: for each message, the keys of its JSON line.
type logSchema struct {
	common  map[string]bool            // on every line: slog's own keys and the logger's With keys
	keys    map[string]map[string]bool // message → keys logged with it
	partial map[string]bool            // message → some key is not a literal (the list is incomplete)
}

// readLogSchema parses handler/*.go: every log call on a logger named log (h.log, inv.log) whose message
// is a literal, and its keys (slog.String("key", …) attributes, "key", value pairs, and the pairs of an
// args... slice built in the same function).
func readLogSchema(t *testing.T) logSchema {
	t.Helper()
	s := logSchema{
		// slog's JSONHandler writes these itself (cmd/kvrotator/logging.go: no ReplaceAttr, checked below).
		common:  map[string]bool{slog.TimeKey: true, slog.LevelKey: true, slog.MessageKey: true},
		keys:    map[string]map[string]bool{},
		partial: map[string]bool{},
	}
	files, err := filepath.Glob("../handler/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("handler sources: %v %v", files, err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || !isLogger(sel.X) {
					return true
				}
				msgAt := map[string]int{"LogAttrs": 2, "Log": 2, "Debug": 0, "Info": 0, "Warn": 0, "Error": 0,
					"DebugContext": 1, "InfoContext": 1, "WarnContext": 1, "ErrorContext": 1}
				if sel.Sel.Name == "With" {
					keys, complete := kvKeys(call.Args, call.Ellipsis.IsValid(), fn)
					for _, k := range keys {
						s.common[k] = true
					}
					if !complete {
						t.Errorf("%s: a logger's With has keys that are not literals: the alert queries cannot be checked", fset.Position(call.Pos()))
					}
					return true
				}
				i, ok := msgAt[sel.Sel.Name]
				if !ok || len(call.Args) <= i {
					return true
				}
				lit, ok := call.Args[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				msg, _ := strconv.Unquote(lit.Value)
				if s.keys[msg] == nil {
					s.keys[msg] = map[string]bool{}
				}
				keys, complete := kvKeys(call.Args[i+1:], call.Ellipsis.IsValid(), fn)
				for _, k := range keys {
					s.keys[msg][k] = true
				}
				if !complete {
					s.partial[msg] = true
				}
				return true
			})
		}
	}
	// The lines are JSON with slog's key names only if the logger is slog's JSONHandler, untouched.
	b, err := os.ReadFile("../cmd/kvrotator/logging.go")
	if err != nil {
		t.Fatal(err)
	}
	if src := string(b); !strings.Contains(src, "slog.NewJSONHandler(out, opts)") || !strings.Contains(src, "slog.NewJSONHandler(errOut, opts)") || strings.Contains(src, "ReplaceAttr") {
		t.Errorf("cmd/kvrotator/logging.go: the alert queries expect slog's JSONHandler on stdout and stderr, with slog's own key names (no ReplaceAttr)")
	}
	return s
}

// isLogger says whether x is a logger named log: log, h.log, inv.log.
func isLogger(x ast.Expr) bool {
	switch v := x.(type) {
	case *ast.Ident:
		return v.Name == "log"
	case *ast.SelectorExpr:
		return v.Sel.Name == "log"
	}
	return false
}

// slogAttr are the slog functions that make an attribute from a key.
var slogAttr = map[string]bool{"String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true,
	"Bool": true, "Time": true, "Duration": true, "Any": true, "Group": true}

// kvKeys lists the keys of slog arguments: attributes and "key", value pairs; an args... slice is
// resolved from its assignments in fn ([]any{…} and append(args, …)). complete is false when some
// key is not a literal.
func kvKeys(args []ast.Expr, spread bool, fn *ast.FuncDecl) (keys []string, complete bool) {
	complete = true
	if spread && len(args) > 0 {
		id, ok := args[len(args)-1].(*ast.Ident)
		if !ok {
			return nil, false
		}
		args = args[:len(args)-1]
		found := false
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			as, ok := n.(*ast.AssignStmt)
			if !ok || len(as.Lhs) != 1 || len(as.Rhs) != 1 {
				return true
			}
			if lhs, ok := as.Lhs[0].(*ast.Ident); !ok || lhs.Name != id.Name {
				return true
			}
			var elems []ast.Expr
			switch r := as.Rhs[0].(type) {
			case *ast.CompositeLit:
				elems = r.Elts
			case *ast.CallExpr:
				if f, ok := r.Fun.(*ast.Ident); ok && f.Name == "append" && len(r.Args) > 0 && !r.Ellipsis.IsValid() {
					if a0, ok := r.Args[0].(*ast.Ident); ok && a0.Name == id.Name {
						elems = r.Args[1:]
						break
					}
				}
				complete = false
				return true
			default:
				complete = false
				return true
			}
			found = true
			k, c := kvKeys(elems, false, fn)
			keys = append(keys, k...)
			complete = complete && c
			return true
		})
		if !found {
			complete = false
		}
	}
	for i := 0; i < len(args); {
		switch a := args[i].(type) {
		case *ast.BasicLit:
			if a.Kind != token.STRING {
				complete = false
				i++
				continue
			}
			k, _ := strconv.Unquote(a.Value)
			keys = append(keys, k)
			i += 2
			continue
		case *ast.CallExpr:
			if sel, ok := a.Fun.(*ast.SelectorExpr); ok {
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "slog" && slogAttr[sel.Sel.Name] && len(a.Args) > 0 {
					if lit, ok := a.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						k, _ := strconv.Unquote(lit.Value)
						keys = append(keys, k)
						i++
						continue
					}
				}
			}
		}
		complete = false
		i++
	}
	return keys, complete
}

// outcomeValues are the values kvrotator writes for outcome, class and trigger: the constants of the
// types Kind, Class and Trigger in rotation/types.go.
func outcomeValues(t *testing.T) map[string]map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../rotation/types.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	field := map[string]string{"Kind": "outcome", "Class": "class", "Trigger": "trigger"}
	out := map[string]map[string]bool{"outcome": {}, "class": {}, "trigger": {}}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			typ, ok := vs.Type.(*ast.Ident)
			if !ok || field[typ.Name] == "" {
				continue
			}
			for _, v := range vs.Values {
				if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out[field[typ.Name]][s] = true
				}
			}
		}
	}
	for k, v := range out {
		if len(v) == 0 {
			t.Fatalf("rotation/types.go: no %s values found", k)
		}
	}
	return out
}

var (
	// d.name or d["name"]: a field of the parsed log line.
	fieldRefRE = regexp.MustCompile(`\bd(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*"([^"]+)"\s*\])`)
	msgTestRE  = regexp.MustCompile(`tostring\(d(?:\.msg|\["msg"\])\)\s*==\s*"([^"]*)"`)
	hasTermRE  = regexp.MustCompile(`\bmessage\s+has\s+"([^"]*)"`)
)

// kqlProblems checks a query over kvrotator's log lines: it reads traces, parses message as d, keeps
// only lines whose msg is one kvrotator writes (after a `message has` pre-filter that every such line
// passes), and uses only fields those lines carry and values the code writes.
func kqlProblems(q string, s logSchema, values map[string]map[string]bool) []string {
	var probs []string
	if !strings.HasPrefix(strings.TrimSpace(q), "traces") {
		probs = append(probs, "does not read traces")
	}
	if !strings.Contains(q, "extend d = parse_json(message)") {
		return append(probs, "does not parse the log line: want `extend d = parse_json(message)`")
	}
	var msgs []string
	for _, m := range msgTestRE.FindAllStringSubmatch(q, -1) {
		msgs = append(msgs, m[1])
	}
	if len(msgs) == 0 {
		return append(probs, `keeps no particular message: want tostring(d.msg) == "…"`)
	}
	allowed := map[string]bool{}
	for k := range s.common {
		allowed[k] = true
	}
	for _, m := range msgs {
		keys, ok := s.keys[m]
		if !ok {
			probs = append(probs, fmt.Sprintf("message %q: handler/ never logs it", m))
			continue
		}
		if s.partial[m] {
			probs = append(probs, fmt.Sprintf("message %q: some of its keys are not literals in handler/, so the query cannot be checked", m))
		}
		for k := range keys {
			allowed[k] = true
		}
	}
	for _, m := range hasTermRE.FindAllStringSubmatch(q, -1) {
		for _, msg := range msgs {
			terms := strings.FieldsFunc(msg, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') })
			if !slices.Contains(terms, m[1]) {
				probs = append(probs, fmt.Sprintf("pre-filter `message has %q` drops the %q lines (not a whole term of the message)", m[1], msg))
			}
		}
	}
	for _, m := range fieldRefRE.FindAllStringSubmatch(q, -1) {
		name := m[1] + m[2]
		if !allowed[name] {
			probs = append(probs, fmt.Sprintf("uses d.%s, which kvrotator never writes on %q lines", name, msgs))
		}
	}
	for field, valid := range values {
		ref := `tostring\(d(?:\.` + field + `|\["` + field + `"\])\)`
		cmp := regexp.MustCompile(ref + `\s*(?:==|!=|=~|!~)\s*"([^"]*)"`)
		in := regexp.MustCompile(ref + `\s*!?in~?\s*\(([^)]*)\)`)
		var got []string
		for _, m := range cmp.FindAllStringSubmatch(q, -1) {
			got = append(got, m[1])
		}
		for _, m := range in.FindAllStringSubmatch(q, -1) {
			for _, v := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
				got = append(got, v[1])
			}
		}
		for _, v := range got {
			if !valid[v] {
				probs = append(probs, fmt.Sprintf("compares %s with %q, a value kvrotator never writes (rotation/types.go)", field, v))
			}
		}
	}
	return probs
}

// formatRE is the one expression form a query may take: format('…{0}…', parameters('p')).
var formatRE = regexp.MustCompile(`^\[format\('((?:[^']|'')*)', parameters\('(\w+)'\)\)\]$`)

// resolveQuery returns a rule's query as ARM would send it with the parameters' defaults.
func resolveQuery(t *testing.T, tp template, q string) (string, string) {
	t.Helper()
	if !isExpr(q) {
		return q, ""
	}
	m := formatRE.FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("query expression %s: only format('…', parameters('…')) is understood here", q)
	}
	pattern := strings.ReplaceAll(m[1], "''", "'")
	if strings.Count(pattern, "{") != strings.Count(pattern, "{0}") || strings.Count(pattern, "}") != strings.Count(pattern, "{0}") {
		t.Errorf("query %s: a brace other than {0} breaks format()", q)
	}
	def, ok := tp.params[m[2]]["defaultValue"]
	if !ok {
		t.Fatalf("query %s: parameter %s has no default", q, m[2])
	}
	return strings.ReplaceAll(pattern, "{0}", fmt.Sprint(def)), m[2]
}

// isoDuration parses the ISO 8601 durations Azure Monitor takes (PT5M, PT1H, P2D).
func isoDuration(s string) (time.Duration, bool) {
	m := regexp.MustCompile(`^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$`).FindStringSubmatch(s)
	if m == nil || s == "P" || s == "PT" {
		return 0, false
	}
	var d time.Duration
	for i, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute} {
		if m[i+1] != "" {
			n, _ := strconv.Atoi(m[i+1])
			d += time.Duration(n) * unit
		}
	}
	return d, true
}

func TestKQLChecker(t *testing.T) {
	s := logSchema{
		common:  map[string]bool{"msg": true, "time": true},
		keys:    map[string]map[string]bool{"outcome": {"vault": true, "outcome": true}, "sweep finished": {"scanned": true}},
		partial: map[string]bool{},
	}
	values := map[string]map[string]bool{"outcome": {"failed": true}, "class": {"transient": true}, "trigger": {"timer": true}}
	good := "traces\n| where message has \"outcome\"\n| extend d = parse_json(message)\n| where tostring(d.msg) == \"outcome\" and tostring(d.outcome) == \"failed\"\n| project vault = tostring(d[\"vault\"])"
	if p := kqlProblems(good, s, values); len(p) != 0 {
		t.Errorf("good query: %v", p)
	}
	for name, bad := range map[string]string{
		"unknown field":       strings.Replace(good, `d["vault"]`, `d.vaults`, 1),
		"field of other line": strings.Replace(good, `d["vault"]`, `d.scanned`, 1),
		"unknown message":     strings.Replace(good, `tostring(d.msg) == "outcome"`, `tostring(d.msg) == "outcomes"`, 1),
		"no message":          strings.Replace(good, `tostring(d.msg) == "outcome" and `, ``, 1),
		"unknown value":       strings.Replace(good, `== "failed"`, `== "failure"`, 1),
		"unknown value in":    strings.Replace(good, `tostring(d.outcome) == "failed"`, `tostring(d.outcome) in ("failed", "error")`, 1),
		"bad pre-filter":      strings.Replace(good, `has "outcome"`, `has "outcomes"`, 1),
		"not traces":          strings.Replace(good, "traces", "requests", 1),
		"not parsed":          strings.Replace(good, "extend d = parse_json(message)", "extend d = todynamic(message)", 1),
	} {
		if p := kqlProblems(bad, s, values); len(p) == 0 {
			t.Errorf("%s: no problem found in\n%s", name, bad)
		}
	}
	for in, want := range map[string]time.Duration{"PT5M": 5 * time.Minute, "PT1H": time.Hour, "P2D": 48 * time.Hour, "PT1H30M": 90 * time.Minute} {
		if got, ok := isoDuration(in); !ok || got != want {
			t.Errorf("isoDuration(%s) = %v, %v", in, got, ok)
		}
	}
	for _, in := range []string{"", "P", "PT", "1H", "PT1S"} {
		if _, ok := isoDuration(in); ok {
			t.Errorf("isoDuration(%q) accepted", in)
		}
	}
}

func TestLogSchemaReadsTheHandler(t *testing.T) {
	s := readLogSchema(t)
	// What README "How it works" promises as stable keys, and the sweep summary: if the parser stops
	// finding them, every query check below would pass for the wrong reason.
	for msg, want := range map[string][]string{
		"outcome":        {"vault", "secret", "version", "new_version", "provider", "trigger", "outcome", "reason", "class", "consumer", "dry_run", "duration_ms"},
		"sweep finished": {"scanned", "managed", "outcomes", "failed", "transient", "is_past_due", "duration_ms", "last", "next"},
	} {
		for _, k := range want {
			if !s.keys[msg][k] {
				t.Errorf("%q lines: key %s not found in handler/ (found %v)", msg, k, s.keys[msg])
			}
		}
		if s.partial[msg] {
			t.Errorf("%q lines: some keys are not literals", msg)
		}
	}
	for _, k := range []string{"function", "invocation_id", "msg", "level", "time"} {
		if !s.common[k] {
			t.Errorf("common key %s not found", k)
		}
	}
}

// alertResources returns the action group, the alert rules by name suffix and the workbook.
func alertResources(t *testing.T, tp template) (object, map[string]object, object) {
	t.Helper()
	rules := map[string]object{}
	for _, r := range tp.byType("Microsoft.Insights/scheduledQueryRules") {
		m := regexp.MustCompile(`^\[format\('\{0\}-([a-z-]+)', parameters\('appName'\)\)\]$`).FindStringSubmatch(r["name"].(string))
		if m == nil {
			t.Fatalf("alert rule name %v: want format('{0}-<what>', parameters('appName'))", r["name"])
		}
		rules[m[1]] = r
	}
	return tp.one(t, "Microsoft.Insights/actionGroups"), rules, tp.one(t, "Microsoft.Insights/workbooks")
}

func TestAlertsExistOnlyWithEmailAddresses(t *testing.T) {
	tp := loadTemplate(t)
	p := tp.params["alertEmails"]
	if p["type"] != "array" || typeName(p["defaultValue"]) != "[]interface {}" || len(p["defaultValue"].([]any)) != 0 {
		t.Fatalf("alertEmails = %v: want an array parameter, default [] (no alerts)", p)
	}
	if tp.variables["alertsEnabled"] != "[not(empty(parameters('alertEmails')))]" {
		t.Errorf("alertsEnabled = %v", tp.variables["alertsEnabled"])
	}
	n := 0
	for typ, version := range monitoringAPIVersions {
		rs := tp.byType(typ)
		if len(rs) == 0 {
			t.Errorf("no %s", typ)
		}
		for _, r := range rs {
			n++
			if r["condition"] != alertsCondition {
				t.Errorf("%s %v: condition %v, want %s (nothing without alertEmails)", typ, r["name"], r["condition"], alertsCondition)
			}
			if r["apiVersion"] != version {
				t.Errorf("%s %v: apiVersion %v, want %s", typ, r["name"], r["apiVersion"], version)
			}
		}
	}
	// Nothing else depends on the alerts, and nothing else is conditional on them except the sampling
	// override below.
	for _, r := range tp.resources {
		if _, monitoring := monitoringAPIVersions[r["type"].(string)]; !monitoring && r["condition"] == alertsCondition {
			t.Errorf("%s %v is created only with alerts", r["type"], r["name"])
		}
	}
	if n < 7 {
		t.Errorf("want an action group, the alert rules and a workbook, got %d resources", n)
	}

	// Adaptive sampling would drop trace lines under load (host.json samples everything but requests
	// and exceptions); a dropped "failed" line is a missed alert. With alerts on, traces are kept.
	if !strings.Contains(tp.siteSettingsExpr(t), "if(variables('alertsEnabled'), variables('appSettingsAlerts'), createArray())") {
		t.Errorf("the site's app settings do not include appSettingsAlerts under alertsEnabled")
	}
	var host struct {
		Logging struct {
			ApplicationInsights struct {
				SamplingSettings struct {
					IsEnabled     bool   `json:"isEnabled"`
					ExcludedTypes string `json:"excludedTypes"`
				} `json:"samplingSettings"`
			} `json:"applicationInsights"`
		} `json:"logging"`
	}
	readJSON(t, "../host.json", &host)
	s := tp.settings(t, "appSettingsAlerts")
	const key = "AzureFunctionsJobHost__logging__applicationInsights__samplingSettings__excludedTypes"
	if len(s) != 1 || s[key] == "" {
		t.Fatalf("appSettingsAlerts = %v, want only %s", s, key)
	}
	got := strings.Split(s[key], ";")
	for _, typ := range strings.Split(host.Logging.ApplicationInsights.SamplingSettings.ExcludedTypes, ";") {
		if typ != "" && !slices.Contains(got, typ) {
			t.Errorf("%s = %q drops %s, which host.json excludes from sampling", key, s[key], typ)
		}
	}
	if !slices.Contains(got, "Trace") {
		t.Errorf("%s = %q: traces must not be sampled", key, s[key])
	}
}

func TestActionGroupEmailsTheParameter(t *testing.T) {
	tp := loadTemplate(t)
	ag, _, _ := alertResources(t, tp)
	if ag["location"] != "Global" || ag["name"] != "[variables('actionGroupName')]" {
		t.Errorf("action group location %v, name %v", ag["location"], ag["name"])
	}
	props := asObject(t, ag["properties"], "action group properties")
	if short, _ := props["groupShortName"].(string); short == "" || len(short) > 12 {
		t.Errorf("groupShortName %q: 1 to 12 characters", short)
	}
	if props["enabled"] != true {
		t.Errorf("action group enabled = %v", props["enabled"])
	}
	// One e-mail receiver per address, named by its index (receiver names must be unique), with the
	// common alert schema.
	want := "[map(range(0, length(parameters('alertEmails'))), lambda('i', createObject('name', format('email-{0}', lambdaVariables('i')), 'emailAddress', parameters('alertEmails')[lambdaVariables('i')], 'useCommonAlertSchema', true())))]"
	if props["emailReceivers"] != want {
		t.Errorf("emailReceivers = %v\nwant %s", props["emailReceivers"], want)
	}
	for k := range props {
		if strings.HasSuffix(k, "Receivers") && k != "emailReceivers" {
			t.Errorf("action group %s: e-mail only", k)
		}
	}
}

func TestAlertRulesQueryWhatKvrotatorLogs(t *testing.T) {
	tp := loadTemplate(t)
	schema := readLogSchema(t)
	values := outcomeValues(t)
	_, rules, _ := alertResources(t, tp)
	if tp.variables["appInsightsId"] != "[resourceId('Microsoft.Insights/components', variables('appInsightsName'))]" {
		t.Errorf("appInsightsId = %v", tp.variables["appInsightsId"])
	}
	freqs := asArray(t, tp.params["alertEvaluationFrequency"]["allowedValues"], "alertEvaluationFrequency.allowedValues")
	if !slices.Contains(freqs, tp.params["alertEvaluationFrequency"]["defaultValue"]) {
		t.Errorf("alertEvaluationFrequency default not allowed")
	}

	// What each rule must fire on: the message and the outcome (or its absence).
	type expect struct {
		msg, outcome, class string
		operator            string
		threshold           float64
		dims                []string
	}
	want := map[string]expect{
		"rotation-failed":         {"outcome", "failed", `tostring(d["class"]) != "transient"`, "GreaterThan", 0, []string{"vault", "secret"}},
		"rotation-failing":        {"outcome", "failed", `tostring(d["class"]) == "transient"`, "GreaterThanOrEqual", 3, []string{"vault", "secret"}},
		"secret-overdue":          {"outcome", "overdue", "", "GreaterThan", 0, []string{"vault", "secret"}},
		"sweep-missing":           {"sweep finished", "", "", "LessThan", 1, nil},
		"consumer-refresh-failed": {"outcome", "refresh-failed", "", "GreaterThan", 0, []string{"vault", "secret", "consumer"}},
	}
	for name := range rules {
		if _, ok := want[name]; !ok {
			t.Errorf("alert rule %s: not described in this test", name)
		}
	}
	for name, w := range want {
		r, ok := rules[name]
		if !ok {
			t.Errorf("no alert rule %s", name)
			continue
		}
		where := "alert rule " + name
		if r["kind"] != "LogAlert" || r["location"] != "[parameters('location')]" {
			t.Errorf("%s: kind %v, location %v", where, r["kind"], r["location"])
		}
		if _, ok := r["identity"]; ok {
			t.Errorf("%s: an identity would need its own role assignment; the rule runs with its deployer's access (NOTES, Alerts)", where)
		}
		p := asObject(t, r["properties"], where)
		for _, k := range []string{"displayName", "description"} {
			if s, _ := p[k].(string); len(s) < 20 {
				t.Errorf("%s: %s %q too short", where, k, s)
			}
		}
		if p["enabled"] != true || p["autoMitigate"] != true {
			t.Errorf("%s: enabled %v, autoMitigate %v: want both (stateful: one notification per episode, resolved when it ends)", where, p["enabled"], p["autoMitigate"])
		}
		if sev := p["severity"]; sev != "[parameters('alertSeverity')]" && sev != "[min(add(parameters('alertSeverity'), 1), 4)]" {
			t.Errorf("%s: severity %v: want alertSeverity or one step less", where, sev)
		}
		if s := asArray(t, p["scopes"], where+" scopes"); len(s) != 1 || s[0] != "[variables('appInsightsId')]" {
			t.Errorf("%s: scopes %v, want the template's Application Insights component", where, s)
		}
		if a := asArray(t, get(p, "actions.actionGroups"), where+" actionGroups"); len(a) != 1 || a[0] != "[resourceId('Microsoft.Insights/actionGroups', variables('actionGroupName'))]" {
			t.Errorf("%s: action groups %v", where, a)
		}
		window, ok := isoDuration(fmt.Sprint(p["windowSize"]))
		if !ok {
			t.Errorf("%s: windowSize %v", where, p["windowSize"])
		}
		var maxFreq time.Duration
		if f := p["evaluationFrequency"]; f == "[parameters('alertEvaluationFrequency')]" {
			for _, v := range freqs {
				d, ok := isoDuration(v.(string))
				if !ok {
					t.Errorf("alertEvaluationFrequency value %v", v)
				}
				maxFreq = max(maxFreq, d)
			}
		} else if maxFreq, ok = isoDuration(fmt.Sprint(f)); !ok {
			t.Errorf("%s: evaluationFrequency %v", where, f)
		}
		if window < maxFreq || window > 48*time.Hour {
			t.Errorf("%s: windowSize %v: at least the evaluation frequency (%v), at most 2 days", where, p["windowSize"], maxFreq)
		}
		conds := asArray(t, get(p, "criteria.allOf"), where+" criteria")
		if len(conds) != 1 {
			t.Fatalf("%s: want one condition", where)
		}
		c := asObject(t, conds[0], where+" condition")
		q, param := resolveQuery(t, tp, fmt.Sprint(c["query"]))
		for _, prob := range kqlProblems(q, schema, values) {
			t.Errorf("%s: query %s\n%s", where, prob, q)
		}
		if !strings.Contains(q, `tostring(d.msg) == "`+w.msg+`"`) {
			t.Errorf("%s: want the %q lines\n%s", where, w.msg, q)
		}
		if w.outcome != "" && !strings.Contains(q, `tostring(d.outcome) == "`+w.outcome+`"`) {
			t.Errorf("%s: want outcome %q\n%s", where, w.outcome, q)
		}
		if w.class != "" && !strings.Contains(q, w.class) {
			t.Errorf("%s: want %s\n%s", where, w.class, q)
		}
		if w.outcome == "failed" && !strings.Contains(q, `tostring(d.dry_run) != "true"`) {
			t.Errorf("%s: a dry run's failure is not an outage: want tostring(d.dry_run) != \"true\"", where)
		}
		if c["timeAggregation"] != "Count" || c["operator"] != w.operator || c["threshold"] != w.threshold {
			t.Errorf("%s: %v %v %v, want Count %s %v", where, c["timeAggregation"], c["operator"], c["threshold"], w.operator, w.threshold)
		}
		var dims []string
		for _, d := range asArrayOrNil(c["dimensions"]) {
			dim := asObject(t, d, where+" dimension")
			dims = append(dims, dim["name"].(string))
			if dim["operator"] != "Include" || fmt.Sprint(dim["values"]) != "[*]" {
				t.Errorf("%s: dimension %v: want Include *", where, dim)
			}
			// A dimension is a column of the result.
			if !regexp.MustCompile(`\b` + regexp.QuoteMeta(dim["name"].(string)) + `\b`).MatchString(q[strings.LastIndex(q, "|"):]) {
				t.Errorf("%s: dimension %v is not a column the query ends with\n%s", where, dim["name"], q)
			}
		}
		if !slices.Equal(dims, w.dims) {
			t.Errorf("%s: dimensions %v, want %v", where, dims, w.dims)
		}
		if param != "" && param != "alertSweepMissingHours" {
			t.Errorf("%s: query parameter %s", where, param)
		}
		if name == "sweep-missing" || name == "secret-overdue" {
			// Their own look-back, in the query: the window (P2D) only bounds it.
			if param != "alertSweepMissingHours" || !strings.Contains(fmt.Sprint(c["query"]), "| where timestamp > ago({0}h) |") {
				t.Errorf("%s: want `where timestamp > ago({0}h)` with alertSweepMissingHours", where)
			}
			if hi := tp.params["alertSweepMissingHours"]["maxValue"].(float64); time.Duration(hi)*time.Hour >= window {
				t.Errorf("%s: alertSweepMissingHours may reach %v h, beyond the %v window", where, hi, p["windowSize"])
			}
		}
	}
}

// maxGap is the longest time between two runs of an NCRONTAB schedule (six fields, seconds first, UTC)
// over eight weeks.
func maxGap(t *testing.T, schedule string) time.Duration {
	t.Helper()
	sched, err := cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow).Parse(schedule)
	if err != nil {
		t.Fatalf("schedule %q: %v", schedule, err)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var gap time.Duration
	prev := sched.Next(start)
	for prev.Before(start.Add(8 * 7 * 24 * time.Hour)) {
		next := sched.Next(prev)
		gap = max(gap, next.Sub(prev))
		prev = next
	}
	return gap
}

func TestSweepMissingWindowExceedsTheSchedule(t *testing.T) {
	tp := loadTemplate(t)
	var host struct {
		FunctionTimeout string `json:"functionTimeout"`
	}
	readJSON(t, "../host.json", &host)
	hms := strings.Split(host.FunctionTimeout, ":")
	if len(hms) != 3 {
		t.Fatalf("host.json functionTimeout %q: want hh:mm:ss", host.FunctionTimeout)
	}
	timeout, err := time.ParseDuration(hms[0] + "h" + hms[1] + "m" + hms[2] + "s")
	if err != nil || timeout <= 0 {
		t.Fatalf("host.json functionTimeout %q: want hh:mm:ss (%v)", host.FunctionTimeout, err)
	}
	// A "sweep finished" line comes at most one schedule gap plus one function timeout after the last;
	// Application Insights ingestion takes minutes (15 allowed here).
	const ingestion = 15 * time.Minute
	check := func(where, schedule string, hours float64) {
		gap := maxGap(t, schedule)
		if need := gap + timeout + ingestion; time.Duration(hours)*time.Hour < need {
			t.Errorf("%s: alertSweepMissingHours %v: the schedule %q leaves up to %v between sweeps (+ %v function timeout, + %v ingestion): want at least %v", where, hours, schedule, gap, timeout, ingestion, need)
		}
	}
	check("template defaults", tp.params["sweepSchedule"]["defaultValue"].(string), tp.params["alertSweepMissingHours"]["defaultValue"].(float64))
	if gap := maxGap(t, "0 0 */6 * * *"); gap != 6*time.Hour {
		t.Errorf("maxGap(every 6 h) = %v", gap)
	}

	var ex struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	readJSON(t, "azuredeploy.parameters.example.json", &ex)
	schedule, _ := tp.params["sweepSchedule"]["defaultValue"].(string)
	if v, ok := ex.Parameters["sweepSchedule"]; ok {
		schedule = v.Value.(string)
	}
	hours := tp.params["alertSweepMissingHours"]["defaultValue"].(float64)
	if v, ok := ex.Parameters["alertSweepMissingHours"]; ok {
		hours = v.Value.(float64)
	}
	check("parameters example", schedule, hours)
	if v, ok := ex.Parameters["alertEmails"]; !ok || len(v.Value.([]any)) == 0 {
		t.Errorf("the parameters example should show alertEmails")
	}
}

func TestWorkbookChartsWhatKvrotatorLogs(t *testing.T) {
	tp := loadTemplate(t)
	schema := readLogSchema(t)
	values := outcomeValues(t)
	_, _, wb := alertResources(t, tp)
	if wb["kind"] != "shared" || wb["name"] != "[guid(resourceGroup().id, parameters('appName'), 'kvrotator-workbook')]" || wb["location"] != "[parameters('location')]" {
		t.Errorf("workbook kind %v, name %v (must be a GUID), location %v", wb["kind"], wb["name"], wb["location"])
	}
	props := asObject(t, wb["properties"], "workbook properties")
	for k, v := range map[string]string{
		"category":       "workbook",
		"version":        "Notebook/1.0",
		"sourceId":       "[toLower(variables('appInsightsId'))]",
		"serializedData": "[string(variables('kvrotatorWorkbook'))]",
	} {
		if props[k] != v {
			t.Errorf("workbook %s = %v, want %s", k, props[k], v)
		}
	}
	// serializedData is the variable, serialized by string(): valid JSON by construction; check it
	// round-trips and has a workbook's shape.
	b, err := json.Marshal(tp.variables["kvrotatorWorkbook"])
	if err != nil {
		t.Fatal(err)
	}
	var content struct {
		Version string `json:"version"`
		Items   []struct {
			Type    int            `json:"type"`
			Name    string         `json:"name"`
			Content map[string]any `json:"content"`
		} `json:"items"`
		FallbackResourceIDs []string `json:"fallbackResourceIds"`
	}
	if err := json.Unmarshal(b, &content); err != nil {
		t.Fatalf("workbook content: %v", err)
	}
	if content.Version != "Notebook/1.0" || len(content.Items) == 0 || !slices.Equal(content.FallbackResourceIDs, []string{"[variables('appInsightsId')]"}) {
		t.Errorf("workbook: version %q, %d items, fallbackResourceIds %v", content.Version, len(content.Items), content.FallbackResourceIDs)
	}
	// ARM evaluates every string of the variable that looks like an expression: only the component's id.
	allStrings(tp.variables["kvrotatorWorkbook"], "$.variables.kvrotatorWorkbook", func(path, s string) {
		if isExpr(s) && s != "[variables('appInsightsId')]" {
			t.Errorf("%s: %q would be evaluated by ARM", path, s)
		}
	})
	names := map[string]bool{}
	var charts []string
	for _, it := range content.Items {
		if names[it.Name] {
			t.Errorf("workbook item name %q repeated", it.Name)
		}
		names[it.Name] = true
		if it.Type != 3 {
			continue
		}
		c := it.Content
		q, _ := c["query"].(string)
		for _, prob := range kqlProblems(q, schema, values) {
			t.Errorf("workbook item %s: query %s\n%s", it.Name, prob, q)
		}
		if c["version"] != "KqlItem/1.0" || c["queryType"] != float64(0) || c["resourceType"] != "microsoft.insights/components" ||
			fmt.Sprint(c["crossComponentResources"]) != "[[variables('appInsightsId')]]" || c["timeContextFromParameter"] != "TimeRange" {
			t.Errorf("workbook item %s: %v", it.Name, c)
		}
		charts = append(charts, fmt.Sprintf("%v %s", c["visualization"], q))
	}
	// Over time: rotations (every outcome), failures, overdue secrets; and by vault and provider.
	for what, re := range map[string]string{
		"outcomes over time":        `(?s)^timechart .*by outcome = tostring\(d\.outcome\), bin\(timestamp`,
		"failures over time":        `(?s)^(timechart|barchart) .*tostring\(d\.outcome\) == "failed".*bin\(timestamp`,
		"overdue over time":         `(?s)^(timechart|barchart) .*tostring\(d\.outcome\) == "overdue".*bin\(timestamp`,
		"by vault and provider":     `(?s)by vault = tostring\(d\.vault\), provider = tostring\(d\.provider\)`,
		"rotations by vault":        `(?s)tostring\(d\.outcome\) == "rotated".*by vault`,
		"the sweeps":                `(?s)tostring\(d\.msg\) == "sweep finished"`,
		"latest failure per secret": `(?s)arg_max\(timestamp, \*\) by vault = tostring\(d\.vault\), secret = tostring\(d\.secret\)`,
	} {
		found := false
		for _, c := range charts {
			found = found || regexp.MustCompile(re).MatchString(c)
		}
		if !found {
			t.Errorf("workbook: no chart of %s", what)
		}
	}
}

// TestMonitoringNamesAreUnique guards the names Azure requires to be unique in the resource group.
func TestMonitoringNamesAreUnique(t *testing.T) {
	tp := loadTemplate(t)
	var names []string
	for _, r := range tp.byType("Microsoft.Insights/scheduledQueryRules") {
		names = append(names, r["name"].(string))
	}
	sort.Strings(names)
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("alert rule names repeat: %v", names)
	}
}
