package servicenow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Tables cxbridge uses.
const (
	TableUser     Table = "sys_user"
	TableIncident Table = "incident"
	// TableJournal holds one row per journal entry (work note, additional comment): the
	// history of write-to-append fields that the record itself reads back as "".
	TableJournal Table = "sys_journal_field"
)

// Fields cxbridge queries or reads. Shared names (sys_id, active) serve every table.
const (
	FieldSysID       Field = "sys_id"
	FieldActive      Field = "active"
	FieldCreatedOn   Field = "sys_created_on"
	FieldUpdatedOn   Field = "sys_updated_on"
	FieldWorkNotes   Field = "work_notes"
	FieldComments    Field = "comments"
	FieldDescription Field = "description"

	// sys_user
	FieldUserName       Field = "user_name"
	FieldName           Field = "name"
	FieldFirstName      Field = "first_name"
	FieldLastName       Field = "last_name"
	FieldEmail          Field = "email"
	FieldPhone          Field = "phone"
	FieldMobilePhone    Field = "mobile_phone"
	FieldEmployeeNumber Field = "employee_number"
	FieldVIP            Field = "vip"
	FieldTitle          Field = "title"
	FieldCompany        Field = "company"    // reference to core_company
	FieldLocation       Field = "location"   // reference to cmn_location
	FieldDepartment     Field = "department" // reference to cmn_department

	// incident
	FieldNumber             Field = "number"
	FieldShortDescription   Field = "short_description"
	FieldState              Field = "state"
	FieldPriority           Field = "priority"
	FieldImpact             Field = "impact"
	FieldUrgency            Field = "urgency"
	FieldCallerID           Field = "caller_id"
	FieldCorrelationID      Field = "correlation_id"
	FieldCorrelationDisplay Field = "correlation_display"
	FieldContactType        Field = "contact_type"
	FieldCategory           Field = "category"
	FieldSubcategory        Field = "subcategory"
	FieldAssignmentGroup    Field = "assignment_group"

	// sys_journal_field
	FieldJournalTable   Field = "name"       // the table of the record
	FieldJournalElement Field = "element"    // the journal field, work_notes or comments
	FieldJournalRecord  Field = "element_id" // the record's sys_id
	FieldJournalValue   Field = "value"

	// dot-walks from incident through caller_id to sys_user
	FieldCallerPhone       Field = "caller_id.phone"
	FieldCallerMobilePhone Field = "caller_id.mobile_phone"
	FieldCallerName        Field = "caller_id.name"
)

// UserFields is the sysparm_fields list that fills a User.
var UserFields = []Field{FieldSysID, FieldUserName, FieldName, FieldFirstName, FieldLastName, FieldEmail,
	FieldPhone, FieldMobilePhone, FieldEmployeeNumber, FieldActive, FieldVIP}

// IncidentFields is the sysparm_fields list that fills an Incident (without description and
// the journal fields, which a screen pop does not need).
var IncidentFields = []Field{FieldSysID, FieldNumber, FieldShortDescription, FieldState, FieldPriority,
	FieldImpact, FieldUrgency, FieldCallerID, FieldCorrelationID, FieldContactType, FieldCategory,
	FieldCreatedOn, FieldUpdatedOn, FieldActive}

// Incident state choice values of a baseline instance (sys_choice name=incident element=state).
// Instances can add or relabel states; read labels with DisplayAll instead of relying on
// StateLabels where that matters.
const (
	StateNew        = "1"
	StateInProgress = "2"
	StateOnHold     = "3"
	StateResolved   = "6"
	StateClosed     = "7"
	StateCanceled   = "8"
)

// StateLabels are the baseline labels of the incident states.
var StateLabels = map[string]string{
	StateNew: "New", StateInProgress: "In Progress", StateOnHold: "On Hold",
	StateResolved: "Resolved", StateClosed: "Closed", StateCanceled: "Canceled",
}

// OpenStates matches incidents that are New, In Progress or On Hold.
func OpenStates() Cond { return In(FieldState, Int(1), Int(2), Int(3)) }

