package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/internal/hostsim"
)

// TestE2EGitHubSecretScanning: the built binary receives GitHub's secret_scanning_alert webhook (as the
// Functions host passes it), verifies the signature with the secret kept in the vault, reads the alert's
// secret from a local server that follows GitHub's REST contract with the token kept in the vault,
// rotates and revokes what holds it, resolves the alert, and refuses a bad signature and a replay.
func TestE2EGitHubSecretScanning(t *testing.T) {
	const hookSecret, token = "e2e-initial-github-webhook-secret-41ab", "e2e-initial-ghp-token-77c0"
	const leaked = "e2e-initial-LEAKED-storage-key-2b9d"
	var (
		mu      sync.Mutex
		patched []map[string]string
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.URL.Path != "/repos/contoso/payments/secret-scanning/alerts/3" {
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"message":"Not Found"}`)
			return
		}
		if r.Method == http.MethodPatch {
			var p map[string]string
			_ = json.NewDecoder(r.Body).Decode(&p)
			mu.Lock()
			patched = append(patched, p)
			mu.Unlock()
		}
		_, _ = io.WriteString(w, `{"number":3,"state":"open","secret_type":"azure_storage_account_key","secret":"`+leaked+`"}`)
	}))
	t.Cleanup(api.Close)
	x := startTimingE2E(t, "KVROTATOR_GITHUB_WEBHOOK_SECRET="+timingVault+"/github-hook", "KVROTATOR_GITHUB_TOKEN_SECRET="+timingVault+"/github-token",
		"KVROTATOR_GITHUB_API_URL="+api.URL, "KVROTATOR_GITHUB_RESOLVE_ALERTS=true")
	x.seed("github-hook", hookSecret, 365*24*time.Hour, nil)
	x.seed("github-token", token, 365*24*time.Hour, nil)
	x.seed("storage-key", leaked, 200*24*time.Hour, map[string]string{"rotation-provider": "random"})

	deliver := func(delivery, body, signature string) hostsim.HTTPResult {
		t.Helper()
		bodyJSON, _ := json.Marshal(body)
		req := map[string]any{"Url": "https://localhost:7071/api/GitHubSecretScanning?code=k", "Method": "POST", "Query": map[string]string{"code": "k"},
			"Headers": map[string][]string{"Content-Type": {"application/json"}, "X-GitHub-Event": {"secret_scanning_alert"},
				"X-GitHub-Delivery": {delivery}, "X-Hub-Signature-256": {signature}},
			"Body": json.RawMessage(bodyJSON)}
		env, _ := json.Marshal(map[string]any{"Data": map[string]any{"req": req}, "Metadata": map[string]any{}})
		res, err := x.invoke("GitHubSecretScanning", env).HTTPOutput()
		if err != nil {
			t.Fatal(err)
		}
		x.output.WriteString(res.Body)
		return res
	}
	body := `{"action":"created","alert":{"number":3,"secret_type":"azure_storage_account_key"},"repository":{"full_name":"contoso/payments"}}`
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(body))
	sig := "sha256=" + hex.EncodeToString(mac.Sum(nil))

	if res := deliver("0b8f1c2e-0000-4000-8000-000000000001", body, "sha256="+strings.Repeat("0", 64)); res.StatusCode.String() != "401" || len(x.versions("storage-key")) != 1 {
		t.Fatalf("bad signature: %+v", res)
	}
	res := deliver("0b8f1c2e-0000-4000-8000-000000000002", body, sig)
	if res.StatusCode.String() != "200" || !strings.Contains(res.Body, `"resolved":true`) || !strings.Contains(res.Body, `"outcome":"emergency"`) {
		t.Fatalf("alert: %+v\n%s", res, x.host.Output())
	}
	if v, _ := x.latest("storage-key"); v == leaked || len(x.versions("storage-key")) != 2 {
		t.Fatal("the leaked key was not rotated")
	}
	if len(patched) != 1 || patched[0]["resolution"] != "revoked" {
		t.Fatalf("resolve: %+v", patched)
	}
	if res := deliver("0b8f1c2e-0000-4000-8000-000000000002", body, sig); res.StatusCode.String() != "200" || !strings.Contains(res.Body, "replay") ||
		len(x.versions("storage-key")) != 2 || len(patched) != 1 {
		t.Fatalf("replay: %+v", res)
	}
	x.values = append(x.values, hookSecret, token, leaked)
}
