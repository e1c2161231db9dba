package httpx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
)

// JSONType is the media type the providers send and expect.
const JSONType = "application/json"

// FormType is the media type of a form-encoded request body (Request.ContentType), as an OAuth token
// request sends.
const FormType = "application/x-www-form-urlencoded"

// Response is an answer whose status the caller handles, with its body read up to a limit.
type Response struct {
	Status  int
	Header  http.Header
	Body    []byte // nil when TooLong
	TooLong bool   // the body was longer than Limit bytes
	Limit   int64  // the most of the body that was kept
}

// Read reads resp's body, at most limit bytes of it, and closes it. A longer body is dropped and
// TooLong says so: a body cut short is never parsed. The error is the one reading gave; the caller
// classifies it (TransportReasons) like a failure to get a response.
func Read(resp *http.Response, limit int64) (*Response, error) {
	defer resp.Body.Close()
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Limit: limit}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		r.TooLong = true
	} else {
		r.Body = body
	}
	return r, nil
}

// IsJSON reports whether a response's Content-Type says its body is JSON: application/json or a
// +json type, parameters allowed.
func IsJSON(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && (mt == JSONType || strings.HasSuffix(mt, "+json"))
}

// JSONProblem says why r's body cannot be read as JSON, without quoting it: "body exceeds N KiB" when
// it was longer than the limit, `Content-Type is "…", want application/json` when the response does
// not say it is JSON. "" when neither: the body may still be malformed.
func (r *Response) JSONProblem() string {
	switch {
	case r.TooLong:
		return fmt.Sprintf("body exceeds %d KiB", r.Limit>>10)
	case !IsJSON(r.Header):
		return fmt.Sprintf("Content-Type is %q, want %s", r.Header.Get("Content-Type"), JSONType)
	}
	return ""
}

// ReasonStopped is the reason TransportReasons.Classify gives when the caller's own context ended.
const ReasonStopped = "stopped by the caller"

// TransportReasons are a provider's words for the ways a call can fail to get (or read) a response.
type TransportReasons struct {
	Deadline    string // the call's own timeout ran out
	Untrusted   string // the server's TLS certificate is not trusted
	TimedOut    string // a network timeout
	Unreachable string // anything else: refused, reset, DNS, a proxy
}

// Classify classifies err, the failure of a call made with callCtx (the caller's ctx with the call's
// own timeout). It returns the reason, the cause to record and whether the failure is permanent:
//
//   - ctx ended: ReasonStopped and ctx.Err(), transient (the engine's own deadline or cancellation);
//   - callCtx's deadline passed: r.Deadline and context.DeadlineExceeded, transient;
//   - a certificate the client does not trust: r.Untrusted and err, permanent (it needs a person);
//   - a network timeout: r.TimedOut and err, transient;
//   - anything else: r.Unreachable and err, transient.
//
// The cause's text is kept: net/http errors name the URL and the network problem, never a header.
func (r TransportReasons) Classify(ctx, callCtx context.Context, err error) (reason string, cause error, permanent bool) {
	var certErr *tls.CertificateVerificationError
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return ReasonStopped, ctx.Err(), false
	case errors.Is(callCtx.Err(), context.DeadlineExceeded):
		return r.Deadline, context.DeadlineExceeded, false
	case errors.As(err, &certErr):
		return r.Untrusted, err, true
	case errors.As(err, &netErr) && netErr.Timeout():
		return r.TimedOut, err, false
	default:
		return r.Unreachable, err, false
	}
}
