package azurekeys_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/internal/providertest"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/azurekeys"
	"github.com/kvrotator/kvrotator/providers/internal/httpx/httpxtest"
	"github.com/kvrotator/kvrotator/rotation"
)

// The end-to-end tests run the provider through kvrotator's real rotation path: the Key Vault emulator
// over HTTPS, the keyvault adapter, the rotation engine, and the fake Azure behind the real azcore ARM
// client.

const due = 5 * 24 * time.Hour // inside the 30-day near-expiry window: due for the sweep

func secretTags(id, credentialID string, extra ...string) map[string]string {
	t := map[string]string{"rotation-provider": azurekeys.Name, "ProviderAddress": id, "CredentialId": credentialID}
	for i := 0; i+1 < len(extra); i += 2 {
		t[extra[i]] = extra[i+1]
	}
	return t
}

// bound is the harness options with the operator's bindings: azure-keys secrets of the test vault may
// rotate the keys of resources (ids or patterns), and nothing else.
func bound(t testing.TB, resources ...string) *providertest.Options {
	t.Helper()
	return &providertest.Options{Bindings: parseBindings(t, binding{Name: "azure-keys-test", Secrets: []string{providertest.VaultName + "/*"},
		Provider: azurekeys.Name, Allow: map[string][]string{"resource": resources}})}
}

// binding is one entry of the operator's bindings document (KVROTATOR_BINDINGS), written as JSON
// and parsed the way the application parses it.
type binding struct {
	Name     string              `json:"name"`
	Secrets  []string            `json:"secrets"`
	Provider string              `json:"provider"`
	Allow    map[string][]string `json:"allow"`
}

func parseBindings(t testing.TB, bs ...binding) *bindings.Policy {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"bindings": bs})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := bindings.Parse(doc, "test bindings", []string{azurekeys.Name})
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

// captureAzureLog records everything azcore logs (requests, responses, retries, polling) during a
// test.
func captureAzureLog(t *testing.T) *httpxtest.SyncBuffer {
	l := &httpxtest.SyncBuffer{}
	azlog.SetListener(func(e azlog.Event, msg string) { fmt.Fprintf(l, "%s: %s\n", e, msg) })
	t.Cleanup(func() { azlog.SetListener(nil) })
	return l
}

// outcomeText is everything an outcome would put in a log line or an event.
func outcomeText(o rotation.Outcome) string {
	s := fmt.Sprintf("%+v %s", o, o.Reason)
	if o.Err != nil {
		s += " " + o.Err.Error()
	}
	return s
}

