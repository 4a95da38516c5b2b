package observe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/cxbridge/cxbridge/pkg/observe"
)

// One execution environment serving two invocations through the real aws-lambda-go handler.
func TestWrap(t *testing.T) {
	var logs, emf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(observe.NewLogger(&logs, "cxbridge", slog.LevelInfo))
	t.Cleanup(func() { slog.SetDefault(prev) })

	fn := observe.Function{Service: "cxbridge", Name: "telemetry-tier", Namespace: "cxbridge", Out: &emf}
	h := observe.Wrap(fn, func(ctx context.Context, in json.RawMessage) (map[string]string, error) {
		observe.SetCorrelationID(ctx, "conv-1")
		slog.InfoContext(ctx, "tier decided", "tier", "L2")
		observe.MetricsFrom(ctx).Count("TierDecision", 1, observe.D("Tier", "L2"))
		if strings.Contains(string(in), "fail") {
			return nil, errors.New("downstream failed")
		}
		return map[string]string{"status": "ok"}, nil
	})
	handler := lambda.NewHandler(h)

	invoke := func(requestID, event string) ([]map[string]any, []map[string]any, error) {
		logs.Reset()
		emf.Reset()
		ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: requestID})
		ctx = context.WithValue(ctx, "x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793") //nolint:staticcheck // the key aws-lambda-go uses
		_, err := handler.Invoke(ctx, []byte(event))
		return logLines(t, &logs), checkEMF(t, emf.Bytes(), "cxbridge", time.Time{}), err
	}

	first, firstEMF, err := invoke("req-1", `{"customerId":"C-1"}`)
	if err != nil {
		t.Fatal(err)
	}
	second, secondEMF, _ := invoke("req-2", `{"customerId":"C-2"}`)
	third, thirdEMF, err := invoke("req-3", `{"customerId":"fail"}`)
	if err == nil {
		t.Error("the handler's error was lost")
	}

	for i, tt := range []struct {
		lines     []map[string]any
		requestID string
		cold      bool
	}{{first, "req-1", true}, {second, "req-2", false}, {third, "req-3", false}} {
		if len(tt.lines) != 1 {
			t.Fatalf("invocation %d logged %d lines", i+1, len(tt.lines))
		}
		l := tt.lines[0]
		if l["function_request_id"] != tt.requestID || l["cold_start"] != tt.cold || l["function_name"] != "telemetry-tier" ||
			l["correlation_id"] != "conv-1" || l["xray_trace_id"] != "Root=1-5759e988-bd862e3fe1be46a994272793" || l["service"] != "cxbridge" {
			t.Errorf("invocation %d log line = %v", i+1, l)
		}
	}

	// ColdStart only on the first invocation; every invocation flushes its own metrics,
	// the failing one included
	if !hasMetric(firstEMF, "ColdStart") || hasMetric(secondEMF, "ColdStart") || hasMetric(thirdEMF, "ColdStart") {
		t.Errorf("ColdStart must be recorded on the first invocation only")
	}
	for i, docs := range [][]map[string]any{firstEMF, secondEMF, thirdEMF} {
		n := 0
		for _, d := range docs {
			if d["TierDecision"] != nil {
				n++
				if d["TierDecision"] != 1.0 || d["Function"] != "telemetry-tier" || d["Service"] != "cxbridge" || d["Tier"] != "L2" {
					t.Errorf("invocation %d TierDecision document = %v", i+1, d)
				}
			}
		}
		if n != 1 {
			t.Errorf("invocation %d flushed TierDecision %d times; want once, with only its own value", i+1, n)
		}
	}
}

func hasMetric(docs []map[string]any, name string) bool {
	for _, d := range docs {
		if _, ok := d[name]; ok {
			return true
		}
	}
	return false
}

func TestFunctionFromEnv(t *testing.T) {
	t.Setenv("POWERTOOLS_SERVICE_NAME", "")
	t.Setenv("POWERTOOLS_METRICS_NAMESPACE", "")
	if f := observe.FunctionFromEnv("servicenow-lookup"); f.Service != "cxbridge" || f.Namespace != "cxbridge" || f.Name != "servicenow-lookup" {
		t.Errorf("defaults = %+v", f)
	}
	t.Setenv("POWERTOOLS_SERVICE_NAME", "acme-cx")
	t.Setenv("POWERTOOLS_METRICS_NAMESPACE", "acme/cxbridge")
	if f := observe.FunctionFromEnv("servicenow-lookup"); f.Service != "acme-cx" || f.Namespace != "acme/cxbridge" {
		t.Errorf("from env = %+v", f)
	}
}
