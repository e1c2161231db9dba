package infra

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// No ARM template validator is available to Go here (none is served by the module proxy, and
// `az deployment group validate` needs Azure), so these are focused structural checks of what ARM itself
// rejects or silently misreads: the schema and content version, parameter types and defaults,
// expressions that parse (balanced brackets, parentheses and quotes, known functions), references to
// parameters and variables that exist, names with as many segments as their type, and dependencies on
// resources the template declares.

const deploymentTemplateSchema = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"

// armFunctions are the template functions the template may call (lower case; ARM ignores case). The two
// list functions read credentials; TestNoSecretInDefaultsSettingsOrOutputs allows each in one place only
// (the Defender workflow automation, defender_test.go).
var armFunctions = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`add and array base64 bool coalesce concat contains copyIndex createArray
		createObject dataUri deployment div empty endsWith environment equals extensionResourceId false filter
		first flatten format greater greaterOrEquals guid if indexOf int intersection items join json lambda
		lambdaVariables last lastIndexOf length less lessOrEquals listCallbackUrl listKeys map max min mod mul
		not null objectKeys or padLeft parameters range reduce reference replace resourceGroup resourceId skip
		sort split startsWith string sub subscription subscriptionResourceId substring take tenant
		tenantResourceId toLower toObject toUpper trim true union uniqueString uri utcNow variables`) {
		armFunctions[strings.ToLower(f)] = true
	}
}

// armExpr is one parsed template expression.
type armExpr struct {
	funcs []string            // function names called
	args  map[string][]string // first string argument of parameters/variables/lambdaVariables calls
}

// parseExpr checks the syntax of an expression "[...]" and lists what it calls.
func parseExpr(s string) (armExpr, error) {
	e := armExpr{args: map[string][]string{}}
	if !strings.HasSuffix(s, "]") {
		return e, fmt.Errorf("does not end with ]")
	}
	body := s[1 : len(s)-1]
	var stack []byte
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '\'':
			j := i + 1
			for ; j < len(body); j++ {
				if body[j] == '\'' {
					if j+1 < len(body) && body[j+1] == '\'' {
						j++
						continue
					}
					break
				}
			}
			if j >= len(body) {
				return e, fmt.Errorf("unterminated string literal")
			}
			i = j
		case c == '(' || c == '[':
			stack = append(stack, c)
		case c == ')' || c == ']':
			open := byte('(')
			if c == ']' {
				open = '['
			}
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return e, fmt.Errorf("unbalanced %q at %d", c, i)
			}
			stack = stack[:len(stack)-1]
		case isIdentStart(c):
			j := i
			for j < len(body) && (isIdentStart(body[j]) || (body[j] >= '0' && body[j] <= '9')) {
				j++
			}
			name := body[i:j]
			if j < len(body) && body[j] == '(' {
				if i > 0 && body[i-1] == '.' {
					return e, fmt.Errorf("method call .%s( is not ARM syntax", name)
				}
				e.funcs = append(e.funcs, name)
				lower := strings.ToLower(name)
				if lower == "parameters" || lower == "variables" || lower == "lambdavariables" || lower == "lambda" {
					rest := body[j+1:]
					if m := regexp.MustCompile(`^\s*'([^']*)'`).FindStringSubmatch(rest); m != nil {
						e.args[lower] = append(e.args[lower], m[1])
					} else if lower != "lambda" {
						return e, fmt.Errorf("%s( without a literal name", name)
					}
				}
			}
			i = j - 1
		}
	}
	if len(stack) != 0 {
		return e, fmt.Errorf("unbalanced: %q left open", string(stack))
	}
	return e, nil
}

