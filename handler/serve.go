package handler

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// shutdownGrace is how long Serve waits for invocations in flight once its context is done.
const shutdownGrace = 20 * time.Second

// Serve listens on addr and serves h until ctx is done, then shuts down gracefully: it stops
// accepting connections and waits up to 20 s for invocations in flight before closing them.
// It returns nil after a clean shutdown, and an error if it cannot listen or the server fails.
//
// Headers must arrive within 10 s and a whole request within 1 min. There is no write timeout: an
// invocation may legitimately run until the host's functionTimeout, which the host enforces.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("handler: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("handler: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("handler: shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("handler: serve: %w", err)
	}
	return nil
}

// ListenAddr returns the address the Functions host expects the handler on: 127.0.0.1 and the port
// in FUNCTIONS_CUSTOMHANDLER_PORT (or its legacy alias FUNCTIONS_HTTPWORKER_PORT). The host dials
// 127.0.0.1, so listening on loopback only is enough and exposes nothing. It is an error if neither
// variable is set or the port is not a number from 1 to 65535.
func ListenAddr(getenv func(string) string) (string, error) {
	for _, name := range []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT"} {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			return "", fmt.Errorf("handler: %s=%q is not a TCP port", name, clip(v))
		}
		return "127.0.0.1:" + strconv.Itoa(port), nil
	}
	return "", errors.New("handler: FUNCTIONS_CUSTOMHANDLER_PORT is not set (the Functions host sets it; set it yourself to run without the host)")
}
