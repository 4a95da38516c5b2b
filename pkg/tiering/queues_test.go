package tiering_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys/genesystest"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry/telemetrytest"
	"github.com/cxbridge/cxbridge/pkg/tiering"
)

// queueAware is the deployed defaults: a tier takes the caller when its estimated wait is at
// most 5 minutes, with 5 minutes of average handle time.
func queueAware(c *tiering.Config, _ *breaker.Settings) {
	c.Cascade, c.MaxWait, c.Handle = true, 300*time.Second, 300*time.Second
}

// TestTiersThatKnowTheQueues is seed 003's "if the target L3 queue is full, cascade to L2
// before waiting": the queue depth counts as well as the agents on queue.
func TestTiersThatKnowTheQueues(t *testing.T) {
	for _, tc := range []struct {
		name       string
		l1, l2, l3 genesystest.Queue
		want       tiering.Tier
		wait       int // estimatedWaitSeconds
		cascaded   bool
	}{
		{"an idle L3 agent takes the caller", genesystest.Queue{Idle: 5}, genesystest.Queue{Idle: 5},
			genesystest.Queue{Idle: 1, Interacting: 1}, tiering.L3, 0, false},
		{"one L3 agent busy, nobody waiting: about one handle time", genesystest.Queue{Idle: 5}, genesystest.Queue{Idle: 5},
			genesystest.Queue{Interacting: 1}, tiering.L3, 300, false},
		{"a full L3 cascades to L2 before waiting", genesystest.Queue{Idle: 5}, genesystest.Queue{Idle: 1, Interacting: 2},
			genesystest.Queue{Interacting: 2, Waiting: 5}, tiering.L2, 0, true},
		{"idle agents take the callers already waiting first", genesystest.Queue{Idle: 5}, genesystest.Queue{Idle: 2, Waiting: 2, Interacting: 2},
			genesystest.Queue{Interacting: 2, Communicating: 1, Waiting: 9}, tiering.L2, 75, true}, // (2-2+1) x 300 / 4
		{"L2 full too: L1", genesystest.Queue{Interacting: 4, Waiting: 2}, genesystest.Queue{Interacting: 1, Waiting: 3},
			genesystest.Queue{Interacting: 2, Waiting: 5}, tiering.L1, 225, true}, // (2+1) x 300 / 4
		{"every tier over the limit keeps the staffed L3", genesystest.Queue{Interacting: 1, Waiting: 5}, genesystest.Queue{Interacting: 1, Waiting: 3},
			genesystest.Queue{Interacting: 2, Waiting: 5}, tiering.L3, 900, false},
		{"an empty L3 goes to the staffed tier that frees up first", genesystest.Queue{Interacting: 2, Waiting: 2}, genesystest.Queue{Interacting: 1, Waiting: 1},
			genesystest.Queue{Waiting: 3}, tiering.L1, 450, true}, // L2: 600 s, L1: 450 s
		{"nobody anywhere keeps L3", genesystest.Queue{Waiting: 1}, genesystest.Queue{}, genesystest.Queue{}, tiering.L3, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, queueAware)
			e.genesys.SetQueue("q-l1", tc.l1)
			e.genesys.SetQueue("q-l2", tc.l2)
			e.genesys.SetQueue("q-l3", tc.l3)
			e.telemetry.Severity("acme", 3, false)
			d, metrics := e.decide(t, `{"customerId":"acme"}`)
			if d.Status != tiering.StatusOK || d.Tier != tc.want || d.Cascaded != tc.cascaded || d.EstimatedWaitSeconds != tc.wait {
				t.Fatalf("got %s (cascaded %v, wait %d s); want %s (cascaded %v, wait %d s)", d.Tier, d.Cascaded, d.EstimatedWaitSeconds, tc.want, tc.cascaded, tc.wait)
			}
			if tc.cascaded && !strings.Contains(metrics, `"To":"`+string(tc.want)+`"`) {
				t.Fatalf("QueueCascade missing: %s", metrics)
			}
			if n := len(e.genesys.Received("/api/v2/analytics")); n != 1 {
				t.Fatalf("%d observation queries; the three queues are read in one", n)
			}
		})
	}
}

