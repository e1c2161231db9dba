// Package openaitest is a local OpenAI API for tests, following OpenAI's documented contract for the
// Administration API's project service accounts and project API keys, and for GET /v1/models:
//
//   - authentication by "Authorization: Bearer <key>". Admin keys (sk-admin-…) call the
//     /v1/organization endpoints; a read-only admin key may only read (403 on POST and DELETE). Project
//     keys (the service accounts', sk-svcacct-…) call /v1/models. An unknown key is a 401
//     invalid_api_key; a project key on an admin endpoint, or an admin key on /v1/models, a 403;
//   - GET /v1/organization/projects/{project}/service_accounts?limit=&after= → {"object":"list","data":
//     [{"object":"organization.project.service_account","id","name","role","created_at"}],"first_id",
//     "last_id","has_more"} (limit 1-100, default 20);
//     POST …/service_accounts {"name","expires_in_seconds"?,"create_service_account_only"?} → 200
//     {"object","id","name","role":"member","created_at","api_key":{"object":
//     "organization.project.service_account.api_key","id","name","value","created_at","expires_at"}}:
//     the only answer that holds a key's value; names need not be unique;
//     GET …/service_accounts/{id} → the account (404 if absent);
//     DELETE …/service_accounts/{id} → {"object":"organization.project.service_account.deleted","id",
//     "deleted":true} (404 if absent), and its keys stop working;
//     GET …/projects/{project}/api_keys?limit=&after= → the project's keys, each with its
//     "redacted_value" ("sk-svcac...wxyz") and "owner":{"type":"service_account","service_account":{…}};
//     an unknown project is a 404;
//   - GET /v1/models → {"object":"list","data":[{"id","object":"model","created","owned_by"}]};
//   - errors as {"error":{"message","type","param","code"}}; x-request-id and x-ratelimit-limit-requests,
//     x-ratelimit-remaining-requests, x-ratelimit-reset-requests on every answer; 429 when throttled
//     (code rate_limit_exceeded, with retry-after) or out of quota (type and code insufficient_quota).
//
// Faults a provider must survive can be switched on: keys that fail authentication for their first
// calls (propagation), throttling, exhausted quota, outages, slowness, a key-expiry policy, and echoing
// the key it rejects in error messages.
package openaitest

import (
	"crypto/rand"
	"encoding/base64"
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

// MaxExpiresInSeconds is OpenAI's limit on expires_in_seconds: one year.
const MaxExpiresInSeconds = 31_536_000

// ServiceAccount is a project service account the server knows, with its key.
type ServiceAccount struct {
	ID        string
	Project   string
	Name      string
	Role      string // "member", or "none" when created with create_service_account_only
	CreatedAt int64
	// Key is the service account's API key; zero when it was created without one.
	Key Key
}

// Key is a service account's API key.
type Key struct {
	ID        string
	Value     string
	ExpiresAt int64 // unix seconds; 0: no expiry
}

// Redacted is a key value as OpenAI lists it: its first eight characters, "...", its last four.
func Redacted(value string) string {
	if len(value) < 16 {
		return "sk-..."
	}
	return value[:8] + "..." + value[len(value)-4:]
}

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Query  string
	Admin  bool   // an admin key authenticated it
	KeyOf  string // the service account whose key authenticated it, "" if none did
	Status int    // the status answered
}

// Server is the fake API. Its methods are safe for concurrent use.
type Server struct {
	URL string // base URL, http://127.0.0.1:port (the paths start with /v1)

	srv *httptest.Server
	mu  sync.Mutex

	projects    map[string]bool
	admins      map[string]bool // admin key value → may write
	accounts    []*ServiceAccount
	pending     map[string]int // failed authentications a new key has left, by account id
	propagation int
	maxLifetime int64 // the key-expiry policy: seconds, 0 for none
	throttle    int
	reset       time.Duration
	quota       bool
	fail        int
	failStatus  int
	delay       time.Duration
	echo        bool
	created     int
	log         []Request
}

