// Package lock implements rotation.Locker with Azure blob leases, so that only one instance of the
// Function App rotates a given secret at a time (DESIGN.md, invariant 2).
//
// Each secret has one blob, locks/<vault>/<secret> (lower-case), in a container of the Function App's
// own storage account (AzureWebJobsStorage; see FromSettings). Lock takes a lease on that blob — the
// blob and the container are created on first use — and renews it in the background while the caller
// works. A lease held by another instance is reported as an error wrapping rotation.ErrBusy: a
// transient failure, the trigger comes back later (Event Grid redelivers). If a renewal fails for good
// (the lease was broken, expired or taken over), the context Lock returned is cancelled with a cause
// wrapping ErrLeaseLost, so the engine stops before it writes. unlock stops renewing and releases the
// lease.
//
// The same account keeps kvrotator's journal (rotation.Journal): BlobJournal, one blob per secret in a
// container of its own (BlobLocker.Journal, NewBlobJournal).
//
// The in-process lock for the demo and single-instance deployments is rotation.NewMemoryLocker.
package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// Defaults and limits of Options.
const (
	// DefaultContainer is the container holding the lock blobs.
	DefaultContainer = "kvrotator-locks"
	// DefaultJournalContainer is the container holding the journal blobs (see BlobJournal).
	DefaultJournalContainer = "kvrotator-journal"
	// DefaultLeaseDuration is the lease duration when Options.LeaseDuration is zero.
	DefaultLeaseDuration = 30 * time.Second
	// MinLeaseDuration and MaxLeaseDuration are the limits of a finite blob lease set by Azure Storage.
	MinLeaseDuration = 15 * time.Second
	// MaxLeaseDuration is the longest finite blob lease.
	MaxLeaseDuration = 60 * time.Second
)

// How long unlock waits for the release of a lease, and how long one renewal call may take at most.
const (
	releaseTimeout = 5 * time.Second
	renewTimeout   = 10 * time.Second
	abandonTimeout = 2 * time.Second // releasing a lease an unanswered acquisition may have taken
)

// ErrLeaseLost is the cause (context.Cause, errors.Is) of the cancellation of a held context whose lease
// could not be renewed: it was broken, it expired, or another holder has it now.
var ErrLeaseLost = errors.New("blob lease lost")

// ErrReleased is the cause (context.Cause) of the cancellation of a held context after unlock.
var ErrReleased = errors.New("lock released")

// Options configure a BlobLocker. The zero value is usable.
type Options struct {
	// Container holds the lock blobs; default DefaultContainer. It is created on first use if missing
	// (concurrent creation by several instances is fine).
	Container string
	// JournalContainer holds the journal blobs of Journal; default DefaultJournalContainer. It is
	// created on first use too.
	JournalContainer string
	// LeaseDuration is the duration of each lease (and of each renewal): 15 s to 60 s, default 30 s.
	// Values outside the range are clamped to it; it is rounded to whole seconds. It bounds how long a
	// crashed instance keeps a secret locked.
	LeaseDuration time.Duration
	// RenewEvery is the renewal interval while a lock is held; default LeaseDuration/3. Values that
	// are not positive or not shorter than LeaseDuration/2 use the default.
	RenewEvery time.Duration
	// Logger receives renewal and release problems; default slog.Default(). Lock keys (vault/secret
	// names) are logged, never credentials.
	Logger *slog.Logger
}

// BlobLocker implements rotation.Locker with blob leases. It is safe for concurrent use; one
// BlobLocker serves every secret of the process.
type BlobLocker struct {
	containerName string
	client        *azstorage.Client
	journalName   string
	journal       func() *BlobJournal
	endpoint      string
	duration      time.Duration
	renewEvery    time.Duration
	log           *slog.Logger

	// createMu serialises the creation of the container within this process.
	createMu sync.Mutex
}

var _ rotation.Locker = (*BlobLocker)(nil)

