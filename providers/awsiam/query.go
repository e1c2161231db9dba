package awsiam

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/smithy-go/aws-http-auth/credentials"
	"github.com/aws/smithy-go/aws-http-auth/sigv4"
	v4 "github.com/aws/smithy-go/aws-http-auth/v4"

	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// A small client for the AWS Query protocol, the one IAM and STS speak: POST / with a form body
// (Action=…&Version=…&parameters, sorted, form-encoded), signed with Signature Version 4 by AWS's
// standalone signer (github.com/aws/smithy-go/aws-http-auth/sigv4); success answers are XML,
// <{Action}Response><{Action}Result>…</{Action}Result><ResponseMetadata>…</ResponseMetadata>
// </{Action}Response>, and errors are <ErrorResponse><Error><Type/><Code/><Message/></Error>
// <RequestId/></ErrorResponse>.
//
// It keeps what aws-sdk-go-v2 (service/iam, service/sts), which the provider used before, did for
// these calls: the standard retryer's rules (which failures are retried, its jittered exponential
// backoff, X-Amz-Retry-After), its clock skew correction (the server's Date header), the request id
// from x-amzn-RequestId, how an answer that is not the protocol's XML is told apart, and the
// parameters' serialization.

// The Query protocol's API versions.
const (
	iamVersion = "2010-05-08"
	stsVersion = "2011-06-15"
)

// userAgent is sent with every request.
const userAgent = "kvrotator-aws-iam/1 app/" + appID

// formType is the media type of a Query request's body.
const formType = "application/x-www-form-urlencoded"

// client is one service endpoint (IAM or STS) called with one key. It is used by one operation at a
// time (it keeps the clock skew it observed), never concurrently.
type client struct {
	p       *Provider
	service string // "IAM" or "STS", for errors
	signing string // the SigV4 service name: "iam" or "sts"
	version string // the API version
	region  string // the signing region
	url     string // the endpoint, without a trailing slash
	key     KeyPair
	// skew is the difference between AWS's clock and this machine's the last operation observed
	// (the SDK's clock skew correction): requests are signed at now+skew.
	skew time.Duration
}

// iamClient is an IAM client for one endpoint and key.
func (p *Provider) iamClient(cfg config, k KeyPair) *client {
	return &client{p: p, service: "IAM", signing: "iam", version: iamVersion, region: cfg.partition.Region, url: cfg.iamURL, key: k}
}

// stsClient is an STS client for one endpoint and key.
func (p *Provider) stsClient(cfg config, k KeyPair) *client {
	return &client{p: p, service: "STS", signing: "sts", version: stsVersion, region: cfg.partition.Region, url: cfg.stsURL, key: k}
}

// answered is an attempt that got an answer the operation cannot use: an error status, or a success
// that is not the operation's XML. It reaches fail, which makes an *Error of it; its text is never
// shown.
type answered struct {
	status int
	header http.Header
	// code and message are what the <Error> element says ("" when the body has none).
	code, message string
	// tooLarge: the body exceeds MaxResponseBytes and was not read.
	tooLarge bool
	// notXML: the body is not the XML the protocol promises (an error answer without an <Error>
	// element, a success without the <{Action}Result> element, or one that does not decode).
	notXML bool
	// clockSkew: an error that says the signature's time is off, while the answer's Date is more than
	// skewThreshold from the time the request was signed at (retried: see retryable).
	clockSkew bool
}

func (a *answered) Error() string {
	if a.code != "" {
		return fmt.Sprintf("AWS answered %d %s", a.status, a.code)
	}
	return fmt.Sprintf("AWS answered %d", a.status)
}

// requestID is the answer's request id (the SDK's: x-amzn-RequestId, else x-amz-requestid).
func (a *answered) requestID() string {
	if id := a.header.Get("X-Amzn-Requestid"); id != "" {
		return id
	}
	return a.header.Get("X-Amz-RequestId")
}

// unread is an answer whose body could not be read to its end (the connection failed): classified as
// a failure to get an answer, with the status that came.
type unread struct {
	status int
	err    error
}

