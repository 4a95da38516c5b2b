package runtimeapi

import (
	"os/exec"
	"syscall"
)

// configureProcess makes the kernel SIGKILL the bootstrap when the emulator's process dies
// without calling Close (a test binary killed by its timeout, a ^C'd local stack), so no
// orphan keeps a port or a DynamoDB Local connection. Pdeathsig is tied to the OS thread that
// forked the child; the Go runtime does not end threads except for goroutines that exit
// while locked to one, which this package never does.
func configureProcess(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
