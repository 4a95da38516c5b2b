package lookup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/lookup"
)

const conv = "8f1c2d3e-0000-4000-8000-000000000001"

var base = time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)

func (e *env) incident(caller, desc, state string, updated time.Duration) string {
	return e.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: desc, State: state, Impact: "1", Urgency: "2", CreatedOn: base, UpdatedOn: base.Add(updated)})
}

func TestMatchByANIInOneRoundTrip(t *testing.T) {
	e := newEnv(t)
	abel := e.sn.AddUser(servicenowtest.User{UserName: "abel.tuter", FirstName: "Abel", LastName: "Tuter", Phone: "(415) 555-0100"})
	beth := e.sn.AddUser(servicenowtest.User{UserName: "beth.anglin", FirstName: "Beth", LastName: "Anglin", Phone: "+1 415 555 1100"}) // shares the digit pieces
	e.incident(abel, "oldest open", servicenow.StateNew, 1*time.Hour)
	second := e.incident(abel, "VPN drops every hour", servicenow.StateOnHold, 3*time.Hour)
	e.incident(abel, "closed", servicenow.StateClosed, 9*time.Hour)
	newest := e.incident(abel, "Laptop will not boot", servicenow.StateInProgress, 5*time.Hour)
	third := e.incident(abel, "Password reset", servicenow.StateNew, 2*time.Hour)
	e.incident(beth, "someone else's", servicenow.StateNew, 8*time.Hour)

	// Each request takes 50 ms, so requests sent one after the other would arrive 50 ms apart.
	e.sn.SetLatency(50 * time.Millisecond)
	r, metrics := e.lookup(t, `{"ani":"tel:+14155550100","conversationId":"`+conv+`","participantId":"p-1"}`)
	if !r.Found || r.Status != lookup.StatusOK || r.MatchedBy != lookup.MatchedByANI || r.MatchCount != 1 || r.Reason != "" {
		t.Fatalf("got %+v", r)
	}
	if r.UserSysID != abel || r.UserName != "abel.tuter" || r.UserDisplayName != "Abel Tuter" || !r.UserActive || r.CallerNumber != "+14155550100" {
		t.Fatalf("user fields %+v", r)
	}
	if r.UserURL != e.sn.URL()+"/nav_to.do?uri=sys_user.do?sys_id="+abel {
		t.Fatalf("userUrl %q", r.UserURL)
	}
	if r.IncidentCount != 3 || len(r.Incidents) != 3 || r.Incidents[0].SysID != newest || r.Incidents[1].SysID != second || r.Incidents[2].SysID != third {
		t.Fatalf("want the 3 most recent open incidents newest first, got %+v", r.Incidents)
	}
	in := r.Incidents[0]
	wantURL := e.sn.URL() + "/nav_to.do?uri=incident.do?sys_id=" + newest
	if in.State != "In Progress" || in.Priority != "2 - High" || in.ShortDescription != "Laptop will not boot" || in.URL != wantURL ||
		in.UpdatedAt != "2026-11-20T14:00:00Z" || in.OpenedAt != "2026-11-20T09:00:00Z" || !strings.HasPrefix(in.Number, "INC") {
		t.Fatalf("incident %+v", in)
	}
	if r.MostRecentIncidentURL != wantURL || r.Incident1Number != in.Number || r.Incident1State != "In Progress" || r.Incident1URL != wantURL ||
		r.Incident1ShortDescription != in.ShortDescription || r.Incident1Priority != "2 - High" || r.Incident1UpdatedAt != in.UpdatedAt ||
		r.Incident2Number != r.Incidents[1].Number || r.Incident3Number != r.Incidents[2].Number || r.Incident3State != "New" {
		t.Fatalf("flat fields %+v", r)
	}

	// One round trip: one sys_user and one incident request, sent at the same time.
	users, incidents, total := e.calls()
	if users != 1 || incidents != 1 || total != 2 {
		t.Fatalf("requests: %d users, %d incidents, %d total; want 1, 1, 2", users, incidents, total)
	}
	u, i := e.sn.Received("/api/now/v2/table/sys_user")[0], e.sn.Received("/api/now/v2/table/incident")[0]
	if d := u.At.Sub(i.At); d > 25*time.Millisecond || d < -25*time.Millisecond {
		t.Errorf("the two queries were answered %v apart; they must run concurrently", d)
	}
	if q := u.Query.Get("sysparm_query"); q != "phoneLIKE100^ORmobile_phoneLIKE100^phoneLIKE555^ORmobile_phoneLIKE555^phoneLIKE415^ORmobile_phoneLIKE415" {
		t.Errorf("user query %q", q)
	}
	if q := i.Query.Get("sysparm_query"); q != "caller_id.phoneLIKE100^ORcaller_id.mobile_phoneLIKE100^caller_id.phoneLIKE555^ORcaller_id.mobile_phoneLIKE555^caller_id.phoneLIKE415^ORcaller_id.mobile_phoneLIKE415^stateIN1,2,3^ORDERBYDESCsys_updated_on" {
		t.Errorf("incident query %q", q)
	}
	if i.Query.Get("sysparm_display_value") != "all" {
		t.Errorf("incident labels need display_value=all")
	}

	// The caller's waiting conversation is recorded for priority-sync.
	l, ok, err := e.links.Get(context.Background(), abel)
	if err != nil || !ok || l.ConversationID != conv || l.ParticipantID != "p-1" || !r.ConversationLinked {
		t.Fatalf("link %+v %v %v; conversationLinked=%v", l, ok, err, r.ConversationLinked)
	}
	if !strings.Contains(metrics, `"Lookup":1`) || !strings.Contains(metrics, `"MatchedBy":"ani"`) || !strings.Contains(metrics, "LookupLatency") {
		t.Errorf("metrics %s", metrics)
	}
}

