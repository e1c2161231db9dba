package rotation

// Timing primitives for the per-secret timing policy: rotation windows (tag rotation-window),
// schedules (tag rotation-schedule) and minimum intervals (tag rotation-min-interval). Everything
// here is pure: parsing, and arithmetic on times given by the caller.

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // zones must load on machines without a zoneinfo database

	"github.com/robfig/cron/v3"
)

const (
	minutesPerDay = 24 * 60
	// maxTimingDuration bounds intervals (as ValidityPeriodDays is bounded): ten years.
	maxTimingDuration = 3650 * 24 * time.Hour
	// MinScheduleInterval is the shortest interval a schedule may have, and the most often a cron
	// schedule may fire.
	MinScheduleInterval = time.Hour
)

// Window is a recurring rotation window: on some days of the week, from a start to an end time of
// day, in a named time zone. The zero Window has no occurrences.
//
// An occurrence belongs to the day it starts on: "Sat,Sun 22:00-02:00 Europe/Berlin" starts on
// Saturday 22:00 and Sunday 22:00 and each lasts until 02:00 the following morning. Occurrences are
// half open: an occurrence contains its start and not its end.
//
// Times are wall-clock times in the window's zone: an occurrence runs from the first moment the local
// clock reads its start to the last moment it reads its end. On the nights the clocks change:
//
//   - A start or end the clocks jump over is the moment of the jump: in Europe/Berlin on 2026-03-29
//     (02:00 → 03:00) a window 02:00-04:00 opens at 03:00 CEST and lasts one hour of real time, and
//     01:30-02:30 closes at 03:00 CEST, half an hour after it opened.
//   - A window whose hours are all jumped over does not occur that night: 02:30-03:00 in
//     Europe/Berlin on 2026-03-29 is skipped and Next moves on to the following occurrence. (This is
//     deliberately not Go's time.Date normalisation, which would move 02:30 to 03:30, after the end.)
//   - A start the clocks read twice is the first time and an end read twice is the second: in
//     Europe/Berlin on 2026-10-25 (03:00 → 02:00) a window 02:00-04:00 opens at 02:00 CEST, closes at
//     04:00 CET and lasts three hours, and 02:30-03:00 lasts from 02:30 CEST to 03:00 CET, 90 minutes.
type Window struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes after midnight; 0 <= start < 1440, 0 < end <= 1440, end != start
	loc        *time.Location
}

const windowFormat = `want "<days> <HH:MM>-<HH:MM> <time zone>", e.g. "Mon-Fri 02:00-04:00 Asia/Tokyo"`

// ParseWindow parses a rotation window: days, a start and end time, and a time zone, separated by
// spaces, e.g. "Mon-Fri 02:00-04:00 Asia/Tokyo", "Sat,Sun 22:00-02:00 Europe/Berlin" or
// "daily 01:00-01:30 UTC".
//
// Days are English day names (Mon … Sun, or in full; any case), ranges (Mon-Fri; a range may wrap
// around the week, Fri-Mon), comma lists of both (Mon,Wed,Fri-Sun), or "daily" or "*" for every day.
// Times are HH:MM on a 24-hour clock; the end may be 24:00, and an end earlier than the start means
// the window runs past midnight. The start and end must differ ("00:00-24:00" is the whole day). The
// time zone is required: an IANA name (Europe/Berlin) or UTC.
func ParseWindow(s string) (Window, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Window{}, errors.New("the window is empty: " + windowFormat)
	}
	if len(f) < 3 {
		switch {
		case len(f) == 2 && strings.Contains(f[1], ":"):
			return Window{}, errors.New("the time zone is missing: add an IANA name such as Asia/Tokyo, or UTC, after the hours")
		case strings.Contains(f[0], ":"):
			return Window{}, errors.New("the days are missing: write them before the hours, e.g. Mon-Fri, Sat,Sun or daily")
		}
		return Window{}, errors.New("too few parts: " + windowFormat)
	}
	var w Window
	var err error
	// Days may be written with spaces after the commas ("Sat, Sun"): everything before the hours is days.
	if w.days, err = parseDays(strings.Join(f[:len(f)-2], "")); err != nil {
		return Window{}, err
	}
	hours := f[len(f)-2]
	a, b, ok := strings.Cut(hours, "-")
	if !ok {
		return Window{}, fmt.Errorf("hours %q: want a start and an end time, e.g. 02:00-04:00", hours)
	}
	if w.start, err = parseClock(a, false); err != nil {
		return Window{}, fmt.Errorf("start time: %w", err)
	}
	if w.end, err = parseClock(b, true); err != nil {
		return Window{}, fmt.Errorf("end time: %w", err)
	}
	// 00:00-24:00 is the whole day; any other start and end that are the same time are a mistake.
	if w.end == w.start {
		return Window{}, fmt.Errorf("hours %q: the start and the end are the same time (for the whole day write 00:00-24:00)", hours)
	}
	if w.end == 0 {
		w.end = minutesPerDay // "22:00-00:00" is "22:00-24:00"
	}
	if w.loc, err = parseZone(f[len(f)-1]); err != nil {
		return Window{}, err
	}
	return w, nil
}

