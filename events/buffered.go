package events

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvrotator/kvrotator/rotation"
)

// DefaultBuffer is how many outcomes a Buffered publisher holds while its topic is slow or down.
const DefaultBuffer = 1024

// publishTimeout bounds one background publish (the Publisher's own retries included).
const publishTimeout = 30 * time.Second

// Buffered takes publishing off the hot path: Publish queues the outcome and returns at once, one
// goroutine sends the queue to the next publisher (the Event Grid Publisher, whose retries take up to
// 20 s), and Close drains it at shutdown. A full queue drops the outcome with a counted warning: an
// unreachable topic never slows a rotation or a sweep. Safe for concurrent use.
type Buffered struct {
	next rotation.Publisher
	log  *slog.Logger

	mu      sync.Mutex // guards closed and sends to queue against Close
	closed  bool
	queue   chan rotation.Outcome
	done    chan struct{}
	dropped atomic.Int64
	failed  atomic.Int64
}

var _ rotation.Publisher = (*Buffered)(nil)

// NewBuffered starts the background sender; size <= 0 means DefaultBuffer. A nil logger discards.
func NewBuffered(next rotation.Publisher, size int, log *slog.Logger) *Buffered {
	if size <= 0 {
		size = DefaultBuffer
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Buffered{next: next, log: log, queue: make(chan rotation.Outcome, size), done: make(chan struct{})}
	go b.drain()
	return b
}

// Publish queues o and returns nil at once; a full queue (or a closed publisher) drops it, counted
// and logged.
func (b *Buffered) Publish(_ context.Context, o rotation.Outcome) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		select {
		case b.queue <- o:
			return nil
		default:
		}
	}
	n := b.dropped.Add(1)
	b.log.Warn("outcome event dropped: the publishing queue is full (the topic is slow or unreachable)",
		"vault", o.Vault, "secret", o.Secret, "outcome", string(o.Kind), "dropped_total", n)
	return nil
}

func (b *Buffered) drain() {
	defer close(b.done)
	for o := range b.queue {
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		if err := b.next.Publish(ctx, o); err != nil {
			b.failed.Add(1)
			b.log.Warn("outcome event not published", "vault", o.Vault, "secret", o.Secret, "outcome", string(o.Kind), "error", err.Error())
		}
		cancel()
	}
}

// Dropped counts the outcomes dropped because the queue was full; Failed those the next publisher
// refused.
func (b *Buffered) Dropped() int64 { return b.dropped.Load() }

// Failed counts the outcomes the next publisher failed to publish.
func (b *Buffered) Failed() int64 { return b.failed.Load() }

// Close stops taking outcomes and waits until the queue is sent or ctx ends; it then reports how many
// were left unsent. Safe to call more than once.
func (b *Buffered) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("events: %d outcome events not published before shutdown: %w", len(b.queue), ctx.Err())
	}
}
