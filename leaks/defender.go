package leaks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// Alert is a Microsoft Defender for Key Vault alert, as far as the response needs it.
type Alert struct {
	ID         string    `json:"id"`   // SystemAlertId (the dedupe key)
	Type       string    `json:"type"` // AlertType, e.g. KV_SuspiciousIPAccess (test alerts: SIMULATED_ prefix)
	Vault      string    `json:"vault"`
	Identities []string  `json:"identities,omitempty"` // object or application ids of account entities
	Addresses  []string  `json:"addresses,omitempty"`  // IP entities
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
}

// ParseDefender reads the alerts in a body as Defender delivers them: one alert or an array, in the
// workflow automation (Logic App) schema — PascalCase: AlertType, SystemAlertId, StartTimeUtc,
// EndTimeUtc, ResourceIdentifiers[].AzureResourceId, Entities[] — or the alerts REST schema that
// continuous export sends — camelCase under "properties". Field names are matched case-insensitively;
// entity $ref pointers are resolved. Alerts that name no Key Vault are skipped.
func ParseDefender(body []byte) ([]Alert, error) {
	var raw any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("the body is not JSON")
	}
	var items []any
	switch v := raw.(type) {
	case []any:
		items = v
	case map[string]any:
		items = []any{v}
	default:
		return nil, fmt.Errorf("the body is not an alert or an array of alerts")
	}
	var out []Alert
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("an alert is not a JSON object")
		}
		if p, ok := field(m, "properties").(map[string]any); ok {
			m = p // the REST schema
		}
		a := Alert{ID: str(field(m, "systemAlertId")), Type: str(field(m, "alertType"))}
		if a.ID == "" {
			a.ID = str(field(m, "alertName"))
		}
		a.Start, _ = time.Parse(time.RFC3339Nano, str(field(m, "startTimeUtc")))
		a.End, _ = time.Parse(time.RFC3339Nano, str(field(m, "endTimeUtc")))
		if a.End.IsZero() {
			a.End = a.Start
		}
		for _, ri := range list(field(m, "resourceIdentifiers")) {
			if id := str(field(asMap(ri), "azureResourceId")); id != "" {
				if v := vaultOf(id); v != "" {
					a.Vault = v
				}
			}
		}
		if a.Vault == "" {
			continue
		}
		ents := list(field(m, "entities"))
		byID := map[string]map[string]any{}
		for _, e := range ents {
			em := asMap(e)
			if id := str(field(em, "$id")); id != "" {
				byID[id] = em
			}
		}
		for _, e := range ents {
			em := asMap(e)
			if ref := str(field(em, "$ref")); ref != "" {
				em = byID[ref]
			}
			switch strings.ToLower(str(field(em, "type"))) {
			case "ip":
				if addr := str(field(em, "address")); addr != "" {
					a.Addresses = appendNew(a.Addresses, addr)
				}
			case "account":
				for _, k := range []string{"aadUserId", "objectId", "applicationId", "appId"} {
					if id := str(field(em, k)); id != "" {
						a.Identities = appendNew(a.Identities, id)
					}
				}
			}
		}
		if a.ID == "" || a.Start.IsZero() {
			return nil, fmt.Errorf("alert %q: missing SystemAlertId or StartTimeUtc", a.Type)
		}
		out = append(out, a)
	}
	return out, nil
}

// vaultOf is the vault name in an ARM id (…/providers/Microsoft.KeyVault/vaults/NAME[/…]).
func vaultOf(id string) string {
	parts := strings.Split(id, "/")
	for i := 0; i+1 < len(parts); i++ {
		if strings.EqualFold(parts[i], "vaults") && i > 0 && strings.EqualFold(parts[i-1], "Microsoft.KeyVault") {
			return parts[i+1]
		}
	}
	return ""
}

func field(m map[string]any, name string) any {
	if m == nil {
		return nil
	}
	if v, ok := m[name]; ok {
		return v
	}
	for k, v := range m {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func list(v any) []any           { l, _ := v.([]any); return l }
func str(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case float64:
		return fmt.Sprint(s)
	}
	return ""
}

func appendNew(l []string, s string) []string {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return l
		}
	}
	return append(l, s)
}

