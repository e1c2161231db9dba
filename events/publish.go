package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"
	"github.com/google/uuid"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// Event types of the published outcome events, one per rotation.Kind.
const (
	EventTypeRotated = "Kvrotator.Secret.Rotated"
	EventTypeSkipped = "Kvrotator.Secret.Skipped"
	EventTypeFailed  = "Kvrotator.Secret.Failed"
	EventTypeRevoked = "Kvrotator.Secret.Revoked"
	EventTypeOverdue = "Kvrotator.Secret.Overdue"
	EventTypePlanned = "Kvrotator.Secret.Planned"
	// After a rotation, one per consumer bound to the secret (data.consumer names it).
	EventTypeRefreshed     = "Kvrotator.Secret.Refreshed"
	EventTypeRefreshFailed = "Kvrotator.Secret.RefreshFailed"
	// A leak response (data.reason names where the value was found and what was done).
	EventTypeEmergency = "Kvrotator.Secret.Emergency"
)

// OutcomeDataVersion is the dataVersion of outcome events; it changes when the data's shape does.
const OutcomeDataVersion = "1.0"

// Schemas accepted in PublisherConfig.Schema (case-insensitively; Azure's input-schema names
// "EventGridSchema" and "CloudEventSchemaV1_0" are accepted too).
const (
	SchemaEventGrid   = "eventgrid"
	SchemaCloudEvents = "cloudevents"
)

// EventType returns the event type published for an outcome kind, and false for an unknown kind.
func EventType(k rotation.Kind) (string, bool) {
	switch k {
	case rotation.KindRotated:
		return EventTypeRotated, true
	case rotation.KindSkipped:
		return EventTypeSkipped, true
	case rotation.KindFailed:
		return EventTypeFailed, true
	case rotation.KindRevoked:
		return EventTypeRevoked, true
	case rotation.KindOverdue:
		return EventTypeOverdue, true
	case rotation.KindPlanned:
		return EventTypePlanned, true
	case rotation.KindRefreshed:
		return EventTypeRefreshed, true
	case rotation.KindRefreshFailed:
		return EventTypeRefreshFailed, true
	case rotation.KindEmergency:
		return EventTypeEmergency, true
	}
	return "", false
}

// Publisher defaults.
const (
	DefaultSource         = "/kvrotator"
	DefaultRetries        = 3
	DefaultAttemptTimeout = 10 * time.Second
	DefaultPublishTimeout = 20 * time.Second
	DefaultRetryDelay     = 500 * time.Millisecond
	maxRetryDelay         = 10 * time.Second
)

// PublisherConfig configures a Publisher. Exactly one of Credential and Key authenticates, except
// against a plain-HTTP loopback endpoint (the emulator's no-auth mode), where neither is needed.
type PublisherConfig struct {
	// Endpoint is the topic endpoint, e.g. https://mytopic.westeurope-1.eventgrid.azure.net/api/events.
	// It must be https, or http on a loopback host (127.0.0.1, ::1, localhost, *.localhost).
	Endpoint string
	// Schema is the topic's input schema: "eventgrid" (default) or "cloudevents".
	Schema string
	// Credential authenticates with Microsoft Entra ID (a managed identity is preferred); the token
	// scope is https://eventgrid.azure.net/.default. The identity needs "EventGrid Data Sender".
	Credential azcore.TokenCredential
	// Key is a topic access key, sent in the aeg-sas-key header; the caller reads it from Key Vault.
	// It is never logged, and PublisherConfig's String and LogValue redact it.
	Key string
	// Source is the CloudEvents source and, in the Event Grid schema, the prefix of the subject.
	// Default "/kvrotator".
	Source string
	// Transport sends the requests (tests); nil uses azcore's default.
	Transport policy.Transporter
	// Logger receives a Warn record per failed attempt; nil discards.
	Logger *slog.Logger
	// Retries is the number of extra attempts after a failed one: 0 means DefaultRetries (3), a
	// negative number none. Only transient failures are retried (network errors, timeouts, 408,
	// 429, 5xx); a rejected request (400, 401, 403, 413 …) fails at once.
	Retries int
	// RetryDelay is the base of the jittered exponential backoff between attempts (default 500 ms;
	// each wait is between half and all of RetryDelay·2^n, at most 10 s). A Retry-After header is
	// honoured when it fits in the remaining time.
	RetryDelay time.Duration
	// AttemptTimeout bounds one attempt, token acquisition included (default 10 s).
	AttemptTimeout time.Duration
	// Timeout bounds a whole Publish, retries and waits included (default 20 s), whatever the
	// caller's context says: a publish must never hold up a rotation for long.
	Timeout time.Duration
	// Clock stamps eventTime / time; nil is the wall clock.
	Clock rotation.Clock
}

