package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/emulator/emulatortest"
	"github.com/kvrotator/kvrotator/events"
	"github.com/kvrotator/kvrotator/rotation"
)

const (
	topicKey = "b3V0Y29tZXMtdG9waWMta2V5LWZvci10ZXN0cy0wMTIzNDU2Nzg5"
	// secretValue is what the vault holds for api-key; no event, log line or error may contain it.
	secretValue = "SG.live-4f9c1d0e7b2a-value-that-must-never-leak"
)

// startEmulator serves the topics "egtopic" (Event Grid schema only), "cetopic" (CloudEvents only),
// both with topicKey, and "mitopic" (no key: tokens only).
func startEmulator(t *testing.T, mutate func(*emulator.Config)) *emulator.Server {
	t.Helper()
	cfg := emulator.Config{
		Addr: "127.0.0.1:0", KeyDir: emulatortest.KeyDir(), Vaults: []emulator.VaultConfig{{Name: "myvault"}},
		Topics: []emulator.TopicConfig{
			{Name: "egtopic", Key: topicKey, Schema: emulator.EventGridSchema},
			{Name: "cetopic", Key: topicKey, Schema: emulator.CloudEventsSchema},
			{Name: "mitopic"},
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := emulator.New(cfg)
	if err != nil {
		t.Fatalf("emulator.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// logBuffer collects JSON log records; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the logged records at level.
func (b *logBuffer) records(t *testing.T, level string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["level"] == level {
			out = append(out, m)
		}
	}
	return out
}

// newPublisher builds a Publisher over the emulator's HTTPS transport with fast retries, logging into
// the returned buffer.
func newPublisher(t *testing.T, srv *emulator.Server, c events.PublisherConfig) (*events.Publisher, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if c.Transport == nil {
		c.Transport = srv.HTTPClient()
	}
	c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if c.RetryDelay == 0 {
		c.RetryDelay = 20 * time.Millisecond
	}
	p, err := events.NewPublisher(c)
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	return p, logs
}

func managedIdentity(t *testing.T, srv *emulator.Server) azcore.TokenCredential {
	t.Helper()
	t.Setenv("IDENTITY_ENDPOINT", srv.IdentityEndpoint())
	t.Setenv("IDENTITY_HEADER", srv.IdentityHeader())
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatalf("NewManagedIdentityCredential: %v", err)
	}
	return cred
}

func testContext(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// outcomes has one outcome of every kind, with every field that kind fills.
func outcomes() []rotation.Outcome {
	exp := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	old, nv := "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	return []rotation.Outcome{
		{Kind: rotation.KindRotated, Vault: "myvault", Secret: "api-key", OldVersion: old, NewVersion: nv, Provider: "sendgrid",
			Trigger: rotation.TriggerEvent, Expires: &exp, DurationMS: 1234},
		{Kind: rotation.KindSkipped, Vault: "myvault", Secret: "api-key", OldVersion: old, Provider: "sendgrid",
			Trigger: rotation.TriggerTimer, Reason: "not due: expires 2026-09-01, rotation point 2026-08-02"},
		// A failure whose error text (from a careless provider) quotes the value: Err is never published.
		{Kind: rotation.KindFailed, Vault: "myvault", Secret: "api-key", OldVersion: old, Provider: "sendgrid",
			Trigger: rotation.TriggerManual, Class: rotation.ClassPermanent, Reason: `provider sendgrid: 403 Forbidden regenerating the key of secret "api-key"`,
			Err: errors.New("sendgrid rejected " + secretValue)},
		{Kind: rotation.KindRevoked, Vault: "myvault", Secret: "api-key", OldVersion: old, NewVersion: nv, Provider: "sendgrid", Trigger: rotation.TriggerTimer},
		{Kind: rotation.KindOverdue, Vault: "myvault", Secret: "db-password", Provider: "postgres", Trigger: rotation.TriggerTimer,
			Reason: "expired 2026-01-01", Expires: &exp},
		{Kind: rotation.KindPlanned, Vault: "myvault", Secret: "api-key", OldVersion: old, Provider: "sendgrid", Trigger: rotation.TriggerManual,
			DryRun: true, Reason: "would rotate: forced"},
		{Kind: rotation.KindRefreshed, Vault: "myvault", Secret: "api-key", OldVersion: old, NewVersion: nv, Provider: "sendgrid", Trigger: rotation.TriggerEvent,
			Consumer: "app-service /subscriptions/0/resourceGroups/rg/providers/Microsoft.Web/sites/app", Reason: "asked app-service … to pick up version " + nv},
		{Kind: rotation.KindRefreshFailed, Vault: "myvault", Secret: "api-key", OldVersion: old, NewVersion: nv, Provider: "sendgrid", Trigger: rotation.TriggerEvent,
			Consumer: "webhook https://hooks.example.com/x", Class: rotation.ClassTransient, Reason: "webhook https://hooks.example.com/x did not refresh: 503"},
		{Kind: rotation.KindEmergency, Vault: "myvault", Secret: "api-key", OldVersion: old, NewVersion: nv, Provider: "sendgrid", Trigger: rotation.TriggerManual,
			Reason: "leak reported (manual): the value is in the latest version of myvault/api-key; rotated to version " + nv + "; revoked key-1"},
	}
}

var kindTypes = map[rotation.Kind]string{
	rotation.KindRotated:       "Kvrotator.Secret.Rotated",
	rotation.KindSkipped:       "Kvrotator.Secret.Skipped",
	rotation.KindFailed:        "Kvrotator.Secret.Failed",
	rotation.KindRevoked:       "Kvrotator.Secret.Revoked",
	rotation.KindOverdue:       "Kvrotator.Secret.Overdue",
	rotation.KindPlanned:       "Kvrotator.Secret.Planned",
	rotation.KindRefreshed:     "Kvrotator.Secret.Refreshed",
	rotation.KindRefreshFailed: "Kvrotator.Secret.RefreshFailed",
	rotation.KindEmergency:     "Kvrotator.Secret.Emergency",
}

// received is a published event as the topic got it, in either schema.
type received struct {
	ID, Type, Subject, DataVersion string
	Time                           time.Time
	Source                         string // CloudEvents only
	Data                           json.RawMessage
	Raw                            map[string]json.RawMessage
}

func decodeReceived(t *testing.T, raw json.RawMessage, cloudEvents bool) received {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	str := func(k string) string {
		var s string
		if v, ok := m[k]; ok {
			if err := json.Unmarshal(v, &s); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
		}
		return s
	}
	r := received{ID: str("id"), Subject: str("subject"), Data: m["data"], Raw: m}
	var ts string
	if cloudEvents {
		r.Type, r.DataVersion, r.Source, ts = str("type"), str("dataversion"), str("source"), str("time")
		if str("specversion") != "1.0" || str("datacontenttype") != "application/json" {
			t.Fatalf("cloud event attributes: %s", raw)
		}
	} else {
		r.Type, r.DataVersion, ts = str("eventType"), str("dataVersion"), str("eventTime")
		if _, ok := m["topic"]; ok {
			t.Fatalf("the publisher set topic, which Event Grid fills in: %s", raw)
		}
	}
	var err error
	if r.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
		t.Fatalf("time %q: %v", ts, err)
	}
	return r
}

func TestPublishEveryKindInBothSchemas(t *testing.T) {
	srv := startEmulator(t, nil)
	for _, schema := range []string{"eventgrid", "cloudevents"} {
		t.Run(schema, func(t *testing.T) {
			topic := map[string]string{"eventgrid": "egtopic", "cloudevents": "cetopic"}[schema]
			p, logs := newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint(topic), Schema: schema, Key: topicKey})
			before := time.Now().Add(-time.Second)
			for _, o := range outcomes() {
				if err := p.Publish(testContext(t), o); err != nil {
					t.Fatalf("Publish %s: %v", o.Kind, err)
				}
			}
			got := srv.TopicEvents(topic)
			if len(got) != len(outcomes()) {
				t.Fatalf("topic received %d events, want %d", len(got), len(outcomes()))
			}
			ids := map[string]bool{}
			for i, want := range outcomes() {
				ev := decodeReceived(t, got[i], schema == "cloudevents")
				subject := "/vaults/myvault/secrets/" + want.Secret
				if schema == "eventgrid" {
					subject = "/kvrotator" + subject // the Event Grid schema has no source: it prefixes the subject
				} else if ev.Source != "/kvrotator" {
					t.Errorf("%s: source %q", want.Kind, ev.Source)
				}
				if ev.Type != kindTypes[want.Kind] || ev.Subject != subject || ev.DataVersion != "1.0" {
					t.Errorf("%s: type %q subject %q dataVersion %q", want.Kind, ev.Type, ev.Subject, ev.DataVersion)
				}
				if ev.ID == "" || ids[ev.ID] {
					t.Errorf("%s: id %q empty or repeated", want.Kind, ev.ID)
				}
				ids[ev.ID] = true
				if ev.Time.Before(before) || ev.Time.After(time.Now().Add(time.Second)) {
					t.Errorf("%s: time %v", want.Kind, ev.Time)
				}
				var data rotation.Outcome
				if err := json.Unmarshal(ev.Data, &data); err != nil {
					t.Fatalf("%s: data %s: %v", want.Kind, ev.Data, err)
				}
				want.Err = nil
				if !reflect.DeepEqual(data, want) {
					t.Errorf("%s: data\n got %+v\nwant %+v", want.Kind, data, want)
				}
			}
			// Field names of the data, as subscribers see them.
			var rotated map[string]any
			_ = json.Unmarshal(decodeReceived(t, got[0], schema == "cloudevents").Data, &rotated)
			for _, k := range []string{"outcome", "vault", "secret", "oldVersion", "newVersion", "provider", "trigger", "expires", "durationMs"} {
				if _, ok := rotated[k]; !ok {
					t.Errorf("rotated data lacks %q: %v", k, rotated)
				}
			}
			if len(logs.records(t, "WARN")) != 0 {
				t.Errorf("warnings on success: %s", logs)
			}
		})
	}
}

