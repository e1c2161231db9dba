package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/providers/datadog/datadogtest"
	"github.com/kvrotator/kvrotator/providers/openai/openaitest"
)

// TestE2ESaaSProvidersThroughTheHandler: the built binary rotates a Datadog API key and an OpenAI
// project service-account key against local servers that follow the vendors' contracts: the sweep
// creates and verifies the new key, the old one keeps working through the grace period, and the sweep
// after it deletes the old one; the operator's bindings allow exactly these admin secrets, URLs and
// accounts.
func TestE2ESaaSProvidersThroughTheHandler(t *testing.T) {
	dd := datadogtest.NewServer()
	t.Cleanup(dd.Close)
	ddAdminAPI, ddAdminApp := dd.AddAPIKey("kvrotator admin"), dd.AddAppKey("kvrotator admin", datadogtest.AdminUser, nil)
	ddCurrent := dd.AddAPIKey("metrics shipper (made in the UI)")

	oa := openaitest.NewServer()
	t.Cleanup(oa.Close)
	project := oa.AddProject()
	oaAdmin := oa.AddAdminKey(true)
	oaCurrent := oa.AddServiceAccount(project, "chatbot (made in the UI)")

	dir := t.TempDir()
	binds := filepath.Join(dir, "bindings.json")
	if err := os.WriteFile(binds, fmt.Appendf(nil, `{"bindings":[
		{"name":"datadog","secrets":["%[1]s/dd-*"],"provider":"datadog","allow":{"secret":["datadog-admin"],"url":[%[2]q],"account":["organization"]}},
		{"name":"openai","secrets":["%[1]s/oa-*"],"provider":"openai","allow":{"secret":["openai-admin"],"url":[%[3]q],"account":[%[4]q]}}]}`,
		timingVault, dd.URL, oa.URL, project), 0o644); err != nil {
		t.Fatal(err)
	}
	x := startTimingE2E(t, "KVROTATOR_BINDINGS="+binds, "KVROTATOR_GRACE_HOURS=1")
	ddAdmin, _ := json.Marshal(map[string]string{"api_key": ddAdminAPI.Value, "application_key": ddAdminApp.Value})
	x.seed("datadog-admin", string(ddAdmin), 365*24*time.Hour, nil)
	x.seed("openai-admin", oaAdmin, 365*24*time.Hour, nil)
	x.seed("dd-metrics-key", ddCurrent.Value, 5*24*time.Hour, map[string]string{"rotation-provider": "datadog",
		"datadog-admin-secret": "datadog-admin", "datadog-site": dd.URL, "CredentialId": ddCurrent.ID})
	x.seed("oa-chatbot-key", oaCurrent.Key.Value, 5*24*time.Hour, map[string]string{"rotation-provider": "openai",
		"openai-admin-secret": "openai-admin", "openai-project": project, "openai-api-url": oa.URL, "CredentialId": oaCurrent.ID})

	x.sweep()
	ddNew, ddID := x.latest("dd-metrics-key")
	oaNew, oaID := x.latest("oa-chatbot-key")
	x.values = append(x.values, ddNew, oaNew)
	switch {
	case ddID == ddCurrent.ID || !dd.Works(ddNew):
		t.Fatalf("datadog: the vault's new key (%s) does not work\n%s", ddID, x.host.Output())
	case oaID == oaCurrent.ID || !oa.Works(oaNew):
		t.Fatalf("openai: the vault's new key (%s) does not work\n%s", oaID, x.host.Output())
	case !dd.Works(ddCurrent.Value) || !oa.Works(oaCurrent.Key.Value):
		t.Fatal("an old key stopped working before its grace period")
	}

	x.advance(2 * time.Hour)
	x.sweep()
	switch {
	case dd.Works(ddCurrent.Value) || oa.Works(oaCurrent.Key.Value):
		t.Fatalf("an old key still works after the grace period\n%s", x.host.Output())
	case !dd.Works(ddNew) || !oa.Works(oaNew):
		t.Fatal("a new key was revoked")
	}
	x.values = append(x.values, ddCurrent.Value, oaCurrent.Key.Value, ddAdminAPI.Value, ddAdminApp.Value, oaAdmin)
}
