//go:build !kvrotator_no_azurekeys

package main

// The azurekeys provider registers itself by name (providers/registry); build with -tags kvrotator_no_azurekeys
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/azurekeys"
