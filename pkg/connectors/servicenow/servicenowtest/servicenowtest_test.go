package servicenowtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
)

type call struct {
	method, path string
	query        url.Values
	body         string
	header       http.Header
	noAuth       bool
	bearer       string
}

type answer struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func do(t *testing.T, s *servicenowtest.Server, c call) answer {
	t.Helper()
	u := s.URL() + c.path
	if c.query != nil {
		u += "?" + c.query.Encode()
	}
	req, err := http.NewRequest(c.method, u, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	switch {
	case c.bearer != "":
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	case !c.noAuth:
		req.SetBasicAuth("admin", "pw")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &a.body)
	return a
}

func results(t *testing.T, a answer) []map[string]any {
	t.Helper()
	rs, ok := a.body["result"].([]any)
	if !ok {
		t.Fatalf("no result array: %d %s", a.status, a.raw)
	}
	out := make([]map[string]any, len(rs))
	for i, r := range rs {
		out[i] = r.(map[string]any)
	}
	return out
}

func list(t *testing.T, s *servicenowtest.Server, table string, q url.Values) []map[string]any {
	t.Helper()
	a := do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/" + table, query: q})
	if a.status != http.StatusOK {
		t.Fatalf("list %v: %d %s", q, a.status, a.raw)
	}
	return results(t, a)
}

func newServer(t *testing.T, cfg servicenowtest.Config) *servicenowtest.Server {
	t.Helper()
	if cfg.Username == "" {
		cfg.Username, cfg.Password = "admin", "pw"
	}
	s := servicenowtest.New(cfg)
	t.Cleanup(s.Close)
	return s
}

func TestListVersionsCountsFieldsAndLimit(t *testing.T) {
	s := newServer(t, servicenowtest.Config{})
	for i := 0; i < 5; i++ {
		s.AddUser(servicenowtest.User{FirstName: "U", LastName: strconv.Itoa(i), Phone: "555-010" + strconv.Itoa(i)})
	}
	a := do(t, s, call{method: http.MethodGet, path: "/api/now/table/sys_user", query: url.Values{"sysparm_query": {"phone=nope"}}})
	if a.status != http.StatusNotFound || a.body["status"] != "failure" || !strings.Contains(a.raw, `"message":"No Record found"`) {
		t.Errorf("v1 empty: %d %s", a.status, a.raw)
	}
	a = do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/sys_user", query: url.Values{"sysparm_query": {"phone=nope"}}})
	if a.status != http.StatusOK || strings.TrimSpace(a.raw) != `{"result":[]}` {
		t.Errorf("v2 empty: %d %s", a.status, a.raw)
	}
	a = do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/sys_user", query: url.Values{
		"sysparm_query": {"phoneSTARTSWITH555^ORDERBYDESClast_name"}, "sysparm_limit": {"2"}, "sysparm_offset": {"1"},
		"sysparm_fields": {"last_name,no_such_field,sys_id"},
	}})
	rs := results(t, a)
	if a.header.Get("X-Total-Count") != "5" || len(rs) != 2 || rs[0]["last_name"] != "3" || rs[1]["last_name"] != "2" {
		t.Errorf("page: %s %s", a.header.Get("X-Total-Count"), a.raw)
	}
	if _, ok := rs[0]["no_such_field"]; ok || len(rs[0]) != 2 {
		t.Errorf("invalid sysparm_fields entry not ignored: %v", rs[0])
	}
	a = do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/sys_user", query: url.Values{"sysparm_no_count": {"true"}, "sysparm_limit": {"1"}}})
	if a.header.Get("X-Total-Count") != "" {
		t.Error("X-Total-Count with sysparm_no_count=true")
	}
	if a := do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/u_nothing"}); a.status != http.StatusBadRequest {
		t.Errorf("unknown table: %d %s", a.status, a.raw)
	}
}

