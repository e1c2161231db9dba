//go:build !lean

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// emulatorClock tells the time of the Key Vault emulator (KVROTATOR_CLOCK_URL, its /_emulator/clock
// endpoint): wall time plus the offset by which tests and the demo have moved the vault's clock, so
// that expiry, rotation windows and grace periods follow one clock. The offset is fetched at most once
// a second; when the emulator cannot be reached the last offset stays (a warning says so).
type emulatorClock struct {
	url    string
	client *http.Client
	log    *slog.Logger

	mu      sync.Mutex
	offset  time.Duration
	fetched time.Time
}

func newEmulatorClock(url string, log *slog.Logger) *emulatorClock {
	return &emulatorClock{url: url, client: &http.Client{Timeout: 5 * time.Second}, log: log}
}

// Now implements rotation.Clock.
func (c *emulatorClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.fetched) >= time.Second {
		if off, err := c.fetch(); err != nil {
			c.log.Warn("reading the emulator's clock failed; keeping the last offset", "url", c.url, "offset", c.offset.String(), "error", err.Error())
		} else {
			c.offset = off
		}
		c.fetched = time.Now()
	}
	return time.Now().Add(c.offset)
}

func (c *emulatorClock) fetch() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("answered %s", resp.Status)
	}
	var body struct {
		OffsetSeconds *int64 `json:"offsetSeconds"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body); err != nil || body.OffsetSeconds == nil {
		return 0, fmt.Errorf("not an emulator clock answer (want {\"offsetSeconds\":n})")
	}
	return time.Duration(*body.OffsetSeconds) * time.Second, nil
}
