package messagebird

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// Conversation statuses.
const (
	ConversationActive   = "active"
	ConversationArchived = "archived"
)

// Message directions.
const (
	DirectionReceived = "received" // from the end user
	DirectionSent     = "sent"     // from us (the API, the dashboard, a flow)
)

// Message statuses that mean the message will not reach the end user.
const (
	StatusRejected = "rejected"
	StatusFailed   = "failed"
)

// Webhook event types.
const (
	EventMessageCreated      = "message.created"
	EventMessageUpdated      = "message.updated"
	EventConversationCreated = "conversation.created"
	EventConversationUpdated = "conversation.updated"
)

// Platforms (message.platform, channel.platformId) the bridge cares about.
const (
	PlatformWhatsApp = "whatsapp"
	PlatformSMS      = "sms"
)

// Conversation is a thread with one contact across channels. Only one conversation per contact
// is active at a time; once archived, the contact's next message opens a new conversation id.
type Conversation struct {
	ID                   string    `json:"id"`
	ContactID            string    `json:"contactId"`
	Contact              *Contact  `json:"contact,omitempty"`
	Channels             []Channel `json:"channels,omitempty"`
	Status               string    `json:"status"`
	CreatedDatetime      time.Time `json:"createdDatetime"`
	UpdatedDatetime      time.Time `json:"updatedDatetime"`
	LastReceivedDatetime time.Time `json:"lastReceivedDatetime"`
	LastUsedChannelID    string    `json:"lastUsedChannelId"`
	Messages             *struct {
		TotalCount    int    `json:"totalCount"`
		Href          string `json:"href"`
		LastMessageID string `json:"lastMessageId"`
	} `json:"messages,omitempty"`
}

// WindowOpen reports whether a free-form reply is still allowed at now, judged by the
// conversation's lastReceivedDatetime. Only WhatsApp (and similar) channels have a window; SMS
// does not. MessageBird enforces the rule; this only helps to decide up front.
func (c Conversation) WindowOpen(now time.Time) bool {
	return !c.LastReceivedDatetime.IsZero() && now.Sub(c.LastReceivedDatetime) < CustomerServiceWindow
}

// Channel is a configured channel (a WhatsApp number, an SMS number, ...).
type Channel struct {
	ID              string    `json:"id"`
	Name            string    `json:"name"`
	PlatformID      string    `json:"platformId"`
	Status          string    `json:"status"`
	CreatedDatetime time.Time `json:"createdDatetime"`
	UpdatedDatetime time.Time `json:"updatedDatetime"`
}

// Contact is the end user. MSISDN arrives as a JSON number (31612345678); it is kept as the
// exact digits, never through a float.
type Contact struct {
	ID              string      `json:"id"`
	Href            string      `json:"href,omitempty"`
	MSISDN          json.Number `json:"msisdn,omitempty"`
	FirstName       string      `json:"firstName,omitempty"`
	LastName        string      `json:"lastName,omitempty"`
	DisplayName     string      `json:"displayName,omitempty"` // optional: absent from the official SDK structs
	CreatedDatetime time.Time   `json:"createdDatetime"`
	UpdatedDatetime time.Time   `json:"updatedDatetime"`
}

