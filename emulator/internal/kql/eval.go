package kql

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// bound is an expression bound to the columns of a table: its static type and its evaluator.
type bound struct {
	t    Type
	eval func(row []any) any
}

// scope binds names for one operator.
type scope struct {
	op   string // operator name, for messages
	cols []Column
	env  Env
}

func (sc *scope) column(name string) int {
	for i, c := range sc.cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

func isNumeric(t Type) bool { return t == Int || t == Long || t == Real }

// comparable reports whether values of types a and b can be compared.
func comparableTypes(a, b Type) bool {
	switch {
	case a == Dynamic || b == Dynamic:
		return true
	case isNumeric(a) && isNumeric(b):
		return true
	}
	return a == b
}

func (sc *scope) bind(e expr) (bound, error) {
	switch e := e.(type) {
	case *litExpr:
		v := e.v
		return bound{t: e.t, eval: func([]any) any { return v }}, nil
	case *nameExpr:
		i := sc.column(e.name)
		if i < 0 {
			return bound{}, semanticErr("'%s' operator: Failed to resolve scalar expression named '%s' (line %d, column %d)", sc.op, e.name, e.tok.line, e.tok.col)
		}
		return bound{t: sc.cols[i].Type, eval: func(row []any) any { return row[i] }}, nil
	case *memberExpr:
		x, err := sc.bind(e.x)
		if err != nil {
			return bound{}, err
		}
		if x.t != Dynamic {
			return bound{}, semanticErr("member access .%s (line %d, column %d) needs a dynamic value, not %s", e.key, e.tok.line, e.tok.col, x.t)
		}
		key := e.key
		return bound{t: Dynamic, eval: func(row []any) any {
			if m, ok := x.eval(row).(map[string]any); ok {
				return m[key]
			}
			return nil
		}}, nil
	case *unaryExpr:
		x, err := sc.bind(e.x)
		if err != nil {
			return bound{}, err
		}
		if !isNumeric(x.t) && x.t != Timespan && x.t != Dynamic {
			return bound{}, semanticErr("unary minus (line %d, column %d) needs a number or a timespan, not %s", e.tok.line, e.tok.col, x.t)
		}
		return bound{t: x.t, eval: func(row []any) any { return negate(x.eval(row)) }}, nil
	case *binaryExpr:
		return sc.bindBinary(e)
	case *inExpr:
		x, err := sc.bind(e.x)
		if err != nil {
			return bound{}, err
		}
		list := make([]bound, len(e.list))
		for i, le := range e.list {
			if list[i], err = sc.bind(le); err != nil {
				return bound{}, err
			}
			if !comparableTypes(x.t, list[i].t) {
				return bound{}, semanticErr("'in' (line %d, column %d) compares %s with %s", e.tok.line, e.tok.col, x.t, list[i].t)
			}
		}
		neg, ci := e.neg, e.ci
		return bound{t: Bool, eval: func(row []any) any {
			v := x.eval(row)
			if v == nil {
				return nil
			}
			found := false
			for _, b := range list {
				w := b.eval(row)
				if ci {
					found = w != nil && strings.EqualFold(toString(v), toString(w))
				} else {
					found = equal(v, w) == true
				}
				if found {
					break
				}
			}
			return found != neg
		}}, nil
	case *betweenExpr:
		x, err := sc.bind(e.x)
		if err != nil {
			return bound{}, err
		}
		lo, err := sc.bind(e.lo)
		if err != nil {
			return bound{}, err
		}
		hi, err := sc.bind(e.hi)
		if err != nil {
			return bound{}, err
		}
		if !comparableTypes(x.t, lo.t) || !comparableTypes(x.t, hi.t) {
			return bound{}, semanticErr("'between' (line %d, column %d) compares %s with %s .. %s", e.tok.line, e.tok.col, x.t, lo.t, hi.t)
		}
		neg := e.neg
		return bound{t: Bool, eval: func(row []any) any {
			v := x.eval(row)
			c1, ok1 := compare(v, lo.eval(row))
			c2, ok2 := compare(v, hi.eval(row))
			if !ok1 || !ok2 {
				return nil
			}
			return (c1 >= 0 && c2 <= 0) != neg
		}}, nil
	case *callExpr:
		return sc.bindCall(e)
	}
	return bound{}, syntaxErr("unsupported expression at line %d, column %d", e.at().line, e.at().col)
}

func (sc *scope) bindBinary(e *binaryExpr) (bound, error) {
	l, err := sc.bind(e.l)
	if err != nil {
		return bound{}, err
	}
	r, err := sc.bind(e.r)
	if err != nil {
		return bound{}, err
	}
	where := fmt.Sprintf("'%s' (line %d, column %d)", e.op, e.tok.line, e.tok.col)
	switch e.op {
	case "and", "or":
		for _, b := range []bound{l, r} {
			if b.t != Bool && b.t != Dynamic {
				return bound{}, semanticErr("%s needs boolean operands, not %s", where, b.t)
			}
		}
		and := e.op == "and"
		return bound{t: Bool, eval: func(row []any) any {
			a, b := truth(l.eval(row)), truth(r.eval(row))
			if and {
				if a == false || b == false {
					return false
				}
				if a == nil || b == nil {
					return nil
				}
				return true
			}
			if a == true || b == true {
				return true
			}
			if a == nil || b == nil {
				return nil
			}
			return false
		}}, nil
	case "==", "!=":
		if !comparableTypes(l.t, r.t) {
			return bound{}, semanticErr("%s cannot compare %s with %s", where, l.t, r.t)
		}
		neg := e.op == "!="
		return bound{t: Bool, eval: func(row []any) any {
			eq := equal(l.eval(row), r.eval(row))
			if eq == nil {
				return nil
			}
			return eq.(bool) != neg
		}}, nil
	case "=~", "!~":
		neg := e.op == "!~"
		return bound{t: Bool, eval: func(row []any) any {
			a, b := l.eval(row), r.eval(row)
			if a == nil || b == nil {
				return nil
			}
			return strings.EqualFold(toString(a), toString(b)) != neg
		}}, nil
	case "<", "<=", ">", ">=":
		if !comparableTypes(l.t, r.t) {
			return bound{}, semanticErr("%s cannot compare %s with %s", where, l.t, r.t)
		}
		op := e.op
		return bound{t: Bool, eval: func(row []any) any {
			c, ok := compare(l.eval(row), r.eval(row))
			if !ok {
				return nil
			}
			switch op {
			case "<":
				return c < 0
			case "<=":
				return c <= 0
			case ">":
				return c > 0
			}
			return c >= 0
		}}, nil
	case "+", "-":
		t, ok := arithmeticType(e.op, l.t, r.t)
		if !ok {
			return bound{}, semanticErr("%s cannot apply to %s and %s", where, l.t, r.t)
		}
		minus := e.op == "-"
		return bound{t: t, eval: func(row []any) any { return arithmetic(minus, l.eval(row), r.eval(row)) }}, nil
	}
	op := strings.TrimPrefix(e.op, "!")
	if !stringOperators[op] {
		return bound{}, syntaxErr("the operator %s is not supported by the emulator", where)
	}
	neg := strings.HasPrefix(e.op, "!")
	cs := strings.HasSuffix(op, "_cs")
	op = strings.TrimSuffix(op, "_cs")
	return bound{t: Bool, eval: func(row []any) any {
		a, b := toString(l.eval(row)), toString(r.eval(row))
		if !cs {
			a, b = strings.ToLower(a), strings.ToLower(b)
		}
		var res bool
		switch op {
		case "contains":
			res = strings.Contains(a, b)
		case "startswith":
			res = strings.HasPrefix(a, b)
		case "endswith":
			res = strings.HasSuffix(a, b)
		case "has":
			res = hasTerm(a, b)
		}
		return res != neg
	}}, nil
}

// functions lists the scalar functions, for messages.
const functions = "tostring, tolower, toupper, coalesce, ago, now, todatetime, isempty, isnotempty, isnull, isnotnull, not"

func (sc *scope) bindCall(e *callExpr) (bound, error) {
	where := fmt.Sprintf("%s() (line %d, column %d)", e.fn, e.tok.line, e.tok.col)
	switch e.fn {
	case "count", "dcount", "max", "min":
		return bound{}, semanticErr("the aggregation %s is only allowed in summarize", where)
	}
	args := make([]bound, len(e.args))
	for i, a := range e.args {
		var err error
		if args[i], err = sc.bind(a); err != nil {
			return bound{}, err
		}
	}
	arity := func(min, max int) error {
		if len(args) < min || len(args) > max {
			if min == max {
				return semanticErr("%s takes %d argument(s), not %d", where, min, len(args))
			}
			return semanticErr("%s takes %d to %d arguments, not %d", where, min, max, len(args))
		}
		return nil
	}
	switch e.fn {
	case "tostring", "tolower", "toupper":
		if err := arity(1, 1); err != nil {
			return bound{}, err
		}
		x := args[0]
		conv := map[string]func(string) string{"tostring": func(s string) string { return s }, "tolower": strings.ToLower, "toupper": strings.ToUpper}[e.fn]
		return bound{t: String, eval: func(row []any) any { return conv(toString(x.eval(row))) }}, nil
	case "coalesce":
		if err := arity(2, 64); err != nil {
			return bound{}, err
		}
		return bound{t: args[0].t, eval: func(row []any) any {
			for _, a := range args {
				v := a.eval(row)
				if s, ok := v.(string); v != nil && (!ok || s != "") {
					return v
				}
			}
			return nil
		}}, nil
	case "ago":
		if err := arity(1, 1); err != nil {
			return bound{}, err
		}
		if args[0].t != Timespan {
			return bound{}, semanticErr("%s needs a timespan such as 1d or 2h, not %s", where, args[0].t)
		}
		now, x := sc.env.Now, args[0]
		return bound{t: Datetime, eval: func(row []any) any {
			d, ok := x.eval(row).(time.Duration)
			if !ok {
				return nil
			}
			return now.Add(-d).UTC()
		}}, nil
	case "now":
		if err := arity(0, 1); err != nil {
			return bound{}, err
		}
		now := sc.env.Now.UTC()
		if len(args) == 0 {
			return bound{t: Datetime, eval: func([]any) any { return now }}, nil
		}
		if args[0].t != Timespan {
			return bound{}, semanticErr("%s needs a timespan offset, not %s", where, args[0].t)
		}
		x := args[0]
		return bound{t: Datetime, eval: func(row []any) any {
			d, ok := x.eval(row).(time.Duration)
			if !ok {
				return nil
			}
			return now.Add(d)
		}}, nil
	case "todatetime":
		if err := arity(1, 1); err != nil {
			return bound{}, err
		}
		x := args[0]
		return bound{t: Datetime, eval: func(row []any) any {
			switch v := x.eval(row).(type) {
			case time.Time:
				return v
			case string:
				if t, ok := parseDatetime(v); ok {
					return t
				}
			}
			return nil
		}}, nil
	case "isempty", "isnotempty", "isnull", "isnotnull":
		if err := arity(1, 1); err != nil {
			return bound{}, err
		}
		x := args[0]
		emptyToo := e.fn == "isempty" || e.fn == "isnotempty"
		neg := strings.HasPrefix(e.fn, "isnot")
		return bound{t: Bool, eval: func(row []any) any {
			v := x.eval(row)
			s, isStr := v.(string)
			return (v == nil || emptyToo && isStr && s == "") != neg
		}}, nil
	case "not":
		if err := arity(1, 1); err != nil {
			return bound{}, err
		}
		if args[0].t != Bool && args[0].t != Dynamic {
			return bound{}, semanticErr("%s needs a boolean, not %s", where, args[0].t)
		}
		x := args[0]
		return bound{t: Bool, eval: func(row []any) any {
			b := truth(x.eval(row))
			if b == nil {
				return nil
			}
			return !b.(bool)
		}}, nil
	}
	return bound{}, syntaxErr("the function %s is not supported by the emulator; supported: %s (and count, dcount, max, min in summarize)", where, functions)
}

// truth is v as a three-valued boolean: true, false or nil.
func truth(v any) any {
	if b, ok := v.(bool); ok {
		return b
	}
	return nil
}

// toString converts a value as tostring() does; null is "".
func toString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		return v.UTC().Format(time.RFC3339Nano)
	case time.Duration:
		return formatTimespan(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// number returns v as a float64, and whether it is a number.
func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}

// equal is ==: nil when either side is null, else whether the values are equal (strings
// case-sensitively, numbers numerically).
func equal(a, b any) any {
	if a == nil || b == nil {
		return nil
	}
	switch a := a.(type) {
	case string:
		bs, ok := b.(string)
		return ok && a == bs
	case bool:
		bb, ok := b.(bool)
		return ok && a == bb
	case time.Time:
		bt, ok := b.(time.Time)
		return ok && a.Equal(bt)
	case time.Duration:
		bd, ok := b.(time.Duration)
		return ok && a == bd
	}
	if x, ok := number(a); ok {
		y, ok := number(b)
		if ia, oka := a.(int64); oka {
			if ib, okb := b.(int64); okb {
				return ia == ib
			}
		}
		return ok && x == y
	}
	return toString(a) == toString(b)
}

// compare orders a and b; ok is false when either is null or they are of incomparable kinds.
func compare(a, b any) (int, bool) {
	if a == nil || b == nil {
		return 0, false
	}
	switch a := a.(type) {
	case string:
		if bs, ok := b.(string); ok {
			return strings.Compare(a, bs), true
		}
		return 0, false
	case time.Time:
		if bt, ok := b.(time.Time); ok {
			return a.Compare(bt), true
		}
		return 0, false
	case time.Duration:
		if bd, ok := b.(time.Duration); ok {
			return cmpOrdered(a, bd), true
		}
		return 0, false
	case bool:
		if bb, ok := b.(bool); ok {
			return cmpOrdered(boolInt(a), boolInt(bb)), true
		}
		return 0, false
	}
	if ia, ok := a.(int64); ok {
		if ib, ok := b.(int64); ok {
			return cmpOrdered(ia, ib), true
		}
	}
	x, ok1 := number(a)
	y, ok2 := number(b)
	if !ok1 || !ok2 || math.IsNaN(x) || math.IsNaN(y) {
		return 0, false
	}
	return cmpOrdered(x, y), true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func cmpOrdered[T int | int64 | float64 | time.Duration](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func negate(v any) any {
	switch v := v.(type) {
	case int64:
		return -v
	case float64:
		return -v
	case time.Duration:
		return -v
	}
	return nil
}

// arithmeticType is the type of l op r for + and -, and whether the operation is allowed.
func arithmeticType(op string, l, r Type) (Type, bool) {
	switch {
	case l == Dynamic || r == Dynamic:
		return Dynamic, true
	case l == Datetime && r == Timespan:
		return Datetime, true
	case l == Timespan && r == Datetime && op == "+":
		return Datetime, true
	case l == Datetime && r == Datetime && op == "-":
		return Timespan, true
	case l == Timespan && r == Timespan:
		return Timespan, true
	case isNumeric(l) && isNumeric(r):
		if l == Real || r == Real {
			return Real, true
		}
		return Long, true
	}
	return "", false
}

func arithmetic(minus bool, a, b any) any {
	if a == nil || b == nil {
		return nil
	}
	sign := int64(1)
	if minus {
		sign = -1
	}
	switch x := a.(type) {
	case time.Time:
		switch y := b.(type) {
		case time.Duration:
			return x.Add(time.Duration(sign) * y)
		case time.Time:
			if minus {
				return x.Sub(y)
			}
		}
		return nil
	case time.Duration:
		switch y := b.(type) {
		case time.Duration:
			return x + time.Duration(sign)*y
		case time.Time:
			if !minus {
				return y.Add(x)
			}
		}
		return nil
	case int64:
		if y, ok := b.(int64); ok {
			return x + sign*y
		}
	}
	x, ok1 := number(a)
	y, ok2 := number(b)
	if !ok1 || !ok2 {
		return nil
	}
	return x + float64(sign)*y
}

// hasTerm reports whether needle occurs in s as a whole term: not preceded or followed by a letter or
// digit where needle itself begins or ends with one (KQL's has, on lower-cased strings).
func hasTerm(s, needle string) bool {
	if needle == "" {
		return true
	}
	isAlnum := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }
	first, _ := utf8.DecodeRuneInString(needle)
	last, _ := utf8.DecodeLastRuneInString(needle)
	for from := 0; from <= len(s)-len(needle); {
		i := strings.Index(s[from:], needle)
		if i < 0 {
			return false
		}
		i += from
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[i+len(needle):])
		okBefore := i == 0 || !isAlnum(first) || !isAlnum(before)
		okAfter := i+len(needle) == len(s) || !isAlnum(last) || !isAlnum(after)
		if okBefore && okAfter {
			return true
		}
		from = i + 1
	}
	return false
}

// ---- operators ----

func (o *whereOp) apply(in Table, env Env) (Table, error) {
	sc := &scope{op: "where", cols: in.Columns, env: env}
	pred, err := sc.bind(o.pred)
	if err != nil {
		return Table{}, err
	}
	if pred.t != Bool && pred.t != Dynamic {
		return Table{}, semanticErr("'where' needs a boolean predicate, not %s", pred.t)
	}
	out := Table{Columns: in.Columns}
	for _, row := range in.Rows {
		if pred.eval(row) == true {
			out.Rows = append(out.Rows, row)
		}
	}
	return out, nil
}

func (o *extendOp) apply(in Table, env Env) (Table, error) {
	cols := slices.Clone(in.Columns)
	rows := make([][]any, len(in.Rows))
	for i, r := range in.Rows {
		rows[i] = slices.Clone(r)
	}
	for _, item := range o.items {
		sc := &scope{op: "extend", cols: cols, env: env}
		b, err := sc.bind(item.e)
		if err != nil {
			return Table{}, err
		}
		idx := sc.column(item.name)
		if idx < 0 {
			cols = append(cols, Column{Name: item.name, Type: b.t})
		} else {
			cols[idx].Type = b.t
		}
		for i, row := range rows {
			v := b.eval(row)
			if idx < 0 {
				rows[i] = append(row, v)
			} else {
				row[idx] = v
			}
		}
	}
	return Table{Columns: cols, Rows: rows}, nil
}

// outputName is an item's column name: its NAME, else the column it names.
func outputName(op string, a assignment) (string, error) {
	if a.name != "" {
		return a.name, nil
	}
	if n, ok := a.e.(*nameExpr); ok {
		return n.name, nil
	}
	t := a.e.at()
	return "", syntaxErr("'%s': give the expression at line %d, column %d a name (NAME = expression)", op, t.line, t.col)
}

func (o *projectOp) apply(in Table, env Env) (Table, error) {
	sc := &scope{op: "project", cols: in.Columns, env: env}
	var cols []Column
	var evals []bound
	for _, item := range o.items {
		b, err := sc.bind(item.e)
		if err != nil {
			return Table{}, err
		}
		name, err := outputName("project", item)
		if err != nil {
			return Table{}, err
		}
		if slices.ContainsFunc(cols, func(c Column) bool { return c.Name == name }) {
			return Table{}, semanticErr("'project': the column '%s' is named twice", name)
		}
		cols = append(cols, Column{Name: name, Type: b.t})
		evals = append(evals, b)
	}
	out := Table{Columns: cols, Rows: make([][]any, 0, len(in.Rows))}
	for _, row := range in.Rows {
		r := make([]any, len(evals))
		for i, b := range evals {
			r[i] = b.eval(row)
		}
		out.Rows = append(out.Rows, r)
	}
	return out, nil
}

// aggregation is one bound aggregation of a summarize.
type aggregation struct {
	fn  string
	arg bound // unused for count
}

// aggState accumulates one aggregation for one group.
type aggState struct {
	n    int64
	seen map[string]bool
	best any
}

func (a *aggregation) add(st *aggState, row []any) {
	if a.fn == "count" {
		st.n++
		return
	}
	v := a.arg.eval(row)
	if v == nil {
		return
	}
	switch a.fn {
	case "dcount":
		if st.seen == nil {
			st.seen = map[string]bool{}
		}
		st.seen[groupKey([]any{v})] = true
	case "max", "min":
		if st.best == nil {
			st.best = v
			return
		}
		if c, ok := compare(v, st.best); ok && (a.fn == "max" && c > 0 || a.fn == "min" && c < 0) {
			st.best = v
		}
	}
}

func (a *aggregation) result(st *aggState) any {
	switch a.fn {
	case "count":
		return st.n
	case "dcount":
		return int64(len(st.seen))
	}
	return st.best
}

// groupKey encodes values as a map key, telling types apart.
func groupKey(vals []any) string {
	var b strings.Builder
	for _, v := range vals {
		var s string
		switch v := v.(type) {
		case nil:
			s = "n"
		case string:
			s = "s" + v
		case time.Time:
			s = "t" + strconv.FormatInt(v.UnixNano(), 10)
		case time.Duration:
			s = "d" + strconv.FormatInt(int64(v), 10)
		case bool:
			s = "b" + strconv.FormatBool(v)
		default:
			if f, ok := number(v); ok {
				s = "f" + strconv.FormatFloat(f, 'g', -1, 64)
			} else {
				s = "j" + toString(v)
			}
		}
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	return b.String()
}

func (o *summarizeOp) apply(in Table, env Env) (Table, error) {
	sc := &scope{op: "summarize", cols: in.Columns, env: env}
	var cols []Column
	addCol := func(name string, t Type) error {
		if slices.ContainsFunc(cols, func(c Column) bool { return c.Name == name }) {
			return semanticErr("'summarize': the column '%s' is named twice", name)
		}
		cols = append(cols, Column{Name: name, Type: t})
		return nil
	}
	var by []bound
	for _, item := range o.by {
		b, err := sc.bind(item.e)
		if err != nil {
			return Table{}, err
		}
		name, err := outputName("summarize", item)
		if err != nil {
			return Table{}, err
		}
		if err := addCol(name, b.t); err != nil {
			return Table{}, err
		}
		by = append(by, b)
	}
	var aggs []*aggregation
	for _, item := range o.aggs {
		call, ok := item.e.(*callExpr)
		if !ok || (call.fn != "count" && call.fn != "dcount" && call.fn != "max" && call.fn != "min") {
			t := item.e.at()
			what := "this expression"
			if ok {
				what = "'" + call.fn + "()'"
			}
			return Table{}, syntaxErr("'summarize' at line %d, column %d: %s is not supported; the emulator supports the aggregations count(), dcount(), max() and min()", t.line, t.col, what)
		}
		a := &aggregation{fn: call.fn}
		name := item.name
		t := Long
		if call.fn == "count" {
			if len(call.args) != 0 {
				return Table{}, semanticErr("count() takes no argument in the emulator (line %d)", call.tok.line)
			}
			if name == "" {
				name = "count_"
			}
		} else {
			if len(call.args) != 1 {
				return Table{}, semanticErr("%s() takes one argument (line %d)", call.fn, call.tok.line)
			}
			b, err := sc.bind(call.args[0])
			if err != nil {
				return Table{}, err
			}
			a.arg = b
			if call.fn != "dcount" {
				t = b.t
			}
			if name == "" {
				name = call.fn + "_"
				if n, ok := call.args[0].(*nameExpr); ok {
					name += n.name
				}
			}
		}
		if err := addCol(name, t); err != nil {
			return Table{}, err
		}
		aggs = append(aggs, a)
	}

	type group struct {
		keys   []any
		states []aggState
	}
	groups := map[string]*group{}
	var order []*group
	for _, row := range in.Rows {
		keys := make([]any, len(by))
		for i, b := range by {
			keys[i] = b.eval(row)
		}
		k := groupKey(keys)
		g := groups[k]
		if g == nil {
			g = &group{keys: keys, states: make([]aggState, len(aggs))}
			groups[k] = g
			order = append(order, g)
		}
		for i, a := range aggs {
			a.add(&g.states[i], row)
		}
	}
	if len(by) == 0 && len(order) == 0 {
		order = append(order, &group{states: make([]aggState, len(aggs))})
	}
	out := Table{Columns: cols, Rows: make([][]any, 0, len(order))}
	for _, g := range order {
		row := slices.Clone(g.keys)
		for i, a := range aggs {
			row = append(row, a.result(&g.states[i]))
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

func (o *takeOp) apply(in Table, _ Env) (Table, error) {
	n := min(o.n, int64(len(in.Rows)))
	return Table{Columns: in.Columns, Rows: in.Rows[:n]}, nil
}

func (o *orderOp) apply(in Table, env Env) (Table, error) {
	sc := &scope{op: "order by", cols: in.Columns, env: env}
	keys := make([]bound, len(o.keys))
	for i, k := range o.keys {
		b, err := sc.bind(k.e)
		if err != nil {
			return Table{}, err
		}
		keys[i] = b
	}
	type keyed struct {
		vals []any
		row  []any
	}
	rows := make([]keyed, len(in.Rows))
	for i, row := range in.Rows {
		vals := make([]any, len(keys))
		for j, k := range keys {
			vals[j] = k.eval(row)
		}
		rows[i] = keyed{vals, row}
	}
	slices.SortStableFunc(rows, func(a, b keyed) int {
		for j, k := range o.keys {
			x, y := a.vals[j], b.vals[j]
			switch {
			case x == nil && y == nil:
				continue
			case x == nil || y == nil:
				if (x == nil) == k.nullsFirst {
					return -1
				}
				return 1
			}
			c, ok := compare(x, y)
			if !ok || c == 0 {
				continue
			}
			if k.desc {
				return -c
			}
			return c
		}
		return 0
	})
	out := Table{Columns: in.Columns, Rows: make([][]any, len(rows))}
	for i, r := range rows {
		out.Rows[i] = r.row
	}
	return out, nil
}
