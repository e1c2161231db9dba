package emulator_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
)

// auditSince returns the records after the first n.
func auditSince(srv *emulator.Server, n int) []emulator.AuditRecord { return srv.AuditLog()[n:] }

// onlyRecord returns the one record of a client call; a new azsecrets client's first request goes
// without a token to get the challenge, so a 401 without identity may come first.
func onlyRecord(t *testing.T, recs []emulator.AuditRecord) emulator.AuditRecord {
	t.Helper()
	if len(recs) == 2 && recs[0].HTTPStatusCode == http.StatusUnauthorized && len(recs[0].Identity.Claim) == 0 && recs[0].ResultSignature == "Unauthorized" {
		recs = recs[1:]
	}
	if len(recs) != 1 {
		b, _ := json.MarshalIndent(recs, "", "  ")
		t.Fatalf("want one audit record, got %d: %s", len(recs), b)
	}
	return recs[0]
}

func TestEmulatorAuditLogRecordsRequests(t *testing.T) {
	ids := rbacIdentities()
	srv := start(t, func(c *emulator.Config) {
		c.Identities = ids
		c.Limits = emulator.Limits{Writes: 3, Others: 1000}
	})
	const resourceID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/kvrotator-emulator/providers/microsoft.keyvault/vaults/myvault"
	admin := newClient(t, srv, "myvault")
	v1, err := admin.SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("first-value-x1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := admin.SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("second-value-x2")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := onlyRecord(t, auditSince(srv, len(srv.AuditLog())-1))
	base := srv.VaultURL("myvault")
	if set.OperationName != "SecretSet" || set.ID != base+"/secrets/db-password/"+v2.ID.Version() || set.HTTPStatusCode != 200 ||
		set.ResultSignature != "OK" || set.ResultType != "Success" || set.ResourceID != resourceID ||
		set.Identity.Claim[emulator.ClaimObjectID] != ids[0].ObjectID || set.Identity.Claim[emulator.ClaimAppID] != ids[0].ClientID ||
		set.CallerIPAddress != "127.0.0.1" || !strings.Contains(set.ClientInfo, "azsecrets") || set.CorrelationID == "" ||
		set.OperationVersion == "" || !strings.HasPrefix(set.RequestURI, base+"/secrets/db-password?api-version=") {
		t.Fatalf("SetSecret record: %+v", set)
	}

	// A Secrets User reads the latest version: the record names the version served.
	user, _ := azsecrets.NewClient(base, managedIdentity(t, srv, ids[2].ClientID), clientOptions(srv))
	n := len(srv.AuditLog())
	if _, err := user.GetSecret(ctx(t), "db-password", "", nil); err != nil {
		t.Fatal(err)
	}
	get := onlyRecord(t, auditSince(srv, n))
	if get.OperationName != "SecretGet" || get.ID != base+"/secrets/db-password/"+v2.ID.Version() ||
		get.Identity.Claim[emulator.ClaimObjectID] != ids[2].ObjectID || get.Identity.Claim[emulator.ClaimAppID] != ids[2].ClientID ||
		get.RequestURI != base+"/secrets/db-password/?api-version="+get.OperationVersion && get.RequestURI != base+"/secrets/db-password?api-version="+get.OperationVersion {
		t.Fatalf("GetSecret latest record: %+v", get)
	}
	// An old version by id.
	n = len(srv.AuditLog())
	if _, err := user.GetSecret(ctx(t), "db-password", v1.ID.Version(), nil); err != nil {
		t.Fatal(err)
	}
	if got := onlyRecord(t, auditSince(srv, n)); got.ID != base+"/secrets/db-password/"+v1.ID.Version() || got.HTTPStatusCode != 200 {
		t.Fatalf("GetSecret by version record: %+v", got)
	}

	// Failures: 404, 403 (a Reader may not read values), 401 (no token), 429, a scripted 503.
	noRetry := clientOptions(srv)
	noRetry.Retry = policy.RetryOptions{MaxRetries: -1}
	userNoRetry, _ := azsecrets.NewClient(base, managedIdentity(t, srv, ids[2].ClientID), noRetry)
	reader, _ := azsecrets.NewClient(base, managedIdentity(t, srv, ids[1].ClientID), noRetry)
	for _, c := range []*azsecrets.Client{userNoRetry, reader} { // past the challenge
		if _, err := c.NewListSecretPropertiesPager(nil).NextPage(ctx(t)); err != nil {
			t.Fatal(err)
		}
	}
	n = len(srv.AuditLog())
	_, _ = userNoRetry.GetSecret(ctx(t), "missing", "", nil)
	_, _ = reader.GetSecret(ctx(t), "db-password", "", nil)
	_ = raw(t, srv, "GET", "/secrets/db-password?api-version=7.5", "", nil)
	_ = srv.AddFault(emulator.FaultRule{Operation: "GetSecret", Status: 503})
	_, _ = userNoRetry.GetSecret(ctx(t), "db-password", "", nil)
	tok := systemToken(t, srv)
	for range 3 { // the fourth write in 10 s is over the limit of 3
		_ = raw(t, srv, "PUT", "/secrets/other?api-version=7.5", tok, []byte(`{"value":"third-value-x3"}`))
	}
	var statuses []int
	for _, r := range auditSince(srv, n) {
		statuses = append(statuses, r.HTTPStatusCode)
		want := map[int]string{404: "NotFound", 403: "Forbidden", 401: "Unauthorized", 503: "ServiceUnavailable", 429: "TooManyRequests", 200: "OK"}[r.HTTPStatusCode]
		if r.ResultSignature != want || (r.ResultType == "Success") != (r.HTTPStatusCode == 200) {
			t.Errorf("record %+v: signature %q, want %q", r, r.ResultSignature, want)
		}
	}
	if got, want := statuses, []int{404, 403, 401, 503, 200, 429, 429}; !equalInts(got, want) {
		// The first "other" write is allowed (two earlier writes used two of the three tokens).
		t.Fatalf("statuses %v, want %v", got, want)
	}
	recs := auditSince(srv, n)
	if recs[0].ID != base+"/secrets/missing" || recs[0].OperationName != "SecretGet" {
		t.Errorf("404 record: %+v", recs[0])
	}
	if recs[1].Identity.Claim[emulator.ClaimObjectID] != ids[1].ObjectID || recs[1].ID != base+"/secrets/db-password" {
		t.Errorf("403 record: %+v", recs[1])
	}
	if recs[2].OperationName != "SecretGet" || len(recs[2].Identity.Claim) != 0 {
		t.Errorf("401 record: %+v", recs[2])
	}

	// Lists name the collection.
	n = len(srv.AuditLog())
	_ = versions(t, admin, "db-password")
	if _, err := admin.NewListSecretPropertiesPager(nil).NextPage(ctx(t)); err != nil {
		t.Fatal(err)
	}
	recs = auditSince(srv, n)
	if len(recs) != 2 || recs[0].OperationName != "SecretListVersions" || recs[0].ID != base+"/secrets/db-password/versions" ||
		recs[1].OperationName != "SecretList" || recs[1].ID != base+"/secrets" {
		t.Fatalf("list records: %+v", recs)
	}

	// TimeGenerated follows the vault clock.
	srv.Advance(48 * time.Hour)
	n = len(srv.AuditLog())
	if _, err := user.GetSecret(ctx(t), "db-password", "", nil); err != nil {
		t.Fatal(err)
	}
	if got := onlyRecord(t, auditSince(srv, n)); time.Until(got.TimeGenerated) < 47*time.Hour || got.TimeGenerated.Location() != time.UTC {
		t.Fatalf("TimeGenerated %v after advancing the vault clock 48h", got.TimeGenerated)
	}

	// drop=after is recorded with the applied write's status and version; drop=true is not recorded.
	_ = srv.AddFault(emulator.FaultRule{Operation: "GetSecret", Drop: true})
	_ = srv.AddFault(emulator.FaultRule{Operation: "UpdateSecretProperties", DropAfter: true})
	n = len(srv.AuditLog())
	_, _ = userNoRetry.GetSecret(ctx(t), "db-password", "", nil)
	adminNoRetry, _ := azsecrets.NewClient(base, managedIdentity(t, srv, ""), noRetry)
	if _, err := adminNoRetry.UpdateSecretProperties(ctx(t), "db-password", v1.ID.Version(), azsecrets.UpdateSecretPropertiesParameters{ContentType: to("text/plain")}, nil); err == nil {
		t.Fatal("drop=after answered")
	}
	if got := onlyRecord(t, auditSince(srv, n)); got.OperationName != "SecretUpdate" || got.HTTPStatusCode != 200 || got.ID != base+"/secrets/db-password/"+v1.ID.Version() {
		t.Fatalf("drop=after record: %+v", got)
	}

	// The admin API serves the same records, with the table's column names, and no secret value.
	resp, err := srv.HTTPClient().Get(srv.URL() + "/_emulator/audit")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var listed []map[string]any
	if err := json.Unmarshal(body, &listed); err != nil || resp.StatusCode != 200 || len(listed) != len(srv.AuditLog()) {
		t.Fatalf("GET /_emulator/audit: %d, %d records, %v", resp.StatusCode, len(listed), err)
	}
	for _, col := range []string{"TimeGenerated", "OperationName", "Id", "RequestUri", "Identity", "CallerIpAddress", "HttpStatusCode",
		"ResultSignature", "ResultType", "_ResourceId", "CorrelationId", "ClientInfo"} {
		if _, ok := listed[0][col]; !ok {
			t.Errorf("admin audit record lacks %s: %v", col, listed[0])
		}
	}
	if ident, _ := json.Marshal(listed[0]["Identity"]); string(ident) != `{}` { // the first request is the challenge
		t.Errorf("Identity of a request without token: %s", ident)
	}
	found := false
	for _, rec := range listed {
		if rec["OperationName"] == "SecretSet" && rec["HttpStatusCode"] == float64(200) {
			claim, _ := rec["Identity"].(map[string]any)["claim"].(map[string]any)
			found = claim[emulator.ClaimObjectID] == ids[0].ObjectID && claim["appid"] == ids[0].ClientID
			break
		}
	}
	if !found {
		t.Errorf("no SecretSet record with the caller's claims in %s", body)
	}
	for _, v := range []string{"first-value-x1", "second-value-x2", "third-value-x3"} {
		if strings.Contains(string(body), v) {
			t.Fatalf("the audit log holds a secret value")
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEmulatorAuditLogBoundedAndPersisted: the log keeps the last AuditLogSize records, in the data
// directory across restarts, and the file is compacted.
func TestEmulatorAuditLogBoundedAndPersisted(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *emulator.Config) { c.DataDir = dir; c.AuditLogSize = 5 }
	srv := start(t, cfg)
	tok := systemToken(t, srv)
	for i := range 12 {
		r := raw(t, srv, "GET", "/secrets/s"+string(rune('a'+i))+"?api-version=7.5", tok, nil)
		if r.Status != http.StatusNotFound {
			t.Fatal(r.Status)
		}
	}
	recs := srv.AuditLog()
	if len(recs) != 5 || !strings.HasSuffix(recs[0].ID, "/secrets/sh") || !strings.HasSuffix(recs[4].ID, "/secrets/sl") {
		t.Fatalf("kept %d records: first %v", len(recs), recs)
	}
	_ = srv.Close()
	b, err := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(b), "\n"); lines > 10 {
		t.Fatalf("audit file not compacted: %d lines for a log of 5", lines)
	}
	// A torn last line (a kill mid-write) is skipped.
	f, _ := os.OpenFile(filepath.Join(dir, "audit.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	_, _ = f.WriteString(`{"TimeGenerated":"2026-`)
	_ = f.Close()

	again := start(t, cfg)
	got := again.AuditLog()
	if len(got) != 5 || got[4].ID != recs[4].ID || !got[4].TimeGenerated.Equal(recs[4].TimeGenerated) || got[4].Identity.Claim[emulator.ClaimObjectID] == "" {
		t.Fatalf("after restart: %+v", got)
	}
	if r := raw(t, again, "GET", "/secrets/after-restart?api-version=7.5", systemToken(t, again), nil); r.Status != 404 {
		t.Fatal(r.Status)
	}
	if got := again.AuditLog(); len(got) != 5 || !strings.HasSuffix(got[4].ID, "/secrets/after-restart") {
		t.Fatalf("after a new request: %+v", got)
	}

	// Negative size: no audit log.
	off := start(t, func(c *emulator.Config) { c.AuditLogSize = -1 })
	_ = raw(t, off, "GET", "/secrets?api-version=7.5", systemToken(t, off), nil)
	if n := len(off.AuditLog()); n != 0 {
		t.Fatalf("audit log off kept %d records", n)
	}
}