// NewServer starts a server with no projects, keys or service accounts. Close it when done.
func NewServer() *Server {
	s := &Server{projects: map[string]bool{}, admins: map[string]bool{}, pending: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down; calls to URL are refused from then on (OpenAI down).
func (s *Server) Close() { s.srv.Close() }

func random(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

func randomHex(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// AddProject makes a project and returns its id (proj_…).
func (s *Server) AddProject() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := randomHex("proj_", 12)
	s.projects[id] = true
	return id
}

// AddAdminKey makes an organization admin key (sk-admin-…), read-only or with write permission, and
// returns its value.
func (s *Server) AddAdminKey(write bool) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := random("sk-admin-", 48)
	s.admins[v] = write
	return v
}

// RevokeAdminKey deletes an admin key.
func (s *Server) RevokeAdminKey(value string) { s.mu.Lock(); delete(s.admins, value); s.mu.Unlock() }

// AddServiceAccount stores a service account with a key as if it had been made in OpenAI's UI (no
// propagation delay) and returns it.
func (s *Server) AddServiceAccount(project, name string) ServiceAccount {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.newAccount(project, name, true, 0)
}

// SetPropagation makes every key created through the API from now on fail authentication (401) for
// its first n calls, as a new key may until it has propagated.
func (s *Server) SetPropagation(n int) { s.mu.Lock(); s.propagation = n; s.mu.Unlock() }

// SetMaxKeyLifetime sets a key-expiry policy: creating a service account then needs
// expires_in_seconds, at most d (0: no policy).
func (s *Server) SetMaxKeyLifetime(d time.Duration) {
	s.mu.Lock()
	s.maxLifetime = int64(d / time.Second)
	s.mu.Unlock()
}

// Throttle answers the next n requests with 429 rate_limit_exceeded, retry-after and
// x-ratelimit-reset-requests = reset.
func (s *Server) Throttle(n int, reset time.Duration) {
	s.mu.Lock()
	s.throttle, s.reset = n, reset
	s.mu.Unlock()
}

// ExhaustQuota makes every request a 429 insufficient_quota while on.
func (s *Server) ExhaustQuota(on bool) { s.mu.Lock(); s.quota = on; s.mu.Unlock() }

// FailNext answers the next n requests with status (e.g. 500, 503) and an error body.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	s.fail, s.failStatus = n, status
	s.mu.Unlock()
}

// SetDelay makes every answer wait d (a slow API, for timeouts).
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// EchoKeys makes error messages repeat the bearer key the request presented, whole: a careless
// server, for checking that clients never repeat such messages unredacted.
func (s *Server) EchoKeys(on bool) { s.mu.Lock(); s.echo = on; s.mu.Unlock() }

// ServiceAccounts returns the live service accounts of a project, in creation order.
func (s *Server) ServiceAccounts(project string) []ServiceAccount {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ServiceAccount
	for _, a := range s.accounts {
		if a.Project == project {
			out = append(out, *a)
		}
	}
	return out
}

// ServiceAccount returns the live service account with that id.
func (s *Server) ServiceAccount(id string) (ServiceAccount, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, a := s.byID(id); a != nil {
		return *a, true
	}
	return ServiceAccount{}, false
}

// Named returns the live service accounts of a project with that name (names need not be unique).
func (s *Server) Named(project, name string) []ServiceAccount {
	var out []ServiceAccount
	for _, a := range s.ServiceAccounts(project) {
		if a.Name == name {
			out = append(out, a)
		}
	}
	return out
}

// Works reports whether value is the key of a live service account and authenticates now (propagated,
// not expired).
func (s *Server) Works(value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.byKey(value)
	return a != nil && s.pending[a.ID] == 0
}

// Created counts the service accounts created through the API.
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

// newAccount makes a service account, with a key unless withKey is false.
func (s *Server) newAccount(project, name string, withKey bool, expiresIn int64) *ServiceAccount {
	now := time.Now().Unix()
	a := &ServiceAccount{ID: randomHex("svc_acct_", 12), Project: project, Name: name, Role: "member", CreatedAt: now}
	if withKey {
		a.Key = Key{ID: randomHex("key_", 12), Value: random("sk-svcacct-", 96)}
		if expiresIn > 0 {
			a.Key.ExpiresAt = now + expiresIn
		}
	} else {
		a.Role = "none"
	}
	s.accounts = append(s.accounts, a)
	return a
}

func (s *Server) byKey(v string) *ServiceAccount {
	if v == "" {
		return nil
	}
	now := time.Now().Unix()
	for _, a := range s.accounts {
		if a.Key.Value == v && (a.Key.ExpiresAt == 0 || a.Key.ExpiresAt > now) {
			return a
		}
	}
	return nil
}

func (s *Server) byID(id string) (int, *ServiceAccount) {
	for i, a := range s.accounts {
		if a.ID == id {
			return i, a
		}
	}
	return -1, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes OpenAI's error shape; param and code are null when empty.
func writeError(w http.ResponseWriter, status int, typ, code, param, msg string) {
	e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	if param != "" {
		e["param"] = param
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// shown is a key as OpenAI's 401 quotes it: its first characters and last four, the rest starred.
func shown(key string) string {
	if len(key) < 12 {
		return "****"
	}
	return key[:3] + strings.Repeat("*", 8) + key[len(key)-4:]
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
	h.Set("x-request-id", randomHex("req_", 16))
	h.Set("x-ratelimit-limit-requests", "500")
	h.Set("x-ratelimit-reset-requests", "120ms")
	switch {
	case s.fail > 0:
		s.fail--
		h.Set("x-ratelimit-remaining-requests", "499")
		writeError(rec, s.failStatus, "server_error", "", "", "The server had an error while processing your request. Sorry about that!")
		return
	case s.throttle > 0:
		s.throttle--
		h.Set("x-ratelimit-remaining-requests", "0")
		h.Set("x-ratelimit-reset-requests", s.reset.String())
		h.Set("retry-after", strconv.Itoa(int((s.reset+time.Second-1)/time.Second)))
		writeError(rec, http.StatusTooManyRequests, "requests", "rate_limit_exceeded", "", "Rate limit reached for requests. Please try again later.")
		return
	case s.quota:
		writeError(rec, http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota", "",
			"You exceeded your current quota, please check your plan and billing details.")
		return
	}
	h.Set("x-ratelimit-remaining-requests", "499")

	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	write, admin := s.admins[token]
	sa := s.byKey(token)
	if !admin && (sa == nil || s.pending[sa.ID] > 0) {
		if sa != nil {
			s.pending[sa.ID]--
		}
		msg := "Incorrect API key provided: " + shown(token) + ". You can find your API key at https://platform.openai.com/account/api-keys."
		if s.echo {
			msg = "Incorrect API key provided: " + token + "."
		}
		writeError(rec, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "", msg)
		return
	}
	entry.Admin = admin
	if sa != nil {
		entry.KeyOf = sa.ID
	}
	forbid := func(msg string) {
		if s.echo {
			msg += " (key " + token + ")"
		}
		writeError(rec, http.StatusForbidden, "invalid_request_error", "", "", msg)
	}

	path := r.URL.Path
	if path == "/v1/models" {
		switch {
		case r.Method != http.MethodGet:
			writeError(rec, http.StatusMethodNotAllowed, "invalid_request_error", "", "", "Method not allowed.")
		case admin:
			forbid("Admin API keys cannot be used for this endpoint.")
		default:
			writeJSON(rec, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
				{"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
				{"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"},
			}})
		}
		return
	}
	rest, ok := strings.CutPrefix(path, "/v1/organization/projects/")
	if !ok {
		writeError(rec, http.StatusNotFound, "invalid_request_error", "", "", "Invalid URL ("+r.Method+" "+path+")")
		return
	}
	if !admin {
		forbid("You have insufficient permissions for this operation. Missing scopes: api.management.read. Admin API keys are required.")
		return
	}
	project, sub, _ := strings.Cut(rest, "/")
	if (r.Method == http.MethodPost || r.Method == http.MethodDelete) && !write {
		forbid("You have insufficient permissions for this operation. Missing scopes: api.management.write.")
		return
	}
	if !s.projects[project] {
		writeError(rec, http.StatusNotFound, "invalid_request_error", "", "", "No such project: '"+project+"'")
		return
	}
	switch id, one := strings.CutPrefix(sub, "service_accounts/"); {
	case sub == "service_accounts" && r.Method == http.MethodGet:
		s.listAccounts(rec, r, project)
	case sub == "service_accounts" && r.Method == http.MethodPost:
		s.create(rec, r, project)
	case one && r.Method == http.MethodGet:
		s.get(rec, project, id)
	case one && r.Method == http.MethodDelete:
		s.delete(rec, project, id)
	case sub == "api_keys" && r.Method == http.MethodGet:
		s.listKeys(rec, r, project)
	case sub == "service_accounts" || one || sub == "api_keys":
		writeError(rec, http.StatusMethodNotAllowed, "invalid_request_error", "", "", "Method not allowed.")
	default:
		writeError(rec, http.StatusNotFound, "invalid_request_error", "", "", "Invalid URL ("+r.Method+" "+path+")")
	}
}

// accountJSON is a service account as the API shows it.
func accountJSON(a *ServiceAccount) map[string]any {
	return map[string]any{"object": "organization.project.service_account", "id": a.ID, "name": a.Name, "role": a.Role, "created_at": a.CreatedAt}
}

// paginate answers one page of items (ids by id) as OpenAI's list endpoints do.
func paginate(w http.ResponseWriter, r *http.Request, items []map[string]any) {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "", "limit", "Invalid 'limit': must be an integer between 1 and 100.")
			return
		}
		limit = n
	}
	start := 0
	if after := r.URL.Query().Get("after"); after != "" {
		start = -1
		for i, it := range items {
			if it["id"] == after {
				start = i + 1
			}
		}
		if start < 0 {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "", "after", "Invalid 'after': no such object.")
			return
		}
	}
	end := min(start+limit, len(items))
	data := items[start:end]
	body := map[string]any{"object": "list", "data": data, "has_more": end < len(items), "first_id": nil, "last_id": nil}
	if len(data) > 0 {
		body["first_id"], body["last_id"] = data[0]["id"], data[len(data)-1]["id"]
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, project string) {
	items := []map[string]any{}
	for _, a := range s.accounts {
		if a.Project == project {
			items = append(items, accountJSON(a))
		}
	}
	paginate(w, r, items)
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, project string) {
	items := []map[string]any{}
	for _, a := range s.accounts {
		if a.Project != project || a.Key.Value == "" {
			continue
		}
		owner := map[string]any{"id": a.ID, "name": a.Name, "role": a.Role, "created_at": a.CreatedAt}
		items = append(items, map[string]any{"object": "organization.project.api_key", "id": a.Key.ID, "name": "Secret key",
			"redacted_value": Redacted(a.Key.Value), "created_at": a.CreatedAt, "last_used_at": nil, "owner_project_access": "active",
			"owner": map[string]any{"type": "service_account", "service_account": owner}})
	}
	paginate(w, r, items)
}

