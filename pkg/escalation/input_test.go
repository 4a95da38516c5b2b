package escalation_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
)

// Sensitive values of the masking test, as a caller might dictate them.
var secretsInText = []string{
	"4111 1111 1111 1111",  // Visa test card, spaced
	"5500-0000-0000-0004",  // Mastercard test card, dashed
	"378282246310005",      // Amex test card, 15 digits, no separators
	"078-05-1120",          // an SSN
	"1234-5678-9012",       // the seed's account pattern
	"ORD-884211",           // an extra pattern configured in MASK_EXTRA_PATTERNS
	"4111.1111.1111.1111",  // dotted
	"6011 0009 9013 9424 ", // Discover
}

func TestMaskedValuesNeverLeave(t *testing.T) {
	for _, target := range []string{"jira", "servicenow"} {
		t.Run(target, func(t *testing.T) {
			e := newEnv(t, with("MASK_EXTRA_PATTERNS", `{"order":"ORD-\\d{6}"}`))
			e.genesys.AddWaitingConversation(conv, "cust-1", "q", 0)
			desc := "Card " + secretsInText[0] + " and " + secretsInText[1] + " failed; SSN " + secretsInText[3] + "."
			transcript := "Customer read " + secretsInText[2] + " then account " + secretsInText[4] + " for order " + secretsInText[5] + " and " + secretsInText[6]
			c := e.post(body("conversationId", conv, "participantId", "cust-1", "trigger", "manual", "target", target,
				"customerName", "Jane "+secretsInText[7], "description", desc, "transcriptSummary", transcript, "wrapUpCode", "Card "+secretsInText[1]))
			if c.res.Status != "created" {
				t.Fatalf("%s", c.raw)
			}
			if c.res.Masked != 9 {
				t.Fatalf("masked %d spans; want 9", c.res.Masked)
			}
			if strings.Contains(c.raw, "4111") || strings.Contains(c.raw, "078-05") {
				t.Fatalf("the answer says how many, never what: %s", c.raw)
			}
			var wire []string
			for _, r := range e.jira.Received("") {
				wire = append(wire, string(r.Body), string(r.Raw), r.Query.Encode())
			}
			for _, r := range e.sn.Received("") {
				wire = append(wire, string(r.Body), r.Query.Encode())
			}
			for _, r := range e.genesys.Received("") {
				wire = append(wire, string(r.Body))
			}
			all := strings.Join(wire, "\n") + "\n" + e.logs.String()
			for _, s := range secretsInText {
				for _, form := range []string{strings.TrimSpace(s), digits(s)} {
					if strings.Contains(all, form) {
						t.Fatalf("%q reached a fake or a log line", form)
					}
				}
			}
			if !strings.Contains(all, "[MASKED:card]") || !strings.Contains(all, "[MASKED:ssn]") || !strings.Contains(all, "[MASKED:order]") || !strings.Contains(all, "[MASKED:account]") {
				t.Fatalf("placeholders missing from what was sent:\n%s", all)
			}
		})
	}
}

func TestQueuedEscalationsAreStoredMasked(t *testing.T) {
	e := newEnv(t, with("ESCALATION_BUDGET_MS", "3000"))
	e.jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503})
	c := e.post(body("conversationId", conv, "trigger", "vip", "description", "card "+secretsInText[0]))
	if c.res.Status != "queued" || c.res.Masked != 1 {
		t.Fatalf("%s", c.raw)
	}
	for _, it := range e.stateItems("OUTBOX") {
		if strings.Contains(attrS(it, "escalation"), "4111") {
			t.Fatalf("the outbox holds an unmasked card number: %s", attrS(it, "escalation"))
		}
	}
}

func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestHoldTimeBelowThresholdIsSkipped(t *testing.T) {
	e := newEnv(t, with("HOLD_THRESHOLD_SECONDS", "180"))
	c := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 179))
	if c.res.Status != escalation.StatusSkipped || c.res.Reason != escalation.ReasonBelowThreshold || c.res.TicketKey != "" {
		t.Fatalf("%s", c.raw)
	}
	if len(e.jira.Received("")) != 0 || len(e.stateItems("")) != 0 {
		t.Fatal("a skipped escalation must touch nothing")
	}
	if c := e.post(body("conversationId", conv, "trigger", "hold_time", "holdSeconds", "180")); c.res.Status != "created" {
		t.Fatalf("at the threshold: %s", c.raw)
	}
}

