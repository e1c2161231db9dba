//go:build !kvrotator_no_awsiam

package main

// The aws-iam provider registers itself by name (providers/registry); build with -tags kvrotator_no_awsiam
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/awsiam"
