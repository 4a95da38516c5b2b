package conversation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/conversation"
)

func TestAgentReplyRoundTrip(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{DisplayName: "Jane Doe", Text: "Where is my order?"})
	key, conv := r.RequestKey, d.ConversationID

	if dl := w.agent(key, "Check the warehouse first", false); dl.Status != http.StatusOK {
		t.Fatalf("internal comment delivery: %d", dl.Status)
	}
	if dl := w.agent(key, "It ships tomorrow.", true); dl.Status != http.StatusOK {
		t.Fatalf("public comment delivery: %d", dl.Status)
	}
	if got := w.sentTexts(conv); len(got) != 1 || got[0] != "It ships tomorrow." {
		t.Fatalf("sent to the end user: %q; want only the public agent comment", got)
	}
	sent := w.mb.Sent(conv)[0]
	if sent.ChannelID != messagebirdtest.WhatsAppChannelID || sent.To != janeNumber {
		t.Fatalf("reply went to %s on %s", sent.To, sent.ChannelID)
	}

	// After the agent's reply, the customer's messages gather in one end-user comment.
	_, r = w.mustReceive(messagebirdtest.Inbound{Text: "Thanks! 4111-1111-1111-1111 is the card I used"})
	if r.Status != conversation.StatusAppended || r.Target != conversation.PhaseComment {
		t.Fatalf("reply after the agent: %+v", r)
	}
	w.mustReceive(messagebirdtest.Inbound{Text: "One more thing"})
	w.settle() // Jira echoes cxbridge's own comment: it must not be sent back to Jane
	cs := w.jira.Comments(key)
	if len(cs) != 3 {
		t.Fatalf("comments %+v", cs)
	}
	mine := cs[2]
	if !mine.Public || mine.Author != jiratest.APIUserAccountID || !strings.HasPrefix(mine.Body, "Message from Jane Doe ("+janeNumber+") via WhatsApp:") ||
		!strings.Contains(mine.Body, "Thanks! [MASKED:card] is the card I used") || !strings.Contains(mine.Body, "One more thing") {
		t.Fatalf("end-user comment %+v", mine)
	}
	if got := w.sentTexts(conv); len(got) != 1 {
		t.Fatalf("cxbridge's own comment was echoed to the customer: %q", got)
	}

	// The next agent reply closes that comment: the customer's next message starts another.
	w.agent(key, "Sure, what is it?", true)
	_, r = w.mustReceive(messagebirdtest.Inbound{Text: "Can I change the address?"})
	w.settle()
	cs = w.jira.Comments(key)
	if len(cs) != 5 || cs[4].Author != jiratest.APIUserAccountID || !strings.Contains(cs[4].Body, "Can I change the address?") || strings.Contains(cs[4].Body, "One more thing") {
		t.Fatalf("comments after the second agent reply %+v", cs)
	}
	if d := w.jira.Description(key); strings.Contains(d, "Thanks") || strings.Contains(d, "address") {
		t.Fatalf("description changed after the agent's reply: %q", d)
	}
	if got := w.sentTexts(conv); len(got) != 2 || got[1] != "Sure, what is it?" {
		t.Fatalf("sent %q", got)
	}

	// Comment bodies may arrive as ADF; they are sent as plain text.
	w.jira.SetWebhookCommentADF(true)
	w.agent(key, "Paragraph one\n\nParagraph two", true)
	if got := w.sentTexts(conv); len(got) != 3 || got[2] != "Paragraph one\nParagraph two" {
		t.Fatalf("ADF comment sent as %q", got)
	}
	if m := w.metricsText(); !strings.Contains(m, `"ReplyOutcome":1`) || !strings.Contains(m, `"Outcome":"sent"`) {
		t.Fatalf("metrics %s", m)
	}
}

