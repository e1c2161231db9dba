package httpx

import (
	"fmt"
	"strings"
	"time"
)

// ErrorText builds the text of a provider's error in the shape they share:
//
//	<what the provider did>: HTTP <status> <code>: <reason>: <who> says "<message>": <cause> (request id <id>) (retry after <d>)
//
// Each part is written only when it is set. The provider writes its own head (fmt.Fprintf(&t, …))
// and any part of its own between these.
type ErrorText struct{ strings.Builder }

// Status writes ": HTTP <status>" unless status is 0 (no response).
func (t *ErrorText) Status(status int) {
	if status != 0 {
		fmt.Fprintf(t, ": HTTP %d", status)
	}
}

// Code writes " <code>" (the service's error code) unless it is empty.
func (t *ErrorText) Code(code string) {
	if code != "" {
		t.WriteString(" " + code)
	}
}

// Reason writes ": <reason>" unless it is empty.
func (t *ErrorText) Reason(reason string) {
	if reason != "" {
		t.WriteString(": " + reason)
	}
}

// Says writes `: <who> says "<message>"` unless the message is empty.
func (t *ErrorText) Says(who, message string) {
	if message != "" {
		fmt.Fprintf(t, ": %s says %q", who, message)
	}
}

// Cause writes ": <err>" unless err is nil.
func (t *ErrorText) Cause(err error) {
	if err != nil {
		t.WriteString(": " + err.Error())
	}
}

// RequestID writes " (request id <id>)" unless id is empty.
func (t *ErrorText) RequestID(id string) {
	if id != "" {
		fmt.Fprintf(t, " (request id %s)", id)
	}
}

// Retry writes " (retry after <d>)" when d is positive.
func (t *ErrorText) Retry(d time.Duration) {
	if d > 0 {
		fmt.Fprintf(t, " (retry after %v)", d)
	}
}
