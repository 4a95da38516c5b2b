package jiratest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Status is a workflow status; Category is the platform key: new, indeterminate or done.
type Status struct {
	Name     string
	Category string
}

// The default workflow's statuses.
var (
	StatusWaitingForSupport = Status{Name: "Waiting for support", Category: "new"}
	StatusInProgress        = Status{Name: "In Progress", Category: "indeterminate"}
	StatusResolved          = Status{Name: "Resolved", Category: "done"}
)

// Transition moves a request from one of From (any status but To when empty) to To.
type Transition struct {
	ID   string
	Name string
	From []string
	To   Status
}

// DefaultTransitions is the workflow used by request types that define none.
func DefaultTransitions() []Transition {
	return []Transition{
		{ID: "11", Name: "Start progress", From: []string{StatusWaitingForSupport.Name}, To: StatusInProgress},
		{ID: "21", Name: "Resolve", From: []string{StatusWaitingForSupport.Name, StatusInProgress.Name}, To: StatusResolved},
		{ID: "31", Name: "Reopen", From: []string{StatusResolved.Name}, To: StatusWaitingForSupport},
	}
}

// FieldType says what a field accepts and how JQL compares it.
type FieldType string

const (
	FieldText   FieldType = "text"   // a string; JQL ~ and !~
	FieldLabels FieldType = "labels" // an array of strings without spaces; JQL =, !=, in, not in
	FieldNumber FieldType = "number" // a JSON number; JQL =, !=, in
	FieldAny    FieldType = "any"    // anything (select lists, users, ...); JQL = on its JSON text
)

// FieldDef is a field on a request type's form.
type FieldDef struct {
	ID       string // summary, description, labels, customfield_10050, ...
	Name     string // the label; also the name JQL can use ("Escalation Key" ~ "x")
	Type     FieldType
	Required bool
	Hidden   bool // settable but left out of requestFieldValues in answers
}

// Field ids and request types of the default service desk.
const (
	DefaultServiceDeskID    = "1"
	DefaultProjectKey       = "SUPP"
	RequestTypeSupport      = "10" // "Technical support": summary, description, labels, two custom fields
	RequestTypeConversation = "11" // "Messaging conversation": summary, description, labels
	FieldConversationID     = "customfield_10050"
	FieldEscalationKey      = "customfield_10051"
)

// DefaultFields is the form of request types that define none.
func DefaultFields() []FieldDef {
	return []FieldDef{
		{ID: "summary", Name: "Summary", Type: FieldText, Required: true},
		{ID: "description", Name: "Description", Type: FieldText},
		{ID: "labels", Name: "Labels", Type: FieldLabels},
	}
}

// RequestType is a JSM request type with its form and workflow.
type RequestType struct {
	ID          string
	Name        string
	Fields      []FieldDef   // nil: DefaultFields
	Transitions []Transition // nil: DefaultTransitions
	Initial     Status       // zero: StatusWaitingForSupport
}

// ServiceDesk is a JSM service desk and its project.
type ServiceDesk struct {
	ID           string
	ProjectID    string // default 10000 + n
	ProjectKey   string
	ProjectName  string
	RequestTypes []RequestType
}

// DefaultServiceDesk is what New serves when Config.ServiceDesks is nil.
func DefaultServiceDesk() ServiceDesk {
	support := append(DefaultFields(),
		FieldDef{ID: FieldConversationID, Name: "Genesys Conversation ID", Type: FieldText},
		FieldDef{ID: FieldEscalationKey, Name: "Escalation Key", Type: FieldText},
	)
	return ServiceDesk{
		ID: DefaultServiceDeskID, ProjectKey: DefaultProjectKey, ProjectName: "Support",
		RequestTypes: []RequestType{
			{ID: RequestTypeSupport, Name: "Technical support", Fields: support},
			{ID: RequestTypeConversation, Name: "Messaging conversation"},
		},
	}
}

// Account is a customer or an agent.
type Account struct {
	AccountID   string
	Email       string
	DisplayName string
	Type        string   // "customer" (portal-only) or "atlassian" (agents, the API user)
	Desks       []string // service desks the account is a customer of
}

// Comment is a comment on a request.
type Comment struct {
	ID          string
	Body        string
	Public      bool
	Author      string // accountId
	Created     time.Time
	Attachments []string // attachment ids
}

