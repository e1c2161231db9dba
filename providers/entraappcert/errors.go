package entraappcert

import (
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// Error is a failed call to Microsoft Graph or to Entra ID: the HTTP providers' shared error type.
// Errors the engine should not retry are wrapped with providers.Permanent; find the Error underneath
// with errors.As. It never holds a private key, a certificate's value, a proof, a client assertion,
// an access token or a response body: only what the service says, sanitized. Code is Graph's error
// code (Authorization_RequestDenied, Authentication_MissingOrMalformed, …) or the token endpoint's
// OAuth error (invalid_client, …); SubCode the token endpoint's error number ("AADSTS700027");
// RequestID Graph's request-id or the token endpoint's trace id. Its RetryAfter is the service's
// Retry-After on 429 and 503, or, after an addKey whose outcome is unknown, the replication delay.
type Error = httpx.Error

// MaxMessageChars is the most characters of a service's error message an Error repeats.
const MaxMessageChars = 200

// aadstsPrefix is how the token endpoint's error numbers are written: AADSTS700027.
const aadstsPrefix = "AADSTS"

// messages makes what a service says fit for logs: every occurrence of a secret is redacted first,
// then control and format characters become spaces, runs of spaces collapse, and the result is cut to
// MaxMessageChars characters. A message that still quotes a piece of a secret is withheld.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: httpx.WithheldSecret}