func TestPublishWithManagedIdentity(t *testing.T) {
	srv := startEmulator(t, nil)
	cred := managedIdentity(t, srv)
	for _, schema := range []string{"eventgrid", "cloudevents"} {
		t.Run(schema, func(t *testing.T) {
			p, _ := newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("mitopic"), Schema: schema, Credential: cred})
			if err := p.Publish(testContext(t), outcomes()[0]); err != nil {
				t.Fatalf("Publish: %v", err)
			}
		})
	}
	got := srv.TopicEvents("mitopic")
	if len(got) != 2 {
		t.Fatalf("topic received %d events", len(got))
	}
	if eg, ce := decodeReceived(t, got[0], false), decodeReceived(t, got[1], true); eg.Type != events.EventTypeRotated || ce.Type != events.EventTypeRotated {
		t.Fatalf("types %q %q", eg.Type, ce.Type)
	}
}

func TestPublishRejectedRequestsAreNotRetried(t *testing.T) {
	srv := startEmulator(t, nil)
	cases := []struct {
		name   string
		cfg    events.PublisherConfig
		status int
		code   string
	}{
		{"wrong key", events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Key: "d3Jvbmcta2V5LXRoYXQtaXMtbG9uZy1lbm91Z2g="}, 401, "Unauthorized"},
		{"key on a token-only topic", events.PublisherConfig{Endpoint: srv.TopicEndpoint("mitopic"), Key: topicKey}, 401, "Unauthorized"},
		{"schema the topic does not take", events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Key: topicKey, Schema: "cloudevents"}, 400, "BadRequest"},
		{"unknown topic", events.PublisherConfig{Endpoint: srv.URL() + "/topics/nosuch/api/events", Key: topicKey}, 404, "NotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, logs := newPublisher(t, srv, c.cfg)
			err := p.Publish(testContext(t), outcomes()[0])
			var pe *events.PublishError
			var re *azcore.ResponseError
			if !errors.As(err, &pe) || !errors.As(err, &re) || re.StatusCode != c.status || re.ErrorCode != c.code {
				t.Fatalf("want a PublishError wrapping %d %s, got %v", c.status, c.code, err)
			}
			if pe.Attempts != 1 {
				t.Fatalf("%d attempts: a rejected request must not be retried", pe.Attempts)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), fmt.Sprint(c.status)) {
				t.Fatalf("error %q: want one line with the status", err)
			}
			warns := logs.records(t, "WARN")
			if len(warns) != 1 || warns[0]["vault"] != "myvault" || warns[0]["secret"] != "api-key" || warns[0]["retrying"] != false {
				t.Fatalf("warnings: %v", warns)
			}
			for _, s := range []string{logs.String(), err.Error(), fmt.Sprint(c.cfg)} {
				if c.cfg.Key != "" && strings.Contains(s, c.cfg.Key) {
					t.Fatalf("the key leaked into %q", s)
				}
			}
		})
	}
}

