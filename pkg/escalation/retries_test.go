package escalation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/genesys/genesystest"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

func TestRetryAfterIsHonouredWithinTheBudget(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 429, RetryAfter: 1, Times: 1})
	start := time.Now()
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	elapsed := time.Since(start)
	if c.res.Status != "created" || c.res.Attempts != 2 {
		t.Fatalf("%s", c.raw)
	}
	creates := e.jira.Received("/rest/servicedeskapi/request")
	if len(creates) != 2 {
		t.Fatalf("%d create calls", len(creates))
	}
	if gap := creates[1].At.Sub(creates[0].At); gap < time.Second {
		t.Fatalf("second attempt %s after the 429; Retry-After asked for 1 s", gap)
	}
	if elapsed > 3*time.Second {
		t.Fatalf("took %s", elapsed)
	}
}

func TestRetryAfterBeyondTheBudgetQueuesAtOnce(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 429, RetryAfter: 30})
	start := time.Now()
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if d := time.Since(start); d > time.Second {
		t.Fatalf("answered after %s: a 30 s Retry-After must not be waited for on the caller's time", d)
	}
	if c.res.Status != escalation.StatusQueued || c.res.Reason != escalation.ReasonRateLimited || c.res.Attempts != 1 {
		t.Fatalf("%s", c.raw)
	}
	pending, err := e.svc.Outbox.Pending(t.Context(), 10)
	if err != nil || len(pending) != 1 {
		t.Fatalf("outbox: %v %v", pending, err)
	}
	if wait := time.Until(pending[0].Due); wait < 28*time.Second {
		t.Fatalf("queued for %s; the redrive must honour the 30 s Retry-After", wait)
	}
}

// A Jira 503 may come from a gateway after the request was created: it is never retried blind.
// The escalation is queued for verification, and the redrive creates only when the search for
// its marker finds nothing.
func TestJiraServerErrorIsVerifiedNotRetriedBlind(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "4000"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503, RetryAfter: 1, Times: 1})
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if c.res.Status != escalation.StatusQueued || c.res.Reason != escalation.ReasonVerifying || c.res.Attempts != 1 {
		t.Fatalf("%s", c.raw)
	}
	if n := len(e.jiraCreates()); n != 1 {
		t.Fatalf("%d create calls; an unknown outcome is not repeated in the call", n)
	}
	if !strings.Contains(c.metrics, `"EscalationQueued":1`) {
		t.Fatalf("metrics %s", c.metrics)
	}
	// Retry-After (1 s) is the earliest next attempt, even with no search lag.
	if sum, _ := e.redrive(); sum.Held != 1 || len(e.jiraCreates()) != 1 {
		t.Fatalf("attempted before Retry-After: %+v", sum)
	}
	e.clock.Jump(2 * time.Second)
	sum, _ := e.redrive()
	if sum.Delivered != 1 || len(e.jira.Received("/rest/api/3/search/jql")) != 1 || e.jira.RequestCount() != 1 {
		t.Fatalf("%+v: %d searches, %d requests", sum, len(e.jira.Received("/rest/api/3/search/jql")), e.jira.RequestCount())
	}
}

func TestServiceNowTimeoutsAreRetriedThenQueued(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "2500"))
	e.sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Delay: 5 * time.Second})
	start := time.Now()
	c := e.post(body("conversationId", conv, "trigger", "wrap_up"))
	if d := time.Since(start); d > 3200*time.Millisecond {
		t.Fatalf("answered after %s; the budget is 2.5 s", d)
	}
	if c.res.Status != escalation.StatusQueued || c.res.Reason != escalation.ReasonUnavailable {
		t.Fatalf("%s", c.raw)
	}
}

func TestUnauthorizedRefreshesCredentialsOnce(t *testing.T) {
	e := newEnv(t)
	if c := e.post(body("conversationId", "warm-1", "trigger", "manual")); c.res.Status != "created" {
		t.Fatalf("%s", c.raw) // the environment now has the token cached
	}
	// The API token is rotated in Jira and in Secrets Manager; this environment still holds
	// the old one.
	e.jira.SetBasicCredentials(jiraEmail, "rotated-token")
	e.secrets.Put("cxbridge/jira", `{"email":"`+jiraEmail+`","apiToken":"rotated-token"}`)
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if c.res.Status != "created" || c.res.Attempts != 1 {
		t.Fatalf("a 401 must refresh the credentials once and succeed: %s", c.raw)
	}
	if n := len(e.jiraCreates()); n != 3 {
		t.Fatalf("%d create calls; want the warm-up, one 401 and the success", n)
	}
	if n := e.secrets.Calls("GetSecretValue"); n != 2 {
		t.Fatalf("secret read %d times; want once at first use and once after the 401", n)
	}
}

