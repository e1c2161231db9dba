package handler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// fnReportLeak is the leak response: an httpTrigger (authLevel function, POST, binding req, output
// res). The body names a leaked value or its SHA-256:
//
//	{"value": "<the leaked value>"}            or   {"sha256": "<64 hex digits>"}
//	{"value": "…", "dryRun": true}             says what would happen
//
// Every managed secret holding the value in a version kvrotator tracks is rotated at once and the
// leaked credential revoked without grace (rotation.Engine.Leak). The answer never repeats the value:
// 200 {"found": true, "outcomes": […]} (each an "emergency" outcome, or "planned" in a dry run); 404
// {"found": false} when no managed secret holds it (nothing changed); 400 for a malformed body. The
// value is neither logged nor kept.
const fnReportLeak = "ReportLeak"

type leakInput struct {
	Value  *string `json:"value"`
	SHA256 *string `json:"sha256"`
	DryRun bool    `json:"dryRun"`
}

type leakAnswer struct {
	Found    bool               `json:"found"`
	Outcomes []rotation.Outcome `json:"outcomes,omitempty"`
	Errors   []string           `json:"errors,omitempty"`
	Message  string             `json:"message,omitempty"`
}

func (h *handler) reportLeak(inv *invocation, r *http.Request) reply {
	data, ierr := h.readData(r, "req")
	if ierr != nil {
		if ierr.tooLarge {
			return inv.reject(http.StatusRequestEntityTooLarge, nil, ierr.msg, "")
		}
		return inv.reject(http.StatusBadRequest, nil, ierr.msg, "")
	}
	var req httpRequest
	if data = bytes.TrimSpace(data); len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &req) != nil {
		return inv.reject(http.StatusBadRequest, nil, "the invocation's HTTP request (Data.req) is malformed", "")
	}
	if m := strings.ToUpper(strings.TrimSpace(req.Method)); m != http.MethodPost {
		return inv.reject(http.StatusMethodNotAllowed, map[string]string{"Allow": "POST"}, fmt.Sprintf("method %q is not allowed: POST the leaked value", clip(req.Method)), "")
	}
	body, ferr := bodyText(req.Body) // a JSON object, or the body as a string
	if ferr != nil {
		return inv.reject(http.StatusBadRequest, nil, ferr.Error, "")
	}
	var in leakInput
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		// The decoder's message could quote the body: say only what is wrong with its shape.
		return inv.reject(http.StatusBadRequest, nil, `the body must be a JSON object: {"value":"…"} or {"sha256":"…"}, and optionally "dryRun":true`, "")
	}
	lr := rotation.LeakRequest{DryRun: in.DryRun, Source: "ReportLeak", Trigger: rotation.TriggerManual}
	switch {
	case (in.Value == nil) == (in.SHA256 == nil):
		return inv.reject(http.StatusBadRequest, nil, `give exactly one of "value" and "sha256"`, "value")
	case in.Value != nil && *in.Value == "":
		return inv.reject(http.StatusBadRequest, nil, `"value" is empty`, "value")
	case in.Value != nil:
		lr.Value = providers.NewValue(*in.Value)
	default:
		lr.SHA256 = *in.SHA256
	}
	rep, err := h.rotator.Leak(r.Context(), lr)
	if err != nil {
		return inv.reject(http.StatusBadRequest, nil, err.Error(), "sha256")
	}
	for _, o := range rep.Outcomes {
		inv.outcome(r.Context(), o, inv.elapsedMS())
	}
	if !rep.Found() {
		inv.log.Info("leak reported: the value is in no managed secret", "dry_run", in.DryRun, "vault_errors", len(rep.Errors))
		inv.logf("leak reported: not found in any managed secret; nothing changed")
		return respond(http.StatusNotFound, nil, leakAnswer{Found: false, Errors: rep.Errors,
			Message: "no managed secret holds this value in a version kvrotator tracks; nothing changed"})
	}
	return respond(http.StatusOK, nil, leakAnswer{Found: true, Outcomes: rep.Outcomes, Errors: rep.Errors})
}
