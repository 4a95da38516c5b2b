package jiratest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

func (s *Server) routes() {
	m := s.mux
	// JSM
	m.HandleFunc("POST /rest/servicedeskapi/request", s.createRequest)
	m.HandleFunc("GET /rest/servicedeskapi/request/{key}", s.getRequest)
	m.HandleFunc("POST /rest/servicedeskapi/request/{key}/comment", s.addComment)
	m.HandleFunc("GET /rest/servicedeskapi/request/{key}/comment", s.listComments)
	m.HandleFunc("GET /rest/servicedeskapi/request/{key}/transition", s.listTransitions)
	m.HandleFunc("POST /rest/servicedeskapi/request/{key}/transition", s.performTransition)
	m.HandleFunc("POST /rest/servicedeskapi/request/{key}/attachment", s.createAttachment)
	m.HandleFunc("GET /rest/servicedeskapi/request/{key}/attachment", s.listAttachments)
	m.HandleFunc("GET /rest/servicedeskapi/servicedesk/{id}/customer", s.findCustomers)
	m.HandleFunc("POST /rest/servicedeskapi/servicedesk/{id}/customer", s.addCustomers)
	m.HandleFunc("POST /rest/servicedeskapi/servicedesk/{id}/attachTemporaryFile", s.attachTemporaryFile)
	m.HandleFunc("GET /rest/servicedeskapi/servicedesk/{id}/requesttype/{rt}/field", s.requestTypeFields)
	m.HandleFunc("GET /rest/servicedeskapi/servicedesk/{id}", s.getServiceDesk)
	m.HandleFunc("POST /rest/servicedeskapi/customer", s.createCustomer)
	// platform
	m.HandleFunc("POST /rest/api/3/search/jql", s.searchJQL)
	m.HandleFunc("/rest/api/{v}/search", s.searchRemoved)
	m.HandleFunc("PUT /rest/api/3/issue/{key}", s.editIssue)
	m.HandleFunc("GET /rest/api/3/user/search", s.userSearch)
	m.HandleFunc("GET /rest/api/3/myself", s.myself)
	m.HandleFunc("GET /rest/api/3/mypermissions", s.myPermissions)
	s.issueRoutes()
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeAreaError(w, r.URL.Path, http.StatusNotFound, "No such resource in jiratest: "+r.Method+" "+r.URL.Path)
	})
}

// decodeObject reads a JSON object body.
func decodeObject(r *http.Request) (map[string]json.RawMessage, bool) {
	var m map[string]json.RawMessage
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	return m, true
}

// idString reads an id sent as a JSON string (or, leniently, a number).
func idString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		s = strings.TrimSpace(s)
		return s, s != ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

func (s *Server) userJSONLocked(id string) map[string]any {
	a := s.accounts[id]
	if a == nil {
		return map[string]any{"accountId": id, "active": false}
	}
	m := map[string]any{
		"accountId":   a.AccountID,
		"accountType": a.Type,
		"displayName": a.DisplayName,
		"active":      true,
		"timeZone":    "Etc/UTC",
		"_links":      map[string]any{"jiraRest": s.URL() + "/rest/api/2/user?accountId=" + url.QueryEscape(a.AccountID)},
	}
	if a.Email != "" && !s.cfg.HideEmails {
		m["emailAddress"] = a.Email
	}
	return m
}

