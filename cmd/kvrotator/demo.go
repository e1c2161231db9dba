//go:build !lean

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/kvrotator/kvrotator/emulator"
	"github.com/kvrotator/kvrotator/internal/hostsim"
)

const demoVault = "demo-vault"

// demoSecret is one seeded secret and what the demo expects to happen to it.
type demoSecret struct {
	name        string
	tags        map[string]string
	expiresIn   time.Duration
	wantRotated bool
	why         string
}

func demoSecrets() []demoSecret {
	return []demoSecret{
		{"payment-api-key", map[string]string{"rotation-provider": "random", "ValidityPeriodDays": "90"}, 10 * 24 * time.Hour, true,
			"near expiry: Key Vault sends SecretNearExpiry"},
		{"signing-key", map[string]string{"rotation-provider": "random", "random-length": "64", "random-alphabet": "hex", "ValidityPeriodDays": "60"}, -2 * time.Hour, true,
			"expired: Key Vault sends SecretExpired"},
		{"webhook-token", map[string]string{"rotation-provider": "random"}, 200 * 24 * time.Hour, false,
			"healthy: not due; the HTTP dry run only plans"},
		{"legacy-password", nil, 5 * 24 * time.Hour, false,
			"unmanaged: no rotation-provider tag, never touched"},
		// Someone who may edit only this secret's tags points it at their server, with another
		// secret as the signing key, and forges an interrupted rotation: no binding allows it, so
		// nothing is read or contacted (README "Security model").
		{"team-b-token", map[string]string{"rotation-provider": "webhook", "webhook-url": "https://attacker.example",
			"webhook-signing-secret": "payment-api-key", "rotation-state": "started=1"}, 10 * 24 * time.Hour, false,
			"tags point outside the secret: refused (not bound), nothing read or contacted"},
	}
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvrotator demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	verbose := fs.Bool("verbose", false, "also print the handler's log lines (JSON, never a secret value)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: kvrotator demo [--verbose]

Runs the whole product locally with no setup: starts the built-in Key Vault emulator, starts this
binary as the Functions custom handler ("serve") exactly as the Functions host would, seeds four
secrets (near expiry, expired, healthy, unmanaged), delivers the emulator's Event Grid events to the
KeyVaultEvents function, fires the ScheduledSweep timer, calls the RotateSecret HTTP trigger (dry run),
replays a duplicate event, and prints the secrets before and after. Exits 0 when everything went as
expected, 1 otherwise.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	d := &demo{out: stdout}
	if *verbose {
		d.handlerOut = stderr
	}
	if err := d.run(ctx); err != nil {
		fmt.Fprintf(stdout, "\nDEMO FAILED: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "\nDEMO OK: every secret ended as expected.")
	return 0
}

type demo struct {
	out        io.Writer
	handlerOut io.Writer
	srv        *emulator.Server
	host       atomic.Pointer[hostsim.Host]
	client     *azsecrets.Client

	mu          sync.Mutex
	invocations []string // one line per KeyVaultEvents invocation
	failures    int
	nearExpiry  json.RawMessage // a delivered SecretNearExpiry event, replayed as a duplicate
	values      []string        // every value seen, to prove none leaks into the handler's output
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "kvrotator-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}

	// 1. The Event Grid extension's endpoint (played here), which the emulator's system topic calls.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	webhook := &http.Server{Handler: http.HandlerFunc(d.deliver), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = webhook.Serve(ln) }()
	defer webhook.Close()

	// 2. The Key Vault emulator: HTTPS, managed identity, Event Grid delivery to the endpoint above.
	caFile := filepath.Join(dir, "ca.pem")
	d.srv, err = emulator.New(emulator.Config{
		Addr:       "127.0.0.1:0",
		Vaults:     []emulator.VaultConfig{{Name: demoVault, Addr: "127.0.0.1:0"}},
		CACertFile: caFile,
		Subscriptions: []emulator.Subscription{{
			Name: "kvrotator-keyvaultevents", URL: "http://" + ln.Addr().String() + "/runtime/webhooks/eventgrid?functionName=KeyVaultEvents",
			RetryDelays: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}, MaxAttempts: 5,
		}},
	})
	if err != nil {
		return err
	}
	if err := d.srv.Start(); err != nil {
		return err
	}
	defer d.srv.Close()
	d.printf("Key Vault emulator: vault %s at %s (events → the KeyVaultEvents function)\n", demoVault, d.srv.VaultAddrURL(demoVault))

	// 3. The Function App: this binary's "serve", started as the Functions host starts a custom handler.
	env := append(cleanEnv(os.Environ()),
		"KVROTATOR_VAULTS="+demoVault+"="+d.srv.VaultAddrURL(demoVault),
		"IDENTITY_ENDPOINT="+d.srv.IdentityEndpoint(), "IDENTITY_HEADER="+d.srv.IdentityHeader(),
		"SSL_CERT_FILE="+caFile, "FUNCTIONS_WORKER_RUNTIME=Custom")
	host, err := hostsim.Start(ctx, hostsim.Options{Binary: self, Args: []string{"serve"}, Env: env, Output: d.handlerOut})
	if err != nil {
		return err
	}
	defer host.Stop()
	d.host.Store(host)
	d.printf("Custom handler: %s serve, ready in %v (managed identity, HTTPS to the vault)\n\n", filepath.Base(self), host.StartupTime.Round(time.Millisecond))

	// 4. Seed the secrets, as an operator with the Key Vault Secrets Officer role would.
	if err := os.Setenv("IDENTITY_ENDPOINT", d.srv.IdentityEndpoint()); err != nil {
		return err
	}
	_ = os.Setenv("IDENTITY_HEADER", d.srv.IdentityHeader())
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		return err
	}
	d.client, err = azsecrets.NewClient(d.srv.VaultURL(demoVault), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: d.srv.HTTPClient()}})
	if err != nil {
		return err
	}
	secrets := demoSecrets()
	for _, s := range secrets {
		exp := time.Now().Add(s.expiresIn).Truncate(time.Second)
		value := fmt.Sprintf("initial-%s-%d", s.name, time.Now().UnixNano())
		d.values = append(d.values, value)
		tags := map[string]*string{}
		for k, v := range s.tags {
			tags[k] = &v
		}
		if _, err := d.client.SetSecret(ctx, s.name, azsecrets.SetSecretParameters{Value: &value, Tags: tags,
			SecretAttributes: &azsecrets.SecretAttributes{Expires: &exp}}, nil); err != nil {
			return fmt.Errorf("seed %s: %w", s.name, err)
		}
	}
	before, err := d.snapshot(ctx)
	if err != nil {
		return err
	}
	d.printf("BEFORE\n")
	d.table(before, secrets)

	// 5. Key Vault raises SecretNewVersionCreated for each write, SecretNearExpiry and SecretExpired for
	// the two that are due; Event Grid delivers them to KeyVaultEvents.
	// Flush twice: the rotations' own writes raise SecretNewVersionCreated events during the first.
	for range 2 {
		if err := d.srv.FlushEvents(ctx); err != nil {
			return fmt.Errorf("event delivery: %w", err)
		}
	}
	d.printf("\nEVENT GRID → KeyVaultEvents\n")
	d.mu.Lock()
	for _, line := range d.invocations {
		d.printf("  %s\n", line)
	}
	d.mu.Unlock()

	// 6. The timer: the sweep finds nothing left to do.
	resp, err := host.Invoke(ctx, "ScheduledSweep", hostsim.TimerEnvelope("ScheduledSweep", time.Now().Add(-6*time.Hour), time.Now().Add(6*time.Hour), false))
	if err != nil || !resp.OK() {
		return fmt.Errorf("ScheduledSweep invocation failed: %v", errOrStatus(err, resp))
	}
	d.printf("\nTIMER → ScheduledSweep\n")
	for _, l := range resp.Envelope.Logs {
		d.printf("  %s\n", l)
	}

	// 7. The HTTP trigger: a dry run for the healthy secret, and a request with an invalid name.
	d.printf("\nHTTP → RotateSecret\n")
	dry, err := d.httpRotate(ctx, host, `{"vault":"`+demoVault+`","secret":"webhook-token","dryRun":true}`)
	if err != nil {
		return err
	}
	d.printf("  POST {secret: webhook-token, dryRun: true} → %s\n", dry)
	bad, err := d.httpRotate(ctx, host, `{"vault":"`+demoVault+`","secret":"not_a valid name"}`)
	if err != nil {
		return err
	}
	d.printf("  POST {secret: \"not_a valid name\"} → %s\n", bad)
	if !strings.HasPrefix(dry, "200") || !strings.HasPrefix(bad, "400") {
		return fmt.Errorf("RotateSecret answered %q and %q, want 200 and 400", dry, bad)
	}

	// 8. Event Grid delivers at least once: replay the near-expiry event.
	d.mu.Lock()
	dup := d.nearExpiry
	d.mu.Unlock()
	if dup == nil {
		return errors.New("no SecretNearExpiry event was delivered")
	}
	resp, err = host.Invoke(ctx, "KeyVaultEvents", hostsim.EventGridEnvelope("KeyVaultEvents", dup))
	if err != nil || !resp.OK() {
		return fmt.Errorf("duplicate delivery failed: %v", errOrStatus(err, resp))
	}
	d.printf("\nDUPLICATE SecretNearExpiry (at-least-once delivery)\n")
	for _, l := range resp.Envelope.Logs {
		d.printf("  %s\n", l)
	}

	after, err := d.snapshot(ctx)
	if err != nil {
		return err
	}
	d.printf("\nAFTER\n")
	d.table(after, secrets)
	return d.check(ctx, before, after, secrets, host)
}

