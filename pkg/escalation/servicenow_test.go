package escalation_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

func TestServiceNowIncidentFromWrapUp(t *testing.T) {
	e := newEnv(t, with("SERVICENOW_CATEGORY", "software"), with("SERVICENOW_IMPACT", "2"), with("SERVICENOW_URGENCY", "1"))
	caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane", LastName: "Doe", Phone: "+14155550100"})
	e.genesys.AddWaitingConversation(conv, "cust-1", "q-1", 0)
	c := e.post(body("conversationId", conv, "participantId", "cust-1", "trigger", "wrap_up", "customerName", "Jane Doe",
		"callerSysId", caller, "wrapUpCode", "Password reset", "recordingUrl", "https://apps.mypurecloud.ie/directory/#/engage/admin/interactions/"+conv,
		"transcriptSummary", "Customer locked out after MFA change.", "occurredAt", "2026-11-22T09:15:00-05:00"))
	if c.res.Status != escalation.StatusCreated || c.res.Target != escalation.ServiceNow || !strings.HasPrefix(c.res.TicketKey, "INC") {
		t.Fatalf("wrap_up goes to ServiceNow by default: %s", c.raw)
	}
	posts := e.snCalls(http.MethodPost)
	if len(posts) != 1 {
		t.Fatalf("%d POSTs", len(posts))
	}
	var b map[string]any
	_ = json.Unmarshal(posts[0].Body, &b)
	want := map[string]string{
		"caller_id": caller, "short_description": "Call from Jane Doe - Topic: Password reset", "contact_type": "phone",
		"category": "software", "impact": "2", "urgency": "1", "correlation_display": "cxbridge",
	}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("%s = %v; want %q", k, b[k], v)
		}
	}
	if _, ok := b["priority"]; ok {
		t.Error("priority is computed by the instance from impact and urgency; never send it")
	}
	desc := b["description"].(string)
	if !strings.HasPrefix(desc, "Conversation ID: "+conv+"\nRecording: https://") || !strings.Contains(desc, "Transcript summary:\nCustomer locked out") ||
		!strings.Contains(desc, "2026-11-22T14:15:00Z") {
		t.Fatalf("description:\n%s", desc)
	}
	corr, _ := b["correlation_id"].(string)
	if corr != "cxb."+conv+"."+c.res.EscalationID {
		t.Fatalf("correlation_id %q must carry the escalation id", corr)
	}
	rec := e.sn.Records("incident")[0]
	if rec["priority"] != "2" { // impact 2 x urgency 1
		t.Fatalf("priority %s", rec["priority"])
	}
	// the lookup that ran first was built with the query builder
	gets := e.snCalls(http.MethodGet)
	if len(gets) != 1 || gets[0].Query.Get("sysparm_query") != "correlation_idSTARTSWITHcxb."+conv+".^ORDERBYDESCsys_created_on" {
		t.Fatalf("lookup %+v", gets)
	}
	if !strings.Contains(c.res.TicketURL, "nav_to.do?uri=incident.do?sys_id=") {
		t.Fatalf("url %s", c.res.TicketURL)
	}
	gc, _ := e.genesys.Conversation(conv)
	if gc.Participants[0].Attributes["escalationTicketKey"] != c.res.TicketKey {
		t.Fatalf("link-back %v", gc.Participants[0].Attributes)
	}
}

func TestServiceNowUpdatesTheConversationsIncident(t *testing.T) {
	e := newEnv(t, with("ESCALATION_TARGETS", "hold_time=servicenow;wrap_up=servicenow"))
	first := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 300, "customerName", "Jane Doe"))
	if first.res.Status != "created" {
		t.Fatalf("%s", first.raw)
	}
	second := e.post(body("conversationId", conv, "trigger", "wrap_up", "wrapUpCode", "Billing", "transcriptSummary", "Refund agreed."))
	if second.res.Status != escalation.StatusUpdated || second.res.TicketKey != first.res.TicketKey {
		t.Fatalf("a second escalation of the call must update its incident: %s", second.raw)
	}
	if n := len(e.sn.Records("incident")); n != 1 {
		t.Fatalf("%d incidents for one conversation", n)
	}
	rec := e.sn.Records("incident")[0]
	notes := e.sn.Journal("incident", rec["sys_id"])
	if len(notes) != 1 || notes[0].Element != "work_notes" || !strings.Contains(notes[0].Value, "Refund agreed.") || !strings.Contains(notes[0].Value, "Wrap-up") {
		t.Fatalf("work notes %+v", notes)
	}
	// another conversation is another incident
	other := e.post(body("conversationId", "9f1c2d3e-0000-4000-8000-000000000002", "trigger", "wrap_up"))
	if other.res.Status != "created" || other.res.TicketKey == first.res.TicketKey {
		t.Fatalf("%s", other.raw)
	}
}

func TestServiceNowCorrelationCannotBeWidened(t *testing.T) {
	e := newEnv(t)
	// An incident of another conversation must never be "found": an id with query syntax is
	// refused at the door, and the prefix of a real id does not match a longer id.
	e.sn.AddIncident(servicenowtest.Incident{ShortDescription: "someone else", CorrelationID: "cxb.abc-1.000000000000000000000000"})
	bad := e.post(body("conversationId", "abc^ORactive=true", "trigger", "wrap_up"))
	if bad.status != 400 || bad.rej.Error.Field != "conversationId" {
		t.Fatalf("%d %s", bad.status, bad.raw)
	}
	c := e.post(body("conversationId", "abc", "trigger", "wrap_up"))
	if c.res.Status != "created" || len(e.sn.Records("incident")) != 2 {
		t.Fatalf("%s", c.raw)
	}
}
