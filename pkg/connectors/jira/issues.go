package jira

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// The JSM API cannot change a request's description or an existing comment; the platform API v3
// can, with ADF bodies (reference/api-contracts.md section 1.4). These calls serve the
// conversation bridge, which keeps a customer's messages together in one description or comment.

// GetIssue reads an issue through the platform API (GET /rest/api/3/issue/{key}?fields=...).
// Rich-text fields such as description come back as ADF documents; status carries its category
// (Issue.Status). A missing issue is KindNotFound.
func (c *Client) GetIssue(ctx context.Context, issueIDOrKey string, fields ...string) (*Issue, error) {
	var q url.Values
	if len(fields) > 0 {
		q = url.Values{"fields": {strings.Join(fields, ",")}}
	}
	var out Issue
	if _, err := c.do(ctx, connectors.Request{Op: "get issue", Method: http.MethodGet, Path: "/rest/api/3/issue/" + escape(issueIDOrKey), Query: q}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Raw returns a field as Jira sent it (an ADF document for rich text), or nil.
func (i Issue) Raw(field string) json.RawMessage { return i.Fields[field] }

// SetDescription replaces an issue's description with an ADF document
// (PUT /rest/api/3/issue/{key} {"fields":{"description":doc}}, 204).
func (c *Client) SetDescription(ctx context.Context, issueIDOrKey string, doc json.RawMessage) error {
	body := map[string]any{"fields": map[string]json.RawMessage{"description": doc}}
	_, err := c.do(ctx, connectors.Request{Op: "edit description", Method: http.MethodPut, Path: "/rest/api/3/issue/" + escape(issueIDOrKey), Body: body}, nil)
	return err
}

// IssueComment is a comment as the platform API v3 returns it: Body is an ADF document, and
// JSDPublic (read-only there) says whether a JSM customer can see it.
type IssueComment struct {
	ID        ID              `json:"id"`
	Author    User            `json:"author"`
	Body      json.RawMessage `json:"body"`
	Created   string          `json:"created,omitempty"`
	Updated   string          `json:"updated,omitempty"`
	JSDPublic *bool           `json:"jsdPublic,omitempty"`
}

// Text is the comment body as plain text.
func (c IssueComment) Text() string { return CommentText(c.Body) }

// GetComment reads one comment (GET /rest/api/3/issue/{key}/comment/{id}); a deleted comment is
// KindNotFound.
func (c *Client) GetComment(ctx context.Context, issueIDOrKey, commentID string) (*IssueComment, error) {
	var out IssueComment
	_, err := c.do(ctx, connectors.Request{Op: "get comment", Method: http.MethodGet,
		Path: "/rest/api/3/issue/" + escape(issueIDOrKey) + "/comment/" + escape(commentID)}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// EditComment replaces a comment's body with an ADF document
// (PUT /rest/api/3/issue/{key}/comment/{id} {"body":doc}). Only the body changes: a JSM comment
// stays public or internal as it was (UNCONFIRMED beyond the documented request shape).
func (c *Client) EditComment(ctx context.Context, issueIDOrKey, commentID string, doc json.RawMessage) (*IssueComment, error) {
	var out IssueComment
	_, err := c.do(ctx, connectors.Request{Op: "edit comment", Method: http.MethodPut,
		Path: "/rest/api/3/issue/" + escape(issueIDOrKey) + "/comment/" + escape(commentID),
		Body: map[string]json.RawMessage{"body": doc}}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}
