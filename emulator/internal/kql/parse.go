package kql

import "strings"

// Expressions, as parsed (before names are bound to columns).
type (
	expr interface{ at() token }

	litExpr struct {
		tok token
		v   any
		t   Type
	}
	nameExpr struct {
		tok  token
		name string
	}
	memberExpr struct {
		tok token
		x   expr
		key string
	}
	callExpr struct {
		tok  token
		fn   string
		args []expr
	}
	unaryExpr struct {
		tok token
		op  string
		x   expr
	}
	binaryExpr struct {
		tok  token
		op   string
		l, r expr
	}
	inExpr struct {
		tok     token
		x       expr
		list    []expr
		neg, ci bool
	}
	betweenExpr struct {
		tok       token
		x, lo, hi expr
		neg       bool
	}
)

func (e *litExpr) at() token     { return e.tok }
func (e *nameExpr) at() token    { return e.tok }
func (e *memberExpr) at() token  { return e.tok }
func (e *callExpr) at() token    { return e.tok }
func (e *unaryExpr) at() token   { return e.tok }
func (e *binaryExpr) at() token  { return e.tok }
func (e *inExpr) at() token      { return e.tok }
func (e *betweenExpr) at() token { return e.tok }

// Operators.
type (
	operator interface {
		apply(in Table, env Env) (Table, error)
	}
	// assignment is NAME = EXPR, or a bare expression (name "").
	assignment struct {
		name string
		e    expr
	}
	whereOp     struct{ pred expr }
	extendOp    struct{ items []assignment }
	projectOp   struct{ items []assignment }
	summarizeOp struct{ aggs, by []assignment }
	takeOp      struct{ n int64 }
	sortKey     struct {
		e          expr
		desc       bool
		nullsFirst bool
	}
	orderOp struct{ keys []sortKey }
)

// supportedOperators names what the parser understands, for error messages.
const supportedOperators = "where, extend, project, summarize, take, limit, order by, sort by"

// stringOperators are the binary string predicates; a leading "!" negates, "_cs" makes them
// case-sensitive.
var stringOperators = map[string]bool{"contains": true, "startswith": true, "endswith": true, "has": true,
	"contains_cs": true, "startswith_cs": true, "endswith_cs": true, "has_cs": true}

type parser struct {
	toks []token
	pos  int
}