func (u *unread) Error() string { return u.err.Error() }
func (u *unread) Unwrap() error { return u.err }

// unsent is a request the HTTP client failed to send or got no answer to (the SDK's
// RequestSendError).
type unsent struct{ err error }

func (u *unsent) Error() string { return u.err.Error() }
func (u *unsent) Unwrap() error { return u.err }

// call runs action with params (Action and Version are added) and decodes its <{Action}Result> into
// out (nil for actions that answer with ResponseMetadata only). It tries up to the provider's
// attempts when a failure is retryable (see retryable; idempotent is false for CreateAccessKey),
// waiting the SDK's standard backoff between attempts. The error is the last attempt's, or the
// context's: *answered, *unread, *unsent, or ctx.Err().
func (c *client) call(ctx context.Context, action string, params url.Values, idempotent bool, out any) error {
	form := url.Values{}
	for k, v := range params {
		form[k] = v
	}
	form.Set("Action", action)
	form.Set("Version", c.version)
	body := []byte(form.Encode())
	skew := c.skew
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		observed, seen, err := c.attempt(ctx, action, body, skew, out)
		// The SDK signs each attempt with the skew the previous answer showed (none: none).
		skew = 0
		if seen {
			skew = observed
			c.skew = observed
		}
		if err == nil {
			return nil
		}
		if attempt >= c.p.attempts || !retryable(ctx, err, idempotent) {
			return err
		}
		if err := sleep(ctx, backoff(attempt, c.p.maxBackoff, err)); err != nil {
			return err
		}
	}
}

// attempt sends the request once, signed at now+skew, and reads the answer. It returns the clock skew
// the answer's Date header shows, if it shows one.
func (c *client) attempt(ctx context.Context, action string, body []byte, skew time.Duration, out any) (time.Duration, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/", bytes.NewReader(body))
	if err != nil {
		return 0, false, &unsent{err}
	}
	req.Header.Set("Content-Type", formType)
	req.Header.Set("User-Agent", userAgent)
	hash := sha256.Sum256(body)
	signer := sigv4.New(func(o *v4.SignerOptions) { o.HeaderRules = signedHeaders{} })
	if err := signer.SignRequest(&sigv4.SignRequestInput{
		Request: req, PayloadHash: hash[:], Service: c.signing, Region: c.region, Time: time.Now().Add(skew),
		Credentials: credentials.Credentials{AccessKeyID: c.key.ID, SecretAccessKey: c.key.Secret},
	}); err != nil {
		return 0, false, &unsent{err}
	}
	sent := time.Now()
	resp, err := c.p.http.Do(req)
	if err != nil {
		return 0, false, &unsent{err}
	}
	observed, seen := clockSkew(resp.Header, sent, time.Now())
	r, err := httpx.Read(resp, MaxResponseBytes)
	if err != nil {
		return observed, seen, &unread{status: resp.StatusCode, err: err}
	}
	if r.Status < 200 || r.Status > 299 {
		a := &answered{status: r.Status, header: r.Header, tooLarge: r.TooLong}
		if !r.TooLong {
			a.code, a.message, a.notXML = errorOf(r.Body)
		}
		if seen && clockSkewCodes(a.code) && (skew-observed > skewThreshold || observed-skew > skewThreshold) {
			a.clockSkew = true
		}
		return observed, seen, a
	}
	switch {
	case r.TooLong:
		return observed, seen, &answered{status: r.Status, header: r.Header, tooLarge: true}
	case !decodeResult(r.Body, action+"Result", out):
		return observed, seen, &answered{status: r.Status, header: r.Header, notXML: true}
	}
	return observed, seen, nil
}

// signedHeaders are the headers the signature covers: host, content-type and x-amz-date (and any
// other x-amz- header). The body is covered by its hash.
type signedHeaders struct{}

func (signedHeaders) IsSigned(h string) bool {
	return h == "host" || h == "content-type" || strings.HasPrefix(h, "x-amz-")
}

