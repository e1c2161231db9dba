package entraapp

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Error is a failed call to Microsoft Graph or to the Entra ID token endpoint. Errors the engine should
// not retry are wrapped with providers.Permanent; find the Error underneath with errors.As. It never
// holds a client secret, an access token or a response body: only the service's own error code and
// short message, sanitized.
type Error struct {
	Op     string // what was attempted: "read application", "addPassword", "removePassword", "verify"
	Method string // HTTP method
	URL    string // the URL called, without the query
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Code is Graph's error code (Authorization_RequestDenied, Request_ResourceNotFound, …) or the
	// token endpoint's OAuth error (invalid_client, …).
	Code string
	// AADSTS is the token endpoint's error number (7000215: invalid client secret); 0 when none.
	AADSTS int
	// Message is the service's message: control characters removed, secrets redacted, at most
	// MaxMessageChars characters. Empty when there was none.
	Message string
	// RequestID is Graph's request-id or the token endpoint's trace id, for a support case.
	RequestID string
	// Reason says what went wrong and what to do, in kvrotator's words.
	Reason string
	// Retry is the service's Retry-After, or how long to wait before a retry can see what a lost
	// request may have done; 0 when neither applies.
	Retry time.Duration
	// Err is the cause, if any: a timeout, a connection error, a cancelled context.
	Err error

	sent bool // the request was handed to the transport: the service may have acted on it
}

// MaxMessageChars is the most characters of a service's error message an Error repeats.
const MaxMessageChars = 200

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (%s %s)", Name, e.Op, e.Method, e.URL)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.AADSTS != 0 {
		fmt.Fprintf(&b, " AADSTS%d", e.AADSTS)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": service says %q", e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	if e.Retry > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.Retry)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long to wait before trying again: Graph's or the token endpoint's Retry-After on
// 429 and 503, or the replication delay after an addPassword whose outcome is unknown. 0 when there
// is nothing to wait for. The engine uses it to delay the retry of a transient failure.
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// maxRetryAfter caps what a service can ask for; anything longer is probably a mistake.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
// Absent, malformed or past values give 0.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.ParseInt(h, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now).Round(time.Second), maxRetryAfter)
	}
	return 0
}

// sanitize makes a service's message fit for logs: every occurrence of a secret is redacted first,
// then control and format characters become spaces, runs of spaces collapse, and the result is cut
// to MaxMessageChars characters. A message that still quotes a piece of a secret is withheld.
func sanitize(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	out := make([]rune, 0, min(len(msg), MaxMessageChars+1))
	space := false
	for _, r := range msg {
		if unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			space = len(out) > 0
			continue
		}
		if space {
			out = append(out, ' ')
			space = false
		}
		out = append(out, r)
		if len(out) > MaxMessageChars {
			out = append(out[:MaxMessageChars-1], '…')
			break
		}
	}
	clean := string(out)
	if quotesPartOf(clean, secrets) {
		return "[withheld: it quoted part of a secret]"
	}
	return clean
}

// pieceLen is the shortest piece of a secret quotesPartOf looks for: long enough that ordinary words
// never match a random value by chance.
const pieceLen = 8

// quotesPartOf reports whether msg contains pieceLen consecutive bytes of one of the secrets.
func quotesPartOf(msg string, secrets []string) bool {
	for _, s := range secrets {
		if len(s) < pieceLen {
			continue
		}
		for i := 0; i+pieceLen <= len(s); i++ {
			if strings.Contains(msg, s[i:i+pieceLen]) {
				return true
			}
		}
	}
	return false
}
