package escalation_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/idempotency"
)

func TestRepeatReplaysTheFirstAnswer(t *testing.T) {
	e := newEnv(t)
	req := body("conversationId", conv, "trigger", "vip", "customerName", "Jane Doe", "idempotencyKey", "flow-run-42")
	first := e.post(req)
	second := e.post(req)
	if first.res.Status != "created" || second.raw != first.raw {
		t.Fatalf("the same key and payload must return the first answer:\n%s\n%s", first.raw, second.raw)
	}
	if !strings.Contains(second.metrics, `"EscalationReplayed":1`) {
		t.Fatalf("metrics %s", second.metrics)
	}
	conflict := e.post(body("conversationId", conv, "trigger", "vip", "customerName", "John Roe", "idempotencyKey", "flow-run-42"))
	if conflict.status != 409 || conflict.rej.Status != "rejected" || conflict.rej.Error.Field != "idempotencyKey" || conflict.rej.Error.Code != "idempotency_key_reused" {
		t.Fatalf("same key, different payload: %d %s", conflict.status, conflict.raw)
	}
	// Without an idempotencyKey the conversation and trigger are the key: a repeat with other
	// details is the same escalation, answered with the first result.
	a := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 200))
	b := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 260))
	if a.res.Status != "created" || b.res.TicketKey != a.res.TicketKey || b.status != 200 {
		t.Fatalf("derived key repeat: %s / %s", a.raw, b.raw)
	}
	if n := e.jira.RequestCount(); n != 2 {
		t.Fatalf("%d requests; want one for the vip key and one for the hold_time escalation", n)
	}
}

func TestTwentyConcurrentIdenticalRequestsMakeOneTicket(t *testing.T) {
	e := newEnv(t)
	// Jira answers slowly, so all twenty arrive while the first is still being created.
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Delay: 400 * time.Millisecond, Times: 1})
	req := body("conversationId", conv, "trigger", "vip", "customerName", "Jane Doe", "idempotencyKey", "retry-storm")
	var wg sync.WaitGroup
	answers := make([]call, 20)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = e.post(req)
		}()
	}
	wg.Wait()
	if n := e.jira.RequestCount(); n != 1 {
		t.Fatalf("%d tickets from 20 identical requests; want exactly 1", n)
	}
	if n := len(e.jiraCreates()); n != 1 {
		t.Fatalf("%d create calls reached Jira", n)
	}
	for i, a := range answers {
		if a.status != 200 || a.res.Status != "created" || a.res.TicketKey != "SUPP-1" {
			t.Errorf("answer %d: %s", i, a.raw)
		}
	}
	t.Logf("20 concurrent identical requests: %d create call(s) reached Jira, %d request(s) exist, all 20 answered %s", len(e.jiraCreates()), e.jira.RequestCount(), answers[0].res.TicketKey)
}

// deadRun does what a run that crashed after creating the ticket did: it claimed the key and
// delivered, but never recorded the answer. Its Lambda deadline is `life` from now.
func deadRun(t *testing.T, e *env, req string, life time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), life)
	defer cancel()
	in := decodeInput(t, req)
	id := escalationIDOf(t, e, in)
	store := idempotency.New(e.db, idempotency.Config{Table: e.tables.Idempotency})
	if _, _, err := store.Begin(ctx, escalation.IdempotencyPrefix+"#"+id.ID, id.validation); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Targets[id.Target].Deliver(ctx, &id.Escalation, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// ... and here the process died.
}

func TestCrashBetweenCreateAndRecordMakesOneTicket(t *testing.T) {
	for _, target := range []string{"jira", "servicenow"} {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t, with("ESCALATION_DUPLICATE_WAIT_MS", "200"))
			req := body("conversationId", conv, "trigger", "vip", "target", target, "customerName", "Jane Doe")
			deadRun(t, e, req, time.Second)
			before := e.jira.RequestCount() + len(e.sn.Records("incident"))
			// The retry arrives while the dead run's deadline has not passed: it waits, then
			// says the escalation is in progress rather than creating a second ticket.
			early := e.post(req)
			if early.res.Status != escalation.StatusDuplicate {
				t.Fatalf("before the dead run's deadline: %s", early.raw)
			}
			time.Sleep(time.Second) // the dead run's deadline passes
			c := e.post(req)
			if c.res.Status != escalation.StatusCreated || !strings.Contains(c.res.Message, "earlier attempt") {
				t.Fatalf("recovery: %s", c.raw)
			}
			after := e.jira.RequestCount() + len(e.sn.Records("incident"))
			if after != before {
				t.Fatalf("%d tickets after recovery, %d before: the crash doubled the ticket", after, before)
			}
			if !strings.Contains(c.metrics, `"EscalationRecovered":1`) {
				t.Fatalf("metrics %s", c.metrics)
			}
			if again := e.post(req); again.raw != c.raw {
				t.Fatalf("the recovered answer is now the one replayed: %s", again.raw)
			}
		})
	}
}

