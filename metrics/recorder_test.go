package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/metrics"
	"github.com/kvrotator/kvrotator/rotation"
)

// newRecorder makes a Recorder sending to in with fast retries; mod adjusts the options.
func newRecorder(t *testing.T, in *ingest, mod func(*metrics.Options)) *metrics.Recorder {
	t.Helper()
	o := metrics.Options{
		ConnectionString: in.connString(),
		Transport:        in.client(),
		Interval:         time.Hour, // tests flush explicitly unless they set it
		RetryDelay:       5 * time.Millisecond,
		AttemptTimeout:   5 * time.Second,
	}
	if mod != nil {
		mod(&o)
	}
	r, err := metrics.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Close(ctx)
	})
	return r
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

func TestDisabledRecorderIsNoOp(t *testing.T) {
	r, err := metrics.New(metrics.Options{})
	if r != nil || err != nil {
		t.Fatalf("New without a connection string = %v, %v; want nil, nil", r, err)
	}
	var p rotation.Publisher = r
	if err := p.Publish(context.Background(), rotation.Outcome{Kind: rotation.KindRotated}); err != nil {
		t.Fatal(err)
	}
	r.Record("rotated", "x", time.Second)
	r.Observe(rotation.Outcome{Kind: rotation.KindFailed})
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s != (metrics.Stats{}) {
		t.Fatalf("nil Recorder stats %+v", s)
	}
}

func TestNewRejectsMalformedConnectionString(t *testing.T) {
	if _, err := metrics.New(metrics.Options{ConnectionString: "InstrumentationKey=nope"}); err == nil {
		t.Fatal("New accepted a malformed connection string")
	}
	if _, err := metrics.New(metrics.Options{ConnectionString: "InstrumentationKey=" + testIKey, Interval: -1}); err == nil {
		t.Fatal("New accepted a negative interval")
	}
}

