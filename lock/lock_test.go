package lock_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/internal/azuritetest"
	"github.com/kvrotator/kvrotator/lock"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// fixture is one Azurite shared by the subtests of a top-level test; every subtest uses its own
// container, so they are independent.
type fixture struct {
	cs     string
	client *azblob.Client    // the SDK's client, to look at what kvrotator wrote independently
	kv     *azstorage.Client // kvrotator's
}

func newFixture(t *testing.T) *fixture {
	cs := azuritetest.Start(t)
	client, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := azstorage.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{cs: cs, client: client, kv: kv}
}

var containerSeq atomic.Int64

func (f *fixture) locker(t *testing.T, o lock.Options) *lock.BlobLocker {
	t.Helper()
	if o.Container == "" {
		o.Container = fmt.Sprintf("locks-%d", containerSeq.Add(1))
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	return lock.NewBlobLocker(f.kv, o)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mustLock(t *testing.T, l rotation.Locker, key string) (context.Context, func()) {
	t.Helper()
	held, unlock, err := l.Lock(context.Background(), key)
	if err != nil {
		t.Fatalf("Lock(%q): %v", key, err)
	}
	t.Cleanup(unlock)
	return held, unlock
}

func wantBusy(t *testing.T, l rotation.Locker, key string) {
	t.Helper()
	held, unlock, err := l.Lock(context.Background(), key)
	if err == nil {
		unlock()
		t.Fatalf("Lock(%q) succeeded while another holder has it", key)
	}
	if !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("Lock(%q) = %v, want an error wrapping rotation.ErrBusy", key, err)
	}
	if held != nil || unlock != nil {
		t.Fatalf("Lock(%q) failed but returned a context or unlock func", key)
	}
}

func TestBlobLocker(t *testing.T) {
	f := newFixture(t)

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		l := f.locker(t, lock.Options{})
		held, unlock := mustLock(t, l, "MyVault/Api-Key")
		if held.Err() != nil {
			t.Fatalf("held context is done right after Lock: %v", context.Cause(held))
		}
		// The lock blob exists, lower-case, and is leased.
		props, err := f.client.ServiceClient().NewContainerClient(l.Container()).
			NewBlobClient("locks/myvault/api-key").GetProperties(context.Background(), nil)
		if err != nil {
			t.Fatalf("lock blob: %v", err)
		}
		if st := leaseState(props.LeaseState); st != lease.StateTypeLeased {
			t.Fatalf("lease state = %q, want leased", st)
		}
		unlock()
		if held.Err() == nil {
			t.Fatal("held context not cancelled after unlock")
		}
		if !errors.Is(context.Cause(held), lock.ErrReleased) {
			t.Fatalf("cause after unlock = %v, want ErrReleased", context.Cause(held))
		}
		unlock() // idempotent
		props, err = f.client.ServiceClient().NewContainerClient(l.Container()).
			NewBlobClient("locks/myvault/api-key").GetProperties(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if st := leaseState(props.LeaseState); st != lease.StateTypeAvailable {
			t.Fatalf("lease state after unlock = %q, want available", st)
		}
		// And again: the blob exists now.
		_, unlock2 := mustLock(t, l, "myvault/api-key")
		unlock2()
	})

	t.Run("BusyWhileHeldFreeAfterUnlock", func(t *testing.T) {
		t.Parallel()
		o := lock.Options{Container: "busy-test"}
		a, b := f.locker(t, o), f.locker(t, o) // two instances sharing the account
		_, unlock := mustLock(t, a, "vault1/secret1")
		wantBusy(t, b, "vault1/secret1")
		wantBusy(t, a, "VAULT1/Secret1") // same key, other case; same instance
		unlock()
		_, unlockB := mustLock(t, b, "vault1/secret1")
		wantBusy(t, a, "vault1/secret1")
		unlockB()
	})

	t.Run("DifferentKeysIndependent", func(t *testing.T) {
		t.Parallel()
		l := f.locker(t, lock.Options{})
		_, u1 := mustLock(t, l, "vault1/a")
		_, u2 := mustLock(t, l, "vault1/b")
		_, u3 := mustLock(t, l, "vault2/a")
		wantBusy(t, l, "vault1/a")
		u1()
		u2()
		u3()
	})

	t.Run("ContendedKeyOneHolderAtATime", func(t *testing.T) {
		t.Parallel()
		o := lock.Options{Container: "contended"}
		const workers = 20
		var holders, maxHolders, busy atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for i := range workers {
			l := f.locker(t, o) // one locker per worker: separate instances
			wg.Go(func() {
				deadline := time.Now().Add(90 * time.Second)
				for {
					held, unlock, err := l.Lock(context.Background(), "vault/contended")
					if errors.Is(err, rotation.ErrBusy) {
						busy.Add(1)
						if time.Now().After(deadline) {
							errs <- fmt.Errorf("worker %d never got the lock", i)
							return
						}
						time.Sleep(20 * time.Millisecond)
						continue
					}
					if err != nil {
						errs <- fmt.Errorf("worker %d: %v", i, err)
						return
					}
					n := holders.Add(1)
					for {
						m := maxHolders.Load()
						if n <= m || maxHolders.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(30 * time.Millisecond) // "rotate"
					if held.Err() != nil {
						errs <- fmt.Errorf("worker %d: lock lost while held: %v", i, context.Cause(held))
					}
					holders.Add(-1)
					unlock()
					return
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if m := maxHolders.Load(); m != 1 {
			t.Fatalf("max concurrent holders = %d, want 1", m)
		}
		if busy.Load() == 0 {
			t.Fatal("no worker was ever told busy: the race did not happen")
		}
		t.Logf("%d workers, %d busy answers", workers, busy.Load())
	})

	t.Run("RenewalKeepsLeasePastDuration", func(t *testing.T) {
		t.Parallel()
		o := lock.Options{Container: "renewal", LeaseDuration: 15 * time.Second, RenewEvery: 2 * time.Second}
		a, b := f.locker(t, o), f.locker(t, o)
		if a.LeaseDuration() != 15*time.Second || a.RenewEvery() != 2*time.Second {
			t.Fatalf("effective options: %s / %s", a.LeaseDuration(), a.RenewEvery())
		}
		held, unlock := mustLock(t, a, "vault/renewed")
		hold := a.LeaseDuration() + 3*time.Second
		select {
		case <-held.Done():
			t.Fatalf("held context cancelled while renewing: %v", context.Cause(held))
		case <-time.After(hold):
		}
		wantBusy(t, b, "vault/renewed") // still ours, past one lease duration
		unlock()
		_, unlockB := mustLock(t, b, "vault/renewed")
		unlockB()
	})

	t.Run("LeaseLostCancelsHeldContext", func(t *testing.T) {
		t.Parallel()
		o := lock.Options{Container: "lost", LeaseDuration: 15 * time.Second, RenewEvery: 200 * time.Millisecond}
		a, b := f.locker(t, o), f.locker(t, o)
		held, unlock := mustLock(t, a, "vault/broken")

		// Another client breaks the lease immediately (an operator, or a confused instance).
		blobClient := f.client.ServiceClient().NewContainerClient("lost").NewBlobClient("locks/vault/broken")
		breaker, err := lease.NewBlobClient(blobClient, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := breaker.BreakLease(context.Background(), &lease.BlobBreakOptions{BreakPeriod: new(int32(0))}); err != nil {
			t.Fatalf("BreakLease: %v", err)
		}
		select {
		case <-held.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("held context not cancelled after the lease was broken")
		}
		cause := context.Cause(held)
		if !errors.Is(cause, lock.ErrLeaseLost) || !strings.Contains(cause.Error(), "locks/vault/broken") {
			t.Fatalf("cause = %v, want ErrLeaseLost naming the blob", cause)
		}
		// Someone else can take it now; our unlock must not release their lease.
		_, unlockB := mustLock(t, b, "vault/broken")
		unlock()
		unlock()
		if !errors.Is(context.Cause(held), lock.ErrLeaseLost) {
			t.Fatalf("cause changed by unlock: %v", context.Cause(held))
		}
		wantBusy(t, a, "vault/broken")
		unlockB()
	})

	t.Run("RenewalRetriesTransientFailuresThenGivesUp", func(t *testing.T) {
		t.Parallel()
		tr := &flakyTransport{next: &http.Client{}}
		client, err := azstorage.NewClientFromConnectionString(f.cs, &azcore.ClientOptions{Transport: tr, Retry: policy.RetryOptions{MaxRetries: -1}})
		if err != nil {
			t.Fatal(err)
		}
		o := lock.Options{Container: "flaky", LeaseDuration: 15 * time.Second, RenewEvery: 500 * time.Millisecond, Logger: testLogger(t)}
		l := lock.NewBlobLocker(client, o)
		other := f.locker(t, lock.Options{Container: "flaky"})
		start := time.Now()
		held, unlock := mustLock(t, l, "vault/flaky")

		// A few renewals fail (storage unreachable); the lease is still valid, so the lock holds.
		tr.failRenewals.Store(3)
		time.Sleep(4 * time.Second)
		if held.Err() != nil {
			t.Fatalf("lock given up after transient renewal failures: %v", context.Cause(held))
		}
		if tr.renewOK.Load() == 0 || tr.failRenewals.Load() != 0 {
			t.Fatalf("renewals: %d ok, %d failures left", tr.renewOK.Load(), tr.failRenewals.Load())
		}
		wantBusy(t, other, "vault/flaky")

		// Renewals keep failing: the lock is given up before the lease can expire
		// (last renewal + 15 s - 15 s/4 margin).
		tr.failRenewals.Store(1 << 30)
		failingSince := time.Now()
		select {
		case <-held.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("held context not cancelled while renewals keep failing")
		}
		gaveUp := time.Since(failingSince)
		if !errors.Is(context.Cause(held), lock.ErrLeaseLost) {
			t.Fatalf("cause = %v, want ErrLeaseLost", context.Cause(held))
		}
		if gaveUp > 15*time.Second-15*time.Second/4+time.Second {
			t.Fatalf("gave up %s after renewals started failing: too late, the lease may have expired", gaveUp)
		}
		t.Logf("gave up %s after renewals started failing (%s after Lock)", gaveUp.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		unlock() // no release attempt after loss; safe
	})

	t.Run("LostAcquireAnswerDoesNotStrandLease", func(t *testing.T) {
		t.Parallel()
		tr := &flakyTransport{next: &http.Client{}}
		tr.dropAcquireAnswers.Store(1)
		client, err := azstorage.NewClientFromConnectionString(f.cs, &azcore.ClientOptions{Transport: tr, Retry: policy.RetryOptions{MaxRetries: -1}})
		if err != nil {
			t.Fatal(err)
		}
		l := lock.NewBlobLocker(client, lock.Options{Container: "lostanswer", Logger: testLogger(t)})
		other := f.locker(t, lock.Options{Container: "lostanswer"})
		_, unlock := mustLock(t, other, "vault/lostanswer") // create the blob; then free it
		unlock()
		if _, _, err := l.Lock(context.Background(), "vault/lostanswer"); err == nil || errors.Is(err, rotation.ErrBusy) {
			t.Fatalf("Lock with the answer lost = %v, want a transient error", err)
		}
		// The service granted that lease, but Lock released it again: nobody waits 30 s for it.
		_, unlock = mustLock(t, other, "vault/lostanswer")
		unlock()
	})

	t.Run("CallerContextEndsRenewals", func(t *testing.T) {
		t.Parallel()
		l := f.locker(t, lock.Options{RenewEvery: 100 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		held, unlock, err := l.Lock(ctx, "vault/callerctx")
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		<-held.Done()
		if !errors.Is(context.Cause(held), context.Canceled) {
			t.Fatalf("cause = %v, want context.Canceled", context.Cause(held))
		}
		unlock() // still releases, with a context of its own
		_, unlock2 := mustLock(t, l, "vault/callerctx")
		unlock2()
	})

	t.Run("FullConnectionString", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"AzureWebJobsStorage": f.cs}
		l, err := lock.FromSettings(mapEnv(env), nil, nil, lock.Options{Container: "fromsettings", Logger: testLogger(t)})
		if err != nil || l == nil {
			t.Fatalf("FromSettings = %v, %v", l, err)
		}
		if !strings.HasPrefix(f.cs, "DefaultEndpointsProtocol=http;") || !strings.Contains(l.Endpoint(), "/devstoreaccount1") {
			t.Fatalf("endpoint %q", l.Endpoint())
		}
		_, unlock := mustLock(t, l, "vault/fromsettings")
		wantBusy(t, f.locker(t, lock.Options{Container: "fromsettings"}), "vault/fromsettings")
		unlock()
	})
}

func leaseState(p *lease.StateType) lease.StateType {
	if p == nil {
		return ""
	}
	return *p
}

func mapEnv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestInvalidKeys(t *testing.T) {
	client, err := azstorage.NewClientFromConnectionString(azuritetest.ConnectionString("http://127.0.0.1:9/devstoreaccount1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := lock.NewBlobLocker(client, lock.Options{})
	for _, key := range []string{
		"", "vault", "/secret", "vault/", "vault/a/b", "../x", "vault/../../x", "vault/sec ret", "vault/sec_ret",
		"vault/sécret", "vault%2Fsecret", "vault/secret?comp=lease", "vault\\secret", "vault/" + strings.Repeat("a", 128),
	} {
		held, unlock, err := l.Lock(context.Background(), key)
		if err == nil || errors.Is(err, rotation.ErrBusy) || held != nil || unlock != nil {
			t.Errorf("Lock(%q) = %v, want an invalid-key error", key, err)
		}
		if _, err := lock.BlobName(key); err == nil {
			t.Errorf("BlobName(%q) accepted", key)
		}
	}
	name, err := lock.BlobName("My-Vault/Db-Password-2")
	if err != nil || name != "locks/my-vault/db-password-2" {
		t.Fatalf("BlobName = %q, %v", name, err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	client, err := azstorage.NewClientNoCredential("https://acct.blob.core.windows.net/", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in          lock.Options
		dur, renew  time.Duration
		container   string
		description string
	}{
		{lock.Options{}, 30 * time.Second, 10 * time.Second, "kvrotator-locks", "defaults"},
		{lock.Options{LeaseDuration: 5 * time.Second}, 15 * time.Second, 5 * time.Second, "kvrotator-locks", "clamped up"},
		{lock.Options{LeaseDuration: 5 * time.Minute}, 60 * time.Second, 20 * time.Second, "kvrotator-locks", "clamped down"},
		{lock.Options{LeaseDuration: 20 * time.Second, RenewEvery: 15 * time.Second, Container: "c1"}, 20 * time.Second, 20 * time.Second / 3, "c1", "renew too slow"},
		{lock.Options{LeaseDuration: 20 * time.Second, RenewEvery: time.Second}, 20 * time.Second, time.Second, "kvrotator-locks", "renew explicit"},
	} {
		l := lock.NewBlobLocker(client, c.in)
		if l.LeaseDuration() != c.dur || l.RenewEvery() != c.renew || l.Container() != c.container {
			t.Errorf("%s: got %s / %s / %s, want %s / %s / %s", c.description,
				l.LeaseDuration(), l.RenewEvery(), l.Container(), c.dur, c.renew, c.container)
		}
	}
	// An invalid container name is reported by Lock, before any request.
	l := lock.NewBlobLocker(client, lock.Options{Container: "Bad_Name"})
	if _, _, err := l.Lock(context.Background(), "vault/secret"); err == nil || !strings.Contains(err.Error(), "container") {
		t.Fatalf("Lock with a bad container name = %v", err)
	}
}

func TestFromSettings(t *testing.T) {
	t.Run("NothingSet", func(t *testing.T) {
		l, err := lock.FromSettings(mapEnv(nil), nil, nil, lock.Options{})
		if l != nil || err != nil {
			t.Fatalf("FromSettings() = %v, %v; want nil, nil", l, err)
		}
		l, err = lock.FromSettings(mapEnv(map[string]string{"AzureWebJobsStorage": "  "}), nil, nil, lock.Options{})
		if l != nil || err != nil {
			t.Fatalf("FromSettings(blank) = %v, %v; want nil, nil", l, err)
		}
	})

	t.Run("UseDevelopmentStorage", func(t *testing.T) {
		for cs, want := range map[string]string{
			"UseDevelopmentStorage=true": "http://127.0.0.1:10000/devstoreaccount1/",
			"UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite.local": "http://azurite.local:10000/devstoreaccount1/",
		} {
			l, err := lock.FromSettings(mapEnv(map[string]string{"AzureWebJobsStorage": cs}), nil, nil, lock.Options{})
			if err != nil || l == nil {
				t.Fatalf("FromSettings(%q) = %v, %v", cs, l, err)
			}
			if l.Endpoint() != want {
				t.Errorf("FromSettings(%q).Endpoint() = %q, want %q", cs, l.Endpoint(), want)
			}
		}
	})

	t.Run("ConnectionString", func(t *testing.T) {
		const key = "c2VjcmV0LWFjY291bnQta2V5LXRoYXQtbXVzdC1uZXZlci1sZWFr" // base64, test only
		cs := "DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=" + key + ";EndpointSuffix=core.windows.net"
		l, err := lock.FromSettings(mapEnv(map[string]string{"AzureWebJobsStorage": cs}), nil, nil, lock.Options{})
		if err != nil || l == nil {
			t.Fatalf("FromSettings = %v, %v", l, err)
		}
		if l.Endpoint() != "https://myacct.blob.core.windows.net/" {
			t.Fatalf("endpoint %q", l.Endpoint())
		}
		// Broken connection strings: the error never quotes the key.
		for _, bad := range []string{
			"AccountName=myacct;AccountKey=" + key + "!!!not-base64",
			"AccountName=myacct;SomethingElse=" + key,
			"garbage-" + key,
		} {
			l, err := lock.FromSettings(mapEnv(map[string]string{"AzureWebJobsStorage": bad}), nil, nil, lock.Options{})
			if err == nil || l != nil {
				t.Errorf("FromSettings(bad) = %v, %v; want an error", l, err)
				continue
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SomethingElse") {
				t.Errorf("error quotes the connection string: %v", err)
			}
		}
	})

	t.Run("IdentityBased", func(t *testing.T) {
		cred := &fakeCredential{}
		for _, c := range []struct {
			env  map[string]string
			want string
		}{
			{map[string]string{"AzureWebJobsStorage__accountName": "myfuncstorage"}, "https://myfuncstorage.blob.core.windows.net/"},
			{map[string]string{"AzureWebJobsStorage:accountName": "myfuncstorage"}, "https://myfuncstorage.blob.core.windows.net/"},
			{map[string]string{
				"AzureWebJobsStorage__blobServiceUri": "https://myfuncstorage.blob.core.usgovcloudapi.net",
				"AzureWebJobsStorage__accountName":    "ignored",
			}, "https://myfuncstorage.blob.core.usgovcloudapi.net"},
		} {
			l, err := lock.FromSettings(mapEnv(c.env), cred, nil, lock.Options{})
			if err != nil || l == nil {
				t.Fatalf("FromSettings(%v) = %v, %v", c.env, l, err)
			}
			if l.Endpoint() != c.want {
				t.Errorf("FromSettings(%v).Endpoint() = %q, want %q", c.env, l.Endpoint(), c.want)
			}
		}
		if cred.calls.Load() != 0 {
			t.Fatal("FromSettings asked for a token: it must make no network call")
		}
		if got := lock.StorageClientID(mapEnv(map[string]string{"AzureWebJobsStorage__clientId": "00000000-0000-0000-0000-000000000001"})); got != "00000000-0000-0000-0000-000000000001" {
			t.Fatalf("StorageClientID = %q", got)
		}

		for _, env := range []map[string]string{
			{"AzureWebJobsStorage__accountName": "My_Account"},
			{"AzureWebJobsStorage__blobServiceUri": "http://myfuncstorage.blob.core.windows.net"},
			{"AzureWebJobsStorage__blobServiceUri": "https://myfuncstorage.blob.core.windows.net/?sv=2024&sig=abc"},
			{"AzureWebJobsStorage__blobServiceUri": "not a url"},
		} {
			if l, err := lock.FromSettings(mapEnv(env), cred, nil, lock.Options{}); err == nil || l != nil {
				t.Errorf("FromSettings(%v) = %v, %v; want an error", env, l, err)
			} else if strings.Contains(err.Error(), "sig=abc") {
				t.Errorf("error quotes a SAS: %v", err)
			}
		}
		if l, err := lock.FromSettings(mapEnv(map[string]string{"AzureWebJobsStorage__accountName": "acct"}), nil, nil, lock.Options{}); err == nil || l != nil {
			t.Errorf("identity-based without a credential = %v, %v; want an error", l, err)
		}
	})

	t.Run("IdentityBasedUsesCredentialAndTransport", func(t *testing.T) {
		// No network: the transport answers as Azure Storage does for a lease held elsewhere.
		cred := &fakeCredential{}
		tr := &fakeTransport{}
		l, err := lock.FromSettings(mapEnv(map[string]string{"AzureWebJobsStorage__accountName": "myfuncstorage"}),
			cred, tr, lock.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = l.Lock(context.Background(), "vault/secret")
		if !errors.Is(err, rotation.ErrBusy) {
			t.Fatalf("Lock = %v, want ErrBusy", err)
		}
		req := tr.last.Load()
		if req == nil {
			t.Fatal("the transport was not used")
		}
		if req.URL.Host != "myfuncstorage.blob.core.windows.net" || req.URL.Path != "/kvrotator-locks/locks/vault/secret" ||
			req.URL.Query().Get("comp") != "lease" || header(req, "x-ms-lease-action") != "acquire" ||
			header(req, "x-ms-lease-duration") != "30" {
			t.Fatalf("request %s %s %v", req.Method, req.URL, req.Header)
		}
		if header(req, "Authorization") != "Bearer fake-token" {
			t.Fatalf("Authorization = %q", header(req, "Authorization"))
		}
		if cred.scope.Load() == nil || *cred.scope.Load() != "https://storage.azure.com/.default" {
			t.Fatalf("token scope = %v", cred.scope.Load())
		}
	})
}

// header reads a request header as azcore sets it (not always in canonical form).
func header(req *http.Request, name string) string {
	for k, v := range req.Header {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

type fakeCredential struct {
	calls atomic.Int32
	scope atomic.Pointer[string]
}

func (c *fakeCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.calls.Add(1)
	if len(o.Scopes) > 0 {
		c.scope.Store(&o.Scopes[0])
	}
	return azcore.AccessToken{Token: "fake-token", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// flakyTransport fails lease renewals as a network failure would, while failRenewals > 0.
// It also loses the answers to lease acquisitions (after the service handled them) while
// dropAcquireAnswers > 0.
type flakyTransport struct {
	next               *http.Client
	failRenewals       atomic.Int64
	renewOK            atomic.Int64
	dropAcquireAnswers atomic.Int64
}

func (f *flakyTransport) Do(req *http.Request) (*http.Response, error) {
	if header(req, "x-ms-lease-action") == "acquire" && f.dropAcquireAnswers.Load() > 0 {
		f.dropAcquireAnswers.Add(-1)
		resp, err := f.next.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return nil, errors.New("injected: connection lost before the answer")
	}
	renew := header(req, "x-ms-lease-action") == "renew"
	if renew && f.failRenewals.Load() > 0 {
		f.failRenewals.Add(-1)
		return nil, errors.New("injected: connection reset by peer")
	}
	resp, err := f.next.Do(req)
	if renew && err == nil && resp.StatusCode == http.StatusOK {
		f.renewOK.Add(1)
	}
	return resp, err
}

type fakeTransport struct{ last atomic.Pointer[http.Request] }

func (f *fakeTransport) Do(req *http.Request) (*http.Response, error) {
	f.last.Store(req)
	body := `<?xml version="1.0" encoding="utf-8"?><Error><Code>LeaseAlreadyPresent</Code><Message>There is already a lease present.</Message></Error>`
	h := http.Header{}
	h.Set("x-ms-error-code", "LeaseAlreadyPresent")
	h.Set("Content-Type", "application/xml")
	return &http.Response{StatusCode: http.StatusConflict, Status: "409 Conflict", Header: h,
		Body: io.NopCloser(strings.NewReader(body)), Request: req}, nil
}

// TestForbiddenIsPermanentBusyIsTransient: storage refusing kvrotator's identity (403: a wrong key
// here, a missing role in Azure) is permanent — acknowledged and reported, never redelivered for a
// day — while a lease another instance holds is transient (busy).
func TestForbiddenIsPermanentBusyIsTransient(t *testing.T) {
	f := newFixture(t)
	l := f.locker(t, lock.Options{})
	mustLock(t, l, "kv/held")
	_, _, err := l.Lock(context.Background(), "kv/held")
	if !errors.Is(err, rotation.ErrBusy) || vocab.IsPermanent(err) {
		t.Fatalf("busy: %v (permanent %v)", err, vocab.IsPermanent(err))
	}
	wrong := regexp.MustCompile(`AccountKey=[^;]+`).ReplaceAllString(f.cs, "AccountKey="+base64.StdEncoding.EncodeToString([]byte("not-the-account-key-0123456789ab")))
	client, err := azstorage.NewClientFromConnectionString(wrong, nil)
	if err != nil {
		t.Fatal(err)
	}
	denied := lock.NewBlobLocker(client, lock.Options{Container: "locks-denied", Logger: testLogger(t)})
	_, _, err = denied.Lock(context.Background(), "kv/secret")
	if err == nil || !vocab.IsPermanent(err) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("forbidden: %v (permanent %v), want a permanent 403", err, vocab.IsPermanent(err))
	}
}
