package messagebird_test

import (
	"errors"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

// msisdn arrives as a JSON number; it must survive exactly, also beyond float64's 2^53.
func TestMSISDNExactFromFakeWebhook(t *testing.T) {
	e := setup(t)
	for _, n := range []string{"31612345678", "447700900123", "123456789012345", "8613800138000123", "999999999999999999"} {
		d := receive(t, e.fake, messagebirdtest.Inbound{MSISDN: n, Text: "hi"})
		ev, err := messagebird.ParseEvent(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Contact == nil || ev.Contact.MSISDN.String() != n || ev.Contact.E164() != "+"+n || string(ev.Message.From) != "+"+n {
			t.Fatalf("%s: contact %+v, from %q", n, ev.Contact, ev.Message.From)
		}
		conv, err := e.client.GetConversation(ctx(t), d.ConversationID)
		if err != nil || conv.Contact.MSISDN.String() != n {
			t.Fatalf("%s: GetConversation contact %+v %v", n, conv.Contact, err)
		}
	}
}

func TestParseEvent(t *testing.T) {
	body := `{"contact":{"id":"75ef52b66cf24ebcbac8727cd4316ea8","href":"","msisdn":56992302305,"displayName":"Miguel M","firstName":"","lastName":"","customDetails":{},"createdDatetime":"2021-02-02T20:37:30Z","updatedDatetime":null},
	"conversation":{"id":"7b2223447c3441e7961aab583ebe8d14","contactId":"75ef52b66cf24ebcbac8727cd4316ea8","status":"active","createdDatetime":"2021-02-02T20:37:30Z","updatedDatetime":"2021-02-08T13:18:43Z","lastReceivedDatetime":"2021-02-09T01:17:57.518405608Z","lastUsedChannelId":"f457361cf59348129ca387a52d4d7fe2","messages":{"totalCount":0,"href":"https://x/v1/conversations/7b22/messages"}},
	"message":{"id":"m1","conversationId":"7b2223447c3441e7961aab583ebe8d14","platform":"whatsapp","to":"+1111","from":"+56992302305","channelId":"f457361cf59348129ca387a52d4d7fe2","type":"video","content":{"video":{"url":"https://media.messagebird.com/v1/media/2566f6eb-aa00-47fd-9608-604e08bb537d","caption":"hello"}},"direction":"received","status":"received","createdDatetime":"2021-02-09T01:17:57Z","updatedDatetime":"2021-02-09T01:17:57.527914771Z"},
	"type":"message.created"}`
	ev, err := messagebird.ParseEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Inbound() || ev.Contact.MSISDN != "56992302305" || ev.Contact.Name() != "Miguel M" || ev.Conversation.LastReceivedDatetime.Nanosecond() != 518405608 {
		t.Fatalf("%+v", ev)
	}
	if m, ok := ev.Message.Content.Attachment(); !ok || m.Caption != "hello" || ev.Message.Platform != messagebird.PlatformWhatsApp {
		t.Fatalf("attachment %+v", ev.Message.Content)
	}

	// msisdn variants: string with "+", null, and something that is not a number.
	for raw, want := range map[string]string{`"+31612345678"`: "31612345678", `null`: "", `"n/a"`: "", `31612345678`: "31612345678"} {
		ev, err := messagebird.ParseEvent([]byte(`{"type":"message.created","contact":{"id":"c","msisdn":` + raw + `},"message":{"id":"m","from":31612345678}}`))
		if err != nil || ev.Contact.MSISDN.String() != want || ev.Message.From != "31612345678" {
			t.Errorf("msisdn %s: %q from %q %v", raw, ev.Contact.MSISDN, ev.Message.From, err)
		}
	}

	for _, bad := range []string{``, `[]`, `{}`, `{"type":"message.created"}`, `{"type":"conversation.updated"}`} {
		if _, err := messagebird.ParseEvent([]byte(bad)); !errors.Is(err, messagebird.ErrBadEvent) {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

// A timestamp that cannot be read does not cost the end user's message: it is dropped (zero).
// Anything else malformed still makes a bad event.
func TestParseEventForgivesUnreadableTimes(t *testing.T) {
	body := `{"type":"message.created","contact":{"id":"c1","msisdn":31612345678,"createdDatetime":""},
	  "conversation":{"id":"v1","contactId":"c1","status":"active","lastReceivedDatetime":"22/11/2026 10:15","createdDatetime":"2026-11-22T10:15:00Z"},
	  "message":{"id":"m1","direction":"received","type":"text","content":{"text":"hi"},"createdDatetime":1700000000}}`
	ev, err := messagebird.ParseEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Inbound() || ev.Message.ID != "m1" || ev.Contact.ID != "c1" || !ev.Conversation.LastReceivedDatetime.IsZero() || ev.Conversation.CreatedDatetime.IsZero() {
		t.Fatalf("%+v", ev)
	}
	if _, err := messagebird.ParseEvent([]byte(`{"type":"message.created","message":{"id":["m1"]}}`)); !errors.Is(err, messagebird.ErrBadEvent) {
		t.Fatalf("a message id of the wrong type: %v", err)
	}
}
