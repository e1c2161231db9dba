package faults

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// allowN calls Allow n times at now and returns how many were allowed.
func allowN(l *Limiter, write bool, now time.Time, n int) int {
	ok := 0
	for range n {
		if a, _ := l.Allow(write, now); a {
			ok++
		}
	}
	return ok
}

func TestLimiterWritesPerWindow(t *testing.T) {
	l := NewLimiter(Limits{Writes: 5, Window: 10 * time.Second})
	if got := allowN(l, true, t0, 5); got != 5 {
		t.Fatalf("allowed %d of the first 5 writes", got)
	}
	ok, ra := l.Allow(true, t0)
	if ok {
		t.Fatal("6th write allowed")
	}
	// One token every 2s.
	if ra <= 0 || ra > 2*time.Second+5*time.Millisecond {
		t.Errorf("retryAfter = %v, want ~2s", ra)
	}
	if s := RetryAfterSeconds(ra); s != 2 {
		t.Errorf("RetryAfterSeconds(%v) = %d, want 2", ra, s)
	}
	// Part of the wait has passed: retryAfter shrinks.
	if ok, ra2 := l.Allow(true, t0.Add(1500*time.Millisecond)); ok || ra2 > 505*time.Millisecond || ra2 <= 0 {
		t.Errorf("after 1.5s: ok=%v retryAfter=%v, want denied with ~0.5s", ok, ra2)
	}
}

func TestLimiterDeniedDoNotConsume(t *testing.T) {
	l := NewLimiter(Limits{Writes: 3, Window: 3 * time.Second})
	allowN(l, true, t0, 3)
	var ra time.Duration
	for i := range 100 {
		var ok bool
		ok, ra = l.Allow(true, t0.Add(time.Duration(i)*time.Millisecond))
		if ok {
			t.Fatalf("request %d allowed in an empty bucket", i)
		}
	}
	// The 100 denials took nothing: the token due 1s after t0 is there.
	now := t0.Add(99 * time.Millisecond).Add(ra)
	if now.Sub(t0) > time.Second+5*time.Millisecond {
		t.Errorf("retryAfter %v points past the refill at t0+1s", ra)
	}
	if ok, _ := l.Allow(true, now); !ok {
		t.Fatal("not allowed after retryAfter")
	}
	if ok, _ := l.Allow(true, now); ok {
		t.Fatal("second request allowed with one token refilled")
	}
}

func TestLimiterRefill(t *testing.T) {
	l := NewLimiter(Limits{Writes: 10, Others: 20, Window: 10 * time.Second})
	allowN(l, true, t0, 10)
	// 1 token per second: 4 tokens after 4s (plus a little against float rounding).
	if got := allowN(l, true, t0.Add(4*time.Second+time.Millisecond), 10); got != 4 {
		t.Errorf("after 4s: allowed %d, want 4", got)
	}
	// A full window refills the bucket, and a long pause never exceeds the burst.
	if got := allowN(l, true, t0.Add(time.Hour), 50); got != 10 {
		t.Errorf("after 1h: allowed %d, want 10", got)
	}
}

func TestLimiterRetryAfterIsExact(t *testing.T) {
	for _, lim := range []Limits{
		{Writes: 1, Window: time.Second},
		{Writes: 3, Window: 10 * time.Second},
		{Writes: 7, Window: 3 * time.Second},
		{Writes: 300, Window: 10 * time.Second},
		{Writes: 4000, Window: 10 * time.Second},
		{Writes: 1, Window: time.Hour},
	} {
		l := NewLimiter(lim)
		now := t0
		allowN(l, true, now, lim.Writes)
		// Drain the bucket repeatedly: each denial's retryAfter is exactly when the next token is there.
		for i := range 20 {
			ok, ra := l.Allow(true, now)
			if ok {
				t.Fatalf("%+v round %d: allowed in an empty bucket", lim, i)
			}
			if ra <= 0 {
				t.Fatalf("%+v round %d: denied with retryAfter %v", lim, i, ra)
			}
			if ra > 2*time.Millisecond {
				if ok, _ := l.Allow(true, now.Add(ra-2*time.Millisecond)); ok {
					t.Fatalf("%+v round %d: allowed 2ms before retryAfter %v", lim, i, ra)
				}
			}
			now = now.Add(ra)
			if ok, _ := l.Allow(true, now); !ok {
				t.Fatalf("%+v round %d: denied at retryAfter %v", lim, i, ra)
			}
		}
	}
}

