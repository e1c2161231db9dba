//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package journal

import (
	"errors"
	"os"
)

var errWouldBlock = errors.New("lock is held") // never returned here

// lockFile does nothing where flock is not available: running one runner at a time is up to the
// operator.
func lockFile(*os.File) (exclusive bool, err error) { return false, nil }

// syncDir does nothing: directories cannot be synced portably here (Windows cannot open one for
// writing); the rename itself is atomic.
func syncDir(string) error { return nil }
