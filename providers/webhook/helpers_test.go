package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/webhook"
)

// Distinctive strings: no error may ever contain them.
const (
	signingKey   = "SIGNINGKEY-must-never-leak-4d7e1b"
	currentValue = "CURRENTVALUE-must-never-leak-9a2f"
	keySecret    = "tokens-webhook-key" // the secret the webhook-signing-secret tag names
	currentID    = "tok-initial"
	idemKey      = "kvr-0123456789abcdef"
)

var errNotFound = errors.New("secret not found")

// vaultSecrets is a fake providers.SecretReader: the other secrets of the vault, by name.
type vaultSecrets map[string]string

func (s vaultSecrets) SecretValue(_ context.Context, name string) (providers.Value, error) {
	v, ok := s[name]
	if !ok {
		return providers.Value{}, fmt.Errorf("secret %q: %w", name, errNotFound)
	}
	return providers.NewValue(v), nil
}

// request is what the engine would send for a secret whose tags point at base.
func request(base string) providers.Request {
	return providers.Request{
		Vault: "myvault", Secret: "tokens-api-key", Version: "v1",
		Current: providers.NewValue(currentValue), CredentialID: currentID,
		Params: providers.Params{
			"rotation-provider":      "webhook",
			"CredentialId":           currentID,
			webhook.TagURL:           base,
			webhook.TagSigningSecret: keySecret,
		},
		IdempotencyKey: idemKey,
		Secrets:        vaultSecrets{keySecret: signingKey},
		Now:            time.Now(),
	}
}

// clean fails if err's text mentions the signing key, the current value or any of more (new values).
func clean(t *testing.T, err error, more ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, text := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
		for _, s := range append([]string{signingKey, currentValue}, more...) {
			if s != "" && strings.Contains(text, s) {
				t.Fatalf("error %q contains a secret", text)
			}
		}
	}
}

// webhookError returns the *webhook.Error in err, failing if there is none.
func webhookError(t *testing.T, err error) *webhook.Error {
	t.Helper()
	var we *webhook.Error
	if !errors.As(err, &we) {
		t.Fatalf("error %v (%T) holds no *webhook.Error", err, err)
	}
	return we
}

// wantTransient fails unless err is a transient *webhook.Error with the given status.
func wantTransient(t *testing.T, err error, status int) *webhook.Error {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want a transient one")
	}
	if providers.IsPermanent(err) {
		t.Fatalf("error %v is permanent, want transient", err)
	}
	we := webhookError(t, err)
	if we.Status != status {
		t.Fatalf("error %v has status %d, want %d", err, we.Status, status)
	}
	return we
}

// wantPermanent fails unless err is a permanent *webhook.Error with the given status.
func wantPermanent(t *testing.T, err error, status int) *webhook.Error {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want a permanent one")
	}
	if !providers.IsPermanent(err) {
		t.Fatalf("error %v is transient, want permanent", err)
	}
	we := webhookError(t, err)
	if we.Status != status {
		t.Fatalf("error %v has status %d, want %d", err, we.Status, status)
	}
	return we
}

// stub serves one canned answer to every request and returns its URL.
func stub(t *testing.T, status int, contentType, body string, header ...string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// cred is a credential as Create would return it.
func cred(id, value string) providers.Credential {
	return providers.Credential{CredentialID: id, Value: providers.NewValue(value)}
}
