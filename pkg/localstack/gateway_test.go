package localstack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// api starts a stack with opts and serves its local API; it returns the stack and the API's
// base URL.
func api(t *testing.T, opts localstack.Options) (*localstack.Stack, string) {
	t.Helper()
	var logs lockedBuffer
	opts.Logs = &logs
	opts.Getenv = func(string) string { return "" }
	st, err := localstack.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: st.API(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		st.Close()
		if t.Failed() {
			t.Logf("function logs:\n%s", logs.String())
		}
	})
	// Build the function now, so no call below waits for the compiler.
	if _, err := st.Function(context.Background(), "create-escalation"); err != nil {
		t.Fatal(err)
	}
	return st, "http://" + ln.Addr().String()
}

// escalate posts one escalation to the local API as the Genesys data action does.
func escalate(ctx context.Context, base, conversationID string) (status int, body string, took time.Duration, err error) {
	b, _ := json.Marshal(map[string]any{"conversationId": conversationID, "trigger": "vip", "target": "jira", "customerName": "Jane Doe"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/escalations", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", localstack.LocalAPIKey)
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", time.Since(began), err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), time.Since(began), nil
}

// requestsFor counts the Jira requests created for a conversation.
func requestsFor(j *jiratest.Server, conversationID string) []string {
	var keys []string
	for _, r := range j.Requests() {
		if r.Text(jiratest.FieldConversationID) == conversationID {
			keys = append(keys, r.Key)
		}
	}
	return keys
}

// waitRequest waits until Jira holds a request for the conversation and returns its key.
func waitRequest(t *testing.T, j *jiratest.Server, conversationID string) string {
	t.Helper()
	for give := time.Now().Add(30 * time.Second); time.Now().Before(give); time.Sleep(20 * time.Millisecond) {
		if keys := requestsFor(j, conversationID); len(keys) > 0 {
			return keys[0]
		}
	}
	t.Fatalf("no Jira request for %s", conversationID)
	return ""
}

// TestParallelEscalationsAgainstAHangingJiraAreAnsweredInBudget: 20 escalations at once while
// Jira accepts connections and never answers. Each runs in its own execution environment, as on
// Lambda, so each is answered (queued) within the escalation budget plus a second; with a fixed
// pool they would wait for each other's budgets.
func TestParallelEscalationsAgainstAHangingJiraAreAnsweredInBudget(t *testing.T) {
	st, base := api(t, localstack.Options{})
	env, err := st.Env("CreateEscalationFunction")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := strconv.Atoi(env["ESCALATION_BUDGET_MS"])
	if err != nil {
		t.Fatalf("ESCALATION_BUDGET_MS=%q", env["ESCALATION_BUDGET_MS"])
	}
	limit := time.Duration(ms)*time.Millisecond + time.Second
	const n = 20
	// Twenty calls at once start twenty processes on this machine's few cores; Lambda starts
	// them on hosts of their own. Warm twenty environments first (Jira answering slowly, so the
	// warm-up calls overlap), so that what is measured is the calls.
	st.Jira().Fail("/rest/", jiratest.Failure{Delay: time.Second})
	var warm sync.WaitGroup
	for i := range n {
		warm.Go(func() { _, _, _, _ = escalate(context.Background(), base, fmt.Sprintf("warm-%02d", i)) })
	}
	warm.Wait()
	st.Jira().ClearFailures()
	fn, _ := st.Function(context.Background(), "create-escalation")
	if fn.Environments() < n {
		t.Logf("only %d execution environments after the warm-up; the rest start cold", fn.Environments())
	}
	st.Jira().Fail("/rest/", jiratest.Failure{Delay: time.Hour})

	type answer struct {
		status int
		body   string
		took   time.Duration
		err    error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var a answer
			a.status, a.body, a.took, a.err = escalate(context.Background(), base, fmt.Sprintf("hang-%02d", i))
			answers[i] = a
		})
	}
	wg.Wait()
	var slowest time.Duration
	for i, a := range answers {
		var res escalation.Result
		if a.err != nil || a.status != http.StatusOK || json.Unmarshal([]byte(a.body), &res) != nil || res.Status != escalation.StatusQueued {
			t.Errorf("escalation %d: %d %s (%v)", i, a.status, a.body, a.err)
		}
		if a.took > limit {
			t.Errorf("escalation %d answered in %s, over the budget + 1 s (%s)", i, a.took.Round(time.Millisecond), limit)
		}
		slowest = max(slowest, a.took)
	}
	t.Logf("%d escalations against a hanging Jira: slowest answer %s (limit %s), %d execution environments",
		n, slowest.Round(time.Millisecond), limit, fn.Environments())
}

