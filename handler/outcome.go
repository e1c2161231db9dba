package handler

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/kvrotator/kvrotator/rotation"
)

// outcome reports one outcome: a structured log line with stable keys, at Info for success and
// skips, Warn for permanent failures and overdue secrets, Error for transient failures; and a compact
// human line in the envelope's Logs. durationMS stands in when the outcome carries no duration.
func (inv *invocation) outcome(ctx context.Context, o rotation.Outcome, durationMS int64) {
	level := slog.LevelInfo
	switch {
	case o.Transient():
		level = slog.LevelError
	case o.Failed(), o.Kind == rotation.KindOverdue, o.Kind == rotation.KindRefreshFailed:
		level = slog.LevelWarn
	}
	if o.DurationMS != 0 {
		durationMS = o.DurationMS
	}
	inv.log.LogAttrs(ctx, level, "outcome",
		slog.String("vault", o.Vault),
		slog.String("secret", o.Secret),
		slog.String("version", o.OldVersion),
		slog.String("new_version", o.NewVersion),
		slog.String("provider", o.Provider),
		slog.String("trigger", string(o.Trigger)),
		slog.String("outcome", string(o.Kind)),
		slog.String("reason", o.Reason),
		slog.String("class", string(o.Class)),
		slog.String("consumer", o.Consumer),
		slog.Bool("dry_run", o.DryRun),
		slog.Int64("duration_ms", durationMS),
	)
	inv.logf("%s", describe(o, durationMS))
	for _, f := range o.Followups {
		inv.outcome(ctx, f, 0)
	}
}

// describe renders an outcome as one line, e.g.
// "rotated myvault/api-key version 0a1b… → 2c3d…: near expiry (provider sendgrid, trigger event, 812 ms)".
func describe(o rotation.Outcome, durationMS int64) string {
	var b strings.Builder
	b.WriteString(string(o.Kind))
	if o.Class != "" {
		fmt.Fprintf(&b, " (%s)", o.Class)
	}
	if o.DryRun {
		b.WriteString(" [dry run]")
	}
	fmt.Fprintf(&b, " %s/%s", o.Vault, o.Secret)
	if o.OldVersion != "" {
		b.WriteString(" version " + o.OldVersion)
	}
	if o.NewVersion != "" {
		b.WriteString(" → " + o.NewVersion)
	}
	if o.Reason != "" {
		b.WriteString(": " + o.Reason)
	}
	var details []string
	if o.Provider != "" {
		details = append(details, "provider "+o.Provider)
	}
	if o.Trigger != "" {
		details = append(details, "trigger "+string(o.Trigger))
	}
	if durationMS > 0 {
		details = append(details, fmt.Sprintf("%d ms", durationMS))
	}
	if len(details) > 0 {
		b.WriteString(" (" + strings.Join(details, ", ") + ")")
	}
	return b.String()
}
