// Package events decodes the Key Vault events that Event Grid delivers to kvrotator into
// rotation.Event values: tolerant of how an event arrives, strict about what it says.
//
// Tolerant: an event may be a JSON object, a string holding the object (the Functions host encodes
// string values once more, so up to two layers of string encoding are peeled), or a webhook body (an
// array holding exactly one event). Both schemas are read: Event Grid (id, topic, subject, eventType,
// eventTime, data, dataVersion) and CloudEvents 1.0 (specversion, id, source, subject, type, time,
// data). The data may itself be a string-encoded object. Keys match case-insensitively (Key Vault
// sends PascalCase data keys, older schemas camelCase) and stray spaces around keys and values are
// trimmed, as the Key Vault documentation sample has them. NBF and EXP may be numbers, numeric
// strings, null or absent.
//
// Strict: for Microsoft.KeyVault.Secret* events the vault name, secret name and version must be valid
// Key Vault names; ObjectType, if present, must be Secret; the Id URL, if present, must name the same
// vault, secret and version; and the topic (or CloudEvents source), if present, must be that vault's.
// The event never chooses a URL: only validated names go on. Other event types (Key*, Certificate*,
// VaultAccessPolicyChanged, anything else) decode with only ID and Type set, their data unread, so the
// engine can skip them with a reason.
//
// Every error is a *DecodeError naming the offending field. It quotes at most that field's value, cut
// to 128 characters; Key Vault events carry names and versions, never secret values.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/rotation"
)

// MaxEventBytes is the largest input Decode accepts. A Key Vault event is well under 2 KiB.
const MaxEventBytes = 64 << 10

const (
	maxEcho         = 128 // characters of an offending value quoted in an error
	maxStringLayers = 2   // layers of JSON-string encoding peeled off a value
	secretTypes     = "microsoft.keyvault.secret"
)

// DecodeError says which field of an event is wrong and why.
type DecodeError struct {
	// Field is the offending field: "" for the input as a whole, a top-level attribute such as
	// "eventType" or "topic", or "data.<Key>" (e.g. "data.VaultName") for the event data.
	Field string
	// Reason says what is wrong, quoting the field's value (at most 128 characters of it) where that
	// helps, e.g. `"bad_vault" is not a valid vault name (…)`.
	Reason string
}

// Error renders the error as "event: <field> <reason>", or "event data: <key> <reason>" for a field
// of the event data.
func (e *DecodeError) Error() string {
	switch {
	case e.Field == "":
		return "event: " + e.Reason
	case strings.HasPrefix(e.Field, "data."):
		return "event data: " + strings.TrimPrefix(e.Field, "data.") + " " + e.Reason
	default:
		return "event: " + e.Field + " " + e.Reason
	}
}