func TestUnauthorizedAfterRefreshFails(t *testing.T) {
	e := newEnv(t)
	e.jira.SetBasicCredentials(jiraEmail, "someone-changed-it")
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if c.res.Status != escalation.StatusFailed || c.res.Reason != escalation.ReasonUnauthorized || len(e.jiraCreates()) != 2 {
		t.Fatalf("%s, %d calls", c.raw, len(e.jiraCreates()))
	}
}

func TestForbiddenIsAPermissionProblem(t *testing.T) {
	e := newEnv(t)
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 403, Body: `{"errorMessage":"You do not have permission to create requests in this project.","i18nErrorMessage":{"i18nKey":"sd.request.create.error.permission","parameters":[]}}`})
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if c.status != 200 || c.res.Status != escalation.StatusFailed || c.res.Reason != escalation.ReasonPermissionDenied || c.res.Attempts != 1 {
		t.Fatalf("%d %s", c.status, c.raw)
	}
	if !strings.Contains(c.res.Message, "403") || !strings.Contains(c.res.Message, "permission") {
		t.Fatalf("message %q", c.res.Message)
	}
	if n := len(e.jiraCreates()); n != 1 {
		t.Fatalf("%d attempts; a 403 is not retried", n)
	}
	if !strings.Contains(c.metrics, `"EscalationFailed":1`) || !strings.Contains(c.metrics, `"Reason":"permission_denied"`) {
		t.Fatalf("the on-call must see it: %s", c.metrics)
	}
	failed, _ := e.svc.Outbox.Failed(t.Context(), 10)
	if len(failed) != 1 || failed[0].Reason != escalation.ReasonPermissionDenied || failed[0].Escalation.ConversationID != conv {
		t.Fatalf("failed list %+v", failed)
	}
	// once the permission is fixed, the flow's retry runs again (the key was released)
	e.jira.ClearFailures()
	if again := e.post(body("conversationId", conv, "trigger", "vip")); again.res.Status != "created" {
		t.Fatalf("%s", again.raw)
	}
}

func TestRejectedPayloadIsNotRetried(t *testing.T) {
	// A mapped field that is not on the request type's form: Jira answers 400, which a
	// retry cannot fix; it is reported once, naming the status.
	e := newEnv(t, with("JIRA_FIELD_MAP", `{"summary":"{{summary}}","customfield_99999":"{{conversationId}}"}`))
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if c.res.Status != escalation.StatusFailed || c.res.Reason != escalation.ReasonRejected || len(e.jiraCreates()) != 1 || !strings.Contains(c.res.Message, "400") {
		t.Fatalf("%s", c.raw)
	}
}

func TestLinkBackFailureNeverFailsTheEscalation(t *testing.T) {
	e := newEnv(t)
	e.genesys.AddWaitingConversation(conv, "cust-1", "q-1", 0)
	e.genesys.Fail("/api/v2/conversations", genesystest.Failure{Status: 503})
	c := e.post(body("conversationId", conv, "participantId", "cust-1", "trigger", "vip"))
	if c.res.Status != "created" || c.res.TicketKey != "SUPP-1" {
		t.Fatalf("%s", c.raw)
	}
	if !strings.Contains(c.metrics, `"LinkBackFailed":1`) {
		t.Fatalf("a failed link-back must be counted: %s", c.metrics)
	}
	// a hung Genesys cannot hold the caller beyond LINKBACK_TIMEOUT_MS
	e2 := newEnv(t, with("LINKBACK_TIMEOUT_MS", "300"))
	e2.genesys.AddWaitingConversation(conv, "cust-1", "q-1", 0)
	e2.genesys.Fail("/api/v2/conversations", genesystest.Failure{Delay: 10 * time.Second})
	start := time.Now()
	c = e2.post(body("conversationId", conv, "participantId", "cust-1", "trigger", "vip"))
	if d := time.Since(start); c.res.Status != "created" || d > 2*time.Second {
		t.Fatalf("%s after %s", c.raw, d)
	}
}