// Defender responds to Defender for Key Vault alerts: for each alert on a configured vault, the secrets
// the alert's identities or addresses read in its window (Key Vault's audit log) are reported as a
// plan, or — with Rotate (KVROTATOR_DEFENDER_ROTATE) — rotated as leaks. An alert already handled
// (its SystemAlertId) is not handled again.
type Defender struct {
	Suspicious func(context.Context, rotation.SuspiciousRequest) (rotation.LeakReport, error)
	Alerts     Deliveries
	Rotate     bool
	// Vaults are the configured vaults; alerts on others are acknowledged and skipped.
	Vaults []string
	// Margin widens the alert's window (audit records arrive minutes late; default 15 min).
	Margin time.Duration
}

// DefenderResult is the answer to one delivery.
type DefenderResult struct {
	Status int             `json:"-"`
	Alerts []AlertResponse `json:"alerts"`
}

// AlertResponse is what one alert came to.
type AlertResponse struct {
	Alert   Alert                `json:"alert"`
	Message string               `json:"message"`
	Report  *rotation.LeakReport `json:"report,omitempty"`
}

// Handle processes a delivery's body.
func (d *Defender) Handle(ctx context.Context, body []byte) DefenderResult {
	alerts, err := ParseDefender(body)
	if err != nil {
		return DefenderResult{Status: http.StatusBadRequest, Alerts: []AlertResponse{{Message: err.Error()}}}
	}
	margin := d.Margin
	if margin <= 0 {
		margin = 15 * time.Minute
	}
	res := DefenderResult{Status: http.StatusOK}
	for _, a := range alerts {
		ar := AlertResponse{Alert: a}
		configured := false
		for _, v := range d.Vaults {
			configured = configured || strings.EqualFold(v, a.Vault)
		}
		key := sanitize(a.ID)
		switch {
		case !configured:
			ar.Message = "vault " + a.Vault + " is not managed by kvrotator: nothing done"
		case len(a.Identities) == 0 && len(a.Addresses) == 0:
			ar.Message = "the alert names no identity or address: nothing to look up"
		default:
			if seen, err := d.Alerts.Seen(ctx, key); err == nil && seen {
				ar.Message = "alert " + a.ID + " was handled already: nothing done"
				break
			}
			// Defender's sample alerts (SIMULATED_…) exercise the path: planned, never rotated.
			simulated := strings.HasPrefix(strings.ToUpper(a.Type), "SIMULATED_")
			rep, err := d.Suspicious(ctx, rotation.SuspiciousRequest{Vault: a.Vault, Identities: a.Identities, Addresses: a.Addresses,
				From: a.Start.Add(-margin), To: a.End.Add(margin), Rotate: d.Rotate && !simulated, Source: "Defender " + a.Type, Trigger: rotation.TriggerEvent})
			if err != nil {
				ar.Message = err.Error()
				res.Status = http.StatusServiceUnavailable
				if errors.Is(err, rotation.ErrNoAuditLog) || vocab.IsPermanent(err) {
					res.Status = http.StatusUnprocessableEntity
				}
				break
			}
			ar.Report = &rep
			ar.Message = fmt.Sprintf("%d secret(s) read by the alert's identities or addresses", len(rep.Outcomes))
			if simulated && d.Rotate {
				ar.Message += " (a simulated alert: planned, not rotated)"
			}
			if err := d.Alerts.Mark(ctx, key); err != nil {
				ar.Message += "; recording the alert failed: " + err.Error()
			}
		}
		res.Alerts = append(res.Alerts, ar)
	}
	return res
}

// sanitize makes an alert id a journal key (letters, digits, hyphens; at most 127).
func sanitize(id string) string {
	b := []byte(strings.ToLower(id))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 127 {
		b = b[:127]
	}
	if len(b) == 0 {
		return "unnamed"
	}
	return "defender-" + string(b)[:min(len(b), 118)]
}