func errorf(field, format string, args ...any) *DecodeError {
	return &DecodeError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// quote renders a value for an error message: Go-quoted (control characters escaped) and cut to
// maxEcho characters.
func quote(s string) string {
	n := 0
	for i := range s {
		if n == maxEcho {
			return strconv.Quote(s[:i]) + "…"
		}
		n++
	}
	return strconv.Quote(s)
}

// typeRE bounds the event type, which goes into logs for every event, known or not.
var typeRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\x21-\x7e]{1,128}$`) })

// knownTypes canonicalises the spelling of the secret event types the engine compares against.
var knownTypes = []string{rotation.EventNearExpiry, rotation.EventExpired, rotation.EventNewVersion}

// Decode turns one Event Grid delivery value into a rotation.Event. It accepts a JSON object, a JSON
// string holding one (up to two layers of string encoding), or an array holding exactly one event,
// in the Event Grid or the CloudEvents 1.0 schema. Secret* events come back with Vault, Secret and
// Version validated; other types with only ID and Type. Errors are *DecodeError.
func Decode(raw []byte) (rotation.Event, error) {
	if len(raw) > MaxEventBytes {
		return rotation.Event{}, errorf("", "input of %d bytes is over the %d-byte limit", len(raw), MaxEventBytes)
	}
	b, derr := peel(raw, "")
	if derr != nil {
		return rotation.Event{}, derr
	}
	if b[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(b, &batch); err != nil {
			return rotation.Event{}, jsonError("", err)
		}
		if len(batch) != 1 {
			return rotation.Event{}, errorf("", "is an array of %d events; one event per delivery is expected", len(batch))
		}
		if b, derr = peel(batch[0], ""); derr != nil {
			return rotation.Event{}, derr
		}
	}
	attrs, derr := object(b, "")
	if derr != nil {
		return rotation.Event{}, derr
	}
	ev, derr := decodeEvent(attrs)
	if derr != nil {
		return rotation.Event{}, derr
	}
	return ev, nil
}

func decodeEvent(attrs fields) (rotation.Event, *DecodeError) {
	var ev rotation.Event
	var derr *DecodeError
	if ev.ID, derr = attrs.str("id", "id"); derr != nil {
		return ev, derr
	}
	if len(ev.ID) > maxEcho || strings.ContainsFunc(ev.ID, isControl) {
		return ev, errorf("id", "%s is not a valid event id (at most 128 bytes, no control characters)", quote(ev.ID))
	}
	typeField, typ, derr := attrs.either("eventType", "type")
	if derr != nil {
		return ev, derr
	}
	if typ == "" {
		return ev, errorf("eventType", "is missing (neither eventType nor type is set)")
	}
	if !typeRE().MatchString(typ) {
		return ev, errorf(typeField, "%s is not a valid event type (1-128 printable ASCII characters, no spaces)", quote(typ))
	}
	ev.Type = typ
	for _, known := range knownTypes {
		if strings.EqualFold(typ, known) {
			ev.Type = known
		}
	}
	if !strings.HasPrefix(strings.ToLower(typ), secretTypes) {
		return ev, nil // not a secret event: the engine skips it by type; its data is not ours to read
	}

	topicField, topic, derr := attrs.either("topic", "source")
	if derr != nil {
		return ev, derr
	}
	raw, ok := attrs["data"]
	if !ok || isNull(raw) {
		return ev, errorf("data", "is missing")
	}
	b, derr := peel(raw, "data")
	if derr != nil {
		return ev, derr
	}
	data, derr := object(b, "data")
	if derr != nil {
		return ev, derr
	}
	if ev.Vault, ev.Secret, ev.Version, derr = secretData(data); derr != nil {
		return ev, derr
	}
	if topic != "" {
		suffix := "/providers/microsoft.keyvault/vaults/" + strings.ToLower(ev.Vault)
		if !strings.HasSuffix(strings.ToLower(topic), suffix) {
			return ev, errorf(topicField, "%s is not the topic of vault %q (it must end in /providers/Microsoft.KeyVault/vaults/%s)", quote(topic), ev.Vault, ev.Vault)
		}
	}
	return ev, nil
}

// secretData validates the data of a Secret* event and returns its names.
func secretData(data fields) (vault, secret, version string, derr *DecodeError) {
	objectType, derr := data.str("objecttype", "data.ObjectType")
	if derr != nil {
		return "", "", "", derr
	}
	if objectType != "" && !strings.EqualFold(objectType, "Secret") {
		return "", "", "", errorf("data.ObjectType", "%s is not Secret", quote(objectType))
	}
	checks := []struct {
		field string
		dst   *string
		check func(string) error
	}{
		{"data.VaultName", &vault, CheckVaultName},
		{"data.ObjectName", &secret, CheckSecretName},
		{"data.Version", &version, CheckVersion},
	}
	for _, c := range checks {
		v, derr := data.str(strings.ToLower(strings.TrimPrefix(c.field, "data.")), c.field)
		if derr != nil {
			return "", "", "", derr
		}
		if v == "" {
			return "", "", "", errorf(c.field, "is missing")
		}
		if err := c.check(v); err != nil {
			return "", "", "", errorf(c.field, "%s", err)
		}
		*c.dst = v
	}
	id, derr := data.str("id", "data.Id")
	if derr != nil {
		return "", "", "", derr
	}
	if id != "" {
		if derr := checkID(id, vault, secret, version); derr != nil {
			return "", "", "", derr
		}
	}
	for _, key := range []string{"NBF", "EXP"} {
		if derr := data.unixSeconds(strings.ToLower(key), "data."+key); derr != nil {
			return "", "", "", derr
		}
	}
	return vault, secret, version, nil
}

// checkID verifies that the object URL names the same vault (first host label), secret and version.
func checkID(id, vault, secret, version string) *DecodeError {
	u, err := url.Parse(id)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" ||
		u.User != nil || u.Opaque != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return errorf("data.Id", "%s is not a Key Vault object URL", quote(id))
	}
	label, _, _ := strings.Cut(u.Hostname(), ".")
	if !strings.EqualFold(label, vault) {
		return errorf("data.Id", "%s is not in vault %q", quote(id), vault)
	}
	if !strings.EqualFold(u.EscapedPath(), "/secrets/"+secret+"/"+version) {
		return errorf("data.Id", "%s does not name secret %q version %q", quote(id), secret, version)
	}
	return nil
}

// fields is a JSON object whose keys are lower-cased and trimmed.
type fields map[string]json.RawMessage

// object decodes b, which must be a JSON object, into fields; keys that collide once normalised are
// an error rather than a silent choice.
func object(b []byte, field string) (fields, *DecodeError) {
	if b[0] != '{' {
		return nil, errorf(field, "is not a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, jsonError(field, err)
	}
	out := make(fields, len(m))
	for k, v := range m {
		nk := strings.ToLower(strings.TrimSpace(k))
		if _, dup := out[nk]; dup {
			return nil, errorf(field, "has the key %s more than once (keys match case-insensitively)", quote(nk))
		}
		out[nk] = v
	}
	return out, nil
}

// str returns the trimmed string value of key ("" when absent or null).
func (f fields) str(key, field string) (string, *DecodeError) {
	raw, ok := f[key]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errorf(field, "must be a string")
	}
	return strings.TrimSpace(s), nil
}

// either returns whichever of two synonymous attributes (Event Grid, CloudEvents) is set, and its
// name; both set to different values is an error.
func (f fields) either(egName, ceName string) (string, string, *DecodeError) {
	eg, derr := f.str(strings.ToLower(egName), egName)
	if derr != nil {
		return "", "", derr
	}
	ce, derr := f.str(strings.ToLower(ceName), ceName)
	if derr != nil {
		return "", "", derr
	}
	switch {
	case eg != "" && ce != "" && eg != ce:
		return "", "", errorf(egName, "%s and %s %s disagree", quote(eg), ceName, quote(ce))
	case eg != "":
		return egName, eg, nil
	default:
		return ceName, ce, nil
	}
}

// unixSeconds checks that key, if set, is a Unix time in seconds: a number or a numeric string.
func (f fields) unixSeconds(key, field string) *DecodeError {
	raw, ok := f[key]
	if !ok || isNull(raw) {
		return nil
	}
	text := string(bytes.TrimSpace(raw))
	if text[0] == '"' {
		if err := json.Unmarshal(raw, &text); err != nil {
			return errorf(field, "is not a valid JSON string")
		}
		if text = strings.TrimSpace(text); text == "" {
			return nil
		}
	}
	if _, err := strconv.ParseInt(text, 10, 64); err == nil {
		return nil
	}
	if x, err := strconv.ParseFloat(text, 64); err == nil && x == math.Trunc(x) && math.Abs(x) < 1<<62 {
		return nil
	}
	return errorf(field, "%s is not a Unix time in seconds", quote(text))
}

// peel trims b and removes up to maxStringLayers layers of JSON-string encoding.
func peel(b []byte, field string) ([]byte, *DecodeError) {
	for layers := 0; ; layers++ {
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			return nil, errorf(field, "is empty")
		}
		if b[0] != '"' {
			return b, nil
		}
		if layers == maxStringLayers {
			return nil, errorf(field, "is string-encoded more than %d times", maxStringLayers)
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, errorf(field, "is not a valid JSON string")
		}
		b = []byte(s)
	}
}

// jsonError describes a JSON decoding failure without quoting the input.
func jsonError(field string, err error) *DecodeError {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return errorf(field, "is not valid JSON (error at byte %d)", syn.Offset)
	}
	return errorf(field, "is not valid JSON")
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }
