package rotation

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/vocab"
)

// Tags kvrotator reads and writes. The Azure rotation samples' tags (CredentialId, ProviderAddress,
// ValidityPeriodDays) are honoured as they are, so secrets set up for those samples work unchanged.
const (
	TagProvider     = vocab.TagProvider               // opt-in: the provider's name
	TagCredentialID = vocab.TagCredentialID           // the slot, user or key id the current value belongs to
	TagAddress      = vocab.TagAddress                // ARM resource id, host, account
	TagValidity     = "ValidityPeriodDays"            // lifetime of each new version, in days
	TagGrace        = "rotation-grace-hours"          // how long a replaced credential stays valid (create-revoke providers)
	TagState        = "rotation-state"                // a mirror of kvrotator's journal for people; never read back
	TagWindow       = "rotation-window"               // when rotations may run: "Mon-Fri 02:00-04:00 Asia/Tokyo"
	TagSchedule     = "rotation-schedule"             // rotate on a schedule too: "every 30d", "CRON_TZ=Europe/Berlin 0 3 1 * *"
	TagMinInterval  = "rotation-min-interval"         // the least time between two rotations: "12h", "7d"
	TagPause        = "rotation-pause"                // "true": nothing is rotated or revoked, everything reported
	TagDisableOld   = "rotation-disable-old-versions" // "false": leave replaced versions enabled
	TagMaxGrace     = "rotation-max-grace-hours"      // with the audit log: revoke at the latest this long after the rotation
	maxTags         = 15                              // Key Vault's limit per secret
	maxTagValue     = 512                             // Key Vault's limit per tag value
	maxValidityDays = 3650
)

// Defaults are the app-wide settings a policy falls back on.
type Defaults struct {
	Validity time.Duration // when ValidityPeriodDays is absent
	Grace    time.Duration // when rotation-grace-hours is absent (see GraceSet)
	// GraceSet says Grace was given (so that zero means zero); unset, the engine uses 24 h.
	GraceSet       bool
	NearExpiryLead time.Duration // Key Vault's SecretNearExpiry lead time (30 days)
	// Window, Schedule and MinInterval apply when a secret has no tag of its own ("" and 0: none).
	Window      string
	Schedule    string
	MinInterval time.Duration
	// MaxGrace is how long after a rotation a revocation waits for the secret's readers to move to the
	// new version (Config.Usage) before it goes ahead anyway (default 7 days; never less than Grace).
	MaxGrace time.Duration
	// KeepOldVersions leaves replaced versions enabled when a secret has no rotation-disable-old-versions
	// tag (the zero value disables them once their credential is dead).
	KeepOldVersions bool
}

// Policy is a managed secret's rotation policy, read from its tags. Tags choose and time; they never
// carry kvrotator's own state (that is in the Journal).
type Policy struct {
	Provider     string
	CredentialID string // the CredentialId tag: the slot, user or key id a hand-made version holds
	Address      string
	Validity     time.Duration
	Grace        time.Duration
	// MaxGrace is the longest a revocation waits for readers that have not moved (with Config.Usage).
	MaxGrace time.Duration
	// Window, when set, is when rotations may run (events outside it are deferred to it).
	Window *Window
	// Schedule, when set, rotates the secret on a calendar as well as before it expires.
	Schedule *Schedule
	// MinInterval is the least time between two rotations (0: none).
	MinInterval time.Duration
	// Paused: nothing is rotated or revoked; the secret is still reported.
	Paused bool
	// DisableOld: a replaced version is disabled once the credential it holds is dead (revoked,
	// regenerated, reset) or, for generated values, once its grace period is over.
	DisableOld bool
}

// IsManaged reports whether the tags opt the secret in to rotation.
func IsManaged(tags map[string]string) bool { return tagValue(tags, TagProvider) != "" }

// providerOf is the rotation-provider tag as outcomes, logs and pages show it: the name when it looks
// like one, else quoted, so that a tag cannot write a line break or a fake field into a log line.
func providerOf(tags map[string]string) string {
	v := tagValue(tags, TagProvider)
	if len(v) <= 64 && !strings.ContainsFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) {
		return v
	}
	if len(v) > 64 {
		v = v[:64]
	}
	return strconv.Quote(v)
}

