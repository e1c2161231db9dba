package emulator

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/kvrotator/kvrotator/emulator/internal/authn"
)

// Event Grid custom topics.
//
// A topic is served on the shared listener at
//
//	POST https://127.0.0.1:PORT/topics/<name>/api/events?api-version=2018-01-01
//
// (Server.TopicEndpoint), the path form of https://<name>.<region>-1.eventgrid.azure.net/api/events:
// vault names already own the first host label. The azeventgrid client publishes to it unchanged.
//
// Authentication is Event Grid's: an access key in the aeg-sas-key header (topics with a Key), or an
// Entra ID bearer token issued by the emulator for the audience https://eventgrid.azure.net (the
// managed-identity endpoint issues one for any resource, so azidentity's ManagedIdentityCredential
// works with the scope https://eventgrid.azure.net/.default). SAS tokens (aeg-sas-token) are not
// supported. A missing or wrong credential gets 401; in NoAuth mode nothing is checked.
//
// The body is checked as Event Grid checks it: with Content-Type application/json, a JSON array of
// Event Grid events, each with id, subject, eventType, eventTime (RFC 3339), data and dataVersion;
// with application/cloudevents-batch+json an array, with application/cloudevents+json one object,
// of CloudEvents 1.0 (specversion "1.0", id, source, type). A topic's Schema may restrict it to one
// of the two. Malformed input gets 400, a body over 1 MB 413, a topic set down with SetTopicDown
// 503, and success 200 with an empty body. Errors use Event Grid's JSON envelope
// {"error":{"code","message","details":[{"code","message"}]}}.
//
// Accepted events are kept as received (the latest maxTopicEvents per topic) for TopicEvents.

const (
	maxTopicBody   = 1 << 20 // Event Grid's limit for a publish request
	maxTopicEvents = 10000   // kept per topic; the oldest are dropped
	eventGridAud   = "https://eventgrid.azure.net"
)

// TopicConfig is an Event Grid custom topic that clients publish to.
type TopicConfig struct {
	// Name is the topic name: 3–50 letters, digits and hyphens (matched case-insensitively).
	Name string
	// Key, when set, is the topic's access key, accepted in the aeg-sas-key header. Bearer tokens
	// issued by the emulator are accepted either way.
	Key string
	// Schema is the topic's input schema: EventGridSchema or CloudEventsSchema accept only that
	// schema; empty accepts both, told apart by Content-Type.
	Schema EventSchema
}

var topicNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9-]{3,50}$`) })

type topic struct {
	name   string
	key    string
	schema EventSchema // "" = both

	mu     sync.Mutex
	down   bool
	events []json.RawMessage
}

// newTopics validates the configured topics.
func newTopics(cfgs []TopicConfig) (map[string]*topic, error) {
	topics := make(map[string]*topic, len(cfgs))
	for _, tc := range cfgs {
		if !topicNameRE().MatchString(tc.Name) {
			return nil, fmt.Errorf("topic name %q is invalid: use 3-50 letters, digits and hyphens", tc.Name)
		}
		key := strings.ToLower(tc.Name)
		if topics[key] != nil {
			return nil, fmt.Errorf("topic %q is configured twice", tc.Name)
		}
		t := &topic{name: tc.Name, key: tc.Key}
		switch EventSchema(strings.ToLower(string(tc.Schema))) {
		case "":
		case EventGridSchema:
			t.schema = EventGridSchema
		case CloudEventsSchema:
			t.schema = CloudEventsSchema
		default:
			return nil, fmt.Errorf("topic %q: unknown schema %q (want %q, %q or empty for both)", tc.Name, tc.Schema, EventGridSchema, CloudEventsSchema)
		}
		topics[key] = t
	}
	return topics, nil
}

// TopicEndpoint is the URL clients publish to for a topic, once the emulator has started:
// https://127.0.0.1:PORT/topics/NAME/api/events on the shared listener (http:// in NoAuth mode).
func (s *Server) TopicEndpoint(name string) string {
	return s.mainURL + "/topics/" + strings.ToLower(name) + "/api/events"
}

// TopicEvents returns the events a topic accepted, oldest first, each as received (one JSON object
// per event); nil for an unknown topic.
func (s *Server) TopicEvents(name string) []json.RawMessage {
	t := s.topics[strings.ToLower(name)]
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]json.RawMessage, len(t.events))
	for i, e := range t.events {
		out[i] = bytes.Clone(e)
	}
	return out
}

// SetTopicDown makes a topic answer every publish with 503 ServiceUnavailable (down) or serve again;
// unknown names are ignored.
func (s *Server) SetTopicDown(name string, down bool) {
	if t := s.topics[strings.ToLower(name)]; t != nil {
		t.mu.Lock()
		t.down = down
		t.mu.Unlock()
	}
}

// topicError is an error answered with Event Grid's envelope.
type topicError struct {
	status int
	code   string // HTTP-level code: BadRequest, Unauthorized, …
	detail string // specific code in details[0], optional
	msg    string
}

func (e *topicError) write(w http.ResponseWriter) {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	var body struct {
		Error struct {
			Code    string   `json:"code"`
			Message string   `json:"message"`
			Details []detail `json:"details,omitempty"`
		} `json:"error"`
	}
	body.Error.Code, body.Error.Message = e.code, e.msg
	if e.detail != "" {
		body.Error.Details = []detail{{Code: e.detail, Message: e.msg}}
	}
	writeJSON(w, e.status, body)
}

func badEvents(detail, format string, args ...any) *topicError {
	return &topicError{status: http.StatusBadRequest, code: "BadRequest", detail: detail, msg: fmt.Sprintf(format, args...)}
}

func unauthorizedTopic(detail, msg string) *topicError {
	return &topicError{status: http.StatusUnauthorized, code: "Unauthorized", detail: detail, msg: msg}
}

// serveTopic handles /topics/<name>/api/events.
func (s *Server) serveTopic(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	w = rec
	w.Header().Set("x-ms-request-id", uuid.NewString())
	name, auth, caller, accepted := "", "none", "", 0
	defer func() {
		s.log.Info("eventgrid topic request", "method", r.Method, "topic", name, "auth", auth, "identity", caller,
			"events", accepted, "status", rec.status, "ms", time.Since(start).Milliseconds())
	}()

	rest := strings.TrimPrefix(r.URL.Path, "/topics/")
	name, suffix, _ := strings.Cut(rest, "/")
	t := s.topics[strings.ToLower(name)]
	if t == nil || suffix != "api/events" {
		(&topicError{status: http.StatusNotFound, code: "NotFound", msg: fmt.Sprintf(
			"The path %s does not exist. Topics are published to at /topics/<name>/api/events.", r.URL.Path)}).write(w)
		return
	}
	name = t.name
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		(&topicError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", msg: fmt.Sprintf(
			"The method %s is not allowed; publish events with POST.", r.Method)}).write(w)
		return
	}
	t.mu.Lock()
	down := t.down
	t.mu.Unlock()
	if down {
		(&topicError{status: http.StatusServiceUnavailable, code: "ServiceUnavailable", msg: fmt.Sprintf(
			"The topic %s is temporarily unavailable.", t.name)}).write(w)
		return
	}
	if !s.cfg.NoAuth {
		var terr *topicError
		if auth, caller, terr = s.authenticateTopic(r, t); terr != nil {
			terr.write(w)
			return
		}
	}
	if r.URL.Query().Get("api-version") == "" {
		badEvents("MissingApiVersion", "The api-version query parameter is required (e.g. api-version=2018-01-01).").write(w)
		return
	}
	events, terr := readTopicEvents(r, t.schema)
	if terr != nil {
		terr.write(w)
		return
	}
	t.mu.Lock()
	t.events = append(t.events, events...)
	if n := len(t.events) - maxTopicEvents; n > 0 {
		t.events = append(t.events[:0:0], t.events[n:]...)
	}
	t.mu.Unlock()
	accepted = len(events)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// authenticateTopic checks an aeg-sas-key header against the topic's key, or a bearer token for
// Event Grid's audience. It returns how the caller authenticated and who it is (never the secret).
func (s *Server) authenticateTopic(r *http.Request, t *topic) (auth, caller string, terr *topicError) {
	if key := r.Header.Get("aeg-sas-key"); key != "" {
		if t.key == "" || subtle.ConstantTimeCompare([]byte(key), []byte(t.key)) != 1 {
			return "key", "", unauthorizedTopic("InvalidKey", fmt.Sprintf(
				"The request authorization key is not authorized for topic %s.", t.name))
		}
		return "key", "", nil
	}
	if r.Header.Get("aeg-sas-token") != "" {
		return "sas", "", unauthorizedTopic("UnsupportedAuthorization",
			"aeg-sas-token is not supported by the kvrotator emulator; use aeg-sas-key or a bearer token.")
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "none", "", unauthorizedTopic("MissingAuthorization",
			"Request must contain one of the following authorization signature: aeg-sas-token, aeg-sas-key, or an Authorization header with a Bearer token.")
	}
	p, err := s.issuer.Validate(token, []string{eventGridAud}, time.Now())
	if err != nil {
		var why string
		switch {
		case errors.Is(err, authn.ErrExpired):
			why = "the access token has expired or is not yet valid"
		case errors.Is(err, authn.ErrAudience):
			why = "the access token's audience is not " + eventGridAud
		case errors.Is(err, authn.ErrSignature):
			why = "the access token's signature is invalid"
		default:
			why = "the access token is malformed"
		}
		return "bearer", "", unauthorizedTopic("InvalidToken", "Authentication failed: "+why+".")
	}
	caller = "oid:" + p.ObjectID
	if id := s.identities[strings.ToLower(p.ObjectID)]; id != nil {
		caller = id.Name
	}
	return "bearer", caller, nil
}

// readTopicEvents reads and checks a publish request's body: one JSON object per accepted event.
func readTopicEvents(r *http.Request, schema EventSchema) ([]json.RawMessage, *topicError) {
	tooLarge := &topicError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge", detail: "PayloadTooLarge",
		msg: fmt.Sprintf("The request body exceeds the maximum size of %d bytes.", maxTopicBody)}
	if r.ContentLength > maxTopicBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTopicBody+1))
	if err != nil {
		return nil, badEvents("InputJsonInvalid", "The request body could not be read.")
	}
	if len(body) > maxTopicBody {
		return nil, tooLarge
	}

	ct := r.Header.Get("Content-Type")
	media, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		media = ""
	}
	var got EventSchema
	single := false
	switch media {
	case "application/json":
		got = EventGridSchema
	case "application/cloudevents-batch+json":
		got = CloudEventsSchema
	case "application/cloudevents+json":
		got, single = CloudEventsSchema, true
	default:
		return nil, badEvents("UnsupportedContentType", "Content-Type %q is not supported: use application/json for the Event Grid schema, application/cloudevents-batch+json or application/cloudevents+json for CloudEvents 1.0.", clip(ct))
	}
	if schema != "" && got != schema {
		return nil, badEvents("InputSchemaMismatch", "This topic is configured to receive events in the %s schema; the request's Content-Type %q is for the %s schema.", schema, media, got)
	}

	var items []json.RawMessage
	if single {
		if !isJSONObject(body) {
			return nil, badEvents("InputJsonInvalid", "The request body must be one CloudEvents JSON object for Content-Type application/cloudevents+json.")
		}
		items = []json.RawMessage{body}
	} else if err := json.Unmarshal(body, &items); err != nil {
		return nil, badEvents("InputJsonInvalid", "The request body must be a JSON array of events: %s.", jsonProblem(err))
	}
	if len(items) == 0 {
		return nil, badEvents("InputJsonInvalid", "The request body must contain at least one event.")
	}
	out := make([]json.RawMessage, 0, len(items))
	for i, raw := range items {
		var fields map[string]json.RawMessage
		if !isJSONObject(raw) || json.Unmarshal(raw, &fields) != nil {
			return nil, badEvents("InputJsonInvalid", "Event %d is not a JSON object. Path '[%d]'.", i, i)
		}
		var terr *topicError
		if got == CloudEventsSchema {
			terr = checkCloudEvent(i, fields)
		} else {
			terr = checkEventGridEvent(i, fields)
		}
		if terr != nil {
			return nil, terr
		}
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return nil, badEvents("InputJsonInvalid", "Event %d is not valid JSON. Path '[%d]'.", i, i)
		}
		out = append(out, b.Bytes())
	}
	return out, nil
}

// checkEventGridEvent requires id, subject, eventType, dataVersion (strings), eventTime (RFC 3339)
// and data; topic, if present, is a string and metadataVersion is "1".
func checkEventGridEvent(i int, f map[string]json.RawMessage) *topicError {
	for _, name := range []string{"id", "subject", "eventType", "eventTime", "dataVersion"} {
		v, ok := stringField(f, name)
		if !ok || (v == "" && name != "dataVersion") {
			return badEvents("InputJsonInvalid", "Required property '%s' was not found or is not a non-empty string. Path '[%d]'.", name, i)
		}
		if name == "eventTime" {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				return badEvents("InputJsonInvalid", "Property 'eventTime' must be an RFC 3339 date-time, got %s. Path '[%d].eventTime'.", strconv.Quote(clip(v)), i)
			}
		}
	}
	if _, ok := f["data"]; !ok {
		return badEvents("InputJsonInvalid", "Required property 'data' was not found. Path '[%d]'.", i)
	}
	if raw, ok := f["topic"]; ok && !isJSONNull(raw) {
		if _, ok := stringField(f, "topic"); !ok {
			return badEvents("InputJsonInvalid", "Property 'topic' must be a string. Path '[%d].topic'.", i)
		}
	}
	if raw, ok := f["metadataVersion"]; ok && !isJSONNull(raw) {
		if v, ok := stringField(f, "metadataVersion"); !ok || v != "1" {
			return badEvents("InputJsonInvalid", "Property 'metadataVersion' must be \"1\". Path '[%d].metadataVersion'.", i)
		}
	}
	return nil
}

var ceAttributeRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9]+$`) })

