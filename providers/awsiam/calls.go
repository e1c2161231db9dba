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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

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
	// DefaultTimeout bounds each operation, the SDK's own retries included.
	DefaultTimeout = 30 * time.Second
	// DefaultAttempts is how often the SDK tries an operation that fails transiently (throttling,
	// 5xx, a lost connection; CreateAccessKey only on throttling): the SDK's standard retryer.
	DefaultAttempts = 3
	// DefaultMaxBackoff caps the SDK's wait between attempts.
	DefaultMaxBackoff = 5 * time.Second
	// MaxResponseBytes is the most of an answer the provider reads. IAM's answers here are a few KiB.
	MaxResponseBytes = 256 << 10
	// MaxMessageChars is the most characters of AWS's error messages an Error repeats.
	MaxMessageChars = 300
)

// appID is sent in the SDK's User-Agent.
const appID = "kvrotator"

// messages makes what AWS says back fit for errors and logs.
var messages = httpx.Sanitizer{Max: MaxMessageChars, Withheld: "[withheld: it quoted part of a secret access key]"}

// errTooLarge is a response body over MaxResponseBytes.
var errTooLarge = errors.New("response body too large")

// boundedClient sends the SDK's requests with a redirect-free client and cuts every response body at
// MaxResponseBytes.
type boundedClient struct{ c *http.Client }

func (b boundedClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := b.c.Do(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &boundedBody{rc: resp.Body, left: MaxResponseBytes}
	return resp, nil
}

type boundedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		if n, _ := b.rc.Read(one[:]); n > 0 {
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *boundedBody) Close() error { return b.rc.Close() }

// credentials hands the SDK one key pair.
func credentials(k KeyPair) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: k.ID, SecretAccessKey: k.Secret, Source: appID}, nil
	})
}

// retryer is the SDK's standard retryer without its client-side token bucket (the engine owns
// pacing). For calls that are not idempotent (CreateAccessKey) it retries only throttling answers,
// which say the request was not applied: a lost answer or a 5xx might hide a created key, which the
// next Create finds instead (see Create).
func (p *Provider) retryer(idempotent bool) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = p.attempts
		o.MaxBackoff = p.maxBackoff
		o.RateLimiter = ratelimit.None
		if !idempotent {
			o.Retryables = []retry.IsErrorRetryable{retry.NoRetryCanceledError{}, retry.RetryableErrorCode{Codes: retry.DefaultThrottleErrorCodes}}
		}
	})
}

// iamClient is an IAM client for one endpoint and key.
func (p *Provider) iamClient(cfg config, k KeyPair) *iam.Client {
	return iam.New(iam.Options{
		Region: cfg.partition.Region, BaseEndpoint: aws.String(cfg.iamURL), Credentials: credentials(k),
		HTTPClient: boundedClient{p.http}, Retryer: p.retryer(true), AppID: appID,
	})
}

// stsClient is an STS client for one endpoint and key.
func (p *Provider) stsClient(cfg config, k KeyPair) *sts.Client {
	return sts.New(sts.Options{
		Region: cfg.partition.Region, BaseEndpoint: aws.String(cfg.stsURL), Credentials: credentials(k),
		HTTPClient: boundedClient{p.http}, Retryer: p.retryer(true), AppID: appID,
	})
}

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
// (the SDK's own throttle codes, IAM's ServiceFailure, the common InternalFailure and
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

// fail turns an SDK error into a classified *Error. byCode overrides the default verdict for AWS
// error codes; def gives the default for an error code the call does not single out.
func (p *Provider) fail(ctx, callCtx context.Context, c call, err error, byCode map[string]verdict, def func(code string, status int) verdict) error {
	e := &Error{Provider: Name, Service: "AWS " + c.service, Op: c.op + " (" + c.action + ")", Method: http.MethodPost, URL: c.url + "/"}
	var re *awshttp.ResponseError
	var sre *smithyhttp.ResponseError
	var ae smithy.APIError
	var de *smithy.DeserializationError
	switch {
	case errors.As(err, &sre):
		e.Status, e.Sent = sre.HTTPStatusCode(), true
		if sre.Response != nil {
			e.Retry = httpx.ParseRetryAfter(sre.Response.Header.Get("Retry-After"), p.now(), httpx.MaxRetryAfter)
		}
	}
	if errors.As(err, &re) {
		e.RequestID = httpx.Clean(httpx.Redact(re.ServiceRequestID(), c.secrets...), 100)
	}
	switch {
	case errors.Is(err, errTooLarge):
		e.Reason, e.Permanent = fmt.Sprintf("the answer exceeds %d KiB", MaxResponseBytes>>10), true
	case e.Status >= 300 && e.Status < 400:
		e.Reason, e.Permanent = "redirects are not followed; set the endpoint tag to the final URL", true
	case errors.As(err, &ae) && ae.ErrorCode() != "":
		e.Code = messages.Sanitize(ae.ErrorCode(), c.secrets...)
		e.Message = messages.Sanitize(ae.ErrorMessage(), c.secrets...)
		v, ok := byCode[ae.ErrorCode()]
		if !ok {
			v = def(ae.ErrorCode(), e.Status)
		}
		e.Reason, e.Permanent = v.reason, !v.transient
	case errors.As(err, &de):
		if e.Status >= 200 && e.Status < 300 {
			e.Reason, e.Permanent = "the answer breaks the Query protocol's contract (not the XML the operation returns)", true
		} else {
			v := def("", e.Status)
			e.Reason, e.Permanent = v.reason+" (the error answer is not AWS's XML)", !v.transient
		}
	case e.Status != 0:
		v := def("", e.Status)
		e.Reason, e.Permanent = v.reason, !v.transient
	default:
		reason, cause, permanent := transport.Classify(ctx, callCtx, err)
		e.Reason, e.Permanent, e.Err = reason, permanent, transportCause(cause)
		e.Sent = true // the request may have reached AWS before the connection failed
	}
	return e.Classified()
}

// transportCause is what an Error keeps of a transport failure: the net/http error (it names the URL
// and the network problem, never a header or a body) or the context's error; never the SDK's wrapper,
// whose text is not ours to vouch for.
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

// identity is GetCallerIdentity's answer.
type identity struct {
	Account string
	Arn     string
}

// callerIdentity calls STS GetCallerIdentity signed with k (no permission needed: AWS answers it for
// any valid key). byCode singles out error codes for the caller.
func (p *Provider) callerIdentity(ctx context.Context, cfg config, k KeyPair, op string, secrets []string, byCode map[string]verdict,
	def func(code string, status int) verdict) (identity, error) {
	c := call{service: "STS", action: "GetCallerIdentity", op: op, url: cfg.stsURL, secrets: secrets}
	cctx, cancel := p.withTimeout(ctx)
	defer cancel()
	out, err := p.stsClient(cfg, k).GetCallerIdentity(cctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return identity{}, p.fail(ctx, cctx, c, err, byCode, def)
	}
	id := identity{Account: aws.ToString(out.Account), Arn: aws.ToString(out.Arn)}
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