func TestNewAndIdleCloseMakeNoRequest(t *testing.T) {
	in := newIngest(t)
	cred := &fakeCred{}
	r := newRecorder(t, in, func(o *metrics.Options) { o.Credential = cred })
	if err := r.Close(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(in.requests()); n != 0 || cred.calls != 0 {
		t.Fatalf("%d requests, %d token requests with nothing recorded", n, cred.calls)
	}
}

func TestFlushSendsAggregatesPerKindAndProvider(t *testing.T) {
	in := newIngest(t)
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	r := newRecorder(t, in, func(o *metrics.Options) {
		o.Clock = fixedClock{t0}
		o.RoleInstance = "instance-1"
	})
	pub := rotation.Publisher(r)
	for _, ms := range []int64{10, 20, 30} {
		_ = pub.Publish(context.Background(), rotation.Outcome{Kind: rotation.KindRotated, Provider: "postgres", Trigger: rotation.TriggerTimer, DurationMS: ms})
	}
	_ = pub.Publish(context.Background(), rotation.Outcome{Kind: rotation.KindRotated, Provider: "postgres", Trigger: rotation.TriggerEvent, DurationMS: 100})
	_ = pub.Publish(context.Background(), rotation.Outcome{Kind: rotation.KindFailed, Provider: "postgres", Trigger: rotation.TriggerTimer, Class: rotation.ClassTransient, DurationMS: 7})
	_ = pub.Publish(context.Background(), rotation.Outcome{Kind: rotation.KindFailed, Provider: "storage", Trigger: rotation.TriggerTimer, Class: rotation.ClassPermanent, DurationMS: 3})
	_ = pub.Publish(context.Background(), rotation.Outcome{Kind: rotation.KindOverdue, Provider: "storage", Trigger: rotation.TriggerTimer}) // counted, not timed
	r.Record("revoked", "storage", 40*time.Millisecond)
	r.Record("revoked", "storage", -1) // counted, not timed

	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	reqs := in.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	ps := in.points()
	for _, p := range ps {
		if p.time != "2026-03-04T05:06:07.89Z" {
			t.Errorf("time %s, want the window start", p.time)
		}
		if p.tags["ai.cloud.roleInstance"] != "instance-1" {
			t.Errorf("tags %v", p.tags)
		}
	}
	check := func(name string, dims map[string]string, value, count float64) {
		t.Helper()
		v, c := sum(ps, name, dims)
		if math.Abs(v-value) > 1e-9 || c != count {
			t.Errorf("%s %v: value %v count %v, want %v %v", name, dims, v, c, value, count)
		}
	}
	check(metrics.MetricOutcomes, map[string]string{"kind": "rotated", "provider": "postgres"}, 4, 4)
	check(metrics.MetricOutcomes, map[string]string{"kind": "rotated", "provider": "postgres", "trigger": "timer"}, 3, 3)
	check(metrics.MetricDuration, map[string]string{"kind": "rotated", "provider": "postgres"}, 160, 4)
	check(metrics.MetricOutcomes, map[string]string{"kind": "failed"}, 2, 2)
	check(metrics.MetricOutcomes, map[string]string{"kind": "failed", "class": "transient"}, 1, 1)
	check(metrics.MetricOutcomes, map[string]string{"kind": "failed", "class": "permanent", "provider": "storage"}, 1, 1)
	check(metrics.MetricOutcomes, map[string]string{"kind": "overdue"}, 1, 1)
	check(metrics.MetricDuration, map[string]string{"kind": "overdue"}, 0, 0)
	check(metrics.MetricOutcomes, map[string]string{"kind": "revoked", "provider": "storage"}, 2, 2)
	check(metrics.MetricDuration, map[string]string{"kind": "revoked", "provider": "storage"}, 40, 1)

	// The timer rotations' duration aggregate: 10, 20, 30 ms.
	for _, p := range ps {
		if p.name == metrics.MetricDuration && p.props["kind"] == "rotated" && p.props["trigger"] == "timer" {
			if p.value != 60 || p.count != 3 || p.min != 10 || p.max != 30 || math.Abs(p.stdev-math.Sqrt(200.0/3)) > 1e-9 {
				t.Errorf("duration aggregate %+v, want sum 60 count 3 min 10 max 30 stdDev %.4f", p, math.Sqrt(200.0/3))
			}
		}
		if p.name == metrics.MetricOutcomes && (p.min != 1 || p.max != 1 || p.value != p.count) {
			t.Errorf("counter %+v: want each outcome a measurement of 1", p)
		}
		if _, ok := p.props["class"]; ok && p.props["kind"] != "failed" {
			t.Errorf("class on a %s outcome: %v", p.props["kind"], p.props)
		}
	}
	if s := r.Stats(); s.Observations != 9 || s.Sent != uint64(len(ps)) || s.Dropped != 0 || s.Requests != 1 || s.Series != 0 {
		t.Errorf("stats %+v", s)
	}

	// The next window starts empty.
	if err := r.Flush(ctx5(t)); err != nil || len(in.requests()) != 1 {
		t.Fatalf("an empty window was sent (err %v, %d requests)", err, len(in.requests()))
	}
}

func TestIntervalFlushesInTheBackground(t *testing.T) {
	in := newIngest(t)
	r := newRecorder(t, in, func(o *metrics.Options) { o.Interval = 20 * time.Millisecond })
	r.Record("rotated", "p", time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for len(in.requests()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing sent within 5 s at a 20 ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v, _ := sum(in.points(), metrics.MetricOutcomes, nil); v != 1 {
		t.Fatalf("outcomes %v, want 1", v)
	}
}

func TestCloseFlushesAndStopsRecording(t *testing.T) {
	in := newIngest(t)
	r := newRecorder(t, in, nil)
	r.Record("rotated", "p", time.Millisecond)
	r.Record("skipped", "p", time.Millisecond)
	if err := r.Close(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if v, _ := sum(in.points(), metrics.MetricOutcomes, nil); v != 2 {
		t.Fatalf("Close sent %v outcomes, want 2", v)
	}
	r.Record("rotated", "p", time.Millisecond)
	if err := r.Close(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if n := len(in.requests()); n != 1 {
		t.Fatalf("%d requests after Close, want 1", n)
	}
	if s := r.Stats(); s.Observations != 2 {
		t.Fatalf("a Record after Close was taken: %+v", s)
	}
}

// A blocked endpoint holds the background goroutine, never Record: 100,000 calls finish while the
// endpoint's handler is still blocked, and every one of them arrives once it answers.
func TestRecordNeverBlocksOnASlowEndpoint(t *testing.T) {
	in := newIngest(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var once atomic.Bool
	in.setHandler(func(w http.ResponseWriter, r *http.Request, _ []map[string]any) bool {
		if once.CompareAndSwap(false, true) {
			close(entered)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		return false
	})
	r := newRecorder(t, in, func(o *metrics.Options) { o.Interval = 10 * time.Millisecond })
	r.Record("rotated", "p", time.Millisecond)
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the background flush never reached the endpoint")
	}

	const calls = 100_000
	start := time.Now()
	for i := range calls {
		r.Record("rotated", fmt.Sprintf("p%d", i%5), time.Duration(i%1000)*time.Microsecond)
	}
	elapsed := time.Since(start)
	select {
	case <-release:
		t.Fatal("released early")
	default:
	}
	if done := len(in.requests()); done != 1 {
		t.Fatalf("%d requests while the endpoint is blocked, want the 1 in flight", done)
	}
	t.Logf("%d Record calls in %s while the endpoint was blocked (%.0f ns each)", calls, elapsed, float64(elapsed.Nanoseconds())/calls)
	if elapsed > 3*time.Second {
		t.Errorf("%d Record calls took %s while the endpoint was blocked", calls, elapsed)
	}
	if s := r.Stats(); s.Observations != calls+1 {
		t.Errorf("observations %d, want %d", s.Observations, calls+1)
	}
	close(release)
	if err := r.Close(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if v, _ := sum(in.points(), metrics.MetricOutcomes, nil); v != calls+1 {
		t.Fatalf("%v outcomes arrived, want %d", v, calls+1)
	}
}

func TestCloseIsBoundedByItsContext(t *testing.T) {
	in := newIngest(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	in.setHandler(func(w http.ResponseWriter, r *http.Request, _ []map[string]any) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return false
	})
	logs := &logBuf{}
	r := newRecorder(t, in, func(o *metrics.Options) { o.Interval = 10 * time.Millisecond; o.Logger = logs.logger() })
	r.Record("rotated", "p", time.Millisecond)
	for len(in.requests()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.Close(ctx)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s with a 200 ms context", took)
	}
	if err == nil || r.Stats().Dropped == 0 || !strings.Contains(logs.String(), "telemetry items dropped") {
		t.Fatalf("Close = %v, stats %+v, logs %s: want the unsent items dropped and reported", err, r.Stats(), logs)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	in := newIngest(t)
	in.then(status(http.StatusTooManyRequests, "Retry-After", "1"))
	r := newRecorder(t, in, nil)
	r.Record("rotated", "p", time.Millisecond)
	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	reqs := in.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 429 then a retry", len(reqs))
	}
	if gap := reqs[1].at.Sub(reqs[0].at); gap < 900*time.Millisecond {
		t.Fatalf("retried after %s, want Retry-After's 1 s", gap)
	}
	if string(reqs[0].raw) != string(reqs[1].raw) {
		t.Fatal("the retry sent different items")
	}
	if s := r.Stats(); s.Sent != 2 || s.Retried != 2 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRetryAfterTooLongDrops(t *testing.T) {
	in := newIngest(t)
	in.then(status(http.StatusServiceUnavailable, "Retry-After", "600"))
	r := newRecorder(t, in, func(o *metrics.Options) { o.MaxRetryWait = time.Second })
	r.Record("rotated", "p", -1)
	err := r.Flush(ctx5(t))
	if err == nil || !strings.Contains(err.Error(), "Retry-After") || len(in.requests()) != 1 || r.Stats().Dropped != 1 {
		t.Fatalf("Flush = %v, %d requests, stats %+v", err, len(in.requests()), r.Stats())
	}
}

// 206: retryable items are sent again, alone; rejected ones are dropped and counted.
func TestPartialSuccessRetriesOnlyRetryableItems(t *testing.T) {
	in := newIngest(t)
	in.then(partial(map[int]int{0: 500, 2: 400}))
	logs := &logBuf{}
	r := newRecorder(t, in, func(o *metrics.Options) { o.Logger = logs.logger() })
	r.Record("failed", "b", -1)                   // item 0: failed/b outcomes
	r.Record("rotated", "a", 10*time.Millisecond) // items 1, 2: rotated/a outcomes and duration
	err := r.Flush(ctx5(t))
	reqs := in.requests()
	if len(reqs) != 2 || len(reqs[0].items) != 3 || len(reqs[1].items) != 1 {
		t.Fatalf("requests %d (items %v), want 3 items then the 1 retryable one", len(reqs), len(reqs[0].items))
	}
	if toPoint(reqs[1].items[0]).props["kind"] != "failed" {
		t.Fatalf("retried %v, want item 0", reqs[1].items[0])
	}
	if s := r.Stats(); s.Sent != 2 || s.Retried != 1 || s.Dropped != 1 {
		t.Fatalf("stats %+v", s)
	}
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(logs.String(), "items=1") {
		t.Fatalf("Flush = %v; logs %s", err, logs)
	}
}

func TestServerErrorsRetriedThenDropped(t *testing.T) {
	in := newIngest(t)
	in.then(status(500), status(502), status(503), status(500))
	logs := &logBuf{}
	r := newRecorder(t, in, func(o *metrics.Options) { o.MaxAttempts = 3; o.Logger = logs.logger() })
	r.Record("rotated", "p", time.Millisecond)
	err := r.Flush(ctx5(t))
	if n := len(in.requests()); n != 3 {
		t.Fatalf("%d requests, want MaxAttempts (3)", n)
	}
	s := r.Stats()
	if err == nil || s.Dropped != 2 || s.Sent != 0 || s.Retried != 4 {
		t.Fatalf("Flush = %v, stats %+v", err, s)
	}
	if !strings.Contains(logs.String(), "telemetry items dropped") || !strings.Contains(logs.String(), "dropped_total=2") {
		t.Fatalf("no drop warning: %s", logs)
	}
}

func TestNetworkErrorIsRetried(t *testing.T) {
	in := newIngest(t)
	var n atomic.Int32
	in.setHandler(func(http.ResponseWriter, *http.Request, []map[string]any) bool {
		if n.Add(1) == 1 {
			panic(http.ErrAbortHandler) // the connection drops without an answer
		}
		return false
	})
	r := newRecorder(t, in, nil)
	r.Record("rotated", "p", -1)
	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); len(in.requests()) != 2 || s.Sent != 1 || s.Retried != 1 {
		t.Fatalf("%d requests, stats %+v", len(in.requests()), s)
	}
}

func TestFinalAnswersAreNotRetried(t *testing.T) {
	for _, code := range []int{400, 402, 404, 439} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			in := newIngest(t)
			in.then(status(code))
			r := newRecorder(t, in, nil)
			r.Record("rotated", "p", -1)
			err := r.Flush(ctx5(t))
			if err == nil || len(in.requests()) != 1 || r.Stats().Dropped != 1 {
				t.Fatalf("Flush = %v, %d requests, stats %+v", err, len(in.requests()), r.Stats())
			}
			if (code == 402 || code == 439) && !strings.Contains(err.Error(), "daily cap") {
				t.Errorf("error %v does not explain the quota", err)
			}
		})
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct{ extra, scope string }{
		{"", "https://monitor.azure.com/.default"},
		{";AADAudience=https://monitor.azure.us/", "https://monitor.azure.us/.default"},
	} {
		in := newIngest(t)
		cred := &fakeCred{}
		r := newRecorder(t, in, func(o *metrics.Options) { o.ConnectionString = in.connString() + tc.extra; o.Credential = cred })
		r.Record("rotated", "p", -1)
		if err := r.Flush(ctx5(t)); err != nil {
			t.Fatal(err)
		}
		reqs := in.requests()
		if len(reqs) != 1 || reqs[0].auth != "Bearer test-token-123" {
			t.Fatalf("Authorization %q", reqs[0].auth)
		}
		if len(cred.scopes) != 1 || cred.scopes[0] != tc.scope {
			t.Fatalf("scopes %v, want [%s]", cred.scopes, tc.scope)
		}
	}
}

func TestNoAuthorizationWithoutCredential(t *testing.T) {
	in := newIngest(t)
	r := newRecorder(t, in, nil)
	r.Record("rotated", "p", -1)
	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if a := in.requests()[0].auth; a != "" {
		t.Fatalf("Authorization %q without a credential", a)
	}
}

// With local auth disabled and no (or an unauthorised) identity, ingestion answers 401/403: retried
// (a role assignment may still be propagating), then dropped with a hint at the role.
func TestUnauthorizedRetriedThenDroppedWithHint(t *testing.T) {
	in := newIngest(t)
	in.then(status(401), status(401))
	logs := &logBuf{}
	r := newRecorder(t, in, func(o *metrics.Options) { o.Credential = &fakeCred{}; o.MaxAttempts = 2; o.Logger = logs.logger() })
	r.Record("rotated", "p", -1)
	err := r.Flush(ctx5(t))
	if len(in.requests()) != 2 || err == nil || !strings.Contains(err.Error(), "Monitoring Metrics Publisher") {
		t.Fatalf("%d requests, Flush = %v", len(in.requests()), err)
	}
	if !strings.Contains(logs.String(), "Monitoring Metrics Publisher") {
		t.Fatalf("log has no hint: %s", logs)
	}
	for _, q := range in.requests() {
		if q.auth != "Bearer test-token-123" {
			t.Fatalf("Authorization %q", q.auth)
		}
	}
}

// A 308 moves the endpoint to the Location's host (with the token), and later sends go there directly.
func TestRedirectMovesTheEndpoint(t *testing.T) {
	to := newIngest(t)
	var redirected atomic.Int32
	from := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, to.srv.URL+"/v2.1/track", http.StatusPermanentRedirect)
	}))
	t.Cleanup(from.Close)
	cred := &fakeCred{}
	r := newRecorder(t, to, func(o *metrics.Options) {
		o.ConnectionString = "InstrumentationKey=" + testIKey + ";IngestionEndpoint=" + from.URL
		o.Credential = cred
	})
	for range 2 {
		r.Record("rotated", "p", -1)
		if err := r.Flush(ctx5(t)); err != nil {
			t.Fatal(err)
		}
	}
	if redirected.Load() != 1 || len(to.requests()) != 2 || to.requests()[0].auth != "Bearer test-token-123" {
		t.Fatalf("redirects %d, requests at the target %d", redirected.Load(), len(to.requests()))
	}
}

func TestRedirectLoopIsDropped(t *testing.T) {
	var n atomic.Int32
	var loop *httptest.Server
	loop = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, loop.URL+"/v2.1/track", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(loop.Close)
	in := newIngest(t)
	r := newRecorder(t, in, func(o *metrics.Options) {
		o.ConnectionString = "InstrumentationKey=" + testIKey + ";IngestionEndpoint=" + loop.URL
	})
	r.Record("rotated", "p", -1)
	if err := r.Flush(ctx5(t)); err == nil || n.Load() > 5 || r.Stats().Dropped != 1 {
		t.Fatalf("Flush = %v after %d redirects", err, n.Load())
	}
}

// Past MaxSeries, new dimension sets fold into one overflow series: totals stay right, memory bounded.
func TestSeriesCapFoldsIntoOverflow(t *testing.T) {
	in := newIngest(t)
	logs := &logBuf{}
	r := newRecorder(t, in, func(o *metrics.Options) { o.MaxSeries = 10; o.Logger = logs.logger() })
	for i := range 50 {
		r.Record("rotated", fmt.Sprintf("provider-%02d", i), time.Millisecond)
		r.Record("rotated", fmt.Sprintf("provider-%02d", i), 3*time.Millisecond)
	}
	if s := r.Stats(); s.Series != 11 || s.Overflowed != 80 || s.Observations != 100 {
		t.Fatalf("stats %+v, want 10 series + the overflow one, 80 observations folded", s)
	}
	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	ps := in.points()
	if total, _ := sum(ps, metrics.MetricOutcomes, nil); total != 100 {
		t.Fatalf("total outcomes %v, want 100", total)
	}
	if v, _ := sum(ps, metrics.MetricOutcomes, map[string]string{"overflow": "true", "kind": "other", "provider": "other"}); v != 80 {
		t.Fatalf("overflow series %v, want 80", v)
	}
	if len(ps) != 22 {
		t.Fatalf("%d items, want 11 series × 2", len(ps))
	}
	if !strings.Contains(logs.String(), "overflow") {
		t.Fatalf("no overflow warning: %s", logs)
	}
}

func TestLargeWindowIsSplitIntoRequests(t *testing.T) {
	in := newIngest(t)
	r := newRecorder(t, in, func(o *metrics.Options) { o.MaxSeries = 2000 })
	for i := range 600 {
		r.Record("rotated", fmt.Sprintf("p%03d", i), time.Millisecond)
	}
	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, q := range in.requests() {
		sizes = append(sizes, len(q.items))
	}
	if fmt.Sprint(sizes) != "[500 500 200]" {
		t.Fatalf("request sizes %v, want [500 500 200]", sizes)
	}
}

// Only bounded dimensions leave the process: secret names, versions, reasons, errors, consumers and
// vaults outside the allow-list never appear in what is sent.
func TestNoSecretOrFreeTextInTelemetry(t *testing.T) {
	in := newIngest(t)
	r := newRecorder(t, in, func(o *metrics.Options) {
		o.Providers = []string{"postgres", "storage"}
		o.Vaults = []string{"ProdVault"}
	})
	secretBits := []string{"db-password-secret", "api-key-secret", "Hunter2Value", "attacker-vault-xyz",
		"webapp-consumer-x", "ver111aaa", "ver222bbb", "custom-provider-typo", "weird-kind"}
	outs := []rotation.Outcome{
		{Kind: rotation.KindFailed, Vault: "attacker-vault-xyz", Secret: "db-password-secret", Provider: "postgres",
			Class: rotation.ClassTransient, Trigger: rotation.TriggerManual, Reason: "connect: password=Hunter2Value rejected",
			Err: errors.New("Hunter2Value"), OldVersion: "ver111aaa", DurationMS: 12},
		{Kind: rotation.KindRotated, Vault: "prodvault", Secret: "api-key-secret", Provider: "custom-provider-typo",
			Trigger: rotation.TriggerTimer, OldVersion: "ver111aaa", NewVersion: "ver222bbb", DurationMS: 40},
		{Kind: rotation.KindRefreshFailed, Vault: "ProdVault", Secret: "api-key-secret", Provider: "STORAGE",
			Consumer: "webapp-consumer-x", Class: rotation.ClassPermanent, Reason: "webapp-consumer-x said Hunter2Value"},
		{Kind: "weird-kind", Vault: "ProdVault", Secret: "db-password-secret", Trigger: "weird-kind"},
	}
	for _, o := range outs {
		_ = r.Publish(context.Background(), o)
	}
	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	for _, q := range in.requests() {
		for _, s := range secretBits {
			if strings.Contains(string(q.raw), s) {
				t.Errorf("sent telemetry contains %q:\n%s", s, q.raw)
			}
		}
	}
	ps := in.points()
	check := func(dims map[string]string, want float64) {
		t.Helper()
		if v, _ := sum(ps, metrics.MetricOutcomes, dims); v != want {
			t.Errorf("outcomes %v = %v, want %v", dims, v, want)
		}
	}
	check(map[string]string{"kind": "failed", "vault": "other", "provider": "postgres", "class": "transient", "trigger": "manual"}, 1)
	check(map[string]string{"kind": "rotated", "vault": "ProdVault", "provider": "other"}, 1)
	check(map[string]string{"kind": "refresh-failed", "vault": "ProdVault", "provider": "storage", "class": "permanent", "trigger": "none"}, 1)
	check(map[string]string{"kind": "other", "trigger": "other", "provider": "none"}, 1)
}

func TestRecordCleansDimensions(t *testing.T) {
	in := newIngest(t)
	r := newRecorder(t, in, nil)
	r.Record("rot\nated", strings.Repeat("x", 100), time.Millisecond)
	r.Record("", "  ", time.Millisecond)
	r.Record("rotated", "prövider\x00", time.Millisecond)
	if err := r.Flush(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range in.points() {
		got[p.props["kind"]+"|"+p.props["provider"]] = true
	}
	for _, want := range []string{"rot_ated|" + strings.Repeat("x", 64), "none|none", "rotated|pr_vider_"} {
		if !got[want] {
			t.Errorf("dimensions %v, want %q", got, want)
		}
	}
}
