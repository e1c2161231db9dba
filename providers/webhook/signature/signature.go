// Package signature is the signing half of kvrotator's webhook contract (providers/webhook, README
// "webhook"): the headers and the HMAC that every signed call carries. It stands alone so that the
// consumer refresh webhook (consumers) signs its calls the same way without linking the webhook
// provider, which a build may leave out (kvrotator_no_webhook).
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// The headers of a signed call.
const (
	HeaderTimestamp = "X-Kvrotator-Timestamp" // unix seconds when the request was signed
	HeaderSignature = "X-Kvrotator-Signature" // "sha256=" + hex HMAC-SHA256(key, timestamp + "." + body)
)

// Prefix is the scheme in HeaderSignature.
const Prefix = "sha256="

// Sign returns the X-Kvrotator-Signature header value for a body sent at timestamp (unix seconds, as
// sent in X-Kvrotator-Timestamp): "sha256=" followed by the lower-case hex HMAC-SHA256 of
// timestamp + "." + body under key.
func Sign(key []byte, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return Prefix + hex.EncodeToString(mac.Sum(nil))
}