// deliver is the Event Grid extension: one KeyVaultEvents invocation per event.
func (d *demo) deliver(w http.ResponseWriter, r *http.Request) {
	host := d.host.Load()
	if host == nil {
		http.Error(w, "function host not started", http.StatusServiceUnavailable)
		return
	}
	host.EventGridEndpoint("KeyVaultEvents", func(ev json.RawMessage, resp *hostsim.Response, err error) {
		var e struct {
			EventType string `json:"eventType"`
			Subject   string `json:"subject"`
		}
		_ = json.Unmarshal(ev, &e)
		line := fmt.Sprintf("%-40s %-16s → ", strings.TrimPrefix(e.EventType, "Microsoft.KeyVault."), e.Subject)
		d.mu.Lock()
		defer d.mu.Unlock()
		switch {
		case err != nil:
			line += "invocation error: " + err.Error()
			d.failures++
		case !resp.OK():
			line += fmt.Sprintf("HTTP %d (Event Grid will redeliver)", resp.Status)
			d.failures++
		default:
			line += strings.Join(resp.Envelope.Logs, "; ")
		}
		if e.EventType == "Microsoft.KeyVault.SecretNearExpiry" && d.nearExpiry == nil {
			d.nearExpiry = append(json.RawMessage(nil), ev...)
		}
		d.invocations = append(d.invocations, line)
	}).ServeHTTP(w, r)
}

