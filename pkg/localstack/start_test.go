package localstack

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartFailureStopsWhatItStarted: when a step of Start fails it returns that step's error
// (no panic) and nothing it started is left running: no DynamoDB Local, no fake, no build
// directory.
func TestStartFailureStopsWhatItStarted(t *testing.T) {
	// A step that fails before any service is up.
	_, err := Start(context.Background(), Options{Root: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "template.yaml") {
		t.Errorf("Start without a template: %v", err)
	}

	// A user's secrets file that is not there: everything is up by then.
	missing := filepath.Join(t.TempDir(), "secrets.json")
	st, err := Start(context.Background(), Options{Getenv: func(k string) string {
		if k == "CXBRIDGE_SECRETS_FILE" {
			return missing
		}
		return ""
	}})
	if st != nil || err == nil || !strings.Contains(err.Error(), "CXBRIDGE_SECRETS_FILE") {
		t.Errorf("Start with a missing secrets file: %v, %v", st, err)
	}

	// A seed that fails, the last step: it sees the whole stack, which must then be gone.
	var seen *Stack
	cause := errors.New("the seed data is broken")
	saved := seeds
	seeds = append(append([]func(context.Context, *Stack) error(nil), seeds...), func(_ context.Context, s *Stack) error {
		seen = s
		return cause
	})
	t.Cleanup(func() { seeds = saved })
	st, err = Start(context.Background(), Options{Getenv: func(string) string { return "" }})
	if st != nil || !errors.Is(err, cause) {
		t.Fatalf("Start with a failing seed: %v, %v; want its error", st, err)
	}
	if seen == nil {
		t.Fatal("the failing seed never ran")
	}
	addrs := []string{seen.Secrets.URL()}
	if !seen.DynamoDB.Reused() { // a shared instance (CXBRIDGE_DYNAMODB_ENDPOINT) is not ours to stop
		addrs = append(addrs, seen.DynamoDB.Endpoint())
	}
	for _, e := range seen.Endpoints() {
		addrs = append(addrs, e.URL)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, a := range addrs {
		if resp, err := hc.Get(a); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after the failed Start", a)
		}
	}
	if _, err := os.Stat(seen.binDir); !os.IsNotExist(err) {
		t.Errorf("build directory %s left behind (%v)", seen.binDir, err)
	}
}
