package events_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvrotator/kvrotator/events"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/random"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/rotation/rotationtest"
)

// blockedTopic is a publisher whose topic hangs until released; it counts the calls it got.
type blockedTopic struct {
	mu      sync.Mutex
	calls   int
	got     []rotation.Outcome
	release chan struct{}
}

func (b *blockedTopic) Publish(ctx context.Context, o rotation.Outcome) error {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	b.got = append(b.got, o)
	b.mu.Unlock()
	return nil
}

func (b *blockedTopic) counts() (calls, got int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls, len(b.got)
}

// TestSweepWithTheTopicDownIsNotSlowed: while the topic hangs, a sweep of 20 due secrets finishes,
// having handed the topic one outcome (the one in flight); once the topic is back, Close sends every
// outcome.
func TestSweepWithTheTopicDownIsNotSlowed(t *testing.T) {
	topic := &blockedTopic{release: make(chan struct{})}
	buf := events.NewBuffered(topic, 0, nil)
	vault := rotationtest.NewMemVault("kv")
	exp := time.Now().Add(5 * 24 * time.Hour)
	for i := range 20 {
		vault.Put(strings.Repeat("s", i+1), "initial-value", map[string]string{"rotation-provider": "random"}, &exp)
	}
	eng, err := rotation.New(rotation.Config{Vaults: []rotation.Vault{vault}, Publisher: buf,
		Providers: func(name string) (providers.Provider, bool) { return random.New(), name == "random" }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan rotation.SweepReport, 1)
	go func() { done <- eng.Sweep(context.Background(), rotation.TriggerTimer, false) }()
	var rep rotation.SweepReport
	select {
	case rep = <-done:
	case <-time.After(20 * time.Second):
		close(topic.release)
		t.Fatal("the sweep waited for the topic")
	}
	// While the topic hangs, at most one publish call is in flight (the sender may not have taken the
	// first outcome yet when the sweep is done).
	if calls, _ := topic.counts(); calls > 1 || len(rep.Outcomes) != 20 || rep.Failed() != 0 {
		t.Fatalf("while the topic hung: %d publish calls (want at most 1, in flight), %d outcomes", calls, len(rep.Outcomes))
	}
	for calls, _ := topic.counts(); calls == 0; calls, _ = topic.counts() {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if calls, _ := topic.counts(); calls != 1 {
		t.Fatalf("%d publish calls while the topic hangs, want 1", calls)
	}
	close(topic.release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := buf.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, got := topic.counts(); got != 20 || buf.Dropped() != 0 {
		t.Fatalf("after the topic came back: %d published, %d dropped", got, buf.Dropped())
	}
}

// TestFullQueueDropsAndCounts: a small queue behind a hung topic drops what does not fit, with a
// warning, and Close says how many were left when its deadline passes.
func TestFullQueueDropsAndCounts(t *testing.T) {
	topic := &blockedTopic{release: make(chan struct{})}
	var logs bytes.Buffer
	buf := events.NewBuffered(topic, 2, slog.New(slog.NewJSONHandler(&logs, nil)))
	o := rotation.Outcome{Kind: rotation.KindRotated, Vault: "kv", Secret: "s"}
	_ = buf.Publish(context.Background(), o)
	for calls, _ := topic.counts(); calls == 0; calls, _ = topic.counts() {
		time.Sleep(time.Millisecond) // the first is in flight
	}
	for range 4 {
		if err := buf.Publish(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	if buf.Dropped() != 2 || !strings.Contains(logs.String(), "outcome event dropped") || !strings.Contains(logs.String(), `"dropped_total":2`) {
		t.Fatalf("dropped %d; logs %s", buf.Dropped(), logs.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := buf.Close(ctx); err == nil || !strings.Contains(err.Error(), "2 outcome events not published") {
		t.Fatalf("close with the topic hung: %v", err)
	}
	close(topic.release)
	// After Close, publishing drops at once (never panics on the closed queue).
	_ = buf.Publish(context.Background(), o)
	if buf.Dropped() != 3 {
		t.Fatalf("dropped %d after close", buf.Dropped())
	}
}