// hookTransport passes requests on and calls after with each attempt's number and status.
type hookTransport struct {
	next  policy.Transporter
	after func(n, status int)

	mu     sync.Mutex
	n      int
	bodies [][]byte
}

func (h *hookTransport) Do(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := h.next.Do(req)
	h.mu.Lock()
	h.n++
	n := h.n
	h.bodies = append(h.bodies, body)
	h.mu.Unlock()
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if h.after != nil {
		h.after(n, status)
	}
	return resp, err
}

func (h *hookTransport) attempts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

func TestPublishRetriesUntilTheTopicIsBack(t *testing.T) {
	srv := startEmulator(t, nil)
	for _, schema := range []string{"eventgrid", "cloudevents"} {
		t.Run(schema, func(t *testing.T) {
			topic := map[string]string{"eventgrid": "egtopic", "cloudevents": "cetopic"}[schema]
			srv.SetTopicDown(topic, true)
			hook := &hookTransport{next: srv.HTTPClient(), after: func(n, status int) {
				if n == 2 && status == http.StatusServiceUnavailable {
					srv.SetTopicDown(topic, false) // back after the second failed attempt
				}
			}}
			p, logs := newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint(topic), Schema: schema, Key: topicKey, Transport: hook})
			if err := p.Publish(testContext(t), outcomes()[0]); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if hook.attempts() != 3 {
				t.Fatalf("%d attempts, want 3", hook.attempts())
			}
			if got := srv.TopicEvents(topic); len(got) != 1 {
				t.Fatalf("topic received %d events, want exactly 1", len(got))
			}
			// Every attempt sent the same event: a subscriber can de-duplicate by id.
			if !bytes.Equal(hook.bodies[0], hook.bodies[2]) {
				t.Fatalf("attempts differ:\n%s\n%s", hook.bodies[0], hook.bodies[2])
			}
			warns := logs.records(t, "WARN")
			if len(warns) != 2 || warns[0]["error"] != "HTTP 503 ServiceUnavailable" || warns[0]["retrying"] != true {
				t.Fatalf("warnings: %v", warns)
			}
		})
	}
}

