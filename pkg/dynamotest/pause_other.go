//go:build !unix

package dynamotest

import (
	"errors"
	"os"
)

var errNoPause = errors.New("dynamotest: pausing DynamoDB Local needs SIGSTOP, which this OS lacks")

func stopProcess(*os.Process) error     { return errNoPause }
func continueProcess(*os.Process) error { return errNoPause }
