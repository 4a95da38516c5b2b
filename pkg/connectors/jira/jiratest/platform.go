package jiratest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ---------------------------------------------------------------------------------------------
// search

var searchKeys = map[string]bool{
	"jql": true, "fields": true, "maxResults": true, "nextPageToken": true, "reconcileIssues": true,
	"expand": true, "properties": true, "fieldsByKeys": true, "failFast": true,
}

func (s *Server) searchRemoved(w http.ResponseWriter, _ *http.Request) {
	writePlatform(w, http.StatusGone, []string{"The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"}, nil)
}

func (s *Server) searchJQL(w http.ResponseWriter, r *http.Request) {
	top, ok := decodeObject(r)
	bad := func(msg string) { writePlatform(w, http.StatusBadRequest, []string{msg}, nil) }
	if !ok {
		bad("Invalid request payload. Refer to the REST API documentation and try again.")
		return
	}
	for k := range top {
		if !searchKeys[k] {
			bad("Invalid request payload. Refer to the REST API documentation and try again.")
			return
		}
	}
	var in struct {
		JQL             string   `json:"jql"`
		Fields          []string `json:"fields"`
		MaxResults      *int     `json:"maxResults"`
		NextPageToken   string   `json:"nextPageToken"`
		ReconcileIssues []int64  `json:"reconcileIssues"`
	}
	raw, _ := json.Marshal(top)
	if json.Unmarshal(raw, &in) != nil {
		bad("Invalid request payload. Refer to the REST API documentation and try again.")
		return
	}
	if strings.TrimSpace(in.JQL) == "" {
		bad("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
		return
	}
	q, err := parseJQL(in.JQL)
	if err != nil {
		bad(err.Error())
		return
	}
	limit := 50
	if in.MaxResults != nil {
		limit = min(max(*in.MaxResults, 1), 100)
	}
	offset := 0
	if in.NextPageToken != "" {
		if offset, ok = decodeToken(in.NextPageToken); !ok {
			bad("The nextPageToken is invalid or has expired.")
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	preds, err := s.compileLocked(q)
	if err != nil {
		bad(err.Error())
		return
	}
	reconcile := map[string]bool{}
	for _, id := range in.ReconcileIssues {
		reconcile[strconv.FormatInt(id, 10)] = true
	}
	now := time.Now()
	var hits []*Request
	for _, k := range s.order {
		req := s.requests[k]
		if s.cfg.SearchLag > 0 && now.Sub(req.Created) < s.cfg.SearchLag && !reconcile[req.IssueID] {
			continue
		}
		match := true
		for _, p := range preds {
			if !p(req) {
				match = false
				break
			}
		}
		if match {
			hits = append(hits, req)
		}
	}
	sortRequests(hits, q.orderBy, q.desc)
	offset = min(offset, len(hits))
	end := min(offset+limit, len(hits))
	issues := []map[string]any{}
	for _, req := range hits[offset:end] {
		issues = append(issues, s.issueJSONLocked(req, in.Fields))
	}
	out := map[string]any{"issues": issues, "isLast": end >= len(hits)}
	if end < len(hits) {
		out["nextPageToken"] = encodeToken(end)
	}
	writeJSON(w, http.StatusOK, out)
}

func sortRequests(rs []*Request, field string, desc bool) {
	slices.SortStableFunc(rs, func(a, b *Request) int {
		var c int
		switch field {
		case "key", "issuekey":
			c = compareKeys(a.Key, b.Key)
		case "updated":
			c = a.Updated.Compare(b.Updated)
		default:
			c = a.Created.Compare(b.Created)
			if c == 0 {
				c = compareKeys(a.Key, b.Key)
			}
		}
		if desc {
			return -c
		}
		return c
	})
}

func compareKeys(a, b string) int {
	pa, na, _ := strings.Cut(a, "-")
	pb, nb, _ := strings.Cut(b, "-")
	if c := strings.Compare(pa, pb); c != 0 {
		return c
	}
	x, _ := strconv.Atoi(na)
	y, _ := strconv.Atoi(nb)
	return x - y
}

// issueJSONLocked renders a request as a platform issue with the requested fields (v3: description
// is an ADF document).
func (s *Server) issueJSONLocked(r *Request, want []string) map[string]any {
	issue := map[string]any{"id": r.IssueID, "key": r.Key, "self": s.URL() + "/rest/api/3/issue/" + r.IssueID}
	if len(want) == 0 {
		return issue
	}
	all := slices.Contains(want, "*all") || slices.Contains(want, "*navigable")
	fields := map[string]any{}
	put := func(id string, v func() any) {
		if all || slices.Contains(want, id) {
			fields[id] = v()
		}
	}
	put("summary", func() any { return r.Summary() })
	put("description", func() any {
		if d := r.Text("description"); d != "" {
			return adfDoc(d)
		}
		return nil
	})
	put("labels", func() any { return nonNil(r.Labels()) })
	put("status", func() any { return s.statusJSONLocked(r.Status) })
	put("project", func() any { return s.projectJSONLocked(r) })
	put("created", func() any { return jiraTime(r.Created) })
	put("updated", func() any { return jiraTime(r.Updated) })
	put("reporter", func() any { return s.platformUserLocked(r.Reporter) })
	for _, f := range s.typeOfLocked(r).fields() {
		if strings.HasPrefix(f.ID, "customfield_") {
			id := f.ID
			put(id, func() any { return r.Fields[id] })
		}
	}
	issue["fields"] = fields
	return issue
}

// ---------------------------------------------------------------------------------------------
// JQL: a small, strict subset. Anything else is a 400, like Jira's own parser.

type jqlClause struct {
	field  string // as written (unquoted)
	op     string // =, !=, ~, !~, in, not in
	values []string
}

type jqlQuery struct {
	clauses []jqlClause
	orderBy string
	desc    bool
}

type jqlToken struct {
	kind byte // w word, s string, o operator, ( ) ,
	text string
	pos  int
}

// jqlErr is an error text Jira would send; it goes into errorMessages as it is.
type jqlErr string

func (e jqlErr) Error() string { return string(e) }

func jqlError(format string, args ...any) error {
	return jqlErr("Error in the JQL Query: " + fmt.Sprintf(format, args...))
}

func lexJQL(q string) ([]jqlToken, error) {
	var toks []jqlToken
	rs := []rune(q)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(rs) && rs[j] != c; j++ {
				if rs[j] == '\\' && j+1 < len(rs) {
					j++
				}
				b.WriteRune(rs[j])
			}
			if j >= len(rs) {
				return nil, jqlError("The quoted string starting at character %d has not been completed.", i+1)
			}
			toks = append(toks, jqlToken{'s', b.String(), i + 1})
			i = j + 1
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, jqlToken{byte(c), string(c), i + 1})
			i++
		case c == '=' || c == '~':
			toks = append(toks, jqlToken{'o', string(c), i + 1})
			i++
		case (c == '!' || c == '<' || c == '>') && i+1 < len(rs) && rs[i+1] == '=',
			c == '!' && i+1 < len(rs) && rs[i+1] == '~':
			toks = append(toks, jqlToken{'o', string(rs[i : i+2]), i + 1})
			i += 2
		case c == '<' || c == '>':
			toks = append(toks, jqlToken{'o', string(c), i + 1})
			i++
		case c == '!':
			return nil, jqlError("The operator '%c' at character %d is not supported by jiratest.", c, i+1)
		default:
			j := i
			for j < len(rs) && !unicode.IsSpace(rs[j]) && !strings.ContainsRune(`()",'=~!<>`, rs[j]) {
				j++
			}
			toks = append(toks, jqlToken{'w', string(rs[i:j]), i + 1})
			i = j
		}
	}
	return toks, nil
}

