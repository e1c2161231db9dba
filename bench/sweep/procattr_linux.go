package main

import "syscall"

// sysProcAttr makes the kernel kill Azurite if this process dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
