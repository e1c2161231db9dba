package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// received is one request seen by a recorder.
type received struct {
	Method string
	Header http.Header
	Body   []byte
}

// recorder is a webhook that records requests and answers with status(n) for the n-th request (0-based).
type recorder struct {
	mu     sync.Mutex
	reqs   []received
	status func(n int, body []byte) int
	srv    *httptest.Server
}

func newRecorder(t *testing.T, status func(n int, body []byte) int) *recorder {
	t.Helper()
	r := &recorder{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.reqs)
		r.reqs = append(r.reqs, received{Method: req.Method, Header: req.Header.Clone(), Body: body})
		r.mu.Unlock()
		code := http.StatusOK
		if r.status != nil {
			code = r.status(n, body)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func flush(t *testing.T, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func int64p(v int64) *int64 { return &v }

const (
	testTopic = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/sample-rg/providers/Microsoft.KeyVault/vaults/sample-kv"
	testID    = "00eccf70-95a7-4e7c-8299-2eb17ee9ad64"
	testURL   = "https://sample-kv.vault.azure.net/secrets/newsecret/ee059b2bb5bc48398a53b168c6cdcb10"
)

func sampleEvent(nbf, exp *int64) Event {
	return Event{
		ID:        testID,
		Topic:     testTopic,
		Subject:   "newsecret",
		EventType: SecretNearExpiry,
		// 2019-07-25T01:08:33.1036736Z, given in another zone to check the UTC conversion.
		EventTime: time.Date(2019, 7, 25, 3, 8, 33, 103673600, time.FixedZone("CEST", 2*3600)),
		Data: KeyVaultData{
			ID: testURL, VaultName: "sample-kv", ObjectType: "Secret", ObjectName: "newsecret",
			Version: "ee059b2bb5bc48398a53b168c6cdcb10", NBF: nbf, EXP: exp,
		},
	}
}

func checkHeaders(t *testing.T, got received, contentType, sub, count string) {
	t.Helper()
	if got.Method != http.MethodPost {
		t.Errorf("method = %s, want POST", got.Method)
	}
	want := map[string]string{
		"Content-Type":          contentType,
		"Aeg-Event-Type":        "Notification",
		"Aeg-Subscription-Name": sub,
		"Aeg-Delivery-Count":    count,
		"Aeg-Data-Version":      "1",
		"Aeg-Metadata-Version":  "1",
	}
	for k, v := range want {
		if vs := got.Header.Values(k); len(vs) != 1 || vs[0] != v {
			t.Errorf("header %s = %q, want [%q]", k, vs, v)
		}
	}
}

func TestEventGridSchemaWire(t *testing.T) {
	rec := newRecorder(t, nil)
	d := NewDispatcher([]Subscription{{Name: "eg-sub", URL: rec.srv.URL}}, testLogger(t))
	defer d.Close()
	d.Publish(sampleEvent(nil, int64p(1559082102)))
	flush(t, d)

	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	checkHeaders(t, reqs[0], "application/json", "eg-sub", "0")
	want := `[{"id":"` + testID + `","topic":"` + testTopic + `","subject":"newsecret",` +
		`"eventType":"Microsoft.KeyVault.SecretNearExpiry","eventTime":"2019-07-25T01:08:33.1036736Z",` +
		`"data":{"Id":"` + testURL + `","VaultName":"sample-kv","ObjectType":"Secret","ObjectName":"newsecret",` +
		`"Version":"ee059b2bb5bc48398a53b168c6cdcb10","NBF":null,"EXP":1559082102},` +
		`"dataVersion":"1","metadataVersion":"1"}]`
	if got := string(reqs[0].Body); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "eg-sub", Delivered: 1}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestCloudEventsSchemaWire(t *testing.T) {
	rec := newRecorder(t, nil)
	d := NewDispatcher([]Subscription{{Name: "ce-sub", URL: rec.srv.URL, Schema: "CloudEvents"}}, testLogger(t))
	defer d.Close()
	d.Publish(sampleEvent(int64p(1559081980), nil))
	flush(t, d)

	reqs := rec.requests()
	if len(reqs) != 1 {
		t.Fatalf("got %d requests, want 1", len(reqs))
	}
	checkHeaders(t, reqs[0], "application/cloudevents+json; charset=utf-8", "ce-sub", "0")
	want := `{"specversion":"1.0","id":"` + testID + `","source":"` + testTopic + `","subject":"newsecret",` +
		`"type":"Microsoft.KeyVault.SecretNearExpiry","time":"2019-07-25T01:08:33.1036736Z",` +
		`"datacontenttype":"application/json",` +
		`"data":{"Id":"` + testURL + `","VaultName":"sample-kv","ObjectType":"Secret","ObjectName":"newsecret",` +
		`"Version":"ee059b2bb5bc48398a53b168c6cdcb10","NBF":1559081980,"EXP":null}}`
	if got := string(reqs[0].Body); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestPublishFillsIDAndTime(t *testing.T) {
	rec := newRecorder(t, nil)
	d := NewDispatcher([]Subscription{
		{Name: "a", URL: rec.srv.URL},
		{Name: "b", URL: rec.srv.URL, Schema: CloudEventsSchema},
	}, testLogger(t))
	defer d.Close()
	before := time.Now()
	d.Publish(Event{Topic: testTopic, Subject: "s", EventType: SecretExpired})
	flush(t, d)

	reqs := rec.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests, want 2", len(reqs))
	}
	var ids []string
	for _, r := range reqs {
		var ev struct {
			ID        string          `json:"id"`
			EventTime string          `json:"eventTime"`
			Time      string          `json:"time"`
			Data      json.RawMessage `json:"data"`
		}
		body := r.Body
		if body[0] == '[' {
			var arr []json.RawMessage
			if err := json.Unmarshal(body, &arr); err != nil || len(arr) != 1 {
				t.Fatalf("event grid body %s: %v", body, err)
			}
			body = arr[0]
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Fatal(err)
		}
		u, err := uuid.Parse(ev.ID)
		if err != nil || u.Version() != 4 {
			t.Errorf("id %q is not a UUID v4 (%v)", ev.ID, err)
		}
		ids = append(ids, ev.ID)
		ts, err := time.Parse(time.RFC3339Nano, ev.EventTime+ev.Time)
		if err != nil || ts.Before(before.Add(-time.Second)) || !strings.HasSuffix(ev.EventTime+ev.Time, "Z") {
			t.Errorf("time %q: %v", ev.EventTime+ev.Time, err)
		}
		if string(ev.Data) != "null" {
			t.Errorf("data = %s, want null", ev.Data)
		}
	}
	if ids[0] != ids[1] {
		t.Errorf("subscriptions got different ids %v", ids)
	}
}

func TestFilters(t *testing.T) {
	recs := map[string]*recorder{}
	var subs []Subscription
	for _, s := range []Subscription{
		{Name: "all"},
		{Name: "expiry", EventTypes: []string{SecretNearExpiry, SecretExpired}},
		{Name: "vault-b", Topics: []string{strings.ToUpper(Topic("sub", "rg", "vault-b"))}},
		{Name: "both", EventTypes: []string{SecretNewVersionCreated}, Topics: []string{Topic("sub", "rg", "vault-a")}},
		{Name: "case", EventTypes: []string{strings.ToLower(SecretExpired)}}, // event types match exactly
	} {
		r := newRecorder(t, nil)
		recs[s.Name] = r
		s.URL = r.srv.URL
		subs = append(subs, s)
	}
	d := NewDispatcher(subs, testLogger(t))
	defer d.Close()
	for _, ev := range []Event{
		{Topic: Topic("sub", "rg", "vault-a"), Subject: "a-new", EventType: SecretNewVersionCreated},
		{Topic: Topic("sub", "rg", "vault-a"), Subject: "a-exp", EventType: SecretExpired},
		{Topic: Topic("sub", "rg", "vault-b"), Subject: "b-new", EventType: SecretNewVersionCreated},
		{Topic: Topic("sub", "rg", "vault-b"), Subject: "b-near", EventType: SecretNearExpiry},
	} {
		d.Publish(ev)
	}
	flush(t, d)
	want := map[string][]string{
		"all":     {"a-exp", "a-new", "b-near", "b-new"},
		"expiry":  {"a-exp", "b-near"},
		"vault-b": {"b-near", "b-new"},
		"both":    {"a-new"},
		"case":    nil,
	}
	for name, subjects := range want {
		var got []string
		for _, r := range recs[name].requests() {
			var evs []Event
			if err := json.Unmarshal(r.Body, &evs); err != nil {
				t.Fatal(err)
			}
			got = append(got, evs[0].Subject)
		}
		sortStrings(got)
		if strings.Join(got, ",") != strings.Join(subjects, ",") {
			t.Errorf("%s received %v, want %v", name, got, subjects)
		}
	}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestRetryThenSuccess(t *testing.T) {
	rec := newRecorder(t, func(n int, _ []byte) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, RetryDelays: []time.Duration{time.Millisecond, 2 * time.Millisecond}}}, testLogger(t))
	defer d.Close()
	d.Publish(sampleEvent(nil, nil))
	flush(t, d)

	reqs := rec.requests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if got, want := r.Header.Get("aeg-delivery-count"), string(rune('0'+i)); got != want {
			t.Errorf("attempt %d: aeg-delivery-count = %q, want %q", i, got, want)
		}
		if string(r.Body) != string(reqs[0].Body) {
			t.Errorf("attempt %d: body changed", i)
		}
	}
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Delivered: 1, Failed: 2}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestSuccessStatuses(t *testing.T) {
	for _, code := range []int{200, 201, 202, 203, 204} {
		rec := newRecorder(t, func(int, []byte) int { return code })
		d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, RetryDelays: []time.Duration{time.Millisecond}}}, testLogger(t))
		d.Publish(sampleEvent(nil, nil))
		flush(t, d)
		if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Delivered: 1}) || len(rec.requests()) != 1 {
			t.Errorf("status %d: stats = %+v, %d requests", code, s, len(rec.requests()))
		}
		d.Close()
	}
}

