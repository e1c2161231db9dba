package lock

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/rotation"
)

// ErrJournalChanged is wrapped by the error of a BlobJournal.Save whose blob was written by someone else
// since this process last read or wrote it (or created since this process found it missing): the lease
// that should have kept others out was lost, or the caller saved without loading first. Nothing is
// written; it is transient — the next attempt loads the state again.
var ErrJournalChanged = errors.New("the journal entry changed since it was read")

// Journal blob metadata. A state that fits is stored in the metadata as well as in the body, so that
// List reads a whole vault from the listing alone.
const (
	metaState  = "state"       // base64url (no padding) of the JSON body
	metaInBody = "stateinbody" // "true" when the state was too large for metadata: List downloads the body
	// maxMetaState bounds the encoded state in metadata: Azure allows 8 KiB for all of a blob's
	// metadata, names included.
	maxMetaState = 7 * 1024
	// maxBody bounds what Load reads: a state is a few hundred bytes, a very busy one tens of kilobytes.
	maxBody = 4 << 20
)

// BlobJournal implements rotation.Journal with one block blob per secret, <vault>/<secret> in lower case,
// in a container of kvrotator's own storage account (default DefaultJournalContainer, created on first
// use). The body is the JSON of rotation.State; the same JSON, base64url-encoded, is kept in the blob's
// metadata when it fits (a few kilobytes: dozens of pending revocations), so that List reads a vault's
// states with one listing request per 5000 secrets and downloads only the blobs whose state did not fit.
//
// Writes are conditional: Save sends If-Match with the ETag this process last read or wrote for the
// blob, or If-None-Match: * when Load found none, so a write that would overwrite a state this process
// has not seen fails with ErrJournalChanged instead. A Save of a blob this process never loaded is a
// plain upload. Writes happen under the secret's lease anyway; the condition catches a lost lease.
//
// Errors name the container and blob, never the connection string. Access denied (403) and rejected
// requests (400) are permanent (providers.IsPermanent): a person must fix the storage account or the
// identity's role (Storage Blob Data Contributor). Anything else is transient. A missing blob or
// container is not an error: Load returns the zero State and List an empty map.
//
// A BlobJournal is safe for concurrent use. It remembers one ETag per secret it has read or written,
// for the life of the process.
type BlobJournal struct {
	name     string
	client   *azstorage.Client
	createMu sync.Mutex

	mu   sync.Mutex
	seen map[string]*seenBlob // blob name → what this process last knew of it
}

// seenBlob is what this process last knew of a journal blob: its ETag, or that it did not exist.
// gen counts updates, so that a Load that raced with a Save does not replace the newer knowledge.
type seenBlob struct {
	etag   azcore.ETag
	absent bool
	gen    uint64
}

var _ rotation.Journal = (*BlobJournal)(nil)

// NewBlobJournal returns a BlobJournal keeping its blobs in container containerName of client's account
// ("" = DefaultJournalContainer). It makes no network call. BlobLocker.Journal returns one sharing the
// locker's client.
func NewBlobJournal(client *azstorage.Client, containerName string) *BlobJournal {
	if containerName == "" {
		containerName = DefaultJournalContainer
	}
	return &BlobJournal{name: containerName, client: client, seen: map[string]*seenBlob{}}
}

// Container is the name of the container holding the journal blobs.
func (j *BlobJournal) Container() string { return j.name }

// JournalBlobName returns the name of the journal blob of a secret: <vault>/<secret> in lower case. Both
// must be 1 to 127 letters, digits and hyphens, so a blob path is never built from unvalidated input.
func JournalBlobName(vault, secret string) (string, error) {
	if !kvnames.Secret(vault) || !kvnames.Secret(secret) {
		return "", providers.Permanent(fmt.Errorf("invalid journal key %q/%q: want letters, digits and hyphens", vault, secret))
	}
	return strings.ToLower(vault) + "/" + strings.ToLower(secret), nil
}

