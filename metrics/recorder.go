package metrics

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/kvrotator/kvrotator/rotation"
)

// Metric names.
const (
	// MetricOutcomes counts outcomes: value and count are the number of outcomes in the window
	// (each outcome is a measurement of 1), so sum(valueSum) and sum(valueCount) both count them.
	MetricOutcomes = "kvrotator.outcomes"
	// MetricDuration is the duration of timed outcomes in milliseconds: value = sum, count, min,
	// max, stdDev (population) over the window.
	MetricDuration = "kvrotator.outcome.duration"
)

// Dimension (customDimensions) names.
const (
	DimKind     = "kind"
	DimProvider = "provider"
	DimTrigger  = "trigger"
	DimClass    = "class"
	DimVault    = "vault"
	// DimOverflow is "true" on the one series that collects observations past Options.MaxSeries.
	DimOverflow = "overflow"
)

// Values that replace what a dimension does not allow.
const (
	ValueOther = "other" // not in the allow-list, or past MaxSeries
	ValueNone  = "none"  // empty
)

// Defaults.
const (
	DefaultRoleName       = "kvrotator"
	DefaultInterval       = 60 * time.Second
	DefaultMaxSeries      = 1000
	DefaultMaxAttempts    = 4
	DefaultRetryDelay     = 2 * time.Second
	DefaultMaxRetryWait   = 2 * time.Minute
	DefaultAttemptTimeout = 30 * time.Second
	// MaxItemsPerRequest bounds one POST (the rest of a batch follows in further requests).
	MaxItemsPerRequest = 500
	maxDimLen          = 64
	maxBackoff         = 30 * time.Second
)

// Options configure a Recorder.
type Options struct {
	// ConnectionString is APPLICATIONINSIGHTS_CONNECTION_STRING. Empty disables metrics: New
	// returns a nil *Recorder, whose methods do nothing.
	ConnectionString string
	// Credential, when set, authenticates with Microsoft Entra ID (scope
	// "<audience>/.default", audience https://monitor.azure.com or the connection string's
	// AADAudience). The identity needs "Monitoring Metrics Publisher" on the component. Nil sends
	// with the instrumentation key only, which a component with local auth disabled refuses.
	Credential azcore.TokenCredential
	// Transport sends the requests; an *http.Client satisfies it (tests). Nil uses a client that
	// does not follow redirects itself (the Recorder does, keeping the token; see the package
	// documentation).
	Transport policy.Transporter
	// RoleName is the cloud role (cloud_RoleName), default "kvrotator"; RoleInstance the instance
	// (cloud_RoleInstance), default the host name.
	RoleName     string
	RoleInstance string
	// Interval is how often the background goroutine sends, default 60 s.
	Interval time.Duration
	// MaxSeries caps the distinct dimension sets kept per window, default 1,000.
	MaxSeries int
	// Providers, when set, is the allow-list of provider names for Observe/Publish (the registered
	// providers); any other provider is reported as "other". Nil lets any name through, trimmed to
	// 64 characters.
	Providers []string
	// Vaults, when set, adds the vault dimension for these vault names (the configured vaults);
	// any other vault is reported as "other". Nil: no vault dimension.
	Vaults []string
	// Logger receives a Warn record per dropped batch and per window with overflow; nil discards.
	Logger *slog.Logger
	// MaxAttempts bounds the attempts per batch, default 4.
	MaxAttempts int
	// RetryDelay is the base of the jittered exponential back-off between attempts (default 2 s;
	// each wait between half and all of RetryDelay·2^n, at most 30 s).
	RetryDelay time.Duration
	// MaxRetryWait: a Retry-After longer than this drops the batch instead of waiting (default 2 min).
	MaxRetryWait time.Duration
	// AttemptTimeout bounds one request, token acquisition included (default 30 s).
	AttemptTimeout time.Duration
	// Clock stamps the windows; nil is the wall clock.
	Clock rotation.Clock
}

// Stats are a Recorder's counters since New.
type Stats struct {
	Observations uint64 // Record/Observe/Publish calls taken
	Overflowed   uint64 // of them, folded into the overflow series (MaxSeries reached)
	Series       int    // dimension sets in the current window
	Requests     uint64 // POSTs made
	Sent         uint64 // telemetry items the endpoint accepted
	Retried      uint64 // telemetry items sent again
	Dropped      uint64 // telemetry items given up on
}

