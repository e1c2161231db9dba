package lock

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"

	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/internal/azuritetest"
)

// An existing lock blob, leased by another instance, is neither overwritten nor an error.
func TestEnsureBlobKeepsExistingLeasedBlob(t *testing.T) {
	cs := azuritetest.Start(t)
	client, err := azblob.NewClientFromConnectionString(cs, nil) // the SDK's client, to look independently
	if err != nil {
		t.Fatal(err)
	}
	ours, err := azstorage.NewClientFromConnectionString(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := NewBlobLocker(ours, Options{Container: "ensure"})
	bb := client.ServiceClient().NewContainerClient("ensure").NewBlockBlobClient("locks/v/s")

	// First call creates the container and the blob.
	if err := l.ensureBlob(ctx, "locks/v/s"); err != nil {
		t.Fatalf("ensureBlob (create): %v", err)
	}
	props, err := bb.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	lc, err := lease.NewBlobClient(bb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.AcquireLease(ctx, 15, nil); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = lc.ReleaseLease(ctx, nil) }()

	// Again, with the blob leased by someone else, and with the container present.
	if err := l.ensureBlob(ctx, "locks/v/s"); err != nil {
		t.Fatalf("ensureBlob (exists, leased): %v", err)
	}
	after, err := bb.GetProperties(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *after.ETag != *props.ETag {
		t.Fatalf("existing lock blob was overwritten: ETag %s → %s", *props.ETag, *after.ETag)
	}
	if err := l.ensureContainer(ctx); err != nil {
		t.Fatalf("ensureContainer on an existing container: %v", err)
	}
}
