// Package twiliotest is a local Twilio API for tests — both hosts, iam.twilio.com (the Key resource v1)
// and api.twilio.com (2010-04-01), on one server — following Twilio's documented contract
// (twilio.com/docs/iam/api-keys/key-resource-v1, …/restricted-api-keys, /docs/usage/requests-to-twilio,
// /docs/usage/twilios-response, /docs/api/errors/20003, 20404, 20429 and 403; the models of
// twilio/twilio-go rest/iam/v1):
//
//   - HTTP Basic authentication as an Account SID and Auth Token, or an API key SID and secret. Main
//     keys and the Auth Token may do anything in their account; Standard keys anything but the
//     Accounts and Keys resources; Restricted keys what their policy allows. Credentials Twilio does
//     not accept — wrong, deleted, of another account, or a Standard key on /Accounts or /v1/Keys
//     (error 20003's causes; twilio/twilio-python#259 shows a Standard key reading its account) — are
//     401 {"code":20003,"message":"Authenticate",…}; a Restricted key without the permission is 403.
//   - POST /v1/Keys, form-encoded AccountSid (required), FriendlyName (up to 64 characters), KeyType
//     (restricted) and Policy (a JSON object, required for a restricted key) → 201
//     {"sid","friendly_name","date_created","date_updated","secret","policy"}: the only answer with the
//     secret. GET /v1/Keys?AccountSid=…[&PageSize=…(1-1000, default 50)&PageToken=…] →
//     {"keys":[…],"meta":{"page","page_size","first_page_url","previous_page_url","url","next_page_url","key":"keys"}}.
//     GET /v1/Keys/{sid} → the key without its secret; DELETE /v1/Keys/{sid} → 204; 404 (20404) for an
//     unknown SID.
//   - GET /2010-04-01/Accounts/{AccountSid}/Messages.json[?PageSize=…] → a page of messages (none here;
//     a Restricted key needs /twilio/messaging/messages/read), …/Balance.json → {"account_sid",
//     "balance","currency"}, /2010-04-01/Accounts/{AccountSid}.json → the account (Main credentials only).
//   - errors as {"code","message","more_info","status"}, a Twilio-Request-Id header on every answer;
//     429 with code 20429 when throttled ("safe to retry after backing off").
//
// Illustrative, not documented: the codes of validation errors (400, 20001 here), the 403 body's code
// (20403 here), the permission a Restricted key needs for Balance.json (BalancePermission), and the
// Retry-After header on a 429 (sent only when Throttle is given a wait; Twilio's error page advises
// backing off without naming a header).
//
// Faults a provider must survive can be switched on: keys that fail authentication for their first
// uses (propagation), throttling, outages, slowness, and echoing the credentials it rejects.
package twiliotest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Key types.
const (
	TypeMain       = "main"
	TypeStandard   = "standard"
	TypeRestricted = "restricted"
)

// Permissions a Restricted key's policy may allow, as the fake checks them.
const (
	// MessagesPermission is the documented permission to read messages (the Key resource's example
	// policy).
	MessagesPermission = "/twilio/messaging/messages/read"
	// BalancePermission is the fake's permission for Balance.json (illustrative).
	BalancePermission = "/twilio/api/balance/read"
)

const created = "Mon, 13 Jun 2016 22:50:08 +0000"

// Account is a Twilio account.
type Account struct {
	SID       string // AC…
	AuthToken string
}

// Credentials is the account's "SID:AuthToken".
func (a Account) Credentials() string { return a.SID + ":" + a.AuthToken }

// Key is an API key the server knows.
type Key struct {
	SID          string // SK…
	Account      string
	FriendlyName string
	Secret       string
	Type         string          // TypeMain, TypeStandard or TypeRestricted
	Policy       json.RawMessage // restricted keys' policy, {"allow":[…]}
}

// Value is the key as Basic credentials, "SID:secret".
func (k Key) Value() string { return k.SID + ":" + k.Secret }

// Request is one request the server received.
type Request struct {
	Method string
	Path   string
	Query  string
	Form   url.Values
	User   string // the Basic user that authenticated, "" if none did
	Status int
}