// Recorder aggregates outcome metrics and sends them to Application Insights. It implements
// rotation.Publisher. All methods are safe for concurrent use, and a nil *Recorder does nothing.
type Recorder struct {
	conn      ConnectionString
	pipeline  runtime.Pipeline
	log       *slog.Logger
	clock     rotation.Clock
	tags      map[string]string
	providers map[string]string // lower-case → canonical; nil: any
	vaults    map[string]string // lower-case → canonical; nil: no vault dimension

	interval       time.Duration
	maxSeries      int
	maxAttempts    int
	retryDelay     time.Duration
	maxRetryWait   time.Duration
	attemptTimeout time.Duration

	mu          sync.Mutex
	cur         map[seriesKey]*aggregate
	windowStart time.Time
	overflowed  uint64 // in the current window
	carry       [][]byte
	closed      bool

	epMu     sync.Mutex
	endpoint string // base URL; a redirect moves it

	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	loopCtx   context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error

	nObs, nOverflow, nReq, nSent, nRetried, nDropped atomic.Uint64
}

var _ rotation.Publisher = (*Recorder)(nil)

type seriesKey struct {
	kind, provider, trigger, class, vault string
	overflow                              bool
}

type aggregate struct {
	n             int64   // outcomes
	timed         int64   // of them with a duration
	sum, min, max float64 // milliseconds
	mean, m2      float64 // Welford's running mean and sum of squared deviations
}

// New validates o and starts the background sender. It makes no network call and fetches no token.
// With an empty connection string it returns nil, nil: metrics are off and the nil *Recorder's
// methods do nothing.
func New(o Options) (*Recorder, error) {
	if strings.TrimSpace(o.ConnectionString) == "" {
		return nil, nil
	}
	conn, err := ParseConnectionString(o.ConnectionString)
	if err != nil {
		return nil, err
	}
	if o.Interval < 0 || o.MaxSeries < 0 || o.MaxAttempts < 0 || o.RetryDelay < 0 || o.MaxRetryWait < 0 || o.AttemptTimeout < 0 {
		return nil, errors.New("metrics: Options durations and counts must not be negative")
	}
	r := &Recorder{
		conn:           conn,
		endpoint:       conn.IngestionEndpoint,
		log:            o.Logger,
		clock:          o.Clock,
		interval:       cmp.Or(o.Interval, DefaultInterval),
		maxSeries:      cmp.Or(o.MaxSeries, DefaultMaxSeries),
		maxAttempts:    cmp.Or(o.MaxAttempts, DefaultMaxAttempts),
		retryDelay:     cmp.Or(o.RetryDelay, DefaultRetryDelay),
		maxRetryWait:   cmp.Or(o.MaxRetryWait, DefaultMaxRetryWait),
		attemptTimeout: cmp.Or(o.AttemptTimeout, DefaultAttemptTimeout),
		cur:            map[seriesKey]*aggregate{},
		stop:           make(chan struct{}),
		done:           make(chan struct{}),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.clock == nil {
		r.clock = rotation.SystemClock{}
	}
	role := cmp.Or(strings.TrimSpace(o.RoleName), DefaultRoleName)
	instance := strings.TrimSpace(o.RoleInstance)
	if instance == "" {
		instance, _ = os.Hostname()
	}
	r.tags = map[string]string{"ai.cloud.role": role, "ai.internal.sdkVersion": sdkVersion}
	if instance != "" {
		r.tags["ai.cloud.roleInstance"] = instance
	}
	if o.Providers != nil {
		r.providers = allowList(o.Providers)
	}
	if o.Vaults != nil {
		r.vaults = allowList(o.Vaults)
	}

	transport := o.Transport
	if transport == nil {
		transport = defaultClient()
	}
	var perRetry []policy.Policy
	if o.Credential != nil {
		// azcore's bearer policy caches and refreshes the token and refuses to send it over http.
		perRetry = append(perRetry, runtime.NewBearerTokenPolicy(o.Credential, []string{conn.Scope()}, nil))
	}
	r.pipeline = runtime.NewPipeline("kvrotator/metrics", sdkVersion, runtime.PipelineOptions{PerRetry: perRetry},
		&policy.ClientOptions{Transport: transport, Retry: policy.RetryOptions{MaxRetries: -1}})

	r.windowStart = r.clock.Now()
	r.loopCtx, r.cancel = context.WithCancel(context.Background())
	go r.loop()
	return r, nil
}

const sdkVersion = "go:kvrotator-metrics-1"

func allowList(names []string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			m[strings.ToLower(n)] = clean(n)
		}
	}
	return m
}

