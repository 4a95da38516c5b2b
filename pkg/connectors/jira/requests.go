package jira

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// Status categories of JSM's currentStatus.statusCategory. The platform API and webhooks use the
// lower-case keys (new, indeterminate, done); compare with strings.EqualFold or IsDone.
const (
	CategoryNew           = "NEW"
	CategoryIndeterminate = "INDETERMINATE"
	CategoryDone          = "DONE"
)

// IsDone reports whether a status category (either spelling) means the request is finished.
func IsDone(category string) bool { return strings.EqualFold(category, CategoryDone) }

// NewRequest is the body of POST /rest/servicedeskapi/request. It is JSM's shape, not the
// platform issue API's: there is no fields/issuetype/project, the ids are strings, and
// RaiseOnBehalfOf is an accountId (resolve an email with ResolveCustomer first).
type NewRequest struct {
	ServiceDeskID string `json:"serviceDeskId"`
	RequestTypeID string `json:"requestTypeId"`
	// Fields is requestFieldValues: a map keyed by field id (summary, description, labels,
	// customfield_10050, ...). description takes plain text, not ADF.
	Fields              map[string]any `json:"requestFieldValues"`
	RaiseOnBehalfOf     string         `json:"raiseOnBehalfOf,omitempty"`
	RequestParticipants []string       `json:"requestParticipants,omitempty"`
}

// CustomerRequest is JSM's CustomerRequest. Unlike the create body, its requestFieldValues is an
// array of {fieldId,label,value,renderedValue}; hidden fields are left out.
type CustomerRequest struct {
	IssueID            string       `json:"issueId"`
	IssueKey           string       `json:"issueKey"`
	RequestTypeID      string       `json:"requestTypeId"`
	ServiceDeskID      string       `json:"serviceDeskId"`
	CreatedDate        Date         `json:"createdDate"`
	Reporter           User         `json:"reporter"`
	RequestFieldValues []FieldValue `json:"requestFieldValues"`
	CurrentStatus      Status       `json:"currentStatus"`
	Links              RequestLinks `json:"_links"`
}

// FieldValue is one entry of a CustomerRequest's requestFieldValues.
type FieldValue struct {
	FieldID       string          `json:"fieldId"`
	Label         string          `json:"label"`
	Value         json.RawMessage `json:"value"`
	RenderedValue json.RawMessage `json:"renderedValue,omitempty"`
}

// String returns the value when it is a JSON string, else its JSON text.
func (f FieldValue) String() string {
	var s string
	if json.Unmarshal(f.Value, &s) == nil {
		return s
	}
	return string(f.Value)
}

// Strings returns the value when it is an array of strings (labels).
func (f FieldValue) Strings() []string {
	var s []string
	_ = json.Unmarshal(f.Value, &s)
	return s
}

// Field returns the value of a field by id.
func (r *CustomerRequest) Field(id string) (FieldValue, bool) {
	for _, f := range r.RequestFieldValues {
		if f.FieldID == id {
			return f, true
		}
	}
	return FieldValue{}, false
}

// Status is JSM's currentStatus.
type Status struct {
	Status         string `json:"status"`
	StatusCategory string `json:"statusCategory"` // NEW, INDETERMINATE, DONE
	StatusDate     Date   `json:"statusDate"`
}

// Done reports whether the request's status is in the Done category.
func (s Status) Done() bool { return IsDone(s.StatusCategory) }

// RequestLinks are a request's URLs; Web is the customer portal page.
type RequestLinks struct {
	Web      string `json:"web"`
	Self     string `json:"self"`
	JiraRest string `json:"jiraRest"`
	Agent    string `json:"agent"`
}

// CreateRequest creates a customer request (POST /rest/servicedeskapi/request, 201). It is sent
// once: a timeout leaves it unknown whether the request exists, which the caller resolves by
// searching for its idempotency label.
func (c *Client) CreateRequest(ctx context.Context, in NewRequest) (*CustomerRequest, error) {
	const op = "create request"
	switch {
	case strings.TrimSpace(in.ServiceDeskID) == "":
		return nil, rejected(op, "serviceDeskId is required")
	case strings.TrimSpace(in.RequestTypeID) == "":
		return nil, rejected(op, "requestTypeId is required")
	case strings.Contains(in.RaiseOnBehalfOf, "@"):
		return nil, rejected(op, "raiseOnBehalfOf takes an accountId, not an email address; resolve the customer first")
	}
	if in.Fields == nil {
		in.Fields = map[string]any{}
	}
	var out CustomerRequest
	if _, err := c.do(ctx, connectors.Request{Op: op, Method: http.MethodPost, Path: "/rest/servicedeskapi/request", Body: in}, &out); err != nil {
		return nil, err
	}
	if out.IssueKey == "" {
		return nil, &connectors.Error{System: System, Op: op, Status: http.StatusCreated, Kind: connectors.KindBadResponse, Message: "answer has no issueKey"}
	}
	return &out, nil
}

