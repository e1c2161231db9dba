package emulator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/kvrotator/kvrotator/emulator/internal/authn"
	"github.com/kvrotator/kvrotator/emulator/internal/kql"
)

// The Log Analytics query API (api.loganalytics.io, API version 2022-10-27), on the shared listener,
// as the azlogs client calls it:
//
//	POST /v1/workspaces/{workspaceId}/query         {"query":"…","timespan":"<start>/<end>"}
//	GET  /v1/workspaces/{workspaceId}/query?query=…&timespan=…
//	POST /v1/{vault ARM id}/query                   the same, over that vault's records only (QueryResource)
//
// The caller needs an emulator token for LogsAudience (401 AuthenticationFailed otherwise) and, when
// Config.LogReaders is set, must be one of them (403 InsufficientAccessError). Every workspace holds
// the audit records of every vault in one table, AZKVAuditLogs; queries use the KQL subset of package
// internal/kql. The timespan (ISO 8601: start/end, start/duration, duration/end or a duration ending
// now on the vault clock) keeps records with start <= TimeGenerated < end. A Prefer header with
// include-statistics=true adds statistics; wait=… is accepted and ignored.

// LogsAudience is the audience of tokens for the query endpoint, as for Azure Monitor Logs.
const LogsAudience = "https://api.loganalytics.io"

// DefaultWorkspaceID is the workspace served when Config.Workspaces names none.
const DefaultWorkspaceID = "4b7e5c1a-0000-4000-8000-00000000a0d1"

// auditTable is the table name the audit records are queried by.
const auditTable = "AZKVAuditLogs"

// auditColumns is the AZKVAuditLogs schema the emulator fills.
var auditColumns = []kql.Column{
	{Name: "TimeGenerated", Type: kql.Datetime},
	{Name: "OperationName", Type: kql.String},
	{Name: "OperationVersion", Type: kql.String},
	{Name: "ResultType", Type: kql.String},
	{Name: "ResultSignature", Type: kql.String},
	{Name: "DurationMs", Type: kql.Long},
	{Name: "CallerIpAddress", Type: kql.String},
	{Name: "CorrelationId", Type: kql.String},
	{Name: "Identity", Type: kql.Dynamic},
	{Name: "Id", Type: kql.String},
	{Name: "RequestUri", Type: kql.String},
	{Name: "HttpStatusCode", Type: kql.Int},
	{Name: "ClientInfo", Type: kql.String},
	{Name: "_ResourceId", Type: kql.String},
	{Name: "Type", Type: kql.String},
}

func (r AuditRecord) row() []any {
	return []any{r.TimeGenerated, r.OperationName, r.OperationVersion, r.ResultType, r.ResultSignature, r.DurationMs,
		r.CallerIPAddress, r.CorrelationID, r.Identity.dynamic(), r.ID, r.RequestURI, int64(r.HTTPStatusCode), r.ClientInfo,
		r.ResourceID, auditTable}
}

// dynamic is the Identity column as the query engine sees it.
func (id AuditIdentity) dynamic() map[string]any {
	out := map[string]any{}
	if id.Claim != nil {
		claims := make(map[string]any, len(id.Claim))
		for k, v := range id.Claim {
			claims[k] = v
		}
		out["claim"] = claims
	}
	return out
}

// LogsEndpoint is the Log Analytics query endpoint (URL() + "/v1"), for the azlogs client's cloud
// configuration: Services[azlogs.ServiceName] = {Audience: LogsAudience, Endpoint: LogsEndpoint()}.
func (s *Server) LogsEndpoint() string { return s.mainURL + "/v1" }

// WorkspaceID is the first configured workspace (DefaultWorkspaceID unless Config.Workspaces is set).
func (s *Server) WorkspaceID() string { return s.cfg.Workspaces[0] }

// logsError is the Log Analytics API's error envelope.
type logsError struct {
	status  int
	code    string
	message string
	inner   string // innererror code, optional
}

