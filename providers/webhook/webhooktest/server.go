// Package webhooktest is a reference implementation of the service side of the webhook provider's
// contract (providers/webhook/README.md), for tests: an in-memory credential issuer on plain HTTP at
// 127.0.0.1 (a loopback host, which webhook-url allows without TLS).
//
// It does what the contract asks of a real service, and checks what a real service should check:
// the HMAC signature and a timestamp within 5 minutes of its clock (401 otherwise), the JSON bodies, that
// the body's action names the endpoint, and that the Idempotency-Key header matches the body. Create is
// idempotent: while the credential issued for an idempotency key is live, the same key returns it again.
// Revoke refuses (409) a credential whose value is not the one retiredSha256 names, and the credential
// whose value currentSha256 names (the latest version's).
// Values come from crypto/rand. It is written independently of the provider's code, so the two check
// each other against the documented contract.
//
// Fault hooks (FailNext, SetPropagationDelay) and counters (Created, Revoked, Calls) let tests, including
// crash tests whose rotator runs in another process, drive and observe it. A Server is safe for
// concurrent use.
package webhooktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The endpoints, as FailNext and Calls name them.
const (
	Create = "create"
	Verify = "verify"
	Revoke = "revoke"
)

// MaxSkew is how far X-Kvrotator-Timestamp may be from the server's clock, either way.
const MaxSkew = 5 * time.Minute

// digestPattern is a lower-case hex SHA-256 digest.
var digestPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// MinKeyBytes is the shortest signing key the webhook provider accepts, and so NewServer too.
const MinKeyBytes = 16

const maxRequestBytes = 1 << 20

// Server is a running reference service. URL is its base URL: set the webhook-url tag to it.
type Server struct {
	URL string

	srv *httptest.Server
	key []byte

	mu          sync.Mutex
	live        map[string]string // credential id → value
	issued      map[string]string // idempotency key → the credential id created for it
	created     int
	revoked     []string
	calls       map[string]int
	faults      map[string]fault
	propagation int
	verifies    map[string]int // credential id → verify calls so far
	holds       map[string]*hold
	delays      map[string]time.Duration
}

// hold is a one-shot pause of the next request to an endpoint, after its work and before its answer.
type hold struct {
	waiting, release chan struct{}
	once             sync.Once
}

type fault struct{ status, n int }

