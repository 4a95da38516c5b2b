package messagebird

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// MessageList is one page of a conversation's messages.
type MessageList struct {
	Offset     int       `json:"offset"`
	Limit      int       `json:"limit"`
	Count      int       `json:"count"`
	TotalCount int       `json:"totalCount"`
	Items      []Message `json:"items"`
}

// ListMessages reads one page of a conversation's messages
// (GET /conversations/{id}/messages?offset=&limit=). The order of the items is not documented
// (UNCONFIRMED): callers that look for a recent message should read the first and the last page.
func (c *Client) ListMessages(ctx context.Context, conversationID string, offset, limit int) (MessageList, error) {
	q := url.Values{}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out MessageList
	err := c.do(ctx, connectors.Request{Op: "list messages", Method: http.MethodGet, Path: "/conversations/" + url.PathEscape(conversationID) + "/messages", Query: q}, &out)
	return out, err
}
