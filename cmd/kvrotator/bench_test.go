package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/handler"
	"github.com/kvrotator/kvrotator/internal/hostsim"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/rotation/rotationtest"
)

// Handler overhead per event, excluding network: the KeyVaultEvents invocation through the real
// handler (envelope decoding, event validation, engine, outcome logging) over an in-memory vault and
// the random provider. Results and method: BENCHMARKS.md.

func benchHandler(b *testing.B) (http.Handler, *rotationtest.MemVault) {
	vault := rotationtest.NewMemVault("bench-vault")
	provs, _ := registry.Build(registry.Env{})
	eng, err := rotation.New(rotation.Config{Vaults: []rotation.Vault{vault}, Providers: provs.Lookup})
	if err != nil {
		b.Fatal(err)
	}
	h := handler.New(handler.Options{Rotator: eng, Logger: newLogger(discard{}, discard{}, 0)})
	return h, vault
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func eventEnvelope(eventType, secret, version string) []byte {
	ev, _ := json.Marshal(map[string]any{
		"id": "6a1e6c4e-2d0b-4a36-9d8c-0c6b1e1a7f10", "topic": "/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/bench-vault",
		"subject": secret, "eventType": eventType, "eventTime": "2026-11-29T10:00:00.0000000Z", "dataVersion": "1", "metadataVersion": "1",
		"data": map[string]any{"Id": "https://bench-vault.vault.azure.net/secrets/" + secret + "/" + version, "VaultName": "bench-vault",
			"ObjectType": "Secret", "ObjectName": secret, "Version": version, "NBF": nil, "EXP": "1798000000"},
	})
	return hostsim.EventGridEnvelope("KeyVaultEvents", ev)
}

func invokeOnce(b *testing.B, h http.Handler, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "/KeyVaultEvents", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

// BenchmarkEventDuplicate: a redelivered event for a version that is no longer the latest (the
// most common invocation under at-least-once delivery): decode, lock, one vault read, skip.
func BenchmarkEventDuplicate(b *testing.B) {
	h, vault := benchHandler(b)
	exp := time.Now().Add(10 * 24 * time.Hour)
	old := vault.Put("api-key", "v1", map[string]string{"rotation-provider": "random"}, &exp)
	vault.Put("api-key", "v2", map[string]string{"rotation-provider": "random"}, &exp)
	body := eventEnvelope(rotation.EventNearExpiry, "api-key", old)
	b.ReportAllocs()
	for b.Loop() {
		invokeOnce(b, h, body)
	}
}

// BenchmarkEventRotation: a near-expiry event that rotates: decode, lock, read, policy, random
// provider create + verify, write of the new version with its tags.
func BenchmarkEventRotation(b *testing.B) {
	h, vault := benchHandler(b)
	exp := time.Now().Add(10 * 24 * time.Hour)
	latest := vault.Put("api-key", "v1", map[string]string{"rotation-provider": "random"}, &exp)
	b.ReportAllocs()
	for b.Loop() {
		invokeOnce(b, h, eventEnvelope(rotation.EventNearExpiry, "api-key", latest))
		cur, err := vault.Get(context.Background(), "api-key", "")
		if err != nil {
			b.Fatal(err)
		}
		latest = cur.Version
	}
	if n := len(vault.Versions("api-key")); n < 2 {
		b.Fatalf("no rotation happened (%d versions)", n)
	}
}
