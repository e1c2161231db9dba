// Package faults makes the emulator misbehave like Azure Key Vault can: per-vault rate limits that
// answer 429 Throttled (Limiter) and scripted failures for tests and benchmarks (Script, Rule,
// ParseRule), plus the helpers to write those answers on the wire (WriteError, Rule.Respond).
package faults

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Azure's per-vault limits (keyvault-wire.md §4): 300 secret creations and 4,000 other transactions
// per 10 seconds.
const (
	DefaultWrites = 300
	DefaultOthers = 4000
	DefaultWindow = 10 * time.Second
)

// ThrottledMessage is the message of the real service's 429 answer.
const ThrottledMessage = "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"

// Limits are per-vault Azure-like rate limits: token buckets with burst = limit, refilled at
// limit/Window.
type Limits struct {
	// Writes is the number of secret writes (PUT secret, restore) per Window; 0 means 300, <0 unlimited.
	Writes int
	// Others is the number of all other operations per Window; 0 means 4000, <0 unlimited.
	Others int
	// Window is the period the limits refer to; <=0 means 10s.
	Window time.Duration
}

// withDefaults fills in zero fields.
func (l Limits) withDefaults() Limits {
	if l.Writes == 0 {
		l.Writes = DefaultWrites
	}
	if l.Others == 0 {
		l.Others = DefaultOthers
	}
	if l.Window <= 0 {
		l.Window = DefaultWindow
	}
	return l
}

// Limiter enforces Limits for one vault. It is safe for concurrent use; a nil *Limiter allows
// everything.
type Limiter struct {
	limits Limits
	writes *bucket // nil: unlimited
	others *bucket // nil: unlimited

	mu   sync.Mutex // makes check-then-take atomic
	last time.Time  // latest now seen; earlier times are clamped to it
}

// bucket is one token bucket.
type bucket struct {
	lim       *rate.Limiter
	perSecond float64
}

// newBucket returns a bucket of n tokens refilled at n per window, or nil for n < 0.
func newBucket(n int, window time.Duration) *bucket {
	if n < 0 {
		return nil
	}
	perSecond := float64(n) / window.Seconds()
	return &bucket{lim: rate.NewLimiter(rate.Limit(perSecond), n), perSecond: perSecond}
}

// NewLimiter returns a Limiter for l; zero fields take Azure's defaults, a negative Writes or Others
// makes that class unlimited.
func NewLimiter(l Limits) *Limiter {
	l = l.withDefaults()
	return &Limiter{limits: l, writes: newBucket(l.Writes, l.Window), others: newBucket(l.Others, l.Window)}
}

// Limits returns the effective limits (defaults filled in).
func (l *Limiter) Limits() Limits {
	if l == nil {
		return Limits{Writes: -1, Others: -1, Window: DefaultWindow}
	}
	return l.limits
}

// Allow reports whether a request of the given class (write: PUT secret or restore) may proceed at
// now, taking a token if so. A denied request takes nothing (429s do not count toward the limits);
// retryAfter is then the time until a token is available (> 0; round it up to whole seconds with
// RetryAfterSeconds for a Retry-After header).
func (l *Limiter) Allow(write bool, now time.Time) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	b := l.others
	if write {
		b = l.writes
	}
	if b == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Concurrent callers may pass slightly out-of-order times; never let the clock run backwards,
	// which would make the bucket count the same interval twice.
	if now.Before(l.last) {
		now = l.last
	} else {
		l.last = now
	}
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	// AllowN took nothing. Wait for the missing fraction of a token, rounded up to a millisecond and
	// checked, so that Allow(now+retryAfter) succeeds despite floating-point rounding.
	missing := 1 - b.lim.TokensAt(now)
	retryAfter = time.Duration(math.Ceil(missing/b.perSecond*1e3)) * time.Millisecond
	retryAfter = max(retryAfter, time.Millisecond)
	for i := 0; i < 10 && b.lim.TokensAt(now.Add(retryAfter)) < 1; i++ {
		retryAfter += time.Millisecond
	}
	return false, retryAfter
}

// RetryAfterSeconds rounds d up to whole seconds for a Retry-After header, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