// tagValue reads a tag case-insensitively (Azure tag names are case-insensitive).
func tagValue(tags map[string]string, name string) string {
	return providers.Params(tags).Get(name)
}

// ParsePolicy reads the policy from a secret's tags. Every problem is a *providers.ConfigError naming
// the tag: a permanent failure, reported and never retried.
func ParsePolicy(tags map[string]string, d Defaults) (Policy, error) {
	p := Policy{
		Provider:     strings.ToLower(strings.TrimSpace(tagValue(tags, TagProvider))),
		CredentialID: strings.TrimSpace(tagValue(tags, TagCredentialID)),
		Address:      strings.TrimSpace(tagValue(tags, TagAddress)),
		Validity:     d.Validity,
		Grace:        d.Grace,
		DisableOld:   !d.KeepOldVersions,
	}
	if p.Provider == "" {
		return p, providers.ConfigErrorf(TagProvider, "", "missing: the secret is not managed")
	}
	params := providers.Params(tags)
	if dups := params.Duplicates(); len(dups) > 0 {
		var errs []error
		for _, d := range dups {
			errs = append(errs, providers.ConfigErrorf(d, "", "set more than once in different letter case; tag names are case-insensitive, keep one"))
		}
		return p, providers.JoinErrors(errs)
	}
	minDays := int(d.NearExpiryLead/(24*time.Hour)) + 1
	days, err := params.Int(TagValidity, int(d.Validity/(24*time.Hour)), 1, maxValidityDays)
	if err != nil {
		return p, err
	}
	if days < minDays {
		return p, providers.ConfigErrorf(TagValidity, strconv.Itoa(days),
			"must be at least %d: a new version must outlive the %d-day near-expiry window, or it would be due again at once", minDays, minDays-1)
	}
	p.Validity = time.Duration(days) * 24 * time.Hour
	hours, err := params.Int(TagGrace, int(d.Grace/time.Hour), 0, 24*90)
	if err != nil {
		return p, err
	}
	p.Grace = time.Duration(hours) * time.Hour
	maxHours, err := params.Int(TagMaxGrace, int(d.MaxGrace/time.Hour), 0, 24*90)
	if err != nil {
		return p, err
	}
	p.MaxGrace = max(time.Duration(maxHours)*time.Hour, p.Grace)
	var errs []error
	if s := textOr(params, TagWindow, d.Window); s != "" {
		w, err := ParseWindow(s)
		if err != nil {
			errs = append(errs, providers.ConfigErrorf(TagWindow, s, "%v", err))
		} else {
			p.Window = &w
		}
	}
	if s := textOr(params, TagSchedule, d.Schedule); s != "" {
		sc, err := ParseSchedule(s)
		if err != nil {
			errs = append(errs, providers.ConfigErrorf(TagSchedule, s, "%v", err))
		} else {
			p.Schedule = &sc
		}
	}
	p.MinInterval = d.MinInterval
	if s := strings.TrimSpace(params.Get(TagMinInterval)); s != "" {
		iv, err := ParseInterval(s)
		if err != nil {
			errs = append(errs, providers.ConfigErrorf(TagMinInterval, s, "%v", err))
		}
		p.MinInterval = iv
	}
	switch s := strings.ToLower(strings.TrimSpace(params.Get(TagPause))); s {
	case "", "false", "no", "0":
	case "true", "yes", "1":
		p.Paused = true
	default:
		errs = append(errs, providers.ConfigErrorf(TagPause, s, "want true or false"))
	}
	switch s := strings.ToLower(strings.TrimSpace(params.Get(TagDisableOld))); s {
	case "":
	case "true", "yes", "1":
		p.DisableOld = true
	case "false", "no", "0":
		p.DisableOld = false
	default:
		errs = append(errs, providers.ConfigErrorf(TagDisableOld, s, "want true or false"))
	}
	return p, providers.JoinErrors(errs)
}

