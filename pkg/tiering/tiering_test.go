package tiering_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/apigw/apigwtest"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys/genesystest"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry/telemetrytest"
	"github.com/cxbridge/cxbridge/pkg/dataaction"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
	"github.com/cxbridge/cxbridge/pkg/tiering"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

// env is one telemetry-tier execution environment wired to real fakes and DynamoDB Local.
type env struct {
	svc       *tiering.Service
	telemetry *telemetrytest.Server
	genesys   *genesystest.Server
	secrets   *secretstest.Server
}

type option func(*tiering.Config, *breaker.Settings)

func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	tel := telemetrytest.New()
	tel.APIKey = "tel-key"
	t.Cleanup(tel.Close)
	gc := genesystest.New("gc-client", "gc-secret")
	t.Cleanup(gc.Close)
	sm := secretstest.New(map[string]string{
		"cxbridge/telemetry": `{"apiKey":"tel-key"}`,
		"cxbridge/genesys":   `{"clientId":"gc-client","clientSecret":"gc-secret"}`,
	})
	t.Cleanup(sm.Close)

	local, tables := dynamotest.ForTest(t)
	cfg := tiering.Config{
		TelemetryURL:      tel.URL(),
		TelemetrySecretID: "cxbridge/telemetry",
		Queues: map[tiering.Tier]tiering.Queue{
			tiering.L1: {ID: "q-l1", Name: "Support L1"},
			tiering.L2: {ID: "q-l2", Name: "Support L2"},
			tiering.L3: {ID: "q-l3", Name: "Support L3"},
		},
		Fallback:            tiering.L1,
		Timeout:             500 * time.Millisecond,
		ObservationWait:     250 * time.Millisecond,
		EscalationRaises:    true,
		GenesysAPIBaseURL:   gc.URL(),
		GenesysLoginBaseURL: gc.URL(),
		GenesysSecretID:     "cxbridge/genesys",
		StateTable:          tables.State,
	}
	// A generous store timeout: on a loaded machine DynamoDB Local can be slower than the
	// production default, and a breaker failing open would hide what these tests check.
	bs := breaker.Settings{Name: "telemetry", Threshold: 3, OpenFor: time.Minute, ProbeLease: 5 * time.Second}
	for _, o := range opts {
		o(&cfg, &bs)
	}
	sec := secrets.New(sm.Client())
	svc := &tiering.Service{
		Config:    cfg,
		Telemetry: telemetry.New(cfg.TelemetryURL, sec, cfg.TelemetrySecretID, connectors.DefaultHTTPClient),
		Guard:     breaker.New(local.Client(), cfg.StateTable, bs),
	}
	if cfg.ObservesQueues() {
		svc.Observer = genesys.New(cfg.GenesysAPIBaseURL, cfg.GenesysLoginBaseURL, sec, cfg.GenesysSecretID, connectors.DefaultHTTPClient)
	}
	return &env{svc: svc, telemetry: tel, genesys: gc, secrets: sm}
}

// decide runs one request through the same adapter the Lambda uses (REST API shape) and
// returns the decoded decision and the invocation's metrics.
func (e *env) decide(t *testing.T, body string) (tiering.Decision, string) {
	t.Helper()
	m := observe.NewMetrics("cxbridge", observe.D("Service", "cxbridge"), observe.D("Function", "telemetry-tier"))
	ctx := observe.WithMetrics(context.Background(), m)
	resp := e.handle(t, ctx, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, resp.Body)
	}
	var d tiering.Decision
	if err := json.Unmarshal([]byte(resp.Body), &d); err != nil {
		t.Fatalf("decode %s: %v", resp.Body, err)
	}
	var buf bytes.Buffer
	if err := m.Flush(&buf, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	return d, buf.String()
}