// defaultClient is http.DefaultTransport's settings (proxy from the environment, keep-alives, Go's
// TLS 1.2 minimum) with redirects returned to the Recorder, which follows them keeping the token.
func defaultClient() *http.Client {
	var t http.RoundTripper = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	if d, ok := http.DefaultTransport.(*http.Transport); ok {
		t = d.Clone()
	}
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Record counts one outcome of kind for provider and, when d >= 0, records its duration; a negative
// d counts without a duration. Dimensions are trimmed to 64 printable characters (empty: "none").
// It never blocks on I/O.
func (r *Recorder) Record(kind, provider string, d time.Duration) {
	if r == nil {
		return
	}
	r.add(seriesKey{kind: clean(kind), provider: clean(provider)}, float64(d)/float64(time.Millisecond), d >= 0)
}

// Observe records an outcome: counted under its kind, provider, trigger, class (failures only) and,
// with Options.Vaults, vault; timed when it carries a duration (DurationMS > 0: sweep reports such
// as overdue are counted, not timed). Secret names, reasons and errors are never used.
func (r *Recorder) Observe(o rotation.Outcome) {
	if r == nil {
		return
	}
	k := seriesKey{
		kind:     kindOf(o.Kind),
		provider: r.provider(o.Provider),
		trigger:  triggerOf(o.Trigger),
	}
	if o.Kind == rotation.KindFailed || o.Kind == rotation.KindRefreshFailed {
		k.class = classOf(o.Class)
	}
	if r.vaults != nil {
		k.vault = pick(r.vaults, o.Vault)
	}
	r.add(k, float64(o.DurationMS), o.DurationMS > 0)
}

// Publish implements rotation.Publisher: it observes o and returns nil at once. Add the Recorder to
// the app's publishers; it never fails or slows a rotation.
func (r *Recorder) Publish(_ context.Context, o rotation.Outcome) error {
	r.Observe(o)
	return nil
}

func (r *Recorder) add(k seriesKey, ms float64, timed bool) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	a := r.cur[k]
	if a == nil {
		if len(r.cur) >= r.maxSeries {
			k = seriesKey{kind: ValueOther, provider: ValueOther, overflow: true}
			a = r.cur[k]
			r.overflowed++
			r.nOverflow.Add(1)
		}
		if a == nil {
			a = &aggregate{}
			r.cur[k] = a
		}
	}
	a.n++
	if timed && !math.IsNaN(ms) {
		a.timed++
		a.sum += ms
		if a.timed == 1 || ms < a.min {
			a.min = ms
		}
		if a.timed == 1 || ms > a.max {
			a.max = ms
		}
		delta := ms - a.mean
		a.mean += delta / float64(a.timed)
		a.m2 += delta * (ms - a.mean)
	}
	r.mu.Unlock()
	r.nObs.Add(1)
}

// Stats returns the counters; a nil Recorder's are zero.
func (r *Recorder) Stats() Stats {
	if r == nil {
		return Stats{}
	}
	r.mu.Lock()
	n := len(r.cur)
	r.mu.Unlock()
	return Stats{
		Observations: r.nObs.Load(),
		Overflowed:   r.nOverflow.Load(),
		Series:       n,
		Requests:     r.nReq.Load(),
		Sent:         r.nSent.Load(),
		Retried:      r.nRetried.Load(),
		Dropped:      r.nDropped.Load(),
	}
}

// Flush sends what was recorded so far now, with retries bounded by ctx and Options.MaxAttempts. It
// returns an error when items were dropped. The background goroutine flushes on its own; Flush is
// for tests and for callers that want the numbers out before a pause.
func (r *Recorder) Flush(ctx context.Context) error {
	if r == nil {
		return nil
	}
	_, err := r.transmit(ctx, r.swap(false), nil)
	return err
}

