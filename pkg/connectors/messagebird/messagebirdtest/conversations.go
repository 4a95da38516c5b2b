package messagebirdtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Channel is a configured channel.
type Channel struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	PlatformID      string    `json:"platformId"`
	Status          string    `json:"status"`
	CreatedDatetime time.Time `json:"createdDatetime"`
	UpdatedDatetime time.Time `json:"updatedDatetime"`

	number string // the channel's own address, used as "from"
}

// Contact is the wire shape of a contact; msisdn is a JSON number.
type Contact struct {
	ID              string         `json:"id"`
	Href            string         `json:"href"`
	MSISDN          json.Number    `json:"msisdn"`
	FirstName       string         `json:"firstName"`
	LastName        string         `json:"lastName"`
	DisplayName     string         `json:"displayName,omitempty"`
	CustomDetails   map[string]any `json:"customDetails"`
	CreatedDatetime time.Time      `json:"createdDatetime"`
	UpdatedDatetime *time.Time     `json:"updatedDatetime"`
}

// Conversation is the wire shape of a conversation.
type Conversation struct {
	ID                   string       `json:"id"`
	ContactID            string       `json:"contactId"`
	Contact              *Contact     `json:"contact,omitempty"`
	Channels             []Channel    `json:"channels,omitempty"`
	Status               string       `json:"status"`
	CreatedDatetime      time.Time    `json:"createdDatetime"`
	UpdatedDatetime      time.Time    `json:"updatedDatetime"`
	LastReceivedDatetime *time.Time   `json:"lastReceivedDatetime,omitempty"`
	LastUsedChannelID    string       `json:"lastUsedChannelId"`
	Messages             *MessagesRef `json:"messages,omitempty"`
}

// MessagesRef is a conversation's message summary.
type MessagesRef struct {
	TotalCount    int    `json:"totalCount"`
	Href          string `json:"href"`
	LastMessageID string `json:"lastMessageId,omitempty"`
}

// Message is the wire shape of a message.
type Message struct {
	ID              string        `json:"id"`
	ConversationID  string        `json:"conversationId"`
	Platform        string        `json:"platform"`
	To              string        `json:"to"`
	From            string        `json:"from"`
	ChannelID       string        `json:"channelId"`
	Type            string        `json:"type"`
	Content         Content       `json:"content"`
	Direction       string        `json:"direction"`
	Status          string        `json:"status"`
	Error           *MessageError `json:"error,omitempty"`
	CreatedDatetime time.Time     `json:"createdDatetime"`
	UpdatedDatetime time.Time     `json:"updatedDatetime"`
}

// Content is a message body.
type Content struct {
	Text     string    `json:"text,omitempty"`
	Image    *MediaRef `json:"image,omitempty"`
	Video    *MediaRef `json:"video,omitempty"`
	Audio    *MediaRef `json:"audio,omitempty"`
	File     *MediaRef `json:"file,omitempty"`
	Location *Location `json:"location,omitempty"`
	HSM      *HSM      `json:"hsm,omitempty"`
}

// MediaRef points to an attachment.
type MediaRef struct {
	URL     string `json:"url"`
	Caption string `json:"caption,omitempty"`
}

// Location is a shared location.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

// HSM is a template message.
type HSM struct {
	Namespace    string `json:"namespace"`
	TemplateName string `json:"templateName"`
	Language     *struct {
		Policy string `json:"policy"`
		Code   string `json:"code"`
	} `json:"language"`
	Params []struct {
		Default string `json:"default"`
	} `json:"params,omitempty"`
}

// MessageError is attached to a rejected or failed message.
type MessageError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

type contact struct {
	Contact
	lastInbound map[string]time.Time // platform -> time of the last received message
}

type conversation struct {
	id, contactID, status, lastChannel string
	created, updated, lastReceived     time.Time
	channels                           []string
	messages                           []string
}

func (s *Server) routes() {
	s.mux.HandleFunc("POST /v1/conversations/{id}/messages", s.reply)
	s.mux.HandleFunc("GET /v1/conversations/{id}/messages", s.listMessages)
	s.mux.HandleFunc("GET /v1/conversations/{id}", s.getConversation)
	s.mux.HandleFunc("PATCH /v1/conversations/{id}", s.patchConversation)
	s.mux.HandleFunc("GET /v1/messages/{id}", s.getMessage)
	s.mux.HandleFunc("POST /v1/webhooks", s.createWebhook)
	s.mux.HandleFunc("GET /v1/webhooks", s.listWebhooks)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, 20, "Not found", "")
	})
}