func TestStoredFormatsMatchAndNearMissesDoNot(t *testing.T) {
	e := newEnv(t)
	for i, stored := range []string{"(415) 555-0100", "+1 415 555 0100", "415.555.0100", "1-415-555-0100", "+14155550100", "415-555-0100 ext. 7"} {
		id := e.sn.AddUser(servicenowtest.User{UserName: fmt.Sprintf("u%d", i), MobilePhone: stored})
		r, _ := e.lookup(t, `{"ani":"+1 415 555 0100"}`)
		if !r.Found || r.UserSysID != id {
			t.Fatalf("stored %q: %+v", stored, r)
		}
		forget(t, e, id) // so the next format is tested alone
	}
	// Numbers that contain the same digit groups but are other numbers.
	e2 := newEnv(t)
	for _, stored := range []string{"(212) 555-0100", "+44 20 7555 0100", "415-555-0101", "555-0100", "+1 415 555 0100 1"} {
		e2.sn.AddUser(servicenowtest.User{Phone: stored})
	}
	if r, _ := e2.lookup(t, `{"ani":"+14155550100"}`); r.Found || r.Reason != lookup.ReasonNoMatch || r.Status != lookup.StatusOK {
		t.Fatalf("near misses matched: %+v", r)
	}
}

// forget clears a user's numbers so it cannot match again.
func forget(t *testing.T, e *env, id string) {
	t.Helper()
	sys := servicenow.MustSysID(id)
	if err := e.client.Update(context.Background(), servicenow.TableUser, sys, map[string]string{"phone": "", "mobile_phone": ""}, servicenow.WriteOptions{}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSeveralUsersPreferActiveAndReportCount(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	add := func(name string, inactive bool, updated time.Time) string {
		id, err := e.sn.Insert("sys_user", map[string]string{"user_name": name, "first_name": name, "phone": "+1 (415) 555-0100",
			"active": fmt.Sprint(!inactive), "sys_updated_on": updated.Format(servicenow.TimeLayout)})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	add("left.company", true, now) // newest record, but inactive
	add("shared.desk", false, now.Add(-48*time.Hour))
	current := add("current.owner", false, now.Add(-time.Hour))
	e.incident(current, "mine", servicenow.StateNew, time.Hour)

	r, metrics := e.lookup(t, `{"ani":"+14155550100"}`)
	if !r.Found || r.UserSysID != current || r.MatchCount != 3 || !r.UserActive || r.IncidentCount != 1 {
		t.Fatalf("want the most recently updated active user of 3, got %+v", r)
	}
	if !strings.Contains(metrics, "LookupSeveralUsers") {
		t.Errorf("several matches must be counted: %s", metrics)
	}

	// Only an inactive user has the number: still reported, flagged inactive.
	e2 := newEnv(t)
	gone := e2.sn.AddUser(servicenowtest.User{UserName: "gone", Phone: "415-555-0100", Inactive: true})
	if r, _ := e2.lookup(t, `{"ani":"+14155550100"}`); !r.Found || r.UserSysID != gone || r.UserActive || r.MatchCount != 1 {
		t.Fatalf("inactive only: %+v", r)
	}
}

func TestFoundWithoutOpenIncidents(t *testing.T) {
	e := newEnv(t)
	id := e.sn.AddUser(servicenowtest.User{UserName: "quiet", Phone: "+1 415 555 0100"})
	e.incident(id, "resolved long ago", servicenow.StateClosed, time.Hour)
	e.incident(id, "canceled", servicenow.StateCanceled, time.Hour)
	r, _ := e.lookup(t, `{"ani":"+14155550100"}`)
	if !r.Found || r.IncidentCount != 0 || len(r.Incidents) != 0 || r.Incidents == nil || r.MostRecentIncidentURL != "" || r.Incident1Number != "" || r.UserURL == "" {
		t.Fatalf("got %+v", r)
	}
	if !strings.Contains(mustJSON(t, r), `"incidents":[]`) {
		t.Fatal("incidents must be an empty array, not null, for the output contract")
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmployeeIDFallbackLearnsTheNumber(t *testing.T) {
	e := newEnv(t)
	id := e.sn.AddUser(servicenowtest.User{UserName: "abel.tuter", FirstName: "Abel", LastName: "Tuter", Phone: "+1 212 555 0199", EmployeeNumber: "E10001"})
	inc := e.incident(id, "Printer jam", servicenow.StateInProgress, time.Hour)

	r, metrics := e.lookup(t, `{"ani":"+1 415 555 0100","employeeId":"E10001","conversationId":"`+conv+`"}`)
	if !r.Found || r.MatchedBy != lookup.MatchedByEmployeeID || r.UserSysID != id || !r.LearnedPhone || r.IncidentCount != 1 || r.Incidents[0].SysID != inc {
		t.Fatalf("got %+v", r)
	}
	if rec, _ := e.sn.Record("sys_user", id); rec["mobile_phone"] != "+14155550100" || rec["phone"] != "+1 212 555 0199" {
		t.Fatalf("mobile_phone %q phone %q: the calling number must be added as mobile_phone in E.164", rec["mobile_phone"], rec["phone"])
	}
	if !r.ConversationLinked || !strings.Contains(metrics, "PhoneLearned") {
		t.Fatalf("linked %v metrics %s", r.ConversationLinked, metrics)
	}
	// ANI round trip, then employee round trip; the PATCH ran beside the incident query.
	if u, i, total := e.calls(); u != 3 || i != 2 || total != 5 {
		t.Fatalf("requests: %d users (2 reads + 1 write), %d incidents, %d total", u, i, total)
	}
	q := e.sn.Received("/api/now/v2/table/incident")[1].Query.Get("sysparm_query")
	if q != "caller_id.employee_number=E10001^stateIN1,2,3^ORDERBYDESCsys_updated_on" {
		t.Fatalf("fallback incident query %q", q)
	}

	// The next call from that phone is recognised by its number.
	r, _ = e.lookup(t, `{"ani":"tel:+14155550100"}`)
	if !r.Found || r.MatchedBy != lookup.MatchedByANI || r.UserSysID != id || r.LearnedPhone {
		t.Fatalf("second call: %+v", r)
	}
}

func TestLearningModes(t *testing.T) {
	cases := []struct {
		mode        lookup.LearnMode
		mobile      string
		wantMobile  string
		wantLearned bool
		metric      string
	}{
		{lookup.LearnIfEmpty, "+1 650 555 0111", "+1 650 555 0111", false, "PhoneLearnSkipped"},
		{lookup.LearnAlways, "+1 650 555 0111", "+14155550100", true, "PhoneLearned"},
		{lookup.LearnOff, "", "", false, ""},
	}
	for _, c := range cases {
		t.Run(string(c.mode), func(t *testing.T) {
			e := newEnv(t, func(cfg *lookup.Config, _ *breaker.Settings) { cfg.Learn = c.mode })
			id := e.sn.AddUser(servicenowtest.User{UserName: "u", MobilePhone: c.mobile, EmployeeNumber: "E10001"})
			r, metrics := e.lookup(t, `{"ani":"+14155550100","employeeId":"E10001"}`)
			if !r.Found || r.LearnedPhone != c.wantLearned {
				t.Fatalf("got %+v", r)
			}
			if rec, _ := e.sn.Record("sys_user", id); rec["mobile_phone"] != c.wantMobile {
				t.Fatalf("mobile_phone %q, want %q", rec["mobile_phone"], c.wantMobile)
			}
			if c.metric != "" && !strings.Contains(metrics, c.metric) {
				t.Fatalf("metric %s missing: %s", c.metric, metrics)
			}
			if c.mode != lookup.LearnAlways && e.sn.Calls("/api/now/v2/table/sys_user/") != 0 {
				t.Fatal("a write reached ServiceNow")
			}
		})
	}
}

func TestFailedLearningIsReportedNotFatal(t *testing.T) {
	e := newEnv(t)
	id := e.sn.AddUser(servicenowtest.User{UserName: "u", EmployeeNumber: "E10001"})
	e.sn.Fail("/api/now/v2/table/sys_user/"+id, servicenowtest.Failure{Status: http.StatusForbidden, Message: "ACL"})
	r, metrics := e.lookup(t, `{"ani":"+14155550100","employeeId":"E10001"}`)
	if !r.Found || r.LearnedPhone || r.Status != lookup.StatusOK {
		t.Fatalf("got %+v", r)
	}
	if !strings.Contains(metrics, "PhoneLearnFailed") {
		t.Fatalf("a failed write must be counted: %s", metrics)
	}
}

func TestWithheldNumber(t *testing.T) {
	e := newEnv(t)
	id := e.sn.AddUser(servicenowtest.User{UserName: "u", EmployeeNumber: "E10001"})
	for _, ani := range []string{"anonymous", "tel:anonymous", "sip:anonymous@anonymous.invalid", "Restricted"} {
		r, _ := e.lookup(t, `{"ani":"`+ani+`"}`)
		if r.Found || r.Status != lookup.StatusOK || r.Reason != lookup.ReasonWithheld || r.CallerNumber != "" {
			t.Fatalf("%s: %+v", ani, r)
		}
	}
	if _, _, total := e.calls(); total != 0 {
		t.Fatalf("a withheld number reached ServiceNow (%d requests)", total)
	}
	// With an employee ID the flow still identifies the caller, and learns nothing.
	r, _ := e.lookup(t, `{"ani":"anonymous","employeeId":"E10001"}`)
	if !r.Found || r.UserSysID != id || r.MatchedBy != lookup.MatchedByEmployeeID || r.LearnedPhone {
		t.Fatalf("withheld + employee id: %+v", r)
	}
	if rec, _ := e.sn.Record("sys_user", id); rec["mobile_phone"] != "" {
		t.Fatalf("learned %q from a withheld number", rec["mobile_phone"])
	}
}

// The fake evaluates encoded queries like an instance: a "^OR..." or a dropped term would widen
// a naive query to every user. Every attack must find nothing and send nothing but digits or a
// pattern-checked ID.
func TestInjectionAttemptsFindNothing(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 5; i++ {
		id := e.sn.AddUser(servicenowtest.User{UserName: fmt.Sprintf("user%d", i), Phone: fmt.Sprintf("+1 650 555 01%02d", i), EmployeeNumber: fmt.Sprintf("E2000%d", i)})
		e.incident(id, "open", servicenow.StateNew, time.Hour)
	}
	attacks := []struct{ field, value, reason string }{
		{"ani", "+1 415 555 0100^ORactive=true", lookup.ReasonInvalidNumber},
		{"ani", "4155550100^NQactive=true", lookup.ReasonInvalidNumber},
		{"ani", "+14155550100^ORphoneISNOTEMPTY", lookup.ReasonInvalidNumber},
		{"ani", "0100^ORDERBYname", lookup.ReasonInvalidNumber},
		{"ani", "tel:+1415^ORmobile_phoneLIKE5", lookup.ReasonInvalidNumber},
		{"ani", "*", lookup.ReasonInvalidNumber},
		{"ani", "%", lookup.ReasonInvalidNumber},
		{"ani", "javascript:gs.getUser()", lookup.ReasonInvalidNumber},
		{"employeeId", "E10001^ORactive=true", lookup.ReasonInvalidEmployeeID},
		{"employeeId", "E10001^NQemployee_numberISNOTEMPTY", lookup.ReasonInvalidEmployeeID},
		{"employeeId", "E1000%", lookup.ReasonInvalidEmployeeID},
		{"employeeId", "ENOT01", lookup.ReasonInvalidEmployeeID},
	}
	for _, a := range attacks {
		body, _ := json.Marshal(map[string]string{a.field: a.value})
		r, _ := e.lookup(t, string(body))
		if r.Found || r.MatchCount != 0 || r.UserSysID != "" || len(r.Incidents) != 0 || r.Reason != a.reason || r.Status != lookup.StatusOK {
			t.Errorf("%s=%q: %+v", a.field, a.value, r)
		}
	}
	if _, _, total := e.calls(); total != 0 {
		t.Fatalf("%d requests reached ServiceNow; refused input must not", total)
	}
	// An invalid ANI with a valid employee ID: only the employee lookup runs, by the ID alone.
	r, _ := e.lookup(t, `{"ani":"+1 415 555 0100^ORactive=true","employeeId":"E20003"}`)
	if !r.Found || r.UserName != "user3" || r.MatchCount != 1 || r.LearnedPhone {
		t.Fatalf("got %+v", r)
	}
	for _, rec := range e.sn.Received("/api/") {
		if q := rec.Query.Get("sysparm_query"); strings.Contains(q, "active") || strings.Contains(q, "^OR^") || strings.Contains(q, "NQ") {
			t.Fatalf("attack text reached ServiceNow: %q", q)
		}
	}
}

func TestRateLimitedAnswersUnavailableQuickly(t *testing.T) {
	e := newEnv(t)
	e.sn.AddUser(servicenowtest.User{Phone: "+1 415 555 0100"})
	e.sn.Fail("/api/now/v2/table/sys_user", servicenowtest.Failure{Status: http.StatusTooManyRequests, RetryAfter: 3600})
	start := time.Now()
	r, metrics := e.lookup(t, `{"ani":"+14155550100","conversationId":"`+conv+`"}`)
	if r.Status != lookup.StatusUnavailable || r.Found || r.Reason != lookup.ReasonRateLimited || r.Incidents == nil {
		t.Fatalf("got %+v", r)
	}
	// A Retry-After of an hour is not waited for, and not retried.
	if d := time.Since(start); d > e.svc.Config.Timeout/2 {
		t.Fatalf("answered after %v", d)
	}
	if u, _, _ := e.calls(); u != 1 {
		t.Fatalf("%d user queries; a 429 beyond the budget must not be retried", u)
	}
	if !strings.Contains(metrics, `"Reason":"rate_limited"`) || !strings.Contains(metrics, "LookupUnavailable") {
		t.Fatalf("metrics %s", metrics)
	}
}

func TestServiceNowDownSlowAndBreaker(t *testing.T) {
	t.Run("5xx is retried once, then unavailable", func(t *testing.T) {
		e := newEnv(t)
		e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: http.StatusServiceUnavailable})
		r, _ := e.lookup(t, `{"ani":"+14155550100"}`)
		if r.Status != lookup.StatusUnavailable || r.Reason != lookup.ReasonUnavailable {
			t.Fatalf("got %+v", r)
		}
		if _, i, _ := e.calls(); i != 2 {
			t.Fatalf("%d incident queries; want 2 (one retry)", i)
		}
	})
	t.Run("a 5xx then success is not an outage", func(t *testing.T) {
		e := newEnv(t)
		e.sn.AddUser(servicenowtest.User{Phone: "+1 415 555 0100"})
		e.sn.Fail("/api/now/v2/table/sys_user", servicenowtest.Failure{Status: http.StatusBadGateway, Times: 1})
		if r, _ := e.lookup(t, `{"ani":"+14155550100"}`); r.Status != lookup.StatusOK || !r.Found {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("a hung ServiceNow answers within the budget", func(t *testing.T) {
		e := newEnv(t)
		e.sn.SetLatency(time.Hour)
		start := time.Now()
		r, _ := e.lookup(t, `{"ani":"+14155550100"}`)
		if r.Status != lookup.StatusUnavailable || r.Reason != lookup.ReasonTimeout {
			t.Fatalf("got %+v", r)
		}
		if d, limit := time.Since(start), e.svc.Config.Timeout+200*time.Millisecond; d > limit {
			t.Fatalf("answered after %v; the promise is %v", d, limit)
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		e := newEnv(t)
		e.sn.RevokeTokens()
		e.svc.ServiceNow = servicenow.New(e.sn.URL(), staticSecret(`{"username":"cxbridge.integration","password":"wrong"}`), "x", nil)
		if r, _ := e.lookup(t, `{"ani":"+14155550100"}`); r.Status != lookup.StatusUnavailable || r.Reason != lookup.ReasonUnauthorized {
			t.Fatalf("got %+v", r)
		}
	})
	t.Run("the breaker opens and then answers without calling", func(t *testing.T) {
		e := newEnv(t)
		e.sn.Fail("/api/now/v2/table/sys_user", servicenowtest.Failure{Status: http.StatusInternalServerError})
		for i := 0; i < 3; i++ { // threshold 3: one outage per lookup
			if r, _ := e.lookup(t, `{"ani":"+14155550100"}`); r.Reason != lookup.ReasonUnavailable {
				t.Fatalf("call %d: %+v", i, r)
			}
		}
		_, _, before := e.calls()
		start := time.Now()
		r, metrics := e.lookup(t, `{"ani":"+14155550100"}`)
		if r.Status != lookup.StatusUnavailable || r.Reason != lookup.ReasonBreakerOpen {
			t.Fatalf("got %+v", r)
		}
		if _, _, after := e.calls(); after != before {
			t.Fatalf("an open breaker still called ServiceNow (%d -> %d)", before, after)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("breaker-open answer took %v", d)
		}
		if !strings.Contains(metrics, "BreakerRejected") {
			t.Fatalf("metrics %s", metrics)
		}
	})
}

// staticSecret is a connectors.SecretReader with one fixed value.
type staticSecret string

func (s staticSecret) JSON(_ context.Context, _ string, v any) error {
	return json.Unmarshal([]byte(s), v)
}
func (staticSecret) Invalidate(string) {}

// When other callers share the digit groups and have many newer incidents, the shared incident
// scan may not reach the caller's own: then, and only then, their incidents are read directly.
func TestIncidentFollowUpWhenTheScanIsCutOff(t *testing.T) {
	e := newEnv(t)
	busy := e.sn.AddUser(servicenowtest.User{UserName: "busy", Phone: "(415) 555-1100"}) // shares the digit pieces
	for i := 0; i < 30; i++ {
		e.incident(busy, fmt.Sprintf("busy %d", i), servicenow.StateNew, time.Duration(10+i)*time.Hour)
	}
	me := e.sn.AddUser(servicenowtest.User{UserName: "me", Phone: "(415) 555-0100"})
	older := e.incident(me, "older", servicenow.StateNew, time.Hour)
	newer := e.incident(me, "newer", servicenow.StateInProgress, 2*time.Hour)

	r, metrics := e.lookup(t, `{"ani":"+14155550100"}`)
	if !r.Found || r.UserSysID != me || r.IncidentCount != 2 || r.Incidents[0].SysID != newer || r.Incidents[1].SysID != older {
		t.Fatalf("got %+v", r)
	}
	if _, i, _ := e.calls(); i != 2 || !strings.Contains(metrics, "LookupIncidentFollowUp") {
		t.Fatalf("%d incident queries; want the scan and one follow-up (metrics %s)", i, metrics)
	}
	if q := e.sn.Received("/api/now/v2/table/incident")[1].Query.Get("sysparm_query"); q != "caller_id="+me+"^stateIN1,2,3^ORDERBYDESCsys_updated_on" {
		t.Fatalf("follow-up query %q", q)
	}
}

func TestLinkFailureDoesNotFailTheLookup(t *testing.T) {
	e := newEnv(t)
	e.sn.AddUser(servicenowtest.User{Phone: "+1 415 555 0100"})
	e.links.Table = "no-such-table"
	r, metrics := e.lookup(t, `{"ani":"+14155550100","conversationId":"`+conv+`"}`)
	if !r.Found || r.ConversationLinked || r.Status != lookup.StatusOK {
		t.Fatalf("got %+v", r)
	}
	if !strings.Contains(metrics, "WaitingLinkFailed") {
		t.Fatalf("metrics %s", metrics)
	}
}

func TestNoMatchAnywhere(t *testing.T) {
	e := newEnv(t)
	e.sn.AddUser(servicenowtest.User{Phone: "+1 650 555 0100", EmployeeNumber: "E10001"})
	if r, _ := e.lookup(t, `{"ani":"+14155550100"}`); r.Found || r.Reason != lookup.ReasonNoMatch || r.Status != lookup.StatusOK || r.CallerNumber != "+14155550100" {
		t.Fatalf("got %+v", r)
	}
	if r, _ := e.lookup(t, `{"ani":"+14155550100","employeeId":"E99999"}`); r.Found || r.Reason != lookup.ReasonNoMatch {
		t.Fatalf("got %+v", r)
	}
	if r, _ := e.lookup(t, `{"employeeId":"E99999"}`); r.Found || r.Reason != lookup.ReasonNoMatch {
		t.Fatalf("got %+v", r)
	}
}

// Only a caller who cannot be looked up at all (no number and no employee ID), a body that is not
// a JSON object, or a typo of an input name is refused.
func TestOnlyAnUnservableLookupIsRejected(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ body, field, code string }{
		{`{}`, "ani", "missing_field"},
		{`{"ani":"  ","employeeId":""}`, "ani", "missing_field"},
		{`{"ani":"+14155550100","conversationID":"x"}`, "conversationID", "unknown_field"},
		{`{"ani":{"number":"+14155550100"}}`, "ani", "invalid_field"},
		{`not json`, "body", "invalid_json"},
	}
	for _, c := range cases {
		resp := e.handle(t, context.Background(), c.body)
		var rej struct {
			Status string      `json:"status"`
			Error  apigw.Error `json:"error"`
		}
		_ = json.Unmarshal([]byte(resp.Body), &rej)
		if resp.StatusCode != 400 || rej.Status != "rejected" || rej.Error.Field != c.field || rej.Error.Code != c.code || rej.Error.Message == "" {
			t.Errorf("%s: got %d %s; want 400 %s on %s", c.body, resp.StatusCode, resp.Body, c.code, c.field)
		}
	}
	if _, _, total := e.calls(); total != 0 {
		t.Fatalf("rejected requests reached ServiceNow %d times", total)
	}
}

// Everything else is answered, with a warning naming the input; junk never reaches ServiceNow.
func TestBadLookupInputIsAnsweredWithAWarning(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		body, field, reason string
	}{
		{`{"ani":"` + strings.Repeat("1", 65) + `"}`, "ani", lookup.ReasonInvalidNumber},
		{`{"employeeId":"E1\u0000"}`, "employeeId", lookup.ReasonInvalidEmployeeID},
		{`{"ani":"+14155550100","conversationId":"x^ORactive=true"}`, "conversationId", lookup.ReasonNoMatch},
		{`{"ani":"+14155550100","participantId":"a b"}`, "participantId", lookup.ReasonNoMatch},
		{`{"ani":"+14155550100","callerName":"x"}`, "callerName", lookup.ReasonNoMatch},
	}
	for _, c := range cases {
		resp := e.handle(t, context.Background(), c.body)
		var r lookup.Result
		_ = json.Unmarshal([]byte(resp.Body), &r)
		if resp.StatusCode != 200 || r.Reason != c.reason || len(r.Warnings) != 1 || !strings.HasPrefix(r.Warnings[0], c.field+": ") || r.ConversationLinked {
			t.Errorf("%s: got %d %s; want 200 %s with a warning on %s", c.body, resp.StatusCode, resp.Body, c.reason, c.field)
		}
	}
	for _, r := range e.sn.Received("") {
		if q := r.Query.Encode(); strings.Contains(q, "ORactive") || strings.Contains(q, "1111111111111111") {
			t.Fatalf("junk reached ServiceNow: %s", q)
		}
	}
}

func TestDirectInvocationWithNumericInputs(t *testing.T) {
	e := newEnv(t)
	id := e.sn.AddUser(servicenowtest.User{Phone: "+1 415 555 0100"})
	// A Genesys "AWS Lambda" data action sends the rendered template itself, numbers unquoted.
	out, err := lambda.NewHandler(apigw.Lambda(apigw.Limits{}, e.svc.Handle)).Invoke(context.Background(), []byte(`{"ani":14155550100}`))
	if err != nil {
		t.Fatal(err)
	}
	var r lookup.Result
	if err := json.Unmarshal(out, &r); err != nil || !r.Found || r.UserSysID != id {
		t.Fatalf("direct invoke: %s (%v)", out, err)
	}
}

// Numbers the phone metadata does not list (the 555 range, Ofcom's drama range) are possible
// numbers: ServiceNow is asked, and a user who stored one in national format is found.
func TestUnlistedNumbersAreLookedUp(t *testing.T) {
	for _, c := range []struct{ region, ani, stored string }{
		{"US", "+1 555 555 0100", "(555) 555-0100"},
		{"US", "tel:+15555550100", "555.555.0100"},
		{"GB", "+447700900123", "07700 900 123"},
		{"GB", "07700900123", "+44 7700 900123"},
	} {
		e := newEnv(t)
		e.svc.Config.DefaultRegion = c.region
		id := e.sn.AddUser(servicenowtest.User{UserName: "test.caller", MobilePhone: c.stored})
		e.incident(id, "test instance incident", servicenow.StateNew, time.Hour)
		r, metrics := e.lookup(t, `{"ani":"`+c.ani+`"}`)
		if !r.Found || r.UserSysID != id || r.IncidentCount != 1 || r.Reason != "" {
			t.Fatalf("%s %q stored as %q: %+v", c.region, c.ani, c.stored, r)
		}
		if !strings.Contains(metrics, "LookupUnlistedNumber") {
			t.Errorf("%q: no LookupUnlistedNumber metric: %s", c.ani, metrics)
		}
	}
}
