package jiratest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

// call sends a raw request with Basic credentials and decodes the JSON answer.
func call(t *testing.T, s *jiratest.Server, method, path string, body any, hdr ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("bot@example.com", "tok")
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil && len(raw) > 0 {
		out = map[string]any{"_raw": string(raw)}
	}
	return resp.StatusCode, out, resp.Header
}

func newFake(t *testing.T, cfg jiratest.Config) *jiratest.Server {
	t.Helper()
	cfg.Email, cfg.APIToken = "bot@example.com", "tok"
	s := jiratest.New(cfg)
	t.Cleanup(s.Close)
	return s
}

func create(t *testing.T, s *jiratest.Server, fields map[string]any) string {
	t.Helper()
	status, out, _ := call(t, s, "POST", "/rest/servicedeskapi/request", map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "requestFieldValues": fields})
	if status != 201 {
		t.Fatalf("create: %d %v", status, out)
	}
	return out["issueKey"].(string)
}

func search(t *testing.T, s *jiratest.Server, jql string) (int, []string, map[string]any) {
	t.Helper()
	status, out, _ := call(t, s, "POST", "/rest/api/3/search/jql", map[string]any{"jql": jql, "fields": []string{"labels"}})
	var keys []string
	if issues, ok := out["issues"].([]any); ok {
		for _, i := range issues {
			keys = append(keys, i.(map[string]any)["key"].(string))
		}
	}
	return status, keys, out
}

func TestJQLSubset(t *testing.T) {
	s := newFake(t, jiratest.Config{})
	a := create(t, s, map[string]any{"summary": "Caller on hold", "labels": []string{"cxb-a", "vip"}, jiratest.FieldEscalationKey: "esc-0001", jiratest.FieldConversationID: "conv-77"})
	b := create(t, s, map[string]any{"summary": "Wrap-up escalation", "description": "Router keeps rebooting", "labels": []string{"cxb-b"}})
	good := map[string][]string{
		`labels = "cxb-a"`: {a},
		`labels = cxb-b`:   {b},
		`labels in ("cxb-a", "cxb-b") ORDER BY key ASC`:     {a, b},
		`labels IN (cxb-a,cxb-b) order by created DESC`:     {b, a},
		`labels not in ("vip") and project = SUPP`:          {b},
		`project = "SUPP" AND labels = "vip"`:               {a},
		`project = Support`:                                 {a, b},
		`"Escalation Key" ~ "esc-0001"`:                     {a},
		`cf[10051] ~ "0001"`:                                {a},
		`cf[10050] ~ conv-77 AND labels = vip`:              {a},
		`text ~ "rebooting"`:                                {b},
		`summary ~ "hold"`:                                  {a},
		`summary !~ "hold"`:                                 {b},
		`key = ` + a:                                        {a},
		`status = "Waiting for support" AND labels = cxb-b`: {b},
		`statusCategory = "To Do" AND labels = cxb-a`:       {a},
		`labels = "nothing-here"`:                           nil,
		`created >= -1d ORDER BY created DESC`:              {b, a},
		`created >= -1h AND labels = vip`:                   {a},
		`created < -1h`:                                     nil,
		`created <= "2999/12/31 23:59"`:                     {a, b},
		`updated > 2000-01-01`:                              {a, b},
		`cf[10051] is not EMPTY`:                            {a},
		`"Escalation Key" IS EMPTY`:                         {b},
		`labels is not empty AND description is null`:       {a},
		`statusCategory != Done`:                            {a, b},
		`reporter = "` + jiratest.APIUserAccountID + `"`:    {a, b},
	}
	for jql, want := range good {
		status, keys, out := search(t, s, jql)
		if status != 200 || strings.Join(keys, ",") != strings.Join(want, ",") {
			t.Errorf("%s: %d %v (%v), want %v", jql, status, keys, out, want)
		}
	}
	bad := map[string]string{
		`labels = `:                 "Error in the JQL Query",
		`labels ~ "cxb-a"`:          "operator '~' is not supported by the 'labels' field",
		`summary = "Caller"`:        "operator '=' is not supported by the 'summary' field",
		`nosuchfield = 1`:           "Field 'nosuchfield' does not exist",
		`"No Such Field" ~ "x"`:     "Field 'No Such Field' does not exist",
		`labels = a OR labels = b`:  "OR is valid JQL but not supported",
		`labels = a labels = b`:     "Expecting either 'OR' or 'AND'",
		`labels in ("a"`:            "Expecting ',' or ')'",
		`labels = "unterminated`:    "has not been completed",
		`created = -1d`:             "not supported by jiratest",
		`created >= yesterday`:      "Date value 'yesterday' for field 'created' is invalid",
		`labels >= a`:               "operator '>=' is not supported by the 'labels' field",
		`labels is foo`:             "Expecting 'EMPTY' or 'NULL'",
		`labels ! a`:                "not supported by jiratest",
		``:                          "Unbounded JQL queries are not allowed",
		`labels = a ORDER BY key x`: "Expecting end of query",
	}
	for jql, want := range bad {
		status, _, out := search(t, s, jql)
		msgs, _ := out["errorMessages"].([]any)
		if status != 400 || len(msgs) != 1 || !strings.Contains(msgs[0].(string), want) {
			t.Errorf("%q: %d %v, want 400 containing %q", jql, status, out, want)
		}
		if _, ok := out["errors"].(map[string]any); !ok {
			t.Errorf("%q: platform error shape has no errors object: %v", jql, out)
		}
	}
}

