// Command sweep measures one sweep of N due secrets against the Key Vault emulator with Key Vault's
// per-vault write limit on (300 secret writes per 10 s), once with each journal kvrotator can keep its
// state in (DESIGN.md, "Performance targets"):
//
//	go run ./bench/sweep [-n 3000] [-journal all|memory,file,blob,blob-lease] [-concurrency 8] [-unlimited]
//
// For each journal it starts a fresh emulator in-process (HTTPS, token validation on, limits on),
// seeds N secrets tagged rotation-provider=random that expire in 7 days (inside the 30-day near-expiry
// lead) through the real azsecrets client, waits one limit window so the write bucket is full again,
// and then times one Sweep of the real engine (rotation.New over keyvault.New, providers from
// registry.Build). Seeding is subject to the same limit (the emulator cannot turn limits on or off
// while it runs) and is not counted.
//
// Journals: memory (rotation.NewMemoryJournal), file (journal.OpenFile in a temporary directory), blob
// (lock.NewBlobJournal on Azurite, with the in-process locker), blob-lease (lock.FromSettings on
// Azurite: blob leases and the blob journal, as a Function App with AzureWebJobsStorage runs). Azurite
// is found through KVROTATOR_AZURITE_BLOB, else .tools/azurite/node_modules/.bin/azurite-blob under the
// current directory; without it the blob journals are skipped with a message.
//
// With a full bucket the first 300 writes pass at once and the rest at 30/s, so the least time a sweep
// of N due secrets can take is (N-300)/30 s ("ideal"); the table gives the elapsed time against it,
// the average and the steady-state write rate (writes after the 600th, per second, against the
// limit's 30/s), the 429 answers the emulator gave, and the mean journal call latencies.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/journal"
	"github.com/kvrotator/kvrotator/keyvault"
	"github.com/kvrotator/kvrotator/lock"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/rotation"

	_ "github.com/kvrotator/kvrotator/providers/random"
)

// Key Vault's per-vault limits, as the emulator enforces them.
const (
	writeLimit  = 300
	otherLimit  = 4000
	limitWindow = 10 * time.Second
	vaultName   = "benchvault"
)

var journals = []string{"memory", "file", "blob", "blob-lease"}

