package escalation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// hungStore is the client a function gets (pkg/store, bounded at 300 ms a call) for a state
// store that accepts connections and never answers: a paused DynamoDB.
func hungStore(t *testing.T) *dynamodb.Client {
	return store.NewDynamoDB(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(dynamotest.HungEndpoint(t)),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")}, store.Bounds{CallTimeout: 300 * time.Millisecond})
}

// withStore returns another execution environment of the same deployment whose state store
// client is db.
func (e *env) withStore(t *testing.T, db *dynamodb.Client) *env {
	e2 := *e
	e2.t, e2.db = t, db
	e2.build()
	return &e2
}

// With the state store hung, an escalation to a healthy target is still delivered, within the
// budget; what protects it from doubling is this environment's memory and Jira's marker search.
func TestHungStoreStillDelivers(t *testing.T) {
	e := newEnv(t)
	budget := 2500 * time.Millisecond // ESCALATION_BUDGET_MS of newEnv
	down := e.withStore(t, hungStore(t))
	req := body("conversationId", conv, "trigger", "vip", "customerName", "Jane Doe")

	began := time.Now()
	first := down.post(req)
	if took := time.Since(began); took > budget+200*time.Millisecond {
		t.Fatalf("answered after %s; the budget is %s", took, budget)
	}
	if first.res.Status != escalation.StatusCreated || first.res.TicketKey == "" {
		t.Fatalf("first: %+v", first.res)
	}
	if !strings.Contains(first.metrics, "IdempotencyUnavailable") {
		t.Errorf("delivering without duplicate protection must be counted: %s", first.metrics)
	}
	// A Genesys retry reaching the same environment: its memory answers.
	again := down.post(req)
	if again.res.TicketKey != first.res.TicketKey || !strings.Contains(again.metrics, "EscalationReplayed") {
		t.Fatalf("repeat in the same environment: %+v %s", again.res, again.metrics)
	}
	// Another environment (no memory): Jira's marker search finds the request.
	other := e.withStore(t, hungStore(t))
	third := other.post(req)
	if third.res.Status != escalation.StatusCreated || third.res.TicketKey != first.res.TicketKey {
		t.Fatalf("repeat in another environment: %+v", third.res)
	}
	if n := len(e.jiraCreates()); n != 1 {
		t.Fatalf("%d Jira requests for one escalation", n)
	}

	// ServiceNow reads the conversation's incidents before every create.
	wrap := body("conversationId", conv, "trigger", "wrap_up", "customerName", "Jane Doe")
	a := down.post(wrap)
	b := other.withStore(t, hungStore(t)).post(wrap)
	if a.res.Status != escalation.StatusCreated || b.res.TicketKey != a.res.TicketKey || len(e.snCalls(http.MethodPost)) != 1 {
		t.Fatalf("ServiceNow: %+v then %+v, %d creates", a.res, b.res, len(e.snCalls(http.MethodPost)))
	}
}

// With the state store hung and the target unable to take the escalation, nothing can be
// queued: the flow is told at once, so it takes its fallback branch.
func TestHungStoreAndFailingTargetAnswerStateUnavailable(t *testing.T) {
	e := newEnv(t)
	down := e.withStore(t, hungStore(t))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: http.StatusServiceUnavailable})
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: http.StatusServiceUnavailable})
	for _, trig := range []string{"vip", "wrap_up"} {
		began := time.Now()
		c := down.post(body("conversationId", conv, "trigger", trig))
		took := time.Since(began)
		if c.res.Status != escalation.StatusFailed || c.res.Reason != escalation.ReasonStateUnavailable || c.res.EscalationID == "" {
			t.Fatalf("%s: %+v", trig, c.res)
		}
		if took > 2500*time.Millisecond+200*time.Millisecond {
			t.Fatalf("%s answered after %s", trig, took)
		}
		if !strings.Contains(c.metrics, "EscalationFailed") || !strings.Contains(c.res.Message, "fallback") {
			t.Fatalf("%s: the failure must alarm and tell the flow: %+v %s", trig, c.res, c.metrics)
		}
	}
	// The outage of the target ends: the same escalations sent again are delivered, once.
	e.jira.ClearFailures()
	e.sn.ClearFailures()
	for _, trig := range []string{"vip", "wrap_up"} {
		if c := e.post(body("conversationId", conv, "trigger", trig)); c.res.Status != escalation.StatusCreated {
			t.Fatalf("%s after recovery: %+v", trig, c.res)
		}
	}
}

