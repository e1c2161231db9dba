package handler

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// fnGitHub receives GitHub secret-scanning webhooks: an httpTrigger (authLevel function, POST; the
// webhook URL carries the function key as ?code=). The signature is checked over the raw body, which
// the host passes as a string (envelope mode: Data.req.Body). The answer's status is what GitHub sees:
// 2xx handled (or nothing to do, or a replay), 401 bad signature, 4xx a delivery that cannot succeed,
// 503 try again (GitHub lets you redeliver).
const fnGitHub = "GitHubSecretScanning"

func (h *handler) gitHubSecretScanning(inv *invocation, r *http.Request) reply {
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
	if h.github == nil {
		return inv.reject(http.StatusNotFound, nil, "GitHub secret scanning is not configured (KVROTATOR_GITHUB_WEBHOOK_SECRET, KVROTATOR_GITHUB_TOKEN_SECRET)", "")
	}
	if strings.ToUpper(strings.TrimSpace(req.Method)) != http.MethodPost {
		return inv.reject(http.StatusMethodNotAllowed, map[string]string{"Allow": "POST"}, "GitHub webhooks are POSTed", "")
	}
	raw := bytes.TrimSpace(req.Body)
	var body []byte
	var s string
	switch {
	case len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil:
		body = []byte(s) // the raw body, as the host passes it
	default:
		body = raw // an object would have been re-serialised: its signature cannot match, and is refused
	}
	hdr := http.Header{}
	for k, vs := range req.Headers {
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	res := h.github.Handle(r.Context(), hdr, body)
	if res.Report != nil {
		for _, o := range res.Report.Outcomes {
			inv.outcome(r.Context(), o, inv.elapsedMS())
		}
	}
	inv.log.Info("GitHub secret-scanning delivery", "delivery", clip(hdr.Get("X-GitHub-Delivery")), "status", res.Status, "message", res.Message)
	inv.logf("GitHub delivery: %d %s", res.Status, res.Message)
	return respond(res.Status, nil, res)
}
