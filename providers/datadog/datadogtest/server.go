// Package datadogtest is a local Datadog API for tests, following Datadog's documented contract for the
// v2 key-management endpoints and the validation endpoints (docs.datadoghq.com/api/latest/key-management/,
// …/authentication/, …/rate-limits/; the models of DataDog/datadog-api-client-go
// api/v2/datadog/docs/KeyManagementApi.md):
//
//   - authentication by the DD-API-KEY and DD-APPLICATION-KEY headers, which hold key values; an
//     application key acts with its owner's permissions, narrowed to its scopes when it has any. A key
//     Datadog does not know, or a missing permission, is 403 {"errors":["Forbidden"]}.
//   - API keys (organization-wide): GET /api/v2/api_keys[?filter=&page[size]=&page[number]=] →
//     {"data":[{"id","type":"api_keys","attributes":{"name","last4","created_at","modified_at"}}],"meta":…}
//     (api_keys_read); GET /api/v2/api_keys/{id} → {"data":{…,"attributes":{"key",…}}} (api_keys_read);
//     POST /api/v2/api_keys {"data":{"type":"api_keys","attributes":{"name"}}} → 201 with the key
//     (api_keys_write); DELETE /api/v2/api_keys/{id} → 204 (api_keys_delete). 404 for an unknown id.
//   - application keys of the calling key's owner, /api/v2/current_user/application_keys[/{id}]
//     (user_app_keys), and of a service account, /api/v2/service_accounts/{id}/application_keys[/{id}]
//     (service_account_write; 404 for an unknown service account): the same verbs, with "scopes" in
//     the attributes. The value is shown when the key is created; a current-user key's GET shows it
//     only outside One-Time-Read mode (mandatory for organizations created after 2025-08-20, on by
//     default here); a service account's key's GET never does (PartialApplicationKey).
//   - GET /api/v1/validate with DD-API-KEY → {"valid":true}, 403 if the key is invalid; GET
//     /api/v2/validate_keys with both keys → {"status":"ok"}, "401 or 403 otherwise" (which of the two is
//     not specified: here 403 for an unknown API key, 401 for an unknown application key).
//   - errors as {"errors":["…"]}; X-RateLimit-Limit/-Period/-Remaining/-Reset/-Name on every answer, the
//     reset being "time in seconds until next reset"; 429 when throttled.
//
// The message texts are illustrative: Datadog documents the shape of error bodies, not their words.
// Not modelled: the limit on API keys per organization (its answer is not documented) and whether API
// key names must be unique.
//
// Faults a provider must survive can be switched on: keys that fail authentication for their first
// uses (propagation), throttling, outages, slowness, and echoing the key it rejects in error messages.
package datadogtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Key kinds.
const (
	KindAPI         = "api"
	KindApplication = "application"
)

// AdminUser is the user the tests' admin application key belongs to.
const AdminUser = "11111111-2222-4333-8444-555555555555"

// AdminPermissions are the permissions key management needs (API keys, the current user's and
// service accounts' application keys).
var AdminPermissions = []string{"api_keys_read", "api_keys_write", "api_keys_delete", "user_app_keys", "service_account_write"}

// Key is a key the server knows.
type Key struct {
	ID     string
	Kind   string // KindAPI or KindApplication
	Name   string
	Value  string
	Owner  string   // application keys: the user or service account that owns it
	Scopes []string // application keys: nil for none (the owner's permissions)
}

// Request is one request the server received.
type Request struct {
	Method   string
	Path     string
	Query    string
	APIKeyID string // the API key that authenticated, "" if none did
	AppKeyID string // the application key that authenticated, "" if none did
	Status   int
}

// Server is the fake API. Its methods are safe for concurrent use.
type Server struct {
	URL string // base URL, http://127.0.0.1:port

	srv         *httptest.Server
	mu          sync.Mutex
	keys        []*Key
	pending     map[string]int // failed authentications a new key has left
	owners      map[string][]string
	service     map[string]bool // which owners are service accounts
	propagation int
	throttle    int
	reset       time.Duration
	fail        int
	failStatus  int
	delay       time.Duration
	echo        bool
	oneTimeRead bool
	created     int
	log         []Request
}