func writeLogsError(w http.ResponseWriter, e *logsError) {
	type detail struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	type body struct {
		Code          string  `json:"code"`
		Message       string  `json:"message"`
		CorrelationID string  `json:"correlationId"`
		InnerError    *detail `json:"innererror,omitempty"`
	}
	b := body{Code: e.code, Message: e.message, CorrelationID: uuid.NewString()}
	if e.inner != "" {
		b.InnerError = &detail{Code: e.inner, Message: e.message}
	}
	writeJSON(w, e.status, map[string]body{"error": b})
}

// serveLogs serves /v1/...
func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status := 0
	defer func() {
		s.log.Info("log analytics query", "path", r.URL.Path, "status", status, "ms", time.Since(start).Milliseconds())
	}()
	fail := func(e *logsError) {
		status = e.status
		writeLogsError(w, e)
	}
	rest := strings.TrimPrefix(r.URL.Path, "/v1/")
	var resourceID string // set for a query scoped to one vault
	switch {
	case strings.HasPrefix(rest, "workspaces/") && strings.HasSuffix(rest, "/query"):
		ws := strings.TrimSuffix(strings.TrimPrefix(rest, "workspaces/"), "/query")
		if !s.knownWorkspace(ws) {
			fail(&logsError{status: http.StatusNotFound, code: "PathNotFoundError",
				message: fmt.Sprintf("The requested path does not exist: workspace '%s' is not served by this emulator (workspaces: %s).", ws, strings.Join(s.cfg.Workspaces, ", "))})
			return
		}
	case strings.HasPrefix(strings.ToLower(rest), "subscriptions/") && strings.HasSuffix(rest, "/query"):
		resourceID = "/" + strings.ToLower(strings.TrimSuffix(rest, "/query"))
		if !s.knownVaultResource(resourceID) {
			fail(&logsError{status: http.StatusNotFound, code: "PathNotFoundError",
				message: fmt.Sprintf("The requested path does not exist: no vault of this emulator has the resource id '%s'.", resourceID)})
			return
		}
	default:
		fail(&logsError{status: http.StatusNotFound, code: "PathNotFoundError",
			message: "The requested path does not exist. Use POST /v1/workspaces/{workspaceId}/query."})
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		fail(&logsError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", message: "Use POST (or GET) on the query path."})
		return
	}
	if s.issuer != nil {
		if e := s.authenticateLogs(w, r); e != nil {
			fail(e)
			return
		}
	}

	var body struct {
		Query    *string  `json:"query"`
		Timespan string   `json:"timespan"`
		Other    []string `json:"workspaces"`
	}
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		if v, ok := q["query"]; ok {
			body.Query = &v[0]
		}
		body.Timespan = q.Get("timespan")
	} else {
		raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
		if err != nil || len(raw) > 1<<20 {
			fail(&logsError{status: http.StatusBadRequest, code: "BadArgumentError", message: "The request body could not be read or is larger than 1 MB."})
			return
		}
		if err := json.Unmarshal(raw, &body); err != nil {
			fail(&logsError{status: http.StatusBadRequest, code: "BadArgumentError", message: `The request body must be JSON: {"query":"…","timespan":"…"}.`})
			return
		}
	}
	if body.Query == nil || strings.TrimSpace(*body.Query) == "" {
		fail(&logsError{status: http.StatusBadRequest, code: "BadArgumentError", message: "The request had some invalid properties: 'query' is required."})
		return
	}
	for _, ws := range body.Other {
		if !s.knownWorkspace(ws) {
			fail(&logsError{status: http.StatusBadRequest, code: "BadArgumentError", inner: "WorkspaceNotFoundError",
				message: fmt.Sprintf("The additional workspace '%s' is not served by this emulator.", ws)})
			return
		}
	}
	from, to, err := parseTimespan(body.Timespan, s.clock.Now())
	if err != nil {
		fail(&logsError{status: http.StatusBadRequest, code: "BadArgumentError", inner: "InvalidTimespan", message: err.Error()})
		return
	}
	q, err := kql.Parse(*body.Query)
	if err == nil && q.Table() != auditTable {
		err = &kql.Error{Kind: "SemanticError", Message: fmt.Sprintf("Failed to resolve table expression named '%s': the emulator serves the table %s only.", q.Table(), auditTable)}
	}
	var in kql.Table
	var out kql.Table
	if err == nil {
		in = kql.Table{Columns: auditColumns}
		for _, rec := range s.AuditLog() {
			if (!from.IsZero() && rec.TimeGenerated.Before(from)) || (!to.IsZero() && !rec.TimeGenerated.Before(to)) {
				continue
			}
			if resourceID != "" && rec.ResourceID != resourceID {
				continue
			}
			in.Rows = append(in.Rows, rec.row())
		}
		out, err = q.Run(in, kql.Env{Now: s.clock.Now()})
	}
	if err != nil {
		var kerr *kql.Error
		if errors.As(err, &kerr) {
			fail(&logsError{status: http.StatusBadRequest, code: "BadArgumentError", inner: kerr.Kind, message: kerr.Message})
		} else {
			fail(&logsError{status: http.StatusInternalServerError, code: "InternalServerError", message: "The query failed."})
		}
		return
	}

	type column struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	type table struct {
		Name    string   `json:"name"`
		Columns []column `json:"columns"`
		Rows    [][]any  `json:"rows"`
	}
	res := table{Name: "PrimaryResult", Columns: make([]column, len(out.Columns)), Rows: make([][]any, len(out.Rows))}
	for i, c := range out.Columns {
		res.Columns[i] = column{Name: c.Name, Type: string(c.Type)}
	}
	for i, row := range out.Rows {
		vals := make([]any, len(row))
		for j, v := range row {
			vals[j] = kql.FormatValue(v, out.Columns[j].Type)
		}
		res.Rows[i] = vals
	}
	answer := map[string]any{"tables": []table{res}}
	prefer := parsePrefer(r.Header.Get("Prefer"))
	var applied []string
	if prefer["include-statistics"] == "true" {
		applied = append(applied, "include-statistics=true")
		answer["statistics"] = map[string]any{"query": map[string]any{
			"executionTime":     time.Since(start).Seconds(),
			"datasetStatistics": []map[string]int{{"tableRowCount": len(out.Rows), "tableSize": 0}},
			"inputDatasetStatistics": map[string]any{
				"extents": map[string]int{"total": 1, "scanned": 1},
				"rows":    map[string]int{"total": len(in.Rows), "scanned": len(in.Rows)},
			},
		}}
	}
	if v, ok := prefer["wait"]; ok {
		applied = append(applied, "wait="+v)
	}
	if len(applied) > 0 {
		w.Header().Set("Preference-Applied", strings.Join(applied, ","))
	}
	status = http.StatusOK
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) knownWorkspace(id string) bool {
	for _, ws := range s.cfg.Workspaces {
		if strings.EqualFold(ws, id) {
			return true
		}
	}
	return false
}

