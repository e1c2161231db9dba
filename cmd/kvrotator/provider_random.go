//go:build !kvrotator_no_random

package main

// The random provider registers itself by name (providers/registry); build with -tags kvrotator_no_random
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/random"
