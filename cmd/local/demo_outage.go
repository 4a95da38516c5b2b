package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/cwlocal"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

func init() {
	addScenario(scenario{order: 42, title: "Callers flood Jira about one product: cxbridge declares the outage by itself, creates one master request, links the rest, pages the on-call", run: automaticOutage})
}

// automaticOutage is seed 001's threshold monitoring without anyone awake: Jira opts in with a
// threshold of 5 VIP escalations about one product within 10 minutes.
func automaticOutage(d *demo) error {
	const threshold, burst = 5, 10
	jira := d.st.Jira()
	before := d.st.Overrides()
	with := localstack.Overrides{Parameters: map[string]string{
		"JiraOutageThreshold": fmt.Sprint(threshold), "JiraOutageWindowMinutes": "10", "JiraOutageTopic": "product",
		"OutageMessage": "We know the payment service is down and have noted your call against the incident.",
	}, Env: before.Env}
	for k, v := range before.Parameters {
		with.Parameters[k] = v
	}
	d.st.Reconfigure(with)
	defer d.st.Reconfigure(before)
	d.say("deployer", "redeploys with JiraOutageThreshold=%d, JiraOutageWindowMinutes=10, JiraOutageTopic=product", threshold)

	escalate := func(i int, product string) map[string]any {
		_, out, _, _, err := d.call("/escalations", localstack.LocalAPIKey, nil, encode(map[string]any{
			"conversationId": fmt.Sprintf("8e2d6b41-5c7a-4f19-b3e0-%012d", 700+i), "trigger": "vip", "target": "jira",
			"customerName": fmt.Sprintf("Caller %d", i), "product": product, "description": "Card payment fails at checkout",
		}))
		if err != nil {
			d.check(false, "escalation %d: %v", i, err)
		}
		return out
	}
	for i := range threshold - 1 {
		out := escalate(i, "Payments")
		d.check(out["status"] == "created", "escalation %d below the threshold: want created, got %v", i, out)
		d.say("Genesys", "VIP escalation %d, product Payments -> %v %v", i+1, out["status"], out["ticketKey"])
	}
	sent := time.Now()
	creates := len(jira.Received("/rest/servicedeskapi/request"))
	out := escalate(threshold-1, "Payments")
	answered := time.Since(sent)
	master, _ := out["ticketKey"].(string)
	d.say("Genesys", "VIP escalation %d, product Payments -> %v %s in %s: %q", threshold, out["status"], master, answered.Round(time.Millisecond), out["message"])
	d.check(out["status"] == "linked" && master != "" && out["catastropheMode"] == true, "the escalation that crosses the threshold must be linked to a new master, got %v", out)
	var created time.Time
	for _, r := range jira.Received("/rest/servicedeskapi/request")[creates:] {
		if r.Method == http.MethodPost && r.Path == "/rest/servicedeskapi/request" {
			created = r.At
			break
		}
	}
	req, ok := jira.Request(master)
	d.check(ok, "Jira has no request %s", master)
	d.say("Jira", "%s %q, labels %v, raised by the integration account", master, req.Summary(), req.Labels())
	d.say("cxbridge", "threshold -> master: Jira received the master's create %s after the 5th escalation was sent",
		created.Sub(sent).Round(time.Millisecond))

	// The flood goes on: linked at once, nothing more for Jira to create.
	creates = len(jira.Received("/rest/servicedeskapi/request"))
	statuses := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := escalate(threshold+i, "payments")
			mu.Lock()
			defer mu.Unlock()
			key := fmt.Sprint(out["status"])
			if out["ticketKey"] == master {
				key += " to " + master
			}
			statuses[key]++
		}()
	}
	wg.Wait()
	other := escalate(threshold+burst, "Billing")
	newCreates := len(jira.Received("/rest/servicedeskapi/request")) - creates
	d.say("Genesys", "%d more escalations about Payments at once: %s; one about Billing -> %v %v", burst, summary(statuses), other["status"], other["ticketKey"])
	d.say("Jira", "received %d create(s) for them: the Billing ticket only", newCreates)
	d.check(statuses["linked to "+master] == burst, "every escalation about Payments must be linked to %s, got %v", master, statuses)
	d.check(other["status"] == "created" && newCreates == 1, "another product is delivered as usual (got %v, %d creates)", other, newCreates)

	// The on-call is paged, and sees why.
	envFile := filepath.Join(os.TempDir(), "cxbridge-demo-outage.env")
	if _, err := writeCLIEnv(d.st, envFile); err != nil {
		return err
	}
	e, err := d.gaugeAlarm("OutageDeclaredJiraAlarm")
	if err != nil {
		return err
	}
	d.check(e.State == "ALARM", "OutageDeclaredJiraAlarm: want ALARM, got %s (%s)", e.State, e.Reason)
	status, err := d.cli("outage", "status", "--env-file", envFile)
	if err != nil {
		return fmt.Errorf("cxbridge outage status: %v\n%s", err, status)
	}
	d.say("on-call", "cxbridge outage status --env-file %s", envFile)
	for _, line := range strings.Split(strings.TrimRight(status, "\n"), "\n") {
		if strings.HasPrefix(line, "servicenow") {
			break // the jira part
		}
		if !strings.Contains(line, "breaker") {
			d.say("", "%s", line)
		}
	}
	d.check(strings.Contains(status, "outage mode ON (automatic), master "+master) && strings.Contains(status, `about product "Payments"`),
		"outage status must show the automatic outage and why:\n%s", status)

	// The redrive notes the linked calls on the master, once.
	if err := d.st.RunOnce(d.ctx, "escalation-redrive", time.Now()); err != nil {
		return err
	}
	comments := jira.Comments(master)
	d.check(len(comments) == 1 && !comments[0].Public && strings.Count(comments[0].Body, "conversation ") == burst+1,
		"want one internal note listing the %d linked calls, got %d comment(s)", burst+1, len(comments))
	if len(comments) > 0 {
		d.say("Jira", "%s internal comment: %q", master, firstLine(comments[0].Body))
	}

	// It is not a real outage after all: the on-call ends it; the next call gets its ticket.
	out2, err := d.cli("outage", "end", "--target", "jira", "--env-file", envFile)
	if err != nil {
		return fmt.Errorf("cxbridge outage end: %v\n%s", err, out2)
	}
	d.say("on-call", "cxbridge outage end --target jira: %s", firstLine(out2))
	e, err = d.gaugeAlarm("OutageDeclaredJiraAlarm")
	if err != nil {
		return err
	}
	d.check(e.State == "OK", "OutageDeclaredJiraAlarm: want OK after the end, got %s (%s)", e.State, e.Reason)
	// A warm environment reuses the flag it read for up to a second (Outage.CacheFor), as the
	// CLI tells the on-call: a call within that second may still be linked.
	time.Sleep(time.Second)
	after := escalate(threshold+burst+1, "Payments")
	d.say("Genesys", "VIP escalation about Payments -> %v %v", after["status"], after["ticketKey"])
	d.check(after["status"] == "created", "after the end calls get tickets again, got %v", after)
	return nil
}

