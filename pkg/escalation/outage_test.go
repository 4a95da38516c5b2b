package escalation_test

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

const outageMessage = "We are aware of the current e-mail outage. I have noted your call against the master incident."

func masterIncident(t *testing.T, e *env) escalation.Master {
	t.Helper()
	id := e.sn.AddIncident(servicenowtest.Incident{ShortDescription: "E-mail is down", Impact: "1", Urgency: "1"})
	rec, _ := e.sn.Record("incident", id)
	return escalation.Master{Key: rec["number"], SysID: id}
}

var conversationInNote = regexp.MustCompile(`conversation ([0-9a-f-]{36})`)

func TestOutageOfAThousandCalls(t *testing.T) {
	// 32 calls at once against one DynamoDB Local: the budget is not what this measures, so the
	// largest, lest a busy machine's slow store turn a linked call into a failed one.
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "12000"))
	master := masterIncident(t, e)
	if err := e.svc.Outage.SetFlag(t.Context(), escalation.Flag{Target: escalation.ServiceNow, Active: true, Master: master, Message: outageMessage, SetBy: "oncall"}); err != nil {
		t.Fatal(err)
	}
	const calls = 1000
	answers := make([]call, calls)
	ids := make([]string, calls)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range calls {
		ids[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			answers[i] = e.post(body("conversationId", ids[i], "trigger", "wrap_up", "queueName", "Service Desk"))
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d calls answered in %s (%.1f ms per call at 32 in parallel)", calls, elapsed.Round(time.Millisecond), float64(elapsed.Milliseconds())/calls*32)
	for i, a := range answers {
		if a.status != 200 || a.res.Status != escalation.StatusLinked || a.res.TicketKey != master.Key || !a.res.CatastropheMode || a.res.Message != outageMessage {
			t.Fatalf("call %d: %s", i, a.raw)
		}
	}
	if n := len(e.sn.Received("/api/now")); n != 0 {
		t.Fatalf("ServiceNow got %d calls while callers waited; want none", n)
	}

	// The redrive writes the links as notes: at most one per master per minute, however often
	// it runs, listing every call exactly once.
	listed := map[string]int{}
	for minute := 0; minute < 10; minute++ {
		for run := 0; run < 3; run++ {
			e.redrive()
		}
		notes := e.sn.Journal("incident", master.SysID)
		if len(notes) > minute+1 {
			t.Fatalf("minute %d: %d notes on the master; at most one per minute", minute, len(notes))
		}
		e.clock.Jump(time.Minute)
	}
	notes := e.sn.Journal("incident", master.SysID)
	for _, n := range notes {
		for _, m := range conversationInNote.FindAllStringSubmatch(n.Value, -1) {
			listed[m[1]]++
		}
	}
	for _, id := range ids {
		if listed[id] != 1 {
			t.Fatalf("conversation %s listed %d times", id, listed[id])
		}
	}
	if patches := len(e.snCalls("PATCH")); patches != len(notes) || len(notes) != calls/200 {
		t.Fatalf("%d PATCH calls for %d notes; want %d notes of 200 calls", patches, len(notes), calls/200)
	}
	t.Logf("%d calls -> %d notes on %s, %d ServiceNow calls in total", calls, len(notes), master.Key, len(e.sn.Received("/api/now")))
}

func TestOutageModeForJiraNotesInternally(t *testing.T) {
	e := newEnv(t)
	master := e.post(body("conversationId", "11111111-0000-4000-8000-000000000000", "trigger", "manual", "description", "VPN down"))
	flag := escalation.Flag{Target: escalation.Jira, Active: true, Master: escalation.Master{Key: master.res.TicketKey}}
	if err := e.svc.Outage.SetFlag(t.Context(), flag); err != nil {
		t.Fatal(err)
	}
	e.genesys.AddWaitingConversation(conv, "cust-1", "q", 0)
	c := e.post(body("conversationId", conv, "participantId", "cust-1", "trigger", "vip"))
	if c.res.Status != "linked" || c.res.TicketKey != master.res.TicketKey || !strings.HasSuffix(c.res.TicketURL, "/browse/"+master.res.TicketKey) ||
		!strings.Contains(c.res.Message, "outage") {
		t.Fatalf("%s", c.raw)
	}
	gc, _ := e.genesys.Conversation(conv)
	if gc.Participants[0].Attributes["escalationTicketKey"] != master.res.TicketKey || gc.Participants[0].Attributes["escalationStatus"] != "linked" {
		t.Fatalf("link-back %v", gc.Participants[0].Attributes)
	}
	sum, _ := e.redrive()
	if sum.Notes != 1 || sum.Linked != 1 {
		t.Fatalf("%+v", sum)
	}
	comments := e.jira.Comments(master.res.TicketKey)
	if len(comments) != 1 || comments[0].Public || !strings.Contains(comments[0].Body, conv) {
		t.Fatalf("the master gets one internal comment listing the call: %+v", comments)
	}
	// outage off: calls are delivered again
	if _, err := e.svc.Outage.ClearFlag(t.Context(), escalation.Jira); err != nil {
		t.Fatal(err)
	}
	if c := e.post(body("conversationId", "22222222-0000-4000-8000-000000000000", "trigger", "vip")); c.res.Status != "created" {
		t.Fatalf("%s", c.raw)
	}
}

func TestOpenBreakerQueuesOrLinksToAStandbyMaster(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503})
	for i := range 3 { // threshold 3: three failed calls open the breaker
		if c := e.post(body("conversationId", fmt.Sprintf("c-%d", i), "trigger", "vip")); c.res.Status != "queued" {
			t.Fatalf("%s", c.raw)
		}
	}
	before := len(e.jiraCreates())
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if c.res.Status != escalation.StatusQueued || c.res.Reason != escalation.ReasonBreakerOpen || c.res.Attempts != 0 {
		t.Fatalf("breaker open, no master: %s", c.raw)
	}
	if n := len(e.jiraCreates()); n != before {
		t.Fatalf("an open breaker still called Jira")
	}
	// A standby master is used while the breaker is open.
	standby := escalation.Flag{Target: escalation.Jira, Active: false, Master: escalation.Master{Key: "SUPP-999"}, Message: "Jira is down; noted against SUPP-999."}
	if err := e.svc.Outage.SetFlag(t.Context(), standby); err != nil {
		t.Fatal(err)
	}
	c = e.post(body("conversationId", "33333333-0000-4000-8000-000000000000", "trigger", "vip"))
	if c.res.Status != "linked" || c.res.TicketKey != "SUPP-999" || !c.res.CatastropheMode || c.res.Message != standby.Message {
		t.Fatalf("breaker open, standby master: %s", c.raw)
	}
}
