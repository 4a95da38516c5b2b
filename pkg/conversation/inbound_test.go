package conversation_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/conversation"
)

func TestFirstMessageCreatesARequestAndLaterOnesAggregateInTheDescription(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{DisplayName: "Jane Doe", Text: "My card 4111 1111 1111 1111 was charged twice"})
	if r.Status != conversation.StatusCreated || r.Target != conversation.PhaseDescription || r.RequestKey == "" {
		t.Fatalf("first message: %+v", r)
	}
	req := w.only(t)
	if req.Key != r.RequestKey || req.ServiceDeskID != deskID || req.RequestTypeID != requestType {
		t.Fatalf("request %s in desk %s type %s; answer %+v", req.Key, req.ServiceDeskID, req.RequestTypeID, r)
	}
	if !strings.HasPrefix(req.Summary(), "WhatsApp message from Jane Doe: My card") || strings.Contains(req.Summary(), "4111") {
		t.Fatalf("summary %q", req.Summary())
	}
	desc := w.jira.Description(req.Key)
	if !strings.Contains(desc, "Conversation with Jane Doe ("+janeNumber+") on WhatsApp.") ||
		!strings.Contains(desc, "My card [MASKED:card] was charged twice") || strings.Contains(desc, "4111") {
		t.Fatalf("description %q: the contact named, the card masked", desc)
	}
	if req.Reporter != jiratest.APIUserAccountID {
		t.Fatalf("without an e-mail address the integration account raises the request; reporter %s", req.Reporter)
	}
	if l := req.Labels(); len(l) != 1 || l[0] != "cxbridge-mb-"+d.ContactID+"-1" {
		t.Fatalf("idempotency label %v", l)
	}

	_, r2 := w.mustReceive(messagebirdtest.Inbound{Text: "Order 12345, it is urgent"})
	_, r3 := w.mustReceive(messagebirdtest.Inbound{Text: "Line one\n\n\nline two"})
	for _, r := range []conversation.Result{r2, r3} {
		if r.Status != conversation.StatusAppended || r.Target != conversation.PhaseDescription || r.RequestKey != req.Key {
			t.Fatalf("later message: %+v", r)
		}
	}
	w.settle()
	req = w.only(t)
	desc = w.jira.Description(req.Key)
	first, second, third := strings.Index(desc, "charged twice"), strings.Index(desc, "Order 12345, it is urgent"), strings.Index(desc, "Line one\nline two")
	if first < 0 || second < first || third < second {
		t.Fatalf("description does not hold the messages in order:\n%s", desc)
	}
	if len(req.Comments) != 0 {
		t.Fatalf("before an agent reply nothing goes into comments: %+v", req.Comments)
	}
	if l := w.link(t, d.ContactID); !l.Open() || l.Phase != conversation.PhaseDescription || l.ConversationID != d.ConversationID || l.Platform != "whatsapp" {
		t.Fatalf("link %+v", l)
	}
	if m := w.metricsText(); !strings.Contains(m, `"InboundMessage":1`) || !strings.Contains(m, `"MaskedSpans":`) {
		t.Fatalf("metrics: %s", m)
	}
}

func TestConcurrentFirstMessagesCreateExactlyOneRequest(t *testing.T) {
	w := newWorld(t)
	const n = 6
	var wg sync.WaitGroup
	results := make([]conversation.Result, n)
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := w.mb.Receive(messagebirdtest.Inbound{MSISDN: janeNumber, Text: "burst message " + string(rune('A'+i))})
			if err != nil {
				t.Error(err)
				return
			}
			statuses[i], results[i] = d.Status, result(t, d.Response)
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if statuses[i] != http.StatusOK {
			t.Fatalf("message %d answered %d %+v", i, statuses[i], results[i])
		}
		if results[i].Status == conversation.StatusCreated {
			created++
		}
	}
	req := w.only(t)
	if created != 1 {
		t.Fatalf("%d answers say created; want 1", created)
	}
	desc := w.jira.Description(req.Key)
	for i := range n {
		if strings.Count(desc, "burst message "+string(rune('A'+i))) != 1 {
			t.Fatalf("message %c is not in the description exactly once:\n%s", 'A'+i, desc)
		}
	}
	if n := len(w.jira.Received("/rest/servicedeskapi/request")) - len(w.jira.Received("/rest/servicedeskapi/request/")); n != 1 {
		t.Fatalf("%d create calls reached Jira", n)
	}
}