func (s *Server) requestJSONLocked(r *Request) map[string]any {
	rt := s.typeOfLocked(r)
	values := []map[string]any{}
	for _, f := range rt.fields() {
		v, ok := r.Fields[f.ID]
		if !ok || f.Hidden {
			continue
		}
		fv := map[string]any{"fieldId": f.ID, "label": f.Name, "value": v}
		if str, ok := v.(string); ok && f.ID == "description" {
			fv["renderedValue"] = map[string]string{"html": "<p>" + html.EscapeString(str) + "</p>"}
		}
		values = append(values, fv)
	}
	base := s.URL()
	return map[string]any{
		"_expands":           []string{"participant", "status", "sla", "requestType", "serviceDesk", "attachment", "action", "comment"},
		"issueId":            r.IssueID,
		"issueKey":           r.Key,
		"requestTypeId":      r.RequestTypeID,
		"serviceDeskId":      r.ServiceDeskID,
		"createdDate":        jsmDate(r.Created),
		"reporter":           s.userJSONLocked(r.Reporter),
		"requestFieldValues": values,
		"currentStatus": map[string]any{
			"status":         r.Status.Name,
			"statusCategory": strings.ToUpper(r.Status.Category),
			"statusDate":     jsmDate(r.Updated),
		},
		"_links": map[string]string{
			"jiraRest": base + "/rest/api/2/issue/" + r.IssueID,
			"web":      base + "/servicedesk/customer/portal/" + r.ServiceDeskID + "/" + r.Key,
			"agent":    base + "/browse/" + r.Key,
			"self":     base + "/rest/servicedeskapi/request/" + r.IssueID,
		},
	}
}

func (s *Server) commentJSONLocked(r *Request, c Comment) map[string]any {
	return map[string]any{
		"_expands": []string{"attachment", "renderedBody"},
		"id":       c.ID,
		"body":     c.Body,
		"public":   c.Public,
		"author":   s.userJSONLocked(c.Author),
		"created":  jsmDate(c.Created),
		"_links":   map[string]string{"self": s.URL() + "/rest/servicedeskapi/request/" + r.IssueID + "/comment/" + c.ID},
	}
}

func (s *Server) attachmentJSONLocked(r *Request, a Attachment) map[string]any {
	base := s.URL()
	return map[string]any{
		"filename": a.FileName,
		"author":   s.userJSONLocked(a.Author),
		"created":  jsmDate(a.Created),
		"size":     len(a.Data),
		"mimeType": a.MimeType,
		"_links": map[string]string{
			"jiraRest":  base + "/rest/api/2/attachment/" + a.ID,
			"content":   base + "/rest/servicedeskapi/request/" + r.IssueID + "/attachment/" + a.ID,
			"thumbnail": base + "/rest/servicedeskapi/request/" + r.IssueID + "/attachment/" + a.ID + "/thumbnail",
		},
	}
}

// pageOf slices values the way JSM pages lists (start, limit).
func pageOf[T any](values []T, q url.Values) map[string]any {
	start, _ := strconv.Atoi(q.Get("start"))
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 50
	}
	limit = min(limit, 100)
	start = min(max(start, 0), len(values))
	end := min(start+limit, len(values))
	out := values[start:end]
	if out == nil {
		out = []T{}
	}
	return map[string]any{"size": len(out), "start": start, "limit": limit, "isLastPage": end >= len(values), "values": out, "_links": map[string]any{}}
}

// ---------------------------------------------------------------------------------------------
// requests

var requestKeys = map[string]bool{
	"serviceDeskId": true, "requestTypeId": true, "requestFieldValues": true, "raiseOnBehalfOf": true,
	"requestParticipants": true, "channel": true, "form": true, "isAdfRequest": true,
}

