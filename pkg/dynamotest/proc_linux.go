package dynamotest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the JVM when the test binary dies, even by SIGKILL or a
// test timeout, so no DynamoDB Local outlives its tests.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
