package delivery

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ErrClosed is returned by Flush when the Dispatcher is closed before everything was delivered.
var ErrClosed = errors.New("delivery: dispatcher closed")

// SubscriptionStats are a subscription's delivery counters.
type SubscriptionStats struct {
	// Name is the subscription's name.
	Name string
	// Delivered counts events the subscriber accepted (200–204).
	Delivered int
	// Failed counts attempts that failed (any other status, a transport error or a timeout).
	Failed int
	// Dropped counts events given up: a never-retried status (400, 401, 403, 413), MaxAttempts or
	// EventTTL reached, an undeliverable URL, or still pending when the Dispatcher was closed.
	Dropped int
	// Pending counts events queued or being delivered.
	Pending int
}

// Dispatcher fans events out to subscriptions and delivers them in the background.
type Dispatcher struct {
	workers   []*worker
	log       *slog.Logger
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	transport *http.Transport // owned by the default client; nil when every subscription brings its own
}

// NewDispatcher starts one worker per subscription. Defaults are filled in as documented on
// Subscription; an invalid subscription (see Subscription.Validate) is logged, kept, and drops every
// event it cannot send. A nil log discards.
func NewDispatcher(subs []Subscription, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{log: log, ctx: ctx, cancel: cancel}
	var defaultClient *http.Client
	for _, s := range subs {
		if err := s.Validate(); err != nil {
			log.Error("invalid event subscription", "subscription", s.Name, "error", err)
		}
		s.Schema, _ = normalizeSchema(s.Schema)
		if s.MaxAttempts <= 0 {
			s.MaxAttempts = DefaultMaxAttempts
		}
		if len(s.RetryDelays) == 0 {
			s.RetryDelays = DefaultRetryDelays()
		} else {
			s.RetryDelays = append([]time.Duration(nil), s.RetryDelays...)
		}
		if s.EventTTL <= 0 {
			s.EventTTL = DefaultEventTTL
		}
		s.EventTypes = append([]string(nil), s.EventTypes...)
		s.Topics = append([]string(nil), s.Topics...)
		if s.Client == nil {
			if defaultClient == nil {
				d.transport = http.DefaultTransport.(*http.Transport).Clone()
				defaultClient = &http.Client{
					Transport: d.transport,
					Timeout:   DefaultTimeout,
					CheckRedirect: func(*http.Request, []*http.Request) error {
						return http.ErrUseLastResponse
					},
				}
			}
			s.Client = defaultClient
		}
		w := &worker{
			sub:     s,
			log:     log.With("subscription", s.Name),
			wake:    make(chan struct{}, 1),
			changed: make(chan struct{}),
		}
		d.workers = append(d.workers, w)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			w.run(ctx)
		}()
	}
	return d
}

// Publish queues ev for every matching subscription and returns at once; it does no network I/O.
// An empty ID gets a new UUID v4 and a zero EventTime the current time; every subscription receives
// the same ID. Events published after Close are dropped.
func (d *Dispatcher) Publish(ev Event) {
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	if ev.EventTime.IsZero() {
		ev.EventTime = time.Now()
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		d.log.Error("event data cannot be marshalled; event dropped",
			"event_type", ev.EventType, "subject", ev.Subject, "error", err)
		return
	}
	var bodies [2][]byte // per schema, encoded once
	now := time.Now()
	for _, w := range d.workers {
		if !w.sub.matches(&ev) {
			continue
		}
		i := 0
		if w.sub.Schema == CloudEventsSchema {
			i = 1
		}
		if bodies[i] == nil {
			b, err := encode(&ev, data, w.sub.Schema)
			if err != nil { // cannot happen: data is valid JSON
				d.log.Error("event cannot be encoded; event dropped", "event_type", ev.EventType,
					"subject", ev.Subject, "error", err)
				return
			}
			bodies[i] = b
		}
		w.enqueue(&item{
			due:       now,
			published: now,
			body:      bodies[i],
			id:        ev.ID,
			eventType: ev.EventType,
			subject:   ev.Subject,
		})
	}
}