func (e *env) handle(t *testing.T, ctx context.Context, body string) events.APIGatewayProxyResponse {
	t.Helper()
	resp, err := apigwtest.Post(ctx, e.svc.Handle, "/telemetry/tier", apigwtest.JSON, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestSeverityPicksTier(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		customer   string
		severity   int
		escalation bool
		tier       tiering.Tier
		queue      string
	}{
		{"critical", 3, false, tiering.L3, "q-l3"},
		{"high", 2, false, tiering.L2, "q-l2"},
		{"normal", 1, false, tiering.L1, "q-l1"},
		{"zero", 0, false, tiering.L1, "q-l1"},
		{"out-of-range", 7, false, tiering.L1, "q-l1"},
		{"normal-escalating", 1, true, tiering.L2, "q-l2"},
		{"high-escalating", 2, true, tiering.L3, "q-l3"},
		{"critical-escalating", 3, true, tiering.L3, "q-l3"},
	}
	for _, c := range cases {
		t.Run(c.customer, func(t *testing.T) {
			e.telemetry.Severity(c.customer, c.severity, c.escalation)
			d, metrics := e.decide(t, `{"customerId":"`+c.customer+`","conversationId":"8f1c2d3e-0000-4000-8000-000000000001"}`)
			if d.Status != tiering.StatusOK || d.Tier != c.tier || d.QueueID != c.queue || d.Source != tiering.SourceTelemetry {
				t.Fatalf("got %+v; want ok %s %s from telemetry", d, c.tier, c.queue)
			}
			if d.SeverityLevel != c.severity || d.EscalationRequired != c.escalation || d.Reason != "" || d.Cascaded {
				t.Fatalf("decision fields wrong: %+v", d)
			}
			if !strings.Contains(metrics, `"TierDecision":1`) || !strings.Contains(metrics, `"Tier":"`+string(c.tier)+`"`) {
				t.Fatalf("no TierDecision metric for %s in %s", c.tier, metrics)
			}
			if (c.severity > 3) != strings.Contains(metrics, "TelemetryUnexpectedSeverity") {
				t.Fatalf("unexpected-severity metric wrong for %d: %s", c.severity, metrics)
			}
		})
	}
}

func TestEscalationCanBeIgnored(t *testing.T) {
	e := newEnv(t, func(c *tiering.Config, _ *breaker.Settings) { c.EscalationRaises = false })
	e.telemetry.Severity("acme", 1, true)
	if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Tier != tiering.L1 || !d.EscalationRequired {
		t.Fatalf("escalation_required raised the tier although TIER_ESCALATION_RAISES is off: %+v", d)
	}
}

func TestTelemetryRequestOnTheWire(t *testing.T) {
	e := newEnv(t)
	e.telemetry.Severity("acme", 2, false)
	before := time.Now().UTC().Add(-time.Second)
	e.decide(t, `{"customerId":"acme","ani":"+442071838750"}`)
	got := e.telemetry.Received()
	if len(got) != 1 {
		t.Fatalf("telemetry received %d requests, want 1", len(got))
	}
	r := got[0]
	if r.CustomerID != "acme" || r.RequestType != telemetry.RequestType || r.ANI != "+442071838750" {
		t.Fatalf("request body %s", r.Raw)
	}
	ts, err := time.Parse(time.RFC3339, r.Timestamp)
	if err != nil || !strings.HasSuffix(r.Timestamp, "Z") || ts.Before(before) {
		t.Fatalf("timestamp %q is not a current UTC ISO-8601 time", r.Timestamp)
	}
	if r.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("Cache-Control %q: telemetry must be read live", r.Header.Get("Cache-Control"))
	}
}

func TestEveryCallReadsLiveTelemetry(t *testing.T) {
	e := newEnv(t)
	e.telemetry.Script("acme",
		telemetrytest.Answer{Reading: &telemetrytest.Reading{SeverityLevel: 1}},
		telemetrytest.Answer{Reading: &telemetrytest.Reading{SeverityLevel: 3}})
	first, _ := e.decide(t, `{"customerId":"acme"}`)
	second, _ := e.decide(t, `{"customerId":"acme"}`)
	if first.Tier != tiering.L1 || second.Tier != tiering.L3 || len(e.telemetry.Received()) != 2 {
		t.Fatalf("a changed reading must change the route at once: %s then %s, %d calls", first.Tier, second.Tier, len(e.telemetry.Received()))
	}
}