// parseDays parses a day specification into a set of weekdays.
func parseDays(s string) ([7]bool, error) {
	var days [7]bool
	if strings.EqualFold(s, "daily") || s == "*" {
		for i := range days {
			days[i] = true
		}
		return days, nil
	}
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			return days, fmt.Errorf("days %q: an empty item in the list", s)
		}
		a, b, isRange := strings.Cut(item, "-")
		from, err := parseDay(a)
		if err != nil {
			return days, err
		}
		to := from
		if isRange {
			if to, err = parseDay(b); err != nil {
				return days, err
			}
		}
		for d := from; ; d = (d + 1) % 7 {
			days[d] = true
			if d == to {
				break
			}
		}
	}
	return days, nil
}

func parseDay(s string) (time.Weekday, error) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		if name := d.String(); strings.EqualFold(s, name) || strings.EqualFold(s, name[:3]) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun, a range such as Mon-Fri, a list such as Sat,Sun, or daily", s)
}

// parseClock parses HH:MM into minutes after midnight; 24:00 only when allow24.
func parseClock(s string, allow24 bool) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) < 1 || len(hh) > 2 || len(mm) != 2 || !isDigits(hh) || !isDigits(mm) {
		return 0, fmt.Errorf("%q is not a time of day: want HH:MM on a 24-hour clock, e.g. 02:00", s)
	}
	h, _ := strconv.Atoi(hh)
	m, _ := strconv.Atoi(mm)
	switch {
	case h == 24 && m == 0 && allow24:
		return minutesPerDay, nil
	case h == 24 && m == 0:
		return 0, fmt.Errorf("%q: a window cannot start at 24:00 (write 00:00 and the next day)", s)
	case h > 23 || m > 59:
		return 0, fmt.Errorf("%q is not a time of day: hours go from 00 to 23 (24:00 only as an end), minutes from 00 to 59", s)
	}
	return h*60 + m, nil
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// parseZone loads a named time zone: UTC (any case) or an IANA name. The machine's local zone is
// refused: a tag must mean the same thing wherever kvrotator runs.
func parseZone(name string) (*time.Location, error) {
	if strings.EqualFold(name, "UTC") {
		return time.UTC, nil
	}
	if name == "" || strings.EqualFold(name, "Local") {
		return nil, fmt.Errorf("time zone %q: want an IANA name such as Europe/Berlin, or UTC", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: want an IANA name such as Europe/Berlin or Asia/Tokyo (case matters), or UTC", name)
	}
	return loc, nil
}

// String returns the window in canonical form, e.g. "Mon-Fri 02:00-04:00 Asia/Tokyo" or
// "daily 00:00-24:00 UTC"; ParseWindow accepts it.
func (w Window) String() string {
	if w.loc == nil {
		return ""
	}
	return fmt.Sprintf("%s %s-%s %s", w.daysString(), clock(w.start), clock(w.end), w.loc)
}

func (w Window) daysString() string {
	// Monday first: runs of three or more days are ranges, shorter runs are listed.
	order := [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}
	var parts []string
	all := true
	for i := 0; i < 7; {
		if !w.days[order[i]] {
			all = false
			i++
			continue
		}
		j := i
		for j+1 < 7 && w.days[order[j+1]] {
			j++
		}
		switch name := func(k int) string { return order[k].String()[:3] }; {
		case j-i >= 2:
			parts = append(parts, name(i)+"-"+name(j))
		default:
			for k := i; k <= j; k++ {
				parts = append(parts, name(k))
			}
		}
		i = j + 1
	}
	if all {
		return "daily"
	}
	return strings.Join(parts, ",")
}

func clock(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

// Contains reports whether t is inside an occurrence of the window.
func (w Window) Contains(t time.Time) bool {
	if w.loc == nil {
		return false
	}
	y, m, d := t.In(w.loc).Date()
	// An occurrence that contains t started on t's local date or the day before (the day before
	// that too, to be safe around the clocks changing).
	for k := -2; k <= 0; k++ {
		if s, e, ok := w.occurrence(y, m, d+k); ok && !t.Before(s) && t.Before(e) {
			return true
		}
	}
	return false
}

// Next returns the occurrence of the window that contains t or, when t is outside the window, the
// first occurrence that starts after t. Both times are in the window's zone. The zero Window
// returns zero times.
func (w Window) Next(t time.Time) (start, end time.Time) {
	if w.loc == nil {
		return time.Time{}, time.Time{}
	}
	y, m, d := t.In(w.loc).Date()
	for k := -2; k <= 0; k++ {
		if s, e, ok := w.occurrence(y, m, d+k); ok && !t.Before(s) && t.Before(e) {
			return s, e
		}
	}
	// Every weekday of the window comes round each week and only a night the clocks change can
	// skip an occurrence (or, once, a whole day: Pacific/Apia on 2011-12-30), so this ends within
	// weeks; the bound only guards against a bug.
	for k := 0; k <= 400; k++ {
		if s, e, ok := w.occurrence(y, m, d+k); ok && s.After(t) {
			return s, e
		}
	}
	return time.Time{}, time.Time{}
}

// occurrence returns the occurrence that starts on the given local date (which time.Date
// normalises), if the window has one that day.
func (w Window) occurrence(y int, m time.Month, d int) (start, end time.Time, ok bool) {
	date := time.Date(y, m, d, 12, 0, 0, 0, time.UTC) // the civil date, whatever the zone does
	if !w.days[date.Weekday()] {
		return time.Time{}, time.Time{}, false
	}
	y, m, d = date.Date()
	endMin := w.end
	if w.end <= w.start {
		endMin += minutesPerDay // past midnight: the end is on the next day
	}
	start, _ = wallClock(y, m, d, w.start, w.loc)
	_, end = wallClock(y, m, d, endMin, w.loc)
	if !end.After(start) {
		return time.Time{}, time.Time{}, false // every hour of it was skipped by the clocks
	}
	return start, end, true
}

// wallClock returns the first and the last instant at which the clock in loc reads the given date
// and minutes after its midnight (minutes may exceed a day). When the clock reads that time only
// once, first and last are the same; when it never does (the clocks jump over it), both are the
// moment of the jump.
func wallClock(y int, m time.Month, d, minutes int, loc *time.Location) (first, last time.Time) {
	naive := time.Date(y, m, d, 0, minutes, 0, 0, time.UTC).Unix() // the wall time as if it were UTC
	near := time.Date(y, m, d, 0, minutes, 0, 0, loc)

	// The zone periods around the wall time: the one time.Date chose and its neighbours.
	type period struct {
		from, to int64 // [from, to); math.MinInt64 / math.MaxInt64 when unbounded
		offset   int64
	}
	periodOf := func(t time.Time) period {
		_, off := t.Zone()
		s, e := t.ZoneBounds()
		p := period{from: math.MinInt64, to: math.MaxInt64, offset: int64(off)}
		if !s.IsZero() {
			p.from = s.Unix()
		}
		if !e.IsZero() {
			p.to = e.Unix()
		}
		return p
	}
	cur := periodOf(near)
	periods := []period{cur}
	if cur.from != math.MinInt64 {
		periods = append(periods, periodOf(time.Unix(cur.from-1, 0).In(loc)))
	}
	if cur.to != math.MaxInt64 {
		periods = append(periods, periodOf(time.Unix(cur.to, 0).In(loc)))
	}

	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, p := range periods {
		if u := naive - p.offset; u >= p.from && u < p.to {
			lo, hi = min(lo, u), max(hi, u)
		}
	}
	if lo <= hi {
		return time.Unix(lo, 0).In(loc), time.Unix(hi, 0).In(loc)
	}
	// A gap: find the jump the wall time falls into.
	for _, p := range periods {
		for _, q := range periods {
			if p.to == q.from && q.from != math.MaxInt64 && naive >= p.to+p.offset && naive < q.from+q.offset {
				jump := time.Unix(q.from, 0).In(loc)
				return jump, jump
			}
		}
	}
	return near, near // not reached for real zones
}

// Schedule is when a secret is rotated besides before it expires: a fixed interval after the last
// rotation, or a cron expression. The zero Schedule never fires (Next returns the zero time).
type Schedule struct {
	every time.Duration
	cron  *cron.SpecSchedule
	spec  string // canonical
}

// ParseSchedule parses a rotation schedule:
//
//   - an interval, "every <duration>": "every 30d", "every 12h", "every 90m", "every 1d12h". Units are
//     d (24 hours), h, m and s; the least is one hour. The next rotation is the interval after the last.
//   - a cron expression in the standard five fields (minute hour day-of-month month day-of-week),
//     optionally preceded by CRON_TZ=<zone> (default UTC), e.g. "CRON_TZ=Asia/Tokyo 0 3 1 * *", or a
//     descriptor: @yearly, @monthly, @weekly, @daily, @hourly. Expressions that fire more often than
//     once an hour, or never, are refused.
func ParseSchedule(s string) (sc Schedule, err error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return Schedule{}, errors.New(`the schedule is empty: want an interval such as "every 30d" or a cron expression such as "CRON_TZ=Europe/Berlin 0 3 1 * *"`)
	}
	if strings.EqualFold(f[0], "every") {
		if len(f) != 2 {
			return Schedule{}, errors.New(`want "every <duration>", e.g. "every 30d" or "every 12h"`)
		}
		d, err := parseDuration(f[1])
		if err != nil {
			return Schedule{}, err
		}
		if d < MinScheduleInterval {
			return Schedule{}, fmt.Errorf("interval %s: the shortest schedule is every 1h", f[1])
		}
		return Schedule{every: d, spec: "every " + formatDuration(d)}, nil
	}

	loc := time.UTC
	zone := "UTC"
	if k, v, ok := strings.Cut(f[0], "="); ok {
		if !strings.EqualFold(k, "CRON_TZ") && !strings.EqualFold(k, "TZ") {
			return Schedule{}, fmt.Errorf("%q: the only prefix a cron expression may have is CRON_TZ=<zone>", f[0])
		}
		if loc, err = parseZone(v); err != nil {
			return Schedule{}, fmt.Errorf("CRON_TZ: %w", err)
		}
		zone = loc.String()
		f = f[1:]
		if len(f) == 0 {
			return Schedule{}, errors.New("CRON_TZ is not followed by a cron expression")
		}
	}
	expr := strings.Join(f, " ")
	if strings.HasPrefix(strings.ToLower(expr), "@every") {
		return Schedule{}, fmt.Errorf(`%q: write intervals as "every <duration>", e.g. "every 12h"`, expr)
	}
	defer func() {
		// robfig/cron is well kept, but a tag is untrusted input and a sweep must not crash on one.
		if r := recover(); r != nil {
			sc, err = Schedule{}, fmt.Errorf("cron expression %q is not valid", expr)
		}
	}()
	parsed, perr := cron.ParseStandard(expr)
	if perr != nil {
		return Schedule{}, fmt.Errorf("cron expression %q: %v (want five fields, minute hour day-of-month month day-of-week, e.g. \"0 3 1 * *\", or @monthly, @weekly, @daily)", expr, perr)
	}
	spec, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return Schedule{}, fmt.Errorf("cron expression %q is not supported", expr)
	}
	spec.Location = loc // without CRON_TZ, UTC rather than the machine's zone
	// More than one minute in the minute field fires at least twice within an hour, which a pair of
	// consecutive activations would show only if it happened to start in that hour: count the bits.
	const starBit = 1 << 63
	if n := bits.OnesCount64(spec.Minute &^ starBit); n > 1 {
		return Schedule{}, fmt.Errorf("cron expression %q fires %d times an hour: the most often a schedule may fire is once an hour (give a single minute, e.g. \"0 * * * *\")", expr, n)
	}
	ref := time.Date(2026, 1, 1, 0, 0, 0, 0, loc)
	first := spec.Next(ref)
	if first.IsZero() {
		return Schedule{}, fmt.Errorf("cron expression %q never fires", expr)
	}
	if second := spec.Next(first); !second.IsZero() && second.Sub(first) < MinScheduleInterval {
		return Schedule{}, fmt.Errorf("cron expression %q fires %s apart: the most often a schedule may fire is once an hour", expr, second.Sub(first))
	}
	return Schedule{cron: spec, spec: "CRON_TZ=" + zone + " " + expr}, nil
}