// Clock skew correction, as the SDK does it (the "Clock Skew Correction" rules of AWS's SDKs): the
// skew is the answer's Date minus the time it arrived, unless it came from a cache (Age) or took
// longer than 15 minutes. An error about the signature's time, when the skew differs from the one
// the request was signed with by more than skewThreshold, is retried with the new skew.
const (
	skewThreshold     = 4 * time.Minute
	maxTrustedLatency = 15 * time.Minute
)

func clockSkew(h http.Header, sent, received time.Time) (time.Duration, bool) {
	date := h.Get("Date")
	if date == "" || h.Get("Age") != "" || received.Sub(sent) > maxTrustedLatency {
		return 0, false
	}
	server, err := http.ParseTime(date)
	if err != nil {
		return 0, false
	}
	return server.Sub(received), true
}

// clockSkewCodes are the error codes that may mean the clock is off (the SDK's list).
func clockSkewCodes(code string) bool {
	switch code {
	case "InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure", "RequestTimeTooSkewed", "AccessDeniedException":
		return true
	}
	return false
}

// errorOf reads an error answer: the first <Error> element's Code and Message. Without an <Error>
// element, or when it does not decode, the answer is not AWS's XML. An <Error> without a Code is
// "UnknownError" (the SDK's word).
func errorOf(body []byte) (code, message string, notXML bool) {
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	if !findElement(body, "Error", &e) {
		return "", "", true
	}
	code, message = e.Code, e.Message
	if code == "" {
		code = "UnknownError"
	}
	if message == "" {
		message = "UnknownError"
	}
	return code, message, false
}

// decodeResult decodes a success answer's <{Action}Result> element into out. For an action without a
// result (out nil) anything goes; for one with a result, the element must be there and decode. An
// empty body is not an empty result (the SDK took it for one): an empty ListAccessKeys answer would
// read as "the user has no keys", and Revoke would report a key revoked that it never saw.
func decodeResult(body []byte, element string, out any) bool {
	if out == nil {
		return true
	}
	return findElement(body, element, out)
}

// findElement decodes the first element named name (any namespace, case-insensitively, at any depth)
// into v; false when there is none or the XML breaks before it or inside it.
func findElement(body []byte, name string, v any) bool {
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if start, ok := tok.(xml.StartElement); ok && strings.EqualFold(start.Name.Local, name) {
			return dec.DecodeElement(v, &start) == nil
		}
	}
}

// Retrying, as the SDK's standard retryer does it (aws/retry, Retry Behavior 2.1), without its
// client-side token bucket (the engine owns pacing).

// throttleCodes are the SDK's throttling error codes (retry.DefaultThrottleErrorCodes).
func throttleCodes(code string) bool {
	switch code {
	case "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
		"ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
		"LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException":
		return true
	}
	return false
}

// modeledCodes are the error codes IAM's and STS's models declare: a 429 carrying one of them is not
// "unmodeled", and so not a throttle by status alone.
func modeledCodes(code string) bool {
	switch code {
	case "AccountNotManagementOrDelegatedAdministratorException", "CallerIsNotManagementAccountException", "ConcurrentModification",
		"ReportExpired", "ReportNotPresent", "ReportInProgress", "DeleteConflict", "DuplicateCertificate", "DuplicateSSHPublicKey",
		"EntityAlreadyExists", "EntityTemporarilyUnmodifiable", "FeatureDisabled", "FeatureEnabled", "InvalidAuthenticationCode",
		"InvalidCertificate", "InvalidInput", "InvalidPublicKey", "InvalidUserType", "KeyPairMismatch", "LimitExceeded",
		"MalformedCertificate", "MalformedPolicyDocument", "NameConflict", "NoSuchEntity", "OpenIdIdpCommunicationError",
		"OrganizationNotFoundException", "OrganizationNotInAllFeaturesModeException", "PasswordPolicyViolation", "PolicyEvaluation",
		"PolicyNotAttachable", "ReportGenerationLimitExceeded", "RoleModified", "RoleTemplateDisabled", "ServiceAccessNotEnabledException",
		"ServiceFailure", "NotSupportedService", "UnmodifiableEntity", "UnrecognizedPublicKeyEncoding",
		"ExpiredTokenException", "ExpiredTradeInTokenException", "IDPCommunicationError", "IDPRejectedClaim",
		"InvalidAuthorizationMessageException", "InvalidIdentityToken", "JWTPayloadSizeExceededException",
		"OutboundWebIdentityFederationDisabledException", "PackedPolicyTooLarge", "RegionDisabledException",
		"SessionDurationEscalationException":
		return true
	}
	return false
}

