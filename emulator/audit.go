package emulator

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultAuditLogSize is how many audit records the emulator keeps unless Config.AuditLogSize says
// otherwise; older records are dropped first.
const DefaultAuditLogSize = 100_000

// auditFile is the audit log's file in the data directory: one JSON record per line, appended as
// requests finish, compacted to the last AuditLogSize records when it grows to twice that.
const auditFile = "audit.jsonl"

// Claim names in AuditIdentity.Claim, as Key Vault writes them.
const (
	ClaimObjectID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	ClaimAppID    = "appid"
)

// AuditRecord is one data-plane request to a vault as Key Vault's resource log records it in the
// AZKVAuditLogs table of a Log Analytics workspace. The JSON names are the table's column names.
// It never holds a secret value or a token.
type AuditRecord struct {
	// TimeGenerated is the vault clock's time (Server.Now, UTC) when the request arrived.
	TimeGenerated time.Time `json:"TimeGenerated"`
	// OperationName is Key Vault's name of the operation: SecretGet, SecretSet, SecretList,
	// SecretListVersions, SecretUpdate, SecretDelete, SecretRecover, SecretPurge, SecretBackup,
	// SecretRestore, SecretListDeleted, SecretGetDeleted ("Unknown" for a path that is none).
	OperationName string `json:"OperationName"`
	// OperationVersion is the request's api-version.
	OperationVersion string `json:"OperationVersion"`
	// ResultType is "Success" for a 2xx status, else "Failure".
	ResultType string `json:"ResultType"`
	// ResultSignature is the status text without spaces: OK, Unauthorized, Forbidden, NotFound,
	// TooManyRequests…
	ResultSignature string `json:"ResultSignature"`
	// DurationMs is how long the emulator took to answer.
	DurationMs int64 `json:"DurationMs"`
	// CallerIPAddress is the client's IP address, without port.
	CallerIPAddress string `json:"CallerIpAddress"`
	// CorrelationID is the client's x-ms-client-request-id, else the emulator's x-ms-request-id.
	CorrelationID string `json:"CorrelationId"`
	// Identity holds the claims of the caller's validated token (empty when it sent none that was valid).
	Identity AuditIdentity `json:"Identity"`
	// ID is the object the request addressed, with the version actually served
	// (https://myvault.localhost:8443/secrets/db-password/0123abcd…, the latest version resolved);
	// for list operations the collection (…/secrets, …/secrets/NAME/versions, …/deletedsecrets). It is
	// built from the vault URL the request used, as the ids in the emulator's answers are.
	ID string `json:"Id"`
	// RequestURI is the full request URL, query included.
	RequestURI string `json:"RequestUri"`
	// HTTPStatusCode is the status answered (for a drop=after fault: the status the call had before
	// its answer was dropped).
	HTTPStatusCode int `json:"HttpStatusCode"`
	// ClientInfo is the User-Agent.
	ClientInfo string `json:"ClientInfo"`
	// ResourceID is the vault's ARM id in lower case:
	// /subscriptions/{sub}/resourcegroups/{rg}/providers/microsoft.keyvault/vaults/{name}.
	ResourceID string `json:"_ResourceId"`
}

// AuditIdentity is the Identity column: {"claim":{ClaimObjectID:"<oid>","appid":"<client id>"}}.
type AuditIdentity struct {
	Claim map[string]string `json:"claim,omitempty"`
}

// auditOperation maps the emulator's operation names (the azsecrets methods) to Key Vault's.
var auditOperation = map[string]string{
	opSet:          "SecretSet",
	opGet:          "SecretGet",
	opUpdate:       "SecretUpdate",
	opList:         "SecretList",
	opListVersions: "SecretListVersions",
	opDelete:       "SecretDelete",
	opGetDeleted:   "SecretGetDeleted",
	opListDeleted:  "SecretListDeleted",
	opPurge:        "SecretPurge",
	opRecover:      "SecretRecover",
	opBackup:       "SecretBackup",
	opRestore:      "SecretRestore",
}

// auditLog keeps the last size records in a ring, and appends them to a file when it has one.
// It is safe for concurrent use.
type auditLog struct {
	mu        sync.Mutex
	size      int // 0: the audit log is off
	ring      []AuditRecord
	next      int // where the next record goes once the ring is full
	path      string
	f         *os.File
	fileLines int
	failed    bool // a file error was logged; the log goes on in memory
	log       func(msg string, args ...any)
}

func newAuditLog(size int, dir string, logError func(string, ...any)) (*auditLog, error) {
	a := &auditLog{size: size, log: logError}
	if size <= 0 || dir == "" {
		return a, nil
	}
	a.path = filepath.Join(dir, auditFile)
	return a, a.load()
}

