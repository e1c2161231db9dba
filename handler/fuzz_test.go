package handler

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/events"
	"github.com/kvrotator/kvrotator/rotation"
)

// fuzzFunctions are the functions FuzzEnvelope drives, chosen by its first argument.
var fuzzFunctions = []string{"KeyVaultEvents", "RotateSecret"}

// FuzzEnvelope drives KeyVaultEvents and RotateSecret with arbitrary invocation bodies. The handler
// must never panic, must always answer a well-formed envelope, and must never hand the Rotator
// anything that fails validation: every event or request that reaches it carries valid names.
func FuzzEnvelope(f *testing.F) {
	fixtures, err := filepath.Glob(filepath.Join("testdata", "envelopes", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(0), b)
		f.Add(uint8(1), b)
	}
	for _, body := range [][]byte{
		eventEnvelope("eventGridEvent", plainEvent),
		eventEnvelope("eventGridEvent", jsonString(jsonString(plainEvent))),
		eventEnvelope("x", "["+plainEvent+"]"),
		eventEnvelope("eventGridEvent", `{"eventType":"Microsoft.KeyVault.KeyExpired"}`),
		[]byte(`{"Data":null}`),
		[]byte(`[]`),
		[]byte("\x00"),
	} {
		f.Add(uint8(0), body)
	}
	for _, body := range [][]byte{
		post(`{"vault":"myvault","secret":"api-key","dryRun":true}`),
		post(`{"vault":"myvault","secret":"api-key","version":"` + version32 + `","force":false}`),
		post(`{"vault":"bad_vault","secret":"api-key"}`),
		post(`not json`),
		get("vault=myvault&secret=api-key&dryRun=1"),
		get(""),
		httpEnvelope("GET", "https://app/api/RotateSecret?vault=myvault&secret=api-key", `"{}"`, ""),
		httpEnvelope("DELETE", "", `{}`, ""),
	} {
		f.Add(uint8(1), body)
	}

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		function := fuzzFunctions[int(which)%len(fuzzFunctions)]
		r := newRig(t, 4096)
		r.rot.outcome = rotation.Outcome{Kind: rotation.KindPlanned}
		env := readEnvelope(t, r.invoke(function, body))
		if env.status != 200 {
			t.Fatalf("%s answered %d; only a transient failure may fail the invocation", function, env.status)
		}
		for _, ev := range r.rot.events {
			checkEvent(t, ev)
		}
		for _, req := range r.rot.requests {
			checkRequest(t, req)
		}
		calls := r.rot.calls()
		if calls > 1 {
			t.Fatalf("one invocation made %d rotator calls", calls)
		}
		switch function {
		case "KeyVaultEvents":
			rejected := len(r.logs.withMessage(t, "invocation rejected")) == 1 && env.logsContain("error: ")
			if rejected == (calls == 1) {
				t.Fatalf("rotator calls %d, rejected %v; want exactly one of them (Logs %q)", calls, rejected, env.Logs)
			}
		case "RotateSecret":
			res := env.res(t)
			switch res.StatusCode {
			case 200:
			case 400, 405, 413:
				if calls != 0 {
					t.Fatalf("res %d, yet the rotator was called with %+v", res.StatusCode, r.rot.requests)
				}
			default:
				t.Fatalf("res.statusCode = %d", res.StatusCode)
			}
		}
	})
}

func checkEvent(t *testing.T, ev rotation.Event) {
	t.Helper()
	if ev.Type == "" {
		t.Fatalf("HandleEvent got an event without a type: %+v", ev)
	}
	if !strings.HasPrefix(strings.ToLower(ev.Type), "microsoft.keyvault.secret") {
		if ev.Vault != "" || ev.Secret != "" || ev.Version != "" {
			t.Fatalf("HandleEvent got a %s event with names: %+v", ev.Type, ev)
		}
		return
	}
	for _, err := range []error{events.CheckVaultName(ev.Vault), events.CheckSecretName(ev.Secret), events.CheckVersion(ev.Version)} {
		if err != nil {
			t.Fatalf("HandleEvent got %+v: %v", ev, err)
		}
	}
}

func checkRequest(t *testing.T, req rotation.Request) {
	t.Helper()
	if req.Trigger != rotation.TriggerManual {
		t.Fatalf("Rotate got trigger %q", req.Trigger)
	}
	errs := []error{events.CheckVaultName(req.Vault), events.CheckSecretName(req.Secret)}
	if req.Version != "" {
		errs = append(errs, events.CheckVersion(req.Version))
	}
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Rotate got %+v: %v", req, err)
		}
	}
}

// The host envelopes in testdata are valid JSON, so the tests and seeds built on them exercise the
// handler rather than its JSON errors.
func TestFixturesAreJSON(t *testing.T) {
	fixtures, _ := filepath.Glob(filepath.Join("testdata", "envelopes", "*.json"))
	if len(fixtures) == 0 {
		t.Fatal("no fixtures")
	}
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		if err != nil || !json.Valid(b) {
			t.Errorf("%s is not valid JSON (%v)", name, err)
		}
	}
}
