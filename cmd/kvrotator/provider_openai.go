//go:build !kvrotator_no_openai

package main

// The openai provider registers itself by name (providers/registry); build with -tags kvrotator_no_openai
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/openai"