func TestPublishGivesUpWhenTheTopicStaysDown(t *testing.T) {
	srv := startEmulator(t, nil)
	srv.SetTopicDown("egtopic", true)
	hook := &hookTransport{next: srv.HTTPClient()}
	p, logs := newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Key: topicKey, Transport: hook, Retries: 2})
	start := time.Now()
	err := p.Publish(context.Background(), outcomes()[0])
	elapsed := time.Since(start)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("want the 503, got %v", err)
	}
	if hook.attempts() != 3 || len(logs.records(t, "WARN")) != 3 {
		t.Fatalf("%d attempts, %d warnings; want 1 + 2 retries", hook.attempts(), len(logs.records(t, "WARN")))
	}
	if elapsed > 5*time.Second {
		t.Fatalf("took %v", elapsed)
	}
	if len(srv.TopicEvents("egtopic")) != 0 {
		t.Fatal("an event got through a down topic")
	}
	if !strings.Contains(err.Error(), "3 attempt") || strings.Contains(err.Error(), topicKey) {
		t.Fatalf("error %q", err)
	}

	// Default retries: 1 + 3 attempts.
	hook = &hookTransport{next: srv.HTTPClient()}
	p, _ = newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Key: topicKey, Transport: hook})
	if err := p.Publish(context.Background(), outcomes()[0]); err == nil || hook.attempts() != 4 {
		t.Fatalf("default retries: %d attempts, %v", hook.attempts(), err)
	}
	// Retries < 0: one attempt.
	hook = &hookTransport{next: srv.HTTPClient()}
	p, _ = newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Key: topicKey, Transport: hook, Retries: -1})
	if err := p.Publish(context.Background(), outcomes()[0]); err == nil || hook.attempts() != 1 {
		t.Fatalf("no retries: %d attempts, %v", hook.attempts(), err)
	}
}

// hangingTransport never answers: it waits for the request's context, like a topic that accepted the
// connection and went silent.
type hangingTransport struct {
	mu sync.Mutex
	n  int
}

func (h *hangingTransport) Do(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.n++
	h.mu.Unlock()
	<-req.Context().Done()
	return nil, req.Context().Err()
}

