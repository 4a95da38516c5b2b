package dynamotest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJVMDiesWithTestBinary starts DynamoDB Local from a child test binary, kills that child
// with SIGKILL (no cleanup runs), and checks that the JVM goes too.
func TestJVMDiesWithTestBinary(t *testing.T) {
	if os.Getenv("DYNAMOTEST_CHILD") == "1" {
		l, err := Start()
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		fmt.Println("PID", l.cmd.Process.Pid)
		select {} // wait to be killed
	}
	child := exec.Command(os.Args[0], "-test.run=^TestJVMDiesWithTestBinary$")
	child.Env = append(os.Environ(), "DYNAMOTEST_CHILD=1", EndpointEnv+"=")
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "PID ") {
		t.Fatalf("child said %q (%v)", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "PID ")))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(pid) {
		t.Fatalf("JVM %d is not running before the child is killed", pid)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	for i := 0; i < 200 && alive(pid); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("JVM %d outlived the test binary that started it", pid)
	}
}

// alive reports whether pid runs (a zombie waiting to be reaped does not count).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
