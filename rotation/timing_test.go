package rotation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustWindow(t *testing.T, s string) rotation.Window {
	t.Helper()
	w, err := rotation.ParseWindow(s)
	if err != nil {
		t.Fatalf("ParseWindow(%q): %v", s, err)
	}
	return w
}

func TestParseWindow(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Mon-Fri 02:00-04:00 Asia/Tokyo", "Mon-Fri 02:00-04:00 Asia/Tokyo"},
		{"mon-FRI 2:00-04:00 Asia/Tokyo", "Mon-Fri 02:00-04:00 Asia/Tokyo"},
		{"Sat,Sun 22:00-02:00 Europe/Berlin", "Sat,Sun 22:00-02:00 Europe/Berlin"},
		{"Sat, Sun 22:00-02:00 Europe/Berlin", "Sat,Sun 22:00-02:00 Europe/Berlin"},
		{"sunday,saturday 22:00-02:00 Europe/Berlin", "Sat,Sun 22:00-02:00 Europe/Berlin"},
		{"daily 01:00-01:30 UTC", "daily 01:00-01:30 UTC"},
		{"* 00:00-24:00 utc", "daily 00:00-24:00 UTC"},
		{"Mon-Sun 00:00-24:00 UTC", "daily 00:00-24:00 UTC"},
		{"Fri-Mon 10:00-11:00 UTC", "Mon,Fri-Sun 10:00-11:00 UTC"},
		{"Mon,Wed,Thu,Fri 10:00-11:00 UTC", "Mon,Wed-Fri 10:00-11:00 UTC"},
		{"Tue,Mon,Tue 10:00-11:00 UTC", "Mon,Tue 10:00-11:00 UTC"},
		{"Mon 22:00-00:00 UTC", "Mon 22:00-24:00 UTC"},
		{"  Mon   23:59-24:00   Etc/GMT+5 ", "Mon 23:59-24:00 Etc/GMT+5"},
	} {
		w, err := rotation.ParseWindow(tc.in)
		if err != nil {
			t.Errorf("ParseWindow(%q): %v", tc.in, err)
			continue
		}
		if got := w.String(); got != tc.want {
			t.Errorf("ParseWindow(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		if again, err := rotation.ParseWindow(w.String()); err != nil || again.String() != w.String() {
			t.Errorf("the canonical form %q does not parse back: %v", w.String(), err)
		}
	}
}

func TestParseWindowErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"Mon-Fri 02:00-04:00", "time zone is missing"},
		{"02:00-04:00 UTC", "the days are missing"},
		{"02:00-04:00 Asia/Tokyo UTC", `unknown day "02:00"`},
		{"Mon", "too few parts"},
		{"Mnd 02:00-04:00 UTC", `unknown day "Mnd"`},
		{"Mon-Fir 02:00-04:00 UTC", `unknown day "Fir"`},
		{"Mon,,Fri 02:00-04:00 UTC", "empty item"},
		{"Mon 02:00 UTC", "a start and an end"},
		{"Mon 2-4 UTC", "not a time of day"},
		{"Mon 02:00-04:0 UTC", "not a time of day"},
		{"Mon 25:00-04:00 UTC", "not a time of day"},
		{"Mon 02:60-04:00 UTC", "not a time of day"},
		{"Mon 24:00-04:00 UTC", "cannot start at 24:00"},
		{"Mon 02:00-24:30 UTC", "not a time of day"},
		{"Mon 02:00-02:00 UTC", "the same time"},
		{"Mon 00:00-00:00 UTC", "the same time"},
		{"Mon 02:00-04:00 Asia/Tokio", `unknown time zone "Asia/Tokio"`},
		{"Mon 02:00-04:00 asia/tokyo", "unknown time zone"},
		{"Mon 02:00-04:00 Local", "time zone"},
		{"Mon 02:00-04:00 +09:00", "unknown time zone"},
	} {
		_, err := rotation.ParseWindow(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseWindow(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

// TestWindowContainsAndNext: Asia/Tokyo (no daylight saving), windows across midnight, times just
// before, inside and just after a window, and weeks that wrap from Sunday to Monday.
func TestWindowContainsAndNext(t *testing.T) {
	tokyo, berlin := zone(t, "Asia/Tokyo"), zone(t, "Europe/Berlin")
	at := func(loc *time.Location, y int, m time.Month, d, hh, mm, ss int) time.Time {
		return time.Date(y, m, d, hh, mm, ss, 0, loc)
	}
	// 2026-11-01 is a Sunday; 2026-11-02 a Monday.
	for _, tc := range []struct {
		name, window string
		t            time.Time
		in           bool
		start, end   time.Time
	}{
		{"Sunday evening, before Monday's window", "Mon-Fri 02:00-04:00 Asia/Tokyo",
			time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), false,
			at(tokyo, 2026, 11, 2, 2, 0, 0), at(tokyo, 2026, 11, 2, 4, 0, 0)},
		{"just before", "Mon-Fri 02:00-04:00 Asia/Tokyo",
			at(tokyo, 2026, 11, 3, 1, 59, 59), false,
			at(tokyo, 2026, 11, 3, 2, 0, 0), at(tokyo, 2026, 11, 3, 4, 0, 0)},
		{"at the start", "Mon-Fri 02:00-04:00 Asia/Tokyo",
			at(tokyo, 2026, 11, 3, 2, 0, 0), true,
			at(tokyo, 2026, 11, 3, 2, 0, 0), at(tokyo, 2026, 11, 3, 4, 0, 0)},
		{"inside", "Mon-Fri 02:00-04:00 Asia/Tokyo",
			at(tokyo, 2026, 11, 3, 3, 59, 59), true,
			at(tokyo, 2026, 11, 3, 2, 0, 0), at(tokyo, 2026, 11, 3, 4, 0, 0)},
		{"at the end: the next day's", "Mon-Fri 02:00-04:00 Asia/Tokyo",
			at(tokyo, 2026, 11, 3, 4, 0, 0), false,
			at(tokyo, 2026, 11, 4, 2, 0, 0), at(tokyo, 2026, 11, 4, 4, 0, 0)},
		{"after Friday's: next Monday", "Mon-Fri 02:00-04:00 Asia/Tokyo",
			at(tokyo, 2026, 11, 6, 4, 0, 1), false,
			at(tokyo, 2026, 11, 9, 2, 0, 0), at(tokyo, 2026, 11, 9, 4, 0, 0)},
		{"a time given in another zone", "Mon-Fri 02:00-04:00 Asia/Tokyo",
			time.Date(2026, 11, 1, 17, 30, 0, 0, time.UTC), true, // Monday 02:30 in Tokyo
			at(tokyo, 2026, 11, 2, 2, 0, 0), at(tokyo, 2026, 11, 2, 4, 0, 0)},

		{"across midnight: Saturday night", "Sat,Sun 22:00-02:00 Europe/Berlin",
			at(berlin, 2026, 11, 7, 23, 0, 0), true,
			at(berlin, 2026, 11, 7, 22, 0, 0), at(berlin, 2026, 11, 8, 2, 0, 0)},
		{"across midnight: Sunday morning belongs to Saturday", "Sat,Sun 22:00-02:00 Europe/Berlin",
			at(berlin, 2026, 11, 8, 1, 59, 0), true,
			at(berlin, 2026, 11, 7, 22, 0, 0), at(berlin, 2026, 11, 8, 2, 0, 0)},
		{"across midnight: Monday morning belongs to Sunday", "Sat,Sun 22:00-02:00 Europe/Berlin",
			at(berlin, 2026, 11, 9, 0, 30, 0), true,
			at(berlin, 2026, 11, 8, 22, 0, 0), at(berlin, 2026, 11, 9, 2, 0, 0)},
		{"across midnight: Monday after the window, next Saturday", "Sat,Sun 22:00-02:00 Europe/Berlin",
			at(berlin, 2026, 11, 9, 2, 0, 0), false,
			at(berlin, 2026, 11, 14, 22, 0, 0), at(berlin, 2026, 11, 15, 2, 0, 0)},
		{"across midnight: Saturday morning is not in it", "Sat,Sun 22:00-02:00 Europe/Berlin",
			at(berlin, 2026, 11, 7, 1, 0, 0), false,
			at(berlin, 2026, 11, 7, 22, 0, 0), at(berlin, 2026, 11, 8, 2, 0, 0)},
		{"week wraps Sunday to Monday", "Sun 23:00-01:00 Asia/Tokyo",
			at(tokyo, 2026, 11, 2, 0, 30, 0), true,
			at(tokyo, 2026, 11, 1, 23, 0, 0), at(tokyo, 2026, 11, 2, 1, 0, 0)},
		{"week wraps: after Sunday's, next Sunday", "Sun 23:00-01:00 Asia/Tokyo",
			at(tokyo, 2026, 11, 2, 1, 0, 0), false,
			at(tokyo, 2026, 11, 8, 23, 0, 0), at(tokyo, 2026, 11, 9, 1, 0, 0)},
		{"range wrapping the week", "Fri-Mon 10:00-11:00 UTC",
			time.Date(2026, 11, 2, 10, 30, 0, 0, time.UTC), true,
			time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 2, 11, 0, 0, 0, time.UTC)},
		{"range wrapping the week: Tuesday is not in it", "Fri-Mon 10:00-11:00 UTC",
			time.Date(2026, 11, 3, 10, 30, 0, 0, time.UTC), false,
			time.Date(2026, 11, 6, 10, 0, 0, 0, time.UTC), time.Date(2026, 11, 6, 11, 0, 0, 0, time.UTC)},
		{"the whole day", "* 00:00-24:00 UTC",
			time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), true,
			time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)},
		{"the whole day, late", "daily 00:00-24:00 UTC",
			time.Date(2026, 11, 3, 23, 59, 59, 0, time.UTC), true,
			time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)},
		{"until midnight", "Mon 22:00-24:00 UTC",
			time.Date(2026, 11, 2, 23, 59, 0, 0, time.UTC), true,
			time.Date(2026, 11, 2, 22, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := mustWindow(t, tc.window)
			if got := w.Contains(tc.t); got != tc.in {
				t.Errorf("%s: Contains(%s) = %v, want %v", tc.window, tc.t, got, tc.in)
			}
			s, e := w.Next(tc.t)
			if !s.Equal(tc.start) || !e.Equal(tc.end) {
				t.Errorf("%s: Next(%s) = %s – %s, want %s – %s", tc.window, tc.t, s, e, tc.start, tc.end)
			}
		})
	}
}

