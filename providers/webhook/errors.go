package webhook

import "github.com/kvrotator/kvrotator/providers/internal/httpx"

// Error is a failed call to the service: the HTTP providers' shared error type. Errors the engine
// should not retry are wrapped with providers.Permanent; find the Error underneath with errors.As. Its
// Op is the endpoint (create, verify or revoke). It never holds a credential value, the signing key or
// the response body: only the service's own short error message (the "error" field of a JSON error
// body), sanitized. Its RetryAfter is the service's Retry-After.
type Error = httpx.Error

// MaxMessageChars is the most characters of the service's error message an Error repeats.
const MaxMessageChars = 200

// messages makes a service's error message fit for logs: every occurrence of a secret is redacted
// first (a service might echo the value it rejects), then control and format characters become
// spaces, runs of spaces collapse, and the result is cut to MaxMessageChars characters. A message that
// still quotes a piece of a secret (a service that shortened what it echoed) is withheld altogether.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: httpx.WithheldSecret}