func TestAttachments(t *testing.T) {
	w := newWorld(t)
	jpeg := append([]byte{0xff, 0xd8, 0xff, 0xe0}, bytes.Repeat([]byte("x"), 2048)...)
	photo := w.mb.AddMedia(messagebirdtest.MediaFile{ContentType: "image/jpeg", Filename: "receipt.jpg", Data: jpeg})
	_, r := w.mustReceive(messagebirdtest.Inbound{DisplayName: "Jane Doe", Media: &messagebirdtest.MediaRef{URL: photo, Caption: "my receipt"}})
	if r.Status != conversation.StatusCreated || r.Attachment != "attached" {
		t.Fatalf("photo: %+v", r)
	}
	req := w.only(t)
	if len(req.Attachments) != 1 || req.Attachments[0].FileName != "receipt.jpg" || !bytes.Equal(req.Attachments[0].Data, jpeg) || !req.Attachments[0].Public {
		t.Fatalf("attachments %+v", req.Attachments)
	}
	if d := w.jira.Description(req.Key); !strings.Contains(d, "my receipt (image attached)") {
		t.Fatalf("description %q", d)
	}
	if dl := w.mb.MediaDownloads(); len(dl) != 1 || !dl[0].Authorized {
		t.Fatalf("media downloads %+v: MessageBird media needs the AccessKey", dl)
	}

	big := w.mb.AddMedia(messagebirdtest.MediaFile{ContentType: "video/mp4", Data: bytes.Repeat([]byte{1}, 128<<10)})
	_, r = w.mustReceive(messagebirdtest.Inbound{Type: "video", Media: &messagebirdtest.MediaRef{URL: big}})
	if r.Status != conversation.StatusAppended || r.Attachment != "not_attached" {
		t.Fatalf("too large: %+v", r)
	}
	_, r = w.mustReceive(messagebirdtest.Inbound{Type: "file", Media: &messagebirdtest.MediaRef{URL: w.mb.URL() + "/media/does-not-exist", Caption: "invoice"}})
	if r.Attachment != "not_attached" {
		t.Fatalf("missing file: %+v", r)
	}
	w.settle()
	req = w.only(t)
	if len(req.Attachments) != 1 {
		t.Fatalf("only the photo is attached: %+v", req.Attachments)
	}
	notes := internalComments(req.Comments)
	if len(notes) != 2 || !strings.Contains(notes[0].Body, "sent a video via WhatsApp that could not be attached: it is larger than the 64 KB limit") ||
		!strings.Contains(notes[1].Body, "sent a file via WhatsApp that could not be attached: MessageBird answered HTTP 404") {
		t.Fatalf("internal notes %+v", notes)
	}
	if d := w.jira.Description(req.Key); !strings.Contains(d, "(video not attached: it is larger than the 64 KB limit)") || !strings.Contains(d, "invoice (file not attached") {
		t.Fatalf("description %q", d)
	}
}

func TestForgedAndExpiredWebhooksAreRejectedWithoutSideEffects(t *testing.T) {
	w := newWorld(t)
	cases := map[string]messagebirdtest.SignOptions{
		"wrong key":        {Key: "someone-elses-key"},
		"expired":          {TTL: -time.Minute, Now: time.Now().Add(-time.Minute)},
		"not yet valid":    {NotBefore: time.Minute},
		"other url":        {PublicURL: "https://evil.example.com/prod/messagebird/webhook"},
		"tampered body":    {Tamper: func(b []byte) []byte { return bytes.Replace(b, []byte("hello"), []byte("HELLO"), 1) }},
		"alg none":         {Alg: "none"},
		"wrong issuer":     {Issuer: "NotMessageBird"},
		"no payload hash":  {OmitPayloadHash: true},
		"no jti":           {OmitJTI: true},
		"alg confusion RS": {Alg: "HS256", HeaderAlg: "RS256"},
	}
	for name, sign := range cases {
		d, _ := w.receive(messagebirdtest.Inbound{Text: "hello", Sign: sign})
		if d.Status != http.StatusUnauthorized || !bytes.Contains(d.Response, []byte(`"status":"rejected"`)) {
			t.Errorf("%s: %d %s", name, d.Status, d.Response)
		}
	}
	if status, body := w.post(t, conversation.RouteMessageBird, []byte(`{"type":"message.created"}`), nil); status != http.StatusUnauthorized ||
		!bytes.Contains(body, []byte(`"field":"MessageBird-Signature-JWT"`)) {
		t.Errorf("no header: %d %s", status, body)
	}
	if n := w.stateItems(t); n != 0 {
		t.Fatalf("rejected webhooks wrote %d items to the state table", n)
	}
	if n := len(w.jira.Received("")); n != 0 {
		t.Fatalf("rejected webhooks made %d Jira calls", n)
	}
	if m := w.metricsText(); !strings.Contains(m, `"Reason":"bad_signature"`) || !strings.Contains(m, `"Reason":"expired"`) || !strings.Contains(m, `"Reason":"url_mismatch"`) {
		t.Fatalf("rejections must be counted by reason: %s", m)
	}
}