// Flush waits until every event published before the call is delivered or given up. It returns
// ctx.Err() if ctx ends first, and ErrClosed if the Dispatcher is or gets closed.
func (d *Dispatcher) Flush(ctx context.Context) error {
	targets := make([]uint64, len(d.workers))
	for i, w := range d.workers {
		w.mu.Lock()
		targets[i] = w.nextSeq
		w.mu.Unlock()
	}
	for i, w := range d.workers {
		for {
			w.mu.Lock()
			closed, done, changed := w.closed, w.settledBefore(targets[i]), w.changed
			w.mu.Unlock()
			if closed {
				return ErrClosed
			}
			if done {
				break
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return ctx.Err()
			case <-d.ctx.Done():
				return ErrClosed
			}
		}
	}
	return nil
}

// Close stops the workers, aborting deliveries in flight, and drops (and logs) the events still
// pending. It waits for the workers to exit and is safe to call more than once.
func (d *Dispatcher) Close() {
	d.closeOnce.Do(func() {
		for _, w := range d.workers {
			w.close()
		}
		d.cancel()
		d.wg.Wait()
		if d.transport != nil {
			d.transport.CloseIdleConnections()
		}
	})
}

// Stats returns each subscription's counters, in the order the subscriptions were given.
func (d *Dispatcher) Stats() []SubscriptionStats {
	out := make([]SubscriptionStats, len(d.workers))
	for i, w := range d.workers {
		w.mu.Lock()
		out[i] = SubscriptionStats{
			Name:      w.sub.Name,
			Delivered: w.delivered,
			Failed:    w.failed,
			Dropped:   w.dropped,
			Pending:   w.pending(),
		}
		w.mu.Unlock()
	}
	return out
}

// item is one event waiting for delivery to one subscription.
type item struct {
	seq       uint64
	due       time.Time
	published time.Time
	attempts  int // attempts made so far; the next attempt's aeg-delivery-count
	body      []byte
	id        string
	eventType string
	subject   string
}

// queue is a min-heap of items ordered by due time, then publication order.
type queue []*item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*item)) }
func (q *queue) Pop() any {
	old := *q
	n := len(old)
	it := old[n-1]
	old[n-1] = nil
	*q = old[:n-1]
	return it
}

// worker delivers one subscription's events, one at a time.
type worker struct {
	sub  Subscription
	log  *slog.Logger
	wake chan struct{} // capacity 1: "the queue changed"

	mu       sync.Mutex
	q        queue
	inflight *item
	nextSeq  uint64
	closed   bool
	changed  chan struct{} // closed and replaced whenever an item is settled

	delivered, failed, dropped int
}

// enqueue adds it to the queue and wakes the worker.
func (w *worker) enqueue(it *item) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.log.Warn("dispatcher closed; event dropped", "event_type", it.eventType, "subject", it.subject)
		return
	}
	it.seq = w.nextSeq
	w.nextSeq++
	heap.Push(&w.q, it)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// pending counts queued and in-flight items. Callers hold w.mu.
func (w *worker) pending() int {
	n := len(w.q)
	if w.inflight != nil {
		n++
	}
	return n
}

// settledBefore reports whether every item with seq < target is settled. Callers hold w.mu.
func (w *worker) settledBefore(target uint64) bool {
	if w.inflight != nil && w.inflight.seq < target {
		return false
	}
	for _, it := range w.q {
		if it.seq < target {
			return false
		}
	}
	return true
}

// settled notifies Flush waiters. Callers hold w.mu.
func (w *worker) settled() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// close marks the worker closed and drops the queued items; the in-flight one is dropped by run.
func (w *worker) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if n := len(w.q); n > 0 {
		w.dropped += n
		for _, it := range w.q {
			w.log.Debug("dispatcher closed; event dropped", "event_type", it.eventType,
				"subject", it.subject, "attempt", it.attempts)
		}
		w.log.Warn("dispatcher closed; pending events dropped", "count", n)
		w.q = nil
	}
	w.settled()
}