// Parse parses a query of the supported subset (see the package comment).
func Parse(query string) (*Query, error) {
	toks, err := lex(query)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	return p.query()
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) peekN(n int) token {
	if p.pos+n < len(p.toks) {
		return p.toks[p.pos+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.pos]
	if t.kind != tkEOF {
		p.pos++
	}
	return t
}

func (p *parser) isPunct(s string) bool { t := p.peek(); return t.kind == tkPunct && t.text == s }
func (p *parser) isWord(s string) bool  { t := p.peek(); return t.kind == tkIdent && t.text == s }

func (p *parser) expectPunct(s, what string) (token, error) {
	if !p.isPunct(s) {
		return token{}, p.unexpected("'" + s + "' " + what)
	}
	return p.next(), nil
}

// unexpected reports the current token as a syntax error.
func (p *parser) unexpected(want string) *Error {
	t := p.peek()
	return syntaxErr("query could not be parsed at %s on line %d, column %d: expected %s", t, t.line, t.col, want)
}

func (p *parser) query() (*Query, error) {
	t := p.peek()
	if t.kind != tkIdent {
		return nil, p.unexpected("a table name")
	}
	switch t.text {
	case "let", "set", "declare", "alias", "pattern", "restrict":
		return nil, syntaxErr("'%s' statements are not supported by the emulator: start the query with the table name (AZKVAuditLogs)", t.text)
	case "search", "union", "find", "print", "range", "datatable", "externaldata", "evaluate":
		return nil, syntaxErr("'%s' is not supported by the emulator: start the query with the table name (AZKVAuditLogs)", t.text)
	}
	p.next()
	q := &Query{table: t.text}
	for !p.isPunct(";") && p.peek().kind != tkEOF {
		if _, err := p.expectPunct("|", "before an operator"); err != nil {
			return nil, err
		}
		op, err := p.operator()
		if err != nil {
			return nil, err
		}
		q.ops = append(q.ops, op)
	}
	if p.isPunct(";") {
		p.next()
		if p.peek().kind != tkEOF {
			return nil, syntaxErr("several statements (';' on line %d) are not supported by the emulator", p.peek().line)
		}
	}
	return q, nil
}

func (p *parser) operator() (operator, error) {
	t := p.peek()
	if t.kind != tkIdent {
		return nil, p.unexpected("an operator (" + supportedOperators + ")")
	}
	name := t.text
	p.next()
	switch name {
	case "where", "filter":
		e, err := p.expression()
		if err != nil {
			return nil, err
		}
		return &whereOp{pred: e}, nil
	case "extend":
		items, err := p.assignments(true)
		if err != nil {
			return nil, err
		}
		return &extendOp{items: items}, nil
	case "project":
		items, err := p.assignments(false)
		if err != nil {
			return nil, err
		}
		return &projectOp{items: items}, nil
	case "summarize":
		op := &summarizeOp{}
		if !p.isWord("by") {
			aggs, err := p.assignments(false)
			if err != nil {
				return nil, err
			}
			op.aggs = aggs
		}
		if p.isWord("by") {
			p.next()
			by, err := p.assignments(false)
			if err != nil {
				return nil, err
			}
			op.by = by
		}
		if len(op.aggs) == 0 && len(op.by) == 0 {
			return nil, p.unexpected("aggregations or 'by'")
		}
		return op, nil
	case "take", "limit":
		n := p.peek()
		if n.kind != tkInt {
			return nil, p.unexpected("the number of rows after '" + name + "'")
		}
		p.next()
		return &takeOp{n: n.num}, nil
	case "order", "sort":
		if !p.isWord("by") {
			return nil, p.unexpected("'by' after '" + name + "'")
		}
		p.next()
		op := &orderOp{}
		for {
			e, err := p.expression()
			if err != nil {
				return nil, err
			}
			k := sortKey{e: e, desc: true}
			if p.isWord("asc") {
				p.next()
				k.desc = false
			} else if p.isWord("desc") {
				p.next()
			}
			// KQL: nulls last when descending, first when ascending, unless told.
			k.nullsFirst = !k.desc
			if p.isWord("nulls") {
				p.next()
				switch {
				case p.isWord("first"):
					k.nullsFirst = true
				case p.isWord("last"):
					k.nullsFirst = false
				default:
					return nil, p.unexpected("'first' or 'last' after 'nulls'")
				}
				p.next()
			}
			op.keys = append(op.keys, k)
			if !p.isPunct(",") {
				return op, nil
			}
			p.next()
		}
	}
	return nil, syntaxErr("the query operator '%s' (line %d, column %d) is not supported by the emulator; supported: %s", name, t.line, t.col, supportedOperators)
}

// assignments parses NAME = EXPR or EXPR items separated by commas; named requires the NAME.
func (p *parser) assignments(named bool) ([]assignment, error) {
	var out []assignment
	for {
		var a assignment
		if t := p.peek(); t.kind == tkIdent && p.peekN(1).kind == tkPunct && p.peekN(1).text == "=" {
			a.name = t.text
			p.next()
			p.next()
		} else if named {
			return nil, p.unexpected("NAME = expression")
		}
		e, err := p.expression()
		if err != nil {
			return nil, err
		}
		a.e = e
		out = append(out, a)
		if !p.isPunct(",") {
			return out, nil
		}
		p.next()
	}
}

// Expression grammar, lowest precedence first:
//
//	or:         and ("or" and)*
//	and:        comparison ("and" comparison)*
//	comparison: additive [cmp-op additive | in-op "(" list ")" | ["!"]"between" "(" additive ".." additive ")"]
//	additive:   multiplicative (("+"|"-") multiplicative)*
//	unary:      "-" unary | postfix
//	postfix:    primary ("." NAME | "[" STRING "]")*
func (p *parser) expression() (expr, error) { return p.or() }

func (p *parser) or() (expr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		t := p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &binaryExpr{tok: t, op: "or", l: l, r: r}
	}
	return l, nil
}

func (p *parser) and() (expr, error) {
	l, err := p.comparison()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		t := p.next()
		r, err := p.comparison()
		if err != nil {
			return nil, err
		}
		l = &binaryExpr{tok: t, op: "and", l: l, r: r}
	}
	return l, nil
}

