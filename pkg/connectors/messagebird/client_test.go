package messagebird_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

func receive(t *testing.T, fake *messagebirdtest.Server, in messagebirdtest.Inbound) messagebirdtest.Delivery {
	t.Helper()
	d, err := fake.Receive(in)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAuthAccessKey(t *testing.T) {
	e := setup(t)
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hello"})
	conv, err := e.client.GetConversation(ctx(t), d.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	if conv.ID != d.ConversationID {
		t.Fatalf("conversation id %q, want %q", conv.ID, d.ConversationID)
	}
	if got := e.fake.Received("/v1/conversations/"); len(got) != 1 || !got[0].Authorized {
		t.Fatalf("requests %+v, want one authorised", got)
	}
	if e.secrets.loads != 1 {
		t.Errorf("secret loaded %d times, want 1 (lazily, then cached)", e.secrets.loads)
	}

	// A wrong key: 401 with MessageBird's body, one retry with a re-read secret, then an error
	// a person can act on.
	e.secrets.set(messagebird.Credentials{AccessKey: "wrong", SigningKey: testSigningKey})
	e.secrets.Invalidate(secretID)
	before := len(e.fake.Received(""))
	_, err = e.client.GetConversation(ctx(t), d.ConversationID)
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.KindUnauthorized || ce.Status != 401 || ce.Code != "2" ||
		!strings.Contains(ce.Message, "incorrect access_key") || !strings.Contains(ce.Message, "parameter: access_key") {
		t.Fatalf("err = %v, want 401 unauthorized with code 2", err)
	}
	if connectors.IsOutage(err) {
		t.Error("a 401 is not an outage")
	}
	if n := len(e.fake.Received("")) - before; n != 2 {
		t.Errorf("%d requests after a 401, want 2 (one retry with fresh credentials)", n)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Error("error leaks the access key")
	}
}

func TestMissingAccessKeyIsConfiguration(t *testing.T) {
	fake := messagebirdtest.New(testAccessKey, testSigningKey)
	defer fake.Close()
	sec := newSecrets(messagebird.Credentials{SigningKey: testSigningKey})
	c := messagebird.New(fake.URL(), sec, secretID, nil)
	_, err := c.GetConversation(ctx(t), "x")
	if connectors.KindOf(err) != connectors.KindConfig || !strings.Contains(err.Error(), "accessKey") {
		t.Fatalf("err = %v, want a configuration error naming accessKey", err)
	}
	if n := len(fake.Received("")); n != 0 {
		t.Errorf("%d requests sent without credentials", n)
	}
}

func TestSendTextInWindow(t *testing.T) {
	e := setup(t)
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "my printer is on fire"})
	m, err := e.client.SendText(ctx(t), d.ConversationID, messagebirdtest.WhatsAppChannelID, "We are on it.")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID == "" || m.Status != "accepted" || m.ConversationID != d.ConversationID || m.Direction != messagebird.DirectionSent {
		t.Fatalf("message %+v", m)
	}
	sent := e.fake.Sent(d.ConversationID)
	if len(sent) != 1 || sent[0].Content.Text != "We are on it." || sent[0].To != "+31612345678" || sent[0].Platform != "whatsapp" {
		t.Fatalf("fake stored %+v", sent)
	}
	// The exact wire body.
	reqs := e.fake.Received("/v1/conversations/" + d.ConversationID + "/messages")
	want := `{"type":"text","content":{"text":"We are on it."},"channelId":"` + messagebirdtest.WhatsAppChannelID + `"}`
	if len(reqs) != 1 || reqs[0].Method != http.MethodPost || string(reqs[0].Body) != want {
		t.Fatalf("request %+v\nwant body %s", reqs, want)
	}

	// Without a channel id the field is omitted (MessageBird uses the last used channel).
	if _, err := e.client.SendText(ctx(t), d.ConversationID, "", "second"); err != nil {
		t.Fatal(err)
	}
	reqs = e.fake.Received("/v1/conversations/" + d.ConversationID + "/messages")
	if strings.Contains(string(reqs[1].Body), "channelId") {
		t.Errorf("body %s has a channelId", reqs[1].Body)
	}

	// Nothing is sent for an empty reply.
	if _, err := e.client.SendText(ctx(t), d.ConversationID, "", "  "); connectors.KindOf(err) != connectors.KindRejected {
		t.Errorf("empty text: err = %v", err)
	}
}

func TestSendTextOutsideWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode messagebirdtest.WindowMode
	}{
		{"in the 2xx answer", messagebirdtest.WindowRejectInResponse},
		{"as an HTTP error", messagebirdtest.WindowRejectHTTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			e.fake.Window = tc.mode
			d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hi", At: time.Now().Add(-25 * time.Hour)})
			_, err := e.client.SendText(ctx(t), d.ConversationID, "", "sorry for the wait")
			if !errors.Is(err, messagebird.ErrOutsideWindow) {
				t.Fatalf("err = %v, want ErrOutsideWindow", err)
			}
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Kind != connectors.KindRejected || ce.Code != "470" || connectors.IsOutage(err) || ce.Retryable() {
				t.Fatalf("err = %#v, want a non-retryable rejection with code 470", err)
			}
		})
	}

	t.Run("just inside the window", func(t *testing.T) {
		e := setup(t)
		d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hi", At: time.Now().Add(-23*time.Hour - 59*time.Minute)})
		if _, err := e.client.SendText(ctx(t), d.ConversationID, "", "still fine"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("later, on the message and in message.updated", func(t *testing.T) {
		e := setup(t)
		e.fake.Window = messagebirdtest.WindowRejectAsync
		rc := newReceiver(t, "https://hooks.example.com/messagebird", testSigningKey)
		e.fake.SetWebhook(messagebirdtest.Webhook{URL: rc.srv.URL, PublicURL: rc.publicURL})
		d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hi", At: time.Now().Add(-30 * time.Hour)})
		m, err := e.client.SendText(ctx(t), d.ConversationID, "", "late answer")
		if err != nil || m.Status != "accepted" {
			t.Fatalf("send = %+v, %v; want accepted", m, err)
		}
		ds := e.fake.WaitDeliveries(2, 3*time.Second)
		if len(ds) != 2 || ds[1].Event != messagebird.EventMessageUpdated || ds[1].Status != 200 {
			t.Fatalf("deliveries %+v", ds)
		}
		ev, err := messagebird.ParseEvent(rc.last(t).body)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Message.ID != m.ID || !errors.Is(ev.Message.Failure(), messagebird.ErrOutsideWindow) {
			t.Fatalf("event message %+v, failure %v", ev.Message, ev.Message.Failure())
		}
		got, err := e.client.GetMessage(ctx(t), m.ID)
		if err != nil || got.Status != messagebird.StatusFailed || !errors.Is(got.Failure(), messagebird.ErrOutsideWindow) {
			t.Fatalf("GetMessage = %+v, %v", got, err)
		}
	})
}

func TestOtherDeliveryFailureIsNotTheWindow(t *testing.T) {
	m := messagebird.Message{ID: "m1", Status: messagebird.StatusRejected, Error: &messagebird.MessageError{Code: 302, Description: "The contact is not registered on WhatsApp."}}
	err := m.Failure()
	if !errors.Is(err, messagebird.ErrNotDelivered) || errors.Is(err, messagebird.ErrOutsideWindow) || !strings.Contains(err.Error(), "302") {
		t.Fatalf("failure = %v", err)
	}
	if (messagebird.Message{Status: "delivered"}).Failure() != nil {
		t.Error("a delivered message has no failure")
	}
}

func TestTemplateAcceptedOutsideWindow(t *testing.T) {
	e := setup(t)
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hi", At: time.Now().Add(-72 * time.Hour)})
	tpl := messagebird.Template{Namespace: "5ba2d0b7_f2c6_433b_a66e_57b009ceb6ff", Name: "support_update", Language: "en", Params: []string{"JSM-42", "Ana"}}
	m, err := e.client.SendTemplate(ctx(t), d.ConversationID, messagebirdtest.WhatsAppChannelID, tpl)
	if err != nil || m.Status != "accepted" {
		t.Fatalf("template = %+v, %v", m, err)
	}
	reqs := e.fake.Received("/v1/conversations/" + d.ConversationID + "/messages")
	want := `{"type":"hsm","content":{"hsm":{"namespace":"5ba2d0b7_f2c6_433b_a66e_57b009ceb6ff","templateName":"support_update","language":{"policy":"deterministic","code":"en"},"params":[{"default":"JSM-42"},{"default":"Ana"}]}},"channelId":"` + messagebirdtest.WhatsAppChannelID + `"}`
	if string(reqs[0].Body) != want {
		t.Fatalf("body %s\nwant %s", reqs[0].Body, want)
	}
	if _, err := e.client.SendTemplate(ctx(t), d.ConversationID, "", messagebird.Template{Name: "x"}); connectors.KindOf(err) != connectors.KindRejected {
		t.Errorf("incomplete template: err = %v", err)
	}
}

func TestSMSHasNoWindow(t *testing.T) {
	e := setup(t)
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "4915112345678", ChannelID: messagebirdtest.SMSChannelID, Text: "hi", At: time.Now().Add(-96 * time.Hour)})
	m, err := e.client.SendText(ctx(t), d.ConversationID, messagebirdtest.SMSChannelID, "sms reply")
	if err != nil || m.Platform != "sms" {
		t.Fatalf("sms reply = %+v, %v", m, err)
	}
}