func parseJQL(q string) (jqlQuery, error) {
	toks, err := lexJQL(q)
	if err != nil {
		return jqlQuery{}, err
	}
	var out jqlQuery
	i := 0
	peekWord := func(w string) bool {
		return i < len(toks) && toks[i].kind == 'w' && strings.EqualFold(toks[i].text, w)
	}
	value := func() (string, error) {
		if i >= len(toks) || (toks[i].kind != 'w' && toks[i].kind != 's') {
			return "", jqlError("Expecting a value but got %s.", describe(toks, i))
		}
		i++
		return toks[i-1].text, nil
	}
	for i < len(toks) {
		if peekWord("order") {
			i++
			if !peekWord("by") {
				return out, jqlError("Expecting 'by' after 'order' but got %s.", describe(toks, i))
			}
			i++
			f, err := value()
			if err != nil {
				return out, err
			}
			out.orderBy = strings.ToLower(f)
			switch {
			case peekWord("desc"):
				out.desc = true
				i++
			case peekWord("asc"):
				i++
			}
			if i < len(toks) {
				return out, jqlError("Expecting end of query after ORDER BY but got %s.", describe(toks, i))
			}
			break
		}
		if len(out.clauses) > 0 {
			switch {
			case peekWord("and"):
				i++
			case peekWord("or"):
				return out, jqlError("OR is valid JQL but not supported by jiratest.")
			default:
				return out, jqlError("Expecting either 'OR' or 'AND' but got %s.", describe(toks, i))
			}
		}
		if i >= len(toks) || (toks[i].kind != 'w' && toks[i].kind != 's') {
			return out, jqlError("Expecting a field name but got %s.", describe(toks, i))
		}
		cl := jqlClause{field: toks[i].text}
		i++
		switch {
		case i < len(toks) && toks[i].kind == 'o':
			cl.op = toks[i].text
			i++
		case peekWord("in"):
			cl.op = "in"
			i++
		case peekWord("not"):
			i++
			if !peekWord("in") {
				return out, jqlError("Expecting 'in' after 'not' but got %s.", describe(toks, i))
			}
			cl.op = "not in"
			i++
		case peekWord("is"):
			i++
			cl.op = "is"
			if peekWord("not") {
				cl.op = "is not"
				i++
			}
		default:
			return out, jqlError("Expecting operator but got %s. The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'.", describe(toks, i))
		}
		switch cl.op {
		case "is", "is not":
			if !peekWord("empty") && !peekWord("null") {
				return out, jqlError("Expecting 'EMPTY' or 'NULL' after %s but got %s.", strings.ToUpper(cl.op), describe(toks, i))
			}
			i++
		case "in", "not in":
			if i >= len(toks) || toks[i].kind != '(' {
				return out, jqlError("Expecting '(' after %s but got %s.", strings.ToUpper(cl.op), describe(toks, i))
			}
			i++
			for {
				v, err := value()
				if err != nil {
					return out, err
				}
				cl.values = append(cl.values, v)
				if i < len(toks) && toks[i].kind == ',' {
					i++
					continue
				}
				if i < len(toks) && toks[i].kind == ')' {
					i++
					break
				}
				return out, jqlError("Expecting ',' or ')' but got %s.", describe(toks, i))
			}
		default:
			v, err := value()
			if err != nil {
				return out, err
			}
			cl.values = []string{v}
		}
		out.clauses = append(out.clauses, cl)
	}
	if len(out.clauses) == 0 {
		return out, jqlError("The query has no search clause.")
	}
	return out, nil
}

