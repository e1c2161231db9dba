package kql

import (
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

type tokenKind int

const (
	tkEOF tokenKind = iota
	tkIdent
	tkString
	tkInt
	tkReal
	tkTimespan
	tkDatetime
	tkPunct
)

// token is one lexical element; line and col (1-based) locate it for error messages.
type token struct {
	kind      tokenKind
	text      string // identifier, punctuation or the literal's source text
	str       string // string literal value
	num       int64
	real      float64
	dur       time.Duration
	tm        time.Time
	null      bool // datetime(null)
	line, col int
}

func (t token) String() string {
	if t.kind == tkEOF {
		return "end of query"
	}
	return "'" + t.text + "'"
}

// punctuation, longest first.
var puncts = []string{"==", "!=", "=~", "!~", "<=", ">=", "..", "|", "(", ")", "[", "]", ",", ".", "=", "<", ">", "+", "-", "*", "/", "%", ";", "!", "~", "{", "}", ":"}

// timespan units of literals such as 1d or 100ms, longest first.
var spanUnits = []struct {
	name string
	d    time.Duration
}{
	{"microseconds", time.Microsecond}, {"microsecond", time.Microsecond}, {"milliseconds", time.Millisecond},
	{"millisecond", time.Millisecond}, {"minutes", time.Minute}, {"minute", time.Minute},
	{"seconds", time.Second}, {"second", time.Second}, {"hours", time.Hour}, {"hour", time.Hour},
	{"days", 24 * time.Hour}, {"day", 24 * time.Hour}, {"ticks", 100}, {"tick", 100},
	{"ms", time.Millisecond}, {"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second},
}

// datetime layouts accepted inside datetime(…); values without a zone are UTC.
var datetimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

func parseDatetime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range datetimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func isIdentStart(r byte) bool { return r == '_' || r == '$' || r < 0x80 && unicode.IsLetter(rune(r)) }
func isIdentPart(r byte) bool  { return isIdentStart(r) || r >= '0' && r <= '9' }

// lex splits a query into tokens.
func lex(src string) ([]token, error) {
	var toks []token
	line, lineStart := 1, 0
	i := 0
	for {
		// Skip blanks and // comments, counting lines.
		for i < len(src) {
			c := src[i]
			if c == '\n' {
				line++
				i++
				lineStart = i
				continue
			}
			if c == ' ' || c == '\t' || c == '\r' {
				i++
				continue
			}
			if c == '/' && i+1 < len(src) && src[i+1] == '/' {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				continue
			}
			break
		}
		col := i - lineStart + 1
		if i >= len(src) {
			toks = append(toks, token{kind: tkEOF, line: line, col: col})
			return toks, nil
		}
		c := src[i]
		start := i
		switch {
		case c == '"' || c == '\'' || (c == '@' && i+1 < len(src) && (src[i+1] == '"' || src[i+1] == '\'')):
			s, n, err := lexString(src[i:], line, col)
			if err != nil {
				return nil, err
			}
			i += n
			toks = append(toks, token{kind: tkString, text: src[start:i], str: s, line: line, col: col})
		case c >= '0' && c <= '9':
			t, n, err := lexNumber(src[i:], line, col)
			if err != nil {
				return nil, err
			}
			t.line, t.col = line, col
			i += n
			toks = append(toks, t)
		case isIdentStart(c):
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			word := src[start:i]
			// datetime(…) holds a literal that is not made of tokens: read it raw.
			if word == "datetime" {
				j := i
				for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
					j++
				}
				if j < len(src) && src[j] == '(' {
					end := strings.IndexByte(src[j:], ')')
					if end < 0 {
						return nil, syntaxErr("datetime( on line %d, column %d is not closed", line, col)
					}
					inner := strings.TrimSpace(src[j+1 : j+end])
					inner = strings.Trim(inner, `"'`)
					i = j + end + 1
					t := token{kind: tkDatetime, text: src[start:i], line: line, col: col}
					if inner == "null" {
						t.null = true
					} else if tm, ok := parseDatetime(inner); ok {
						t.tm = tm
					} else {
						return nil, syntaxErr("%s on line %d, column %d is not a datetime (use ISO 8601, e.g. datetime(2026-01-01T00:00:00Z))", t.text, line, col)
					}
					toks = append(toks, t)
					continue
				}
			}
			toks = append(toks, token{kind: tkIdent, text: word, line: line, col: col})
		default:
			matched := ""
			for _, p := range puncts {
				if strings.HasPrefix(src[i:], p) {
					matched = p
					break
				}
			}
			if matched == "" {
				return nil, syntaxErr("unexpected character %q on line %d, column %d", c, line, col)
			}
			i += len(matched)
			toks = append(toks, token{kind: tkPunct, text: matched, line: line, col: col})
		}
	}
}

// lexString reads a string literal at the start of s and returns its value and length.
func lexString(s string, line, col int) (string, int, error) {
	verbatim := s[0] == '@'
	i := 0
	if verbatim {
		i = 1
	}
	quote := s[i]
	i++
	var b strings.Builder
	for i < len(s) {
		c := s[i]
		switch {
		case c == quote:
			return b.String(), i + 1, nil
		case c == '\n':
			return "", 0, syntaxErr("string literal on line %d, column %d is not closed on its line", line, col)
		case c == '\\' && !verbatim && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\\', '"', '\'':
				b.WriteByte(e)
			default:
				return "", 0, syntaxErr("unknown escape \\%c in the string on line %d, column %d", e, line, col)
			}
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return "", 0, syntaxErr("string literal on line %d, column %d is not closed", line, col)
}

// lexNumber reads an integer, a real or a timespan literal at the start of s.
func lexNumber(s string, line, col int) (token, int, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	isReal := false
	if i+1 < len(s) && s[i] == '.' && s[i+1] >= '0' && s[i+1] <= '9' {
		isReal = true
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if j < len(s) && s[j] >= '0' && s[j] <= '9' {
			isReal = true
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			i = j
		}
	}
	numText := s[:i]
	// A unit right after the number makes a timespan.
	if i < len(s) && isIdentStart(s[i]) {
		j := i
		for j < len(s) && isIdentPart(s[j]) {
			j++
		}
		unit := s[i:j]
		for _, u := range spanUnits {
			if u.name == unit {
				f, err := strconv.ParseFloat(numText, 64)
				if err != nil || f*float64(u.d) > math.MaxInt64 {
					return token{}, 0, syntaxErr("timespan %s on line %d, column %d is out of range", s[:j], line, col)
				}
				return token{kind: tkTimespan, text: s[:j], dur: time.Duration(math.Round(f * float64(u.d)))}, j, nil
			}
		}
		return token{}, 0, syntaxErr("%s on line %d, column %d is neither a number nor a timespan (units: d, h, m, s, ms, microsecond, tick)", s[:j], line, col)
	}
	if isReal {
		f, err := strconv.ParseFloat(numText, 64)
		if err != nil {
			return token{}, 0, syntaxErr("%s on line %d, column %d is not a number", numText, line, col)
		}
		return token{kind: tkReal, text: numText, real: f}, i, nil
	}
	n, err := strconv.ParseInt(numText, 10, 64)
	if err != nil {
		return token{}, 0, syntaxErr("%s on line %d, column %d is out of range", numText, line, col)
	}
	return token{kind: tkInt, text: numText, num: n}, i, nil
}
