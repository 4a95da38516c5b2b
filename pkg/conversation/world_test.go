package conversation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/conversation"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/mask"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

const (
	publicURL   = "https://hooks.example.com/prod/messagebird/webhook"
	accessKey   = "test_accesskey_0000000000000"
	signingKey  = "mb-signing-key-not-the-api-key"
	jiraSecret  = "jira-webhook-secret"
	janeNumber  = "+31612345678"
	deskID      = jiratest.DefaultServiceDeskID
	requestType = jiratest.RequestTypeConversation
)

// world is one messagebird-inbound execution environment wired to DynamoDB Local and the
// wire-level MessageBird and Jira fakes. Both fakes deliver their webhooks over HTTP to a local
// stand-in for API Gateway, which turns each into the REST API event the Lambda receives.
type world struct {
	t       testing.TB
	svc     *conversation.Service
	mb      *messagebirdtest.Server
	jira    *jiratest.Server
	secrets *secretstest.Server
	db      *dynamodb.Client
	table   string
	hook    *httptest.Server
	handler func(context.Context, json.RawMessage) (any, error)

	mu      sync.Mutex
	metrics bytes.Buffer
}

func newWorld(t testing.TB, opts ...func(*conversation.Config)) *world {
	t.Helper()
	return newWorldWith(t, jiratest.Config{}, opts...)
}

// newWorldWith is newWorld with a Jira fake configured beyond the credentials (search lag...).
func newWorldWith(t testing.TB, jcfg jiratest.Config, opts ...func(*conversation.Config)) *world {
	t.Helper()
	w := &world{t: t}
	// The API Gateway stand-in closes last: the fakes' asynchronous deliveries still reach it.
	w.hook = httptest.NewServer(http.HandlerFunc(w.gateway))
	t.Cleanup(w.hook.Close)

	w.mb = messagebirdtest.New(accessKey, signingKey)
	t.Cleanup(w.mb.Close)
	jcfg.Email, jcfg.APIToken = "bot@example.com", "jira-token"
	w.jira = jiratest.New(jcfg)
	t.Cleanup(w.jira.Close)
	w.secrets = secretstest.New(map[string]string{
		"cxbridge/messagebird": `{"accessKey":"` + accessKey + `","signingKey":"` + signingKey + `"}`,
		"cxbridge/jira":        `{"email":"bot@example.com","apiToken":"jira-token"}`,
		"cxbridge/inbound":     `{"jiraWebhookSecret":"` + jiraSecret + `"}`,
	})
	t.Cleanup(w.secrets.Close)
	local, tables := dynamotest.ForTest(t)
	w.db, w.table = local.Client(), tables.State

	cfg := conversation.Config{
		WebhookURL: publicURL, MessageBirdBaseURL: w.mb.URL(), MessageBirdSecretID: "cxbridge/messagebird",
		JiraBaseURL: w.jira.URL(), JiraSecretID: "cxbridge/jira", InboundSecretID: "cxbridge/inbound", StateTable: tables.State,
		Default:            conversation.Route{ServiceDeskID: deskID, RequestTypeID: requestType},
		Routes:             map[string]conversation.Route{},
		EmailDetail:        "email",
		MaxAttachmentBytes: 64 << 10,
		Budget:             8 * time.Second,
		Masker:             mask.Egress,
	}
	for _, o := range opts {
		o(&cfg)
	}
	sec := secrets.New(w.secrets.Client())
	guard := func(name string) *breaker.Breaker {
		return breaker.New(w.db, tables.State, breaker.Settings{Name: name, Threshold: 50, OpenFor: time.Minute})
	}
	w.svc = &conversation.Service{
		Config:         cfg,
		Store:          &conversation.Store{DB: w.db, Table: tables.State},
		Jira:           jira.New(cfg.JiraBaseURL, sec, cfg.JiraSecretID, connectors.DefaultHTTPClient),
		Messenger:      messagebird.New(cfg.MessageBirdBaseURL, sec, cfg.MessageBirdSecretID, connectors.DefaultHTTPClient),
		Secrets:        sec,
		JiraGuard:      guard("jira"),
		MessengerGuard: guard("messagebird"),
	}
	w.handler = observe.Wrap(observe.Function{Service: "cxbridge", Name: "messagebird-inbound", Namespace: "cxbridge", Out: lockedWriter{w}},
		apigw.Lambda(apigw.Limits{MaxBody: 1 << 20}, w.svc.Handle))

	w.mb.SetWebhook(messagebirdtest.Webhook{URL: w.hook.URL + "/prod/messagebird/webhook", PublicURL: publicURL,
		Events: []string{"message.created", "message.updated", "conversation.updated"}})
	w.jira.RegisterWebhook(w.hook.URL+"/prod/jira/webhook", jiraSecret)
	return w
}