// Close stops the background goroutine and sends what is left, within ctx. It waits for a send in
// progress (cancelling it when ctx ends first); a batch waiting to be retried is sent again at once.
// Later Records are ignored. It returns an error when items were dropped. Close is idempotent.
func (r *Recorder) Close(ctx context.Context) error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		r.stopOnce.Do(func() { close(r.stop) })
		select {
		case <-r.done:
		case <-ctx.Done():
			r.cancel()
			<-r.done
		}
		r.cancel()
		_, r.closeErr = r.transmit(ctx, r.swap(true), nil)
	})
	return r.closeErr
}

// loop sends every interval until Close. Items it could not finish because Close stopped it or
// cancelled its context are carried to Close's final send.
func (r *Recorder) loop() {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			left, _ := r.transmit(r.loopCtx, r.swap(false), r.stop)
			if len(left) > 0 {
				r.mu.Lock()
				r.carry = append(r.carry, left...)
				r.mu.Unlock()
				return
			}
		}
	}
}

// swap takes the window's aggregates (and any carried items) as encoded envelopes and starts a new
// window; final also closes the Recorder to further observations.
func (r *Recorder) swap(final bool) [][]byte {
	now := r.clock.Now()
	r.mu.Lock()
	cur, start, overflowed, carry := r.cur, r.windowStart, r.overflowed, r.carry
	r.cur, r.windowStart, r.overflowed, r.carry = map[seriesKey]*aggregate{}, now, 0, nil
	if final {
		r.closed = true
	}
	r.mu.Unlock()

	if overflowed > 0 {
		r.log.Warn("metrics: too many distinct dimension sets; observations folded into the overflow series",
			"max_series", r.maxSeries, "observations", overflowed, "window_start", start.UTC().Format(time.RFC3339))
	}
	keys := make([]seriesKey, 0, len(cur))
	for k := range cur {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	items := carry
	for _, k := range keys {
		items = append(items, r.envelopes(k, cur[k], start)...)
	}
	return items
}

func (k seriesKey) less(o seriesKey) bool {
	a := [...]string{k.kind, k.provider, k.trigger, k.class, k.vault}
	b := [...]string{o.kind, o.provider, o.trigger, o.class, o.vault}
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return !k.overflow && o.overflow
}

func (r *Recorder) provider(p string) string {
	if r.providers == nil {
		return clean(p)
	}
	return pick(r.providers, p)
}

// pick maps a name through an allow-list: "none" when empty, "other" when not listed.
func pick(allowed map[string]string, v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ValueNone
	}
	if c, ok := allowed[strings.ToLower(v)]; ok {
		return c
	}
	return ValueOther
}

func kindOf(k rotation.Kind) string {
	switch k {
	case rotation.KindRotated, rotation.KindSkipped, rotation.KindFailed, rotation.KindRevoked,
		rotation.KindOverdue, rotation.KindPlanned, rotation.KindRefreshed, rotation.KindRefreshFailed, rotation.KindEmergency:
		return string(k)
	case "":
		return ValueNone
	}
	return ValueOther
}

func triggerOf(t rotation.Trigger) string {
	switch t {
	case rotation.TriggerEvent, rotation.TriggerTimer, rotation.TriggerManual:
		return string(t)
	case "":
		return ValueNone
	}
	return ValueOther
}

func classOf(c rotation.Class) string {
	switch c {
	case rotation.ClassTransient, rotation.ClassPermanent:
		return string(c)
	case "":
		return ValueNone
	}
	return ValueOther
}

// clean makes a dimension value: trimmed, printable ASCII letters, digits and ".-_:/" kept (others
// become "_"), at most 64 characters, "none" when empty.
func clean(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ValueNone
	}
	ok := len(s) <= maxDimLen
	for i := 0; ok && i < len(s); i++ {
		ok = dimByte(s[i])
	}
	if ok {
		return s
	}
	b := make([]byte, 0, maxDimLen)
	for i := 0; i < len(s) && len(b) < maxDimLen; i++ {
		c := s[i]
		if c >= 0x80 {
			// Skip the rest of a multi-byte rune, writing one "_" for it.
			for i+1 < len(s) && s[i+1]&0xC0 == 0x80 {
				i++
			}
			c = '_'
		} else if !dimByte(c) {
			c = '_'
		}
		b = append(b, c)
	}
	return string(b)
}

func dimByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '-' || c == '_' || c == ':' || c == '/'
}
