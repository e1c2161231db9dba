package lock_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/internal/azuritetest"
	"github.com/kvrotator/kvrotator/lock"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// journal returns a BlobJournal in a container of its own; counted, when not nil, sees its requests.
func (f *fixture) journal(t *testing.T, containerName string, counted *countingTransport) *lock.BlobJournal {
	t.Helper()
	client := f.kv
	if counted != nil {
		var err error
		client, err = azstorage.NewClientFromConnectionString(f.cs, &azcore.ClientOptions{Transport: counted})
		if err != nil {
			t.Fatal(err)
		}
	}
	return lock.NewBlobJournal(client, containerName)
}

func newContainerName() string { return fmt.Sprintf("journal-%d", containerSeq.Add(1)) }

// countingTransport records the requests that reach the storage service.
type countingTransport struct {
	mu   sync.Mutex
	reqs []string // "GET list", "GET blob", "PUT blob", …
}

func (c *countingTransport) Do(req *http.Request) (*http.Response, error) {
	kind := "blob"
	if comp := req.URL.Query().Get("comp"); comp != "" {
		kind = comp
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, req.Method+" "+kind)
	c.mu.Unlock()
	return http.DefaultClient.Do(req)
}

func (c *countingTransport) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

func sampleState(i int) rotation.State {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
	return rotation.State{
		Version:      fmt.Sprintf("%032x", i+1),
		CredentialID: fmt.Sprintf("cred-%d", i),
		From:         fmt.Sprintf("%032x", i),
		At:           at,
		By:           rotation.TriggerTimer,
		Pending:      []rotation.Pending{{CredentialID: fmt.Sprintf("old-%d", i), Version: fmt.Sprintf("%032x", i), Due: at.Add(24 * time.Hour)}},
		Attempted:    fmt.Sprintf("%032x", i+1),
		Fails:        i % 3,
	}
}

func largeState() rotation.State {
	st := sampleState(7)
	st.Pending = nil
	for i := range 200 {
		st.Pending = append(st.Pending, rotation.Pending{
			CredentialID: fmt.Sprintf("credential-%04d-%s", i, strings.Repeat("x", 20)),
			Version:      fmt.Sprintf("%032x", i),
			Due:          time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute),
		})
	}
	return st
}

// sameState compares states by their JSON, which is what the journal stores.
func sameState(t *testing.T, what string, got, want rotation.State) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func mustSave(t *testing.T, j rotation.Journal, vault, secret string, st rotation.State) {
	t.Helper()
	if err := j.Save(context.Background(), vault, secret, st); err != nil {
		t.Fatalf("Save(%s/%s): %v", vault, secret, err)
	}
}

func mustLoad(t *testing.T, j rotation.Journal, vault, secret string) rotation.State {
	t.Helper()
	st, err := j.Load(context.Background(), vault, secret)
	if err != nil {
		t.Fatalf("Load(%s/%s): %v", vault, secret, err)
	}
	return st
}

