//go:build !kvrotator_no_twilio

package main

// The twilio provider registers itself by name (providers/registry); build with -tags kvrotator_no_twilio
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/twilio"
