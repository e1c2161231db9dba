package handler

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/rotation"
)

var sampleEvent = rotation.Event{
	ID:      "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
	Type:    rotation.EventNearExpiry,
	Vault:   "sample-kv",
	Secret:  "newsecret",
	Version: "ee059b2bb5bc48398a53b168c6cdcb10",
}

const sampleVersion = "ee059b2bb5bc48398a53b168c6cdcb10"

// eventEnvelope wraps a raw event value in an eventGridTrigger envelope.
func eventEnvelope(binding, event string) []byte {
	return []byte(`{"Data":{"` + binding + `":` + event + `},"Metadata":{"sys":{"MethodName":"KeyVaultEvents","UtcNow":"2025-01-01T00:00:00Z","RandGuid":"x"}}}`)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

const plainEvent = `{"id":"e1","topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/sample-kv","subject":"newsecret","eventType":"Microsoft.KeyVault.SecretNearExpiry","eventTime":"2025-01-01T00:00:00Z","data":{"Id":"https://sample-kv.vault.azure.net/secrets/newsecret/ee059b2bb5bc48398a53b168c6cdcb10","VaultName":"sample-kv","ObjectType":"Secret","ObjectName":"newsecret","Version":"ee059b2bb5bc48398a53b168c6cdcb10","NBF":1559081980,"EXP":null},"dataVersion":"1"}`

func TestKeyVaultEvents(t *testing.T) {
	rotated := rotation.Outcome{Kind: rotation.KindRotated, Vault: "sample-kv", Secret: "newsecret", OldVersion: sampleVersion,
		NewVersion: "0123456789abcdef0123456789abcdef", Provider: "random", Trigger: rotation.TriggerEvent, Reason: "near expiry", DurationMS: 812}
	eventE1 := sampleEvent
	eventE1.ID = "e1"
	tests := []struct {
		name      string
		body      []byte
		outcome   rotation.Outcome
		wantEvent *rotation.Event // nil: the rotator must not be called
		status    int
		logs      string // substring of some Logs line
	}{
		{"event grid schema (host envelope)", fixture(t, "keyvaultevents.json"), rotated, &sampleEvent, 200,
			"rotated sample-kv/newsecret version ee059b2bb5bc48398a53b168c6cdcb10 → 0123456789abcdef0123456789abcdef: near expiry (provider random, trigger event, 812 ms)"},
		{"cloudevents schema (host envelope)", fixture(t, "keyvaultevents-cloudevents.json"), rotated, &sampleEvent, 200, "rotated sample-kv/newsecret"},
		{"event string-encoded once", eventEnvelope("eventGridEvent", jsonString(plainEvent)), rotated, &eventE1, 200, "rotated"},
		{"event string-encoded twice", eventEnvelope("eventGridEvent", jsonString(jsonString(plainEvent))), rotated, &eventE1, 200, "rotated"},
		{"webhook array of one", eventEnvelope("eventGridEvent", "["+plainEvent+"]"), rotated, &eventE1, 200, "rotated"},
		{"binding named differently", eventEnvelope("event", plainEvent), rotated, &eventE1, 200, "rotated"},
		{"skipped",
			eventEnvelope("eventGridEvent", `{"id":"k1","eventType":"Microsoft.KeyVault.KeyNearExpiry","data":{"ObjectType":"Key"}}`),
			rotation.Outcome{Kind: rotation.KindSkipped, Reason: "event type Microsoft.KeyVault.KeyNearExpiry is not rotated", Trigger: rotation.TriggerEvent},
			&rotation.Event{ID: "k1", Type: "Microsoft.KeyVault.KeyNearExpiry"}, 200, "skipped /: event type Microsoft.KeyVault.KeyNearExpiry is not rotated"},
		{"permanent failure is acknowledged", fixture(t, "keyvaultevents.json"),
			rotation.Outcome{Kind: rotation.KindFailed, Class: rotation.ClassPermanent, Vault: "sample-kv", Secret: "newsecret", Reason: `tag ValidityPeriodDays="ninety": not a number of days`},
			&sampleEvent, 200, `failed (permanent) sample-kv/newsecret: tag ValidityPeriodDays="ninety": not a number of days`},
		{"unclassified failure is acknowledged", fixture(t, "keyvaultevents.json"),
			rotation.Outcome{Kind: rotation.KindFailed, Vault: "sample-kv", Secret: "newsecret", Reason: "boom"},
			&sampleEvent, 200, "failed sample-kv/newsecret: boom"},
		{"transient failure fails the invocation", fixture(t, "keyvaultevents.json"),
			rotation.Outcome{Kind: rotation.KindFailed, Class: rotation.ClassTransient, Vault: "sample-kv", Secret: "newsecret", Reason: "vault throttled (429)"},
			&sampleEvent, 500, "so that Event Grid redelivers"},
		{"docs envelope with elided version is rejected", fixture(t, "keyvaultevents-docs.json"), rotated, nil, 200,
			`error: event data: Version "ee05..." is not a valid version`},
		{"invalid vault name", eventEnvelope("eventGridEvent", strings.Replace(plainEvent, `"VaultName":"sample-kv"`, `"VaultName":"bad_vault"`, 1)), rotated, nil, 200,
			`error: event data: VaultName "bad_vault" is not a valid vault name`},
		{"Id on another host", eventEnvelope("eventGridEvent", strings.Replace(plainEvent, "https://sample-kv.vault.azure.net", "https://evil.example.com", 1)), rotated, nil, 200,
			`is not in vault "sample-kv"`},
		{"array of two events", eventEnvelope("eventGridEvent", "["+plainEvent+","+plainEvent+"]"), rotated, nil, 200, "array of 2 events"},
		{"event not an object", eventEnvelope("eventGridEvent", `42`), rotated, nil, 200, "error: event: is not a JSON object"},
		{"no Data", []byte(`{"Metadata":{}}`), rotated, nil, 200, "no Data.eventGridEvent"},
		{"two Data entries, neither eventGridEvent", []byte(`{"Data":{"a":` + plainEvent + `,"b":` + plainEvent + `}}`), rotated, nil, 200, "no Data.eventGridEvent"},
		{"Data not an object", []byte(`{"Data":[1]}`), rotated, nil, 200, "not a valid envelope"},
		{"invocation body an array", []byte(`[` + string(eventEnvelope("eventGridEvent", plainEvent)) + `]`), rotated, nil, 200, "not a JSON object"},
		{"invocation body null", []byte(`null`), rotated, nil, 200, "not a JSON object"},
		{"invocation body empty", nil, rotated, nil, 200, "not a JSON object"},
		{"invocation body not JSON", []byte(`{"Data":`), rotated, nil, 200, "not a valid envelope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 0)
			r.rot.outcome = tt.outcome
			env := readEnvelope(t, r.invoke("KeyVaultEvents", tt.body))
			if env.status != tt.status {
				t.Errorf("status = %d, want %d", env.status, tt.status)
			}
			if len(env.Outputs) != 0 {
				t.Errorf("Outputs = %v, want {}", env.Outputs)
			}
			if !env.logsContain(tt.logs) {
				t.Errorf("Logs = %q, want a line containing %q", env.Logs, tt.logs)
			}
			switch {
			case tt.wantEvent == nil && r.rot.calls() != 0:
				t.Errorf("the rotator was called for bad input: %+v", r.rot.events)
			case tt.wantEvent != nil && (len(r.rot.events) != 1 || r.rot.events[0] != *tt.wantEvent):
				t.Errorf("HandleEvent got %+v, want [%+v]", r.rot.events, *tt.wantEvent)
			}
			if tt.wantEvent == nil {
				rejected := r.logs.withMessage(t, "invocation rejected")
				if len(rejected) != 1 || rejected[0]["level"] != "ERROR" || rejected[0]["invocation_id"] != testInvocationID {
					t.Errorf("want one ERROR line \"invocation rejected\" with the invocation id, got %v", r.logs.lines(t))
				}
			}
		})
	}
}