func describe(toks []jqlToken, i int) string {
	if i >= len(toks) {
		return "the end of the query"
	}
	return fmt.Sprintf("'%s' at character %d", toks[i].text, toks[i].pos)
}

var cfRef = regexp.MustCompile(`^(?i)cf\[(\d+)\]$`)

// compileLocked resolves fields against the site's configuration.
func (s *Server) compileLocked(q jqlQuery) ([]func(*Request) bool, error) {
	var preds []func(*Request) bool
	for _, cl := range q.clauses {
		p, err := s.clauseLocked(cl)
		if err != nil {
			return nil, err
		}
		preds = append(preds, p)
	}
	return preds, nil
}

func (s *Server) customFieldLocked(name string) (FieldDef, bool) {
	if m := cfRef.FindStringSubmatch(name); m != nil {
		name = "customfield_" + m[1]
	}
	for _, id := range s.deskOrder {
		for _, rt := range s.desks[id].RequestTypes {
			for _, f := range rt.fields() {
				if f.ID == name || strings.EqualFold(f.Name, name) {
					return f, true
				}
			}
		}
	}
	return FieldDef{}, false
}

func (s *Server) clauseLocked(cl jqlClause) (func(*Request) bool, error) {
	unsupported := func(field string) error {
		return jqlError("The operator '%s' is not supported by the '%s' field.", cl.op, field)
	}
	lower := make([]string, len(cl.values))
	for i, v := range cl.values {
		lower[i] = strings.ToLower(v)
	}
	switch strings.ToLower(cl.field) {
	case "created", "createddate", "updated", "updateddate":
		return dateClause(cl, time.Now())
	}
	get, isText, err := s.fieldLocked(cl.field)
	if err != nil {
		return nil, err
	}
	switch cl.op {
	case "is", "is not":
		return func(r *Request) bool {
			empty := true
			for _, v := range get(r) {
				if v != "" {
					empty = false
					break
				}
			}
			return empty == (cl.op == "is")
		}, nil
	case "<", "<=", ">", ">=":
		return nil, unsupported(cl.field)
	}
	if isText {
		if cl.op != "~" && cl.op != "!~" {
			return nil, unsupported(cl.field)
		}
		needle := strings.Trim(lower[0], "*")
		return func(r *Request) bool {
			hit := false
			for _, have := range get(r) {
				if strings.Contains(strings.ToLower(have), needle) {
					hit = true
					break
				}
			}
			return hit == (cl.op == "~")
		}, nil
	}
	if cl.op == "~" || cl.op == "!~" {
		return nil, unsupported(cl.field)
	}
	want := cl.op == "=" || cl.op == "in"
	return func(r *Request) bool {
		hit := false
		for _, have := range get(r) {
			if slices.Contains(lower, strings.ToLower(have)) {
				hit = true
				break
			}
		}
		return hit == want
	}, nil
}

