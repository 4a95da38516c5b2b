//go:build !linux

package dynamotest

import "os/exec"

// setProcAttr: only Linux has Pdeathsig. Elsewhere the JVM is stopped by Stop (dynamotest.Main
// does it for tests); a test binary killed outright leaves it running.
func setProcAttr(*exec.Cmd) {}