func TestLeastLoadedFallback(t *testing.T) {
	leastLoaded := func(c *tiering.Config, _ *breaker.Settings) {
		c.FallbackLeastLoaded, c.Handle, c.MaxWait, c.Fallback = true, 300*time.Second, 300*time.Second, tiering.L1
	}
	busyL1 := func(e *env) {
		e.genesys.SetQueue("q-l1", genesystest.Queue{Interacting: 3, Waiting: 6}) // 700 s
		e.genesys.SetQueue("q-l2", genesystest.Queue{Idle: 1, Interacting: 2})    // 0 s
		e.genesys.SetQueue("q-l3", genesystest.Queue{Interacting: 1, Waiting: 1}) // 600 s
	}
	t.Run("telemetry down: the tier that can take the caller soonest", func(t *testing.T) {
		e := newEnv(t, leastLoaded)
		busyL1(e)
		e.telemetry.Script("acme", telemetrytest.Answer{Status: 503})
		d, _ := e.decide(t, `{"customerId":"acme"}`)
		if d.Status != tiering.StatusFallback || d.Reason != tiering.ReasonUnavailable || d.Tier != tiering.L2 || d.QueueID != "q-l2" || !d.Cascaded || d.EstimatedWaitSeconds != 0 {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("telemetry hangs: the queues observed meanwhile still count, within the budget", func(t *testing.T) {
		e := newEnv(t, leastLoaded)
		busyL1(e)
		e.telemetry.Script("acme", telemetrytest.Hang)
		d, _ := e.decide(t, `{"customerId":"acme"}`)
		if d.Status != tiering.StatusFallback || d.Reason != tiering.ReasonTimeout || d.Tier != tiering.L2 {
			t.Fatalf("got %+v", d)
		}
		if d.LatencyMs > e.svc.Config.Timeout.Milliseconds()+1000 { // a hang guard; the budget is 500 ms
			t.Fatalf("answered after %d ms", d.LatencyMs)
		}
	})
	t.Run("a tie keeps the configured fallback", func(t *testing.T) {
		e := newEnv(t, leastLoaded)
		for _, q := range []string{"q-l1", "q-l2", "q-l3"} {
			e.genesys.SetQueue(q, genesystest.Queue{Idle: 2})
		}
		e.telemetry.Script("acme", telemetrytest.Answer{Status: 503})
		if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Tier != tiering.L1 || d.Cascaded || d.EstimatedWaitSeconds != 0 {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("queues unreadable too: the configured fallback", func(t *testing.T) {
		e := newEnv(t, leastLoaded)
		e.genesys.Fail("/api/v2/analytics", genesystest.Failure{Status: 503})
		e.telemetry.Script("acme", telemetrytest.Answer{Status: 503})
		d, metrics := e.decide(t, `{"customerId":"acme"}`)
		if d.Tier != tiering.L1 || d.Cascaded || d.EstimatedWaitSeconds != -1 || !strings.Contains(metrics, "QueueObservationFailed") {
			t.Fatalf("got %+v %s", d, metrics)
		}
	})
	t.Run("telemetry fine: the telemetry's tier, not the least loaded", func(t *testing.T) {
		e := newEnv(t, leastLoaded)
		busyL1(e)
		e.telemetry.Severity("acme", 3, false)
		if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Status != tiering.StatusOK || d.Tier != tiering.L3 || d.Cascaded || d.EstimatedWaitSeconds != 600 {
			t.Fatalf("got %+v; without TierCascade the telemetry's tier stands", d)
		}
	})
}

func TestQueueAwareConfiguration(t *testing.T) {
	base := map[string]string{"TELEMETRY_URL": "https://t.example.com", "TELEMETRY_SECRET_ID": "s", "STATE_TABLE": "t",
		"TIER_L1_QUEUE_ID": "a", "TIER_L2_QUEUE_ID": "b", "TIER_L3_QUEUE_ID": "c"}
	r := config.FromMap(base)
	c := tiering.LoadConfig(r)
	if r.Err() != nil || c.MaxWait != 5*time.Minute || c.Handle != 5*time.Minute || c.FallbackLeastLoaded || c.ObservesQueues() {
		t.Fatalf("defaults: %+v %v", c, r.Err())
	}
	base["TIER_FALLBACK_LEAST_LOADED"] = "true"
	r = config.FromMap(base)
	tiering.LoadConfig(r)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "GENESYS_SECRET_ID") {
		t.Fatalf("the least-loaded fallback observes queues, so it needs Genesys: %v", err)
	}
	base["GENESYS_SECRET_ID"], base["GENESYS_API_BASE_URL"], base["GENESYS_LOGIN_BASE_URL"] = "g", "https://api.example.com", "https://login.example.com"
	base["TIER_HANDLE_SECONDS"], base["TIER_MAX_WAIT_SECONDS"] = "0", "-5"
	r = config.FromMap(base)
	tiering.LoadConfig(r)
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "TIER_HANDLE_SECONDS") || !strings.Contains(err.Error(), "TIER_MAX_WAIT_SECONDS") {
		t.Fatalf("want both named: %v", err)
	}
}
