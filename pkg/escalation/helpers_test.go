package escalation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/apigw/apigwtest"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys/genesystest"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

// Credentials the fakes accept.
const (
	jiraEmail  = "bot@example.com"
	jiraToken  = "jira-api-token"
	jiraClient = "jira-sa-client"
	jiraSecret = "jira-sa-secret"
	snUser     = "cxbridge.integration"
	snPassword = "sn-password"
	gcClient   = "gc-client"
	gcSecret   = "gc-secret"
)

// Desks of the Jira fake: the default SUPP desk plus CORE and BILL for the project-key rules.
func desks() []jiratest.ServiceDesk {
	support := jiratest.DefaultServiceDesk()
	core := jiratest.ServiceDesk{ID: "2", ProjectKey: "CORE", RequestTypes: []jiratest.RequestType{{ID: "20", Name: "Bug"}}}
	bill := jiratest.ServiceDesk{ID: "3", ProjectKey: "BILL", RequestTypes: []jiratest.RequestType{{ID: "30", Name: "Billing question"}}}
	return []jiratest.ServiceDesk{support, core, bill}
}

// clock is the service's clock: real time plus an offset tests can move forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time       { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Jump(d time.Duration) { c.offset.Add(int64(d)) }

// env is one deployment of create-escalation and escalation-redrive, wired exactly as the
// functions wire it, against wire-level fakes and DynamoDB Local.
type env struct {
	t       testing.TB
	svc     *escalation.Service
	jira    *jiratest.Server
	sn      *servicenowtest.Server
	genesys *genesystest.Server
	secrets *secretstest.Server
	db      *dynamodb.Client
	tables  dynamotest.Tables
	clock   *clock
	vars    map[string]string
	logs    *lockedBuffer
	bs      breaker.Settings
}

// build (re)creates the service from e.vars, as a cold start does.
func (e *env) build() {
	e.t.Helper()
	r := config.FromMap(e.vars)
	cfg := escalation.LoadConfig(r)
	limitCfg := ratelimit.LoadConfig(r)
	if err := r.Err(); err != nil {
		e.t.Fatalf("configuration: %v", err)
	}
	sec := secrets.New(e.secrets.Client())
	// The shared rate limits are wired as boot wires them (they keep real time), with a store
	// timeout for DynamoDB Local on a loaded machine rather than DynamoDB: a limiter failing
	// open would hide what the tests check (its fail-open is tested in pkg/ratelimit).
	limitCfg.StoreTimeout = 30 * time.Second
	limits := limitCfg.Limits(e.db, cfg.StateTable)
	svc, err := escalation.New(cfg, escalation.Deps{DB: e.db, Secrets: sec, Limits: limits, Breaker: e.bs, Now: e.clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
}

// rewire returns a second execution environment on the same fakes and tables, with some
// variables changed.
func (e *env) rewire(t *testing.T, changes map[string]string) *env {
	t.Helper()
	e2 := *e
	e2.vars = map[string]string{}
	for k, v := range e.vars {
		e2.vars[k] = v
	}
	for k, v := range changes {
		e2.vars[k] = v
	}
	e2.build()
	return &e2
}

type setting func(vars map[string]string, jira *jiratest.Config, bs *breaker.Settings)

func with(k, v string) setting {
	return func(vars map[string]string, _ *jiratest.Config, _ *breaker.Settings) { vars[k] = v }
}

func newEnv(t testing.TB, settings ...setting) *env {
	t.Helper()
	jcfg := jiratest.Config{Email: jiraEmail, APIToken: jiraToken, ClientID: jiraClient, ClientSecret: jiraSecret, ServiceDesks: desks()}
	bs := breaker.Settings{Threshold: 3, OpenFor: time.Minute, CacheMaxAge: -1}
	vars := map[string]string{
		"JIRA_PROJECTS":           "SUPP=1/10;CORE=2/20;BILL=3/30",
		"JIRA_DEFAULT_PROJECT":    "SUPP",
		"JIRA_SECRET_ID":          "cxbridge/jira",
		"SERVICENOW_SECRET_ID":    "cxbridge/servicenow",
		"GENESYS_SECRET_ID":       "cxbridge/genesys",
		"ESCALATION_BUDGET_MS":    "2500",
		"JIRA_SEARCH_LAG_SECONDS": "0",
	}
	for _, s := range settings {
		s(vars, &jcfg, &bs)
	}
	e := &env{t: t, clock: &clock{}, vars: vars, logs: &lockedBuffer{}}
	e.jira = jiratest.New(jcfg)
	t.Cleanup(e.jira.Close)
	e.sn = servicenowtest.New(servicenowtest.Config{Username: snUser, Password: snPassword})
	t.Cleanup(e.sn.Close)
	e.genesys = genesystest.New(gcClient, gcSecret)
	t.Cleanup(e.genesys.Close)
	e.secrets = secretstest.New(map[string]string{
		"cxbridge/jira":       `{"email":"` + jiraEmail + `","apiToken":"` + jiraToken + `"}`,
		"cxbridge/servicenow": `{"username":"` + snUser + `","password":"` + snPassword + `"}`,
		"cxbridge/genesys":    `{"clientId":"` + gcClient + `","clientSecret":"` + gcSecret + `"}`,
	})
	t.Cleanup(e.secrets.Close)
	local, tables := dynamotest.ForTest(t)
	e.db, e.tables = local.Client(), tables
	defaults := map[string]string{
		"STATE_TABLE": tables.State, "IDEMPOTENCY_TABLE": tables.Idempotency,
		"JIRA_BASE_URL": e.jira.URL(), "SERVICENOW_BASE_URL": e.sn.URL(),
		"GENESYS_API_BASE_URL": e.genesys.URL(), "GENESYS_LOGIN_BASE_URL": e.genesys.URL(),
	}
	for k, v := range defaults {
		if _, set := vars[k]; !set {
			vars[k] = v
		}
	}
	e.bs = bs
	e.build()
	// Every log line of the test goes through the production logger into a buffer.
	prev := slog.Default()
	slog.SetDefault(observe.NewLogger(e.logs, "cxbridge", slog.LevelDebug))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return e
}

// call is one invocation's answer.
type call struct {
	status  int
	res     escalation.Result
	raw     string
	rej     apigw.Rejection
	metrics string
}

// post runs a request body through the same adapter the Lambda uses (REST API event).
func (e *env) post(body string) call {
	e.t.Helper()
	return e.postCtx(context.Background(), body)
}

func (e *env) postCtx(ctx context.Context, body string) call {
	e.t.Helper()
	m := observe.NewMetrics("cxbridge", observe.D("Service", "cxbridge"), observe.D("Function", "create-escalation"))
	ctx = observe.WithFields(observe.WithMetrics(ctx, m))
	resp, err := apigwtest.Post(ctx, e.svc.Handle, "/escalations", apigwtest.JSON, body)
	if err != nil {
		e.t.Fatal(err)
	}
	c := call{status: resp.StatusCode, raw: resp.Body}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(resp.Body), &c.res); err != nil {
			e.t.Fatalf("decode %s: %v", resp.Body, err)
		}
	} else {
		_ = json.Unmarshal([]byte(resp.Body), &c.rej)
	}
	var buf bytes.Buffer
	_ = m.Flush(&buf, time.Unix(0, 0))
	c.metrics = buf.String()
	return c
}

