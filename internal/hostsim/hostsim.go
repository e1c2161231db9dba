// Package hostsim plays the Azure Functions host for a custom handler, the way the real host does it
// (reference/functions-host.md): it starts the handler process with FUNCTIONS_CUSTOMHANDLER_PORT,
// polls GET / until it answers, and POSTs invocation envelopes to /<FunctionName>. It also plays the
// Event Grid extension: an endpoint that receives Event Grid deliveries, invokes the Event Grid
// function once per event and answers 500 when any invocation failed, so Event Grid redelivers.
// The demo and the end-to-end tests use it; it is not a general host.
package hostsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
)

// Options start a handler process.
type Options struct {
	Binary string   // the handler executable
	Args   []string // default: serve
	Env    []string // the handler's environment (FUNCTIONS_CUSTOMHANDLER_PORT is added)
	// Output receives the handler's stdout and stderr (the host's console log). Nil: kept in memory only.
	Output io.Writer
	// ReadyTimeout bounds the readiness poll (the host's initializationTimeout, 30 s).
	ReadyTimeout time.Duration
}

// Host is a running handler process and the host's side of the protocol.
type Host struct {
	URL    string // http://127.0.0.1:PORT
	cmd    *exec.Cmd
	client *http.Client
	done   chan error
	mu     sync.Mutex
	out    bytes.Buffer // everything the handler printed
	// StartupTime is how long the handler took to answer GET /.
	StartupTime time.Duration
}

type lockedWriter struct {
	h *Host
	w io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.h.mu.Lock()
	l.h.out.Write(p)
	l.h.mu.Unlock()
	if l.w != nil {
		_, _ = l.w.Write(p)
	}
	return len(p), nil
}

