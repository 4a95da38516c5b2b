package servicenowtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FieldType is the kind of a column.
type FieldType int

const (
	String FieldType = iota
	Integer
	Boolean
	DateTime
	Choice    // Choices holds value -> label
	Reference // Ref names the referenced table
	Journal   // write-to-append; reads back as ""
)

// FieldDef describes a column.
type FieldDef struct {
	Type     FieldType
	Ref      string            // Reference: the referenced table
	Choices  map[string]string // Choice: value -> label
	ReadOnly bool              // ignored on writes through the API (computed or system fields)
	Default  string            // value on insert when none is given
}

// Schema describes a table. sys_id, sys_created_on, sys_updated_on, sys_created_by,
// sys_updated_by and sys_mod_count are added to every table.
type Schema struct {
	Fields map[string]FieldDef
	// DisplayField is the field a reference to this table displays (name, number).
	DisplayField string
	// NumberPrefix, when set, numbers records in "number": prefix + 7 digits from 0010001.
	NumberPrefix string
	// Compute runs after every insert and update, to set derived fields.
	Compute func(row map[string]string)
}

// Baseline labels.
var (
	StateChoices = map[string]string{"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
	// ImpactChoices also labels urgency.
	ImpactChoices   = map[string]string{"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
	PriorityChoices = map[string]string{"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
	// ContactTypeChoices: "phone" is documented; the other values are the usual lowercase forms
	// of the UI labels (not confirmed against an instance).
	ContactTypeChoices = map[string]string{"phone": "Phone", "email": "Email", "self-service": "Self-service", "walk-in": "Walk-in", "chat": "Chat", "virtual_agent": "Virtual Agent"}
	CategoryChoices    = map[string]string{"inquiry": "Inquiry / Help", "software": "Software", "hardware": "Hardware", "network": "Network", "database": "Database"}
)

// PriorityFor is the baseline Priority Lookup Rules table (ServiceNow docs
// def-prio-lookup-rules): impact x urgency -> priority.
func PriorityFor(impact, urgency string) string {
	m := map[string]string{
		"11": "1", "12": "2", "13": "3",
		"21": "2", "22": "3", "23": "4",
		"31": "3", "32": "4", "33": "4",
	}
	if p, ok := m[impact+urgency]; ok {
		return p
	}
	return "5"
}

// UserSchema is sys_user.
func UserSchema() Schema {
	return Schema{
		DisplayField: "name",
		Fields: map[string]FieldDef{
			"user_name": {}, "first_name": {}, "last_name": {}, "name": {ReadOnly: true}, "email": {},
			"phone": {}, "mobile_phone": {}, "employee_number": {}, "title": {},
			"active":     {Type: Boolean, Default: "true"},
			"vip":        {Type: Boolean, Default: "false"},
			"manager":    {Type: Reference, Ref: "sys_user"},
			"company":    {Type: Reference, Ref: "core_company"},
			"location":   {Type: Reference, Ref: "cmn_location"},
			"department": {Type: Reference, Ref: "cmn_department"},
		},
		Compute: func(row map[string]string) {
			// name is calculated from first and last name.
			if n := strings.TrimSpace(row["first_name"] + " " + row["last_name"]); n != "" {
				row["name"] = n
			}
		},
	}
}

// NamedSchema is a table whose records are shown by their name: core_company, cmn_location,
// cmn_department (what sys_user's company, location and department reference).
func NamedSchema(fields ...string) Schema {
	s := Schema{DisplayField: "name", Fields: map[string]FieldDef{"name": {}}}
	for _, f := range fields {
		s.Fields[f] = FieldDef{}
	}
	return s
}

// IncidentSchema is incident.
func IncidentSchema() Schema {
	return Schema{
		DisplayField: "number",
		NumberPrefix: "INC",
		Fields: map[string]FieldDef{
			"number": {ReadOnly: true}, "short_description": {}, "description": {},
			"state":               {Type: Choice, Choices: StateChoices, Default: "1"},
			"impact":              {Type: Choice, Choices: ImpactChoices, Default: "3"},
			"urgency":             {Type: Choice, Choices: ImpactChoices, Default: "3"},
			"priority":            {Type: Choice, Choices: PriorityChoices, ReadOnly: true},
			"caller_id":           {Type: Reference, Ref: "sys_user"},
			"opened_by":           {Type: Reference, Ref: "sys_user"},
			"assigned_to":         {Type: Reference, Ref: "sys_user"},
			"assignment_group":    {Type: Reference, Ref: "sys_user_group"},
			"parent_incident":     {Type: Reference, Ref: "incident"},
			"correlation_id":      {},
			"correlation_display": {},
			"contact_type":        {Type: Choice, Choices: ContactTypeChoices},
			"category":            {Type: Choice, Choices: CategoryChoices, Default: "inquiry"},
			"subcategory":         {},
			"close_code":          {},
			"close_notes":         {},
			"hold_reason":         {},
			"opened_at":           {Type: DateTime},
			"active":              {Type: Boolean, ReadOnly: true},
			"work_notes":          {Type: Journal},
			"comments":            {Type: Journal},
		},
		Compute: func(row map[string]string) {
			row["priority"] = PriorityFor(row["impact"], row["urgency"])
			if row["state"] == "7" || row["state"] == "8" {
				row["active"] = "false"
			} else {
				row["active"] = "true"
			}
			if row["opened_at"] == "" {
				row["opened_at"] = row["sys_created_on"]
			}
		},
	}
}

// JournalTable holds every journal entry as a row, as sys_journal_field does on an instance:
// name (the table), element (the journal field), element_id (the record's sys_id), value.
const JournalTable = "sys_journal_field"

// JournalSchema is sys_journal_field. Its rows are written by journal appends only; the Table
// API reads them and refuses writes (an instance's ACLs do the same for integration users).
func JournalSchema() Schema {
	return Schema{Fields: map[string]FieldDef{
		"name": {ReadOnly: true}, "element": {ReadOnly: true}, "element_id": {ReadOnly: true}, "value": {ReadOnly: true},
	}}
}

var systemFields = map[string]FieldDef{
	"sys_id":         {ReadOnly: true},
	"sys_created_on": {Type: DateTime, ReadOnly: true},
	"sys_updated_on": {Type: DateTime, ReadOnly: true},
	"sys_created_by": {ReadOnly: true},
	"sys_updated_by": {ReadOnly: true},
	"sys_mod_count":  {Type: Integer, ReadOnly: true},
}

type table struct {
	name   string
	schema Schema
	rows   []map[string]string
	seq    int
}

func (t *table) field(name string) (FieldDef, bool) {
	if d, ok := systemFields[name]; ok {
		return d, true
	}
	d, ok := t.schema.Fields[name]
	return d, ok
}

func (t *table) find(sysID string) (int, bool) {
	for i, r := range t.rows {
		if r["sys_id"] == sysID {
			return i, true
		}
	}
	return -1, false
}

// DefineTable adds (or replaces) a table.
func (s *Server) DefineTable(name string, schema Schema) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if schema.Fields == nil {
		schema.Fields = map[string]FieldDef{}
	}
	s.tables[name] = &table{name: name, schema: schema}
}

// Insert adds a record as a seed, bypassing the API: system fields (sys_id, sys_created_on,
// sys_updated_on) may be given, read-only fields are set as given and then recomputed.
// It returns the sys_id.
func (s *Server) Insert(tableName string, fields map[string]string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[tableName]
	if !ok {
		return "", fmt.Errorf("servicenowtest: no table %s", tableName)
	}
	row := s.newRow(t, "system")
	for k, v := range fields {
		d, known := t.field(k)
		if !known {
			return "", fmt.Errorf("servicenowtest: %s has no field %s", tableName, k)
		}
		if d.Type == Journal {
			s.appendJournal(t.name, row, k, v, "system")
			continue
		}
		row[k] = v
	}
	if t.schema.Compute != nil {
		t.schema.Compute(row)
	}
	t.rows = append(t.rows, row)
	return row["sys_id"], nil
}

func (s *Server) newRow(t *table, user string) map[string]string {
	now := formatTime(s.cfg.Now())
	row := map[string]string{"sys_id": randomHex(16), "sys_created_on": now, "sys_updated_on": now,
		"sys_created_by": user, "sys_updated_by": user, "sys_mod_count": "0"}
	for name, d := range t.schema.Fields {
		row[name] = d.Default
	}
	if t.schema.NumberPrefix != "" {
		t.seq++
		row["number"] = fmt.Sprintf("%s%07d", t.schema.NumberPrefix, 10000+t.seq)
	}
	return row
}

func (s *Server) appendJournal(tableName string, row map[string]string, field, value, user string) {
	if strings.TrimSpace(value) == "" {
		return
	}
	s.journal = append(s.journal, JournalEntry{Table: tableName, ElementID: row["sys_id"], Element: field, Value: value, CreatedBy: user, CreatedOn: s.cfg.Now().UTC()})
	if jt, ok := s.tables[JournalTable]; ok {
		j := s.newRow(jt, user)
		j["name"], j["element"], j["element_id"], j["value"] = tableName, field, row["sys_id"], value
		jt.rows = append(jt.rows, j)
	}
}

// Record returns a copy of a record's actual values.
func (s *Server) Record(tableName, sysID string) (map[string]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[tableName]
	if !ok {
		return nil, false
	}
	i, ok := t.find(sysID)
	if !ok {
		return nil, false
	}
	return copyRow(t.rows[i]), true
}

// Records returns copies of every record of a table, in insertion order.
func (s *Server) Records(tableName string) []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[tableName]
	if !ok {
		return nil
	}
	out := make([]map[string]string, len(t.rows))
	for i, r := range t.rows {
		out[i] = copyRow(r)
	}
	return out
}

func copyRow(r map[string]string) map[string]string {
	c := make(map[string]string, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") }

// User is a sys_user seed. Company, Location and Department are sys_ids (AddNamed).
type User struct {
	UserName, FirstName, LastName, Email string
	Phone, MobilePhone, EmployeeNumber   string
	Inactive                             bool
	VIP                                  bool
	Title                                string
	Company, Location, Department        string
}

// AddUser seeds a user and returns its sys_id.
func (s *Server) AddUser(u User) string {
	id, err := s.Insert("sys_user", map[string]string{
		"user_name": u.UserName, "first_name": u.FirstName, "last_name": u.LastName, "email": u.Email,
		"phone": u.Phone, "mobile_phone": u.MobilePhone, "employee_number": u.EmployeeNumber,
		"active": strconv.FormatBool(!u.Inactive), "vip": strconv.FormatBool(u.VIP), "title": u.Title,
		"company": u.Company, "location": u.Location, "department": u.Department,
	})
	if err != nil {
		panic(err)
	}
	return id
}

// AddNamed seeds a record of core_company, cmn_location or cmn_department and returns its
// sys_id.
func (s *Server) AddNamed(table, name string) string {
	id, err := s.Insert(table, map[string]string{"name": name})
	if err != nil {
		panic(err)
	}
	return id
}

// Incident is an incident seed. Zero Impact/Urgency/State take the defaults (3, 3, New);
// zero times take the fake's clock.
type Incident struct {
	CallerID, ShortDescription, Description  string
	State, Impact, Urgency                   string
	CorrelationID, ContactType, Category     string
	CreatedOn, UpdatedOn                     time.Time
	WorkNotes                                string
	AssignedTo, AssignmentGroup, ParentIncID string
}

// AddIncident seeds an incident and returns its sys_id.
func (s *Server) AddIncident(in Incident) string {
	f := map[string]string{"caller_id": in.CallerID, "short_description": in.ShortDescription, "description": in.Description,
		"correlation_id": in.CorrelationID, "contact_type": in.ContactType, "assigned_to": in.AssignedTo,
		"assignment_group": in.AssignmentGroup, "parent_incident": in.ParentIncID}
	for k, v := range map[string]string{"state": in.State, "impact": in.Impact, "urgency": in.Urgency, "category": in.Category, "work_notes": in.WorkNotes} {
		if v != "" {
			f[k] = v
		}
	}
	if !in.CreatedOn.IsZero() {
		f["sys_created_on"] = formatTime(in.CreatedOn)
		f["sys_updated_on"] = formatTime(in.CreatedOn)
	}
	if !in.UpdatedOn.IsZero() {
		f["sys_updated_on"] = formatTime(in.UpdatedOn)
	}
	id, err := s.Insert("incident", f)
	if err != nil {
		panic(err)
	}
	return id
}

// --- Table API ---

type readOpts struct {
	display     string // false | true | all
	excludeLink bool
	fields      []string // nil: all
}

func parseReadOpts(q map[string][]string) readOpts {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	o := readOpts{display: "false", excludeLink: strings.EqualFold(get("sysparm_exclude_reference_link"), "true")}
	switch d := strings.ToLower(get("sysparm_display_value")); d {
	case "true", "all":
		o.display = d
	}
	if f := get("sysparm_fields"); f != "" {
		for _, name := range strings.Split(f, ",") {
			if name = strings.TrimSpace(name); name != "" {
				o.fields = append(o.fields, name)
			}
		}
	}
	return o
}

// table serves /api/now[/v1|/v2]/table/{table}[/{sys_id}].
func (s *Server) table(w http.ResponseWriter, r *http.Request, body []byte, user string) {
	rest, version := "", "v1"
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/api/now/table/"):
		rest = strings.TrimPrefix(p, "/api/now/table/")
	case strings.HasPrefix(p, "/api/now/v1/table/"):
		rest = strings.TrimPrefix(p, "/api/now/v1/table/")
	case strings.HasPrefix(p, "/api/now/v2/table/"):
		rest, version = strings.TrimPrefix(p, "/api/now/v2/table/"), "v2"
	default:
		WriteError(w, http.StatusBadRequest, "Requested URI does not represent any resource", "")
		return
	}
	tableName, sysID, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[tableName]
	if !ok {
		WriteError(w, http.StatusBadRequest, "Invalid table "+tableName, "")
		return
	}
	if tableName == JournalTable && r.Method != http.MethodGet {
		WriteError(w, http.StatusForbidden, "Operation Failed", "ACL restricts the operation on "+JournalTable)
		return
	}
	q := r.URL.Query()
	opts := parseReadOpts(q)
	noBody := strings.EqualFold(r.Header.Get("X-no-response-body"), "true")
	switch {
	case sysID == "" && r.Method == http.MethodGet:
		s.list(w, t, q, opts, version)
	case sysID == "" && r.Method == http.MethodPost:
		row, err := s.write(t, nil, body, user)
		if err != nil {
			WriteError(w, http.StatusBadRequest, "Exception while reading request", err.Error())
			return
		}
		w.Header().Set("Location", s.URL()+"/api/now/table/"+t.name+"/"+row["sys_id"])
		if noBody {
			w.WriteHeader(http.StatusCreated)
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"result": s.render(t, row, opts)})
	case sysID != "" && (r.Method == http.MethodGet || r.Method == http.MethodPatch || r.Method == http.MethodPut || r.Method == http.MethodDelete):
		i, found := t.find(sysID)
		if !found {
			WriteError(w, http.StatusNotFound, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
			return
		}
		row := t.rows[i]
		switch r.Method {
		case http.MethodDelete:
			t.rows = append(t.rows[:i], t.rows[i+1:]...)
			w.WriteHeader(http.StatusNoContent)
			return
		case http.MethodPatch, http.MethodPut:
			if _, err := s.write(t, row, body, user); err != nil {
				WriteError(w, http.StatusBadRequest, "Exception while reading request", err.Error())
				return
			}
			if noBody {
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": s.render(t, row, opts)})
	default:
		WriteError(w, http.StatusMethodNotAllowed, "Method not Supported", "")
	}
}

func (s *Server) list(w http.ResponseWriter, t *table, q map[string][]string, opts readOpts, version string) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	rows := s.evaluate(t, get("sysparm_query"))
	total := len(rows)
	offset, _ := strconv.Atoi(get("sysparm_offset"))
	if offset < 0 {
		offset = 0
	}
	if offset > len(rows) {
		offset = len(rows)
	}
	rows = rows[offset:]
	limit := 10000
	if l, err := strconv.Atoi(get("sysparm_limit")); err == nil && l > 0 {
		limit = l
	}
	if len(rows) > limit {
		rows = rows[:limit]
	}
	if !strings.EqualFold(get("sysparm_no_count"), "true") {
		w.Header().Set("X-Total-Count", strconv.Itoa(total))
	}
	if len(rows) == 0 && version == "v1" {
		WriteError(w, http.StatusNotFound, "No Record found", "Records matching query not found. Check query parameter or offered values")
		return
	}
	out := make([]map[string]any, 0, len(rows))
	for _, row := range rows {
		out = append(out, s.render(t, row, opts))
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": out})
}

// write applies a JSON object to row (nil: insert) like the Table API: unknown fields and
// read-only fields are ignored, journal fields are appended.
func (s *Server) write(t *table, row map[string]string, body []byte, user string) (map[string]string, error) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, fmt.Errorf("request body is not a JSON object: %v", err)
	}
	insert := row == nil
	if insert {
		row = s.newRow(t, user)
	}
	var notes [][2]string
	for k, raw := range in {
		d, known := t.field(k)
		if !known || d.ReadOnly {
			continue
		}
		v, ok := jsonScalar(raw)
		if !ok {
			continue
		}
		if d.Type == Journal {
			notes = append(notes, [2]string{k, v})
			continue
		}
		row[k] = v
	}
	if !insert {
		row["sys_updated_on"] = formatTime(s.cfg.Now())
		row["sys_updated_by"] = user
		n, _ := strconv.Atoi(row["sys_mod_count"])
		row["sys_mod_count"] = strconv.Itoa(n + 1)
	}
	if t.schema.Compute != nil {
		t.schema.Compute(row)
	}
	if insert {
		t.rows = append(t.rows, row)
	}
	sort.Slice(notes, func(i, j int) bool { return notes[i][0] < notes[j][0] })
	for _, n := range notes {
		s.appendJournal(t.name, row, n[0], n[1], user)
	}
	return row, nil
}

func jsonScalar(raw json.RawMessage) (string, bool) {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	default:
		return "", false
	}
}

// render turns a row into the JSON shape the options ask for.
func (s *Server) render(t *table, row map[string]string, o readOpts) map[string]any {
	names := o.fields
	if names == nil {
		names = append(names, "sys_id", "sys_created_on", "sys_updated_on", "sys_created_by", "sys_updated_by", "sys_mod_count")
		for n := range t.schema.Fields {
			names = append(names, n)
		}
	}
	out := make(map[string]any, len(names))
	for _, name := range names {
		d, value, display, ok := s.resolve(t, row, name)
		if !ok {
			continue // invalid fields are ignored
		}
		link := ""
		if d.Type == Reference && value != "" && !o.excludeLink {
			link = s.URL() + "/api/now/table/" + d.Ref + "/" + value
		}
		switch o.display {
		case "all":
			m := map[string]any{"display_value": display, "value": value}
			if link != "" {
				m["link"] = link
			}
			out[name] = m
		case "true":
			if link != "" {
				out[name] = map[string]any{"display_value": display, "link": link}
			} else {
				out[name] = display
			}
		default:
			if link != "" {
				out[name] = map[string]any{"link": link, "value": value}
			} else {
				out[name] = value
			}
		}
	}
	return out
}

// resolve reads a (possibly dot-walked) field of row: its definition, actual value and display
// value. ok is false when the path names no field.
func (s *Server) resolve(t *table, row map[string]string, path string) (d FieldDef, value, display string, ok bool) {
	parts := strings.Split(path, ".")
	cur, curRow := t, row
	for i, p := range parts {
		d, ok = cur.field(p)
		if !ok {
			return FieldDef{}, "", "", false
		}
		if i == len(parts)-1 {
			break
		}
		if d.Type != Reference {
			return FieldDef{}, "", "", false
		}
		next, known := s.tables[d.Ref]
		if !known {
			return FieldDef{}, "", "", false
		}
		var nextRow map[string]string
		if curRow != nil {
			if j, found := next.find(curRow[p]); found {
				nextRow = next.rows[j]
			}
		}
		cur, curRow = next, nextRow
	}
	if curRow == nil {
		return d, "", "", true
	}
	last := parts[len(parts)-1]
	value = curRow[last]
	if d.Type == Journal {
		value = ""
	}
	return d, value, s.displayOf(d, value), true
}

func (s *Server) displayOf(d FieldDef, value string) string {
	switch d.Type {
	case Choice:
		if l, ok := d.Choices[value]; ok {
			return l
		}
		return value
	case DateTime:
		if value == "" {
			return ""
		}
		t, err := time.ParseInLocation("2006-01-02 15:04:05", value, time.UTC)
		if err != nil {
			return value
		}
		return t.In(s.cfg.DisplayZone).Format("2006-01-02 15:04:05")
	case Reference:
		ref, ok := s.tables[d.Ref]
		if !ok || value == "" {
			return value
		}
		if i, found := ref.find(value); found && ref.schema.DisplayField != "" {
			return ref.rows[i][ref.schema.DisplayField]
		}
		return ""
	default:
		return value
	}
}