func (s *Server) createRequest(w http.ResponseWriter, r *http.Request) {
	top, ok := decodeObject(r)
	if !ok {
		writeJSM(w, http.StatusBadRequest, "The request body is not a JSON object.", "sd.request.create.error.json")
		return
	}
	var unknown []string
	for k := range top {
		if !requestKeys[k] {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		writeJSM(w, http.StatusBadRequest, "Unrecognized field "+strings.Join(unknown, ", ")+
			": a customer request takes serviceDeskId, requestTypeId and requestFieldValues (fields, issuetype and project belong to /rest/api/3/issue).",
			"sd.request.create.error.unrecognized.field")
		return
	}
	deskID, ok := idString(top["serviceDeskId"])
	if !ok {
		writeJSM(w, http.StatusBadRequest, "serviceDeskId is required.", "sd.request.create.error.servicedesk.required")
		return
	}
	typeID, ok := idString(top["requestTypeId"])
	if !ok {
		writeJSM(w, http.StatusBadRequest, "requestTypeId is required.", "sd.request.create.error.requesttype.required")
		return
	}
	fields := map[string]any{}
	if raw, ok := top["requestFieldValues"]; ok {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil || fields == nil {
			writeJSM(w, http.StatusBadRequest, "requestFieldValues must be an object keyed by field id.", "sd.request.create.error.fields")
			return
		}
	}
	var onBehalf string
	if raw, ok := top["raiseOnBehalfOf"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &onBehalf) != nil {
			writeJSM(w, http.StatusBadRequest, "raiseOnBehalfOf must be an accountId string.", "sd.request.create.error.raiseonbehalfof")
			return
		}
	}
	var participants []string
	if raw, ok := top["requestParticipants"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &participants) != nil {
			writeJSM(w, http.StatusBadRequest, "requestParticipants must be an array of accountIds.", "sd.request.create.error.participants")
			return
		}
	}

	s.mu.Lock()
	d := s.desks[deskID]
	if d == nil {
		s.mu.Unlock()
		writeJSM(w, http.StatusNotFound, fmt.Sprintf("The service desk with id '%s' does not exist or you do not have permission to access it.", deskID), "sd.servicedesk.error.not.found")
		return
	}
	rt := d.types[typeID]
	if rt == nil {
		s.mu.Unlock()
		writeJSM(w, http.StatusBadRequest, fmt.Sprintf("The request type '%s' does not exist in service desk '%s'.", typeID, deskID), "sd.request.create.error.requesttype.invalid")
		return
	}
	reporter := APIUserAccountID
	if onBehalf != "" {
		if s.accounts[onBehalf] == nil {
			s.mu.Unlock()
			writeJSM(w, http.StatusBadRequest, fmt.Sprintf("raiseOnBehalfOf: the user '%s' does not exist. raiseOnBehalfOf takes an accountId, not an email address.", onBehalf), "sd.request.create.error.raiseonbehalfof.invalid")
			return
		}
		reporter = onBehalf
	}
	for _, p := range participants {
		if s.accounts[p] == nil {
			s.mu.Unlock()
			writeJSM(w, http.StatusBadRequest, fmt.Sprintf("requestParticipants: the user '%s' does not exist.", p), "sd.request.create.error.participants.invalid")
			return
		}
	}
	if problems := validateFields(rt, fields); len(problems) > 0 {
		s.mu.Unlock()
		writeJSM(w, http.StatusBadRequest, "Your request could not be created. Please check the fields have been correctly filled in. "+strings.Join(problems, " "), "sd.request.create.error.fields.invalid")
		return
	}
	now := time.Now()
	s.nextIssue++
	s.seq[d.ProjectKey]++
	req := &Request{
		IssueID: strconv.Itoa(s.nextIssue), Key: fmt.Sprintf("%s-%d", d.ProjectKey, s.seq[d.ProjectKey]),
		ServiceDeskID: deskID, RequestTypeID: typeID, ProjectKey: d.ProjectKey,
		Fields: fields, Reporter: reporter, Participants: participants, Status: rt.initial(),
		Created: now, Updated: now,
	}
	s.requests[req.Key] = req
	s.byID[req.IssueID] = req.Key
	s.order = append(s.order, req.Key)
	body := s.requestJSONLocked(req)
	pend := s.pendingLocked(EventIssueCreated, s.issueEventLocked(EventIssueCreated, req, APIUserAccountID, nil))
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, body)
	s.dispatch(pend, false)
}

// validateFields checks requestFieldValues against the request type's form; each problem names
// its field ("summary: Summary is required.").
func validateFields(rt *RequestType, fields map[string]any) []string {
	var problems []string
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		def, ok := rt.field(k)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", k, k))
			continue
		}
		if p := checkValue(def, fields[k]); p != "" {
			problems = append(problems, k+": "+p)
		}
	}
	for _, def := range rt.fields() {
		if !def.Required {
			continue
		}
		v, ok := fields[def.ID]
		str, isStr := v.(string)
		if !ok || v == nil || (isStr && strings.TrimSpace(str) == "") {
			problems = append(problems, fmt.Sprintf("%s: %s is required.", def.ID, def.Name))
		}
	}
	return problems
}

