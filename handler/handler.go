// Package handler speaks the Azure Functions custom-handler protocol for kvrotator: invocation
// envelopes in, envelopes out. It holds no rotation logic; it decodes what the Functions host sends,
// hands it to a Rotator, and turns the outcome into the answer that makes the host do the right thing.
//
// The host POSTs each invocation to /<FunctionName> as {"Data":{...},"Metadata":{...}} and reads back
// {"Outputs":{...},"Logs":[...],"ReturnValue":...}. Any non-2xx answer fails the invocation and drops
// its Logs, so the status code is how a failure becomes a retry:
//
//   - KeyVaultEvents (eventGridTrigger): a transient failure answers 500, so Event Grid redelivers the
//     event; a malformed event or a permanent failure answers 200 with the error in Logs, because
//     redelivery cannot fix it.
//   - ScheduledSweep (timerTrigger): always 200; a timer is not retried, failures are reported in Logs
//     and in the structured log, and the next sweep picks them up.
//   - RotateSecret (httpTrigger, output binding res): always 200; the caller's HTTP status travels in
//     Outputs.res (200, 400, 413, 422, 503 with Retry-After).
//   - RotationStatus (httpTrigger, GET): the status page (server-rendered HTML, or JSON with
//     ?format=json) in Outputs.res.
//
// GET / answers {"status":"ok"} at once: the host polls it every 25 ms until the handler is ready and
// pings it later, so it does no work. Structured logs (log/slog) go to Options.Logger, one line per
// outcome with stable keys; a compact human line per outcome goes into the envelope's Logs, which the
// host correlates with the invocation. Request bodies are never logged.
//
// # Adding a trigger
//
//  1. The function folder at the repository root: <Name>/function.json with the trigger binding (and,
//     for HTTP, the "res" output binding); the Functions host routes its invocations to POST /<Name>.
//     Add the folder to the expected bindings in cmd/kvrotator/functionapp_test.go, which checks every
//     folder against what the handler serves, and to scripts/zipapp's package (it packs every folder
//     with a function.json).
//  2. Here: a const fn<Name> = "<Name>" and a method func (h *handler) <name>(inv *invocation, r
//     *http.Request) reply, registered in New's h.functions map. Read the trigger's data with
//     h.readData(r, "<binding name>") (size-checked; malformed input is a reply, never a panic), do the
//     work through the Rotator (add a method to the Rotator interface if the engine must do something
//     new), report each outcome with inv.outcome (structured log line with the stable keys the alert
//     rules read, plus the human line in Logs), and choose the status: non-2xx only when the host
//     should retry (see above).
//  3. Tests beside the others (handler_test.go's rig invokes a function with a fixture envelope; add
//     fixtures under testdata/) and an end-to-end test through the built binary in cmd/kvrotator
//     (internal/hostsim drives the binary as the host does).
//  4. Document it in README.md ("How it works", and the trigger table) and, if it is HTTP, its key and
//     authLevel in the Security model.
package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/leaks"
	"github.com/kvrotator/kvrotator/rotation"
)

// Rotator is the rotation engine as the handler sees it.
type Rotator interface {
	// HandleEvent acts on one validated Key Vault event (skipping types it does not rotate on).
	HandleEvent(ctx context.Context, ev rotation.Event) rotation.Outcome
	// Rotate rotates (or, with DryRun, plans) one secret on request.
	Rotate(ctx context.Context, req rotation.Request) rotation.Outcome
	// Sweep checks every configured vault for secrets that are due, overdue or pending revocation.
	Sweep(ctx context.Context, trigger rotation.Trigger, dryRun bool) rotation.SweepReport
	// Status describes every secret of every configured vault as of at (zero: now), from list pages
	// only (no value), overdue ones first.
	Status(ctx context.Context, at time.Time) rotation.StatusReport
	// Leak responds to a leaked value (or its SHA-256): rotates and revokes whatever holds it.
	Leak(ctx context.Context, req rotation.LeakRequest) (rotation.LeakReport, error)
}

// Options configure New.
type Options struct {
	// Rotator does the work. Required.
	Rotator Rotator
	// Logger receives one structured line per outcome and per rejected invocation. It should write to
	// stdout: the host logs stdout lines as Information and stderr lines as Warning or Error. Nil
	// means JSON lines on os.Stdout.
	Logger *slog.Logger
	// MaxBodyBytes caps an invocation body; 0 means DefaultMaxBodyBytes. A larger KeyVaultEvents or
	// ScheduledSweep invocation is acknowledged (200) with an error in Logs; a larger RotateSecret
	// invocation answers the caller 413.
	MaxBodyBytes int64
	// GitHub handles GitHub secret-scanning webhooks (leaks.GitHub); nil answers 404 (not configured).
	GitHub LeakWebhook
	// Defender handles Defender for Key Vault alerts (leaks.Defender); nil answers 404.
	Defender AlertHandler
}

// AlertHandler handles a Defender alert delivery's body.
type AlertHandler interface {
	Handle(ctx context.Context, body []byte) leaks.DefenderResult
}

// LeakWebhook handles one leak-report webhook delivery: its headers and raw body.
type LeakWebhook interface {
	Handle(ctx context.Context, h http.Header, body []byte) leaks.Result
}

