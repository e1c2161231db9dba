//go:build !kvrotator_no_mysql

package main

// The mysql provider registers itself by name (providers/registry); build with -tags kvrotator_no_mysql
// to leave it out.
import _ "github.com/kvrotator/kvrotator/providers/mysql"
