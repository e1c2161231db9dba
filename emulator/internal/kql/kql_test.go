package kql

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	oidA  = "aaaaaaaa-0000-4000-8000-000000000001"
	oidB  = "bbbbbbbb-0000-4000-8000-000000000002"
	appA  = "11111111-0000-4000-8000-000000000001"
	appB  = "22222222-0000-4000-8000-000000000002"
	claim = "http://schemas.microsoft.com/identity/claims/objectidentifier"
)

func identity(oid, app string) any {
	if oid == "" {
		return map[string]any{}
	}
	return map[string]any{"claim": map[string]any{claim: oid, "appid": app}}
}

// audit is a small AZKVAuditLogs table.
func audit() Table {
	cols := []Column{
		{"TimeGenerated", Datetime}, {"OperationName", String}, {"Id", String}, {"Identity", Dynamic},
		{"CallerIpAddress", String}, {"HttpStatusCode", Int}, {"_ResourceId", String},
	}
	vault := func(n string) string {
		return "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/microsoft.keyvault/vaults/" + n
	}
	row := func(min int, op, id string, ident any, ip string, status int64, v string) []any {
		return []any{t0.Add(time.Duration(min) * time.Minute), op, id, ident, ip, status, vault(v)}
	}
	const kv = "https://myvault.vault.azure.net/secrets/"
	return Table{Columns: cols, Rows: [][]any{
		row(0, "SecretSet", kv+"db-password/v1", identity(oidA, appA), "10.0.0.1", 200, "myvault"),
		row(1, "SecretGet", kv+"db-password/v1", identity(oidA, appA), "10.0.0.1", 200, "myvault"),
		row(2, "SecretGet", kv+"db-password/v2", identity(oidB, appB), "10.0.0.2", 200, "myvault"),
		row(3, "SecretGet", kv+"db-password/v2", identity(oidB, appB), "10.0.0.2", 200, "myvault"),
		row(4, "SecretGet", kv+"db-password2/v9", identity(oidA, appA), "10.0.0.1", 200, "myvault"),
		row(5, "SecretGet", kv+"db-password/v2", identity(oidA, appA), "10.0.0.1", 403, "myvault"),
		row(6, "SecretGet", kv+"db-password", identity("", ""), "10.0.0.3", 401, "myvault"),
		row(7, "SecretGet", "https://othervault.vault.azure.net/secrets/db-password/v1", identity(oidA, appA), "10.0.0.1", 200, "othervault"),
		row(8, "SecretGet", kv+"DB-PASSWORD/v3", identity(oidB, appB), "10.0.0.2", 200, "myvault"),
		row(9, "SecretList", "https://myvault.vault.azure.net/secrets", identity(oidB, appB), "10.0.0.2", 200, "myvault"),
	}}
}

func run(t *testing.T, query string) Table {
	t.Helper()
	q, err := Parse(query)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, query)
	}
	if q.Table() != "AZKVAuditLogs" {
		t.Fatalf("table %q", q.Table())
	}
	out, err := q.Run(audit(), Env{Now: t0.Add(time.Hour)})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, query)
	}
	return out
}

// column returns the values of the named column.
func column(t *testing.T, tb Table, name string) []any {
	t.Helper()
	for i, c := range tb.Columns {
		if c.Name == name {
			out := []any{}
			for _, r := range tb.Rows {
				out = append(out, r[i])
			}
			return out
		}
	}
	t.Fatalf("no column %s in %v", name, tb.Columns)
	return nil
}

const kvrotatorOneSecret = `AZKVAuditLogs
| where OperationName == "SecretGet" and HttpStatusCode == 200 and _ResourceId endswith "/vaults/myvault"
| where Id contains "/secrets/db-password/" or Id endswith "/secrets/db-password"
| extend ObjectId = tostring(coalesce(Identity.claim.oid, Identity.claim["http://schemas.microsoft.com/identity/claims/objectidentifier"])), AppId = tostring(Identity.claim.appid)
| summarize LastRead = max(TimeGenerated), Reads = count() by ObjectId, AppId, CallerIpAddress, Id`