func checkValue(def FieldDef, v any) string {
	if v == nil {
		return ""
	}
	switch def.Type {
	case FieldText:
		str, ok := v.(string)
		if !ok {
			return fmt.Sprintf("%s must be a string (plain text, not an object).", def.Name)
		}
		if def.ID == "summary" && len(str) > 255 {
			return "Summary must be less than 255 characters."
		}
	case FieldLabels:
		l, ok := v.([]any)
		if !ok {
			return fmt.Sprintf("%s must be an array of strings.", def.Name)
		}
		for _, x := range l {
			str, ok := x.(string)
			if !ok {
				return fmt.Sprintf("%s must be an array of strings.", def.Name)
			}
			if p := labelProblem(str); p != "" {
				return p
			}
		}
	case FieldNumber:
		if _, ok := v.(json.Number); !ok {
			return fmt.Sprintf("%s must be a number.", def.Name)
		}
	}
	return ""
}

func labelProblem(l string) string {
	switch {
	case l == "":
		return "A label cannot be empty."
	case len(l) > 255:
		return "A label cannot be longer than 255 characters."
	case strings.IndexFunc(l, unicode.IsSpace) >= 0:
		return fmt.Sprintf("The label '%s' contains spaces which is invalid.", l)
	}
	return ""
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		writeJSM(w, http.StatusNotFound, "Request does not exist or you do not have permission to see it.", "sd.request.error.not.found")
		return
	}
	body := s.requestJSONLocked(req)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func notFoundRequest(w http.ResponseWriter) {
	writeJSM(w, http.StatusNotFound, "Request does not exist or you do not have permission to see it.", "sd.request.error.not.found")
}

// ---------------------------------------------------------------------------------------------
// comments

func (s *Server) addCommentLocked(r *Request, body string, public bool, author string, attachments []string) Comment {
	s.nextComment++
	c := Comment{ID: strconv.Itoa(s.nextComment), Body: body, Public: public, Author: author, Created: time.Now(), Attachments: attachments}
	r.Comments = append(r.Comments, c)
	r.Updated = c.Created
	return c
}

func (s *Server) addComment(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeObject(r)
	if !ok {
		writeJSM(w, http.StatusBadRequest, "The request body is not a JSON object.", "sd.comment.error.json")
		return
	}
	var body string
	if raw, ok := in["body"]; !ok || json.Unmarshal(raw, &body) != nil {
		writeJSM(w, http.StatusBadRequest, "body: the comment body must be a string (JSM comments are plain text, not ADF).", "sd.comment.error.body")
		return
	}
	if strings.TrimSpace(body) == "" {
		writeJSM(w, http.StatusBadRequest, "body: the comment body cannot be empty.", "sd.comment.error.body.empty")
		return
	}
	public := true
	if raw, ok := in["public"]; ok && json.Unmarshal(raw, &public) != nil {
		writeJSM(w, http.StatusBadRequest, "public must be true or false.", "sd.comment.error.public")
		return
	}
	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		notFoundRequest(w)
		return
	}
	c := s.addCommentLocked(req, body, public, APIUserAccountID, nil)
	out := s.commentJSONLocked(req, c)
	pend := s.pendingLocked(EventCommentCreated, s.commentEventLocked(req, c))
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
	s.dispatch(pend, false)
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	public, internal := q.Get("public") != "false", q.Get("internal") != "false"
	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		notFoundRequest(w)
		return
	}
	var out []map[string]any
	for _, c := range req.Comments {
		if (c.Public && public) || (!c.Public && internal) {
			out = append(out, s.commentJSONLocked(req, c))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, pageOf(out, q))
}

// ---------------------------------------------------------------------------------------------
// transitions

func (s *Server) listTransitions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		notFoundRequest(w)
		return
	}
	var out []map[string]string
	for _, t := range available(s.typeOfLocked(req).transitions(), req.Status) {
		out = append(out, map[string]string{"id": t.ID, "name": t.Name})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, pageOf(out, r.URL.Query()))
}

