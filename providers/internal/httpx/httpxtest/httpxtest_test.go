package httpxtest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
)

func TestSecrets(t *testing.T) {
	s := Secrets{"signing-key": "value"}
	v, err := s.SecretValue(t.Context(), "signing-key")
	if err != nil || v.Reveal() != "value" {
		t.Fatalf("SecretValue = %v, %v", v, err)
	}
	if _, err := s.SecretValue(t.Context(), "other"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"other"`) {
		t.Fatalf("a missing secret gives %v", err)
	}
	var _ providers.SecretReader = s
}

func TestStub(t *testing.T) {
	for _, tc := range []struct {
		contentType string
		header      []string
	}{
		{"application/json", []string{"Retry-After", "7", "X-Odd"}}, // an odd name without a value is ignored
		{"", nil},
	} {
		resp, err := http.Get(Stub(t, 503, tc.contentType, `{"error":"busy"}`, tc.header...))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || string(b) != `{"error":"busy"}` {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if _, sniffed := resp.Header["Content-Type"]; resp.Header.Get("Content-Type") != tc.contentType || (tc.contentType == "" && sniffed) {
			t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
		}
		if len(tc.header) > 0 && (resp.Header.Get("Retry-After") != "7" || resp.Header.Get("X-Odd") != "") {
			t.Fatalf("header %v", resp.Header)
		}
	}
}

type testError struct{ status int }

func (e *testError) Error() string { return fmt.Sprintf("status %d", e.status) }

func TestClassAssertions(t *testing.T) {
	transient := fmt.Errorf("wrapped: %w", &testError{429})
	if e := Transient[*testError](t, transient); e.status != 429 {
		t.Fatalf("Transient = %v", e)
	}
	permanent := providers.Permanent(&testError{400})
	if e := Permanent[*testError](t, permanent); e.status != 400 {
		t.Fatalf("Permanent = %v", e)
	}
	if e := As[*testError](t, permanent); e.status != 400 {
		t.Fatalf("As = %v", e)
	}
}

func TestLeakCheck(t *testing.T) {
	if ErrorTexts(nil) != nil {
		t.Fatal("a nil error has texts")
	}
	err := &testError{500}
	texts := ErrorTexts(err)
	if len(texts) != 3 || texts[0] != "status 500" || !strings.Contains(texts[2], "testError") {
		t.Fatalf("ErrorTexts = %q", texts)
	}
	NoSecrets(t, texts, "", "SECRET", "status 5000")
}

func TestSyncBuffer(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprint(&b, "x")
			}
		})
	}
	wg.Wait()
	if b.String() != strings.Repeat("x", 800) {
		t.Fatalf("%d bytes", len(b.String()))
	}
}

func TestAttacker(t *testing.T) {
	a := NewAttacker(t)
	a.Untouched(t)
	req, _ := http.NewRequest(http.MethodPost, a.URL+"/v3/api_keys", strings.NewReader(`{"name":"x"}`))
	req.Header.Set("Authorization", "Bearer SECRET-VALUE")
	resp, err := a.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || a.Conns() != 1 || a.Requests() != 1 {
		t.Fatalf("status %d, %d connections, %d requests", resp.StatusCode, a.Conns(), a.Requests())
	}
	if !a.Saw("Bearer SECRET-VALUE") || !a.Saw(`{"name":"x"}`) || !a.Saw("/v3/api_keys") || a.Saw("other") || a.Saw("") {
		t.Error("Saw does not report what arrived")
	}
	// A connection without a request counts too.
	c, err := tls.Dial("tcp", strings.TrimPrefix(a.URL, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		c.Close()
	}
	for range 100 {
		if a.Conns() == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.Conns() != 2 {
		t.Errorf("%d connections, want 2", a.Conns())
	}
}
