package escalation_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/dataaction"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

// Conversations of one caller's later calls.
const (
	conv2 = "9f1c2d3e-0000-4000-8000-0000000000a2"
	conv3 = "9f1c2d3e-0000-4000-8000-0000000000a3"
)

// repeatEnv is a deployment where wrap-up and hold-time escalations join the caller's open
// ticket of the last 4 hours.
func repeatEnv(t *testing.T, settings ...setting) *env {
	t.Helper()
	return newEnv(t, append([]setting{with("REPEAT_CALLER_TRIGGERS", "wrap_up,hold_time"), with("REPEAT_CALLER_HOURS", "4")}, settings...)...)
}

// snNotesOf returns the work notes of an incident that name an escalation id.
func (e *env) snNotesOf(sysID, escalationID string) int {
	n := 0
	for _, j := range e.sn.Journal("incident", sysID) {
		if j.Element == "work_notes" && strings.Contains(j.Value, escalationID) {
			n++
		}
	}
	return n
}

// jiraCommentsOf returns the comments of a request that name an escalation id.
func (e *env) jiraCommentsOf(key, escalationID string) []jiratest.Comment {
	var out []jiratest.Comment
	for _, c := range e.jira.Comments(key) {
		if strings.Contains(c.Body, escalationID) {
			out = append(out, c)
		}
	}
	return out
}

