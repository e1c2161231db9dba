//go:build !kvrotator_no_sendgrid

package main

// The sendgrid provider registers itself by name (providers/registry); build with -tags kvrotator_no_sendgrid
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/sendgrid"