func TestReplayedMessageWebhookHasNoSecondEffect(t *testing.T) {
	w := newWorld(t)
	d, r := w.mustReceive(messagebirdtest.Inbound{Text: "only once please"})
	again := w.mb.Replay(d)
	if again.Status != http.StatusUnauthorized || !bytes.Contains(again.Response, []byte("replayed")) {
		t.Fatalf("replay answered %d %s", again.Status, again.Response)
	}
	w.settle()
	req := w.only(t)
	if req.Key != r.RequestKey || strings.Count(w.jira.Description(req.Key), "only once please") != 1 || len(req.Comments) != 0 {
		t.Fatalf("the replay changed the request: %q %+v", w.jira.Description(req.Key), req.Comments)
	}
}

func TestFailedDeliveryIsRetriedWithTheSameTokenAndDoneOnce(t *testing.T) {
	w := newWorld(t)
	w.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: http.StatusServiceUnavailable, Times: 1})
	d, r := w.receive(messagebirdtest.Inbound{Text: "Jira is down right now"})
	if d.Status != http.StatusServiceUnavailable || r.Status != conversation.StatusRetry || r.Reason != "jira_unavailable" {
		t.Fatalf("outage: %d %+v", d.Status, r)
	}
	if w.jira.RequestCount() != 0 {
		t.Fatal("a request was created although Jira failed")
	}
	// MessageBird delivers again; the token (same jti) is accepted because the first delivery
	// was not done.
	again := w.mb.Replay(d)
	r = result(t, again.Response)
	if again.Status != http.StatusOK || r.Status != conversation.StatusCreated {
		t.Fatalf("redelivery: %d %s", again.Status, again.Response)
	}
	// Done now: a third copy is a replay.
	if third := w.mb.Replay(d); third.Status != http.StatusUnauthorized {
		t.Fatalf("third copy: %d %s", third.Status, third.Response)
	}
	if req := w.only(t); strings.Count(w.jira.Description(req.Key), "Jira is down right now") != 1 {
		t.Fatalf("description %q", w.jira.Description(req.Key))
	}
}

func TestRedeliveryAfterAPartialFailureResumes(t *testing.T) {
	w := newWorld(t)
	w.mustReceive(messagebirdtest.Inbound{Text: "first"})
	photo := w.mb.AddMedia(messagebirdtest.MediaFile{ContentType: "image/png", Filename: "screen.png", Data: []byte("\x89PNG\r\n\x1a\n....")})
	// The text reaches the description, then attaching fails: MessageBird must deliver again.
	w.jira.Fail("/rest/servicedeskapi/servicedesk/1/attachTemporaryFile", jiratest.Failure{Status: http.StatusBadGateway, Times: 1})
	d, r := w.receive(messagebirdtest.Inbound{Text: "see screenshot", Media: &messagebirdtest.MediaRef{URL: photo, Caption: "see screenshot"}})
	if d.Status != http.StatusServiceUnavailable {
		t.Fatalf("attach outage: %d %+v", d.Status, r)
	}
	again := w.mb.Replay(d)
	r = result(t, again.Response)
	if again.Status != http.StatusOK || r.Attachment != "attached" || r.Reason != "resumed" {
		t.Fatalf("redelivery: %d %s", again.Status, again.Response)
	}
	req := w.only(t)
	if n := strings.Count(w.jira.Description(req.Key), "see screenshot"); n != 1 || len(req.Attachments) != 1 {
		t.Fatalf("text %d times, %d attachments; want each once", n, len(req.Attachments))
	}
}