func TestKeyVaultEventsOversize(t *testing.T) {
	r := newRig(t, 256)
	body := fixture(t, "keyvaultevents.json") // well over 256 bytes
	env := readEnvelope(t, r.invoke("KeyVaultEvents", body))
	if env.status != http.StatusOK {
		t.Errorf("status = %d, want 200 (a permanent failure)", env.status)
	}
	if !env.logsContain("over the 256-byte limit") {
		t.Errorf("Logs = %q", env.Logs)
	}
	if r.rot.calls() != 0 {
		t.Error("the rotator was called for an oversize invocation")
	}
}

func TestKeyVaultEventsLogLine(t *testing.T) {
	tests := []struct {
		name  string
		out   rotation.Outcome
		level string
	}{
		{"rotated", rotation.Outcome{Kind: rotation.KindRotated}, "INFO"},
		{"skipped", rotation.Outcome{Kind: rotation.KindSkipped}, "INFO"},
		{"revoked", rotation.Outcome{Kind: rotation.KindRevoked}, "INFO"},
		{"planned", rotation.Outcome{Kind: rotation.KindPlanned}, "INFO"},
		{"overdue", rotation.Outcome{Kind: rotation.KindOverdue}, "WARN"},
		{"permanent", rotation.Outcome{Kind: rotation.KindFailed, Class: rotation.ClassPermanent}, "WARN"},
		{"transient", rotation.Outcome{Kind: rotation.KindFailed, Class: rotation.ClassTransient}, "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 0)
			o := tt.out
			o.Vault, o.Secret, o.OldVersion, o.NewVersion = "sample-kv", "newsecret", sampleVersion, "0123456789abcdef0123456789abcdef"
			o.Provider, o.Trigger, o.Reason, o.DurationMS = "random", rotation.TriggerEvent, "because", 42
			r.rot.outcome = o
			r.invoke("KeyVaultEvents", fixture(t, "keyvaultevents.json"))
			lines := r.logs.withMessage(t, "outcome")
			if len(lines) != 1 {
				t.Fatalf("want one outcome line, got %v", r.logs.lines(t))
			}
			want := map[string]any{
				"level": tt.level, "function": "KeyVaultEvents", "invocation_id": testInvocationID,
				"event_id": sampleEvent.ID, "event_type": sampleEvent.Type,
				"vault": "sample-kv", "secret": "newsecret", "version": sampleVersion, "new_version": "0123456789abcdef0123456789abcdef",
				"provider": "random", "trigger": "event", "outcome": string(o.Kind), "reason": "because", "class": string(o.Class),
				"dry_run": false, "duration_ms": float64(42),
			}
			for k, v := range want {
				if got, ok := lines[0][k]; !ok || got != v {
					t.Errorf("log key %s = %v (present %v), want %v", k, got, ok, v)
				}
			}
		})
	}
}