func TestNeverRetriedStatuses(t *testing.T) {
	for _, code := range []int{400, 401, 403, 413} {
		rec := newRecorder(t, func(int, []byte) int { return code })
		d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, RetryDelays: []time.Duration{time.Millisecond}}}, testLogger(t))
		d.Publish(sampleEvent(nil, nil))
		flush(t, d)
		if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Failed: 1, Dropped: 1}) {
			t.Errorf("status %d: stats = %+v", code, s)
		}
		if n := len(rec.requests()); n != 1 {
			t.Errorf("status %d: %d requests, want 1", code, n)
		}
		d.Close()
	}
}

func TestRetriedStatuses(t *testing.T) {
	// 3xx counts as a failure: the default client does not follow redirects.
	for _, code := range []int{302, 404, 408, 409, 429, 500, 502, 503, 504} {
		rec := newRecorder(t, func(int, []byte) int { return code })
		d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, MaxAttempts: 2, RetryDelays: []time.Duration{time.Millisecond}}}, testLogger(t))
		d.Publish(sampleEvent(nil, nil))
		flush(t, d)
		if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Failed: 2, Dropped: 1}) {
			t.Errorf("status %d: stats = %+v", code, s)
		}
		if n := len(rec.requests()); n != 2 {
			t.Errorf("status %d: %d requests, want 2", code, n)
		}
		d.Close()
	}
}

func TestMaxAttemptsExhausted(t *testing.T) {
	rec := newRecorder(t, func(int, []byte) int { return http.StatusServiceUnavailable })
	start := time.Now()
	d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, MaxAttempts: 4,
		RetryDelays: []time.Duration{time.Millisecond, 20 * time.Millisecond}}}, testLogger(t))
	defer d.Close()
	d.Publish(sampleEvent(nil, nil))
	flush(t, d)
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Failed: 4, Dropped: 1}) {
		t.Errorf("stats = %+v", s)
	}
	reqs := rec.requests()
	if len(reqs) != 4 {
		t.Fatalf("%d requests, want 4", len(reqs))
	}
	if got := reqs[3].Header.Get("aeg-delivery-count"); got != "3" {
		t.Errorf("last aeg-delivery-count = %q, want 3", got)
	}
	// Delays 1ms, 20ms, 20ms (the last delay repeats).
	if el := time.Since(start); el < 41*time.Millisecond {
		t.Errorf("finished after %v, want >= 41ms", el)
	}
}

func TestTransportErrorRetried(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on
	d := NewDispatcher([]Subscription{{Name: "s", URL: url, MaxAttempts: 3, RetryDelays: []time.Duration{time.Millisecond}}}, testLogger(t))
	defer d.Close()
	d.Publish(sampleEvent(nil, nil))
	flush(t, d)
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Failed: 3, Dropped: 1}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestTimeoutRetried(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	defer close(release)
	d := NewDispatcher([]Subscription{{Name: "s", URL: srv.URL, RetryDelays: []time.Duration{time.Millisecond},
		Client: &http.Client{Timeout: 50 * time.Millisecond}}}, testLogger(t))
	defer d.Close()
	d.Publish(sampleEvent(nil, nil))
	flush(t, d)
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Delivered: 1, Failed: 1}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestInvalidURLDropped(t *testing.T) {
	d := NewDispatcher([]Subscription{{Name: "s", URL: "http://[::1"}}, testLogger(t))
	defer d.Close()
	d.Publish(sampleEvent(nil, nil))
	flush(t, d)
	if s := d.Stats()[0]; s.Dropped != 1 || s.Pending != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestHangingSubscriberDoesNotBlockOthers(t *testing.T) {
	release := make(chan struct{})
	hung := make(chan struct{}, 10)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	fast := newRecorder(t, nil)
	d := NewDispatcher([]Subscription{
		{Name: "slow", URL: slow.URL},
		{Name: "fast", URL: fast.srv.URL},
	}, testLogger(t))
	defer d.Close()

	for range 3 {
		d.Publish(sampleEvent(nil, nil))
	}
	<-hung
	waitFor(t, "fast subscriber", func() bool { return d.Stats()[1].Delivered == 3 })
	if s := d.Stats()[0]; s.Pending != 3 || s.Delivered != 0 {
		t.Errorf("slow stats = %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := d.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush with a hung subscriber = %v, want deadline exceeded", err)
	}
	d.Close() // aborts the hung delivery
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "slow", Dropped: 3}) {
		t.Errorf("slow stats after Close = %+v", s)
	}
}

