package infra

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// The module graph has YAML libraries only as indirect dependencies, and importing one would change
// go.mod, so the workflow is read with this strict reader of the YAML subset GitHub workflows need:
// block mappings and sequences, plain and quoted scalars, literal/folded block scalars, flow sequences
// of scalars, comments. Anything outside that subset (anchors, aliases, tags, flow mappings, tabs,
// duplicate keys) is an error, so the workflow cannot drift into something this reader misreads.
// actionlint, when installed, checks the same file against GitHub's schema (workflow_test.go).

type yamlLine struct {
	num    int
	indent int
	text   string // without indentation
	blank  bool   // empty or comment-only
}

type yamlReader struct {
	lines []yamlLine
	pos   int
}

// parseYAML reads one document of the subset into map[string]any, []any and string values.
func parseYAML(src string) (any, error) {
	r := &yamlReader{}
	for i, raw := range strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimLeft(raw, " ")
		if strings.HasPrefix(trimmed, "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		t := strings.TrimSpace(raw)
		r.lines = append(r.lines, yamlLine{num: i + 1, indent: len(raw) - len(trimmed), text: strings.TrimRight(trimmed, " "),
			blank: t == "" || strings.HasPrefix(t, "#")})
	}
	r.skipBlank()
	if r.pos < len(r.lines) && r.lines[r.pos].text == "---" {
		r.pos++
		r.skipBlank()
	}
	if r.pos >= len(r.lines) {
		return nil, fmt.Errorf("empty document")
	}
	v, err := r.block(r.lines[r.pos].indent)
	if err != nil {
		return nil, err
	}
	r.skipBlank()
	if r.pos < len(r.lines) {
		return nil, fmt.Errorf("line %d: unexpected indentation", r.lines[r.pos].num)
	}
	return v, nil
}

func (r *yamlReader) skipBlank() {
	for r.pos < len(r.lines) && r.lines[r.pos].blank {
		r.pos++
	}
}

// block reads the mapping or sequence whose entries start at column indent.
func (r *yamlReader) block(indent int) (any, error) {
	l := r.lines[r.pos]
	if l.text == "-" || strings.HasPrefix(l.text, "- ") {
		return r.sequence(indent)
	}
	return r.mapping(indent)
}

func (r *yamlReader) sequence(indent int) ([]any, error) {
	var out []any
	for r.skipBlank(); r.pos < len(r.lines) && r.lines[r.pos].indent == indent; r.skipBlank() {
		l := r.lines[r.pos]
		if l.text != "-" && !strings.HasPrefix(l.text, "- ") {
			return nil, fmt.Errorf("line %d: want a sequence item", l.num)
		}
		rest := strings.TrimSpace(strings.TrimPrefix(l.text, "-"))
		switch {
		case rest == "":
			r.pos++
			v, err := r.nested(indent)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		case isMappingEntry(rest):
			// "- key: value" starts a mapping whose entries sit where "key" is.
			col := indent + (len(l.text) - len(strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")))
			r.lines[r.pos] = yamlLine{num: l.num, indent: col, text: rest}
			v, err := r.mapping(col)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		default:
			v, err := scalar(rest, l.num)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			r.pos++
		}
	}
	if r.pos < len(r.lines) && r.lines[r.pos].indent > indent {
		return nil, fmt.Errorf("line %d: unexpected indentation", r.lines[r.pos].num)
	}
	return out, nil
}

func (r *yamlReader) mapping(indent int) (map[string]any, error) {
	out := map[string]any{}
	for r.skipBlank(); r.pos < len(r.lines) && r.lines[r.pos].indent == indent; r.skipBlank() {
		l := r.lines[r.pos]
		key, rest, ok := splitEntry(l.text)
		if !ok {
			return nil, fmt.Errorf("line %d: want key: value, got %q", l.num, l.text)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q", l.num, key)
		}
		r.pos++
		switch {
		case rest == "":
			v, err := r.nested(indent)
			if err != nil {
				return nil, err
			}
			out[key] = v
		case rest == "|" || rest == "|-" || rest == ">" || rest == ">-":
			out[key] = r.blockScalar(indent, rest)
		default:
			v, err := scalar(rest, l.num)
			if err != nil {
				return nil, err
			}
			out[key] = v
		}
	}
	if r.pos < len(r.lines) && r.lines[r.pos].indent > indent {
		return nil, fmt.Errorf("line %d: unexpected indentation", r.lines[r.pos].num)
	}
	return out, nil
}

// nested reads the block below a "key:" or "-" line, or nil when there is none.
func (r *yamlReader) nested(parent int) (any, error) {
	r.skipBlank()
	if r.pos >= len(r.lines) || r.lines[r.pos].indent <= parent {
		return nil, nil
	}
	return r.block(r.lines[r.pos].indent)
}

// blockScalar reads the lines of a | or > scalar: every following line indented deeper than the key,
// blank lines included.
func (r *yamlReader) blockScalar(parent int, style string) string {
	var raw []yamlLine
	for r.pos < len(r.lines) {
		l := r.lines[r.pos]
		if strings.TrimSpace(l.text) != "" && l.indent <= parent {
			break
		}
		raw = append(raw, l)
		r.pos++
	}
	for len(raw) > 0 && strings.TrimSpace(raw[len(raw)-1].text) == "" {
		raw = raw[:len(raw)-1]
	}
	if len(raw) == 0 {
		return ""
	}
	base := raw[0].indent
	var b strings.Builder
	for i, l := range raw {
		if i > 0 {
			if strings.HasPrefix(style, ">") && strings.TrimSpace(l.text) != "" && strings.TrimSpace(raw[i-1].text) != "" {
				b.WriteByte(' ')
			} else {
				b.WriteByte('\n')
			}
		}
		if l.text != "" {
			b.WriteString(strings.Repeat(" ", max(0, l.indent-base)) + l.text)
		}
	}
	if !strings.HasSuffix(style, "-") {
		b.WriteByte('\n')
	}
	return b.String()
}

// isMappingEntry says whether a sequence item's text is "key: value" or "key:".
func isMappingEntry(s string) bool {
	if strings.HasPrefix(s, "\"") || strings.HasPrefix(s, "'") || strings.HasPrefix(s, "[") {
		return false
	}
	_, _, ok := splitEntry(s)
	return ok
}

// splitEntry splits "key: value" (value with its comment removed) or "key:".
func splitEntry(s string) (key, rest string, ok bool) {
	i := strings.Index(s, ": ")
	switch {
	case i > 0:
		key, rest = s[:i], strings.TrimSpace(stripComment(s[i+2:]))
	case strings.HasSuffix(s, ":"):
		key = s[:len(s)-1]
	default:
		i = strings.Index(s, ":\t")
		if i < 0 {
			return "", "", false
		}
		key, rest = s[:i], strings.TrimSpace(stripComment(s[i+2:]))
	}
	if key == "" || strings.ContainsAny(key, "{}[]&*!|>'\"%@`#") {
		return "", "", false
	}
	return key, rest, true
}

// stripComment removes a " #" comment outside quotes.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			if i == 0 || s[i-1] == ' ' || s[i-1] == '[' || s[i-1] == ',' {
				quote = c
			}
		case c == '#' && (i == 0 || s[i-1] == ' '):
			return strings.TrimRight(s[:i], " ")
		}
	}
	return s
}