func TestArchiveThenInboundOpensNewConversation(t *testing.T) {
	e := setup(t)
	d1 := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "first issue"})
	d2 := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "more detail"})
	if d2.ConversationID != d1.ConversationID || d2.NewConversation {
		t.Fatalf("second message went to %s (new %v), want the active %s", d2.ConversationID, d2.NewConversation, d1.ConversationID)
	}
	if err := e.client.Archive(ctx(t), d1.ConversationID); err != nil {
		t.Fatal(err)
	}
	if got := e.fake.Archives(); len(got) != 1 || got[0] != d1.ConversationID {
		t.Fatalf("archives %v", got)
	}
	reqs := e.fake.Received("/v1/conversations/" + d1.ConversationID)
	if last := reqs[len(reqs)-1]; last.Method != http.MethodPatch || string(last.Body) != `{"status":"archived"}` {
		t.Fatalf("archive request %+v", last)
	}
	conv, err := e.client.GetConversation(ctx(t), d1.ConversationID)
	if err != nil || conv.Status != messagebird.ConversationArchived {
		t.Fatalf("after archive: %+v, %v", conv, err)
	}
	// Archiving twice is fine.
	if err := e.client.Archive(ctx(t), d1.ConversationID); err != nil {
		t.Fatal(err)
	}

	d3 := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "+31 6 12345678", Text: "new issue"})
	if d3.ConversationID == d1.ConversationID || !d3.NewConversation || d3.ContactID != d1.ContactID {
		t.Fatalf("after archive the message went to %s (new %v, contact %s), want a new conversation of contact %s", d3.ConversationID, d3.NewConversation, d3.ContactID, d1.ContactID)
	}
	conv3, err := e.client.GetConversation(ctx(t), d3.ConversationID)
	if err != nil || conv3.Status != messagebird.ConversationActive {
		t.Fatalf("new conversation %+v, %v", conv3, err)
	}
	if n := len(e.fake.ConversationsOf("31612345678")); n != 2 {
		t.Errorf("contact has %d conversations, want 2", n)
	}
	if err := e.client.Archive(ctx(t), "does-not-exist"); connectors.KindOf(err) != connectors.KindNotFound {
		t.Errorf("archive unknown: %v", err)
	}
}

func TestReplyToArchivedConversationOpensNewOne(t *testing.T) {
	e := setup(t)
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hi"})
	if err := e.client.Archive(ctx(t), d.ConversationID); err != nil {
		t.Fatal(err)
	}
	m, err := e.client.SendText(ctx(t), d.ConversationID, "", "a late comment")
	if err != nil {
		t.Fatal(err)
	}
	if m.ConversationID == "" || m.ConversationID == d.ConversationID {
		t.Fatalf("reply to archived went to %q; the answer must name the new conversation", m.ConversationID)
	}
}