func main() {
	n := flag.Int("n", 3000, "due secrets to seed and rotate")
	which := flag.String("journal", "all", "journals to run, comma-separated: memory, file, blob, blob-lease, or all")
	concurrency := flag.Int("concurrency", 8, "rotations the sweep runs at once (rotation.Config.Concurrency, KVROTATOR_SWEEP_CONCURRENCY)")
	unlimited := flag.Bool("unlimited", false, "turn the emulator's rate limits off, to see how fast the engine goes by itself")
	seedWorkers := flag.Int("seed-workers", 64, "concurrent writers while seeding")
	flag.Parse()
	kinds, err := parseJournals(*which)
	if err != nil {
		fail(err)
	}
	if *n <= 0 || *concurrency <= 0 || *seedWorkers <= 0 {
		fail(errors.New("-n, -concurrency and -seed-workers must be positive"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var azurite *azuriteProc
	var results []result
	for _, kind := range kinds {
		if strings.HasPrefix(kind, "blob") && azurite == nil {
			if azurite, err = startAzurite(); err != nil {
				fmt.Fprintf(os.Stderr, "sweep: skipping %s: %v\n", kind, err)
				continue
			}
			defer azurite.stop()
		}
		fmt.Fprintf(os.Stderr, "sweep: %s: seeding %d secrets...\n", kind, *n)
		r, err := runOne(ctx, kind, *n, *concurrency, *seedWorkers, *unlimited, azurite)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sweep: %s: %v\n", kind, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		fmt.Fprintf(os.Stderr, "sweep: %s: seeded in %v, swept in %v\n", kind, r.seed.Round(100*time.Millisecond), r.elapsed.Round(100*time.Millisecond))
		results = append(results, r)
	}
	printTable(*n, *concurrency, *unlimited, results)
}

func parseJournals(s string) ([]string, error) {
	if s == "all" {
		return journals, nil
	}
	var out []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		found := false
		for _, j := range journals {
			found = found || j == k
		}
		if !found {
			return nil, fmt.Errorf("-journal: unknown journal %q (want %s or all)", k, strings.Join(journals, ", "))
		}
		out = append(out, k)
	}
	return out, nil
}

// result is one journal's sweep.
type result struct {
	journal                          string
	due, rotated, failed, other      int
	seed, elapsed                    time.Duration
	steadyRate                       float64 // successful writes per second after the first writeLimit
	writes, throttledWrites, reads   int     // emulator answers during the sweep
	loadMean, saveMean, listDuration time.Duration
	reasons                          map[string]int // failure reasons (never a value)
	warnings                         int            // engine warnings
}

func runOne(ctx context.Context, kind string, n, concurrency, seedWorkers int, unlimited bool, az *azuriteProc) (result, error) {
	r := result{journal: kind, due: n, reasons: map[string]int{}}
	counts := &requestCounter{}
	srv, err := emulator.New(emulator.Config{
		Addr:          "127.0.0.1:0",
		Vaults:        []emulator.VaultConfig{{Name: vaultName}},
		Limits:        emulator.Limits{Writes: writeLimit, Others: otherLimit, Window: limitWindow},
		DisableLimits: unlimited,
		Logger:        slog.New(counts),
	})
	if err != nil {
		return r, err
	}
	if err := srv.Start(); err != nil {
		return r, err
	}
	defer func() { _ = srv.Close() }()
	cred := staticCredential{srv}

	start := time.Now()
	if err := seed(ctx, srv, cred, n, seedWorkers); err != nil {
		return r, fmt.Errorf("seed: %w", err)
	}
	r.seed = time.Since(start)
	// Seeding drained the write bucket: one window fills it again, as for a sweep after a quiet spell.
	if !unlimited {
		select {
		case <-time.After(limitWindow + 200*time.Millisecond):
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}

	var jour rotation.Journal
	var locker rotation.Locker
	switch kind {
	case "memory":
		jour = rotation.NewMemoryJournal()
	case "file":
		dir, err := os.MkdirTemp("", "kvrotator-sweep-journal-")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(dir)
		fj, err := journal.OpenFile(filepath.Join(dir, "journal"))
		if err != nil {
			return r, err
		}
		defer fj.Close()
		jour = fj
	case "blob":
		client, err := azstorage.NewClientFromConnectionString(az.connectionString, nil)
		if err != nil {
			return r, err
		}
		jour = lock.NewBlobJournal(client, "sweep-journal")
	case "blob-lease":
		getenv := func(k string) string {
			if k == lock.SettingStorage {
				return az.connectionString
			}
			return ""
		}
		bl, err := lock.FromSettings(getenv, nil, nil, lock.Options{Container: "sweep-locks", JournalContainer: "sweep-lease-journal",
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return r, err
		}
		locker, jour = bl, bl.Journal()
	}
	timed := &timedJournal{Journal: jour}

	kv, err := keyvault.New(srv.VaultURL(vaultName), cred, &keyvault.Options{Transport: srv.HTTPClient()})
	if err != nil {
		return r, err
	}
	provs, _ := registry.Build(registry.Env{}) // random needs nothing; the others are not linked
	warns := &warnCounter{}
	eng, err := rotation.New(rotation.Config{
		Vaults:      []rotation.Vault{kv},
		Providers:   provs.Lookup,
		Journal:     timed,
		Locker:      locker,
		Logger:      slog.New(warns),
		Concurrency: concurrency,
	})
	if err != nil {
		return r, err
	}

	counts.reset()
	start = time.Now()
	report := eng.Sweep(ctx, rotation.TriggerTimer, false)
	r.elapsed = time.Since(start)
	if ctx.Err() != nil {
		return r, ctx.Err()
	}

	for _, o := range report.Outcomes {
		switch o.Kind {
		case rotation.KindRotated:
			r.rotated++
		case rotation.KindFailed:
			r.failed++
			r.reasons[benchName().ReplaceAllString(o.Reason, "bench-N")]++
		case rotation.KindOverdue:
			// reported beside a failed rotation; counted there
		default:
			r.other++
		}
	}
	r.writes, r.throttledWrites, r.reads = counts.totals()
	r.steadyRate = counts.steadyRate(2 * writeLimit)
	r.loadMean, r.saveMean, r.listDuration = timed.stats()
	r.warnings = warns.count()
	return r, nil
}

// seed writes n managed secrets, due for rotation (expiring in 7 days), with workers concurrent
// writers. The client retries 429s for as long as it takes, honouring Retry-After.
func seed(ctx context.Context, srv *emulator.Server, cred azcore.TokenCredential, n, workers int) error {
	client, err := azsecrets.NewClient(srv.VaultURL(vaultName), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: srv.HTTPClient(),
		Retry:     policy.RetryOptions{MaxRetries: 1000, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: 2 * time.Second},
	}})
	if err != nil {
		return err
	}
	expires := time.Now().Add(7 * 24 * time.Hour)
	tags := map[string]*string{rotation.TagProvider: ptr("random")}
	next := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				value := fmt.Sprintf("seed-%05d-initial-value-not-a-credential", i)
				_, err := client.SetSecret(ctx, secretName(i), azsecrets.SetSecretParameters{Value: &value, Tags: tags,
					SecretAttributes: &azsecrets.SecretAttributes{Expires: &expires}}, nil)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", secretName(i), err)
					return
				}
			}
		}()
	}
	var err1 error
