//go:build !kvrotator_no_postgres

package main

// The postgres provider registers itself by name (providers/registry); build with -tags kvrotator_no_postgres
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/postgres"