// TestAnInvocationOutlivesItsCaller: a caller that hangs up, and API Gateway's integration
// timeout, end the wait, never the invocation: the ticket is created and the answer recorded, so
// a retry gets the first result.
func TestAnInvocationOutlivesItsCaller(t *testing.T) {
	st, base := api(t, localstack.Options{IntegrationTimeout: time.Second})
	j := st.Jira()
	j.AnswerLate("/rest/servicedeskapi/request", 2500*time.Millisecond, 2)

	// API Gateway stops waiting after its integration timeout: 504 and its body.
	status, body, took, err := escalate(context.Background(), base, "gateway-timeout")
	if err != nil || status != http.StatusGatewayTimeout || !strings.Contains(body, `"message":"Endpoint request timed out"`) {
		t.Fatalf("past the integration timeout: %d %s (%v)", status, body, err)
	}
	if took > 2*time.Second {
		t.Errorf("504 after %s; the gateway gives up at its timeout (1 s here)", took)
	}

	// The caller hangs up first.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, _, err := escalate(ctx, base, "caller-hung-up"); err == nil {
		t.Fatal("the call was answered before the caller hung up")
	}

	for _, conv := range []string{"gateway-timeout", "caller-hung-up"} {
		key := waitRequest(t, j, conv)
		// Once the first invocation has recorded its answer, a retry is a replay of it. Until
		// then a retry waits for it (duplicate), longer than this gateway's 1 s timeout.
		var res escalation.Result
		for give := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			status, body, _, err := escalate(context.Background(), base, conv)
			if err != nil || (status != http.StatusOK && status != http.StatusGatewayTimeout) {
				t.Fatalf("%s retry: %d %s (%v)", conv, status, body, err)
			}
			res = escalation.Result{}
			if status == http.StatusOK {
				_ = json.Unmarshal([]byte(body), &res)
			}
			if (status == http.StatusOK && res.Status != escalation.StatusDuplicate) || time.Now().After(give) {
				break
			}
		}
		if res.Status != escalation.StatusCreated || res.TicketKey != key {
			t.Errorf("%s: the retry answered %+v; want the first invocation's ticket %s", conv, res, key)
		}
		if keys := requestsFor(j, conv); len(keys) != 1 {
			t.Errorf("%s: %d Jira requests %v, want 1", conv, len(keys), keys)
		}
	}
}

// TestGatewayAnswersForFunctionFailures: a function that crashes is API Gateway's 502; a
// function throttled at its concurrency limit is API Gateway's 500.
func TestGatewayAnswersForFunctionFailures(t *testing.T) {
	st, base := api(t, localstack.Options{Concurrency: 1})
	st.Jira().AnswerLate("/rest/servicedeskapi/request", 3*time.Second, 1)
	fn, err := st.Function(context.Background(), "create-escalation")
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		status int
		body   string
	}
	first := make(chan answer, 1)
	go func() {
		status, body, _, _ := escalate(context.Background(), base, "slow-one")
		first <- answer{status, body}
	}()
	var running string
	for give := time.Now().Add(30 * time.Second); running == "" && time.Now().Before(give); time.Sleep(10 * time.Millisecond) {
		for _, r := range fn.InFlight() {
			if strings.Contains(string(r.Payload), "slow-one") {
				running = r.RequestID
			}
		}
	}
	if running == "" {
		t.Fatal("the first escalation never started")
	}
	status, body, _, err := escalate(context.Background(), base, "throttled")
	if err != nil || status != http.StatusInternalServerError || !strings.Contains(body, `"message":"Internal server error"`) {
		t.Errorf("throttled: %d %s (%v)", status, body, err)
	}
	if !fn.Kill(running) {
		t.Fatal("Kill found no invocation")
	}
	if a := <-first; a.status != http.StatusBadGateway || !strings.Contains(a.body, `"message":"Internal server error"`) {
		t.Errorf("crashed: %d %s", a.status, a.body)
	}
}