// textOr is the trimmed tag, or def when the tag is absent.
func textOr(params providers.Params, tag, def string) string {
	if s := strings.TrimSpace(params.Get(tag)); s != "" {
		return s
	}
	return strings.TrimSpace(def)
}

// State is what kvrotator records about a secret in its Journal. The rotation-state tag mirrors it
// for people ("from=<version>;at=<unix>;by=<trigger>;revoke=<id>@<unix>,…;revoked=<unix>;started=<unix>;
// fails=<n>@<unix>"), but the engine never reads it back: a tag-writer could forge it.
type State struct {
	// Version is the latest version kvrotator wrote, and CredentialID the credential it holds as the
	// provider reported it. The engine trusts the CredentialId tag only for a version it did not write.
	Version      string `json:"version,omitempty"`
	CredentialID string `json:"credentialId,omitempty"`
	// Refs fingerprints the provider and references Version was written with (RefsKey): a credential
	// id recorded under other references (a tag since pointed elsewhere) is not trusted.
	Refs string    `json:"refs,omitempty"`
	From string    `json:"from,omitempty"` // the version Version replaced
	At   time.Time `json:"at,omitzero"`    // when Version was written
	By   Trigger   `json:"by,omitempty"`   // what triggered it
	// Pending are replaced credentials to revoke once their grace period is over. Only the engine adds
	// to it, and only credentials it replaced on this secret.
	Pending []Pending `json:"pending,omitempty"`
	Revoked time.Time `json:"revoked,omitzero"` // when the last revocation was done
	// Retire are replaced versions to disable once Due: only versions kvrotator replaced, never the
	// latest (Policy.DisableOld).
	Retire []Retire `json:"retire,omitempty"`
	// Emergencies are the last leak responses on this secret (Engine.Leak), newest last.
	Emergencies []Emergency `json:"emergencies,omitempty"`
	// Attempted is the version the marks below are about: they count only while it is the latest.
	Attempted string `json:"attempted,omitempty"`
	// AttemptedCreated is when Attempted was created: Key Vault's list pages carry no version ids, so
	// the sweep recognises the attempted version by its creation time.
	AttemptedCreated time.Time `json:"attemptedCreated,omitzero"`
	// Started is set just before a rotation of Attempted asks the provider for a new credential: if
	// that rotation dies, the sweep finishes it (same idempotency key, so the provider hands back what
	// it created instead of a second credential).
	Started time.Time `json:"started,omitzero"`
	// Writing is the credential a verified attempt is about to write as a new version; it lets the next
	// run recognise that version if the process died between the vault write and the journal's.
	Writing     string `json:"writing,omitempty"`
	WritingRefs string `json:"writingRefs,omitempty"`
	// WritingAt is when that write was sent: only a version created from then on (and, if the attempt
	// then failed, no later than the failure) can be the one it wrote.
	WritingAt time.Time `json:"writingAt,omitzero"`
	// Fails counts consecutive failed rotations of Attempted, the last at FailedAt; the sweep backs
	// off and reports the secret as failing instead of hammering the provider.
	Fails    int       `json:"fails,omitempty"`
	FailedAt time.Time `json:"failedAt,omitzero"`
}

// Pending is a replaced credential waiting for revocation.
type Pending struct {
	CredentialID string `json:"credentialId"`
	// Version is the version that held it: while that version is the latest, it is never revoked.
	Version string    `json:"version,omitempty"`
	Due     time.Time `json:"due"`
	// Refs fingerprints the provider and references in use when it was replaced: if they differ at
	// revocation time (the tags now point elsewhere), it is not revoked there.
	Refs string `json:"refs,omitempty"`
	// HandWritten: the id came from the CredentialId tag of a version kvrotator did not write; the
	// provider must prove it belongs to the retired value before revoking.
	HandWritten bool `json:"handWritten,omitempty"`
	// Fails counts revocations the provider refused for good; the entry is parked until NextTry
	// (back-off doubling from 10 min to 24 h) and reported each time.
	Fails   int       `json:"fails,omitempty"`
	NextTry time.Time `json:"nextTry,omitzero"`
	// Replaced is when the rotation that replaced it wrote the new version (the audit log's
	// before/after line; zero in entries older than the field: Due minus the grace stands in).
	Replaced time.Time `json:"replaced,omitzero"`
	// Waiting names the readers the revocation waited for at its last check (Config.Usage).
	Waiting []string `json:"waiting,omitempty"`
}