// transitionLocked moves a request and returns the webhook payload of the change.
func (s *Server) transitionLocked(req *Request, t Transition, user string) map[string]any {
	old := req.Status
	req.Status = t.To
	req.Updated = time.Now()
	items := []map[string]any{{
		"field": "status", "fieldtype": "jira", "fieldId": "status",
		"from": s.statusIDLocked(old.Name), "fromString": old.Name,
		"to": s.statusIDLocked(t.To.Name), "toString": t.To.Name,
	}}
	if t.To.Category == "done" && old.Category != "done" {
		items = append(items, map[string]any{"field": "resolution", "fieldtype": "jira", "fieldId": "resolution", "from": nil, "fromString": nil, "to": "10000", "toString": "Done"})
	}
	return s.issueEventLocked(EventIssueUpdated, req, user, items)
}

func (s *Server) performTransition(w http.ResponseWriter, r *http.Request) {
	in, ok := decodeObject(r)
	if !ok {
		writeJSM(w, http.StatusBadRequest, "The request body is not a JSON object.", "sd.transition.error.json")
		return
	}
	id, ok := idString(in["id"])
	if !ok {
		writeJSM(w, http.StatusBadRequest, "id: the transition id is required.", "sd.transition.error.id.required")
		return
	}
	var comment string
	if raw, ok := in["additionalComment"]; ok && string(raw) != "null" {
		var ac struct {
			Body string `json:"body"`
		}
		if json.Unmarshal(raw, &ac) != nil {
			writeJSM(w, http.StatusBadRequest, "additionalComment must be {\"body\":\"...\"}.", "sd.transition.error.comment")
			return
		}
		comment = ac.Body
	}
	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		notFoundRequest(w)
		return
	}
	var tr *Transition
	for _, t := range available(s.typeOfLocked(req).transitions(), req.Status) {
		if t.ID == id {
			tr = &t
			break
		}
	}
	if tr == nil {
		s.mu.Unlock()
		writeJSM(w, http.StatusBadRequest, fmt.Sprintf("The transition with id '%s' is not valid for request %s in status '%s'.", id, req.Key, req.Status.Name), "sd.transition.error.invalid")
		return
	}
	pend := s.pendingLocked(EventIssueUpdated, s.transitionLocked(req, *tr, APIUserAccountID))
	if strings.TrimSpace(comment) != "" {
		c := s.addCommentLocked(req, comment, true, APIUserAccountID, nil)
		pend = append(pend, s.pendingLocked(EventCommentCreated, s.commentEventLocked(req, c))...)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	s.dispatch(pend, false)
}

// ---------------------------------------------------------------------------------------------
// attachments

type tempFile struct {
	id, deskID, name, mimeType string
	data                       []byte
}

func (s *Server) attachTemporaryFile(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Atlassian-Token") != "no-check" {
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, "XSRF check failed")
		return
	}
	deskID := r.PathValue("id")
	s.mu.Lock()
	_, ok := s.desks[deskID]
	s.mu.Unlock()
	if !ok {
		writeJSM(w, http.StatusNotFound, fmt.Sprintf("The service desk with id '%s' does not exist or you do not have permission to access it.", deskID), "sd.servicedesk.error.not.found")
		return
	}
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" || params["boundary"] == "" {
		writeJSM(w, http.StatusUnsupportedMediaType, "attachTemporaryFile expects multipart/form-data.", "sd.attachment.error.media.type")
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var files []*tempFile
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeJSM(w, http.StatusBadRequest, "The multipart body cannot be read: "+err.Error(), "sd.attachment.error.multipart")
			return
		}
		if p.FormName() != "file" || p.FileName() == "" {
			_ = p.Close()
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p, 10<<20))
		_ = p.Close()
		if err != nil {
			writeJSM(w, http.StatusBadRequest, "The multipart body cannot be read: "+err.Error(), "sd.attachment.error.multipart")
			return
		}
		mt := p.Header.Get("Content-Type")
		if mt == "" {
			mt = "application/octet-stream"
		}
		files = append(files, &tempFile{deskID: deskID, name: p.FileName(), mimeType: mt, data: data})
	}
	if len(files) == 0 {
		writeJSM(w, http.StatusBadRequest, "No file was sent: the multipart/form-data part must be named 'file'.", "sd.attachment.error.no.file")
		return
	}
	var out []map[string]string
	s.mu.Lock()
	for _, f := range files {
		s.nextTemp++
		f.id = newTempID(s.nextTemp)
		s.temps[f.id] = f
		out = append(out, map[string]string{"temporaryAttachmentId": f.id, "fileName": f.name})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]any{"temporaryAttachments": out})
}

