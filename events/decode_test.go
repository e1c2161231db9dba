package events

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/rotation"
)

// Reference examples (functions-host.md §9.3, §9.4), as Event Grid delivers them to a webhook.
const (
	egExample = `[ { "id": "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
    "topic": "/subscriptions/{subscription-id}/resourceGroups/sample-rg/providers/Microsoft.KeyVault/vaults/sample-kv",
    "subject": "newsecret",
    "eventType": "Microsoft.KeyVault.SecretNearExpiry",
    "eventTime": "2019-07-25T01:08:33.1036736Z",
    "data": { "Id": "https://sample-kv.vault.azure.net/secrets/newsecret/ee059b2bb5bc48398a53b168c6cdcb10",
              "VaultName": "sample-kv", "ObjectType": "Secret", "ObjectName": "newsecret",
              "Version": "ee059b2bb5bc48398a53b168c6cdcb10", "NBF": "1559081980", "EXP": "1559082102" },
    "dataVersion": "1", "metadataVersion": "1" } ]`

	ceExample = `{ "specversion": "1.0",
  "id": "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
  "source": "/subscriptions/{subscription-id}/resourceGroups/sample-rg/providers/Microsoft.KeyVault/vaults/sample-kv",
  "subject": "newsecret",
  "type": "Microsoft.KeyVault.SecretNearExpiry",
  "time": "2019-07-25T01:08:33.1036736Z",
  "data": { "Id": "https://sample-kv.vault.azure.net/secrets/newsecret/ee059b2bb5bc48398a53b168c6cdcb10", "VaultName": "sample-kv", "ObjectType": "Secret", "ObjectName": "newsecret", "Version": "ee059b2bb5bc48398a53b168c6cdcb10", "NBF": "1559081980", "EXP": "1559082102" } }`

	// The Key Vault docs sample, with its stray spaces in a key and a value (§9.2).
	docsSample = `{"id":"00eccf70-95a7-4e7c-8299-2eb17ee9ad64","topic":"/subscriptions/{subscription-id}/resourceGroups/sample-rg/providers/Microsoft.KeyVault/vaults/sample-kv","subject":"newsecret","eventType":"Microsoft.KeyVault.SecretNewVersionCreated","eventTime":"2019-07-25T01:08:33.1036736Z","data":{"Id":"https://sample-kv.vault.azure.net/secrets/newsecret/ee059b2bb5bc48398a53b168c6cdcb10","vaultName":"sample-kv","objectType":"Secret","ObjectName ":"newsecret","version":" ee059b2bb5bc48398a53b168c6cdcb10","nbf":"1559081980","exp":"1559082102"},"dataVersion":"1","metadataVersion":"1"}`
)

var sampleEvent = rotation.Event{
	ID:      "00eccf70-95a7-4e7c-8299-2eb17ee9ad64",
	Type:    rotation.EventNearExpiry,
	Vault:   "sample-kv",
	Secret:  "newsecret",
	Version: "ee059b2bb5bc48398a53b168c6cdcb10",
}

// jsonString encodes s as a JSON string: one more layer of string encoding.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// egEvent builds an Event Grid event object around data (a JSON value).
func egEvent(eventType, data string) string {
	return `{"id":"e1","topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/myvault",` +
		`"subject":"api-key","eventType":"` + eventType + `","eventTime":"2025-01-01T00:00:00Z","data":` + data + `,"dataVersion":"1"}`
}

// kvData builds Key Vault event data with the given NBF and EXP JSON values ("" = absent).
func kvData(nbf, exp string) string {
	s := `{"Id":"https://myvault.vault.azure.net/secrets/api-key/0123456789abcdef0123456789abcdef","VaultName":"myvault",` +
		`"ObjectType":"Secret","ObjectName":"api-key","Version":"0123456789abcdef0123456789abcdef"`
	if nbf != "" {
		s += `,"NBF":` + nbf
	}
	if exp != "" {
		s += `,"EXP":` + exp
	}
	return s + "}"
}

func myEvent(typ string) rotation.Event {
	return rotation.Event{ID: "e1", Type: typ, Vault: "myvault", Secret: "api-key", Version: "0123456789abcdef0123456789abcdef"}
}