// PriorityLabels are the baseline labels of incident priority (computed by the instance from
// impact and urgency; never written by cxbridge).
var PriorityLabels = map[string]string{"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}

// TimeLayout is the layout of date-time actual values ("2026-11-22 09:30:00").
const TimeLayout = "2006-01-02 15:04:05"

// ParseTime reads a date-time *actual* value, which ServiceNow keeps and returns in UTC
// whatever the instance or user time zone ("Date fields: The database value is in UTC format,
// while the display value is based on the user's time zone", Table API docs,
// sysparm_display_value). Never parse a display value: it is in the API user's time zone and
// date format. Values from sysparm_display_value=false, or the "value" half of =all, are safe.
func ParseTime(s string) (time.Time, error) {
	return time.ParseInLocation(TimeLayout, s, time.UTC)
}

// FormatTime writes t as a date-time actual value (converted to UTC).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// FieldValue is one field of a Table API record in any of the shapes the API sends:
//
//	"text"                                   display_value=false (or true: then it is the display value)
//	{"link":"...","value":"<sys_id>"}        reference field, display_value=false, links not excluded
//	{"display_value":"...","value":"..."}    display_value=all (plus "link" for references)
//	{"display_value":"...","link":"..."}     reference field, display_value=true
type FieldValue struct {
	Value   string
	Display string
	Link    string
}

// UnmarshalJSON accepts a string, null, a number or boolean, or an object.
func (f *FieldValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*f = FieldValue{}
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		return nil
	case b[0] == '"':
		return json.Unmarshal(b, &f.Value)
	case b[0] == '{':
		var o struct {
			Value   json.RawMessage `json:"value"`
			Display json.RawMessage `json:"display_value"`
			Link    string          `json:"link"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		f.Value, f.Display, f.Link = scalar(o.Value), scalar(o.Display), o.Link
		return nil
	default:
		f.Value = string(b) // number or boolean
		return nil
	}
}

func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ""
	}
	return string(raw)
}

// Label is the display value when one was sent, else the value.
func (f FieldValue) Label() string {
	if f.Display != "" {
		return f.Display
	}
	return f.Value
}

// Record is a record with every field in FieldValue form, for tables without a typed struct.
type Record map[string]FieldValue

// User is a sys_user record. Decode it from responses with DisplayFalse or DisplayAll.
type User struct {
	SysID          string
	UserName       string
	Name           string
	FirstName      string
	LastName       string
	Email          string
	Phone          string // free text, as entered
	MobilePhone    string // free text, as entered
	EmployeeNumber string
	Active         bool
	VIP            bool // the directory's VIP flag (sys_user.vip)
}

// ID returns the user's sys_id as a SysID.
func (u User) ID() (SysID, error) { return ParseSysID(u.SysID) }

// UnmarshalJSON decodes any of the Table API field shapes.
func (u *User) UnmarshalJSON(b []byte) error {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	*u = User{
		SysID: r["sys_id"].Value, UserName: r["user_name"].Value, Name: r["name"].Value,
		FirstName: r["first_name"].Value, LastName: r["last_name"].Value, Email: r["email"].Value,
		Phone: r["phone"].Value, MobilePhone: r["mobile_phone"].Value,
		EmployeeNumber: r["employee_number"].Value, Active: r["active"].Value == "true",
		VIP: r["vip"].Value == "true",
	}
	return nil
}

// MarshalJSON writes the user in the Table API's actual-value shape, so a User stored as JSON
// (an idempotency record, a cache) reads back with UnmarshalJSON.
func (u User) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{
		"sys_id": u.SysID, "user_name": u.UserName, "name": u.Name, "first_name": u.FirstName,
		"last_name": u.LastName, "email": u.Email, "phone": u.Phone, "mobile_phone": u.MobilePhone,
		"employee_number": u.EmployeeNumber, "active": strconv.FormatBool(u.Active), "vip": strconv.FormatBool(u.VIP),
	})
}

// Incident is an incident record. Decode it from responses with DisplayFalse or DisplayAll;
// with DisplayAll the labels are the instance's own, otherwise the baseline labels are used.
type Incident struct {
	SysID            string
	Number           string
	ShortDescription string
	Description      string
	State            string // choice value, e.g. "2"
	StateLabel       string // e.g. "In Progress"
	Priority         string // "1".."5", computed by the instance from impact and urgency
	PriorityLabel    string // e.g. "1 - Critical"
	Impact           string
	Urgency          string
	CallerID         string // sys_user sys_id
	CallerName       string // display value of caller_id (DisplayAll) or caller_id.name when requested
	CorrelationID    string
	ContactType      string
	Category         string
	Active           bool
	// CreatedAt and UpdatedAt are UTC, parsed from the actual values (see ParseTime); zero when
	// the field was not requested or could not be read.
	CreatedAt time.Time
	UpdatedAt time.Time
	// WorkNotes is what the API returned for the journal field: normally "" (journal fields
	// are write-to-append; their history lives in sys_journal_field).
	WorkNotes string
}

// ID returns the incident's sys_id as a SysID.
func (in Incident) ID() (SysID, error) { return ParseSysID(in.SysID) }

// UnmarshalJSON decodes any of the Table API field shapes.
func (in *Incident) UnmarshalJSON(b []byte) error {
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	state, prio := r["state"], r["priority"]
	*in = Incident{
		SysID: r["sys_id"].Value, Number: r["number"].Value,
		ShortDescription: r["short_description"].Value, Description: r["description"].Value,
		State: state.Value, StateLabel: state.Display,
		Priority: prio.Value, PriorityLabel: prio.Display,
		Impact: r["impact"].Value, Urgency: r["urgency"].Value,
		CallerID: r["caller_id"].Value, CallerName: r["caller_id"].Display,
		CorrelationID: r["correlation_id"].Value, ContactType: r["contact_type"].Value,
		Category: r["category"].Value, Active: r["active"].Value == "true",
		WorkNotes: r["work_notes"].Value,
	}
	if in.StateLabel == "" {
		in.StateLabel = StateLabels[in.State]
	}
	if in.PriorityLabel == "" {
		in.PriorityLabel = PriorityLabels[in.Priority]
	}
	if in.CallerName == "" {
		in.CallerName = r["caller_id.name"].Value
	}
	// A timestamp that cannot be read is left zero rather than failing a whole screen pop.
	if t, err := ParseTime(r["sys_created_on"].Value); err == nil {
		in.CreatedAt = t
	}
	if t, err := ParseTime(r["sys_updated_on"].Value); err == nil {
		in.UpdatedAt = t
	}
	return nil
}

// MarshalJSON writes the incident in the Table API's display_value=all shape for labelled
// fields and actual values otherwise, so an Incident stored as JSON reads back with UnmarshalJSON.
func (in Incident) MarshalJSON() ([]byte, error) {
	pair := func(v, d string) map[string]string { return map[string]string{"value": v, "display_value": d} }
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return FormatTime(t)
	}
	return json.Marshal(map[string]any{
		"sys_id": in.SysID, "number": in.Number, "short_description": in.ShortDescription,
		"description": in.Description, "state": pair(in.State, in.StateLabel),
		"priority": pair(in.Priority, in.PriorityLabel), "impact": in.Impact, "urgency": in.Urgency,
		"caller_id": pair(in.CallerID, in.CallerName), "correlation_id": in.CorrelationID,
		"contact_type": in.ContactType, "category": in.Category, "active": strconv.FormatBool(in.Active),
		"sys_created_on": ts(in.CreatedAt), "sys_updated_on": ts(in.UpdatedAt), "work_notes": in.WorkNotes,
	})
}

// NewIncident is what create-escalation sends. Free text must already be masked (pkg/mask):
// this package sends what it is given.
type NewIncident struct {
	CallerID         SysID  // sys_user sys_id; zero leaves the caller empty
	ShortDescription string // required
	Description      string
	ContactType      string // "phone"
	Category         string // choice value, e.g. "inquiry"
	Subcategory      string
	Impact           int // 1 (High) .. 3 (Low); 0 leaves the instance default
	Urgency          int // 1 (High) .. 3 (Low); 0 leaves the instance default
	// CorrelationID carries the escalation's idempotency key, so a recovering attempt can find
	// an incident created before a crash (IncidentByCorrelationID).
	CorrelationID      Token
	CorrelationDisplay string // e.g. "cxbridge"
	AssignmentGroup    SysID
	WorkNotes          string
}

// ErrInvalidIncident is wrapped by NewIncident validation errors.
var ErrInvalidIncident = errors.New("servicenow: invalid incident")

// body returns the POST body. Priority is never sent: the instance computes it from impact and
// urgency (Priority Lookup Rules) and treats it as read-only.
func (n NewIncident) body() (map[string]string, error) {
	if n.ShortDescription == "" {
		return nil, fmt.Errorf("%w: short_description is empty", ErrInvalidIncident)
	}
	m := map[string]string{"short_description": n.ShortDescription}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	for _, lv := range []struct {
		name string
		v    int
	}{{"impact", n.Impact}, {"urgency", n.Urgency}} {
		if lv.v < 0 || lv.v > 3 {
			return nil, fmt.Errorf("%w: %s must be 1, 2 or 3", ErrInvalidIncident, lv.name)
		}
		if lv.v != 0 {
			m[lv.name] = strconv.Itoa(lv.v)
		}
	}
	set("caller_id", n.CallerID.String())
	set("description", n.Description)
	set("contact_type", n.ContactType)
	set("category", n.Category)
	set("subcategory", n.Subcategory)
	set("correlation_id", n.CorrelationID.String())
	set("correlation_display", n.CorrelationDisplay)
	set("assignment_group", n.AssignmentGroup.String())
	set("work_notes", n.WorkNotes)
	return m, nil
}
