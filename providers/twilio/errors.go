package twilio

import (
	"encoding/json"
	"strconv"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// Error is a failed call to Twilio: the HTTP providers' shared error type. Errors the engine should
// not retry are wrapped with providers.Permanent; find the Error underneath with errors.As. It never
// holds a secret or a response body: only what Twilio says about the error (its code, message and the
// Twilio-Request-Id), sanitized. Its RetryAfter is the Retry-After header, when Twilio sends one.
type Error = httpx.Error

// MaxMessageChars is the most characters of Twilio's error messages an Error repeats.
const MaxMessageChars = 300

// requestIDHeader is the header in which Twilio names a request, for a support case.
const requestIDHeader = "Twilio-Request-Id"

// details reads Twilio's error body, {"code":20003,"message":"Authenticate","more_info":"…","status":401}
// (twilio.com/docs/usage/twilios-response, "Errors"): the code (Twilio's error number, e.g. 20003,
// 20404, 20429) and the message. httpx sanitizes both.
func details(body []byte) httpx.Details {
	var b struct {
		Code    json.RawMessage `json:"code"`
		Message any             `json:"message"`
	}
	if json.Unmarshal(body, &b) != nil {
		return httpx.Details{}
	}
	var d httpx.Details
	if n, err := strconv.ParseInt(string(b.Code), 10, 64); err == nil {
		d.Code = strconv.FormatInt(n, 10)
	}
	d.Message, _ = b.Message.(string)
	return d
}

// messages makes Twilio's error text fit for logs: every occurrence of a secret is redacted first (a
// server might echo the credentials it rejects), then control and format characters become spaces,
// runs of spaces collapse, and the result is cut to MaxMessageChars characters. A message that still
// quotes a piece of a secret is withheld altogether.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: "[withheld: it quoted part of a secret]"}
