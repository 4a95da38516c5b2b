package health_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys/genesystest"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry/telemetrytest"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/health"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

const hookURL = "https://cx.example.com/prod/messagebird/webhook"

// world is every system's wire-level fake with the credentials the secrets fake serves.
type world struct {
	jira *jiratest.Server
	sn   *servicenowtest.Server
	gc   *genesystest.Server
	mb   *messagebirdtest.Server
	tel  *telemetrytest.Server
	env  map[string]string
	sec  *secrets.Cache
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{
		jira: jiratest.New(jiratest.Config{Email: "bot@example.com", APIToken: "tok"}),
		sn:   servicenowtest.New(servicenowtest.Config{Username: "u", Password: "p"}),
		gc:   genesystest.New("gc-id", "gc-secret"),
		mb:   messagebirdtest.New("mb-key", "mb-signing"),
		tel:  telemetrytest.New(),
	}
	w.tel.APIKey = "tel-key"
	for _, c := range []func(){w.jira.Close, w.sn.Close, w.gc.Close, w.mb.Close, w.tel.Close} {
		t.Cleanup(c)
	}
	w.sn.AddUser(servicenowtest.User{UserName: "abel.tuter", FirstName: "Abel", LastName: "Tuter", Phone: "+14155550100"})
	w.sn.AddIncident(servicenowtest.Incident{ShortDescription: "Laptop does not boot"})
	w.mb.SetWebhook(messagebirdtest.Webhook{URL: "http://127.0.0.1:1/unused", PublicURL: hookURL})
	sm := secretstest.New(map[string]string{
		"cxbridge/jira":        `{"email":"bot@example.com","apiToken":"tok"}`,
		"cxbridge/servicenow":  `{"username":"u","password":"p"}`,
		"cxbridge/genesys":     `{"clientId":"gc-id","clientSecret":"gc-secret"}`,
		"cxbridge/messagebird": `{"accessKey":"mb-key","signingKey":"mb-signing"}`,
		"cxbridge/telemetry":   `{"apiKey":"tel-key"}`,
	})
	t.Cleanup(sm.Close)
	w.sec = secrets.New(sm.Client())
	w.env = map[string]string{
		"JIRA_BASE_URL": w.jira.URL(), "JIRA_PROJECTS": "SUPP=1/10",
		"JIRA_FIELD_MAP":              `{"summary":"{{summary}}","description":"{{details}}","customfield_10050":"{{conversationId}}"}`,
		"MESSAGEBIRD_SERVICE_DESK_ID": "1", "MESSAGEBIRD_REQUEST_TYPE_ID": "11",
		"SERVICENOW_BASE_URL":  w.sn.URL(),
		"GENESYS_API_BASE_URL": w.gc.URL(), "GENESYS_LOGIN_BASE_URL": w.gc.URL(), "GENESYS_SECRET_ID": "cxbridge/genesys",
		"TIER_CASCADE": "true", "TIER_L1_QUEUE_ID": "11111111-1111-4111-8111-111111111111",
		"MESSAGEBIRD_BASE_URL": w.mb.URL(), "MESSAGEBIRD_WEBHOOK_URL": hookURL,
		"TELEMETRY_URL": w.tel.URL() + "/v1/support-priority",
	}
	return w
}

func (w *world) check(t *testing.T) health.Report {
	t.Helper()
	r := config.FromMap(w.env)
	cfg := health.LoadConfig(r)
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return health.NewChecker(cfg, w.sec, nil).Run(context.Background())
}

func find(rep health.Report, system, check, target string) health.Result {
	for _, r := range rep.Results {
		if r.System == system && r.Check == check && (target == "" || r.Target == target) {
			return r
		}
	}
	return health.Result{}
}

func dump(rep health.Report) string {
	var b strings.Builder
	for _, r := range rep.Results {
		b.WriteString(string(r.Status) + " " + r.System + "/" + r.Check + " " + r.Target + ": " + r.Detail + " | " + r.Fix + "\n")
	}
	return b.String()
}

