package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/monitor/query/azlogs"
	"github.com/kvrotator/kvrotator/bindings"
	"github.com/kvrotator/kvrotator/config"
	"github.com/kvrotator/kvrotator/consumers"
	"github.com/kvrotator/kvrotator/events"
	"github.com/kvrotator/kvrotator/handler"
	"github.com/kvrotator/kvrotator/journal"
	"github.com/kvrotator/kvrotator/keyvault"
	"github.com/kvrotator/kvrotator/leaks"
	"github.com/kvrotator/kvrotator/lock"
	"github.com/kvrotator/kvrotator/metrics"
	"github.com/kvrotator/kvrotator/providers/registry"
	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// app is kvrotator wired from its settings: the engine over the configured vaults.
type app struct {
	settings config.Settings
	engine   *rotation.Engine
	logger   *slog.Logger
	credDesc string
	progress *progressPublisher // the operator commands' progress lines
	// buffered publishes outcome events in the background, metrics sends counters and durations to
	// Application Insights; close drains both.
	buffered *events.Buffered
	metrics  *metrics.Recorder
	// github receives secret-scanning webhooks (nil: not configured); defender Defender alerts.
	github   *leaks.GitHub
	defender *leaks.Defender
}

// close drains the outcome events still queued (at most 15 s), logging what is left.
func (a *app) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if a.buffered != nil {
		if err := a.buffered.Close(ctx); err != nil {
			a.logger.Warn("shutting down with outcome events unpublished", "error", err.Error())
		}
	}
	if err := a.metrics.Close(ctx); err != nil { // a nil Recorder does nothing
		a.logger.Warn("shutting down with metrics unsent", "error", err.Error())
	}
}

// newApp builds everything from the environment without any network call: credentials fetch their
// first token when the first invocation needs it.
func newApp(getenv func(string) string, logOut, errOut io.Writer, opts *keyvault.Options) (*app, error) {
	s, err := config.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	logger := newLogger(logOut, errOut, s.LogLevel)
	cred, desc, err := keyvault.NewCredential(s.Credential)
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	azure := &registry.Azure{Credential: cred, Cloud: cloudConfig(s)}
	provs, problems := registry.Build(registry.Env{Azure: azure, Logger: logger})
	for name, err := range problems {
		logger.Warn("provider not available", "provider", name, "error", err.Error())
	}
	binds, err := bindings.Load(s.Bindings, config.EnvBindings, registry.Names())
	if err != nil {
		return nil, err
	}
	var vaults []rotation.Vault
	for _, vs := range s.Vaults {
		o := keyvault.Options{}
		if opts != nil {
			o = *opts
		}
		o.Name = vs.Name
		v, err := keyvault.New(vs.URL, cred, &o)
		if err != nil {
			return nil, fmt.Errorf("vault %s: %w", vs.Name, err)
		}
		vaults = append(vaults, v)
	}
	var locker rotation.Locker
	var jour rotation.Journal
	blob, err := lock.FromSettings(getenv, cred, nil, lock.Options{LeaseDuration: s.LeaseDuration, Logger: logger})
	switch {
	case err != nil:
		return nil, fmt.Errorf("AzureWebJobsStorage: %w", err)
	case blob != nil:
		locker, jour = blob, blob.Journal()
	default:
		logger.Warn("AzureWebJobsStorage is not set: rotations are serialised in this process only; run a single instance")
	}
	switch {
	case s.JournalDir != "":
		fj, err := journal.OpenFile(s.JournalDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvJournalDir, err)
		}
		jour = fj
	case jour == nil:
		jour = rotation.NewMemoryJournal()
		logger.Warn("no journal: neither AzureWebJobsStorage nor " + config.EnvJournalDir + " is set, so pending revocations and interrupted rotations are kept in memory only and lost when the process ends")
	}
	var buffered *events.Buffered
	progress := &progressPublisher{}
	pubs := publishers{progress}
	// Metrics to Application Insights (customMetrics), when the Function App has a connection string.
	auth, err := metrics.ParseAuthenticationString(getenv("APPLICATIONINSIGHTS_AUTHENTICATION_STRING"))
	if err != nil {
		return nil, fmt.Errorf("APPLICATIONINSIGHTS_AUTHENTICATION_STRING: %w", err)
	}
	var mcred azcore.TokenCredential
	if auth.Entra {
		mcred = cred
	}
	var vaultNames []string
	for _, v := range s.Vaults {
		vaultNames = append(vaultNames, v.Name)
	}
	rec, err := metrics.New(metrics.Options{ConnectionString: getenv("APPLICATIONINSIGHTS_CONNECTION_STRING"), Credential: mcred,
		Logger: logger, Providers: registry.Names(), Vaults: vaultNames, RoleName: getenv("WEBSITE_SITE_NAME")})
	if err != nil {
		return nil, fmt.Errorf("APPLICATIONINSIGHTS_CONNECTION_STRING: %w", err)
	}
	if rec != nil {
		pubs = append(pubs, rec)
	}
	if s.EventTopic != "" {
		tp, err := newTopicPublisher(s, cred, vaults, logger)
		if err != nil {
			return nil, err
		}
		buffered = events.NewBuffered(tp, events.DefaultBuffer, logger)
		pubs = append(pubs, buffered)
	}
	var usage rotation.Usage
	if s.LogWorkspace != "" {
		la, err := consumers.NewLogAnalytics(consumers.LogAnalyticsOptions{Credential: cred, Workspace: s.LogWorkspace, Cloud: azure.Cloud, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvLogWorkspace, err)
		}
		usage = la
	}
	var clock rotation.Clock
	if s.ClockURL != "" {
		logger.Warn("telling time from the Key Vault emulator's clock: a development setting, never for production", "setting", config.EnvClockURL, "url", s.ClockURL)
		if clock, err = devClock(s.ClockURL, logger); err != nil {
			return nil, err
		}
	}
	eng, err := rotation.New(rotation.Config{
		Clock:         clock,
		Refresher:     consumers.NewRefresher(consumers.Options{Azure: azure, Logger: logger}),
		Usage:         usage,
		UsageLookback: s.UsageLookback,
		Vaults:        vaults,
		Providers:     provs.Lookup,
		Bindings:      binds,
		Journal:       jour,
		Logger:        logger,
		Locker:        locker,
		Publisher:     pubs,
		VerifyTimeout: s.VerifyTimeout,
		Concurrency:   s.SweepConcurrency,
		Defaults: rotation.Defaults{Validity: s.DefaultValidity, Grace: s.DefaultGrace, GraceSet: true, NearExpiryLead: s.NearExpiryLead,
			Window: s.Window, Schedule: s.Schedule, MinInterval: s.MinInterval, KeepOldVersions: s.KeepOldVersions, MaxGrace: s.MaxGrace},
		// The kill switch is asked on every decision. KVROTATOR_PAUSE is an app setting (changing it
		// restarts a Function App, and the new process starts paused); KVROTATOR_PAUSE_FILE is a file
		// whose existence stops a running sweep mid-way, without a restart.
		Paused: func() bool {
			p, err := config.ParsePause(getenv(config.EnvPause))
			if p || err != nil {
				return true
			}
			if s.PauseFile == "" {
				return false
			}
			_, err = os.Stat(s.PauseFile)
			return err == nil || !errors.Is(err, fs.ErrNotExist) // unreadable: paused, to be safe
		},
	})
	if err != nil {
		return nil, err
	}
	a := &app{settings: s, engine: eng, logger: logger, credDesc: desc, progress: progress, buffered: buffered, metrics: rec}
	var names []string
	for _, v := range vaults {
		names = append(names, v.Name())
	}
	a.defender = &leaks.Defender{Suspicious: eng.Suspicious, Alerts: leaks.JournalDeliveries{Journal: jour, Clock: clock}, Rotate: s.DefenderRotate, Vaults: names}
	if s.GitHubSecret.Vault != "" {
		byName := map[string]rotation.Vault{}
		for _, v := range vaults {
			byName[strings.ToLower(v.Name())] = v
		}
		read := func(vs config.VaultSecret) func(context.Context) (vocab.Value, error) {
			return func(ctx context.Context) (vocab.Value, error) {
				sec, err := byName[strings.ToLower(vs.Vault)].Get(ctx, vs.Secret, "")
				return sec.Value, err
			}
		}
		if _, err := leaks.CheckAPIURL(s.GitHubAPI); err != nil {
			return nil, fmt.Errorf("%s: %w", config.EnvGitHubAPI, err)
		}
		a.github = &leaks.GitHub{WebhookSecret: read(s.GitHubSecret), Token: read(s.GitHubToken), APIURL: s.GitHubAPI,
			Deliveries: leaks.JournalDeliveries{Journal: jour, Clock: clock}, Leak: eng.Leak, Resolve: s.GitHubResolve, Logger: logger}
	}
	return a, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvrotator serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: kvrotator serve

