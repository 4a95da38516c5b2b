package jira

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook delivery headers (reference/api-contracts.md section 1.6).
const (
	HeaderSignature  = "X-Hub-Signature"                // sha256=<lowercase hex HMAC-SHA256 of the raw body>
	HeaderDeliveryID = "X-Atlassian-Webhook-Identifier" // unique per delivery, stable across retries
	HeaderRetry      = "X-Atlassian-Webhook-Retry"      // retry count; absent on the first attempt
	HeaderFlow       = "X-Atlassian-Webhook-Flow"       // Primary | Secondary
)

// Webhook events cxbridge handles.
const (
	EventCommentCreated = "comment_created"
	EventIssueUpdated   = "jira:issue_updated"
	EventIssueCreated   = "jira:issue_created"
)

// ErrSignature is wrapped by every VerifySignature failure.
var ErrSignature = errors.New("jira webhook signature rejected")

// Sign returns the X-Hub-Signature value Jira sends for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks an admin webhook's X-Hub-Signature header ("sha256=<hex>", HMAC-SHA256
// of the raw body keyed with the webhook secret) in constant time. Verify the bytes as they
// arrived, before parsing: re-encoded JSON does not match. Every failure wraps ErrSignature; an
// empty secret is refused because it would make any body verify.
func VerifySignature(secret, body []byte, header string) error {
	if len(secret) == 0 {
		return fmt.Errorf("%w: no webhook secret is configured", ErrSignature)
	}
	header = strings.TrimSpace(header)
	if header == "" {
		return fmt.Errorf("%w: %s header is missing", ErrSignature, HeaderSignature)
	}
	algo, digest, ok := strings.Cut(header, "=")
	if !ok || algo != "sha256" {
		return fmt.Errorf("%w: %s is not sha256=<hex>", ErrSignature, HeaderSignature)
	}
	got, err := hex.DecodeString(digest)
	if err != nil || len(got) != sha256.Size {
		return fmt.Errorf("%w: %s digest is not 64 hex characters", ErrSignature, HeaderSignature)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil), got) {
		return fmt.Errorf("%w: signature does not match the body", ErrSignature)
	}
	return nil
}

// DeliveryID returns the delivery's X-Atlassian-Webhook-Identifier, the key for replay guards.
func DeliveryID(h http.Header) string { return strings.TrimSpace(h.Get(HeaderDeliveryID)) }

// RetryCount returns X-Atlassian-Webhook-Retry (0 on a first delivery).
func RetryCount(h http.Header) int {
	n, _ := strconv.Atoi(strings.TrimSpace(h.Get(HeaderRetry)))
	return n
}

// WebhookEvent is the part of a Jira webhook body cxbridge reads. Unknown fields are ignored, so
// site-specific custom fields do not break decoding.
type WebhookEvent struct {
	Timestamp          int64           `json:"timestamp"` // ms since the epoch
	WebhookEvent       string          `json:"webhookEvent"`
	IssueEventTypeName string          `json:"issue_event_type_name,omitempty"`
	User               *User           `json:"user,omitempty"`
	Issue              WebhookIssue    `json:"issue"`
	Comment            *WebhookComment `json:"comment,omitempty"`
	Changelog          *Changelog      `json:"changelog,omitempty"`
}

// Time is when Jira raised the event.
func (e *WebhookEvent) Time() time.Time { return time.UnixMilli(e.Timestamp) }

// WebhookIssue is the issue a webhook is about.
type WebhookIssue struct {
	ID     ID     `json:"id"`
	Key    string `json:"key"`
	Fields struct {
		Summary string       `json:"summary,omitempty"`
		Labels  []string     `json:"labels,omitempty"`
		Status  *IssueStatus `json:"status,omitempty"`
	} `json:"fields"`
}

// IssueStatus is a platform status object.
type IssueStatus struct {
	ID             ID     `json:"id"`
	Name           string `json:"name"`
	StatusCategory struct {
		ID   int    `json:"id"`
		Key  string `json:"key"` // new, indeterminate, done
		Name string `json:"name"`
	} `json:"statusCategory"`
}

// WebhookComment is the comment of a comment_* event. Body is plain text whichever format Jira
// sent (a wiki-markup string, or an ADF document, which is flattened); RawBody keeps the original.
type WebhookComment struct {
	ID        ID              `json:"id"`
	Author    User            `json:"author"`
	Body      string          `json:"-"`
	RawBody   json.RawMessage `json:"body"`
	Created   string          `json:"created,omitempty"`
	Updated   string          `json:"updated,omitempty"`
	JSDPublic *bool           `json:"jsdPublic,omitempty"`
}

// IsPublic reports whether the comment is customer-visible. It fails closed: a comment without
// jsdPublic (not a JSM project, or a payload shape we do not know) counts as internal, so an
// internal note is never sent to a customer by mistake.
func (c *WebhookComment) IsPublic() bool { return c.JSDPublic != nil && *c.JSDPublic }

// CreatedTime parses Created (zero when absent).
func (c *WebhookComment) CreatedTime() time.Time {
	t, _ := parseJiraTime(c.Created)
	return t
}

