package conversation_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/fakehttp"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/conversation"
)

// fault is one of fakehttp.WriteFaults, in the terms of each fake's Failure.
type fault struct{ fakehttp.WriteFault }

func (f fault) jira(method string) jiratest.Failure {
	return jiratest.Failure{Status: f.Status, RetryAfter: f.RetryAfter, Delay: f.Delay, Reset: f.Reset, AfterEffect: f.After, Method: method, Times: 1}
}

func (f fault) mb(method string) messagebirdtest.Failure {
	return messagebirdtest.Failure{Status: f.Status, RetryAfter: f.RetryAfter, Delay: f.Delay, Reset: f.Reset, AfterEffect: f.After, Method: method, Times: 1}
}

// writeFaults: the hangs outlast the 1.5 s budget these tests give a call.
var writeFaults = func() []fault {
	var out []fault
	for _, f := range fakehttp.WriteFaults(3 * time.Second) {
		out = append(out, fault{f})
	}
	return out
}()

// shortBudget makes the webhook budget shorter than the injected hangs, once the setup is done
// (with the default budget, so a loaded machine does not fail the setup).
func (w *world) shortBudget() {
	w.settle()
	w.svc.Config.Budget = 1500 * time.Millisecond
}

// untilDoneJira redelivers a Jira webhook, as Jira does after a 5xx, until it is taken.
func (w *world) untilDoneJira(t *testing.T, d jiratest.Delivery) jiratest.Delivery {
	t.Helper()
	for i := 0; d.Status != http.StatusOK; i++ {
		if i == 8 {
			t.Errorf("still %d after 8 redeliveries: %s", d.Status, d.Body)
			return d
		}
		if i > 0 {
			time.Sleep(200 * time.Millisecond) // Jira waits between retries too
		}
		var err error
		if d, err = w.jira.Redeliver(d.ID); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// untilDoneMB replays a MessageBird delivery, as MessageBird does after a 5xx, until it is taken.
func (w *world) untilDoneMB(t *testing.T, d messagebirdtest.Delivery) messagebirdtest.Delivery {
	t.Helper()
	for i := 0; d.Status != http.StatusOK; i++ {
		if i == 5 {
			t.Fatalf("still %d after 5 redeliveries: %s", d.Status, d.Response)
		}
		d = w.mb.Replay(d)
	}
	return d
}

// TestAgentReplyReachesTheCustomerOnceWhateverHappensToTheSend: the agent's public reply under
// every fault on MessageBird's send; Jira redelivers the comment until it is taken.
func TestAgentReplyReachesTheCustomerOnceWhateverHappensToTheSend(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
			w.shortBudget()
			w.mb.Fail("/v1/conversations/"+d.ConversationID+"/messages", f.mb("POST"))
			first := w.agent(r.RequestKey, "Your parcel is on its way", true)
			w.untilDoneJira(t, first)
			if got := w.sentTexts(d.ConversationID); len(got) != 1 || got[0] != "Your parcel is on its way" {
				t.Fatalf("the customer received %q; want the reply exactly once (first delivery %d)", got, first.Status)
			}
			if n := len(internalComments(w.jira.Comments(r.RequestKey))); n != 0 {
				t.Fatalf("%d internal notes: a delivered reply is not reported", n)
			}
		})
	}
}

// TestConcurrentRedeliveriesSendOnce: the first attempt's answer was lost, and Jira delivers the
// comment twice at once; one delivery checks and finds the message, the other waits.
func TestConcurrentRedeliveriesSendOnce(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	w.mb.Fail("/v1/conversations/"+d.ConversationID+"/messages", messagebirdtest.Failure{Status: 502, AfterEffect: true, Method: "POST", Times: 1})
	first := w.agent(r.RequestKey, "On its way", true)
	if first.Status == http.StatusOK {
		t.Fatalf("the lost answer must be retried: %s", first.Body)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.untilDoneJira(t, first)
		}()
	}
	wg.Wait()
	if got := w.sentTexts(d.ConversationID); len(got) != 1 {
		t.Fatalf("the customer received %q", got)
	}
}