// redrive runs escalation-redrive once and returns its summary and metrics.
func (e *env) redrive() (escalation.RedriveSummary, string) {
	e.t.Helper()
	m := observe.NewMetrics("cxbridge", observe.D("Service", "cxbridge"), observe.D("Function", "escalation-redrive"))
	ctx, cancel := context.WithTimeout(observe.WithMetrics(context.Background(), m), 60*time.Second)
	defer cancel()
	sum := e.svc.Redrive(ctx)
	var buf bytes.Buffer
	_ = m.Flush(&buf, time.Unix(0, 0))
	return sum, buf.String()
}

// body builds a request body from pairs; values are JSON-encoded.
func body(pairs ...any) string {
	m := map[string]any{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i].(string)] = pairs[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// jiraCreates returns the bodies of the create-request calls Jira received.
func (e *env) jiraCreates() []map[string]any {
	var out []map[string]any
	for _, r := range e.jira.Received("/rest/servicedeskapi/request") {
		if r.Method == http.MethodPost && r.Path == "/rest/servicedeskapi/request" {
			var m map[string]any
			_ = json.Unmarshal(r.Body, &m)
			out = append(out, m)
		}
	}
	return out
}

// snCalls returns the Table API requests ServiceNow received with a method.
func (e *env) snCalls(method string) []servicenowtest.Received {
	var out []servicenowtest.Received
	for _, r := range e.sn.Received("/api/now") {
		if r.Method == method {
			out = append(out, r)
		}
	}
	return out
}

// stateItems returns every state-table item whose pk starts with prefix.
func (e *env) stateItems(prefix string) []map[string]types.AttributeValue {
	e.t.Helper()
	var out []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(e.db, &dynamodb.ScanInput{TableName: aws.String(e.tables.State)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			e.t.Fatal(err)
		}
		for _, it := range page.Items {
			if pk, ok := it["pk"].(*types.AttributeValueMemberS); ok && strings.HasPrefix(pk.Value, prefix) {
				out = append(out, it)
			}
		}
	}
	return out
}

func attrS(it map[string]types.AttributeValue, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

const conv = "5d4a1e0c-7b6f-4f3e-9c11-5a2b8e9d0f01"

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
