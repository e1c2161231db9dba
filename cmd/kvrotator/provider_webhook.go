//go:build !kvrotator_no_webhook

package main

// The webhook provider registers itself by name (providers/registry); build with -tags kvrotator_no_webhook
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/webhook"