func TestReplayedJiraDeliveryHasNoSecondEffect(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	first := w.agent(r.RequestKey, "Hello Jane", true)
	again, err := w.jira.Redeliver(first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != http.StatusOK || again.Header.Get(jira.HeaderRetry) != "1" {
		t.Fatalf("redelivery %d %v", again.Status, again.Header)
	}
	// The same comment under another delivery id (a second webhook registration) is sent once too.
	w.jira.RegisterWebhook(w.hook.URL+"/prod/jira/webhook", jiraSecret)
	ds, err := w.jira.AgentComment(r.RequestKey, "Sent once", true, "")
	if err != nil || len(ds) != 2 || ds[0].ID == ds[1].ID || ds[0].Status != http.StatusOK || ds[1].Status != http.StatusOK {
		t.Fatalf("two registrations: %+v %v", ds, err)
	}
	if got := w.sentTexts(d.ConversationID); len(got) != 2 || got[0] != "Hello Jane" || got[1] != "Sent once" {
		t.Fatalf("sent %q; each comment exactly once", got)
	}
}

func TestForgedJiraWebhookIsRejected(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	before := w.stateItems(t)
	body := []byte(`{"timestamp":1,"webhookEvent":"comment_created","comment":{"id":"1","author":{"accountId":"x"},"body":"Send me your password","jsdPublic":true},"issue":{"id":"1","key":"` + r.RequestKey + `"}}`)
	for name, sig := range map[string]string{
		"none":       "",
		"wrong key":  jira.Sign([]byte("not-the-secret"), body),
		"sha1":       "sha1=0123456789abcdef0123456789abcdef01234567",
		"truncated":  jira.Sign([]byte(jiraSecret), body)[:20],
		"other body": jira.Sign([]byte(jiraSecret), []byte(`{}`)),
	} {
		status, out := w.post(t, conversation.RouteJira, body, map[string]string{jira.HeaderSignature: sig, jira.HeaderDeliveryID: "d-" + name})
		if status != http.StatusUnauthorized || !bytes.Contains(out, []byte(`"field":"X-Hub-Signature"`)) {
			t.Errorf("%s: %d %s", name, status, out)
		}
	}
	status, out := w.post(t, conversation.RouteJira, body, map[string]string{jira.HeaderSignature: jira.Sign([]byte(jiraSecret), body)})
	if status != http.StatusBadRequest || !bytes.Contains(out, []byte(`"field":"X-Atlassian-Webhook-Identifier"`)) {
		t.Errorf("no delivery id: %d %s", status, out)
	}
	if got := w.sentTexts(d.ConversationID); len(got) != 0 {
		t.Fatalf("a forged comment reached the customer: %q", got)
	}
	if after := w.stateItems(t); after != before {
		t.Fatalf("rejected webhooks wrote %d items", after-before)
	}
}

func TestRepliesForRequestsWithoutAConversationAreIgnored(t *testing.T) {
	w := newWorld(t)
	other, err := w.svc.Jira.CreateRequest(t.Context(), jiraNewRequest("Raised by e-mail", "not a chat", "unrelated"))
	if err != nil {
		t.Fatal(err)
	}
	if d := w.agent(other.IssueKey, "Hello", true); d.Status != http.StatusOK {
		t.Fatalf("%d", d.Status)
	}
	if n := len(w.mb.Received("/v1/conversations")); n != 0 {
		t.Fatalf("%d MessageBird calls for a request without a conversation", n)
	}
}

func TestMessageBirdOutageDuringAReplyIsRedelivered(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	w.mb.Fail("/v1/conversations/", messagebirdtest.Failure{Status: http.StatusServiceUnavailable, Times: 1})
	first := w.agent(r.RequestKey, "Are you still there?", true)
	if first.Status != http.StatusServiceUnavailable {
		t.Fatalf("outage answered %d", first.Status)
	}
	if got := w.sentTexts(d.ConversationID); len(got) != 0 {
		t.Fatalf("sent %q", got)
	}
	again, _ := w.jira.Redeliver(first.ID)
	if again.Status != http.StatusOK {
		t.Fatalf("redelivery %d", again.Status)
	}
	if got := w.sentTexts(d.ConversationID); len(got) != 1 || got[0] != "Are you still there?" {
		t.Fatalf("sent %q", got)
	}
}

func TestInterruptedSendIsNotRepeated(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	delivery := w.agent(r.RequestKey, "Your parcel is on its way", true)
	if got := w.sentTexts(d.ConversationID); len(got) != 1 {
		t.Fatalf("sent %q", got)
	}
	// Make it look as if the invocation died after MessageBird accepted the message but before
	// it recorded that: the effect claimed and unfinished, the delivery not completed.
	ctx := context.Background()
	comment := w.jira.Comments(r.RequestKey)[0].ID
	started := time.Now().Add(-30 * time.Second)
	put := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "REPLAY#jout#comment-" + comment}, "sk": &types.AttributeValueMemberS{Value: "REPLAY"},
		"status": &types.AttributeValueMemberS{Value: "INPROGRESS"}, "owner": &types.AttributeValueMemberS{Value: "dead-invocation"},
		"lease_until": &types.AttributeValueMemberN{Value: "1"}, "started": &types.AttributeValueMemberN{Value: itoa(started.UnixMilli())},
		"expires_at": &types.AttributeValueMemberN{Value: itoa(time.Now().Add(time.Hour).Unix())},
	}
	if _, err := w.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(w.table), Item: put}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(w.table), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "REPLAY#jira#" + delivery.ID}, "sk": &types.AttributeValueMemberS{Value: "REPLAY"}}}); err != nil {
		t.Fatal(err)
	}
	again, _ := w.jira.Redeliver(delivery.ID)
	if again.Status != http.StatusOK {
		t.Fatalf("redelivery %d", again.Status)
	}
	if got := w.sentTexts(d.ConversationID); len(got) != 1 {
		t.Fatalf("the reply went out %d times: %q", len(got), got)
	}
	if n := len(w.mb.Received("/v1/conversations/" + d.ConversationID + "/messages")); n < 2 {
		t.Fatalf("the conversation was not checked before sending again (%d calls)", n)
	}
}

