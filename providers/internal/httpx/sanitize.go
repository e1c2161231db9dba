package httpx

import (
	"strings"
	"unicode"
)

// Redacted replaces a secret in a service's message.
const Redacted = "[redacted]"

// WithheldSecret is what a Sanitizer with no Withheld text returns for a message that still quotes
// part of a secret.
const WithheldSecret = "[withheld: it quoted part of a secret]"

// PieceLen is the shortest piece of a secret QuotesPartOf looks for: long enough that ordinary words
// never match a random value by chance.
const PieceLen = 8

// Sanitizer makes what a service says back (an error message, an error code, a request id) fit for
// logs and errors, for one provider.
type Sanitizer struct {
	// Max is the most characters a message keeps; a longer one is cut and ends in "…". Below 1: no
	// limit.
	Max int
	// Withheld replaces a message that still quotes part of a secret; WithheldSecret when empty.
	Withheld string
}

// Sanitize redacts every occurrence of each secret first (a service might echo the value it
// rejects), then cleans the message (Clean) and cuts it to s.Max characters. A message that still
// quotes a piece of a secret (a service that shortened what it echoed) is withheld altogether.
func (s Sanitizer) Sanitize(msg string, secrets ...string) string {
	clean := Clean(Redact(msg, secrets...), s.Max)
	if QuotesPartOf(clean, secrets...) {
		if s.Withheld == "" {
			return WithheldSecret
		}
		return s.Withheld
	}
	return clean
}

// Redact replaces every occurrence of each non-empty secret in msg with Redacted.
func Redact(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, Redacted)
		}
	}
	return msg
}

// Clean makes text fit for a log line: invalid UTF-8 becomes U+FFFD, control and format characters
// (bidi overrides, zero-width spaces) and white space become spaces, runs of spaces collapse, leading
// and trailing ones go, and the result is cut to max characters, the last being "…". Below 1, max
// sets no limit.
func Clean(msg string, max int) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	out := make([]rune, 0, len(msg))
	if max > 0 {
		out = make([]rune, 0, min(len(msg), max+1))
	}
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
		if max > 0 && len(out) > max {
			out = append(out[:max-1], '…')
			break
		}
	}
	return string(out)
}

// QuotesPartOf reports whether msg contains PieceLen consecutive bytes of one of the secrets.
// Secrets shorter than PieceLen are not looked for.
func QuotesPartOf(msg string, secrets ...string) bool {
	for _, s := range secrets {
		for i := 0; i+PieceLen <= len(s); i++ {
			if strings.Contains(msg, s[i:i+PieceLen]) {
				return true
			}
		}
	}
	return false
}