// TestWindowDaylightSaving: the change-over nights in Europe/Berlin, 2026-03-29 (02:00 → 03:00)
// and 2026-10-25 (03:00 → 02:00), both Sundays.
func TestWindowDaylightSaving(t *testing.T) {
	utc := func(m time.Month, d, hh, mm int) time.Time { return time.Date(2026, m, d, hh, mm, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name, window string
		from         time.Time // Next from here
		start, end   time.Time // in UTC
		length       time.Duration
	}{
		// Spring forward: 01:00 UTC is 02:00 CET = 03:00 CEST.
		{"spring: 02:00 does not exist, the window opens at 03:00", "Sun 02:00-04:00 Europe/Berlin",
			utc(3, 28, 12, 0), utc(3, 29, 1, 0), utc(3, 29, 2, 0), time.Hour},
		{"spring: a window all inside the gap is skipped that night", "Sun 02:30-03:00 Europe/Berlin",
			utc(3, 28, 12, 0), utc(4, 5, 0, 30), utc(4, 5, 1, 0), 30 * time.Minute},
		{"spring: a window ending in the gap ends at the jump", "Sun 01:30-02:30 Europe/Berlin",
			utc(3, 28, 12, 0), utc(3, 29, 0, 30), utc(3, 29, 1, 0), 30 * time.Minute},
		{"spring: across midnight", "Sat 22:00-04:00 Europe/Berlin",
			utc(3, 28, 12, 0), utc(3, 28, 21, 0), utc(3, 29, 2, 0), 5 * time.Hour},
		{"spring: the week after is normal", "Sun 02:00-04:00 Europe/Berlin",
			utc(3, 29, 2, 0), utc(4, 5, 0, 0), utc(4, 5, 2, 0), 2 * time.Hour},
		// Fall back: 01:00 UTC is 03:00 CEST = 02:00 CET.
		{"fall: 02:00 CEST to 04:00 CET is three hours", "Sun 02:00-04:00 Europe/Berlin",
			utc(10, 24, 12, 0), utc(10, 25, 0, 0), utc(10, 25, 3, 0), 3 * time.Hour},
		{"fall: a window inside the repeated hour runs from its first start to its last end", "Sun 02:30-03:00 Europe/Berlin",
			utc(10, 24, 12, 0), utc(10, 25, 0, 30), utc(10, 25, 2, 0), 90 * time.Minute},
		{"fall: across midnight", "Sat 22:00-04:00 Europe/Berlin",
			utc(10, 24, 12, 0), utc(10, 24, 20, 0), utc(10, 25, 3, 0), 7 * time.Hour},
		{"fall: the week before is normal", "Sun 02:00-04:00 Europe/Berlin",
			utc(10, 17, 12, 0), utc(10, 18, 0, 0), utc(10, 18, 2, 0), 2 * time.Hour},
		// No daylight saving: the same nights in Tokyo are ordinary.
		{"Tokyo on Berlin's spring night", "Sun 02:00-04:00 Asia/Tokyo",
			utc(3, 28, 12, 0), utc(3, 28, 17, 0), utc(3, 28, 19, 0), 2 * time.Hour},
		{"Tokyo on Berlin's fall night", "Sun 02:00-04:00 Asia/Tokyo",
			utc(10, 24, 12, 0), utc(10, 24, 17, 0), utc(10, 24, 19, 0), 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := mustWindow(t, tc.window)
			s, e := w.Next(tc.from)
			if !s.Equal(tc.start) || !e.Equal(tc.end) || e.Sub(s) != tc.length {
				t.Errorf("%s: Next(%s) = %s – %s (%s), want %s – %s (%s)", tc.window, tc.from,
					s.UTC(), e.UTC(), e.Sub(s), tc.start, tc.end, tc.length)
			}
			if !w.Contains(s) || w.Contains(e) || !w.Contains(e.Add(-time.Second)) || w.Contains(s.Add(-time.Second)) {
				t.Errorf("%s: Contains disagrees with Next's %s – %s", tc.window, s.UTC(), e.UTC())
			}
		})
	}
	// The skipped night really is skipped: nothing on 2026-03-29 is inside "Sun 02:30-03:00".
	w := mustWindow(t, "Sun 02:30-03:00 Europe/Berlin")
	for u := utc(3, 28, 22, 0); u.Before(utc(3, 29, 4, 0)); u = u.Add(time.Minute) {
		if w.Contains(u) {
			t.Fatalf("%s contains %s", w, u)
		}
	}
}

