package main

import (
	"fmt"
	"time"

	"github.com/cxbridge/cxbridge/pkg/localstack"
)

func init() {
	addScenario(scenario{order: 50, title: "Telemetry routes a caller whose product is in a critical state to L3", run: telemetryL3})
	addScenario(scenario{order: 51, title: "Telemetry hangs: the caller still gets a queue, the fallback tier, within the 3 s budget", run: telemetryHang})
}

func telemetryL3(d *demo) error {
	before := len(d.st.Telemetry().Received())
	status, out := d.post("Genesys", "/telemetry/tier", localstack.LocalAPIKey, nil, map[string]any{
		"customerId": localstack.CustomerCritical, "conversationId": "7f0c9a41-1d2e-4b8a-9f3c-000000000501", "ani": "+442071838750",
	})
	got := d.st.Telemetry().Received()
	if len(got) != before+1 {
		return fmt.Errorf("telemetry received %d requests, want 1", len(got)-before)
	}
	r := got[len(got)-1]
	d.say("telemetry", "received %s (Cache-Control: %s)", short(r.Raw), r.Header.Get("Cache-Control"))
	d.check(status == 200 && out["status"] == "ok" && out["tier"] == "L3" && out["queueId"] == localstack.QueueL3,
		"want ok/L3 to %s, got %d %v", localstack.QueueL3, status, out)
	d.say("result", "caller transferred to %v (%v), severity %v", out["queueName"], out["tier"], out["severityLevel"])
	return nil
}

func telemetryHang(d *demo) error {
	start := time.Now()
	status, out := d.post("Genesys", "/telemetry/tier", localstack.LocalAPIKey, nil, map[string]any{
		"customerId": localstack.CustomerHangs, "conversationId": "7f0c9a41-1d2e-4b8a-9f3c-000000000502",
	})
	elapsed := time.Since(start)
	d.say("telemetry", "accepted the request and never answered")
	d.check(status == 200 && out["status"] == "fallback" && out["reason"] == "timeout" && out["tier"] == "L1",
		"want fallback/timeout to L1, got %d %v", status, out)
	d.check(elapsed < 3500*time.Millisecond, "answered after %s; the budget is 3 s", elapsed.Round(time.Millisecond))
	d.say("result", "caller transferred to %v after %s (reason %v)", out["queueName"], elapsed.Round(time.Millisecond), out["reason"])
	return nil
}