func TestReferenceAndDisplayShapes(t *testing.T) {
	s := newServer(t, servicenowtest.Config{DisplayZone: time.FixedZone("CET", 3600)})
	abel := s.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter", Phone: "+1 415 555 0100"})
	created := time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC)
	id := s.AddIncident(servicenowtest.Incident{CallerID: abel, ShortDescription: "x", State: "2", Impact: "1", Urgency: "1", CreatedOn: created})
	empty := s.AddIncident(servicenowtest.Incident{ShortDescription: "no caller"})
	get := func(sysID string, q url.Values) map[string]any {
		q.Set("sysparm_fields", "caller_id,state,priority,sys_created_on,caller_id.phone,work_notes")
		a := do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/incident/" + sysID, query: q})
		if a.status != http.StatusOK {
			t.Fatalf("%d %s", a.status, a.raw)
		}
		return a.body["result"].(map[string]any)
	}
	link := s.URL() + "/api/now/table/sys_user/" + abel

	r := get(id, url.Values{})
	if c := r["caller_id"].(map[string]any); c["value"] != abel || c["link"] != link || len(c) != 2 {
		t.Errorf("default reference: %v", c)
	}
	if r["state"] != "2" || r["priority"] != "1" || r["sys_created_on"] != "2026-11-22 23:30:00" || r["caller_id.phone"] != "+1 415 555 0100" || r["work_notes"] != "" {
		t.Errorf("actual values: %v", r)
	}
	if r := get(empty, url.Values{}); r["caller_id"] != "" {
		t.Errorf("empty reference: %v", r["caller_id"])
	}
	if r := get(id, url.Values{"sysparm_exclude_reference_link": {"true"}}); r["caller_id"] != abel {
		t.Errorf("excluded link: %v", r["caller_id"])
	}
	r = get(id, url.Values{"sysparm_display_value": {"true"}})
	if c := r["caller_id"].(map[string]any); c["display_value"] != "Abel Tuter" || c["link"] != link {
		t.Errorf("display reference: %v", c)
	}
	if r["state"] != "In Progress" || r["priority"] != "1 - Critical" || r["sys_created_on"] != "2026-11-23 00:30:00" {
		t.Errorf("display values: %v", r)
	}
	r = get(id, url.Values{"sysparm_display_value": {"all"}, "sysparm_exclude_reference_link": {"true"}})
	if st := r["state"].(map[string]any); st["value"] != "2" || st["display_value"] != "In Progress" {
		t.Errorf("all state: %v", st)
	}
	if c := r["caller_id"].(map[string]any); c["value"] != abel || c["display_value"] != "Abel Tuter" || c["link"] != nil {
		t.Errorf("all reference: %v", c)
	}
	if ts := r["sys_created_on"].(map[string]any); ts["value"] != "2026-11-22 23:30:00" || ts["display_value"] != "2026-11-23 00:30:00" {
		t.Errorf("all time: %v", ts)
	}
}

func TestEvaluator(t *testing.T) {
	s := newServer(t, servicenowtest.Config{})
	abel := s.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter", Phone: "+1 415 555 0100", MobilePhone: "+1 415 555 0177"})
	beth := s.AddUser(servicenowtest.User{FirstName: "Beth", LastName: "Anglin", Phone: "+44 20 7946 0958"})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(caller, desc, state, impact string, h int) string {
		return s.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: desc, State: state, Impact: impact, CreatedOn: base, UpdatedOn: base.Add(time.Duration(h) * time.Hour)})
	}
	a1 := mk(abel, "VPN down", "1", "1", 1)
	a2 := mk(abel, "Email slow", "2", "2", 3)
	a3 := mk(abel, "Printer", "7", "3", 5)
	b1 := mk(beth, "VPN again", "1", "2", 4)
	mk("", "orphan", "1", "3", 2)

	ids := func(q string) string {
		t.Helper()
		var out []string
		for _, r := range list(t, s, "incident", url.Values{"sysparm_query": {q}, "sysparm_fields": {"sys_id"}}) {
			out = append(out, r["sys_id"].(string))
		}
		return strings.Join(out, ",")
	}
	join := func(v ...string) string { return strings.Join(v, ",") }
	for q, want := range map[string]string{
		"caller_id.phoneLIKE0100^ORcaller_id.mobile_phoneLIKE0100^stateIN1,2,3^ORDERBYDESCsys_updated_on": join(a2, a1),
		"caller_id.mobile_phoneENDSWITH0177":                              join(a1, a2, a3),
		"caller_id=" + beth:                                               b1,
		"caller_idLIKEAbel^state!=7":                                      join(a1, a2),
		"short_descriptionSTARTSWITHVPN^ORDERBYsys_updated_on":            join(a1, b1),
		"short_descriptionNOT LIKEVPN^caller_idISNOTEMPTY":                join(a2, a3),
		"caller_idISEMPTY":                                                ids("short_description=orphan"),
		"stateNOT IN1,2^EQ":                                               a3,
		"impact=1^NQimpact=2^caller_id=" + beth:                           join(a1, b1),
		"impact<=2^ORDERBYimpact^ORDERBYDESCsys_updated_on":               join(a1, b1, a2),
		"sys_updated_on>=2026-01-01 04:00:00^ORDERBYsys_updated_on":       join(b1, a3),
		"caller_id.first_name=Abel^caller_id.last_name=Tuter^active=true": join(a1, a2),
		"priority=3^ORpriority=2":                                         a1, // impact 1 x default urgency 3 = 3; the others are 4
	} {
		if got := ids(q); got != want {
			t.Errorf("%s\n got %s\nwant %s", q, got, want)
		}
	}
	// Invalid terms are ignored (every row), or make the query return nothing in strict mode.
	all := ids("")
	for _, q := range []string{"nosuchfield=1", "short_descriptionCONTAINSx", "caller_id.nosuch=1", "short_description.name=1", "=x", "Short_description=VPN down"} {
		if got := ids(q); got != all {
			t.Errorf("%q: got %s, want every row", q, got)
		}
	}
	if got := ids("short_description=VPN down^ORnosuch=1"); got != a1 {
		t.Errorf("invalid OR alternative not dropped: %s", got)
	}
	s.SetStrictQueries(true)
	if got := ids("short_description=VPN down^ORnosuch=1"); got != "" {
		t.Errorf("strict: %s", got)
	}
	if got := ids("short_description=VPN down"); got != a1 {
		t.Errorf("strict valid query: %s", got)
	}
}

