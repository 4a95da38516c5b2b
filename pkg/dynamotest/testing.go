package dynamotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"
)

// shared is the one instance of a test binary, started by the first ForTest.
var shared struct {
	mu      sync.Mutex
	local   *Local
	err     error
	logOnce sync.Once
}

// Shared returns the test binary's instance, starting it on first use. A failed start is
// remembered, so the tests after the first fail at once with the same message.
func Shared() (*Local, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.local == nil && shared.err == nil {
		shared.local, shared.err = Start()
	}
	return shared.local, shared.err
}

// ForTest returns the test binary's DynamoDB Local and a fresh set of the template's tables,
// uniquely named for this test and deleted when it ends. Tests that need state never skip:
// a missing java or npm fails the test with what to install.
func ForTest(t testing.TB) (*Local, Tables) {
	t.Helper()
	l, err := Shared()
	if err != nil {
		t.Fatalf("DynamoDB Local: %v", err)
	}
	shared.logOnce.Do(func() {
		if l.StartedIn > 0 {
			t.Logf("DynamoDB Local on %s (started in %s)", l.Endpoint(), l.StartedIn.Round(time.Millisecond))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tables, err := l.CreateTables(ctx, uniqueSuffix(t.Name()))
	if err != nil {
		t.Fatalf("%v\nDynamoDB Local output:\n%s", err, l.Output())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := l.DeleteTables(ctx, tables); err != nil {
			t.Errorf("%v", err)
		}
	})
	return l, tables
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// uniqueSuffix is the test's name made table-safe plus random bytes, so that test binaries
// sharing one instance (CXBRIDGE_DYNAMODB_ENDPOINT) never collide.
func uniqueSuffix(testName string) string {
	s := unsafeName.ReplaceAllString(testName, "-")
	if len(s) > 80 {
		s = s[:80]
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return s + "-" + hex.EncodeToString(b[:])
}

// Main runs the tests and then stops the shared instance. Use it as TestMain:
//
//	func TestMain(m *testing.M) { dynamotest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	if shared.local != nil {
		shared.local.Stop()
	}
	shared.mu.Unlock()
	os.Exit(code)
}

// HungEndpoint returns the URL of an endpoint that accepts connections and never answers: what
// a paused or wedged DynamoDB looks like to a client (only deadlines help). It closes with the
// test.
func HungEndpoint(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}