// Emergency is one leak response on a secret: when, who reported it, which version held the value, what
// was done, and whether it is still open (the response failed or the secret is paused).
type Emergency struct {
	At      time.Time `json:"at"`
	Source  string    `json:"source"`
	Version string    `json:"version,omitempty"`
	Done    string    `json:"done"`
	Open    bool      `json:"open,omitempty"`
}

// maxEmergencies bounds the leak responses a secret's state keeps.
const maxEmergencies = 5

// Retire is a replaced version waiting to be disabled.
type Retire struct {
	Version string    `json:"version"`
	Due     time.Time `json:"due"`
	// Fails counts refusals (a permanent vault error); the entry is parked until NextTry.
	Fails   int       `json:"fails,omitempty"`
	NextTry time.Time `json:"nextTry,omitzero"`
}

// maxRetire bounds the versions of one secret waiting to be disabled; beyond it the oldest entries
// are dropped (those versions stay enabled, which is what happens with the setting off).
const maxRetire = 16

// addRetire adds (or re-times) a version to disable: the later due time wins, so that a version is
// never disabled before the grace period of its last replacement is over.
func addRetire(list []Retire, r Retire) []Retire {
	out := append([]Retire(nil), list...)
	for i, q := range out {
		if strings.EqualFold(q.Version, r.Version) {
			if r.Due.After(q.Due) {
				out[i].Due = r.Due
			}
			return out
		}
	}
	out = append(out, r)
	if len(out) > maxRetire {
		out = out[len(out)-maxRetire:]
	}
	return out
}

// RefsKey fingerprints a provider name and the references a rotation uses.
func RefsKey(provider string, refs []providers.Reference) string {
	lines := make([]string, 0, len(refs)+1)
	lines = append(lines, "provider="+strings.ToLower(provider))
	for _, r := range refs {
		lines = append(lines, string(r.Kind)+"="+r.Value)
	}
	sort.Strings(lines[1:])
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:12])
}

// For returns st as it applies to latest version `version`: the attempt marks (Started, Writing, Fails)
// count only while the version they are about is the latest.
func (st State) For(version string) State {
	if version == "" || !strings.EqualFold(st.Attempted, version) {
		st.Attempted, st.AttemptedCreated, st.Started, st.Writing, st.WritingRefs, st.WritingAt, st.Fails, st.FailedAt = "", time.Time{}, time.Time{}, "", "", time.Time{}, 0, time.Time{}
	}
	return st
}

// ForLatest is For for the latest version's properties as a list page gives them: without a version
// id (Key Vault's list items have none), the attempted version is recognised by its creation time.
func (st State) ForLatest(p SecretProperties) State {
	if p.Version == "" && st.Attempted != "" && !st.AttemptedCreated.IsZero() && p.Created.Unix() == st.AttemptedCreated.Unix() {
		return st
	}
	return st.For(p.Version)
}