func (j *BlobJournal) check() error {
	if !containerName().MatchString(j.name) {
		return providers.Permanent(fmt.Errorf("invalid journal container name %q", j.name))
	}
	return nil
}

// Load returns the secret's state: the zero State when its blob (or the container) does not exist.
func (j *BlobJournal) Load(ctx context.Context, vault, secret string) (rotation.State, error) {
	name, err := JournalBlobName(vault, secret)
	if err != nil {
		return rotation.State{}, err
	}
	if err := j.check(); err != nil {
		return rotation.State{}, err
	}
	gen := j.generation(name)
	st, etag, err := j.download(ctx, name)
	if azstorage.HasCode(err, azstorage.BlobNotFound, azstorage.ContainerNotFound) {
		j.remember(name, &gen, "", true)
		return rotation.State{}, nil
	}
	if err != nil {
		return rotation.State{}, err
	}
	j.remember(name, &gen, etag, false)
	return st, nil
}

// download reads and decodes a journal blob. Storage errors are returned unwrapped when they say the
// blob or container is missing (azstorage.HasCode), classified otherwise.
func (j *BlobJournal) download(ctx context.Context, name string) (rotation.State, azcore.ETag, error) {
	body, etag, err := j.client.Download(ctx, j.name, name, maxBody)
	if err != nil {
		if azstorage.HasCode(err, azstorage.BlobNotFound, azstorage.ContainerNotFound) {
			return rotation.State{}, "", err
		}
		return rotation.State{}, "", j.classify("read", name, err)
	}
	if len(body) > maxBody {
		return rotation.State{}, "", providers.Permanent(fmt.Errorf("journal blob %s/%s is larger than %d bytes: not a kvrotator state", j.name, name, maxBody))
	}
	st, err := decodeState(body)
	if err != nil {
		return rotation.State{}, "", providers.Permanent(fmt.Errorf("journal blob %s/%s is corrupt (%v): fix or delete it; kvrotator then forgets the secret's pending revocations", j.name, name, err))
	}
	return st, etag, nil
}

// Save replaces the secret's state, creating the container on first use.
func (j *BlobJournal) Save(ctx context.Context, vault, secret string, st rotation.State) error {
	name, err := JournalBlobName(vault, secret)
	if err != nil {
		return err
	}
	if err := j.check(); err != nil {
		return err
	}
	body, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode the journal state of %s: %w", name, err)
	}
	opts := azstorage.PutOptions{ContentType: "application/json", Metadata: map[string]string{}}
	if enc := base64.RawURLEncoding.EncodeToString(body); len(enc) <= maxMetaState {
		opts.Metadata[metaState] = enc
	} else {
		opts.Metadata[metaInBody] = "true"
	}
	conditional := j.condition(name, &opts)
	upload := func() (azcore.ETag, error) { return j.client.Upload(ctx, j.name, name, body, opts) }
	etag, err := upload()
	if azstorage.HasCode(err, azstorage.ContainerNotFound) {
		j.createMu.Lock()
		err = createContainer(ctx, j.client, j.name)
		j.createMu.Unlock()
		if err != nil {
			return j.classify("write", name, err)
		}
		etag, err = upload()
	}
	if err != nil {
		if conditional && blobExists(err) {
			return fmt.Errorf("write journal blob %s/%s: %w (%w)", j.name, name, ErrJournalChanged, brief(err))
		}
		return j.classify("write", name, err)
	}
	// An empty ETag (never seen from Azure Storage) makes the next Save unconditional.
	j.remember(name, nil, etag, false)
	return nil
}