// All three triggers rotate, each regenerating only the inactive slot and flipping CredentialId; the
// new versions hold keys the fake accepts now. Nothing azcore logs and no outcome carries a key.
func TestEndToEndTriggers(t *testing.T) {
	logs := captureAzureLog(t)
	f := newFake(t)
	h := providertest.New(t, azurekeys.Name, f.provider(), bound(t, storageID, redisID, sbRuleID))
	var texts []string

	// Event Grid's SecretNearExpiry: a Storage key, verified against the blob endpoint.
	v := h.Seed("storage-key", f.key(storageID, "key1"), secretTags(storageID, "key1"), due)
	o := h.Event("storage-key", v)
	texts = append(texts, outcomeText(o))
	if o.Kind != rotation.KindRotated {
		t.Fatalf("event: %+v", o)
	}
	latest := h.Latest("storage-key")
	if latest.Tags["CredentialId"] != "key2" || latest.Value.Reveal() != f.key(storageID, "key2") {
		t.Fatalf("event: the new version holds CredentialId=%s and a value that is not key2's current key", latest.Tags["CredentialId"])
	}
	if got := f.regenerated(storageID); !slices.Equal(got, []string{"key2"}) {
		t.Fatalf("event: regenerated %v, want [key2]", got)
	}
	// The same event delivered again: already done, nothing regenerated.
	if o := h.Event("storage-key", v); o.Kind != rotation.KindSkipped || len(f.regenerated(storageID)) != 1 {
		t.Fatalf("duplicate delivery: %+v, regenerated %v", o, f.regenerated(storageID))
	}

	// The timer's sweep: a Redis connection string.
	redisConn := func(k string) string {
		return "appcache.redis.example.com:6380,password=" + k + ",ssl=True,abortConnect=False"
	}
	h.Seed("redis-conn", redisConn(f.key(redisID, "Primary")), secretTags(redisID, "Primary", "azure-keys-format", "connection-string"), due)
	rep := h.Sweep()
	for _, o := range rep.Outcomes {
		texts = append(texts, outcomeText(o))
	}
	if len(rep.Outcomes) != 1 || rep.Outcomes[0].Secret != "redis-conn" || rep.Outcomes[0].Kind != rotation.KindRotated {
		t.Fatalf("sweep: %+v", rep.Outcomes)
	}
	latest = h.Latest("redis-conn")
	if latest.Tags["CredentialId"] != "Secondary" || latest.Value.Reveal() != redisConn(f.key(redisID, "Secondary")) {
		t.Fatal("sweep: the new version is not the Secondary connection string")
	}

	// The HTTP trigger: a Service Bus rule's connection string (verified by reading it back) …
	h.Seed("bus-conn", "Endpoint=sb://appbus.servicebus.windows.net/;SharedAccessKeyName=sender;SharedAccessKey="+f.key(sbRuleID, "SecondaryKey"),
		secretTags(sbRuleID, "SecondaryKey", "azure-keys-format", "connection-string"), 60*24*time.Hour)
	o = h.Manual("bus-conn", false)
	texts = append(texts, outcomeText(o))
	if o.Kind != rotation.KindRotated || h.Latest("bus-conn").Tags["CredentialId"] != "PrimaryKey" ||
		!strings.HasSuffix(h.Latest("bus-conn").Value.Reveal(), ";SharedAccessKey="+f.key(sbRuleID, "PrimaryKey")) {
		t.Fatalf("manual: %+v", o)
	}
	// … and the Storage key again, which now alternates back to key1: within the grace of the first
	// rotation only with the override (the back-to-back guard refuses it otherwise; see the test below).
	if o := h.Manual("storage-key", false); o.Kind != rotation.KindSkipped || !o.Conflict {
		t.Fatalf("back to back without override: %+v", o)
	}
	o = h.ManualOverride("storage-key")
	texts = append(texts, outcomeText(o))
	if o.Kind != rotation.KindRotated || h.Latest("storage-key").Tags["CredentialId"] != "key1" || h.Latest("storage-key").Value.Reveal() != f.key(storageID, "key1") {
		t.Fatalf("manual, second rotation: %+v", o)
	}
	if got := f.regenerated(storageID); !slices.Equal(got, []string{"key2", "key1"}) {
		t.Fatalf("regenerated %v, want [key2 key1]", got)
	}
	if h.Versions("storage-key") != 3 {
		t.Fatalf("%d versions, want 3", h.Versions("storage-key"))
	}
	assertNoKeys(t, f, append(texts, logs.String())...)
	if !strings.Contains(logs.String(), "/regenerateKey") {
		t.Fatal("azcore logged nothing: the log assertion proves nothing")
	}
}

// A dry run validates the tags and calls nothing.
func TestEndToEndDryRunChangesNothing(t *testing.T) {
	f := newFake(t)
	h := providertest.New(t, azurekeys.Name, f.provider(), bound(t, cosmosID))
	h.Seed("cosmos-key", f.key(cosmosID, "primary"), secretTags(cosmosID, "primary"), due)
	o := h.Manual("cosmos-key", true)
	if o.Kind != rotation.KindPlanned || !strings.Contains(o.Reason, "two-slot") {
		t.Fatalf("dry run: %+v", o)
	}
	if h.Versions("cosmos-key") != 1 || len(f.regenerated(cosmosID)) != 0 || f.requestCount("/listkeys") != 0 {
		t.Fatal("the dry run changed or called something")
	}
}

