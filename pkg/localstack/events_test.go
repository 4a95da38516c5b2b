package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// stack starts a local stack for one test and stops it when the test ends. Tests do not share
// one: events are replayed by idempotency keys and change the fakes' state, so a test must not
// see another's traffic. The functions' logs are printed when the test fails.
func stack(t *testing.T) *localstack.Stack {
	t.Helper()
	var logs lockedBuffer
	st, err := localstack.Start(context.Background(), localstack.Options{Logs: &logs, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		if t.Failed() {
			t.Logf("function logs:\n%s", logs.String())
		}
	})
	return st
}

// expect is what an event under events/ must produce when run through the function's real
// bootstrap in the local stack. Body is matched as a subset: every field given must be there
// with that value; fields not given may have any value.
type expect struct {
	Status int            // HTTP status for API Gateway events; 0 for direct invocations
	Body   map[string]any // the response body (direct: the payload)
	Error  string         // direct invocations that must fail: a substring of the error message
	// Setup, when set, prepares the local world for this event (an outage flag, a failing
	// system) and returns how to undo it. Such events run one at a time, before the others.
	Setup func(t *testing.T, st *localstack.Stack) (undo func())
}

// expectations maps a file under events/ to what it must produce; each function's file
// (events_<function>_test.go) adds its own.
var expectations = map[string]expect{}

func expectAll(e map[string]expect) {
	for k, v := range e {
		expectations[k] = v
	}
}

type m = map[string]any

// TestEveryEvent runs each file under events/ through its function's real bootstrap, exactly as
// `sam local invoke -e` would, and checks the answer. An event without an expectation fails the
// test, so every example a user may copy is known to work.
func TestEveryEvent(t *testing.T) {
	root, err := dynamotest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	err = filepath.WalkDir(filepath.Join(root, "events"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") {
			rel, _ := filepath.Rel(filepath.Join(root, "events"), path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	for _, f := range files {
		if _, ok := expectations[f]; !ok {
			t.Errorf("events/%s has no expectation in this test; add one", f)
		}
	}
	for f := range expectations {
		if _, err := os.Stat(filepath.Join(root, "events", f)); err != nil {
			t.Errorf("expectation for events/%s, which does not exist", f)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	ctx := context.Background()
	st := stack(t)

	t.Run("events", func(t *testing.T) {
		for _, f := range files {
			t.Run(f, func(t *testing.T) {
				if setup := expectations[f].Setup; setup != nil {
					defer setup(t, st)()
				} else {
					t.Parallel()
				}
				event, err := os.ReadFile(filepath.Join(root, "events", f))
				if err != nil {
					t.Fatal(err)
				}
				name := strings.Split(f, "/")[0]
				fn, err := st.Function(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				// Signatures and local addresses are filled in as the event is sent (prepare.go).
				if event, err = st.Prepare(ctx, f, event); err != nil {
					t.Fatal(err)
				}
				res, err := fn.Invoke(ctx, event)
				if err != nil {
					t.Fatal(err)
				}
				check(t, expectations[f], res.Payload, res.FunctionError)
			})
		}
	})
}

func check(t *testing.T, want expect, payload []byte, functionError string) {
	t.Helper()
	if want.Error != "" {
		if functionError == "" || !strings.Contains(string(payload), want.Error) {
			t.Fatalf("want a function error containing %q, got %s (%s)", want.Error, payload, functionError)
		}
		return
	}
	if functionError != "" {
		t.Fatalf("function error: %s", payload)
	}
	body := payload
	if want.Status != 0 {
		var resp struct {
			StatusCode int               `json:"statusCode"`
			Headers    map[string]string `json:"headers"`
			Body       string            `json:"body"`
		}
		if err := json.Unmarshal(payload, &resp); err != nil {
			t.Fatalf("not an API Gateway response: %s", payload)
		}
		if resp.StatusCode != want.Status {
			t.Fatalf("status %d, want %d: %s", resp.StatusCode, want.Status, resp.Body)
		}
		if ct := resp.Headers["Content-Type"]; ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		body = []byte(resp.Body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body is not a JSON object: %s", body)
	}
	if diff := subset("", want.Body, got); diff != "" {
		t.Fatalf("%s\nbody: %s", diff, body)
	}
}

// subset reports the first field of want that got lacks or holds differently.
func subset(path string, want, got map[string]any) string {
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return fmt.Sprintf("%s%s is missing", path, k)
		}
		if wm, ok := w.(map[string]any); ok {
			gm, ok := g.(map[string]any)
			if !ok {
				return fmt.Sprintf("%s%s is %v, want an object", path, k, g)
			}
			if d := subset(path+k+".", wm, gm); d != "" {
				return d
			}
			continue
		}
		if !reflect.DeepEqual(w, g) {
			return fmt.Sprintf("%s%s = %v, want %v", path, k, g, w)
		}
	}
	return ""
}

// lockedBuffer collects the functions' logs from the emulator's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