// TestNewRequestIsCreatedOnceWhateverHappensToTheCreate: a first message under every fault on the
// request create; MessageBird redelivers until it is taken.
func TestNewRequestIsCreatedOnceWhateverHappensToTheCreate(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.shortBudget()
			w.jira.Fail("/rest/servicedeskapi/request", f.jira("POST"))
			d, _ := w.receive(messagebirdtest.Inbound{Text: "my router is dead"})
			w.untilDoneMB(t, d)
			req := w.only(t)
			if n := strings.Count(w.jira.Description(req.Key), "my router is dead"); n != 1 {
				t.Fatalf("the message is in the description %d times", n)
			}
		})
	}
}

// TestCreateInDoubtWaitsOutTheSearchLag: JQL search shows a new request only after a while; a
// create whose answer was lost is not repeated before JIRA_SEARCH_LAG_SECONDS has passed.
func TestCreateInDoubtWaitsOutTheSearchLag(t *testing.T) {
	w := newWorldWith(t, jiratest.Config{SearchLag: 1500 * time.Millisecond}, func(c *conversation.Config) { c.SearchLag = 2 * time.Second })
	w.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503, AfterEffect: true, Method: "POST", Times: 1})
	d, _ := w.receive(messagebirdtest.Inbound{Text: "lost answer"})
	again := w.mb.Replay(d)
	if again.Status != http.StatusServiceUnavailable || !strings.Contains(string(again.Response), "verifying") {
		t.Fatalf("inside the search lag: %d %s", again.Status, again.Response)
	}
	if again.Status == http.StatusServiceUnavailable && w.jira.RequestCount() != 1 {
		t.Fatalf("%d requests", w.jira.RequestCount())
	}
	time.Sleep(2 * time.Second)
	w.untilDoneMB(t, again)
	if n := w.jira.RequestCount(); n != 1 {
		t.Fatalf("%d requests", n)
	}
}

// TestCustomerCommentIsAddedOnce: after an agent's reply, the end user's next message starts a
// new public comment; under every fault on that comment, it is added once.
func TestCustomerCommentIsAddedOnce(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			_, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
			w.agent(r.RequestKey, "What is your order number?", true)
			w.settle()
			w.shortBudget()
			w.jira.Fail("/rest/servicedeskapi/request/"+r.RequestKey+"/comment", f.jira("POST"))
			d, _ := w.receive(messagebirdtest.Inbound{Text: "It is 4711"})
			w.untilDoneMB(t, d)
			n := 0
			for _, c := range w.jira.Comments(r.RequestKey) {
				n += strings.Count(c.Body, "It is 4711")
			}
			if n != 1 {
				t.Fatalf("the message is in %d comments", n)
			}
		})
	}
}

// TestAttachmentIsAttachedOnce: under every fault on attaching a customer's photo.
func TestAttachmentIsAttachedOnce(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			_, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
			photo := w.mb.AddMedia(messagebirdtest.MediaFile{ContentType: "image/png", Filename: "screen.png", Data: []byte("\x89PNG\r\n\x1a\n....")})
			w.shortBudget()
			w.jira.Fail("/rest/servicedeskapi/request/"+r.RequestKey+"/attachment", f.jira("POST"))
			d, _ := w.receive(messagebirdtest.Inbound{Text: "see screenshot", Media: &messagebirdtest.MediaRef{URL: photo, Caption: "see screenshot"}})
			w.untilDoneMB(t, d)
			req, _ := w.jira.Request(r.RequestKey)
			if len(req.Attachments) != 1 {
				t.Fatalf("%d attachments", len(req.Attachments))
			}
		})
	}
}

// TestDeliveryFailureIsReportedOnce: MessageBird reports a sent message as failed; under every
// fault on the internal note, the agents get one note.
func TestDeliveryFailureIsReportedOnce(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
			w.agent(r.RequestKey, "Hello back", true)
			w.settle()
			msg := w.mb.Sent(d.ConversationID)[0]
			w.shortBudget()
			w.jira.Fail("/rest/servicedeskapi/request/"+r.RequestKey+"/comment", f.jira("POST"))
			st, err := w.mb.SetStatus(msg.ID, "failed", &messagebirdtest.MessageError{Code: 131026, Description: "Message undeliverable"})
			if err != nil {
				t.Fatal(err)
			}
			w.untilDoneMB(t, st)
			notes := internalComments(w.jira.Comments(r.RequestKey))
			if len(notes) != 1 || !strings.Contains(notes[0].Body, msg.ID) {
				t.Fatalf("%d notes: %+v", len(notes), notes)
			}
		})
	}
}