func TestEveryCheckPassesOnAHealthyWorld(t *testing.T) {
	w := newWorld(t)
	rep := w.check(t)
	if !rep.OK() || rep.Warnings != 0 {
		t.Fatalf("want every check ok:\n%s", dump(rep))
	}
	// every system, and the checks that prove each function's permissions
	for _, want := range [][2]string{
		{"jira", "authentication"}, {"jira", "service_desk"}, {"jira", "request_type"}, {"jira", "permissions"}, {"jira", "customers"},
		{"servicenow", "authentication"}, {"servicenow", "read_sys_user"}, {"servicenow", "read_incident"},
		{"genesys", "authentication"}, {"genesys", "queue_observations"}, {"genesys", "conversations"}, {"genesys", "routing_priority"}, {"genesys", "participant_attributes"},
		{"messagebird", "authentication"}, {"messagebird", "webhook"}, {"telemetry", "reachability"},
	} {
		if r := find(rep, want[0], want[1], ""); r.Status != health.OK || r.Call == "" || r.CheckedAt.IsZero() {
			t.Errorf("%s/%s: %+v", want[0], want[1], r)
		}
	}
	if r := find(rep, "servicenow", "write_incident", ""); r.Status != health.Skipped {
		t.Errorf("the write probe is opt-in: %+v", r)
	}
	if r := find(rep, "jira", "permissions", "SUPP"); !strings.Contains(r.Call, "mypermissions?permissions=BROWSE_PROJECTS%2CCREATE_ISSUES%2CADD_COMMENTS%2CEDIT_ISSUES") {
		t.Errorf("one mypermissions call with every permission both uses need: %s", r.Call)
	}
	// nothing visible was created anywhere
	if n := w.jira.RequestCount(); n != 0 {
		t.Errorf("jira has %d requests", n)
	}
	if n := len(w.sn.Records("incident")); n != 1 {
		t.Errorf("servicenow has %d incidents; want the seeded one", n)
	}
}

func TestAPermissionLostIsNamedWithItsFix(t *testing.T) {
	w := newWorld(t)
	w.jira.RevokePermission("SUPP", jiratest.PermCreateIssues)
	rep := w.check(t)
	r := find(rep, "jira", "permissions", "SUPP")
	if r.Status != health.Failed || r.HTTPStatus != 200 || !strings.Contains(r.Detail, "CREATE_ISSUES") || !strings.Contains(r.Fix, "Project settings > People") {
		t.Fatalf("%+v\n%s", r, dump(rep))
	}
	if rep.Failed != 1 {
		t.Errorf("only that check fails:\n%s", dump(rep))
	}
	// the metric the alarm watches
	m := observe.NewMetrics("cxbridge")
	health.Emit(observe.WithMetrics(context.Background(), m), rep)
	var buf bytes.Buffer
	_ = m.Flush(&buf, time.Now())
	if !strings.Contains(buf.String(), `"Check":"permissions","Function"`) && !strings.Contains(buf.String(), `"Check":"permissions"`) {
		t.Fatalf("no HealthCheckFailed{jira,permissions}: %s", buf.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var doc map[string]any
		_ = json.Unmarshal([]byte(line), &doc)
		if doc["System"] == "jira" && doc["Check"] == "permissions" && doc["HealthCheckFailed"] != 1.0 {
			t.Errorf("HealthCheckFailed = %v", doc["HealthCheckFailed"])
		}
		if doc["System"] == "jira" && doc["Check"] == "authentication" && doc["HealthCheckFailed"] != 0.0 {
			t.Errorf("a passing check records 0 so its alarm clears: %v", doc)
		}
	}

	w.jira.RestorePermission("SUPP", jiratest.PermCreateIssues)
	if rep := w.check(t); !rep.OK() {
		t.Fatalf("after restoring:\n%s", dump(rep))
	}
}

func TestFailuresOfEverySystem(t *testing.T) {
	w := newWorld(t)
	w.jira.RevokePermission("SUPP", jiratest.PermBrowseProjects)
	w.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: 403})
	w.gc.Fail("/api/v2/routing/conversations/", genesystest.Failure{Status: 403})
	w.mb.SetWebhook(messagebirdtest.Webhook{})
	w.tel.APIKey = "rotated"
	rep := w.check(t)
	for _, c := range []struct{ system, check, target, detail, fix string }{
		{"jira", "service_desk", "SUPP (desk 1 / request type 10)", "HTTP 404", "add the account to the project as an agent"},
		{"servicenow", "read_incident", "incident", "HTTP 403", "read access to the table"},
		{"genesys", "routing_priority", "", "HTTP 403", "Routing > Conversation > Manage"},
		{"messagebird", "webhook", hookURL, "no webhook is registered", "Register the webhook"},
		{"telemetry", "reachability", health.ProbeCustomerDefault, "HTTP 401", "TelemetrySecretId"},
	} {
		r := find(rep, c.system, c.check, c.target)
		if r.Status != health.Failed || !strings.Contains(r.Detail, c.detail) || !strings.Contains(r.Fix, c.fix) {
			t.Errorf("%s/%s: %+v", c.system, c.check, r)
		}
	}
	if r := find(rep, "jira", "request_type", "SUPP (desk 1 / request type 10)"); r.Status != health.Skipped {
		t.Errorf("request type after an unreachable desk: %+v", r)
	}
	if r := find(rep, "servicenow", "read_sys_user", ""); r.Status != health.OK {
		t.Errorf("sys_user is still readable: %+v", r)
	}
}

