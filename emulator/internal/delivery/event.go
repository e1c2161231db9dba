// Package delivery pushes the emulator's Key Vault system-topic events to webhook subscribers the way
// Azure Event Grid does: one event per POST, in the Event Grid or CloudEvents 1.0 schema, with the aeg-*
// headers, Event Grid's success codes, its never-retried codes and its retry schedule.
//
// A Dispatcher runs one worker per subscription, so a slow or failing subscriber delays only its own
// events. Each worker keeps its events in a queue ordered by due time: fresh events are due when
// published, retries when their back-off expires, so a retrying event never holds back fresh ones.
// Delivery is at least once and unordered, as with Event Grid.
package delivery

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Key Vault secret event types (functions-host.md §9.1).
const (
	SecretNewVersionCreated = "Microsoft.KeyVault.SecretNewVersionCreated"
	SecretNearExpiry        = "Microsoft.KeyVault.SecretNearExpiry"
	SecretExpired           = "Microsoft.KeyVault.SecretExpired"
)

// KeyVaultData is the data of a Microsoft.KeyVault.Secret* event. Keys are PascalCase as the real
// service sends them; NBF and EXP are unix seconds encoded as JSON numbers, null when unset.
type KeyVaultData struct {
	// ID is the secret version's URL, e.g. https://myvault.vault.azure.net/secrets/name/version.
	ID string `json:"Id"`
	// VaultName is the vault's name.
	VaultName string `json:"VaultName"`
	// ObjectType is "Secret" for secret events.
	ObjectType string `json:"ObjectType"`
	// ObjectName is the secret's name.
	ObjectName string `json:"ObjectName"`
	// Version is the secret version.
	Version string `json:"Version"`
	// NBF is the not-before time in unix seconds, nil when unset.
	NBF *int64 `json:"NBF"`
	// EXP is the expiry time in unix seconds, nil when unset.
	EXP *int64 `json:"EXP"`
}

// Event is one event raised on a vault's system topic.
type Event struct {
	// ID is a UUID (v4). Publish fills it in when empty.
	ID string
	// Topic is the vault's ARM id, see Topic.
	Topic string
	// Subject is the object (secret) name.
	Subject string
	// EventType is e.g. SecretNearExpiry.
	EventType string
	// EventTime is when the event happened. Publish uses the current time when zero.
	EventTime time.Time
	// Data is marshalled as JSON (usually a KeyVaultData). It is marshalled during Publish, so the
	// caller may reuse it afterwards.
	Data any
}

// Topic returns a vault's system-topic name:
// /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<vault>.
func Topic(subscriptionID, resourceGroup, vault string) string {
	return "/subscriptions/" + subscriptionID + "/resourceGroups/" + resourceGroup +
		"/providers/Microsoft.KeyVault/vaults/" + vault
}

// Schema is the event schema a subscription receives.
type Schema string

// Event schemas.
const (
	// EventGridSchema: a JSON array holding one Event Grid event, Content-Type application/json.
	EventGridSchema Schema = "eventgrid"
	// CloudEventsSchema: a single CloudEvents 1.0 JSON object (structured mode),
	// Content-Type application/cloudevents+json; charset=utf-8.
	CloudEventsSchema Schema = "cloudevents"
)

// Event Grid's delivery defaults (functions-host.md §11).
const (
	// DefaultMaxAttempts is Event Grid's default (and maximum) number of delivery attempts.
	DefaultMaxAttempts = 30
	// DefaultTimeout is how long Event Grid waits for a subscriber's answer.
	DefaultTimeout = 30 * time.Second
	// DefaultEventTTL is Event Grid's default event time-to-live (1440 minutes).
	DefaultEventTTL = 24 * time.Hour
)

// DefaultRetryDelays returns Event Grid's retry schedule: 10s, 30s, 1m, 5m, 10m, 30m, 1h, 3h, 6h, then
// every 12h (the last delay repeats).
func DefaultRetryDelays() []time.Duration {
	return []time.Duration{
		10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute,
		30 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	}
}