// GetRequest reads a customer request by key or id.
func (c *Client) GetRequest(ctx context.Context, issueIDOrKey string) (*CustomerRequest, error) {
	var out CustomerRequest
	_, err := c.do(ctx, connectors.Request{Op: "get request", Method: http.MethodGet, Path: "/rest/servicedeskapi/request/" + escape(issueIDOrKey)}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// Comment is a JSM request comment. Body is plain text (not ADF).
type Comment struct {
	ID      string `json:"id"`
	Body    string `json:"body"`
	Public  bool   `json:"public"`
	Author  User   `json:"author"`
	Created Date   `json:"created"`
}

// AddComment adds a public (customer-visible) or internal comment.
func (c *Client) AddComment(ctx context.Context, issueIDOrKey, body string, public bool) (*Comment, error) {
	const op = "add comment"
	if strings.TrimSpace(body) == "" {
		return nil, rejected(op, "comment body is empty")
	}
	req := struct {
		Body   string `json:"body"`
		Public bool   `json:"public"`
	}{body, public}
	var out Comment
	if _, err := c.do(ctx, connectors.Request{Op: op, Method: http.MethodPost, Path: "/rest/servicedeskapi/request/" + escape(issueIDOrKey) + "/comment", Body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CommentFilter selects comments by visibility.
type CommentFilter int

const (
	AllComments CommentFilter = iota
	PublicComments
	InternalComments
)

// ListComments returns a request's comments, oldest first.
func (c *Client) ListComments(ctx context.Context, issueIDOrKey string, f CommentFilter) ([]Comment, error) {
	q := url.Values{}
	switch f {
	case PublicComments:
		q.Set("public", "true")
		q.Set("internal", "false")
	case InternalComments:
		q.Set("public", "false")
		q.Set("internal", "true")
	}
	return paged[Comment](ctx, c, "list comments", "/rest/servicedeskapi/request/"+escape(issueIDOrKey)+"/comment", q, nil)
}

// Transition is a customer transition available on a request.
type Transition struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Transitions lists the transitions the caller can perform on a request now.
func (c *Client) Transitions(ctx context.Context, issueIDOrKey string) ([]Transition, error) {
	return paged[Transition](ctx, c, "list transitions", "/rest/servicedeskapi/request/"+escape(issueIDOrKey)+"/transition", nil, nil)
}

// Transition performs a transition by id (204), with an optional comment.
func (c *Client) Transition(ctx context.Context, issueIDOrKey, transitionID, comment string) error {
	body := map[string]any{"id": transitionID}
	if comment != "" {
		body["additionalComment"] = map[string]string{"body": comment}
	}
	_, err := c.do(ctx, connectors.Request{Op: "transition request", Method: http.MethodPost, Path: "/rest/servicedeskapi/request/" + escape(issueIDOrKey) + "/transition", Body: body}, nil)
	return err
}

// TransitionByName finds an available transition by name (case-insensitive) and performs it.
// When none matches, the error is KindRejected and lists what is available.
func (c *Client) TransitionByName(ctx context.Context, issueIDOrKey, name, comment string) error {
	ts, err := c.Transitions(ctx, issueIDOrKey)
	if err != nil {
		return err
	}
	var names []string
	for _, t := range ts {
		if strings.EqualFold(strings.TrimSpace(t.Name), strings.TrimSpace(name)) {
			return c.Transition(ctx, issueIDOrKey, t.ID, comment)
		}
		names = append(names, strconv.Quote(t.Name))
	}
	return rejected("transition request", fmt.Sprintf("no transition %q on %s; available: %s", name, issueIDOrKey, strings.Join(names, ", ")))
}

// paged reads every page of a JSM list (bounded by maxPages).
func paged[T any](ctx context.Context, c *Client, op, path string, q url.Values, header http.Header) ([]T, error) {
	var all []T
	start := 0
	for range maxPages {
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("start", strconv.Itoa(start))
		qq.Set("limit", "50")
		var p page[T]
		if _, err := c.do(ctx, connectors.Request{Op: op, Method: http.MethodGet, Path: path, Query: qq, Header: header}, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Values...)
		if p.IsLastPage || len(p.Values) == 0 {
			return all, nil
		}
		start += len(p.Values)
	}
	return all, nil
}
