// Package azstorage is the small Azure Blob Storage client kvrotator takes its blob leases and keeps its
// journal with: create a container; put, get and list block blobs with metadata and ETag conditions;
// acquire, renew and release leases; read the service properties (to verify a storage account key).
// Requests go through azcore's pipeline (retries, telemetry, logging with query strings redacted), as
// the SDK's own clients do, authorised with a token credential (managed identity: Storage Blob Data
// Contributor), an account key (Shared Key) or a SAS.
//
// Why not azblob: the SDK's blob module links Apache Arrow, FlatBuffers, LZ4, zstd, xxh3 and
// goccy/go-json for query results kvrotator never asks for (azblob/lease imports azblob/container,
// which imports them), about 5 MB of the binary and two dozen package initialisers that run on every
// start of the Function App; the eleven REST operations kvrotator uses are what this package has.
// Tests check it against Azurite and against the SDK (blobs written here are read with azblob).
//
// Errors for answers other than 2xx are *azcore.ResponseError with ErrorCode from x-ms-error-code
// (HasCode); no error carries a SAS token or an account key (a transport error's URL is cut at its
// query).
package azstorage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
)

// APIVersion is the Blob service REST version every request names (x-ms-version).
const APIVersion = "2025-11-05"

// TokenScope is the scope of the tokens storage requests carry.
const TokenScope = "https://storage.azure.com/.default"

const (
	moduleName    = "kvrotator/azstorage"
	moduleVersion = "v1"
)

// Error codes of the Blob service (x-ms-error-code) that kvrotator acts on.
const (
	BlobNotFound                       = "BlobNotFound"
	ContainerNotFound                  = "ContainerNotFound"
	ContainerAlreadyExists             = "ContainerAlreadyExists"
	BlobAlreadyExists                  = "BlobAlreadyExists"
	ConditionNotMet                    = "ConditionNotMet"
	LeaseIDMissing                     = "LeaseIdMissing"
	LeaseAlreadyPresent                = "LeaseAlreadyPresent"
	LeaseIsBreakingAndCannotBeAcquired = "LeaseIsBreakingAndCannotBeAcquired"
)

// HasCode reports whether err is a storage answer with one of the error codes.
func HasCode(err error, codes ...string) bool {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, c := range codes {
		if strings.EqualFold(re.ErrorCode, c) {
			return true
		}
	}
	return false
}

// Client talks to one storage account's blob service. It is safe for concurrent use.
type Client struct {
	pl      runtime.Pipeline
	base    string // the service URL, ending in "/", without a query string
	display string // the service URL as given, without a query string
	sas     string // the SAS token of a SAS connection string ("" otherwise), added to every request
}

// NewClient returns a client of the blob service at serviceURL whose requests carry tokens from cred
// (https only).
func NewClient(serviceURL string, cred azcore.TokenCredential, o *azcore.ClientOptions) (*Client, error) {
	if cred == nil {
		return nil, errors.New("azstorage: no token credential")
	}
	auth := runtime.NewBearerTokenPolicy(cred, []string{TokenScope}, nil)
	return newClient(serviceURL, "", auth, o)
}

// NewSharedKeyClient returns a client whose requests are signed with the account's key (Shared Key).
// The key is base64; an error for one that is not never quotes it.
func NewSharedKeyClient(serviceURL, account, key string, o *azcore.ClientOptions) (*Client, error) {
	p, err := newSharedKey(account, key)
	if err != nil {
		return nil, err
	}
	return newClient(serviceURL, "", p, o)
}

func newClient(serviceURL, sas string, auth policy.Policy, o *azcore.ClientOptions) (*Client, error) {
	u, err := url.Parse(serviceURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("azstorage: %q is not a blob service URL", stripQuery(serviceURL))
	}
	if u.RawQuery != "" {
		if sas != "" {
			return nil, errors.New("azstorage: a SAS both in the URL and in SharedAccessSignature")
		}
		sas = u.RawQuery
		u.RawQuery = ""
	}
	display := u.String()
	base := display
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	var opts policy.ClientOptions
	if o != nil {
		opts = *o
	}
	var per []policy.Policy
	if auth != nil {
		per = append(per, auth)
	}
	pl := runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{PerRetry: per}, &opts)
	return &Client{pl: pl, base: base, display: display, sas: strings.TrimPrefix(sas, "?")}, nil
}

// URL is the blob service URL as given, without the SAS token it or a connection string may carry.
func (c *Client) URL() string { return c.display }

