package prioritysync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/apigw/apigwtest"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys/genesystest"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/hmacauth"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/prioritysync"
	"github.com/cxbridge/cxbridge/pkg/secrets"
	"github.com/cxbridge/cxbridge/pkg/secrets/secretstest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

const (
	signingKey = "servicenow-signing-key-3f9a"
	incident   = "9d385017c611228701d22104cc95c371"
	caller     = "5137153cc611227c000bbd1bd8cd2005"
	conv       = "8f1c2d3e-0000-4000-8000-000000000001"
)

// env is one priority-sync execution environment wired to the Genesys fake, the Secrets
// Manager fake and DynamoDB Local, built the way functions/priority-sync/main.go builds it.
type env struct {
	svc     *prioritysync.Service
	gc      *genesystest.Server
	sm      *secretstest.Server
	db      *dynamodb.Client
	links   *callerlink.Store
	genesys *genesys.Client
	tables  dynamotest.Tables
}

type option func(*prioritysync.Config, *breaker.Settings)

func newEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	gc := genesystest.New("gc-client", "gc-secret")
	t.Cleanup(gc.Close)
	sm := secretstest.New(map[string]string{
		"cxbridge/inbound": `{"servicenowSigningKey":"` + signingKey + `"}`,
		"cxbridge/genesys": `{"clientId":"gc-client","clientSecret":"gc-secret"}`,
	})
	t.Cleanup(sm.Close)
	local, tables := dynamotest.ForTest(t)
	cfg := prioritysync.Config{
		InboundSecretID:     "cxbridge/inbound",
		Triggers:            map[int]bool{1: true},
		QueuePriority:       1000,
		Timeout:             2 * time.Second,
		GenesysAPIBaseURL:   gc.URL(),
		GenesysLoginBaseURL: gc.URL(),
		GenesysSecretID:     "cxbridge/genesys",
		StateTable:          tables.State,
	}
	bs := breaker.Settings{Name: "genesys", Threshold: 3, OpenFor: time.Minute}
	for _, o := range opts {
		o(&cfg, &bs)
	}
	sec := secrets.New(sm.Client())
	gcClient := genesys.New(cfg.GenesysAPIBaseURL, cfg.GenesysLoginBaseURL, sec, cfg.GenesysSecretID, connectors.DefaultHTTPClient)
	links := &callerlink.Store{DB: local.Client(), Table: tables.State}
	return &env{
		svc: &prioritysync.Service{
			Config: cfg,
			Verifier: &hmacauth.Verifier{
				Keys:   prioritysync.KeysFrom(sec, cfg.InboundSecretID),
				Replay: &hmacauth.ReplayGuard{DB: local.Client(), Table: tables.State, Scheme: "servicenow"},
			},
			Genesys: gcClient,
			Links:   links,
			DB:      local.Client(),
			Guard:   breaker.New(local.Client(), tables.State, bs),
		},
		gc: gc, sm: sm, db: local.Client(), links: links, genesys: gcClient, tables: tables,
	}
}

var deliveries atomic.Int64

// body is what the business rule sends; every delivery has its own deliveryId.
func body(priority, conversationID string) string {
	b, _ := json.Marshal(map[string]string{"incidentSysId": incident, "incidentNumber": "INC0010042", "priority": priority,
		"callerSysId": caller, "conversationId": conversationID, "deliveryId": "d-" + strconv.FormatInt(deliveries.Add(1), 10)})
	return string(b)
}

// signed returns the headers the business rule sends for body at time at.
func signed(key string, at time.Time, body string) map[string]string {
	ts := strconv.FormatInt(at.Unix(), 10)
	return map[string]string{
		"Content-Type":             "application/json",
		"x-api-key":                "servicenow-api-key",
		hmacauth.HeaderTimestamp:   ts,
		hmacauth.HeaderSignature:   hmacauth.Sign([]byte(key), ts, []byte(body)),
		"User-Agent":               "ServiceNow/1.0",
		"X-Forwarded-For":          "203.0.113.7",
		"X-Amzn-Trace-Id":          "Root=1-00000000-000000000000000000000000",
		"Accept":                   "application/json",
		"X-ServiceNow-Instance-Id": "acme",
	}
}