func (d *demo) httpRotate(ctx context.Context, host *hostsim.Host, body string) (string, error) {
	resp, err := host.Invoke(ctx, "RotateSecret", hostsim.HTTPEnvelope("RotateSecret", http.MethodPost, "", []byte(body)))
	if err != nil || !resp.OK() {
		return "", fmt.Errorf("RotateSecret invocation failed: %v", errOrStatus(err, resp))
	}
	res, err := resp.HTTPOutput()
	if err != nil {
		return "", err
	}
	var o struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
		Error   string `json:"error"`
	}
	_ = json.Unmarshal([]byte(res.Body), &o)
	summary := o.Outcome
	if o.Error != "" {
		summary = "error"
	}
	return fmt.Sprintf("%s %s: %s%s", res.StatusCode, summary, o.Reason, o.Error), nil
}

type secretState struct {
	versions int
	latest   string
	expires  *time.Time
	tags     map[string]string
	value    string
}

func (d *demo) snapshot(ctx context.Context) (map[string]secretState, error) {
	out := map[string]secretState{}
	for _, s := range demoSecrets() {
		st := secretState{}
		pager := d.client.NewListSecretPropertiesVersionsPager(s.name, nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			st.versions += len(page.Value)
		}
		latest, err := d.client.GetSecret(ctx, s.name, "", nil)
		if err != nil {
			return nil, err
		}
		st.latest, st.expires, st.value = latest.ID.Version(), latest.Attributes.Expires, *latest.Value
		st.tags = map[string]string{}
		for k, v := range latest.Tags {
			st.tags[k] = *v
		}
		d.mu.Lock()
		d.values = append(d.values, st.value)
		d.mu.Unlock()
		out[s.name] = st
	}
	return out, nil
}