// TestUndeliveredReplyIsReportedOnce: a reply outside the WhatsApp window without a template is
// reported by an internal note; under every fault on that note, it is written once and nothing
// reaches the customer.
func TestUndeliveredReplyIsReportedOnce(t *testing.T) {
	for _, f := range writeFaults {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello", At: time.Now().Add(-25 * time.Hour)})
			w.shortBudget()
			w.jira.Fail("/rest/servicedeskapi/request/"+r.RequestKey+"/comment", f.jira("POST"))
			first := w.agent(r.RequestKey, "Sorry for the wait", true)
			w.untilDoneJira(t, first)
			notes := internalComments(w.jira.Comments(r.RequestKey))
			if len(notes) != 1 || !strings.Contains(notes[0].Body, "was not delivered") {
				t.Fatalf("%d notes: %+v", len(notes), notes)
			}
			if got := w.sentTexts(d.ConversationID); len(got) != 0 {
				t.Fatalf("sent %q outside the window", got)
			}
		})
	}
}

// TestALaterRefusalKeepsTheDoubt: the send's answer was lost; the redelivery's check of the
// conversation is refused (429). The claim stays in doubt, and the next redelivery checks again
// rather than send.
func TestALaterRefusalKeepsTheDoubt(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	w.mb.Fail("/v1/conversations/"+d.ConversationID+"/messages", messagebirdtest.Failure{Status: 504, AfterEffect: true, Method: "POST", Times: 1})
	first := w.agent(r.RequestKey, "Checking", true)
	if first.Status == http.StatusOK {
		t.Fatalf("%s", first.Body)
	}
	w.mb.Fail("/v1/conversations/"+d.ConversationID+"/messages", messagebirdtest.Failure{Status: 429, RetryAfter: 1, Method: "GET", Times: 1})
	if again, _ := w.jira.Redeliver(first.ID); again.Status == http.StatusOK {
		t.Fatalf("the check was refused; the redelivery cannot be done: %s", again.Body)
	}
	w.untilDoneJira(t, first)
	if got := w.sentTexts(d.ConversationID); len(got) != 1 {
		t.Fatalf("the customer received %q", got)
	}
}

// afterFaults are the writeFaults whose write took effect: only the answer is lost.
func afterFaults() []fault {
	var out []fault
	for _, f := range writeFaults {
		if f.After {
			out = append(out, f)
		}
	}
	return out
}

// inJira counts a text in a request's description and comments.
func (w *world) inJira(key, text string) int {
	n := strings.Count(w.jira.Description(key), text)
	for _, c := range w.jira.Comments(key) {
		n += strings.Count(c.Body, text)
	}
	return n
}

// TestMessageWhosePlaceMovedIsWrittenOnce: the description edit carrying the end user's second
// message takes effect but its answer is lost; an agent replies before MessageBird redelivers,
// so the message's place is now a comment. The redelivery finds it in the description.
func TestMessageWhosePlaceMovedIsWrittenOnce(t *testing.T) {
	for _, f := range afterFaults() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			_, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
			w.settle()
			w.shortBudget()
			w.jira.Fail("/rest/api/3/issue/"+r.RequestKey, f.jira("PUT"))
			d, _ := w.receive(messagebirdtest.Inbound{Text: "the export fails"})
			if d.Status == http.StatusOK {
				t.Fatalf("the lost answer must be retried: %s", d.Response)
			}
			w.untilDoneJira(t, w.agent(r.RequestKey, "Which browser?", true))
			w.untilDoneMB(t, d)
			if n := w.inJira(r.RequestKey, "the export fails"); n != 1 {
				t.Fatalf("the message is %d times in the request", n)
			}
			// The next message still goes where it belongs: a new comment after the reply.
			w.mustReceive(messagebirdtest.Inbound{Text: "Firefox"})
			if n := w.inJira(r.RequestKey, "Firefox"); n != 1 {
				t.Fatalf("the next message is %d times in the request", n)
			}
		})
	}
}