// Server is the fake API. Its methods are safe for concurrent use.
type Server struct {
	URL     string // base URL of both hosts, http://127.0.0.1:port
	Account Account

	srv         *httptest.Server
	mu          sync.Mutex
	accounts    []Account
	keys        []*Key
	pending     map[string]int
	propagation int
	throttle    int
	retryAfter  time.Duration
	fail        int
	failStatus  int
	delay       time.Duration
	echo        bool
	created     int
	log         []Request
}

// NewServer starts a server with one account (Server.Account) and no keys.
func NewServer() *Server {
	s := &Server{pending: map[string]int{}}
	s.Account = s.AddAccount()
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close shuts the server down; calls to URL are refused from then on (Twilio down).
func (s *Server) Close() { s.srv.Close() }

// AddAccount adds another account (a subaccount, say) and returns it.
func (s *Server) AddAccount() Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := Account{SID: "AC" + randomHex(32), AuthToken: randomHex(32)}
	s.accounts = append(s.accounts, a)
	return a
}

// AddKey stores a key of the given type in account as if made in the Console (no propagation delay).
// policy is for restricted keys.
func (s *Server) AddKey(account, typ, name string, policy json.RawMessage) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.newKey(account, typ, name, policy)
}

// SetPropagation makes every key created through the API from now on fail authentication (401) for
// its first n uses.
func (s *Server) SetPropagation(n int) { s.mu.Lock(); s.propagation = n; s.mu.Unlock() }

// Throttle answers the next n requests with 429 (code 20429), with Retry-After when retryAfter > 0.
func (s *Server) Throttle(n int, retryAfter time.Duration) {
	s.mu.Lock()
	s.throttle, s.retryAfter = n, retryAfter
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

// EchoKeys makes error messages repeat the credentials the request presented: a careless server, for
// checking that clients never repeat such messages unredacted.
func (s *Server) EchoKeys(on bool) { s.mu.Lock(); s.echo = on; s.mu.Unlock() }

// Keys returns the live keys in creation order.
func (s *Server) Keys() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = *k
	}
	return out
}

// Key returns the live key with that SID.
func (s *Server) Key(sid string) (Key, bool) {
	for _, k := range s.Keys() {
		if k.SID == sid {
			return k, true
		}
	}
	return Key{}, false
}

// Named returns the live keys with that FriendlyName.
func (s *Server) Named(name string) []Key {
	var out []Key
	for _, k := range s.Keys() {
		if k.FriendlyName == name {
			out = append(out, k)
		}
	}
	return out
}