func TestEmulatorKQLKvrotatorQueryOneSecret(t *testing.T) {
	out := run(t, kvrotatorOneSecret)
	wantCols := []Column{{"ObjectId", String}, {"AppId", String}, {"CallerIpAddress", String}, {"Id", String}, {"LastRead", Datetime}, {"Reads", Long}}
	if !reflect.DeepEqual(out.Columns, wantCols) {
		t.Fatalf("columns %v", out.Columns)
	}
	const kv = "https://myvault.vault.azure.net/secrets/"
	want := [][]any{
		{oidA, appA, "10.0.0.1", kv + "db-password/v1", t0.Add(time.Minute), int64(1)},
		{oidB, appB, "10.0.0.2", kv + "db-password/v2", t0.Add(3 * time.Minute), int64(2)},
		// contains is case-insensitive: Key Vault names are too.
		{oidB, appB, "10.0.0.2", kv + "DB-PASSWORD/v3", t0.Add(8 * time.Minute), int64(1)},
	}
	if !reflect.DeepEqual(out.Rows, want) {
		t.Fatalf("rows\n got %v\nwant %v", out.Rows, want)
	}
}

func TestEmulatorKQLKvrotatorQueryWholeVault(t *testing.T) {
	q := strings.Replace(kvrotatorOneSecret, "| where Id contains \"/secrets/db-password/\" or Id endswith \"/secrets/db-password\"\n", "", 1)
	out := run(t, q+"\n| order by LastRead asc")
	ids := column(t, out, "Id")
	if len(ids) != 4 || ids[2] != "https://myvault.vault.azure.net/secrets/db-password2/v9" {
		t.Fatalf("ids %v", ids)
	}
}

func TestEmulatorKQLWhereComparisons(t *testing.T) {
	count := func(pred string) int64 {
		t.Helper()
		out := run(t, "AZKVAuditLogs | where "+pred+" | summarize n = count()")
		return out.Rows[0][0].(int64)
	}
	for pred, want := range map[string]int64{
		`OperationName == "SecretGet"`:                     8,
		`OperationName == "secretget"`:                     0, // == is case-sensitive
		`OperationName =~ "secretget"`:                     8,
		`OperationName != "SecretGet"`:                     2,
		`OperationName !~ "SECRETGET"`:                     2,
		`Id contains "DB-password/"`:                       7,
		`Id contains_cs "DB-PASSWORD/"`:                    1,
		`Id !contains "db-password"`:                       1,
		`Id startswith "HTTPS://othervault"`:               1,
		`Id !startswith "https://myvault"`:                 1,
		`Id endswith "/V1"`:                                3,
		`Id endswith_cs "/V1"`:                             0,
		`Id has "db-password"`:                             8, // a term: not db-password2
		`Id has "password"`:                                8,
		`Id has "passw"`:                                   0,
		`Id !has "db-password"`:                            2,
		`CallerIpAddress in ("10.0.0.2", "10.0.0.3")`:      5,
		`CallerIpAddress !in ("10.0.0.1")`:                 5,
		`OperationName in~ ("secretlist")`:                 1,
		`HttpStatusCode in (401, 403)`:                     2,
		`HttpStatusCode >= 400`:                            2,
		`HttpStatusCode < 300 and HttpStatusCode > 199`:    8,
		`HttpStatusCode <= 200`:                            8,
		`HttpStatusCode between (400 .. 403)`:              2,
		`HttpStatusCode !between (400 .. 403)`:             8,
		`TimeGenerated > datetime(2026-03-01T12:05:00Z)`:   4,
		`TimeGenerated >= datetime(2026-03-01 12:05)`:      5,
		`TimeGenerated < datetime("2026-03-01T12:01:00Z")`: 1,
		`TimeGenerated between (datetime(2026-03-01T12:02:00Z) .. datetime(2026-03-01T12:04:00Z))`: 3,
		`TimeGenerated > ago(55m)`:                                                           4, // Now is t0+1h
		`TimeGenerated > now() - 55m`:                                                        4,
		`TimeGenerated > ago(1d)`:                                                            10,
		`TimeGenerated - datetime(2026-03-01T12:00:00Z) >= 9m`:                               1,
		`not(OperationName == "SecretGet")`:                                                  2,
		`not(HttpStatusCode == 200 or HttpStatusCode == 403)`:                                1,
		`(HttpStatusCode == 200 or HttpStatusCode == 403) and CallerIpAddress == "10.0.0.1"`: 5,
		`HttpStatusCode == 200 or HttpStatusCode == 403 and CallerIpAddress == "10.0.0.1"`:   9, // and binds tighter
		`tostring(Identity.claim.appid) == "` + appB + `"`:                                   4,
		`Identity.claim.appid == "` + appB + `"`:                                             4,
		`Identity.claim.appid != "` + appB + `"`:                                             5, // the row without claims is null: dropped
		`isempty(tostring(Identity.claim.appid))`:                                            1,
		`isnull(Identity.claim.appid)`:                                                       1,
		`isnotempty(Identity.claim.appid)`:                                                   9,
		`tolower(Id) == "https://myvault.vault.azure.net/secrets/db-password/v3"`:            1,
		`toupper(OperationName) == 'SECRETLIST'`:                                             1,
		`Identity.claim.nothing == "x"`:                                                      0,
		`Identity["claim"]["appid"] =~ "` + strings.ToUpper(appA) + `"`:                      5,
		`TimeGenerated == todatetime("2026-03-01T12:09:00Z")`:                                1,
		`@"10.0.0.1" == CallerIpAddress`:                                                     5,
	} {
		if got := count(pred); got != want {
			t.Errorf("where %s: %d rows, want %d", pred, got, want)
		}
	}
}