// TestFirstMessageOfARequestAdoptedByTheNextIsWrittenOnce: the create carrying the first message
// takes effect but its answer is lost; the second message finds the request by its label and
// is appended, an agent replies, and only then is the first redelivered.
func TestFirstMessageOfARequestAdoptedByTheNextIsWrittenOnce(t *testing.T) {
	for _, f := range afterFaults() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.shortBudget()
			w.jira.Fail("/rest/servicedeskapi/request", f.jira("POST"))
			d1, _ := w.receive(messagebirdtest.Inbound{Text: "my router is dead"})
			if d1.Status == http.StatusOK {
				t.Fatalf("the lost answer must be retried: %s", d1.Response)
			}
			w.mustReceive(messagebirdtest.Inbound{Text: "since this morning"})
			req := w.only(t)
			w.untilDoneJira(t, w.agent(req.Key, "Have you restarted it?", true))
			w.untilDoneMB(t, d1)
			for _, text := range []string{"my router is dead", "since this morning"} {
				if n := w.inJira(req.Key, text); n != 1 {
					t.Errorf("%q is %d times in the request", text, n)
				}
			}
		})
	}
}

// TestReplyOnARequestNotYetLinkedReachesTheCustomer: the create carrying the first message takes
// effect but its answer is lost, and an agent replies before MessageBird redelivers the message.
// The request carries its creation label, so the reply finds the conversation, and reaches the
// customer once; the redelivered message is not written again.
func TestReplyOnARequestNotYetLinkedReachesTheCustomer(t *testing.T) {
	for _, f := range afterFaults() {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t)
			w.shortBudget()
			w.jira.Fail("/rest/servicedeskapi/request", f.jira("POST"))
			d, _ := w.receive(messagebirdtest.Inbound{Text: "my router is dead"})
			if d.Status == http.StatusOK {
				t.Fatalf("the lost answer must be retried: %s", d.Response)
			}
			req := w.only(t)
			w.untilDoneJira(t, w.agent(req.Key, "We are on it", true))
			if got := w.sentTexts(d.ConversationID); len(got) != 1 || got[0] != "We are on it" {
				t.Fatalf("the customer received %q", got)
			}
			w.untilDoneMB(t, d)
			if n := w.inJira(req.Key, "my router is dead"); n != 1 {
				t.Fatalf("the first message is %d times in the request", n)
			}
			if _, found, err := w.svc.Store.LinkByRequest(context.Background(), req.Key); err != nil || !found {
				t.Fatalf("the request is not linked (%v)", err)
			}
		})
	}
}

// TestReplyOnARequestCxbridgeDidNotCreateIsIgnored: a request without cxbridge's creation label,
// or with a label that is not the one its contact's link is creating, is not a conversation.
func TestReplyOnARequestCxbridgeDidNotCreateIsIgnored(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	ours := w.only(t).Labels()[0] // the label of a request whose link is open: not a new one
	for _, labels := range [][]string{nil, {"cxbridge-mb-0000000000000000000000000000000a-1"}, {ours}} {
		fields := map[string]any{"summary": "raised in the portal", "description": "not from MessageBird"}
		if labels != nil {
			fields["labels"] = labels
		}
		created, err := w.svc.Jira.CreateRequest(context.Background(), jira.NewRequest{ServiceDeskID: deskID, RequestTypeID: requestType, Fields: fields})
		if err != nil {
			t.Fatal(err)
		}
		if reply := w.agent(created.IssueKey, "Hello from the portal", true); reply.Status != http.StatusOK {
			t.Errorf("labels %v: answered %d", labels, reply.Status)
		}
		if _, found, err := w.svc.Store.LinkByRequest(context.Background(), created.IssueKey); err != nil || found {
			t.Errorf("labels %v: %s linked (%v)", labels, created.IssueKey, err)
		}
	}
	if got := w.sentTexts(d.ConversationID); len(got) != 0 {
		t.Fatalf("sent %q for requests that are not the conversation's (its request is %s)", got, r.RequestKey)
	}
	if _, found, _ := w.svc.Store.LinkByRequest(context.Background(), r.RequestKey); !found {
		t.Fatalf("the conversation's own request %s is no longer linked", r.RequestKey)
	}
}