func TestSuggestedQueueOnlyWhenConfigured(t *testing.T) {
	e := newEnv(t)
	e.telemetry.Script("known", telemetrytest.Answer{Reading: &telemetrytest.Reading{SeverityLevel: 1, QueueID: "q-l3"}})
	e.telemetry.Script("unknown", telemetrytest.Answer{Reading: &telemetrytest.Reading{SeverityLevel: 2, QueueID: "q-somewhere-else"}})
	if d, _ := e.decide(t, `{"customerId":"known"}`); d.Tier != tiering.L3 || d.QueueID != "q-l3" || d.Source != tiering.SourceTelemetryQueue {
		t.Fatalf("configured suggested queue not used: %+v", d)
	}
	d, metrics := e.decide(t, `{"customerId":"unknown"}`)
	if d.Tier != tiering.L2 || d.QueueID != "q-l2" || d.Source != tiering.SourceTelemetry {
		t.Fatalf("unconfigured suggested queue must be ignored: %+v", d)
	}
	if !strings.Contains(metrics, "TelemetryQueueIgnored") {
		t.Fatalf("ignoring a suggested queue must be counted: %s", metrics)
	}
}

func TestFallbacks(t *testing.T) {
	cases := []struct {
		name    string
		answers []telemetrytest.Answer
		reason  string
		calls   int
	}{
		{"5xx twice", []telemetrytest.Answer{{Status: 503, Body: `{"error":"maintenance"}`}}, tiering.ReasonUnavailable, 2},
		{"5xx then ok is not a fallback", []telemetrytest.Answer{{Status: 502}, {Reading: &telemetrytest.Reading{SeverityLevel: 3}}}, "", 2},
		{"429 beyond the budget", []telemetrytest.Answer{{Status: 429, Body: `{"error":"slow down"}`, Header: http.Header{"Retry-After": {"30"}}}}, tiering.ReasonRateLimited, 1},
		{"404 unknown customer", []telemetrytest.Answer{{Status: 404, Body: `{"error":"no such customer"}`}}, tiering.ReasonNotFound, 1},
		{"400", []telemetrytest.Answer{{Status: 400, Body: `{"message":"bad"}`}}, tiering.ReasonRejected, 1},
		{"malformed json", []telemetrytest.Answer{{Body: `{"severity_level": 3,`}}, tiering.ReasonMalformed, 1},
		{"html page", []telemetrytest.Answer{{Body: `<html>oops</html>`}}, tiering.ReasonMalformed, 1},
		{"missing severity", []telemetrytest.Answer{{Body: `{"customer_id":"x","escalation_required":true}`}}, tiering.ReasonNoSeverity, 1},
		{"null severity", []telemetrytest.Answer{{Body: `{"severity_level":null}`}}, tiering.ReasonNoSeverity, 1},
		{"severity not a number", []telemetrytest.Answer{{Body: `{"severity_level":"high"}`}}, tiering.ReasonMalformed, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(cfg *tiering.Config, _ *breaker.Settings) { cfg.Fallback = tiering.L2 })
			e.telemetry.Script("acme", c.answers...)
			d, metrics := e.decide(t, `{"customerId":"acme"}`)
			if n := len(e.telemetry.Received()); n != c.calls {
				t.Errorf("telemetry calls = %d, want %d", n, c.calls)
			}
			if c.reason == "" {
				if d.Status != tiering.StatusOK {
					t.Fatalf("want ok, got %+v", d)
				}
				return
			}
			if d.Status != tiering.StatusFallback || d.Reason != c.reason || d.Tier != tiering.L2 || d.QueueID != "q-l2" || d.Source != tiering.SourceFallback {
				t.Fatalf("got %+v; want fallback to L2 because %s", d, c.reason)
			}
			if !strings.Contains(metrics, `"Reason":"`+c.reason+`"`) || !strings.Contains(metrics, `"TelemetryFallback":1`) {
				t.Fatalf("fallback metric missing: %s", metrics)
			}
		})
	}
}

