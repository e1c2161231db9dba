// Command vaults measures a sweep across several vaults with Key Vault's per-vault write limit on
// (300 secret writes per 10 s, as the emulator enforces it):
//
//	go run ./bench/vaults [-vaults 3] [-n 600] [-concurrency 8]
//
// It starts the Key Vault emulator in-process with the limits on, seeds -n due secrets
// (rotation-provider=random, expiring in 7 days) into each of -vaults vaults through the real azsecrets
// client, waits one limit window so every write bucket is full again, and times one Sweep of the real
// engine (rotation.New over keyvault.New, memory journal) over one vault alone and then over all of
// them. Key Vault's limits are per vault, so the sweep of all the vaults should take about as long as
// the one vault: the ratio is what BENCHMARKS.md records.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/keyvault"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/rotation"

	_ "github.com/kvrotator/kvrotator/providers/random"
)

const (
	writeLimit  = 300
	otherLimit  = 4000
	limitWindow = 10 * time.Second
)

func main() {
	nVaults := flag.Int("vaults", 3, "vaults, each with -n due secrets")
	n := flag.Int("n", 600, "due secrets per vault")
	concurrency := flag.Int("concurrency", 8, "rotations per vault at once (KVROTATOR_SWEEP_CONCURRENCY)")
	flag.Parse()
	if *nVaults < 1 || *n < 1 || *concurrency < 1 {
		fail(errors.New("-vaults, -n and -concurrency must be positive"))
	}
	ctx := context.Background()
	one, err := run(ctx, 1, *n, *concurrency)
	if err != nil {
		fail(err)
	}
	all, err := run(ctx, *nVaults, *n, *concurrency)
	if err != nil {
		fail(err)
	}
	fmt.Printf("| vaults | due secrets | rotated | sweep |\n|---|---|---|---|\n")
	fmt.Printf("| 1 | %d | %d | %.1f s |\n", *n, one.rotated, one.elapsed.Seconds())
	fmt.Printf("| %d | %d | %d | %.1f s |\n", *nVaults, *n**nVaults, all.rotated, all.elapsed.Seconds())
	fmt.Printf("\n%d vaults / 1 vault: %.2f× (sequential vaults would be about %d×)\n", *nVaults, all.elapsed.Seconds()/one.elapsed.Seconds(), *nVaults)
}

type result struct {
	rotated int
	elapsed time.Duration
}

func run(ctx context.Context, vaults, n, concurrency int) (result, error) {
	var cfgs []emulator.VaultConfig
	for i := range vaults {
		cfgs = append(cfgs, emulator.VaultConfig{Name: fmt.Sprintf("benchvault%d", i+1)})
	}
	srv, err := emulator.New(emulator.Config{Addr: "127.0.0.1:0", Vaults: cfgs,
		Limits: emulator.Limits{Writes: writeLimit, Others: otherLimit, Window: limitWindow}})
	if err != nil {
		return result{}, err
	}
	if err := srv.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = srv.Close() }()
	cred := staticCredential{srv}
	fmt.Fprintf(os.Stderr, "vaults: seeding %d × %d secrets...\n", vaults, n)
	var wg sync.WaitGroup
	errs := make(chan error, vaults)
	var kvs []rotation.Vault
	for _, c := range cfgs {
		wg.Go(func() {
			if err := seed(ctx, srv, cred, c.Name, n); err != nil {
				errs <- err
			}
		})
		kv, err := keyvault.New(srv.VaultURL(c.Name), cred, &keyvault.Options{Name: c.Name, Transport: srv.HTTPClient()})
		if err != nil {
			return result{}, err
		}
		kvs = append(kvs, kv)
	}
	wg.Wait()
	select {
	case err := <-errs:
		return result{}, err
	default:
	}
	time.Sleep(limitWindow + 200*time.Millisecond) // full write buckets, as after a quiet spell
	provs, _ := registry.Build(registry.Env{})
	eng, err := rotation.New(rotation.Config{Vaults: kvs, Providers: provs.Lookup, Concurrency: concurrency})
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	rep := eng.Sweep(ctx, rotation.TriggerTimer, false)
	r := result{elapsed: time.Since(start)}
	for _, o := range rep.Outcomes {
		if o.Kind == rotation.KindRotated {
			r.rotated++
		}
	}
	fmt.Fprintf(os.Stderr, "vaults: %d vault(s): %d rotated in %v\n", vaults, r.rotated, r.elapsed.Round(100*time.Millisecond))
	return r, nil
}

func seed(ctx context.Context, srv *emulator.Server, cred azcore.TokenCredential, vault string, n int) error {
	client, err := azsecrets.NewClient(srv.VaultURL(vault), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: srv.HTTPClient(),
		Retry:     policy.RetryOptions{MaxRetries: 1000, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second},
	}})
	if err != nil {
		return err
	}
	expires := time.Now().Add(7 * 24 * time.Hour)
	provider := "random"
	tags := map[string]*string{rotation.TagProvider: &provider}
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range 32 {
		wg.Go(func() {
			for i := range next {
				value := fmt.Sprintf("seed-%05d-initial-value-not-a-credential", i)
				if _, err := client.SetSecret(ctx, fmt.Sprintf("bench-%05d", i), azsecrets.SetSecretParameters{Value: &value, Tags: tags,
					SecretAttributes: &azsecrets.SecretAttributes{Expires: &expires}}, nil); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("seed %s: %w", vault, err)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

type staticCredential struct{ srv *emulator.Server }

func (c staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.srv.IssueToken(emulator.DefaultIdentity().ClientID, "https://vault.azure.net", time.Hour)
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vaults:", err)
	os.Exit(1)
}