func (s *Server) knownVaultResource(id string) bool {
	for _, v := range s.vaultList() {
		if strings.ToLower(s.vaultResourceID(v)) == id {
			return true
		}
	}
	return false
}

// authenticateLogs checks the bearer token (an emulator token for LogsAudience) and LogReaders.
func (s *Server) authenticateLogs(w http.ResponseWriter, r *http.Request) *logsError {
	unauthorized := func(msg string) *logsError {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s/%s", error="invalid_token", error_description="%s", resource="%s"`,
			s.cfg.Authority, s.cfg.TenantID, strings.ReplaceAll(msg, `"`, "'"), LogsAudience))
		return &logsError{status: http.StatusUnauthorized, code: "AuthenticationFailed", message: msg}
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return unauthorized("Authentication failed. The 'Authorization' header is missing a Bearer token.")
	}
	p, err := s.issuer.Validate(strings.TrimSpace(token), []string{LogsAudience}, time.Now())
	switch {
	case errors.Is(err, authn.ErrExpired):
		return unauthorized("Authentication failed. The access token has expired.")
	case errors.Is(err, authn.ErrAudience):
		return unauthorized("Authentication failed. The access token's audience is not " + LogsAudience + ".")
	case errors.Is(err, authn.ErrSignature):
		return unauthorized("Authentication failed. The access token was not issued by this emulator.")
	case err != nil:
		return unauthorized("Authentication failed. The access token is malformed.")
	}
	if len(s.cfg.LogReaders) == 0 {
		return nil
	}
	for _, reader := range s.cfg.LogReaders {
		if strings.EqualFold(reader, p.ClientID) || strings.EqualFold(reader, p.ObjectID) {
			return nil
		}
	}
	return &logsError{status: http.StatusForbidden, code: "InsufficientAccessError",
		message: fmt.Sprintf("The provided credentials have insufficient access to perform the requested operation: appid=%s;oid=%s is not a log reader of this emulator (Config.LogReaders).", p.ClientID, p.ObjectID)}
}

