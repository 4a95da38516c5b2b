package escalation_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

// The redrive measures the outbox for its alarms: how many wait, and for how long the oldest.
func TestRedriveMeasuresTheOutbox(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "1000"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503})
	for _, key := range []string{"k-1", "k-2"} {
		if c := e.post(body("conversationId", conv, "trigger", "vip", "idempotencyKey", key)); c.res.Status != "queued" {
			t.Fatalf("%s", c.raw)
		}
		e.clock.Jump(10 * time.Minute)
	}
	_, metrics := e.redrive()
	// the first was accepted 20 minutes (and its delivery attempts) ago
	age := regexp.MustCompile(`"OutboxOldestAgeSeconds":(\d+)`).FindStringSubmatch(metrics)
	if !strings.Contains(metrics, `"OutboxDepth":2`) || len(age) != 2 || age[1] < "1200" || age[1] > "1260" || len(age[1]) != 4 {
		t.Fatalf("metrics %s", metrics)
	}
	st, err := e.svc.Outbox.Stats(t.Context())
	if err != nil || st.Queued != 2 || st.Failed != 0 || st.NextDue.IsZero() || e.clock.Now().Sub(st.Oldest) < 20*time.Minute {
		t.Fatalf("%+v %v", st, err)
	}
	e.jira.ClearFailures()
	e.clock.Jump(time.Minute)
	if _, metrics = e.redrive(); !strings.Contains(metrics, `"OutboxDepth":0`) || !strings.Contains(metrics, `"OutboxOldestAgeSeconds":0`) {
		t.Fatalf("after delivery: %s", metrics)
	}
}
