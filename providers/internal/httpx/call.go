package httpx

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client sends one provider's HTTP calls and reports what goes wrong as *Error. It is configuration:
// a provider fills one when it is built and never changes it; it is safe for concurrent use.
//
// What is common to every HTTP provider lives here: the request (Accept, User-Agent, a JSON body, a
// timeout that covers reading the answer), no redirects, a bounded read, the classification of a
// failure to get an answer, Retry-After, and the service's error message made fit for logs. What a
// status means stays with each provider (Fail takes its Verdict).
type Client struct {
	Provider  string // the provider's name, the first word of its errors: "sendgrid"
	Service   string // what errors call the other side: "SendGrid", "the service"
	UserAgent string // sent as User-Agent
	// HTTP sends the requests; nil is net/http's default transport. Its redirects are never followed,
	// whatever its CheckRedirect says: a credential goes to the configured URL or nowhere.
	HTTP *http.Client
	// Now reads Retry-After dates; nil is time.Now (they are the service's wall-clock times).
	Now func() time.Time
	// MaxBody is the most of a response body read; a longer body is never parsed (Response.TooLong).
	MaxBody int64
	// Messages makes the service's error message fit for errors.
	Messages Sanitizer
	// Message finds the service's own error message in a JSON error body ("" if none). Nil: messages
	// are not repeated.
	Message func(body []byte) string
	// RetryAfter reads how long the service asked to wait; nil reads the Retry-After header, at most
	// MaxRetryAfter.
	RetryAfter func(status int, h http.Header, now time.Time) time.Duration
	// TimeoutSetting names what sets a call's timeout ("webhook-timeout-seconds"), for the error when
	// it runs out; "" names nothing.
	TimeoutSetting string
}

// Request is one call.
type Request struct {
	Op     string // what kvrotator is doing, for errors: "create key", "verify"
	Method string
	URL    string // the whole URL; errors show it without its query (ShownURL)
	// Header is sent as is, after Accept, User-Agent and Content-Type: Authorization, signatures.
	Header http.Header
	// Body is sent as application/json; nil sends none.
	Body []byte
	// Timeout bounds the call, reading the answer included; 0 leaves it to ctx and the client.
	Timeout time.Duration
	// Secrets are redacted from anything the service says back: the keys and values the call carries
	// or that the service might echo.
	Secrets []string
}

// Verdict is what a provider's table says a status means.
type Verdict struct {
	Reason    string // in kvrotator's words
	Transient bool   // the same call may succeed later: the engine retries
}

// Do sends r and returns the answer, whatever its status, with its body read up to MaxBody. Failing
// to get or read an answer is an *Error, classified by TransportReasons.Classify: transient for
// timeouts, resets and refusals, permanent for a TLS certificate the client does not trust.
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	callCtx := ctx
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(callCtx, r.Method, r.URL, body)
	if err != nil {
		// The cause is not kept: it quotes the URL whole.
		return nil, c.Error(r, 0, "building the request", true).Classified()
	}
	req.Header.Set("Accept", JSONType)
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", JSONType)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := WithoutRedirects(c.HTTP).Do(req)
	if err != nil {
		return nil, c.transport(ctx, callCtx, r, 0, err)
	}
	out, err := Read(resp, c.MaxBody)
	if err != nil {
		return nil, c.transport(ctx, callCtx, r, resp.StatusCode, err)
	}
	return out, nil
}

// transport is the *Error for a failure to get (or read) an answer.
func (c *Client) transport(ctx, callCtx context.Context, r Request, status int, err error) error {
	deadline := fmt.Sprintf("no answer within %v", r.Timeout)
	if c.TimeoutSetting != "" {
		deadline += " (" + c.TimeoutSetting + ")"
	}
	reasons := TransportReasons{
		Deadline:    deadline + "; will retry",
		Untrusted:   "the server's TLS certificate is not trusted",
		TimedOut:    "timed out; will retry",
		Unreachable: c.Service + " could not be reached; will retry",
	}
	e := c.Error(r, status, "", false)
	e.Reason, e.Err, e.Permanent = reasons.Classify(ctx, callCtx, err)
	return e.Classified()
}

// Error starts an *Error about r, answered with status (0: no answer). The caller may add to it; it
// reaches the engine through Classified.
func (c *Client) Error(r Request, status int, reason string, permanent bool) *Error {
	return &Error{Provider: c.Provider, Service: c.Service, Op: r.Op, Method: r.Method, URL: ShownURL(r.URL),
		Status: status, Reason: reason, Permanent: permanent}
}

// Fail is the error for resp, an answer to r that the caller cannot use, classified as v says: with
// how long the service asked to wait and, when the status is not a success, the service's own error
// message, sanitized. Nothing else of the body is kept.
func (c *Client) Fail(r Request, resp *Response, v Verdict) error {
	e := c.Error(r, resp.Status, v.Reason, !v.Transient)
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if c.RetryAfter != nil {
		e.Retry = c.RetryAfter(resp.Status, resp.Header, now())
	} else {
		e.Retry = ParseRetryAfter(resp.Header.Get("Retry-After"), now(), MaxRetryAfter)
	}
	if (resp.Status < 200 || resp.Status > 299) && c.Message != nil && resp.JSONProblem() == "" {
		e.Message = c.Messages.Sanitize(c.Message(resp.Body), r.Secrets...)
	}
	return e.Classified()
}

// DecodeObject reads a success body that must be one JSON object into v (a struct, or a map of
// json.RawMessage); the string says what breaks the contract, "" if nothing. It never quotes the
// body: not even the character a syntax error is about. Unknown fields are ignored.
func (r *Response) DecodeObject(v any) string {
	if reason := r.JSONProblem(); reason != "" {
		return "response " + reason
	}
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return "empty response body"
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			return fmt.Sprintf("response body is not valid JSON (at byte %d)", se.Offset)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return "response body is not valid JSON (cut short)"
		}
		return "response body is not valid JSON"
	}
	if raw[0] != '{' {
		return "response body is not a JSON object"
	}
	if _, err := dec.Token(); err != io.EOF {
		return "response body has data after the JSON object"
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Sprintf("field %s has the wrong type (JSON %s)", te.Field, te.Value)
		}
		return "response body does not fit the contract"
	}
	return ""
}
