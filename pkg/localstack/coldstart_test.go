package localstack_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/runtimeapi"
)

// TestMisconfiguredFunctionNamesEveryVariable starts the real telemetry-tier bootstrap with
// three mistakes in its environment: the cold start fails (Lambda reports Runtime.ExitError) and
// the log line names all three variables at once, so a deployer fixes them in one go.
func TestMisconfiguredFunctionNamesEveryVariable(t *testing.T) {
	st := stack(t)
	env, err := st.Env("TelemetryTierFunction")
	if err != nil {
		t.Fatal(err)
	}
	delete(env, "TELEMETRY_URL")
	env["TELEMETRY_TIMEOUT_MS"] = "fast"
	env["TIER_FALLBACK"] = "L4"

	bin := filepath.Join(t.TempDir(), "bootstrap")
	if err := runtimeapi.BuildBootstrap(context.Background(), st.Root, "functions/telemetry-tier", bin); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	fn, err := runtimeapi.Start(runtimeapi.Function{Name: "telemetry-tier", Bootstrap: bin, Env: env, Timeout: 5 * time.Second, Logs: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer fn.Close()
	res, err := fn.Invoke(context.Background(), []byte(`{"customerId":"acme"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.FunctionError == "" || !strings.Contains(string(res.Payload), runtimeapi.ErrorTypeExit) {
		t.Fatalf("a misconfigured function must fail its cold start, got %s", res.Payload)
	}
	out := logs.String()
	for _, name := range []string{"TELEMETRY_URL", "TELEMETRY_TIMEOUT_MS", "TIER_FALLBACK"} {
		if !strings.Contains(out, name) {
			t.Errorf("the cold-start log does not name %s:\n%s", name, out)
		}
	}
}