func TestHungTelemetryAnswersWithinBudget(t *testing.T) {
	e := newEnv(t)
	e.telemetry.Script("acme", telemetrytest.Hang)
	start := time.Now()
	d, _ := e.decide(t, `{"customerId":"acme"}`)
	elapsed := time.Since(start)
	if d.Status != tiering.StatusFallback || d.Reason != tiering.ReasonTimeout || d.Tier != tiering.L1 {
		t.Fatalf("got %+v, want timeout fallback", d)
	}
	// The budget is 500 ms; the caller must hear back within it plus 200 ms.
	if limit := e.svc.Config.Timeout + 200*time.Millisecond; elapsed > limit {
		t.Fatalf("answered after %s; the promise is %s", elapsed, limit)
	}
}

func TestBadCredentialsFallBack(t *testing.T) {
	e := newEnv(t)
	e.secrets.Put("cxbridge/telemetry", `{"apiKey":"wrong"}`)
	e.telemetry.Severity("acme", 3, false)
	if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Reason != tiering.ReasonUnauthorized {
		t.Fatalf("got %+v, want unauthorized fallback", d)
	}
}

func TestOAuthCredentialsAreCachedAndRenewed(t *testing.T) {
	e := newEnv(t)
	e.telemetry.APIKey = ""
	e.telemetry.ClientID, e.telemetry.ClientSecret = "tel-client", "tel-secret"
	e.secrets.Put("cxbridge/telemetry", `{"tokenUrl":"`+e.telemetry.TokenURL()+`","clientId":"tel-client","clientSecret":"tel-secret"}`)
	e.telemetry.Severity("acme", 3, false)
	for i := 0; i < 3; i++ {
		if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Tier != tiering.L3 {
			t.Fatalf("call %d: %+v", i, d)
		}
	}
	if n := e.telemetry.TokensIssued(); n != 1 {
		t.Fatalf("%d token exchanges for 3 calls; the token must be reused", n)
	}
	e.telemetry.RevokeTokens() // the next call gets a 401 and must renew once
	if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Tier != tiering.L3 {
		t.Fatalf("after revocation: %+v", d)
	}
	if n := e.telemetry.TokensIssued(); n != 2 {
		t.Fatalf("%d token exchanges; want exactly one renewal after the 401", n)
	}
}

func TestBreakerOpensAndFallsBackWithoutCalling(t *testing.T) {
	e := newEnv(t)
	e.telemetry.Script("acme", telemetrytest.Answer{Status: 500})
	for i := 0; i < 3; i++ { // threshold 3, each call one outage (two attempts)
		if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Reason != tiering.ReasonUnavailable {
			t.Fatalf("call %d: %+v", i, d)
		}
	}
	calls := len(e.telemetry.Received())
	d, metrics := e.decide(t, `{"customerId":"acme"}`)
	if d.Reason != tiering.ReasonBreakerOpen || d.Tier != tiering.L1 {
		t.Fatalf("got %+v, want breaker_open fallback", d)
	}
	if n := len(e.telemetry.Received()); n != calls {
		t.Fatalf("an open breaker still called telemetry (%d -> %d)", calls, n)
	}
	if !strings.Contains(metrics, `"Reason":"breaker_open"`) {
		t.Fatalf("metrics: %s", metrics)
	}
}