// parsePrefer reads a Prefer header: comma-separated key=value preferences.
func parsePrefer(h string) map[string]string {
	out := map[string]string{}
	for part := range strings.SplitSeq(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		if k != "" {
			out[strings.ToLower(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// parseTimespan reads an ISO 8601 interval: "<start>/<end>", "<start>/<duration>", "<duration>/<end>"
// or "<duration>" (ending now). Empty means no bounds (zero times).
func parseTimespan(ts string, now time.Time) (from, to time.Time, err error) {
	ts = strings.TrimSpace(ts)
	if ts == "" {
		return time.Time{}, time.Time{}, nil
	}
	bad := func(why string) (time.Time, time.Time, error) {
		return time.Time{}, time.Time{}, fmt.Errorf("the timespan %q is not valid: %s (use ISO 8601: <start>/<end>, <start>/<duration>, <duration>/<end> or a duration such as PT1H)", ts, why)
	}
	a, b, interval := strings.Cut(ts, "/")
	if !interval {
		d, ok := parseISODuration(a)
		if !ok {
			return bad("not a duration")
		}
		return now.Add(-d), now, nil
	}
	ta, errA := parseInstant(a)
	tb, errB := parseInstant(b)
	switch {
	case errA == nil && errB == nil:
		from, to = ta, tb
	case errA == nil:
		d, ok := parseISODuration(b)
		if !ok {
			return bad("the end is neither a date-time nor a duration")
		}
		from, to = ta, ta.Add(d)
	case errB == nil:
		d, ok := parseISODuration(a)
		if !ok {
			return bad("the start is neither a date-time nor a duration")
		}
		from, to = tb.Add(-d), tb
	default:
		return bad("neither side is a date-time")
	}
	if to.Before(from) {
		return bad("it ends before it starts")
	}
	return from, to, nil
}

func parseInstant(s string) (time.Time, error) {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(l, strings.TrimSpace(s)); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New("not a date-time")
}

// parseISODuration reads an ISO 8601 duration of weeks, days, hours, minutes and seconds
// (P1W, P1D, PT1H, P1DT2H30M, PT0.5S). Years and months have no fixed length and are refused.
func parseISODuration(s string) (time.Duration, bool) {
	s = strings.ToUpper(strings.TrimSpace(s))
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, false
	}
	var d time.Duration
	inTime := false
	units := 0
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, false
			}
			inTime = true
			rest = rest[1:]
			continue
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.' || rest[i] == ',') {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, false
		}
		n, err := strconv.ParseFloat(strings.ReplaceAll(rest[:i], ",", "."), 64)
		if err != nil {
			return 0, false
		}
		var unit time.Duration
		switch c := rest[i]; {
		case !inTime && c == 'W':
			unit = 7 * 24 * time.Hour
		case !inTime && c == 'D':
			unit = 24 * time.Hour
		case inTime && c == 'H':
			unit = time.Hour
		case inTime && c == 'M':
			unit = time.Minute
		case inTime && c == 'S':
			unit = time.Second
		default:
			return 0, false
		}
		d += time.Duration(n * float64(unit))
		units++
		rest = rest[i+1:]
	}
	return d, units > 0
}

// workspaceIDs validates configured workspace ids (GUIDs).
func workspaceIDs(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return []string{DefaultWorkspaceID}, nil
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		u, err := uuid.Parse(strings.TrimSpace(id))
		if err != nil {
			return nil, fmt.Errorf("workspace id %q is not a GUID", id)
		}
		out = append(out, u.String())
	}
	return out, nil
}
