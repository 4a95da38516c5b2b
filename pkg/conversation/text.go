package conversation

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
)

// What a customer's messages look like in Jira. Every string built here from customer data
// goes through the masker before it leaves (see Service.mask).

// maxRichText bounds an ADF description or comment body, in bytes of its JSON. Jira Cloud caps
// a text field at 32,767 characters (whether it counts the ADF or the text is UNCONFIRMED, so
// the stricter reading is used); a conversation that outgrows it continues in a new comment.
const maxRichText = 32000

// contact is what the bridge knows of the end user.
type contact struct {
	ID     string
	Name   string // display name, or first and last name; may be empty
	Number string // +E.164, or empty
	Email  string // from customDetails; may be empty
}

// label names the end user for an agent: "Jane Doe (+31612345678)".
func (c contact) label() string {
	switch {
	case c.Name != "" && c.Number != "":
		return c.Name + " (" + c.Number + ")"
	case c.Name != "":
		return c.Name
	case c.Number != "":
		return c.Number
	default:
		return "MessageBird contact " + c.ID
	}
}

// short names the end user in a summary: the name, else the number.
func (c contact) short() string {
	if c.Name != "" {
		return c.Name
	}
	if c.Number != "" {
		return c.Number
	}
	return "a customer"
}

// platformName is how a channel's platform is shown.
func platformName(p string) string {
	switch strings.ToLower(p) {
	case messagebird.PlatformWhatsApp:
		return "WhatsApp"
	case messagebird.PlatformSMS:
		return "SMS"
	case "":
		return "MessageBird"
	}
	r := []rune(p)
	return string(unicode.ToUpper(r[0])) + string(r[1:])
}

// summary is the new request's summary: one line, at most 200 characters.
func summary(c contact, platform, text string) string {
	s := platformName(platform) + " message from " + c.short()
	if line := firstLine(text); line != "" {
		s += ": " + line
	}
	return truncate(s, 200)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// descriptionHeader opens a new request's description.
func descriptionHeader(c contact, platform string) string {
	return "Conversation with " + c.label() + " on " + platformName(platform) + "."
}

// commentHeader opens an end-user comment.
func commentHeader(c contact, platform string) string {
	return "Message from " + c.label() + " via " + platformName(platform) + ":"
}

// block renders one message as it is added to the request: its time and its content, with a
// note about its attachment. Blocks are separated by blank lines (ADF paragraphs).
func block(m messagebird.Message, at time.Time, note string) string {
	if !m.CreatedDatetime.IsZero() {
		at = m.CreatedDatetime
	}
	var parts []string
	if t := strings.TrimSpace(content(m)); t != "" {
		parts = append(parts, t)
	}
	if note != "" {
		parts = append(parts, "("+note+")")
	}
	if len(parts) == 0 {
		parts = append(parts, "(empty "+m.Type+" message)")
	}
	// A blank line inside a message would split it into two paragraphs; one line break keeps it
	// one block.
	body := strings.Join(parts, " ")
	for strings.Contains(body, "\n\n") {
		body = strings.ReplaceAll(body, "\n\n", "\n")
	}
	return "[" + at.UTC().Format("2006-01-02 15:04 UTC") + "] " + body
}

// content is the readable part of a message of any type.
func content(m messagebird.Message) string {
	c := m.Content
	switch m.Type {
	case "text", "":
		return c.Text
	case "image", "video", "audio", "file":
		if a, ok := c.Attachment(); ok {
			return a.Caption
		}
		return ""
	case "location":
		if c.Location == nil {
			return "Shared a location."
		}
		lat := strconv.FormatFloat(c.Location.Latitude, 'f', -1, 64)
		lon := strconv.FormatFloat(c.Location.Longitude, 'f', -1, 64)
		return fmt.Sprintf("Shared a location: %s, %s (https://www.google.com/maps?q=%s,%s)", lat, lon, lat, lon)
	default:
		if c.Text != "" {
			return c.Text
		}
		return "Sent a " + m.Type + " message, which cannot be shown here."
	}
}

// mediaKind is "image", "video", "audio" or "file" for a message with an attachment.
func mediaKind(m messagebird.Message) string {
	switch m.Type {
	case "image", "video", "audio", "file":
		return m.Type
	}
	return "file"
}

// rawContact reads what messagebird.Contact does not keep: customDetails.
type rawContact struct {
	Contact *struct {
		CustomDetails map[string]json.RawMessage `json:"customDetails"`
	} `json:"contact"`
}

// customDetail returns a string customDetails value of the event's contact.
func customDetail(body []byte, name string) string {
	var r rawContact
	if json.Unmarshal(body, &r) != nil || r.Contact == nil {
		return ""
	}
	var s string
	if json.Unmarshal(r.Contact.CustomDetails[name], &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}
