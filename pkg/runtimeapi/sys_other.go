//go:build !linux

package runtimeapi

import "os/exec"

// configureProcess has nothing to do where Pdeathsig does not exist (macOS). There a killed
// parent takes the Runtime API listener with it, the bootstrap's pending /next fails, and
// aws-lambda-go exits on that error.
func configureProcess(cmd *exec.Cmd) {}
