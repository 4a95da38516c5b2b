package localstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/localstack"
	"github.com/cxbridge/cxbridge/pkg/runtimeapi"
)

// restEvent wraps a data action body in the API Gateway event the function receives.
func restEvent(body map[string]any) []byte {
	b, _ := json.Marshal(body)
	ev, _ := json.Marshal(map[string]any{
		"resource": "/escalations", "path": "/escalations", "httpMethod": "POST",
		"headers":        map[string]string{"Content-Type": "application/json", "x-api-key": localstack.LocalAPIKey},
		"requestContext": map[string]any{"resourcePath": "/escalations", "httpMethod": "POST", "stage": "prod"},
		"body":           string(b),
	})
	return ev
}

func answer(t testing.TB, res runtimeapi.Result) escalation.Result {
	t.Helper()
	if res.FunctionError != "" {
		t.Fatalf("function error: %s", res.Payload)
	}
	var resp struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	var out escalation.Result
	if err := json.Unmarshal(res.Payload, &resp); err != nil || resp.StatusCode != 200 || json.Unmarshal([]byte(resp.Body), &out) != nil {
		t.Fatalf("answer %s", res.Payload)
	}
	return out
}

// TestCrashAfterCreateMakesOneTicket kills the real bootstrap between "Jira created the
// request" and "the result was recorded": Jira takes the request but its answer is held back,
// and the process is killed (SIGKILL, as a crashed or recycled Lambda environment) while it
// waits. Every wait of a run is bounded by its request's budget, so a Lambda timeout no longer
// ends a run mid-delivery; a kill still can. The retry runs in a fresh process.
func TestCrashAfterCreateMakesOneTicket(t *testing.T) {
	ctx := context.Background()
	var logs lockedBuffer
	st, err := localstack.Start(ctx, localstack.Options{Logs: &logs, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	env, err := st.Env("CreateEscalationFunction")
	if err != nil {
		t.Fatal(err)
	}
	env["ESCALATION_BUDGET_MS"] = "2000" // the dead run's claim is recovered once its 2 s are over
	dir := t.TempDir()
	bin := filepath.Join(dir, "create-escalation")
	if err := runtimeapi.BuildBootstrap(ctx, st.Root, "functions/create-escalation", bin); err != nil {
		t.Fatal(err)
	}
	// The bootstrap, started through a script that notes its process id (exec keeps it).
	pidFile := filepath.Join(dir, "pid")
	script := filepath.Join(dir, "bootstrap")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho $$ > "+pidFile+"\nexec "+bin+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	fn, err := runtimeapi.Start(runtimeapi.Function{Name: "create-escalation", Bootstrap: script, Env: env, Timeout: 10 * time.Second, Logs: &logs, LogPrefix: "create-escalation | "})
	if err != nil {
		t.Fatal(err)
	}
	defer fn.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})

	before := st.Jira().RequestCount() // other seed data may hold requests already
	st.Jira().AnswerLate("/rest/servicedeskapi/request", time.Minute, 1)
	event := restEvent(map[string]any{"conversationId": "7c0a1f3e-2b4d-4e6f-8a9b-0c1d2e3f4a5b", "trigger": "vip", "customerName": "Jane Doe"})
	began := time.Now()
	firstDone := make(chan runtimeapi.Result, 1)
	go func() {
		res, err := fn.Invoke(ctx, event)
		if err != nil {
			t.Error(err)
		}
		firstDone <- res
	}()
	for st.Jira().RequestCount() == before {
		if time.Since(began) > 10*time.Second {
			t.Fatal("Jira never received the create")
		}
		time.Sleep(10 * time.Millisecond)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	first := <-firstDone
	if first.FunctionError == "" || !strings.Contains(string(first.Payload), runtimeapi.ErrorTypeExit) {
		t.Fatalf("the first invocation must die: %s", first.Payload)
	}
	if n := st.Jira().RequestCount() - before; n != 1 {
		t.Fatalf("%d requests after the crash; Jira must have created one", n)
	}
	// Genesys would not retry a dead call at once; a flow calling again a few seconds later
	// finds the dead run's claim expired (its request's deadline has passed).
	time.Sleep(time.Until(began.Add(2 * time.Second)))
	retry, err := fn.Invoke(ctx, event)
	if err != nil {
		t.Fatal(err)
	}
	res := answer(t, retry)
	if res.Status != escalation.StatusCreated || res.TicketKey != "SUPP-1" || !strings.Contains(res.Message, "earlier attempt") {
		t.Fatalf("the retry must find the request the dead run created: %+v", res)
	}
	if n := st.Jira().RequestCount() - before; n != 1 {
		t.Fatalf("%d requests: the crash doubled the ticket", n)
	}
	t.Logf("crash after create: 1 request in Jira; the retry answered %s in %s (cold start %s)", res.TicketKey, retry.Duration.Round(time.Millisecond), retry.InitDuration.Round(time.Millisecond))
}

// TestJira503AfterCreateMakesOneRequest runs the real bootstraps: Jira creates the request and
// answers 503 (a gateway's answer for a slow origin, say). create-escalation does not retry it
// blind: it queues the escalation for verification. escalation-redrive, once the search lag has
// passed, finds the request by its marker instead of creating a second one, and the flow's next
// call gets the ticket.
func TestJira503AfterCreateMakesOneRequest(t *testing.T) {
	ctx := context.Background()
	var logs lockedBuffer
	st, err := localstack.Start(ctx, localstack.Options{Logs: &logs, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	fn, err := st.Function(ctx, "create-escalation")
	if err != nil {
		t.Fatal(err)
	}
	before := st.Jira().RequestCount()
	st.Jira().Fail("/rest/servicedeskapi/request", jiratest.Failure{Status: 503, RetryAfter: 2, AfterEffect: true, Method: "POST", Times: 1})
	event := restEvent(map[string]any{"conversationId": "5e1b2c3d-4f5a-4b6c-8d7e-9f0a1b2c3d4e", "trigger": "vip", "customerName": "Jane Doe"})
	first, err := fn.Invoke(ctx, event)
	if err != nil {
		t.Fatal(err)
	}
	if res := answer(t, first); res.Status != escalation.StatusQueued || res.Reason != escalation.ReasonVerifying {
		t.Fatalf("a 503 after the create must be queued for verification: %+v", res)
	}
	if n := st.Jira().RequestCount() - before; n != 1 {
		t.Fatalf("%d requests; Jira created one and answered 503", n)
	}
	// The redrive waits out JiraSearchLagSeconds (5 s locally), then looks and finds it.
	if err := st.RunOnce(ctx, "escalation-redrive", time.Now()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	if err := st.RunOnce(ctx, "escalation-redrive", time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := st.Jira().RequestCount() - before; n != 1 {
		t.Fatalf("%d requests: the 503 doubled the ticket", n)
	}
	again, err := fn.Invoke(ctx, event)
	if err != nil {
		t.Fatal(err)
	}
	res := answer(t, again)
	if res.Status != escalation.StatusCreated || res.TicketKey == "" {
		t.Fatalf("the escalation must end created: %+v", res)
	}
	if n := st.Jira().RequestCount() - before; n != 1 {
		t.Fatalf("%d requests", n)
	}
	t.Logf("Jira 503 after create: 1 request (%s); answered %s, then %s", res.TicketKey, escalation.StatusQueued, res.Status)
}

// BenchmarkCreateEscalation measures end-to-end latency of warm invocations of the real
// bootstrap through the Runtime API emulator against the local fakes and DynamoDB Local, one
// sub-benchmark per path, side by side in one run:
//
//	created:  claim, Jira customer lookup + create request, record (a new conversation each time)
//	replayed: the same request again (one conditional write that fails, returning the answer)
//	linked:   outage mode on ServiceNow: claim, link, record; no ServiceNow call
//	skipped:  hold time below the threshold: no state, no call
func BenchmarkCreateEscalation(b *testing.B) {
	ctx := context.Background()
	st, err := localstack.Start(ctx, localstack.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	fn, err := st.Function(ctx, "create-escalation")
	if err != nil {
		b.Fatal(err)
	}
	o := &escalation.Outage{DB: st.DynamoDB.Client(), Table: st.Tables.State}
	if err := o.SetFlag(ctx, escalation.Flag{Target: escalation.ServiceNow, Active: true,
		Master: escalation.Master{Key: "INC0010001", SysID: localstack.ServiceNowMasterSysID}}); err != nil {
		b.Fatal(err)
	}
	invoke := func(b *testing.B, body map[string]any, want string) {
		res, err := fn.Invoke(ctx, restEvent(body))
		if err != nil {
			b.Fatal(err)
		}
		if got := answer(b, res); got.Status != want {
			b.Fatalf("status %s, want %s: %+v", got.Status, want, got)
		}
	}
	// warm every environment the emulator may pick
	for i := range 4 {
		invoke(b, map[string]any{"conversationId": fmt.Sprintf("warm-%d", i), "trigger": "hold_time", "holdSeconds": 1}, "skipped")
	}
	n := 0
	b.Run("created", func(b *testing.B) {
		for b.Loop() {
			n++
			invoke(b, map[string]any{"conversationId": fmt.Sprintf("bench-created-%d", n), "trigger": "vip",
				"customerName": "Jane Doe", "customerEmail": localstack.JiraCustomerEmail}, "created")
		}
	})
	b.Run("replayed", func(b *testing.B) {
		body := map[string]any{"conversationId": "bench-replayed", "trigger": "vip", "customerEmail": localstack.JiraCustomerEmail}
		invoke(b, body, "created")
		for b.Loop() {
			invoke(b, body, "created")
		}
	})
	b.Run("linked", func(b *testing.B) {
		for b.Loop() {
			n++
			invoke(b, map[string]any{"conversationId": fmt.Sprintf("bench-linked-%d", n), "trigger": "wrap_up"}, "linked")
		}
	})
	b.Run("skipped", func(b *testing.B) {
		for b.Loop() {
			invoke(b, map[string]any{"conversationId": "bench-skipped", "trigger": "hold_time", "holdSeconds": 10}, "skipped")
		}
	})
}
