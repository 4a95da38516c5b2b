package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/cwlocal"
	"github.com/cxbridge/cxbridge/pkg/health"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

func init() {
	addScenario(scenario{order: 70, title: "The Jira service account loses a permission: integration-health names it, its alarm fires, cxbridge status shows it; the permission comes back and the next check is green", run: permissionLost})
}

// permissionLost is seed 000's edge case 3 ("works for months, then 403"), caught by the hourly
// check instead of by the next customer's escalation.
func permissionLost(d *demo) error {
	jira := d.st.Jira()
	project := jiratest.DefaultProjectKey
	envFile := filepath.Join(os.TempDir(), "cxbridge-demo-health.env")
	if _, err := writeCLIEnv(d.st, envFile); err != nil {
		return err
	}

	jira.RevokePermission(project, jiratest.PermCreateIssues)
	defer jira.RestorePermission(project, jiratest.PermCreateIssues)
	d.say("Jira admin", "tightens the permission scheme of %s: the integration account loses Create Issues", project)
	status, body := d.jiraCreate()
	d.say("Jira", "POST /rest/servicedeskapi/request as the integration account -> %d %s", status, short(body))
	d.check(status == http.StatusForbidden, "Jira must refuse the request with 403, got %d", status)

	sum, failed, err := d.healthRun()
	if err != nil {
		return err
	}
	d.check(len(failed) == 1, "want exactly one failed check, got %d: %v", len(failed), failed)
	var perm health.Result
	for _, r := range failed {
		d.say("", "FAILED %s/%s %s (HTTP %d): %s", r.System, r.Check, r.Target, r.HTTPStatus, r.Detail)
		d.say("", "  fix: %s", r.Fix)
		if r.System == health.Jira && r.Check == health.CheckPermissions {
			perm = r
		}
	}
	d.check(perm.Target == project && strings.Contains(perm.Detail, "CREATE_ISSUES") && strings.Contains(perm.Call, "mypermissions"),
		"integration-health must name CREATE_ISSUES in %s, got %+v", project, perm)
	d.check(sum.Checked && sum.Report != nil, "the checks did not run")
	e, err := d.alarm("HealthJiraPermissionsAlarm")
	if err != nil {
		return err
	}
	d.check(e.State == "ALARM", "HealthJiraPermissionsAlarm: want ALARM, got %s (%s)", e.State, e.Reason)

	out, err := d.cli("status", "--env-file", envFile)
	if err != nil {
		return fmt.Errorf("cxbridge status: %v\n%s", err, out)
	}
	d.say("on-call", "cxbridge status --env-file %s   (its integration-health section)", envFile)
	section := healthSection(out)
	for _, line := range section {
		d.say("", "%s", line)
	}
	d.check(strings.Contains(strings.Join(section, "\n"), "FAILED") && strings.Contains(strings.Join(section, "\n"), "CREATE_ISSUES"),
		"cxbridge status must show the failed permission check")

	jira.RestorePermission(project, jiratest.PermCreateIssues)
	d.say("Jira admin", "gives the integration account Create Issues in %s again", project)
	_, failed, err = d.healthRun()
	if err != nil {
		return err
	}
	d.check(len(failed) == 0, "the next check must be green, got %v", failed)
	e, err = d.alarm("HealthJiraPermissionsAlarm")
	if err != nil {
		return err
	}
	d.check(e.State == "OK", "HealthJiraPermissionsAlarm: want OK, got %s (%s)", e.State, e.Reason)
	out, err = d.cli("status", "--env-file", envFile)
	if err != nil {
		return fmt.Errorf("cxbridge status: %v\n%s", err, out)
	}
	for _, line := range healthSection(out) {
		if f := strings.Fields(line); strings.Contains(line, "last run") || (len(f) > 1 && f[1] == health.CheckPermissions) {
			d.say("on-call", "cxbridge status: %s", strings.Join(strings.Fields(line), " "))
		}
	}
	d.check(!strings.Contains(strings.Join(healthSection(out), "\n"), "FAILED"), "cxbridge status still shows a failed check")
	return nil
}

