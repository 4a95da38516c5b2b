package lookup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/apigw/apigwtest"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/lookup"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

// env is one servicenow-lookup execution environment wired to the ServiceNow fake, the Secrets
// Manager fake and DynamoDB Local, built the way functions/servicenow-lookup/main.go builds it.
type env struct {
	svc     *lookup.Service
	sn      *servicenowtest.Server
	links   *callerlink.Store
	client  *servicenow.Client
	secrets connectors.SecretReader
	db      *dynamodb.Client
	table   string
}

type option func(*lookup.Config, *breaker.Settings)

func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	sn := servicenowtest.New(servicenowtest.Config{Username: "cxbridge.integration", Password: "s3cret"})
	t.Cleanup(sn.Close)
	sm := secretstest.New(map[string]string{"cxbridge/servicenow": `{"username":"cxbridge.integration","password":"s3cret"}`})
	t.Cleanup(sm.Close)
	local, tables := dynamotest.ForTest(t)

	pattern, err := servicenow.NewTokenPattern(`E[0-9]{5}`)
	if err != nil {
		t.Fatal(err)
	}
	cfg := lookup.Config{
		ServiceNowBaseURL:  sn.URL(),
		ServiceNowSecretID: "cxbridge/servicenow",
		DefaultRegion:      "US",
		EmployeeIDs:        pattern,
		Learn:              lookup.LearnIfEmpty,
		Timeout:            800 * time.Millisecond,
		WaitingTTL:         time.Hour,
		StateTable:         tables.State,
	}
	if cfg.UserFields, err = lookup.ParseUserFields(lookup.DefaultUserFields); err != nil {
		t.Fatal(err)
	}
	bs := breaker.Settings{Name: "servicenow", Threshold: 3, OpenFor: time.Minute}
	for _, o := range opts {
		o(&cfg, &bs)
	}
	sec := secrets.New(sm.Client())
	client := servicenow.New(cfg.ServiceNowBaseURL, sec, cfg.ServiceNowSecretID, connectors.DefaultHTTPClient)
	links := &callerlink.Store{DB: local.Client(), Table: cfg.StateTable, TTL: cfg.WaitingTTL}
	return &env{
		svc: &lookup.Service{
			Config:     cfg,
			ServiceNow: client,
			Links:      links,
			Guard:      breaker.New(local.Client(), cfg.StateTable, bs),
		},
		sn: sn, links: links, client: client, secrets: sec, db: local.Client(), table: tables.State,
	}
}

// lookup runs one request through the same adapter the Lambda uses (REST API shape) and returns
// the decoded answer and the invocation's metrics.
func (e *env) lookup(t testing.TB, body string) (lookup.Result, string) {
	t.Helper()
	m := observe.NewMetrics("cxbridge", observe.D("Service", "cxbridge"), observe.D("Function", "servicenow-lookup"))
	resp := e.handle(t, observe.WithMetrics(context.Background(), m), body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %s", resp.StatusCode, resp.Body)
	}
	var r lookup.Result
	dec := json.NewDecoder(bytes.NewReader([]byte(resp.Body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("decode %s: %v", resp.Body, err)
	}
	var buf bytes.Buffer
	if err := m.Flush(&buf, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	return r, buf.String()
}

// lookupRaw is lookup with the answer's body as sent.
func (e *env) lookupRaw(t testing.TB, body string) (lookup.Result, string) {
	t.Helper()
	resp := e.handle(t, context.Background(), body)
	var r lookup.Result
	if err := json.Unmarshal([]byte(resp.Body), &r); err != nil {
		t.Fatalf("decode %s: %v", resp.Body, err)
	}
	return r, resp.Body
}

func (e *env) handle(t testing.TB, ctx context.Context, body string) events.APIGatewayProxyResponse {
	t.Helper()
	resp, err := apigwtest.Post(ctx, e.svc.Handle, "/servicenow/lookup", apigwtest.JSON, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// calls counts the Table API requests the fake received.
func (e *env) calls() (users, incidents, total int) {
	return e.sn.Calls("/api/now/v2/table/sys_user"), e.sn.Calls("/api/now/v2/table/incident"), e.sn.Calls("/api/")
}