func TestWrongCredentialsSkipTheRest(t *testing.T) {
	w := newWorld(t)
	w.jira.SetBasicCredentials("bot@example.com", "revoked")
	rep := w.check(t)
	if r := find(rep, "jira", "authentication", ""); r.Status != health.Failed || r.HTTPStatus != 401 || !strings.Contains(r.Fix, "JiraSecretId") {
		t.Fatalf("%+v", r)
	}
	if r := find(rep, "jira", "service_desk", ""); r.Status != health.Skipped {
		t.Errorf("%+v", r)
	}
}

func TestRequestTypeFormProblems(t *testing.T) {
	w := newWorld(t)
	w.jira.AddServiceDesk(jiratest.ServiceDesk{ID: "2", ProjectKey: "BILL", RequestTypes: []jiratest.RequestType{{ID: "20", Name: "Billing",
		Fields: []jiratest.FieldDef{
			{ID: "summary", Name: "Summary", Type: jiratest.FieldText, Required: true},
			{ID: "customfield_10099", Name: "Contract", Type: jiratest.FieldText, Required: true},
		}}}})
	w.env["JIRA_PROJECTS"] = "SUPP=1/10;BILL=2/20;WRONG=1/11"
	w.env["JIRA_FIELD_MAP"] = `{"summary":"{{summary}}"}`
	rep := w.check(t)
	r := find(rep, "jira", "request_type", "BILL (desk 2 / request type 20)")
	if r.Status != health.Failed || !strings.Contains(r.Detail, "requires Contract (customfield_10099)") || !strings.Contains(r.Detail, "labels") {
		t.Errorf("%+v", r)
	}
	if r := find(rep, "jira", "service_desk", "WRONG (desk 1 / request type 11)"); r.Status != health.Failed || !strings.Contains(r.Detail, "which is project SUPP") {
		t.Errorf("%+v", r)
	}
}

func TestServiceNowWriteProbeCleansUp(t *testing.T) {
	w := newWorld(t)
	w.env["HEALTH_SERVICENOW_WRITE_PROBE"] = "true"
	rep := w.check(t)
	r := find(rep, "servicenow", "write_incident", "")
	if r.Status != health.OK || !strings.Contains(r.Detail, "deleted it") {
		t.Fatalf("%+v", r)
	}
	if n := len(w.sn.Records("incident")); n != 1 {
		t.Errorf("the probe left %d incidents; want only the seeded one", n)
	}
}

