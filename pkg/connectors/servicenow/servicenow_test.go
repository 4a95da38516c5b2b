package servicenow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
)

const secretID = "cxbridge/servicenow"

// memSecrets is a connectors.SecretReader over a map.
type memSecrets struct {
	mu          sync.Mutex
	values      map[string]string
	reads       int
	invalidated int
}

func newSecrets(id, value string) *memSecrets {
	return &memSecrets{values: map[string]string{id: value}}
}

func (m *memSecrets) JSON(_ context.Context, id string, v any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	s, ok := m.values[id]
	if !ok {
		return fmt.Errorf("secret %s not found", id)
	}
	return json.Unmarshal([]byte(s), v)
}

func (m *memSecrets) Invalidate(string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.invalidated++
}

func (m *memSecrets) put(id, value string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[id] = value
}

func (m *memSecrets) invalidations() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.invalidated
}

type world struct {
	sn      *servicenowtest.Server
	secrets *memSecrets
	client  *servicenow.Client
}

func basicWorld(t *testing.T, cfg servicenowtest.Config) *world {
	t.Helper()
	if cfg.Username == "" {
		cfg.Username, cfg.Password = "cxbridge.integration", "s3cret"
	}
	sn := servicenowtest.New(cfg)
	t.Cleanup(sn.Close)
	sec := newSecrets(secretID, fmt.Sprintf(`{"username":%q,"password":%q}`, cfg.Username, cfg.Password))
	return &world{sn: sn, secrets: sec, client: servicenow.New(sn.URL(), sec, secretID, nil)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

func digits(t *testing.T, phone string) servicenow.Digits {
	t.Helper()
	d, err := servicenow.PhoneDigits(phone)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// usersByPhone is the lookup's user query: the national number anywhere in phone or mobile_phone.
func usersByPhone(d servicenow.Digits) *servicenow.EncodedQuery {
	return servicenow.NewQuery().
		Where(servicenow.Like(servicenow.FieldPhone, d), servicenow.Like(servicenow.FieldMobilePhone, d)).
		Where(servicenow.Eq(servicenow.FieldActive, servicenow.Bool(true)))
}

// incidentsByCallerPhone is the lookup's incident query, dot-walking caller_id.
func incidentsByCallerPhone(d servicenow.Digits) *servicenow.EncodedQuery {
	return servicenow.NewQuery().
		Where(servicenow.Like(servicenow.FieldCallerPhone, d), servicenow.Like(servicenow.FieldCallerMobilePhone, d)).
		Where(servicenow.OpenStates()).
		OrderByDesc(servicenow.FieldUpdatedOn)
}

func TestBasicAuthQueryUsersByPhone(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	abel := w.sn.AddUser(servicenowtest.User{UserName: "abel.tuter", FirstName: "Abel", LastName: "Tuter", Phone: "(415) 555-0100", EmployeeNumber: "E10001"})
	w.sn.AddUser(servicenowtest.User{UserName: "beth.anglin", FirstName: "Beth", LastName: "Anglin", MobilePhone: "+1 212 555 0199"})
	w.sn.AddUser(servicenowtest.User{UserName: "gone", FirstName: "Gone", LastName: "User", Phone: "415-555-0100", Inactive: true})

	var users []servicenow.User
	d := digits(t, "tel:+14155550100").Last(7) // free-text phone fields: match the digits people type last
	err := w.client.Query(ctx(t), servicenow.TableUser, usersByPhone(d), servicenow.QueryOptions{Fields: servicenow.UserFields, Limit: 2}, &users)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 0 {
		t.Fatalf("digits 5550100 should not match the formatted (415) 555-0100: %+v", users)
	}
	// The lookup strategy is the caller's; a shorter fragment such as the subscriber number matches.
	d = digits(t, "tel:+14155550100").Last(4)
	if err := w.client.Query(ctx(t), servicenow.TableUser, usersByPhone(d), servicenow.QueryOptions{Fields: servicenow.UserFields, Limit: 2}, &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].SysID != abel || users[0].Name != "Abel Tuter" || !users[0].Active || users[0].EmployeeNumber != "E10001" {
		t.Fatalf("users = %+v", users)
	}
	got := w.sn.Received("/api/now/v2/table/sys_user")
	if len(got) != 2 {
		t.Fatalf("received %d requests", len(got))
	}
	r := got[1]
	want := url.Values{
		"sysparm_query":                      {"phoneLIKE0100^ORmobile_phoneLIKE0100^active=true"},
		"sysparm_fields":                     {"sys_id,user_name,name,first_name,last_name,email,phone,mobile_phone,employee_number,active,vip"},
		"sysparm_limit":                      {"2"},
		"sysparm_display_value":              {"false"},
		"sysparm_exclude_reference_link":     {"true"},
		"sysparm_no_count":                   {"true"},
		"sysparm_suppress_pagination_header": {"true"},
	}
	for k, v := range want {
		if r.Query.Get(k) != v[0] {
			t.Errorf("%s = %q, want %q", k, r.Query.Get(k), v[0])
		}
	}
	if r.Auth != "basic" || r.Method != http.MethodGet {
		t.Errorf("auth %q method %q", r.Auth, r.Method)
	}
	if w.client.TokenFetches() != 0 {
		t.Error("Basic credentials fetched a token")
	}
}

func TestDotWalkedIncidentQueryDisplayAllLabelsAndUTC(t *testing.T) {
	// The API user's zone is UTC-5: display values are local, actual values stay UTC.
	w := basicWorld(t, servicenowtest.Config{DisplayZone: time.FixedZone("UTC-5", -5*3600)})
	abel := w.sn.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter", Phone: "+1 415 555 0100"})
	beth := w.sn.AddUser(servicenowtest.User{FirstName: "Beth", LastName: "Anglin", Phone: "+1 212 555 0199"})
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	add := func(caller, desc, state string, updated time.Duration) string {
		return w.sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: desc, State: state, Impact: "1", Urgency: "2", CreatedOn: base, UpdatedOn: base.Add(updated)})
	}
	add(abel, "oldest open", servicenow.StateNew, 1*time.Hour)
	second := add(abel, "on hold", servicenow.StateOnHold, 3*time.Hour)
	add(abel, "closed", servicenow.StateClosed, 9*time.Hour)
	newest := add(abel, "in progress", servicenow.StateInProgress, 5*time.Hour)
	third := add(abel, "new", servicenow.StateNew, 2*time.Hour)
	add(beth, "someone else", servicenow.StateNew, 8*time.Hour)

	var incs []servicenow.Incident
	q := incidentsByCallerPhone(digits(t, "+14155550100").Last(10))
	q2 := incidentsByCallerPhone(digits(t, "4155550100"))
	if q.String() != q2.String() {
		t.Fatalf("%s != %s", q, q2)
	}
	// 415 555 0100 is stored with spaces: match on the last 4 digits for this fixture.
	q = incidentsByCallerPhone(digits(t, "+14155550100").Last(4))
	err := w.client.Query(ctx(t), servicenow.TableIncident, q, servicenow.QueryOptions{Fields: servicenow.IncidentFields, Limit: 3, Display: servicenow.DisplayAll}, &incs)
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 3 || incs[0].SysID != newest || incs[1].SysID != second || incs[2].SysID != third {
		t.Fatalf("want the 3 most recent open incidents, got %+v", incs)
	}
	in := incs[0]
	if in.State != "2" || in.StateLabel != "In Progress" || in.Priority != "2" || in.PriorityLabel != "2 - High" {
		t.Errorf("state/priority = %q %q %q %q", in.State, in.StateLabel, in.Priority, in.PriorityLabel)
	}
	if in.CallerID != abel || in.CallerName != "Abel Tuter" || !strings.HasPrefix(in.Number, "INC00100") {
		t.Errorf("caller %q %q number %q", in.CallerID, in.CallerName, in.Number)
	}
	if want := base.Add(5 * time.Hour); !in.UpdatedAt.Equal(want) || in.UpdatedAt.Location() != time.UTC {
		t.Errorf("UpdatedAt = %v, want %v UTC (not the UTC-5 display value)", in.UpdatedAt, want)
	}
	// The wire carried both halves: prove the display value was local time.
	var raw []servicenow.Record
	if err := w.client.Query(ctx(t), servicenow.TableIncident, q, servicenow.QueryOptions{Fields: []servicenow.Field{servicenow.FieldUpdatedOn}, Limit: 1, Display: servicenow.DisplayAll}, &raw); err != nil {
		t.Fatal(err)
	}
	if u := raw[0]["sys_updated_on"]; u.Value != "2026-11-20 14:00:00" || u.Display != "2026-11-20 09:00:00" {
		t.Errorf("sys_updated_on = %+v", u)
	}
	// Without labels (DisplayFalse) the baseline labels fill in.
	if err := w.client.Query(ctx(t), servicenow.TableIncident, q, servicenow.QueryOptions{Fields: servicenow.IncidentFields, Limit: 1}, &incs); err != nil {
		t.Fatal(err)
	}
	if incs[0].StateLabel != "In Progress" || incs[0].PriorityLabel != "2 - High" || !incs[0].UpdatedAt.Equal(base.Add(5*time.Hour)) {
		t.Errorf("DisplayFalse incident = %+v", incs[0])
	}
}

func TestReferenceFieldsInBothShapes(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	abel := w.sn.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter"})
	id := w.sn.AddIncident(servicenowtest.Incident{CallerID: abel, ShortDescription: "x"})
	sys := servicenow.MustSysID(id)
	fields := []servicenow.Field{servicenow.FieldCallerID, servicenow.FieldCallerName, servicenow.FieldSysID}

	for _, tc := range []struct {
		name     string
		opt      servicenow.QueryOptions
		wantLink bool
		wantDisp string
	}{
		{"plain", servicenow.QueryOptions{Fields: fields}, false, ""},
		{"link+value", servicenow.QueryOptions{Fields: fields, ReferenceLinks: true}, true, ""},
		{"all", servicenow.QueryOptions{Fields: fields, Display: servicenow.DisplayAll}, false, "Abel Tuter"},
		{"all+link", servicenow.QueryOptions{Fields: fields, Display: servicenow.DisplayAll, ReferenceLinks: true}, true, "Abel Tuter"},
	} {
		var rec servicenow.Record
		if err := w.client.Get(ctx(t), servicenow.TableIncident, sys, tc.opt, &rec); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c := rec["caller_id"]
		if c.Value != abel || (c.Link != "") != tc.wantLink || c.Display != tc.wantDisp {
			t.Errorf("%s: caller_id = %+v", tc.name, c)
		}
		if tc.wantLink && !strings.HasSuffix(c.Link, "/api/now/table/sys_user/"+abel) {
			t.Errorf("%s: link %q", tc.name, c.Link)
		}
		var in servicenow.Incident
		if err := w.client.Get(ctx(t), servicenow.TableIncident, sys, tc.opt, &in); err != nil {
			t.Fatal(err)
		}
		if in.CallerID != abel || in.CallerName != "Abel Tuter" {
			t.Errorf("%s: Incident caller %q %q", tc.name, in.CallerID, in.CallerName)
		}
	}
	// display_value=true: reference is {display_value, link}; typed records refuse the mode.
	var rec servicenow.Record
	if err := w.client.Get(ctx(t), servicenow.TableIncident, sys, servicenow.QueryOptions{Fields: fields, Display: servicenow.DisplayTrue, ReferenceLinks: true}, &rec); err != nil {
		t.Fatal(err)
	}
	if c := rec["caller_id"]; c.Display != "Abel Tuter" || c.Value != "" || c.Link == "" {
		t.Errorf("display=true caller_id = %+v", c)
	}
	var in servicenow.Incident
	err := w.client.Get(ctx(t), servicenow.TableIncident, sys, servicenow.QueryOptions{Display: servicenow.DisplayTrue}, &in)
	if connectors.KindOf(err) != connectors.KindRejected || !errors.Is(err, servicenow.ErrInvalidQuery) {
		t.Errorf("Incident with DisplayTrue: %v", err)
	}
}

func TestCreateIncidentCorrelationSearchAndWorkNotes(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	abel := servicenow.MustSysID(w.sn.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter"}))
	key, err := servicenow.ParseKey("esc-2b7e151628aed2a6-conv-9f1c")
	if err != nil {
		t.Fatal(err)
	}

	// Crash recovery: nothing yet.
	if _, found, err := w.client.IncidentByCorrelationID(ctx(t), key); err != nil || found {
		t.Fatalf("before create: found=%v err=%v", found, err)
	}
	in, err := w.client.CreateIncident(ctx(t), servicenow.NewIncident{
		CallerID: abel, ShortDescription: "Call from Abel Tuter - Topic: VPN", Description: "Conversation ID: conv-9f1c",
		ContactType: "phone", Category: "inquiry", Impact: 2, Urgency: 2, CorrelationID: key, CorrelationDisplay: "cxbridge",
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.Number != "INC0010001" || in.State != servicenow.StateNew || in.StateLabel != "New" || in.Priority != "3" || in.PriorityLabel != "3 - Moderate" {
		t.Errorf("created %+v", in)
	}
	if in.CallerName != "Abel Tuter" || in.CorrelationID != key.String() || in.ContactType != "phone" || in.CreatedAt.IsZero() {
		t.Errorf("created %+v", in)
	}
	posts := w.sn.Received("/api/now/v2/table/incident")
	var body map[string]any
	if err := json.Unmarshal(posts[len(posts)-1].Body, &body); err != nil {
		t.Fatal(err)
	}
	if _, sent := body["priority"]; sent || body["impact"] != "2" || body["urgency"] != "2" || body["correlation_id"] != key.String() || body["caller_id"] != abel.String() {
		t.Errorf("POST body %v", body)
	}

	// A recovering attempt finds it instead of creating a second one.
	found, ok, err := w.client.IncidentByCorrelationID(ctx(t), key)
	if err != nil || !ok || found.SysID != in.SysID {
		t.Fatalf("after create: %+v %v %v", found, ok, err)
	}
	last := w.sn.Received("/api/now/v2/table/incident")
	if q := last[len(last)-1].Query.Get("sysparm_query"); q != "correlation_id=esc-2b7e151628aed2a6-conv-9f1c^ORDERBYsys_created_on" {
		t.Errorf("correlation query %q", q)
	}

	// Repeat call / outage mode: append, do not overwrite.
	id, _ := in.ID()
	for _, note := range []string{"Caller rang again at 10:02", "Batched: 14 more calls about the email outage"} {
		if err := w.client.AppendWorkNote(ctx(t), id, note); err != nil {
			t.Fatal(err)
		}
	}
	j := w.sn.Journal("incident", in.SysID)
	if len(j) != 2 || j[0].Value != "Caller rang again at 10:02" || j[1].Element != "work_notes" || j[1].CreatedBy != "cxbridge.integration" {
		t.Errorf("journal %+v", j)
	}
	patches := w.sn.Received("/api/now/v2/table/incident/" + in.SysID)
	if len(patches) != 2 || patches[0].Method != http.MethodPatch || patches[0].Header.Get("X-No-Response-Body") != "true" {
		t.Errorf("patches %+v", patches)
	}
	var again servicenow.Incident
	if err := w.client.Get(ctx(t), servicenow.TableIncident, id, servicenow.QueryOptions{Fields: []servicenow.Field{servicenow.FieldWorkNotes, servicenow.FieldSysID}}, &again); err != nil {
		t.Fatal(err)
	}
	if again.WorkNotes != "" {
		t.Errorf("journal field read back as %q, want \"\"", again.WorkNotes)
	}
	if err := w.client.AppendWorkNote(ctx(t), id, "  "); connectors.KindOf(err) != connectors.KindRejected {
		t.Errorf("empty note: %v", err)
	}
	if _, err := w.client.CreateIncident(ctx(t), servicenow.NewIncident{ShortDescription: "x", Impact: 4}); !errors.Is(err, servicenow.ErrInvalidIncident) {
		t.Errorf("impact 4: %v", err)
	}
}

func TestPriorityIsComputedNotWritten(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	var in servicenow.Incident
	err := w.client.Create(ctx(t), servicenow.TableIncident,
		map[string]string{"short_description": "x", "impact": "3", "urgency": "3", "priority": "1", "u_not_a_field": "ignored"},
		servicenow.WriteOptions{Display: servicenow.DisplayAll}, &in)
	if err != nil {
		t.Fatal(err)
	}
	if in.Priority != "4" || in.PriorityLabel != "4 - Low" {
		t.Errorf("priority %q %q, want 4 - Low from impact 3 x urgency 3", in.Priority, in.PriorityLabel)
	}
	rec, _ := w.sn.Record("incident", in.SysID)
	if _, ok := rec["u_not_a_field"]; ok {
		t.Error("unknown field stored")
	}
	id, _ := in.ID()
	if err := w.client.Update(ctx(t), servicenow.TableIncident, id, map[string]string{"impact": "1", "urgency": "1"}, servicenow.WriteOptions{Display: servicenow.DisplayAll}, &in); err != nil {
		t.Fatal(err)
	}
	if in.PriorityLabel != "1 - Critical" {
		t.Errorf("after update %q", in.PriorityLabel)
	}
}

func TestFallbackLearnsMobileNumber(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	id := w.sn.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter", EmployeeNumber: "E10001", Phone: "+1 415 555 0100"})
	pattern, _ := servicenow.NewTokenPattern(`E[0-9]{5}`)
	emp, err := pattern.Parse("E10001")
	if err != nil {
		t.Fatal(err)
	}
	var users []servicenow.User
	q := servicenow.NewQuery().Where(servicenow.Eq(servicenow.FieldEmployeeNumber, emp)).Where(servicenow.Eq(servicenow.FieldActive, servicenow.Bool(true)))
	if err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{Fields: servicenow.UserFields, Limit: 2}, &users); err != nil || len(users) != 1 {
		t.Fatalf("by employee number: %+v %v", users, err)
	}
	uid, _ := users[0].ID()
	if err := w.client.SetUserMobilePhone(ctx(t), uid, "+447700900123"); err != nil {
		t.Fatal(err)
	}
	if rec, _ := w.sn.Record("sys_user", id); rec["mobile_phone"] != "+447700900123" {
		t.Errorf("mobile_phone = %q", rec["mobile_phone"])
	}
	if err := w.client.Query(ctx(t), servicenow.TableUser, usersByPhone(digits(t, "tel:+447700900123")), servicenow.QueryOptions{Fields: servicenow.UserFields}, &users); err != nil || len(users) != 1 {
		t.Fatalf("next call by ANI: %+v %v", users, err)
	}
	if err := w.client.SetUserMobilePhone(ctx(t), uid, "+44^ORactive=true"); connectors.KindOf(err) != connectors.KindRejected {
		t.Errorf("junk phone: %v", err)
	}
}

func TestEmptyResultsAreNotErrors(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	q := usersByPhone(digits(t, "+19995550000"))
	users := []servicenow.User{{Name: "stale"}}
	if err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users); err != nil || len(users) != 0 {
		t.Fatalf("v2: %+v %v", users, err)
	}
	// Table API v1 answers 404 "No Record found"; that is still an empty result.
	v1 := servicenow.New(w.sn.URL(), w.secrets, secretID, nil, servicenow.WithAPIVersion("v1"))
	users = []servicenow.User{{Name: "stale"}}
	if err := v1.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users); err != nil || len(users) != 0 {
		t.Fatalf("v1: %+v %v", users, err)
	}
	if w.sn.Calls("/api/now/table/sys_user") != 1 {
		t.Error("v1 client did not use the v1 path")
	}
	// A missing record by sys_id is a real not-found.
	var u servicenow.User
	err := w.client.Get(ctx(t), servicenow.TableUser, servicenow.MustSysID(strings.Repeat("ab", 16)), servicenow.QueryOptions{}, &u)
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.KindNotFound || !strings.Contains(ce.Message, "No Record found") {
		t.Errorf("Get missing: %v", err)
	}
	// An unknown table is our mistake, not an outage.
	err = w.client.Query(ctx(t), "u_missing", q, servicenow.QueryOptions{}, &users)
	if connectors.KindOf(err) != connectors.KindRejected || connectors.IsOutage(err) {
		t.Errorf("unknown table: %v", err)
	}
}

func TestRateLimitCarriesRetryAfter(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	w.sn.RateLimit(2, time.Hour)
	q := usersByPhone(digits(t, "+14155550100"))
	var users []servicenow.User
	for i := 0; i < 2; i++ {
		if err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users); err != nil {
			t.Fatal(err)
		}
	}
	err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users)
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.KindRateLimited || ce.Status != http.StatusTooManyRequests {
		t.Fatalf("third call: %v", err)
	}
	wait, ok := ce.RetryAfter()
	if !ok || wait <= 50*time.Minute || wait > time.Hour+time.Second {
		t.Errorf("RetryAfter = %v, %v", wait, ok)
	}
	if !strings.HasPrefix(ce.Message, "Rate limit exceeded: Rate limit of 2 requests per hour") || !connectors.IsOutage(err) {
		t.Errorf("message %q outage %v", ce.Message, connectors.IsOutage(err))
	}
	// Injected 429 with an explicit Retry-After.
	w.sn.RateLimit(0, 0)
	w.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 429, RetryAfter: 7, Times: 1})
	err = w.client.Query(ctx(t), servicenow.TableIncident, incidentsByCallerPhone(digits(t, "+14155550100")), servicenow.QueryOptions{}, &[]servicenow.Incident{})
	if !errors.As(err, &ce) || ce.Kind != connectors.KindRateLimited {
		t.Fatalf("injected 429: %v", err)
	}
	if wait, _ := ce.RetryAfter(); wait != 7*time.Second {
		t.Errorf("RetryAfter = %v", wait)
	}
}