// String describes the configuration without the key.
func (c PublisherConfig) String() string {
	return fmt.Sprintf("events.PublisherConfig{Endpoint:%q Schema:%q Auth:%s Source:%q Retries:%d}",
		c.Endpoint, c.Schema, c.authKind(), c.Source, c.Retries)
}

// LogValue is what slog logs for a configuration: no key.
func (c PublisherConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("schema", c.Schema),
		slog.String("auth", c.authKind()),
		slog.String("source", c.Source),
		slog.Int("retries", c.Retries),
	)
}

func (c PublisherConfig) authKind() string {
	switch {
	case c.Credential != nil && c.Key != "":
		return "credential+key"
	case c.Credential != nil:
		return "credential"
	case c.Key != "":
		return "key(redacted)"
	}
	return "none"
}

// Publisher publishes outcome events to an Event Grid topic with the azeventgrid client
// (sdk/messaging/eventgrid/azeventgrid). It implements rotation.Publisher and is safe for concurrent
// use. Every rotation.Outcome becomes one event:
//
//	type         Kvrotator.Secret.<Kind>: Rotated, Skipped, Failed, Revoked, Overdue, Planned, Refreshed, RefreshFailed or Emergency
//	             (rotation.KindRotated … rotation.KindPlanned; see EventType)
//	subject      /vaults/<vault>/secrets/<secret> (/vaults/<vault> for a vault-level outcome); in the
//	             Event Grid schema, which has no source attribute, prefixed with Source:
//	             /kvrotator/vaults/myvault/secrets/api-key. Subscriptions filter on it with
//	             subjectBeginsWith / subjectEndsWith.
//	source       Source, default /kvrotator (CloudEvents)
//	data         the Outcome as JSON: outcome, vault, secret, oldVersion, newVersion, provider, trigger,
//	             reason, class, expires, dryRun, durationMs. Never a value: Outcome has none, and
//	             Outcome.Err is not serialised.
//	dataVersion  "1.0" (OutcomeDataVersion; in CloudEvents the extension attribute "dataversion", with
//	             datacontenttype application/json)
//	id, time     a random UUID chosen once per Publish and kept across its retries, so subscribers can
//	             drop duplicates; the Clock's time
type Publisher struct {
	client         *azeventgrid.Client
	cloudEvents    bool
	source         string
	endpoint       string // for logs and errors
	log            *slog.Logger
	retries        int
	retryDelay     time.Duration
	attemptTimeout time.Duration
	timeout        time.Duration
	clock          rotation.Clock
}

var _ rotation.Publisher = (*Publisher)(nil)