// next pops the first due item, or returns how long to wait (-1: until woken).
func (w *worker) next(now time.Time) (*item, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.q) == 0 {
		return nil, -1
	}
	if d := w.q[0].due.Sub(now); d > 0 {
		return nil, d
	}
	it := heap.Pop(&w.q).(*item)
	w.inflight = it
	return it, 0
}

// run is the worker loop; it returns when ctx ends.
func (w *worker) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		it, wait := w.next(time.Now())
		if it == nil {
			if wait >= 0 {
				timer.Reset(wait)
			}
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		w.deliver(ctx, it)
	}
}

// outcome of one attempt.
type outcome int

const (
	delivered outcome = iota // success status
	retry                    // failed, may be retried
	rejected                 // never-retried status or unusable request
	aborted                  // the dispatcher was closed during the attempt
)

// deliver makes one attempt for it (which run has marked in flight) and settles or requeues it.
func (w *worker) deliver(ctx context.Context, it *item) {
	now := time.Now()
	if it.attempts > 0 && now.Sub(it.published) > w.sub.EventTTL {
		w.finish(it, func() {
			w.dropped++
			w.log.Warn("event time-to-live expired; event dropped", "event_type", it.eventType,
				"subject", it.subject, "attempt", it.attempts)
		})
		return
	}
	attempt := it.attempts
	status, res, err := w.post(ctx, it)
	it.attempts++
	args := []any{"event_type", it.eventType, "subject", it.subject, "attempt", attempt, "status", status}
	if err != nil {
		args = append(args, "error", err)
	}
	switch res {
	case delivered:
		w.finish(it, func() {
			w.delivered++
			w.log.Debug("event delivered", args...)
		})
	case aborted:
		w.finish(it, func() {
			w.dropped++
			w.log.Warn("dispatcher closed during delivery; event dropped", args...)
		})
	case rejected:
		w.finish(it, func() {
			w.failed++
			w.dropped++
			w.log.Warn("event rejected by subscriber (not retried); event dropped", args...)
		})
	case retry:
		if it.attempts >= w.sub.MaxAttempts {
			w.finish(it, func() {
				w.failed++
				w.dropped++
				w.log.Warn("delivery attempts exhausted; event dropped", args...)
			})
			return
		}
		delay := w.sub.RetryDelays[min(it.attempts-1, len(w.sub.RetryDelays)-1)]
		w.mu.Lock()
		w.failed++
		w.inflight = nil
		if w.closed {
			w.dropped++
			w.settled()
			w.mu.Unlock()
			w.log.Warn("dispatcher closed; event dropped", args...)
			return
		}
		it.due = time.Now().Add(delay)
		heap.Push(&w.q, it)
		w.mu.Unlock()
		w.log.Info("delivery failed; will retry", append(args, "retry_in", delay)...)
	}
}

// finish settles the in-flight item, running update under the lock.
func (w *worker) finish(it *item, update func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight == it {
		w.inflight = nil
	}
	update()
	w.settled()
}

// post sends one attempt. status is 0 when there was no HTTP answer.
func (w *worker) post(ctx context.Context, it *item) (int, outcome, error) {
	if w.sub.Client.Timeout <= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.sub.URL, bytes.NewReader(it.body))
	if err != nil {
		return 0, rejected, err
	}
	h := req.Header
	if w.sub.Schema == CloudEventsSchema {
		h.Set("Content-Type", cloudEventsContentType)
	} else {
		h.Set("Content-Type", eventGridContentType)
	}
	h.Set("aeg-event-type", "Notification")
	h.Set("aeg-subscription-name", w.sub.Name)
	h.Set("aeg-delivery-count", strconv.Itoa(it.attempts))
	h.Set("aeg-data-version", "1")
	h.Set("aeg-metadata-version", "1")
	resp, err := w.sub.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil && w.isClosed() {
			return 0, aborted, err
		}
		return 0, retry, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNonAuthoritativeInfo, http.StatusNoContent:
		return resp.StatusCode, delivered, nil
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		return resp.StatusCode, rejected, nil
	}
	return resp.StatusCode, retry, nil
}

// isClosed reports whether close has run.
func (w *worker) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}