func TestServerErrorsAndHangsAreOutages(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	q := usersByPhone(digits(t, "+14155550100"))
	var users []servicenow.User

	w.sn.Fail("/api/now/v2/table/sys_user", servicenowtest.Failure{Status: http.StatusServiceUnavailable, RetryAfter: 2, Times: 1})
	err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users)
	if connectors.KindOf(err) != connectors.KindUnavailable || !connectors.IsOutage(err) {
		t.Errorf("503: %v", err)
	}
	w.sn.Fail("/api/now/v2/table/sys_user", servicenowtest.Failure{Status: http.StatusInternalServerError, Times: 1})
	if err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users); !connectors.IsOutage(err) {
		t.Errorf("500: %v", err)
	}
	w.sn.Fail("/api/now/v2/table/sys_user", servicenowtest.Failure{Delay: time.Hour, Times: 1})
	c, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = w.client.Query(c, servicenow.TableUser, q, servicenow.QueryOptions{}, &users)
	if !connectors.IsOutage(err) || time.Since(start) > 2*time.Second {
		t.Errorf("hang: %v after %v", err, time.Since(start))
	}
	// A bad request of ours is not an outage; the next call works again.
	w.sn.Fail("/api/now/v2/table/sys_user", servicenowtest.Failure{Status: http.StatusBadRequest, Times: 1})
	if err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users); connectors.IsOutage(err) || connectors.KindOf(err) != connectors.KindRejected {
		t.Errorf("400: %v", err)
	}
	if err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users); err != nil {
		t.Errorf("after failures: %v", err)
	}
}

