package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Operations are the valid Rule.Operation names: the azsecrets client's method names.
var Operations = []string{
	"SetSecret",
	"GetSecret",
	"UpdateSecretProperties",
	"ListSecretProperties",
	"ListSecretPropertiesVersions",
	"DeleteSecret",
	"GetDeletedSecret",
	"ListDeletedSecretProperties",
	"PurgeDeletedSecret",
	"RecoverDeletedSecret",
	"BackupSecret",
	"RestoreSecret",
}

// DefaultCode is the error code sent with status when a rule names none: 400 BadParameter,
// 401 Unauthorized, 403 Forbidden, 404 NotFound, 409 Conflict, 429 Throttled, 500 InternalServerError,
// 503 ServiceUnavailable, anything else InternalServerError.
func DefaultCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadParameter"
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusTooManyRequests:
		return "Throttled"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	}
	return "InternalServerError"
}

// Rule is one scripted failure: the next Count calls matching Vault, Operation and Secret fail.
type Rule struct {
	// Vault matches the vault name case-insensitively; "" or "*" matches any vault.
	Vault string
	// Operation is one of Operations (matched case-insensitively, stored canonical); "" or "*"
	// matches any operation.
	Operation string
	// Secret matches the secret name case-insensitively; "" or "*" matches any call, including calls
	// that name no secret (lists, restore).
	Secret string
	// Count is how many matching calls fail; <=0 means 1.
	Count int
	// Status is the HTTP status to answer, 400–599; ignored when Drop or DropAfter.
	Status int
	// Code is the error code in the body; empty means DefaultCode(Status).
	Code string
	// Message is the error message; empty means a default (the real service's text for 429).
	Message string
	// RetryAfter, when > 0, is sent as a Retry-After header (whole seconds, rounded up).
	RetryAfter time.Duration
	// Drop closes the connection without answering, before the call is applied: nothing changes.
	Drop bool
	// DropAfter applies the call (a write is committed, an event raised) and then closes the
	// connection without answering: the timeout-after-commit case, where a client that retries
	// writes twice. Drop and DropAfter are exclusive.
	DropAfter bool
	// Delay is waited before answering or dropping (with DropAfter: after applying, before dropping).
	Delay time.Duration
}

// RuleState is a rule in a Script with its id and the number of failures it still has to cause.
type RuleState struct {
	ID        int  `json:"id"`
	Rule      Rule `json:"rule"`
	Remaining int  `json:"remaining"`
}

// Script is an ordered list of fault rules. The zero value is an empty script ready to use; it is
// safe for concurrent use. Exhausted rules are removed.
type Script struct {
	mu     sync.Mutex
	nextID int
	rules  []*RuleState
}

// Add validates r, fills in its defaults and appends it; rules are tried in the order added. It
// returns the rule's id (1, 2, …), or an error naming the problem (an unknown Operation lists the
// valid ones; Status must be 400–599 unless Drop or DropAfter).
func (s *Script) Add(r Rule) (id int, err error) {
	r, err = r.normalize()
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.rules = append(s.rules, &RuleState{ID: s.nextID, Rule: r, Remaining: r.Count})
	return s.nextID, nil
}

// Match finds the first rule matching the call that still has failures left, consumes one failure
// atomically and returns the rule. Operation is one of Operations; secret is "" for calls that name
// none. ok is false when no rule matches. A nil *Script matches nothing.
func (s *Script) Match(vault, operation, secret string) (Rule, bool) {
	if s == nil {
		return Rule{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.rules {
		if st.Remaining <= 0 || !st.Rule.matches(vault, operation, secret) {
			continue
		}
		st.Remaining--
		if st.Remaining == 0 {
			s.rules = append(s.rules[:i], s.rules[i+1:]...)
		}
		return st.Rule, true
	}
	return Rule{}, false
}

// Remove deletes the rule with the given id and reports whether it was there.
func (s *Script) Remove(id int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.rules {
		if st.ID == id {
			s.rules = append(s.rules[:i], s.rules[i+1:]...)
			return true
		}
	}
	return false
}

// Clear removes every rule.
func (s *Script) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

// Rules returns a snapshot of the active rules in match order.
func (s *Script) Rules() []RuleState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RuleState, len(s.rules))
	for i, st := range s.rules {
		out[i] = *st
	}
	return out
}

