package httpxtest

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Attacker is an HTTPS server that stands for a host a tag-writer controls: it counts every
// connection (even one that never sends a request) and records every request it receives, headers and
// body, so a test can prove that nothing reached it, or, as a control, what would have.
type Attacker struct {
	URL string // https://127.0.0.1:port

	srv   *httptest.Server
	mu    sync.Mutex
	conns int
	seen  []string // each request as text: request line, headers, body
}

// NewAttacker starts an Attacker, closed when the test ends. It answers every request with 404.
func NewAttacker(t testing.TB) *Attacker {
	t.Helper()
	a := &Attacker{}
	a.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var b strings.Builder
		b.WriteString(r.Method + " " + r.URL.String() + "\n")
		_ = r.Header.Write(&b)
		b.Write(body)
		a.mu.Lock()
		a.seen = append(a.seen, b.String())
		a.mu.Unlock()
		http.NotFound(w, r)
	}))
	a.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	a.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			a.mu.Lock()
			a.conns++
			a.mu.Unlock()
		}
	}
	a.srv.StartTLS()
	t.Cleanup(a.srv.Close)
	a.URL = a.srv.URL
	return a
}

// Client is an HTTP client that trusts the Attacker's certificate (and plain-http loopback servers):
// give it to the provider under test, so that only kvrotator's own checks stand between the tags and
// the attacker.
func (a *Attacker) Client() *http.Client { return a.srv.Client() }

// Conns is the number of connections the Attacker accepted.
func (a *Attacker) Conns() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conns
}

// Requests is the number of requests it received.
func (a *Attacker) Requests() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.seen)
}

// Saw reports whether any request it received carried s (in its URL, a header or its body).
func (a *Attacker) Saw(s string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.seen {
		if s != "" && strings.Contains(r, s) {
			return true
		}
	}
	return false
}

// Untouched fails the test unless the Attacker accepted no connection at all.
func (a *Attacker) Untouched(t testing.TB) {
	t.Helper()
	if n, r := a.Conns(), a.Requests(); n != 0 || r != 0 {
		t.Fatalf("the attacker's host was contacted: %d connections, %d requests", n, r)
	}
}