func TestRepeatCallerJoinsTheirOpenIncident(t *testing.T) {
	e := repeatEnv(t)
	caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane", LastName: "Doe", Phone: "+14155550100"})
	first := e.post(body("conversationId", conv, "trigger", "wrap_up", "callerSysId", caller, "customerName", "Jane Doe", "wrapUpCode", "VPN"))
	if first.res.Status != escalation.StatusCreated {
		t.Fatalf("%s", first.raw)
	}
	incident := e.sn.Records("incident")[0]

	// The same caller calls again: another conversation, an hour later.
	e.clock.Jump(time.Hour)
	e.genesys.AddWaitingConversation(conv2, "cust-2", "q-1", 0)
	reads := len(e.snCalls(http.MethodGet))
	second := e.post(body("conversationId", conv2, "participantId", "cust-2", "trigger", "wrap_up", "callerSysId", caller,
		"customerName", "Jane Doe", "wrapUpCode", "VPN again", "transcriptSummary", "Still cannot connect."))
	if second.res.Status != escalation.StatusUpdated || second.res.TicketKey != first.res.TicketKey || second.res.TicketURL != first.res.TicketURL {
		t.Fatalf("a repeat caller joins their open incident: %s", second.raw)
	}
	if !strings.Contains(second.res.Message, "the caller's open ticket") || !strings.Contains(second.metrics, `"RepeatCallerJoined":1`) {
		t.Fatalf("message %q, metrics %s", second.res.Message, second.metrics)
	}
	if n := len(e.sn.Records("incident")); n != 1 {
		t.Fatalf("%d incidents; want the caller's one", n)
	}
	notes := e.sn.Journal("incident", incident["sys_id"])
	if len(notes) != 1 || notes[0].Element != "work_notes" || !strings.Contains(notes[0].Value, "Another call from this caller") ||
		!strings.Contains(notes[0].Value, "escalation id "+second.res.EscalationID) || !strings.Contains(notes[0].Value, conv2) ||
		!strings.Contains(notes[0].Value, "Still cannot connect.") {
		t.Fatalf("work notes %+v", notes)
	}
	// One read on the path (the conversation's incidents and the caller's, in one query), then
	// the note.
	gets := e.snCalls(http.MethodGet)[reads:]
	want := "correlation_idSTARTSWITHcxb." + conv2 + ".^NQcaller_id=" + caller + "^active=true^state!=6^state!=7^state!=8^correlation_idSTARTSWITHcxb.^ORDERBYDESCsys_created_on"
	if len(gets) != 1 || gets[0].Query.Get("sysparm_query") != want {
		t.Fatalf("reads %d, query %q", len(gets), gets[0].Query.Get("sysparm_query"))
	}
	// Written back to the participant as any answer.
	gc, _ := e.genesys.Conversation(conv2)
	if a := gc.Participants[0].Attributes; a["escalationTicketKey"] != first.res.TicketKey || a["escalationStatus"] != "updated" {
		t.Fatalf("link-back %v", a)
	}
	// The shipped data action hands the flow status updated and the key.
	a, err := dataaction.Load("../../integrations/genesys/create-escalation.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Output([]byte(second.raw))
	if err != nil {
		t.Fatal(err)
	}
	if errs := a.Contract.Output.SuccessSchema.Validate(out); len(errs) > 0 {
		t.Fatalf("output contract: %v", errs)
	}
	if m := out.(map[string]any); m["status"] != "updated" || m["ticketKey"] != first.res.TicketKey {
		t.Fatalf("data action output %v", m)
	}
	// A repeat of the same escalation replays its answer; nothing is noted twice.
	again := e.post(body("conversationId", conv2, "participantId", "cust-2", "trigger", "wrap_up", "callerSysId", caller))
	if again.res.Status != escalation.StatusUpdated || again.res.TicketKey != first.res.TicketKey || len(e.sn.Journal("incident", incident["sys_id"])) != 1 {
		t.Fatalf("replay %s", again.raw)
	}
	// A hold-time escalation of a third call joins as well.
	third := e.post(body("conversationId", conv3, "trigger", "hold_time", "holdSeconds", 600, "target", "servicenow", "callerSysId", caller))
	if third.res.Status != escalation.StatusUpdated || third.res.TicketKey != first.res.TicketKey {
		t.Fatalf("%s", third.raw)
	}
	if n := len(e.sn.Journal("incident", incident["sys_id"])); n != 2 {
		t.Fatalf("%d notes", n)
	}
}

// TestRepeatCallerNeverJoinsAnotherCallersTicket: only the same caller (callerSysId) joins; no
// caller identity means no join.
func TestRepeatCallerNeverJoinsAnotherCallersTicket(t *testing.T) {
	e := repeatEnv(t)
	jane := e.sn.AddUser(servicenowtest.User{FirstName: "Jane", LastName: "Doe"})
	john := e.sn.AddUser(servicenowtest.User{FirstName: "John", LastName: "Roe"})
	first := e.post(body("conversationId", conv, "trigger", "wrap_up", "callerSysId", jane))
	for _, c := range []struct {
		name string
		req  string
	}{
		{"another caller", body("conversationId", conv2, "trigger", "wrap_up", "callerSysId", john)},
		{"no caller", body("conversationId", conv3, "trigger", "wrap_up")},
		{"a caller that is not a sys_id", body("conversationId", "9f1c2d3e-0000-4000-8000-0000000000a4", "trigger", "wrap_up", "callerSysId", jane[:31]+"^")},
	} {
		res := e.post(c.req)
		if res.res.Status != escalation.StatusCreated || res.res.TicketKey == first.res.TicketKey {
			t.Errorf("%s: %s", c.name, res.raw)
		}
	}
	if n := len(e.sn.Journal("incident", e.sn.Records("incident")[0]["sys_id"])); n != 0 {
		t.Fatalf("%d notes on Jane's incident", n)
	}
	// John's newer open incident is not Jane's: her next call joins her own.
	e.sn.AddIncident(servicenowtest.Incident{CallerID: john, ShortDescription: "John's", CreatedOn: time.Now().Add(5 * time.Second), CorrelationID: "cxb.x-1.000000000000000000000001"})
	if res := e.post(body("conversationId", "9f1c2d3e-0000-4000-8000-0000000000a5", "trigger", "wrap_up", "callerSysId", jane)); res.res.Status != escalation.StatusUpdated || res.res.TicketKey != first.res.TicketKey {
		t.Fatalf("Jane joins her own: %s", res.raw)
	}
}

// TestRepeatCallerOnlyJoinsOpenRecentCxbridgeIncidents: a resolved, closed, canceled or old
// incident, or one cxbridge did not raise, is not joined: the call gets its own.
func TestRepeatCallerOnlyJoinsOpenRecentCxbridgeIncidents(t *testing.T) {
	cases := []struct {
		name string
		seed func(e *env, caller string)
	}{
		{"resolved", func(e *env, caller string) {
			e.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: "x", State: "6", CorrelationID: "cxb.a-1.000000000000000000000001"})
		}},
		{"closed", func(e *env, caller string) {
			e.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: "x", State: "7", CorrelationID: "cxb.a-1.000000000000000000000001"})
		}},
		{"canceled", func(e *env, caller string) {
			e.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: "x", State: "8", CorrelationID: "cxb.a-1.000000000000000000000001"})
		}},
		{"older than REPEAT_CALLER_HOURS", func(e *env, caller string) {
			e.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: "x", CreatedOn: time.Now().Add(-5 * time.Hour), CorrelationID: "cxb.a-1.000000000000000000000001"})
		}},
		{"aged by the clock", func(e *env, caller string) {
			if c := e.post(body("conversationId", conv, "trigger", "wrap_up", "callerSysId", caller)); c.res.Status != escalation.StatusCreated {
				e.t.Fatalf("%s", c.raw)
			}
			e.clock.Jump(4*time.Hour + time.Minute)
		}},
		{"not raised by cxbridge", func(e *env, caller string) {
			e.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: "raised in the portal"})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := repeatEnv(t)
			caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane", LastName: "Doe"})
			c.seed(e, caller)
			before := len(e.sn.Records("incident"))
			res := e.post(body("conversationId", conv2, "trigger", "wrap_up", "callerSysId", caller))
			if res.res.Status != escalation.StatusCreated || len(e.sn.Records("incident")) != before+1 || len(e.snCalls(http.MethodPatch)) != 0 {
				t.Fatalf("%s (%d incidents before)", res.raw, before)
			}
		})
	}
	// In progress and on hold are open.
	for _, state := range []string{"2", "3"} {
		e := repeatEnv(t)
		caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane"})
		e.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: "x", State: state, CorrelationID: "cxb.a-1.000000000000000000000001"})
		if res := e.post(body("conversationId", conv2, "trigger", "wrap_up", "callerSysId", caller)); res.res.Status != escalation.StatusUpdated {
			t.Fatalf("state %s: %s", state, res.raw)
		}
	}
}