// TestJQLRelativeDates: created and updated compare with periods from now ("-24h") and with
// absolute dates (read in UTC, every user's time zone here); Backdate ages a request.
func TestJQLRelativeDates(t *testing.T) {
	s := newFake(t, jiratest.Config{})
	old := create(t, s, map[string]any{"summary": "old"})
	recent := create(t, s, map[string]any{"summary": "recent"})
	if !s.Backdate(old, 30*time.Hour) || s.Backdate("SUPP-99", time.Hour) {
		t.Fatal("Backdate")
	}
	yesterday := time.Now().UTC().Add(-24 * time.Hour).Format("2006/01/02 15:04")
	for jql, want := range map[string][]string{
		`created >= -24h`:                     {recent},
		`created >= -2d ORDER BY created ASC`: {old, recent},
		`created < -1d`:                       {old},
		`created >= -1441m`:                   {recent},
		`updated < -29h`:                      {old},
		`created > "` + yesterday + `"`:       {recent},
	} {
		status, keys, out := search(t, s, jql)
		if status != 200 || strings.Join(keys, ",") != strings.Join(want, ",") {
			t.Errorf("%s: %d %v (%v), want %v", jql, status, keys, out, want)
		}
	}
}

func TestSearchContract(t *testing.T) {
	s := newFake(t, jiratest.Config{})
	create(t, s, map[string]any{"summary": "x", "description": "multi\nline"})
	// Unknown body properties (the old endpoint's startAt) are an invalid payload.
	status, out, _ := call(t, s, "POST", "/rest/api/3/search/jql", map[string]any{"jql": "project = SUPP", "startAt": 0})
	if status != 400 || !strings.Contains(out["errorMessages"].([]any)[0].(string), "Invalid request payload") {
		t.Fatalf("startAt: %d %v", status, out)
	}
	// The old endpoint is gone.
	for _, m := range []string{"GET", "POST"} {
		if status, out, _ := call(t, s, m, "/rest/api/3/search", map[string]any{"jql": "project = SUPP"}); status != 410 {
			t.Fatalf("%s /rest/api/3/search: %d %v", m, status, out)
		}
	}
	// Without fields only id, key and self come back; v3 descriptions are ADF.
	_, out, _ = call(t, s, "POST", "/rest/api/3/search/jql", map[string]any{"jql": "project = SUPP"})
	issue := out["issues"].([]any)[0].(map[string]any)
	if _, has := issue["fields"]; has || issue["id"] == nil || issue["key"] != "SUPP-1" {
		t.Fatalf("no-fields issue %v", issue)
	}
	_, out, _ = call(t, s, "POST", "/rest/api/3/search/jql", map[string]any{"jql": "project = SUPP", "fields": []string{"*all"}})
	fields := out["issues"].([]any)[0].(map[string]any)["fields"].(map[string]any)
	if d, ok := fields["description"].(map[string]any); !ok || d["type"] != "doc" {
		t.Fatalf("description %v", fields["description"])
	}
	if st := fields["status"].(map[string]any)["statusCategory"].(map[string]any); st["key"] != "new" {
		t.Fatalf("status %v", fields["status"])
	}
}