// checkCloudEvent requires specversion "1.0", id, source and type (non-empty strings); time, if
// present, is RFC 3339; data and data_base64 are exclusive; attribute names are lower-case letters
// and digits (data_base64 aside).
func checkCloudEvent(i int, f map[string]json.RawMessage) *topicError {
	if v, ok := stringField(f, "specversion"); !ok || v != "1.0" {
		return badEvents("InputJsonInvalid", "Required attribute 'specversion' must be \"1.0\". Path '[%d].specversion'.", i)
	}
	for _, name := range []string{"id", "source", "type"} {
		if v, ok := stringField(f, name); !ok || v == "" {
			return badEvents("InputJsonInvalid", "Required attribute '%s' was not found or is not a non-empty string. Path '[%d]'.", name, i)
		}
	}
	if _, ok := f["time"]; ok {
		v, ok := stringField(f, "time")
		if _, err := time.Parse(time.RFC3339Nano, v); !ok || err != nil {
			return badEvents("InputJsonInvalid", "Attribute 'time' must be an RFC 3339 timestamp. Path '[%d].time'.", i)
		}
	}
	_, hasData := f["data"]
	_, hasBase64 := f["data_base64"]
	if hasData && hasBase64 {
		return badEvents("InputJsonInvalid", "An event must not carry both 'data' and 'data_base64'. Path '[%d]'.", i)
	}
	for name := range f {
		if name != "data_base64" && !ceAttributeRE().MatchString(name) {
			return badEvents("InputJsonInvalid", "Attribute name %s is invalid: CloudEvents attribute names are lower-case letters and digits. Path '[%d]'.", strconv.Quote(clip(name)), i)
		}
	}
	return nil
}

func stringField(f map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := f[name]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func isJSONObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{'
}

func isJSONNull(b []byte) bool { return string(bytes.TrimSpace(b)) == "null" }

// jsonProblem describes a decoding error briefly, without quoting the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return "found a JSON " + typ.Value + " instead"
	}
	return "invalid JSON"
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