// TestRepeatCallerIsConfiguredPerTrigger: only the triggers in REPEAT_CALLER_TRIGGERS join;
// by default none does, and the read is the conversation's alone.
func TestRepeatCallerIsConfiguredPerTrigger(t *testing.T) {
	e := repeatEnv(t, with("ESCALATION_TARGETS", "vip=servicenow"))
	caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane"})
	first := e.post(body("conversationId", conv, "trigger", "wrap_up", "callerSysId", caller))
	vip := e.post(body("conversationId", conv2, "trigger", "vip", "callerSysId", caller))
	if vip.res.Status != escalation.StatusCreated || vip.res.TicketKey == first.res.TicketKey {
		t.Fatalf("vip is not a repeat-caller trigger here: %s", vip.raw)
	}

	off := newEnv(t)
	caller = off.sn.AddUser(servicenowtest.User{FirstName: "Jane"})
	first = off.post(body("conversationId", conv, "trigger", "wrap_up", "callerSysId", caller))
	second := off.post(body("conversationId", conv2, "trigger", "wrap_up", "callerSysId", caller))
	if second.res.Status != escalation.StatusCreated || second.res.TicketKey == first.res.TicketKey {
		t.Fatalf("off by default: %s", second.raw)
	}
	if q := off.snCalls(http.MethodGet)[1].Query.Get("sysparm_query"); strings.Contains(q, "^NQ") {
		t.Fatalf("query %q reads more than the conversation's incidents", q)
	}

	for _, c := range []struct {
		triggers, hours string
		want            []escalation.Trigger
		problem         string
	}{
		{"", "", nil, ""},
		{"none", "", nil, ""},
		{"all", "48", escalation.Triggers, ""},
		{" Wrap_Up , vip ", "1", []escalation.Trigger{escalation.WrapUp, escalation.VIP}, ""},
		{"wrap_up,callback", "", nil, "REPEAT_CALLER_TRIGGERS"},
		{"wrap_up", "0", nil, "REPEAT_CALLER_HOURS"},
		{"wrap_up", "337", nil, "REPEAT_CALLER_HOURS"},
	} {
		r := config.FromMap(map[string]string{"STATE_TABLE": "s", "IDEMPOTENCY_TABLE": "i", "REPEAT_CALLER_TRIGGERS": c.triggers, "REPEAT_CALLER_HOURS": c.hours})
		cfg := escalation.LoadConfig(r)
		if c.problem != "" {
			if err := r.Err(); err == nil || !strings.Contains(err.Error(), c.problem) {
				t.Errorf("%q/%q: %v; want a problem with %s", c.triggers, c.hours, err, c.problem)
			}
			continue
		}
		if err := r.Err(); err != nil {
			t.Fatalf("%q: %v", c.triggers, err)
		}
		for _, trig := range escalation.Triggers {
			want := false
			for _, w := range c.want {
				want = want || w == trig
			}
			if cfg.Repeat.Applies(trig) != want {
				t.Errorf("%q: %s applies %v", c.triggers, trig, !want)
			}
		}
	}
}

