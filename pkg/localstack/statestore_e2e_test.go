package localstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/hmacauth"
	"github.com/cxbridge/cxbridge/pkg/localstack"
	"github.com/cxbridge/cxbridge/pkg/secrets"
)

// TestStateStorePaused freezes the stack's own DynamoDB Local (SIGSTOP: connections are still
// accepted, nothing is answered) while Jira, ServiceNow, telemetry, Genesys and MessageBird are
// healthy, and drives every route through the local API and the real bootstraps, with the
// production bound on state calls (STATE_CALL_TIMEOUT_MS=500):
//
//   - every Genesys-facing route answers within its budget + 200 ms; create-escalation still
//     creates tickets, and answers failed/state_unavailable at once when the target cannot take
//     the escalation either;
//   - priority-sync and both messagebird-inbound webhooks answer 5xx, so their senders deliver
//     again; the redrive skips its run;
//   - after the store resumes (and everything it received meanwhile lands), the webhooks'
//     redeliveries do their work once, and every escalation, sent again as a flow would after
//     its fallback, ends as exactly one ticket.
func TestStateStorePaused(t *testing.T) {
	ctx := context.Background()
	var logs lockedBuffer
	st, err := localstack.Start(ctx, localstack.Options{Logs: &logs, Getenv: func(string) string { return "" },
		PrivateDynamoDB: true, FunctionEnv: map[string]string{"STATE_CALL_TIMEOUT_MS": "500"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("function logs:\n%s", logs.String())
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: st.API()}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	st.ConnectWebhooks(base)
	if err := st.Warm(ctx); err != nil {
		t.Fatal(err)
	}
	budget := func(logicalID, name string, def time.Duration) time.Duration {
		env, err := st.Env(logicalID)
		if err != nil {
			t.Fatal(err)
		}
		if ms, err := strconv.Atoi(env[name]); err == nil {
			return time.Duration(ms) * time.Millisecond
		}
		return def
	}
	budgets := map[string]time.Duration{
		"telemetry-tier":      budget("TelemetryTierFunction", "TELEMETRY_TIMEOUT_MS", 3*time.Second),
		"servicenow-lookup":   budget("ServicenowLookupFunction", "LOOKUP_TIMEOUT_MS", 1500*time.Millisecond),
		"create-escalation":   budget("CreateEscalationFunction", "ESCALATION_BUDGET_MS", 6*time.Second),
		"priority-sync":       budget("PrioritySyncFunction", "PRIORITY_SYNC_TIMEOUT_MS", 5*time.Second),
		"messagebird-inbound": budget("MessagebirdInboundFunction", "MESSAGEBIRD_WEBHOOK_BUDGET_MS", 15*time.Second),
	}
	jira, sn, mb := st.Jira(), st.ServiceNow(), st.MessageBird()
	agent := jira.AddAgent("Alex Agent", "alex.agent@example.com")

	call := func(path, apiKey string, body any, headers ...string) (int, map[string]any, time.Duration) {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("x-api-key", apiKey)
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		began := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		took := time.Since(began)
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out, took
	}
	escalate := func(body map[string]any) (int, escalation.Result, time.Duration) {
		status, out, took := call("/escalations", localstack.LocalAPIKey, body)
		var res escalation.Result
		b, _ := json.Marshal(out)
		_ = json.Unmarshal(b, &res)
		return status, res, took
	}
	prioritySync := func() (int, map[string]any, time.Duration) {
		body, _ := json.Marshal(map[string]any{"incidentSysId": "059f2ca5eeed9e3d1f41bfca9bfa10dd", "incidentNumber": "INC0010001",
			"priority": "1", "callerSysId": localstack.CallerAbel, "deliveryId": fmt.Sprintf("%032x", time.Now().UnixNano())})
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		return call("/priority-sync", localstack.LocalServiceNowAPIKey, m,
			hmacauth.HeaderTimestamp, ts, hmacauth.HeaderSignature, hmacauth.Sign([]byte(localstack.LocalServiceNowSigningKey), ts, body))
	}
	tier := func() (int, map[string]any, time.Duration) {
		return call("/telemetry/tier", localstack.LocalAPIKey, map[string]any{"customerId": localstack.CustomerNormal, "conversationId": "c0de0000-0000-4000-8000-000000000001"})
	}
	lookup := func() (int, map[string]any, time.Duration) {
		return call("/servicenow/lookup", localstack.LocalAPIKey, map[string]any{"ani": "+14155550100", "conversationId": "c0de0000-0000-4000-8000-000000000002"})
	}

	// A healthy round first: every route works, and a WhatsApp conversation has a request an
	// agent can answer.
	if s, out, _ := tier(); s != 200 || out["status"] != "ok" {
		t.Fatalf("telemetry-tier before the pause: %d %v", s, out)
	}
	if s, out, _ := lookup(); s != 200 || out["found"] != true {
		t.Fatalf("servicenow-lookup before the pause: %d %v", s, out)
	}
	if s, res, _ := escalate(map[string]any{"conversationId": "c0de0000-0000-4000-8000-0000000000aa", "trigger": "vip"}); s != 200 || res.Status != escalation.StatusCreated {
		t.Fatalf("create-escalation before the pause: %d %+v", s, res)
	}
	if s, out, _ := prioritySync(); s != 200 {
		t.Fatalf("priority-sync before the pause: %d %v", s, out)
	}
	chat, err := mb.Receive(messagebirdtest.Inbound{MSISDN: "+31611112222", FirstName: "Sanne", Text: "The export fails"})
	if err != nil || chat.Status != 200 {
		t.Fatalf("first WhatsApp message before the pause: %v %d %s", err, chat.Status, chat.Response)
	}
	chatReq := jira.Requests()[len(jira.Requests())-1].Key

	type answer struct {
		route  string
		status int
		took   time.Duration
		what   string
	}
	var answers []answer
	note := func(route string, status int, took time.Duration, what string) {
		answers = append(answers, answer{route, status, took, what})
		if limit := budgets[route] + 200*time.Millisecond; took > limit {
			t.Errorf("%s answered %d (%s) after %s; its budget + 200 ms is %s", route, status, what, took.Round(time.Millisecond), limit)
		}
	}

	// The pause.
	if err := st.DynamoDB.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	for range 2 {
		s, out, took := tier()
		note("telemetry-tier", s, took, fmt.Sprint(out["status"]))
		if s != 200 || out["status"] != "ok" {
			t.Errorf("telemetry-tier with the store paused: %d %v; telemetry is healthy, so ok", s, out)
		}
		s, out, took = lookup()
		note("servicenow-lookup", s, took, fmt.Sprint(out["status"]))
		if s != 200 || out["found"] != true || out["conversationLinked"] != false {
			t.Errorf("servicenow-lookup with the store paused: %d %v; want the caller found, the link not written", s, out)
		}
	}
	type sent struct {
		body   map[string]any
		target string
		first  escalation.Result
	}
	var escalations []*sent
	send := func(trigger, target string, n int, want, reason string) {
		for i := range n {
			e := &sent{target: target, body: map[string]any{"conversationId": fmt.Sprintf("c0de%04d-0000-4000-8000-%012d", len(escalations), i),
				"trigger": trigger, "customerName": "Jane Doe"}}
			if trigger == "hold_time" {
				e.body["holdSeconds"] = 600
			}
			s, res, took := escalate(e.body)
			note("create-escalation", s, took, res.Status+"/"+res.Reason)
			if s != 200 || res.Status != want || res.Reason != reason || res.EscalationID == "" {
				t.Errorf("create-escalation (%s) with the store paused: %d %+v; want %s %s", target, s, res, want, reason)
			}
			e.first = res
			escalations = append(escalations, e)
		}
	}
	// Healthy targets: tickets, without duplicate protection.
	send("vip", escalation.Jira, 3, escalation.StatusCreated, "")
	send("wrap_up", escalation.ServiceNow, 3, escalation.StatusCreated, "")
	// Targets that cannot take it either: nothing can be queued, so the flow is told at once.
	jira.Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: http.StatusServiceUnavailable})
	sn.Fail("/api/now/v2/table/incident", servicenowtest.Failure{Status: http.StatusServiceUnavailable})
	send("hold_time", escalation.Jira, 2, escalation.StatusFailed, escalation.ReasonStateUnavailable)
	send("wrap_up", escalation.ServiceNow, 2, escalation.StatusFailed, escalation.ReasonStateUnavailable)
	jira.ClearFailures()
	sn.ClearFailures()

	// Webhooks: 5xx, so the senders deliver again.
	s, out, took := prioritySync()
	note("priority-sync", s, took, fmt.Sprint(out["reason"]))
	if s < 500 {
		t.Errorf("priority-sync with the store paused: %d %v; want a 5xx", s, out)
	}
	began := time.Now()
	msg, err := mb.Receive(messagebirdtest.Inbound{MSISDN: "+31633334444", FirstName: "Daan", Text: "My invoice is wrong"})
	if err != nil {
		t.Fatal(err)
	}
	note("messagebird-inbound", msg.Status, time.Since(began), "messagebird webhook")
	if msg.Status < 500 {
		t.Errorf("MessageBird webhook with the store paused: %d %s; want a 5xx", msg.Status, msg.Response)
	}
	sentBefore := len(mb.Sent(chat.ConversationID))
	began = time.Now()
	comments, err := jira.AgentComment(chatReq, "We are looking into the export.", true, agent)
	if err != nil || len(comments) != 1 {
		t.Fatalf("agent comment: %v %v", err, comments)
	}
	note("messagebird-inbound", comments[0].Status, time.Since(began), "jira webhook")
	if comments[0].Status < 500 {
		t.Errorf("Jira webhook with the store paused: %d; want a 5xx", comments[0].Status)
	}
	began = time.Now()
	if err := st.RunOnce(ctx, "escalation-redrive", time.Now()); err != nil {
		t.Errorf("the redrive run with the store paused: %v", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the redrive took %s to skip its run", took)
	}

	// Resume: whatever the store received meanwhile lands now.
	if err := st.DynamoDB.Resume(); err != nil {
		t.Fatal(err)
	}
	pause := time.Since(paused)
	waitForStore(t, st)

	// The senders deliver again (as they do, with a backoff, while they get 5xx): each
	// webhook's work is done once.
	requestsBefore := jira.RequestCount()
	redeliver(t, "MessageBird", func() int { return mb.Replay(msg).Status })
	if n := jira.RequestCount() - requestsBefore; n != 1 {
		t.Errorf("the redelivered first message made %d requests, want 1", n)
	}
	redeliver(t, "Jira", func() int {
		again, err := jira.Redeliver(comments[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		return again.Status
	})
	if n := len(mb.Sent(chat.ConversationID)) - sentBefore; n != 1 {
		t.Errorf("the agent's reply reached the customer %d times, want once", n)
	}
	if s, out, _ := prioritySync(); s != 200 {
		t.Errorf("priority-sync after the resume: %d %v", s, out)
	}

	// Every escalation is sent again, as a flow does after its fallback (or a Genesys retry):
	// the ones created answer with their ticket, the failed ones are delivered now.
	for _, e := range escalations {
		res := resend(t, escalate, e.body)
		if e.first.Status == escalation.StatusCreated && res.TicketKey != e.first.TicketKey {
			t.Errorf("%s sent again: %+v; want its first ticket %s", e.first.EscalationID, res, e.first.TicketKey)
		}
	}
	// A minute later the redrive delivers whatever was queued meanwhile (the store may have
	// taken a queued item after all).
	redriveLater(t, st)
	jiraTickets, snTickets := 0, 0
	for _, e := range escalations {
		n := tickets(jira, sn, e.target, e.first.EscalationID)
		if n != 1 {
			t.Errorf("escalation %s (%s, first answer %s/%s) has %d tickets, want exactly 1", e.first.EscalationID, e.target, e.first.Status, e.first.Reason, n)
		}
		if e.target == escalation.Jira {
			jiraTickets += n
		} else {
			snTickets += n
		}
	}
	// And once more: nothing new.
	for _, e := range escalations {
		if _, res, _ := escalate(e.body); res.TicketKey == "" {
			t.Errorf("%s sent a third time: %+v; want its ticket", e.first.EscalationID, res)
		}
		if n := tickets(jira, sn, e.target, e.first.EscalationID); n != 1 {
			t.Errorf("escalation %s has %d tickets after a third request", e.first.EscalationID, n)
		}
	}

	t.Logf("DynamoDB Local paused for %s; answers while paused:", pause.Round(100*time.Millisecond))
	for _, a := range answers {
		t.Logf("  %-20s HTTP %d %-28s %6dms (budget %s)", a.route, a.status, a.what, a.took.Milliseconds(), budgets[a.route])
	}
	slowest := map[string]time.Duration{}
	for _, a := range answers {
		slowest[a.route+" "+a.what] = max(slowest[a.route+" "+a.what], a.took)
	}
	kinds := make([]string, 0, len(slowest))
	for k := range slowest {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Logf("  slowest %-52s %6dms", k, slowest[k].Milliseconds())
	}
	t.Logf("after the resume: %d escalations -> %d Jira requests and %d ServiceNow incidents (one each, none doubled)", len(escalations), jiraTickets, snTickets)
}

// redeliver delivers a webhook again, every half second while it is answered 5xx (an
// environment rests for a second after the store stalled), until it is answered 200.
func redeliver(t *testing.T, sender string, deliver func() int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		status := deliver()
		if status == http.StatusOK {
			return
		}
		if status < 500 || time.Now().After(deadline) {
			t.Errorf("%s redelivery after the resume: %d", sender, status)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitForStore waits until DynamoDB Local answers again.
func waitForStore(t *testing.T, st *localstack.Stack) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := st.DynamoDB.Client().DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(st.Tables.State)})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DynamoDB Local does not answer after the resume: %v", err)
		}
	}
}

