package messagebirdtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SeedConversation seeds a contact and its conversation with fixed ids, for data that events and
// demos name (the ids are otherwise random).
type SeedConversation struct {
	ContactID      string
	ConversationID string
	MSISDN         string // digits, with or without "+"
	FirstName      string
	LastName       string
	DisplayName    string
	CustomDetails  map[string]any
	ChannelID      string    // default WhatsAppChannelID
	LastInbound    time.Time // the contact's last inbound message on that channel; zero: never wrote
	Archived       bool
}

// Seed adds a contact (or updates it, by msisdn) and a conversation with the given ids.
func (s *Server) Seed(c SeedConversation) error {
	num := digits(c.MSISDN)
	if num == "" || c.ContactID == "" || c.ConversationID == "" {
		return errors.New("messagebirdtest: Seed needs an msisdn, a contact id and a conversation id")
	}
	if c.ChannelID == "" {
		c.ChannelID = WhatsAppChannelID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.channels[c.ChannelID]
	if !ok {
		return fmt.Errorf("messagebirdtest: unknown channel %s", c.ChannelID)
	}
	if _, taken := s.conversations[c.ConversationID]; taken {
		return fmt.Errorf("messagebirdtest: conversation %s exists", c.ConversationID)
	}
	now := s.now()
	ct := s.contacts[s.byMSISDN[num]]
	if ct == nil {
		ct = &contact{Contact: Contact{ID: c.ContactID, MSISDN: json.Number(num), CreatedDatetime: now, CustomDetails: map[string]any{}},
			lastInbound: map[string]time.Time{}}
		ct.Href = s.srv.URL + "/v1/contacts/" + ct.ID
		s.contacts[ct.ID] = ct
		s.byMSISDN[num] = ct.ID
	} else if ct.ID != c.ContactID {
		return fmt.Errorf("messagebirdtest: msisdn %s belongs to contact %s", num, ct.ID)
	}
	ct.FirstName, ct.LastName, ct.DisplayName = c.FirstName, c.LastName, c.DisplayName
	if c.CustomDetails != nil {
		ct.CustomDetails = c.CustomDetails
	}
	if !c.LastInbound.IsZero() {
		ct.lastInbound[ch.PlatformID] = c.LastInbound.UTC()
	}
	if a := s.activeConversation(ct.ID); a != nil && !c.Archived {
		return fmt.Errorf("messagebirdtest: contact %s already has the active conversation %s", ct.ID, a.id)
	}
	conv := &conversation{id: c.ConversationID, contactID: ct.ID, status: "active", created: now, updated: now, lastChannel: ch.ID,
		channels: []string{ch.ID}, lastReceived: c.LastInbound.UTC()}
	if c.Archived {
		conv.status = "archived"
	}
	s.conversations[conv.id] = conv
	s.convOrder = append(s.convOrder, conv.id)
	return nil
}

// SetCustomDetails replaces a contact's customDetails (the contact must exist).
func (s *Server) SetCustomDetails(msisdn string, d map[string]any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct := s.contacts[s.byMSISDN[digits(msisdn)]]
	if ct == nil {
		return fmt.Errorf("messagebirdtest: no contact with msisdn %s", msisdn)
	}
	ct.CustomDetails = d
	return nil
}

// AddMediaWithID stores a file under a fixed id and returns its URL.
func (s *Server) AddMediaWithID(id string, f MediaFile) string {
	s.mu.Lock()
	s.media[id] = f
	s.mu.Unlock()
	return s.URL() + "/media/" + id
}
