//go:build !kvrotator_no_datadog

package main

// The datadog provider registers itself by name (providers/registry); build with -tags kvrotator_no_datadog
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/datadog"
