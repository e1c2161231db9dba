//go:build !linux

package redistest

import "syscall"

// sysProcAttr does nothing outside Linux: there the tests must not run as root.
func sysProcAttr(uid, gid uint32, other bool, onDeath syscall.Signal) *syscall.SysProcAttr {
	return nil
}