func TestRepliesOutsideTheWhatsAppWindow(t *testing.T) {
	old := time.Now().Add(-25 * time.Hour)

	t.Run("no template: an internal comment says it was not delivered", func(t *testing.T) {
		w := newWorld(t)
		d, r := w.mustReceive(messagebirdtest.Inbound{Text: "old question", At: old})
		dl := w.agent(r.RequestKey, "Late answer", true)
		if dl.Status != http.StatusOK {
			t.Fatalf("%d", dl.Status)
		}
		if sent := w.mb.Sent(d.ConversationID); len(sent) != 0 {
			t.Fatalf("a free-form message was sent outside the window: %+v", sent)
		}
		notes := internalComments(w.jira.Comments(r.RequestKey))
		if len(notes) != 1 || !strings.Contains(notes[0].Body, "This reply was not delivered") || !strings.Contains(notes[0].Body, "more than 24 hours ago") {
			t.Fatalf("notes %+v", notes)
		}
		// An SMS conversation has no window.
		ds, sr := w.mustReceive(messagebirdtest.Inbound{MSISDN: "+447700900123", ChannelID: messagebirdtest.SMSChannelID, Text: "old sms", At: old})
		w.agent(sr.RequestKey, "SMS answer", true)
		if got := w.sentTexts(ds.ConversationID); len(got) != 1 {
			t.Fatalf("sms reply: %q", got)
		}
	})

	t.Run("template configured: the template goes instead", func(t *testing.T) {
		w := newWorld(t, func(c *conversation.Config) {
			c.WindowTemplate = &messagebird.Template{Namespace: "ns_1234", Name: "support_reply", Language: "en"}
			c.WindowTemplateParams = []string{"{requestKey}"}
		})
		d, r := w.mustReceive(messagebirdtest.Inbound{Text: "old question", At: old})
		w.agent(r.RequestKey, "Late answer", true)
		sent := w.mb.Sent(d.ConversationID)
		if len(sent) != 1 || sent[0].Type != "hsm" || sent[0].Content.HSM.TemplateName != "support_reply" || sent[0].Status != "accepted" ||
			len(sent[0].Content.HSM.Params) != 1 || sent[0].Content.HSM.Params[0].Default != r.RequestKey {
			t.Fatalf("sent %+v", sent)
		}
		notes := internalComments(w.jira.Comments(r.RequestKey))
		if len(notes) != 1 || !strings.Contains(notes[0].Body, `The template "support_reply" was sent instead`) {
			t.Fatalf("notes %+v", notes)
		}
	})

	t.Run("MessageBird refuses what looked in time", func(t *testing.T) {
		w := newWorld(t)
		w.svc.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) } // our clock says 23 h
		d, r := w.mustReceive(messagebirdtest.Inbound{Text: "question", At: old})
		w.agent(r.RequestKey, "Answer", true)
		sent := w.mb.Sent(d.ConversationID)
		if len(sent) != 1 || sent[0].Status != "rejected" || sent[0].Error == nil || sent[0].Error.Code != 470 {
			t.Fatalf("sent %+v", sent)
		}
		notes := internalComments(w.jira.Comments(r.RequestKey))
		if len(notes) != 1 || !strings.Contains(notes[0].Body, "24 hours") {
			t.Fatalf("notes %+v", notes)
		}
	})

	t.Run("MessageBird fails the message later", func(t *testing.T) {
		w := newWorld(t)
		w.mb.Window = messagebirdtest.WindowRejectAsync
		w.svc.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
		d, r := w.mustReceive(messagebirdtest.Inbound{Text: "question", At: old})
		w.agent(r.RequestKey, "Answer", true)
		ds := w.mb.WaitDeliveries(2, 5*time.Second)
		last := ds[len(ds)-1]
		if last.Event != "message.updated" || last.Status != http.StatusOK || result(t, last.Response).Status != conversation.StatusReported {
			t.Fatalf("message.updated answered %d %s", last.Status, last.Response)
		}
		notes := internalComments(w.jira.Comments(r.RequestKey))
		if len(notes) != 1 || !strings.Contains(notes[0].Body, "was not delivered: it was outside WhatsApp's 24-hour window") {
			t.Fatalf("notes %+v", notes)
		}
		if again := w.mb.Replay(last); again.Status != http.StatusUnauthorized {
			t.Fatalf("replayed status update %d", again.Status)
		}
		if _, err := w.mb.SetStatus(w.mb.Sent(d.ConversationID)[0].ID, "failed", &messagebirdtest.MessageError{Code: 470, Description: messagebirdtest.WindowDescription}); err != nil {
			t.Fatal(err)
		}
		if n := len(internalComments(w.jira.Comments(r.RequestKey))); n != 1 {
			t.Fatalf("the same failure was reported %d times", n)
		}
	})
}