// url builds the URL of a container or blob with the query q (and the SAS, if any).
func (c *Client) url(container, blob string, q url.Values) string {
	var b strings.Builder
	b.WriteString(c.base)
	if container != "" {
		b.WriteString(url.PathEscape(container))
	}
	if blob != "" {
		b.WriteByte('/')
		for i, seg := range strings.Split(blob, "/") {
			if i > 0 {
				b.WriteByte('/')
			}
			b.WriteString(url.PathEscape(seg))
		}
	}
	query := q.Encode()
	if c.sas != "" {
		if query != "" {
			query += "&"
		}
		query += c.sas
	}
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// do sends one request and returns the response when its status is one of ok; any other answer is an
// *azcore.ResponseError (its body read and closed).
func (c *Client) do(ctx context.Context, method, u string, hdr http.Header, body []byte, contentType string, ok ...int) (*http.Response, error) {
	req, err := runtime.NewRequest(ctx, method, u)
	if err != nil {
		return nil, fmt.Errorf("azstorage: %s %s: not a request URL", method, stripQuery(u)) // its error would quote the SAS
	}
	raw := req.Raw()
	raw.Header.Set("x-ms-version", APIVersion)
	for k, vs := range hdr {
		if strings.HasPrefix(strings.ToLower(k), "x-ms-meta-") {
			raw.Header[k] = vs // metadata names keep their case (Azure stores them as sent)
			continue
		}
		for _, v := range vs {
			raw.Header.Add(k, v)
		}
	}
	if body != nil {
		if err := req.SetBody(streaming.NopCloser(bytes.NewReader(body)), contentType); err != nil {
			return nil, err
		}
	}
	resp, err := c.pl.Do(req)
	if err != nil {
		return nil, withoutQuery(err)
	}
	if runtime.HasStatusCode(resp, ok...) {
		return resp, nil
	}
	return nil, runtime.NewResponseError(resp)
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
}

// CreateContainer creates a private container (Create Container).
func (c *Client) CreateContainer(ctx context.Context, container string) error {
	resp, err := c.do(ctx, http.MethodPut, c.url(container, "", url.Values{"restype": {"container"}}), nil, nil, "", http.StatusCreated)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// PutOptions are the optional parts of Upload.
type PutOptions struct {
	ContentType string
	// Metadata names must be valid C# identifiers (Azure's rule); values are sent as given.
	Metadata map[string]string
	// IfMatch and IfNoneMatch make the write conditional (ETag "*" for any).
	IfMatch, IfNoneMatch azcore.ETag
}

// Upload writes a block blob in one request (Put Blob) and returns its new ETag.
func (c *Client) Upload(ctx context.Context, container, blob string, body []byte, o PutOptions) (azcore.ETag, error) {
	hdr := http.Header{"x-ms-blob-type": {"BlockBlob"}}
	if o.ContentType != "" {
		hdr.Set("x-ms-blob-content-type", o.ContentType)
	}
	for k, v := range o.Metadata {
		hdr["x-ms-meta-"+k] = []string{v}
	}
	if o.IfMatch != "" {
		hdr.Set("If-Match", string(o.IfMatch))
	}
	if o.IfNoneMatch != "" {
		hdr.Set("If-None-Match", string(o.IfNoneMatch))
	}
	if body == nil {
		body = []byte{}
	}
	resp, err := c.do(ctx, http.MethodPut, c.url(container, blob, nil), hdr, body, o.ContentType, http.StatusCreated)
	if err != nil {
		return "", err
	}
	drain(resp)
	return azcore.ETag(resp.Header.Get("ETag")), nil
}

// Download reads a blob (Get Blob): at most limit+1 bytes of its body (so that the caller can tell a
// body over its limit), and its ETag.
func (c *Client) Download(ctx context.Context, container, blob string, limit int64) ([]byte, azcore.ETag, error) {
	resp, err := c.do(ctx, http.MethodGet, c.url(container, blob, nil), nil, nil, "", http.StatusOK)
	if err != nil {
		return nil, "", err
	}
	defer drain(resp)
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", err
	}
	return body, azcore.ETag(resp.Header.Get("ETag")), nil
}

// Properties reads a blob's ETag (Get Blob Properties).
func (c *Client) Properties(ctx context.Context, container, blob string) (azcore.ETag, error) {
	resp, err := c.do(ctx, http.MethodHead, c.url(container, blob, nil), nil, nil, "", http.StatusOK)
	if err != nil {
		return "", err
	}
	drain(resp)
	return azcore.ETag(resp.Header.Get("ETag")), nil
}

// BlobItem is one blob of a listing.
type BlobItem struct {
	Name     string
	Metadata map[string]string
}

// ListPage is one page of List Blobs; NextMarker is "" on the last.
type ListPage struct {
	Blobs      []BlobItem
	NextMarker string
}

// maxListBody bounds a listing page (5000 blobs with 8 KiB of metadata each would be 40 MB; kvrotator's
// are a few hundred bytes).
const maxListBody = 64 << 20

// ListBlobs lists the blobs whose names start with prefix, with their metadata (List Blobs), one page
// from marker ("" for the first).
func (c *Client) ListBlobs(ctx context.Context, container, prefix, marker string) (ListPage, error) {
	q := url.Values{"restype": {"container"}, "comp": {"list"}, "include": {"metadata"}}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	if marker != "" {
		q.Set("marker", marker)
	}
	resp, err := c.do(ctx, http.MethodGet, c.url(container, "", q), nil, nil, "", http.StatusOK)
	if err != nil {
		return ListPage{}, err
	}
	defer drain(resp)
	var doc struct {
		Blobs []struct {
			Name     string `xml:"Name"`
			Metadata struct {
				Items []struct {
					XMLName xml.Name
					Value   string `xml:",chardata"`
				} `xml:",any"`
			} `xml:"Metadata"`
		} `xml:"Blobs>Blob"`
		NextMarker string `xml:"NextMarker"`
	}
	if err := xml.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&doc); err != nil {
		return ListPage{}, fmt.Errorf("azstorage: list blobs of %s: unreadable answer: %w", container, err)
	}
	page := ListPage{NextMarker: doc.NextMarker}
	for _, b := range doc.Blobs {
		item := BlobItem{Name: b.Name}
		if len(b.Metadata.Items) > 0 {
			item.Metadata = make(map[string]string, len(b.Metadata.Items))
			for _, m := range b.Metadata.Items {
				item.Metadata[m.XMLName.Local] = m.Value
			}
		}
		page.Blobs = append(page.Blobs, item)
	}
	return page, nil
}