// ParseState reads the rotation-state mirror tag ("" is the zero State). The engine never uses it:
// it is for people and tools that want to read what the tag shows.
func ParseState(s string) (State, error) {
	var st State
	if strings.TrimSpace(s) == "" {
		return st, nil
	}
	bad := func(reason string) (State, error) {
		return State{}, providers.ConfigErrorf(TagState, s, "%s (this tag mirrors kvrotator's journal for people)", reason)
	}
	for _, part := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return bad("expected key=value pairs separated by ';'")
		}
		switch k {
		case "from":
			st.From = v
		case "at", "revoked", "started":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return bad(k + " is not a unix time")
			}
			t := time.Unix(n, 0).UTC()
			switch k {
			case "at":
				st.At = t
			case "revoked":
				st.Revoked = t
			default:
				st.Started = t
			}
		case "fails":
			count, at, ok := strings.Cut(v, "@")
			n, err1 := strconv.Atoi(count)
			u, err2 := strconv.ParseInt(at, 10, 64)
			if !ok || err1 != nil || err2 != nil || n < 0 {
				return bad("fails is <count>@<unix time>")
			}
			st.Fails, st.FailedAt = n, time.Unix(u, 0).UTC()
		case "by":
			st.By = Trigger(v)
		case "revoke":
			for _, item := range strings.Split(v, ",") {
				id, due, ok := strings.Cut(item, "@")
				n, err := strconv.ParseInt(due, 10, 64)
				if !ok || err != nil {
					return bad("revoke entries are <id>@<unix time>")
				}
				uid, err := url.QueryUnescape(id)
				if err != nil || uid == "" {
					return bad("revoke entry with an invalid credential id")
				}
				st.Pending = append(st.Pending, Pending{CredentialID: uid, Due: time.Unix(n, 0).UTC()})
			}
		default:
			// Unknown keys from a newer kvrotator are kept out rather than failing.
		}
	}
	return st, nil
}

// String encodes the state in the mirror tag's form.
func (st State) String() string { return st.encode(len(st.Pending)) }

// Mirror is String cut to fit one tag value: the oldest pending revocations beyond what fits are
// left out and counted ("more=<n>"); the journal keeps them all.
func (st State) Mirror() string {
	for n := len(st.Pending); ; n-- {
		if s := st.encode(n); len(s) <= maxTagValue || n == 0 {
			return s
		}
	}
}

func (st State) encode(pending int) string {
	var parts []string
	if st.From != "" {
		parts = append(parts, "from="+st.From)
	}
	if !st.At.IsZero() {
		parts = append(parts, "at="+strconv.FormatInt(st.At.Unix(), 10))
	}
	if st.By != "" {
		parts = append(parts, "by="+string(st.By))
	}
	if pending > 0 {
		items := make([]string, 0, pending)
		for _, p := range st.Pending[len(st.Pending)-pending:] {
			items = append(items, url.QueryEscape(p.CredentialID)+"@"+strconv.FormatInt(p.Due.Unix(), 10))
		}
		parts = append(parts, "revoke="+strings.Join(items, ","))
	}
	if more := len(st.Pending) - pending; more > 0 {
		parts = append(parts, "more="+strconv.Itoa(more))
	}
	if !st.Revoked.IsZero() {
		parts = append(parts, "revoked="+strconv.FormatInt(st.Revoked.Unix(), 10))
	}
	if !st.Started.IsZero() {
		parts = append(parts, "started="+strconv.FormatInt(st.Started.Unix(), 10))
	}
	if st.Fails > 0 {
		parts = append(parts, "fails="+strconv.Itoa(st.Fails)+"@"+strconv.FormatInt(st.FailedAt.Unix(), 10))
	}
	s := strings.Join(parts, ";")
	if len(s) > maxTagValue && pending == 0 {
		s = s[:maxTagValue] // only an absurd version id gets here; the mirror is for people
	}
	return s
}

// withTags returns a copy of tags with the named tags set (case-insensitively replacing existing
// spellings); an empty value removes the tag. It fails when the result breaks Key Vault's limits.
func withTags(tags map[string]string, set map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(tags)+len(set))
	for k, v := range tags {
		out[k] = v
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		for k := range out {
			if strings.EqualFold(k, name) {
				delete(out, k)
			}
		}
		if v := set[name]; v != "" {
			if len(v) > maxTagValue {
				return nil, providers.ConfigErrorf(name, "", "the value kvrotator must record is %d characters; Key Vault allows %d", len(v), maxTagValue)
			}
			out[name] = v
		}
	}
	if len(out) > maxTags {
		return nil, providers.ConfigErrorf(TagCredentialID, "",
			"the secret would carry %d tags; Key Vault allows %d and kvrotator needs room for %s (and, for people, %s)", len(out), maxTags, TagCredentialID, TagState)
	}
	return out, nil
}