func TestEmulatorKQLOperators(t *testing.T) {
	// Comments, blank lines, project, order, take.
	out := run(t, `
// who read what
AZKVAuditLogs   // the table
| where HttpStatusCode == 200

| project When = TimeGenerated, OperationName, Ip = CallerIpAddress
| order by When desc
| take 3`)
	if got := column(t, out, "When"); !reflect.DeepEqual(got, []any{t0.Add(9 * time.Minute), t0.Add(8 * time.Minute), t0.Add(7 * time.Minute)}) {
		t.Errorf("project/order/take: %v", got)
	}
	if len(out.Columns) != 3 || out.Columns[2] != (Column{"Ip", String}) {
		t.Errorf("columns %v", out.Columns)
	}
	// sort by with two keys, asc, limit.
	out = run(t, `AZKVAuditLogs | sort by CallerIpAddress asc, TimeGenerated desc | limit 2 | project CallerIpAddress, TimeGenerated`)
	if !reflect.DeepEqual(out.Rows, [][]any{{"10.0.0.1", t0.Add(7 * time.Minute)}, {"10.0.0.1", t0.Add(5 * time.Minute)}}) {
		t.Errorf("sort by: %v", out.Rows)
	}
	// Default names of aggregations; dcount, min; summarize without by.
	out = run(t, `AZKVAuditLogs | summarize count(), dcount(CallerIpAddress), min(TimeGenerated), max(HttpStatusCode)`)
	if !reflect.DeepEqual(out.Columns, []Column{{"count_", Long}, {"dcount_CallerIpAddress", Long}, {"min_TimeGenerated", Datetime}, {"max_HttpStatusCode", Int}}) ||
		!reflect.DeepEqual(out.Rows, [][]any{{int64(10), int64(3), t0, int64(403)}}) {
		t.Errorf("summarize: %v %v", out.Columns, out.Rows)
	}
	// No rows: summarize without by still gives one row; with by, none.
	out = run(t, `AZKVAuditLogs | where HttpStatusCode == 999 | summarize n = count(), last = max(TimeGenerated)`)
	if !reflect.DeepEqual(out.Rows, [][]any{{int64(0), nil}}) {
		t.Errorf("empty summarize: %v", out.Rows)
	}
	out = run(t, `AZKVAuditLogs | where HttpStatusCode == 999 | summarize count() by Id`)
	if out.Rows == nil || len(out.Rows) != 0 {
		t.Errorf("empty summarize by: %v", out.Rows)
	}
	// extend replaces a column, refers to one made earlier in the same extend; by NAME = expr.
	out = run(t, `AZKVAuditLogs | extend App = tostring(Identity.claim.appid), Short = tolower(App), HttpStatusCode = HttpStatusCode + 1
		| summarize n = count() by App = Short, Code = HttpStatusCode | order by n desc, Code asc`)
	if !reflect.DeepEqual(out.Rows[0], []any{appA, int64(201), int64(4)}) || out.Columns[1].Type != Long {
		t.Errorf("extend/summarize by: %v %v", out.Columns, out.Rows)
	}
	// nulls first / last.
	out = run(t, `AZKVAuditLogs | extend App = Identity.claim.appid | order by App asc nulls last | project App`)
	if out.Rows[len(out.Rows)-1][0] != nil || out.Rows[0][0] == nil {
		t.Errorf("nulls last: %v", out.Rows)
	}
	out = run(t, `AZKVAuditLogs | extend App = Identity.claim.appid | order by App asc | project App`)
	if out.Rows[0][0] != nil {
		t.Errorf("asc puts nulls first: %v", out.Rows)
	}
	// The input is not modified.
	in := audit()
	q, _ := Parse(`AZKVAuditLogs | extend HttpStatusCode = 0, X = 1 | order by TimeGenerated desc`)
	if _, err := q.Run(in, Env{}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, audit()) {
		t.Error("Run modified its input")
	}
}