// healthRun invokes integration-health as an operator would (aws lambda invoke --payload
// '{"run":"checks"}'), through its real bootstrap, and returns its answer and failed checks.
func (d *demo) healthRun() (health.Summary, []health.Result, error) {
	fn, err := d.st.Function(d.ctx, "integration-health")
	if err != nil {
		return health.Summary{}, nil, err
	}
	d.mark = d.st.Metrics().Mark()
	res, err := fn.Invoke(d.ctx, []byte(`{"run":"checks"}`))
	if err != nil {
		return health.Summary{}, nil, err
	}
	if res.FunctionError != "" {
		return health.Summary{}, nil, fmt.Errorf("integration-health failed: %s", res.Payload)
	}
	var sum health.Summary
	if err := json.Unmarshal(res.Payload, &sum); err != nil {
		return sum, nil, err
	}
	var failed []health.Result
	n := 0
	if sum.Report != nil {
		n = len(sum.Report.Results)
		for _, r := range sum.Report.Results {
			if r.Status == health.Failed {
				failed = append(failed, r)
			}
		}
	}
	d.say("scheduler", `integration-health {"run":"checks"}: %d checks of every system in %s, %d failed`, n, res.Duration.Round(1e6), len(failed))
	return sum, failed, nil
}

// alarm evaluates one of the template's alarms over the datapoints of the last health run:
// deployed, runs are an interval apart, so each lands in a period of its own.
func (d *demo) alarm(name string) (cwlocal.Evaluation, error) {
	alarms, err := d.st.Alarms()
	if err != nil {
		return cwlocal.Evaluation{}, err
	}
	// The function's output reaches the recorder through its stdout pipe, a moment after its
	// answer: wait for the run's summary metric.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if slices.ContainsFunc(d.st.Metrics().Since(d.mark), func(p cwlocal.Point) bool { return p.Name == "HealthChecksFailed" }) {
			break
		}
	}
	for _, a := range alarms {
		if a.Name == name {
			e := cwlocal.Evaluate(a, d.st.Metrics().Since(d.mark))
			d.say("CloudWatch*", "%s -> %s: %s", name, e.State, e.Reason)
			if e.State == "ALARM" {
				first, _, _ := strings.Cut(a.Description, ". ")
				d.say("", "  SNS EscalationAlertTopic: %q...", first)
			}
			d.say("", "  (* evaluated here from the function's EMF output with the template's alarm definition; there is no CloudWatch locally)")
			return e, nil
		}
	}
	return cwlocal.Evaluation{}, fmt.Errorf("template.yaml has no single-metric alarm %s", name)
}

// jiraCreate tries to raise a request as the integration account.
func (d *demo) jiraCreate() (int, []byte) {
	body := `{"serviceDeskId":"` + jiratest.DefaultServiceDeskID + `","requestTypeId":"` + jiratest.RequestTypeSupport + `","requestFieldValues":{"summary":"permission probe from the demo"}}`
	req, _ := http.NewRequestWithContext(d.ctx, http.MethodPost, d.st.Jira().URL()+"/rest/servicedeskapi/request", strings.NewReader(body))
	req.SetBasicAuth(localstack.LocalJiraEmail, localstack.LocalJiraAPIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// cli runs the on-call CLI as an operator would.
func (d *demo) cli(args ...string) (string, error) {
	cmd := exec.CommandContext(d.ctx, "go", append([]string{"run", "./cmd/cxbridge"}, args...)...)
	cmd.Dir = d.st.Root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// healthSection is the INTEGRATION HEALTH part of cxbridge status.
func healthSection(status string) []string {
	_, after, ok := strings.Cut(status, "INTEGRATION HEALTH\n")
	if !ok {
		return nil
	}
	return strings.Split(strings.TrimRight(after, "\n"), "\n")
}