// UnmarshalJSON accepts msisdn as a number (what MessageBird sends), as a string of digits with
// an optional "+", or null; anything else leaves it empty rather than failing the whole event.
func (c *Contact) UnmarshalJSON(data []byte) error {
	type plain Contact
	var w struct {
		plain
		MSISDN json.RawMessage `json:"msisdn"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*c = Contact(w.plain)
	c.MSISDN = parseMSISDN(w.MSISDN)
	return nil
}

func parseMSISDN(raw json.RawMessage) json.Number {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	s := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &s) != nil {
			return ""
		}
		s = strings.TrimPrefix(strings.TrimSpace(s), "+")
	}
	if s == "" {
		return ""
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return ""
		}
	}
	return json.Number(s)
}

// E164 is "+" followed by the msisdn digits, or "" when there is none.
func (c Contact) E164() string {
	if c.MSISDN == "" {
		return ""
	}
	return "+" + c.MSISDN.String()
}

// Name is the best display name: displayName, else first and last name.
func (c Contact) Name() string {
	if c.DisplayName != "" {
		return c.DisplayName
	}
	return strings.TrimSpace(c.FirstName + " " + c.LastName)
}

// Message is one message in a conversation, in either direction.
type Message struct {
	ID              string        `json:"id"`
	ConversationID  string        `json:"conversationId"`
	ChannelID       string        `json:"channelId"`
	Platform        string        `json:"platform"`
	To              Address       `json:"to,omitempty"`
	From            Address       `json:"from,omitempty"`
	Direction       string        `json:"direction"`
	Status          string        `json:"status"`
	Type            string        `json:"type"`
	Content         Content       `json:"content"`
	Error           *MessageError `json:"error,omitempty"`
	CreatedDatetime time.Time     `json:"createdDatetime"`
	UpdatedDatetime time.Time     `json:"updatedDatetime"`
}

// MessageError is attached to a rejected or failed message.
type MessageError struct {
	Code        int    `json:"code"`
	Description string `json:"description"`
}

// Failure returns nil unless the message's status is rejected or failed. Then it returns a
// *connectors.Error (Kind rejected, Code the message error code) that satisfies
// errors.Is(err, ErrOutsideWindow) for the WhatsApp window and ErrNotDelivered otherwise.
func (m Message) Failure() error {
	if m.Status != StatusRejected && m.Status != StatusFailed {
		return nil
	}
	e := &connectors.Error{System: System, Op: "deliver message", Status: http.StatusOK, Kind: connectors.KindRejected, Err: ErrNotDelivered}
	if m.Error != nil {
		e.Code = strconv.Itoa(m.Error.Code)
		e.Message = connectors.Truncate(m.Error.Description, 300)
		if isWindowError(e.Code, m.Error.Description) {
			e.Err = ErrOutsideWindow
		}
	}
	if e.Message == "" {
		e.Message = "message " + m.ID + " is " + m.Status
	}
	return e
}

// Content is a message body; which field is set depends on the message type.
type Content struct {
	Text     string    `json:"text,omitempty"`
	Image    *Media    `json:"image,omitempty"`
	Video    *Media    `json:"video,omitempty"`
	Audio    *Media    `json:"audio,omitempty"`
	File     *Media    `json:"file,omitempty"`
	Location *Location `json:"location,omitempty"`
	HSM      *HSM      `json:"hsm,omitempty"`
}

// Attachment returns the media of an image, video, audio or file message.
func (c Content) Attachment() (*Media, bool) {
	for _, m := range []*Media{c.Image, c.Video, c.Audio, c.File} {
		if m != nil && m.URL != "" {
			return m, true
		}
	}
	return nil, false
}

// Media is an attachment reference in a message, and the result of DownloadMedia (then Data,
// ContentType and Filename are set).
type Media struct {
	URL     string `json:"url"`
	Caption string `json:"caption,omitempty"`

	Data        []byte `json:"-"`
	ContentType string `json:"-"`
	Filename    string `json:"-"`
}

// Location is a shared location.
type Location struct {
	Latitude  float64 `json:"latitude"`
	Longitude float64 `json:"longitude"`
}

// HSM is a template message as MessageBird echoes it.
type HSM struct {
	Namespace    string `json:"namespace"`
	TemplateName string `json:"templateName"`
	Language     struct {
		Policy string `json:"policy"`
		Code   string `json:"code"`
	} `json:"language"`
	Params []struct {
		Default string `json:"default"`
	} `json:"params,omitempty"`
}

// Address is a message's to/from: a phone number, channel id or platform user id. MessageBird
// usually sends a string; a number is accepted too and kept exact.
type Address string

// UnmarshalJSON accepts a string, a number or null.
func (a *Address) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == "null":
		*a = ""
	case data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return err
		}
		*a = Address(s)
	default:
		var n json.Number
		if err := json.Unmarshal(data, &n); err != nil {
			return fmt.Errorf("address: %w", err)
		}
		*a = Address(n.String())
	}
	return nil
}

// Event is a webhook delivery: message.created, message.updated, conversation.created or
// conversation.updated. Message is nil for conversation events; Contact is not sent with every
// event (UNCONFIRMED which ones carry it).
type Event struct {
	Type         string        `json:"type"`
	Contact      *Contact      `json:"contact,omitempty"`
	Conversation *Conversation `json:"conversation,omitempty"`
	Message      *Message      `json:"message,omitempty"`
}

// ErrBadEvent wraps every ParseEvent failure.
var ErrBadEvent = errors.New("not a MessageBird webhook event")

// ParseEvent decodes a verified webhook body.
func ParseEvent(body []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil {
		// A timestamp in a form Go cannot read ("", a format MessageBird may change) must not
		// cost the end user's message: such timestamps are dropped (zero) and the event is
		// read again. Anything else wrong is a bad event.
		clean, ok := withoutUnreadableTimes(body)
		if !ok || json.Unmarshal(clean, &ev) != nil {
			return Event{}, fmt.Errorf("%w: %w", ErrBadEvent, err)
		}
	}
	switch {
	case ev.Type == "":
		return Event{}, fmt.Errorf("%w: type is missing", ErrBadEvent)
	case strings.HasPrefix(ev.Type, "message.") && ev.Message == nil:
		return Event{}, fmt.Errorf("%w: %s without a message", ErrBadEvent, ev.Type)
	case strings.HasPrefix(ev.Type, "conversation.") && ev.Conversation == nil:
		return Event{}, fmt.Errorf("%w: %s without a conversation", ErrBadEvent, ev.Type)
	}
	return ev, nil
}

// Inbound reports whether the event is a new message from the end user (message.created,
// direction received), the only kind that becomes ticket text.
func (e Event) Inbound() bool {
	return e.Type == EventMessageCreated && e.Message != nil && e.Message.Direction == DirectionReceived
}

// withoutUnreadableTimes removes every "...Datetime" field whose value is not an RFC 3339 time;
// ok is false when there was none to remove.
func withoutUnreadableTimes(body []byte) ([]byte, bool) {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return nil, false
	}
	removed := false
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, val := range t {
				if strings.HasSuffix(k, "Datetime") {
					if str, isStr := val.(string); !isStr || !readableTime(str) {
						if val != nil {
							delete(t, k)
							removed = true
						}
						continue
					}
				}
				walk(val)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	if !removed {
		return nil, false
	}
	out, err := json.Marshal(v)
	return out, err == nil
}

func readableTime(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}
