package consumers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/query/azlogs"
	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// LogAnalyticsOptions configure a LogAnalytics usage reader.
type LogAnalyticsOptions struct {
	// Credential reads the workspace (the identity needs Log Analytics Reader on it) and tells
	// kvrotator's own identity, whose reads are left out.
	Credential azcore.TokenCredential
	// Workspace is the Log Analytics workspace id (a GUID) that receives the vaults' AuditEvent logs.
	Workspace string
	// Cloud selects the Log Analytics endpoint and audience (default: the public cloud); tests point it
	// at the Key Vault emulator's query endpoint.
	Cloud cloud.Configuration
	// Transport carries the requests (tests: the emulator's client).
	Transport policy.Transporter
	// VaultScope is the scope of a Key Vault token (default https://vault.azure.net/.default): kvrotator
	// decodes its own object id from one, to leave its own reads out.
	VaultScope string
	// Self are more object or application ids to leave out.
	Self   []string
	Logger *slog.Logger
}

// LogAnalytics implements rotation.Usage with Key Vault's audit log (table AZKVAuditLogs) in a Log
// Analytics workspace, through the azlogs client. One query per call; reads of kvrotator's own identity
// are left out.
type LogAnalytics struct {
	o      LogAnalyticsOptions
	client *azlogs.Client

	selfOnce sync.Once
	self     map[string]bool
}

var _ rotation.Usage = (*LogAnalytics)(nil)

// NewLogAnalytics checks the options and builds the client; it makes no network call.
func NewLogAnalytics(o LogAnalyticsOptions) (*LogAnalytics, error) {
	if o.Credential == nil {
		return nil, errors.New("consumers: the audit log needs a credential")
	}
	if !guid(o.Workspace) {
		return nil, fmt.Errorf("consumers: workspace %q: want the Log Analytics workspace id (a GUID, the workspace's customerId)", o.Workspace)
	}
	if o.VaultScope == "" {
		o.VaultScope = "https://vault.azure.net/.default"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	co := azcore.ClientOptions{Cloud: o.Cloud, Transport: o.Transport}
	if co.Cloud.Services == nil {
		co.Cloud = cloud.AzurePublic
	}
	client, err := azlogs.NewClient(o.Credential, &azlogs.ClientOptions{ClientOptions: co})
	if err != nil {
		return nil, fmt.Errorf("consumers: %w", err)
	}
	return &LogAnalytics{o: o, client: client}, nil
}

// Query is the KQL kvrotator sends for a secret's reads ("" secret: every secret of the vault): the
// successful SecretGet calls, per caller, address and secret id (with its version), with the last time.
// Vault and secret names are letters, digits and hyphens (checked), so nothing needs quoting.
func Query(vault, secret string) string {
	var b strings.Builder
	b.WriteString("AZKVAuditLogs\n")
	fmt.Fprintf(&b, "| where OperationName == \"SecretGet\" and HttpStatusCode == 200 and _ResourceId endswith \"/vaults/%s\"\n", vault)
	if secret != "" {
		fmt.Fprintf(&b, "| where Id contains \"/secrets/%s/\" or Id endswith \"/secrets/%s\"\n", secret, secret)
	}
	b.WriteString("| extend ObjectId = tostring(coalesce(Identity.claim.oid, Identity.claim[\"http://schemas.microsoft.com/identity/claims/objectidentifier\"])), AppId = tostring(Identity.claim.appid)\n")
	b.WriteString("| summarize LastRead = max(TimeGenerated), Reads = count() by ObjectId, AppId, CallerIpAddress, Id")
	return b.String()
}

// Reads implements rotation.Usage.
func (l *LogAnalytics) Reads(ctx context.Context, vault, secret string, from, to time.Time) ([]rotation.Read, error) {
	if !kvnames.Vault(vault) || (secret != "" && !kvnames.Secret(secret)) {
		return nil, providers.Permanent(fmt.Errorf("audit log: invalid vault or secret name"))
	}
	l.selfOnce.Do(func() { l.self = l.whoAmI(ctx) })
	q := Query(vault, secret)
	span := azlogs.NewTimeInterval(from.UTC(), to.UTC())
	resp, err := l.client.QueryWorkspace(ctx, l.o.Workspace, azlogs.QueryBody{Query: &q, Timespan: &span}, nil)
	if err != nil {
		return nil, classify("query the audit log", err)
	}
	if resp.Error != nil {
		// A partial result is still 200: an incomplete list of readers would revoke too early.
		return nil, fmt.Errorf("query the audit log: partial result (%s)", resp.Error.Code)
	}
	if len(resp.Tables) == 0 {
		return nil, nil
	}
	t := resp.Tables[0]
	col := map[string]int{}
	for i, c := range t.Columns {
		if c.Name != nil {
			col[*c.Name] = i
		}
	}
	for _, need := range []string{"ObjectId", "AppId", "CallerIpAddress", "Id", "LastRead", "Reads"} {
		if _, ok := col[need]; !ok {
			return nil, providers.Permanent(fmt.Errorf("query the audit log: the result has no %s column", need))
		}
	}
	var out []rotation.Read
	for _, row := range t.Rows {
		cell := func(name string) any {
			if i := col[name]; i < len(row) {
				return row[i]
			}
			return nil
		}
		oid, app := text(cell("ObjectId")), text(cell("AppId"))
		if l.self[strings.ToLower(oid)] || l.self[strings.ToLower(app)] {
			continue
		}
		name, version, ok := parseSecretID(text(cell("Id")))
		if !ok || (secret != "" && !strings.EqualFold(name, secret)) {
			continue
		}
		last, err := time.Parse(time.RFC3339Nano, text(cell("LastRead")))
		if err != nil {
			continue
		}
		reader := oid
		if reader == "" {
			reader = app
		}
		if reader == "" {
			reader = "unknown caller"
		}
		out = append(out, rotation.Read{Reader: reader, AppID: app, Address: text(cell("CallerIpAddress")), Secret: name, Version: version,
			Last: last.UTC(), Count: count(cell("Reads"))})
	}
	return out, nil
}

// whoAmI returns kvrotator's own ids (Options.Self and the object and application ids in a Key Vault
// token of its credential), lower case.
func (l *LogAnalytics) whoAmI(ctx context.Context) map[string]bool {
	self := map[string]bool{}
	for _, s := range l.o.Self {
		self[strings.ToLower(s)] = true
	}
	tok, err := l.o.Credential.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{l.o.VaultScope}})
	if err != nil {
		l.o.Logger.Warn("could not tell kvrotator's own identity; its own reads may count as a consumer's", "error", err.Error())
		return self
	}
	parts := strings.Split(tok.Token, ".")
	if len(parts) != 3 {
		return self
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return self
	}
	var claims struct {
		OID   string `json:"oid"`
		AppID string `json:"appid"`
		AZP   string `json:"azp"`
	}
	if json.Unmarshal(payload, &claims) == nil {
		for _, s := range []string{claims.OID, claims.AppID, claims.AZP} {
			if s != "" {
				self[strings.ToLower(s)] = true
			}
		}
	}
	return self
}

// parseSecretID reads https://{vault host}/secrets/{name}[/{version}].
func parseSecretID(id string) (name, version string, ok bool) {
	u, err := url.Parse(id)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 2 || len(parts) > 3 || !strings.EqualFold(parts[0], "secrets") || !kvnames.Secret(parts[1]) {
		return "", "", false
	}
	if len(parts) == 3 {
		version = parts[2]
	}
	return parts[1], version, true
}

func text(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func count(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

// guid reports whether s looks like a GUID.
func guid(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}