func TestPublishIsBoundedWhenTheTopicHangs(t *testing.T) {
	srv := startEmulator(t, nil)
	hang := &hangingTransport{}
	p, logs := newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Key: topicKey, Transport: hang,
		Retries: 100, AttemptTimeout: 100 * time.Millisecond, Timeout: 400 * time.Millisecond})
	start := time.Now()
	// The engine publishes with context.WithoutCancel: only the Publisher's own bounds apply.
	err := p.Publish(context.WithoutCancel(testContext(t)), outcomes()[0])
	elapsed := time.Since(start)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
	if elapsed > 1500*time.Millisecond {
		t.Fatalf("Publish took %v with a 400ms bound", elapsed)
	}
	hang.mu.Lock()
	n := hang.n
	hang.mu.Unlock()
	if n < 2 || n > 4 {
		t.Fatalf("%d attempts in 400ms of 100ms attempts", n)
	}
	if !strings.Contains(logs.String(), "timed out") {
		t.Fatalf("attempt warnings do not say it timed out: %s", logs)
	}

	// A caller's cancellation ends it at once, without retries.
	hang = &hangingTransport{}
	p, _ = newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Key: topicKey, Transport: hang})
	c, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	if err := p.Publish(c, outcomes()[0]); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("cancelled: %v after %v", err, time.Since(start))
	}
	if hang.n != 1 {
		t.Fatalf("%d attempts after cancellation", hang.n)
	}
}

func TestPublishedEventsNeverCarryAValue(t *testing.T) {
	srv := startEmulator(t, nil)
	failed := outcomes()[2] // its Err quotes the value; its Reason names the secret only
	if !strings.Contains(failed.Err.Error(), secretValue) || strings.Contains(failed.Reason, secretValue) || !strings.Contains(failed.Reason, "api-key") {
		t.Fatal("test outcome is not what this test needs")
	}
	var all []string
	for _, c := range []struct{ topic, schema string }{{"egtopic", "eventgrid"}, {"cetopic", "cloudevents"}} {
		p, logs := newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint(c.topic), Schema: c.schema, Key: topicKey})
		for _, o := range outcomes() {
			if err := p.Publish(testContext(t), o); err != nil {
				t.Fatal(err)
			}
		}
		// And when publishing fails: the error and the warnings.
		srv.SetTopicDown(c.topic, true)
		err := p.Publish(testContext(t), failed)
		srv.SetTopicDown(c.topic, false)
		if err == nil {
			t.Fatal("published to a down topic")
		}
		all = append(all, err.Error(), logs.String())
		for _, ev := range srv.TopicEvents(c.topic) {
			all = append(all, string(ev))
		}
	}
	if len(all) != 2*(2+len(outcomes())) {
		t.Fatalf("collected %d texts", len(all))
	}
	for _, s := range all {
		if strings.Contains(s, secretValue) || strings.Contains(s, topicKey) {
			t.Fatalf("a value or the key leaked: %s", s)
		}
		if strings.Contains(s, `"value"`) || strings.Contains(s, `"Err"`) {
			t.Fatalf("an event has a value field: %s", s)
		}
	}
}

func TestPublishRejectsOutcomesItCannotName(t *testing.T) {
	srv := startEmulator(t, nil)
	hook := &hookTransport{next: srv.HTTPClient()}
	p, _ := newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Key: topicKey, Transport: hook})
	for name, o := range map[string]rotation.Outcome{
		"unknown kind": {Kind: "exploded", Vault: "myvault", Secret: "api-key"},
		"no kind":      {Vault: "myvault", Secret: "api-key"},
		"no vault":     {Kind: rotation.KindSkipped, Secret: "api-key"},
	} {
		if err := p.Publish(testContext(t), o); err == nil {
			t.Errorf("%s: published", name)
		}
	}
	if hook.attempts() != 0 {
		t.Fatalf("%d requests sent", hook.attempts())
	}
	// A vault-level outcome (no secret) has the vault's subject.
	if err := p.Publish(testContext(t), rotation.Outcome{Kind: rotation.KindFailed, Vault: "myvault", Reason: "list failed", Class: rotation.ClassTransient}); err != nil {
		t.Fatal(err)
	}
	if ev := decodeReceived(t, srv.TopicEvents("egtopic")[0], false); ev.Subject != "/kvrotator/vaults/myvault" {
		t.Fatalf("subject %q", ev.Subject)
	}
}