// AddChannel adds (or replaces) a channel, e.g. another platform.
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels[c.ID] = c
}

// conversationWire renders a conversation; full adds the contact and channels, as
// GET /conversations/{id} does (webhooks send the contact separately).
func (s *Server) conversationWire(c *conversation, full bool) Conversation {
	out := Conversation{ID: c.id, ContactID: c.contactID, Status: c.status, CreatedDatetime: c.created, UpdatedDatetime: c.updated,
		LastUsedChannelID: c.lastChannel,
		Messages:          &MessagesRef{TotalCount: len(c.messages), Href: s.URL() + "/conversations/" + c.id + "/messages"}}
	if len(c.messages) > 0 {
		out.Messages.LastMessageID = c.messages[len(c.messages)-1]
	}
	if !c.lastReceived.IsZero() {
		t := c.lastReceived
		out.LastReceivedDatetime = &t
	}
	if full {
		if ct := s.contacts[c.contactID]; ct != nil {
			cc := ct.Contact
			out.Contact = &cc
		}
		for _, id := range c.channels {
			out.Channels = append(out.Channels, s.channels[id])
		}
	}
	return out
}

// activeConversation returns the contact's active conversation, if any.
func (s *Server) activeConversation(contactID string) *conversation {
	for _, id := range s.convOrder {
		if c := s.conversations[id]; c.contactID == contactID && c.status == "active" {
			return c
		}
	}
	return nil
}

func (s *Server) newConversation(contactID, channelID string, at time.Time) *conversation {
	c := &conversation{id: newID(), contactID: contactID, status: "active", created: at, updated: at, lastChannel: channelID, channels: []string{channelID}}
	s.conversations[c.id] = c
	s.convOrder = append(s.convOrder, c.id)
	return c
}

func (c *conversation) useChannel(id string) {
	c.lastChannel = id
	for _, x := range c.channels {
		if x == id {
			return
		}
	}
	c.channels = append(c.channels, id)
}

func (s *Server) windowOpen(ct *contact, platform string) bool {
	if platform != "whatsapp" {
		return true
	}
	last, ok := ct.lastInbound[platform]
	return ok && s.now().Sub(last) < 24*time.Hour
}

type replyBody struct {
	Type      string          `json:"type"`
	Content   json.RawMessage `json:"content"`
	ChannelID string          `json:"channelId"`
}

func (s *Server) reply(w http.ResponseWriter, r *http.Request) {
	var b replyBody
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, 21, "Request body is not valid JSON", "")
		return
	}
	if b.Type == "" {
		writeError(w, http.StatusUnprocessableEntity, 9, "type is required", "type")
		return
	}
	var content Content
	if len(b.Content) == 0 || json.Unmarshal(b.Content, &content) != nil {
		writeError(w, http.StatusUnprocessableEntity, 9, "content is required", "content")
		return
	}
	if p, msg := validContent(b.Type, content); p != "" {
		writeError(w, http.StatusUnprocessableEntity, 10, msg, p)
		return
	}

	s.mu.Lock()
	conv := s.conversations[r.PathValue("id")]
	if conv == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, 20, "conversation not found", "id")
		return
	}
	chID := b.ChannelID
	if chID == "" {
		chID = conv.lastChannel
	}
	ch, ok := s.channels[chID]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, 10, "channel not found", "channelId")
		return
	}
	ct := s.contacts[conv.contactID]
	now := s.now()
	if conv.status == "archived" {
		// Sending to an archived conversation opens a new one (or uses the contact's
		// already active one).
		if a := s.activeConversation(ct.ID); a != nil {
			conv = a
		} else {
			conv = s.newConversation(ct.ID, chID, now)
		}
	}
	inWindow := b.Type == "hsm" || s.windowOpen(ct, ch.PlatformID)
	if !inWindow && s.Window == WindowRejectHTTP {
		s.mu.Unlock()
		writeError(w, http.StatusUnprocessableEntity, 470, WindowDescription, "")
		return
	}
	m := &Message{ID: newID(), ConversationID: conv.id, Platform: ch.PlatformID, To: "+" + ct.MSISDN.String(), From: ch.number,
		ChannelID: ch.ID, Type: b.Type, Content: content, Direction: "sent", Status: "accepted", CreatedDatetime: now, UpdatedDatetime: now}
	async := false
	if !inWindow {
		if s.Window == WindowRejectAsync {
			async = true
		} else {
			m.Status = "rejected"
			m.Error = &MessageError{Code: 470, Description: WindowDescription}
		}
	}
	s.messages[m.ID] = m
	conv.messages = append(conv.messages, m.ID)
	conv.useChannel(ch.ID)
	conv.updated = now
	out := *m
	echo := s.EchoSent && s.webhook != nil
	s.mu.Unlock()

	writeJSON(w, http.StatusCreated, out)

	if async || echo {
		s.async.Add(1)
		go func() {
			defer s.async.Done()
			if echo {
				_, _ = s.Echo(out.ID)
			}
			if async {
				_, _ = s.SetStatus(out.ID, "failed", &MessageError{Code: 470, Description: WindowDescription})
			}
		}()
	}
}

