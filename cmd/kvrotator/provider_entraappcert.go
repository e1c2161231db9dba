//go:build !kvrotator_no_entraappcert

package main

// The entraappcert provider registers itself by name (providers/registry); build with -tags kvrotator_no_entraappcert
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/entraappcert"
