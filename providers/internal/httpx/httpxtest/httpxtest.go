// Package httpxtest holds the test helpers that several providers' tests share: a fake secret reader,
// canned HTTP answers, assertions on an error's class and type, a leak check, and a log sink for
// concurrent writers. It is for tests only.
package httpxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
)

// ErrNotFound is what Secrets wraps for a name it does not hold.
var ErrNotFound = errors.New("secret not found")

// Secrets is a fake providers.SecretReader: the other secrets of the vault, by name.
type Secrets map[string]string

// SecretValue returns the secret called name, or an error wrapping ErrNotFound.
func (s Secrets) SecretValue(_ context.Context, name string) (providers.Value, error) {
	v, ok := s[name]
	if !ok {
		return providers.Value{}, fmt.Errorf("secret %q: %w", name, ErrNotFound)
	}
	return providers.NewValue(v), nil
}

// Answer is a handler that writes one canned answer: status, Content-Type (none at all when empty:
// no sniffing), the header pairs ("Name", "value", …) and body.
func Answer(status int, contentType, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if contentType == "" {
			w.Header()["Content-Type"] = nil // no sniffing: really no Content-Type
		} else {
			w.Header().Set("Content-Type", contentType)
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// Stub starts a server that gives every request the same Answer, closed when the test ends, and
// returns its URL.
func Stub(t testing.TB, status int, contentType, body string, header ...string) string {
	t.Helper()
	srv := httptest.NewServer(Answer(status, contentType, body, header...))
	t.Cleanup(srv.Close)
	return srv.URL
}

// As returns the E in err's chain (a provider's *Error), failing the test if there is none.
func As[E error](t testing.TB, err error) E {
	t.Helper()
	var e E
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) holds no %T", err, err, e)
	}
	return e
}

// Transient fails the test unless err is a transient error (not providers.Permanent) holding an E,
// and returns the E.
func Transient[E error](t testing.TB, err error) E {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want a transient one")
	}
	if providers.IsPermanent(err) {
		t.Fatalf("error %v is permanent, want transient", err)
	}
	return As[E](t, err)
}

// Permanent fails the test unless err is a permanent error (providers.Permanent) holding an E, and
// returns the E.
func Permanent[E error](t testing.TB, err error) E {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want a permanent one")
	}
	if !providers.IsPermanent(err) {
		t.Fatalf("error %v is transient, want permanent", err)
	}
	return As[E](t, err)
}

// ErrorTexts are the ways err can reach a log or a test's output: its message, %+v and %#v. None for
// a nil err.
func ErrorTexts(err error) []string {
	if err == nil {
		return nil
	}
	return []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
}

// NoSecrets fails the test if any of texts contains one of the non-empty secrets.
func NoSecrets(t testing.TB, texts []string, secrets ...string) {
	t.Helper()
	for _, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Fatalf("a secret leaked into %q", text)
			}
		}
	}
}

// SyncBuffer is an io.Writer for concurrent writers (a logger shared by goroutines) whose String is
// what they wrote.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