func isIdentStart(c byte) bool { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func isExpr(s string) bool { return strings.HasPrefix(s, "[") && !strings.HasPrefix(s, "[[") }

func TestTemplateIsWellFormedARM(t *testing.T) {
	tp := loadTemplate(t)
	if tp.raw["$schema"] != deploymentTemplateSchema {
		t.Errorf("$schema = %v, want %s", tp.raw["$schema"], deploymentTemplateSchema)
	}
	if cv, _ := tp.raw["contentVersion"].(string); !regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`).MatchString(cv) {
		t.Errorf("contentVersion = %q, want n.n.n.n", cv)
	}
	for k := range tp.raw {
		if !slices.Contains([]string{"$schema", "contentVersion", "apiProfile", "metadata", "parameters", "functions", "variables", "resources", "outputs"}, k) {
			t.Errorf("unknown top-level property %q", k)
		}
	}

	// Parameters: valid types, defaults of that type and within the declared limits.
	for name, p := range tp.params {
		typ, _ := p["type"].(string)
		if !slices.Contains([]string{"string", "securestring", "int", "bool", "object", "secureobject", "array"}, strings.ToLower(typ)) {
			t.Errorf("parameter %s: type %q", name, typ)
			continue
		}
		if d, _ := get(p, "metadata.description").(string); d == "" {
			t.Errorf("parameter %s: no metadata.description", name)
		}
		def, has := p["defaultValue"]
		if !has {
			continue
		}
		if s, ok := def.(string); ok && isExpr(s) {
			continue // checked with the other expressions
		}
		want := map[string]string{"string": "string", "securestring": "string", "int": "float64", "bool": "bool", "object": "map[string]interface {}", "secureobject": "map[string]interface {}", "array": "[]interface {}"}[strings.ToLower(typ)]
		if got := typeName(def); got != want {
			t.Errorf("parameter %s: default %v is %s, want %s", name, def, got, want)
		}
		if allowed, ok := p["allowedValues"].([]any); ok && !slices.Contains(allowed, def) {
			t.Errorf("parameter %s: default %v not in allowedValues %v", name, def, allowed)
		}
		if n, ok := def.(float64); ok {
			if lo, ok := p["minValue"].(float64); ok && n < lo {
				t.Errorf("parameter %s: default %v < minValue %v", name, n, lo)
			}
			if hi, ok := p["maxValue"].(float64); ok && n > hi {
				t.Errorf("parameter %s: default %v > maxValue %v", name, n, hi)
			}
		}
		if s, ok := def.(string); ok {
			if lo, ok := p["minLength"].(float64); ok && float64(len(s)) < lo && s != "" {
				t.Errorf("parameter %s: default %q shorter than minLength", name, s)
			}
			if hi, ok := p["maxLength"].(float64); ok && float64(len(s)) > hi {
				t.Errorf("parameter %s: default %q longer than maxLength", name, s)
			}
		}
	}

	// Expressions everywhere: syntax, functions, references.
	usedParams, usedVars := map[string]bool{}, map[string]bool{}
	checkExprs := func(root any, where string, inCopy bool) {
		allStrings(root, where, func(path, s string) {
			if strings.HasSuffix(path, "(key)") || !isExpr(s) {
				return
			}
			e, err := parseExpr(s)
			if err != nil {
				t.Errorf("%s: %s: %v", path, s, err)
				return
			}
			for _, f := range e.funcs {
				if !armFunctions[strings.ToLower(f)] {
					t.Errorf("%s: unknown template function %s()", path, f)
				}
				if strings.EqualFold(f, "copyIndex") && !inCopy {
					t.Errorf("%s: copyIndex() outside a copy loop", path)
				}
			}
			for _, p := range e.args["parameters"] {
				if _, ok := tp.params[p]; !ok {
					t.Errorf("%s: parameters('%s') is not declared", path, p)
				}
				usedParams[p] = true
			}
			for _, v := range e.args["variables"] {
				if _, ok := tp.variables[v]; !ok {
					t.Errorf("%s: variables('%s') is not declared", path, v)
				}
				usedVars[v] = true
			}
			for _, v := range e.args["lambdavariables"] {
				if !regexp.MustCompile(`lambda\('` + regexp.QuoteMeta(v) + `'`).MatchString(s) {
					t.Errorf("%s: lambdaVariables('%s') outside lambda('%s', …)", path, v, v)
				}
			}
		})
	}
	for name, p := range tp.params {
		checkExprs(p, "$.parameters."+name, false)
	}
	checkExprs(tp.variables, "$.variables", false)
	checkExprs(tp.raw["outputs"], "$.outputs", false)

	declaredTypes := map[string]bool{}
	copyNames := map[string]bool{}
	for _, r := range tp.resources {
		declaredTypes[strings.ToLower(r["type"].(string))] = true
		if c, ok := r["copy"].(map[string]any); ok {
			n, _ := c["name"].(string)
			if n == "" || copyNames[n] {
				t.Errorf("copy loop name %q empty or repeated", n)
			}
			copyNames[n] = true
		}
	}
	apiVersionRE := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}(-preview)?$`)
	for i, r := range tp.resources {
		typ, _ := r["type"].(string)
		where := fmt.Sprintf("$.resources[%d] (%s)", i, typ)
		_, inCopy := r["copy"]
		checkExprs(r, where, inCopy)
		if av, _ := r["apiVersion"].(string); !apiVersionRE.MatchString(av) {
			t.Errorf("%s: apiVersion %q", where, av)
		}
		name, _ := r["name"].(string)
		if name == "" || typ == "" || !strings.Contains(typ, "/") {
			t.Errorf("%s: missing type or name", where)
			continue
		}
		if want, got := strings.Count(typ, "/"), nameSegments(name); got != want {
			t.Errorf("%s: name %s has %d segments, the type needs %d", where, name, got, want)
		}
		for _, d := range asArrayOrNil(r["dependsOn"]) {
			ds, _ := d.(string)
			switch {
			case copyNames[ds]:
			case strings.HasPrefix(ds, "[resourceId('"):
				depType := strings.ToLower(strings.SplitN(strings.TrimPrefix(ds, "[resourceId('"), "'", 2)[0])
				if !declaredTypes[depType] {
					t.Errorf("%s: dependsOn %s: no such resource in the template", where, ds)
				}
			default:
				t.Errorf("%s: dependsOn %q: want resourceId(...) or a copy loop name", where, ds)
			}
		}
	}

	for name := range tp.params {
		if !usedParams[name] {
			t.Errorf("parameter %s is never used", name)
		}
	}
	for name := range tp.variables {
		if !usedVars[name] {
			t.Errorf("variable %s is never used", name)
		}
	}
	for name, o := range asObject(t, tp.raw["outputs"], "outputs") {
		out := asObject(t, o, "outputs."+name)
		if _, ok := out["value"]; !ok || out["type"] == nil {
			t.Errorf("output %s: needs type and value", name)
		}
	}
}

// nameSegments counts the segments of a resource name: a literal, a format() whose pattern gives the
// slashes, or another expression (one segment).
func nameSegments(name string) int {
	if !isExpr(name) {
		return strings.Count(name, "/") + 1
	}
	if m := regexp.MustCompile(`^\[format\('([^']*)'`).FindStringSubmatch(name); m != nil {
		return strings.Count(m[1], "/") + 1
	}
	return 1
}

func asArrayOrNil(v any) []any {
	a, _ := v.([]any)
	return a
}

func TestExpressionParser(t *testing.T) {
	for _, good := range []string{
		"[parameters('a')]",
		"[format('{0}/x', variables('b'))]",
		"[concat('it''s', createArray(1, 2)[0])]",
		"[map(parameters('a'), lambda('x', createObject('v', lambdaVariables('x'))))]",
	} {
		if _, err := parseExpr(good); err != nil {
			t.Errorf("parseExpr(%s): %v", good, err)
		}
	}
	for _, bad := range []string{
		"[parameters('a')",
		"[format('{0}', variables('b')]",
		"[concat('unterminated)]",
		"[variables(name)]",
		"[resourceGroup().id.foo()]",
	} {
		if _, err := parseExpr(bad); err == nil {
			t.Errorf("parseExpr(%s) = nil error", bad)
		}
	}
}