type lockedWriter struct{ w *world }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return l.w.metrics.Write(p)
}

func (w *world) metricsText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.metrics.String()
}

// gateway is API Gateway's REST API proxy integration in miniature: stage prefix, headers, the
// raw body as a string, and the Lambda's answer turned back into HTTP.
func (w *world) gateway(rw http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	path := strings.TrimPrefix(r.URL.Path, "/prod")
	headers := map[string]string{}
	for k, v := range r.Header {
		headers[k] = v[0]
	}
	ev := events.APIGatewayProxyRequest{
		Resource: path, Path: r.URL.Path, HTTPMethod: r.Method, Headers: headers, MultiValueHeaders: r.Header,
		RequestContext: events.APIGatewayProxyRequestContext{Stage: "prod", ResourcePath: path, HTTPMethod: r.Method, DomainName: "hooks.example.com"},
		Body:           string(body),
	}
	payload, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := lambda.NewHandler(w.handler).Invoke(ctx, payload)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadGateway)
		return
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		http.Error(rw, string(out), http.StatusBadGateway)
		return
	}
	for k, v := range resp.Headers {
		rw.Header().Set(k, v)
	}
	rw.WriteHeader(resp.StatusCode)
	_, _ = io.WriteString(rw, resp.Body)
}

// receive makes the end user send a message and returns MessageBird's delivery and the bridge's
// answer.
func (w *world) receive(in messagebirdtest.Inbound) (messagebirdtest.Delivery, conversation.Result) {
	w.t.Helper()
	if in.MSISDN == "" {
		in.MSISDN = janeNumber
	}
	d, err := w.mb.Receive(in)
	if err != nil {
		w.t.Fatal(err)
	}
	return d, result(w.t, d.Response)
}

func result(t testing.TB, body []byte) conversation.Result {
	t.Helper()
	var r conversation.Result
	if len(body) > 0 && body[0] == '{' {
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("answer %s: %v", body, err)
		}
	}
	return r
}

// mustReceive is receive for a message that must be taken (HTTP 200).
func (w *world) mustReceive(in messagebirdtest.Inbound) (messagebirdtest.Delivery, conversation.Result) {
	w.t.Helper()
	d, r := w.receive(in)
	if d.Status != http.StatusOK {
		w.t.Fatalf("delivery answered %d: %s", d.Status, d.Response)
	}
	return d, r
}

// agent adds a comment as an agent; Jira delivers comment_created before this returns.
func (w *world) agent(key, body string, public bool) jiratest.Delivery {
	w.t.Helper()
	ds, err := w.jira.AgentComment(key, body, public, "")
	if err != nil {
		w.t.Fatal(err)
	}
	if len(ds) != 1 {
		w.t.Fatalf("%d deliveries", len(ds))
	}
	return ds[0]
}

// settle waits for the deliveries Jira makes about cxbridge's own changes (asynchronous, as in
// Jira Cloud), so a test can assert that they did nothing.
func (w *world) settle() { w.jira.WaitDeliveries() }

func (w *world) only(t *testing.T) jiratest.Request {
	t.Helper()
	rs := w.jira.Requests()
	if len(rs) != 1 {
		t.Fatalf("%d requests, want exactly 1", len(rs))
	}
	return rs[0]
}

// sentTexts are the texts sent to the end user in a conversation.
func (w *world) sentTexts(conversationID string) []string {
	var out []string
	for _, m := range w.mb.Sent(conversationID) {
		if m.Type == "text" {
			out = append(out, m.Content.Text)
		}
	}
	return out
}

// stateItems counts what the bridge wrote to the state table.
func (w *world) stateItems(t *testing.T) int {
	t.Helper()
	out, err := w.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(w.table)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Items)
}

func (w *world) link(t *testing.T, contactID string) conversation.Link {
	t.Helper()
	l, err := w.svc.Store.Link(context.Background(), contactID)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func internalComments(cs []jiratest.Comment) []jiratest.Comment {
	var out []jiratest.Comment
	for _, c := range cs {
		if !c.Public {
			out = append(out, c)
		}
	}
	return out
}

func jiraNewRequest(summary, description, label string) jira.NewRequest {
	return jira.NewRequest{ServiceDeskID: deskID, RequestTypeID: requestType,
		Fields: map[string]any{"summary": summary, "description": description, "labels": []string{label}}}
}

// post sends a raw webhook to the bridge, as anyone on the internet could.
func (w *world) post(t *testing.T, route string, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, w.hook.URL+"/prod"+route, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}