// A create whose answer is lost while the state store is hung leaves nothing behind that says
// it may have landed: the flow is answered failed / state_unavailable and calls again later. Its
// second attempt searches the target before it creates, so the request is not doubled.
func TestAttemptAfterStateUnavailableFindsTheLostCreate(t *testing.T) {
	e := newEnv(t)
	down := e.withStore(t, hungStore(t))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: http.StatusServiceUnavailable, AfterEffect: true, Times: 1})
	first := down.post(body("conversationId", conv, "trigger", "wrap_up", "target", "jira"))
	if first.res.Status != escalation.StatusFailed || first.res.Reason != escalation.ReasonStateUnavailable {
		t.Fatalf("first attempt: %+v", first.res)
	}
	if n := len(e.jiraCreates()); n != 1 {
		t.Fatalf("the lost create must have landed in the fake: %d creates", n)
	}
	// The store is back; the flow's fallback branch calls again a minute later.
	again := e.post(body("conversationId", conv, "trigger", "wrap_up", "target", "jira", "attempt", 2))
	if again.res.Status != escalation.StatusCreated || again.res.TicketKey == "" {
		t.Fatalf("second attempt: %+v", again.res)
	}
	if n := len(e.jiraCreates()); n != 1 {
		t.Fatalf("%d Jira requests for one escalation: the second attempt did not look first", n)
	}
	if len(again.res.Warnings) != 0 {
		t.Fatalf("attempt is part of the contract, not a warning: %v", again.res.Warnings)
	}
	// A junk attempt is a warning, never a rejection.
	junk := e.post(body("conversationId", conv+"-2", "trigger", "vip", "attempt", "second"))
	if junk.res.Status != escalation.StatusCreated || len(junk.res.Warnings) != 1 || !strings.Contains(junk.res.Warnings[0], "attempt") {
		t.Fatalf("junk attempt: %+v", junk.res)
	}
}

// A second attempt whose search cannot run (Jira's search answers 503) is queued; the queued
// item carries the doubt, so the redrive searches before it creates. Also when an item of the
// escalation was already waiting, queued by another call before the doubt arose.
func TestQueuedSecondAttemptIsSearchedForBeforeTheRedriveCreates(t *testing.T) {
	for _, waiting := range []string{"none", "queued by hand", "queued by an earlier call"} {
		t.Run("item waiting: "+waiting, func(t *testing.T) {
			e := newEnv(t)
			req := body("conversationId", conv, "trigger", "wrap_up", "target", "jira")
			switch waiting {
			case "queued by an earlier call": // its answer (queued) is replayed to the second attempt
				e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: http.StatusTooManyRequests})
				if c := e.post(req); c.res.Status != escalation.StatusQueued {
					t.Fatalf("earlier call: %+v", c.res)
				}
				e.jira.ClearFailures()
			case "queued by hand":
				esc, _, bad := e.svc.Prepare(mustInput(t, req))
				if bad != nil {
					t.Fatal(bad)
				}
				now := e.clock.Now()
				if err := e.svc.Outbox.Enqueue(context.Background(), escalation.Item{Escalation: *esc, Due: now.Add(time.Minute), CreatedAt: now, Reason: escalation.ReasonBreakerOpen}, time.Hour); err != nil {
					t.Fatal(err)
				}
			}
			e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: http.StatusServiceUnavailable, AfterEffect: true, Times: 1})
			if c := e.withStore(t, hungStore(t)).post(req); c.res.Reason != escalation.ReasonStateUnavailable {
				t.Fatalf("first attempt: %+v", c.res)
			}
			e.jira.Fail("/rest/api/3/search/jql", jiratest.Failure{Status: http.StatusServiceUnavailable, Times: 1})
			again := e.post(body("conversationId", conv, "trigger", "wrap_up", "target", "jira", "attempt", 2))
			e.jira.ClearFailures()
			if again.res.Status != escalation.StatusQueued {
				t.Fatalf("second attempt, search failing: %+v", again.res)
			}
			e.clock.Jump(5 * time.Minute)
			e.redrive()
			if n := len(e.jira.Requests()); n != 1 { // requests Jira holds (a 429 made none)
				t.Fatalf("%d Jira requests for one escalation: the redrive created without searching", n)
			}
			if items := e.stateItems("OUTBOX"); len(items) != 0 {
				t.Fatalf("outbox still holds %d items", len(items))
			}
		})
	}
}