func TestEmulatorKQLErrors(t *testing.T) {
	for query, want := range map[string]struct{ kind, part string }{
		`AZKVAuditLogs | join (Other) on Id`:                          {"SyntaxError", "'join'"},
		`AZKVAuditLogs | distinct Id`:                                 {"SyntaxError", "'distinct'"},
		`let x = 1; AZKVAuditLogs`:                                    {"SyntaxError", "'let'"},
		`union A, B`:                                                  {"SyntaxError", "'union'"},
		`AZKVAuditLogs | where Id matches regex "x"`:                  {"SyntaxError", "'matches'"},
		`AZKVAuditLogs | where Id like "x"`:                           {"SyntaxError", "'like'"},
		`AZKVAuditLogs | where strlen(Id) > 3`:                        {"SyntaxError", "strlen()"},
		`AZKVAuditLogs | summarize sum(HttpStatusCode)`:               {"SyntaxError", "'sum()'"},
		`AZKVAuditLogs | summarize count() by bin(TimeGenerated, 1h)`: {"SyntaxError", "bin()"},
		`AZKVAuditLogs | where HttpStatusCode * 2 > 3`:                {"SyntaxError", "'*'"},
		`AZKVAuditLogs | where Nope == 1`:                             {"SemanticError", "'Nope'"},
		`AZKVAuditLogs | where HttpStatusCode == "200"`:               {"SemanticError", "cannot compare int with string"},
		`AZKVAuditLogs | where Id.x == 1`:                             {"SemanticError", "dynamic"},
		`AZKVAuditLogs | where max(HttpStatusCode) > 1`:               {"SemanticError", "only allowed in summarize"},
		`AZKVAuditLogs | where ago("1d") < TimeGenerated`:             {"SemanticError", "timespan"},
		`AZKVAuditLogs | where Id == "x`:                              {"SyntaxError", "not closed"},
		`AZKVAuditLogs | where TimeGenerated > datetime(yesterday)`:   {"SyntaxError", "not a datetime"},
		`AZKVAuditLogs | where`:                                       {"SyntaxError", "end of query"},
		`AZKVAuditLogs | take ten`:                                    {"SyntaxError", "number of rows"},
		`AZKVAuditLogs where Id == 1`:                                 {"SyntaxError", "'|'"},
		`AZKVAuditLogs | extend tostring(Id)`:                         {"SyntaxError", "NAME = expression"},
		`AZKVAuditLogs | project tolower(Id)`:                         {"SyntaxError", "a name"},
		`AZKVAuditLogs | project Id, Id`:                              {"SemanticError", "twice"},
		`AZKVAuditLogs | where Id == 1 ; AZKVAuditLogs`:               {"SyntaxError", "several statements"},
		`AZKVAuditLogs | where 5x > 1`:                                {"SyntaxError", "5x"},
		`AZKVAuditLogs | where Id == "\q"`:                            {"SyntaxError", "escape"},
		`AZKVAuditLogs | where OperationName == "a" | where Id # 1`:   {"SyntaxError", "line 1"},
	} {
		var err error
		q, perr := Parse(query)
		if perr != nil {
			err = perr
		} else {
			_, err = q.Run(audit(), Env{Now: t0})
		}
		var kerr *Error
		if !errors.As(err, &kerr) {
			t.Errorf("%s: want an *Error, got %v", query, err)
			continue
		}
		if kerr.Kind != want.kind || !strings.Contains(kerr.Message, want.part) {
			t.Errorf("%s:\n got %s\nwant %s mentioning %s", query, kerr, want.kind, want.part)
		}
	}
	// Positions are reported on the right line.
	_, err := Parse("AZKVAuditLogs\n| where Id == 1\n| frobnicate")
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "'frobnicate'") {
		t.Errorf("position: %v", err)
	}
}