// NewPublisher validates c and returns a Publisher. It makes no network call and fetches no token:
// the first Publish does.
func NewPublisher(c PublisherConfig) (*Publisher, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("events: topic endpoint %q is not an absolute https URL (e.g. https://mytopic.westeurope-1.eventgrid.azure.net/api/events)", c.Endpoint)
	}
	if u.User != nil {
		// Never echo the endpoint here: user info may hold a password.
		return nil, errors.New("events: topic endpoint must not contain user information; pass a Credential or Key")
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("events: topic endpoint %q must not have a fragment", c.Endpoint)
	}
	plainLoopback := u.Scheme == "http"
	if plainLoopback && !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("events: topic endpoint %q: http is allowed only on a loopback host; use https", c.Endpoint)
	}

	p := &Publisher{
		source:         strings.TrimRight(c.Source, "/"),
		endpoint:       u.Scheme + "://" + u.Host + u.Path,
		log:            c.Logger,
		retries:        c.Retries,
		retryDelay:     c.RetryDelay,
		attemptTimeout: c.AttemptTimeout,
		timeout:        c.Timeout,
		clock:          c.Clock,
	}
	switch strings.ToLower(c.Schema) {
	case "", SchemaEventGrid, "eventgridschema":
	case SchemaCloudEvents, "cloudeventschemav1_0":
		p.cloudEvents = true
	default:
		return nil, fmt.Errorf("events: unknown topic schema %q (want %q or %q)", c.Schema, SchemaEventGrid, SchemaCloudEvents)
	}
	if c.Source == "" {
		p.source = DefaultSource
	}
	if p.source == "" || strings.ContainsAny(p.source, " \t\r\n") {
		return nil, fmt.Errorf("events: source %q must be a non-empty URI reference such as /kvrotator", c.Source)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	switch {
	case p.retries == 0:
		p.retries = DefaultRetries
	case p.retries < 0:
		p.retries = 0
	}
	if p.retryDelay <= 0 {
		p.retryDelay = DefaultRetryDelay
	}
	if p.attemptTimeout <= 0 {
		p.attemptTimeout = DefaultAttemptTimeout
	}
	if p.timeout <= 0 {
		p.timeout = DefaultPublishTimeout
	}
	if p.clock == nil {
		p.clock = rotation.SystemClock{}
	}

	opts := &azeventgrid.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: c.Transport,
		// Publish retries itself, with its own bounds; the pipeline makes one try per attempt.
		Retry: policy.RetryOptions{MaxRetries: -1},
	}}
	switch {
	case c.Credential != nil && c.Key != "":
		return nil, errors.New("events: set either Credential or Key, not both")
	case plainLoopback:
		// azeventgrid's constructors refuse credentials over plain HTTP; on loopback (the emulator's
		// no-auth mode) the credential goes through a policy that allows it.
		if c.Credential != nil {
			opts.PerRetryPolicies = append(opts.PerRetryPolicies, runtime.NewBearerTokenPolicy(c.Credential,
				[]string{"https://eventgrid.azure.net/.default"}, &policy.BearerTokenOptions{InsecureAllowCredentialWithHTTP: true}))
		} else if c.Key != "" {
			opts.PerRetryPolicies = append(opts.PerRetryPolicies, runtime.NewKeyCredentialPolicy(azcore.NewKeyCredential(c.Key),
				"aeg-sas-key", &runtime.KeyCredentialPolicyOptions{InsecureAllowCredentialWithHTTP: true}))
		}
		p.client, err = azeventgrid.NewClientWithSharedKeyCredential(c.Endpoint, nil, opts)
	case c.Credential != nil:
		p.client, err = azeventgrid.NewClient(c.Endpoint, c.Credential, opts)
	case c.Key != "":
		p.client, err = azeventgrid.NewClientWithSharedKeyCredential(c.Endpoint, azcore.NewKeyCredential(c.Key), opts)
	default:
		return nil, errors.New("events: no credential for the topic: set Credential (managed identity, preferred) or Key (a topic access key)")
	}
	if err != nil {
		return nil, fmt.Errorf("events: topic client: %w", err)
	}
	return p, nil
}

// isLoopbackHost reports whether host is a loopback IP, "localhost" or a name under ".localhost".
func isLoopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// PublishError is returned by Publish when an event could not be delivered. Its message is one
// line; Unwrap gives the last attempt's error (an *azcore.ResponseError when the topic answered).
type PublishError struct {
	EventType string
	EventID   string
	Vault     string
	Secret    string
	Attempts  int
	Err       error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("events: %s event %s for %s/%s not published after %d attempt(s): %s",
		e.EventType, e.EventID, e.Vault, e.Secret, e.Attempts, describe(e.Err))
}

func (e *PublishError) Unwrap() error { return e.Err }

