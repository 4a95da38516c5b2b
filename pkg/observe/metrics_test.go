package observe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/observe"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var flushAt = time.Date(2026, 11, 22, 10, 30, 0, 0, time.UTC)

// The EMF a telemetry-tier invocation writes, byte for byte.
func TestEMFGolden(t *testing.T) {
	m := observe.NewMetrics("cxbridge", observe.D("Service", "cxbridge"), observe.D("Function", "telemetry-tier"))
	m.Count("ColdStart", 1)
	m.Count("TierDecision", 1, observe.D("Tier", "L2"), observe.D("Source", "telemetry"))
	m.Millis("TelemetryLatency", 182500*time.Microsecond)
	m.Count("TierDecision", 1, observe.D("Tier", "L2"), observe.D("Source", "telemetry")) // repeated: an array
	m.Count("TelemetryFallback", 1, observe.D("Reason", "timeout"))
	m.Millis("TelemetryLatency", 3*time.Millisecond)
	m.Count("QueueCascade", 1, observe.D("From", "L3"), observe.D("To", "L2"))

	var buf bytes.Buffer
	if err := m.Flush(&buf, flushAt); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "emf.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestEMFGolden -update to create it)", err)
	}
	if buf.String() != string(want) {
		t.Errorf("EMF differs from %s (-update to accept):\ngot:\n%s\nwant:\n%s", golden, buf.String(), want)
	}
	docs := checkEMF(t, buf.Bytes(), "cxbridge", flushAt)
	if len(docs) != 4 {
		t.Fatalf("got %d EMF documents; want one per dimension set (4)", len(docs))
	}
	// the base set carries the repeated latency as an array, in recording order
	if got := docs[0]["TelemetryLatency"]; !equalJSON(got, []any{182.5, 3.0}) {
		t.Errorf("TelemetryLatency = %v; want [182.5 3]", got)
	}
	if got := docs[1]["TierDecision"]; !equalJSON(got, []any{1.0, 1.0}) {
		t.Errorf("TierDecision = %v; want [1 1]", got)
	}
	if docs[2]["Reason"] != "timeout" || docs[2]["Function"] != "telemetry-tier" || docs[2]["TelemetryFallback"] != 1.0 {
		t.Errorf("fallback document = %v", docs[2])
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// checkEMF validates every line (with a Timestamp of at, or of about now when at is zero) as a CloudWatch Embedded Metric Format document and returns them.
func checkEMF(t *testing.T, out []byte, namespace string, at time.Time) []map[string]any {
	t.Helper()
	var docs []map[string]any
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		var doc map[string]any
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatalf("EMF line is not JSON: %v\n%s", err, line)
		}
		docs = append(docs, doc)
		meta, ok := doc["_aws"].(map[string]any)
		if !ok {
			t.Fatalf("no _aws object: %s", line)
		}
		ts, _ := meta["Timestamp"].(float64)
		if !at.IsZero() && ts != float64(at.UnixMilli()) {
			t.Errorf("Timestamp = %v; want %d (ms)", meta["Timestamp"], at.UnixMilli())
		}
		if at.IsZero() && math.Abs(ts-float64(time.Now().UnixMilli())) > float64(time.Hour.Milliseconds()) {
			t.Errorf("Timestamp = %v; want the flush time in Unix milliseconds", meta["Timestamp"])
		}
		directives, _ := meta["CloudWatchMetrics"].([]any)
		if len(directives) != 1 {
			t.Fatalf("CloudWatchMetrics = %v", meta["CloudWatchMetrics"])
		}
		d := directives[0].(map[string]any)
		if d["Namespace"] != namespace {
			t.Errorf("Namespace = %v", d["Namespace"])
		}
		sets, _ := d["Dimensions"].([]any)
		if len(sets) == 0 {
			t.Errorf("no dimension sets: %s", line)
		}
		for _, set := range sets {
			names := set.([]any)
			if len(names) > 30 { // an empty set is allowed: metrics without dimensions
				t.Errorf("dimension set %v has more than 30 names", names)
			}
			seen := map[string]bool{}
			for _, n := range names {
				name := n.(string)
				if seen[name] {
					t.Errorf("dimension %q listed twice in %v", name, names)
				}
				seen[name] = true
				if _, ok := doc[name].(string); !ok {
					t.Errorf("dimension %q is not a top-level string member: %s", name, line)
				}
			}
		}
		metrics, _ := d["Metrics"].([]any)
		if len(metrics) == 0 || len(metrics) > 100 {
			t.Errorf("Metrics has %d entries; want 1-100", len(metrics))
		}
		for _, md := range metrics {
			def := md.(map[string]any)
			name, _ := def["Name"].(string)
			if unit := def["Unit"]; unit != "Count" && unit != "Milliseconds" {
				t.Errorf("metric %q unit %v", name, unit)
			}
			switch v := doc[name].(type) {
			case float64:
			case []any:
				if len(v) == 0 || len(v) > 100 {
					t.Errorf("metric %q has %d values; EMF allows 1-100", name, len(v))
				}
				for _, x := range v {
					if _, ok := x.(float64); !ok {
						t.Errorf("metric %q value %v is not a number", name, x)
					}
				}
			default:
				t.Errorf("metric %q is not a top-level number or array: %s", name, line)
			}
		}
	}
	return docs
}