func TestBuilderRefusesBeforeAnythingIsSent(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	var users []servicenow.User
	for name, q := range map[string]*servicenow.EncodedQuery{
		"zero digits":  servicenow.NewQuery().Where(servicenow.Like(servicenow.FieldPhone, servicenow.Digits{})),
		"field inject": servicenow.NewQuery().Where(servicenow.Like("phone^ORactive=true^phone", digits(t, "5550100"))),
		"nil":          nil,
	} {
		err := w.client.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users)
		if !errors.Is(err, servicenow.ErrInvalidQuery) || connectors.KindOf(err) != connectors.KindRejected {
			t.Errorf("%s: %v", name, err)
		}
	}
	err := w.client.Query(ctx(t), "sys_user^x", usersByPhone(digits(t, "5550100")), servicenow.QueryOptions{}, &users)
	if !errors.Is(err, servicenow.ErrInvalidQuery) {
		t.Errorf("table inject: %v", err)
	}
	err = w.client.Query(ctx(t), servicenow.TableUser, usersByPhone(digits(t, "5550100")), servicenow.QueryOptions{Fields: []servicenow.Field{"name,password_hash"}}, &users)
	if !errors.Is(err, servicenow.ErrInvalidQuery) {
		t.Errorf("fields inject: %v", err)
	}
	if n := w.sn.Calls("/"); n != 0 {
		t.Errorf("%d requests reached ServiceNow", n)
	}
}

