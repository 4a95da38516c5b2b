package localstack_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

func template(t *testing.T) *samtemplate.Template {
	t.Helper()
	root, err := dynamotest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := samtemplate.Load(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func TestOverridesFileShapes(t *testing.T) {
	tpl := template(t)
	for name, tc := range map[string]struct {
		file   string
		params map[string]string
		env    map[string]map[string]string
	}{
		"sam local invoke --env-vars": {
			file:   `{"Parameters":{"JIRA_PROJECTS":"HELP=7/70","TierL1QueueId":"q1"},"CreateEscalationFunction":{"ESCALATION_TARGETS":"vip=servicenow"}}`,
			params: map[string]string{"TierL1QueueId": "q1"},
			env:    map[string]map[string]string{"Parameters": {"JIRA_PROJECTS": "HELP=7/70"}, "CreateEscalationFunction": {"ESCALATION_TARGETS": "vip=servicenow"}},
		},
		"parameter name -> value": {
			file:   `{"TierL1QueueId":"q1","TelemetryTimeoutMs":2500,"TierCascade":"true"}`,
			params: map[string]string{"TierL1QueueId": "q1", "TelemetryTimeoutMs": "2500", "TierCascade": "true"},
		},
		"aws cloudformation --parameters": {
			file:   `[{"ParameterKey":"JiraProjects","ParameterValue":"HELP=7/70"},{"ParameterKey":"TierFallback","ParameterValue":"L2"}]`,
			params: map[string]string{"JiraProjects": "HELP=7/70", "TierFallback": "L2"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			o, err := localstack.ParseOverrides([]byte(tc.file), tpl)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := js(o.Parameters), js(orEmpty(tc.params)); got != want {
				t.Errorf("parameters %s; want %s", got, want)
			}
			if got, want := js(o.Env), js(orEmptyEnv(tc.env)); got != want {
				t.Errorf("env %s; want %s", got, want)
			}
		})
	}
	for file, want := range map[string]string{
		`{"TierL1QueueID":"q1"}`:                                      "TierL1QueueID: not a template parameter",
		`{"tier_l1_queue_id":"q1"}`:                                   "did you mean TIER_L1_QUEUE_ID?",
		`{"Parameters":{"TIER_CASCADE":"true"}}`:                      "", // a variable is fine
		`{"TierFallback":"L4"}`:                                       `TierFallback: "L4" is not one of L1, L2, L3`,
		`{"ServiceNowBaseUrl":"acme.service-now.com"}`:                "does not match",
		`{"TelemetryTierFunction":{"JIRA_PROJECTS":"HELP=7/70"}}`:     "JIRA_PROJECTS: not a template parameter nor a variable in TelemetryTierFunction's Environment",
		`{"NoSuchFunction":{"JIRA_PROJECTS":"x"}}`:                    "NoSuchFunction: not a function of the template",
		`[{"ParameterKey":"JiraProjects"}]`:                           "ParameterValue is missing",
		`{"Parameters":{"TierL1QueueId":{"nested":"no"}}}`:            "want a string, number or boolean",
		`"TierL1QueueId=q1"`:                                          "want a JSON object",
		`{"CreateEscalationFunction":{"ESCALATION_TARGETS":"vip=x"}}`: "",
	} {
		_, err := localstack.ParseOverrides([]byte(file), tpl)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", file, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: got %v; want an error with %q", file, err, want)
		}
	}
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func orEmptyEnv(m map[string]map[string]string) map[string]map[string]string {
	if m == nil {
		return map[string]map[string]string{}
	}
	return m
}

// TestOverridesReachTheRealFunctions: a developer's overrides file changes what the real
// bootstrap sees (a parameter, a variable for every function, one function's variable); a
// system address in it makes that system real, as its environment variable does; Reconfigure
// applies new overrides as a redeploy would.
func TestOverridesReachTheRealFunctions(t *testing.T) {
	tpl := template(t)
	o, err := localstack.ParseOverrides([]byte(`{
		"Parameters": {"TierL3QueueId": "3a3a3a3a-0000-4000-8000-000000000003", "JIRA_PROJECTS": "HELP=7/70", "ServiceNowBaseUrl": "https://dev00000.service-now.com"},
		"CreateEscalationFunction": {"ESCALATION_TARGETS": "vip=servicenow"}}`), tpl)
	if err != nil {
		t.Fatal(err)
	}
	st, err := localstack.Start(context.Background(), localstack.Options{Getenv: func(string) string { return "" }, Overrides: o})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	esc, err := st.Env("CreateEscalationFunction")
	if err != nil {
		t.Fatal(err)
	}
	if esc["JIRA_PROJECTS"] != "HELP=7/70" || esc["ESCALATION_TARGETS"] != "vip=servicenow" || esc["SERVICENOW_BASE_URL"] != "https://dev00000.service-now.com" {
		t.Fatalf("create-escalation environment: %v", esc)
	}
	redrive, _ := st.Env("EscalationRedriveFunction")
	if redrive["ESCALATION_TARGETS"] == "vip=servicenow" || redrive["JIRA_PROJECTS"] != "HELP=7/70" {
		t.Fatalf("a function's own variable leaked, or a shared one did not arrive: %v", redrive)
	}
	if st.ServiceNow() != nil {
		t.Fatal("ServiceNowBaseUrl in the overrides must make ServiceNow real, as SERVICENOW_BASE_URL does")
	}
	for _, e := range st.Endpoints() {
		if e.System == "servicenow" && (e.Simulated || e.URL != "https://dev00000.service-now.com") {
			t.Fatalf("servicenow endpoint %+v", e)
		}
	}

	queueOf := func() string {
		t.Helper()
		fn, err := st.Function(context.Background(), "telemetry-tier")
		if err != nil {
			t.Fatal(err)
		}
		res, err := fn.Invoke(context.Background(), []byte(`{"customerId":"`+localstack.CustomerCritical+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Tier, QueueID string
		}
		if err := json.Unmarshal(res.Payload, &d); err != nil || d.Tier != "L3" {
			t.Fatalf("answer %s: %v", res.Payload, err)
		}
		return d.QueueID
	}
	if q := queueOf(); q != "3a3a3a3a-0000-4000-8000-000000000003" {
		t.Fatalf("the L3 queue is %s; want the overridden one", q)
	}
	o2, _ := localstack.ParseOverrides([]byte(`{"TierL3QueueId":"3b3b3b3b-0000-4000-8000-000000000003"}`), tpl)
	st.Reconfigure(o2)
	if q := queueOf(); q != "3b3b3b3b-0000-4000-8000-000000000003" {
		t.Fatalf("after Reconfigure the L3 queue is %s", q)
	}
}