// NewLeaseID returns a random lease ID (a version 4 UUID), proposed when acquiring a lease.
func NewLeaseID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// lease sends one Lease Blob action.
func (c *Client) lease(ctx context.Context, container, blob string, hdr http.Header, ok int) error {
	resp, err := c.do(ctx, http.MethodPut, c.url(container, blob, url.Values{"comp": {"lease"}}), hdr, nil, "", ok)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// AcquireLease takes a lease of seconds (15 to 60, or -1 for an infinite one) on a blob, with the
// proposed lease ID id.
func (c *Client) AcquireLease(ctx context.Context, container, blob, id string, seconds int) error {
	return c.lease(ctx, container, blob, http.Header{
		"x-ms-lease-action":      {"acquire"},
		"x-ms-lease-duration":    {strconv.Itoa(seconds)},
		"x-ms-proposed-lease-id": {id},
	}, http.StatusCreated)
}

// RenewLease renews the lease id on a blob.
func (c *Client) RenewLease(ctx context.Context, container, blob, id string) error {
	return c.lease(ctx, container, blob, http.Header{"x-ms-lease-action": {"renew"}, "x-ms-lease-id": {id}}, http.StatusOK)
}

// ReleaseLease releases the lease id on a blob.
func (c *Client) ReleaseLease(ctx context.Context, container, blob, id string) error {
	return c.lease(ctx, container, blob, http.Header{"x-ms-lease-action": {"release"}, "x-ms-lease-id": {id}}, http.StatusOK)
}

// ServiceProperties reads the blob service's properties (Get Blob Service Properties): an
// authenticated read that changes nothing, to check that a key works.
func (c *Client) ServiceProperties(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodGet, c.url("", "", url.Values{"restype": {"service"}, "comp": {"properties"}}), nil, nil, "", http.StatusOK)
	if err != nil {
		return err
	}
	drain(resp)
	return nil
}

// withoutQuery returns err with the query string (which may hold a SAS token) cut from the URL of a
// transport error (*url.Error: no answer); errors.Is and errors.As still reach the cause.
func withoutQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && strings.ContainsRune(ue.URL, '?') {
		return &url.Error{Op: ue.Op, URL: stripQuery(ue.URL), Err: ue.Err}
	}
	return err
}

func stripQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// NewClientNoCredential returns a client whose requests carry no authorisation of their own: for a
// service URL with a SAS token in its query, or a public container.
func NewClientNoCredential(serviceURL string, o *azcore.ClientOptions) (*Client, error) {
	return newClient(serviceURL, "", nil, o)
}