func TestOtherDeliveryFailuresAreReported(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	w.agent(r.RequestKey, "Hello back", true)
	msg := w.mb.Sent(d.ConversationID)[0]
	st, err := w.mb.SetStatus(msg.ID, "failed", &messagebirdtest.MessageError{Code: 131026, Description: "Message undeliverable"})
	if err != nil || st.Status != http.StatusOK {
		t.Fatalf("%v %d %s", err, st.Status, st.Response)
	}
	notes := internalComments(w.jira.Comments(r.RequestKey))
	if len(notes) != 1 || !strings.Contains(notes[0].Body, "Message undeliverable (MessageBird code 131026)") || !strings.Contains(notes[0].Body, msg.ID) {
		t.Fatalf("notes %+v", notes)
	}
}

func TestDoneArchivesTheConversationAndTheNextMessageStartsANewRequest(t *testing.T) {
	w := newWorld(t, func(c *conversation.Config) {
		c.StatusNotifications = map[string]string{
			"in progress": "An agent is working on {requestKey}.",
			"done":        "{requestKey} is {status}. Write again to open a new request.",
		}
	})
	d, r := w.mustReceive(messagebirdtest.Inbound{DisplayName: "Jane Doe", Text: "Printer on fire"})
	key := r.RequestKey
	if _, err := w.jira.Transition(key, "Start progress"); err != nil {
		t.Fatal(err)
	}
	ds, err := w.jira.Transition(key, "Resolve")
	if err != nil || ds[0].Status != http.StatusOK {
		t.Fatalf("%v %+v", err, ds)
	}
	want := []string{"An agent is working on " + key + ".", key + " is Resolved. Write again to open a new request."}
	if got := w.sentTexts(d.ConversationID); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("notifications %q", got)
	}
	if a := w.mb.Archives(); len(a) != 1 || a[0] != d.ConversationID {
		t.Fatalf("archived %v", a)
	}
	if l := w.link(t, d.ContactID); l.State != conversation.StateClosed || l.ClosedReason != "request_done" {
		t.Fatalf("link %+v", l)
	}
	// Jira delivers the same change again: nothing more happens.
	if again, _ := w.jira.Redeliver(ds[0].ID); again.Status != http.StatusOK || len(w.mb.Archives()) != 1 || len(w.sentTexts(d.ConversationID)) != 2 {
		t.Fatalf("redelivery had an effect: %d, %d archives", again.Status, len(w.mb.Archives()))
	}
	// A comment on the closed request no longer reaches the customer.
	w.agent(key, "Anything else?", true)
	if got := w.sentTexts(d.ConversationID); len(got) != 2 {
		t.Fatalf("sent after close: %q", got)
	}

	d2, r2 := w.mustReceive(messagebirdtest.Inbound{Text: "It is on fire again"})
	if r2.Status != conversation.StatusCreated || r2.RequestKey == key || d2.ConversationID == d.ConversationID || !d2.NewConversation {
		t.Fatalf("after done: %+v (conversation %s, was %s)", r2, d2.ConversationID, d.ConversationID)
	}
	notes := internalComments(w.jira.Comments(key))
	if len(notes) != 1 || !strings.Contains(notes[0].Body, "wrote again via WhatsApp after this request was resolved; the conversation continues in "+r2.RequestKey) {
		t.Fatalf("note on the old request %+v", notes)
	}
	w.agent(r2.RequestKey, "On it", true)
	if got := w.sentTexts(d2.ConversationID); len(got) != 1 || got[0] != "On it" {
		t.Fatalf("reply on the new request: %q", got)
	}
}