func TestEmulatorKQLLiterals(t *testing.T) {
	toks, err := lex(`1d 1.5h 30m 10s 100ms 10microsecond 5tick 42 2.5 1e3 'it\'s' "a\"b" @"C:\dir" datetime(2026-01-02) datetime(null) a..b`)
	if err != nil {
		t.Fatal(err)
	}
	durs := []time.Duration{24 * time.Hour, 90 * time.Minute, 30 * time.Minute, 10 * time.Second, 100 * time.Millisecond, 10 * time.Microsecond, 500}
	for i, d := range durs {
		if toks[i].kind != tkTimespan || toks[i].dur != d {
			t.Errorf("token %d %q: %v, want %v", i, toks[i].text, toks[i].dur, d)
		}
	}
	if toks[7].num != 42 || toks[8].real != 2.5 || toks[9].real != 1000 {
		t.Errorf("numbers: %+v %+v %+v", toks[7], toks[8], toks[9])
	}
	if toks[10].str != "it's" || toks[11].str != `a"b` || toks[12].str != `C:\dir` {
		t.Errorf("strings: %q %q %q", toks[10].str, toks[11].str, toks[12].str)
	}
	if !toks[13].tm.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) || !toks[14].null {
		t.Errorf("datetimes: %v %v", toks[13].tm, toks[14].null)
	}
	if toks[16].text != ".." {
		t.Errorf("'..' lexed as %q", toks[16].text)
	}
}

func TestEmulatorKQLFormatValue(t *testing.T) {
	for _, tc := range []struct {
		v    any
		t    Type
		want any
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.FixedZone("x", 3600)), Datetime, "2026-01-02T02:04:05.6Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Datetime, "2026-01-02T03:04:05Z"},
		{26*time.Hour + 3*time.Minute + 4*time.Second + 500*time.Millisecond, Timespan, "1.02:03:04.5000000"},
		{-90 * time.Second, Timespan, "-00:01:30"},
		{map[string]any{"claim": map[string]any{"appid": "x"}}, Dynamic, `{"claim":{"appid":"x"}}`},
		{"plain", Dynamic, "plain"},
		{nil, Dynamic, nil},
		{int64(7), Long, int64(7)},
		{"s", String, "s"},
	} {
		if got := FormatValue(tc.v, tc.t); got != tc.want {
			t.Errorf("FormatValue(%v, %s) = %v, want %v", tc.v, tc.t, got, tc.want)
		}
	}
}