// Attachment is a file attached to a request.
type Attachment struct {
	ID        string
	FileName  string
	MimeType  string
	Data      []byte
	Public    bool
	Author    string
	Created   time.Time
	CommentID string
}

// Request is a customer request (an issue of a service desk project).
type Request struct {
	IssueID       string
	Key           string
	ServiceDeskID string
	RequestTypeID string
	ProjectKey    string
	Fields        map[string]any // requestFieldValues as decoded JSON (labels are []any of strings)
	Reporter      string         // accountId
	Participants  []string
	Status        Status
	Created       time.Time
	Updated       time.Time
	Comments      []Comment
	Attachments   []Attachment
}

// Labels returns the request's labels.
func (r Request) Labels() []string { return stringsOf(r.Fields["labels"]) }

// Summary returns the summary field.
func (r Request) Summary() string { s, _ := r.Fields["summary"].(string); return s }

// Text returns a text field ("" when absent or not a string).
func (r Request) Text(field string) string { s, _ := r.Fields[field].(string); return s }

func (r *Request) clone() Request {
	c := *r
	c.Fields = maps.Clone(r.Fields)
	if l, ok := c.Fields["labels"].([]any); ok {
		c.Fields["labels"] = slices.Clone(l)
	}
	c.Participants = slices.Clone(r.Participants)
	c.Comments = slices.Clone(r.Comments)
	for i := range c.Comments {
		c.Comments[i].Attachments = slices.Clone(c.Comments[i].Attachments)
	}
	c.Attachments = slices.Clone(r.Attachments)
	return c
}

