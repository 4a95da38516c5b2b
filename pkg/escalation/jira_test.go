package escalation_test

import (
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

func TestJiraRequestUsesTheServiceDeskSchema(t *testing.T) {
	e := newEnv(t)
	e.genesys.AddWaitingConversation(conv, "cust-1", "q-1", 0)
	c := e.post(body("conversationId", conv, "participantId", "cust-1", "trigger", "vip", "customerName", "Jane Doe",
		"customerEmail", "jane@example.com", "agentName", "Alex Agent", "queueName", "Support L2",
		"occurredAt", "2026-11-22T11:15:00+02:00", "description", "Customer cannot log in"))
	if c.status != 200 || c.res.Status != escalation.StatusCreated || c.res.Target != escalation.Jira {
		t.Fatalf("got %d %s", c.status, c.raw)
	}
	if c.res.TicketKey != "SUPP-1" || !strings.HasSuffix(c.res.TicketURL, "/browse/SUPP-1") || c.res.Attempts != 1 || c.res.EscalationID == "" {
		t.Fatalf("answer %+v", c.res)
	}
	creates := e.jiraCreates()
	if len(creates) != 1 {
		t.Fatalf("%d create calls", len(creates))
	}
	b := creates[0]
	if b["serviceDeskId"] != "1" || b["requestTypeId"] != "10" {
		t.Fatalf("desk and request type must be strings from JIRA_PROJECTS: %v", b)
	}
	for _, wrong := range []string{"fields", "issueType", "requestType", "project"} {
		if _, ok := b[wrong]; ok {
			t.Fatalf("the seed's %q is not part of a JSM request: %v", wrong, b)
		}
	}
	fields := b["requestFieldValues"].(map[string]any)
	summary, _ := fields["summary"].(string)
	desc, _ := fields["description"].(string)
	if !strings.Contains(summary, "VIP customer") || !strings.Contains(summary, "Jane Doe") {
		t.Fatalf("summary %q", summary)
	}
	if !strings.Contains(desc, conv) || !strings.Contains(desc, "2026-11-22T09:15:00Z") || strings.Contains(desc, "+02:00") {
		t.Fatalf("description must carry the conversation and the time in UTC: %q", desc)
	}
	if labels := fields["labels"].([]any); len(labels) != 2 || labels[0] != escalation.RequestLabel || labels[1] != escalation.Marker(c.res.EscalationID) {
		t.Fatalf("labels %v: the request must carry cxbridge's label and its escalation id", labels)
	}
	// raiseOnBehalfOf is an accountId: the customer was created from the e-mail address
	cust, ok := e.jira.CustomerByEmail("jane@example.com")
	if !ok || b["raiseOnBehalfOf"] != cust.AccountID || strings.Contains(b["raiseOnBehalfOf"].(string), "@") {
		t.Fatalf("raiseOnBehalfOf %v, customer %+v", b["raiseOnBehalfOf"], cust)
	}
	req, _ := e.jira.Request("SUPP-1")
	if req.Reporter != cust.AccountID {
		t.Fatalf("reporter %s", req.Reporter)
	}
	// link-back: the key is on the participant
	gc, _ := e.genesys.Conversation(conv)
	attrs := gc.Participants[0].Attributes
	if attrs["escalationTicketKey"] != "SUPP-1" || attrs["escalationTarget"] != "jira" || attrs["escalationStatus"] != "created" || attrs["escalationTicketUrl"] != c.res.TicketURL {
		t.Fatalf("participant attributes %v", attrs)
	}
	if !strings.Contains(c.metrics, `"LinkBack":1`) {
		t.Fatalf("metrics %s", c.metrics)
	}
}

func TestJiraReporter(t *testing.T) {
	t.Run("account id wins", func(t *testing.T) {
		e := newEnv(t)
		id := e.jira.AddCustomer("known@example.com", "Known", "1")
		c := e.post(body("conversationId", conv, "trigger", "manual", "customerAccountId", id, "customerEmail", "other@example.com"))
		if c.res.Status != "created" || e.jiraCreates()[0]["raiseOnBehalfOf"] != id {
			t.Fatalf("%s / %v", c.raw, e.jiraCreates())
		}
		if n := len(e.jira.Received("/rest/servicedeskapi/customer")) + len(e.jira.Received("/rest/servicedeskapi/servicedesk/1/customer")); n != 0 {
			t.Fatalf("%d customer lookups although the accountId was given", n)
		}
	})
	t.Run("existing customer found by e-mail", func(t *testing.T) {
		e := newEnv(t)
		id := e.jira.AddCustomer("found@example.com", "Found", "1")
		c := e.post(body("conversationId", conv, "trigger", "manual", "customerEmail", "Found@Example.com"))
		if c.res.Status != "created" || e.jiraCreates()[0]["raiseOnBehalfOf"] != id || len(e.jira.Customers()) != 1 {
			t.Fatalf("%s / %v", c.raw, e.jiraCreates())
		}
	})
	t.Run("nobody: raised as the service account, and said so", func(t *testing.T) {
		e := newEnv(t)
		c := e.post(body("conversationId", conv, "trigger", "manual"))
		b := e.jiraCreates()[0]
		if _, ok := b["raiseOnBehalfOf"]; ok || c.res.Status != "created" {
			t.Fatalf("%s / %v", c.raw, b)
		}
		desc := b["requestFieldValues"].(map[string]any)["description"].(string)
		if !strings.Contains(desc, "Raised by the integration account") || !strings.Contains(c.res.Message, "integration account") {
			t.Fatalf("description %q, message %q", desc, c.res.Message)
		}
		req, _ := e.jira.Request(c.res.TicketKey)
		if req.Reporter != jiratest.APIUserAccountID {
			t.Fatalf("reporter %s", req.Reporter)
		}
	})
	t.Run("customer cannot be created: service account", func(t *testing.T) {
		e := newEnv(t)
		e.jira.Fail("/rest/servicedeskapi/customer", jiratest.Failure{Status: 403})
		c := e.post(body("conversationId", conv, "trigger", "manual", "customerEmail", "new@example.com"))
		b := e.jiraCreates()[0]
		if _, ok := b["raiseOnBehalfOf"]; ok || c.res.Status != "created" {
			t.Fatalf("%s / %v", c.raw, b)
		}
		if desc := b["requestFieldValues"].(map[string]any)["description"].(string); !strings.Contains(desc, "could not be found or created") {
			t.Fatalf("description %q", desc)
		}
	})
	// Jira refuses the account the request is raised for (400: an accountId it does not know):
	// nothing was created, so it is raised once more by the integration account, naming the
	// customer, instead of failing.
	t.Run("account id refused: service account, customer named", func(t *testing.T) {
		e := newEnv(t)
		c := e.post(body("conversationId", conv, "trigger", "manual", "customerAccountId", "557058:0000-gone", "customerName", "Jane Doe", "customerEmail", "jane@example.com"))
		creates := e.jiraCreates()
		if c.res.Status != "created" || len(creates) != 2 || creates[0]["raiseOnBehalfOf"] != "557058:0000-gone" {
			t.Fatalf("%s / %v", c.raw, creates)
		}
		if _, ok := creates[1]["raiseOnBehalfOf"]; ok {
			t.Fatalf("the second create still raises on behalf of the refused account: %v", creates[1])
		}
		desc := creates[1]["requestFieldValues"].(map[string]any)["description"].(string)
		if !strings.Contains(desc, "Jira refused the customer account 557058:0000-gone (HTTP 400)") || !strings.Contains(desc, "Jane Doe, jane@example.com") {
			t.Fatalf("description %q", desc)
		}
		if !strings.Contains(c.res.Message, "integration account") || e.jira.RequestCount() != 1 {
			t.Fatalf("message %q, %d requests", c.res.Message, e.jira.RequestCount())
		}
	})
	t.Run("other refusals still fail", func(t *testing.T) {
		e := newEnv(t)
		e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 400, Times: 2})
		c := e.post(body("conversationId", conv, "trigger", "manual", "customerEmail", "jane@example.com"))
		if c.res.Status != escalation.StatusFailed || c.res.Reason != escalation.ReasonRejected || len(e.jiraCreates()) != 2 {
			t.Fatalf("%s; %d creates", c.raw, len(e.jiraCreates()))
		}
	})
}

