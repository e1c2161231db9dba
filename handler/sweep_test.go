package handler

import (
	"slices"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
)

func TestScheduledSweep(t *testing.T) {
	report := rotation.SweepReport{Scanned: 60, Managed: 4, Outcomes: []rotation.Outcome{
		{Kind: rotation.KindRotated, Vault: "myvault", Secret: "api-key", OldVersion: "a", NewVersion: "b", Provider: "random", Trigger: rotation.TriggerTimer, DurationMS: 90},
		{Kind: rotation.KindRevoked, Vault: "myvault", Secret: "db-password", Provider: "postgres", Trigger: rotation.TriggerTimer, Reason: "grace period over"},
		{Kind: rotation.KindOverdue, Vault: "myvault", Secret: "old-key", Reason: "expired 3 days ago"},
		{Kind: rotation.KindFailed, Class: rotation.ClassTransient, Vault: "myvault", Secret: "sendgrid-key", Provider: "sendgrid", Reason: "provider timed out"},
	}}
	tests := []struct {
		name    string
		fixture string
		pastDue bool
	}{
		{"reference envelope (binding myTimer)", "timer.json", false},
		{"no ScheduleStatus, past due", "timer-nostatus.json", true},
		{"zone-less timestamps", "timer-zoneless.json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, 0)
			r.rot.report = report
			env := readEnvelope(t, r.invoke("ScheduledSweep", fixture(t, tt.fixture)))
			if env.status != 200 {
				t.Errorf("status = %d, want 200 (a timer is never failed)", env.status)
			}
			if want := []sweepCall{{rotation.TriggerTimer, false}}; !slices.Equal(r.rot.sweeps, want) {
				t.Errorf("Sweep calls = %v, want %v", r.rot.sweeps, want)
			}
			summary := "sweep: 60 secrets scanned, 4 managed, 4 outcomes, 1 failed (1 transient: the next sweep retries them)"
			if tt.pastDue {
				summary += "; the timer was past due"
			}
			want := []string{
				"rotated myvault/api-key version a → b (provider random, trigger timer, 90 ms)",
				"revoked myvault/db-password: grace period over (provider postgres, trigger timer)",
				"overdue myvault/old-key: expired 3 days ago",
				"failed (transient) myvault/sendgrid-key: provider timed out (provider sendgrid)",
				summary,
			}
			if !slices.Equal(env.Logs, want) {
				t.Errorf("Logs =\n%q\nwant\n%q", env.Logs, want)
			}
			if n := len(r.logs.withMessage(t, "outcome")); n != 4 {
				t.Errorf("%d outcome log lines, want 4", n)
			}
			finished := r.logs.withMessage(t, "sweep finished")
			if len(finished) != 1 || finished[0]["level"] != "WARN" || finished[0]["failed"] != float64(1) || finished[0]["scanned"] != float64(60) {
				t.Fatalf("sweep finished line = %v", finished)
			}
		})
	}
}

func TestScheduledSweepTimestamps(t *testing.T) {
	tests := []struct {
		fixture, last string
	}{
		{"timer.json", "2023-10-12T20:13:49.640002Z"},
		{"timer-zoneless.json", "2025-01-01T03:00:00.0047Z"},
	}
	for _, tt := range tests {
		r := newRig(t, 0)
		r.invoke("ScheduledSweep", fixture(t, tt.fixture))
		finished := r.logs.withMessage(t, "sweep finished")
		if len(finished) != 1 {
			t.Fatalf("%s: want one sweep finished line, got %v", tt.fixture, r.logs.lines(t))
		}
		if finished[0]["last"] != tt.last || finished[0]["level"] != "INFO" {
			t.Errorf("%s: sweep finished line = %v, want last %s at INFO", tt.fixture, finished[0], tt.last)
		}
	}
}

func TestHostTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{`"2023-10-12T20:13:49.640002Z"`, time.Date(2023, 10, 12, 20, 13, 49, 640002000, time.UTC)},
		{`"2023-10-12T22:13:49.640002+02:00"`, time.Date(2023, 10, 12, 20, 13, 49, 640002000, time.UTC)},
		{`"2023-10-12T20:13:49.6400021"`, time.Date(2023, 10, 12, 20, 13, 49, 640002100, time.UTC)},
		{`"2023-10-12T20:13:49"`, time.Date(2023, 10, 12, 20, 13, 49, 0, time.UTC)},
		{`"10/12/2023 20:13:49"`, time.Time{}},
		{`null`, time.Time{}},
		{`42`, time.Time{}},
	}
	for _, tt := range tests {
		var ht hostTime
		if err := ht.UnmarshalJSON([]byte(tt.in)); err != nil {
			t.Errorf("UnmarshalJSON(%s): %v", tt.in, err)
		}
		if !ht.Equal(tt.want) {
			t.Errorf("UnmarshalJSON(%s) = %v, want %v", tt.in, ht.Time, tt.want)
		}
	}
}

func TestScheduledSweepTolerantTimerData(t *testing.T) {
	r := newRig(t, 0)
	env := readEnvelope(t, r.invoke("ScheduledSweep", []byte(`{"Data":{"timer":{"IsPastDue":"maybe","ScheduleStatus":7}},"Metadata":{}}`)))
	if env.status != 200 || len(r.rot.sweeps) != 1 {
		t.Fatalf("status %d, %d sweeps; want 200 and a sweep despite odd timer data", env.status, len(r.rot.sweeps))
	}
	if len(r.logs.withMessage(t, "timer data not understood; sweeping anyway")) != 1 {
		t.Errorf("want a warning about the timer data, got %v", r.logs.lines(t))
	}
}

func TestScheduledSweepRejectsMalformedInvocation(t *testing.T) {
	for _, body := range []string{``, `[]`, `"x"`, `{"Data":{}}`, `{"Data":5}`, `{` + string(make([]byte, 300)) + `}`} {
		r := newRig(t, 256)
		env := readEnvelope(t, r.invoke("ScheduledSweep", []byte(body)))
		if env.status != 200 {
			t.Errorf("%.20q: status %d, want 200", body, env.status)
		}
		if r.rot.calls() != 0 {
			t.Errorf("%.20q: the rotator was called", body)
		}
		if !env.logsContain("no sweep was run") {
			t.Errorf("%.20q: Logs = %q", body, env.Logs)
		}
	}
}