// DefaultMaxBodyBytes is the default cap on an invocation body (1 MiB); a Key Vault event or a manual
// rotation request is a few hundred bytes.
const DefaultMaxBodyBytes = 1 << 20

// Function names: the function folders, and the paths the host POSTs to.
const (
	fnKeyVaultEvents = "KeyVaultEvents"
	fnScheduledSweep = "ScheduledSweep"
	fnRotateSecret   = "RotateSecret"
)

// invocationIDHeader carries the host's id for the invocation; logs carry it as invocation_id.
const invocationIDHeader = "X-Azure-Functions-InvocationId"

type handler struct {
	rotator   Rotator
	log       *slog.Logger
	maxBody   int64
	github    LeakWebhook
	defender  AlertHandler
	functions map[string]func(*invocation, *http.Request) reply
}

// New returns the custom handler: GET / for readiness, POST /KeyVaultEvents, /ScheduledSweep and
// /RotateSecret for invocations. It does no I/O. It panics if o.Rotator is nil.
func New(o Options) http.Handler {
	if o.Rotator == nil {
		panic("handler: Options.Rotator is nil")
	}
	h := &handler{rotator: o.Rotator, log: o.Logger, maxBody: o.MaxBodyBytes, github: o.GitHub, defender: o.Defender}
	if h.log == nil {
		h.log = slog.New(slog.NewJSONHandler(os.Stdout, nil))
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	h.functions = map[string]func(*invocation, *http.Request) reply{
		fnKeyVaultEvents: h.keyVaultEvents,
		fnScheduledSweep: h.scheduledSweep,
		fnRotateSecret:   h.rotateSecret,
		fnRotationStatus: h.rotationStatus,
		fnReportLeak:     h.reportLeak,
		fnGitHub:         h.gitHubSecretScanning,
		fnDefender:       h.defenderAlert,
	}
	return h
}

var healthBody = []byte(`{"status":"ok"}`)

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeEnvelope(w, http.StatusMethodNotAllowed, "GET, HEAD", nil, []string{fmt.Sprintf("error: %q / is not allowed; use GET", clip(r.Method))})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(healthBody)
		}
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	run, ok := h.functions[name]
	if !ok {
		writeEnvelope(w, http.StatusNotFound, "", nil, []string{fmt.Sprintf("error: no function %q (functions: %s, %s, %s, %s, %s, %s, %s)", clip(name), fnKeyVaultEvents, fnScheduledSweep, fnRotateSecret, fnRotationStatus, fnReportLeak, fnGitHub, fnDefender)})
		return
	}
	if r.Method != http.MethodPost {
		writeEnvelope(w, http.StatusMethodNotAllowed, http.MethodPost, nil, []string{fmt.Sprintf("error: %q /%s is not allowed; the Functions host POSTs invocations", clip(r.Method), name)})
		return
	}
	inv := &invocation{id: clip(r.Header.Get(invocationIDHeader)), start: time.Now()}
	inv.log = h.log.With("function", name, "invocation_id", inv.id)
	defer func() {
		if p := recover(); p != nil {
			inv.log.Error("invocation panicked", "panic", clip(fmt.Sprint(p)), "stack", string(debug.Stack()))
			inv.logf("error: the handler failed unexpectedly; the invocation fails")
			writeEnvelope(w, http.StatusInternalServerError, "", nil, inv.logs)
		}
	}()
	rep := run(inv, r)
	writeEnvelope(w, rep.status, "", rep.outputs, inv.logs)
}

// reply is what a function answers: the envelope's HTTP status and Outputs (Logs come from the
// invocation).
type reply struct {
	status  int
	outputs map[string]any
}

// ok acknowledges the invocation with no outputs.
var ok = reply{status: http.StatusOK}

// invocation is one call from the host.
type invocation struct {
	id    string // X-Azure-Functions-InvocationId
	start time.Time
	log   *slog.Logger // carries function and invocation_id
	logs  []string     // the envelope's Logs
}

// logf adds a line to the envelope's Logs.
func (inv *invocation) logf(format string, args ...any) {
	inv.logs = append(inv.logs, fmt.Sprintf(format, args...))
}

// elapsedMS is the time since the invocation arrived.
func (inv *invocation) elapsedMS() int64 { return time.Since(inv.start).Milliseconds() }

// envelope is the custom-handler response body.
type envelope struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// writeEnvelope writes a complete envelope: Content-Type application/json and a non-empty JSON body
// whatever the status, as the host requires.
func writeEnvelope(w http.ResponseWriter, status int, allow string, outputs map[string]any, logs []string) {
	if outputs == nil {
		outputs = map[string]any{}
	}
	if logs == nil {
		logs = []string{}
	}
	body, err := json.Marshal(envelope{Outputs: outputs, Logs: logs})
	if err != nil { // only plain strings, numbers and maps go in: cannot happen
		status, body = http.StatusInternalServerError, []byte(`{"Outputs":{},"Logs":["error: encoding the response failed"],"ReturnValue":null}`)
	}
	w.Header().Set("Content-Type", "application/json")
	if allow != "" {
		w.Header().Set("Allow", allow)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// clip cuts s to 128 characters for logs and messages.
func clip(s string) string {
	const max = 128
	n := 0
	for i := range s {
		if n == max {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