type answer struct {
	status  int
	outcome prioritysync.Outcome
	raw     string
	metrics string
}

func (e *env) post(t *testing.T, headers map[string]string, body string) answer {
	t.Helper()
	m := observe.NewMetrics("cxbridge", observe.D("Function", "priority-sync"))
	resp, err := apigwtest.Post(observe.WithMetrics(context.Background(), m), e.svc.Handle, "/priority-sync", headers, body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, raw: resp.Body}
	_ = json.Unmarshal([]byte(resp.Body), &a.outcome)
	var buf bytes.Buffer
	_ = m.Flush(&buf, time.Unix(0, 0))
	a.metrics = buf.String()
	return a
}

// send posts a correctly signed request, as the business rule does.
func (e *env) send(t *testing.T, body string) answer {
	t.Helper()
	return e.post(t, signed(signingKey, time.Now(), body), body)
}

func (e *env) link(t *testing.T, conversationID string) {
	t.Helper()
	if _, err := e.links.Put(context.Background(), callerlink.Link{CallerSysID: caller, ConversationID: conversationID}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) queuePriority(t *testing.T, id string) int {
	t.Helper()
	c, ok := e.gc.Conversation(id)
	if !ok {
		t.Fatalf("no conversation %s", id)
	}
	for _, p := range c.Participants {
		if p.Purpose == "acd" {
			return p.Priority
		}
	}
	t.Fatal("no acd participant")
	return 0
}

func (e *env) patches() int { return len(e.gc.Received("/api/v2/routing/conversations/")) }

func TestRaisesTheConversationTheLookupRecorded(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation(conv, "", "q-support", 0)
	e.link(t, conv)

	a := e.send(t, body("1", ""))
	o := a.outcome
	if a.status != http.StatusOK || o.Status != prioritysync.StatusRaised || o.ConversationID != conv || o.ConversationSource != "lookup" ||
		o.Priority != 1000 || o.PreviousPriority != 0 || o.IncidentNumber != "INC0010042" || o.Repeat {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	if p := e.queuePriority(t, conv); p != 1000 {
		t.Fatalf("queue priority %d, want 1000", p)
	}
	// The routing API, with an absolute priority; never the conversation or participant APIs.
	got := e.gc.Received("/api/v2/routing/conversations/" + conv)
	if len(got) != 1 || got[0].Method != http.MethodPatch || string(got[0].Body) != `{"priority":1000}` {
		t.Fatalf("PATCH requests %+v", got)
	}
	for _, r := range e.gc.Received("/api/v2/conversations/") {
		if r.Method != http.MethodGet {
			t.Fatalf("unexpected %s %s", r.Method, r.Path)
		}
	}
	if !strings.Contains(a.metrics, `"Status":"raised"`) || !strings.Contains(a.metrics, "QueuePriorityRaised") {
		t.Fatalf("metrics %s", a.metrics)
	}
}

func TestExplicitConversationWins(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation("conv-recorded", "", "q", 0)
	e.gc.AddWaitingConversation("conv-explicit", "", "q", 0)
	e.link(t, "conv-recorded")
	a := e.send(t, body("1", "conv-explicit"))
	if a.outcome.Status != prioritysync.StatusRaised || a.outcome.ConversationID != "conv-explicit" || a.outcome.ConversationSource != "request" {
		t.Fatalf("got %s", a.raw)
	}
	if e.queuePriority(t, "conv-recorded") != 0 || e.queuePriority(t, "conv-explicit") != 1000 {
		t.Fatal("the wrong conversation was raised")
	}
}

func TestNeverLowersAHigherPriority(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation(conv, "", "q", 5000)
	e.link(t, conv)
	a := e.send(t, body("1", ""))
	if a.status != 200 || a.outcome.Status != prioritysync.StatusAlreadyRaised || a.outcome.Priority != 5000 || a.outcome.PreviousPriority != 5000 {
		t.Fatalf("got %s", a.raw)
	}
	if e.patches() != 0 || e.queuePriority(t, conv) != 5000 {
		t.Fatal("a higher priority was changed")
	}
}

func TestIdempotentPerIncidentAndPriority(t *testing.T) {
	e := newEnv(t, func(c *prioritysync.Config, _ *breaker.Settings) { c.Triggers = map[int]bool{1: true, 2: true} })
	e.gc.AddWaitingConversation(conv, "", "q", 0)
	e.link(t, conv)
	if a := e.send(t, body("1", "")); a.outcome.Status != prioritysync.StatusRaised {
		t.Fatalf("first: %s", a.raw)
	}
	calls := len(e.gc.Received("/api/"))
	// A second delivery (new timestamp, new signature) for the same incident and priority.
	a := e.send(t, body("1", ""))
	if a.status != 200 || a.outcome.Status != prioritysync.StatusAlreadyRaised || !a.outcome.Repeat || a.outcome.ConversationID != conv || a.outcome.Priority != 1000 {
		t.Fatalf("repeat: %s", a.raw)
	}
	if n := len(e.gc.Received("/api/")); n != calls {
		t.Fatalf("a repeat reached Genesys (%d -> %d calls)", calls, n)
	}
	// The same incident at another trigger priority is a new event.
	if a := e.send(t, body("2", "")); a.outcome.Repeat || a.outcome.Status != prioritysync.StatusAlreadyRaised || len(e.gc.Received("/api/")) == calls {
		t.Fatalf("another priority must be checked again: %s", a.raw)
	}
}

func TestNotInQueue(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation("answered", "", "q", 0)
	e.gc.Answer("answered")
	e.gc.AddWaitingConversation("ended", "", "q", 0)
	e.gc.End("ended")
	for _, id := range []string{"answered", "ended", "unknown-conversation"} {
		a := e.send(t, body("1", id))
		if a.status != 200 || a.outcome.Status != prioritysync.StatusNotInQueue || a.outcome.ConversationID != id {
			t.Fatalf("%s: %s", id, a.raw)
		}
	}
	if e.patches() != 0 {
		t.Fatal("PATCH sent for a conversation that is not in queue")
	}
	// Not recorded: if the caller rings again and the business rule fires again, it is tried.
	e.gc.AddWaitingConversation("answered-2", "", "q", 0)
	if a := e.send(t, body("1", "answered-2")); a.outcome.Status != prioritysync.StatusRaised {
		t.Fatalf("after not_in_queue: %s", a.raw)
	}
}

// genesysAnsweringBeforePatch answers the call just before the PATCH arrives.
type genesysAnsweringBeforePatch struct {
	*genesys.Client
	gc *genesystest.Server
}

func (g genesysAnsweringBeforePatch) SetRoutingPriority(ctx context.Context, id string, p int) (int, error) {
	g.gc.Answer(id)
	return g.Client.SetRoutingPriority(ctx, id, p)
}

func TestAnsweredBetweenReadAndPatch(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation(conv, "", "q", 0)
	e.svc.Genesys = genesysAnsweringBeforePatch{e.genesys, e.gc}
	a := e.send(t, body("1", conv))
	if a.status != 200 || a.outcome.Status != prioritysync.StatusNotInQueue {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	// A refused PATCH on a conversation still waiting is a real error, not "not in queue".
	e2 := newEnv(t)
	e2.gc.AddWaitingConversation(conv, "", "q", 0)
	e2.gc.Fail("/api/v2/routing/conversations/", genesystest.Failure{Status: http.StatusBadRequest})
	a = e2.send(t, body("1", conv))
	if a.status != http.StatusBadGateway || a.outcome.Status != prioritysync.StatusUnavailable || a.outcome.Reason != "genesys_rejected" {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
}

func TestNoWaitingConversation(t *testing.T) {
	e := newEnv(t)
	a := e.send(t, body("1", ""))
	if a.status != 200 || a.outcome.Status != prioritysync.StatusNoWaitingConversation || a.outcome.ConversationID != "" {
		t.Fatalf("got %s", a.raw)
	}
	if n := len(e.gc.Received("/api/")); n != 0 {
		t.Fatalf("%d Genesys calls without a conversation", n)
	}
	// An expired link counts as none.
	old := &callerlink.Store{DB: e.db, Table: e.tables.State, TTL: time.Minute, Now: func() time.Time { return time.Now().Add(-time.Hour) }}
	if _, err := old.Put(context.Background(), callerlink.Link{CallerSysID: caller, ConversationID: conv}); err != nil {
		t.Fatal(err)
	}
	e.gc.AddWaitingConversation(conv, "", "q", 0)
	if a := e.send(t, body("1", "")); a.outcome.Status != prioritysync.StatusNoWaitingConversation {
		t.Fatalf("expired link: %s", a.raw)
	}
}

func TestIgnoredPriority(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation(conv, "", "q", 0)
	e.link(t, conv)
	for _, p := range []string{"2", "3", "4", "5"} {
		if a := e.send(t, body(p, "")); a.status != 200 || a.outcome.Status != prioritysync.StatusIgnoredPriority {
			t.Fatalf("priority %s: %s", p, a.raw)
		}
	}
	if n := len(e.gc.Received("/api/")); n != 0 || e.queuePriority(t, conv) != 0 {
		t.Fatal("an ignored priority reached Genesys")
	}
}

// Every rejection is 401, names the header, and has no effect: no Genesys call, no record, no
// replay marker, the queue priority unchanged.
func TestRejectionsHaveNoSideEffect(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation(conv, "", "q", 0)
	e.link(t, conv)
	b := body("1", "")
	now := time.Now()
	without := func(h map[string]string, k string) map[string]string { delete(h, k); return h }
	replayed := signed(signingKey, now, b)
	if a := e.post(t, replayed, b); a.outcome.Status != prioritysync.StatusRaised {
		t.Fatalf("original delivery: %s", a.raw)
	}
	e.gc.AddWaitingConversation("conv-2", "", "q", 0)
	e.link(t, "conv-2") // the caller now waits in another conversation

	cases := []struct {
		name    string
		headers map[string]string
		body    string
		field   string
	}{
		{"no timestamp", without(signed(signingKey, now, b), hmacauth.HeaderTimestamp), b, hmacauth.HeaderTimestamp},
		{"no signature", without(signed(signingKey, now, b), hmacauth.HeaderSignature), b, hmacauth.HeaderSignature},
		{"wrong key", signed("guessed-key", now, b), b, hmacauth.HeaderSignature},
		{"body tampered", signed(signingKey, now, b), strings.Replace(b, `"1"`, `"1" `, 1), hmacauth.HeaderSignature},
		{"six minutes old", signed(signingKey, now.Add(-6*time.Minute), b), b, hmacauth.HeaderTimestamp},
		{"six minutes ahead", signed(signingKey, now.Add(6*time.Minute), b), b, hmacauth.HeaderTimestamp},
		{"replay", replayed, b, hmacauth.HeaderSignature},
	}
	before := len(e.gc.Received("/api/"))
	for _, c := range cases {
		a := e.post(t, c.headers, c.body)
		var rej struct {
			Status string      `json:"status"`
			Error  apigw.Error `json:"error"`
		}
		_ = json.Unmarshal([]byte(a.raw), &rej)
		if a.status != http.StatusUnauthorized || rej.Status != "rejected" || rej.Error.Code != "unauthorized" || rej.Error.Field != c.field {
			t.Errorf("%s: got %d %s; want 401 naming %s", c.name, a.status, a.raw, c.field)
		}
		if !strings.Contains(a.metrics, "SignatureRejected") {
			t.Errorf("%s: rejection not counted: %s", c.name, a.metrics)
		}
	}
	if n := len(e.gc.Received("/api/")); n != before || e.queuePriority(t, "conv-2") != 0 {
		t.Fatal("a rejected request reached Genesys")
	}
	// Only the accepted delivery left state behind: its replay marker and its record.
	out, err := e.db.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(e.tables.State)})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, item := range out.Items {
		pk := item["pk"].(*types.AttributeValueMemberS).Value
		kinds[strings.SplitN(pk, "#", 2)[0]]++
	}
	if kinds["REPLAY"] != 1 || kinds["PRIORITYSYNC"] != 1 {
		t.Fatalf("state after rejections: %v; want one replay marker and one record", kinds)
	}
}

func TestSigningKeyRotation(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation(conv, "", "q", 0)
	e.sm.Put("cxbridge/inbound", `{"servicenowSigningKey":"new-key","servicenowSigningKeyPrevious":"`+signingKey+`"}`)
	e.svc.Verifier.Keys = prioritysync.KeysFrom(secrets.New(e.sm.Client()), "cxbridge/inbound")
	b := body("1", conv)
	if a := e.post(t, signed(signingKey, time.Now(), b), b); a.status != 200 {
		t.Fatalf("previous key during rotation: %s", a.raw)
	}
	b = body("1", "another-conversation")
	if a := e.post(t, signed("new-key", time.Now(), b), b); a.status != 200 {
		t.Fatalf("new key: %s", a.raw)
	}
}

func TestUnreadableSigningKeyIsNotUnauthorized(t *testing.T) {
	e := newEnv(t)
	e.sm.SetFailing(true)
	a := e.send(t, body("1", conv))
	if a.status != http.StatusServiceUnavailable || a.outcome.Status != prioritysync.StatusUnavailable || a.outcome.Reason != "signature_check" {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
}

func TestGenesysTokenIsCachedAndRenewedOnce(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < 3; i++ {
		id := "conv-" + strconv.Itoa(i)
		e.gc.AddWaitingConversation(id, "", "q", 0)
		if a := e.send(t, body("1", id)); a.outcome.Status != prioritysync.StatusRaised {
			t.Fatalf("%d: %s", i, a.raw)
		}
		e.forgetRecord(t) // the same incident again, so that Genesys is called each time
	}
	if n := e.gc.TokensIssued(); n != 1 {
		t.Fatalf("%d token exchanges for 3 requests; the token must be reused across invocations", n)
	}
	e.gc.RevokeTokens()
	e.gc.AddWaitingConversation("conv-after", "", "q", 0)
	if a := e.send(t, body("1", "conv-after")); a.outcome.Status != prioritysync.StatusRaised {
		t.Fatalf("after revocation: %s", a.raw)
	}
	if n := e.gc.TokensIssued(); n != 2 {
		t.Fatalf("%d token exchanges; want exactly one renewal after the 401", n)
	}
	e.forgetRecord(t)
	e.sm.Put("cxbridge/genesys", `{"clientId":"gc-client","clientSecret":"wrong"}`)
	e.gc.RevokeTokens()
	a := e.send(t, body("1", "conv-after"))
	if a.status != http.StatusBadGateway || a.outcome.Reason != "genesys_unauthorized" {
		t.Fatalf("bad Genesys credentials: %d %s", a.status, a.raw)
	}
}

func (e *env) forgetRecord(t *testing.T) {
	t.Helper()
	key := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "PRIORITYSYNC#" + incident},
		"sk": &types.AttributeValueMemberS{Value: "PRIORITY#1"},
	}
	_, err := e.db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(e.tables.State), Key: key})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGenesysDownAndBreaker(t *testing.T) {
	e := newEnv(t)
	e.gc.AddWaitingConversation(conv, "", "q", 0)
	e.gc.Fail("/api/v2/conversations/", genesystest.Failure{Status: http.StatusServiceUnavailable})
	a := e.send(t, body("1", conv))
	if a.status != http.StatusServiceUnavailable || a.outcome.Status != prioritysync.StatusUnavailable || a.outcome.Reason != "genesys_unavailable" {
		t.Fatalf("got %d %s", a.status, a.raw)
	}
	if n := len(e.gc.Received("/api/v2/conversations/")); n != 3 {
		t.Fatalf("%d attempts; want 3 within the budget", n)
	}
	for i := 0; i < 2; i++ { // threshold 3
		e.send(t, body("1", conv))
	}
	before := len(e.gc.Received("/api/"))
	a = e.send(t, body("1", conv))
	if a.outcome.Reason != "breaker_open" || len(e.gc.Received("/api/")) != before {
		t.Fatalf("open breaker: %s", a.raw)
	}
	// Rate limited with a wait longer than the budget: not waited for.
	e2 := newEnv(t)
	e2.gc.AddWaitingConversation(conv, "", "q", 0)
	e2.gc.Fail("/api/v2/conversations/", genesystest.Failure{Status: http.StatusTooManyRequests, RetryAfter: 60})
	start := time.Now()
	if a := e2.send(t, body("1", conv)); a.outcome.Reason != "genesys_rate_limited" || time.Since(start) > time.Second {
		t.Fatalf("429: %s after %v", a.raw, time.Since(start))
	}
}