// NewServer starts a server with the admin user (AdminUser, with AdminPermissions) and no keys.
func NewServer() *Server {
	s := &Server{pending: map[string]int{}, owners: map[string][]string{AdminUser: AdminPermissions},
		service: map[string]bool{}, oneTimeRead: true}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down; calls to URL are refused from then on (Datadog down).
func (s *Server) Close() { s.srv.Close() }

// AddUser adds a user with the given permissions (replacing an existing one's).
func (s *Server) AddUser(id string, permissions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owners[id] = slices.Clone(permissions)
}

// AddServiceAccount adds a service account with the given permissions.
func (s *Server) AddServiceAccount(id string, permissions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owners[id] = slices.Clone(permissions)
	s.service[id] = true
}

// AddAPIKey stores an API key as if made in Datadog's UI (no propagation delay) and returns it.
func (s *Server) AddAPIKey(name string) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.newKey(KindAPI, name, "", nil)
}

// AddAppKey stores an application key of owner with scopes (nil: none) and returns it.
func (s *Server) AddAppKey(name, owner string, scopes []string) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.newKey(KindApplication, name, owner, scopes)
}

// SetPropagation makes every key created through the API from now on fail authentication for its
// first n uses, as a new key does until it has propagated.
func (s *Server) SetPropagation(n int) { s.mu.Lock(); s.propagation = n; s.mu.Unlock() }

// SetOneTimeRead switches One-Time-Read mode (on by default): when off, GET of a current-user
// application key shows its value, as for organizations created before 2025-08-20.
func (s *Server) SetOneTimeRead(on bool) { s.mu.Lock(); s.oneTimeRead = on; s.mu.Unlock() }

// Throttle answers the next n requests with 429 and X-RateLimit-Reset = reset (in seconds).
func (s *Server) Throttle(n int, reset time.Duration) {
	s.mu.Lock()
	s.throttle, s.reset = n, reset
	s.mu.Unlock()
}

// FailNext answers the next n requests with status (e.g. 500, 503) and an error body.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	s.fail, s.failStatus = n, status
	s.mu.Unlock()
}

// SetDelay makes every answer wait d (a slow API, for timeouts).
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// EchoKeys makes error messages repeat the keys the request presented: a careless server, for
// checking that clients never repeat such messages unredacted.
func (s *Server) EchoKeys(on bool) { s.mu.Lock(); s.echo = on; s.mu.Unlock() }

// Keys returns the live keys in creation order.
func (s *Server) Keys() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = *k
		out[i].Scopes = slices.Clone(k.Scopes)
	}
	return out
}

// Key returns the live key with that id.
func (s *Server) Key(id string) (Key, bool) {
	for _, k := range s.Keys() {
		if k.ID == id {
			return k, true
		}
	}
	return Key{}, false
}

// Named returns the live keys with that name.
func (s *Server) Named(name string) []Key {
	var out []Key
	for _, k := range s.Keys() {
		if k.Name == name {
			out = append(out, k)
		}
	}
	return out
}

// Works reports whether value is a live key that authenticates now (propagated).
func (s *Server) Works(value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.byValue(value)
	return k != nil && s.pending[k.ID] == 0
}

