// Package sendgridtest is a local SendGrid v3 API for tests, following SendGrid's documented contract
// for the API-key endpoints and /v3/scopes:
//
//   - authentication by "Authorization: Bearer <key>"; each key has scopes, and the api_keys endpoints
//     need api_keys.read, api_keys.create or api_keys.delete (403 "access forbidden" otherwise);
//   - GET /v3/api_keys[?limit=N] → {"result":[{"api_key_id","name"}]};
//     GET /v3/api_keys/{id} → {"api_key_id","name","scopes"} (404 if absent);
//     POST /v3/api_keys {"name","scopes"?} → 201 {"api_key","api_key_id","name","scopes"}: the only
//     answer that holds a key's value; without scopes the key gets full access; names need not be unique;
//     at most 100 keys per account (403 past it);
//     DELETE /v3/api_keys/{id} → 204 (404 if absent);
//     GET /v3/scopes → {"scopes":[…]} of the key that calls it (any key may);
//   - errors as {"errors":[{"field":…,"message":…}]}; X-RateLimit-Limit/Remaining/Reset on every answer,
//     429 when throttled.
//
// Faults a provider must survive can be switched on: keys that fail authentication for their first
// calls (propagation), throttling, outages, slowness, and echoing the key it rejects in error messages.
package sendgridtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AdminScopes are the scopes an admin key needs to manage keys.
var AdminScopes = []string{"api_keys.create", "api_keys.delete", "api_keys.read", "api_keys.update"}

// FullAccess is what a key created without scopes gets (an excerpt of SendGrid's list).
var FullAccess = []string{"alerts.create", "alerts.delete", "alerts.read", "alerts.update",
	"api_keys.create", "api_keys.delete", "api_keys.read", "api_keys.update",
	"mail.batch.create", "mail.batch.read", "mail.send", "stats.read", "templates.read", "user.profile.read"}

// DefaultMaxKeys is SendGrid's documented limit of API keys per account.
const DefaultMaxKeys = 100

// Key is an API key the server knows.
type Key struct {
	ID     string
	Name   string
	Value  string
	Scopes []string
}

// Request is one request the server received.
type Request struct {
	Method     string
	Path       string
	Query      string
	OnBehalfOf string // the on-behalf-of header
	KeyID      string // the key that authenticated, "" if none did
	Status     int    // the status answered
}

// Server is the fake API. Its methods are safe for concurrent use.
type Server struct {
	URL string // base URL, http://127.0.0.1:port

	srv *httptest.Server
	mu  sync.Mutex
	// keys in creation order; pending counts the failed authentications a new key has left.
	keys        []*Key
	pending     map[string]int
	propagation int
	maxKeys     int
	throttle    int
	reset       time.Duration
	fail        int
	failStatus  int
	delay       time.Duration
	echo        bool
	wrapped     bool
	created     int
	log         []Request
}

// NewServer starts a server with no keys. Close it when done.
func NewServer() *Server {
	s := &Server{pending: map[string]int{}, maxKeys: DefaultMaxKeys}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down; calls to URL are refused from then on (SendGrid down).
func (s *Server) Close() { s.srv.Close() }

// AddKey stores a key as if it had been made in SendGrid's UI (no propagation delay) and returns it.
func (s *Server) AddKey(name string, scopes ...string) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.newKey(name, scopes)
}

// SetPropagation makes every key created through the API from now on fail authentication (401) for
// its first n calls, as a new SendGrid key does until it has propagated.
func (s *Server) SetPropagation(n int) { s.mu.Lock(); s.propagation = n; s.mu.Unlock() }

// SetMaxKeys changes the account's key limit (default DefaultMaxKeys).
func (s *Server) SetMaxKeys(n int) { s.mu.Lock(); s.maxKeys = n; s.mu.Unlock() }

// Throttle answers the next n requests with 429 and X-RateLimit-Reset = now + reset.
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

// EchoKeys makes error messages repeat the bearer key the request presented: a careless server, for
// checking that clients never repeat such messages unredacted.
func (s *Server) EchoKeys(on bool) { s.mu.Lock(); s.echo = on; s.mu.Unlock() }

// WrapKeyDetails makes GET /v3/api_keys/{id} answer in the form of SendGrid's OpenAPI document,
// {"result":[{"api_key_id","name","scopes"}]}, instead of the bare object.
func (s *Server) WrapKeyDetails(on bool) { s.mu.Lock(); s.wrapped = on; s.mu.Unlock() }

// Keys returns the live keys in creation order.
func (s *Server) Keys() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = *k
		out[i].Scopes = append([]string{}, k.Scopes...)
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

// Named returns the live keys with that name (names need not be unique).
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

