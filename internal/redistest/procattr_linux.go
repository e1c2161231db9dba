package redistest

import "syscall"

// sysProcAttr runs the child as uid:gid when other is set (with no supplementary groups), and makes
// the kernel send it onDeath if the test binary dies without running its cleanups. Go sets the
// parent-death signal after switching users, so the switch does not clear it.
func sysProcAttr(uid, gid uint32, other bool, onDeath syscall.Signal) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: onDeath}
	if other {
		a.Credential = &syscall.Credential{Uid: uid, Gid: gid}
	}
	return a
}
