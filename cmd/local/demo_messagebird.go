package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

func init() {
	addScenario(scenario{order: 60, title: "A WhatsApp conversation becomes a JSM request; the agent's public reply reaches the customer, the internal note does not", run: whatsappConversation})
}

func whatsappConversation(d *demo) error {
	mb, jira := d.st.MessageBird(), d.st.Jira()
	before := len(jira.Requests())

	// The customer writes twice before an agent answers: both land in the request description.
	first, err := mb.Receive(messagebirdtest.Inbound{MSISDN: "+31612345678", FirstName: "Sanne", LastName: "de Vries",
		Text: "Hi, the export in my dashboard fails since this morning"})
	if err != nil {
		return err
	}
	d.say("WhatsApp", "customer +316...678: %q", "Hi, the export in my dashboard fails since this morning")
	d.say("MessageBird", "POST /messagebird/webhook message.created (signed JWT) -> %d", first.Status)
	second, err := mb.Receive(messagebirdtest.Inbound{MSISDN: "+31612345678", Text: "My card is 4111 1111 1111 1111 if you need it"})
	if err != nil {
		return err
	}
	d.say("WhatsApp", "customer: %q", "My card is 4111 1111 1111 1111 if you need it")
	d.say("MessageBird", "POST /messagebird/webhook message.created -> %d", second.Status)
	d.check(first.Status == 200 && second.Status == 200, "webhooks answered %d and %d, want 200", first.Status, second.Status)

	reqs := jira.Requests()
	if len(reqs) != before+1 {
		return fmt.Errorf("the Jira fake has %d new requests, want exactly 1", len(reqs)-before)
	}
	req := reqs[len(reqs)-1]
	d.say("Jira", "request %s created in service desk %s: %q", req.Key, req.ServiceDeskID, req.Summary())
	d.check(!strings.Contains(fmt.Sprint(req.Fields), "4111 1111 1111 1111") && !strings.Contains(fmt.Sprint(req.Fields), "4111111111111111"),
		"the card number reached Jira: %v", req.Fields)
	d.check(strings.Contains(fmt.Sprint(req.Fields), "export in my dashboard"), "the first message is not in the request: %v", req.Fields)
	d.say("Jira", "description holds both messages, card masked: %v", strings.Contains(fmt.Sprint(req.Fields), "[MASKED:card]"))

	// An agent replies publicly: it goes to the customer on WhatsApp.
	sentBefore := len(mb.Sent(first.ConversationID))
	deliveries, err := jira.AgentComment(req.Key, "Thanks Sanne, we found the cause and a fix is rolling out now.", true, "")
	if err != nil {
		return err
	}
	d.say("Jira agent", "public comment on %s -> webhook comment_created -> %d", req.Key, statusOf(deliveries))
	d.check(statusOf(deliveries) == 200, "the comment webhook was answered %d", statusOf(deliveries))
	sent := waitSent(mb, first.ConversationID, sentBefore+1)
	d.check(len(sent) == sentBefore+1, "the customer received %d messages, want 1", len(sent)-sentBefore)
	if len(sent) > sentBefore {
		d.say("WhatsApp", "customer receives: %q", sent[len(sent)-1].Content.Text)
	}

	// An internal note stays in Jira.
	deliveries, err = jira.AgentComment(req.Key, "Internal: customer is on the enterprise plan, waive the fee", false, "")
	if err != nil {
		return err
	}
	// The webhook is answered only after any reply was sent, so nothing can still be in flight.
	d.say("Jira agent", "internal note on %s -> webhook comment_created -> %d", req.Key, statusOf(deliveries))
	d.check(len(mb.Sent(first.ConversationID)) == sentBefore+1, "the internal note was sent to the customer")
	d.say("WhatsApp", "customer receives nothing more (%d message(s) in total from the agent)", len(mb.Sent(first.ConversationID))-sentBefore)
	return nil
}

// statusOf is the HTTP status cxbridge answered the (single) webhook delivery with.
func statusOf(ds []jiratest.Delivery) int {
	if len(ds) == 0 {
		return 0
	}
	return ds[0].Status
}

// waitSent waits briefly for messages the bridge sends to a conversation.
func waitSent(mb *messagebirdtest.Server, conversationID string, n int) []messagebirdtest.Message {
	deadline := time.Now().Add(3 * time.Second)
	for {
		sent := mb.Sent(conversationID)
		if len(sent) >= n || time.Now().After(deadline) {
			return sent
		}
		time.Sleep(20 * time.Millisecond)
	}
}