func TestWritesAndJournal(t *testing.T) {
	s := newServer(t, servicenowtest.Config{})
	abel := s.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter"})
	post := func(body string, h http.Header) answer {
		return do(t, s, call{method: http.MethodPost, path: "/api/now/table/incident", body: body, header: h,
			query: url.Values{"sysparm_exclude_reference_link": {"true"}}})
	}
	a := post(`{"caller_id":"`+abel+`","short_description":"one","impact":1,"urgency":"2","priority":"5","number":"INC9","sys_id":"x","u_unknown":"y","work_notes":"first note","comments":"visible"}`, nil)
	if a.status != http.StatusCreated {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	r := a.body["result"].(map[string]any)
	id := r["sys_id"].(string)
	if len(id) != 32 || r["number"] != "INC0010001" || r["priority"] != "2" || r["impact"] != "1" || r["state"] != "1" || r["active"] != "true" ||
		r["work_notes"] != "" || r["comments"] != "" || r["caller_id"] != abel || r["sys_mod_count"] != "0" || r["sys_created_by"] != "admin" {
		t.Errorf("created %v", r)
	}
	if _, ok := r["u_unknown"]; ok {
		t.Error("unknown field stored")
	}
	if a.header.Get("Location") != s.URL()+"/api/now/table/incident/"+id {
		t.Errorf("Location %q", a.header.Get("Location"))
	}
	if _, err := time.Parse("2006-01-02 15:04:05", r["sys_created_on"].(string)); err != nil {
		t.Errorf("sys_created_on %q", r["sys_created_on"])
	}
	a = post(`{"short_description":"two"}`, http.Header{"X-No-Response-Body": {"true"}})
	if a.status != http.StatusCreated || a.raw != "" {
		t.Errorf("X-no-response-body: %d %q", a.status, a.raw)
	}
	recs := s.Records("incident")
	if len(recs) != 2 || recs[1]["number"] != "INC0010002" || recs[1]["priority"] != "4" {
		t.Errorf("records %v", recs)
	}

	a = do(t, s, call{method: http.MethodPatch, path: "/api/now/v2/table/incident/" + id, body: `{"work_notes":"second note","state":"7","impact":"3"}`})
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	r = a.body["result"].(map[string]any)
	if r["state"] != "7" || r["active"] != "false" || r["priority"] != "4" || r["sys_mod_count"] != "1" {
		t.Errorf("patched %v", r)
	}
	j := s.Journal("incident", id)
	if len(j) != 3 || j[0].Element != "comments" || j[1].Value != "first note" || j[2].Value != "second note" || j[2].CreatedBy != "admin" {
		t.Errorf("journal %+v", j)
	}
	if a := do(t, s, call{method: http.MethodPut, path: "/api/now/table/incident/" + id, body: `{"short_description":"put"}`}); a.status != http.StatusOK {
		t.Errorf("PUT %d", a.status)
	}
	if a := do(t, s, call{method: http.MethodPatch, path: "/api/now/table/incident/" + strings.Repeat("0", 32), body: `{}`}); a.status != http.StatusNotFound {
		t.Errorf("PATCH missing %d", a.status)
	}
	if a := do(t, s, call{method: http.MethodPost, path: "/api/now/table/incident", body: `not json`}); a.status != http.StatusBadRequest || a.body["status"] != "failure" {
		t.Errorf("bad body %d %s", a.status, a.raw)
	}
	if a := do(t, s, call{method: http.MethodDelete, path: "/api/now/table/incident/" + id}); a.status != http.StatusNoContent {
		t.Errorf("DELETE %d", a.status)
	}
	if _, ok := s.Record("incident", id); ok {
		t.Error("deleted record still there")
	}
	if got := s.Received("/api/now/table/incident"); len(got) != 6 || got[0].Query.Get("sysparm_exclude_reference_link") != "true" || !strings.Contains(string(got[0].Body), "first note") || got[0].Auth != "basic" {
		t.Errorf("received %d: %+v", len(got), got[0])
	}
	if got := s.Received("/api/now/table/incident")[0].Header.Get("Authorization"); got != "" {
		t.Error("credentials kept in Received")
	}
}

func TestAuthAndTokens(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newServer(t, servicenowtest.Config{ClientID: "cid", ClientSecret: "cs", Now: clock})
	tokenReq := func(form url.Values) answer {
		return do(t, s, call{method: http.MethodPost, path: "/oauth_token.do", body: form.Encode(), noAuth: true,
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}})
	}
	a := do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/sys_user", noAuth: true})
	if a.status != http.StatusUnauthorized || strings.TrimSpace(a.raw) != `{"error":{"detail":"Required to provide Auth information","message":"User is not authenticated"},"status":"failure"}` {
		t.Errorf("no auth: %d %s", a.status, a.raw)
	}
	if a := tokenReq(url.Values{"grant_type": {"client_credentials"}, "client_id": {"cid"}, "client_secret": {"cs"}}); a.status != http.StatusUnauthorized {
		t.Errorf("client_credentials while the property is off: %d %s", a.status, a.raw)
	}
	if a := tokenReq(url.Values{"grant_type": {"password"}, "client_id": {"cid"}, "client_secret": {"bad"}, "username": {"admin"}, "password": {"pw"}}); a.status != http.StatusUnauthorized {
		t.Errorf("bad client secret: %d", a.status)
	}
	a = tokenReq(url.Values{"grant_type": {"password"}, "client_id": {"cid"}, "client_secret": {"cs"}, "username": {"admin"}, "password": {"pw"}})
	tok, _ := a.body["access_token"].(string)
	if a.status != http.StatusOK || tok == "" || a.body["expires_in"] != float64(1799) || a.body["token_type"] != "Bearer" || a.body["refresh_token"] == nil {
		t.Fatalf("password grant: %d %s", a.status, a.raw)
	}
	if a := do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/sys_user", bearer: tok}); a.status != http.StatusOK {
		t.Errorf("with token: %d", a.status)
	}
	mu.Lock()
	now = now.Add(1800 * time.Second)
	mu.Unlock()
	if a := do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/sys_user", bearer: tok}); a.status != http.StatusUnauthorized {
		t.Errorf("expired token: %d", a.status)
	}
	if got := s.Received("/api/"); got[1].Auth != "bearer" || got[1].Header.Get("Authorization") != "" {
		t.Errorf("received %+v", got[1])
	}
	if s.TokensIssued() != 1 {
		t.Errorf("issued %d", s.TokensIssued())
	}
}