// Subscription is an event subscription with a webhook destination.
type Subscription struct {
	// Name is sent in the aeg-subscription-name header and used in logs and Stats.
	Name string
	// URL is the webhook (http or https).
	URL string
	// Schema defaults to EventGridSchema; matched case-insensitively.
	Schema Schema
	// EventTypes filters on Event.EventType (exact match); empty means all types.
	EventTypes []string
	// Topics filters on Event.Topic (case-insensitive exact match); empty means all topics.
	Topics []string
	// MaxAttempts is the number of delivery attempts before an event is dropped; <=0 means 30 as
	// Event Grid.
	MaxAttempts int
	// RetryDelays is the wait before the 2nd, 3rd, … attempt; the last one repeats. Empty means
	// DefaultRetryDelays.
	RetryDelays []time.Duration
	// EventTTL drops an event whose retry comes due more than EventTTL after it was published (checked
	// only when a retry is due, as Event Grid does). <=0 means DefaultEventTTL (24h).
	EventTTL time.Duration
	// Client sends the deliveries. Nil means a client with a 30 s timeout that does not follow
	// redirects (a 3xx counts as a failed attempt). A client without a Timeout gets a 30 s deadline
	// per attempt, as Event Grid waits 30 s for an answer.
	Client *http.Client
}

// Validate reports whether s can be used: a name, an absolute http(s) URL and a known schema.
func (s Subscription) Validate() error {
	if s.Name == "" {
		return fmt.Errorf("delivery: subscription without a name")
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return fmt.Errorf("delivery: subscription %q: bad URL: %w", s.Name, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("delivery: subscription %q: URL %q is not an absolute http(s) URL", s.Name, s.URL)
	}
	if _, ok := normalizeSchema(s.Schema); !ok {
		return fmt.Errorf("delivery: subscription %q: unknown schema %q (want %q or %q)",
			s.Name, s.Schema, EventGridSchema, CloudEventsSchema)
	}
	for _, d := range s.RetryDelays {
		if d < 0 {
			return fmt.Errorf("delivery: subscription %q: negative retry delay %v", s.Name, d)
		}
	}
	return nil
}

// normalizeSchema maps "" to EventGridSchema and matches case-insensitively.
func normalizeSchema(s Schema) (Schema, bool) {
	switch strings.ToLower(string(s)) {
	case "", string(EventGridSchema):
		return EventGridSchema, true
	case string(CloudEventsSchema):
		return CloudEventsSchema, true
	}
	return EventGridSchema, false
}

// matches reports whether ev passes the subscription's filters.
func (s *Subscription) matches(ev *Event) bool {
	if len(s.EventTypes) > 0 {
		ok := false
		for _, t := range s.EventTypes {
			if t == ev.EventType {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(s.Topics) > 0 {
		for _, t := range s.Topics {
			if strings.EqualFold(t, ev.Topic) {
				return true
			}
		}
		return false
	}
	return true
}

// eventGridEvent is the Event Grid schema on the wire.
type eventGridEvent struct {
	ID              string          `json:"id"`
	Topic           string          `json:"topic"`
	Subject         string          `json:"subject"`
	EventType       string          `json:"eventType"`
	EventTime       string          `json:"eventTime"`
	Data            json.RawMessage `json:"data"`
	DataVersion     string          `json:"dataVersion"`
	MetadataVersion string          `json:"metadataVersion"`
}

// cloudEvent is the CloudEvents 1.0 structured-mode JSON on the wire.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject"`
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Content types of the two schemas.
const (
	eventGridContentType   = "application/json"
	cloudEventsContentType = "application/cloudevents+json; charset=utf-8"
)

// encode marshals ev (whose Data is already JSON) in the given schema.
func encode(ev *Event, data json.RawMessage, schema Schema) ([]byte, error) {
	t := ev.EventTime.UTC().Format(time.RFC3339Nano)
	if schema == CloudEventsSchema {
		return json.Marshal(cloudEvent{
			SpecVersion:     "1.0",
			ID:              ev.ID,
			Source:          ev.Topic,
			Subject:         ev.Subject,
			Type:            ev.EventType,
			Time:            t,
			DataContentType: "application/json",
			Data:            data,
		})
	}
	return json.Marshal([]eventGridEvent{{
		ID:              ev.ID,
		Topic:           ev.Topic,
		Subject:         ev.Subject,
		EventType:       ev.EventType,
		EventTime:       t,
		Data:            data,
		DataVersion:     "1",
		MetadataVersion: "1",
	}})
}
