package azstorage_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/internal/azuritetest"
)

// Every operation against Azurite, with Shared Key; what this client writes is read back with the SDK's
// own client (azblob), and what the SDK writes is read with this one.
func TestOperationsAgainstAzurite(t *testing.T) {
	cs := azuritetest.Start(t)
	ctx := context.Background()
	c, err := azstorage.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := azblob.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A missing container and blob answer with their codes.
	if _, _, err := c.Download(ctx, "ops", "a/b", 10); !azstorage.HasCode(err, azstorage.ContainerNotFound) {
		t.Fatalf("download from a missing container: %v", err)
	}
	if err := c.CreateContainer(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateContainer(ctx, "ops"); !azstorage.HasCode(err, azstorage.ContainerAlreadyExists) {
		t.Fatalf("create twice: %v", err)
	}
	if _, _, err := c.Download(ctx, "ops", "a/b", 10); !azstorage.HasCode(err, azstorage.BlobNotFound) {
		t.Fatalf("download a missing blob: %v", err)
	}

	// Upload with metadata and content type; the SDK sees both.
	etag, err := c.Upload(ctx, "ops", "vault1/s1", []byte(`{"a":1}`), azstorage.PutOptions{
		ContentType: "application/json", Metadata: map[string]string{"state": "eyJhIjoxfQ"}, IfNoneMatch: azcore.ETagAny})
	if err != nil || etag == "" {
		t.Fatalf("upload: %q, %v", etag, err)
	}
	props, err := sdk.ServiceClient().NewContainerClient("ops").NewBlobClient("vault1/s1").GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *props.ETag != etag || *props.ContentType != "application/json" || props.Metadata["State"] == nil && props.Metadata["state"] == nil {
		t.Fatalf("the SDK sees ETag %s (want %s), content type %s, metadata %v", *props.ETag, etag, *props.ContentType, props.Metadata)
	}
	// Metadata names keep their case.
	if _, err := c.Upload(ctx, "ops", "vault1/cased", nil, azstorage.PutOptions{Metadata: map[string]string{"myKey": "v"}}); err != nil {
		t.Fatal(err)
	}
	if page, err := c.ListBlobs(ctx, "ops", "vault1/cased", ""); err != nil || len(page.Blobs) != 1 || page.Blobs[0].Metadata["myKey"] != "v" {
		t.Fatalf("metadata as listed (names as stored): %+v, %v", page, err)
	}
	if got, _ := c.Properties(ctx, "ops", "vault1/s1"); got != etag {
		t.Fatalf("Properties ETag %s, want %s", got, etag)
	}

	// Conditions: If-None-Match * on an existing blob, If-Match with a stale ETag.
	if _, err := c.Upload(ctx, "ops", "vault1/s1", []byte("x"), azstorage.PutOptions{IfNoneMatch: azcore.ETagAny}); !azstorage.HasCode(err, azstorage.BlobAlreadyExists) {
		t.Fatalf("If-None-Match * on an existing blob: %v", err)
	}
	etag2, err := c.Upload(ctx, "ops", "vault1/s1", []byte(`{"a":2}`), azstorage.PutOptions{IfMatch: etag})
	if err != nil || etag2 == etag {
		t.Fatalf("If-Match with the current ETag: %q, %v", etag2, err)
	}
	var re *azcore.ResponseError
	if _, err := c.Upload(ctx, "ops", "vault1/s1", []byte("x"), azstorage.PutOptions{IfMatch: etag}); !errors.As(err, &re) || re.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("If-Match with a stale ETag: %v", err)
	}
	body, got, err := c.Download(ctx, "ops", "vault1/s1", 100)
	if err != nil || string(body) != `{"a":2}` || got != etag2 {
		t.Fatalf("download: %q %s %v", body, got, err)
	}
	if body, _, _ := c.Download(ctx, "ops", "vault1/s1", 3); len(body) != 4 {
		t.Fatalf("download with limit 3 read %d bytes, want 4 (limit+1)", len(body))
	}

	// Listing: prefix, metadata, and pages (the SDK writes 7 blobs; pages of 5000 are one page, so
	// the marker is checked by listing what the SDK wrote).
	for _, n := range []string{"vault2/a", "vault2/b", "vault2/c"} {
		if _, err := sdk.UploadBuffer(ctx, "ops", n, []byte("{}"), &azblob.UploadBufferOptions{Metadata: map[string]*string{"state": new("e30")}}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := c.ListBlobs(ctx, "ops", "vault2/", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Blobs) != 3 || page.NextMarker != "" {
		t.Fatalf("list vault2/: %+v", page)
	}
	for _, b := range page.Blobs {
		if !strings.HasPrefix(b.Name, "vault2/") || b.Metadata["state"] != "e30" {
			t.Fatalf("listed %+v", b)
		}
	}

	// Leases: acquire, another holder is refused with LeaseAlreadyPresent, renew, release.
	id, other := azstorage.NewLeaseID(), azstorage.NewLeaseID()
	if id == other || len(id) != 36 || id[14] != '4' {
		t.Fatalf("lease ids %s %s", id, other)
	}
	if err := c.AcquireLease(ctx, "ops", "vault2/a", id, 15); err != nil {
		t.Fatal(err)
	}
	if err := c.AcquireLease(ctx, "ops", "vault2/a", other, 15); !azstorage.HasCode(err, azstorage.LeaseAlreadyPresent) {
		t.Fatalf("second holder: %v", err)
	}
	if err := c.RenewLease(ctx, "ops", "vault2/a", id); err != nil {
		t.Fatal(err)
	}
	lprops, err := sdk.ServiceClient().NewContainerClient("ops").NewBlobClient("vault2/a").GetProperties(ctx, nil)
	if err != nil || string(*lprops.LeaseState) != "leased" {
		t.Fatalf("the SDK sees lease state %v, %v", lprops.LeaseState, err)
	}
	if err := c.ReleaseLease(ctx, "ops", "vault2/a", id); err != nil {
		t.Fatal(err)
	}
	if err := c.AcquireLease(ctx, "ops", "vault2/a", other, 15); err != nil {
		t.Fatalf("acquire after release: %v", err)
	}

	// Service properties (what azure-keys uses to check a storage key).
	if err := c.ServiceProperties(ctx); err != nil {
		t.Fatal(err)
	}

	// A wrong key is refused (403) with Azure's code; the error carries neither key.
	wrong := strings.Replace(cs, azuritetest.AccountKey, "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk=", 1)
	bad, err := azstorage.NewClientFromConnectionString(wrong, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = bad.ServiceProperties(ctx)
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || strings.Contains(err.Error(), azuritetest.AccountKey) {
		t.Fatalf("wrong key: %v", err)
	}
}

// A SAS connection string (BlobEndpoint + SharedAccessSignature) reaches the service with the token, and
// URL never shows it.
func TestSASConnectionString(t *testing.T) {
	cs := azuritetest.Start(t)
	ctx := context.Background()
	cred, err := azblob.NewSharedKeyCredential(azuritetest.AccountName, azuritetest.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azstorage.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateContainer(ctx, "sas"); err != nil {
		t.Fatal(err)
	}
	q, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour),
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, List: true, Create: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Container: true, Object: true, Service: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := c.URL()
	token := q.Encode()
	withSAS, err := azstorage.NewClientFromConnectionString("BlobEndpoint="+endpoint+";SharedAccessSignature="+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(withSAS.URL(), "sig=") {
		t.Fatalf("URL shows the SAS: %s", withSAS.URL())
	}
	if _, err := withSAS.Upload(ctx, "sas", "v/s", []byte("{}"), azstorage.PutOptions{}); err != nil {
		t.Fatalf("upload with a SAS: %v", err)
	}
	if page, err := withSAS.ListBlobs(ctx, "sas", "", ""); err != nil || len(page.Blobs) != 1 {
		t.Fatalf("list with a SAS: %+v %v", page, err)
	}
	// No answer at all: the error names the endpoint, never the token.
	down, err := azstorage.NewClientFromConnectionString("BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;SharedAccessSignature="+token,
		&azcore.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"list": func() error { _, err := down.ListBlobs(ctx, "sas", "", ""); return err }(),
		"upload": func() error {
			_, err := down.Upload(ctx, "sas", "v/s", []byte("{}"), azstorage.PutOptions{})
			return err
		}(),
		"download": func() error { _, _, err := down.Download(ctx, "sas", "v/s", 10); return err }(),
		"lease":    down.AcquireLease(ctx, "sas", "v/s", azstorage.NewLeaseID(), 15),
	} {
		if err == nil || strings.Contains(err.Error(), "sig=") || strings.Contains(err.Error(), q.Signature()) || !strings.Contains(err.Error(), "127.0.0.1:9") {
			t.Errorf("%s with no service: %v, want an error naming the endpoint without the SAS", name, err)
		}
	}
	// Without the token the same endpoint refuses.
	anon, err := azstorage.NewClientNoCredential(endpoint, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.ListBlobs(ctx, "sas", "", ""); err == nil {
		t.Fatal("anonymous listing succeeded")
	}
}

// Connection strings the Azure SDKs accept are accepted, the rest refused with errors that quote no
// value.
func TestConnectionStrings(t *testing.T) {
	const key = "c2VjcmV0LWFjY291bnQta2V5LXRoYXQtbXVzdC1uZXZlci1sZWFr"
	for cs, want := range map[string]string{
		"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + key + ";EndpointSuffix=core.windows.net": "https://acct.blob.core.windows.net/",
		"AccountName=acct;AccountKey=" + key + ";EndpointSuffix=core.usgovcloudapi.net;":                         "https://acct.blob.core.usgovcloudapi.net/",
		"AccountName=acct;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:10000/acct":                       "http://127.0.0.1:10000/acct/",
		"BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2023-01-01&sig=SECRET":         "https://acct.blob.core.windows.net/",
	} {
		c, err := azstorage.NewClientFromConnectionString(cs, nil)
		if err != nil || c.URL() != want {
			t.Errorf("%q: %v, %v; want %s", cs, c, err, want)
		}
	}
	for _, cs := range []string{
		"", "garbage-" + key, "AccountName=acct", "AccountName=acct;AccountKey=" + key + "!!!",
		"AccountKey=" + key, "AccountName=acct;AccountKey=" + key + ";BlobEndpoint=ftp://x",
	} {
		_, err := azstorage.NewClientFromConnectionString(cs, nil)
		if err == nil || !errors.Is(err, azstorage.ErrConnectionString) {
			t.Errorf("%q: %v, want ErrConnectionString", cs, err)
			continue
		}
		if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "garbage") {
			t.Errorf("error quotes the string: %v", err)
		}
	}
}
