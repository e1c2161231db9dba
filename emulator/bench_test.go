package emulator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
)

// staticToken is a credential holding one emulator-issued token, so that benchmarks measure the vault,
// not token acquisition (which the SDK caches anyway).
type staticToken struct{ tok string }

func (s staticToken) GetToken(_ context.Context, _ policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: s.tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// benchClient serves one vault without rate limits and returns a real azsecrets client for it, over
// HTTPS with authentication on, as in production.
func benchClient(b *testing.B) *azsecrets.Client {
	srv := start(b, func(c *emulator.Config) { c.DisableLimits = true })
	tok, err := srv.IssueToken(emulator.DefaultIdentity().ClientID, "https://vault.azure.net", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	c, err := azsecrets.NewClient(srv.VaultURL("myvault"), staticToken{tok}, clientOptions(srv))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// The emulator's throughput through the real SDK, reported as ops/s (run with -bench . -benchtime 3s;
// RunParallel uses GOMAXPROCS client goroutines). Results and method: BENCHMARKS.md.
func BenchmarkEmulatorGetSecret(b *testing.B) {
	c := benchClient(b)
	if _, err := c.SetSecret(ctx(b), "bench", azsecrets.SetSecretParameters{Value: to("value")}, nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetSecret(context.Background(), "bench", "", nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

func BenchmarkEmulatorSetSecret(b *testing.B) {
	c := benchClient(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.SetSecret(context.Background(), "bench", azsecrets.SetSecretParameters{Value: to("value")}, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkEmulatorListPage lists one full page (25 of 100 secrets).
func BenchmarkEmulatorListPage(b *testing.B) {
	c := benchClient(b)
	for i := range 100 {
		if _, err := c.SetSecret(ctx(b), fmt.Sprintf("s-%03d", i), azsecrets.SetSecretParameters{Value: to("v")}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			page, err := c.NewListSecretPropertiesPager(nil).NextPage(context.Background())
			if err != nil || len(page.Value) != 25 {
				b.Errorf("list: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
