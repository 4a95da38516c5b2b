package main

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

func init() {
	addScenario(scenario{order: 10, title: "A VIP call is escalated to Jira Service Management; the card number the caller read out never leaves", run: vipEscalation})
	addScenario(scenario{order: 11, title: "Genesys retries the same escalation: the first result comes back, no second ticket", run: duplicateEscalation})
	addScenario(scenario{order: 40, title: "ServiceNow goes down during a burst of wrap-ups: the breaker opens, calls are linked to the master incident, one note per minute", run: outageBurst})
}

const (
	vipConversation = "9d1e5c7a-3b2f-4e8d-a1c6-000000000101"
	vipParticipant  = "9d1e5c7a-3b2f-4e8d-a1c6-0000000001c1"
)

var vipRequest = map[string]any{
	"conversationId": vipConversation, "participantId": vipParticipant, "trigger": "vip", "target": "jira",
	"customerName": "Jane Doe", "customerEmail": localstack.JiraCustomerEmail, "agentName": "Sam Agent", "queueName": "VIP Support",
	"product": "Mobile App", "version": "4.2",
	"description":       "Payment app rejects the card at checkout",
	"transcriptSummary": "Caller read out her card 4111 1111 1111 1111 and SSN 123-45-6789 to verify the account",
	"occurredAt":        "2026-11-22T10:15:00+01:00",
}

func vipEscalation(d *demo) error {
	jira, genesys := d.st.Jira(), d.st.Genesys()
	genesys.AddWaitingConversation(vipConversation, vipParticipant, localstack.QueueL2, 0)
	before := jira.RequestCount()
	status, out := d.post("Genesys", "/escalations", localstack.LocalAPIKey, nil, vipRequest)
	d.check(status == 200 && out["status"] == "created" && out["target"] == "jira", "want created in Jira, got %d %v", status, out)
	d.check(out["masked"] == 2.0, "want 2 masked items reported, got %v", out["masked"])
	if jira.RequestCount() != before+1 {
		return fmt.Errorf("jira has %d new requests, want 1", jira.RequestCount()-before)
	}
	key, _ := out["ticketKey"].(string)
	req, _ := jira.Request(key)
	all := fmt.Sprint(req.Fields)
	d.say("Jira", "request %s in service desk %s, raised on behalf of Jane Doe's customer account: %q", req.Key, req.ServiceDeskID, req.Summary())
	leaked := strings.Contains(all, "4111") || strings.Contains(all, "123-45-6789")
	d.check(!leaked, "card or SSN digits reached Jira: %s", all)
	d.say("Jira", "description mentions [MASKED:card]: %v, [MASKED:ssn]: %v; raw digits present: %v",
		strings.Contains(all, "[MASKED:card]"), strings.Contains(all, "[MASKED:ssn]"), leaked)
	c, _ := genesys.Conversation(vipConversation)
	attrs := c.Participants[0].Attributes
	d.check(attrs["escalationTicketKey"] == key, "the ticket was not written back to the participant: %v", attrs)
	d.say("Genesys", "participant attributes now hold %s = %s", "escalationTicketKey", attrs["escalationTicketKey"])
	return nil
}

func duplicateEscalation(d *demo) error {
	jira := d.st.Jira()
	before := jira.RequestCount()
	status, out := d.post("Genesys", "/escalations", localstack.LocalAPIKey, nil, vipRequest) // the same call, retried
	d.check(status == 200 && out["status"] == "created" && out["ticketKey"] != "", "want the first result again, got %d %v", status, out)
	d.check(jira.RequestCount() == before, "a second ticket was created")
	d.say("Jira", "still %d request(s) for this call: the retry got the first answer (%v)", 1+jira.RequestCount()-before, out["ticketKey"])
	return nil
}

func outageBurst(d *demo) error {
	sn := d.st.ServiceNow()
	env, err := d.st.Env("CreateEscalationFunction")
	if err != nil {
		return err
	}
	master, ok := sn.Record("incident", localstack.ServiceNowMasterSysID)
	if !ok {
		return fmt.Errorf("the local ServiceNow has no master incident")
	}
	// The on-call prepared a standby master: it is used only while ServiceNow's breaker is open.
	cmd := exec.CommandContext(d.ctx, "go", "run", "./cmd/cxbridge", "outage", "on", "--target", "servicenow",
		"--master", master["number"], "--standby", "--message", "We know about the e-mail outage and have noted your call.")
	cmd.Dir = d.st.Root
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	outb, err := cmd.CombinedOutput()
	d.say("on-call", "cxbridge outage on --target servicenow --master %s --standby  (%q)", master["number"], master["short_description"])
	for _, line := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		d.say("", "%s", line)
	}
	if err != nil {
		return fmt.Errorf("cxbridge outage on: %v", err)
	}

	sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 503})
	defer sn.ClearFailures()
	d.say("ServiceNow", "starts answering 503 to every incident call")
	callsBefore := len(sn.Received("/api/now/v2/table/incident"))

	const calls = 40
	statuses := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < calls; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, out, _, _, _ := d.call("/escalations", localstack.LocalAPIKey, nil, encode(map[string]any{
				"conversationId": fmt.Sprintf("4c2b7e10-8a1f-4d3e-b5c6-%012d", 500+i), "trigger": "wrap_up", "target": "servicenow",
				"customerName": "Caller " + fmt.Sprint(i), "wrapUpCode": "E-mail not working", "callerSysId": localstack.ServiceNowCallerSysID,
			}))
			mu.Lock()
			statuses[fmt.Sprint(out["status"])]++
			mu.Unlock()
		}(i)
		if i < 8 { // the first calls arrive one after another; then the burst
			wg.Wait()
		}
	}
	wg.Wait()
	during := len(sn.Received("/api/now/v2/table/incident")) - callsBefore
	d.say("Genesys", "%d wrap-up escalations in %s", calls, time.Since(start).Round(time.Millisecond))
	d.say("cxbridge", "answers: %s", summary(statuses))
	d.say("ServiceNow", "received %d incident calls for %d escalations", during, calls)
	d.check(statuses["linked"] > 0, "no call was linked to the master")
	d.check(statuses["linked"]+statuses["queued"] == calls, "every call must be linked or queued, got %v", statuses)
	d.check(during < calls, "the breaker did not bound the calls to ServiceNow (%d for %d escalations)", during, calls)

	// ServiceNow recovers. Once the breaker's open period is over (3 s locally), the redrive's
	// first call is the probe; it writes one note on the master listing the linked calls.
	sn.ClearFailures()
	d.say("ServiceNow", "recovers; the breaker lets one probe through after its open period")
	time.Sleep(3500 * time.Millisecond)
	if err := d.st.RunOnce(d.ctx, "escalation-redrive", time.Now()); err != nil {
		return err
	}
	if err := d.st.RunOnce(d.ctx, "escalation-redrive", time.Now()); err != nil { // same minute: no second note
		return err
	}
	notes := sn.Journal("incident", localstack.ServiceNowMasterSysID)
	d.check(len(notes) == 1, "want one note on the master this minute, got %d", len(notes))
	if len(notes) > 0 {
		lines := strings.Count(notes[0].Value, "\n")
		d.say("ServiceNow", "%s work note (%d lines): %q...", master["number"], lines+1, firstLine(notes[0].Value))
	}
	d.say("redrive", "ran twice this minute; the master got %d note(s)", len(notes))
	return nil
}

func summary(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
	}
	return strings.Join(parts, ", ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
