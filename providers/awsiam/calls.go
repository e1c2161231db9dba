package awsiam

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/vocab"
)

// Error is a failed call to IAM or STS: the HTTP providers' shared error type. Errors the engine should
// not retry are wrapped with providers.Permanent; find the Error underneath with errors.As. It never
// holds a secret access key or a response body: only the service's error code, its short message
// (sanitized, secrets redacted) and its request id.
type Error = httpx.Error

// Limits and defaults of the calls.
const (
	// DefaultTimeout bounds each operation, its retries included.
	DefaultTimeout = 30 * time.Second
	// DefaultAttempts is how often an operation that fails transiently (throttling, 5xx, a lost
	// connection; CreateAccessKey only on throttling) is tried: the AWS SDKs' standard retryer.
	DefaultAttempts = 3
	// DefaultMaxBackoff caps the wait between attempts.
	DefaultMaxBackoff = 5 * time.Second
	// MaxResponseBytes is the most of an answer the provider reads. IAM's answers here are a few KiB.
	MaxResponseBytes = 256 << 10
	// MaxMessageChars is the most characters of AWS's error messages an Error repeats.
	MaxMessageChars = 300
)

// appID is sent in the User-Agent (app/kvrotator, as the SDK's AppID was).
const appID = "kvrotator"

// messages makes what AWS says back fit for errors and logs.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: "[withheld: it quoted part of a secret access key]"}

// call describes one operation, for its error.
type call struct {
	service string // "IAM" or "STS"
	action  string // the API action: CreateAccessKey, GetCallerIdentity, …
	op      string // what kvrotator was doing: "create key", "verify", …
	url     string // the endpoint
	secrets []string
}

// verdict is what an error code or status means for one call.
type verdict struct {
	reason    string
	transient bool
}

// transientCodes are AWS error codes that say "try again later": throttling and service failures
// (the AWS SDKs' throttle codes, IAM's ServiceFailure, the common InternalFailure and
// ServiceUnavailable).
var transientCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "RequestLimitExceeded": true, "TooManyRequestsException": true,
	"RequestThrottled": true, "ServiceFailure": true, "ServiceUnavailable": true, "ServiceUnavailableException": true,
	"InternalFailure": true, "InternalError": true, "RequestTimeout": true, "RequestTimeoutException": true,
}

// transport words the ways a call can fail to get an answer.
var transport = httpx.TransportReasons{
	Deadline:    "no answer in time",
	Untrusted:   "the endpoint's TLS certificate is not trusted",
	TimedOut:    "the connection timed out",
	Unreachable: "the endpoint is unreachable (connection refused or reset, DNS, proxy), or the answer was lost",
}

// fail turns a failed call (query.go's *answered, *unread, *unsent, or the context's error) into a
// classified *Error. byCode overrides the default verdict for AWS error codes; def gives the default
// for an error code the call does not single out.
func (p *Provider) fail(ctx, callCtx context.Context, c call, err error, byCode map[string]verdict, def func(code string, status int) verdict) error {
	e := &Error{Provider: Name, Service: "AWS " + c.service, Op: c.op + " (" + c.action + ")", Method: http.MethodPost, URL: c.url + "/"}
	var a *answered
	var u *unread
	switch {
	case errors.As(err, &a):
		e.Status, e.Sent = a.status, true
		e.Retry = httpx.ParseRetryAfter(a.header.Get("Retry-After"), p.now(), httpx.MaxRetryAfter)
		e.RequestID = httpx.Clean(httpx.Redact(a.requestID(), c.secrets...), 100)
	case errors.As(err, &u):
		e.Status = u.status
	}
	switch {
	case a != nil && a.tooLarge:
		e.Reason, e.Permanent = fmt.Sprintf("the answer exceeds %d KiB", MaxResponseBytes>>10), true
	case e.Status >= 300 && e.Status < 400:
		e.Reason, e.Permanent = "redirects are not followed; set the endpoint tag to the final URL", true
	case a != nil && a.code != "":
		e.Code = messages.Sanitize(a.code, c.secrets...)
		e.Message = messages.Sanitize(a.message, c.secrets...)
		v, ok := byCode[a.code]
		if !ok {
			v = def(a.code, e.Status)
		}
		e.Reason, e.Permanent = v.reason, !v.transient
	case a != nil && a.notXML:
		if e.Status >= 200 && e.Status < 300 {
			e.Reason, e.Permanent = "the answer breaks the Query protocol's contract (not the XML the operation returns)", true
		} else {
			v := def("", e.Status)
			e.Reason, e.Permanent = v.reason+" (the error answer is not AWS's XML)", !v.transient
		}
	case a != nil:
		v := def("", e.Status)
		e.Reason, e.Permanent = v.reason, !v.transient
	default:
		// No answer, or one cut short: the request may have reached AWS before the connection failed.
		reason, cause, permanent := transport.Classify(ctx, callCtx, err)
		e.Reason, e.Permanent, e.Err = reason, permanent, transportCause(cause)
		e.Sent = true
	}
	return e.Classified()
}

