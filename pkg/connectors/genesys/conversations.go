package genesys

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// Conversation is the part of GET /api/v2/conversations/{id} cxbridge reads.
type Conversation struct {
	ID           string        `json:"id"`
	StartTime    *time.Time    `json:"startTime,omitempty"`
	EndTime      *time.Time    `json:"endTime,omitempty"`
	Participants []Participant `json:"participants"`
}

// Participant is one party of a conversation.
type Participant struct {
	ID         string            `json:"id"`
	Purpose    string            `json:"purpose"` // customer, external, acd, agent, ivr, ...
	QueueID    string            `json:"queueId,omitempty"`
	StartTime  *time.Time        `json:"startTime,omitempty"`
	EndTime    *time.Time        `json:"endTime,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	Routing    *RoutingData      `json:"conversationRoutingData,omitempty"`
	Calls      []Media           `json:"calls,omitempty"`
}

// RoutingData is a participant's conversationRoutingData.
type RoutingData struct {
	Queue    *struct{ ID string } `json:"queue,omitempty"`
	Priority int                  `json:"priority"`
}

// Media is one media session of a participant (calls, callbacks, messages...).
type Media struct {
	ID    string `json:"id"`
	State string `json:"state"` // alerting, connected, disconnected, terminated, ...
}

// Waiting returns the ACD participant while the conversation waits in a queue: an acd
// participant that has not ended, while no agent participant is active. The second result is
// false when the conversation is not in queue (answered, abandoned or ended).
func (c Conversation) Waiting() (Participant, bool) {
	if c.EndTime != nil {
		return Participant{}, false
	}
	var acd *Participant
	for i, p := range c.Participants {
		switch {
		case p.Purpose == "agent" && p.EndTime == nil && p.active():
			return Participant{}, false
		case p.Purpose == "acd" && p.EndTime == nil:
			acd = &c.Participants[i]
		}
	}
	if acd == nil {
		return Participant{}, false
	}
	return *acd, true
}

// Customer returns the customer (or external) participant.
func (c Conversation) Customer() (Participant, bool) {
	for _, p := range c.Participants {
		if p.Purpose == "customer" || p.Purpose == "external" {
			return p, true
		}
	}
	return Participant{}, false
}

func (p Participant) active() bool {
	if len(p.Calls) == 0 {
		return true
	}
	for _, m := range p.Calls {
		if m.State != "disconnected" && m.State != "terminated" {
			return true
		}
	}
	return false
}

// GetConversation reads a conversation (GET /api/v2/conversations/{id}).
func (c *Client) GetConversation(ctx context.Context, id string) (Conversation, error) {
	var out Conversation
	_, err := c.api.Do(ctx, connectors.Request{Op: "get conversation", Method: http.MethodGet, Path: "/api/v2/conversations/" + url.PathEscape(id)}, &out)
	return out, err
}

// SetParticipantAttributes merges string attributes into a participant
// (PATCH /api/v2/conversations/{id}/participants/{pid}/attributes). Values must be strings;
// Genesys merges keys.
func (c *Client) SetParticipantAttributes(ctx context.Context, conversationID, participantID string, attrs map[string]string) error {
	path := "/api/v2/conversations/" + url.PathEscape(conversationID) + "/participants/" + url.PathEscape(participantID) + "/attributes"
	_, err := c.api.Do(ctx, connectors.Request{Op: "set participant attributes", Method: http.MethodPatch, Path: path, Body: map[string]any{"attributes": attrs}}, nil)
	return err
}

// SetRoutingPriority sets the absolute priority of an in-queue conversation
// (PATCH /api/v2/routing/conversations/{id}). One point is one minute of time in queue; 0 resets.
// This is not a participant attribute and not PATCH /api/v2/conversations/{id}: neither
// changes ACD priority (reference/api-contracts.md section 3.2).
func (c *Client) SetRoutingPriority(ctx context.Context, conversationID string, priority int) (int, error) {
	var out struct {
		Priority int `json:"priority"`
	}
	path := "/api/v2/routing/conversations/" + url.PathEscape(conversationID)
	_, err := c.api.Do(ctx, connectors.Request{Op: "set routing priority", Method: http.MethodPatch, Path: path, Body: map[string]int{"priority": priority}}, &out)
	return out.Priority, err
}
