package localstack_test

import "github.com/cxbridge/cxbridge/pkg/localstack"

func init() {
	expectAll(map[string]expect{
		"telemetry-tier/critical.json":            {Status: 200, Body: m{"status": "ok", "tier": "L3", "queueId": localstack.QueueL3, "queueName": "Support L3", "severityLevel": 3.0, "source": "telemetry", "cascaded": false}},
		"telemetry-tier/high.json":                {Status: 200, Body: m{"status": "ok", "tier": "L2", "queueId": localstack.QueueL2, "severityLevel": 2.0}},
		"telemetry-tier/normal.json":              {Status: 200, Body: m{"status": "ok", "tier": "L1", "queueId": localstack.QueueL1, "severityLevel": 1.0}},
		"telemetry-tier/escalation-required.json": {Status: 200, Body: m{"status": "ok", "tier": "L2", "severityLevel": 1.0, "escalationRequired": true}},
		"telemetry-tier/telemetry-down.json":      {Status: 200, Body: m{"status": "fallback", "tier": "L1", "queueId": localstack.QueueL1, "source": "fallback", "reason": "unavailable"}},
		"telemetry-tier/telemetry-hangs.json":     {Status: 200, Body: m{"status": "fallback", "tier": "L1", "reason": "timeout"}},
		"telemetry-tier/malformed-response.json":  {Status: 200, Body: m{"status": "fallback", "tier": "L1", "reason": "malformed_response"}},
		"telemetry-tier/missing-customer-id.json": {Status: 400, Body: m{"status": "rejected", "error": m{"field": "customerId", "code": "missing_field"}}},
		"telemetry-tier/direct-invoke.json":       {Body: m{"status": "ok", "tier": "L3", "queueId": localstack.QueueL3}},
	})
}
