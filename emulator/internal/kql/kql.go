// Package kql runs a small subset of the Kusto Query Language (KQL) over an in-memory table: enough
// for the Log Analytics queries kvrotator sends to find out who reads a secret, plus the usual
// filters around them. It is hand-written on purpose: no Go library parses KQL, and the subset is
// small (a lexer, a recursive-descent parser and an evaluator over rows).
//
// A query is a table name followed by operators, each after a "|":
//
//	AZKVAuditLogs
//	| where OperationName == "SecretGet" and HttpStatusCode == 200 and _ResourceId endswith "/vaults/myvault"
//	| where Id contains "/secrets/db-password/" or Id endswith "/secrets/db-password"
//	| extend ObjectId = tostring(coalesce(Identity.claim.oid, Identity.claim["http://schemas.microsoft.com/identity/claims/objectidentifier"])), AppId = tostring(Identity.claim.appid)
//	| summarize LastRead = max(TimeGenerated), Reads = count() by ObjectId, AppId, CallerIpAddress, Id
//
// Supported, with KQL's semantics:
//
//   - Operators: where (alias filter) PREDICATE; extend NAME = EXPR, …; project COLUMN | NAME = EXPR, …;
//     summarize [NAME =] AGG, … [by COLUMN | NAME = EXPR, …] with the aggregations count(), dcount(x),
//     max(x), min(x) (group-by columns first, groups in order of appearance); take N and limit N;
//     order by / sort by EXPR [asc|desc] [nulls first|nulls last], … (desc by default).
//   - Logic: and, or, not(…), parentheses; null (a missing dynamic member) makes a comparison null,
//     and where keeps only rows whose predicate is true.
//   - Comparisons: == and != (case-sensitive on strings), =~ and !~ (case-insensitive),
//     contains, startswith, endswith, has (whole terms) and their !negations, case-insensitive, with
//     case-sensitive _cs variants (contains_cs…); in (…), !in (…), in~ (…), !in~ (…); <, <=, >, >=,
//     between (a .. b) and !between on numbers, datetimes, timespans and strings.
//   - Values: string literals ("…" or '…' with \ escapes, @"…" verbatim), integers, reals, timespans
//     (1d, 2h, 30m, 10s, 100ms, 10microsecond, 5tick), datetime(2026-01-01T00:00:00Z) (also
//     datetime(2026-01-01) and datetime("…"); zone-less values are UTC), true, false; + and - on
//     numbers, datetimes and timespans; unary minus.
//   - Functions: tostring, tolower, toupper, coalesce (first non-null, non-empty), ago (against the
//     Env's clock), now, todatetime, isempty, isnotempty, isnull, isnotnull, not.
//   - Dynamic values: member access a.b and a["x"]; a missing member is null.
//   - Multi-line queries and // comments.
//
// Anything else (other operators such as join or union, let statements, other functions) is an
// *Error naming the construct.
package kql

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Type is a column's KQL type, as the Log Analytics API names it.
type Type string

// The types this package produces.
const (
	String   Type = "string"
	Int      Type = "int"
	Long     Type = "long"
	Real     Type = "real"
	Bool     Type = "bool"
	Datetime Type = "datetime"
	Timespan Type = "timespan"
	Dynamic  Type = "dynamic"
)

// Column is a named, typed column.
type Column struct {
	Name string
	Type Type
}

// Table is a query's input or result. Values in Rows, by column type: string → string, int and
// long → int64, real → float64, bool → bool, datetime → time.Time, timespan → time.Duration,
// dynamic → nil or what encoding/json decodes into an any (map[string]any, []any, string, float64,
// bool) plus int64. Any column may hold nil (null).
type Table struct {
	Columns []Column
	Rows    [][]any
}

// Env is what a query runs against besides its table.
type Env struct {
	// Now is the time ago() and now() refer to.
	Now time.Time
}

// Error is a query the package cannot run: Kind is "SyntaxError" (it does not parse, or uses an
// unsupported construct) or "SemanticError" (an unknown table, column or function, or wrong types).
type Error struct {
	Kind    string
	Message string
}

func (e *Error) Error() string { return e.Kind + ": " + e.Message }

func syntaxErr(format string, args ...any) *Error {
	return &Error{Kind: "SyntaxError", Message: fmt.Sprintf(format, args...)}
}

func semanticErr(format string, args ...any) *Error {
	return &Error{Kind: "SemanticError", Message: fmt.Sprintf(format, args...)}
}

// Query is a parsed query.
type Query struct {
	table string
	ops   []operator
}

// Table is the name of the table the query reads.
func (q *Query) Table() string { return q.table }

// Run evaluates the query over in (which must be the table the query names) and returns the result.
// in is not modified.
func (q *Query) Run(in Table, env Env) (Table, error) {
	cur := Table{Columns: in.Columns, Rows: in.Rows}
	for _, op := range q.ops {
		next, err := op.apply(cur, env)
		if err != nil {
			return Table{}, err
		}
		cur = next
	}
	if cur.Rows == nil {
		cur.Rows = [][]any{}
	}
	return cur, nil
}

// FormatValue renders v, a value of type t, as the Log Analytics query API does in JSON: datetimes
// as RFC 3339 strings in UTC, timespans as [-][d.]hh:mm:ss[.fffffff], dynamic values as their JSON
// text, other values as themselves.
func FormatValue(v any, t Type) any {
	if v == nil {
		return nil
	}
	switch t {
	case Datetime:
		if tm, ok := v.(time.Time); ok {
			return tm.UTC().Format(time.RFC3339Nano)
		}
	case Timespan:
		if d, ok := v.(time.Duration); ok {
			return formatTimespan(d)
		}
	case Dynamic:
		if s, ok := v.(string); ok {
			return s
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil
		}
		return string(b)
	}
	return v
}

// formatTimespan renders d as KQL does: [-][d.]hh:mm:ss[.fffffff].
func formatTimespan(d time.Duration) string {
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	if days > 0 {
		b.WriteString(strconv.FormatInt(int64(days), 10))
		b.WriteByte('.')
	}
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	fmt.Fprintf(&b, "%02d:%02d:%02d", h, m, s)
	if frac := d % time.Second; frac > 0 {
		fmt.Fprintf(&b, ".%07d", frac/100) // ticks of 100 ns
	}
	return b.String()
}
