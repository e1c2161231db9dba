package events

import (
	"errors"
	"strings"
	"testing"
)

// decodeSeeds are FuzzDecode's seed corpus; testdata/fuzz/FuzzDecode holds the same cases as files
// (seed-*) plus what the fuzzer found.
func decodeSeeds() map[string]string {
	ceObject := strings.TrimSpace(ceExample)
	egObject := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(egExample), "["), "]")
	near := "Microsoft.KeyVault.SecretNearExpiry"
	return map[string]string{
		"eventgrid-array":          egExample,
		"eventgrid-object":         egObject,
		"eventgrid-string1":        jsonString(egObject),
		"eventgrid-string2":        jsonString(jsonString(egObject)),
		"cloudevents-object":       ceExample,
		"cloudevents-array":        "[" + ceExample + "]",
		"cloudevents-string1":      jsonString(ceObject),
		"cloudevents-string2":      jsonString(jsonString(ceObject)),
		"docs-sample-spaces":       docsSample,
		"nbf-exp-numbers":          egEvent(near, kvData(`1559081980`, `1559082102`)),
		"nbf-exp-strings":          egEvent(near, kvData(`"1559081980"`, `"1559082102"`)),
		"nbf-exp-null":             egEvent(near, kvData(`null`, `null`)),
		"nbf-exp-absent":           egEvent(near, kvData(``, ``)),
		"data-string-encoded":      egEvent(near, jsonString(kvData(`1`, `2`))),
		"key-event":                egEvent("Microsoft.KeyVault.KeyNearExpiry", `{"ObjectType":"Key"}`),
		"access-policy-event":      `{"eventType":"Microsoft.KeyVault.VaultAccessPolicyChanged","data":{}}`,
		"array-of-two":             "[" + egObject + "," + ceObject + "]",
		"bad-vault":                egEvent(near, `{"VaultName":"bad_vault","ObjectName":"api-key","Version":"0123456789abcdef0123456789abcdef"}`),
		"id-other-host":            egEvent(near, `{"Id":"https://evil.example.com/secrets/api-key/0123456789abcdef0123456789abcdef","VaultName":"myvault","ObjectName":"api-key","Version":"0123456789abcdef0123456789abcdef"}`),
		"garbage":                  "\x00\xff{[\"",
		"empty":                    "",
		"string-encoded-3-times":   jsonString(jsonString(jsonString(egObject))),
		"unicode-names":            egEvent(near, `{"VaultName":"myvault","ObjectName":"api\u2010key","Version":"0123456789abcdef0123456789abcdef"}`),
		"duplicate-keys-differing": `{"eventType":"Microsoft.KeyVault.SecretExpired","EVENTTYPE":"x"}`,
	}
}

// FuzzDecode checks that Decode never panics, that every error is a *DecodeError with a bounded
// message, and that every Secret* event it accepts satisfies the validation rules.
func FuzzDecode(f *testing.F) {
	for _, s := range decodeSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := Decode(raw)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T is not a *DecodeError: %v", err, err)
			}
			// Two quoted values of at most 128 characters (each escaped to at most 10 bytes) plus text.
			if n := len(err.Error()); n > 3000 {
				t.Fatalf("error message is %d bytes long", n)
			}
			return
		}
		if ev.Type == "" {
			t.Fatalf("Decode accepted an event without a type: %+v", ev)
		}
		if !strings.HasPrefix(strings.ToLower(ev.Type), secretTypes) {
			if ev.Vault != "" || ev.Secret != "" || ev.Version != "" {
				t.Fatalf("a %s event carries names: %+v", ev.Type, ev)
			}
			return
		}
		for _, check := range []error{CheckVaultName(ev.Vault), CheckSecretName(ev.Secret), CheckVersion(ev.Version)} {
			if check != nil {
				t.Fatalf("Decode accepted %+v: %v", ev, check)
			}
		}
		if strings.Contains(ev.Vault, "--") {
			t.Fatalf("Decode accepted vault %q", ev.Vault)
		}
	})
}