func TestConversationClosedInMessageBird(t *testing.T) {
	t.Run("conversation.updated closes the link", func(t *testing.T) {
		w := newWorld(t)
		d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
		up, err := w.mb.ArchiveFromDashboard(d.ConversationID)
		if err != nil || up.Status != http.StatusOK || result(t, up.Response).Status != conversation.StatusClosed {
			t.Fatalf("%v %d %s", err, up.Status, up.Response)
		}
		w.agent(r.RequestKey, "Hello?", true)
		if n := len(w.mb.Sent(d.ConversationID)); n != 0 {
			t.Fatalf("sent %d messages to an archived conversation", n)
		}
		_, r2 := w.mustReceive(messagebirdtest.Inbound{Text: "new question"})
		if r2.Status != conversation.StatusCreated || r2.RequestKey == r.RequestKey {
			t.Fatalf("%+v", r2)
		}
	})
	t.Run("without conversation.updated, the new conversation id tells", func(t *testing.T) {
		w := newWorld(t)
		w.mb.SetWebhook(messagebirdtest.Webhook{URL: w.hook.URL + "/prod/messagebird/webhook", PublicURL: publicURL, Events: []string{"message.created"}})
		d, r := w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
		if _, err := w.mb.ArchiveFromDashboard(d.ConversationID); err != nil {
			t.Fatal(err)
		}
		_, r2 := w.mustReceive(messagebirdtest.Inbound{Text: "new question"})
		if r2.Status != conversation.StatusCreated || r2.RequestKey == r.RequestKey {
			t.Fatalf("%+v", r2)
		}
		notes := internalComments(w.jira.Comments(r.RequestKey))
		if len(notes) != 1 || !strings.Contains(notes[0].Body, "after the conversation was closed in MessageBird") {
			t.Fatalf("notes %+v", notes)
		}
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