// scalar reads a plain, quoted or flow-sequence value.
func scalar(s string, line int) (any, error) {
	s = strings.TrimSpace(stripComment(s))
	switch {
	case s == "":
		return "", nil
	case s[0] == '&' || s[0] == '*' || s[0] == '!' || s[0] == '{' || s[0] == '|' || s[0] == '>' || s[0] == '@' || s[0] == '`':
		return nil, fmt.Errorf("line %d: %q is outside the YAML subset this test reads", line, s)
	case s[0] == '"':
		var v string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("line %d: double-quoted scalar %s: %v", line, s, err)
		}
		return v, nil
	case s[0] == '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return nil, fmt.Errorf("line %d: unterminated single-quoted scalar", line)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case s[0] == '[':
		if s[len(s)-1] != ']' {
			return nil, fmt.Errorf("line %d: unterminated flow sequence", line)
		}
		var out []any
		inner := strings.TrimSpace(s[1 : len(s)-1])
		if inner == "" {
			return []any{}, nil
		}
		for _, part := range strings.Split(inner, ",") {
			if strings.ContainsAny(part, "[]{}") {
				return nil, fmt.Errorf("line %d: nested flow collections are outside the subset", line)
			}
			v, err := scalar(part, line)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	if strings.Contains(s, ": ") {
		return nil, fmt.Errorf("line %d: plain scalar %q contains \": \" (quote it)", line, s)
	}
	return s, nil
}

func TestYAMLSubsetReader(t *testing.T) {
	src := `# comment
name: demo
on:
  push:
    branches: [main, "release"]
jobs:
  build:
    steps:
      - uses: actions/checkout@v4
      - name: Run   # trailing comment
        run: |
          echo "a: b"
          echo two
        with:
          key: 'it''s'
      - plain item
`
	got, err := parseYAML(src)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name": "demo",
		"on":   map[string]any{"push": map[string]any{"branches": []any{"main", "release"}}},
		"jobs": map[string]any{"build": map[string]any{"steps": []any{
			map[string]any{"uses": "actions/checkout@v4"},
			map[string]any{"name": "Run", "run": "echo \"a: b\"\necho two\n", "with": map[string]any{"key": "it's"}},
			"plain item",
		}}},
	}
	if g, w := fmt.Sprint(got), fmt.Sprint(want); g != w {
		t.Fatalf("parseYAML:\n got %s\nwant %s", g, w)
	}
	for _, bad := range []string{
		"a: 1\na: 2\n",          // duplicate key
		"a: &x 1\n",             // anchor
		"a: {b: 1}\n",           // flow mapping
		"a:\n\tb: 1\n",          // tab
		"a: b: c\n",             // ambiguous plain scalar
		"a:\n  b: 1\n   c: 2\n", // bad indentation
	} {
		if _, err := parseYAML(bad); err == nil {
			t.Errorf("parseYAML(%q) = nil error, want one", bad)
		}
	}
}
