package jiratest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook events the fake sends.
const (
	EventCommentCreated = "comment_created"
	EventIssueUpdated   = "jira:issue_updated"
	EventIssueCreated   = "jira:issue_created"
)

// UserAgent is the User-Agent of deliveries (UNCONFIRMED: the exact value Jira Cloud sends).
const UserAgent = "Atlassian Webhook HTTP Client"

type webhook struct {
	url    string
	secret []byte
	events map[string]bool
}

// Delivery is one webhook delivery and the outcome of its last attempt.
type Delivery struct {
	ID       string // X-Atlassian-Webhook-Identifier: unique per delivery, the same on every retry
	Event    string
	URL      string
	Body     []byte
	Header   http.Header // headers of the last attempt
	Attempts int
	Status   int    // HTTP status of the last attempt; 0 when no answer arrived
	Err      string // transport error of the last attempt
	secret   []byte
}

func (d *Delivery) copy() Delivery {
	c := *d
	c.Body = bytes.Clone(d.Body)
	c.Header = d.Header.Clone()
	c.secret = nil
	return c
}

type pending struct {
	hook  *webhook
	event string
	body  []byte
}

// RegisterWebhook registers an admin webhook: deliveries go to url, signed with secret when it is
// not empty, for events (default comment_created and jira:issue_updated).
func (s *Server) RegisterWebhook(url, secret string, events ...string) {
	if len(events) == 0 {
		events = []string{EventCommentCreated, EventIssueUpdated}
	}
	h := &webhook{url: url, events: map[string]bool{}}
	if secret != "" {
		h.secret = []byte(secret)
	}
	for _, e := range events {
		h.events[e] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhooks = append(s.webhooks, h)
}

// ClearWebhooks removes every registration.
func (s *Server) ClearWebhooks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.webhooks = nil
}

// SetWebhookCommentADF makes comment bodies in webhooks ADF documents instead of strings (Jira's
// format here is not documented; receivers must handle both).
func (s *Server) SetWebhookCommentADF(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commentADF = on
}

// Deliveries returns every delivery so far, in order.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, 0, len(s.delivOrder))
	for _, id := range s.delivOrder {
		out = append(out, s.deliveries[id].copy())
	}
	return out
}

// WaitDeliveries waits until asynchronous deliveries (those caused by API calls) have finished.
func (s *Server) WaitDeliveries() { s.inflight.Wait() }

// Redeliver sends a delivery again, as Jira does after a failure: same body, same
// X-Atlassian-Webhook-Identifier, X-Atlassian-Webhook-Retry set to the retry number.
func (s *Server) Redeliver(id string) (Delivery, error) {
	s.mu.Lock()
	_, ok := s.deliveries[id]
	s.mu.Unlock()
	if !ok {
		return Delivery{}, fmt.Errorf("jiratest: no delivery %q", id)
	}
	return s.attempt(id), nil
}

// AgentComment adds a comment as an agent (author: an accountId; "" is AgentAccountID; an unknown
// id becomes an agent of that name) and delivers comment_created to the registered webhooks
// before returning.
func (s *Server) AgentComment(key, body string, public bool, author string) ([]Delivery, error) {
	s.mu.Lock()
	req := s.lookupLocked(key)
	if req == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("jiratest: no request %s", key)
	}
	if author == "" {
		author = AgentAccountID
	}
	if s.accounts[author] == nil {
		s.accounts[author] = &Account{AccountID: author, DisplayName: author, Type: "atlassian"}
		s.accountOrder = append(s.accountOrder, author)
	}
	c := s.addCommentLocked(req, body, public, author, nil)
	pend := s.pendingLocked(EventCommentCreated, s.commentEventLocked(req, c))
	s.mu.Unlock()
	return s.dispatch(pend, true), nil
}

// Transition moves a request as an agent would, by transition name ("Resolve") or target status
// name ("Resolved"), and delivers jira:issue_updated before returning.
func (s *Server) Transition(key, name string) ([]Delivery, error) {
	s.mu.Lock()
	req := s.lookupLocked(key)
	if req == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("jiratest: no request %s", key)
	}
	avail := available(s.typeOfLocked(req).transitions(), req.Status)
	var tr *Transition
	for i, t := range avail {
		if strings.EqualFold(t.Name, name) || strings.EqualFold(t.To.Name, name) {
			tr = &avail[i]
			break
		}
	}
	if tr == nil {
		var names []string
		for _, t := range avail {
			names = append(names, t.Name)
		}
		s.mu.Unlock()
		return nil, fmt.Errorf("jiratest: %s is %q; no transition %q (available: %s)", key, req.Status.Name, name, strings.Join(names, ", "))
	}
	pend := s.pendingLocked(EventIssueUpdated, s.transitionLocked(req, *tr, AgentAccountID))
	s.mu.Unlock()
	return s.dispatch(pend, true), nil
}

// ---------------------------------------------------------------------------------------------
// payloads

func (s *Server) platformUserLocked(id string) map[string]any {
	m := s.userJSONLocked(id)
	delete(m, "_links")
	m["self"] = s.URL() + "/rest/api/2/user?accountId=" + id
	return m
}