// TestTheDangerTheBuilderPrevents shows on the fake what ServiceNow does with a naively
// concatenated query, then that the builder's value types refuse the same input.
func TestTheDangerTheBuilderPrevents(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	for i := 0; i < 5; i++ {
		w.sn.AddUser(servicenowtest.User{FirstName: "User", LastName: fmt.Sprint(i), Phone: fmt.Sprintf("+1 415 555 01%02d", i), EmployeeNumber: fmt.Sprintf("E1000%d", i)})
	}
	rawQuery := func(q string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, w.sn.URL()+"/api/now/v2/table/sys_user?"+url.Values{"sysparm_query": {q}}.Encode(), nil)
		req.SetBasicAuth("cxbridge.integration", "s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Result []map[string]any `json:"result"`
		}
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%s: %s", q, b)
		}
		return len(body.Result)
	}
	attacks := []struct{ field, value string }{
		{"phone", "9999999^ORactive=true"},                        // widen with OR
		{"phone", "9999999^NQactive=true"},                        // widen with a new query
		{"employee_number", "E99999^ORemployee_numberISNOTEMPTY"}, // widen on the fallback path
		{"phone", "9999999^ORbogus_field=1"},                      // an invalid OR term is dropped... (see below)
	}
	// Sanity: the honest queries match nobody.
	if n := rawQuery("phoneLIKE9999999"); n != 0 {
		t.Fatalf("honest query matched %d", n)
	}
	for _, a := range attacks[:3] {
		op := "LIKE"
		if a.field == "employee_number" {
			op = "="
		}
		if n := rawQuery(a.field + op + a.value); n != 5 {
			t.Errorf("naive %s%s%q matched %d users, want all 5 (the danger)", a.field, op, a.value, n)
		}
	}
	// Silently dropped terms: a typo'd field, or an operator ServiceNow does not know, leaves
	// nothing to filter on, so every row comes back.
	for _, q := range []string{"phon=4155550100", "phoneCONTAINS5550100", "bogus_field=1^ORphne=1", "caller_id.phone=1"} {
		if n := rawQuery(q); n != 5 {
			t.Errorf("%q matched %d, want all 5: invalid terms are ignored", q, n)
		}
	}
	// Dot-walks resolve; one through a non-reference field is invalid and dropped.
	if n := rawQuery("manager.phoneLIKE0100"); n != 0 {
		t.Errorf("manager.phone (empty manager) matched %d", n)
	}
	if n := rawQuery("phone.nameLIKEx"); n != 5 {
		t.Errorf("dot-walk through a string field matched %d, want all 5 (invalid, dropped)", n)
	}
	// The instance property that turns this off.
	w.sn.SetStrictQueries(true)
	if n := rawQuery("phoneLIKE9999999^ORbogus_field=1"); n != 0 {
		t.Errorf("strict mode: %d rows", n)
	}
	w.sn.SetStrictQueries(false)

	// The builder: every attack value is refused by the value types.
	pattern, _ := servicenow.NewTokenPattern(`E[0-9]{5}`)
	for _, a := range attacks {
		if _, err := servicenow.PhoneDigits(a.value); err == nil {
			t.Errorf("PhoneDigits accepted %q", a.value)
		}
		if _, err := pattern.Parse(a.value); err == nil {
			t.Errorf("TokenPattern accepted %q", a.value)
		}
	}
}

