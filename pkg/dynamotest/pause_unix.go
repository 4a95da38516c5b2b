//go:build unix

package dynamotest

import (
	"errors"
	"fmt"
	"syscall"
)

// Pause freezes the JVM (SIGSTOP): connections are still accepted by the kernel but nothing
// answers, as when DynamoDB stalls. Resume undoes it; Stop works on a paused instance. A reused
// instance (CXBRIDGE_DYNAMODB_ENDPOINT) cannot be paused.
func (l *Local) Pause() error { return l.signal(syscall.SIGSTOP) }

// Resume lets a paused JVM run again (SIGCONT).
func (l *Local) Resume() error { return l.signal(syscall.SIGCONT) }

func (l *Local) signal(sig syscall.Signal) error {
	if l.cmd == nil || l.cmd.Process == nil {
		return errors.New("dynamotest: a reused DynamoDB Local (" + EndpointEnv + ") cannot be paused or resumed")
	}
	if err := l.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("dynamotest: %v: %w", sig, err)
	}
	return nil
}
