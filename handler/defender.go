package handler

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// fnDefender receives Microsoft Defender for Key Vault alerts: an httpTrigger (authLevel function,
// POST) that Defender's workflow automation (a Logic App's HTTP action) or a continuous-export relay
// calls with the alert as JSON (leaks.ParseDefender). Each alert on a configured vault is answered
// from Key Vault's audit log: the secrets its identities or addresses read are reported as a plan, or
// rotated as leaks with KVROTATOR_DEFENDER_ROTATE=true.
const fnDefender = "DefenderAlert"

func (h *handler) defenderAlert(inv *invocation, r *http.Request) reply {
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
	if h.defender == nil {
		return inv.reject(http.StatusNotFound, nil, "Defender alerts are not configured", "")
	}
	if strings.ToUpper(strings.TrimSpace(req.Method)) != http.MethodPost {
		return inv.reject(http.StatusMethodNotAllowed, map[string]string{"Allow": "POST"}, "POST the alert", "")
	}
	body, ferr := bodyText(req.Body)
	if ferr != nil {
		return inv.reject(http.StatusBadRequest, nil, ferr.Error, "")
	}
	res := h.defender.Handle(r.Context(), []byte(body))
	for _, a := range res.Alerts {
		if a.Report != nil {
			for _, o := range a.Report.Outcomes {
				inv.outcome(r.Context(), o, inv.elapsedMS())
			}
		}
		inv.log.Info("Defender alert", "alert_id", clip(a.Alert.ID), "alert_type", clip(a.Alert.Type), "vault", a.Alert.Vault, "message", a.Message)
		inv.logf("Defender alert %s (%s): %s", a.Alert.ID, a.Alert.Type, a.Message)
	}
	return respond(res.Status, nil, res)
}