func TestCreateRequestContract(t *testing.T) {
	s := newFake(t, jiratest.Config{})
	cust := s.AddCustomer("ana@example.com", "Ana", "1")
	status, out, _ := call(t, s, "POST", "/rest/servicedeskapi/request", map[string]any{
		"serviceDeskId": "1", "requestTypeId": "10", "raiseOnBehalfOf": cust,
		"requestFieldValues": map[string]any{"summary": "s", "description": "d", "labels": []string{"l1"}, jiratest.FieldConversationID: "c-1"},
	})
	if status != 201 {
		t.Fatalf("%d %v", status, out)
	}
	values, ok := out["requestFieldValues"].([]any)
	if !ok || len(values) != 4 {
		t.Fatalf("requestFieldValues must be an array in the answer: %v", out["requestFieldValues"])
	}
	first := values[0].(map[string]any)
	if first["fieldId"] != "summary" || first["label"] != "Summary" || first["value"] != "s" {
		t.Fatalf("field value %v", first)
	}
	cs := out["currentStatus"].(map[string]any)
	if cs["statusCategory"] != "NEW" || cs["status"] != "Waiting for support" {
		t.Fatalf("currentStatus %v", cs)
	}
	if out["reporter"].(map[string]any)["accountId"] != cust || out["_links"].(map[string]any)["web"] == "" {
		t.Fatalf("reporter/links %v", out)
	}

	// JSM error shape: errorMessage + i18nErrorMessage.
	status, out, _ = call(t, s, "POST", "/rest/servicedeskapi/request", map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "requestFieldValues": map[string]any{"description": "no summary", "labels": []string{"has space"}}})
	msg, _ := out["errorMessage"].(string)
	if status != 400 || !strings.Contains(msg, "summary: Summary is required.") || !strings.Contains(msg, "labels: The label 'has space'") || out["i18nErrorMessage"] == nil {
		t.Fatalf("validation: %d %v", status, out)
	}
	status, out, _ = call(t, s, "POST", "/rest/servicedeskapi/request", map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "requestFieldValues": map[string]any{"summary": "x"}, "raiseOnBehalfOf": "ana@example.com"})
	if status != 400 || !strings.Contains(out["errorMessage"].(string), "raiseOnBehalfOf") {
		t.Fatalf("email raiseOnBehalfOf: %d %v", status, out)
	}
	status, out, _ = call(t, s, "POST", "/rest/servicedeskapi/request", map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "requestFieldValues": map[string]any{"summary": "x", "description": map[string]any{"type": "doc"}}})
	if status != 400 || !strings.Contains(out["errorMessage"].(string), "description") {
		t.Fatalf("ADF description: %d %v", status, out)
	}
	if s.RequestCount() != 1 {
		t.Fatalf("requests = %d", s.RequestCount())
	}
}