func (s *Server) get(w http.ResponseWriter, project, id string) {
	_, a := s.byID(id)
	if a == nil || a.Project != project {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "", "No such service account: '"+id+"'")
		return
	}
	writeJSON(w, http.StatusOK, accountJSON(a))
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, project string) {
	var body struct {
		Name      *string `json:"name"`
		Only      *bool   `json:"create_service_account_only"`
		ExpiresIn *int64  `json:"expires_in_seconds"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "", "We could not parse the JSON body of your request.")
		return
	}
	only := body.Only != nil && *body.Only
	switch {
	case body.Name == nil || strings.TrimSpace(*body.Name) == "":
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "name", "Missing required parameter: 'name'.")
		return
	case body.ExpiresIn != nil && only:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "expires_in_seconds",
			"'expires_in_seconds' cannot be set when 'create_service_account_only' is true.")
		return
	case body.ExpiresIn != nil && (*body.ExpiresIn < 1 || *body.ExpiresIn > MaxExpiresInSeconds):
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "expires_in_seconds",
			fmt.Sprintf("Invalid 'expires_in_seconds': must be between 1 and %d.", MaxExpiresInSeconds))
		return
	case s.maxLifetime > 0 && !only && (body.ExpiresIn == nil || *body.ExpiresIn > s.maxLifetime):
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "expires_in_seconds",
			fmt.Sprintf("Your organization's API key policy requires 'expires_in_seconds' of at most %d.", s.maxLifetime))
		return
	}
	var expiresIn int64
	if body.ExpiresIn != nil {
		expiresIn = *body.ExpiresIn
	}
	a := s.newAccount(project, *body.Name, !only, expiresIn)
	s.pending[a.ID] = s.propagation
	s.created++
	out := accountJSON(a)
	out["api_key"] = nil
	if !only {
		key := map[string]any{"object": "organization.project.service_account.api_key", "id": a.Key.ID, "name": "Secret key",
			"value": a.Key.Value, "created_at": a.CreatedAt, "expires_at": nil}
		if a.Key.ExpiresAt != 0 {
			key["expires_at"] = a.Key.ExpiresAt
		}
		out["api_key"] = key
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) delete(w http.ResponseWriter, project, id string) {
	i, a := s.byID(id)
	if a == nil || a.Project != project {
		writeError(w, http.StatusNotFound, "invalid_request_error", "", "", "No such service account: '"+id+"'")
		return
	}
	s.accounts = slices.Delete(s.accounts, i, i+1)
	delete(s.pending, id)
	writeJSON(w, http.StatusOK, map[string]any{"object": "organization.project.service_account.deleted", "id": id, "deleted": true})
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