feed:
	for i := range n {
		select {
		case next <- i:
		case err1 = <-errs:
			break feed
		case <-ctx.Done():
			err1 = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err1 == nil {
		select {
		case err1 = <-errs:
		default:
		}
	}
	return err1
}

func secretName(i int) string { return fmt.Sprintf("bench-%05d", i) }

// benchName matches a seeded secret's name, so that failure reasons group across secrets.
var benchName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`bench-[0-9]{5}`) })

func ptr[T any](v T) *T { return &v }

// staticCredential hands the emulator's own token to the clients (as internal/providertest does): the
// benchmark measures rotations, not token acquisition, which a real credential caches anyway.
type staticCredential struct{ srv *emulator.Server }

func (c staticCredential) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.srv.IssueToken(emulator.DefaultIdentity().ClientID, "https://vault.azure.net", time.Hour)
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, err
}

// requestCounter is the emulator's logger: it counts the answers per operation and status, and keeps
// the completion time of every successful secret write.
type requestCounter struct {
	mu        sync.Mutex
	writes    []time.Time
	throttled int
	reads     int
}

func (c *requestCounter) Enabled(context.Context, slog.Level) bool { return true }

func (c *requestCounter) Handle(_ context.Context, rec slog.Record) error {
	var op string
	status := int64(-1)
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "operation":
			op = a.Value.String()
		case "status":
			if a.Value.Kind() == slog.KindInt64 {
				status = a.Value.Int64()
			}
		}
		return true
	})
	if op == "" {
		return nil
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case op == "SetSecret" && status >= 200 && status < 300:
		c.writes = append(c.writes, now)
	case op == "SetSecret" && status == 429:
		c.throttled++
	case op != "SetSecret":
		c.reads++
	}
	return nil
}

func (c *requestCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *requestCounter) WithGroup(string) slog.Handler      { return c }

func (c *requestCounter) reset() {
	c.mu.Lock()
	c.writes, c.throttled, c.reads = nil, 0, 0
	c.mu.Unlock()
}

func (c *requestCounter) totals() (writes, throttled, reads int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes), c.throttled, c.reads
}

// steadyRate is the write rate once the sweep is throttled: successful writes per second between the
// from-th and the last (the first writeLimit pass at once, and the bucket refills while they do; after
// twice that the sweep runs on the refill alone). 0 when there are too few writes.
func (c *requestCounter) steadyRate(from int) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.writes) < from+30 {
		return 0
	}
	w := append([]time.Time(nil), c.writes...)
	sort.Slice(w, func(i, j int) bool { return w[i].Before(w[j]) })
	span := w[len(w)-1].Sub(w[from-1])
	return float64(len(w)-from) / span.Seconds()
}