// A duration the engine does not report is the handler's own.
func TestOutcomeDurationFallsBackToInvocationTime(t *testing.T) {
	r := newRig(t, 0)
	r.rot.outcome = rotation.Outcome{Kind: rotation.KindSkipped}
	r.invoke("KeyVaultEvents", fixture(t, "keyvaultevents.json"))
	lines := r.logs.withMessage(t, "outcome")
	if len(lines) != 1 {
		t.Fatalf("want one outcome line, got %v", r.logs.lines(t))
	}
	if _, ok := lines[0]["duration_ms"].(float64); !ok {
		t.Errorf("duration_ms = %v, want a number", lines[0]["duration_ms"])
	}
}

// A rotation's consumer refreshes are logged after it, one line each, naming the consumer; a failed
// refresh at WARN (transient or not: the rotation is done either way).
func TestFollowupsAreLoggedAfterTheRotation(t *testing.T) {
	r := newRig(t, 0)
	o := rotation.Outcome{Kind: rotation.KindRotated, Vault: "sample-kv", Secret: "newsecret", NewVersion: "n1"}
	o.Followups = []rotation.Outcome{
		{Kind: rotation.KindRefreshed, Vault: "sample-kv", Secret: "newsecret", NewVersion: "n1", Consumer: "app-service /subscriptions/0/x"},
		{Kind: rotation.KindRefreshFailed, Class: rotation.ClassTransient, Vault: "sample-kv", Secret: "newsecret", NewVersion: "n1", Consumer: "webhook https://h.example.com"},
	}
	r.rot.outcome = o
	r.invoke("KeyVaultEvents", fixture(t, "keyvaultevents.json"))
	lines := r.logs.withMessage(t, "outcome")
	if len(lines) != 3 {
		t.Fatalf("want three outcome lines, got %v", r.logs.lines(t))
	}
	for i, want := range []struct{ outcome, level, consumer string }{
		{"rotated", "INFO", ""}, {"refreshed", "INFO", "app-service /subscriptions/0/x"}, {"refresh-failed", "WARN", "webhook https://h.example.com"},
	} {
		if lines[i]["outcome"] != want.outcome || lines[i]["level"] != want.level || lines[i]["consumer"] != want.consumer {
			t.Errorf("line %d: %v, want %+v", i, lines[i], want)
		}
	}
}
