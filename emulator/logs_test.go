package emulator_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/query/azlogs"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
)

// kvrotator's two query shapes: reads of one secret, and of every secret of a vault.
const (
	readsOfSecret = `AZKVAuditLogs
| where OperationName == "SecretGet" and HttpStatusCode == 200 and _ResourceId endswith "/vaults/myvault"
| where Id contains "/secrets/db-password/" or Id endswith "/secrets/db-password"
| extend ObjectId = tostring(coalesce(Identity.claim.oid, Identity.claim["http://schemas.microsoft.com/identity/claims/objectidentifier"])), AppId = tostring(Identity.claim.appid)
| summarize LastRead = max(TimeGenerated), Reads = count() by ObjectId, AppId, CallerIpAddress, Id`
	readsOfVault = `AZKVAuditLogs
| where OperationName == "SecretGet" and HttpStatusCode == 200 and _ResourceId endswith "/vaults/myvault"
| extend ObjectId = tostring(coalesce(Identity.claim.oid, Identity.claim["http://schemas.microsoft.com/identity/claims/objectidentifier"])), AppId = tostring(Identity.claim.appid)
| summarize LastRead = max(TimeGenerated), Reads = count() by ObjectId, AppId, CallerIpAddress, Id`
)

// logsClient is the real azlogs client pointed at the emulator's query endpoint.
func logsClient(t *testing.T, srv *emulator.Server, cred azcore.TokenCredential) *azlogs.Client {
	t.Helper()
	c, err := azlogs.NewClient(cred, &azlogs.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: srv.HTTPClient(),
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: srv.AuthorityHost(),
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				azlogs.ServiceName: {Audience: emulator.LogsAudience, Endpoint: srv.LogsEndpoint()},
			},
		},
	}})
	if err != nil {
		t.Fatalf("azlogs.NewClient: %v", err)
	}
	return c
}

// readRow is one row of kvrotator's query result.
type readRow struct {
	ObjectID, AppID, IP, ID string
	LastRead                time.Time
	Reads                   int
}

// queryReads runs q through azlogs over [from, to) and decodes kvrotator's result columns, checking
// their names and types.
func queryReads(t *testing.T, c *azlogs.Client, workspace, q string, span azlogs.TimeInterval) []readRow {
	t.Helper()
	body := azlogs.QueryBody{Query: to(q)}
	if span != "" {
		body.Timespan = &span
	}
	resp, err := c.QueryWorkspace(ctx(t), workspace, body, nil)
	if err != nil {
		t.Fatalf("QueryWorkspace: %v", err)
	}
	if resp.Error != nil || len(resp.Tables) != 1 || *resp.Tables[0].Name != "PrimaryResult" {
		t.Fatalf("result: %+v", resp.QueryResults)
	}
	tbl := resp.Tables[0]
	var cols []string
	for _, col := range tbl.Columns {
		cols = append(cols, *col.Name+":"+string(*col.Type))
	}
	if got := strings.Join(cols, ","); got != "ObjectId:string,AppId:string,CallerIpAddress:string,Id:string,LastRead:datetime,Reads:long" {
		t.Fatalf("columns %s", got)
	}
	var out []readRow
	for _, row := range tbl.Rows {
		last, err := time.Parse(time.RFC3339Nano, row[4].(string))
		if err != nil || !strings.HasSuffix(row[4].(string), "Z") {
			t.Fatalf("LastRead %v: %v", row[4], err)
		}
		out = append(out, readRow{row[0].(string), row[1].(string), row[2].(string), row[3].(string), last, int(row[5].(float64))})
	}
	return out
}

// findRead returns the row for an identity and an id.
func findRead(rows []readRow, objectID, id string) (readRow, bool) {
	for _, r := range rows {
		if r.ObjectID == objectID && r.ID == id {
			return r, true
		}
	}
	return readRow{}, false
}