func TestRateLimitLatencyAndFailures(t *testing.T) {
	s := newServer(t, servicenowtest.Config{})
	s.RateLimit(2, time.Hour)
	get := func() answer { return do(t, s, call{method: http.MethodGet, path: "/api/now/v2/table/sys_user"}) }
	a := get()
	reset, _ := strconv.ParseInt(a.header.Get("X-RateLimit-Reset"), 10, 64)
	if a.status != http.StatusOK || a.header.Get("X-RateLimit-Limit") != "2" || a.header.Get("X-RateLimit-Rule") != servicenowtest.RateLimitRuleID ||
		reset < time.Now().Add(59*time.Minute).Unix() || a.header.Get("X-RateLimit-Remaining") != "" {
		t.Errorf("counted answer headers %v", a.header)
	}
	get()
	a = get()
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" || a.body["status"] != "failure" ||
		!strings.Contains(a.raw, `"message":"Rate limit exceeded"`) || !strings.Contains(a.raw, "Rate limit of 2 requests per hour") {
		t.Errorf("429: %d %v %s", a.status, a.header, a.raw)
	}
	s.RateLimit(0, 0)

	s.Fail("/api/now/v2/table/sys_user", servicenowtest.Failure{Status: 503, RetryAfter: 3, Times: 2})
	s.Fail("/api/now/v2/table", servicenowtest.Failure{Status: 500})
	for i := 0; i < 2; i++ {
		if a := get(); a.status != 503 || a.header.Get("Retry-After") != "3" || a.body["status"] != "failure" {
			t.Errorf("injected %d: %d %v", i, a.status, a.header)
		}
	}
	if a := get(); a.status != 500 {
		t.Errorf("shorter prefix after the longer one ran out: %d", a.status)
	}
	s.ClearFailures()
	if a := get(); a.status != 200 {
		t.Errorf("after ClearFailures: %d", a.status)
	}

	s.SetLatency(40 * time.Millisecond)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); get() }()
	}
	wg.Wait()
	if d := time.Since(start); d < 40*time.Millisecond || d > 400*time.Millisecond {
		t.Errorf("4 concurrent requests with 40 ms latency took %v", d)
	}
	if n := s.Calls("/api/now/v2/table/sys_user"); n != 11 {
		t.Errorf("calls %d", n)
	}
}