// NewServer starts a server that accepts requests signed with signingKey (the value of the secret the
// webhook-signing-secret tag names). It panics if the key is shorter than MinKeyBytes, since the
// provider would refuse it anyway. Close it when done.
func NewServer(signingKey string) *Server {
	if len(signingKey) < MinKeyBytes {
		panic(fmt.Sprintf("webhooktest: signing key of %d bytes; the webhook provider requires at least %d", len(signingKey), MinKeyBytes))
	}
	s := &Server{
		key:      []byte(signingKey),
		live:     map[string]string{},
		issued:   map[string]string{},
		calls:    map[string]int{},
		faults:   map[string]fault{},
		verifies: map[string]int{},
		holds:    map[string]*hold{},
		delays:   map[string]time.Duration{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Hold makes the next request to endpoint do its work (create the credential, answer the check,
// revoke) and then wait without answering until release is called or the client goes away: the
// moment a crash hurts most. waiting is closed when that request has done its work.
func (s *Server) Hold(endpoint string) (waiting <-chan struct{}, release func()) {
	mustEndpoint(endpoint)
	h := &hold{waiting: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.holds[endpoint] = h
	s.mu.Unlock()
	return h.waiting, func() { h.once.Do(func() { close(h.release) }) }
}

// SetDelay makes every request to endpoint wait d before doing its work (0 removes the delay).
func (s *Server) SetDelay(endpoint string, d time.Duration) {
	mustEndpoint(endpoint)
	s.mu.Lock()
	s.delays[endpoint] = d
	s.mu.Unlock()
}

// Close shuts the server down, waiting for requests in flight.
func (s *Server) Close() { s.srv.Close() }

// Live returns a copy of the live credentials, id → value. The values are for assertions in tests only.
func (s *Server) Live() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.live)
}

// Created is the number of credentials create has issued (a repeat of an idempotency key issues none).
func (s *Server) Created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// Revoked lists the credential ids revoke has retired, in order. Revoking an unknown id (404) adds none.
func (s *Server) Revoked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.revoked)
}

// Seed adds a live credential that exists before any rotation: the one the secret's first version holds.
func (s *Server) Seed(id, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live[id] = value
}

// FailNext makes the next n requests to endpoint (Create, Verify or Revoke) that pass the signature check
// answer status with {"error":"injected fault"}, without doing anything. 429 and 503 come with
// Retry-After: 1. A later call replaces the pending count. It panics on an unknown endpoint.
func (s *Server) FailNext(endpoint string, status, n int) {
	mustEndpoint(endpoint)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[endpoint] = fault{status: status, n: n}
}

// SetPropagationDelay makes verify answer {"valid":false} for the first n verify calls about each
// credential, as a service whose new credentials take a while to work everywhere.
func (s *Server) SetPropagationDelay(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.propagation = n
}

// Calls is the number of requests that reached endpoint, whatever the outcome (bad signatures and
// injected faults included). It panics on an unknown endpoint.
func (s *Server) Calls(endpoint string) int {
	mustEndpoint(endpoint)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

func mustEndpoint(e string) {
	if e != Create && e != Verify && e != Revoke {
		panic("webhooktest: unknown endpoint " + strconv.Quote(e) + "; use Create, Verify or Revoke")
	}
}

// body is the union of the three request bodies.
type body struct {
	Action         string `json:"action"`
	IdempotencyKey string `json:"idempotencyKey"`
	Vault          string `json:"vault"`
	Secret         string `json:"secret"`
	Version        string `json:"version"`
	CredentialID   string `json:"credentialId"`
	Value          string `json:"value"`
	RetiredSHA256  string `json:"retiredSha256"`
	CurrentSHA256  string `json:"currentSha256"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	endpoint := strings.TrimPrefix(r.URL.Path, "/")
	if endpoint != Create && endpoint != Verify && endpoint != Revoke {
		reply(w, http.StatusNotFound, map[string]any{"error": "no such endpoint"})
		return
	}
	s.mu.Lock()
	s.calls[endpoint]++
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, map[string]any{"error": "use POST"})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		reply(w, http.StatusUnsupportedMediaType, map[string]any{"error": "Content-Type must be application/json"})
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		reply(w, http.StatusRequestEntityTooLarge, map[string]any{"error": "body too large"})
		return
	}
	if msg := s.authenticate(r.Header, raw); msg != "" {
		reply(w, http.StatusUnauthorized, map[string]any{"error": msg})
		return
	}
	if f, ok := s.takeFault(endpoint); ok {
		if f.status == http.StatusTooManyRequests || f.status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		reply(w, f.status, map[string]any{"error": "injected fault"})
		return
	}
	var b body
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&b); err != nil || dec.More() {
		reply(w, http.StatusBadRequest, map[string]any{"error": "body is not one JSON object of the contract"})
		return
	}
	if b.Action != endpoint {
		reply(w, http.StatusBadRequest, map[string]any{"error": "action does not name this endpoint"})
		return
	}
	if endpoint != Revoke && r.Header.Get("Idempotency-Key") != b.IdempotencyKey {
		reply(w, http.StatusBadRequest, map[string]any{"error": "Idempotency-Key header differs from idempotencyKey"})
		return
	}
	if b.Vault == "" || b.Secret == "" {
		reply(w, http.StatusBadRequest, map[string]any{"error": "vault and secret are required"})
		return
	}
	s.mu.Lock()
	delay, h := s.delays[endpoint], s.holds[endpoint]
	delete(s.holds, endpoint)
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	out := w
	var rec *httptest.ResponseRecorder
	if h != nil {
		rec = httptest.NewRecorder()
		out = rec
	}
	switch endpoint {
	case Create:
		s.create(out, b)
	case Verify:
		s.verify(out, b)
	case Revoke:
		s.revoke(out, b)
	}
	if h != nil {
		close(h.waiting)
		select {
		case <-h.release:
		case <-r.Context().Done():
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}
}

// authenticate checks the timestamp and the signature; the answer is what is wrong, or "".
func (s *Server) authenticate(h http.Header, raw []byte) string {
	ts := h.Get("X-Kvrotator-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return "missing or malformed X-Kvrotator-Timestamp"
	}
	if skew := time.Since(time.Unix(sec, 0)); skew > MaxSkew || skew < -MaxSkew {
		return "X-Kvrotator-Timestamp is more than 5 minutes off"
	}
	got, ok := strings.CutPrefix(h.Get("X-Kvrotator-Signature"), "sha256=")
	sig, err := hex.DecodeString(got)
	if !ok || err != nil {
		return "missing or malformed X-Kvrotator-Signature"
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(ts + "."))
	mac.Write(raw)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return "bad signature"
	}
	return ""
}

func (s *Server) takeFault(endpoint string) (fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults[endpoint]
	if f.n <= 0 {
		return f, false
	}
	f.n--
	s.faults[endpoint] = f
	return f, true
}

func (s *Server) create(w http.ResponseWriter, b body) {
	if b.IdempotencyKey == "" {
		reply(w, http.StatusBadRequest, map[string]any{"error": "idempotencyKey is required"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The same key returns the same credential while it is live. Once revoked (the engine revokes a
	// credential that failed verification), the key issues a fresh one, so a retry can succeed.
	if id, ok := s.issued[b.IdempotencyKey]; ok {
		if v, live := s.live[id]; live {
			reply(w, http.StatusOK, map[string]any{"credentialId": id, "value": v})
			return
		}
	}
	id, value := "cred-"+randomHex(8), randomValue()
	s.live[id] = value
	s.issued[b.IdempotencyKey] = id
	s.created++
	reply(w, http.StatusCreated, map[string]any{"credentialId": id, "value": value})
}

func (s *Server) verify(w http.ResponseWriter, b body) {
	if b.CredentialID == "" || b.Value == "" {
		reply(w, http.StatusBadRequest, map[string]any{"error": "credentialId and value are required"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.verifies[b.CredentialID]++
	if s.verifies[b.CredentialID] <= s.propagation {
		reply(w, http.StatusOK, map[string]any{"valid": false})
		return
	}
	v, live := s.live[b.CredentialID]
	valid := live && subtle.ConstantTimeCompare([]byte(v), []byte(b.Value)) == 1
	reply(w, http.StatusOK, map[string]any{"valid": valid})
}

func (s *Server) revoke(w http.ResponseWriter, b body) {
	if b.CredentialID == "" {
		reply(w, http.StatusBadRequest, map[string]any{"error": "credentialId is required"})
		return
	}
	for _, d := range []string{b.RetiredSHA256, b.CurrentSHA256} {
		if d != "" && !digestPattern.MatchString(d) {
			reply(w, http.StatusBadRequest, map[string]any{"error": "retiredSha256 and currentSha256 are lower-case hex SHA-256 digests"})
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, live := s.live[b.CredentialID]
	if !live {
		reply(w, http.StatusNotFound, map[string]any{"error": "no such credential"})
		return
	}
	sum := sha256.Sum256([]byte(v))
	d := []byte(hex.EncodeToString(sum[:]))
	if b.RetiredSHA256 != "" && subtle.ConstantTimeCompare(d, []byte(b.RetiredSHA256)) != 1 {
		reply(w, http.StatusConflict, map[string]any{"error": "retiredSha256 is not the digest of this credential's value: the replaced version did not hold it"})
		return
	}
	if b.CurrentSHA256 != "" && subtle.ConstantTimeCompare(d, []byte(b.CurrentSHA256)) == 1 {
		reply(w, http.StatusConflict, map[string]any{"error": "this credential's value is the latest version's (currentSha256): it is in use"})
		return
	}
	delete(s.live, b.CredentialID)
	s.revoked = append(s.revoked, b.CredentialID)
	w.WriteHeader(http.StatusNoContent)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// randomValue is 256 bits, base64url without padding (43 characters).
func randomValue() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