func randomPart(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newKey makes a key shaped like SendGrid's: "SG." + 22-character id + "." + 43 characters, 69 in all.
func (s *Server) newKey(name string, scopes []string) *Key {
	id := randomPart(16)
	k := &Key{ID: id, Name: name, Value: "SG." + id + "." + randomPart(32), Scopes: append([]string{}, scopes...)}
	s.keys = append(s.keys, k)
	return k
}

func (s *Server) byValue(v string) *Key {
	for _, k := range s.keys {
		if k.Value == v {
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

type apiError struct {
	Field   *string `json:"field"`
	Message string  `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, field, msg string) {
	e := apiError{Message: msg}
	if field != "" {
		e.Field = &field
	}
	writeJSON(w, status, map[string][]apiError{"errors": {e}})
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
	entry := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, OnBehalfOf: r.Header.Get("on-behalf-of")}
	s.mu.Lock()
	defer func() {
		entry.Status = rec.status
		s.log = append(s.log, entry)
		s.mu.Unlock()
	}()

	reset := time.Now().Add(time.Minute)
	if s.throttle > 0 {
		reset = time.Now().Add(s.reset)
	}
	h := rec.Header()
	h.Set("X-RateLimit-Limit", "600")
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	switch {
	case s.fail > 0:
		s.fail--
		h.Set("X-RateLimit-Remaining", "599")
		writeError(rec, s.failStatus, "", strings.ToLower(http.StatusText(s.failStatus)))
		return
	case s.throttle > 0:
		s.throttle--
		h.Set("X-RateLimit-Remaining", "0")
		writeError(rec, http.StatusTooManyRequests, "", "too many requests")
		return
	}
	h.Set("X-RateLimit-Remaining", "599")

	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	k := s.byValue(token)
	if !ok || k == nil || s.pending[k.ID] > 0 {
		if k != nil && s.pending[k.ID] > 0 {
			s.pending[k.ID]--
		}
		msg := "authorization required"
		if s.echo {
			msg += ": the key " + token + " is not valid"
		}
		writeError(rec, http.StatusUnauthorized, "", msg)
		return
	}
	entry.KeyID = k.ID
	allowed := func(scope string) bool {
		if slices.Contains(k.Scopes, scope) {
			return true
		}
		msg := "access forbidden"
		if s.echo {
			msg += " for key " + token
		}
		writeError(rec, http.StatusForbidden, "", msg)
		return false
	}

	path := r.URL.Path
	switch {
	case path == "/v3/scopes" && r.Method == http.MethodGet:
		writeJSON(rec, http.StatusOK, map[string][]string{"scopes": k.Scopes})
	case path == "/v3/api_keys" && r.Method == http.MethodGet:
		if allowed("api_keys.read") {
			s.list(rec, r)
		}
	case path == "/v3/api_keys" && r.Method == http.MethodPost:
		if allowed("api_keys.create") {
			s.create(rec, r)
		}
	case strings.HasPrefix(path, "/v3/api_keys/") && r.Method == http.MethodGet:
		if allowed("api_keys.read") {
			s.get(rec, strings.TrimPrefix(path, "/v3/api_keys/"))
		}
	case strings.HasPrefix(path, "/v3/api_keys/") && r.Method == http.MethodDelete:
		if allowed("api_keys.delete") {
			s.delete(rec, strings.TrimPrefix(path, "/v3/api_keys/"))
		}
	case path == "/v3/scopes" || path == "/v3/api_keys" || strings.HasPrefix(path, "/v3/api_keys/"):
		writeError(rec, http.StatusMethodNotAllowed, "", "method not allowed")
	default:
		writeError(rec, http.StatusNotFound, "", "not found")
	}
}

type summary struct {
	ID   string `json:"api_key_id"`
	Name string `json:"name"`
}

type details struct {
	ID     string   `json:"api_key_id"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	limit := len(s.keys)
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit", "limit must be a positive integer")
			return
		}
		limit = min(n, limit)
	}
	out := []summary{}
	for _, k := range s.keys[:limit] {
		out = append(out, summary{k.ID, k.Name})
	}
	writeJSON(w, http.StatusOK, map[string][]summary{"result": out})
}

func (s *Server) get(w http.ResponseWriter, id string) {
	_, k := s.byID(id)
	if k == nil {
		writeError(w, http.StatusNotFound, "", "unable to find API Key")
		return
	}
	d := details{k.ID, k.Name, k.Scopes}
	if s.wrapped {
		writeJSON(w, http.StatusOK, map[string][]details{"result": {d}})
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name   *string   `json:"name"`
		Scopes *[]string `json:"scopes"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "", "invalid JSON")
		return
	}
	if body.Name == nil || strings.TrimSpace(*body.Name) == "" {
		writeError(w, http.StatusBadRequest, "name", "missing required argument")
		return
	}
	if len(s.keys) >= s.maxKeys {
		writeError(w, http.StatusForbidden, "", "you have reached the maximum number of API keys ("+strconv.Itoa(s.maxKeys)+")")
		return
	}
	scopes := FullAccess
	if body.Scopes != nil {
		scopes = *body.Scopes
	}
	k := s.newKey(*body.Name, scopes)
	s.pending[k.ID] = s.propagation
	s.created++
	writeJSON(w, http.StatusCreated, map[string]any{"api_key": k.Value, "api_key_id": k.ID, "name": k.Name, "scopes": k.Scopes})
}

func (s *Server) delete(w http.ResponseWriter, id string) {
	i, k := s.byID(id)
	if k == nil {
		writeError(w, http.StatusNotFound, "", "unable to find API Key")
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
