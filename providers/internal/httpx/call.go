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
// What is common to every HTTP provider lives here: the request (Accept, User-Agent, a body, a
// timeout that covers reading the answer), no redirects, a bounded read, the classification of a
// failure to get an answer, Retry-After, and what the service says about an error (its message, code
// and request id) made fit for logs. What a status means stays with each provider (Fail takes its
// Verdict).
type Client struct {
	Provider  string // the provider's name, the first word of its errors: "sendgrid"
	Service   string // what errors call the other side: "SendGrid", "the service"
	UserAgent string // sent as User-Agent
	// HTTP sends the requests; nil is net/http's default transport. An *http.Client's redirects are
	// never followed, whatever its CheckRedirect says: a credential goes to the configured URL or
	// nowhere. Any other Doer (an azcore policy.Transporter) is used as it is and must not follow
	// redirects itself.
	HTTP Doer
	// Now reads Retry-After dates; nil is time.Now (they are the service's wall-clock times).
	Now func() time.Time
	// MaxBody is the most of a response body read; a longer body is never parsed (Response.TooLong).
	MaxBody int64
	// Messages makes what the service says (its error message, code and request id) fit for errors.
	Messages Sanitizer
	// Message finds the service's own error message in a JSON error body ("" if none). Nil: messages
	// are not repeated. Details replaces it when set.
	Message func(body []byte) string
	// Details finds the service's own error message, code and request id in a JSON error body, for a
	// service that says more than a message. Nil: Message alone is used.
	Details func(body []byte) Details
	// RequestIDHeader names the response header that carries the service's id of the request
	// ("request-id"), for a support case; a request id Details finds in the body wins. "": none.
	RequestIDHeader string
	// RetryAfter reads how long the service asked to wait; nil reads the Retry-After header, at most
	// MaxRetryAfter.
	RetryAfter func(status int, h http.Header, now time.Time) time.Duration
	// TimeoutSetting names what sets a call's timeout ("webhook-timeout-seconds"), for the error when
	// it runs out; "" names nothing.
	TimeoutSetting string
}

// Doer sends one HTTP request: *http.Client, or an azcore policy.Transporter.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Details is what a service's JSON error body says, as a provider's Client.Details finds it. Fail
// sanitizes every part before an Error holds it.
type Details struct {
	Code      string // the service's error code: "Authorization_RequestDenied", "invalid_client"
	SubCode   string // a finer code besides Code, when the service gives one: "AADSTS7000215"
	Message   string // the service's own error message
	RequestID string // the service's id of the request (a request id, a trace id)
}

// Request is one call.
type Request struct {
	Op     string // what kvrotator is doing, for errors: "create key", "verify"
	Method string
	URL    string // the whole URL; errors show it without its query (ShownURL)
	// Header is sent as is, after Accept, User-Agent and Content-Type: Authorization, signatures.
	Header http.Header
	// Body is sent with ContentType; nil sends none.
	Body []byte
	// ContentType is Body's media type; "" is JSONType.
	ContentType string
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
// timeouts, resets and refusals, permanent for a TLS certificate the client does not trust. Its Sent
// is true unless the request could not be built: once handed to HTTP, it may have reached the service.
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
		ct := r.ContentType
		if ct == "" {
			ct = JSONType
		}
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := sender(c.HTTP).Do(req)
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
	e.Sent = true
	e.Reason, e.Err, e.Permanent = reasons.Classify(ctx, callCtx, err)
	return e.Classified()
}

// sender is what sends c's requests: d, or for an *http.Client (nil: net/http's default) a copy that
// follows no redirect.
func sender(d Doer) Doer {
	switch t := d.(type) {
	case nil:
		return WithoutRedirects(nil)
	case *http.Client:
		return WithoutRedirects(t)
	}
	return d
}

// Error starts an *Error about r, answered with status (0: no answer; Sent is whether one came). The
// caller may add to it; it reaches the engine through Classified.
func (c *Client) Error(r Request, status int, reason string, permanent bool) *Error {
	return &Error{Provider: c.Provider, Service: c.Service, Op: r.Op, Method: r.Method, URL: ShownURL(r.URL),
		Status: status, Reason: reason, Permanent: permanent, Sent: status != 0}
}

// Fail is the error for resp, an answer to r that the caller cannot use, classified as v says: with
// how long the service asked to wait, the service's request id (RequestIDHeader) and, when the status
// is not a success, what its JSON error body says (Details, or Message), sanitized with r's secrets
// redacted. Nothing else of the body is kept.
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
	var d Details
	if c.RequestIDHeader != "" {
		d.RequestID = resp.Header.Get(c.RequestIDHeader)
	}
	if (resp.Status < 200 || resp.Status > 299) && resp.JSONProblem() == "" {
		switch {
		case c.Details != nil:
			said := c.Details(resp.Body)
			d.Code, d.SubCode, d.Message = said.Code, said.SubCode, said.Message
			if said.RequestID != "" {
				d.RequestID = said.RequestID
			}
		case c.Message != nil:
			d.Message = c.Message(resp.Body)
		}
	}
	s := func(text string) string { return c.Messages.Sanitize(text, r.Secrets...) }
	e.Code, e.SubCode, e.Message, e.RequestID = s(d.Code), s(d.SubCode), s(d.Message), s(d.RequestID)
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
