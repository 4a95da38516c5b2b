package escalation_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

// fault is one of fakehttp.WriteFaults, in the terms of each fake's Failure.
type fault struct{ fakehttp.WriteFault }

func (f fault) jira(method string) jiratest.Failure {
	return jiratest.Failure{Status: f.Status, RetryAfter: f.RetryAfter, Delay: f.Delay, Reset: f.Reset, AfterEffect: f.After, Method: method, Times: 1}
}

func (f fault) sn(method string) servicenowtest.Failure {
	return servicenowtest.Failure{Status: f.Status, RetryAfter: f.RetryAfter, Delay: f.Delay, Reset: f.Reset, AfterEffect: f.After, Method: method, Times: 1}
}

// writeFaults: the hangs outlast the 1.5 s budget these tests give a call.
var writeFaults = func() []fault {
	var out []fault
	for _, f := range fakehttp.WriteFaults(4 * time.Second) {
		out = append(out, fault{f})
	}
	return out
}()

// settle runs the redrive as its schedule would until nothing is queued (or gives up), moving
// the clock past search lags, Retry-After and the breaker's open time between runs.
func (e *env) settle(t *testing.T) {
	t.Helper()
	for range 6 {
		if p, _ := e.svc.Outbox.Pending(t.Context(), 10); len(p) == 0 {
			return
		}
		e.clock.Jump(2 * time.Minute)
		e.redrive()
	}
	p, _ := e.svc.Outbox.Pending(t.Context(), 10)
	t.Fatalf("still queued after six runs: %+v", p)
}

// incidentsOf counts the incidents whose correlation_id names the escalation.
func (e *env) incidentsOf(id string) int {
	n := 0
	for _, r := range e.sn.Records("incident") {
		if strings.HasSuffix(r["correlation_id"], "."+id) {
			n++
		}
	}
	return n
}

// TestEveryCreateInDoubtMakesOneTicket injects each fault into the ticket create of each target
// and checks the one promise: whatever the sequence of attempts (the call's own retries, the
// redrive), exactly one ticket exists and the escalation ends created.
func TestEveryCreateInDoubtMakesOneTicket(t *testing.T) {
	for _, target := range []string{escalation.Jira, escalation.ServiceNow} {
		for _, f := range writeFaults {
			t.Run(target+"/"+f.Name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, with("ESCALATION_BUDGET_MS", "1500"))
				if target == escalation.Jira {
					e.jira.Fail("/rest/servicedeskapi/request", f.jira("POST"))
				} else {
					e.sn.Fail("/api/now/v2/table/incident", f.sn("POST"))
				}
				req := body("conversationId", conv, "trigger", "wrap_up", "target", target, "customerName", "Jane Doe")
				first := e.post(req)
				if first.res.Status != escalation.StatusCreated && first.res.Status != escalation.StatusQueued {
					t.Fatalf("first answer: %s", first.raw)
				}
				e.settle(t)
				var tickets, creates int
				if target == escalation.Jira {
					tickets, creates = e.jira.RequestCount(), len(e.jiraCreates())
				} else {
					tickets, creates = e.incidentsOf(first.res.EscalationID), len(e.snCalls("POST"))
				}
				if tickets != 1 {
					t.Fatalf("%d tickets; want exactly 1 (%d create calls, first answer %s)", tickets, creates, first.raw)
				}
				if f.After && creates != 1 {
					t.Fatalf("%d create calls: a create that took effect was repeated", creates)
				}
				final := e.post(req)
				if final.res.Status != escalation.StatusCreated || final.res.TicketKey == "" {
					t.Fatalf("the escalation must end created: %s", final.raw)
				}
				if first.res.Status == escalation.StatusCreated && final.res.TicketKey != first.res.TicketKey {
					t.Fatalf("replay %s, first %s", final.raw, first.raw)
				}
			})
		}
	}
}

