package genesystest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Conversation is a fake conversation: a customer on the line, an ACD participant while it
// waits in a queue, and an agent once answered.
type Conversation struct {
	ID           string
	Participants []*Participant
	Ended        bool
}

// Participant is one party.
type Participant struct {
	ID         string
	Purpose    string // customer, acd, agent
	QueueID    string
	Attributes map[string]string
	Priority   int // conversationRoutingData.priority (ACD participant)
	Ended      bool
	Start      time.Time
}

// AddWaitingConversation creates a conversation whose customer waits in queueID with the given
// priority. customerParticipantID may be "" for a generated one.
func (s *Server) AddWaitingConversation(id, customerParticipantID, queueID string, priority int) *Conversation {
	if customerParticipantID == "" {
		customerParticipantID = id + "-customer"
	}
	c := &Conversation{ID: id, Participants: []*Participant{
		{ID: customerParticipantID, Purpose: "customer", Attributes: map[string]string{}, Start: time.Now()},
		{ID: id + "-acd", Purpose: "acd", QueueID: queueID, Priority: priority, Attributes: map[string]string{}, Start: time.Now()},
	}}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conversations()[id] = c
	return c
}

// Answer connects an agent: the conversation leaves the queue.
func (s *Server) Answer(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conversations()[id]
	if c == nil {
		return
	}
	for _, p := range c.Participants {
		if p.Purpose == "acd" {
			p.Ended = true
		}
	}
	c.Participants = append(c.Participants, &Participant{ID: id + "-agent", Purpose: "agent", Attributes: map[string]string{}, Start: time.Now()})
}

// End disconnects everyone.
func (s *Server) End(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conversations()[id]; c != nil {
		c.Ended = true
		for _, p := range c.Participants {
			p.Ended = true
		}
	}
}

// Conversation returns a copy of a conversation's state for inspection.
func (s *Server) Conversation(id string) (Conversation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conversations()[id]
	if !ok {
		return Conversation{}, false
	}
	out := Conversation{ID: c.ID, Ended: c.Ended}
	for _, p := range c.Participants {
		cp := *p
		cp.Attributes = map[string]string{}
		for k, v := range p.Attributes {
			cp.Attributes[k] = v
		}
		out.Participants = append(out.Participants, &cp)
	}
	return out, true
}

func (s *Server) conversations() map[string]*Conversation {
	if s.convs == nil {
		s.convs = map[string]*Conversation{}
	}
	return s.convs
}

func (s *Server) registerConversations() {
	s.mux.HandleFunc("GET /api/v2/conversations/{id}", s.getConversation)
	s.mux.HandleFunc("PATCH /api/v2/conversations/{id}/participants/{pid}/attributes", s.patchAttributes)
	s.mux.HandleFunc("PATCH /api/v2/routing/conversations/{id}", s.patchRouting)
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conversations()[r.PathValue("id")]
	if !ok {
		WriteError(w, http.StatusNotFound, "not.found", "The requested conversation could not be found.")
		return
	}
	type routing struct {
		Queue    map[string]string `json:"queue,omitempty"`
		Priority int               `json:"priority"`
	}
	type media struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	type participant struct {
		ID         string            `json:"id"`
		Purpose    string            `json:"purpose"`
		QueueID    string            `json:"queueId,omitempty"`
		StartTime  string            `json:"startTime"`
		EndTime    string            `json:"endTime,omitempty"`
		Attributes map[string]string `json:"attributes"`
		Routing    *routing          `json:"conversationRoutingData,omitempty"`
		Calls      []media           `json:"calls"`
	}
	out := struct {
		ID           string        `json:"id"`
		StartTime    string        `json:"startTime"`
		EndTime      string        `json:"endTime,omitempty"`
		Participants []participant `json:"participants"`
	}{ID: c.ID, StartTime: c.Participants[0].Start.UTC().Format(time.RFC3339Nano)}
	if c.Ended {
		out.EndTime = time.Now().UTC().Format(time.RFC3339Nano)
	}
	for _, p := range c.Participants {
		pp := participant{ID: p.ID, Purpose: p.Purpose, QueueID: p.QueueID, StartTime: p.Start.UTC().Format(time.RFC3339Nano), Attributes: p.Attributes}
		state := "connected"
		if p.Ended {
			pp.EndTime = time.Now().UTC().Format(time.RFC3339Nano)
			state = "disconnected"
		}
		pp.Calls = []media{{ID: p.ID + "-call", State: state}}
		if p.Purpose == "acd" {
			pp.Routing = &routing{Queue: map[string]string{"id": p.QueueID}, Priority: p.Priority}
		}
		out.Participants = append(out.Participants, pp)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) patchAttributes(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Attributes map[string]json.RawMessage `json:"attributes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Attributes == nil {
		WriteError(w, http.StatusBadRequest, "bad.request", "attributes is required")
		return
	}
	attrs := map[string]string{}
	for k, raw := range body.Attributes {
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			WriteError(w, http.StatusBadRequest, "bad.request", fmt.Sprintf("attribute %s must be a string", k))
			return
		}
		attrs[k] = v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conversations()[r.PathValue("id")]
	if !ok {
		WriteError(w, http.StatusNotFound, "not.found", "The requested conversation could not be found.")
		return
	}
	for _, p := range c.Participants {
		if p.ID == r.PathValue("pid") {
			for k, v := range attrs { // keys are merged, as Genesys does in practice
				p.Attributes[k] = v
			}
			w.WriteHeader(http.StatusAccepted)
			return
		}
	}
	WriteError(w, http.StatusNotFound, "not.found", "The requested participant could not be found.")
}

// patchRouting changes the priority of an in-queue conversation. The status Genesys returns for
// a conversation that is no longer in queue is not documented (reference/api-contracts.md
// section 3.2, UNCONFIRMED); the fake answers 400 bad.request, and callers must not depend on
// the exact code: they read the conversation to learn whether it still waits.
func (s *Server) patchRouting(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Priority *int `json:"priority"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Priority == nil {
		WriteError(w, http.StatusBadRequest, "bad.request", "priority is required")
		return
	}
	if *body.Priority < -25000000 || *body.Priority > 25000000 {
		WriteError(w, http.StatusBadRequest, "bad.request", "priority must be between -25000000 and 25000000")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.conversations()[r.PathValue("id")]
	if !ok {
		WriteError(w, http.StatusNotFound, "not.found", "The requested conversation could not be found.")
		return
	}
	for _, p := range c.Participants {
		if p.Purpose == "acd" && !p.Ended && !c.Ended {
			p.Priority = *body.Priority
			writeJSON(w, http.StatusOK, map[string]any{"priority": p.Priority, "skills": []any{}, "scoredAgents": []any{}})
			return
		}
	}
	WriteError(w, http.StatusBadRequest, "bad.request", "The conversation is not in queue.")
}