func TestBadInputAfterAValidSignature(t *testing.T) {
	e := newEnv(t)
	cases := []struct{ body, field, code string }{
		{`{"incidentNumber":"INC1","priority":"1","callerSysId":"` + caller + `"}`, "incidentSysId", "missing_field"},
		{`{"incidentSysId":"` + incident + `","incidentNumber":"INC1","priority":"1","callerSysId":"x^ORactive=true"}`, "callerSysId", "invalid_field"},
		{`{"incidentSysId":"` + incident + `","incidentNumber":"INC1","priority":"1 - Critical","callerSysId":"` + caller + `"}`, "priority", "invalid_field"},
		{`{"incidentSysId":"` + incident + `","incidentNumber":"INC1","priority":"1"}`, "callerSysId", "missing_field"},
		{`{"incidentSysId":"` + incident + `","incidentNumber":"INC1","priority":1,"callerSysId":"` + caller + `","Priority":"1"}`, "Priority", "unknown_field"},
		{`{"incidentSysId":"` + incident + `","priority":"1","callerSysId":"nope","conversationId":"x y"}`, "callerSysId", "invalid_field"},
		{`{"incidentSysId":"` + strings.ToUpper(incident) + `","incidentNumber":"INC1","priority":"1","callerSysId":"` + caller + `"}`, "incidentSysId", "invalid_field"},
	}
	for _, c := range cases {
		a := e.send(t, c.body)
		var rej struct {
			Error apigw.Error `json:"error"`
		}
		_ = json.Unmarshal([]byte(a.raw), &rej)
		if a.status != 400 || rej.Error.Field != c.field || rej.Error.Code != c.code {
			t.Errorf("%s: got %d %s; want 400 %s on %s", c.body, a.status, a.raw, c.code, c.field)
		}
	}
	// A numeric priority, as a script may send it, is fine.
	if a := e.send(t, `{"incidentSysId":"`+incident+`","incidentNumber":"INC1","priority":1,"callerSysId":"`+caller+`"}`); a.status != 200 {
		t.Fatalf("numeric priority: %s", a.raw)
	}
	// What does not stop the request is ignored with a warning: an unknown input, a malformed
	// incident number or delivery id, a malformed conversation id when the caller can stand in.
	for field, b := range map[string]string{
		"urgency":        `{"incidentSysId":"` + incident + `","incidentNumber":"INC1","priority":"1","callerSysId":"` + caller + `","urgency":"1"}`,
		"incidentNumber": `{"incidentSysId":"` + incident + `","incidentNumber":"INC 1; drop","priority":"1","callerSysId":"` + caller + `"}`,
		"deliveryId":     `{"incidentSysId":"` + incident + `","priority":"1","callerSysId":"` + caller + `","deliveryId":"{x}"}`,
		"conversationId": `{"incidentSysId":"` + incident + `","priority":"1","callerSysId":"` + caller + `","conversationId":"x^ORactive=true"}`,
		"callerSysId":    `{"incidentSysId":"` + incident + `","priority":"1","callerSysId":"nope","conversationId":"` + conv + `"}`,
	} {
		a := e.send(t, b)
		if a.status != 200 || len(a.outcome.Warnings) != 1 || !strings.HasPrefix(a.outcome.Warnings[0], field+": ") {
			t.Errorf("%s: got %d %s; want 200 with a warning on %s", field, a.status, a.raw, field)
		}
	}
}