// TestWindowConsistency sweeps time in five-minute steps over the change-over weeks and checks that
// Contains and Next agree everywhere: inside, Next's occurrence holds t; outside, Next's occurrence
// starts after t and nothing between t and its start is inside.
func TestWindowConsistency(t *testing.T) {
	windows := []string{
		"Sun 02:00-04:00 Europe/Berlin", "Sun 02:30-03:00 Europe/Berlin", "Sat,Sun 22:00-02:00 Europe/Berlin",
		"daily 00:00-24:00 Europe/Berlin", "daily 02:15-02:45 Europe/Berlin", "Sun 03:00-02:00 Europe/Berlin",
		"Mon-Fri 02:00-04:00 Asia/Tokyo", "Sun 23:00-01:00 Asia/Tokyo", "daily 01:00-01:30 UTC",
		"Sun 01:00-02:00 America/New_York", "daily 02:40-02:20 Europe/Berlin",
	}
	ranges := [][2]time.Time{
		{time.Date(2026, 3, 24, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
		{time.Date(2026, 10, 20, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)},
	}
	for _, ws := range windows {
		w := mustWindow(t, ws)
		for _, r := range ranges {
			var prevStart time.Time // Next's start at the previous step when that step was outside
			for u := r[0]; u.Before(r[1]); u = u.Add(5 * time.Minute) {
				s, e := w.Next(u)
				if !e.After(s) {
					t.Fatalf("%s: Next(%s) = %s – %s: empty", ws, u, s, e)
				}
				if w.Contains(u) {
					if u.Before(s) || !u.Before(e) {
						t.Fatalf("%s: %s is inside, but Next gives %s – %s", ws, u, s, e)
					}
					prevStart = time.Time{}
					continue
				}
				if !s.After(u) || !w.Contains(s) || w.Contains(s.Add(-time.Nanosecond)) {
					t.Fatalf("%s: %s is outside, but Next gives %s – %s", ws, u, s, e)
				}
				if !prevStart.IsZero() && !prevStart.Equal(s) {
					t.Fatalf("%s: outside at %s, Next moved from %s to %s before the window opened", ws, u, prevStart, s)
				}
				prevStart = s
			}
		}
	}
}

func TestWindowZero(t *testing.T) {
	var w rotation.Window
	if w.Contains(time.Now()) || w.String() != "" {
		t.Fatal("the zero window has occurrences")
	}
	if s, e := w.Next(time.Now()); !s.IsZero() || !e.IsZero() {
		t.Fatal("the zero window has a next occurrence")
	}
}

func TestParseSchedule(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"every 30d", "every 30d"},
		{"EVERY 12h", "every 12h"},
		{"every 90m", "every 1h30m"},
		{"every 1d12h", "every 1d12h"},
		{"every 36h", "every 1d12h"},
		{"every 1h", "every 1h"},
		{"0 3 1 * *", "CRON_TZ=UTC 0 3 1 * *"},
		{"CRON_TZ=Asia/Tokyo 0 3 1 * *", "CRON_TZ=Asia/Tokyo 0 3 1 * *"},
		{"TZ=Europe/Berlin   0  3 * * mon-fri", "CRON_TZ=Europe/Berlin 0 3 * * mon-fri"},
		{"CRON_TZ=utc @monthly", "CRON_TZ=UTC @monthly"},
		{"@weekly", "CRON_TZ=UTC @weekly"},
		{"@hourly", "CRON_TZ=UTC @hourly"},
		{"0 * * * *", "CRON_TZ=UTC 0 * * * *"},
		{"0 */2 * * *", "CRON_TZ=UTC 0 */2 * * *"},
		{"0 0 29 2 *", "CRON_TZ=UTC 0 0 29 2 *"},
	} {
		s, err := rotation.ParseSchedule(tc.in)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", tc.in, err)
			continue
		}
		if got := s.String(); got != tc.want {
			t.Errorf("ParseSchedule(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
		if again, err := rotation.ParseSchedule(s.String()); err != nil || again.String() != s.String() {
			t.Errorf("the canonical form %q does not parse back: %v", s.String(), err)
		}
	}
}

func TestParseScheduleErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"every", `want "every <duration>"`},
		{"every 30m", "the shortest schedule is every 1h"},
		{"every 0", "the shortest schedule is every 1h"},
		{"every -1d", "negative"},
		{"every 30 days", `want "every <duration>"`},
		{"every 1w", `unknown unit "w"`},
		{"*/30 * * * *", "fires 2 times an hour"},
		{"* * * * *", "fires 60 times an hour"},
		{"0,30 3 * * *", "fires 2 times an hour"}, // consecutive activations at 03:00 and 03:30, once a day
		{"0 0 30 2 *", "never fires"},
		{"0 3 * *", "cron expression"},
		{"0 0 3 * * *", "cron expression"}, // six fields: seconds are not accepted
		{"61 3 * * *", "cron expression"},
		{"@every 1h", `write intervals as "every <duration>"`},
		{"@fortnightly", "cron expression"},
		{"CRON_TZ=Asia/Tokio 0 3 * * *", `unknown time zone "Asia/Tokio"`},
		{"CRON_TZ=Asia/Tokyo", "not followed by a cron expression"},
		{"CRON_TZ= 0 3 * * *", "time zone"},
		{"CRON_TZ=Local 0 3 * * *", "time zone"},
		{"ZONE=UTC 0 3 * * *", "the only prefix"},
	} {
		_, err := rotation.ParseSchedule(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSchedule(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func TestScheduleNext(t *testing.T) {
	tokyo, berlin := zone(t, "Asia/Tokyo"), zone(t, "Europe/Berlin")
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC)
	last := time.Date(2026, 1, 10, 8, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		schedule  string
		last, now time.Time
		want      time.Time
	}{
		{"every 30d", last, now, last.Add(30 * 24 * time.Hour)},
		{"every 12h", last, now, last.Add(12 * time.Hour)}, // overdue: before now
		{"every 30d", time.Time{}, now, now},
		{"0 3 1 * *", last, now, time.Date(2026, 2, 1, 3, 0, 0, 0, time.UTC)},
		{"0 3 1 * *", time.Time{}, now, time.Date(2026, 2, 1, 3, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Asia/Tokyo 0 3 1 * *", last, now, time.Date(2026, 2, 1, 3, 0, 0, 0, tokyo)},
		{"CRON_TZ=Asia/Tokyo 0 3 1 * *", time.Date(2026, 1, 31, 18, 0, 0, 0, time.UTC), now, time.Date(2026, 3, 1, 3, 0, 0, 0, tokyo)},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), now, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"CRON_TZ=Europe/Berlin 0 3 * * *", time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), now, time.Date(2026, 10, 25, 3, 0, 0, 0, berlin)},
		{"@monthly", last, now, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)},
		{"0 0 29 2 *", last, now, time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
	} {
		s, err := rotation.ParseSchedule(tc.schedule)
		if err != nil {
			t.Fatalf("ParseSchedule(%q): %v", tc.schedule, err)
		}
		if got := s.Next(tc.last, tc.now); !got.Equal(tc.want) {
			t.Errorf("%s: Next(%s, %s) = %s, want %s", tc.schedule, tc.last, tc.now, got, tc.want)
		}
	}
	if got := (rotation.Schedule{}).Next(last, now); !got.IsZero() {
		t.Errorf("the zero schedule fires at %s", got)
	}
}

func TestParseInterval(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"12h", 12 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"90m", 90 * time.Minute},
		{" 1d12h ", 36 * time.Hour},
		{"1.5h", 90 * time.Minute},
		{"45s", 45 * time.Second},
		{"0", 0},
		{"0h", 0},
		{"3650d", 3650 * 24 * time.Hour},
	} {
		got, err := rotation.ParseInterval(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseInterval(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty"},
		{"-1h", "negative"},
		{"12", "has no unit"},
		{"12x", `unknown unit "x"`},
		{"7D", `unknown unit "D"`},
		{"1ms", `unknown unit "ms"`},
		{"h", "want a number and a unit"},
		{"1..5h", "not a number"},
		{"3651d", "longer than 3650d"},
		{"99999999999999999999d", "longer than 3650d"},
		{"12 h", `unknown unit " h"`},
	} {
		_, err := rotation.ParseInterval(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseInterval(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}