// Works reports whether value ("SID:secret") is a live key that authenticates now (propagated).
func (s *Server) Works(value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sid, secret, _ := strings.Cut(value, ":")
	_, k := s.byID(sid)
	return k != nil && k.Secret == secret && s.pending[sid] == 0
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
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newKey makes a key shaped like Twilio's: SK + 32 hexadecimal digits, a 32-character secret.
func (s *Server) newKey(account, typ, name string, policy json.RawMessage) *Key {
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	k := &Key{SID: "SK" + randomHex(32), Account: account, FriendlyName: name, Secret: base64.RawURLEncoding.EncodeToString(secret), Type: typ}
	if typ == TypeRestricted {
		k.Policy = slices.Clone(policy)
	}
	s.keys = append(s.keys, k)
	return k
}

func (s *Server) byID(sid string) (int, *Key) {
	for i, k := range s.keys {
		if k.SID == sid {
			return i, k
		}
	}
	return -1, nil
}

// principal is who a request authenticated as.
type principal struct {
	user    string
	account string
	main    bool // the Auth Token or a Main key
	key     *Key // nil for the Auth Token
}

// allows reports whether a restricted key's policy allows perm (others are not restricted).
func (p principal) allows(perm string) bool {
	if p.key == nil || p.key.Type != TypeRestricted {
		return true
	}
	var pol struct {
		Allow []string `json:"allow"`
	}
	_ = json.Unmarshal(p.key.Policy, &pol)
	return slices.Contains(pol.Allow, perm)
}

func (s *Server) authenticate(r *http.Request) *principal {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil
	}
	for _, a := range s.accounts {
		if a.SID == user && a.AuthToken == pass {
			return &principal{user: user, account: a.SID, main: true}
		}
	}
	_, k := s.byID(user)
	if k == nil || k.Secret != pass {
		return nil
	}
	if s.pending[k.SID] > 0 {
		s.pending[k.SID]--
		return nil
	}
	return &principal{user: user, account: k.Account, main: k.Type == TypeMain, key: k}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes Twilio's error body.
func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg, "more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code), "status": status})
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
	_ = r.ParseForm()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	entry := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Form: r.PostForm}
	s.mu.Lock()
	defer func() {
		entry.Status = rec.status
		s.log = append(s.log, entry)
		s.mu.Unlock()
	}()
	rec.Header().Set("Twilio-Request-Id", "RQ"+randomHex(32))

	switch {
	case s.fail > 0:
		s.fail--
		writeError(rec, s.failStatus, 20000+s.failStatus, http.StatusText(s.failStatus))
		return
	case s.throttle > 0:
		s.throttle--
		if s.retryAfter > 0 {
			rec.Header().Set("Retry-After", strconv.Itoa(int(s.retryAfter/time.Second)))
		}
		writeError(rec, http.StatusTooManyRequests, 20429, "Too Many Requests")
		return
	}

	p := s.authenticate(r)
	denied := func() {
		msg := "Authenticate"
		if s.echo {
			user, pass, _ := r.BasicAuth()
			msg += ": " + user + ":" + pass + " is not valid"
		}
		writeError(rec, http.StatusUnauthorized, 20003, msg)
	}
	if p == nil {
		denied()
		return
	}
	entry.User = p.user

	path := r.URL.Path
	switch {
	case path == "/v1/Keys" || strings.HasPrefix(path, "/v1/Keys/"):
		if !p.main {
			denied() // "a Standard API key for an endpoint that requires a Main API key, such as /Accounts or /v1/Keys"
			return
		}
		sid := strings.TrimPrefix(strings.TrimPrefix(path, "/v1/Keys"), "/")
		switch {
		case sid == "" && r.Method == http.MethodPost:
			s.create(rec, r, p, denied)
		case sid == "" && r.Method == http.MethodGet:
			s.list(rec, r, p, denied)
		case sid != "" && r.Method == http.MethodGet:
			s.get(rec, p, sid)
		case sid != "" && r.Method == http.MethodDelete:
			s.delete(rec, p, sid)
		default:
			writeError(rec, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		}
	case strings.HasPrefix(path, "/2010-04-01/Accounts/") && r.Method == http.MethodGet:
		s.api(rec, r, p, strings.TrimPrefix(path, "/2010-04-01/Accounts/"), denied)
	default:
		writeError(rec, http.StatusNotFound, 20404, "The requested resource "+path+" was not found")
	}
}