// Only what makes an escalation impossible is refused: a missing or malformed conversationId or
// trigger, holdSeconds for hold_time, a body that is not a JSON object, and an input name that
// is a typo of a known one (a broken request template, seen the first time the action is
// tested).
func TestOnlyImpossibleInputIsRejected(t *testing.T) {
	e := newEnv(t, with("SERVICENOW_BASE_URL", ""), with("ESCALATION_TARGETS", ""))
	cases := []struct{ body, field, code string }{
		{`{}`, "conversationId", "missing_field"},
		{body("trigger", "vip"), "conversationId", "missing_field"},
		{body("conversationId", "abc def", "trigger", "vip"), "conversationId", "invalid_field"},
		{body("conversationId", strings.Repeat("a", 65), "trigger", "vip"), "conversationId", "invalid_field"},
		{body("conversationId", []string{conv}, "trigger", "vip"), "conversationId", "invalid_field"},
		{body("conversationId", conv), "trigger", "missing_field"},
		{body("conversationId", conv, "trigger", "angry"), "trigger", "invalid_field"},
		{body("conversationId", conv, "trigger", "hold_time"), "holdSeconds", "missing_field"},
		{body("conversationId", conv, "trigger", "hold_time", "holdSeconds", -5), "holdSeconds", "invalid_field"},
		{body("conversationId", conv, "trigger", "hold_time", "holdSeconds", "long"), "holdSeconds", "invalid_field"},
		{body("conversationId", conv, "trigger", "hold_time", "holdSeconds", 12.5), "holdSeconds", "invalid_field"},
		{body("conversationId", conv, "trigger", "vip", "conversationID", "x"), "conversationID", "unknown_field"},
		{body("conversationId", conv, "trigger", "vip", "customerEmial", "jane@example.com"), "customerEmial", "unknown_field"},
		{body("conversationId", conv, "trigger", "vip", "customer_email", "jane@example.com"), "customer_email", "unknown_field"},
		{body("conversationId", conv, "trigger", "vip", "Trigger", "vip"), "Trigger", "unknown_field"},
		{`{"conversationId":`, "body", "invalid_json"},
		{`["conversationId"]`, "body", "invalid_json"},
	}
	for _, c := range cases {
		got := e.post(c.body)
		if got.status != 400 || got.rej.Status != "rejected" || got.rej.Error == nil || got.rej.Error.Field != c.field || got.rej.Error.Code != c.code || got.rej.Error.Message == "" {
			t.Errorf("%.80s: got %d %s; want 400 %s on %s", c.body, got.status, got.raw, c.code, c.field)
		}
	}
	if got := e.post(body("conversationId", conv, "trigger", "vip", "customerEmial", "x")); !strings.Contains(got.rej.Error.Message, "did you mean customerEmail") {
		t.Errorf("a typo names the input it resembles: %s", got.raw)
	}
	if n := len(e.jira.Received("")); n != 0 {
		t.Fatalf("rejected requests reached Jira %d times", n)
	}
}