// gaugeAlarm runs integration-health on its schedule (it samples the breakers and outage flags
// every minute) and evaluates one of the template's alarms over what that run emitted.
func (d *demo) gaugeAlarm(name string) (cwlocal.Evaluation, error) {
	mark := d.st.Metrics().Mark()
	if err := d.st.RunOnce(d.ctx, "integration-health", time.Now()); err != nil {
		return cwlocal.Evaluation{}, err
	}
	// The function's output reaches the recorder through its stdout pipe, a moment after its
	// answer.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if slices.ContainsFunc(d.st.Metrics().Since(mark), func(p cwlocal.Point) bool { return p.Name == "OutageAutomatic" }) {
			break
		}
	}
	alarms, err := d.st.Alarms()
	if err != nil {
		return cwlocal.Evaluation{}, err
	}
	for _, a := range alarms {
		if a.Name == name {
			e := cwlocal.Evaluate(a, d.st.Metrics().Since(mark))
			d.say("CloudWatch*", "%s -> %s: %s", name, e.State, e.Reason)
			if e.State == "ALARM" {
				first, _, _ := strings.Cut(a.Description, ": ")
				d.say("", "  SNS EscalationAlertTopic: %q...", first)
			}
			return e, nil
		}
	}
	return cwlocal.Evaluation{}, fmt.Errorf("template.yaml has no single-metric alarm %s", name)
}
