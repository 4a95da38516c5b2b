package jira

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// Search is the body of POST /rest/api/3/search/jql, the current JQL search (the old
// /rest/api/3/search has been removed). Without Fields only ids and keys come back.
type Search struct {
	JQL           string   `json:"jql"`
	Fields        []string `json:"fields,omitempty"`
	MaxResults    int      `json:"maxResults,omitempty"`
	NextPageToken string   `json:"nextPageToken,omitempty"`
	// ReconcileIssues lists issue ids whose latest state must be reflected (search is eventually
	// consistent: an issue created a moment ago may be missing otherwise).
	ReconcileIssues []int64 `json:"reconcileIssues,omitempty"`
}

// SearchResult is one page of issues.
type SearchResult struct {
	Issues        []Issue `json:"issues"`
	NextPageToken string  `json:"nextPageToken"`
	IsLast        bool    `json:"isLast"`
}

// Issue is a platform issue with the fields that were asked for.
type Issue struct {
	ID     string                     `json:"id"`
	Key    string                     `json:"key"`
	Self   string                     `json:"self,omitempty"`
	Fields map[string]json.RawMessage `json:"fields,omitempty"`
}

// String returns a string field ("" when absent or not a string).
func (i Issue) String(field string) string {
	var s string
	_ = json.Unmarshal(i.Fields[field], &s)
	return s
}

// Labels returns the labels field.
func (i Issue) Labels() []string {
	var l []string
	_ = json.Unmarshal(i.Fields["labels"], &l)
	return l
}

// AccountID returns the accountId of a user field (reporter, assignee; "" when absent).
func (i Issue) AccountID(field string) string {
	var u struct {
		AccountID string `json:"accountId"`
	}
	_ = json.Unmarshal(i.Fields[field], &u)
	return u.AccountID
}

// Status returns the status name and its category key (new, indeterminate, done).
func (i Issue) Status() (name, category string) {
	var s struct {
		Name           string `json:"name"`
		StatusCategory struct {
			Key string `json:"key"`
		} `json:"statusCategory"`
	}
	_ = json.Unmarshal(i.Fields["status"], &s)
	return s.Name, s.StatusCategory.Key
}

// SearchIssues runs one page of a JQL search.
func (c *Client) SearchIssues(ctx context.Context, s Search) (*SearchResult, error) {
	if strings.TrimSpace(s.JQL) == "" {
		return nil, rejected("search issues", "jql is empty")
	}
	var out SearchResult
	if _, err := c.do(ctx, connectors.Request{Op: "search issues", Method: http.MethodPost, Path: "/rest/api/3/search/jql", Body: s}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FindByLabel returns the issues carrying label (exact match), optionally only in one project:
// the crash-recovery lookup for an idempotency label. fields defaults to summary, labels, status.
func (c *Client) FindByLabel(ctx context.Context, label, projectKey string, fields ...string) ([]Issue, error) {
	if err := ValidLabel(label); err != nil {
		return nil, rejected("search issues", err.Error())
	}
	jql := "labels = " + Quote(label)
	if projectKey != "" {
		jql = "project = " + Quote(projectKey) + " AND " + jql
	}
	if len(fields) == 0 {
		fields = []string{"summary", "labels", "status", "created"}
	}
	s := Search{JQL: jql + " ORDER BY created ASC", Fields: fields, MaxResults: 50}
	var all []Issue
	for range maxPages {
		res, err := c.SearchIssues(ctx, s)
		if err != nil {
			return nil, err
		}
		all = append(all, res.Issues...)
		if res.IsLast || res.NextPageToken == "" {
			break
		}
		s.NextPageToken = res.NextPageToken
	}
	return all, nil
}

// AddLabels adds labels to an issue (PUT /rest/api/3/issue/{key} with update.labels add, 204),
// for callers that label after creating.
func (c *Client) AddLabels(ctx context.Context, issueIDOrKey string, labels ...string) error {
	const op = "add labels"
	if len(labels) == 0 {
		return nil
	}
	ops := make([]map[string]string, 0, len(labels))
	for _, l := range labels {
		if err := ValidLabel(l); err != nil {
			return rejected(op, err.Error())
		}
		ops = append(ops, map[string]string{"add": l})
	}
	body := map[string]any{"update": map[string]any{"labels": ops}}
	_, err := c.do(ctx, connectors.Request{Op: op, Method: http.MethodPut, Path: "/rest/api/3/issue/" + escape(issueIDOrKey), Body: body}, nil)
	return err
}

// ValidLabel checks what Jira requires of a label: not empty, no whitespace, at most 255
// characters.
func ValidLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("label is empty")
	case len(l) > 255:
		return fmt.Errorf("label %q is longer than 255 characters", l[:32]+"...")
	case strings.IndexFunc(l, unicode.IsSpace) >= 0:
		return fmt.Errorf("label %q contains whitespace", l)
	}
	return nil
}

// Quote makes s a JQL string literal.
func Quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