func (d *demo) table(states map[string]secretState, secrets []demoSecret) {
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  SECRET\tPROVIDER\tVERSIONS\tLATEST\tEXPIRES\tCREDENTIAL STATE")
	for _, s := range secrets {
		st := states[s.name]
		provider := st.tags["rotation-provider"]
		if provider == "" {
			provider = "(unmanaged)"
		}
		exp := "never"
		if st.expires != nil {
			exp = st.expires.UTC().Format("2006-01-02") + " (" + relDays(time.Until(*st.expires)) + ")"
		}
		state := st.tags["rotation-state"]
		if state == "" {
			state = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%s…\t%s\t%s\n", s.name, provider, st.versions, st.latest[:8], exp, state)
	}
	_ = tw.Flush()
}

func relDays(d time.Duration) string {
	days := int((d + 12*time.Hour).Hours() / 24)
	switch {
	case d < 0:
		return "expired"
	case days == 0:
		return "today"
	}
	return fmt.Sprintf("in %d days", days)
}

func (d *demo) check(ctx context.Context, before, after map[string]secretState, secrets []demoSecret, host *hostsim.Host) error {
	var problems []string
	for _, s := range secrets {
		b, a := before[s.name], after[s.name]
		rotated := a.versions == b.versions+1 && a.latest != b.latest
		switch {
		case s.wantRotated && !rotated:
			problems = append(problems, fmt.Sprintf("%s should have exactly one new version (%s), has %d → %d", s.name, s.why, b.versions, a.versions))
		case !s.wantRotated && a.versions != b.versions:
			problems = append(problems, fmt.Sprintf("%s should be untouched (%s)", s.name, s.why))
		}
		if s.wantRotated && rotated {
			days, want := time.Until(*a.expires).Hours()/24, 90.0
			if v := s.tags["ValidityPeriodDays"]; v == "60" {
				want = 60
			}
			if days < want-1 || days > want+1 {
				problems = append(problems, fmt.Sprintf("%s: new version expires in %.1f days, want %.0f", s.name, days, want))
			}
			if a.value == b.value {
				problems = append(problems, s.name+": the new version holds the old value")
			}
		}
	}
	if v := after["signing-key"].value; !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(v) {
		problems = append(problems, "signing-key: the new value is not 64 hex characters as its tags ask")
	}
	d.mu.Lock()
	refused := false
	for _, l := range d.invocations {
		refused = refused || (strings.Contains(l, "team-b-token") && strings.Contains(l, "not bound"))
	}
	if !refused {
		problems = append(problems, "team-b-token: the event was not refused as not bound")
	}
	if d.failures > 0 {
		problems = append(problems, fmt.Sprintf("%d KeyVaultEvents invocations failed", d.failures))
	}
	values := append([]string(nil), d.values...)
	d.mu.Unlock()
	out := host.Output()
	for _, v := range values {
		if v != "" && strings.Contains(out, v) {
			problems = append(problems, "the handler's output contains a secret value")
			break
		}
	}
	sort.Strings(problems)
	d.printf("\nCHECKS\n")
	for _, s := range secrets {
		d.printf("  %-16s %s\n", s.name, s.why)
	}
	d.printf("  no secret value in any handler log line: checked %d values against %d bytes of output\n", len(values), len(out))
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// cleanEnv drops settings that would point the child at real Azure identities or other configuration.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AZURE_") || strings.HasPrefix(k, "IDENTITY_") || strings.HasPrefix(k, "MSI_") ||
			strings.HasPrefix(k, "KVROTATOR_") || strings.HasPrefix(k, "FUNCTIONS_") || k == "SSL_CERT_FILE" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func errOrStatus(err error, resp *hostsim.Response) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("HTTP %d: %s", resp.Status, resp.Body)
}