func (p *parser) comparison() (expr, error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	neg := false
	word := ""
	switch {
	case t.kind == tkPunct && (t.text == "==" || t.text == "!=" || t.text == "=~" || t.text == "!~" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
		p.next()
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		return &binaryExpr{tok: t, op: t.text, l: l, r: r}, nil
	case t.kind == tkPunct && t.text == "!" && p.peekN(1).kind == tkIdent:
		neg = true
		word = p.peekN(1).text
	case t.kind == tkIdent:
		word = t.text
	default:
		return l, nil
	}
	switch {
	case stringOperators[word]:
		if neg {
			p.next()
		}
		p.next()
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		op := word
		if neg {
			op = "!" + word
		}
		return &binaryExpr{tok: t, op: op, l: l, r: r}, nil
	case word == "in":
		if neg {
			p.next()
		}
		p.next()
		e := &inExpr{tok: t, x: l, neg: neg}
		if p.isPunct("~") {
			p.next()
			e.ci = true
		}
		if _, err := p.expectPunct("(", "after 'in'"); err != nil {
			return nil, err
		}
		for !p.isPunct(")") {
			v, err := p.additive()
			if err != nil {
				return nil, err
			}
			e.list = append(e.list, v)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
		if _, err := p.expectPunct(")", "closing the 'in' list"); err != nil {
			return nil, err
		}
		return e, nil
	case word == "between":
		if neg {
			p.next()
		}
		p.next()
		if _, err := p.expectPunct("(", "after 'between'"); err != nil {
			return nil, err
		}
		lo, err := p.additive()
		if err != nil {
			return nil, err
		}
		if _, err := p.expectPunct("..", "between the bounds of 'between'"); err != nil {
			return nil, err
		}
		hi, err := p.additive()
		if err != nil {
			return nil, err
		}
		if _, err := p.expectPunct(")", "closing 'between'"); err != nil {
			return nil, err
		}
		return &betweenExpr{tok: t, x: l, lo: lo, hi: hi, neg: neg}, nil
	case word == "and" || word == "or" || word == "by" || word == "asc" || word == "desc" || word == "nulls":
		return l, nil
	}
	if neg || t.kind == tkIdent {
		if strings.HasSuffix(word, "_cs") || strings.HasPrefix(word, "has") || strings.HasPrefix(word, "match") || strings.HasPrefix(word, "contains") ||
			strings.HasPrefix(word, "startswith") || strings.HasPrefix(word, "endswith") || strings.HasPrefix(word, "matches") || word == "like" {
			return nil, syntaxErr("the operator '%s' (line %d, column %d) is not supported by the emulator; supported: ==, !=, =~, !~, contains, startswith, endswith, has (and their ! and _cs forms), in, in~, <, <=, >, >=, between", word, t.line, t.col)
		}
	}
	return nil, p.unexpected("an operator such as and, or, ==, contains, or '|'")
}

func (p *parser) additive() (expr, error) {
	l, err := p.multiplicative()
	if err != nil {
		return nil, err
	}
	for p.isPunct("+") || p.isPunct("-") {
		t := p.next()
		r, err := p.multiplicative()
		if err != nil {
			return nil, err
		}
		l = &binaryExpr{tok: t, op: t.text, l: l, r: r}
	}
	return l, nil
}

func (p *parser) multiplicative() (expr, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	if p.isPunct("*") || p.isPunct("/") || p.isPunct("%") {
		t := p.peek()
		return nil, syntaxErr("the arithmetic operator '%s' (line %d, column %d) is not supported by the emulator; only + and - are", t.text, t.line, t.col)
	}
	return l, nil
}

func (p *parser) unary() (expr, error) {
	if p.isPunct("-") {
		t := p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &unaryExpr{tok: t, op: "-", x: x}, nil
	}
	return p.postfix()
}

func (p *parser) postfix() (expr, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isPunct("."):
			t := p.next()
			n := p.peek()
			if n.kind != tkIdent {
				return nil, p.unexpected("a member name after '.'")
			}
			p.next()
			x = &memberExpr{tok: t, x: x, key: n.text}
		case p.isPunct("["):
			t := p.next()
			k := p.peek()
			if k.kind != tkString {
				return nil, p.unexpected("a quoted member name in [...]")
			}
			p.next()
			if _, err := p.expectPunct("]", "after the member name"); err != nil {
				return nil, err
			}
			x = &memberExpr{tok: t, x: x, key: k.str}
		default:
			return x, nil
		}
	}
}

func (p *parser) primary() (expr, error) {
	t := p.peek()
	switch t.kind {
	case tkString:
		p.next()
		return &litExpr{tok: t, v: t.str, t: String}, nil
	case tkInt:
		p.next()
		return &litExpr{tok: t, v: t.num, t: Long}, nil
	case tkReal:
		p.next()
		return &litExpr{tok: t, v: t.real, t: Real}, nil
	case tkTimespan:
		p.next()
		return &litExpr{tok: t, v: t.dur, t: Timespan}, nil
	case tkDatetime:
		p.next()
		if t.null {
			return &litExpr{tok: t, v: nil, t: Datetime}, nil
		}
		return &litExpr{tok: t, v: t.tm, t: Datetime}, nil
	case tkPunct:
		if t.text == "(" {
			p.next()
			e, err := p.expression()
			if err != nil {
				return nil, err
			}
			if _, err := p.expectPunct(")", "closing '('"); err != nil {
				return nil, err
			}
			return e, nil
		}
	case tkIdent:
		p.next()
		switch t.text {
		case "true", "false":
			return &litExpr{tok: t, v: t.text == "true", t: Bool}, nil
		}
		if p.isPunct("(") {
			p.next()
			c := &callExpr{tok: t, fn: t.text}
			for !p.isPunct(")") {
				a, err := p.expression()
				if err != nil {
					return nil, err
				}
				c.args = append(c.args, a)
				if !p.isPunct(",") {
					break
				}
				p.next()
			}
			if _, err := p.expectPunct(")", "closing the arguments of "+t.text+"()"); err != nil {
				return nil, err
			}
			return c, nil
		}
		return &nameExpr{tok: t, name: t.text}, nil
	}
	return nil, p.unexpected("a value, a column name or a function call")
}
