package emulator

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// The admin API (/_emulator/...) lets tests and tools in any language drive the emulator: read and
// advance the vault clock, script faults, wait for event delivery, read the audit log. It needs no
// token: the emulator is a development tool. It answers only requests addressed to loopback,
// localhost or *.localhost (or Config.TrustedHosts) from loopback callers (or Config.TrustedClients);
// others get 403 (guard.go).
//
//	GET    /_emulator/health          {"status":"ok","vaults":[{"name","url","secrets","deleted"}]}
//	GET    /_emulator/clock           {"now":<unix>,"offsetSeconds":<n>}
//	POST   /_emulator/clock           {"advance":"720h"}  → the new time; due expiry events are raised
//	GET    /_emulator/faults          the scripted faults with their remaining counts
//	POST   /_emulator/faults          {"spec":"op=SetSecret,status=503,count=2"}
//	DELETE /_emulator/faults          remove all
//	POST   /_emulator/events/flush    waits (up to 30 s) until raised events are delivered; returns stats
//	GET    /_emulator/audit           the audit log (Server.AuditLog): a JSON array of AZKVAuditLogs records
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	bad := func(msg string) { writeError(w, badParameter("%s", msg)) }
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/_emulator/health":
		type vaultInfo struct {
			Name    string `json:"name"`
			URL     string `json:"url"`
			Secrets int    `json:"secrets"`
			Deleted int    `json:"deleted"`
		}
		out := struct {
			Status string      `json:"status"`
			Vaults []vaultInfo `json:"vaults"`
		}{Status: "ok"}
		for _, v := range s.vaultList() {
			v.mu.RLock()
			out.Vaults = append(out.Vaults, vaultInfo{Name: v.name, URL: s.VaultURL(v.name), Secrets: len(v.state.Secrets), Deleted: len(v.state.Deleted)})
			v.mu.RUnlock()
		}
		writeJSON(w, http.StatusOK, out)
	case "/_emulator/clock":
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			var req struct {
				Advance string `json:"advance"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
				bad(`body must be {"advance":"<Go duration, e.g. 720h>"}`)
				return
			}
			d, err := time.ParseDuration(req.Advance)
			if err != nil || d < 0 {
				bad("advance must be a non-negative Go duration such as 90s or 720h")
				return
			}
			s.Advance(d)
		default:
			bad("use GET or POST")
			return
		}
		writeJSON(w, http.StatusOK, map[string]int64{"now": s.clock.Now().Unix(), "offsetSeconds": int64(s.clock.Offset() / time.Second)})
	case "/_emulator/faults":
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost:
			var req struct {
				Spec string `json:"spec"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
				bad(`body must be {"spec":"op=SetSecret,status=503,count=2"}`)
				return
			}
			rule, err := ParseFaultRule(req.Spec)
			if err == nil {
				err = s.AddFault(rule)
			}
			if err != nil {
				bad(err.Error())
				return
			}
		case http.MethodDelete:
			s.ClearFaults()
		default:
			bad("use GET, POST or DELETE")
			return
		}
		writeJSON(w, http.StatusOK, s.script.Rules())
	case "/_emulator/audit":
		if r.Method != http.MethodGet {
			bad("use GET")
			return
		}
		recs := s.AuditLog()
		if recs == nil {
			recs = []AuditRecord{}
		}
		writeJSON(w, http.StatusOK, recs)
	case "/_emulator/events/flush":
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		if err := s.FlushEvents(ctx); err != nil {
			writeError(w, &kvError{Status: http.StatusGatewayTimeout, Code: "Timeout", Message: "events are still being delivered"})
			return
		}
		writeJSON(w, http.StatusOK, s.EventStats())
	default:
		writeError(w, &kvError{Status: http.StatusNotFound, Code: "NotFound", Message: "unknown admin endpoint"})
	}
}