// Created counts the keys created through the API.
func (s *Server) Created() int { s.mu.Lock(); defer s.mu.Unlock(); return s.created }

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Count counts the requests received with that method and path.
func (s *Server) Count(method, path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newKey makes a key shaped like Datadog's: API keys are 32 hexadecimal characters, application keys
// 40; ids are UUIDs.
func (s *Server) newKey(kind, name, owner string, scopes []string) *Key {
	n := 32
	if kind == KindApplication {
		n = 40
	}
	k := &Key{ID: newUUID(), Kind: kind, Name: name, Value: randomHex(n), Owner: owner}
	if scopes != nil {
		k.Scopes = slices.Clone(scopes)
	}
	s.keys = append(s.keys, k)
	return k
}

func (s *Server) byValue(v string) *Key {
	for _, k := range s.keys {
		if v != "" && k.Value == v {
			return k
		}
	}
	return nil
}

func (s *Server) byID(id string) (int, *Key) {
	for i, k := range s.keys {
		if k.ID == id {
			return i, k
		}
	}
	return -1, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes Datadog's documented error body, {"errors":["…"]}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string][]string{"errors": {msg}})
}

// authenticate finds the live, propagated key of kind with value v; a key still propagating uses up
// one of its failures.
func (s *Server) authenticate(v, kind string) *Key {
	k := s.byValue(v)
	if k == nil || k.Kind != kind {
		return nil
	}
	if s.pending[k.ID] > 0 {
		s.pending[k.ID]--
		return nil
	}
	return k
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	entry := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
	s.mu.Lock()
	defer func() {
		entry.Status = rec.status
		s.log = append(s.log, entry)
		s.mu.Unlock()
	}()

	h := rec.Header()
	h.Set("X-RateLimit-Limit", "60")
	h.Set("X-RateLimit-Period", "60")
	h.Set("X-RateLimit-Name", "key_management")
	h.Set("X-RateLimit-Reset", "60")
	switch {
	case s.fail > 0:
		s.fail--
		h.Set("X-RateLimit-Remaining", "59")
		writeError(rec, s.failStatus, http.StatusText(s.failStatus))
		return
	case s.throttle > 0:
		s.throttle--
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Reset", strconv.Itoa(int(s.reset/time.Second)))
		writeError(rec, http.StatusTooManyRequests, "Too many requests")
		return
	}
	h.Set("X-RateLimit-Remaining", "59")

	apiValue, appValue := r.Header.Get("DD-API-KEY"), r.Header.Get("DD-APPLICATION-KEY")
	denied := func(status int) {
		msg := "Forbidden"
		if status == http.StatusUnauthorized {
			msg = "Unauthorized"
		}
		if s.echo {
			msg += ": keys " + apiValue + " / " + appValue
		}
		writeError(rec, status, msg)
	}
	path := r.URL.Path

	// The validation endpoints.
	switch path {
	case "/api/v1/validate":
		api := s.authenticate(apiValue, KindAPI)
		if api == nil {
			denied(http.StatusForbidden)
			return
		}
		entry.APIKeyID = api.ID
		writeJSON(rec, http.StatusOK, map[string]bool{"valid": true})
		return
	case "/api/v2/validate_keys":
		api := s.authenticate(apiValue, KindAPI)
		if api == nil {
			denied(http.StatusForbidden)
			return
		}
		entry.APIKeyID = api.ID
		app := s.authenticate(appValue, KindApplication)
		if app == nil {
			denied(http.StatusUnauthorized)
			return
		}
		entry.AppKeyID = app.ID
		writeJSON(rec, http.StatusOK, map[string]string{"status": "ok"})
		return
	}

	// Key management: both keys, and the owner's permissions.
	api := s.authenticate(apiValue, KindAPI)
	var app *Key
	if api != nil {
		entry.APIKeyID = api.ID
		app = s.authenticate(appValue, KindApplication)
	}
	if app == nil {
		denied(http.StatusForbidden)
		return
	}
	entry.AppKeyID = app.ID
	allowed := func(perm string) bool {
		if slices.Contains(s.owners[app.Owner], perm) && (app.Scopes == nil || slices.Contains(app.Scopes, perm)) {
			return true
		}
		writeError(rec, http.StatusForbidden, "Failed permission authorization checks")
		return false
	}

	var kind, owner, rest string
	switch {
	case path == "/api/v2/api_keys" || strings.HasPrefix(path, "/api/v2/api_keys/"):
		kind, rest = KindAPI, strings.TrimPrefix(path, "/api/v2/api_keys")
		perm := map[string]string{http.MethodGet: "api_keys_read", http.MethodPost: "api_keys_write", http.MethodDelete: "api_keys_delete"}[r.Method]
		if perm != "" && !allowed(perm) {
			return
		}
	case path == "/api/v2/current_user/application_keys" || strings.HasPrefix(path, "/api/v2/current_user/application_keys/"):
		kind, owner, rest = KindApplication, app.Owner, strings.TrimPrefix(path, "/api/v2/current_user/application_keys")
		if !allowed("user_app_keys") {
			return
		}
	case strings.HasPrefix(path, "/api/v2/service_accounts/"):
		sa, sub, _ := strings.Cut(strings.TrimPrefix(path, "/api/v2/service_accounts/"), "/")
		if sub != "application_keys" && !strings.HasPrefix(sub, "application_keys/") {
			writeError(rec, http.StatusNotFound, "Not found")
			return
		}
		if !allowed("service_account_write") {
			return
		}
		if !s.service[sa] {
			writeError(rec, http.StatusNotFound, "Service account not found")
			return
		}
		kind, owner, rest = KindApplication, sa, strings.TrimPrefix(sub, "application_keys")
	default:
		writeError(rec, http.StatusNotFound, "Not found")
		return
	}
	id := strings.TrimPrefix(rest, "/")
	switch {
	case rest == "" && r.Method == http.MethodGet:
		s.list(rec, r, kind, owner)
	case rest == "" && r.Method == http.MethodPost:
		s.create(rec, r, kind, owner)
	case strings.HasPrefix(rest, "/") && r.Method == http.MethodGet:
		s.get(rec, kind, owner, id, strings.HasPrefix(path, "/api/v2/service_accounts/"))
	case strings.HasPrefix(rest, "/") && r.Method == http.MethodDelete:
		s.delete(rec, kind, owner, id)
	default:
		writeError(rec, http.StatusMethodNotAllowed, "Method not allowed")
	}
}

// find is the live key id of kind and owner.
func (s *Server) find(kind, owner, id string) (int, *Key) {
	i, k := s.byID(id)
	if k == nil || k.Kind != kind || k.Owner != owner {
		return -1, nil
	}
	return i, k
}

// object is a key as the API shows it: with its value when withKey.
func object(k *Key, withKey bool) map[string]any {
	attrs := map[string]any{"name": k.Name, "last4": k.Value[len(k.Value)-4:], "created_at": "2026-11-01T12:00:00.000000+00:00"}
	typ := "api_keys"
	if k.Kind == KindApplication {
		typ = "application_keys"
		if k.Scopes != nil {
			attrs["scopes"] = k.Scopes
		} else {
			attrs["scopes"] = nil
		}
	} else {
		attrs["modified_at"] = "2026-11-01T12:00:00.000000+00:00"
	}
	if withKey {
		attrs["key"] = k.Value
	}
	return map[string]any{"id": k.ID, "type": typ, "attributes": attrs}
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, kind, owner string) {
	q := r.URL.Query()
	size, number := 10, 0
	if v := q.Get("page[size]"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "page[size] must be between 1 and 100")
			return
		}
		size = n
	}
	if v := q.Get("page[number]"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "page[number] must be a non-negative integer")
			return
		}
		number = n
	}
	filter := strings.ToLower(q.Get("filter"))
	var match []*Key
	for _, k := range s.keys {
		if k.Kind == kind && k.Owner == owner && strings.Contains(strings.ToLower(k.Name), filter) {
			match = append(match, k)
		}
	}
	data := []map[string]any{}
	for i := number * size; i < len(match) && i < (number+1)*size; i++ {
		data = append(data, object(match[i], false))
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": map[string]any{"page": map[string]int{"total_filtered_count": len(match)}}})
}