func TestPublishSourceAndSchemaNames(t *testing.T) {
	srv := startEmulator(t, nil)
	p, _ := newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("cetopic"), Schema: "CloudEventSchemaV1_0", Key: topicKey, Source: "/contoso/rotator-prod/"})
	if err := p.Publish(testContext(t), outcomes()[0]); err != nil {
		t.Fatal(err)
	}
	p, _ = newPublisher(t, srv, events.PublisherConfig{Endpoint: srv.TopicEndpoint("egtopic"), Schema: "EventGridSchema", Key: topicKey, Source: "/contoso/rotator-prod"})
	if err := p.Publish(testContext(t), outcomes()[0]); err != nil {
		t.Fatal(err)
	}
	ce := decodeReceived(t, srv.TopicEvents("cetopic")[0], true)
	eg := decodeReceived(t, srv.TopicEvents("egtopic")[0], false)
	if ce.Source != "/contoso/rotator-prod" || ce.Subject != "/vaults/myvault/secrets/api-key" || eg.Subject != "/contoso/rotator-prod/vaults/myvault/secrets/api-key" {
		t.Fatalf("source %q subjects %q %q", ce.Source, ce.Subject, eg.Subject)
	}
}

func TestPublishOverPlainHTTPOnLoopback(t *testing.T) {
	srv := startEmulator(t, func(c *emulator.Config) { c.NoAuth = true })
	if !strings.HasPrefix(srv.TopicEndpoint("egtopic"), "http://127.0.0.1:") {
		t.Fatalf("endpoint %q", srv.TopicEndpoint("egtopic"))
	}
	for name, c := range map[string]events.PublisherConfig{
		"no credential": {Endpoint: srv.TopicEndpoint("egtopic")},
		"key":           {Endpoint: srv.TopicEndpoint("egtopic"), Key: topicKey},
		"localhost":     {Endpoint: strings.Replace(srv.TopicEndpoint("egtopic"), "127.0.0.1", "localhost", 1)},
	} {
		p, _ := newPublisher(t, srv, c)
		if err := p.Publish(testContext(t), outcomes()[0]); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if n := len(srv.TopicEvents("egtopic")); n != 3 {
		t.Fatalf("%d events", n)
	}
}

type fakeCredential struct{}

func (fakeCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{}, errors.New("not used")
}

func TestNewPublisherValidatesItsConfiguration(t *testing.T) {
	good := "https://mytopic.westeurope-1.eventgrid.azure.net/api/events"
	for name, c := range map[string]events.PublisherConfig{
		"no credential":         {Endpoint: good},
		"credential and key":    {Endpoint: good, Key: "k", Credential: fakeCredential{}},
		"empty endpoint":        {Key: "k"},
		"relative endpoint":     {Endpoint: "/api/events", Key: "k"},
		"ftp endpoint":          {Endpoint: "ftp://mytopic.example/api/events", Key: "k"},
		"http on a remote host": {Endpoint: "http://mytopic.westeurope-1.eventgrid.azure.net/api/events", Key: "k"},
		"http on a private ip":  {Endpoint: "http://10.0.0.4/api/events", Key: "k"},
		"user info":             {Endpoint: "https://user:pass@mytopic.example/api/events", Key: "k"},
		"fragment":              {Endpoint: good + "#x", Key: "k"},
		"unknown schema":        {Endpoint: good, Key: "k", Schema: "custom"},
		"source with space":     {Endpoint: good, Key: "k", Source: "/kv rotator"},
		"source only slashes":   {Endpoint: good, Key: "k", Source: "//"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := events.NewPublisher(c); err == nil {
				t.Fatal("accepted")
			} else if strings.Contains(err.Error(), "pass@") {
				t.Fatalf("error echoes user info: %v", err)
			}
		})
	}
	for name, c := range map[string]events.PublisherConfig{
		"key":                     {Endpoint: good, Key: "k"},
		"credential, cloudevents": {Endpoint: good, Credential: fakeCredential{}, Schema: "CloudEvents"},
		"http on ::1":             {Endpoint: "http://[::1]:8080/topics/t/api/events"},
		"http on name.localhost":  {Endpoint: "http://topics.localhost:8080/api/events", Credential: fakeCredential{}},
	} {
		if _, err := events.NewPublisher(c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPublisherConfigNeverShowsTheKey(t *testing.T) {
	c := events.PublisherConfig{Endpoint: "https://t.example/api/events", Key: topicKey}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "publisher", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), c.String(), logs.String()} {
		if strings.Contains(s, topicKey) {
			t.Fatalf("key shown in %q", s)
		}
		if !strings.Contains(s, "t.example") {
			t.Fatalf("endpoint missing from %q", s)
		}
	}
}

func TestEventTypeCoversEveryKind(t *testing.T) {
	for k, want := range kindTypes {
		if got, ok := events.EventType(k); !ok || got != want {
			t.Errorf("%s: %q %v", k, got, ok)
		}
	}
	if _, ok := events.EventType("other"); ok {
		t.Error("unknown kind has a type")
	}
}
