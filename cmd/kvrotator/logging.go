package main

import (
	"context"
	"io"
	"log/slog"
)

// splitHandler writes Debug and Info records to one writer and Warn and Error to another. The
// Functions host logs a custom handler's stdout lines as Information and its stderr lines as Warning
// (when they contain "warn") or Error, so levels survive into Application Insights.
type splitHandler struct {
	low, high slog.Handler
}

// newLogger returns a JSON logger: below Warn to out, Warn and above to errOut.
func newLogger(out, errOut io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	return slog.New(&splitHandler{low: slog.NewJSONHandler(out, opts), high: slog.NewJSONHandler(errOut, opts)})
}

func (h *splitHandler) pick(l slog.Level) slog.Handler {
	if l >= slog.LevelWarn {
		return h.high
	}
	return h.low
}

func (h *splitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.pick(l).Enabled(ctx, l)
}

func (h *splitHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.pick(r.Level).Handle(ctx, r)
}

func (h *splitHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &splitHandler{low: h.low.WithAttrs(attrs), high: h.high.WithAttrs(attrs)}
}

func (h *splitHandler) WithGroup(name string) slog.Handler {
	return &splitHandler{low: h.low.WithGroup(name), high: h.high.WithGroup(name)}
}
