package lookup

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
)

// Result is the answer, shaped for a Genesys data action output contract
// (integrations/genesys/servicenow-lookup.json): every field is always present, the flat
// incidentN* fields serve Architect and scripts directly, and Incidents (an array of flat
// objects, never an array of arrays) serves list components. Times are UTC ISO-8601.
type Result struct {
	Status     string `json:"status"` // ok | unavailable
	Found      bool   `json:"found"`
	Reason     string `json:"reason"`    // why not found or unavailable; "" when found
	MatchedBy  string `json:"matchedBy"` // ani | employee_id | ""
	MatchCount int    `json:"matchCount"`
	// CallerNumber is the ANI in E.164 when it was a valid number.
	CallerNumber       string `json:"callerNumber"`
	UserSysID          string `json:"userSysId"`
	UserName           string `json:"userName"`
	UserDisplayName    string `json:"userDisplayName"`
	UserActive         bool   `json:"userActive"`
	UserVIP            bool   `json:"userVip"` // sys_user.vip: the directory's VIP flag
	UserURL            string `json:"userUrl"`
	LearnedPhone       bool   `json:"learnedPhone"`
	ConversationLinked bool   `json:"conversationLinked"`

	IncidentCount         int    `json:"incidentCount"`
	MostRecentIncidentURL string `json:"mostRecentIncidentUrl"`

	Incident1Number           string `json:"incident1Number"`
	Incident1ShortDescription string `json:"incident1ShortDescription"`
	Incident1State            string `json:"incident1State"`
	Incident1Priority         string `json:"incident1Priority"`
	Incident1UpdatedAt        string `json:"incident1UpdatedAt"`
	Incident1URL              string `json:"incident1Url"`

	Incident2Number           string `json:"incident2Number"`
	Incident2ShortDescription string `json:"incident2ShortDescription"`
	Incident2State            string `json:"incident2State"`
	Incident2Priority         string `json:"incident2Priority"`
	Incident2UpdatedAt        string `json:"incident2UpdatedAt"`
	Incident2URL              string `json:"incident2Url"`

	Incident3Number           string `json:"incident3Number"`
	Incident3ShortDescription string `json:"incident3ShortDescription"`
	Incident3State            string `json:"incident3State"`
	Incident3Priority         string `json:"incident3Priority"`
	Incident3UpdatedAt        string `json:"incident3UpdatedAt"`
	Incident3URL              string `json:"incident3Url"`

	Incidents []IncidentSummary `json:"incidents"`
	LatencyMs int64             `json:"latencyMs"`
	// Warnings name the inputs that were ignored or could not be used, each
	// "<input>: <problem>"; empty when there were none.
	Warnings []string `json:"warnings"`

	// UserFields are the extra sys_user fields of LOOKUP_USER_FIELDS, in its order, each a
	// flat output of its own (userCompany, userTitle, ...): see MarshalJSON.
	UserFields []UserField `json:"-"`
}

// UserField is one extra sys_user field: its output name and display value ("" when the user
// has none, was not found, or the instance has no such field).
type UserField struct {
	Output string
	Value  string
}

// result is Result without its methods, for encoding.
type result Result