func TestCascade(t *testing.T) {
	cascade := func(c *tiering.Config, _ *breaker.Settings) { c.Cascade = true }
	t.Run("empty L3 goes to L2", func(t *testing.T) {
		e := newEnv(t, cascade)
		e.genesys.SetQueue("q-l3", genesystest.Queue{Waiting: 4})
		e.genesys.SetQueue("q-l2", genesystest.Queue{Idle: 1, Interacting: 2})
		e.genesys.SetQueue("q-l1", genesystest.Queue{Idle: 5})
		e.telemetry.Severity("acme", 3, false)
		d, metrics := e.decide(t, `{"customerId":"acme"}`)
		if d.Tier != tiering.L2 || d.QueueID != "q-l2" || !d.Cascaded || d.Status != tiering.StatusOK {
			t.Fatalf("got %+v, want cascade to L2", d)
		}
		if !strings.Contains(metrics, `"From":"L3"`) || !strings.Contains(metrics, `"To":"L2"`) {
			t.Fatalf("cascade metric missing: %s", metrics)
		}
		if n := len(e.genesys.Received("/api/v2/analytics")); n != 1 {
			t.Fatalf("%d observation queries; all tiers are observed in one", n)
		}
	})
	t.Run("agents counted across routing statuses", func(t *testing.T) {
		e := newEnv(t, cascade)
		e.genesys.SetQueue("q-l3", genesystest.Queue{Interacting: 1}) // busy, but on queue
		e.genesys.SetQueue("q-l2", genesystest.Queue{Idle: 3})
		e.telemetry.Severity("acme", 3, false)
		if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Tier != tiering.L3 || d.Cascaded {
			t.Fatalf("got %+v; an on-queue agent who is interacting still staffs L3", d)
		}
	})
	t.Run("nobody anywhere keeps the tier", func(t *testing.T) {
		e := newEnv(t, cascade)
		e.telemetry.Severity("acme", 3, false)
		if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Tier != tiering.L3 || d.Cascaded {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("failing observation never blocks routing", func(t *testing.T) {
		e := newEnv(t, cascade)
		e.genesys.Fail("/api/v2/analytics", genesystest.Failure{Status: 503})
		e.telemetry.Severity("acme", 3, false)
		d, metrics := e.decide(t, `{"customerId":"acme"}`)
		if d.Tier != tiering.L3 || d.Cascaded || d.Status != tiering.StatusOK {
			t.Fatalf("got %+v", d)
		}
		if !strings.Contains(metrics, "QueueObservationFailed") {
			t.Fatalf("metrics: %s", metrics)
		}
	})
	t.Run("slow observation does not hold the caller", func(t *testing.T) {
		e := newEnv(t, cascade)
		e.genesys.Fail("/api/v2/analytics", genesystest.Failure{Delay: time.Hour})
		e.telemetry.Severity("acme", 2, false)
		d, _ := e.decide(t, `{"customerId":"acme"}`)
		if d.Tier != tiering.L2 || d.Cascaded {
			t.Fatalf("got %+v", d)
		}
		// telemetry answers at once; the decision may wait ObservationWait, not the budget
		if d.LatencyMs >= e.svc.Config.Timeout.Milliseconds() {
			t.Fatalf("decision took %d ms: a hung observation held the caller for the whole budget", d.LatencyMs)
		}
	})
	t.Run("fallback tier cascades too", func(t *testing.T) {
		e := newEnv(t, cascade, func(c *tiering.Config, _ *breaker.Settings) { c.Fallback = tiering.L2 })
		e.genesys.SetQueue("q-l1", genesystest.Queue{Idle: 2})
		e.telemetry.Script("acme", telemetrytest.Answer{Status: 503})
		if d, _ := e.decide(t, `{"customerId":"acme"}`); d.Status != tiering.StatusFallback || d.Tier != tiering.L1 || !d.Cascaded {
			t.Fatalf("got %+v", d)
		}
	})
}

// Only a request without a customer id (or a typo of an input name, or a body that is not a
// JSON object) is refused.
func TestOnlyAMissingCustomerIDIsRejected(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ body, field, code string }{
		{`{}`, "customerId", "missing_field"},
		{`{"customerId":"  "}`, "customerId", "missing_field"},
		{`{"customerId":"acme","customerID":"x"}`, "customerID", "unknown_field"},
		{`{"customerId":{"id":1}}`, "customerId", "invalid_field"},
		{`not json`, "body", "invalid_json"},
	}
	for _, c := range cases {
		resp := e.handle(t, context.Background(), c.body)
		var rej struct {
			Status string      `json:"status"`
			Error  apigw.Error `json:"error"`
		}
		_ = json.Unmarshal([]byte(resp.Body), &rej)
		if resp.StatusCode != 400 || rej.Status != "rejected" || rej.Error.Field != c.field || rej.Error.Code != c.code || rej.Error.Message == "" {
			t.Errorf("%s: got %d %s; want 400 %s on %s", c.body, resp.StatusCode, resp.Body, c.code, c.field)
		}
	}
	if n := len(e.telemetry.Received()); n != 0 {
		t.Fatalf("rejected requests reached telemetry %d times", n)
	}
}

// Everything else routes the caller, with a warning naming the input.
func TestBadTierInputIsAnsweredWithAWarning(t *testing.T) {
	e := newEnv(t)
	e.telemetry.Severity("acme", 3, false)
	cases := []struct{ body, field, status, reason string }{
		{`{"customerId":"` + strings.Repeat("a", 129) + `"}`, "customerId", tiering.StatusFallback, tiering.ReasonInvalidCustomerID},
		{`{"customerId":"acme\u0007"}`, "customerId", tiering.StatusFallback, tiering.ReasonInvalidCustomerID},
		{`{"customerId":"acme","conversationId":"x^ORactive=true"}`, "conversationId", tiering.StatusOK, ""},
		{`{"customerId":"acme","ani":["+14155550100"]}`, "ani", tiering.StatusOK, ""},
		{`{"customerId":"acme","queue":"L3"}`, "queue", tiering.StatusOK, ""},
	}
	for _, c := range cases {
		resp := e.handle(t, context.Background(), c.body)
		var d tiering.Decision
		_ = json.Unmarshal([]byte(resp.Body), &d)
		if resp.StatusCode != 200 || d.Status != c.status || d.Reason != c.reason || d.QueueID == "" || len(d.Warnings) != 1 || !strings.HasPrefix(d.Warnings[0], c.field+": ") {
			t.Errorf("%s: got %d %s; want 200 %s %s with a warning on %s", c.body, resp.StatusCode, resp.Body, c.status, c.reason, c.field)
		}
	}
	for _, r := range e.telemetry.Received() {
		if r.CustomerID != "acme" || r.ANI != "" {
			t.Fatalf("telemetry was asked about %q (ani %q)", r.CustomerID, r.ANI)
		}
	}
}

func TestNumericCustomerIDFromDirectInvoke(t *testing.T) {
	e := newEnv(t)
	e.telemetry.Severity("123456", 3, false)
	// A Genesys "AWS Lambda" data action sends the rendered template itself, numbers unquoted.
	out, err := lambda.NewHandler(apigw.Lambda(apigw.Limits{}, e.svc.Handle)).Invoke(context.Background(), []byte(`{"customerId":123456}`))
	if err != nil {
		t.Fatal(err)
	}
	var d tiering.Decision
	if err := json.Unmarshal(out, &d); err != nil || d.Tier != tiering.L3 {
		t.Fatalf("direct invoke: %s (%v)", out, err)
	}
}

// The shipped Genesys data action must offer exactly the inputs the function accepts.
func TestDataActionInputContractMatchesInput(t *testing.T) {
	a, err := dataaction.Load("../../integrations/genesys/telemetry-tier.json")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := a.InputNames(), dataaction.FieldNames(tiering.Input{}); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("action inputs %v, function inputs %v", got, want)
	}
	if got, want := a.Contract.Output.SuccessSchema.Required, dataaction.FieldNames(tiering.Decision{}); len(got) != len(want) {
		t.Fatalf("output contract requires %v; the decision always has %v", got, want)
	}
}
