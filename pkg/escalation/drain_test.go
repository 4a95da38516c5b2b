package escalation_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

// outage queues n escalations per target while Jira and ServiceNow answer every create with 503,
// as callers keep calling during an outage. The environment is warm (secrets read, one ticket
// per target made) before the outage starts; those two tickets are not counted.
func (e *env) outage(t testing.TB, n int) {
	budget := e.svc.Config.Budget
	e.svc.Config.Budget = 10 * time.Second // a cold environment on a loaded machine
	for _, target := range []string{escalation.Jira, escalation.ServiceNow} {
		if c := e.post(body("conversationId", "warm-"+target, "trigger", "manual", "target", target)); c.res.Status != escalation.StatusCreated {
			t.Fatalf("warm-up: %s", c.raw)
		}
	}
	e.svc.Config.Budget = budget
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503, Method: "POST"})
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 503, Method: "POST"})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // callers at once: enough to overlap, few enough for a loaded DynamoDB Local
	for i := range n {
		for _, target := range []string{escalation.Jira, escalation.ServiceNow} {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				c := e.post(body("conversationId", fmt.Sprintf("00000000-0000-4000-8000-%s%07d", target[:1], i), "trigger", "wrap_up", "target", target))
				if c.res.Status != escalation.StatusQueued {
					t.Errorf("%s", c.raw)
				}
			}()
		}
	}
	wg.Wait()
}

// TestRedriveDrainsTheBacklogWhenTheTargetRecovers: while the targets fail, each run spends one
// attempt per target and holds the rest; the first run after they recover delivers the whole
// backlog, whatever the items' backoff, each exactly once.
func TestRedriveDrainsTheBacklogWhenTheTargetRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("300 escalations")
	}
	const perTarget = 150
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "4000"))
	e.outage(t, perTarget)
	if p, _ := e.svc.Outbox.Pending(t.Context(), 1000); len(p) != 2*perTarget {
		t.Fatalf("%d queued", len(p))
	}
	// The outage goes on for half an hour: runs every few minutes find the targets failing.
	for range 6 {
		e.clock.Jump(5 * time.Minute)
		jiraBefore, snBefore := len(e.jiraCreates()), len(e.snCalls("POST"))
		sum, _ := e.redrive()
		if dj, ds := len(e.jiraCreates())-jiraBefore, len(e.snCalls("POST"))-snBefore; dj > 1 || ds > 1 || sum.Delivered != 0 {
			t.Fatalf("a failing target gets one probe per run: %d Jira and %d ServiceNow creates, %+v", dj, ds, sum)
		}
		if sum.Held < 2*perTarget-2 {
			t.Fatalf("the rest is held: %+v", sum)
		}
	}
	// Faults stop. The next run after the breakers' open time delivers everything.
	e.jira.ClearFailures()
	e.sn.ClearFailures()
	e.clock.Jump(61 * time.Second)
	start := time.Now()
	sum, _ := e.redrive()
	took := time.Since(start)
	if p, _ := e.svc.Outbox.Pending(t.Context(), 1000); len(p) != 0 || sum.Delivered != 2*perTarget {
		t.Fatalf("%d still queued after the first run since the faults stopped: %+v", len(p), sum)
	}
	if n := e.jira.RequestCount() - 1; n != perTarget {
		t.Fatalf("%d Jira requests for %d escalations", n, perTarget)
	}
	if n := len(e.sn.Records("incident")) - 1; n != perTarget {
		t.Fatalf("%d incidents for %d escalations", n, perTarget)
	}
	t.Logf("faults stop -> backlog of %d empty: 1 run of %s (%+v)", 2*perTarget, took.Round(time.Millisecond), sum)
}

// BenchmarkRedriveDrain measures the run that follows the end of an outage: 300 escalations (150
// per target) were queued while Jira and ServiceNow failed; the faults stop, the breakers' open
// time passes, and one escalation-redrive run delivers the backlog. ns/op is that run, the
// "faults stop -> backlog empty" time once the run has started (add up to a minute for the
// schedule, and BREAKER_OPEN_SECONDS).
func BenchmarkRedriveDrain(b *testing.B) {
	const perTarget = 150
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, with("ESCALATION_BUDGET_MS", "4000"))
		e.outage(b, perTarget)
		e.jira.ClearFailures()
		e.sn.ClearFailures()
		e.clock.Jump(61 * time.Second)
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		sum := e.svc.Redrive(ctx)
		cancel()
		b.StopTimer()
		if sum.Delivered != 2*perTarget || e.jira.RequestCount() != perTarget+1 || len(e.sn.Records("incident")) != perTarget+1 {
			b.Fatalf("%+v, %d requests, %d incidents", sum, e.jira.RequestCount(), len(e.sn.Records("incident")))
		}
		b.StartTimer()
	}
	b.ReportMetric(2*perTarget, "escalations/op")
}
