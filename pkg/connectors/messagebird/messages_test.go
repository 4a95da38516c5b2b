package messagebird_test

import (
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

func TestListMessagesOfASeededConversation(t *testing.T) {
	e := setup(t)
	last := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	err := e.fake.Seed(messagebirdtest.SeedConversation{ContactID: "c0ffee00000000000000000000000001", ConversationID: "conv-fixed-1",
		MSISDN: "+31612345678", DisplayName: "Jane Doe", CustomDetails: map[string]any{"email": "jane@example.com"}, LastInbound: last})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SendText(ctx(t), "conv-fixed-1", "", "first reply"); err != nil {
		t.Fatalf("a seeded contact inside the window can be answered: %v", err)
	}
	if _, err := e.client.SendText(ctx(t), "conv-fixed-1", "", "second reply"); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.ListMessages(ctx(t), "conv-fixed-1", 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	if list.TotalCount != 2 || len(list.Items) != 2 || list.Items[0].Content.Text != "first reply" || list.Items[1].Direction != "sent" {
		t.Fatalf("list %+v", list)
	}
	conv, err := e.client.GetConversation(ctx(t), "conv-fixed-1")
	if err != nil {
		t.Fatal(err)
	}
	if conv.ContactID != "c0ffee00000000000000000000000001" || conv.Contact == nil || conv.Contact.E164() != "+31612345678" || !conv.LastReceivedDatetime.Equal(last) {
		t.Fatalf("conversation %+v", conv)
	}
	if _, err := e.client.ListMessages(ctx(t), "no-such-conversation", 0, 10); connectors.KindOf(err) != connectors.KindNotFound {
		t.Fatalf("unknown conversation: %v", err)
	}
	// The same contact cannot have two active conversations.
	if err := e.fake.Seed(messagebirdtest.SeedConversation{ContactID: "c0ffee00000000000000000000000001", ConversationID: "conv-fixed-2", MSISDN: "31612345678"}); err == nil {
		t.Fatal("a second active conversation was seeded")
	}
}