func TestJiraProjectKeyRules(t *testing.T) {
	mapped := []setting{
		with("JIRA_VERSION_PROJECTS", "2.1=CORE;Billing:3.0=CORE"),
		with("JIRA_PRODUCT_PROJECTS", "Billing=BILL;Platform=CORE"),
	}
	cases := []struct {
		name     string
		settings []setting
		product  string
		version  string
		desk     string
	}{
		{"always use default", append(mapped, with("JIRA_ALWAYS_USE_DEFAULT_PROJECT", "true")), "Billing", "2.1", "1"},
		{"version mapping", mapped, "Billing", "2.1", "2"},
		{"product and version mapping", mapped, "Billing", "3.0", "2"},
		{"product mapping", mapped, "Billing", "9.9", "3"},
		{"product name is the key", mapped, "core", "", "2"},
		{"unknown product falls back to default", mapped, "Gadget", "", "1"},
		{"no product: default", mapped, "", "", "1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.settings...)
			res := e.post(body("conversationId", conv, "trigger", "manual", "product", c.product, "version", c.version))
			if res.res.Status != "created" {
				t.Fatalf("%s", res.raw)
			}
			if got := e.jiraCreates()[0]["serviceDeskId"]; got != c.desk {
				t.Fatalf("desk %v; want %s", got, c.desk)
			}
		})
	}
}

