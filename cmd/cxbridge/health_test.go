package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/health"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// localWorld is the local stack (DynamoDB Local with the template's tables, the Secrets
// Manager fake, every system's wire-level fake) and integration-health's environment in it,
// exactly as `make run` gives it to the function.
func localWorld(t *testing.T) (*localstack.Stack, map[string]string) {
	t.Helper()
	st, err := localstack.Start(t.Context(), localstack.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	st.ConnectWebhooks("http://127.0.0.1:9") // registers the MessageBird webhook the check looks for
	env, err := st.Env("IntegrationHealthFunction")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, v)
		}
	}
	return st, env
}

func runWith(env map[string]string, args ...string) (string, error) {
	var out strings.Builder
	err := run(context.Background(), args, &out, func(k string) string { return env[k] })
	return out.String(), err
}

// One local stack for both commands: each start is a DynamoDB Local JVM.
func TestOnCallCommandsAgainstTheLocalStack(t *testing.T) {
	st, env := localWorld(t)
	t.Run("status of a quiet stack", func(t *testing.T) {
		out, err := runWith(env, "status")
		if err != nil || !strings.Contains(out, "no run recorded yet") || !strings.Contains(out, "queued 0") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("health", func(t *testing.T) { testHealth(t, st, env) })
	t.Run("status", func(t *testing.T) { testStatus(t, st, env) })
}

func testHealth(t *testing.T, st *localstack.Stack, env map[string]string) {
	out, err := runWith(env, "health")
	if err != nil {
		t.Fatalf("a healthy local stack: %v\n%s", err, out)
	}
	for _, want := range []string{"jira", "servicenow", "genesys", "messagebird", "telemetry", "permissions", "0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The Jira service account loses a permission: health names it, with the fix, and fails.
	st.Jira().RevokePermission(jiratest.DefaultProjectKey, jiratest.PermAddComments)
	out, err = runWith(env, "health")
	if err == nil || !strings.Contains(err.Error(), "1 integration-health check(s) failed") {
		t.Fatalf("want a failure: %v\n%s", err, out)
	}
	if !strings.Contains(out, "FAILED") || !strings.Contains(out, "ADD_COMMENTS") || !strings.Contains(out, "fix: In Jira, Project settings > People for SUPP") {
		t.Fatalf("%s", out)
	}
	// --json for scripts
	out, err = runWith(env, "health", "--json")
	var rep health.Report
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil || err == nil || rep.Failed != 1 {
		t.Fatalf("%v %v\n%s", jerr, err, out)
	}

	// The same configuration from a file, as `make run` writes it.
	file := filepath.Join(t.TempDir(), "health.env")
	var lines []string
	for k, v := range env {
		lines = append(lines, k+"="+v)
	}
	sort.Strings(lines)
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st.Jira().RestorePermission(jiratest.DefaultProjectKey, jiratest.PermAddComments)
	if out, err := runWith(map[string]string{}, "health", "--env-file", file); err != nil {
		t.Fatalf("--env-file: %v\n%s", err, out)
	}
	if _, err := runWith(map[string]string{}, "health"); err == nil {
		t.Fatal("no configuration at all must be a usage error")
	}
}

func testStatus(t *testing.T, st *localstack.Stack, env map[string]string) {
	ctx := context.Background()
	db := st.DynamoDB.Client()
	table := st.Tables.State

	// The state an on-call meets at 3 a.m.: ServiceNow's breaker forced open with a master
	// declared, an escalation waiting, one failed, and a failed permission check.
	if err := breaker.New(db, table, breaker.Settings{Name: "servicenow"}).ForceOpen(ctx, "P1 bridge", time.Time{}); err != nil {
		t.Fatal(err)
	}
	outage := &escalation.Outage{DB: db, Table: table, CacheFor: -1}
	if err := outage.SetFlag(ctx, escalation.Flag{Target: "servicenow", Active: true, Master: escalation.Master{Key: "INC0010001"}, Reason: "e-mail down", SetBy: "oncall"}); err != nil {
		t.Fatal(err)
	}
	ob := &escalation.Outbox{DB: db, Table: table}
	accepted := time.Now().Add(-25 * time.Minute)
	for i, id := range []string{"e1", "e2"} {
		if err := ob.Enqueue(ctx, escalation.Item{Escalation: escalation.Escalation{ID: id, Target: "jira", Trigger: "vip", ConversationID: "c-" + id},
			CreatedAt: accepted.Add(time.Duration(i) * time.Minute), Due: time.Now().Add(time.Minute)}, 24*time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := ob.Fail(ctx, escalation.Item{Escalation: escalation.Escalation{ID: "e3", Target: "jira"}, Reason: "permission_denied"}); err != nil {
		t.Fatal(err)
	}
	hs := &health.Store{DB: db, Table: table}
	now := time.Now()
	if _, err := hs.Claim(ctx, now, time.Hour, true); err != nil {
		t.Fatal(err)
	}
	if err := hs.Save(ctx, health.Report{StartedAt: now, Failed: 1, Results: []health.Result{
		{System: "jira", Check: "permissions", Target: "SUPP", Status: health.Failed, HTTPStatus: 200, Detail: "the integration account lacks ADD_COMMENTS in project SUPP", Fix: "give it back", CheckedAt: now},
		{System: "jira", Check: "authentication", Status: health.OK, HTTPStatus: 200, Detail: "signed in", CheckedAt: now},
	}}); err != nil {
		t.Fatal(err)
	}

	out, err := runWith(env, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"servicenow   CLOSED  yes", "forced open: P1 bridge",
		"servicenow  ON: every escalation is linked to INC0010001 (set by oncall", "reason: e-mail down",
		"queued 2, oldest accepted", "(25m", "failed 1 (cxbridge escalations failed",
		"last run", "2 checks, 1 failed", "FAILED", "ADD_COMMENTS", "fix: give it back",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, err = runWith(env, "status", "--json")
	var s Status
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	open := map[string]bool{}
	for _, b := range s.Breakers {
		open[b.Dependency] = b.Open
	}
	if !open["servicenow"] || open["jira"] || s.Outbox.Queued != 2 || s.Outbox.Failed != 1 || len(s.Health.Results) != 2 || !s.Outages[1].Active {
		t.Fatalf("%+v", s)
	}
}