// A rotation that dies right after the regeneration, or right after verification, is finished by the
// redelivered event: CredentialId flips exactly once, only the inactive slot was ever regenerated, and
// the vault's value is the key the resource holds now. Storage answers synchronously, Cosmos DB with a
// long-running operation.
func TestEndToEndInterruptedThenRedelivered(t *testing.T) {
	for _, step := range []providertest.Step{providertest.AfterCreate, providertest.AfterVerify} {
		for _, tc := range []struct{ id, active, inactive string }{
			{storageID, "key1", "key2"},
			{cosmosID, "primary", "secondary"},
		} {
			t.Run(string(step)+" "+familyOf(tc.id), func(t *testing.T) {
				f := newFake(t)
				p := f.provider()
				h := providertest.New(t, azurekeys.Name, p, bound(t, tc.id))
				old := f.key(tc.id, tc.active)
				v := h.Seed("app-key", old, secretTags(tc.id, tc.active), due)

				if o := h.RotateInterrupted("app-key", v, step); o.Kind != rotation.KindFailed {
					t.Fatalf("interrupted: %+v", o)
				}
				if h.Versions("app-key") != 1 || h.Latest("app-key").Value.Reveal() != old || f.key(tc.id, tc.active) != old {
					t.Fatal("the interrupted rotation changed the vault or the key in use")
				}
				if o := h.Event("app-key", v); o.Kind != rotation.KindRotated {
					t.Fatalf("redelivery: %+v", o)
				}
				latest := h.Latest("app-key")
				if h.Versions("app-key") != 2 || latest.Tags["CredentialId"] != tc.inactive {
					t.Fatalf("%d versions, CredentialId=%s; want 2 and %s", h.Versions("app-key"), latest.Tags["CredentialId"], tc.inactive)
				}
				// The interrupted attempt and the redelivery each regenerated the inactive slot: harmless, as
				// nothing used it in between.
				if got := f.regenerated(tc.id); !slices.Equal(got, []string{tc.inactive, tc.inactive}) {
					t.Fatalf("regenerated %v, want the inactive slot %s twice and the active %s never", got, tc.inactive, tc.active)
				}
				if latest.Value.Reveal() != f.key(tc.id, tc.inactive) || f.key(tc.id, tc.active) != old {
					t.Fatal("the vault does not hold the resource's current key")
				}
				req := request(tc.id, tc.active, old, nil)
				if err := p.Verify(t.Context(), req, providers.Credential{Value: latest.Value, CredentialID: tc.inactive}); err != nil {
					t.Fatalf("the vault's value does not work against the resource: %v", err)
				}
			})
		}
	}
}

// A wrong or missing tag is a permanent, named configuration error at the dry run and at rotation,
// and nothing is called.
func TestEndToEndWrongTag(t *testing.T) {
	for _, tc := range []struct {
		name string
		tags map[string]string
		tag  string
	}{
		{"CredentialId of another type", secretTags(storageID, "primary"), "CredentialId"},
		{"missing CredentialId", map[string]string{"rotation-provider": azurekeys.Name, "ProviderAddress": storageID}, "CredentialId"},
		{"unsupported type", secretTags("/subscriptions/"+sub+"/resourceGroups/app/providers/Microsoft.KeyVault/vaults/other", "key1"), "ProviderAddress"},
		{"bad format", secretTags(storageID, "key1", "azure-keys-format", "xml"), "azure-keys-format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			h := providertest.New(t, azurekeys.Name, f.provider(), bound(t, tc.tags["ProviderAddress"]))
			v := h.Seed("bad", "value", tc.tags, due)
			for _, o := range []rotation.Outcome{h.Manual("bad", true), h.Event("bad", v)} {
				var ce *providers.ConfigError
				if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent || !errors.As(o.Err, &ce) || !strings.EqualFold(ce.Tag, tc.tag) {
					t.Fatalf("outcome %+v, want a permanent ConfigError naming %s", o, tc.tag)
				}
			}
			if h.Versions("bad") != 1 || len(f.regenerated(storageID)) != 0 || f.requestCount("/subscriptions/") != 0 {
				t.Fatal("a misconfigured secret reached Azure")
			}
		})
	}
}