func TestOAuthClientCredentialsTokenReusedAndRefreshedOnceOn401(t *testing.T) {
	sn := servicenowtest.New(servicenowtest.Config{ClientID: "cid", ClientSecret: "csecret", ClientCredentials: true})
	defer sn.Close()
	sn.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter", Phone: "4155550100"})
	sec := newSecrets(secretID, `{"clientId":"cid","clientSecret":"csecret"}`)
	c := servicenow.New(sn.URL(), sec, secretID, nil)
	q := usersByPhone(digits(t, "4155550100"))

	// Concurrent first calls (the lookup's two queries on a cold start) share one exchange.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var users []servicenow.User
			errs <- c.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if sn.TokensIssued() != 1 || c.TokenFetches() != 1 {
		t.Fatalf("tokens issued %d, fetched %d; want 1", sn.TokensIssued(), c.TokenFetches())
	}
	for _, r := range sn.Received("/api/") {
		if r.Auth != "bearer" {
			t.Fatalf("request without bearer: %+v", r)
		}
	}
	// The token is revoked (expired early, rotated): one 401, one refresh, success.
	sn.RevokeTokens()
	before := sn.Calls("/api/")
	var users []servicenow.User
	if err := c.Query(ctx(t), servicenow.TableUser, q, servicenow.QueryOptions{}, &users); err != nil || len(users) != 1 {
		t.Fatalf("after revoke: %v", err)
	}
	if sn.TokensIssued() != 2 || sn.Calls("/api/")-before != 2 || sec.invalidations() != 1 {
		t.Errorf("tokens %d, calls %d, secret invalidations %d; want 2, 2, 1", sn.TokensIssued(), sn.Calls("/api/")-before, sec.invalidations())
	}
}

