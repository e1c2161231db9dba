package azurekeys

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/vocab"
)

// Error is a failed call to Azure Resource Manager or to a resource's data plane. Errors the engine
// should not retry are wrapped with providers.Permanent; find the Error underneath with errors.As. It
// never holds a key: not the request, not the response body, only the service's error code and its
// message, sanitized.
type Error struct {
	// Op is what was attempted: "list keys", "regenerate key2", "verify key2".
	Op string
	// Resource is the ARM resource id (configuration, not a secret).
	Resource string
	// Status is the HTTP status code; 0 when no response arrived.
	Status int
	// Code is the service's error code (AuthorizationFailed, Conflict, ResourceNotFound, …).
	Code string
	// Message is the service's error message: control characters removed, anything that looks like a
	// key redacted, at most MaxMessageChars characters.
	Message string
	// Reason says what went wrong and what to do, in kvrotator's words.
	Reason string
	// Retry is the service's Retry-After; 0 when it sent none.
	Retry time.Duration
	// Err is the cause, if any: a connection error, a cancelled context.
	Err error
}

// MaxMessageChars is the most characters of a service's error message an Error repeats.
const MaxMessageChars = 300

func (e *Error) Error() string {
	var b httpx.ErrorText
	fmt.Fprintf(&b, "azure-keys: %s", e.Op)
	if e.Resource != "" {
		fmt.Fprintf(&b, " on %s", e.Resource)
	}
	b.Status(e.Status)
	b.Code(e.Code)
	b.Reason(e.Reason)
	b.Says("Azure", e.Message)
	b.Cause(e.Err)
	b.Retry(e.Retry)
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// RetryAfter is how long Azure asked callers to wait (its Retry-After header on a 429 or 503, after
// azcore's own retries gave up); 0 when it did not say. The engine uses it to delay its retry.
func (e *Error) RetryAfter() time.Duration { return e.Retry }

// maxRetryAfter caps what a service can ask for.
const maxRetryAfter = time.Hour

// responseError builds the Error for a non-success response and classifies it: the statuses no retry
// can fix are permanent, the rest transient. action is the ARM permission the call needed (for 403s).
func responseError(resp *http.Response, op string, c config, action string) error {
	e := &Error{Op: op, Resource: c.id.String(), Status: resp.StatusCode, Retry: retryAfter(resp.Header, time.Now())}
	if body, err := runtime.Payload(resp); err == nil {
		e.Code, e.Message = errorBody(body, c.known...)
	}
	return classify(e, c, action)
}

func classify(e *Error, c config, action string) error {
	k := c.kind
	switch s := e.Status; {
	case s == http.StatusForbidden:
		e.Reason = fmt.Sprintf("forbidden: the identity kvrotator runs as needs %s on the resource — e.g. the built-in role %q (or a custom role with %s)",
			action, k.role, strings.Join(k.actions(), " and "))
		return providers.Permanent(e)
	case s == http.StatusUnauthorized:
		e.Reason = "the token was rejected: check that kvrotator's identity is in the resource's tenant and that the cloud's Resource Manager audience is right"
		return providers.Permanent(e)
	case s == http.StatusNotFound:
		e.Reason = "not found: check " + TagAddress + " (subscription, resource group, name) and that kvrotator's identity can see the subscription"
		return providers.Permanent(e)
	case s == http.StatusBadRequest:
		e.Reason = "Azure rejected the request: check " + TagAddress + " and " + TagAPIVersion + " (default " + k.apiVersion + ")"
		return providers.Permanent(e)
	case s == http.StatusConflict && strings.EqualFold(e.Code, "ScopeLocked"):
		e.Reason = "the resource or its resource group has a read-only lock, which blocks listKeys and regenerate (both are POST actions): remove it or use a delete lock"
		return providers.Permanent(e)
	case s == http.StatusConflict, s == http.StatusPreconditionFailed:
		// 409 Conflict: another operation is running on the resource. Cosmos DB answers 412 for the same.
		e.Reason = "another operation is in progress on the resource; try again later"
		return e
	case s == http.StatusTooManyRequests:
		e.Reason = "throttled by Azure"
		return e
	case vocab.TransientStatus(s): // 408 and 5xx (429 above)
		e.Reason = "Azure is unavailable; try again later"
		return e
	case s >= 200 && s < 300:
		// A long-running operation that ended in Failed or Canceled: its status said why.
		e.Reason = "the operation did not succeed"
		return e
	default:
		e.Reason = "unexpected answer"
		return providers.Permanent(e)
	}
}

// transportError wraps a call that got no response (connection refused, DNS, TLS, timeout, cancelled).
func transportError(err error, op string, c config) error {
	e := &Error{Op: op, Resource: c.id.String(), Err: err}
	e.Reason = "no answer from Azure"
	return e
}

// errorBody reads an Azure error body: {"error":{"code","message"}} (Resource Manager) or
// {"code","message"} (some resource providers and data planes). Anything else gives "".
// Values in known are redacted wherever they appear.
func errorBody(body []byte, known ...string) (code, message string) {
	var b struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &b) != nil {
		return "", ""
	}
	if b.Error != nil {
		return sanitize(b.Error.Code, 64, known...), sanitize(b.Error.Message, MaxMessageChars, known...)
	}
	return sanitize(b.Code, 64, known...), sanitize(b.Message, MaxMessageChars, known...)
}

// keyLike matches what could be a key: a long run of base64 or hex characters with both letters and
// digits in it. Azure's messages carry resource ids, GUIDs, action names and error codes: a run that
// spans a resource id path ("…/resourceGroups/…/providers/…") is one of those, not a key.
var keyLike = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[A-Za-z0-9+/=_]{32,}`) })

func redactKeys(s string) string {
	return keyLike().ReplaceAllStringFunc(s, func(run string) string {
		l := strings.ToLower(run)
		if strings.Contains(l, "resourcegroups/") || strings.Contains(l, "providers/") || strings.Contains(l, "subscriptions/") {
			return run
		}
		if strings.ContainsAny(run, "0123456789") && strings.ContainsFunc(run, unicode.IsLetter) {
			return httpx.Redacted
		}
		return run
	})
}

// minKnownLen is the shortest known value sanitize redacts: a shorter one is no key, and replacing it
// everywhere would mangle the message.
const minKnownLen = 8

// sanitize makes a service's text fit for logs: the known secrets and anything key-like redacted,
// control and format characters turned into spaces, runs of spaces collapsed, cut to max characters
// (httpx.Clean).
func sanitize(s string, max int, known ...string) string {
	for _, k := range known {
		if len(k) >= minKnownLen {
			s = httpx.Redact(s, k)
		}
	}
	return httpx.Clean(redactKeys(s), max)
}

// retryAfter reads retry-after-ms, x-ms-retry-after-ms or Retry-After (seconds or an HTTP date), as
// azcore does. Absent, malformed or past values give 0.
func retryAfter(h http.Header, now time.Time) time.Duration {
	for _, name := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if n, err := strconv.ParseInt(strings.TrimSpace(h.Get(name)), 10, 64); err == nil && n > 0 {
			return min(time.Duration(n)*time.Millisecond, maxRetryAfter)
		}
	}
	return httpx.ParseRetryAfter(h.Get("Retry-After"), now, maxRetryAfter)
}

var (
	errNotJSON = errors.New("the answer is not the JSON the API documents")
	errNoConn  = errors.New("listKeys returned no connection string for the slot")
)
