package handler

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
)

// timerInfo is the timerTrigger's Data value. It only feeds logs, so it is read tolerantly.
type timerInfo struct {
	ScheduleStatus *struct {
		Last hostTime `json:"Last"`
		Next hostTime `json:"Next"`
	} `json:"ScheduleStatus"` // null when the schedule is not monitored
	IsPastDue bool `json:"IsPastDue"`
}

// hostTime is a timestamp as the host writes it: RFC 3339 with or without a zone (zone-less means
// UTC). Anything else decodes as the zero time rather than failing.
type hostTime struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler; it never fails.
func (t *hostTime) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v.UTC()
			return nil
		}
	}
	return nil
}

// scheduledSweep handles the timerTrigger function. It always answers 200: a timer invocation is
// not retried, so failures are reported (Logs and the structured log) and the next sweep picks them up.
func (h *handler) scheduledSweep(inv *invocation, r *http.Request) reply {
	data, ierr := h.readData(r, "timer")
	if ierr != nil {
		inv.log.Error("invocation rejected", "error", ierr.msg)
		inv.logf("error: %s; no sweep was run", ierr.msg)
		return ok
	}
	var timer timerInfo
	if err := json.Unmarshal(bytes.TrimSpace(data), &timer); err != nil {
		inv.log.Warn("timer data not understood; sweeping anyway")
	}
	report := h.rotator.Sweep(r.Context(), rotation.TriggerTimer, false)
	transient := 0
	for _, o := range report.Outcomes {
		inv.outcome(r.Context(), o, 0)
		if o.Transient() {
			transient++
		}
	}
	failed := report.Failed()
	attrs := []any{
		"scanned", report.Scanned, "managed", report.Managed, "outcomes", len(report.Outcomes),
		"failed", failed, "transient", transient, "is_past_due", timer.IsPastDue,
		"duration_ms", inv.elapsedMS(),
	}
	if s := timer.ScheduleStatus; s != nil {
		attrs = append(attrs, "last", s.Last.Time, "next", s.Next.Time)
	}
	level := slog.LevelInfo
	if failed > 0 {
		level = slog.LevelWarn
	}
	inv.log.Log(r.Context(), level, "sweep finished", attrs...)
	line := "sweep: %d secrets scanned, %d managed, %d outcomes, %d failed"
	args := []any{report.Scanned, report.Managed, len(report.Outcomes), failed}
	if transient > 0 {
		line += " (%d transient: the next sweep retries them)"
		args = append(args, transient)
	}
	if timer.IsPastDue {
		line += "; the timer was past due"
	}
	inv.logf(line, args...)
	return ok
}