func TestOAuthClientCredentialsOffOnInstance(t *testing.T) {
	sn := servicenowtest.New(servicenowtest.Config{ClientID: "cid", ClientSecret: "csecret"}) // property not created
	defer sn.Close()
	c := servicenow.New(sn.URL(), newSecrets(secretID, `{"clientId":"cid","clientSecret":"csecret"}`), secretID, nil)
	err := c.Query(ctx(t), servicenow.TableUser, usersByPhone(digits(t, "4155550100")), servicenow.QueryOptions{}, &[]servicenow.User{})
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.KindUnauthorized || ce.Op != "get access token" || connectors.IsOutage(err) {
		t.Fatalf("want an unauthorized token error, got %v", err)
	}
	if sn.Calls("/api/") != 0 {
		t.Error("an API call went out without a token")
	}
}

func TestOAuthPasswordGrant(t *testing.T) {
	sn := servicenowtest.New(servicenowtest.Config{ClientID: "cid", ClientSecret: "csecret", Username: "rest.user", Password: "pw"})
	defer sn.Close()
	sec := newSecrets(secretID, `{"clientId":"cid","clientSecret":"csecret","username":"rest.user","password":"pw"}`)
	c := servicenow.New(sn.URL(), sec, secretID, nil)
	in, err := c.CreateIncident(ctx(t), servicenow.NewIncident{ShortDescription: "via password grant", WorkNotes: "opened by cxbridge"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := in.ID()
	if err := c.AppendWorkNote(ctx(t), id, "second"); err != nil {
		t.Fatal(err)
	}
	if sn.TokensIssued() != 1 || c.TokenFetches() != 1 {
		t.Errorf("tokens %d / %d", sn.TokensIssued(), c.TokenFetches())
	}
	j := sn.Journal("incident", in.SysID)
	if len(j) != 2 || j[0].CreatedBy != "rest.user" {
		t.Errorf("journal %+v", j)
	}
	sn.RevokeTokens()
	if err := c.AppendWorkNote(ctx(t), id, "third"); err != nil || sn.TokensIssued() != 2 {
		t.Errorf("after revoke: %v, tokens %d", err, sn.TokensIssued())
	}
	// Wrong password: the token endpoint says no, once.
	sec.put(secretID, `{"clientId":"cid","clientSecret":"csecret","username":"rest.user","password":"wrong"}`)
	sn.RevokeTokens()
	err = c.AppendWorkNote(ctx(t), id, "fourth")
	if connectors.KindOf(err) != connectors.KindUnauthorized {
		t.Errorf("wrong password: %v", err)
	}
}

func TestBadBasicCredentialsRetryOnceThenUnauthorized(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	w.secrets.put(secretID, `{"username":"cxbridge.integration","password":"rotated-away"}`)
	err := w.client.Query(ctx(t), servicenow.TableUser, usersByPhone(digits(t, "4155550100")), servicenow.QueryOptions{}, &[]servicenow.User{})
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.KindUnauthorized || ce.Message != "User is not authenticated: Required to provide Auth information" {
		t.Fatalf("got %v", err)
	}
	if n := w.sn.Calls("/api/"); n != 2 || w.secrets.invalidations() != 1 {
		t.Errorf("calls %d invalidations %d; want 2 and 1", n, w.secrets.invalidations())
	}
	// Rotated back: works without a new client.
	w.secrets.put(secretID, `{"username":"cxbridge.integration","password":"s3cret"}`)
	if err := w.client.Query(ctx(t), servicenow.TableUser, usersByPhone(digits(t, "4155550100")), servicenow.QueryOptions{}, &[]servicenow.User{}); err != nil {
		t.Error(err)
	}
	// No usable credentials at all.
	w.secrets.put(secretID, `{"apiKey":"x"}`)
	if err := w.client.Query(ctx(t), servicenow.TableUser, usersByPhone(digits(t, "4155550100")), servicenow.QueryOptions{}, &[]servicenow.User{}); connectors.KindOf(err) != connectors.KindConfig {
		t.Errorf("bad secret: %v", err)
	}
	missing := servicenow.New(w.sn.URL(), w.secrets, "no/such/secret", nil)
	if err := missing.Query(ctx(t), servicenow.TableUser, usersByPhone(digits(t, "4155550100")), servicenow.QueryOptions{}, &[]servicenow.User{}); connectors.KindOf(err) != connectors.KindConfig {
		t.Errorf("missing secret: %v", err)
	}
}

func TestDeepLinks(t *testing.T) {
	c := servicenow.New("https://acme.service-now.com/", nil, secretID, nil)
	id := servicenow.MustSysID("a9e30c7dc61122760116894de7bcc7bd")
	if got := c.IncidentURL(id); got != "https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id=a9e30c7dc61122760116894de7bcc7bd" {
		t.Errorf("IncidentURL = %s", got)
	}
	if got := c.UserURL(id); got != "https://acme.service-now.com/nav_to.do?uri=sys_user.do?sys_id=a9e30c7dc61122760116894de7bcc7bd" {
		t.Errorf("UserURL = %s", got)
	}
	if c.IncidentURL(servicenow.SysID{}) != "" || c.RecordURL("Bad Table", id) != "" {
		t.Error("deep link for an invalid record")
	}
	u, err := url.Parse(c.IncidentURL(id))
	if err != nil || u.Query().Get("uri") != "incident.do?sys_id=a9e30c7dc61122760116894de7bcc7bd" {
		t.Errorf("uri parameter does not survive parsing: %v %v", u, err)
	}
}

func TestParseError(t *testing.T) {
	for body, want := range map[string]string{
		`{"error":{"message":"Invalid table u_x","detail":null},"status":"failure"}`:                 "Invalid table u_x",
		`{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 10"},"status":"failure"}`: "Rate limit exceeded: Rate limit of 10",
		`<html>login</html>`: "",
	} {
		if _, got := servicenow.ParseError([]byte(body)); got != want {
			t.Errorf("ParseError(%s) = %q, want %q", body, got, want)
		}
	}
}

// TestJournalHasVerifiesAWorkNoteWhoseAnswerWasLost: the instance appends the note and answers
// 502; sys_journal_field, a consistent read, says it landed, so it is not appended again.
func TestJournalHasVerifiesAWorkNoteWhoseAnswerWasLost(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	id := servicenow.MustSysID(w.sn.AddIncident(servicenowtest.Incident{ShortDescription: "E-mail is down"}))
	other := servicenow.MustSysID(w.sn.AddIncident(servicenowtest.Incident{ShortDescription: "Printer"}))
	marker := servicenow.MustKey("9700ed825613aae4be5e33d8")
	w.sn.Fail("/api/now/v2/table/incident/"+id.String(), servicenowtest.Failure{Status: 502, AfterEffect: true, Method: http.MethodPatch, Times: 1})
	err := w.client.AppendWorkNote(ctx(t), id, "Another escalation for this call (escalation id 9700ed825613aae4be5e33d8)")
	if !connectors.InDoubt(err) {
		t.Fatalf("a 502 after the append: %v; want an unknown outcome", err)
	}
	for _, tc := range []struct {
		id    servicenow.SysID
		field servicenow.Field
		want  bool
	}{
		{id, servicenow.FieldWorkNotes, true},
		{id, servicenow.FieldComments, false}, // another journal field
		{other, servicenow.FieldWorkNotes, false},
	} {
		got, err := w.client.JournalHas(ctx(t), servicenow.TableIncident, tc.id, tc.field, marker)
		if err != nil || got != tc.want {
			t.Errorf("JournalHas(%s, %s) = %v, %v; want %v", tc.id, tc.field, got, err, tc.want)
		}
	}
	if has, _ := w.client.JournalHas(ctx(t), servicenow.TableIncident, id, servicenow.FieldWorkNotes, servicenow.MustKey("ffffffffffffffffffffffff")); has {
		t.Error("another marker is not there")
	}
	q := w.sn.Received("/api/now/v2/table/sys_journal_field")[0].Query.Get("sysparm_query")
	if q != "element_id="+id.String()+"^name=incident^element=work_notes^valueLIKE9700ed825613aae4be5e33d8" {
		t.Errorf("query %q", q)
	}
	// Integration users cannot write the journal table directly.
	if err := w.client.Create(ctx(t), servicenow.TableJournal, map[string]string{"value": "x"}, servicenow.WriteOptions{}, nil); connectors.KindOf(err) != connectors.KindForbidden {
		t.Errorf("write to sys_journal_field: %v", err)
	}
}

// TestJournalFindLooksAcrossRecords: a note whose answer was lost may be on any of a few
// incidents (a repeat caller's); one read of sys_journal_field says which, if any.
func TestJournalFindLooksAcrossRecords(t *testing.T) {
	w := basicWorld(t, servicenowtest.Config{})
	a := servicenow.MustSysID(w.sn.AddIncident(servicenowtest.Incident{ShortDescription: "VPN"}))
	b := servicenow.MustSysID(w.sn.AddIncident(servicenowtest.Incident{ShortDescription: "VPN again", WorkNotes: "Another call (escalation id 9700ed825613aae4be5e33d8)"}))
	c := servicenow.MustSysID(w.sn.AddIncident(servicenowtest.Incident{ShortDescription: "Printer", WorkNotes: "escalation id 1111ed825613aae4be5e33d8"}))
	marker := servicenow.MustKey("9700ed825613aae4be5e33d8")
	id, found, err := w.client.JournalFind(ctx(t), servicenow.TableIncident, servicenow.FieldWorkNotes, marker, a, b)
	if err != nil || !found || id != b {
		t.Fatalf("JournalFind = %s, %v, %v; want %s", id, found, err, b)
	}
	if _, found, err := w.client.JournalFind(ctx(t), servicenow.TableIncident, servicenow.FieldWorkNotes, marker, a, c); err != nil || found {
		t.Fatalf("the note is on neither: %v, %v", found, err)
	}
	if _, found, _ := w.client.JournalFind(ctx(t), servicenow.TableIncident, servicenow.FieldComments, marker, a, b); found {
		t.Fatal("another journal field")
	}
	q := w.sn.Received("/api/now/v2/table/sys_journal_field")[0].Query.Get("sysparm_query")
	if q != "element_idIN"+a.String()+","+b.String()+"^name=incident^element=work_notes^valueLIKE9700ed825613aae4be5e33d8" {
		t.Errorf("query %q", q)
	}
	if _, _, err := w.client.JournalFind(ctx(t), servicenow.TableIncident, servicenow.FieldWorkNotes, marker); connectors.KindOf(err) != connectors.KindRejected {
		t.Errorf("no record: %v", err)
	}
}
