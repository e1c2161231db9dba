package handler

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
)

// fnRotationStatus is the status page: an httpTrigger (authLevel function, GET, binding req, output
// res). GET answers a self-contained HTML page (no script, no external asset of any kind), or with
// ?format=json the rotation.StatusReport. It reads only what the vaults' list pages give: names, tags
// and attributes, never a value.
const fnRotationStatus = "RotationStatus"

// The timeline of each row spans tlPastDays before the report's time to tlFutureDays after it, one
// position class per day.
const (
	tlPastDays   = 30
	tlFutureDays = 120
	tlDays       = tlPastDays + tlFutureDays
)

//go:embed status.html
var statusHTML string

// statusPage is parsed on first use, not at start-up: the handler's cold start stays cheap.
var statusPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("status.html").Parse(statusHTML))
})

// positionCSS places timeline parts without style attributes (the page's CSP allows only its one
// hashed style element): .lN is "N days after the start of the track", .wN "N days wide".
var positionCSS = sync.OnceValue(func() template.CSS {
	var b strings.Builder
	for d := 0; d <= tlDays; d++ {
		fmt.Fprintf(&b, ".l%d{left:%.3f%%}", d, float64(d)*100/tlDays)
	}
	for d := 1; d <= tlDays; d++ {
		fmt.Fprintf(&b, ".w%d{width:%.3f%%}", d, float64(d)*100/tlDays)
	}
	return template.CSS(b.String())
})

// rotationStatus serves the status page (or, with ?format=json, the report). The envelope is always
// 200; the caller's status is in Outputs.res.
func (h *handler) rotationStatus(inv *invocation, r *http.Request) reply {
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
	if method := strings.ToUpper(strings.TrimSpace(req.Method)); method != http.MethodGet {
		return inv.reject(http.StatusMethodNotAllowed, map[string]string{"Allow": http.MethodGet},
			fmt.Sprintf("method %q is not allowed: the status page is read with GET", clip(req.Method)), "")
	}
	format := ""
	for k, v := range queryValues(req) {
		if strings.EqualFold(strings.TrimSpace(k), "format") {
			_ = json.Unmarshal(v, &format)
			format = strings.ToLower(strings.TrimSpace(format))
		}
	}
	if format != "" && format != "html" && format != "json" {
		return inv.reject(http.StatusBadRequest, nil, fmt.Sprintf("format %q is not known: html (the default) or json", clip(format)), "format")
	}

	rep := h.rotator.Status(r.Context(), time.Time{})
	for _, e := range rep.Errors {
		inv.log.Warn("status: a vault could not be listed", "error", e)
		inv.logf("error: %s", e)
	}
	inv.log.Info("status served", "format", cmp.Or(format, "html"), "secrets", len(rep.Secrets), "overdue", rep.Overdue(),
		"policy_errors", rep.PolicyErrors(), "vault_errors", len(rep.Errors), "duration_ms", inv.elapsedMS())
	inv.logf("status served: %d secrets, %d overdue, %d with bad tags", len(rep.Secrets), rep.Overdue(), rep.PolicyErrors())

	common := map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
	if format == "json" {
		return respond(http.StatusOK, common, rep)
	}
	page, err := renderStatus(rep)
	if err != nil {
		inv.log.Error("status page rendering failed", "error", err)
		inv.logf("error: rendering the status page failed")
		return respond(http.StatusInternalServerError, common, errorBody{Error: "rendering the status page failed"})
	}
	headers := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": statusCSP(page),
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
	}
	for k, v := range common {
		headers[k] = v
	}
	return reply{status: http.StatusOK, outputs: map[string]any{
		"res": httpOutput{StatusCode: http.StatusOK, Headers: headers, Body: string(page)},
	}}
}