Runs the Azure Functions custom handler: the Functions host starts it (host.json) and sends the
KeyVaultEvents, ScheduledSweep and RotateSecret invocations to 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
All configuration comes from app settings (environment variables); see local.settings.sample.json.
Logs are JSON lines on stdout.
`)
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	addr, err := handler.ListenAddr(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "kvrotator serve: %v\n", err)
		return 2
	}
	a, err := newApp(os.Getenv, stdout, stderr, nil)
	if err != nil {
		fmt.Fprintf(stderr, "kvrotator serve: configuration error: %v\n", err)
		return 2
	}
	a.logger.Info("kvrotator handler starting", "addr", addr, "vaults", a.engine.Vaults(), "credential", a.credDesc, "version", version)
	opts := handler.Options{Rotator: a.engine, Logger: a.logger, Defender: a.defender}
	if a.github != nil {
		opts.GitHub = a.github
	}
	h := handler.New(opts)
	defer a.close()
	if err := handler.Serve(ctx, addr, h); err != nil {
		fmt.Fprintf(stderr, "kvrotator serve: %v\n", err)
		return 1
	}
	return 0
}

// cloudConfig is the public cloud with the endpoints the settings override (KVROTATOR_ARM_ENDPOINT,
// KVROTATOR_LOGS_ENDPOINT); the audiences stay the public cloud's.
func cloudConfig(s config.Settings) cloud.Configuration {
	c := cloud.Configuration{ActiveDirectoryAuthorityHost: cloud.AzurePublic.ActiveDirectoryAuthorityHost, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{}}
	for k, v := range cloud.AzurePublic.Services {
		c.Services[k] = v
	}
	c.Services[azlogs.ServiceName] = cloud.ServiceConfiguration{Audience: "https://api.loganalytics.io", Endpoint: "https://api.loganalytics.io/v1"}
	if s.ARMEndpoint != "" {
		rm := c.Services[cloud.ResourceManager]
		rm.Endpoint = s.ARMEndpoint
		c.Services[cloud.ResourceManager] = rm
	}
	if s.LogsEndpoint != "" {
		la := c.Services[azlogs.ServiceName]
		la.Endpoint = s.LogsEndpoint
		c.Services[azlogs.ServiceName] = la
	}
	return c
}
