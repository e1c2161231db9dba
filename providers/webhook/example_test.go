package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers/webhook"
)

// verifyRequest checks a kvrotator webhook request. endpoint is "create", "verify" or "revoke".
// (README.md shows this function to services; keep the two identical.)
func verifyRequest(key []byte, endpoint string, h http.Header, body []byte, now time.Time) error {
	ts := h.Get("X-Kvrotator-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("missing or malformed timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("timestamp more than 5 minutes off")
	}
	got, ok := strings.CutPrefix(h.Get("X-Kvrotator-Signature"), "sha256=")
	sig, err := hex.DecodeString(got)
	if !ok || err != nil {
		return errors.New("missing or malformed signature")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return errors.New("bad signature")
	}
	var b struct {
		Action string `json:"action"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Action != endpoint {
		return errors.New("action does not name this endpoint")
	}
	return nil
}

// A service checks each request before acting on it: signature, timestamp, and that the signed body's
// action is the endpoint the request arrived at.
func Example() {
	key := []byte("0123456789abcdef0123456789abcdef") // the value of the webhook-signing-secret secret
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"action":"revoke","vault":"myvault","secret":"tokens-api-key","credentialId":"tok-2041"}`)
	h := http.Header{}
	h.Set(webhook.HeaderTimestamp, "1700000000")
	h.Set(webhook.HeaderSignature, webhook.Sign(key, "1700000000", body))

	fmt.Println("revoke:", verifyRequest(key, "revoke", h, body, now))
	fmt.Println("replayed at create:", verifyRequest(key, "create", h, body, now))
	fmt.Println("ten minutes later:", verifyRequest(key, "revoke", h, body, now.Add(10*time.Minute)))
	fmt.Println("another key:", verifyRequest([]byte("another key, 32 bytes long......"), "revoke", h, body, now))
	// Output:
	// revoke: <nil>
	// replayed at create: action does not name this endpoint
	// ten minutes later: timestamp more than 5 minutes off
	// another key: bad signature
}