// TestRepeatCallerNoteInDoubtIsAddedOnce: whatever happens to the work note's answer, the call
// is on the caller's incident once, and the escalation ends updated with its key.
func TestRepeatCallerNoteInDoubtIsAddedOnce(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			e := repeatEnv(t, with("ESCALATION_BUDGET_MS", "1500"))
			caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane"})
			first := e.post(body("conversationId", conv, "trigger", "wrap_up", "callerSysId", caller))
			incident := e.sn.Records("incident")[0]["sys_id"]
			e.sn.Fail("/api/now/v2/table/incident/"+incident, f.sn("PATCH"))
			req := body("conversationId", conv2, "trigger", "wrap_up", "callerSysId", caller)
			second := e.post(req)
			if second.res.Status != escalation.StatusUpdated && second.res.Status != escalation.StatusQueued {
				t.Fatalf("%s", second.raw)
			}
			e.settle(t)
			if n := e.snNotesOf(incident, second.res.EscalationID); n != 1 {
				t.Fatalf("%d work notes for the repeat call; want 1 (%d PATCH calls)", n, len(e.snCalls(http.MethodPatch)))
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

// TestRepeatCallerNoteInDoubtIsFoundOnWhicheverIncident: a note in doubt went to the caller's
// newest incident; by the time it is verified another incident of the caller is newer. The note
// is looked for on both, found, and not added to the newer one.
func TestRepeatCallerNoteInDoubtIsFoundOnWhicheverIncident(t *testing.T) {
	e := repeatEnv(t, with("ESCALATION_BUDGET_MS", "1500"))
	caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane"})
	e.post(body("conversationId", conv, "trigger", "wrap_up", "callerSysId", caller))
	older := e.sn.Records("incident")[0]["sys_id"]
	e.sn.Fail("/api/now/v2/table/incident/"+older, servicenowtest.Failure{Delay: 4 * time.Second, AfterEffect: true, Method: http.MethodPatch, Times: 1})
	req := body("conversationId", conv2, "trigger", "wrap_up", "callerSysId", caller)
	second := e.post(req)
	if second.res.Status != escalation.StatusQueued {
		t.Fatalf("a note whose answer did not come in time is queued to be verified: %s", second.raw)
	}
	newer := e.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: "newer", CreatedOn: time.Now().Add(5 * time.Second),
		CorrelationID: "cxb.b-2.000000000000000000000002"})
	e.settle(t)
	if e.snNotesOf(older, second.res.EscalationID) != 1 || e.snNotesOf(newer, second.res.EscalationID) != 0 {
		t.Fatalf("notes: older %d, newer %d", e.snNotesOf(older, second.res.EscalationID), e.snNotesOf(newer, second.res.EscalationID))
	}
	final := e.post(req)
	if final.res.Status != escalation.StatusUpdated || final.res.TicketKey != e.sn.Records("incident")[0]["number"] {
		t.Fatalf("%s", final.raw)
	}
}