func TestStoreClaimSaveLast(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	ctx := context.Background()
	s := &health.Store{DB: local.Client(), Table: tables.State}
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	if ok, err := s.Claim(ctx, t0, time.Hour, false); !ok || err != nil {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	if ok, _ := s.Claim(ctx, t0.Add(30*time.Minute), time.Hour, false); ok {
		t.Fatal("not due half an hour later")
	}
	if ok, _ := s.Claim(ctx, t0.Add(30*time.Minute), time.Hour, true); !ok {
		t.Fatal("a forced run always goes")
	}
	if ok, _ := s.Claim(ctx, t0.Add(90*time.Minute), time.Hour, false); !ok {
		t.Fatal("due an hour after the last")
	}
	rep := health.Report{StartedAt: t0, Failed: 1, Results: []health.Result{
		{System: "jira", Check: "permissions", Target: "SUPP", Status: health.Failed, Detail: "lacks CREATE_ISSUES", CheckedAt: t0},
		{System: "jira", Check: "permissions", Target: "OLD", Status: health.OK, CheckedAt: t0},
	}}
	if err := s.Save(ctx, rep); err != nil {
		t.Fatal(err)
	}
	rep.Results = rep.Results[:1]
	if err := s.Save(ctx, rep); err != nil {
		t.Fatal(err)
	}
	run, results, err := s.Last(ctx)
	if err != nil || !run.Finished || run.Failed != 1 || len(results) != 1 || results[0].Detail != "lacks CREATE_ISSUES" {
		t.Fatalf("%+v %+v %v", run, results, err)
	}
}

func TestGaugesSeeOpenBreakersAndOutages(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	ctx := context.Background()
	b := breaker.New(local.Client(), tables.State, breaker.Settings{Name: "servicenow"})
	if err := b.ForceOpen(ctx, "P1 bridge", time.Time{}); err != nil {
		t.Fatal(err)
	}
	m := observe.NewMetrics("cxbridge")
	breakers, outages, err := health.Gauges(observe.WithMetrics(ctx, m), local.Client(), tables.State, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]bool{}
	for _, b := range breakers {
		open[b.Dependency] = b.Open
	}
	if !open["servicenow"] || open["jira"] || len(breakers) != 5 || len(outages) != 2 {
		t.Fatalf("%+v %+v", breakers, outages)
	}
	var buf bytes.Buffer
	_ = m.Flush(&buf, time.Now())
	if !strings.Contains(buf.String(), `"BreakerOpen":1,"Dependency":"servicenow"`) || !strings.Contains(buf.String(), `"OutageModeActive":0`) {
		t.Fatalf("%s", buf.String())
	}
}

// An outage cxbridge declared itself raises OutageAutomatic (its alarm pages the on-call) until
// the on-call confirms it; outage mode is on all along.
func TestGaugesSeeAnAutomaticOutageUntilConfirmed(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	ctx := context.Background()
	o := &escalation.Outage{DB: local.Client(), Table: tables.State, CacheFor: -1}
	topic := escalation.Topic{Fields: []string{"wrapUpCode"}, Values: []string{"E-mail not working"}}
	if _, won, err := o.Declare(ctx, escalation.Declaration{Target: "servicenow", Cause: escalation.CauseRate, Active: true, Topic: topic,
		Why: "20 escalations about it", Quiet: 30 * time.Minute, By: "create-escalation"}); err != nil || !won {
		t.Fatalf("declare: %v %v", won, err)
	}
	gauges := func() (string, []health.Outage) {
		m := observe.NewMetrics("cxbridge")
		_, outages, err := health.Gauges(observe.WithMetrics(ctx, m), local.Client(), tables.State, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_ = m.Flush(&buf, time.Now())
		return buf.String(), outages
	}
	out, outages := gauges()
	if !strings.Contains(out, `"OutageAutomatic":1,"OutageModeActive":1,"Target":"servicenow"`) || !strings.Contains(out, `"OutageAutomatic":0,"OutageModeActive":0,"Target":"jira"`) {
		t.Fatalf("%s", out)
	}
	sn := outages[1]
	if !sn.Automatic || !sn.MasterPending || sn.Topic != `wrapUpCode "E-mail not working"` || sn.Why != "20 escalations about it" || sn.EndsAt.IsZero() {
		t.Fatalf("%+v", sn)
	}
	if _, err := o.Confirm(ctx, "servicenow", "oncall", ""); err != nil {
		t.Fatal(err)
	}
	out, outages = gauges()
	if !strings.Contains(out, `"OutageAutomatic":0,"OutageModeActive":1,"Target":"servicenow"`) || !outages[1].Confirmed || !outages[1].EndsAt.IsZero() {
		t.Fatalf("after confirm: %s %+v", out, outages[1])
	}
}
