package webhook_test

import (
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
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
		Secrets:        httpxtest.Secrets{keySecret: signingKey},
		Now:            time.Now(),
	}
}

// laterRequest is what the engine sends to revoke the initial credential after the grace period: the
// latest version holds next, the replaced version held the initial credential.
func laterRequest(base string, next providers.Credential) providers.Request {
	req := request(base)
	req.Current, req.CredentialID, req.Retired = next.Value, next.CredentialID, providers.NewValue(currentValue)
	req.Params["CredentialId"] = next.CredentialID
	req.IdempotencyKey = ""
	return req
}

// clean fails if err's text mentions the signing key, the current value or any of more (new values).
func clean(t *testing.T, err error, more ...string) {
	t.Helper()
	httpxtest.NoSecrets(t, httpxtest.ErrorTexts(err), append([]string{signingKey, currentValue}, more...)...)
}

// wantTransient fails unless err is a transient *webhook.Error with the given status.
func wantTransient(t *testing.T, err error, status int) *webhook.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Transient[*webhook.Error](t, err), status)
}

// wantPermanent fails unless err is a permanent *webhook.Error with the given status.
func wantPermanent(t *testing.T, err error, status int) *webhook.Error {
	t.Helper()
	return wantStatus(t, httpxtest.Permanent[*webhook.Error](t, err), status)
}

func wantStatus(t *testing.T, we *webhook.Error, status int) *webhook.Error {
	t.Helper()
	if we.Status != status {
		t.Fatalf("error %v has status %d, want %d", we, we.Status, status)
	}
	return we
}

// cred is a credential as Create would return it.
func cred(id, value string) providers.Credential {
	return providers.Credential{CredentialID: id, Value: providers.NewValue(value)}
}