func TestAuthContract(t *testing.T) {
	s := newFake(t, jiratest.Config{ClientID: "cid", ClientSecret: "csec", TokenTTL: time.Hour})
	// Bad Basic: 401 in the area's shape.
	req, _ := http.NewRequest("GET", s.URL()+"/rest/servicedeskapi/request/SUPP-1", nil)
	req.SetBasicAuth("bot@example.com", "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var jsm map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&jsm)
	resp.Body.Close()
	if resp.StatusCode != 401 || jsm["errorMessage"] == nil {
		t.Fatalf("bad basic: %d %v", resp.StatusCode, jsm)
	}
	// Token: JSON body, audience; then the token only works through the gateway.
	tokReq, _ := http.NewRequest("POST", s.TokenURL(), strings.NewReader(`{"grant_type":"client_credentials","client_id":"cid","client_secret":"csec","audience":"api.atlassian.com"}`))
	tokReq.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(tokReq)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.AccessToken == "" || tok.ExpiresIn != 3600 {
		t.Fatalf("token: %d %+v", resp.StatusCode, tok)
	}
	for _, c := range []struct {
		base string
		want int
	}{{s.URL(), 401}, {s.GatewayURL(), 200}, {s.URL() + "/ex/jira/other-cloud", 404}} {
		req, _ := http.NewRequest("GET", c.base+"/rest/api/3/myself", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("bearer on %s: %d, want %d", c.base, resp.StatusCode, c.want)
		}
	}
	// Bad client secret and wrong audience.
	for body, want := range map[string]int{
		`{"grant_type":"client_credentials","client_id":"cid","client_secret":"x"}`:                          401,
		`{"grant_type":"client_credentials","client_id":"cid","client_secret":"csec","audience":"evil.com"}`: 403,
		`{"grant_type":"password","client_id":"cid","client_secret":"csec"}`:                                 400,
	} {
		resp, err := http.Post(s.TokenURL(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %s: %d, want %d", body, resp.StatusCode, want)
		}
	}
	if rec := s.Received("/oauth/token"); len(rec) != 4 || strings.Contains(string(rec[0].Body), "csec") {
		t.Fatalf("token requests must be recorded without the secret: %v", rec)
	}
}

func TestCustomersContract(t *testing.T) {
	s := newFake(t, jiratest.Config{})
	status, out, _ := call(t, s, "GET", "/rest/servicedeskapi/servicedesk/1/customer?query=a", nil)
	if status != 400 || !strings.Contains(out["errorMessage"].(string), "X-ExperimentalApi") {
		t.Fatalf("without opt-in: %d %v", status, out)
	}
	status, out, _ = call(t, s, "POST", "/rest/servicedeskapi/customer?strictConflictStatusCode=true", map[string]string{"email": "Bo@Example.com", "displayName": "Bo"})
	if status != 201 || !strings.HasPrefix(out["accountId"].(string), "qm:") {
		t.Fatalf("create: %d %v", status, out)
	}
	id := out["accountId"].(string)
	if status, _, _ = call(t, s, "POST", "/rest/servicedeskapi/customer?strictConflictStatusCode=true", map[string]string{"email": "bo@example.com"}); status != 409 {
		t.Fatalf("duplicate strict: %d", status)
	}
	if status, _, _ = call(t, s, "POST", "/rest/servicedeskapi/customer", map[string]string{"email": "bo@example.com"}); status != 400 {
		t.Fatalf("duplicate lenient: %d", status)
	}
	_, out, _ = call(t, s, "GET", "/rest/servicedeskapi/servicedesk/1/customer?query=bo", nil, "X-ExperimentalApi", "opt-in")
	if out["size"].(float64) != 0 {
		t.Fatalf("not yet in the desk: %v", out)
	}
	if status, _, _ = call(t, s, "POST", "/rest/servicedeskapi/servicedesk/1/customer", map[string]any{"accountIds": []string{id}}); status != 204 {
		t.Fatalf("add: %d", status)
	}
	_, out, _ = call(t, s, "GET", "/rest/servicedeskapi/servicedesk/1/customer?query=bo", nil, "X-ExperimentalApi", "opt-in")
	if out["size"].(float64) != 1 || out["isLastPage"] != true {
		t.Fatalf("in the desk: %v", out)
	}
	if status, _, _ = call(t, s, "POST", "/rest/servicedeskapi/servicedesk/1/customer", map[string]any{"accountIds": []string{"qm:nobody"}}); status != 400 {
		t.Fatalf("unknown account: %d", status)
	}
}

func TestAttachmentContract(t *testing.T) {
	s := newFake(t, jiratest.Config{})
	key := create(t, s, map[string]any{"summary": "x"})
	// XSRF protection: multipart without X-Atlassian-Token is refused.
	status, out, _ := call(t, s, "POST", "/rest/servicedeskapi/servicedesk/1/attachTemporaryFile", nil, "Content-Type", "multipart/form-data; boundary=x")
	if status != 403 || out["_raw"] != "XSRF check failed" {
		t.Fatalf("no XSRF header: %d %v", status, out)
	}
	// A part not named "file" is no file.
	body := "--b\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.txt\"\r\n\r\nhi\r\n--b--\r\n"
	req, _ := http.NewRequest("POST", s.URL()+"/rest/servicedeskapi/servicedesk/1/attachTemporaryFile", strings.NewReader(body))
	req.SetBasicAuth("bot@example.com", "tok")
	req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	req.Header.Set("X-Atlassian-Token", "no-check")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("wrong part name: %d", resp.StatusCode)
	}
	status, out, _ = call(t, s, "POST", "/rest/servicedeskapi/request/"+key+"/attachment", map[string]any{"temporaryAttachmentIds": []string{"temp1"}, "public": true})
	if status != 400 || !strings.Contains(out["errorMessage"].(string), "temporaryAttachmentIds") {
		t.Fatalf("unknown temporary id: %d %v", status, out)
	}
}

func TestFailuresRateLimitAndRecording(t *testing.T) {
	s := newFake(t, jiratest.Config{})
	s.Fail("/rest/api/3/myself", jiratest.Failure{Status: 503, RetryAfter: 5, Times: 2})
	for i := range 2 {
		status, out, h := call(t, s, "GET", "/rest/api/3/myself", nil)
		if status != 503 || h.Get("Retry-After") != "5" || out["errorMessages"] == nil {
			t.Fatalf("failure %d: %d %v %v", i, status, out, h)
		}
	}
	if status, _, _ := call(t, s, "GET", "/rest/api/3/myself", nil); status != 200 {
		t.Fatalf("after Times: %d", status)
	}
	s.RateLimit(1, time.Minute)
	call(t, s, "GET", "/rest/api/3/myself", nil)
	status, out, h := call(t, s, "GET", "/rest/servicedeskapi/request/SUPP-1", nil)
	if status != 429 || out["errorMessage"] == nil {
		t.Fatalf("rate limited: %d %v", status, out)
	}
	reset, err := time.Parse("2006-01-02T15:04Z", h.Get("X-RateLimit-Reset"))
	if err != nil || reset.Before(time.Now().Add(-time.Minute)) {
		t.Fatalf("X-RateLimit-Reset %q must be yyyy-MM-ddTHH:mmZ: %v", h.Get("X-RateLimit-Reset"), err)
	}
	if h.Get("Retry-After") == "" || h.Get("RateLimit-Reason") != "jira-burst-based" || h.Get("X-RateLimit-Limit") != "1" || h.Get("X-RateLimit-Remaining") != "0" {
		t.Fatalf("headers %v", h)
	}
	s.RateLimit(0, 0)
	rec := s.Received("/rest/")
	if len(rec) != 5 {
		t.Fatalf("received %d", len(rec))
	}
	for _, r := range rec {
		if r.Header.Get("Authorization") != "" {
			t.Fatal("credentials recorded")
		}
	}
}

func TestAgentTransitionErrors(t *testing.T) {
	s := newFake(t, jiratest.Config{})
	key := create(t, s, map[string]any{"summary": "x"})
	if _, err := s.Transition(key, "Reopen"); err == nil || !strings.Contains(err.Error(), "Start progress") {
		t.Fatalf("unavailable transition: %v", err)
	}
	if _, err := s.Transition(key, "Resolved"); err != nil { // by target status name
		t.Fatal(err)
	}
	if r, _ := s.Request(key); r.Status != jiratest.StatusResolved {
		t.Fatalf("status %+v", r.Status)
	}
	if _, err := s.AgentComment("SUPP-99", "x", true, ""); err == nil {
		t.Fatal("unknown request")
	}
	if _, err := s.Redeliver("nope"); err == nil {
		t.Fatal("unknown delivery")
	}
}