func TestFlushForgets(t *testing.T) {
	m := observe.NewMetrics("cxbridge")
	m.Count("Calls", 1)
	var buf bytes.Buffer
	if err := m.Flush(&buf, flushAt); err != nil || strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("first Flush = %v, %q", err, buf.String())
	}
	buf.Reset()
	if err := m.Flush(&buf, flushAt); err != nil || buf.Len() != 0 {
		t.Errorf("second Flush wrote %q; metrics must be written once", buf.String())
	}
}

func TestValueLimit(t *testing.T) {
	m := observe.NewMetrics("cxbridge", observe.D("Function", "f"))
	for i := range 150 {
		m.Millis("Latency", time.Duration(i)*time.Millisecond)
	}
	var buf bytes.Buffer
	if err := m.Flush(&buf, flushAt); err != nil {
		t.Fatal(err)
	}
	checkEMF(t, buf.Bytes(), "cxbridge", flushAt)
}

// A NaN (say, a ratio of zero calls) must not cost the other metrics of the invocation.
func TestNonFiniteValuesDropped(t *testing.T) {
	m := observe.NewMetrics("cxbridge")
	m.Count("Calls", 2)
	m.Add("Ratio", observe.Count, math.NaN())
	m.Add("Ratio", observe.Count, math.Inf(1))
	var buf bytes.Buffer
	if err := m.Flush(&buf, flushAt); err != nil {
		t.Fatalf("Flush = %v", err)
	}
	docs := checkEMF(t, buf.Bytes(), "cxbridge", flushAt)
	if docs[0]["Calls"] != 2.0 || docs[0]["Ratio"] != nil {
		t.Errorf("document = %v", docs[0])
	}
}

func TestDimensionGivenTwice(t *testing.T) {
	m := observe.NewMetrics("cxbridge", observe.D("Function", "base"))
	m.Count("Calls", 1, observe.D("Function", "specific"))
	var buf bytes.Buffer
	_ = m.Flush(&buf, flushAt)
	docs := checkEMF(t, buf.Bytes(), "cxbridge", flushAt)
	if docs[0]["Function"] != "specific" {
		t.Errorf("Function = %v; want the later value", docs[0]["Function"])
	}
}

func TestNilMetricsIgnoreEverything(t *testing.T) {
	m := observe.MetricsFrom(context.Background())
	m.Count("Calls", 1)
	m.Millis("Latency", time.Second)
	if err := m.Flush(&bytes.Buffer{}, flushAt); err != nil {
		t.Errorf("nil Flush = %v", err)
	}
	real := observe.NewMetrics("x")
	if observe.MetricsFrom(observe.WithMetrics(context.Background(), real)) != real {
		t.Error("MetricsFrom did not return the stored collector")
	}
}

func TestConcurrentAdds(t *testing.T) {
	m := observe.NewMetrics("cxbridge")
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 5 {
				m.Count("Calls", 1, observe.D("Vendor", "jira"))
			}
		})
	}
	wg.Wait()
	var buf bytes.Buffer
	_ = m.Flush(&buf, flushAt)
	docs := checkEMF(t, buf.Bytes(), "cxbridge", flushAt)
	if n := len(docs[0]["Calls"].([]any)); n != 100 {
		t.Errorf("recorded %d values; want 100", n)
	}
}