func TestRetriesDoNotBlockFreshEvents(t *testing.T) {
	rec := newRecorder(t, func(_ int, body []byte) int {
		if strings.Contains(string(body), `"subject":"bad"`) {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, MaxAttempts: 3,
		RetryDelays: []time.Duration{100 * time.Millisecond}}}, testLogger(t))
	defer d.Close()
	d.Publish(Event{Subject: "bad", EventType: SecretExpired})
	waitFor(t, "first attempt", func() bool { return d.Stats()[0].Failed == 1 })
	for _, s := range []string{"good1", "good2", "good3"} {
		d.Publish(Event{Subject: s, EventType: SecretExpired})
	}
	waitFor(t, "fresh events", func() bool { return d.Stats()[0].Delivered == 3 })
	if s := d.Stats()[0]; s.Failed != 1 || s.Pending != 1 {
		t.Errorf("fresh events waited for the retry: stats = %+v", s)
	}
	flush(t, d)
	var order []string
	for _, r := range rec.requests() {
		var evs []Event
		if err := json.Unmarshal(r.Body, &evs); err != nil {
			t.Fatal(err)
		}
		order = append(order, evs[0].Subject)
	}
	if got := strings.Join(order, ","); got != "bad,good1,good2,good3,bad,bad" {
		t.Errorf("delivery order %s", got)
	}
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Delivered: 3, Failed: 3, Dropped: 1}) {
		t.Errorf("stats = %+v", s)
	}
}

func TestEventTTL(t *testing.T) {
	rec := newRecorder(t, func(int, []byte) int { return http.StatusInternalServerError })
	d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, EventTTL: 10 * time.Millisecond,
		RetryDelays: []time.Duration{30 * time.Millisecond}}}, testLogger(t))
	defer d.Close()
	d.Publish(sampleEvent(nil, nil))
	flush(t, d)
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Failed: 1, Dropped: 1}) || len(rec.requests()) != 1 {
		t.Errorf("stats = %+v, %d requests", s, len(rec.requests()))
	}
}

func TestFlushWaits(t *testing.T) {
	var mu sync.Mutex
	done := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond)
		mu.Lock()
		done++
		mu.Unlock()
	}))
	defer srv.Close()
	d := NewDispatcher([]Subscription{{Name: "a", URL: srv.URL}, {Name: "b", URL: srv.URL, Schema: CloudEventsSchema}}, testLogger(t))
	defer d.Close()
	for range 5 {
		d.Publish(sampleEvent(nil, nil))
	}
	flush(t, d)
	mu.Lock()
	n := done
	mu.Unlock()
	if n != 10 {
		t.Errorf("Flush returned after %d of 10 deliveries", n)
	}
	for _, s := range d.Stats() {
		if s.Delivered != 5 || s.Pending != 0 {
			t.Errorf("stats = %+v", s)
		}
	}
	// Nothing pending: Flush returns at once, also with no subscriptions.
	flush(t, d)
	empty := NewDispatcher(nil, nil)
	empty.Publish(sampleEvent(nil, nil))
	flush(t, empty)
	empty.Close()
}

func TestCloseDropsPendingAndDoesNotLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	rec := newRecorder(t, func(int, []byte) int { return http.StatusInternalServerError })
	// Client nil: the dispatcher's own transport must not leave idle connections behind.
	d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, RetryDelays: []time.Duration{time.Hour}}}, testLogger(t))
	for range 3 {
		d.Publish(sampleEvent(nil, nil))
	}
	waitFor(t, "first attempts", func() bool { return d.Stats()[0].Failed == 3 })
	d.Close()
	d.Close() // idempotent
	if s := d.Stats()[0]; s != (SubscriptionStats{Name: "s", Failed: 3, Dropped: 3}) {
		t.Errorf("stats after Close = %+v", s)
	}
	d.Publish(sampleEvent(nil, nil)) // dropped, no panic
	if s := d.Stats()[0]; s.Pending != 0 {
		t.Errorf("published after Close: stats = %+v", s)
	}
	if err := d.Flush(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	rec.srv.Close()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, before: %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseDuringFlush(t *testing.T) {
	rec := newRecorder(t, func(int, []byte) int { return http.StatusInternalServerError })
	d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL, RetryDelays: []time.Duration{time.Hour}}}, testLogger(t))
	d.Publish(sampleEvent(nil, nil))
	errc := make(chan error, 1)
	go func() { errc <- d.Flush(context.Background()) }()
	waitFor(t, "first attempt", func() bool { return d.Stats()[0].Failed == 1 })
	d.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Flush = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Flush did not return after Close")
	}
}

func TestUnmarshallableDataDropped(t *testing.T) {
	rec := newRecorder(t, nil)
	d := NewDispatcher([]Subscription{{Name: "s", URL: rec.srv.URL}}, testLogger(t))
	defer d.Close()
	d.Publish(Event{Subject: "x", Data: make(chan int)})
	flush(t, d)
	if n := len(rec.requests()); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}

func TestConcurrentPublish(t *testing.T) {
	rec := newRecorder(t, func(n int, _ []byte) int {
		if n%3 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	d := NewDispatcher([]Subscription{{Name: "a", URL: rec.srv.URL, RetryDelays: []time.Duration{time.Millisecond}},
		{Name: "b", URL: rec.srv.URL, Schema: CloudEventsSchema, RetryDelays: []time.Duration{time.Millisecond}}}, nil)
	defer d.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				d.Publish(Event{Subject: string(rune('a'+g)) + string(rune('a'+i)), EventType: SecretExpired})
				if i%10 == 0 {
					_ = d.Stats()
				}
			}
		})
	}
	wg.Wait()
	flush(t, d)
	for _, s := range d.Stats() {
		if s.Delivered != 200 || s.Dropped != 0 || s.Pending != 0 {
			t.Errorf("stats = %+v", s)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		sub Subscription
		ok  bool
	}{
		{Subscription{Name: "a", URL: "https://example.com/hook?code=x"}, true},
		{Subscription{Name: "a", URL: "http://127.0.0.1:7071/runtime/webhooks/eventgrid", Schema: "CloudEvents"}, true},
		{Subscription{URL: "https://example.com"}, false},
		{Subscription{Name: "a", URL: "example.com/hook"}, false},
		{Subscription{Name: "a", URL: "ftp://example.com/"}, false},
		{Subscription{Name: "a", URL: "https://example.com", Schema: "custom"}, false},
		{Subscription{Name: "a", URL: "https://example.com", RetryDelays: []time.Duration{-1}}, false},
	} {
		if err := tc.sub.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.sub, err, tc.ok)
		}
	}
}

func TestHelpers(t *testing.T) {
	if got := Topic("sub", "rg", "kv"); got != "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv" {
		t.Errorf("Topic = %s", got)
	}
	d := DefaultRetryDelays()
	if len(d) != 10 || d[0] != 10*time.Second || d[len(d)-1] != 12*time.Hour {
		t.Errorf("DefaultRetryDelays = %v", d)
	}
}
