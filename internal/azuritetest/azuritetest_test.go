package azuritetest_test

import (
	"context"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/kvrotator/kvrotator/internal/azuritetest"
)

func TestStartServesBlobsAndStopsInCleanup(t *testing.T) {
	var endpoint string
	t.Run("running", func(t *testing.T) {
		cs := azuritetest.Start(t)
		client, err := azblob.NewClientFromConnectionString(cs, nil)
		if err != nil {
			t.Fatal(err)
		}
		endpoint = client.URL()
		if _, err := client.CreateContainer(context.Background(), "probe", nil); err != nil {
			t.Fatalf("create container: %v", err)
		}
		if _, err := client.UploadBuffer(context.Background(), "probe", "a/b", []byte("x"), nil); err != nil {
			t.Fatalf("upload: %v", err)
		}
	})
	if endpoint == "" {
		t.Skip("Azurite not available")
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Hostname() != "127.0.0.1" || !strings.HasPrefix(u.Path, "/devstoreaccount1") {
		t.Fatalf("endpoint %q", endpoint)
	}
	// The subtest's cleanup stopped Azurite: its port no longer answers.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still answers after cleanup", u.Host)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTwoInstancesAreIndependent(t *testing.T) {
	a, b := azuritetest.Start(t), azuritetest.Start(t)
	if a == b {
		t.Fatal("two Start calls returned the same endpoint")
	}
}