// matches reports whether the rule applies to the call.
func (r *Rule) matches(vault, operation, secret string) bool {
	return (r.Vault == "" || strings.EqualFold(r.Vault, vault)) &&
		(r.Operation == "" || strings.EqualFold(r.Operation, operation)) &&
		(r.Secret == "" || strings.EqualFold(r.Secret, secret))
}

// normalize validates r and fills in defaults.
func (r Rule) normalize() (Rule, error) {
	if r.Vault == "*" {
		r.Vault = ""
	}
	if r.Secret == "*" {
		r.Secret = ""
	}
	if r.Operation == "*" {
		r.Operation = ""
	}
	if r.Operation != "" {
		op, ok := canonicalOperation(r.Operation)
		if !ok {
			return r, fmt.Errorf("faults: unknown operation %q (valid: %s, or * for any)",
				r.Operation, strings.Join(Operations, ", "))
		}
		r.Operation = op
	}
	if r.Count <= 0 {
		r.Count = 1
	}
	if r.RetryAfter < 0 {
		return r, fmt.Errorf("faults: negative retry-after %v", r.RetryAfter)
	}
	if r.Delay < 0 {
		return r, fmt.Errorf("faults: negative delay %v", r.Delay)
	}
	if r.Drop && r.DropAfter {
		return r, errors.New("faults: drop (before the call is applied) and drop-after are exclusive")
	}
	if r.Drop || r.DropAfter {
		return r, nil
	}
	if r.Status < 400 || r.Status > 599 {
		return r, fmt.Errorf("faults: status %d is not an error status (400-599); use drop to close the connection", r.Status)
	}
	if r.Code == "" {
		r.Code = DefaultCode(r.Status)
	}
	return r, nil
}

// canonicalOperation returns the Operations spelling of op, matched case-insensitively.
func canonicalOperation(op string) (string, bool) {
	for _, o := range Operations {
		if strings.EqualFold(o, op) {
			return o, true
		}
	}
	return "", false
}

// ruleKeys are ParseRule's keys, canonical names first.
var ruleKeys = []string{"op", "status", "count", "vault", "secret", "retry-after", "drop", "delay", "code", "message"}

// ruleKeyAliases maps accepted spellings to canonical keys.
var ruleKeyAliases = map[string]string{
	"operation": "op", "retryafter": "retry-after", "retry_after": "retry-after", "msg": "message",
}