// lastAuditTime is the TimeGenerated of the latest successful SecretGet of id by objectID.
func lastAuditTime(srv *emulator.Server, objectID, id string) time.Time {
	var last time.Time
	for _, r := range srv.AuditLog() {
		if r.OperationName == "SecretGet" && r.HTTPStatusCode == 200 && r.ID == id && r.Identity.Claim[emulator.ClaimObjectID] == objectID && r.TimeGenerated.After(last) {
			last = r.TimeGenerated
		}
	}
	return last
}

// TestEmulatorLogsQueryWithAzlogs: two identities read a secret, one the latest version and one an
// old version by id; kvrotator's queries, sent by the real azlogs client, return them with the
// versions served, counted, within the timespan, on the vault clock.
func TestEmulatorLogsQueryWithAzlogs(t *testing.T) {
	ids := rbacIdentities() // system (officer everywhere), reader, user, officer
	monitor := emulator.IdentityConfig{Name: "monitor", ClientID: "eeeeeeee-0000-4000-8000-000000000001", ObjectID: "ffffffff-0000-4000-8000-000000000001", Managed: true}
	ids = append(ids, monitor)
	srv := start(t, func(c *emulator.Config) {
		c.Identities = ids
		c.Vaults = append(c.Vaults, emulator.VaultConfig{Name: "othervault"})
		c.LogReaders = []string{monitor.ClientID}
	})
	if srv.WorkspaceID() != emulator.DefaultWorkspaceID || srv.LogsEndpoint() != srv.URL()+"/v1" {
		t.Fatalf("workspace %s, endpoint %s", srv.WorkspaceID(), srv.LogsEndpoint())
	}
	admin := newClient(t, srv, "myvault")
	v1, err := admin.SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("one")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := admin.SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("two")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SetSecret(ctx(t), "api-key", azsecrets.SetSecretParameters{Value: to("k")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := newClient(t, srv, "othervault").SetSecret(ctx(t), "db-password", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatal(err)
	}
	base := srv.VaultURL("myvault")
	user, _ := azsecrets.NewClient(base, managedIdentity(t, srv, ids[2].ClientID), clientOptions(srv))
	officer, _ := azsecrets.NewClient(base, managedIdentity(t, srv, ids[3].ClientID), clientOptions(srv))
	for range 2 {
		if _, err := user.GetSecret(ctx(t), "db-password", "", nil); err != nil { // the latest: v2
			t.Fatal(err)
		}
	}
	if _, err := officer.GetSecret(ctx(t), "db-password", v1.ID.Version(), nil); err != nil { // an old version by id
		t.Fatal(err)
	}
	if _, err := user.GetSecret(ctx(t), "api-key", "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := user.GetSecret(ctx(t), "db-password", "0123456789abcdef0123456789abcdef", nil); err == nil { // 404: not a read
		t.Fatal("unknown version found")
	}
	otherVault, _ := azsecrets.NewClient(srv.VaultURL("othervault"), managedIdentity(t, srv, ""), clientOptions(srv))
	if _, err := otherVault.GetSecret(ctx(t), "db-password", "", nil); err != nil { // another vault: not in the result
		t.Fatal(err)
	}

	logs := logsClient(t, srv, managedIdentity(t, srv, monitor.ClientID))
	now := srv.Now()
	span := azlogs.NewTimeInterval(now.Add(-time.Hour), now.Add(time.Minute))
	rows := queryReads(t, logs, srv.WorkspaceID(), readsOfSecret, span)
	if len(rows) != 2 {
		t.Fatalf("rows %+v, want the two readers of db-password", rows)
	}
	latestID, oldID := base+"/secrets/db-password/"+v2.ID.Version(), base+"/secrets/db-password/"+v1.ID.Version()
	a, okA := findRead(rows, ids[2].ObjectID, latestID)
	b, okB := findRead(rows, ids[3].ObjectID, oldID)
	if !okA || !okB || a.AppID != ids[2].ClientID || b.AppID != ids[3].ClientID || a.Reads != 2 || b.Reads != 1 ||
		a.IP != "127.0.0.1" || b.IP != "127.0.0.1" {
		t.Fatalf("rows %+v\nwant %s reading %s twice and %s reading %s once", rows, ids[2].Name, latestID, ids[3].Name, oldID)
	}
	if !a.LastRead.Equal(lastAuditTime(srv, ids[2].ObjectID, latestID)) || a.LastRead.Before(now.Add(-time.Minute)) || a.LastRead.After(now) {
		t.Fatalf("LastRead %v, audit log %v, vault now %v", a.LastRead, lastAuditTime(srv, ids[2].ObjectID, latestID), now)
	}
	// Every secret of the vault: api-key too, othervault never.
	rows = queryReads(t, logs, srv.WorkspaceID(), readsOfVault, span)
	if len(rows) != 3 {
		t.Fatalf("whole-vault rows %+v", rows)
	}
	if _, ok := findRead(rows, ids[2].ObjectID, base+"/secrets/api-key/"+mustVersion(t, srv, "api-key")); !ok {
		t.Fatalf("api-key read missing: %+v", rows)
	}
	// No timespan: everything.
	if rows := queryReads(t, logs, srv.WorkspaceID(), readsOfVault, ""); len(rows) != 3 {
		t.Fatalf("without timespan: %+v", rows)
	}

	// A timespan that ends before the reads sees none; one that starts after them neither.
	if rows := queryReads(t, logs, srv.WorkspaceID(), readsOfSecret, azlogs.NewTimeInterval(now.Add(-2*time.Hour), now.Add(-time.Hour))); len(rows) != 0 {
		t.Fatalf("earlier timespan: %+v", rows)
	}
	if rows := queryReads(t, logs, srv.WorkspaceID(), readsOfSecret, azlogs.NewTimeInterval(now.Add(time.Second), now.Add(time.Hour))); len(rows) != 0 {
		t.Fatalf("later timespan: %+v", rows)
	}

	// The vault clock moves TimeGenerated: a read after advancing 30 days is dated 30 days on, and a
	// timespan around the new time sees only it.
	srv.Advance(30 * 24 * time.Hour)
	later := srv.Now()
	if _, err := user.GetSecret(ctx(t), "db-password", "", nil); err != nil {
		t.Fatal(err)
	}
	rows = queryReads(t, logs, srv.WorkspaceID(), readsOfSecret, azlogs.NewTimeInterval(later.Add(-time.Minute), later.Add(time.Hour)))
	if len(rows) != 1 || rows[0].ObjectID != ids[2].ObjectID || rows[0].Reads != 1 || rows[0].LastRead.Before(later.Add(-time.Second)) ||
		rows[0].LastRead.Sub(now) < 29*24*time.Hour {
		t.Fatalf("after advancing the vault clock: %+v (before: %v)", rows, now)
	}
	// A duration ending now (vault clock), and <start>/<duration>.
	if rows := queryReads(t, logs, srv.WorkspaceID(), readsOfSecret, "PT1H"); len(rows) != 1 || rows[0].Reads != 1 {
		t.Fatalf("PT1H: %+v", rows)
	}
	if rows := queryReads(t, logs, srv.WorkspaceID(), readsOfSecret, azlogs.TimeInterval(now.Add(-time.Hour).Format(time.RFC3339)+"/P1D")); len(rows) != 2 {
		t.Fatalf("start/P1D: %+v", rows)
	}

	// Statistics on request.
	resp, err := logs.QueryWorkspace(ctx(t), srv.WorkspaceID(), azlogs.QueryBody{Query: to("AZKVAuditLogs | take 1")},
		&azlogs.QueryWorkspaceOptions{Options: &azlogs.QueryOptions{Statistics: to(true), Wait: to(60)}})
	if err != nil || len(resp.Statistics) == 0 || len(resp.Tables[0].Rows) != 1 {
		t.Fatalf("statistics: %v %s", err, resp.Statistics)
	}
	// Every column of a record, typed.
	resp, err = logs.QueryWorkspace(ctx(t), srv.WorkspaceID(), azlogs.QueryBody{Query: to(`AZKVAuditLogs | where Id == "` + oldID + `" and OperationName == "SecretGet" and HttpStatusCode == 200 | take 1`)}, nil)
	if err != nil || len(resp.Tables[0].Rows) != 1 {
		t.Fatalf("full record: %v", err)
	}
	rec := map[string]any{}
	for i, col := range resp.Tables[0].Columns {
		rec[*col.Name] = resp.Tables[0].Rows[0][i]
		if *col.Name == "HttpStatusCode" && *col.Type != azlogs.ColumnTypeInt || *col.Name == "Identity" && *col.Type != azlogs.ColumnTypeDynamic {
			t.Errorf("column %s is %s", *col.Name, *col.Type)
		}
	}
	var ident struct {
		Claim map[string]string `json:"claim"`
	}
	if s, ok := rec["Identity"].(string); !ok || json.Unmarshal([]byte(s), &ident) != nil || ident.Claim[emulator.ClaimObjectID] != ids[3].ObjectID {
		t.Errorf("Identity %v", rec["Identity"])
	}
	if rec["HttpStatusCode"] != float64(200) || rec["OperationName"] != "SecretGet" || rec["ResultSignature"] != "OK" ||
		!strings.HasPrefix(rec["_ResourceId"].(string), "/subscriptions/") || rec["RequestUri"] == "" {
		t.Errorf("record %v", rec)
	}
}

func mustVersion(t *testing.T, srv *emulator.Server, name string) string {
	t.Helper()
	for _, r := range srv.AuditLog() {
		if r.OperationName == "SecretSet" && r.HTTPStatusCode == 200 && strings.Contains(r.ID, "/secrets/"+name+"/") {
			return r.ID[strings.LastIndex(r.ID, "/")+1:]
		}
	}
	t.Fatalf("no version of %s", name)
	return ""
}

// tokenCredential returns a fixed token.
type tokenCredential string

func (c tokenCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestEmulatorLogsQueryErrors: 401 without a Log Analytics token, 403 for identities not allowed to
// read logs, 404 for unknown workspaces, 400 for queries outside the supported subset.
func TestEmulatorLogsQueryErrors(t *testing.T) {
	ids := rbacIdentities()
	const ws2 = "0d9b2c4e-1111-4222-8333-444455556666"
	srv := start(t, func(c *emulator.Config) {
		c.Identities = ids
		c.Workspaces = []string{"AAAAAAAA-1111-4222-8333-444455556666", ws2}
		c.LogReaders = []string{ids[0].ObjectID, ids[1].ClientID}
	})
	if srv.WorkspaceID() != "aaaaaaaa-1111-4222-8333-444455556666" {
		t.Fatalf("workspace %s", srv.WorkspaceID())
	}
	statusOf := func(err error) (int, string) {
		t.Helper()
		var re *azcore.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("want a ResponseError, got %v", err)
		}
		return re.StatusCode, re.ErrorCode
	}
	q := azlogs.QueryBody{Query: to("AZKVAuditLogs | take 5")}

	// Allowed readers: by object id (the system identity) and by client id (reader), in either workspace.
	for _, clientID := range []string{"", ids[1].ClientID} {
		if _, err := logsClient(t, srv, managedIdentity(t, srv, clientID)).QueryWorkspace(ctx(t), ws2, q, nil); err != nil {
			t.Fatalf("log reader %q: %v", clientID, err)
		}
	}
	// 403: a Key Vault Secrets User is no log reader.
	_, err := logsClient(t, srv, managedIdentity(t, srv, ids[2].ClientID)).QueryWorkspace(ctx(t), srv.WorkspaceID(), q, nil)
	if st, code := statusOf(err); st != 403 || code != "InsufficientAccessError" {
		t.Fatalf("not a log reader: %d %s", st, code)
	}
	// 401: a vault token is not a Log Analytics token; neither is an expired or foreign one.
	vaultTok, _ := srv.IssueToken(ids[0].ClientID, "https://vault.azure.net", time.Hour)
	expired, _ := srv.IssueToken(ids[0].ClientID, emulator.LogsAudience, -time.Minute)
	forged, _ := start(t, func(c *emulator.Config) { c.KeyDir = t.TempDir() }).IssueToken(emulator.DefaultIdentity().ClientID, emulator.LogsAudience, time.Hour)
	for name, tok := range map[string]string{"vault audience": vaultTok, "expired": expired, "other signer": forged, "garbage": "x.y.z"} {
		_, err := logsClient(t, srv, tokenCredential(tok)).QueryWorkspace(ctx(t), srv.WorkspaceID(), q, nil)
		if st, code := statusOf(err); st != 401 || code != "AuthenticationFailed" {
			t.Errorf("%s: %d %s", name, st, code)
		}
		if strings.Contains(err.Error(), tok) {
			t.Errorf("%s: the error echoes the token", name)
		}
	}
	// No token at all: the challenge names the resource.
	req, _ := http.NewRequest(http.MethodPost, srv.LogsEndpoint()+"/workspaces/"+srv.WorkspaceID()+"/query", strings.NewReader(`{"query":"AZKVAuditLogs"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	chal := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != 401 || !strings.HasPrefix(chal, "Bearer authorization_uri=") || !strings.Contains(chal, `resource="https://api.loganalytics.io"`) ||
		!strings.Contains(string(body), `"code":"AuthenticationFailed"`) {
		t.Fatalf("no token: %d %q %s", resp.StatusCode, chal, body)
	}

	logs := logsClient(t, srv, managedIdentity(t, srv, ""))
	// 404: a workspace the emulator does not serve.
	_, err = logs.QueryWorkspace(ctx(t), "12345678-1234-4234-8234-123456789012", q, nil)
	if st, code := statusOf(err); st != 404 || code != "PathNotFoundError" {
		t.Fatalf("unknown workspace: %d %s", st, code)
	}
	// 400: unsupported constructs are named, with a SyntaxError inner error.
	for query, construct := range map[string]string{
		"AZKVAuditLogs | join (AZKVAuditLogs) on Id":           "'join'",
		"AZKVAuditLogs | summarize sum(DurationMs)":            "'sum()'",
		"AZKVAuditLogs | where Id matches regex 'x'":           "'matches'",
		"AZKVAuditLogs | where OperationName = 'SecretGet'":    "'='",
		"AzureDiagnostics | where ResourceType == 'VAULTS'":    "AzureDiagnostics",
		"AZKVAuditLogs | where NoSuchColumn == 1":              "NoSuchColumn",
		"AZKVAuditLogs | extend X = parse_json(Identity)":      "parse_json()",
		"AZKVAuditLogs\n| where Id == 'x'\n| render timechart": "'render'",
	} {
		_, err := logs.QueryWorkspace(ctx(t), srv.WorkspaceID(), azlogs.QueryBody{Query: to(query)}, nil)
		st, code := statusOf(err)
		if st != 400 || code != "BadArgumentError" || !strings.Contains(err.Error(), construct) {
			t.Errorf("%q: %d %s, want 400 BadArgumentError naming %s:\n%v", query, st, code, construct, err)
		}
		var re *azcore.ResponseError
		errors.As(err, &re)
		var e struct {
			Error struct {
				InnerError struct{ Code, Message string } `json:"innererror"`
			} `json:"error"`
		}
		b, _ := io.ReadAll(re.RawResponse.Body)
		if json.Unmarshal(b, &e) != nil || (e.Error.InnerError.Code != "SyntaxError" && e.Error.InnerError.Code != "SemanticError") {
			t.Errorf("%q: inner error %s", query, b)
		}
		if strings.Contains(query, "join") && e.Error.InnerError.Code != "SyntaxError" {
			t.Errorf("join: inner error %s, want SyntaxError", e.Error.InnerError.Code)
		}
	}
	// A bad timespan is a 400 too.
	bad := azlogs.TimeInterval("yesterday/today")
	_, err = logs.QueryWorkspace(ctx(t), srv.WorkspaceID(), azlogs.QueryBody{Query: to("AZKVAuditLogs"), Timespan: &bad}, nil)
	if st, code := statusOf(err); st != 400 || code != "BadArgumentError" {
		t.Fatalf("bad timespan: %d %s", st, code)
	}
	if _, err := emulator.New(emulator.Config{Vaults: []emulator.VaultConfig{{Name: "myvault"}}, Workspaces: []string{"not-a-guid"}}); err == nil {
		t.Fatal("a workspace id that is no GUID was accepted")
	}
}

// TestEmulatorLogsQueryResource: azlogs' QueryResource on a vault's ARM id sees that vault's records only.
func TestEmulatorLogsQueryResource(t *testing.T) {
	srv := start(t, func(c *emulator.Config) { c.Vaults = append(c.Vaults, emulator.VaultConfig{Name: "othervault"}) })
	for _, v := range []string{"myvault", "othervault", "othervault"} {
		if _, err := newClient(t, srv, v).SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	logs := logsClient(t, srv, managedIdentity(t, srv, ""))
	q := azlogs.QueryBody{Query: to(`AZKVAuditLogs | where OperationName == "SecretSet" and HttpStatusCode == 200 | summarize n = count() by _ResourceId`)}
	resp, err := logs.QueryResource(ctx(t), "/subscriptions/"+emulator.DefaultSubscriptionID+"/resourceGroups/kvrotator-emulator/providers/Microsoft.KeyVault/vaults/othervault", q, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rows := resp.Tables[0].Rows; len(rows) != 1 || !strings.HasSuffix(rows[0][0].(string), "/vaults/othervault") || rows[0][1] != float64(2) {
		t.Fatalf("rows %v", rows)
	}
	_, err = logs.QueryResource(ctx(t), "/subscriptions/"+emulator.DefaultSubscriptionID+"/resourceGroups/kvrotator-emulator/providers/Microsoft.KeyVault/vaults/nope", q, nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 404 {
		t.Fatalf("unknown vault: %v", err)
	}
	// The workspace sees both vaults.
	resp2, err := logs.QueryWorkspace(ctx(t), srv.WorkspaceID(), q, nil)
	if err != nil || len(resp2.Tables[0].Rows) != 2 {
		t.Fatalf("workspace: %v %v", err, resp2.Tables)
	}
}

// TestEmulatorLogsQueryNoAuth: in no-auth mode the audit log records requests without identity and
// the query endpoint needs no token (plain HTTP, so raw requests rather than azlogs, which insists on TLS).
func TestEmulatorLogsQueryNoAuth(t *testing.T) {
	srv := start(t, func(c *emulator.Config) { c.NoAuth = true })
	c, _ := azsecrets.NewClient(srv.VaultURL("myvault"), nil, clientOptions(srv))
	if _, err := c.SetSecret(ctx(t), "s", azsecrets.SetSecretParameters{Value: to("x")}, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(srv.LogsEndpoint()+"/workspaces/"+srv.WorkspaceID()+"/query", "application/json",
		strings.NewReader(`{"query":"AZKVAuditLogs | project OperationName, HttpStatusCode, Identity"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Tables []struct {
			Rows [][]any `json:"rows"`
		} `json:"tables"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if rows := out.Tables[0].Rows; len(rows) != 1 || rows[0][0] != "SecretSet" || rows[0][1] != float64(200) || rows[0][2] != "{}" {
		t.Fatalf("rows %v", rows)
	}
}