func TestLimiterDefaults(t *testing.T) {
	l := NewLimiter(Limits{})
	if got := l.Limits(); got != (Limits{Writes: 300, Others: 4000, Window: 10 * time.Second}) {
		t.Errorf("Limits() = %+v", got)
	}
	if got := allowN(l, true, t0, 400); got != 300 {
		t.Errorf("allowed %d writes, want 300", got)
	}
	if got := allowN(l, false, t0, 5000); got != 4000 {
		t.Errorf("allowed %d others, want 4000", got)
	}
	// Refill 30 writes/s.
	if ok, ra := l.Allow(true, t0); ok || ra > 34*time.Millisecond {
		t.Errorf("write: ok=%v retryAfter=%v, want denied with ~33ms", ok, ra)
	}
}

func TestLimiterUnlimited(t *testing.T) {
	l := NewLimiter(Limits{Writes: -1, Others: 2})
	if got := allowN(l, true, t0, 100000); got != 100000 {
		t.Errorf("unlimited writes: allowed %d", got)
	}
	if got := allowN(l, false, t0, 5); got != 2 {
		t.Errorf("others: allowed %d, want 2", got)
	}
	l = NewLimiter(Limits{Writes: 1, Others: -1})
	if got := allowN(l, false, t0, 100000); got != 100000 {
		t.Errorf("unlimited others: allowed %d", got)
	}
	var nilLimiter *Limiter
	if ok, ra := nilLimiter.Allow(true, t0); !ok || ra != 0 {
		t.Errorf("nil limiter: %v %v", ok, ra)
	}
}

func TestLimiterClassesIndependent(t *testing.T) {
	l := NewLimiter(Limits{Writes: 2, Others: 4, Window: 10 * time.Second})
	if got := allowN(l, true, t0, 10); got != 2 {
		t.Fatalf("writes allowed %d, want 2", got)
	}
	if got := allowN(l, false, t0, 10); got != 4 {
		t.Fatalf("others allowed %d with writes exhausted, want 4", got)
	}
	_, raW := l.Allow(true, t0)
	_, raO := l.Allow(false, t0)
	if raW < 4900*time.Millisecond || raW > 5005*time.Millisecond {
		t.Errorf("write retryAfter %v, want ~5s", raW)
	}
	if raO < 2400*time.Millisecond || raO > 2505*time.Millisecond {
		t.Errorf("other retryAfter %v, want ~2.5s", raO)
	}
	// 2.6s later one other is available but no write.
	now := t0.Add(2600 * time.Millisecond)
	if ok, _ := l.Allow(true, now); ok {
		t.Error("write allowed")
	}
	if ok, _ := l.Allow(false, now); !ok {
		t.Error("other denied")
	}
}

func TestLimiterClockNeverRunsBackwards(t *testing.T) {
	l := NewLimiter(Limits{Writes: 1, Window: 10 * time.Second})
	if ok, _ := l.Allow(true, t0.Add(5*time.Second)); !ok {
		t.Fatal("first write denied")
	}
	// An earlier time (a concurrent caller's clock reading) must not refill the interval twice.
	l.Allow(true, t0)
	if ok, _ := l.Allow(true, t0.Add(5*time.Second)); ok {
		t.Error("bucket refilled by an out-of-order time")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	l := NewLimiter(Limits{Writes: 10, Others: 100})
	var okW, okO atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 10 {
				if ok, _ := l.Allow(true, t0); ok {
					okW.Add(1)
				}
				if ok, _ := l.Allow(false, t0); ok {
					okO.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if okW.Load() != 10 || okO.Load() != 100 {
		t.Errorf("allowed %d writes and %d others, want 10 and 100", okW.Load(), okO.Load())
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int{
		0: 1, time.Nanosecond: 1, 999 * time.Millisecond: 1, time.Second: 1,
		time.Second + time.Millisecond: 2, 10 * time.Second: 10, -time.Second: 1,
	} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", d, got, want)
		}
	}
}