// Start launches the handler and waits until GET / answers, polling every 25 ms as the host does.
func Start(ctx context.Context, o Options) (*Host, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := o.Args
	if len(args) == 0 {
		args = []string{"serve"}
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	h := &Host{URL: "http://127.0.0.1:" + port, client: &http.Client{Timeout: 6 * time.Minute}, done: make(chan error, 1)}
	h.cmd = exec.Command(o.Binary, args...)
	h.cmd.Env = append(append([]string(nil), o.Env...), "FUNCTIONS_CUSTOMHANDLER_PORT="+port, "FUNCTIONS_CUSTOMHANDLER_WORKER_ID="+uuid.NewString())
	w := lockedWriter{h: h, w: o.Output}
	h.cmd.Stdout, h.cmd.Stderr = w, w
	began := time.Now()
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start handler: %w", err)
	}
	go func() { h.done <- h.cmd.Wait() }()
	deadline := time.Now().Add(o.ReadyTimeout)
	for {
		select {
		case err := <-h.done:
			return nil, fmt.Errorf("handler exited before it was ready (%v); it printed:\n%s", err, h.Output())
		default:
		}
		if resp, err := h.client.Get(h.URL + "/"); err == nil {
			resp.Body.Close()
			h.StartupTime = time.Since(began)
			return h, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			h.Kill()
			return nil, fmt.Errorf("handler not ready after %v; it printed:\n%s", o.ReadyTimeout, h.Output())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Output is everything the handler printed so far.
func (h *Host) Output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// Stop sends SIGTERM and waits for the process (killing it after 10 s).
func (h *Host) Stop() error {
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.done:
		h.done <- err
		return err
	case <-time.After(10 * time.Second):
		h.Kill()
		return errors.New("handler did not stop on SIGTERM")
	}
}

// Kill ends the process at once (kill -9).
func (h *Host) Kill() {
	_ = h.cmd.Process.Kill()
}

// Response is the handler's answer to one invocation.
type Response struct {
	Status   int
	Body     []byte
	Envelope struct {
		Outputs     map[string]json.RawMessage `json:"Outputs"`
		Logs        []string                   `json:"Logs"`
		ReturnValue json.RawMessage            `json:"ReturnValue"`
	}
}

// OK reports whether the host would count the invocation as successful: a 2xx with a JSON envelope.
func (r *Response) OK() bool {
	return r.Status >= 200 && r.Status < 300 && json.Valid(r.Body)
}

// HTTPResult is the res output binding of an HTTP-triggered function.
type HTTPResult struct {
	StatusCode json.Number       `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// HTTPOutput decodes Outputs.res.
func (r *Response) HTTPOutput() (HTTPResult, error) {
	var res HTTPResult
	raw, ok := r.Envelope.Outputs["res"]
	if !ok {
		return res, errors.New("no res output")
	}
	err := json.Unmarshal(raw, &res)
	return res, err
}

// Invoke POSTs an envelope to /<function> with the host's headers.
func (h *Host) Invoke(ctx context.Context, function string, envelope []byte) (*Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL+"/"+function, bytes.NewReader(envelope))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Azure-Functions-InvocationId", uuid.NewString())
	req.Header.Set("X-Azure-Functions-HostVersion", "4.1037.0")
	req.Header.Set("User-Agent", "Azure-Functions-Host/4.1037.0")
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := &Response{Status: resp.StatusCode}
	if r.Body, err = io.ReadAll(resp.Body); err != nil {
		return nil, err
	}
	_ = json.Unmarshal(r.Body, &r.Envelope)
	return r, nil
}

func sysMetadata(function string) map[string]any {
	return map[string]any{"MethodName": function, "UtcNow": time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"), "RandGuid": uuid.NewString()}
}

// EventGridEnvelope wraps one event as the host sends it to an eventGridTrigger function (binding
// name eventGridEvent): the event object in Data, its data in Metadata.
func EventGridEnvelope(function string, event json.RawMessage) []byte {
	var ev struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.Unmarshal(event, &ev)
	b, _ := json.Marshal(map[string]any{
		"Data":     map[string]json.RawMessage{"eventGridEvent": event},
		"Metadata": map[string]any{"data": ev.Data, "sys": sysMetadata(function)},
	})
	return b
}

// TimerEnvelope is the timerTrigger envelope (binding name timer), with the host's PascalCase TimerInfo.
func TimerEnvelope(function string, last, next time.Time, pastDue bool) []byte {
	b, _ := json.Marshal(map[string]any{
		"Data": map[string]any{"timer": map[string]any{
			"Schedule":       map[string]any{"AdjustForDST": true},
			"ScheduleStatus": map[string]any{"Last": last.UTC().Format(time.RFC3339Nano), "Next": next.UTC().Format(time.RFC3339Nano), "LastUpdated": last.UTC().Format(time.RFC3339Nano)},
			"IsPastDue":      pastDue,
		}},
		"Metadata": map[string]any{"sys": sysMetadata(function)},
	})
	return b
}

// HTTPEnvelope is the httpTrigger envelope (binding name req) for a request to /api/<function>.
func HTTPEnvelope(function, method, query string, body []byte) []byte {
	url := "https://localhost:7071/api/" + function
	q := map[string]string{}
	if query != "" {
		url += "?" + query
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			q[k] = v
		}
	}
	req := map[string]any{
		"Url": url, "Method": method, "Query": q,
		"Headers":    map[string][]string{"Content-Type": {"application/json"}, "User-Agent": {"curl/8.5.0"}},
		"Params":     map[string]string{},
		"Identities": []any{},
	}
	if len(body) > 0 {
		req["Body"] = string(body)
	}
	b, _ := json.Marshal(map[string]any{
		"Data":     map[string]any{"req": req},
		"Metadata": map[string]any{"Query": q, "Headers": map[string]string{"Content-Type": "application/json"}, "sys": sysMetadata(function)},
	})
	return b
}

// EventGridEndpoint is the Event Grid extension's webhook: it accepts a delivery (an array of events,
// or one CloudEvent), invokes function once per event, and answers 202 when all succeeded, 500
// otherwise (Event Grid then redelivers the whole delivery). Each invocation's response is passed to
// observe, if set.
func (h *Host) EventGridEndpoint(function string, observe func(event json.RawMessage, r *Response, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("aeg-event-type") != "Notification" {
			http.Error(w, "aeg-event-type must be Notification", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read failed", http.StatusBadRequest)
			return
		}
		var events []json.RawMessage
		if err := json.Unmarshal(body, &events); err != nil {
			events = []json.RawMessage{body}
		}
		failed := false
		for _, ev := range events {
			resp, err := h.Invoke(r.Context(), function, EventGridEnvelope(function, ev))
			if observe != nil {
				observe(ev, resp, err)
			}
			if err != nil || !resp.OK() {
				failed = true
			}
		}
		if failed {
			http.Error(w, "function invocation failed", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, p, err := net.SplitHostPort(l.Addr().String())
	return p, err
}