func TestDecodeAccepts(t *testing.T) {
	ceObject := strings.TrimSpace(ceExample)
	egObject := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(egExample), "["), "]")
	nearExpiry := rotation.EventNearExpiry
	tests := []struct {
		name string
		in   string
		want rotation.Event
	}{
		{"event grid schema, webhook array of one", egExample, sampleEvent},
		{"event grid schema, object", egObject, sampleEvent},
		{"event grid schema, string-encoded once", jsonString(egObject), sampleEvent},
		{"event grid schema, string-encoded twice", jsonString(jsonString(egObject)), sampleEvent},
		{"event grid array, string-encoded", jsonString(egExample), sampleEvent},
		{"array of one string-encoded event", `[` + jsonString(egObject) + `]`, sampleEvent},
		{"cloudevents schema, object", ceExample, sampleEvent},
		{"cloudevents schema, array of one", "[" + ceExample + "]", sampleEvent},
		{"cloudevents schema, string-encoded twice", jsonString(jsonString(ceObject)), sampleEvent},
		{"docs sample with stray spaces and camelCase keys", docsSample,
			rotation.Event{ID: sampleEvent.ID, Type: rotation.EventNewVersion, Vault: "sample-kv", Secret: "newsecret", Version: sampleEvent.Version}},
		{"data string-encoded", egEvent(nearExpiry, jsonString(kvData(`1`, `2`))), myEvent(nearExpiry)},
		{"data string-encoded twice", egEvent(nearExpiry, jsonString(jsonString(kvData(`1`, `2`)))), myEvent(nearExpiry)},
		{"NBF, EXP numbers", egEvent(nearExpiry, kvData(`1559081980`, `1559082102`)), myEvent(nearExpiry)},
		{"NBF, EXP numeric strings", egEvent(nearExpiry, kvData(`"1559081980"`, `" 1559082102 "`)), myEvent(nearExpiry)},
		{"NBF, EXP null", egEvent(nearExpiry, kvData(`null`, `null`)), myEvent(nearExpiry)},
		{"NBF, EXP absent", egEvent(nearExpiry, kvData(``, ``)), myEvent(nearExpiry)},
		{"NBF, EXP empty strings", egEvent(nearExpiry, kvData(`""`, `""`)), myEvent(nearExpiry)},
		{"EXP integral float", egEvent(nearExpiry, kvData(``, `1.559082102e9`)), myEvent(nearExpiry)},
		{"expired", egEvent(rotation.EventExpired, kvData(``, `2`)), myEvent(rotation.EventExpired)},
		{"type spelled in lower case is canonicalised", egEvent("microsoft.keyvault.secretexpired", kvData(``, ``)), myEvent(rotation.EventExpired)},
		{"no Id, no ObjectType, no topic", `{"eventType":"Microsoft.KeyVault.SecretExpired","data":{"VaultName":"myvault","ObjectName":"api-key","Version":"0123456789ABCDEF0123456789ABCDEF"}}`,
			rotation.Event{Type: rotation.EventExpired, Vault: "myvault", Secret: "api-key", Version: "0123456789ABCDEF0123456789ABCDEF"}},
		{"Id with a port (emulator)", `{"eventType":"Microsoft.KeyVault.SecretExpired","data":{"Id":"https://MyVault.localhost:8443/secrets/api-key/0123456789abcdef0123456789abcdef","VaultName":"myvault","ObjectName":"api-key","Version":"0123456789abcdef0123456789abcdef"}}`,
			rotation.Event{Type: rotation.EventExpired, Vault: "myvault", Secret: "api-key", Version: "0123456789abcdef0123456789abcdef"}},
		{"topic and source both set, equal", `{"topic":"/x/providers/Microsoft.KeyVault/vaults/myvault","source":"/x/providers/Microsoft.KeyVault/vaults/myvault","type":"Microsoft.KeyVault.SecretExpired","data":` + kvData(``, ``) + `}`,
			rotation.Event{Type: rotation.EventExpired, Vault: "myvault", Secret: "api-key", Version: "0123456789abcdef0123456789abcdef"}},
		{"key event: type only, data unread", egEvent("Microsoft.KeyVault.KeyNearExpiry", `{"VaultName":"bad_vault","ObjectType":"Key"}`),
			rotation.Event{ID: "e1", Type: "Microsoft.KeyVault.KeyNearExpiry"}},
		{"certificate event", egEvent("Microsoft.KeyVault.CertificateExpired", `"garbage"`),
			rotation.Event{ID: "e1", Type: "Microsoft.KeyVault.CertificateExpired"}},
		{"access policy event without data", `{"id":"e2","eventType":"Microsoft.KeyVault.VaultAccessPolicyChanged","topic":"anything"}`,
			rotation.Event{ID: "e2", Type: "Microsoft.KeyVault.VaultAccessPolicyChanged"}},
		{"unrelated event", `{"specversion":"1.0","type":"com.example.thing.happened","source":"/x","id":"a"}`,
			rotation.Event{ID: "a", Type: "com.example.thing.happened"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tt.want {
				t.Errorf("Decode = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	const (
		expired = "Microsoft.KeyVault.SecretExpired"
		version = "0123456789abcdef0123456789abcdef"
	)
	// data builds Key Vault data from key/value pairs (values are raw JSON).
	data := func(kv ...string) string {
		parts := make([]string, 0, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			parts = append(parts, jsonString(kv[i])+":"+kv[i+1])
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	names := func(vault, name, ver string) []string {
		return []string{"VaultName", jsonString(vault), "ObjectName", jsonString(name), "Version", jsonString(ver)}
	}
	withID := func(id string) string {
		return egEvent(expired, data(append(names("myvault", "api-key", version), "Id", jsonString(id))...))
	}
	long := strings.Repeat("x", 300)
	tests := []struct {
		name    string
		in      string
		field   string
		message string // substring of Error()
	}{
		{"empty input", ``, "", "event: is empty"},
		{"spaces only", "  \n", "", "is empty"},
		{"over 64 KiB", `"` + strings.Repeat(" ", MaxEventBytes) + `"`, "", "over the 65536-byte limit"},
		{"not JSON", `hello`, "", "is not a JSON object"},
		{"broken JSON object", `{"eventType":`, "", "is not valid JSON"},
		{"number", `42`, "", "is not a JSON object"},
		{"null", `null`, "", "is not a JSON object"},
		{"string-encoded three times", jsonString(jsonString(jsonString(egEvent(expired, kvData(``, ``))))), "", "string-encoded more than 2 times"},
		{"string holding garbage", `"not json"`, "", "is not a JSON object"},
		{"bad string escape", `"\x"`, "", "is not a valid JSON string"},
		{"empty array", `[]`, "", "array of 0 events"},
		{"array of two", "[" + egEvent(expired, kvData(``, ``)) + "," + egEvent(expired, kvData(``, ``)) + "]", "", "array of 2 events"},
		{"array of one array", "[[" + egEvent(expired, kvData(``, ``)) + "]]", "", "is not a JSON object"},
		{"no type", `{"id":"x","data":{}}`, "eventType", "is missing"},
		{"type not a string", `{"eventType":5}`, "eventType", "must be a string"},
		{"type with spaces", `{"eventType":"Microsoft KeyVault"}`, "eventType", "is not a valid event type"},
		{"cloudevents type with spaces", `{"type":"a b"}`, "type", "is not a valid event type"},
		{"eventType and type disagree", `{"eventType":"Microsoft.KeyVault.SecretExpired","type":"Microsoft.KeyVault.KeyExpired"}`, "eventType", "disagree"},
		{"id with control characters", `{"id":"a\nb","eventType":"x"}`, "id", "not a valid event id"},
		{"id too long", `{"id":"` + long + `","eventType":"x"}`, "id", "not a valid event id"},
		{"keys colliding case-insensitively", `{"eventType":"a","EventType":"b"}`, "", "more than once"},
		{"secret event without data", `{"eventType":"Microsoft.KeyVault.SecretNearExpiry"}`, "data", "is missing"},
		{"secret event with null data", egEvent(expired, `null`), "data", "is missing"},
		{"data not an object", egEvent(expired, `[1]`), "data", "is not a JSON object"},
		{"data string not an object", egEvent(expired, `"hello"`), "data", "is not a JSON object"},
		{"data broken JSON", egEvent(expired, jsonString(`{"VaultName":`)), "data", "is not valid JSON"},
		{"ObjectType Key", egEvent(expired, data(append(names("myvault", "api-key", version), "ObjectType", `"Key"`)...)), "data.ObjectType", "is not Secret"},
		{"ObjectType not a string", egEvent(expired, data(append(names("myvault", "api-key", version), "ObjectType", `1`)...)), "data.ObjectType", "must be a string"},
		{"VaultName missing", egEvent(expired, data("ObjectName", `"api-key"`, "Version", jsonString(version))), "data.VaultName", "event data: VaultName is missing"},
		{"VaultName invalid", egEvent(expired, data(names("bad_vault", "api-key", version)...)), "data.VaultName", `event data: VaultName "bad_vault" is not a valid vault name`},
		{"VaultName too short", egEvent(expired, data(names("ab", "api-key", version)...)), "data.VaultName", "not a valid vault name"},
		{"VaultName too long", egEvent(expired, data(names("a234567890123456789012345", "api-key", version)...)), "data.VaultName", "not a valid vault name"},
		{"VaultName starts with a digit", egEvent(expired, data(names("1vault", "api-key", version)...)), "data.VaultName", "not a valid vault name"},
		{"VaultName ends with a hyphen", egEvent(expired, data(names("vault-", "api-key", version)...)), "data.VaultName", "not a valid vault name"},
		{"VaultName with double hyphen", egEvent(expired, data(names("my--vault", "api-key", version)...)), "data.VaultName", "not a valid vault name"},
		{"VaultName a host name", egEvent(expired, data(names("evil.example.com", "api-key", version)...)), "data.VaultName", "not a valid vault name"},
		{"VaultName not a string", egEvent(expired, data("VaultName", `["myvault"]`)), "data.VaultName", "must be a string"},
		{"ObjectName missing", egEvent(expired, data("VaultName", `"myvault"`, "Version", jsonString(version))), "data.ObjectName", "is missing"},
		{"ObjectName with a slash", egEvent(expired, data(names("myvault", "a/../b", version)...)), "data.ObjectName", "not a valid secret name"},
		{"ObjectName with an underscore", egEvent(expired, data(names("myvault", "api_key", version)...)), "data.ObjectName", "not a valid secret name"},
		{"ObjectName too long", egEvent(expired, data(names("myvault", strings.Repeat("a", 128), version)...)), "data.ObjectName", "not a valid secret name"},
		{"Version missing", egEvent(expired, data("VaultName", `"myvault"`, "ObjectName", `"api-key"`)), "data.Version", "is missing"},
		{"Version elided as in docs", egEvent(expired, data(names("myvault", "api-key", "ee05...")...)), "data.Version", `"ee05..." is not a valid version`},
		{"Version not hex", egEvent(expired, data(names("myvault", "api-key", strings.Repeat("g", 32))...)), "data.Version", "not a valid version"},
		{"Version 31 digits", egEvent(expired, data(names("myvault", "api-key", version[1:])...)), "data.Version", "not a valid version"},
		{"Id other vault", withID("https://othervault.vault.azure.net/secrets/api-key/" + version), "data.Id", `is not in vault "myvault"`},
		{"Id vault only as a later label", withID("https://evil.myvault.vault.azure.net/secrets/api-key/" + version), "data.Id", "is not in vault"},
		{"Id IP host", withID("https://127.0.0.1:8443/secrets/api-key/" + version), "data.Id", "is not in vault"},
		{"Id other secret", withID("https://myvault.vault.azure.net/secrets/other/" + version), "data.Id", "does not name secret"},
		{"Id other version", withID("https://myvault.vault.azure.net/secrets/api-key/" + strings.Repeat("f", 32)), "data.Id", "does not name secret"},
		{"Id keys path", withID("https://myvault.vault.azure.net/keys/api-key/" + version), "data.Id", "does not name secret"},
		{"Id without version", withID("https://myvault.vault.azure.net/secrets/api-key"), "data.Id", "does not name secret"},
		{"Id with trailing slash", withID("https://myvault.vault.azure.net/secrets/api-key/" + version + "/"), "data.Id", "does not name secret"},
		{"Id with query", withID("https://myvault.vault.azure.net/secrets/api-key/" + version + "?x=1"), "data.Id", "not a Key Vault object URL"},
		{"Id with user info", withID("https://u:p@myvault.vault.azure.net/secrets/api-key/" + version), "data.Id", "not a Key Vault object URL"},
		{"Id not a URL", withID("myvault"), "data.Id", "not a Key Vault object URL"},
		{"Id other scheme", withID("ftp://myvault.vault.azure.net/secrets/api-key/" + version), "data.Id", "not a Key Vault object URL"},
		{"Id too long is cut", withID("https://x.vault.azure.net/" + long), "data.Id", "…"},
		{"NBF not numeric", egEvent(expired, kvData(`"soon"`, ``)), "data.NBF", `event data: NBF "soon" is not a Unix time in seconds`},
		{"EXP boolean", egEvent(expired, kvData(``, `true`)), "data.EXP", "is not a Unix time"},
		{"EXP object", egEvent(expired, kvData(``, `{}`)), "data.EXP", "is not a Unix time"},
		{"EXP fractional", egEvent(expired, kvData(``, `1.5`)), "data.EXP", "is not a Unix time"},
		{"topic of another vault", `{"eventType":"` + expired + `","topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/othervault","data":` + kvData(``, ``) + `}`, "topic", `is not the topic of vault "myvault"`},
		{"topic of a vault whose name ends with ours", `{"eventType":"` + expired + `","topic":"/x/providers/Microsoft.KeyVault/vaults/notmyvault","data":` + kvData(``, ``) + `}`, "topic", "is not the topic"},
		{"source of another vault", `{"type":"` + expired + `","source":"/x/providers/Microsoft.Storage/storageAccounts/myvault","data":` + kvData(``, ``) + `}`, "source", "is not the topic"},
		{"topic and source disagree", `{"type":"` + expired + `","topic":"/a","source":"/b","data":` + kvData(``, ``) + `}`, "topic", "disagree"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode([]byte(tt.in))
			if err == nil {
				t.Fatalf("Decode = %+v, want an error", ev)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			if de.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", de.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not contain %q", err, tt.message)
			}
			if ev != (rotation.Event{}) {
				t.Errorf("Decode returned %+v with its error, want the zero Event", ev)
			}
		})
	}
}

func TestDecodeErrorEchoIsCapped(t *testing.T) {
	long := "a" + strings.Repeat("b", 1000)
	in := egEvent("Microsoft.KeyVault.SecretExpired", `{"VaultName":"`+long+`","ObjectName":"x","Version":"y"}`)
	_, err := Decode([]byte(in))
	if err == nil {
		t.Fatal("Decode accepted a 1001-character vault name")
	}
	if !strings.Contains(err.Error(), `"a`+strings.Repeat("b", 127)+`"…`) {
		t.Errorf("error does not quote the first 128 characters: %v", err)
	}
	if strings.Contains(err.Error(), strings.Repeat("b", 128)) {
		t.Errorf("error echoes more than 128 characters: %v", err)
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	tests := []struct {
		err  DecodeError
		want string
	}{
		{DecodeError{Field: "data.VaultName", Reason: `"bad_vault" is not a valid vault name`}, `event data: VaultName "bad_vault" is not a valid vault name`},
		{DecodeError{Field: "topic", Reason: "is wrong"}, "event: topic is wrong"},
		{DecodeError{Reason: "is empty"}, "event: is empty"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestCheckNames(t *testing.T) {
	tests := []struct {
		check func(string) error
		in    string
		ok    bool
	}{
		{CheckVaultName, "myvault", true},
		{CheckVaultName, "abc", true},
		{CheckVaultName, "a23456789012345678901234", true},
		{CheckVaultName, "My-Vault-1", true},
		{CheckVaultName, "a23456789012345678901234x", false},
		{CheckVaultName, "ab", false},
		{CheckVaultName, "my--vault", false},
		{CheckVaultName, "-vault", false},
		{CheckVaultName, "vault-", false},
		{CheckVaultName, "", false},
		{CheckVaultName, "myvault\n", false},
		{CheckSecretName, "api-key", true},
		{CheckSecretName, "A", true},
		{CheckSecretName, strings.Repeat("a", 127), true},
		{CheckSecretName, strings.Repeat("a", 128), false},
		{CheckSecretName, "api key", false},
		{CheckSecretName, "", false},
		{CheckVersion, "0123456789abcdefABCDEF0123456789", true},
		{CheckVersion, "0123456789abcdef0123456789abcde", false},
		{CheckVersion, "", false},
	}
	for _, tt := range tests {
		if err := tt.check(tt.in); (err == nil) != tt.ok {
			t.Errorf("check(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}