// Next returns when the schedule next rotates: for an interval, last plus the interval (now when
// there has been no rotation, last being zero); for a cron expression, its first activation after
// last (after now when last is zero). The result may be before now: the rotation is then overdue.
func (s Schedule) Next(last, now time.Time) time.Time {
	switch {
	case s.every > 0 && last.IsZero():
		return now
	case s.every > 0:
		return last.Add(s.every)
	case s.cron != nil && last.IsZero():
		return s.cron.Next(now)
	case s.cron != nil:
		return s.cron.Next(last)
	}
	return time.Time{}
}

// String returns the schedule in canonical form: "every 30d", or a cron expression with its zone,
// "CRON_TZ=UTC 0 3 1 * *"; ParseSchedule accepts it.
func (s Schedule) String() string { return s.spec }

// ParseInterval parses a duration for the minimum-interval tag: "12h", "7d", "90m", "1d12h"; units
// are d (24 hours), h, m and s. "0" means no minimum. Negative durations are refused.
func ParseInterval(s string) (time.Duration, error) {
	return parseDuration(strings.TrimSpace(s))
}

// parseDuration parses a Go-like duration with a day unit: a sequence of decimal numbers, each with
// a unit (d, h, m, s), or a bare 0.
func parseDuration(s string) (time.Duration, error) {
	const want = "want a number and a unit, d, h, m or s, e.g. 30d, 12h or 90m"
	switch {
	case s == "":
		return 0, errors.New("the duration is empty: " + want)
	case s == "0":
		return 0, nil
	case strings.HasPrefix(s, "-"):
		return 0, fmt.Errorf("duration %q is negative", s)
	}
	var total time.Duration
	for rest := s; rest != ""; {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		j := i
		for j < len(rest) && (rest[j] < '0' || rest[j] > '9') && rest[j] != '.' {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		rest = rest[j:]
		if num == "" {
			return 0, fmt.Errorf("duration %q: %s", s, want)
		}
		var scale time.Duration
		switch unit {
		case "d":
			scale = 24 * time.Hour
		case "h":
			scale = time.Hour
		case "m":
			scale = time.Minute
		case "s":
			scale = time.Second
		case "":
			return 0, fmt.Errorf("duration %q: %q has no unit: %s", s, num, want)
		default:
			return 0, fmt.Errorf("duration %q: unknown unit %q: %s", s, unit, want)
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %q is not a number: %s", s, num, want)
		}
		if v*float64(scale) > float64(maxTimingDuration) {
			return 0, fmt.Errorf("duration %q is longer than 3650d", s)
		}
		total += time.Duration(v * float64(scale))
		if total > maxTimingDuration {
			return 0, fmt.Errorf("duration %q is longer than 3650d", s)
		}
	}
	return total.Round(time.Second), nil
}

// formatDuration writes d with the largest units that divide it: 30d, 1d12h, 90m → 1h30m.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	var b strings.Builder
	for _, u := range []struct {
		name string
		size time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if n := d / u.size; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.name)
			d -= n * u.size
		}
	}
	return b.String()
}