// Changelog lists what a jira:issue_updated event changed.
type Changelog struct {
	ID    ID              `json:"id"`
	Items []ChangelogItem `json:"items"`
}

// ChangelogItem is one changed field; a status change has Field "status", from/to status ids and
// FromString/ToString names.
type ChangelogItem struct {
	Field      string `json:"field"`
	FieldType  string `json:"fieldtype,omitempty"`
	FieldID    string `json:"fieldId,omitempty"`
	From       string `json:"from,omitempty"`
	FromString string `json:"fromString,omitempty"`
	To         string `json:"to,omitempty"`
	ToString   string `json:"toString,omitempty"`
}

// StatusChange returns the status change of a jira:issue_updated event.
func (e *WebhookEvent) StatusChange() (from, to string, ok bool) {
	if e.Changelog == nil {
		return "", "", false
	}
	for _, it := range e.Changelog.Items {
		if strings.EqualFold(it.Field, "status") {
			return it.FromString, it.ToString, true
		}
	}
	return "", "", false
}

// IssueDone reports whether the issue's status (as sent in the event) is in the Done category.
func (e *WebhookEvent) IssueDone() bool {
	return e.Issue.Fields.Status != nil && IsDone(e.Issue.Fields.Status.StatusCategory.Key)
}

// ParseWebhook decodes a webhook body (after VerifySignature).
func ParseWebhook(body []byte) (*WebhookEvent, error) {
	var e WebhookEvent
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("jira webhook body: %w", err)
	}
	if e.WebhookEvent == "" {
		return nil, errors.New("jira webhook body has no webhookEvent")
	}
	if e.Comment != nil {
		e.Comment.Body = CommentText(e.Comment.RawBody)
	}
	return &e, nil
}

// CommentText returns a comment body as plain text: a JSON string as it is, an ADF document
// flattened (paragraphs and list items on their own lines, mentions and emoji as their text).
func CommentText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var doc adfNode
	if json.Unmarshal(raw, &doc) != nil {
		return ""
	}
	var b strings.Builder
	doc.write(&b, "")
	return strings.TrimSpace(collapseBlankLines(b.String()))
}

// adfNode is an Atlassian Document Format node.
type adfNode struct {
	Type    string         `json:"type"`
	Text    string         `json:"text"`
	Attrs   map[string]any `json:"attrs"`
	Content []adfNode      `json:"content"`
}

func (n adfNode) attr(k string) string {
	if v, ok := n.Attrs[k].(string); ok {
		return v
	}
	return ""
}

func (n adfNode) write(b *strings.Builder, indent string) {
	switch n.Type {
	case "text":
		b.WriteString(n.Text)
	case "hardBreak":
		b.WriteString("\n")
	case "mention":
		b.WriteString(n.attr("text"))
	case "emoji":
		if t := n.attr("text"); t != "" {
			b.WriteString(t)
		} else {
			b.WriteString(n.attr("shortName"))
		}
	case "inlineCard", "blockCard", "embedCard":
		b.WriteString(n.attr("url"))
	case "date":
		if ms, err := strconv.ParseInt(n.attr("timestamp"), 10, 64); err == nil {
			b.WriteString(time.UnixMilli(ms).UTC().Format("2006-01-02"))
		}
	case "status":
		b.WriteString(n.attr("text"))
	case "media", "mediaSingle", "mediaGroup", "mediaInline":
		// attachments are not text
	case "bulletList", "orderedList":
		for i, item := range n.Content {
			b.WriteString(indent)
			if n.Type == "orderedList" {
				fmt.Fprintf(b, "%d. ", i+1)
			} else {
				b.WriteString("- ")
			}
			var inner strings.Builder
			for _, c := range item.Content {
				c.write(&inner, indent+"  ")
			}
			b.WriteString(strings.TrimSpace(inner.String()))
			b.WriteString("\n")
		}
	case "rule":
		b.WriteString("\n---\n")
	case "table":
		for _, row := range n.Content {
			var cells []string
			for _, cell := range row.Content {
				var c strings.Builder
				for _, x := range cell.Content {
					x.write(&c, indent)
				}
				cells = append(cells, strings.TrimSpace(c.String()))
			}
			b.WriteString(strings.Join(cells, " | "))
			b.WriteString("\n")
		}
	default: // doc, paragraph, heading, blockquote, codeBlock, panel, expand, ...
		for _, c := range n.Content {
			c.write(b, indent)
		}
		if n.Type != "doc" && isBlock(n.Type) {
			b.WriteString("\n")
		}
	}
}

func isBlock(t string) bool {
	switch t {
	case "paragraph", "heading", "blockquote", "codeBlock", "panel", "expand", "nestedExpand", "decisionList", "taskList", "decisionItem", "taskItem":
		return true
	}
	return false
}

func collapseBlankLines(s string) string {
	for strings.Contains(s, "\n\n\n") {
		s = strings.ReplaceAll(s, "\n\n\n", "\n\n")
	}
	return s
}

// ID is a Jira id; it decodes from a JSON string or number (Jira sends ids both ways).
type ID string

func (f *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*f = ID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = ID(n.String())
	return nil
}

func (f ID) String() string { return string(f) }
