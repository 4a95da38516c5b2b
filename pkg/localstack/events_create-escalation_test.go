package localstack_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// localOutageMessage is what the outage example's flag asks the IVR to play.
const localOutageMessage = "We are aware of the current e-mail outage. Your call has been noted against the master incident."

func init() {
	expectAll(map[string]expect{
		"create-escalation/hold-time.json": {Status: 200, Body: m{"status": "created", "target": "jira", "attempts": 1.0, "masked": 0.0, "catastropheMode": false},
			Setup: linkedBackTo("3b1f6c2e-7d4a-4f3e-9c11-5a2b8e9d0a01", "8e2a1c44-1f0b-4c1d-9e8f-0a1b2c3d4e01", "SUPP-")},
		"create-escalation/hold-time-below-threshold.json": {Status: 200, Body: m{"status": "skipped", "reason": "below_threshold", "ticketKey": ""}},
		"create-escalation/vip.json":                       {Status: 200, Body: m{"status": "created", "target": "jira", "reason": ""}},
		"create-escalation/wrap-up.json": {Status: 200, Body: m{"status": "created", "target": "servicenow"},
			Setup: linkedBackTo("3b1f6c2e-7d4a-4f3e-9c11-5a2b8e9d0a04", "8e2a1c44-1f0b-4c1d-9e8f-0a1b2c3d4e04", "INC")},
		"create-escalation/vip-to-servicenow.json": {Status: 200, Body: m{"status": "created", "target": "servicenow"}},
		"create-escalation/masked.json":            {Status: 200, Body: m{"status": "created", "target": "jira", "masked": 2.0}},
		"create-escalation/direct-invoke.json": {Body: m{"status": "created", "target": "jira"},
			Setup: linkedBackTo("3b1f6c2e-7d4a-4f3e-9c11-5a2b8e9d0a12", "8e2a1c44-1f0b-4c1d-9e8f-0a1b2c3d4e12", "SUPP-")},
		"create-escalation/outage-linked.json": {Status: 200, Body: m{"status": "linked", "target": "servicenow", "ticketKey": "INC0010001",
			"catastropheMode": true, "message": localOutageMessage, "attempts": 0.0}, Setup: outageDeclared},
		// A 503 may come after Jira created the request: never retried blind, verified later.
		"create-escalation/jira-down.json": {Status: 200, Body: m{"status": "queued", "target": "jira", "reason": "verifying", "attempts": 1.0, "ticketKey": ""},
			Setup: jiraFails(jiratest.Failure{Status: 503})},
		"create-escalation/permission-denied.json": {Status: 200, Body: m{"status": "failed", "target": "jira", "reason": "permission_denied", "attempts": 1.0},
			Setup: jiraFails(jiratest.Failure{Status: 403})},
		"create-escalation/invalid-missing-trigger.json": {Status: 400, Body: m{"status": "rejected", "error": m{"field": "trigger", "code": "missing_field"}}},
		// A day-first date without an offset cannot be read: the escalation goes on with the
		// time the request arrived, and says so.
		"create-escalation/bad-occurred-at.json": {Status: 200, Body: m{"status": "created", "target": "jira",
			"warnings": []any{"occurredAt: not an ISO-8601 date-time with an offset (e.g. 2026-11-22T10:15:00Z); the time the request arrived is used"}}},
		// Runs after the create-escalation events with a setup (file order), so the outage
		// example's link is waiting for its note, and jira-down's escalation is queued: held
		// until the search lag (JiraSearchLagSeconds, 5 s locally) has passed, then delivered
		// (Jira is back by then), whichever comes first on this machine.
		"escalation-redrive/scheduled.json": {Body: m{"notes": 1.0, "linked": 1.0, "failed": 0.0, "due": 1.0}, Setup: masterNoted},
	})
}

// masterNoted checks, after the redrive ran, that the master incident got one work note
// listing the call the outage example linked.
func masterNoted(t *testing.T, st *localstack.Stack) func() {
	return func() {
		var notes []string
		for _, j := range st.ServiceNow().Journal("incident", localstack.ServiceNowMasterSysID) {
			notes = append(notes, j.Value)
		}
		if len(notes) != 1 || !strings.Contains(notes[0], "3b1f6c2e-7d4a-4f3e-9c11-5a2b8e9d0a07") {
			t.Errorf("work notes on the master: %q", notes)
		}
	}
}

// linkedBackTo seeds the Genesys conversation of an event and checks, afterwards, that the
// ticket was written to the participant's attributes.
func linkedBackTo(conversationID, participantID, keyPrefix string) func(*testing.T, *localstack.Stack) func() {
	return func(t *testing.T, st *localstack.Stack) func() {
		st.Genesys().AddWaitingConversation(conversationID, participantID, localstack.QueueL2, 0)
		return func() {
			c, _ := st.Genesys().Conversation(conversationID)
			if key := c.Participants[0].Attributes["escalationTicketKey"]; !strings.HasPrefix(key, keyPrefix) {
				t.Errorf("participant attributes %v: the ticket was not linked back", c.Participants[0].Attributes)
			}
		}
	}
}

// outageDeclared turns ServiceNow's catastrophe mode on, as the on-call would with
// `cxbridge outage on --target servicenow --master INC0010001`.
func outageDeclared(t *testing.T, st *localstack.Stack) func() {
	o := &escalation.Outage{DB: st.DynamoDB.Client(), Table: st.Tables.State}
	flag := escalation.Flag{Target: escalation.ServiceNow, Active: true, Message: localOutageMessage,
		Master: escalation.Master{Key: "INC0010001", SysID: localstack.ServiceNowMasterSysID}}
	if err := o.SetFlag(context.Background(), flag); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := o.ClearFlag(context.Background(), escalation.ServiceNow); err != nil {
			t.Error(err)
		}
		time.Sleep(1100 * time.Millisecond) // environments cache the flag for a second
	}
}

func jiraFails(f jiratest.Failure) func(*testing.T, *localstack.Stack) func() {
	return func(t *testing.T, st *localstack.Stack) func() {
		st.Jira().Fail("/rest/servicedeskapi/request", f)
		return st.Jira().ClearFailures
	}
}
