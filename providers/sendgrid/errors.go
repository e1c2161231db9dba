package sendgrid

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Error is a failed call to SendGrid. Errors the engine should not retry are wrapped with
// providers.Permanent; find the Error underneath with errors.As. It never holds an API key or a response
// body: only SendGrid's own short error messages, sanitized.
type Error struct {
	Op     string // what kvrotator was doing: "list keys", "read key", "delete key", "create key", "verify"
	Method string // the HTTP method
	URL    string // the URL called (base URL and path: configuration and key ids, never a key)
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Reason says what went wrong, in kvrotator's words.
	Reason string
	// Message is SendGrid's error list ({"errors":[{"field","message"}]}) as "field: message; …":
	// control characters removed, keys redacted, at most MaxMessageChars characters. Empty if none.
	Message string
	// Retry is how long SendGrid asked callers to wait (Retry-After, or X-RateLimit-Reset minus now);
	// 0 when it did not say.
	Retry time.Duration
	// Err is the cause, if any: a timeout, a connection error, a cancelled context.
	Err error
}

// MaxMessageChars is the most characters of SendGrid's error messages an Error repeats.
const MaxMessageChars = 300

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sendgrid %s (%s %s)", e.Op, e.Method, e.URL)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Reason != "" {
		b.WriteString(": " + e.Reason)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": SendGrid says %q", e.Message)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.Retry > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.Retry)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long SendGrid asked callers to wait before trying again; 0 when it did not say. The
// engine uses it to delay the retry of a transient failure (a 429 in particular).
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// maxRetryAfter caps what a server can ask for; anything longer is probably a mistake.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads how long to wait from a response: Retry-After (delay-seconds or an HTTP-date, RFC
// 9110 §10.2.3) when present; else, when the rate limit is exhausted (429, or X-RateLimit-Remaining 0),
// SendGrid's X-RateLimit-Reset, the unix second at which the window refreshes. SendGrid sends the
// X-RateLimit-* headers on every answer: on a 500 the reset time says nothing about when to retry.
// Absent, malformed and past values give 0.
func retryAfter(status int, h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if n <= 0 {
				return 0
			}
			return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return min(t.Sub(now).Round(time.Second), maxRetryAfter)
		}
		return 0
	}
	exhausted := status == http.StatusTooManyRequests || strings.TrimSpace(h.Get("X-RateLimit-Remaining")) == "0"
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" && exhausted {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			if t := time.Unix(n, 0); t.After(now) {
				// Round up: the window refreshes at the start of that second, not before.
				return min(t.Sub(now).Truncate(time.Second)+time.Second, maxRetryAfter)
			}
		}
	}
	return 0
}

// sanitizeMessage makes SendGrid's error text fit for logs: every occurrence of a secret is redacted
// first (a server might echo the key it rejects), then control and format characters become spaces,
// runs of spaces collapse, and the result is cut to MaxMessageChars characters. A message that still
// quotes a piece of a secret is withheld altogether.
func sanitizeMessage(msg string, secrets []string) string {
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
		return "[withheld: it quoted part of a key]"
	}
	return clean
}

// pieceLen is the shortest piece of a secret quotesPartOf looks for: long enough that ordinary words
// never match a random key by chance.
const pieceLen = 12

// quotesPartOf reports whether msg contains pieceLen consecutive bytes of one of the secrets.
func quotesPartOf(msg string, secrets []string) bool {
	for i := 0; i+pieceLen <= len(msg); i++ {
		piece := msg[i : i+pieceLen]
		for _, s := range secrets {
			if len(s) >= pieceLen && strings.Contains(s, piece) {
				return true
			}
		}
	}
	return false
}
