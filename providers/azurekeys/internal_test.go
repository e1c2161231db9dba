package azurekeys

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestSanitizeRedactsKeys(t *testing.T) {
	b := make([]byte, 64)
	_, _ = rand.Read(b)
	storageKey := base64.StdEncoding.EncodeToString(b)
	cogKey := hex.EncodeToString(b[:16])
	id := "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/app/providers/Microsoft.Storage/storageAccounts/appdata"
	for _, tc := range []struct{ in, want string }{
		{"key " + storageKey + " rejected", "key [redacted] rejected"},
		{"key " + cogKey + ".", "key [redacted]."},
		{"over scope '" + id + "'", "over scope '" + id + "'"},
		{"KeyBasedAuthenticationNotPermitted", "KeyBasedAuthenticationNotPermitted"},
		{"line\none\t\x00two\u200b", "line one two"},
	} {
		if got := sanitize(tc.in, MaxMessageChars); got != tc.want {
			t.Errorf("sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := sanitize("the value abcdefgh1 leaked", 100, "abcdefgh1"); got != "the value [redacted] leaked" {
		t.Errorf("known values: %q", got)
	}
	if got := sanitize(strings.Repeat("a ", 400), 10); len([]rune(got)) != 10 || !strings.HasSuffix(got, "…") {
		t.Errorf("cut: %q", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"17"}}, 17 * time.Second},
		{http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{http.Header{"Retry-After": {"0"}}, 0},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{"Retry-After": {"999999"}}, maxRetryAfter},
		{http.Header{"Retry-After-Ms": {"250"}, "Retry-After": {"10"}}, 250 * time.Millisecond},
		{http.Header{}, 0},
	} {
		if got := retryAfter(tc.h, now); got != tc.want {
			t.Errorf("retryAfter(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

// Every descriptor is complete, its slots pair up, and every slot is found by its own ID.
func TestDescriptors(t *testing.T) {
	for name, k := range kinds {
		if name != strings.ToLower(k.resourceType) || k.title == "" || k.role == "" || k.parse == nil || k.regenRequest == nil ||
			!apiVersionRE().MatchString(k.apiVersion) || len(k.slots) == 0 || len(k.slots)%2 != 0 {
			t.Errorf("%s: incomplete descriptor", k.resourceType)
		}
		for _, s := range k.slots {
			got, ok := k.slotByName(s.ID)
			if !ok || got.ID != s.ID || k.partner(k.partner(s)).ID != s.ID || k.partner(s).ID == s.ID {
				t.Errorf("%s: slot %s", k.resourceType, s.ID)
			}
		}
		if len(chain(k.resourceType)) < 4 {
			t.Errorf("%s: chain", k.resourceType)
		}
	}
}