// MarshalJSON writes the answer with each extra user field as a flat string output.
func (r Result) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(result(r))
	if err != nil || len(r.UserFields) == 0 {
		return b, err
	}
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1]) // without the closing brace
	for _, f := range r.UserFields {
		k, _ := json.Marshal(f.Output)
		v, _ := json.Marshal(f.Value)
		buf.WriteByte(',')
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads an answer back, the extra user fields included (every "user..." string
// output that is not one of the fixed fields, in name order).
func (r *Result) UnmarshalJSON(b []byte) error {
	var fixed result
	if err := json.Unmarshal(b, &fixed); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	known := map[string]bool{}
	for _, n := range resultNames() {
		known[n] = true
	}
	*r = Result(fixed)
	r.UserFields = nil
	for _, k := range sortedKeys(all) {
		var v string
		if !known[k] && strings.HasPrefix(k, "user") && json.Unmarshal(all[k], &v) == nil {
			r.UserFields = append(r.UserFields, UserField{Output: k, Value: v})
		}
	}
	return nil
}

// completeUserFields makes every configured extra field present, in the configured order.
func (r *Result) completeUserFields(fields []servicenow.Field) {
	have := map[string]string{}
	for _, f := range r.UserFields {
		have[f.Output] = f.Value
	}
	r.UserFields = make([]UserField, 0, len(fields))
	for _, f := range fields {
		name := OutputName(f)
		r.UserFields = append(r.UserFields, UserField{Output: name, Value: have[name]})
	}
}

// FixedOutputs are the outputs every answer has, whatever LOOKUP_USER_FIELDS holds.
func FixedOutputs() []string { return resultNames() }

// resultNames are the JSON names of Result's fixed fields.
func resultNames() []string {
	t := reflect.TypeOf(result{})
	var out []string
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// IncidentSummary is one open incident of the caller.
type IncidentSummary struct {
	SysID            string `json:"sysId"`
	Number           string `json:"number"`
	ShortDescription string `json:"shortDescription"`
	State            string `json:"state"`    // the instance's label, e.g. "In Progress"
	Priority         string `json:"priority"` // the instance's label, e.g. "1 - Critical"
	OpenedAt         string `json:"openedAt"` // sys_created_on, UTC ISO-8601
	UpdatedAt        string `json:"updatedAt"`
	URL              string `json:"url"`
}

// Statuses.
const (
	StatusOK          = "ok"
	StatusUnavailable = "unavailable"
)

// MatchedBy values.
const (
	MatchedByANI        = "ani"
	MatchedByEmployeeID = "employee_id"
)

// Reasons. The first five explain found:false with status ok; the rest explain status
// unavailable.
const (
	ReasonWithheld          = "withheld_number"
	ReasonInvalidNumber     = "invalid_number"
	ReasonInvalidEmployeeID = "invalid_employee_id"
	ReasonNoMatch           = "no_match"

	ReasonTimeout       = "timeout"
	ReasonUnavailable   = "unavailable"
	ReasonRateLimited   = "rate_limited"
	ReasonUnauthorized  = "unauthorized"
	ReasonRejected      = "rejected"
	ReasonBreakerOpen   = "breaker_open"
	ReasonConfiguration = "configuration"
)

// isoUTC formats a time as UTC ISO-8601, or "" for the zero time.
func isoUTC(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func summarise(in servicenow.Incident, url string) IncidentSummary {
	return IncidentSummary{
		SysID: in.SysID, Number: in.Number, ShortDescription: in.ShortDescription,
		State: in.StateLabel, Priority: in.PriorityLabel,
		OpenedAt: isoUTC(in.CreatedAt), UpdatedAt: isoUTC(in.UpdatedAt), URL: url,
	}
}

// setIncidents fills the array and the flat fields from the caller's incidents, newest first.
func (r *Result) setIncidents(list []IncidentSummary) {
	r.Incidents = list
	r.IncidentCount = len(list)
	if len(list) > 0 {
		r.MostRecentIncidentURL = list[0].URL
	}
	flat := []struct{ number, desc, state, prio, updated, url *string }{
		{&r.Incident1Number, &r.Incident1ShortDescription, &r.Incident1State, &r.Incident1Priority, &r.Incident1UpdatedAt, &r.Incident1URL},
		{&r.Incident2Number, &r.Incident2ShortDescription, &r.Incident2State, &r.Incident2Priority, &r.Incident2UpdatedAt, &r.Incident2URL},
		{&r.Incident3Number, &r.Incident3ShortDescription, &r.Incident3State, &r.Incident3Priority, &r.Incident3UpdatedAt, &r.Incident3URL},
	}
	for i, in := range list {
		if i >= len(flat) {
			break
		}
		f := flat[i]
		*f.number, *f.desc, *f.state, *f.prio, *f.updated, *f.url = in.Number, in.ShortDescription, in.State, in.Priority, in.UpdatedAt, in.URL
	}
}
