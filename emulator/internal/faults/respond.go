package faults

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// injectedMessage is the message of an injected failure whose rule has none.
const injectedMessage = "Injected failure (kvrotator emulator fault rule)."

// WriteError writes a Key Vault error answer: status, Content-Type application/json, a Retry-After
// header in whole seconds (rounded up) when retryAfter > 0, and the body
// {"error":{"code":code,"message":message}}.
func WriteError(w http.ResponseWriter, status int, code, message string, retryAfter time.Duration) {
	type kvError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Error kvError `json:"error"`
	}{kvError{Code: code, Message: message}})
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds(retryAfter)))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// WriteThrottled writes the real service's 429 Throttled answer, with a Retry-After header when
// retryAfter > 0 (the real service sends none; clients must not depend on it).
func WriteThrottled(w http.ResponseWriter, retryAfter time.Duration) {
	WriteError(w, http.StatusTooManyRequests, "Throttled", ThrottledMessage, retryAfter)
}

// Respond answers req according to a matched rule: it waits Delay (giving up silently if the client
// goes away), then either closes the connection without an answer (Drop, and DropAfter, for which
// the caller must have applied the call first) or writes the error with WriteError. The handler must write nothing else afterwards. Dropping hijacks an HTTP/1.x
// connection; where that is impossible (HTTP/2) it aborts the handler with panic(http.ErrAbortHandler),
// which net/http turns into a reset stream without logging.
func (r Rule) Respond(w http.ResponseWriter, req *http.Request) {
	if r.Delay > 0 {
		t := time.NewTimer(r.Delay)
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return
		}
	}
	if r.Drop || r.DropAfter {
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			_ = conn.Close()
			return
		}
		panic(http.ErrAbortHandler)
	}
	msg := r.Message
	if msg == "" {
		msg = injectedMessage
		if r.Status == http.StatusTooManyRequests {
			msg = ThrottledMessage
		}
	}
	code := r.Code
	if code == "" {
		code = DefaultCode(r.Status)
	}
	WriteError(w, r.Status, code, msg, r.RetryAfter)
}