// List returns the state of every secret of the vault that has one, keyed by lower-case secret name. It
// lists the vault's blobs with their metadata and downloads only those whose state did not fit there.
func (j *BlobJournal) List(ctx context.Context, vault string) (map[string]rotation.State, error) {
	if !kvnames.Secret(vault) {
		return nil, providers.Permanent(fmt.Errorf("invalid journal vault name %q: want letters, digits and hyphens", vault))
	}
	if err := j.check(); err != nil {
		return nil, err
	}
	prefix := strings.ToLower(vault) + "/"
	out := map[string]rotation.State{}
	var large []string
	for marker, first := "", true; first || marker != ""; first = false {
		page, err := j.client.ListBlobs(ctx, j.name, prefix, marker)
		if azstorage.HasCode(err, azstorage.ContainerNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, j.classify("list", prefix, err)
		}
		marker = page.NextMarker
		for _, item := range page.Blobs {
			secret := strings.TrimPrefix(item.Name, prefix)
			if !kvnames.Secret(secret) {
				continue // not a journal blob of this vault
			}
			if st, ok := stateFromMetadata(item.Metadata); ok {
				out[strings.ToLower(secret)] = st
			} else {
				large = append(large, secret)
			}
		}
	}
	for _, secret := range large {
		st, _, err := j.download(ctx, prefix+secret)
		if azstorage.HasCode(err, azstorage.BlobNotFound, azstorage.ContainerNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return nil, err
		}
		out[strings.ToLower(secret)] = st
	}
	return out, nil
}

// stateFromMetadata decodes the state a listing carries in a blob's metadata; false when it is not there
// (too large, or a blob written otherwise) or does not decode: the body, which is authoritative, is read.
func stateFromMetadata(meta map[string]string) (rotation.State, bool) {
	for k, v := range meta {
		if !strings.EqualFold(k, metaState) {
			continue
		}
		body, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			return rotation.State{}, false
		}
		st, err := decodeState(body)
		return st, err == nil
	}
	return rotation.State{}, false
}

func decodeState(body []byte) (rotation.State, error) {
	var st rotation.State
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&st); err != nil {
		return rotation.State{}, err
	}
	if dec.More() {
		return rotation.State{}, errors.New("data after the JSON object")
	}
	return st, nil
}

// generation returns the update count of what this process knows of a blob, before a Load reads it.
func (j *BlobJournal) generation(name string) uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	if s := j.seen[name]; s != nil {
		return s.gen
	}
	return 0
}

// remember records what a Load learnt of a blob (loadGen = the generation it started with), or a Save
// (loadGen nil). A Load's answer is dropped if a Save recorded something while it was in flight.
func (j *BlobJournal) remember(name string, loadGen *uint64, etag azcore.ETag, absent bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.seen[name]
	if s == nil {
		s = &seenBlob{}
		j.seen[name] = s
	}
	if loadGen != nil && s.gen != *loadGen {
		return
	}
	s.etag, s.absent = etag, absent
	s.gen++
}

// condition sets the access condition of the next Save of a blob in o and reports whether there is one:
// none when this process knows nothing of it.
func (j *BlobJournal) condition(name string, o *azstorage.PutOptions) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.seen[name]
	switch {
	case s == nil:
		return false
	case s.absent:
		o.IfNoneMatch = azcore.ETagAny
	case s.etag != "":
		o.IfMatch = s.etag
	default:
		return false
	}
	return true
}

// classify turns a storage error into one naming the blob (or prefix) and saying whether retrying can
// help; it never quotes the connection string or a SAS token.
func (j *BlobJournal) classify(op, name string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s journal blob %s/%s: %w", op, j.name, name, err)
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusForbidden:
			return providers.Permanent(fmt.Errorf("%s journal blob %s/%s: %w: access denied (check %s and that kvrotator's identity has the Storage Blob Data Contributor role on the account or container)",
				op, j.name, name, brief(err), SettingStorage))
		case http.StatusBadRequest:
			return providers.Permanent(fmt.Errorf("%s journal blob %s/%s: %w", op, j.name, name, brief(err)))
		}
	}
	return fmt.Errorf("%s journal blob %s/%s: %w", op, j.name, name, brief(err))
}
