package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// TestChecksCountWhatTheFakesHold puts a known outcome in the local stack's fakes (one
// escalation with two tickets, one with none, one with its incident, one with two tickets made
// without duplicate protection; a reply sent twice, a message missing from its request) and checks that the report names exactly those, from the
// fakes' state and not from any answer.
func TestChecksCountWhatTheFakesHold(t *testing.T) {
	st, err := localstack.Start(context.Background(), localstack.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := &run{cfg: Config{Seed: 5, Parallel: 1}, plan: newPlan(5, DefaultRates), events: &journal{}, calls: &calls{}, kills: map[string]int{}, st: st,
		budgets: map[string]time.Duration{"/escalations": 6 * time.Second}, unprotected: newUnprotectedLog(io.Discard)}
	r.cfg.defaults()
	for i := range 5 {
		r.cases = append(r.cases, newEscalation(5, i)) // 0 jira, 1 servicenow, 2 jira, 3 servicenow, 4 jira
	}
	r.began = time.Now()
	r.faultsOff, r.drained = r.began, r.began

	jira := func(path string, body any) map[string]any {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, st.Jira().URL()+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(localstack.LocalJiraEmail, localstack.LocalJiraAPIToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &out) != nil {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
		}
		return out
	}
	ticket := func(c escalationCase) {
		jira("/rest/servicedeskapi/request", map[string]any{"serviceDeskId": jiratest.DefaultServiceDeskID, "requestTypeId": jiratest.RequestTypeSupport,
			"requestFieldValues": map[string]any{"summary": "escalation", "labels": []string{"cxb-" + c.ID}}})
	}
	ticket(r.cases[0])
	ticket(r.cases[0]) // doubled
	ticket(r.cases[2])
	r.pausedAt = time.Now()
	ticket(r.cases[4]) // doubled while the state store was unavailable: accepted
	ticket(r.cases[4])
	r.resumedAt = time.Now()
	fmt.Fprintf(r.unprotected, "create-escalation | {\"level\":\"WARN\",\"message\":%q,\"escalation_id\":%q}\n", unprotectedMessage, r.cases[4].ID)
	// case 1 has nothing: lost
	if _, err := st.ServiceNow().Insert("incident", map[string]string{"short_description": "escalation",
		"correlation_id": "cxb." + r.cases[3].ConversationID + "." + r.cases[3].ID}); err != nil {
		t.Fatal(err)
	}
	r.calls.add(call{Route: "/escalations", Key: r.cases[2].ConversationID, Attempt: "first", At: r.began, Took: 7500 * time.Millisecond, Status: 200,
		Answer: answer{Status: "created", EscalationID: r.cases[2].ID}})

	u := newUser(3)
	r.users = []*user{u}
	m1, m2, r1 := u.text("m", 1, "hello"), u.text("m", 2, "anyone?"), u.text("r", 1, "hi there")
	u.Messages, u.Replies = []string{m1, m2}, []string{r1}
	req := jira("/rest/servicedeskapi/request", map[string]any{"serviceDeskId": localstack.LocalChatDeskID, "requestTypeId": localstack.LocalChatRequestType,
		"requestFieldValues": map[string]any{"summary": "WhatsApp " + u.Tag, "description": "From " + u.MSISDN + "\n\n" + m1}})
	jira("/rest/servicedeskapi/request/"+req["issueKey"].(string)+"/comment", map[string]any{"body": m1, "public": true}) // m1 twice, m2 never
	d, err := st.MessageBird().Receive(messagebirdtest.Inbound{MSISDN: u.MSISDN, Text: m1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the reply, twice
		body := fmt.Sprintf(`{"type":"text","content":{"text":%q},"channelId":%q}`, r1, messagebirdtest.WhatsAppChannelID)
		hreq, _ := http.NewRequest(http.MethodPost, st.MessageBird().URL()+"/conversations/"+d.ConversationID+"/messages", strings.NewReader(body))
		hreq.Header.Set("Authorization", "AccessKey "+localstack.LocalMessageBirdAccessKey)
		hreq.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(hreq)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("send: %v %v", resp, err)
		}
		resp.Body.Close()
	}

	if r.backlogEmpty() {
		t.Error("backlogEmpty with an escalation that has no ticket")
	}
	rep := r.report()
	for _, want := range []string{"chaos FAIL seed=5", "lost 1, doubled 1 (and 1 without duplicate protection while DynamoDB was unavailable, accepted), replies delivered twice 1, answers over budget+1s 1", "user messages lost 1 doubled 1"} {
		if !strings.Contains(rep.Summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, rep.Summary)
		}
	}
	details := strings.Join(rep.Details, "\n")
	for _, want := range []string{
		"LOST escalation " + r.cases[1].ConversationID,
		"DOUBLED escalation " + r.cases[0].ConversationID,
		"LATE /escalations " + r.cases[2].ConversationID,
		"REPLY DELIVERED 2 TIMES " + u.Tag,
		"MESSAGE LOST " + u.Tag,
		"MESSAGE DOUBLED " + u.Tag,
	} {
		if !strings.Contains(details, want) {
			t.Errorf("details lack %q:\n%s", want, details)
		}
	}
	if strings.Contains(details, r.cases[3].ConversationID) {
		t.Errorf("the escalation with its one incident is reported:\n%s", details)
	}
	if strings.Contains(details, r.cases[4].ConversationID) || len(rep.Accepted) != 1 || !strings.Contains(rep.Accepted[0], r.cases[4].ConversationID) {
		t.Errorf("the double made without duplicate protection must be shown apart, as accepted: accepted %q\n%s", rep.Accepted, details)
	}
	if rep.Passed || len(rep.Details) != 6 {
		t.Errorf("passed %v with %d details, want 6", rep.Passed, len(rep.Details))
	}
}