func TestCrashRecoveryWaitsOutJiraSearchLag(t *testing.T) {
	e := newEnv(t, with("JIRA_SEARCH_LAG_SECONDS", "2"), func(_ map[string]string, j *jiratest.Config, _ *breaker.Settings) {
		j.SearchLag = 1500 * time.Millisecond // JQL does not show the new request yet
	})
	req := body("conversationId", conv, "trigger", "vip")
	deadRun(t, e, req, 500*time.Millisecond)
	time.Sleep(600 * time.Millisecond)
	c := e.post(req)
	if c.res.Status != escalation.StatusQueued || c.res.Reason != escalation.ReasonVerifying {
		t.Fatalf("search cannot see the dead run's request yet; creating now could double it: %s", c.raw)
	}
	if n := e.jira.RequestCount(); n != 1 {
		t.Fatalf("%d requests", n)
	}
	// The redrive looks again once the lag has passed, finds the request, and creates nothing.
	searches := len(e.jira.Received("/rest/api/3/search"))
	sum, _ := e.redrive()
	if sum.Delivered != 0 || sum.Held != 1 || len(e.jira.Received("/rest/api/3/search")) != searches {
		t.Fatalf("not attempted before the lag has passed: %+v", sum)
	}
	time.Sleep(2 * time.Second)
	sum, _ = e.redrive()
	if sum.Delivered != 1 || e.jira.RequestCount() != 1 {
		t.Fatalf("redrive %+v, %d requests", sum, e.jira.RequestCount())
	}
	if again := e.post(req); again.res.Status != "created" || again.res.TicketKey != "SUPP-1" {
		t.Fatalf("after the redrive the replay shows the ticket: %s", again.raw)
	}
}

func TestJiraCreateWithUnknownOutcomeIsNotRetriedBlind(t *testing.T) {
	// A budget that leaves DynamoDB Local on a busy machine time to queue the escalation after
	// the delivery gave up.
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "2000"))
	// Jira takes the request but the answer never arrives in time.
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Delay: 3 * time.Second, Times: 1})
	start := time.Now()
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if d := time.Since(start); d > 2700*time.Millisecond {
		t.Fatalf("answered after %s; the budget is 2 s", d)
	}
	if c.res.Status != escalation.StatusQueued || c.res.Reason != escalation.ReasonVerifying || c.res.Attempts != 1 {
		t.Fatalf("%s", c.raw)
	}
	if n := len(e.jiraCreates()); n != 1 {
		t.Fatalf("%d create calls; an unknown outcome must not be retried at once", n)
	}
	time.Sleep(time.Until(start.Add(3 * time.Second))) // the hung request is answered (and so created)
	sum, _ := e.redrive()
	if sum.Delivered != 1 || e.jira.RequestCount() != 1 {
		t.Fatalf("redrive %+v, %d requests", sum, e.jira.RequestCount())
	}
}

// decodedInput is what deadRun needs of a request.
type decodedInput struct {
	escalation.Escalation
	validation string
}

func decodeInput(t *testing.T, req string) escalation.Input {
	t.Helper()
	var in escalation.Input
	if err := json.Unmarshal([]byte(req), &in); err != nil {
		t.Fatal(err)
	}
	return in
}

func escalationIDOf(t *testing.T, e *env, in escalation.Input) decodedInput {
	t.Helper()
	esc, validation, err := e.svc.Prepare(in)
	if err != nil {
		t.Fatal(err)
	}
	return decodedInput{Escalation: *esc, validation: validation}
}

func TestServiceNowRetriesAServerError(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"))
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 502, Times: 1})
	c := e.post(body("conversationId", conv, "trigger", "wrap_up"))
	if c.res.Status != "created" || c.res.Attempts != 2 || len(e.sn.Records("incident")) != 1 {
		t.Fatalf("%s, %d incidents", c.raw, len(e.sn.Records("incident")))
	}
}
