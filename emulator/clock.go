package emulator

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/kvrotator/kvrotator/emulator/internal/delivery"
)

// Clock is the vault's notion of time: wall time plus an offset that tests and the demo move forward,
// so that expiry events can be produced without waiting 30 days. Secret timestamps (created, updated,
// deletion dates) and expiry events follow this clock; token lifetimes follow wall time, since the
// clients that hold the tokens do.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the vault time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Offset returns how far the vault time is ahead of wall time.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

func (c *Clock) setOffset(d time.Duration) {
	c.mu.Lock()
	c.offset = d
	c.mu.Unlock()
}

// Event types of a Key Vault system topic that the emulator raises for secrets.
const (
	eventNewVersion = "Microsoft.KeyVault.SecretNewVersionCreated"
	eventNearExpiry = "Microsoft.KeyVault.SecretNearExpiry"
	eventExpired    = "Microsoft.KeyVault.SecretExpired"
)

// vaultResourceID is the vault's ARM id, the topic of its events.
func (s *Server) vaultResourceID(v *vault) string {
	return "/subscriptions/" + s.cfg.SubscriptionID + "/resourceGroups/" + s.cfg.ResourceGroup +
		"/providers/Microsoft.KeyVault/vaults/" + v.name
}

func (s *Server) secretEvent(v *vault, name string, sv *secretVersion, eventType string, now int64) delivery.Event {
	return delivery.Event{
		ID:        uuid.NewString(),
		Topic:     s.vaultResourceID(v),
		Subject:   name,
		EventType: eventType,
		EventTime: time.Unix(now, 0).UTC(),
		Data: delivery.KeyVaultData{
			ID:         s.VaultURL(v.name) + "/secrets/" + name + "/" + sv.Version,
			VaultName:  v.name,
			ObjectType: "Secret",
			ObjectName: name,
			Version:    sv.Version,
			NBF:        cloneInt(sv.NotBefore),
			EXP:        cloneInt(sv.Expires),
		},
	}
}

// expiryEvents marks and returns the near-expiry and expired events now due for a secret's current
// version (Key Vault raises them for the current version only). The caller holds v.mu for writing and
// persists the marks.
func (s *Server) expiryEvents(v *vault, e *secretEntry, now time.Time) []delivery.Event {
	sv := e.latest()
	if sv.Expires == nil {
		return nil
	}
	exp := time.Unix(*sv.Expires, 0)
	switch {
	case !now.Before(exp) && !sv.ExpiredSent:
		sv.ExpiredSent, sv.NearExpirySent = true, true
		return []delivery.Event{s.secretEvent(v, e.Name, sv, eventExpired, now.Unix())}
	case now.Add(s.cfg.NearExpiryLead).After(exp) && !sv.NearExpirySent:
		sv.NearExpirySent = true
		return []delivery.Event{s.secretEvent(v, e.Name, sv, eventNearExpiry, now.Unix())}
	}
	return nil
}

// scan raises due expiry events and purges soft-deleted secrets whose retention has passed, in every vault.
func (s *Server) scan() {
	now := s.clock.Now()
	var events []delivery.Event
	for _, v := range s.vaultList() {
		v.mu.Lock()
		var vaultEvents []delivery.Event
		purged := false
		for _, k := range sortedKeys(v.state.Secrets) {
			vaultEvents = append(vaultEvents, s.expiryEvents(v, v.state.Secrets[k], now)...)
		}
		for k, e := range v.state.Deleted {
			if e.ScheduledPurgeDate <= now.Unix() && !v.cfg.PurgeProtection {
				delete(v.state.Deleted, k)
				purged = true
			}
		}
		if len(vaultEvents) > 0 || purged {
			if err := s.persist(v); err != nil {
				s.log.Error("persisting vault after expiry scan failed", "vault", v.name, "error", err.Message)
			}
		}
		v.mu.Unlock()
		events = append(events, vaultEvents...)
	}
	s.publish(events)
}

func (s *Server) publish(events []delivery.Event) {
	if s.dispatcher == nil {
		return
	}
	for _, ev := range events {
		s.dispatcher.Publish(ev)
	}
}

// Advance moves the vault clock forward by d, raises the expiry events that became due, and returns
// the new vault time. Events are delivered asynchronously; FlushEvents waits for them.
func (s *Server) Advance(d time.Duration) time.Time {
	s.clock.setOffset(s.clock.Offset() + d)
	s.saveMeta()
	s.scan()
	return s.clock.Now()
}

// Now returns the vault clock's time.
func (s *Server) Now() time.Time { return s.clock.Now() }

// FlushEvents waits until every event raised so far has been delivered or given up.
func (s *Server) FlushEvents(ctx context.Context) error {
	if s.dispatcher == nil {
		return nil
	}
	return s.dispatcher.Flush(ctx)
}

// EventStats reports delivery counts per subscription.
func (s *Server) EventStats() []delivery.SubscriptionStats {
	if s.dispatcher == nil {
		return nil
	}
	return s.dispatcher.Stats()
}

func (s *Server) scanLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ScanInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.scan()
		}
	}
}