func TestJiraFieldMappingWithCustomFields(t *testing.T) {
	e := newEnv(t, with("JIRA_FIELD_MAP", `{"summary":"Call {{conversationId}} - {{triggerLabel}}","description":"{{details}}",`+
		`"customfield_10050":"{{conversationId}}","labels":["genesys","{{trigger}}","{{product}}"]}`))
	c := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 240))
	if c.res.Status != "created" {
		t.Fatalf("%s", c.raw)
	}
	f := e.jiraCreates()[0]["requestFieldValues"].(map[string]any)
	if f["summary"] != "Call "+conv+" - High hold time" || f["customfield_10050"] != conv {
		t.Fatalf("fields %v", f)
	}
	labels := f["labels"].([]any)
	// the empty {{product}} is left out; cxbridge's label and the escalation id are added
	if len(labels) != 4 || labels[0] != "genesys" || labels[1] != "hold_time" || labels[2] != escalation.RequestLabel || labels[3] != escalation.Marker(c.res.EscalationID) {
		t.Fatalf("labels %v", labels)
	}
}

func TestJiraKeyFieldCanBeACustomField(t *testing.T) {
	e := newEnv(t, with("JIRA_KEY_FIELD", "customfield_10051"))
	c := e.post(body("conversationId", conv, "trigger", "manual"))
	f := e.jiraCreates()[0]["requestFieldValues"].(map[string]any)
	if f["customfield_10051"] != escalation.Marker(c.res.EscalationID) {
		t.Fatalf("fields %v", f)
	}
	if _, ok := f["labels"]; ok {
		t.Fatalf("no label when the key field is a custom field: %v", f)
	}
}

func TestBadConfigurationNamesEveryVariable(t *testing.T) {
	cases := map[string]string{
		"JIRA_PROJECTS":         "SUPP=one/ten;CORE=2/20",
		"JIRA_DEFAULT_PROJECT":  "NOPE",
		"JIRA_FIELD_MAP":        `{"summary":"{{nosuch}}"}`,
		"JIRA_KEY_FIELD":        "Escalation Key",
		"JIRA_VERSION_PROJECTS": "2.1=NOPE",
		"SERVICENOW_CATEGORY":   "Inquiry / Help",
		"ESCALATION_TARGETS":    "wrap_up=email",
		"MASK_EXTRA_PATTERNS":   `{"x":"("}`,
	}
	vars := map[string]string{"STATE_TABLE": "s", "IDEMPOTENCY_TABLE": "i", "JIRA_BASE_URL": "https://x.atlassian.net", "JIRA_SECRET_ID": "j",
		"SERVICENOW_BASE_URL": "https://x.service-now.com", "SERVICENOW_SECRET_ID": "s"}
	for k, v := range cases {
		vars[k] = v
	}
	r := config.FromMap(vars)
	escalation.LoadConfig(r)
	err := r.Err()
	if err == nil {
		t.Fatal("no error")
	}
	for k := range cases {
		if !strings.Contains(err.Error(), k+":") {
			t.Errorf("the error does not name %s:\n%v", k, err)
		}
	}
}

func TestJiraOAuthThroughTheGateway(t *testing.T) {
	e := newEnv(t, func(vars map[string]string, _ *jiratest.Config, _ *breaker.Settings) {
		vars["JIRA_BROWSE_URL"] = "https://acme.atlassian.net"
	})
	// newEnv knows the fake's URL only after starting it; point the client at the gateway
	// through a second environment built on the same fakes.
	e2 := e.rewire(t, map[string]string{"JIRA_BASE_URL": e.jira.GatewayURL()})
	e.secrets.Put("cxbridge/jira", `{"clientId":"`+jiraClient+`","clientSecret":"`+jiraSecret+`","tokenUrl":"`+e.jira.TokenURL()+`"}`)
	c := e2.post(body("conversationId", conv, "trigger", "vip"))
	if c.res.Status != "created" || c.res.TicketURL != "https://acme.atlassian.net/browse/SUPP-1" {
		t.Fatalf("%s", c.raw)
	}
	if r := e.jira.Received("/rest/servicedeskapi/request"); len(r) != 1 || !r[0].Gateway {
		t.Fatalf("the request must go through the gateway: %+v", r)
	}
	if e.jira.TokensIssued() != 1 {
		t.Fatalf("%d tokens", e.jira.TokensIssued())
	}
}

func TestCustomerLookupOutageIsRetriedNotDropped(t *testing.T) {
	e := newEnv(t)
	// The customer search is rate-limited once: the attempt is retried, and the request is
	// still raised for the customer rather than for nobody.
	e.jira.Fail("/rest/servicedeskapi/servicedesk/1/customer", jiratest.Failure{Status: 429, RetryAfter: 1, Times: 1})
	id := e.jira.AddCustomer("jane@example.com", "Jane", "1")
	c := e.post(body("conversationId", conv, "trigger", "vip", "customerEmail", "jane@example.com"))
	if c.res.Status != "created" || c.res.Attempts != 2 || e.jiraCreates()[0]["raiseOnBehalfOf"] != id {
		t.Fatalf("%s / %v", c.raw, e.jiraCreates())
	}
}
