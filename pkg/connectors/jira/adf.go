package jira

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// The platform API v3 takes rich-text fields (description, multi-line custom fields, comment
// bodies) as Atlassian Document Format documents, never as strings. These helpers build and
// extend documents of plain text without touching what is already in them, so an agent's
// formatting survives an append.

// ADFDocument returns an ADF document holding text: a blank line starts a new paragraph, a
// single newline becomes a hard break. Empty text gives a document with no content.
func ADFDocument(text string) json.RawMessage {
	b, _ := json.Marshal(adfDoc{Type: "doc", Version: 1, Content: adfParagraphs(text)})
	return b
}

// AppendADF returns doc with text appended as paragraphs. doc may be empty or null (no
// document yet). The existing nodes are kept byte for byte, including node types this package
// does not know.
func AppendADF(doc json.RawMessage, text string) (json.RawMessage, error) {
	d := adfDoc{Type: "doc", Version: 1}
	if trimmed := bytes.TrimSpace(doc); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		if err := json.Unmarshal(trimmed, &d); err != nil {
			return nil, errors.New("description is not an ADF document: " + err.Error())
		}
		if d.Type != "doc" {
			return nil, errors.New("description is not an ADF document: top node is " + d.Type)
		}
		if d.Version == 0 {
			d.Version = 1
		}
	}
	d.Content = append(d.Content, adfParagraphs(text)...)
	return json.Marshal(d)
}

// ADFText is the plain text of an ADF document (or of a string body), as CommentText gives it.
func ADFText(doc json.RawMessage) string { return CommentText(doc) }

type adfDoc struct {
	Type    string            `json:"type"`
	Version int               `json:"version"`
	Content []json.RawMessage `json:"content"`
}

type adfInline struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
}

type adfParagraph struct {
	Type    string      `json:"type"`
	Content []adfInline `json:"content,omitempty"`
}

func adfParagraphs(text string) []json.RawMessage {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	if strings.TrimSpace(text) == "" {
		return nil
	}
	var out []json.RawMessage
	for _, para := range strings.Split(text, "\n\n") {
		p := adfParagraph{Type: "paragraph"}
		for i, line := range strings.Split(para, "\n") {
			if i > 0 {
				p.Content = append(p.Content, adfInline{Type: "hardBreak"})
			}
			if line != "" { // ADF forbids empty text nodes
				p.Content = append(p.Content, adfInline{Type: "text", Text: line})
			}
		}
		b, _ := json.Marshal(p)
		out = append(out, b)
	}
	return out
}