// warnCounter is the engine's logger: it counts warnings (journal writes that failed and the like).
type warnCounter struct {
	mu sync.Mutex
	n  int
}

func (w *warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnCounter) Handle(context.Context, slog.Record) error {
	w.mu.Lock()
	w.n++
	w.mu.Unlock()
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }
func (w *warnCounter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// timedJournal measures the journal calls the engine makes.
type timedJournal struct {
	rotation.Journal
	mu                  sync.Mutex
	loads, saves        int
	loadT, saveT, listT time.Duration
}

func (j *timedJournal) Load(ctx context.Context, vault, secret string) (rotation.State, error) {
	t := time.Now()
	st, err := j.Journal.Load(ctx, vault, secret)
	j.mu.Lock()
	j.loads++
	j.loadT += time.Since(t)
	j.mu.Unlock()
	return st, err
}

func (j *timedJournal) Save(ctx context.Context, vault, secret string, st rotation.State) error {
	t := time.Now()
	err := j.Journal.Save(ctx, vault, secret, st)
	j.mu.Lock()
	j.saves++
	j.saveT += time.Since(t)
	j.mu.Unlock()
	return err
}

func (j *timedJournal) List(ctx context.Context, vault string) (map[string]rotation.State, error) {
	t := time.Now()
	m, err := j.Journal.List(ctx, vault)
	j.mu.Lock()
	j.listT += time.Since(t)
	j.mu.Unlock()
	return m, err
}

func (j *timedJournal) stats() (load, save, list time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.loads > 0 {
		load = j.loadT / time.Duration(j.loads)
	}
	if j.saves > 0 {
		save = j.saveT / time.Duration(j.saves)
	}
	return load, save, j.listT
}

func printTable(n, concurrency int, unlimited bool, results []result) {
	ideal := time.Duration(float64(max(0, n-writeLimit)) / (float64(writeLimit) / limitWindow.Seconds()) * float64(time.Second))
	if unlimited {
		ideal = 0
		fmt.Printf("due secrets: %d, concurrency: %d, rate limits off\n", n, concurrency)
	} else {
		fmt.Printf("due secrets: %d, concurrency: %d, limit: %d writes / %v per vault; ideal sweep (first %d at once, then %.0f/s): %v\n",
			n, concurrency, writeLimit, limitWindow, writeLimit, float64(writeLimit)/limitWindow.Seconds(), ideal)
	}
	fmt.Printf("%-10s %7s %6s %6s %9s %8s %8s %10s %6s %6s %9s %9s\n",
		"journal", "rotated", "failed", "other", "elapsed", "÷ideal", "writes/s", "steady w/s", "429s", "reads", "load ms", "save ms")
	for _, r := range results {
		ratio := "-"
		if ideal > 0 {
			ratio = fmt.Sprintf("%.3f", r.elapsed.Seconds()/ideal.Seconds())
		}
		fmt.Printf("%-10s %7d %6d %6d %8.1fs %8s %8.1f %10.1f %6d %6d %9.3f %9.3f\n",
			r.journal, r.rotated, r.failed, r.other, r.elapsed.Seconds(), ratio, float64(r.rotated)/r.elapsed.Seconds(),
			r.steadyRate, r.throttledWrites, r.reads, ms(r.loadMean), ms(r.saveMean))
	}
	for _, r := range results {
		if r.writes != r.rotated {
			fmt.Printf("%s: %d successful vault writes for %d rotations\n", r.journal, r.writes, r.rotated)
		}
		if r.warnings > 0 {
			fmt.Printf("%s: %d engine warnings\n", r.journal, r.warnings)
		}
		reasons := make([]string, 0, len(r.reasons))
		for k := range r.reasons {
			reasons = append(reasons, k)
		}
		sort.Slice(reasons, func(i, j int) bool { return r.reasons[reasons[i]] > r.reasons[reasons[j]] })
		for i, k := range reasons {
			if i == 3 {
				fmt.Printf("%s: ... %d more failure reasons\n", r.journal, len(reasons)-3)
				break
			}
			fmt.Printf("%s: %d failed: %s\n", r.journal, r.reasons[k], k)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sweep:", err)
	os.Exit(1)
}