// NewBlobLocker returns a BlobLocker that keeps its lock blobs in client's account. It makes no
// network call; the container is created by the first Lock that needs it.
func NewBlobLocker(client *azstorage.Client, o Options) *BlobLocker {
	if o.Container == "" {
		o.Container = DefaultContainer
	}
	d := o.LeaseDuration
	switch {
	case d == 0:
		d = DefaultLeaseDuration
	case d < MinLeaseDuration:
		d = MinLeaseDuration
	case d > MaxLeaseDuration:
		d = MaxLeaseDuration
	}
	d = d.Round(time.Second)
	every := o.RenewEvery
	if every <= 0 || every >= d/2 {
		every = d / 3
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	l := &BlobLocker{
		containerName: o.Container,
		client:        client,
		journalName:   o.JournalContainer,
		endpoint:      client.URL(),
		duration:      d,
		renewEvery:    every,
		log:           logger,
	}
	l.journal = sync.OnceValue(func() *BlobJournal { return NewBlobJournal(l.client, l.journalName) })
	return l
}

// Journal returns the rotation.Journal kept in the same storage account, in container
// Options.JournalContainer (default DefaultJournalContainer). Every call returns the same BlobJournal.
func (l *BlobLocker) Journal() *BlobJournal { return l.journal() }

// Endpoint is the blob service URL the locker talks to, without any query string (a SAS token is never
// part of it), for start-up logs.
func (l *BlobLocker) Endpoint() string { return l.endpoint }

// Container is the name of the container holding the lock blobs.
func (l *BlobLocker) Container() string { return l.containerName }

// LeaseDuration is the effective lease duration (after defaults and clamping).
func (l *BlobLocker) LeaseDuration() time.Duration { return l.duration }

// RenewEvery is the effective renewal interval.
func (l *BlobLocker) RenewEvery() time.Duration { return l.renewEvery }

var (
	containerName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62}$`) })
)

// BlobName returns the name of the lock blob for key, "vault/secret": locks/<vault>/<secret>, in lower
// case. Each part must be 1 to 127 letters, digits and hyphens (what Key Vault allows in names), with
// exactly one slash between them; anything else is an error, so a blob path is never built from
// unvalidated input.
func BlobName(key string) (string, error) {
	vault, secret, ok := strings.Cut(key, "/")
	if !ok || !kvnames.Secret(vault) || !kvnames.Secret(secret) {
		return "", fmt.Errorf("invalid lock key %q: want <vault>/<secret>, letters, digits and hyphens", key)
	}
	return "locks/" + strings.ToLower(vault) + "/" + strings.ToLower(secret), nil
}

// Lock takes the lease on key's blob ("vault/secret"; see BlobName) and keeps it renewed until unlock is
// called or the lease is lost.
//
// When another holder has the lease, the error wraps rotation.ErrBusy (errors.Is): answer busy, a
// transient failure. Storage unreachable, throttled or failing (408, 429, 5xx, no answer) is transient
// too; any other answer (403: the identity lacks its role) is permanent (vocab.Permanent), as is an
// invalid key.
//
// The returned context derives from ctx. It is cancelled with a cause wrapping ErrLeaseLost when the
// lease is lost, and with ErrReleased by unlock. unlock stops the renewals and releases the lease (best
// effort, bounded by a short timeout; if the release fails the lease expires by itself within the lease
// duration). unlock is idempotent and safe after the lease was lost. When ctx is cancelled, renewals
// stop too; the lease then expires unless unlock releases it first.
func (l *BlobLocker) Lock(ctx context.Context, key string) (context.Context, func(), error) {
	name, err := BlobName(key)
	if err != nil {
		return nil, nil, err
	}
	if !containerName().MatchString(l.containerName) {
		return nil, nil, fmt.Errorf("invalid lock container name %q", l.containerName)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	path := l.containerName + "/" + name
	lc := &leaseClient{c: l.client, container: l.containerName, blob: name, id: azstorage.NewLeaseID()} // a fresh random lease ID per lock

	secs := int(l.duration / time.Second)
	sent := time.Now()
	err = lc.acquire(ctx, secs)
	if azstorage.HasCode(err, azstorage.BlobNotFound, azstorage.ContainerNotFound) {
		// First lock of this secret (or of this account): create what is missing, then try again.
		if err := l.ensureBlob(ctx, name); err != nil {
			return nil, nil, classify(fmt.Errorf("create lock blob %s: %w", path, err))
		}
		sent = time.Now()
		err = lc.acquire(ctx, secs)
	}
	if err != nil {
		if azstorage.HasCode(err, azstorage.LeaseAlreadyPresent, azstorage.LeaseIsBreakingAndCannotBeAcquired) {
			return nil, nil, fmt.Errorf("%w (the lease on blob %s is held by another instance)", rotation.ErrBusy, path)
		}
		var re *azcore.ResponseError
		if !errors.As(err, &re) {
			// No answer (timeout, connection lost): the service may have granted the lease anyway. It
			// carries our proposed lease ID, so releasing it cannot touch anyone else's lease.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
			_ = lc.release(rctx)
			cancel()
		}
		return nil, nil, classify(fmt.Errorf("acquire lease on blob %s: %w", path, brief(err)))
	}

	held, cancel := context.WithCancelCause(ctx)
	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	h := &holder{
		l:        l,
		lc:       lc,
		key:      key,
		path:     path,
		held:     held,
		cancel:   cancel,
		loopCtx:  loopCtx,
		stopLoop: stopLoop,
		done:     make(chan struct{}),
	}
	go h.renew(sent)
	return held, h.unlock, nil
}

// classify marks a storage failure permanent unless its status is transient (vocab.TransientStatus): a
// 403 (the identity lacks Storage Blob Data Owner/Contributor) or 404 is an operator's to fix, and an
// Event Grid delivery that failed on it must be acknowledged, not redelivered for a day. No answer at
// all (timeout, connection lost) stays transient.
func classify(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return vocab.ByStatus(re.StatusCode, err)
	}
	return err
}

// ensureBlob creates the empty lock blob, and its container if that is missing. An existing blob is
// never overwritten (If-None-Match: *), leased or not.
func (l *BlobLocker) ensureBlob(ctx context.Context, name string) error {
	upload := func() error {
		_, err := l.client.Upload(ctx, l.containerName, name, nil, azstorage.PutOptions{IfNoneMatch: azcore.ETagAny})
		if err == nil || blobExists(err) {
			return nil
		}
		return brief(err)
	}
	err := upload()
	if !azstorage.HasCode(err, azstorage.ContainerNotFound) {
		return err
	}
	if err := l.ensureContainer(ctx); err != nil {
		return err
	}
	return upload()
}

// ensureContainer creates the lock container; another instance creating it at the same time is fine.
func (l *BlobLocker) ensureContainer(ctx context.Context) error {
	l.createMu.Lock()
	defer l.createMu.Unlock()
	return createContainer(ctx, l.client, l.containerName)
}

// createContainer creates a container of kvrotator's; one that already exists (another instance
// created it at the same time) is fine.
func createContainer(ctx context.Context, c *azstorage.Client, name string) error {
	err := c.CreateContainer(ctx, name)
	if err != nil && !azstorage.HasCode(err, azstorage.ContainerAlreadyExists) {
		return fmt.Errorf("create container %s: %w", name, brief(err))
	}
	return nil
}

// blobExists reports whether a conditional upload failed because the blob is already there (possibly
// leased by another instance).
func blobExists(err error) bool {
	if azstorage.HasCode(err, azstorage.BlobAlreadyExists, azstorage.ConditionNotMet,
		azstorage.LeaseIDMissing, azstorage.LeaseAlreadyPresent) {
		return true
	}
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusPreconditionFailed
}

// leaseGone reports whether a renewal error says the lease is no longer ours (as opposed to a failure
// to reach the service, which is retried while the lease is still valid).
func leaseGone(err error) bool {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.StatusCode {
	case http.StatusConflict, http.StatusPreconditionFailed, http.StatusNotFound:
		return true
	}
	return false
}

// holder is one held lock.
type holder struct {
	l    *BlobLocker
	lc   *leaseClient
	key  string
	path string

	held   context.Context
	cancel context.CancelCauseFunc

	loopCtx  context.Context // the renewal loop and its calls; cancelled by unlock
	stopLoop context.CancelFunc
	done     chan struct{} // closed when the renewal loop has returned
	lost     bool          // written by the loop before done is closed

	once sync.Once
}

// renew renews the lease every RenewEvery until unlock, until the held context ends, or until the lease
// is lost. A renewal that fails because the service cannot be reached is retried sooner, as long as the
// lease is surely still valid: it is given up once less than a quarter of the lease duration is left
// since the last successful acquisition or renewal (sent is when that request was sent: the service
// counts the lease from a later instant).
func (h *holder) renew(sent time.Time) {
	defer close(h.done)
	l := h.l
	margin := l.duration / 4
	retry := min(l.renewEvery, time.Second)
	timer := time.NewTimer(l.renewEvery)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-h.loopCtx.Done():
			return
		case <-h.held.Done():
			return // the caller's context ended; unlock will release the lease
		case <-timer.C:
		}
		deadline := sent.Add(l.duration - margin)
		now := time.Now()
		callDeadline := now.Add(renewTimeout)
		if deadline.Before(callDeadline) {
			callDeadline = deadline
		}
		rctx, cancel := context.WithDeadline(h.loopCtx, callDeadline)
		err := h.lc.renew(rctx)
		cancel()
		if err == nil {
			if failures > 0 {
				l.log.Info("rotation lock renewed again", "key", h.key, "blob", h.path, "failedAttempts", failures)
			}
			sent, failures = now, 0
			timer.Reset(l.renewEvery)
			continue
		}
		if h.loopCtx.Err() != nil {
			return // unlock interrupted the renewal
		}
		failures++
		var cause error
		switch {
		case leaseGone(err):
			cause = fmt.Errorf("%w: blob %s: %w", ErrLeaseLost, h.path, brief(err))
		case !time.Now().Before(deadline):
			cause = fmt.Errorf("%w: blob %s: not renewed in time (%d failed attempts, last: %w)",
				ErrLeaseLost, h.path, failures, brief(err))
		}
		if cause != nil {
			h.lost = true
			l.log.Warn("rotation lock lost; stopping the rotation", "key", h.key, "error", cause)
			h.cancel(cause)
			return
		}
		level := slog.LevelDebug
		if failures == 1 {
			level = slog.LevelWarn
		}
		l.log.Log(h.loopCtx, level, "rotation lock renewal failed; retrying", "key", h.key, "blob", h.path,
			"error", brief(err), "attempt", failures, "validFor", time.Until(deadline).Round(time.Millisecond).String())
		timer.Reset(retry)
	}
}

// unlock stops the renewals, cancels the held context and releases the lease (unless it was lost).
func (h *holder) unlock() {
	h.once.Do(func() {
		h.stopLoop()
		<-h.done
		h.cancel(ErrReleased)
		if h.lost {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(h.loopCtx), releaseTimeout)
		defer cancel()
		if err := h.lc.release(ctx); err != nil {
			h.l.log.Warn("rotation lock release failed; the lease expires by itself",
				"key", h.key, "blob", h.path, "expiresWithin", h.l.duration.String(), "error", brief(err))
		}
	})
}

// leaseClient is one lease on one lock blob: its lease ID is proposed when it is acquired.
type leaseClient struct {
	c                   *azstorage.Client
	container, blob, id string
}

func (lc *leaseClient) acquire(ctx context.Context, secs int) error {
	return lc.c.AcquireLease(ctx, lc.container, lc.blob, lc.id, secs)
}

func (lc *leaseClient) renew(ctx context.Context) error {
	return lc.c.RenewLease(ctx, lc.container, lc.blob, lc.id)
}

func (lc *leaseClient) release(ctx context.Context) error {
	return lc.c.ReleaseLease(ctx, lc.container, lc.blob, lc.id)
}

// brief shortens a storage error to one line ("409 LeaseIsBrokenAndCannotBeRenewed") for logs and
// outcome reasons; errors.As and errors.Is still reach the original. (A transport error comes from
// azstorage already cut at its URL's query, which may hold a SAS token.)
func brief(err error) error {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return briefError{err: err, status: re.StatusCode, code: re.ErrorCode}
	}
	return err
}

type briefError struct {
	err    error
	status int
	code   string
}

func (e briefError) Error() string {
	code := e.code
	if code == "" {
		code = http.StatusText(e.status)
	}
	return fmt.Sprintf("storage answered %d %s", e.status, code)
}

func (e briefError) Unwrap() error { return e.err }

func stripQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}