// TestWorkNoteInDoubtIsAppendedOnce: a second escalation for a conversation whose incident
// exists becomes a work note on it; whatever happens to the note's answer, it is there once.
func TestWorkNoteInDoubtIsAppendedOnce(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, with("ESCALATION_BUDGET_MS", "1500"))
			first := e.post(body("conversationId", conv, "trigger", "wrap_up", "target", "servicenow"))
			if first.res.Status != escalation.StatusCreated {
				t.Fatalf("%s", first.raw)
			}
			incident := e.sn.Records("incident")[0]["sys_id"]
			e.sn.Fail("/api/now/v2/table/incident/"+incident, f.sn("PATCH"))
			req := body("conversationId", conv, "trigger", "vip", "target", "servicenow")
			second := e.post(req)
			if second.res.Status != escalation.StatusUpdated && second.res.Status != escalation.StatusQueued {
				t.Fatalf("%s", second.raw)
			}
			e.settle(t)
			notes := 0
			for _, j := range e.sn.Journal("incident", incident) {
				if j.Element == "work_notes" && strings.Contains(j.Value, second.res.EscalationID) {
					notes++
				}
			}
			if notes != 1 {
				t.Fatalf("%d work notes for the second escalation; want 1 (%d PATCH calls)", notes, len(e.snCalls("PATCH")))
			}
			if n := len(e.sn.Records("incident")); n != 1 {
				t.Fatalf("%d incidents", n)
			}
			if final := e.post(req); final.res.Status != escalation.StatusUpdated || final.res.TicketKey != first.res.TicketKey {
				t.Fatalf("%s", final.raw)
			}
		})
	}
}

// TestMasterNoteInDoubtIsWrittenOnce: the batched outage note, for both targets, under each
// fault: every linked call is listed exactly once, in one note.
func TestMasterNoteInDoubtIsWrittenOnce(t *testing.T) {
	for _, target := range []string{escalation.Jira, escalation.ServiceNow} {
		for _, f := range writeFaults {
			t.Run(target+"/"+f.Name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				var master escalation.Master
				var notes func() []string
				if target == escalation.Jira {
					m := e.post(body("conversationId", "11111111-0000-4000-8000-000000000000", "trigger", "manual"))
					master = escalation.Master{Key: m.res.TicketKey}
					e.jira.Fail("/rest/servicedeskapi/request/"+master.Key+"/comment", f.jira("POST"))
					notes = func() []string {
						var out []string
						for _, c := range e.jira.Comments(master.Key) {
							out = append(out, c.Body)
						}
						return out
					}
				} else {
					master = masterIncident(t, e)
					e.sn.Fail("/api/now/v2/table/incident/"+master.SysID, f.sn("PATCH"))
					notes = func() []string {
						var out []string
						for _, j := range e.sn.Journal("incident", master.SysID) {
							out = append(out, j.Value)
						}
						return out
					}
				}
				if err := e.svc.Outage.SetFlag(t.Context(), escalation.Flag{Target: target, Active: true, Master: master}); err != nil {
					t.Fatal(err)
				}
				var convs []string
				for i := range 5 {
					convs = append(convs, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
					if c := e.post(body("conversationId", convs[i], "trigger", "wrap_up", "target", target)); c.res.Status != escalation.StatusLinked {
						t.Fatalf("%s", c.raw)
					}
				}
				for minute := 0; minute < 5; minute++ {
					e.redrive()
					e.clock.Jump(time.Minute)
				}
				got := notes()
				if len(got) != 1 {
					t.Fatalf("%d notes on the master; want 1: %q", len(got), got)
				}
				for _, c := range convs {
					if n := strings.Count(got[0], c); n != 1 {
						t.Fatalf("conversation %s listed %d times", c, n)
					}
				}
				if n, _ := e.svc.Outage.PendingLinks(t.Context(), escalation.MasterRef{Target: target, Master: master}); n != 0 {
					t.Fatalf("%d links still pending", n)
				}
			})
		}
	}
}