func stringsOf(v any) []string {
	switch l := v.(type) {
	case []string:
		return slices.Clone(l)
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// desk is a service desk with its request types indexed.
type desk struct {
	ServiceDesk
	types map[string]*RequestType
}

func (rt *RequestType) fields() []FieldDef {
	if rt.Fields == nil {
		return DefaultFields()
	}
	return rt.Fields
}

func (rt *RequestType) field(id string) (FieldDef, bool) {
	for _, f := range rt.fields() {
		if f.ID == id {
			return f, true
		}
	}
	return FieldDef{}, false
}

func (rt *RequestType) transitions() []Transition {
	if rt.Transitions == nil {
		return DefaultTransitions()
	}
	return rt.Transitions
}

func (rt *RequestType) initial() Status {
	if rt.Initial.Name == "" {
		return StatusWaitingForSupport
	}
	return rt.Initial
}

// available lists the transitions possible from a status.
func available(ts []Transition, from Status) []Transition {
	var out []Transition
	for _, t := range ts {
		if len(t.From) == 0 {
			if !strings.EqualFold(t.To.Name, from.Name) {
				out = append(out, t)
			}
			continue
		}
		for _, f := range t.From {
			if strings.EqualFold(f, from.Name) {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// seeding (callers hold no lock)

// AddServiceDesk adds (or replaces) a service desk.
func (s *Server) AddServiceDesk(d ServiceDesk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addDeskLocked(d)
}

func (s *Server) addDeskLocked(d ServiceDesk) {
	if d.ProjectID == "" {
		d.ProjectID = fmt.Sprint(10000 + len(s.desks) + 1)
	}
	if d.ProjectName == "" {
		d.ProjectName = d.ProjectKey
	}
	dd := &desk{ServiceDesk: d, types: map[string]*RequestType{}}
	for i := range dd.RequestTypes {
		dd.types[dd.RequestTypes[i].ID] = &dd.RequestTypes[i]
	}
	if _, ok := s.desks[d.ID]; !ok {
		s.deskOrder = append(s.deskOrder, d.ID)
	}
	s.desks[d.ID] = dd
}

// AddCustomer creates a portal customer, optionally already a customer of some desks, and
// returns its accountId (qm:...).
func (s *Server) AddCustomer(email, displayName string, deskIDs ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addCustomerLocked(email, displayName, deskIDs...).AccountID
}

func (s *Server) addCustomerLocked(email, displayName string, deskIDs ...string) *Account {
	s.nextAccount++
	n := s.nextAccount
	a := &Account{
		AccountID:   fmt.Sprintf("qm:a713c8ea-1075-4e30-9d96-%012x:%024x", n, n),
		Email:       email,
		DisplayName: displayName,
		Type:        "customer",
		Desks:       slices.Clone(deskIDs),
	}
	s.accounts[a.AccountID] = a
	s.accountOrder = append(s.accountOrder, a.AccountID)
	return a
}

// AddAgent creates an agent (a licensed Atlassian account, 24-hex accountId) and returns its id.
func (s *Server) AddAgent(displayName, email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addAgentLocked(displayName, email).AccountID
}

func (s *Server) addAgentLocked(displayName, email string) *Account {
	s.nextAccount++
	a := &Account{AccountID: fmt.Sprintf("5b10a2844c2016570%07x", s.nextAccount), Email: email, DisplayName: displayName, Type: "atlassian"}
	s.accounts[a.AccountID] = a
	s.accountOrder = append(s.accountOrder, a.AccountID)
	return a
}

// Backdate moves a request's creation and last update d into the past, as if it had been raised
// then (for rules about a request's age, such as JQL "created >= -24h"). It reports whether the
// request exists.
func (s *Server) Backdate(keyOrID string, d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.lookupLocked(keyOrID)
	if r == nil {
		return false
	}
	r.Created, r.Updated = r.Created.Add(-d), r.Updated.Add(-d)
	return true
}

// ---------------------------------------------------------------------------------------------
// inspection

// Request returns a copy of a request by key or issue id.
func (s *Server) Request(keyOrID string) (Request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.lookupLocked(keyOrID)
	if r == nil {
		return Request{}, false
	}
	return r.clone(), true
}

// Requests returns copies of every request, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, 0, len(s.order))
	for _, k := range s.order {
		out = append(out, s.requests[k].clone())
	}
	return out
}

// RequestCount counts requests created.
func (s *Server) RequestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// Comments returns a request's comments, oldest first.
func (s *Server) Comments(keyOrID string) []Comment {
	r, _ := s.Request(keyOrID)
	return r.Comments
}

// Attachments returns a request's attachments.
func (s *Server) Attachments(keyOrID string) []Attachment {
	r, _ := s.Request(keyOrID)
	return r.Attachments
}

// Account returns an account by accountId.
func (s *Server) Account(accountID string) (Account, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[accountID]
	if !ok {
		return Account{}, false
	}
	c := *a
	c.Desks = slices.Clone(a.Desks)
	return c, true
}

// CustomerByEmail returns the customer with this email (case-insensitive).
func (s *Server) CustomerByEmail(email string) (Account, bool) {
	s.mu.Lock()
	a := s.byEmailLocked(email)
	s.mu.Unlock()
	if a == nil {
		return Account{}, false
	}
	return s.Account(a.AccountID)
}

// Customers returns every portal customer, in creation order.
func (s *Server) Customers() []Account {
	s.mu.Lock()
	ids := slices.Clone(s.accountOrder)
	s.mu.Unlock()
	var out []Account
	for _, id := range ids {
		if a, ok := s.Account(id); ok && a.Type == "customer" {
			out = append(out, a)
		}
	}
	return out
}

func (s *Server) byEmailLocked(email string) *Account {
	email = strings.TrimSpace(email)
	for _, id := range s.accountOrder {
		if a := s.accounts[id]; a.Email != "" && strings.EqualFold(a.Email, email) {
			return a
		}
	}
	return nil
}

func (s *Server) lookupLocked(keyOrID string) *Request {
	if r, ok := s.requests[strings.ToUpper(keyOrID)]; ok {
		return r
	}
	if k, ok := s.byID[keyOrID]; ok {
		return s.requests[k]
	}
	return nil
}

func (s *Server) typeOfLocked(r *Request) *RequestType {
	if d := s.desks[r.ServiceDeskID]; d != nil {
		if rt := d.types[r.RequestTypeID]; rt != nil {
			return rt
		}
	}
	return &RequestType{}
}

func (s *Server) statusIDLocked(name string) string {
	if id, ok := s.statusIDs[strings.ToLower(name)]; ok {
		return id
	}
	id := fmt.Sprint(10000 + len(s.statusIDs) + 1)
	s.statusIDs[strings.ToLower(name)] = id
	return id
}