// Publish sends o as one event. Transient failures are retried with jittered backoff within
// PublisherConfig.Timeout; the last error is returned as a *PublishError. The caller logs it: a
// publish failure never fails a rotation.
func (p *Publisher) Publish(ctx context.Context, o rotation.Outcome) error {
	typ, ok := EventType(o.Kind)
	if !ok {
		return fmt.Errorf("events: outcome kind %q has no event type", o.Kind)
	}
	if o.Vault == "" {
		return fmt.Errorf("events: %s outcome without a vault", o.Kind)
	}
	o.Err = nil // never serialised (json:"-"); dropped all the same
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("events: encode %s outcome for %s/%s: %w", o.Kind, o.Vault, o.Secret, err)
	}
	id := uuid.NewString()
	now := p.clock.Now().UTC()
	path := "/vaults/" + url.PathEscape(o.Vault)
	if o.Secret != "" {
		path += "/secrets/" + url.PathEscape(o.Secret)
	}

	send := p.sender(id, typ, path, now, json.RawMessage(data))

	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	attempts := 0
	for {
		attempts++
		actx, acancel := context.WithTimeout(ctx, p.attemptTimeout)
		err = send(actx)
		acancel()
		if err == nil {
			p.log.Debug("outcome event published", "vault", o.Vault, "secret", o.Secret, "outcome", string(o.Kind),
				"event_type", typ, "event_id", id, "attempts", attempts)
			return nil
		}
		retry := attempts <= p.retries && retryable(err) && ctx.Err() == nil
		p.log.Warn("outcome event publish attempt failed", "vault", o.Vault, "secret", o.Secret,
			"outcome", string(o.Kind), "event_type", typ, "event_id", id, "endpoint", p.endpoint,
			"attempt", attempts, "retrying", retry, "error", describe(err))
		if !retry {
			break
		}
		wait := p.backoff(attempts, err)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			break // the next attempt could not start in time
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
	}
	return &PublishError{EventType: typ, EventID: id, Vault: o.Vault, Secret: o.Secret, Attempts: attempts, Err: err}
}

// sender returns the function that makes one attempt; the event is the same on every attempt.
func (p *Publisher) sender(id, typ, path string, now time.Time, data json.RawMessage) func(context.Context) error {
	version := OutcomeDataVersion
	if p.cloudEvents {
		contentType := "application/json"
		ev := messaging.CloudEvent{
			ID:              id,
			Source:          p.source,
			SpecVersion:     "1.0",
			Type:            typ,
			Subject:         &path,
			Time:            &now,
			DataContentType: &contentType,
			Data:            data,
			Extensions:      map[string]any{"dataversion": version},
		}
		return func(ctx context.Context) error {
			_, err := p.client.PublishCloudEvents(ctx, []messaging.CloudEvent{ev}, nil)
			return err
		}
	}
	subject := p.source + path
	ev := azeventgrid.Event{
		ID:          &id,
		EventType:   &typ,
		Subject:     &subject,
		EventTime:   &now,
		DataVersion: &version,
		Data:        data,
	}
	return func(ctx context.Context) error {
		_, err := p.client.PublishEvents(ctx, []azeventgrid.Event{ev}, nil)
		return err
	}
}

// retryable reports whether another attempt may succeed: no answer (network error, timeout), or a
// 408, 429 or 5xx answer. Errors azcore marks non-retriable (e.g. credential failures it gives up
// on) and rejected requests are final.
func retryable(err error) bool {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return vocab.TransientStatus(re.StatusCode)
	}
	var nr interface{ NonRetriable() }
	return !errors.As(err, &nr)
}

// backoff is the wait before attempt n+1: full-range jitter over the upper half of
// retryDelay·2^(n-1), capped; a longer Retry-After wins (the caller gives up if it does not fit).
func (p *Publisher) backoff(n int, err error) time.Duration {
	d := p.retryDelay << min(n-1, 20)
	if d <= 0 || d > maxRetryDelay {
		d = maxRetryDelay
	}
	d = d/2 + rand.N(d/2+1)
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.RawResponse != nil {
		if s, perr := strconv.Atoi(re.RawResponse.Header.Get("Retry-After")); perr == nil && s > 0 {
			d = max(d, time.Duration(s)*time.Second)
		}
	}
	return d
}

// describe is a one-line account of an attempt's error: status and code for an answer (the full
// azcore message spans lines and quotes the body), the message otherwise. Request headers, where
// the key travels, are never part of it.
func describe(err error) string {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		s := fmt.Sprintf("HTTP %d", re.StatusCode)
		if re.ErrorCode != "" {
			s += " " + re.ErrorCode
		}
		return s
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out: " + oneLine(err.Error())
	}
	return oneLine(err.Error())
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
