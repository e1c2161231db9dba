package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/kvrotator/kvrotator/config"
	"github.com/kvrotator/kvrotator/events"
	"github.com/kvrotator/kvrotator/rotation"
)

// publishers sends each outcome to several publishers; one failing does not stop the others.
type publishers []rotation.Publisher

func (ps publishers) Publish(ctx context.Context, o rotation.Outcome) error {
	var errs []error
	for _, p := range ps {
		if err := p.Publish(ctx, o); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// topicPublisher builds the Event Grid publisher on first use: with the managed identity, or with
// the topic key read from Key Vault (so nothing is fetched at start-up and no key sits in a setting).
type topicPublisher struct {
	s      config.Settings
	cred   azcore.TokenCredential
	vaults map[string]rotation.Vault
	logger *slog.Logger

	mu  sync.Mutex
	pub *events.Publisher
}

func newTopicPublisher(s config.Settings, cred azcore.TokenCredential, vaults []rotation.Vault, logger *slog.Logger) (*topicPublisher, error) {
	tp := &topicPublisher{s: s, cred: cred, vaults: map[string]rotation.Vault{}, logger: logger}
	for _, v := range vaults {
		tp.vaults[v.Name()] = v
	}
	// Validate the endpoint and schema now (no network), so a typo fails at start-up.
	if _, err := events.NewPublisher(events.PublisherConfig{Endpoint: s.EventTopic, Schema: s.EventSchema, Credential: cred}); err != nil {
		return nil, fmt.Errorf("%s: %w", config.EnvEventTopic, err)
	}
	return tp, nil
}

func (tp *topicPublisher) get(ctx context.Context) (*events.Publisher, error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.pub != nil {
		return tp.pub, nil
	}
	c := events.PublisherConfig{Endpoint: tp.s.EventTopic, Schema: tp.s.EventSchema, Logger: tp.logger}
	if tp.s.EventKeySecret != "" {
		v, ok := tp.vaults[tp.s.EventKeyVault]
		if !ok {
			return nil, fmt.Errorf("vault %q for the topic key is not configured", tp.s.EventKeyVault)
		}
		sec, err := v.Get(ctx, tp.s.EventKeySecret, "")
		if err != nil {
			return nil, fmt.Errorf("read the topic key: %w", err)
		}
		c.Key = sec.Value.Reveal()
	} else {
		c.Credential = tp.cred
	}
	p, err := events.NewPublisher(c)
	if err != nil {
		return nil, err
	}
	tp.pub = p
	return p, nil
}

func (tp *topicPublisher) Publish(ctx context.Context, o rotation.Outcome) error {
	p, err := tp.get(ctx)
	if err != nil {
		return err
	}
	return p.Publish(ctx, o)
}
