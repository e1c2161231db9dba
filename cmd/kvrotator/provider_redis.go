//go:build !kvrotator_no_redis

package main

// The redis provider registers itself by name (providers/registry); build with -tags kvrotator_no_redis
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/redis"