func (s *Server) createAttachment(w http.ResponseWriter, r *http.Request) {
	var in struct {
		TemporaryAttachmentIDs []string `json:"temporaryAttachmentIds"`
		Public                 *bool    `json:"public"`
		AdditionalComment      *struct {
			Body string `json:"body"`
		} `json:"additionalComment"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSM(w, http.StatusBadRequest, "The request body is not valid: "+err.Error(), "sd.attachment.error.json")
		return
	}
	if len(in.TemporaryAttachmentIDs) == 0 {
		writeJSM(w, http.StatusBadRequest, "temporaryAttachmentIds: at least one temporary attachment id is required.", "sd.attachment.error.ids")
		return
	}
	if in.Public == nil {
		writeJSM(w, http.StatusBadRequest, "public: say whether the attachments are public.", "sd.attachment.error.public")
		return
	}
	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		notFoundRequest(w)
		return
	}
	for _, id := range in.TemporaryAttachmentIDs {
		if t := s.temps[id]; t == nil || t.deskID != req.ServiceDeskID {
			s.mu.Unlock()
			writeJSM(w, http.StatusBadRequest, fmt.Sprintf("temporaryAttachmentIds: '%s' does not exist, has expired or belongs to another service desk.", id), "sd.attachment.error.temporary.invalid")
			return
		}
	}
	now := time.Now()
	var ids []string
	var names []string
	var added []Attachment
	for _, id := range in.TemporaryAttachmentIDs {
		t := s.temps[id]
		delete(s.temps, id)
		s.nextAttach++
		a := Attachment{ID: strconv.Itoa(s.nextAttach), FileName: t.name, MimeType: t.mimeType, Data: t.data, Public: *in.Public, Author: APIUserAccountID, Created: now}
		ids = append(ids, a.ID)
		names = append(names, "[^"+t.name+"]")
		added = append(added, a)
	}
	text := strings.Join(names, " ")
	if in.AdditionalComment != nil && strings.TrimSpace(in.AdditionalComment.Body) != "" {
		text = in.AdditionalComment.Body + "\n\n" + text
	}
	c := s.addCommentLocked(req, text, *in.Public, APIUserAccountID, ids)
	var values []map[string]any
	for i := range added {
		added[i].CommentID = c.ID
		req.Attachments = append(req.Attachments, added[i])
		values = append(values, s.attachmentJSONLocked(req, added[i]))
	}
	out := map[string]any{"comment": s.commentJSONLocked(req, c), "attachments": pageOf(values, url.Values{})}
	pend := s.pendingLocked(EventCommentCreated, s.commentEventLocked(req, c))
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
	s.dispatch(pend, false)
}

func (s *Server) listAttachments(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		notFoundRequest(w)
		return
	}
	var values []map[string]any
	for _, a := range req.Attachments {
		values = append(values, s.attachmentJSONLocked(req, a))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, pageOf(values, r.URL.Query()))
}

// ---------------------------------------------------------------------------------------------
// customers

func (s *Server) findCustomers(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("X-ExperimentalApi"), "opt-in") {
		writeJSM(w, http.StatusBadRequest, "This API is experimental. Experimental APIs are not guaranteed to be stable within the preview period. You must set the header 'X-ExperimentalApi: opt-in' to opt into using this API.", "sd.api.experimental.required")
		return
	}
	deskID := r.PathValue("id")
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("query")))
	s.mu.Lock()
	if _, ok := s.desks[deskID]; !ok {
		s.mu.Unlock()
		writeJSM(w, http.StatusNotFound, fmt.Sprintf("The service desk with id '%s' does not exist or you do not have permission to access it.", deskID), "sd.servicedesk.error.not.found")
		return
	}
	var out []map[string]any
	for _, id := range s.accountOrder {
		a := s.accounts[id]
		if !slices.Contains(a.Desks, deskID) {
			continue
		}
		if q == "" || strings.Contains(strings.ToLower(a.Email), q) || strings.Contains(strings.ToLower(a.DisplayName), q) {
			out = append(out, s.userJSONLocked(id))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, pageOf(out, r.URL.Query()))
}

func (s *Server) addCustomers(w http.ResponseWriter, r *http.Request) {
	var in struct {
		AccountIDs []string `json:"accountIds"`
		Usernames  []string `json:"usernames"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSM(w, http.StatusBadRequest, "The request body is not valid: "+err.Error(), "sd.customer.error.json")
		return
	}
	if len(in.Usernames) > 0 {
		writeJSM(w, http.StatusBadRequest, "usernames are no longer supported in Jira Cloud; use accountIds.", "sd.customer.error.usernames")
		return
	}
	deskID := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.desks[deskID]; !ok {
		writeJSM(w, http.StatusNotFound, fmt.Sprintf("The service desk with id '%s' does not exist or you do not have permission to access it.", deskID), "sd.servicedesk.error.not.found")
		return
	}
	var missing []string
	for _, id := range in.AccountIDs {
		if s.accounts[id] == nil {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 || len(in.AccountIDs) == 0 {
		writeJSM(w, http.StatusBadRequest, "accountIds: these accounts do not exist: "+strings.Join(missing, ", "), "sd.customer.error.accounts.invalid")
		return
	}
	for _, id := range in.AccountIDs {
		if a := s.accounts[id]; !slices.Contains(a.Desks, deskID) {
			a.Desks = append(a.Desks, deskID)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) createCustomer(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Email       string `json:"email"`
		DisplayName string `json:"displayName"`
		FullName    string `json:"fullName"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSM(w, http.StatusBadRequest, "The request body is not valid: "+err.Error(), "sd.customer.error.json")
		return
	}
	in.Email = strings.TrimSpace(in.Email)
	if in.Email == "" || !strings.Contains(in.Email, "@") || strings.ContainsAny(in.Email, " \t") {
		writeJSM(w, http.StatusBadRequest, "email: a valid email address is required.", "sd.customer.error.email.invalid")
		return
	}
	name := in.DisplayName
	if name == "" {
		name = in.FullName
	}
	if name == "" {
		name = in.Email
	}
	strict := r.URL.Query().Get("strictConflictStatusCode") == "true"
	s.mu.Lock()
	if s.byEmailLocked(in.Email) != nil {
		s.mu.Unlock()
		status := http.StatusBadRequest
		if strict {
			status = http.StatusConflict
		}
		writeJSM(w, status, "An account already exists for this email.", "sd.customer.error.email.exists")
		return
	}
	a := s.addCustomerLocked(in.Email, name)
	out := s.userJSONLocked(a.AccountID)
	out["name"], out["key"] = a.AccountID, a.AccountID
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, out)
}

func (s *Server) requestTypeFields(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.desks[r.PathValue("id")]
	var rt *RequestType
	if d != nil {
		rt = d.types[r.PathValue("rt")]
	}
	if rt == nil {
		s.mu.Unlock()
		writeJSM(w, http.StatusNotFound, "The service desk or request type does not exist or you do not have permission to access it.", "sd.requesttype.error.not.found")
		return
	}
	var out []map[string]any
	for _, f := range rt.fields() {
		schema := map[string]any{"type": "string", "system": f.ID}
		switch f.Type {
		case FieldLabels:
			schema = map[string]any{"type": "array", "items": "string", "system": "labels"}
		case FieldNumber:
			schema = map[string]any{"type": "number"}
		}
		out = append(out, map[string]any{"fieldId": f.ID, "name": f.Name, "required": f.Required, "visible": !f.Hidden, "jiraSchema": schema, "validValues": []any{}})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"requestTypeFields": out, "canRaiseOnBehalfOf": true, "canAddRequestParticipants": true})
}