func TestBlobJournal(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	t.Run("RoundTripAcrossInstances", func(t *testing.T) {
		t.Parallel()
		name := newContainerName()
		a, b := f.journal(t, name, nil), f.journal(t, name, nil)
		want := sampleState(1)
		mustSave(t, a, "vault1", "db-password", want)
		sameState(t, "same instance", mustLoad(t, a, "vault1", "db-password"), want)
		sameState(t, "other instance", mustLoad(t, b, "vault1", "db-password"), want)

		// One JSON blob per secret, <vault>/<secret>, with the state in its metadata too.
		props, err := f.client.ServiceClient().NewContainerClient(name).NewBlobClient("vault1/db-password").GetProperties(ctx, nil)
		if err != nil {
			t.Fatalf("journal blob: %v", err)
		}
		if props.ContentType == nil || *props.ContentType != "application/json" {
			t.Errorf("content type = %v, want application/json", props.ContentType)
		}
		if !hasMeta(props.Metadata, "state") {
			t.Errorf("metadata %v has no state", keys(props.Metadata))
		}
		dl, err := f.client.DownloadStream(ctx, name, "vault1/db-password", nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(dl.Body)
		dl.Body.Close()
		var decoded rotation.State
		if err := json.Unmarshal(body, &decoded); err != nil {
			t.Fatalf("body is not the JSON of a State: %v", err)
		}
		sameState(t, "blob body", decoded, want)

		// Replacing it, twice in a row (the engine saves several times per rotation).
		next := sampleState(2)
		mustSave(t, a, "vault1", "db-password", next)
		next.Fails = 5
		mustSave(t, a, "vault1", "db-password", next)
		sameState(t, "after replacing", mustLoad(t, b, "vault1", "db-password"), next)
		// A zero state is stored as such, not as "missing".
		mustSave(t, b, "vault1", "db-password", rotation.State{})
		sameState(t, "zero state", mustLoad(t, a, "vault1", "db-password"), rotation.State{})
	})

	t.Run("MissingIsZeroState", func(t *testing.T) {
		t.Parallel()
		j := f.journal(t, newContainerName(), nil)
		// No container yet.
		sameState(t, "no container", mustLoad(t, j, "vault1", "nothing"), rotation.State{})
		states, err := j.List(ctx, "vault1")
		if err != nil || len(states) != 0 {
			t.Fatalf("List without a container = %v, %v; want empty, nil", states, err)
		}
		// The container exists, the blob does not.
		mustSave(t, j, "vault1", "other", sampleState(1))
		sameState(t, "no blob", mustLoad(t, j, "vault1", "nothing"), rotation.State{})
		// And a secret found missing can then be created.
		mustSave(t, j, "vault1", "nothing", sampleState(3))
		sameState(t, "created", mustLoad(t, j, "vault1", "nothing"), sampleState(3))
	})

	t.Run("ListReadsMetadataWithOneRequest", func(t *testing.T) {
		t.Parallel()
		name := newContainerName()
		w := f.journal(t, name, nil)
		const n = 40
		for i := range n {
			mustSave(t, w, "vault1", fmt.Sprintf("secret-%02d", i), sampleState(i))
		}
		mustSave(t, w, "vault10", "secret-00", sampleState(99)) // a vault whose name extends vault1's

		counted := &countingTransport{}
		r := f.journal(t, name, counted)
		states, err := r.List(ctx, "vault1")
		if err != nil {
			t.Fatal(err)
		}
		if reqs := counted.take(); len(reqs) != 1 || reqs[0] != "GET list" {
			t.Fatalf("List sent %v, want one listing request", reqs)
		}
		if len(states) != n {
			t.Fatalf("List returned %d states, want %d", len(states), n)
		}
		for i := range n {
			sameState(t, fmt.Sprintf("secret-%02d", i), states[fmt.Sprintf("secret-%02d", i)], sampleState(i))
		}
	})

	t.Run("LargeStateFallsBackToTheBody", func(t *testing.T) {
		t.Parallel()
		name := newContainerName()
		w := f.journal(t, name, nil)
		big := largeState()
		if b, _ := json.Marshal(big); len(b) < 8*1024 {
			t.Fatalf("test state is only %d bytes: too small to exercise the fallback", len(b))
		}
		mustSave(t, w, "vault1", "busy", big)
		for i := range 5 {
			mustSave(t, w, "vault1", fmt.Sprintf("quiet-%d", i), sampleState(i))
		}
		props, err := f.client.ServiceClient().NewContainerClient(name).NewBlobClient("vault1/busy").GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if hasMeta(props.Metadata, "state") || !hasMeta(props.Metadata, "stateinbody") {
			t.Fatalf("metadata of the large state = %v, want stateinbody only", keys(props.Metadata))
		}

		counted := &countingTransport{}
		r := f.journal(t, name, counted)
		sameState(t, "Load", mustLoad(t, r, "vault1", "busy"), big)
		counted.take()
		states, err := r.List(ctx, "vault1")
		if err != nil {
			t.Fatal(err)
		}
		if reqs := counted.take(); len(reqs) != 2 || reqs[0] != "GET list" || reqs[1] != "GET blob" {
			t.Fatalf("List sent %v, want one listing and one download", reqs)
		}
		if len(states) != 6 {
			t.Fatalf("List returned %d states, want 6", len(states))
		}
		sameState(t, "List", states["busy"], big)
		sameState(t, "List quiet-4", states["quiet-4"], sampleState(4))

		// Shrinking it again puts it back into the metadata.
		mustSave(t, r, "vault1", "busy", sampleState(1))
		counted.take()
		if _, err := r.List(ctx, "vault1"); err != nil {
			t.Fatal(err)
		}
		if reqs := counted.take(); len(reqs) != 1 {
			t.Fatalf("List after shrinking sent %v, want one listing", reqs)
		}
	})

	t.Run("KeysAreCaseInsensitive", func(t *testing.T) {
		t.Parallel()
		name := newContainerName()
		j := f.journal(t, name, nil)
		mustSave(t, j, "MyVault", "Api-Key", sampleState(1))
		sameState(t, "other case", mustLoad(t, j, "myvault", "API-KEY"), sampleState(1))
		mustSave(t, j, "MYVAULT", "api-key", sampleState(2))
		states, err := j.List(ctx, "myVAULT")
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 1 {
			t.Fatalf("List = %d states (%v), want 1", len(states), states)
		}
		sameState(t, "List", states["api-key"], sampleState(2))
		if _, err := f.client.ServiceClient().NewContainerClient(name).NewBlobClient("myvault/api-key").GetProperties(ctx, nil); err != nil {
			t.Fatalf("lower-case blob name: %v", err)
		}
	})

	t.Run("VaultsAreKeptApart", func(t *testing.T) {
		t.Parallel()
		j := f.journal(t, newContainerName(), nil)
		mustSave(t, j, "vault-a", "shared-name", sampleState(1))
		mustSave(t, j, "vault-b", "shared-name", sampleState(2))
		mustSave(t, j, "vault-a", "only-a", sampleState(3))
		sameState(t, "vault-a", mustLoad(t, j, "vault-a", "shared-name"), sampleState(1))
		sameState(t, "vault-b", mustLoad(t, j, "vault-b", "shared-name"), sampleState(2))
		sameState(t, "vault-b only-a", mustLoad(t, j, "vault-b", "only-a"), rotation.State{})
		a, err := j.List(ctx, "vault-a")
		if err != nil {
			t.Fatal(err)
		}
		b, err := j.List(ctx, "vault-b")
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != 2 || len(b) != 1 {
			t.Fatalf("List: vault-a %d, vault-b %d states; want 2 and 1", len(a), len(b))
		}
		sameState(t, "List vault-b", b["shared-name"], sampleState(2))
	})

	t.Run("ConditionalWrites", func(t *testing.T) {
		t.Parallel()
		name := newContainerName()
		a, b := f.journal(t, name, nil), f.journal(t, name, nil) // two instances

		// a found it missing; b created it meanwhile: a must not overwrite it.
		mustLoad(t, a, "vault1", "s1")
		mustSave(t, b, "vault1", "s1", sampleState(1))
		if err := a.Save(ctx, "vault1", "s1", sampleState(2)); !errors.Is(err, lock.ErrJournalChanged) {
			t.Fatalf("Save over a blob created since Load = %v, want ErrJournalChanged", err)
		}
		sameState(t, "kept", mustLoad(t, b, "vault1", "s1"), sampleState(1))

		// a read it; b replaced it meanwhile: a must not overwrite it.
		mustLoad(t, a, "vault1", "s1")
		mustSave(t, b, "vault1", "s1", sampleState(3))
		err := a.Save(ctx, "vault1", "s1", sampleState(4))
		if !errors.Is(err, lock.ErrJournalChanged) || providers.IsPermanent(err) {
			t.Fatalf("Save over a blob replaced since Load = %v, want a transient ErrJournalChanged", err)
		}
		// Once a reads it again, it may write.
		sameState(t, "reloaded", mustLoad(t, a, "vault1", "s1"), sampleState(3))
		mustSave(t, a, "vault1", "s1", sampleState(4))
		mustSave(t, a, "vault1", "s1", sampleState(5))
		sameState(t, "final", mustLoad(t, b, "vault1", "s1"), sampleState(5))

		// A Save without any Load in this process is a plain write.
		c := f.journal(t, name, nil)
		mustSave(t, c, "vault1", "s1", sampleState(6))
		sameState(t, "plain write", mustLoad(t, a, "vault1", "s1"), sampleState(6))
	})

	t.Run("ConcurrentFirstUseCreatesTheContainerOnce", func(t *testing.T) {
		t.Parallel()
		name := newContainerName()
		var wg sync.WaitGroup
		errs := make(chan error, 10)
		for i := range 10 {
			j := f.journal(t, name, nil) // separate instances
			wg.Go(func() { errs <- j.Save(ctx, "vault1", fmt.Sprintf("s%d", i), sampleState(i)) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		states, err := f.journal(t, name, nil).List(ctx, "vault1")
		if err != nil || len(states) != 10 {
			t.Fatalf("List = %d states, %v; want 10", len(states), err)
		}
	})

	t.Run("CorruptBlobIsAnErrorNamingIt", func(t *testing.T) {
		t.Parallel()
		name := newContainerName()
		j := f.journal(t, name, nil)
		mustSave(t, j, "vault1", "good", sampleState(1))
		if _, err := f.client.UploadStream(ctx, name, "vault1/bad", strings.NewReader("{not json"), nil); err != nil {
			t.Fatal(err)
		}
		_, err := j.Load(ctx, "vault1", "bad")
		if err == nil || !strings.Contains(err.Error(), name+"/vault1/bad") || !providers.IsPermanent(err) {
			t.Fatalf("Load of a corrupt blob = %v, want a permanent error naming %s/vault1/bad", err, name)
		}
		if _, err := j.List(ctx, "vault1"); err == nil || !strings.Contains(err.Error(), "vault1/bad") {
			t.Fatalf("List with a corrupt blob = %v, want an error naming it", err)
		}
	})

	t.Run("BlobLockerJournalSharesTheAccount", func(t *testing.T) {
		t.Parallel()
		jc := newContainerName()
		l := f.locker(t, lock.Options{JournalContainer: jc})
		j := l.Journal()
		if l.Journal() != j {
			t.Fatal("Journal() returned a different BlobJournal on the second call")
		}
		if j.Container() != jc {
			t.Fatalf("journal container = %q, want %q", j.Container(), jc)
		}
		held, unlock := mustLock(t, l, "vault1/locked")
		if err := j.Save(held, "vault1", "locked", sampleState(1)); err != nil {
			t.Fatalf("Save under the lease: %v", err)
		}
		unlock()
		sameState(t, "Load", mustLoad(t, j, "vault1", "locked"), sampleState(1))
		if got := f.locker(t, lock.Options{}).Journal().Container(); got != lock.DefaultJournalContainer {
			t.Fatalf("default journal container = %q, want %q", got, lock.DefaultJournalContainer)
		}
	})
}

func TestBlobJournalInvalidNames(t *testing.T) {
	client, err := azstorage.NewClientNoCredential("http://127.0.0.1:9/devstoreaccount1", &azcore.ClientOptions{Transport: failTransport{t}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	j := lock.NewBlobJournal(client, "")
	if j.Container() != lock.DefaultJournalContainer {
		t.Fatalf("default container = %q", j.Container())
	}
	for _, name := range []string{"", "..", "a/b", "sec ret", "sec_ret", "sécret", "a%2Fb", "a?comp=list", strings.Repeat("a", 128)} {
		if _, err := lock.JournalBlobName("vault", name); err == nil {
			t.Errorf("JournalBlobName(vault, %q) accepted", name)
		}
		if _, err := lock.JournalBlobName(name, "secret"); err == nil {
			t.Errorf("JournalBlobName(%q, secret) accepted", name)
		}
		if _, err := j.Load(ctx, "vault", name); err == nil || !providers.IsPermanent(err) {
			t.Errorf("Load(vault, %q) = %v, want a permanent error", name, err)
		}
		if err := j.Save(ctx, name, "secret", rotation.State{}); err == nil {
			t.Errorf("Save(%q, secret) accepted", name)
		}
		if _, err := j.List(ctx, name); err == nil {
			t.Errorf("List(%q) accepted", name)
		}
	}
	if _, err := lock.NewBlobJournal(client, "Bad_Name").Load(ctx, "vault", "secret"); err == nil || !strings.Contains(err.Error(), "container") {
		t.Fatalf("Load with a bad container name = %v", err)
	}
}

// failTransport fails the test if any request is sent.
type failTransport struct{ t *testing.T }

func (f failTransport) Do(req *http.Request) (*http.Response, error) {
	f.t.Errorf("unexpected request %s %s", req.Method, req.URL.Path)
	return nil, errors.New("no requests expected")
}

// statusTransport answers every request with one storage error.
type statusTransport struct {
	status int
	code   string
}

func (s statusTransport) Do(req *http.Request) (*http.Response, error) {
	h := http.Header{}
	h.Set("x-ms-error-code", s.code)
	return &http.Response{StatusCode: s.status, Header: h, Body: io.NopCloser(strings.NewReader("")), Request: req}, nil
}

func TestBlobJournalErrors(t *testing.T) {
	ctx := context.Background()
	cs := azuritetest.ConnectionString("http://127.0.0.1:9/devstoreaccount1")
	noRetry := policy.RetryOptions{MaxRetries: -1}

	for _, c := range []struct {
		status    int
		code      string
		permanent bool
	}{
		{http.StatusForbidden, "AuthorizationPermissionMismatch", true},
		{http.StatusForbidden, "AuthenticationFailed", true},
		{http.StatusBadRequest, "InvalidMetadata", true},
		{http.StatusServiceUnavailable, "ServerBusy", false},
		{http.StatusInternalServerError, "InternalError", false},
	} {
		client, err := azstorage.NewClientFromConnectionString(cs, &azcore.ClientOptions{Transport: statusTransport{c.status, c.code}, Retry: noRetry})
		if err != nil {
			t.Fatal(err)
		}
		j := lock.NewBlobJournal(client, "")
		_, lerr := j.Load(ctx, "vault1", "s1")
		serr := j.Save(ctx, "vault1", "s1", sampleState(1))
		_, listErr := j.List(ctx, "vault1")
		for op, err := range map[string]error{"Load": lerr, "Save": serr, "List": listErr} {
			if err == nil {
				t.Errorf("%d %s: %s succeeded", c.status, c.code, op)
				continue
			}
			if providers.IsPermanent(err) != c.permanent {
				t.Errorf("%d %s: %s: permanent = %v, want %v (%v)", c.status, c.code, op, providers.IsPermanent(err), c.permanent, err)
			}
			if msg := err.Error(); !strings.Contains(msg, c.code) || !strings.Contains(msg, lock.DefaultJournalContainer) ||
				strings.Contains(msg, azuritetest.AccountKey) || strings.Contains(msg, "AccountKey") {
				t.Errorf("%d %s: %s error %q: want the code and container, never the key", c.status, c.code, op, msg)
			}
		}
	}

	// No answer at all, with a SAS token in the URL: the error never shows it.
	client, err := azstorage.NewClientNoCredential("http://127.0.0.1:9/devstoreaccount1?sv=2023-01-01&sig=SECRETSIGNATURE", &azcore.ClientOptions{Retry: noRetry})
	if err != nil {
		t.Fatal(err)
	}
	j := lock.NewBlobJournal(client, "")
	_, lerr := j.Load(ctx, "vault1", "s1")
	serr := j.Save(ctx, "vault1", "s1", sampleState(1))
	_, listErr := j.List(ctx, "vault1")
	for op, err := range map[string]error{"Load": lerr, "Save": serr, "List": listErr} {
		if err == nil || providers.IsPermanent(err) || strings.Contains(err.Error(), "SECRETSIGNATURE") {
			t.Errorf("%s with no service = %v, want a transient error without the SAS signature", op, err)
		}
	}
}

func hasMeta(m map[string]*string, key string) bool {
	for k, v := range m {
		if strings.EqualFold(k, key) && v != nil {
			return true
		}
	}
	return false
}

func keys(m map[string]*string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