// isThrottle reports a throttling answer: a throttling code, or a 429 without a modeled code.
func isThrottle(err error) bool {
	var a *answered
	if !errors.As(err, &a) {
		return false
	}
	return throttleCodes(a.code) || (a.status == http.StatusTooManyRequests && !modeledCodes(a.code))
}

// retryable reports whether the SDK's standard retryer would try again after err. For a call that is
// not idempotent (CreateAccessKey) only a throttling code is retried: it says the request was not
// applied. Otherwise: never once ctx has ended; a clock skew error; a request the HTTP client failed
// to send or got no answer to (unless the host does not exist); a connection failure while reading
// the answer; 500, 502, 503, 504; a 429 without a modeled code; RequestTimeout(Exception) and the
// throttling codes.
func retryable(ctx context.Context, err error, idempotent bool) bool {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var a *answered
	isAnswer := errors.As(err, &a)
	if !idempotent {
		return isAnswer && throttleCodes(a.code)
	}
	if isAnswer {
		switch {
		case a.clockSkew:
			return true
		case a.status == 500, a.status == 502, a.status == 503, a.status == 504:
			return true
		case a.code == "RequestTimeout", a.code == "RequestTimeoutException":
			return true
		}
		return isThrottle(err)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsNotFound {
			return false
		}
		if dns.Temporary() {
			return true
		}
	}
	var us *unsent
	if errors.As(err, &us) {
		return true
	}
	return connectionRetryable(err)
}

// connectionRetryable is the SDK's RetryableConnectionError for a failure to read an answer: a reset
// or closed connection, a refused one, a dial or temporary network error, a timeout.
func connectionRetryable(err error) bool {
	if err == nil {
		return false
	}
	var urlErr *url.Error
	var opErr *net.OpError
	var temp interface{ Temporary() bool }
	var timeout interface{ Timeout() bool }
	switch {
	case strings.Contains(err.Error(), "use of closed network connection"), strings.Contains(err.Error(), "connection reset"):
		return true
	case errors.As(err, &urlErr):
		if strings.Contains(urlErr.Error(), "connection refused") {
			return true
		}
		return connectionRetryable(errors.Unwrap(urlErr))
	case errors.As(err, &opErr):
		if strings.EqualFold(opErr.Op, "dial") || opErr.Temporary() {
			return true
		}
		return connectionRetryable(errors.Unwrap(opErr))
	case errors.As(err, &temp) && temp.Temporary():
		return true
	case errors.As(err, &timeout) && timeout.Timeout():
		return true
	}
	return false
}

// backoff is the wait before the attempt after attempt (1-based) failed with err: a random part of
// min(base·2^(attempt-1), maxBackoff), base 1 s for throttling and 50 ms otherwise; an
// X-Amz-Retry-After header (milliseconds) moves it within [that, that+5 s].
func backoff(attempt int, maxBackoff time.Duration, err error) time.Duration {
	base := 50 * time.Millisecond
	if isThrottle(err) {
		base = time.Second
	}
	d := maxBackoff
	if attempt-1 < 30 {
		d = min(base<<(attempt-1), maxBackoff)
	}
	wait := time.Duration(rand.Float64() * float64(d))
	var a *answered
	if errors.As(err, &a) {
		if ms, perr := strconv.ParseInt(a.header.Get("X-Amz-Retry-After"), 10, 64); perr == nil && ms >= 0 {
			wait = min(max(time.Duration(ms)*time.Millisecond, wait), wait+5*time.Second)
		}
	}
	return wait
}

// sleep waits d, or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