func (s *Server) statusJSONLocked(st Status) map[string]any {
	cat := map[string]map[string]any{
		"new":           {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
		"indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
		"done":          {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
	}[st.Category]
	id := s.statusIDLocked(st.Name)
	return map[string]any{"self": s.URL() + "/rest/api/2/status/" + id, "name": st.Name, "id": id, "statusCategory": cat}
}

func (s *Server) projectJSONLocked(r *Request) map[string]any {
	d := s.desks[r.ServiceDeskID]
	m := map[string]any{"key": r.ProjectKey, "projectTypeKey": "service_desk"}
	if d != nil {
		m["id"], m["name"], m["self"] = d.ProjectID, d.ProjectName, s.URL()+"/rest/api/2/project/"+d.ProjectID
	}
	return m
}

// issueBriefLocked is the issue object inside webhook payloads.
func (s *Server) issueBriefLocked(r *Request) map[string]any {
	fields := map[string]any{
		"summary": r.Summary(),
		"status":  s.statusJSONLocked(r.Status),
		"labels":  nonNil(r.Labels()),
		"project": s.projectJSONLocked(r),
		"created": jiraTime(r.Created),
		"updated": jiraTime(r.Updated),
	}
	return map[string]any{"id": r.IssueID, "self": s.URL() + "/rest/api/2/issue/" + r.IssueID, "key": r.Key, "fields": fields}
}

func (s *Server) commentEventLocked(r *Request, c Comment) map[string]any {
	var body any = c.Body
	if s.commentADF {
		body = adfDoc(c.Body)
	}
	author := s.platformUserLocked(c.Author)
	return map[string]any{
		"timestamp":    time.Now().UnixMilli(),
		"webhookEvent": EventCommentCreated,
		"comment": map[string]any{
			"self":         s.URL() + "/rest/api/2/issue/" + r.IssueID + "/comment/" + c.ID,
			"id":           c.ID,
			"author":       author,
			"body":         body,
			"updateAuthor": author,
			"created":      jiraTime(c.Created),
			"updated":      jiraTime(c.Created),
			"jsdPublic":    c.Public,
		},
		"issue": s.issueBriefLocked(r),
	}
}

func (s *Server) issueEventLocked(event string, r *Request, user string, items []map[string]any) map[string]any {
	m := map[string]any{
		"timestamp":    time.Now().UnixMilli(),
		"webhookEvent": event,
		"user":         s.platformUserLocked(user),
		"issue":        s.issueBriefLocked(r),
	}
	switch event {
	case EventIssueCreated:
		m["issue_event_type_name"] = "issue_created"
	case EventIssueUpdated:
		m["issue_event_type_name"] = "issue_generic"
		s.nextHook++
		m["changelog"] = map[string]any{"id": strconv.Itoa(20000 + s.nextHook), "items": items}
	}
	return m
}

// adfDoc turns plain text into an ADF document: blank lines separate paragraphs, single newlines
// are hard breaks.
func adfDoc(text string) map[string]any {
	var paras []any
	for _, p := range strings.Split(text, "\n\n") {
		var content []any
		for i, line := range strings.Split(p, "\n") {
			if i > 0 {
				content = append(content, map[string]any{"type": "hardBreak"})
			}
			if line != "" {
				content = append(content, map[string]any{"type": "text", "text": line})
			}
		}
		paras = append(paras, map[string]any{"type": "paragraph", "content": content})
	}
	return map[string]any{"type": "doc", "version": 1, "content": paras}
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// pendingLocked encodes a payload for every webhook subscribed to event.
func (s *Server) pendingLocked(event string, payload map[string]any) []pending {
	var out []pending
	var body []byte
	for _, h := range s.webhooks {
		if !h.events[event] {
			continue
		}
		if body == nil {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			_ = enc.Encode(payload)
			body = bytes.TrimRight(buf.Bytes(), "\n")
		}
		out = append(out, pending{hook: h, event: event, body: body})
	}
	return out
}

// dispatch records and sends deliveries; synchronously (returning the outcomes) or in the
// background (returning nil), as Jira does for changes made through the API.
func (s *Server) dispatch(ps []pending, sync bool) []Delivery {
	var out []Delivery
	for _, p := range ps {
		d := &Delivery{ID: newDeliveryID(), Event: p.event, URL: p.hook.url, Body: p.body, secret: p.hook.secret}
		s.mu.Lock()
		s.deliveries[d.ID] = d
		s.delivOrder = append(s.delivOrder, d.ID)
		s.mu.Unlock()
		if sync {
			out = append(out, s.attempt(d.ID))
			continue
		}
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			s.attempt(d.ID)
		}()
	}
	return out
}

func (s *Server) attempt(id string) Delivery {
	s.mu.Lock()
	d := s.deliveries[id]
	d.Attempts++
	n, target, body, secret := d.Attempts, d.URL, d.Body, d.secret
	s.mu.Unlock()

	status, errText := 0, ""
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if err == nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("User-Agent", UserAgent)
		req.Header.Set("X-Atlassian-Webhook-Identifier", id)
		req.Header.Set("X-Atlassian-Webhook-Flow", "Primary")
		if n > 1 {
			req.Header.Set("X-Atlassian-Webhook-Retry", strconv.Itoa(n-1))
		}
		if len(secret) > 0 {
			m := hmac.New(sha256.New, secret)
			m.Write(body)
			req.Header.Set("X-Hub-Signature", "sha256="+hex.EncodeToString(m.Sum(nil)))
		}
		resp, derr := s.hooks.Do(req)
		if derr != nil {
			errText = derr.Error()
		} else {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			_ = resp.Body.Close()
			status = resp.StatusCode
		}
	} else {
		errText = err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d.Status, d.Err = status, errText
	if req != nil {
		d.Header = req.Header.Clone()
	}
	return d.copy()
}

func newDeliveryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return strings.Join([]string{h[:8], h[8:12], h[12:16], h[16:20], h[20:]}, "-")
}
