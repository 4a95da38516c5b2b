package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

type world struct {
	t      *testing.T
	env    map[string]string
	state  *escalation.Outage
	outbox *escalation.Outbox
	sn     *servicenowtest.Server
	master string // sys_id of the seeded master incident
}

// newWorld points the CLI, through the real AWS SDK, at DynamoDB Local and a Secrets Manager
// fake, and ServiceNow at its fake.
func newWorld(t *testing.T) *world {
	local, tables := dynamotest.ForTest(t)
	sn := servicenowtest.New(servicenowtest.Config{Username: "u", Password: "p"})
	t.Cleanup(sn.Close)
	sm := secretstest.New(map[string]string{"cxbridge/servicenow": `{"username":"u","password":"p"}`})
	t.Cleanup(sm.Close)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_DYNAMODB": local.Endpoint(), "AWS_ENDPOINT_URL_SECRETS_MANAGER": sm.URL(),
		"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1",
	} {
		t.Setenv(k, v)
	}
	master := sn.AddIncident(servicenowtest.Incident{ShortDescription: "E-mail is down"})
	return &world{t: t, sn: sn, master: master,
		env:    map[string]string{"STATE_TABLE": tables.State, "SERVICENOW_BASE_URL": sn.URL(), "USER": "oncall"},
		state:  &escalation.Outage{DB: local.Client(), Table: tables.State, CacheFor: -1},
		outbox: &escalation.Outbox{DB: local.Client(), Table: tables.State},
	}
}

func (w *world) run(args ...string) (string, error) {
	var out bytes.Buffer
	err := run(context.Background(), args, &out, func(k string) string { return w.env[k] })
	return out.String(), err
}

func TestOutageOnStatusOff(t *testing.T) {
	w := newWorld(t)
	out, err := w.run("outage", "on", "--target", "servicenow", "--master", "INC0010001", "--message", "E-mail is down; noted.", "--reason", "P1 bridge open")
	if err != nil || !strings.Contains(out, "servicenow outage mode ON") || !strings.Contains(out, "INC0010001") {
		t.Fatalf("%s %v", out, err)
	}
	// The functions read exactly this: active, the master with its sys_id, the message.
	f, err := w.state.Flag(context.Background(), "servicenow")
	if err != nil || !f.Active || f.Master.Key != "INC0010001" || f.Master.SysID != w.master || f.Message != "E-mail is down; noted." || f.SetBy != "oncall" {
		t.Fatalf("flag %+v %v", f, err)
	}
	out, err = w.run("outage", "status")
	if err != nil || !strings.Contains(out, "servicenow  outage mode ON, master INC0010001 (set by oncall") || !strings.Contains(out, "reason: P1 bridge open") ||
		!strings.Contains(out, "jira        outage mode off") || !strings.Contains(out, "breaker CLOSED") {
		t.Fatalf("status:\n%s %v", out, err)
	}
	out, err = w.run("outage", "off", "--target", "servicenow")
	if err != nil || !strings.Contains(out, "OFF") {
		t.Fatalf("%s %v", out, err)
	}
	if f, _ := w.state.Flag(context.Background(), "servicenow"); f.Master.Key != "" {
		t.Fatalf("still on: %+v", f)
	}
	if out, _ := w.run("outage", "off", "--target", "servicenow"); !strings.Contains(out, "was not on") {
		t.Fatalf("%s", out)
	}
}

func TestOutageOnRefusesAMasterThatDoesNotExist(t *testing.T) {
	w := newWorld(t)
	out, err := w.run("outage", "on", "--target", "servicenow", "--master", "INC0099999")
	if err == nil || !strings.Contains(err.Error(), "INC0099999") || !strings.Contains(err.Error(), "--no-verify") {
		t.Fatalf("%s %v", out, err)
	}
	if f, _ := w.state.Flag(context.Background(), "servicenow"); f.Master.Key != "" {
		t.Fatalf("a master that could not be checked was set: %+v", f)
	}
	// --no-verify sets it anyway; the redrive looks the sys_id up later
	if out, err := w.run("outage", "on", "--target", "servicenow", "--master", "INC0099999", "--no-verify"); err != nil || !strings.Contains(out, "not checked") {
		t.Fatalf("%s %v", out, err)
	}
}

func TestStandbyMasterAndExpiry(t *testing.T) {
	w := newWorld(t)
	if out, err := w.run("outage", "on", "--target", "jira", "--master", "SUPP-100", "--standby", "--for", "1h"); err != nil || !strings.Contains(out, "STANDBY") || !strings.Contains(out, "master not checked") {
		t.Fatalf("%s %v", out, err)
	}
	f, _ := w.state.Flag(context.Background(), "jira")
	if f.Active || f.Master.Key != "SUPP-100" || time.Until(f.Until) < 59*time.Minute {
		t.Fatalf("%+v", f)
	}
}