// ParseRule parses a command-line rule: comma-separated key=value pairs with the keys op (alias
// operation), status, count, vault, secret, retry-after (a duration such as 1s, or whole seconds),
// drop (a boolean, or "before" or "after"; a bare "drop", "true" and "before" close the connection
// before the call is applied, "after" applies it and then closes the connection: Rule.DropAfter),
// delay (a duration), code and message (which cannot contain commas). Keys are case-insensitive. Example: op=SetSecret,status=503,count=2,retry-after=1s.
// The rule is validated as Script.Add does.
func ParseRule(spec string) (Rule, error) {
	var r Rule
	fail := func(format string, args ...any) (Rule, error) {
		return Rule{}, fmt.Errorf("faults: rule %q: %s", spec, fmt.Sprintf(format, args...))
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, val, hasVal := strings.Cut(part, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		val = strings.TrimSpace(val)
		if k, ok := ruleKeyAliases[key]; ok {
			key = k
		}
		if seen[key] {
			return fail("key %q given twice", key)
		}
		seen[key] = true
		if !hasVal && key != "drop" {
			if isRuleKey(key) {
				return fail("key %q needs a value (%s=...)", key, key)
			}
			return fail("unknown key %q (valid keys: %s)", key, strings.Join(ruleKeys, ", "))
		}
		var err error
		switch key {
		case "op":
			r.Operation = val
		case "vault":
			r.Vault = val
		case "secret":
			r.Secret = val
		case "code":
			r.Code = val
		case "message":
			r.Message = val
		case "status":
			r.Status, err = strconv.Atoi(val)
			if err != nil {
				return fail("status %q is not a number", val)
			}
		case "count":
			r.Count, err = strconv.Atoi(val)
			if err != nil || r.Count <= 0 {
				return fail("count %q is not a positive number", val)
			}
		case "drop":
			if !hasVal {
				r.Drop = true
				break
			}
			switch strings.ToLower(val) {
			case "after":
				r.DropAfter = true
			case "before":
				r.Drop = true
			default:
				r.Drop, err = strconv.ParseBool(val)
				if err != nil {
					return fail("drop %q is not a boolean (true or false), before or after", val)
				}
			}
		case "delay":
			r.Delay, err = time.ParseDuration(val)
			if err != nil || r.Delay < 0 {
				return fail("delay %q is not a duration such as 100ms or 2s", val)
			}
		case "retry-after":
			if n, err := strconv.Atoi(val); err == nil && n >= 0 {
				r.RetryAfter = time.Duration(n) * time.Second
				break
			}
			r.RetryAfter, err = time.ParseDuration(val)
			if err != nil || r.RetryAfter < 0 {
				return fail("retry-after %q is not a duration such as 1s or a number of seconds", val)
			}
		default:
			return fail("unknown key %q (valid keys: %s)", key, strings.Join(ruleKeys, ", "))
		}
	}
	if len(seen) == 0 {
		return fail("empty rule")
	}
	if !seen["status"] && !r.Drop && !r.DropAfter {
		return fail("status is required (e.g. status=503) unless drop=true or drop=after")
	}
	n, err := r.normalize()
	if err != nil {
		return fail("%s", strings.TrimPrefix(err.Error(), "faults: "))
	}
	return n, nil
}

// isRuleKey reports whether key is one of ruleKeys.
func isRuleKey(key string) bool {
	for _, k := range ruleKeys {
		if k == key {
			return true
		}
	}
	return false
}

// String formats r in ParseRule's syntax, omitting empty fields.
func (r Rule) String() string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+v) }
	if r.Operation != "" {
		add("op", r.Operation)
	}
	if r.Vault != "" {
		add("vault", r.Vault)
	}
	if r.Secret != "" {
		add("secret", r.Secret)
	}
	if r.Drop {
		add("drop", "true")
	}
	if r.DropAfter {
		add("drop", "after")
	}
	if r.Status != 0 {
		add("status", strconv.Itoa(r.Status))
	}
	if r.Count > 0 {
		add("count", strconv.Itoa(r.Count))
	}
	if r.Code != "" {
		add("code", r.Code)
	}
	if r.RetryAfter > 0 {
		add("retry-after", r.RetryAfter.String())
	}
	if r.Delay > 0 {
		add("delay", r.Delay.String())
	}
	if r.Message != "" {
		add("message", r.Message)
	}
	return strings.Join(parts, ",")
}

// ruleJSON is Rule's JSON form: camelCase keys, durations as Go duration strings ("1.5s").
type ruleJSON struct {
	Vault      string `json:"vault,omitempty"`
	Operation  string `json:"operation,omitempty"`
	Secret     string `json:"secret,omitempty"`
	Count      int    `json:"count,omitempty"`
	Status     int    `json:"status,omitempty"`
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"`
	RetryAfter string `json:"retryAfter,omitempty"`
	Drop       bool   `json:"drop,omitempty"`
	DropAfter  bool   `json:"dropAfter,omitempty"`
	Delay      string `json:"delay,omitempty"`
}

// MarshalJSON encodes r with camelCase keys and durations as strings such as "100ms".
func (r Rule) MarshalJSON() ([]byte, error) {
	j := ruleJSON{Vault: r.Vault, Operation: r.Operation, Secret: r.Secret, Count: r.Count, Status: r.Status,
		Code: r.Code, Message: r.Message, Drop: r.Drop, DropAfter: r.DropAfter}
	if r.RetryAfter != 0 {
		j.RetryAfter = r.RetryAfter.String()
	}
	if r.Delay != 0 {
		j.Delay = r.Delay.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the form MarshalJSON writes (unknown keys are rejected); it does not
// validate: pass the result to Script.Add.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var j ruleJSON
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("faults: rule: %w", err)
	}
	n := Rule{Vault: j.Vault, Operation: j.Operation, Secret: j.Secret, Count: j.Count, Status: j.Status,
		Code: j.Code, Message: j.Message, Drop: j.Drop, DropAfter: j.DropAfter}
	var err error
	if j.RetryAfter != "" {
		if n.RetryAfter, err = time.ParseDuration(j.RetryAfter); err != nil {
			return fmt.Errorf("faults: rule: retryAfter: %w", err)
		}
	}
	if j.Delay != "" {
		if n.Delay, err = time.ParseDuration(j.Delay); err != nil {
			return fmt.Errorf("faults: rule: delay: %w", err)
		}
	}
	*r = n
	return nil
}