func validContent(typ string, c Content) (param, msg string) {
	switch typ {
	case "text":
		if strings.TrimSpace(c.Text) == "" {
			return "content.text", "text is required for type text"
		}
		if len([]rune(c.Text)) > 4096 {
			return "content.text", "text is longer than 4096 characters"
		}
	case "hsm":
		if c.HSM == nil || c.HSM.Namespace == "" || c.HSM.TemplateName == "" || c.HSM.Language == nil || c.HSM.Language.Code == "" {
			return "content.hsm", "hsm needs namespace, templateName and language.code"
		}
	case "image", "video", "audio", "file":
		m := map[string]*MediaRef{"image": c.Image, "video": c.Video, "audio": c.Audio, "file": c.File}[typ]
		if m == nil || m.URL == "" {
			return "content." + typ, typ + ".url is required"
		}
	case "location":
		if c.Location == nil {
			return "content.location", "location is required"
		}
	default:
		return "type", "unsupported message type " + typ
	}
	return "", ""
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	conv := s.conversations[r.PathValue("id")]
	if conv == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, 20, "conversation not found", "id")
		return
	}
	items := make([]Message, 0, len(conv.messages))
	for _, id := range conv.messages {
		items = append(items, *s.messages[id])
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"offset": 0, "limit": 20, "count": len(items), "totalCount": len(items), "items": items})
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	conv := s.conversations[r.PathValue("id")]
	if conv == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, 20, "conversation not found", "id")
		return
	}
	out := s.conversationWire(conv, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) patchConversation(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil || (b.Status != "archived" && b.Status != "active") {
		writeError(w, http.StatusUnprocessableEntity, 10, "status must be active or archived", "status")
		return
	}
	s.mu.Lock()
	conv := s.conversations[r.PathValue("id")]
	if conv == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, 20, "conversation not found", "id")
		return
	}
	if b.Status == "active" && conv.status != "active" && s.activeConversation(conv.contactID) != nil {
		s.mu.Unlock()
		writeError(w, http.StatusConflict, 21, "contact already has an active conversation", "status")
		return
	}
	if b.Status == "archived" {
		s.archives = append(s.archives, conv.id)
	}
	conv.status = b.Status
	conv.updated = s.now()
	out := s.conversationWire(conv, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	m := s.messages[r.PathValue("id")]
	var out Message
	if m != nil {
		out = *m
	}
	s.mu.Unlock()
	if m == nil {
		writeError(w, http.StatusNotFound, 20, "message not found", "id")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// Conversation returns a conversation as GET /conversations/{id} would.
func (s *Server) Conversation(id string) (Conversation, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conversations[id]
	if c == nil {
		return Conversation{}, false
	}
	return s.conversationWire(c, true), true
}

// ConversationsOf returns a contact's conversations, oldest first.
func (s *Server) ConversationsOf(msisdn string) []Conversation {
	s.mu.Lock()
	defer s.mu.Unlock()
	cid := s.byMSISDN[digits(msisdn)]
	var out []Conversation
	for _, id := range s.convOrder {
		if c := s.conversations[id]; c.contactID == cid && cid != "" {
			out = append(out, s.conversationWire(c, true))
		}
	}
	return out
}

// Messages returns a conversation's messages, oldest first.
func (s *Server) Messages(conversationID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.conversations[conversationID]
	if c == nil {
		return nil
	}
	out := make([]Message, 0, len(c.messages))
	for _, id := range c.messages {
		out = append(out, *s.messages[id])
	}
	return out
}

// Sent returns the messages sent to a conversation (direction "sent"), oldest first,
// including rejected ones.
func (s *Server) Sent(conversationID string) []Message {
	var out []Message
	for _, m := range s.Messages(conversationID) {
		if m.Direction == "sent" {
			out = append(out, m)
		}
	}
	return out
}

// Message returns one message.
func (s *Server) Message(id string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[id]
	if m == nil {
		return Message{}, false
	}
	return *m, true
}

func digits(msisdn string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, msisdn)
}