// Azure refusing (403) is permanent: reported with what to grant, not retried, the vault unchanged.
func TestEndToEndIssuerRefuses(t *testing.T) {
	f := newFake(t)
	f.fail("/regeneratekey", -1, 403, nil, authorizationFailed)
	h := providertest.New(t, azurekeys.Name, f.provider(), bound(t, storageID))
	v := h.Seed("storage-key", f.key(storageID, "key1"), secretTags(storageID, "key1"), due)
	o := h.Event("storage-key", v)
	t.Log(o.Reason)
	if o.Kind != rotation.KindFailed || o.Class != rotation.ClassPermanent ||
		!strings.Contains(o.Reason, "Microsoft.Storage/storageAccounts/regenerateKey/action") || !strings.Contains(o.Reason, "Storage Account Key Operator Service Role") {
		t.Fatalf("outcome %+v", o)
	}
	if n := f.requestCount("/regeneratekey"); n != 1 {
		t.Errorf("%d regenerate requests: a 403 must not be retried", n)
	}
	if h.Versions("storage-key") != 1 || h.Latest("storage-key").Value.Reveal() != f.key(storageID, "key1") {
		t.Fatal("the vault changed")
	}
	assertNoKeys(t, f, outcomeText(o))
}

// Azure down — nothing listening, or 503 until azcore and the engine give up — is transient, and the
// vault is unchanged.
func TestEndToEndIssuerDown(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		f := newFake(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		env := f.azure()
		for k, s := range env.Cloud.Services {
			s.Endpoint = "https://" + l.Addr().String()
			env.Cloud.Services[k] = s
		}
		_ = l.Close()
		p := azurekeys.New(azurekeys.WithAzure(env), azurekeys.WithRetry(fastRetry), azurekeys.WithEndpoints(testEndpoints))
		h := providertest.New(t, azurekeys.Name, p, bound(t, storageID))
		v := h.Seed("storage-key", f.key(storageID, "key1"), secretTags(storageID, "key1"), due)
		o := h.Event("storage-key", v)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "refused") {
			t.Fatalf("outcome %+v", o)
		}
		if h.Versions("storage-key") != 1 || h.Latest("storage-key").Value.Reveal() != f.key(storageID, "key1") {
			t.Fatal("the vault changed")
		}
	})
	t.Run("503", func(t *testing.T) {
		f := newFake(t)
		f.fail("/listkeys", -1, 503, nil, `{"error":{"code":"ServiceUnavailable","message":"The service is temporarily unavailable."}}`)
		h := providertest.New(t, azurekeys.Name, f.provider(), bound(t, redisID))
		v := h.Seed("redis-key", f.key(redisID, "Primary"), secretTags(redisID, "Primary"), due)
		o := h.Event("redis-key", v)
		if o.Kind != rotation.KindFailed || o.Class != rotation.ClassTransient || !strings.Contains(o.Reason, "HTTP 503") {
			t.Fatalf("outcome %+v", o)
		}
		// azcore's retries (3 tries) times the engine's attempts (3).
		if n := f.requestCount("/listkeys"); n != 9 {
			t.Errorf("%d listKeys requests, want 9", n)
		}
		if h.Versions("redis-key") != 1 || len(f.regenerated(redisID)) != 0 {
			t.Fatal("the vault or the keys changed")
		}
		assertNoKeys(t, f, outcomeText(o))
	})
}