// TestRedriveTakesOverADeadAttempt: a redrive run leased a queued escalation, created its
// ticket and died before recording anything. The next run finds the expired lease, treats the
// attempt as one that may have created the ticket, and finds it.
func TestRedriveTakesOverADeadAttempt(t *testing.T) {
	for _, target := range []string{escalation.Jira, escalation.ServiceNow} {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t, with("ESCALATION_BUDGET_MS", "800"))
			// Queued the way create-escalation queues: the target refused the call (429).
			e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 429, RetryAfter: 5, Method: "POST", Times: 1})
			e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 429, RetryAfter: 5, Method: "POST", Times: 1})
			req := body("conversationId", conv, "trigger", "vip", "target", target)
			if c := e.post(req); c.res.Status != escalation.StatusQueued {
				t.Fatalf("%s", c.raw)
			}
			e.clock.Jump(10 * time.Second)
			pending, _ := e.svc.Outbox.Pending(t.Context(), 1)
			if ok, _, err := e.svc.Outbox.Lease(t.Context(), pending[0], time.Minute); !ok || err != nil {
				t.Fatalf("lease %v %v", ok, err)
			}
			if !pending[0].Since.IsZero() {
				t.Fatalf("a refused call leaves no doubt: %+v", pending[0])
			}
			if _, err := e.svc.Targets[target].Deliver(t.Context(), &pending[0].Escalation, time.Time{}); err != nil {
				t.Fatal(err)
			}
			// ... and here the run died.
			e.clock.Jump(2 * time.Minute)
			sum, _ := e.redrive()
			tickets := e.jira.RequestCount() + len(e.sn.Records("incident"))
			if sum.Delivered != 1 || tickets != 1 {
				t.Fatalf("%+v, %d tickets", sum, tickets)
			}
			if c := e.post(req); c.res.Status != escalation.StatusCreated || !strings.Contains(c.res.Message, "earlier attempt") {
				t.Fatalf("%s", c.raw)
			}
		})
	}
}

// TestOverlappingRedriveRunsDeliverEachOnce: two environments run the redrive at the same time
// over the same backlog, on both targets.
func TestOverlappingRedriveRunsDeliverEachOnce(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "800"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503, Method: "POST"})
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 503, Method: "POST"})
	const each = 15
	for i := range each {
		for _, target := range []string{"jira", "servicenow"} {
			if c := e.post(body("conversationId", fmt.Sprintf("%s-%02d", target, i), "trigger", "vip", "target", target)); c.res.Status != escalation.StatusQueued {
				t.Fatalf("%s", c.raw)
			}
		}
	}
	e.jira.ClearFailures()
	e.sn.ClearFailures()
	e.clock.Jump(2 * time.Minute)
	other := e.rewire(t, nil)
	var wg sync.WaitGroup
	sums := make([]escalation.RedriveSummary, 2)
	for i, env := range []*env{e, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sums[i] = env.svc.Redrive(ctx)
		}()
	}
	wg.Wait()
	if p, _ := e.svc.Outbox.Pending(t.Context(), 100); len(p) != 0 {
		e.clock.Jump(2 * time.Minute) // a breaker one environment opened, or a lease, may hold a few
		e.settle(t)
	}
	if n := e.jira.RequestCount(); n != each {
		t.Fatalf("%d Jira requests for %d escalations", n, each)
	}
	if n := len(e.sn.Records("incident")); n != each {
		t.Fatalf("%d incidents for %d escalations", n, each)
	}
	t.Logf("two overlapping runs: %+v and %+v", sums[0], sums[1])
}

// TestALaterRefusalKeepsTheDoubt: the create's answer was lost, then the verification itself is
// refused (429). The doubt must survive the reschedule: the next run still searches first.
func TestALaterRefusalKeepsTheDoubt(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "1500"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 502, AfterEffect: true, Method: "POST", Times: 1})
	req := body("conversationId", conv, "trigger", "vip")
	if c := e.post(req); c.res.Reason != escalation.ReasonVerifying {
		t.Fatalf("%s", c.raw)
	}
	e.jira.Fail("/rest/api/3/search/jql", jiratest.Failure{Status: 429, RetryAfter: 1, Times: 1})
	e.clock.Jump(2 * time.Second)
	if sum, _ := e.redrive(); sum.Rescheduled != 1 {
		t.Fatalf("%+v", sum)
	}
	p, _ := e.svc.Outbox.Pending(t.Context(), 1)
	if len(p) != 1 || p[0].Since.IsZero() || p[0].Reason != escalation.ReasonRateLimited {
		t.Fatalf("after the 429: %+v", p)
	}
	e.clock.Jump(2 * time.Minute)
	if sum, _ := e.redrive(); sum.Delivered != 1 || e.jira.RequestCount() != 1 || len(e.jiraCreates()) != 1 {
		t.Fatalf("%+v, %d requests, %d creates", sum, e.jira.RequestCount(), len(e.jiraCreates()))
	}
}