func keyJSON(k *Key, withSecret bool) map[string]any {
	out := map[string]any{"sid": k.SID, "friendly_name": k.FriendlyName, "date_created": created, "date_updated": created, "policy": nil}
	if k.Type == TypeRestricted {
		out["policy"] = k.Policy
	}
	if withSecret {
		out["secret"] = k.Secret
	}
	return out
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, p *principal, denied func()) {
	account, name := r.PostForm.Get("AccountSid"), r.PostForm.Get("FriendlyName")
	switch {
	case account == "":
		writeError(w, http.StatusBadRequest, 20001, "Missing required parameter AccountSid in the post body")
		return
	case account != p.account:
		denied() // "credentials … scoped to the wrong account"
		return
	case len([]rune(name)) > 64:
		writeError(w, http.StatusBadRequest, 20001, "FriendlyName must be at most 64 characters")
		return
	}
	typ := TypeStandard
	var policy json.RawMessage
	switch r.PostForm.Get("KeyType") {
	case "":
	case "restricted":
		typ = TypeRestricted
		var pol struct {
			Allow *[]string `json:"allow"`
		}
		raw := r.PostForm.Get("Policy")
		if raw == "" || json.Unmarshal([]byte(raw), &pol) != nil || pol.Allow == nil {
			writeError(w, http.StatusBadRequest, 20001, "A restricted key needs a Policy with an allow list")
			return
		}
		policy = json.RawMessage(raw)
	default:
		writeError(w, http.StatusBadRequest, 20001, "KeyType must be restricted")
		return
	}
	k := s.newKey(account, typ, name, policy)
	s.pending[k.SID] = s.propagation
	s.created++
	writeJSON(w, http.StatusCreated, keyJSON(k, true))
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, p *principal, denied func()) {
	q := r.URL.Query()
	account := q.Get("AccountSid")
	switch {
	case account == "":
		writeError(w, http.StatusBadRequest, 20001, "Missing required parameter AccountSid")
		return
	case account != p.account:
		denied()
		return
	}
	size := 50
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, 20001, "PageSize must be between 1 and 1000")
			return
		}
		size = n
	}
	start := 0
	if v := q.Get("PageToken"); v != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(v, "PA"))
		if err != nil || !strings.HasPrefix(v, "PA") || n < 0 {
			writeError(w, http.StatusBadRequest, 20001, "Invalid PageToken")
			return
		}
		start = n
	}
	var mine []*Key
	for _, k := range s.keys {
		if k.Account == account {
			mine = append(mine, k)
		}
	}
	keys := []map[string]any{}
	for i := start; i < len(mine) && i < start+size; i++ {
		keys = append(keys, keyJSON(mine[i], false))
	}
	base := "http://" + r.Host + "/v1/Keys?AccountSid=" + account + "&PageSize=" + strconv.Itoa(size)
	var next any
	if start+size < len(mine) {
		next = base + "&Page=" + strconv.Itoa(start/size+1) + "&PageToken=PA" + strconv.Itoa(start+size)
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys, "meta": map[string]any{
		"page": start / size, "page_size": size, "first_page_url": base + "&Page=0", "previous_page_url": nil,
		"url": "http://" + r.Host + r.URL.RequestURI(), "next_page_url": next, "key": "keys"}})
}

func (s *Server) get(w http.ResponseWriter, p *principal, sid string) {
	_, k := s.byID(sid)
	if k == nil || k.Account != p.account {
		writeError(w, http.StatusNotFound, 20404, "The requested resource /v1/Keys/"+sid+" was not found")
		return
	}
	writeJSON(w, http.StatusOK, keyJSON(k, false))
}

func (s *Server) delete(w http.ResponseWriter, p *principal, sid string) {
	i, k := s.byID(sid)
	if k == nil || k.Account != p.account {
		writeError(w, http.StatusNotFound, 20404, "The requested resource /v1/Keys/"+sid+" was not found")
		return
	}
	s.keys = slices.Delete(s.keys, i, i+1)
	delete(s.pending, sid)
	w.WriteHeader(http.StatusNoContent)
}

// api serves the 2010-04-01 reads under /2010-04-01/Accounts/.
func (s *Server) api(w http.ResponseWriter, r *http.Request, p *principal, rest string, denied func()) {
	account, sub, _ := strings.Cut(rest, "/")
	if sub == "" {
		// /2010-04-01/Accounts/{AccountSid}.json: the Accounts resource, Main credentials only.
		account = strings.TrimSuffix(account, ".json")
		if !p.main || account != p.account {
			denied()
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"sid": account, "friendly_name": "test account", "status": "active", "type": "Full"})
		return
	}
	if account != p.account {
		denied()
		return
	}
	forbidden := func() {
		writeError(w, http.StatusForbidden, 20403, "Forbidden: the API key may not access this resource")
	}
	switch sub {
	case "Messages.json":
		if !p.allows(MessagesPermission) {
			forbidden()
			return
		}
		size := 50
		if n, err := strconv.Atoi(r.URL.Query().Get("PageSize")); err == nil && n > 0 {
			size = n
		}
		uri := "/2010-04-01/Accounts/" + account + "/Messages.json?PageSize=" + strconv.Itoa(size) + "&Page=0"
		writeJSON(w, http.StatusOK, map[string]any{"messages": []any{}, "first_page_uri": uri, "end": 0, "previous_page_uri": nil,
			"uri": uri, "page_size": size, "start": 0, "next_page_uri": nil, "page": 0})
	case "Balance.json":
		if !p.allows(BalancePermission) {
			forbidden()
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"account_sid": account, "balance": "12.34", "currency": "USD"})
	default:
		writeError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
	}
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