func TestRepeatCallerJoinsTheirOpenJiraRequest(t *testing.T) {
	e := repeatEnv(t)
	first := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com", "customerName", "Jane Doe"))
	if first.res.Status != escalation.StatusCreated {
		t.Fatalf("%s", first.raw)
	}
	e.genesys.AddWaitingConversation(conv2, "cust-2", "q-1", 0)
	e.jira.ResetReceived()
	second := e.post(body("conversationId", conv2, "participantId", "cust-2", "trigger", "wrap_up", "target", "jira",
		"customerEmail", "jane@example.com", "agentName", "Alex Agent", "transcriptSummary", "Asked for a refund."))
	// The customer found by e-mail, the search for their open requests, the comment.
	var calls []string
	for _, r := range e.jira.Received("/") {
		calls = append(calls, r.Method+" "+r.Path)
	}
	if want := "GET /rest/servicedeskapi/servicedesk/1/customer,POST /rest/api/3/search/jql,POST /rest/servicedeskapi/request/SUPP-1/comment"; strings.Join(calls, ",") != want {
		t.Errorf("Jira calls %v; want %s", calls, want)
	}
	if second.res.Status != escalation.StatusUpdated || second.res.TicketKey != first.res.TicketKey || second.res.TicketURL != first.res.TicketURL {
		t.Fatalf("a repeat caller joins their open request: %s", second.raw)
	}
	if e.jira.RequestCount() != 1 || !strings.Contains(second.metrics, `"RepeatCallerJoined":1`) {
		t.Fatalf("%d requests; metrics %s", e.jira.RequestCount(), second.metrics)
	}
	cs := e.jiraCommentsOf(first.res.TicketKey, second.res.EscalationID)
	if len(cs) != 1 || cs[0].Public || !strings.Contains(cs[0].Body, "Another call from this caller") || !strings.Contains(cs[0].Body, "Asked for a refund.") ||
		cs[0].Author != jiratest.APIUserAccountID {
		t.Fatalf("the call is an internal comment on the request: %+v", e.jira.Comments(first.res.TicketKey))
	}
	gc, _ := e.genesys.Conversation(conv2)
	if a := gc.Participants[0].Attributes; a["escalationTicketKey"] != first.res.TicketKey || a["escalationStatus"] != "updated" {
		t.Fatalf("link-back %v", a)
	}
	// The search asked for this customer's open cxbridge requests of the project, recent ones.
	var search struct {
		JQL string `json:"jql"`
	}
	for _, r := range e.jira.Received("/rest/api/3/search/jql") {
		_ = json.Unmarshal(r.Body, &search)
	}
	jql := search.JQL
	cust, _ := e.jira.CustomerByEmail("jane@example.com")
	for _, part := range []string{`project = "SUPP"`, `reporter = "` + cust.AccountID + `"`, `labels = "cxbridge"`, `statusCategory != Done`, `created >= -4h`} {
		if !strings.Contains(jql, part) {
			t.Errorf("search %s lacks %s", jql, part)
		}
	}
	// By account id, the same customer joins too.
	third := e.post(body("conversationId", conv3, "trigger", "wrap_up", "target", "jira", "customerAccountId", cust.AccountID))
	if third.res.Status != escalation.StatusUpdated || third.res.TicketKey != first.res.TicketKey {
		t.Fatalf("%s", third.raw)
	}
}