func TestEscalationsFailedAndRetry(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	e := escalation.Escalation{ID: "0123456789abcdef01234567", ConversationID: "conv-1", Trigger: escalation.VIP, Target: "jira"}
	if err := w.outbox.Fail(ctx, escalation.Item{Escalation: e, CreatedAt: time.Now(), Reason: escalation.ReasonPermissionDenied, LastError: "jira create request: HTTP 403"}); err != nil {
		t.Fatal(err)
	}
	out, err := w.run("escalations", "failed")
	if err != nil || !strings.Contains(out, e.ID) || !strings.Contains(out, "permission_denied") || !strings.Contains(out, "HTTP 403") {
		t.Fatalf("%s %v", out, err)
	}
	if out, err := w.run("escalations", "retry", e.ID); err != nil || !strings.Contains(out, "queued again") {
		t.Fatalf("%s %v", out, err)
	}
	out, _ = w.run("escalations", "queued")
	if !strings.Contains(out, e.ID) {
		t.Fatalf("%s", out)
	}
	if out, _ := w.run("escalations", "failed"); !strings.Contains(out, "no failed escalations") {
		t.Fatalf("%s", out)
	}
}

func TestUsage(t *testing.T) {
	w := newWorld(t)
	for _, args := range [][]string{
		{}, {"outage"}, {"outage", "on", "--master", "X"}, {"outage", "on", "--target", "zendesk", "--master", "X"},
		{"outage", "on", "--target", "jira"}, {"escalations", "retry"}, {"outage", "off", "--target", "jira", "extra"},
	} {
		_, err := w.run(args...)
		var u usageError
		if !errors.As(err, &u) {
			t.Errorf("%v: %v; want a usage error", args, err)
		}
	}
	delete(w.env, "STATE_TABLE")
	if _, err := w.run("outage", "status"); err == nil || !strings.Contains(err.Error(), "STATE_TABLE") {
		t.Fatalf("%v", err)
	}
}

// The on-call meets an outage cxbridge declared: outage status and status say it is automatic,
// why, what it links and when it ends; confirm keeps it, replace names their own master (checked
// in ServiceNow), end turns it off.
func TestAutomaticOutageConfirmReplaceEnd(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	topic := escalation.Topic{Fields: []string{"wrapUpCode"}, Values: []string{"E-mail not working"}}
	if _, won, err := w.state.Declare(ctx, escalation.Declaration{Target: "servicenow", Cause: escalation.CauseRate, Active: true, Topic: topic,
		Why: `20 escalations to ServiceNow about wrapUpCode "E-mail not working" within 10 minute(s)`, Quiet: 30 * time.Minute, By: "create-escalation"}); err != nil || !won {
		t.Fatalf("declare: %v %v", won, err)
	}
	out, err := w.run("outage", "status")
	for _, want := range []string{"servicenow  outage mode ON (automatic), master pending", "declared automatically by create-escalation",
		`20 escalations to ServiceNow about wrapUpCode "E-mail not working"`, `links escalations about wrapUpCode "E-mail not working"`,
		"master pending: escalation-redrive creates it when servicenow answers", "NOT CONFIRMED: ends by itself at", "cxbridge outage confirm|replace --master <key>|end --target servicenow"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("outage status lacks %q:\n%s %v", want, out, err)
		}
	}
	out, err = w.run("status")
	if err != nil || !strings.Contains(out, "servicenow  ON, AUTOMATIC: master pending") || !strings.Contains(out, "NOT CONFIRMED") {
		t.Fatalf("status:\n%s %v", out, err)
	}
	if out, err := w.run("outage", "confirm", "--target", "jira"); err == nil || !strings.Contains(err.Error(), "no automatic outage") {
		t.Fatalf("confirm without an outage: %s %v", out, err)
	}
	out, err = w.run("outage", "confirm", "--target", "servicenow", "--message", "E-mail is down; noted.")
	if err != nil || !strings.Contains(out, "CONFIRMED") || !strings.Contains(out, "pending") {
		t.Fatalf("confirm: %s %v", out, err)
	}
	f, _ := w.state.Flag(ctx, "servicenow")
	if !f.Confirmed || f.ConfirmedBy != "oncall" || f.Message != "E-mail is down; noted." {
		t.Fatalf("after confirm: %+v", f)
	}
	if out, err := w.run("outage", "replace", "--target", "servicenow", "--master", "INC0099999"); err == nil {
		t.Fatalf("replace with a master that does not exist: %s", out)
	}
	out, err = w.run("outage", "replace", "--target", "servicenow", "--master", "INC0010001")
	if err != nil || !strings.Contains(out, "now linked to INC0010001") {
		t.Fatalf("replace: %s %v", out, err)
	}
	f, _ = w.state.Flag(ctx, "servicenow")
	rec, _, _ := w.state.Record(ctx, "servicenow", f.OutageID)
	if f.Pending || f.Master.Key != "INC0010001" || f.Master.SysID != w.master || rec.Master.Key != "INC0010001" || rec.CreatedBy != "oncall" {
		t.Fatalf("after replace: flag %+v record %+v", f, rec)
	}
	if out, _ := w.run("outage", "status"); !strings.Contains(out, "confirmed by oncall") || !strings.Contains(out, "master INC0010001") {
		t.Fatalf("status after replace:\n%s", out)
	}
	out, err = w.run("outage", "end", "--target", "servicenow")
	if err != nil || !strings.Contains(out, "OFF") {
		t.Fatalf("end: %s %v", out, err)
	}
	if f, _ := w.state.Flag(ctx, "servicenow"); f.Set(time.Now()) {
		t.Fatalf("still on: %+v", f)
	}
	if rec, _, _ := w.state.Record(ctx, "servicenow", f.OutageID); rec.EndedBy != "oncall" {
		t.Fatalf("record after end: %+v", rec)
	}
}
