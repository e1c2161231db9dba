package leaks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/leaks"
	"github.com/kvrotator/kvrotator/rotation"
)

// workflowAlert is shaped as Defender for Cloud's workflow automation (Logic App trigger) delivers an
// alert: PascalCase, ResourceIdentifiers, Entities with $id/$ref (learn.microsoft.com, "Alerts schemas").
const workflowAlert = `{
  "AlertDisplayName": "Access from a suspicious IP address to a key vault",
  "AlertType": "KV_SuspiciousIPAccess",
  "SystemAlertId": "2518310283999999999_5a0b9b1e-7c6f-4e29-9a53-1f2d3c4b5a69",
  "CompromisedEntity": "contoso-kv",
  "Severity": "Medium",
  "Status": "Active",
  "StartTimeUtc": "2026-12-04T07:10:00.0000000Z",
  "EndTimeUtc": "2026-12-04T07:40:00.0000000Z",
  "TimeGenerated": "2026-12-04T07:45:12.1234567Z",
  "ResourceIdentifiers": [
    {"$id": "1", "Type": "AzureResource", "AzureResourceId": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso-kv"},
    {"$id": "2", "Type": "LogAnalytics", "WorkspaceId": "4b7e5c1a-0000-4000-8000-00000000a0d1"}
  ],
  "Entities": [
    {"$id": "3", "Type": "ip", "Address": "203.0.113.77", "Location": {"CountryCode": "XX"}},
    {"$id": "4", "Type": "account", "Name": "suspicious-app", "AadUserId": "bbbbbbbb-1111-4111-8111-00000000000b"},
    {"$ref": "3"},
    {"$id": "5", "Type": "azure-resource", "ResourceId": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso-kv"}
  ],
  "ExtendedProperties": {"Client IP address": "203.0.113.77"},
  "AlertUri": "https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/x"
}`

// exportedAlert is the alerts REST schema that continuous export sends: camelCase under properties.
const exportedAlert = `[{"id": "/subscriptions/0000/providers/Microsoft.Security/locations/westeurope/alerts/2518",
  "name": "2518", "type": "Microsoft.Security/Locations/alerts",
  "properties": {"alertType": "SIMULATED_KV_TORAccess", "systemAlertId": "2518-simulated", "startTimeUtc": "2026-12-04T06:00:00Z",
   "endTimeUtc": "2026-12-04T06:30:00Z", "compromisedEntity": "contoso-kv",
   "resourceIdentifiers": [{"type": "AzureResource", "azureResourceId": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/contoso-kv"}],
   "entities": [{"type": "ip", "address": "198.51.100.4"}]}},
 {"properties": {"alertType": "VM_Something", "systemAlertId": "x", "startTimeUtc": "2026-12-04T06:00:00Z",
   "resourceIdentifiers": [{"type": "AzureResource", "azureResourceId": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"}]}}]`

func TestParseDefender(t *testing.T) {
	a, err := leaks.ParseDefender([]byte(workflowAlert))
	if err != nil || len(a) != 1 {
		t.Fatalf("%+v %v", a, err)
	}
	got := a[0]
	if got.Vault != "contoso-kv" || got.Type != "KV_SuspiciousIPAccess" || strings.Join(got.Addresses, ",") != "203.0.113.77" ||
		strings.Join(got.Identities, ",") != "bbbbbbbb-1111-4111-8111-00000000000b" || !got.Start.Equal(time.Date(2026, 12, 4, 7, 10, 0, 0, time.UTC)) ||
		!got.End.Equal(time.Date(2026, 12, 4, 7, 40, 0, 0, time.UTC)) {
		t.Fatalf("workflow automation: %+v", got)
	}
	b, err := leaks.ParseDefender([]byte(exportedAlert))
	if err != nil || len(b) != 1 || b[0].Vault != "contoso-kv" || b[0].Type != "SIMULATED_KV_TORAccess" || b[0].Addresses[0] != "198.51.100.4" {
		t.Fatalf("continuous export: %+v %v", b, err)
	}
	for _, bad := range []string{`not json`, `"a string"`, `[1]`, `{"AlertType":"KV_X","ResourceIdentifiers":[{"AzureResourceId":"/subscriptions/0/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv"}]}`} {
		if _, err := leaks.ParseDefender([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestDefenderPlansAndDedupes(t *testing.T) {
	var got []rotation.SuspiciousRequest
	d := &leaks.Defender{Vaults: []string{"contoso-kv"}, Alerts: &memDeliveries{seen: map[string]bool{}},
		Suspicious: func(_ context.Context, r rotation.SuspiciousRequest) (rotation.LeakReport, error) {
			got = append(got, r)
			return rotation.LeakReport{Outcomes: []rotation.Outcome{{Kind: rotation.KindPlanned, Secret: "s"}}}, nil
		}}
	res := d.Handle(context.Background(), []byte(workflowAlert))
	if res.Status != 200 || len(res.Alerts) != 1 || res.Alerts[0].Report == nil || len(got) != 1 || got[0].Rotate ||
		!got[0].From.Equal(time.Date(2026, 12, 4, 6, 55, 0, 0, time.UTC)) || got[0].Source != "Defender KV_SuspiciousIPAccess" {
		t.Fatalf("%+v; %+v", res, got)
	}
	if res := d.Handle(context.Background(), []byte(workflowAlert)); !strings.Contains(res.Alerts[0].Message, "handled already") || len(got) != 1 {
		t.Fatalf("again: %+v", res)
	}
	// A simulated alert with rotation on: planned only.
	d.Rotate, d.Vaults = true, []string{"contoso-kv"}
	if res := d.Handle(context.Background(), []byte(exportedAlert)); len(got) != 2 || got[1].Rotate || !strings.Contains(res.Alerts[0].Message, "simulated alert") {
		t.Fatalf("simulated: %+v; %+v", res, got)
	}
	d.Vaults = []string{"other"}
	if res := d.Handle(context.Background(), []byte(strings.Replace(exportedAlert, "2518-simulated", "2518-other", 1))); !strings.Contains(res.Alerts[0].Message, "not managed by kvrotator") || len(got) != 2 {
		t.Fatalf("another vault: %+v", res)
	}
	if res := d.Handle(context.Background(), []byte(`{`)); res.Status != 400 {
		t.Fatalf("bad body: %+v", res)
	}
}
