//go:build unix

package dynamotest

import (
	"os"
	"syscall"
)

// stopProcess and continueProcess freeze and thaw a process: SIGSTOP cannot be caught, so
// the JVM stops mid-request exactly as a hung host would, while the kernel keeps accepting TCP
// connections on its port.
func stopProcess(p *os.Process) error     { return p.Signal(syscall.SIGSTOP) }
func continueProcess(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