// load reads the records kept in the file (a torn last line, from a kill, is skipped) and compacts
// the file when it holds more than size records.
func (a *auditLog) load() error {
	f, err := os.Open(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	lines := 0
	for sc.Scan() {
		var rec AuditRecord
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		lines++
		a.push(rec)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	a.fileLines = lines
	if lines > a.size {
		return a.compactLocked()
	}
	return nil
}

// push adds rec to the ring; the caller holds mu (or owns a).
func (a *auditLog) push(rec AuditRecord) {
	if len(a.ring) < a.size {
		a.ring = append(a.ring, rec)
		return
	}
	a.ring[a.next] = rec
	a.next = (a.next + 1) % a.size
}

// add records rec (and appends it to the file, if any).
func (a *auditLog) add(rec AuditRecord) {
	if a == nil || a.size <= 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.push(rec)
	if a.path == "" || a.failed {
		return
	}
	line, err := json.Marshal(rec)
	if err == nil {
		err = a.appendLocked(append(line, '\n'))
	}
	if err == nil && a.fileLines >= 2*a.size {
		err = a.compactLocked()
	}
	if err != nil {
		a.failed = true
		a.log("audit log file failed; the audit log continues in memory only", "file", a.path, "error", err)
	}
}

func (a *auditLog) appendLocked(line []byte) error {
	if a.f == nil {
		f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		a.f = f
	}
	if _, err := a.f.Write(line); err != nil {
		return err
	}
	a.fileLines++
	return nil
}

// compactLocked rewrites the file with the records in the ring, atomically.
func (a *auditLog) compactLocked() error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, rec := range a.snapshotLocked() {
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	if a.f != nil {
		_ = a.f.Close()
		a.f = nil
	}
	if err := writeFileAtomic(a.path, buf.Bytes(), 0o600); err != nil {
		return err
	}
	a.fileLines = len(a.ring)
	return nil
}

func (a *auditLog) snapshotLocked() []AuditRecord {
	out := make([]AuditRecord, 0, len(a.ring))
	out = append(out, a.ring[a.next:]...)
	return append(out, a.ring[:a.next]...)
}

// snapshot returns the records, oldest first.
func (a *auditLog) snapshot() []AuditRecord {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.snapshotLocked()
}

// close closes the file; a later add opens it again.
func (a *auditLog) close() {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f != nil {
		_ = a.f.Close()
		a.f = nil
	}
}

// AuditLog returns the audit records kept (at most Config.AuditLogSize, default
// DefaultAuditLogSize), oldest first: every data-plane request to a vault that got an answer —
// successes and failures (401, 403, 404, 429, scripted faults), and writes whose answer a drop=after
// fault dropped. Requests for a host that names no vault, and requests dropped before they were
// applied (drop=true), are not recorded.
func (s *Server) AuditLog() []AuditRecord { return s.audit.snapshot() }

// auditEntry collects what the audit record of one vault request needs.
type auditEntry struct {
	arrived   time.Time // vault clock
	started   time.Time // wall clock
	requestID string
	identity  *IdentityConfig
	served    string // the object id with the version served; "" until known
	status    int    // set when a drop=after fault drops the answer
}

// recordAudit adds the audit record of a finished vault request.
func (s *Server) recordAudit(c *call, e *auditEntry, status int) {
	r := c.r
	op := c.op
	if op == "" {
		// Refused before routing (401, bad api-version): name the operation all the same.
		scratch := &call{}
		if route(scratch, r.Method, r.URL.Path) == nil {
			op = scratch.op
		}
	}
	opName := auditOperation[op]
	if opName == "" {
		opName = "Unknown"
	}
	id := e.served
	if id == "" {
		id = c.base + strings.TrimSuffix(r.URL.Path, "/")
	}
	var ident AuditIdentity
	if e.identity != nil {
		ident.Claim = map[string]string{ClaimObjectID: e.identity.ObjectID, ClaimAppID: e.identity.ClientID}
	}
	ip := r.RemoteAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	correlation := r.Header.Get("x-ms-client-request-id")
	if correlation == "" {
		correlation = e.requestID
	}
	resultType := "Failure"
	if status >= 200 && status < 300 {
		resultType = "Success"
	}
	s.audit.add(AuditRecord{
		TimeGenerated:    e.arrived.UTC(),
		OperationName:    opName,
		OperationVersion: r.URL.Query().Get("api-version"),
		ResultType:       resultType,
		ResultSignature:  strings.ReplaceAll(http.StatusText(status), " ", ""),
		DurationMs:       time.Since(e.started).Milliseconds(),
		CallerIPAddress:  ip,
		CorrelationID:    correlation,
		Identity:         ident,
		ID:               id,
		RequestURI:       c.base + r.URL.RequestURI(),
		HTTPStatusCode:   status,
		ClientInfo:       r.UserAgent(),
		ResourceID:       strings.ToLower(s.vaultResourceID(c.v)),
	})
}

// servedID is the id of what an answered call served: the bundle's id (with its version), the
// collection for lists, the deleted secret for purge, the secret for backup.
func servedID(c *call, res *result) string {
	switch b := res.body.(type) {
	case bundleOut:
		return b.ID
	case pageOut:
		return c.base + strings.TrimSuffix(c.r.URL.Path, "/")
	}
	switch c.op {
	case opPurge:
		return c.base + "/deletedsecrets/" + c.name
	case opBackup:
		return c.secretID(c.name, "")
	}
	return ""
}
