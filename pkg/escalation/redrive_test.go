package escalation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

func TestRedriveBacksOffWhileTheTargetFailsAndDeliversWhenItAnswers(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"))
	e.genesys.AddWaitingConversation(conv, "cust-1", "q", 0)
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503})
	req := body("conversationId", conv, "participantId", "cust-1", "trigger", "vip", "idempotencyKey", "k-1")
	if c := e.post(req); c.res.Status != "queued" {
		t.Fatalf("%s", c.raw)
	}
	// Jira is still down: each run probes it with the item and reschedules it a little
	// further away.
	var waits []time.Duration
	for range 3 {
		e.clock.Jump(31 * time.Minute)
		sum, _ := e.redrive()
		if sum.Rescheduled != 1 || sum.Delivered != 0 {
			t.Fatalf("%+v", sum)
		}
		p, _ := e.svc.Outbox.Pending(t.Context(), 10)
		got, want := p[0].Due.Sub(e.clock.Now()), escalation.Backoff(p[0].Attempts)
		if got < want-2*time.Second || got > want+time.Second {
			t.Fatalf("attempt %d: next in %s; want %s", p[0].Attempts, got, want)
		}
		waits = append(waits, got)
	}
	if !(waits[0] < waits[1] && waits[1] < waits[2]) {
		t.Fatalf("backoff does not grow: %v", waits)
	}
	// Jira recovers: the first run after the breaker's open time (a minute here) delivers,
	// although the item's backoff has minutes to go.
	e.jira.ClearFailures()
	e.clock.Jump(61 * time.Second)
	sum, metrics := e.redrive()
	if sum.Delivered != 1 || e.jira.RequestCount() != 1 {
		t.Fatalf("%+v %d", sum, e.jira.RequestCount())
	}
	if !strings.Contains(metrics, `"RedriveDelivered":1`) {
		t.Fatalf("metrics %s", metrics)
	}
	if p, _ := e.svc.Outbox.Pending(t.Context(), 10); len(p) != 0 {
		t.Fatalf("delivered item still queued: %+v", p)
	}
	// the flow's retry now gets the ticket, and the participant carries it
	if c := e.post(req); c.res.Status != "created" || c.res.TicketKey != "SUPP-1" {
		t.Fatalf("%s", c.raw)
	}
	gc, _ := e.genesys.Conversation(conv)
	if gc.Participants[0].Attributes["escalationTicketKey"] != "SUPP-1" {
		t.Fatalf("link-back %v", gc.Participants[0].Attributes)
	}
	// and nothing is delivered twice
	e.clock.Jump(time.Hour)
	if sum, _ := e.redrive(); sum.Due != 0 || e.jira.RequestCount() != 1 {
		t.Fatalf("%+v", sum)
	}
}

func TestBackoffGrows(t *testing.T) {
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 30 * time.Minute, 30 * time.Minute}
	for i, w := range want {
		if got := escalation.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %s; want %s", i+1, got, w)
		}
	}
}

func TestRedriveGivesUpAfterMaxAgeAndAlarms(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"), with("ESCALATION_MAX_AGE_MINUTES", "60"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503})
	if c := e.post(body("conversationId", conv, "trigger", "vip", "description", "printer on fire")); c.res.Status != "queued" {
		t.Fatalf("%s", c.raw)
	}
	e.clock.Jump(61 * time.Minute)
	sum, metrics := e.redrive()
	if sum.Failed != 1 || !strings.Contains(metrics, `"EscalationFailed":1`) || !strings.Contains(metrics, `"Reason":"max_age"`) {
		t.Fatalf("%+v\n%s", sum, metrics)
	}
	if !strings.Contains(metrics, `"Function":"escalation-redrive"`) {
		t.Fatalf("the alarm watches EscalationFailed of escalation-redrive: %s", metrics)
	}
	failed, _ := e.svc.Outbox.Failed(t.Context(), 10)
	if len(failed) != 1 || failed[0].Reason != escalation.ReasonMaxAge || failed[0].Escalation.Description != "printer on fire" {
		t.Fatalf("the failed escalation is kept for a person: %+v", failed)
	}
	if p, _ := e.svc.Outbox.Pending(t.Context(), 10); len(p) != 0 {
		t.Fatalf("still queued: %+v", p)
	}
	// An operator retries it once Jira is back.
	e.jira.ClearFailures()
	if err := e.svc.Outbox.Retry(t.Context(), failed[0], time.Hour); err != nil {
		t.Fatal(err)
	}
	if sum, _ := e.redrive(); sum.Delivered != 1 || e.jira.RequestCount() != 1 {
		t.Fatalf("%+v", sum)
	}
}

func TestRedriveHoldsQueuedEscalationsWhileTheBreakerIsOpen(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503})
	for i := range 5 {
		e.post(body("conversationId", "c-"+string(rune('a'+i)), "trigger", "vip"))
	}
	calls := len(e.jiraCreates())
	e.clock.Jump(2 * time.Minute)
	sum, _ := e.redrive()
	if sum.Held < 4 || len(e.jiraCreates()) > calls+1 {
		t.Fatalf("an open breaker must hold the queue: %+v, %d calls", sum, len(e.jiraCreates())-calls)
	}
}

func TestDeclaredOutageHoldsTheQueue(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503, Times: 3})
	if c := e.post(body("conversationId", conv, "trigger", "vip")); c.res.Status != "queued" {
		t.Fatalf("%s", c.raw)
	}
	if err := e.svc.Outage.SetFlag(t.Context(), escalation.Flag{Target: "jira", Active: true, Master: escalation.Master{Key: "SUPP-100"}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Jump(2 * time.Minute)
	if sum, _ := e.redrive(); sum.Held != 1 || sum.Delivered != 0 {
		t.Fatalf("%+v", sum)
	}
	// The outage ends: Jira is back (the call above may not have used up every injected
	// failure within its budget on a slow machine) and the flag is cleared.
	e.jira.ClearFailures()
	if _, err := e.svc.Outage.ClearFlag(t.Context(), "jira"); err != nil {
		t.Fatal(err)
	}
	e.clock.Jump(2 * time.Minute)
	if sum, _ := e.redrive(); sum.Delivered != 1 {
		t.Fatalf("%+v", sum)
	}
}