// Two calls of one escalation at the same moment as the state store comes back: one is
// delivered without duplicate protection (the store did not answer it), the other claims the key
// and is queued (the breaker is open). The redrive searches before it creates, so the queued item
// finds the ticket instead of making a second one.
func TestRedriveFindsATicketAnUnprotectedCallCreated(t *testing.T) {
	e := newEnv(t)
	req := body("conversationId", conv, "trigger", "vip", "target", "jira")
	if c := e.withStore(t, hungStore(t)).post(req); c.res.Status != escalation.StatusCreated {
		t.Fatalf("unprotected call: %+v", c.res)
	}
	esc, _, bad := e.svc.Prepare(mustInput(t, req))
	if bad != nil {
		t.Fatal(bad)
	}
	now := e.clock.Now()
	if err := e.svc.Outbox.Enqueue(context.Background(), escalation.Item{Escalation: *esc, Due: now, CreatedAt: now, Reason: escalation.ReasonBreakerOpen}, time.Hour); err != nil {
		t.Fatal(err)
	}
	sum, _ := e.redrive()
	if n := len(e.jira.Requests()); n != 1 || sum.Delivered != 1 {
		t.Fatalf("redrive %+v and %d Jira requests for one escalation", sum, n)
	}
}

// The redrive does nothing, quickly, while the store is hung.
func TestRedriveSkipsItsRunWhileTheStoreIsHung(t *testing.T) {
	e := newEnv(t)
	down := e.withStore(t, hungStore(t))
	began := time.Now()
	sum, metrics := down.redrive()
	if took := time.Since(began); took > 5*time.Second || sum != (escalation.RedriveSummary{}) || !strings.Contains(metrics, "RedriveError") {
		t.Fatalf("redrive with the store hung: %+v after %s, %s", sum, took, metrics)
	}
}

// An item that landed in the outbox after its request had been told state_unavailable, while a
// later request delivered the escalation, is removed by the redrive, not delivered again.
func TestRedriveDoesNotRedeliverWhatALaterRequestDelivered(t *testing.T) {
	e := newEnv(t)
	req := body("conversationId", conv, "trigger", "vip")
	esc, _, bad := e.svc.Prepare(mustInput(t, req))
	if bad != nil {
		t.Fatal(bad)
	}
	now := e.clock.Now()
	if err := e.svc.Outbox.Enqueue(context.Background(), escalation.Item{Escalation: *esc, Due: now, CreatedAt: now}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if c := e.post(req); c.res.Status != escalation.StatusCreated {
		t.Fatalf("later request: %+v", c.res)
	}
	sum, _ := e.redrive()
	if sum.Delivered != 1 || len(e.jiraCreates()) != 1 {
		t.Fatalf("redrive %+v, %d Jira creates; want the item removed without a second request", sum, len(e.jiraCreates()))
	}
	if items := e.stateItems("OUTBOX"); len(items) != 0 {
		t.Fatalf("outbox still holds %d items", len(items))
	}
}

// A lease that expired on the item is an attempt that died without writing its outcome (the run
// crashed, or the state store stopped answering): the next lease reports when it ended, so the
// next attempt looks for the ticket before creating one.
func TestExpiredLeaseIsReportedAsOrphaned(t *testing.T) {
	e := newEnv(t)
	esc, _, bad := e.svc.Prepare(mustInput(t, body("conversationId", conv, "trigger", "vip")))
	if bad != nil {
		t.Fatal(bad)
	}
	ctx := context.Background()
	now := e.clock.Now()
	if err := e.svc.Outbox.Enqueue(ctx, escalation.Item{Escalation: *esc, Due: now, CreatedAt: now}, time.Hour); err != nil {
		t.Fatal(err)
	}
	items, err := e.svc.Outbox.Due(ctx, now, 10)
	if err != nil || len(items) != 1 || !items[0].Since.IsZero() {
		t.Fatalf("queued: %+v %v", items, err)
	}
	ok, orphaned, err := e.svc.Outbox.Lease(ctx, items[0], time.Millisecond)
	if !ok || err != nil || !orphaned.IsZero() {
		t.Fatalf("first lease: %v %v %v", ok, orphaned, err)
	}
	time.Sleep(5 * time.Millisecond)
	ok, orphaned, err = e.svc.Outbox.Lease(ctx, items[0], time.Minute)
	if !ok || err != nil || orphaned.IsZero() {
		t.Fatalf("lease after the first expired: %v %v %v; want the first lease's end", ok, orphaned, err)
	}
}

func mustInput(t *testing.T, raw string) escalation.Input {
	t.Helper()
	var in escalation.Input
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		t.Fatal(err)
	}
	return in
}
