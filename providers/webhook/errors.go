package webhook

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Error is a failed call to the service. Errors the engine should not retry are wrapped with
// providers.Permanent; find the Error underneath with errors.As. It never holds a credential value, the
// signing key or the response body: only the service's own short error message, sanitized.
type Error struct {
	Endpoint string // create, verify or revoke
	URL      string // the URL called (configuration: no user information, no query)
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Reason says what went wrong, in kvrotator's words.
	Reason string
	// Message is the "error" field of the service's JSON error body: control characters removed,
	// secrets redacted, at most MaxMessageChars characters. Empty when there was none.
	Message string
	// Retry is the service's Retry-After; 0 when it sent none.
	Retry time.Duration
	// Err is the cause, if any: a timeout, a connection error, a cancelled context.
	Err error
}

// MaxMessageChars is the most characters of the service's error message an Error repeats.
const MaxMessageChars = 200

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "webhook %s (POST %s)", e.Endpoint, e.URL)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
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
	if e.Retry > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.Retry)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long the service asked callers to wait before trying again (its Retry-After
// header); 0 when it did not say. The engine may use it to delay the retry of a transient failure.
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
		return min(time.Duration(min(n, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return min(t.Sub(now).Round(time.Second), maxRetryAfter)
	}
	return 0
}

// sanitizeMessage makes a service's error message fit for logs: every occurrence of a secret is
// redacted first (a service might echo the value it rejects), then control and format characters become
// spaces, runs of spaces collapse, and the result is cut to MaxMessageChars characters. A message that
// still quotes a piece of a secret (a service that shortened what it echoed) is withheld altogether.
func sanitizeMessage(msg string, secrets ...string) string {
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

// pieceLen is the shortest piece of a secret that quotesPartOf looks for: long enough that ordinary
// words never match a random value by chance.
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
