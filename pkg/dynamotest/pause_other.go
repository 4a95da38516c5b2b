//go:build !unix

package dynamotest

import "errors"

var errNoPause = errors.New("dynamotest: pausing DynamoDB Local needs SIGSTOP (unix only)")

// Pause is not available on this platform.
func (l *Local) Pause() error { return errNoPause }

// Resume is not available on this platform.
func (l *Local) Resume() error { return errNoPause }