// transportCause is what an Error keeps of a transport failure: the net/http error (it names the URL
// and the network problem, never a header or a body) or the context's error; never a wrapper whose
// text is not ours to vouch for.
func transportCause(err error) error {
	var ue *url.Error
	var ne net.Error
	var ce *tls.CertificateVerificationError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		if errors.Is(err, context.Canceled) {
			return context.Canceled
		}
		return context.DeadlineExceeded
	case errors.As(err, &ue):
		return ue
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &ne):
		return ne
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return errors.New("the connection closed before the whole answer arrived")
	}
	return errors.New("the request failed before an answer arrived")
}

// statusVerdict is the default meaning of a status without a telling error code.
func statusVerdict(service string, status int) verdict {
	switch {
	case status == http.StatusTooManyRequests:
		return verdict{"rate-limited by AWS " + service + "; will retry", true}
	case vocab.TransientStatus(status):
		return verdict{"AWS " + service + " is unavailable or busy; will retry", true}
	case status >= 200 && status < 300:
		return verdict{fmt.Sprintf("unexpected success status %d", status), false}
	}
	return verdict{"AWS " + service + " rejected the request", false}
}

// adminVerdict is the default meaning of an error code on a call signed with the admin key.
func (cfg config) adminVerdict(service, action string) func(code string, status int) verdict {
	return func(code string, status int) verdict {
		switch {
		case transientCodes[code]:
			return verdict{"AWS " + service + " is throttling or failing; will retry", true}
		case code == "InvalidClientTokenId":
			return verdict{fmt.Sprintf("AWS does not accept the admin key in secret %q (tag %s): it is deleted, inactive, mistyped, or of another partition", cfg.adminSecret, TagAdminSecret), false}
		case code == "SignatureDoesNotMatch", code == "IncompleteSignature":
			return verdict{fmt.Sprintf("AWS refuses the admin key's signature: the secret access key in secret %q does not match its AccessKeyId, or this machine's clock is more than 15 minutes off", cfg.adminSecret), false}
		case code == "AccessDenied", code == "AccessDeniedException", code == "UnauthorizedOperation":
			return verdict{fmt.Sprintf("the admin key in secret %q may not call iam:%s on %s: grant it in the admin's IAM policy (see the provider's README)", cfg.adminSecret, action, cfg.userARN()), false}
		case code == "NoSuchEntity":
			return verdict{fmt.Sprintf("IAM user %q does not exist in account %s (tag %s)", cfg.user, cfg.account, TagUser), false}
		case code == "LimitExceeded":
			return verdict{"IAM's limit is reached", false}
		}
		return statusVerdict(service, status)
	}
}

// withTimeout gives one operation its timeout.
func (p *Provider) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, p.timeout)
}

// identity is GetCallerIdentity's answer (<GetCallerIdentityResult>).
type identity struct {
	Account string `xml:"Account"`
	Arn     string `xml:"Arn"`
}

// callerIdentity calls STS GetCallerIdentity signed with k (no permission needed: AWS answers it for
// any valid key). byCode singles out error codes for the caller.
func (p *Provider) callerIdentity(ctx context.Context, cfg config, k KeyPair, op string, secrets []string, byCode map[string]verdict,
	def func(code string, status int) verdict) (identity, error) {
	c := call{service: "STS", action: "GetCallerIdentity", op: op, url: cfg.stsURL, secrets: secrets}
	cctx, cancel := p.withTimeout(ctx)
	defer cancel()
	var id identity
	if err := p.stsClient(cfg, k).call(cctx, "GetCallerIdentity", nil, true, &id); err != nil {
		return identity{}, p.fail(ctx, cctx, c, err, byCode, def)
	}
	if id.Account == "" || id.Arn == "" {
		return identity{}, (&Error{Provider: Name, Service: "AWS STS", Op: op + " (GetCallerIdentity)", Method: http.MethodPost, URL: cfg.stsURL + "/",
			Status: http.StatusOK, Reason: "the answer breaks STS's contract: Account or Arn is missing", Permanent: true}).Classified()
	}
	return id, nil
}

// userOf is the user name in an IAM user ARN of the partition and account
// (arn:aws:iam::123456789012:user/path/name), or "" when arn is not one.
func userOf(arn string, cfg config) string {
	rest, ok := strings.CutPrefix(arn, "arn:"+cfg.partition.Name+":iam::"+cfg.account+":user/")
	if !ok || rest == "" {
		return ""
	}
	return rest[strings.LastIndex(rest, "/")+1:]
}