// fieldLocked resolves a JQL field name to the values a request holds in it, and whether it is
// a text field (compared with ~ and !~) rather than an exact-value one (=, !=, IN, NOT IN).
func (s *Server) fieldLocked(name string) (get func(*Request) []string, isText bool, err error) {
	switch strings.ToLower(name) {
	case "labels":
		return func(r *Request) []string { return r.Labels() }, false, nil
	case "project":
		return func(r *Request) []string {
			names := []string{r.ProjectKey}
			if d := s.desks[r.ServiceDeskID]; d != nil {
				names = append(names, d.ProjectName, d.ProjectID)
			}
			return names
		}, false, nil
	case "key", "issuekey", "issue":
		return func(r *Request) []string { return []string{r.Key, r.IssueID} }, false, nil
	case "status":
		return func(r *Request) []string { return []string{r.Status.Name} }, false, nil
	case "statuscategory":
		return func(r *Request) []string {
			return []string{r.Status.Category, map[string]string{"new": "To Do", "indeterminate": "In Progress", "done": "Done"}[r.Status.Category]}
		}, false, nil
	case "reporter":
		return func(r *Request) []string { return []string{r.Reporter} }, false, nil
	case "summary", "description":
		id := strings.ToLower(name)
		return func(r *Request) []string { return []string{r.Text(id)} }, true, nil
	case "text":
		return func(r *Request) []string {
			var all []string
			for _, f := range s.typeOfLocked(r).fields() {
				if f.Type == FieldText {
					all = append(all, r.Text(f.ID))
				}
			}
			for _, c := range r.Comments {
				all = append(all, c.Body)
			}
			return all
		}, true, nil
	}
	def, ok := s.customFieldLocked(name)
	if !ok {
		return nil, false, jqlErr(fmt.Sprintf("Field '%s' does not exist or you do not have permission to view it.", name))
	}
	switch def.Type {
	case FieldText:
		return func(r *Request) []string { return []string{r.Text(def.ID)} }, true, nil
	case FieldLabels:
		return func(r *Request) []string { return stringsOf(r.Fields[def.ID]) }, false, nil
	default:
		return func(r *Request) []string {
			v, ok := r.Fields[def.ID]
			if !ok || v == nil {
				return nil
			}
			if s, ok := v.(string); ok {
				return []string{s}
			}
			b, _ := json.Marshal(v)
			return []string{strings.Trim(string(b), `"`)}
		}, false, nil
	}
}