// resend sends an escalation again until it is no longer "duplicate" (a claim that landed late
// is held until its request's deadline) and returns the answer.
func resend(t *testing.T, escalate func(map[string]any) (int, escalation.Result, time.Duration), body map[string]any) escalation.Result {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, res, _ := escalate(body)
		if s != 200 {
			t.Fatalf("escalation sent again: %d %+v", s, res)
		}
		if res.Status != escalation.StatusDuplicate {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("escalation still duplicate after 30 s: %+v", res)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// redriveLater runs escalation-redrive's code against the stack's tables and fakes with its
// clock two minutes ahead, so that items queued meanwhile are due.
func redriveLater(t *testing.T, st *localstack.Stack) {
	t.Helper()
	env, err := st.Env("EscalationRedriveFunction")
	if err != nil {
		t.Fatal(err)
	}
	r := config.FromMap(env)
	cfg := escalation.LoadConfig(r)
	bs := breaker.SettingsFromEnv(r, "")
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	svc, err := escalation.New(cfg, escalation.Deps{DB: st.DynamoDB.Client(), Secrets: secrets.New(st.Secrets.Client()), Breaker: bs,
		Now: func() time.Time { return time.Now().Add(2 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	if sum := svc.Redrive(context.Background()); sum.Failed > 0 {
		t.Errorf("redrive: %+v", sum)
	}
}

// tickets counts the tickets carrying an escalation's id: Jira requests with its marker label,
// ServiceNow incidents with its correlation_id.
func tickets(jira *jiratest.Server, sn *servicenowtest.Server, target, id string) int {
	n := 0
	if target == escalation.Jira {
		for _, r := range jira.Requests() {
			for _, l := range r.Labels() {
				if l == escalation.Marker(id) {
					n++
				}
			}
		}
		return n
	}
	for _, in := range sn.Records("incident") {
		if strings.HasSuffix(in["correlation_id"], "."+id) {
			n++
		}
	}
	return n
}