// statusCSP allows nothing but the page's own style element, by its hash: no script, image, font,
// frame, form target or connection, inline style attributes included.
func statusCSP(page []byte) string {
	style := ""
	if _, rest, ok := bytes.Cut(page, []byte("<style>")); ok {
		if css, _, ok := bytes.Cut(rest, []byte("</style>")); ok {
			sum := sha256.Sum256(css)
			style = " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		}
	}
	return "default-src 'none'; style-src" + cmp.Or(style, " 'none'") +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// Row states, in the page's order of urgency; each is a CSS class (badge b-STATE, row STATE).
const (
	stOverdue   = "overdue"
	stBadTags   = "badtags"
	stDue       = "due"
	stOK        = "ok"
	stUnmanaged = "unmanaged"
)

var stateLabels = map[string]string{stOverdue: "OVERDUE", stBadTags: "BAD TAGS", stDue: "DUE", stOK: "OK", stUnmanaged: "UNMANAGED"}

// statusView is what the template renders.
type statusView struct {
	At, AtISO                   string
	Managed, Unmanaged, Overdue int
	BadTags, Due                int
	Errors                      []string
	Vaults                      []vaultView
	Scale                       []scaleMark
	PositionCSS                 template.CSS
}

type vaultView struct {
	Name             string
	Rows             []rowView
	Managed, Overdue int
}

type badge struct{ Class, Label string }

type rowView struct {
	Secret, Version, Provider string
	State                     string // one of the st* constants
	Badge                     badge
	Extra                     []badge // bad tags on an overdue secret, disabled
	Expires                   dateView
	Timeline                  *timelineView
	LastRotated               dateView
	LastTrigger               string
	Fails                     int
	FailedAt                  string
	Pending                   int
	PendingNext               string
	Action, Reason            string
	PolicyError               string
	// Window and Schedule are the secret's timing policy; NextWindow when its window next opens.
	Window, Schedule, NextWindow string
	Paused                       bool
	DisableVersions              int
	// Consumers are the secret's readers in Key Vault's audit log; NotMoved counts those whose last
	// read was not of the latest version.
	Consumers []consumerRow
	NotMoved  int
	// Emergency is the last leak response (when, source, what was done); EmergencyOpen when it did not
	// complete.
	Emergency     string
	EmergencyOpen bool
}

type consumerRow struct {
	Who, Last, Version string
	Current            bool
}

// dateView is a time as a short UTC text, its distance from the report's time, and the exact value.
type dateView struct {
	Set              bool
	Text, Rel, Exact string
	Past             bool
}

// timelineView places a secret's rotation point and expiry on the track (day positions 0…tlDays;
// "now" is at tlPastDays).
type timelineView struct {
	State          string
	Now            int
	Rot, Exp       int
	RotOn, ExpPast bool
	Band           *segment  // the rotation window: rotation point to expiry
	Late           *segment  // overdue: rotation point (or the track's start) to now
	ExpOff         string    // "before" or "after" when the expiry is off the track
	Windows        []segment // the days the rotation window opens, consecutive days merged
}

type segment struct{ Left, Width int }

type scaleMark struct {
	Pos   int
	Label string
}

func renderStatus(rep rotation.StatusReport) ([]byte, error) {
	var buf bytes.Buffer
	if err := statusPage().Execute(&buf, buildStatusView(rep)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func buildStatusView(rep rotation.StatusReport) statusView {
	at := rep.At
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC()
	v := statusView{At: at.Format("2006-01-02 15:04:05 UTC"), AtISO: at.Format(time.RFC3339), Overdue: rep.Overdue(),
		BadTags: rep.PolicyErrors(), Errors: rep.Errors, PositionCSS: positionCSS()}
	for d := 0; d <= tlDays; d += 30 {
		label := fmt.Sprintf("%+dd", d-tlPastDays)
		if d == tlPastDays {
			label = "now"
		}
		v.Scale = append(v.Scale, scaleMark{Pos: d, Label: strings.Replace(label, "-", "\u2212", 1)})
	}
	index := map[string]int{}
	for _, s := range rep.Secrets {
		row := buildRow(s, at)
		if s.Managed {
			v.Managed++
		} else {
			v.Unmanaged++
		}
		if row.State == stDue {
			v.Due++
		}
		i, ok := index[s.Vault]
		if !ok {
			i = len(v.Vaults)
			index[s.Vault] = i
			v.Vaults = append(v.Vaults, vaultView{Name: s.Vault})
		}
		vv := &v.Vaults[i]
		vv.Rows = append(vv.Rows, row)
		if s.Managed {
			vv.Managed++
		}
		if s.Overdue {
			vv.Overdue++
		}
	}
	// The engine sorts overdue secrets first; the page holds to that whatever the report's order.
	for i := range v.Vaults {
		slices.SortStableFunc(v.Vaults[i].Rows, func(a, b rowView) int {
			return cmp.Compare(rank(a.State == stOverdue), rank(b.State == stOverdue))
		})
	}
	return v
}

func rank(first bool) int {
	if first {
		return 0
	}
	return 1
}

func buildRow(s rotation.SecretStatus, at time.Time) rowView {
	r := rowView{Secret: s.Secret, Provider: s.Provider, Fails: s.Fails, Pending: len(s.Pending),
		Action: s.Action, Reason: s.Reason, PolicyError: s.PolicyError, LastTrigger: string(s.LastTrigger)}
	if s.Version != "" { // the list API gives none; shown when an adapter does
		r.Version = s.Version[:min(len(s.Version), 8)]
	}
	switch {
	case !s.Managed:
		r.State = stUnmanaged
	case s.Overdue:
		r.State = stOverdue
		if s.PolicyError != "" {
			r.Extra = append(r.Extra, badge{"b-" + stBadTags, stateLabels[stBadTags]})
		}
	case s.PolicyError != "":
		r.State = stBadTags
	case s.Due:
		r.State = stDue
	default:
		r.State = stOK
	}
	r.Badge = badge{"b-" + r.State, stateLabels[r.State]}
	if !s.Enabled {
		r.Extra = append(r.Extra, badge{"b-disabled", "DISABLED"})
	}
	r.Expires = dateAt(s.Expires, at)
	r.LastRotated = dateAt(s.LastRotated, at)
	if !s.State.FailedAt.IsZero() && s.Fails > 0 {
		r.FailedAt = s.State.FailedAt.UTC().Format(time.RFC3339)
	}
	if len(s.Pending) > 0 {
		next := slices.MinFunc(s.Pending, func(a, b rotation.Pending) int { return a.Due.Compare(b.Due) })
		r.PendingNext = next.Due.UTC().Format(time.RFC3339)
	}
	r.Window, r.Schedule, r.Paused, r.DisableVersions = s.Window, s.Schedule, s.Paused, len(s.DisableVersions)
	if n := len(s.Emergencies); n > 0 {
		em := s.Emergencies[n-1]
		r.Emergency = fmt.Sprintf("%s, %s: %s", em.At.UTC().Format("2006-01-02 15:04"), em.Source, em.Done)
		r.EmergencyOpen = s.OpenEmergency
		if s.OpenEmergency {
			r.Extra = append(r.Extra, badge{"b-emergency", "EMERGENCY"})
		}
	}
	for _, c := range s.Consumers {
		who := c.Reader
		if c.AppID != "" && c.AppID != c.Reader {
			who += " (app " + c.AppID + ")"
		}
		if c.Address != "" {
			who += " from " + c.Address
		}
		if !c.Current {
			r.NotMoved++
		}
		r.Consumers = append(r.Consumers, consumerRow{Who: who, Last: c.Last.UTC().Format("2006-01-02 15:04"), Version: c.Version, Current: c.Current})
	}
	if s.NextWindow != nil {
		r.NextWindow = s.NextWindow.UTC().Format("2006-01-02 15:04 UTC")
	}
	if s.Expires != nil {
		r.Timeline = buildTimeline(r.State, *s.Expires, s.RotateAt, at)
		r.Timeline.Windows = windowDays(s.Window, at)
	}
	return r
}

// windowDays places the openings of a rotation window on the track: a segment per run of days on
// which the window opens (a daily window is one segment across the track).
func windowDays(window string, at time.Time) []segment {
	if window == "" {
		return nil
	}
	w, err := rotation.ParseWindow(window)
	if err != nil {
		return nil
	}
	var days []int
	t := at.Add(-tlPastDays * 24 * time.Hour)
	for range 4 * tlDays { // at most one opening per day, with room for the odd short day
		start, end := w.Next(t)
		if start.IsZero() {
			break
		}
		p, off := dayPos(start, at)
		if off == "after" {
			break
		}
		if off == "" && (len(days) == 0 || days[len(days)-1] != p) {
			days = append(days, p)
		}
		t = end.Add(time.Second)
	}
	var segs []segment
	for _, d := range days {
		if n := len(segs); n > 0 && segs[n-1].Left+segs[n-1].Width == d {
			segs[n-1].Width++
			continue
		}
		segs = append(segs, segment{Left: d, Width: 1})
	}
	if n := len(segs); n > 0 && segs[n-1].Left+segs[n-1].Width > tlDays {
		segs[n-1].Width = tlDays - segs[n-1].Left
	}
	return segs
}

func dateAt(t *time.Time, at time.Time) dateView {
	if t == nil || t.IsZero() {
		return dateView{}
	}
	u := t.UTC()
	return dateView{Set: true, Text: u.Format("2006-01-02 15:04"), Rel: relative(u.Sub(at)), Exact: u.Format(time.RFC3339), Past: !u.After(at)}
}

// relative says how far a time is from the report's time: "in 19d", "5h ago".
func relative(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= 2*day:
		return fmt.Sprintf("in %dd", int(d/day))
	case d >= time.Hour:
		return fmt.Sprintf("in %dh", int(d/time.Hour))
	case d >= 0:
		return "within the hour"
	case d > -time.Hour:
		return "under an hour ago"
	case d > -2*day:
		return fmt.Sprintf("%dh ago", int(-d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(-d/day))
	}
}

// dayPos is t's position on the track in whole days, clamped to it; off says which side it fell off.
func dayPos(t, at time.Time) (pos int, off string) {
	d := t.Sub(at).Hours() / 24
	p := tlPastDays + int(d+0.5)
	if d < 0 {
		p = tlPastDays - int(-d+0.5)
	}
	switch {
	case p < 0:
		return 0, "before"
	case p > tlDays:
		return tlDays, "after"
	}
	return p, ""
}

func buildTimeline(state string, expires time.Time, rotateAt *time.Time, at time.Time) *timelineView {
	tl := &timelineView{State: state, Now: tlPastDays, ExpPast: !expires.After(at)}
	tl.Exp, tl.ExpOff = dayPos(expires, at)
	start := tl.Exp
	if rotateAt != nil {
		var off string
		tl.Rot, off = dayPos(*rotateAt, at)
		tl.RotOn = off == ""
		start = tl.Rot
	}
	if w := tl.Exp - start; w > 0 {
		tl.Band = &segment{Left: start, Width: w}
	}
	if state == stOverdue && start < tl.Now {
		tl.Late = &segment{Left: start, Width: tl.Now - start}
	}
	return tl
}