// TestRepeatCallerJiraOnlyJoinsTheSameCustomersOpenRecentRequest: another customer, no
// customer, another project, a done or old request, or one cxbridge did not raise: a new
// request.
func TestRepeatCallerJiraOnlyJoinsTheSameCustomersOpenRecentRequest(t *testing.T) {
	cases := []struct {
		name    string
		seed    func(e *env, first escalation.Result)
		request string
	}{
		{"another customer", nil, body("conversationId", conv2, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "john@example.com")},
		{"no customer", nil, body("conversationId", conv2, "trigger", "hold_time", "holdSeconds", 300)},
		{"an e-mail that is not one", nil, body("conversationId", conv2, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane at example.com")},
		{"another project", nil, body("conversationId", conv2, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com", "product", "core")},
		{"done", func(e *env, first escalation.Result) {
			if _, err := e.jira.Transition(first.TicketKey, "Resolve"); err != nil {
				e.t.Fatal(err)
			}
		}, body("conversationId", conv2, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com")},
		{"older than REPEAT_CALLER_HOURS", func(e *env, first escalation.Result) { e.jira.Backdate(first.TicketKey, 4*time.Hour+time.Minute) },
			body("conversationId", conv2, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com")},
		{"a trigger that does not join", nil, body("conversationId", conv2, "trigger", "vip", "customerEmail", "jane@example.com")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := repeatEnv(t)
			first := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com"))
			if c.seed != nil {
				c.seed(e, first.res)
			}
			res := e.post(c.request)
			if res.res.Status != escalation.StatusCreated || res.res.TicketKey == first.res.TicketKey || e.jira.RequestCount() != 2 {
				t.Fatalf("%s", res.raw)
			}
			if n := len(e.jiraCommentsOf(first.res.TicketKey, res.res.EscalationID)); n != 0 {
				t.Fatalf("%d comments on the first request", n)
			}
		})
	}
	t.Run("raised by someone else", func(t *testing.T) {
		e := repeatEnv(t)
		// The customer's open request, raised in the portal: no cxbridge label.
		id := e.jira.AddCustomer("jane@example.com", "Jane", "1")
		portal := e.rawJiraRequest(map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "raiseOnBehalfOf": id,
			"requestFieldValues": map[string]any{"summary": "Raised in the portal", "labels": []string{"portal"}}})
		res := e.post(body("conversationId", conv2, "trigger", "wrap_up", "target", "jira", "customerAccountId", id))
		if res.res.Status != escalation.StatusCreated || res.res.TicketKey == portal || e.jira.RequestCount() != 2 {
			t.Fatalf("%s", res.raw)
		}
	})
}

// rawJiraRequest raises a request as a person or another tool would (not through cxbridge) and
// returns its key.
func (e *env) rawJiraRequest(req map[string]any) string {
	e.t.Helper()
	b, _ := json.Marshal(req)
	r, _ := http.NewRequest(http.MethodPost, e.jira.URL()+"/rest/servicedeskapi/request", bytes.NewReader(b))
	r.SetBasicAuth(jiraEmail, jiraToken)
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		IssueKey string `json:"issueKey"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	return out.IssueKey
}

// TestRepeatCallerCommentInDoubtIsAddedOnce: whatever happens to the internal comment's answer,
// the call is on the customer's request once, and no second request is raised.
func TestRepeatCallerCommentInDoubtIsAddedOnce(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			e := repeatEnv(t, with("ESCALATION_BUDGET_MS", "1500"))
			first := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com"))
			if first.res.Status != escalation.StatusCreated {
				t.Fatalf("%s", first.raw)
			}
			e.jira.Fail("/rest/servicedeskapi/request/"+first.res.TicketKey+"/comment", f.jira("POST"))
			req := body("conversationId", conv2, "trigger", "wrap_up", "target", "jira", "customerEmail", "jane@example.com")
			second := e.post(req)
			if second.res.Status != escalation.StatusUpdated && second.res.Status != escalation.StatusQueued {
				t.Fatalf("%s", second.raw)
			}
			e.settle(t)
			if n := len(e.jiraCommentsOf(first.res.TicketKey, second.res.EscalationID)); n != 1 {
				t.Fatalf("%d comments for the repeat call; want 1", n)
			}
			if n := e.jira.RequestCount(); n != 1 {
				t.Fatalf("%d requests", n)
			}
			if final := e.post(req); final.res.Status != escalation.StatusUpdated || final.res.TicketKey != first.res.TicketKey {
				t.Fatalf("%s", final.raw)
			}
		})
	}
}

// TestRepeatCallerJiraSearchLag: JQL search shows a request only seconds after it was raised.
// A repeat call in that gap is not joined to it: the caller gets a second request, never
// someone else's.
func TestRepeatCallerJiraSearchLag(t *testing.T) {
	e := repeatEnv(t, func(_ map[string]string, j *jiratest.Config, _ *breaker.Settings) { j.SearchLag = time.Minute })
	first := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com"))
	second := e.post(body("conversationId", conv2, "trigger", "wrap_up", "target", "jira", "customerEmail", "jane@example.com"))
	if first.res.Status != escalation.StatusCreated || second.res.Status != escalation.StatusCreated || second.res.TicketKey == first.res.TicketKey {
		t.Fatalf("%s / %s", first.raw, second.raw)
	}
	// Once search shows them, the next call joins the newest.
	for _, r := range e.jira.Requests() {
		e.jira.Backdate(r.Key, 2*time.Minute)
	}
	third := e.post(body("conversationId", conv3, "trigger", "wrap_up", "target", "jira", "customerEmail", "jane@example.com"))
	if third.res.Status != escalation.StatusUpdated || third.res.TicketKey != second.res.TicketKey {
		t.Fatalf("%s", third.raw)
	}
}

// TestRepeatCallerJiraWithAKeyField: with JIRA_KEY_FIELD a custom field, that field marks the
// requests cxbridge raised.
func TestRepeatCallerJiraWithAKeyField(t *testing.T) {
	e := repeatEnv(t, with("JIRA_KEY_FIELD", jiratest.FieldEscalationKey))
	first := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com"))
	id, _ := e.jira.CustomerByEmail("jane@example.com")
	// Another open request of the same customer, not raised by cxbridge (the field is empty).
	e.rawJiraRequest(map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "raiseOnBehalfOf": id.AccountID,
		"requestFieldValues": map[string]any{"summary": "Raised in the portal"}})
	second := e.post(body("conversationId", conv2, "trigger", "wrap_up", "target", "jira", "customerEmail", "jane@example.com"))
	if second.res.Status != escalation.StatusUpdated || second.res.TicketKey != first.res.TicketKey {
		t.Fatalf("%s", second.raw)
	}
	if req, _ := e.jira.Request(first.res.TicketKey); len(req.Labels()) != 0 {
		t.Fatalf("labels %v: the key field is the marker", req.Labels())
	}
}

// TestHungStoreRepeatCallerIsNotedOnce: with the state store hung no idempotency record tells
// whether a repeat call was already added; two execution environments deliver the same
// escalation, and the note (ServiceNow) or comment (Jira) is still there once: each looks for it
// (the journal, the comments) before writing.
func TestHungStoreRepeatCallerIsNotedOnce(t *testing.T) {
	e := repeatEnv(t)
	caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane"})
	sn := e.post(body("conversationId", conv, "trigger", "wrap_up", "callerSysId", caller))
	jr := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com"))
	if sn.res.Status != escalation.StatusCreated || jr.res.Status != escalation.StatusCreated {
		t.Fatalf("%s / %s", sn.raw, jr.raw)
	}
	snReq := body("conversationId", conv2, "trigger", "wrap_up", "callerSysId", caller)
	jrReq := body("conversationId", conv2, "trigger", "hold_time", "holdSeconds", 300, "customerEmail", "jane@example.com")
	for i := range 2 {
		down := e.withStore(t, hungStore(t)) // a fresh environment: no memory of earlier answers
		a, b := down.post(snReq), down.post(jrReq)
		if a.res.Status != escalation.StatusUpdated || a.res.TicketKey != sn.res.TicketKey || b.res.Status != escalation.StatusUpdated || b.res.TicketKey != jr.res.TicketKey {
			t.Fatalf("environment %d: %s / %s", i+1, a.raw, b.raw)
		}
		if i == 1 && (e.snNotesOf(e.sn.Records("incident")[0]["sys_id"], a.res.EscalationID) != 1 || len(e.jiraCommentsOf(jr.res.TicketKey, b.res.EscalationID)) != 1) {
			t.Fatalf("notes %d, comments %d; want 1 each", e.snNotesOf(e.sn.Records("incident")[0]["sys_id"], a.res.EscalationID), len(e.jiraCommentsOf(jr.res.TicketKey, b.res.EscalationID)))
		}
	}
}

// BenchmarkRepeatCaller measures one escalation through the service (idempotency in DynamoDB
// Local, the fakes answering after rtt, as a SaaS round trip would): with repeat callers off,
// on for a first call (nothing to join), and on for a call that joins the caller's open
// ticket. ServiceNow keeps one read and one write either way; Jira adds one search.
func BenchmarkRepeatCaller(b *testing.B) {
	const rtt = 20 * time.Millisecond
	for _, target := range []string{escalation.ServiceNow, escalation.Jira} {
		for _, mode := range []string{"off", "first call", "joins"} {
			b.Run(target+"/"+mode, func(b *testing.B) {
				var settings []setting
				if mode != "off" {
					settings = append(settings, with("REPEAT_CALLER_TRIGGERS", "wrap_up"))
				}
				e := newEnv(b, settings...)
				e.sn.SetLatency(rtt)
				e.jira.Fail("/rest", jiratest.Failure{AfterEffect: true, Delay: rtt})
				newCaller := func() string {
					if target == escalation.Jira {
						return e.jira.AddCustomer(fmt.Sprintf("c%d@example.com", time.Now().UnixNano()), "Caller", "1")
					}
					return e.sn.AddUser(servicenowtest.User{FirstName: "Caller"})
				}
				req := func(i int, caller string) string {
					id := "callerSysId"
					if target == escalation.Jira {
						id = "customerAccountId"
					}
					return body("conversationId", fmt.Sprintf("00000000-0000-4000-8000-%012d", i), "trigger", "wrap_up", "target", target, id, caller)
				}
				caller := newCaller()
				want := escalation.StatusCreated
				if mode == "joins" {
					want = escalation.StatusUpdated
					if c := e.post(req(0, caller)); c.res.Status != escalation.StatusCreated {
						b.Fatalf("%s", c.raw)
					}
				}
				i := 1
				for b.Loop() {
					if mode != "joins" {
						b.StopTimer()
						caller = newCaller()
						b.StartTimer()
					}
					if c := e.post(req(i, caller)); c.res.Status != want {
						b.Fatalf("%s", c.raw)
					}
					i++
				}
			})
		}
	}
}