func (s *Server) get(w http.ResponseWriter, kind, owner, id string, serviceAccount bool) {
	_, k := s.find(kind, owner, id)
	if k == nil {
		writeError(w, http.StatusNotFound, notFound(kind))
		return
	}
	withKey := kind == KindAPI || (!serviceAccount && !s.oneTimeRead)
	writeJSON(w, http.StatusOK, map[string]any{"data": object(k, withKey)})
}

func notFound(kind string) string {
	if kind == KindAPI {
		return "API key not found"
	}
	return "Application key not found"
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, kind, owner string) {
	var body struct {
		Data *struct {
			Type       string `json:"type"`
			Attributes *struct {
				Name   *string   `json:"name"`
				Scopes *[]string `json:"scopes"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "Invalid JSON")
		return
	}
	typ := "api_keys"
	if kind == KindApplication {
		typ = "application_keys"
	}
	switch {
	case body.Data == nil || body.Data.Attributes == nil:
		writeError(w, http.StatusBadRequest, "data.attributes is required")
		return
	case body.Data.Type != typ:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("data.type must be %s", typ))
		return
	case body.Data.Attributes.Name == nil || strings.TrimSpace(*body.Data.Attributes.Name) == "":
		writeError(w, http.StatusBadRequest, "name is required")
		return
	case kind == KindAPI && body.Data.Attributes.Scopes != nil:
		writeError(w, http.StatusBadRequest, "API keys have no scopes")
		return
	}
	var scopes []string
	if body.Data.Attributes.Scopes != nil {
		scopes = *body.Data.Attributes.Scopes
	}
	k := s.newKey(kind, *body.Data.Attributes.Name, owner, scopes)
	s.pending[k.ID] = s.propagation
	s.created++
	writeJSON(w, http.StatusCreated, map[string]any{"data": object(k, true)})
}

func (s *Server) delete(w http.ResponseWriter, kind, owner, id string) {
	i, k := s.find(kind, owner, id)
	if k == nil {
		writeError(w, http.StatusNotFound, notFound(kind))
		return
	}
	s.keys = slices.Delete(s.keys, i, i+1)
	delete(s.pending, id)
	w.WriteHeader(http.StatusNoContent)
}

// recorder remembers the status written.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