// relativeDateRe is a JQL relative date: "-4h", "+1d", "-30m", "-2w" (minutes, hours, days,
// weeks from now).
var relativeDateRe = regexp.MustCompile(`^([+-]?)(\d+)([mhdw])$`)

// dateLayouts are JQL's absolute date formats. Jira reads them in the searching user's time
// zone; every user of the fake is in UTC.
var dateLayouts = []string{"2006/01/02 15:04", "2006-01-02 15:04", "2006/01/02", "2006-01-02"}

// dateClause compiles a comparison on created or updated (=, != and ~ are not supported here).
func dateClause(cl jqlClause, now time.Time) (func(*Request) bool, error) {
	field := strings.TrimSuffix(strings.ToLower(cl.field), "date")
	var at time.Time
	switch cl.op {
	case "<", "<=", ">", ">=":
		v := strings.TrimSpace(cl.values[0])
		if m := relativeDateRe.FindStringSubmatch(strings.ToLower(v)); m != nil {
			n, _ := strconv.Atoi(m[2])
			unit := map[string]time.Duration{"m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[3]]
			d := time.Duration(n) * unit
			if m[1] == "-" {
				d = -d
			}
			at = now.Add(d)
			break
		}
		parsed := false
		for _, l := range dateLayouts {
			if t, err := time.ParseInLocation(l, v, time.UTC); err == nil {
				at, parsed = t, true
				break
			}
		}
		if !parsed {
			return nil, jqlErr(fmt.Sprintf("Date value '%s' for field '%s' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.", v, field))
		}
	case "is", "is not":
		return func(*Request) bool { return cl.op == "is not" }, nil // every issue has both dates
	default:
		return nil, jqlError("The operator '%s' is not supported by jiratest for the '%s' field.", cl.op, cl.field)
	}
	return func(r *Request) bool {
		t := r.Created
		if field == "updated" {
			t = r.Updated
		}
		c := t.Compare(at)
		switch cl.op {
		case "<":
			return c < 0
		case "<=":
			return c <= 0
		case ">":
			return c > 0
		}
		return c >= 0
	}, nil
}

// ---------------------------------------------------------------------------------------------
// issue edit (labels and summary)

func (s *Server) editIssue(w http.ResponseWriter, r *http.Request) {
	top, ok := decodeObject(r)
	if !ok {
		writePlatform(w, http.StatusBadRequest, []string{"Invalid request payload. Refer to the REST API documentation and try again."}, nil)
		return
	}
	var in struct {
		Fields map[string]json.RawMessage              `json:"fields"`
		Update map[string][]map[string]json.RawMessage `json:"update"`
	}
	for k := range top {
		switch k {
		case "fields", "update", "historyMetadata", "properties":
		default:
			writePlatform(w, http.StatusBadRequest, []string{"Invalid request payload. Refer to the REST API documentation and try again."}, nil)
			return
		}
	}
	raw, _ := json.Marshal(top)
	if json.Unmarshal(raw, &in) != nil {
		writePlatform(w, http.StatusBadRequest, []string{"Invalid request payload. Refer to the REST API documentation and try again."}, nil)
		return
	}
	errs := map[string]string{}
	cannot := func(f string) {
		errs[f] = fmt.Sprintf("Field '%s' cannot be set. It is not on the appropriate screen, or unknown.", f)
	}

	s.mu.Lock()
	req := s.lookupLocked(r.PathValue("key"))
	if req == nil {
		s.mu.Unlock()
		writePlatform(w, http.StatusNotFound, []string{"Issue does not exist or you do not have permission to see it."}, nil)
		return
	}
	labels := req.Labels()
	summary := req.Summary()
	var description *string
	for f, v := range in.Fields {
		switch f {
		case "description":
			text, problem := adfBody(v)
			if problem != "" {
				errs[f] = problem
			}
			description = &text
		case "labels":
			var l []string
			if json.Unmarshal(v, &l) != nil {
				errs[f] = "Labels must be an array of strings."
				continue
			}
			labels = l
		case "summary":
			if json.Unmarshal(v, &summary) != nil {
				errs[f] = "Summary must be a string."
			}
		default:
			cannot(f)
		}
	}
	for f, ops := range in.Update {
		switch f {
		case "labels":
			for _, op := range ops {
				for verb, v := range op {
					var l string
					var set []string
					switch verb {
					case "add":
						if json.Unmarshal(v, &l) == nil && !slices.Contains(labels, l) {
							labels = append(labels, l)
						}
					case "remove":
						if json.Unmarshal(v, &l) == nil {
							labels = slices.DeleteFunc(labels, func(x string) bool { return x == l })
						}
					case "set":
						if json.Unmarshal(v, &set) == nil {
							labels = set
						}
					default:
						errs[f] = fmt.Sprintf("The operation '%s' is not supported for labels.", verb)
					}
				}
			}
		case "summary":
			for _, op := range ops {
				if v, ok := op["set"]; ok {
					_ = json.Unmarshal(v, &summary)
				}
			}
		default:
			cannot(f)
		}
	}
	for _, l := range labels {
		if p := labelProblem(l); p != "" {
			errs["labels"] = p
		}
	}
	if len(errs) > 0 {
		s.mu.Unlock()
		writePlatform(w, http.StatusBadRequest, nil, errs)
		return
	}
	var items []map[string]any
	if description != nil {
		if item := setDescriptionLocked(req, *description); item != nil {
			items = append(items, item)
		}
	}
	if old := req.Labels(); !slices.Equal(old, labels) {
		anyLabels := make([]any, len(labels))
		for i, l := range labels {
			anyLabels[i] = l
		}
		req.Fields["labels"] = anyLabels
		items = append(items, map[string]any{"field": "labels", "fieldtype": "jira", "fieldId": "labels", "from": nil, "fromString": strings.Join(old, " "), "to": nil, "toString": strings.Join(labels, " ")})
	}
	if old := req.Summary(); old != summary {
		req.Fields["summary"] = summary
		items = append(items, map[string]any{"field": "summary", "fieldtype": "jira", "fieldId": "summary", "from": nil, "fromString": old, "to": nil, "toString": summary})
	}
	var pend []pending
	if len(items) > 0 {
		req.Updated = time.Now()
		pend = s.pendingLocked(EventIssueUpdated, s.issueEventLocked(EventIssueUpdated, req, APIUserAccountID, items))
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
	s.dispatch(pend, false)
}

// ---------------------------------------------------------------------------------------------
// users

func (s *Server) userSearch(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("query")))
	if q == "" {
		writePlatform(w, http.StatusBadRequest, []string{"One of 'query', 'accountId' or 'property' must be provided."}, nil)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, id := range s.accountOrder {
		a := s.accounts[id]
		match := (!s.cfg.HideEmails && strings.HasPrefix(strings.ToLower(a.Email), q)) || strings.HasPrefix(strings.ToLower(a.DisplayName), q)
		for _, word := range strings.Fields(strings.ToLower(a.DisplayName)) {
			match = match || strings.HasPrefix(word, q)
		}
		if match {
			out = append(out, s.platformUserLocked(id))
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) myself(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	u := s.platformUserLocked(APIUserAccountID)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, u)
}
