package chaos

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// The Repro tests reproduce, one fault at a time, each class of broken promise `make chaos`
// reports, to show that what the suite counts is cxbridge's behaviour and to check a fix. They
// assert the promise, so they fail until cxbridge keeps it. They start a stack each and are
// slow: run them with CHAOS_REPRO=1 go test -run Repro -v ./pkg/chaos/.

// script decides the fault of the n-th request (from 0) with a method and path to a system.
type script func(system, method, path string, n int) fault

// reproStack starts the local stack with a proxy in front of Jira, ServiceNow and MessageBird
// that injects what s says, serves the local API and points the fakes' webhooks at it.
func reproStack(t *testing.T, s script) (*localstack.Stack, string) {
	t.Helper()
	if os.Getenv("CHAOS_REPRO") == "" {
		t.Skip("set CHAOS_REPRO=1 to reproduce the broken promises one fault at a time")
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var proxies []*proxy
	var logs lockedLog
	st, err := localstack.Start(context.Background(), localstack.Options{Logs: &logs, Getenv: func(string) string { return "" },
		Front: func(system, url string) string {
			if system != "jira" && system != "servicenow" && system != "messagebird" {
				return url
			}
			px, addr, err := newProxy(system, url, newPlan(1, DefaultRates), &journal{})
			if err != nil {
				t.Fatal(err)
			}
			px.decide = func(key string, _ bool) fault {
				f := strings.Fields(key) // system method path [marker]
				mu.Lock()
				n := seen[f[0]+f[1]+f[2]]
				seen[f[0]+f[1]+f[2]] = n + 1
				mu.Unlock()
				return s(f[0], f[1], f[2], n)
			}
			proxies = append(proxies, px)
			return addr
		}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: st.API(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	st.ConnectWebhooks(base)
	t.Cleanup(func() {
		_ = srv.Close()
		st.Close()
		for _, px := range proxies {
			px.Close()
		}
		if t.Failed() {
			t.Logf("function logs:\n%s", logs.String())
		}
	})
	if err := st.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st, base
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func postEscalation(t *testing.T, base string, c escalationCase) (int, answer, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/escalations", strings.NewReader(string(c.Payload)))
	req.Header.Set("x-api-key", localstack.LocalAPIKey)
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	t.Logf("%s answered %d %s in %s", c.ConversationID, resp.StatusCode, b, time.Since(began).Round(time.Millisecond))
	return resp.StatusCode, answerOf(b), time.Since(began)
}

// ticketsOf waits for escalation-redrive (run every 2 s here) to settle and counts c's tickets.
func ticketsOf(t *testing.T, st *localstack.Stack, c escalationCase, wait time.Duration) []ticket {
	t.Helper()
	r := &run{st: st, cases: []escalationCase{c}}
	for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(2 * time.Second) {
		if err := st.RunOnce(context.Background(), "escalation-redrive", time.Now()); err != nil {
			t.Log(err)
		}
	}
	return r.tickets()[c.ConversationID]
}

// A Jira create answered 503 after Jira created the request: the escalation must still be one
// request (the "doubled").
func TestReproCreateAnswered5xxAfterCommitIsNotRepeated(t *testing.T) {
	st, base := reproStack(t, func(system, method, path string, n int) fault {
		if system == "jira" && method == http.MethodPost && path == "/rest/servicedeskapi/request" && n == 0 {
			return fault{kind: serverError, status: 503, afterCommit: true}
		}
		return fault{kind: pass}
	})
	c := newEscalation(1, 0)
	postEscalation(t, base, c)
	if ts := ticketsOf(t, st, c, 20*time.Second); len(ts) != 1 {
		t.Errorf("%d Jira requests for one escalation: %v", len(ts), ts)
	}
}

// DynamoDB stalls while an escalation claims its idempotency record: the escalation must still
// become a ticket (the "lost"), and the answer must come within the budget + 1 s.
func TestReproStalledStateStoreNeitherLosesNorDelays(t *testing.T) {
	st, base := reproStack(t, func(string, string, string, int) fault { return fault{kind: pass} })
	c := newEscalation(1, 1)
	if err := st.DynamoDB.Pause(); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(10 * time.Second)
		_ = st.DynamoDB.Resume()
	}()
	status, a, took := postEscalation(t, base, c)
	if status != http.StatusOK || took > 7*time.Second {
		t.Errorf("answered %d %+v in %s; want 200 within the 6 s budget + 1 s", status, a, took)
	}
	time.Sleep(10 * time.Second) // until DynamoDB is back
	if ts := ticketsOf(t, st, c, 70*time.Second); len(ts) != 1 {
		t.Errorf("%d tickets for one escalation after the store came back: %v", len(ts), ts)
	}
}

// A MessageBird send answered 502 after MessageBird accepted the message: the agent's reply must
// reach the customer once, though Jira redelivers the comment webhook.
func TestReproReplyAnswered5xxAfterCommitIsSentOnce(t *testing.T) {
	st, _ := reproStack(t, func(system, method, path string, n int) fault {
		if system == "messagebird" && method == http.MethodPost && strings.HasSuffix(path, "/messages") && n == 0 {
			return fault{kind: serverError, status: 502, afterCommit: true}
		}
		return fault{kind: pass}
	})
	u := newUser(1)
	d, err := st.MessageBird().Receive(messagebirdtest.Inbound{MSISDN: u.MSISDN, Text: u.text("m", 1, "hello")})
	if err != nil || d.Status != http.StatusOK {
		t.Fatalf("first message: %+v %v", d, err)
	}
	key := waitKey(t, &run{st: st}, u)
	reply := u.text("r", 1, "we are on it")
	ds, err := st.Jira().AgentComment(key, reply, true, "")
	if err != nil || len(ds) != 1 {
		t.Fatal(err)
	}
	t.Logf("comment webhook answered %d", ds[0].Status)
	for i := 0; i < 5 && ds[0].Status/100 != 2; i++ { // Jira redelivers until it is taken
		time.Sleep(time.Second)
		ds[0], _ = st.Jira().Redeliver(ds[0].ID)
		t.Logf("redelivery answered %d", ds[0].Status)
	}
	if n := sentCount(st, u, reply); n != 1 {
		t.Errorf("the reply reached the customer %d times", n)
	}
}

// A Jira request create answered 502 after Jira created it: the end user's message must be in
// the request once, though MessageBird redelivers the webhook.
func TestReproMessageAnswered5xxAfterCommitIsWrittenOnce(t *testing.T) {
	st, _ := reproStack(t, func(system, method, path string, n int) fault {
		if system == "jira" && method == http.MethodPost && path == "/rest/servicedeskapi/request" && n == 0 {
			return fault{kind: serverError, status: 502, afterCommit: true}
		}
		return fault{kind: pass}
	})
	u := newUser(2)
	m1 := u.text("m", 1, "hello")
	u.Messages = []string{m1}
	d, err := st.MessageBird().Receive(messagebirdtest.Inbound{MSISDN: u.MSISDN, Text: m1})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("webhook answered %d %s", d.Status, d.Response)
	for i := 0; i < 5 && d.Status/100 != 2; i++ { // MessageBird redelivers until it is taken
		time.Sleep(time.Second)
		d = st.MessageBird().Replay(d)
		t.Logf("redelivery answered %d %s", d.Status, d.Response)
	}
	r := &run{st: st}
	s := r.userState(u)
	if len(s.requests) != 1 || s.inJira[m1] != 1 {
		t.Errorf("requests %v; the message is %d times in them", s.requests, s.inJira[m1])
	}
}

// Jira hangs: a WhatsApp message's webhook must still be answered within the webhook budget
// (15 s) + 1 s, so the sender redelivers instead of timing out.
func TestReproWebhookAgainstAHangingJiraIsAnsweredInBudget(t *testing.T) {
	st, _ := reproStack(t, func(system, _, _ string, _ int) fault {
		if system == "jira" {
			return fault{kind: hang}
		}
		return fault{kind: pass}
	})
	st.MessageBird().WebhookTimeout = 40 * time.Second
	u := newUser(3)
	began := time.Now()
	d, err := st.MessageBird().Receive(messagebirdtest.Inbound{MSISDN: u.MSISDN, Text: u.text("m", 1, "hello")})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	t.Logf("webhook answered %d %s in %s", d.Status, d.Response, took.Round(time.Millisecond))
	if took > 16*time.Second {
		t.Errorf("answered in %s; the budget is 15 s + 1 s", took.Round(time.Millisecond))
	}
}

func waitKey(t *testing.T, r *run, u *user) string {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if keys := r.requestsOf(u); len(keys) > 0 {
			return keys[0]
		}
	}
	t.Fatal("no request for the user")
	return ""
}

func sentCount(st *localstack.Stack, u *user, text string) int {
	n := 0
	for _, c := range st.MessageBird().ConversationsOf(u.MSISDN) {
		for _, m := range st.MessageBird().Sent(c.ID) {
			if m.Content.Text == text && m.Status != "rejected" && m.Status != "failed" {
				n++
			}
		}
	}
	return n
}