func TestGetConversation(t *testing.T) {
	e := setup(t)
	at := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hi", At: at, FirstName: "Ana", LastName: "Silva", DisplayName: "Ana S."})
	conv, err := e.client.GetConversation(ctx(t), d.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	if conv.Status != "active" || conv.ContactID != d.ContactID || conv.Contact == nil || conv.Contact.MSISDN != "31612345678" ||
		conv.Contact.Name() != "Ana S." || conv.Contact.E164() != "+31612345678" {
		t.Fatalf("conversation %+v contact %+v", conv, conv.Contact)
	}
	if len(conv.Channels) != 1 || conv.Channels[0].ID != messagebirdtest.WhatsAppChannelID || conv.Channels[0].PlatformID != "whatsapp" {
		t.Fatalf("channels %+v", conv.Channels)
	}
	if !conv.LastReceivedDatetime.Equal(at) || !conv.WindowOpen(time.Now()) || conv.WindowOpen(at.Add(24*time.Hour)) {
		t.Fatalf("lastReceivedDatetime %v", conv.LastReceivedDatetime)
	}
	if _, err := e.client.GetConversation(ctx(t), "nope"); connectors.KindOf(err) != connectors.KindNotFound {
		t.Fatalf("unknown conversation: %v", err)
	}
}

func TestErrorClassification(t *testing.T) {
	e := setup(t)
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hi"})
	get := func() error {
		_, err := e.client.GetConversation(ctx(t), d.ConversationID)
		return err
	}

	e.fake.Fail("/v1/conversations", messagebirdtest.Failure{Status: 429, RetryAfter: 2, Times: 1})
	err := get()
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.KindRateLimited || !connectors.IsOutage(err) {
		t.Fatalf("429: %v", err)
	}
	if ra, ok := ce.RetryAfter(); !ok || ra != 2*time.Second {
		t.Errorf("Retry-After %v %v", ra, ok)
	}

	for _, status := range []int{500, 502, 503} {
		e.fake.Fail("/v1/conversations", messagebirdtest.Failure{Status: status, Times: 1})
		if err := get(); connectors.KindOf(err) != connectors.KindUnavailable || !connectors.IsOutage(err) {
			t.Errorf("%d: %v", status, err)
		}
	}

	if err := get(); err != nil {
		t.Fatalf("after the failures: %v", err)
	}

	// 4xx: our fault, not an outage.
	_, err = e.client.SendText(ctx(t), d.ConversationID, "no-such-channel", "x")
	if !errors.As(err, &ce) || ce.Kind != connectors.KindRejected || ce.Status != 422 || ce.Code != "10" || !strings.Contains(ce.Message, "channelId") || connectors.IsOutage(err) {
		t.Fatalf("bad channel: %v", err)
	}
	if errors.Is(err, messagebird.ErrOutsideWindow) {
		t.Error("a bad channel is not the window")
	}

	// A hang ends at the caller's deadline and counts as an outage.
	e.fake.Fail("/v1/conversations", messagebirdtest.Failure{Delay: time.Hour, Times: 1})
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.client.GetConversation(c, d.ConversationID)
	if !connectors.IsOutage(err) || time.Since(start) > 2*time.Second {
		t.Fatalf("hang: %v after %v", err, time.Since(start))
	}
	e.fake.ClearFailures()

	// The fake's rate limit.
	e.fake.RateLimit(1, time.Minute)
	if err := get(); err != nil {
		t.Fatal(err)
	}
	if err := get(); connectors.KindOf(err) != connectors.KindRateLimited {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestParseError(t *testing.T) {
	code, msg := messagebird.ParseError([]byte(`{"errors":[{"code":9,"description":"no (correct) recipients found","parameter":"recipient"},{"code":10,"description":"originator is invalid","parameter":"originator"}]}`))
	if code != "9,10" || msg != "no (correct) recipients found (parameter: recipient); originator is invalid (parameter: originator)" {
		t.Errorf("got %q %q", code, msg)
	}
	code, msg = messagebird.ParseError([]byte(`{"errors":[{"code":1001,"message":"You are requesting with an invalid credential.","parameter":null}]}`))
	if code != "1001" || msg != "You are requesting with an invalid credential." {
		t.Errorf("got %q %q", code, msg)
	}
	if code, msg = messagebird.ParseError([]byte(`<html>bad gateway</html>`)); code != "" || msg != "" {
		t.Errorf("html: %q %q", code, msg)
	}
}

func TestFakeWebhookRegistration(t *testing.T) {
	e := setup(t)
	rc := newReceiver(t, "", testSigningKey)
	rc.publicURL = rc.srv.URL + "/hook?x=1"
	body := `{"events":["message.created","message.updated"],"channelId":"` + messagebirdtest.WhatsAppChannelID + `","url":"` + rc.publicURL + `"}`
	req, _ := http.NewRequest(http.MethodPost, e.fake.URL()+"/webhooks", strings.NewReader(body))
	req.Header.Set("Authorization", "AccessKey "+testAccessKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var wh struct {
		URL    string   `json:"url"`
		Status string   `json:"status"`
		Events []string `json:"events"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&wh)
	resp.Body.Close()
	if resp.StatusCode != 201 || wh.URL != rc.publicURL || wh.Status != "enabled" || len(wh.Events) != 2 {
		t.Fatalf("%d %+v", resp.StatusCode, wh)
	}
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "via registered hook"})
	if d.Status != 200 || rc.last(t).err != nil {
		t.Fatalf("delivery %d, verify %v", d.Status, rc.last(t).err)
	}
}

func TestEchoAndStatusWebhooks(t *testing.T) {
	e := setup(t)
	rc := newReceiver(t, "https://hooks.example.com/mb", testSigningKey)
	e.fake.SetWebhook(messagebirdtest.Webhook{URL: rc.srv.URL, PublicURL: rc.publicURL,
		Events: []string{"message.created", "message.updated", "conversation.created", "conversation.updated"}})
	d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "hi"})
	if ds := e.fake.Deliveries(); len(ds) != 2 || ds[0].Event != "conversation.created" || ds[1].Event != "message.created" {
		t.Fatalf("deliveries %+v", ds)
	}
	m, err := e.client.SendText(ctx(t), d.ConversationID, "", "reply")
	if err != nil {
		t.Fatal(err)
	}
	echo, err := e.fake.Echo(m.ID)
	if err != nil || echo.Status != 200 {
		t.Fatal(echo, err)
	}
	ev, err := messagebird.ParseEvent(echo.Body)
	if err != nil || ev.Inbound() || ev.Message.Direction != messagebird.DirectionSent || ev.Message.Content.Text != "reply" {
		t.Fatalf("echo %+v %v", ev.Message, err)
	}
	up, _ := e.fake.SetStatus(m.ID, "delivered", nil)
	ev, err = messagebird.ParseEvent(up.Body)
	if err != nil || ev.Type != messagebird.EventMessageUpdated || ev.Message.Status != "delivered" || ev.Message.Failure() != nil {
		t.Fatalf("update %+v %v", ev, err)
	}
	closed, _ := e.fake.ArchiveFromDashboard(d.ConversationID)
	ev, err = messagebird.ParseEvent(closed.Body)
	if err != nil || ev.Type != messagebird.EventConversationUpdated || ev.Conversation.Status != messagebird.ConversationArchived || ev.Message != nil {
		t.Fatalf("dashboard close %+v %v", ev, err)
	}
	for _, d := range e.fake.Deliveries() {
		if d.Status != 200 {
			t.Errorf("%s delivery status %d", d.Event, d.Status)
		}
	}

	// EchoSent posts the echo on its own.
	e.fake.EchoSent = true
	n := len(e.fake.Deliveries())
	d2 := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: "31612345678", Text: "again"})
	if _, err := e.client.SendText(ctx(t), d2.ConversationID, "", "auto echo"); err != nil {
		t.Fatal(err)
	}
	ds := e.fake.WaitDeliveries(n+3, 3*time.Second)
	last := ds[len(ds)-1]
	if !bytes.Contains(last.Body, []byte(`"direction":"sent"`)) || !bytes.Contains(last.Body, []byte("auto echo")) {
		t.Fatalf("last delivery %s", last.Body)
	}
}
