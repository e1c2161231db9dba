//go:build !kvrotator_no_entraapp

package main

// The entraapp provider registers itself by name (providers/registry); build with -tags kvrotator_no_entraapp
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/entraapp"
