package localstack

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/conversation"
)

// MessageBird contacts the events under events/messagebird-inbound use. Each event has its own,
// so the events run in any order, in parallel.
const (
	ContactFirstMessage = "c0ffee00000000000000000000000001" // writes for the first time
	ContactDescription  = "c0ffee00000000000000000000000002" // open request, no agent reply yet
	ContactComment      = "c0ffee00000000000000000000000003" // open request, an agent replied
	ContactAttachment   = "c0ffee00000000000000000000000004" // first message is a photo
	ContactReply        = "c0ffee00000000000000000000000005" // receives an agent's reply
	ContactWindow       = "c0ffee00000000000000000000000006" // last wrote 26 hours ago
	ContactDone         = "c0ffee00000000000000000000000007" // their request is resolved

	// ReplayedJTI is a MessageBird JWT id the local world has already seen.
	ReplayedJTI = "evt-replayed-0001"
	// MediaReceipt is a seeded inbound attachment: {{MESSAGEBIRD_BASE_URL}}/media/local-receipt.
	MediaReceipt = "local-receipt"
)

// The requests seeded in the CHAT desk, in creation order.
const (
	RequestDescription = "CHAT-1" // ContactDescription's
	RequestComment     = "CHAT-2" // ContactComment's
	RequestReply       = "CHAT-3" // ContactReply's
	RequestWindow      = "CHAT-4" // ContactWindow's
	RequestDone        = "CHAT-5" // ContactDone's
)

func init() { seed(seedConversations) }

// seedConversations gives each messagebird-inbound event the world it expects: MessageBird
// contacts and conversations, their JSM requests and the links between them. With a real
// MessageBird or Jira there is nothing to seed.
func seedConversations(ctx context.Context, s *Stack) error {
	mb, jf := s.MessageBird(), s.Jira()
	if mb == nil || jf == nil {
		return nil
	}
	jf.AddServiceDesk(jiratest.ServiceDesk{ID: LocalChatDeskID, ProjectKey: "CHAT", ProjectName: "Chat",
		RequestTypes: []jiratest.RequestType{{ID: LocalChatRequestType, Name: "Chat conversation"}}})
	mb.AddMediaWithID(MediaReceipt, messagebirdtest.MediaFile{ContentType: "image/jpeg", Filename: "receipt.jpg",
		Data: append([]byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0}, make([]byte, 2048)...)})
	store := &conversation.Store{DB: s.DynamoDB.Client(), Table: s.Tables.State}
	if err := store.Mark(ctx, "jwt", ReplayedJTI, time.Now().Add(24*time.Hour)); err != nil {
		return err
	}
	client := jira.New(jf.URL(), fixedSecret{"email": LocalJiraEmail, "apiToken": LocalJiraAPIToken}, "cxbridge/jira", nil)

	now := time.Now().UTC()
	for _, c := range []struct {
		contact, key, name, number string
		lastInbound                time.Time
		agentReplied               bool
	}{
		{ContactDescription, RequestDescription, "Bea Bakker", "+31600000002", now.Add(-10 * time.Minute), false},
		{ContactComment, RequestComment, "Cem Yilmaz", "+31600000003", now.Add(-20 * time.Minute), true},
		{ContactReply, RequestReply, "Eve Evans", "+31600000005", now.Add(-time.Hour), false},
		{ContactWindow, RequestWindow, "Fay Fischer", "+31600000006", now.Add(-26 * time.Hour), false},
		{ContactDone, RequestDone, "Gus Gomez", "+31600000007", now.Add(-2 * time.Hour), true},
	} {
		convID := "conv-" + c.contact[len(c.contact)-4:]
		if err := mb.Seed(messagebirdtest.SeedConversation{ContactID: c.contact, ConversationID: convID, MSISDN: c.number,
			DisplayName: c.name, LastInbound: c.lastInbound}); err != nil {
			return err
		}
		req, err := client.CreateRequest(ctx, jira.NewRequest{ServiceDeskID: LocalChatDeskID, RequestTypeID: LocalChatRequestType,
			Fields: map[string]any{
				"summary":     "WhatsApp message from " + c.name + ": Hello",
				"description": "Conversation with " + c.name + " (" + c.number + ") on WhatsApp.\n\n[" + c.lastInbound.Format("2006-01-02 15:04 UTC") + "] Hello",
				"labels":      []string{"cxbridge-mb-" + c.contact + "-1"},
			}})
		if err != nil {
			return err
		}
		if req.IssueKey != c.key {
			return fmt.Errorf("seeded %s as %s; the events expect %s (was the CHAT desk seeded twice?)", c.contact, req.IssueKey, c.key)
		}
		link := conversation.Link{ContactID: c.contact, State: conversation.StateOpen, RequestKey: c.key, ServiceDeskID: LocalChatDeskID,
			Generation: 1, ConversationID: convID, ChannelID: messagebirdtest.WhatsAppChannelID, Platform: "whatsapp",
			LastInbound: c.lastInbound, Phase: conversation.PhaseDescription, ContactName: c.name}
		if c.agentReplied {
			if _, err := jf.AgentComment(c.key, "Thanks for writing, we are looking into it.", true, ""); err != nil {
				return err
			}
			cs := jf.Comments(c.key)
			link.AgentReply = cs[len(cs)-1].ID
		}
		if err := store.PutLink(ctx, link); err != nil {
			return err
		}
	}
	return nil
}

// fixedSecret serves one secret's JSON, whatever id is asked for.
type fixedSecret map[string]string

func (f fixedSecret) JSON(_ context.Context, _ string, v any) error {
	b, _ := json.Marshal(map[string]string(f))
	return json.Unmarshal(b, v)
}

func (fixedSecret) Invalidate(string) {}
