package jiratest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Platform API v3 reads and edits of an issue and its comments, which JSM's own API cannot do:
//
//	GET /rest/api/3/issue/{key}?fields=a,b            the issue (description as ADF)
//	PUT /rest/api/3/issue/{key} {"fields":{"description":<ADF>}}   (editIssue, platform.go)
//	GET /rest/api/3/issue/{key}/comment/{id}          the comment (body as ADF, jsdPublic)
//	PUT /rest/api/3/issue/{key}/comment/{id} {"body":<ADF>}        200 with the comment
//
// v3 rejects string bodies for rich-text fields (400, "Operation value must be an Atlassian
// Document"). The fake keeps rich text as plain text (paragraphs separated by blank lines, hard
// breaks as newlines), so an edited description or comment reads back as the same text in ADF.
// Editing someone else's comment needs the "Edit all comments" permission, which the
// integration user is assumed not to have here: 403.
func (s *Server) issueRoutes() {
	s.mux.HandleFunc("GET /rest/api/3/issue/{key}", s.getIssue)
	s.mux.HandleFunc("GET /rest/api/3/issue/{key}/comment/{id}", s.getIssueComment)
	s.mux.HandleFunc("PUT /rest/api/3/issue/{key}/comment/{id}", s.editIssueComment)
}

func (s *Server) getIssue(w http.ResponseWriter, r *http.Request) {
	var fields []string
	for _, f := range strings.Split(r.URL.Query().Get("fields"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		fields = []string{"*navigable"}
	}
	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		writePlatform(w, http.StatusNotFound, []string{"Issue does not exist or you do not have permission to see it."}, nil)
		return
	}
	out := s.issueJSONLocked(req, fields)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) platformCommentLocked(r *Request, c Comment) map[string]any {
	author := s.platformUserLocked(c.Author)
	return map[string]any{
		"self":         s.URL() + "/rest/api/3/issue/" + r.IssueID + "/comment/" + c.ID,
		"id":           c.ID,
		"author":       author,
		"updateAuthor": author,
		"body":         adfDoc(c.Body),
		"created":      jiraTime(c.Created),
		"updated":      jiraTime(c.Created),
		"jsdPublic":    c.Public,
	}
}

func (s *Server) findCommentLocked(w http.ResponseWriter, r *http.Request) (*Request, int) {
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		writePlatform(w, http.StatusNotFound, []string{"Issue does not exist or you do not have permission to see it."}, nil)
		return nil, -1
	}
	for i, c := range req.Comments {
		if c.ID == r.PathValue("id") {
			return req, i
		}
	}
	writePlatform(w, http.StatusNotFound, []string{"Can not find a comment for the id: " + r.PathValue("id") + "."}, nil)
	return nil, -1
}

func (s *Server) getIssueComment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	req, i := s.findCommentLocked(w, r)
	if req == nil {
		s.mu.Unlock()
		return
	}
	out := s.platformCommentLocked(req, req.Comments[i])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) editIssueComment(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeObject(r)
	if !ok {
		writePlatform(w, http.StatusBadRequest, []string{"Invalid request payload. Refer to the REST API documentation and try again."}, nil)
		return
	}
	text, problem := adfBody(in["body"])
	if problem != "" {
		writePlatform(w, http.StatusBadRequest, nil, map[string]string{"comment": problem})
		return
	}
	s.mu.Lock()
	req, i := s.findCommentLocked(w, r)
	if req == nil {
		s.mu.Unlock()
		return
	}
	if req.Comments[i].Author != APIUserAccountID {
		s.mu.Unlock()
		writePlatform(w, http.StatusForbidden, []string{"You do not have the permission to edit this comment."}, nil)
		return
	}
	req.Comments[i].Body = text
	req.Updated = time.Now()
	out := s.platformCommentLocked(req, req.Comments[i])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// setDescriptionLocked sets a request's description and returns the changelog item, or nil when
// nothing changed.
func setDescriptionLocked(req *Request, text string) map[string]any {
	old := req.Text("description")
	if old == text {
		return nil
	}
	req.Fields["description"] = text
	return map[string]any{"field": "description", "fieldtype": "jira", "fieldId": "description", "from": nil, "fromString": old, "to": nil, "toString": text}
}

// adfBody reads a v3 rich-text value: an ADF document (or null, which clears it).
func adfBody(raw json.RawMessage) (string, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", ""
	}
	var doc adfNode
	if json.Unmarshal(raw, &doc) != nil || doc.Type != "doc" {
		return "", "Operation value must be an Atlassian Document (see the Atlassian Document Format)."
	}
	var paras []string
	for _, block := range doc.Content {
		paras = append(paras, block.text())
	}
	return strings.Join(paras, "\n\n"), ""
}

type adfNode struct {
	Type    string    `json:"type"`
	Text    string    `json:"text"`
	Content []adfNode `json:"content"`
}

// text flattens a block: text nodes as they are, hard breaks as newlines, nested blocks on
// their own lines.
func (n adfNode) text() string {
	switch n.Type {
	case "text":
		return n.Text
	case "hardBreak":
		return "\n"
	}
	var b strings.Builder
	for i, c := range n.Content {
		if i > 0 && c.Type != "text" && c.Type != "hardBreak" && c.Type != "mention" && c.Type != "emoji" {
			b.WriteString("\n")
		}
		b.WriteString(c.text())
	}
	return b.String()
}

// Description returns a request's description as plain text.
func (s *Server) Description(keyOrID string) string {
	r, _ := s.Request(keyOrID)
	return r.Text("description")
}