func TestEchoesAndStatusUpdatesAreAcknowledgedAndIgnored(t *testing.T) {
	w := newWorld(t)
	w.mb.EchoSent = true
	_, r := w.mustReceive(messagebirdtest.Inbound{Text: "hi"})
	w.agent(r.RequestKey, "Hello from support", true)
	deliveries := w.mb.WaitDeliveries(2, 5*time.Second) // the inbound message and the echo of the reply
	echo := deliveries[len(deliveries)-1]
	if echo.Status != http.StatusOK || !bytes.Contains(echo.Response, []byte(`"reason":"echo"`)) {
		t.Fatalf("echo answered %d %s", echo.Status, echo.Response)
	}
	sent := w.mb.Sent(echo.ConversationID)
	st, err := w.mb.SetStatus(sent[0].ID, "delivered", nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != http.StatusOK || !bytes.Contains(st.Response, []byte(`"reason":"status_update"`)) {
		t.Fatalf("status update answered %d %s", st.Status, st.Response)
	}
	w.settle()
	req := w.only(t)
	if len(req.Comments) != 1 || strings.Count(w.jira.Description(req.Key), "Hello from support") != 0 {
		t.Fatalf("an echo reached the request: %+v", req.Comments)
	}
}

func TestCustomerWithAnEmailIsRaisedAsThemselves(t *testing.T) {
	w := newWorld(t)
	if err := w.mb.Seed(messagebirdtest.SeedConversation{ContactID: "c0ffee0000000000000000000000beef", ConversationID: "conv-seeded-jane",
		MSISDN: janeNumber, DisplayName: "Jane Doe", CustomDetails: map[string]any{"email": "jane@example.com"}, Archived: true}); err != nil {
		t.Fatal(err)
	}
	_, r := w.mustReceive(messagebirdtest.Inbound{Text: "It's Jane"})
	req := w.only(t)
	cust, ok := w.jira.CustomerByEmail("jane@example.com")
	if !ok || req.Reporter != cust.AccountID || r.RequestKey != req.Key {
		t.Fatalf("reporter %s; customer %+v", req.Reporter, cust)
	}
	// Jane comments in the portal herself: that is not an agent reply.
	if _, err := w.jira.AgentComment(req.Key, "Adding a note from the portal", true, cust.AccountID); err != nil {
		t.Fatal(err)
	}
	link := w.link(t, "c0ffee0000000000000000000000beef")
	if got := w.sentTexts(link.ConversationID); len(got) != 0 {
		t.Fatalf("the customer's own portal comment was sent to her: %v", got)
	}
	if link.AgentReply != "" {
		t.Fatalf("a customer comment counted as an agent reply: %+v", link)
	}
}

func TestEmailBuiltFromConfiguration(t *testing.T) {
	w := newWorld(t, func(c *conversation.Config) { c.EmailTemplate = "{msisdn}@whatsapp.example.com" })
	w.mustReceive(messagebirdtest.Inbound{Text: "hello"})
	req := w.only(t)
	cust, ok := w.jira.CustomerByEmail("31612345678@whatsapp.example.com")
	if !ok || req.Reporter != cust.AccountID {
		t.Fatalf("reporter %s, customer %+v", req.Reporter, cust)
	}
}

func TestChannelRoutes(t *testing.T) {
	w := newWorld(t, func(c *conversation.Config) {
		c.Routes["sms"] = conversation.Route{ServiceDeskID: "2", RequestTypeID: "21"}
	})
	w.jira.AddServiceDesk(jiratest.ServiceDesk{ID: "2", ProjectKey: "SMS", RequestTypes: []jiratest.RequestType{{ID: "21", Name: "Text message"}}})
	_, r := w.mustReceive(messagebirdtest.Inbound{ChannelID: messagebirdtest.SMSChannelID, MSISDN: "+447700900123", Text: "sms here"})
	_, r2 := w.mustReceive(messagebirdtest.Inbound{Text: "whatsapp here"})
	if !strings.HasPrefix(r.RequestKey, "SMS-") || !strings.HasPrefix(r2.RequestKey, "SUPP-") {
		t.Fatalf("routes: %s, %s", r.RequestKey, r2.RequestKey)
	}
	if s := w.jira.Requests()[0].Summary(); !strings.HasPrefix(s, "SMS message from +447700900123") {
		t.Fatalf("summary %q", s)
	}
}

func TestInterruptedCreationIsAdoptedNotRepeated(t *testing.T) {
	w := newWorld(t)
	const contact = "c0ffee00000000000000000000000042"
	if err := w.mb.Seed(messagebirdtest.SeedConversation{ContactID: contact, ConversationID: "conv-42", MSISDN: janeNumber, Archived: true}); err != nil {
		t.Fatal(err)
	}
	// An invocation claimed the creation, created the request, and died before recording it.
	label := "cxbridge-mb-" + contact + "-1"
	if err := w.svc.Store.PutLink(t.Context(), conversation.Link{ContactID: contact, State: conversation.StateCreating, Generation: 1,
		CreationToken: label, CreationMessage: "message-of-the-dead-invocation"}); err != nil {
		t.Fatal(err)
	}
	created, err := w.svc.Jira.CreateRequest(t.Context(), jiraNewRequest("WhatsApp message from +31612345678", "first words", label))
	if err != nil {
		t.Fatal(err)
	}
	_, r := w.mustReceive(messagebirdtest.Inbound{Text: "are you there?"})
	if r.RequestKey != created.IssueKey || r.Status != conversation.StatusAppended {
		t.Fatalf("answer %+v; want the message added to %s", r, created.IssueKey)
	}
	if n := w.jira.RequestCount(); n != 1 {
		t.Fatalf("%d requests", n)
	}
	if d := w.jira.Description(created.IssueKey); !strings.Contains(d, "first words") || !strings.Contains(d, "are you there?") {
		t.Fatalf("description %q", d)
	}
}

func TestAFullDescriptionContinuesInAComment(t *testing.T) {
	w := newWorld(t)
	_, r := w.mustReceive(messagebirdtest.Inbound{Text: "start"})
	long := strings.Repeat("All work and no play makes Jack a dull boy. ", 90) // about 4 KB
	var last conversation.Result
	for i := range 9 {
		_, last = w.mustReceive(messagebirdtest.Inbound{Text: long + strconv.Itoa(i)})
	}
	if last.Target != conversation.PhaseComment || last.RequestKey != r.RequestKey {
		t.Fatalf("after about 36 KB: %+v", last)
	}
	w.settle()
	desc := w.jira.Description(r.RequestKey)
	cs := w.jira.Comments(r.RequestKey)
	if len(cs) != 1 || !cs[0].Public || !strings.HasSuffix(cs[0].Body, "boy. 8") {
		t.Fatalf("the overflow is not in one end-user comment: %d comments", len(cs))
	}
	for i := range 9 {
		if n := strings.Count(desc, "boy. "+strconv.Itoa(i)) + strings.Count(cs[0].Body, "boy. "+strconv.Itoa(i)); n != 1 {
			t.Fatalf("message %d appears %d times", i, n)
		}
	}
}

func TestJiraOutageOpensTheBreakerAndNothingIsLost(t *testing.T) {
	w := newWorld(t)
	w.svc.JiraGuard = breaker.New(w.db, w.table, breaker.Settings{Name: "jira", Threshold: 2, OpenFor: 500 * time.Millisecond, CacheMaxAge: -1})
	w.jira.Fail("/rest/", jiratest.Failure{Status: http.StatusServiceUnavailable})
	var failed []messagebirdtest.Delivery
	for i, want := range []string{"jira_unavailable", "jira_unavailable", "jira_breaker_open"} {
		calls := len(w.jira.Received(""))
		d, r := w.receive(messagebirdtest.Inbound{MSISDN: "+3161100000" + strconv.Itoa(i), Text: "during the outage " + strconv.Itoa(i)})
		if d.Status != http.StatusServiceUnavailable || r.Reason != want {
			t.Fatalf("message %d: %d %+v; want 503 %s", i, d.Status, r, want)
		}
		if want == "jira_breaker_open" && len(w.jira.Received("")) != calls {
			t.Fatal("an open breaker still called Jira")
		}
		failed = append(failed, d)
	}
	w.jira.ClearFailures()
	time.Sleep(600 * time.Millisecond)
	for i, d := range failed { // MessageBird delivers each again
		again := w.mb.Replay(d)
		if r := result(t, again.Response); again.Status != http.StatusOK || r.Status != conversation.StatusCreated {
			t.Fatalf("redelivery %d: %d %s", i, again.Status, again.Response)
		}
	}
	if n := w.jira.RequestCount(); n != 3 {
		t.Fatalf("%d requests after the outage; want one per customer", n)
	}
	if m := w.metricsText(); !strings.Contains(m, `"Reason":"jira_breaker_open"`) || !strings.Contains(m, `"WebhookRetry":1`) {
		t.Fatalf("metrics %s", m)
	}
}