// Every other bad input is dropped or shortened, named in warnings, counted, listed in the
// ticket, and the escalation is delivered.
func TestBadOptionalInputIsDroppedWithAWarning(t *testing.T) {
	cases := []struct {
		name   string
		pairs  []any
		field  string
		absent string // a value that must not reach Jira
	}{
		{"email", []any{"customerEmail", "jane at example"}, "customerEmail", "jane at example"},
		{"account id", []any{"customerAccountId", "jane@example.com"}, "customerAccountId", ""},
		{"sys_id", []any{"callerSysId", "not-a-sys-id"}, "callerSysId", "not-a-sys-id"},
		{"recording", []any{"recordingUrl", "javascript:alert(1)"}, "recordingUrl", "javascript:"},
		{"time without offset", []any{"occurredAt", "2026-11-22T10:15:00"}, "occurredAt", ""},
		{"time", []any{"occurredAt", "yesterday"}, "occurredAt", "yesterday"},
		{"control characters", []any{"customerName", "Jane\x00Doe"}, "customerName", `\u0000`},
		{"long description", []any{"description", strings.Repeat("x", 16001)}, "description", strings.Repeat("x", 16001)},
		{"long name", []any{"agentName", strings.Repeat("a", 300)}, "agentName", strings.Repeat("a", 256)},
		{"object", []any{"customerName", map[string]any{"first": "x"}}, "customerName", ""},
		{"participant", []any{"participantId", "not an id"}, "participantId", ""},
		{"phone", []any{"customerPhone", strings.Repeat("5", 80)}, "customerPhone", strings.Repeat("5", 80)},
		{"unknown target", []any{"target", "zendesk"}, "target", ""},
		{"unconfigured target", []any{"target", "servicenow"}, "target", ""},
		{"hold seconds of a vip", []any{"holdSeconds", "long"}, "holdSeconds", ""},
		{"unknown input", []any{"customer", map[string]any{"name": "x"}}, "customer", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, with("SERVICENOW_BASE_URL", ""), with("ESCALATION_TARGETS", ""))
			got := e.post(body(append([]any{"conversationId", conv, "trigger", "vip"}, c.pairs...)...))
			if got.status != 200 || got.res.Status != escalation.StatusCreated || got.res.Target != escalation.Jira {
				t.Fatalf("got %d %s; want the escalation delivered", got.status, got.raw)
			}
			if len(got.res.Warnings) != 1 || !strings.HasPrefix(got.res.Warnings[0], c.field+": ") {
				t.Fatalf("warnings %q; want one naming %s", got.res.Warnings, c.field)
			}
			dim := c.field
			if c.field == "customer" {
				dim = "unknown_input"
			}
			if !strings.Contains(got.metrics, `"InputWarning"`) || !strings.Contains(got.metrics, `"Field":"`+dim+`"`) {
				t.Fatalf("metrics %s; want InputWarning for %s", got.metrics, dim)
			}
			creates := e.jiraCreates()
			if len(creates) != 1 {
				t.Fatalf("%d creates", len(creates))
			}
			sent, _ := json.Marshal(creates[0])
			if c.absent != "" && strings.Contains(string(sent), c.absent) {
				t.Fatalf("the dropped value reached Jira: %.300s", sent)
			}
			if !strings.Contains(string(sent), "Input problems") || !strings.Contains(string(sent), c.field+": ") {
				t.Fatalf("the ticket does not list the input problem: %.500s", sent)
			}
		})
	}
	// A clean request has an empty list, never null (the data action maps it).
	e := newEnv(t)
	if got := e.post(body("conversationId", conv, "trigger", "vip")); got.res.Warnings == nil || len(got.res.Warnings) != 0 || !strings.Contains(got.raw, `"warnings":[]`) {
		t.Fatalf("%s", got.raw)
	}
}

func TestOccurredAtAnyOffsetIsSentInUTC(t *testing.T) {
	for in, want := range map[string]string{
		"2026-11-22T15:45:00+05:30":     "2026-11-22T10:15:00Z",
		"2026-11-22T05:15:00-0500":      "2026-11-22T10:15:00Z",
		"2026-11-22T10:15:00.123Z":      "2026-11-22T10:15:00Z",
		"2026-11-22T11:15+01:00":        "2026-11-22T10:15:00Z",
		"2026-11-22T12:15:00.5+02":      "2026-11-22T10:15:00Z",
		"2026-11-22 11:15:00.000+01:00": "2026-11-22T10:15:00Z",
	} {
		tm, ok := escalation.ParseTime(in)
		if !ok || tm.UTC().Format(time.RFC3339) != want {
			t.Errorf("%s -> %v %v; want %s", in, tm.UTC(), ok, want)
		}
	}
}

func TestDirectInvocationFromAGenesysLambdaDataAction(t *testing.T) {
	e := newEnv(t)
	// An AWS Lambda data action sends the rendered template itself; numbers come unquoted.
	out, err := lambda.NewHandler(apigw.Lambda(apigw.Limits{}, e.svc.Handle)).Invoke(context.Background(),
		[]byte(`{"conversationId":"`+conv+`","trigger":"hold_time","holdSeconds":245}`))
	if err != nil {
		t.Fatal(err)
	}
	var res escalation.Result
	if err := json.Unmarshal(out, &res); err != nil || res.Status != "created" {
		t.Fatalf("%s (%v)", out, err)
	}
}

func TestNoTargetConfiguredFailsAndAlarms(t *testing.T) {
	e := newEnv(t, with("JIRA_BASE_URL", ""), with("SERVICENOW_BASE_URL", ""))
	c := e.post(body("conversationId", conv, "trigger", "vip"))
	if c.status != 200 || c.res.Status != escalation.StatusFailed || c.res.Reason != escalation.ReasonConfiguration || !strings.Contains(c.metrics, `"EscalationFailed":1`) {
		t.Fatalf("%d %s %s", c.status, c.raw, c.metrics)
	}
	if sum, _ := e.redrive(); sum.Due != 0 {
		t.Fatalf("%+v", sum)
	}
}
