package chaos

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
	"github.com/cxbridge/cxbridge/pkg/runtimeapi"
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
	events := &journal{}
	st, err := localstack.Start(context.Background(), localstack.Options{Logs: &logs, Getenv: func(string) string { return "" }, PrivateDynamoDB: true,
		Front: func(system, url string) string {
			if system != "jira" && system != "servicenow" && system != "messagebird" {
				return url
			}
			px, addr, err := newProxy(system, url, newPlan(1, DefaultRates), events)
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
		for _, e := range events.all() {
			if e.Fault.kind != pass {
				t.Logf("injected: %s", e)
			}
		}
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
	req.Header.Set("Content-Type", "application/json")
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

// DynamoDB stalls for 10 s as an escalation arrives: the answer must still come within the
// budget + 1 s (the "unanswered"; make chaos's late answers during its pause), and the
// escalation must become one ticket.
func TestReproStalledStateStoreAnswersInBudget(t *testing.T) {
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

// DynamoDB applies an escalation's idempotency claim but its answer is lost (the store stalled
// as it answered): the SDK's retry of that conditional write finds the record its own first
// attempt wrote. The escalation must still be delivered (the "lost", seen in make chaos
// as a first call answered "duplicate" while DynamoDB was paused).
func TestReproClaimWhoseAnswerIsLostIsNotALostEscalation(t *testing.T) {
	st, _ := reproStack(t, func(string, string, string, int) fault { return fault{kind: pass} })
	ddb, err := url.Parse(st.DynamoDB.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		out, _ := http.NewRequestWithContext(context.WithoutCancel(r.Context()), r.Method, "http://"+ddb.Host+r.URL.RequestURI(), bytes.NewReader(body))
		out.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(out)
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		lose := false
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), ".PutItem") && bytes.Contains(body, []byte(st.Tables.Idempotency)) {
			once.Do(func() { lose = true })
		}
		if lose {
			t.Logf("DynamoDB applied the claim (%d); its answer is lost", resp.StatusCode)
			<-r.Context().Done()
			panic(http.ErrAbortHandler)
		}
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
	}))
	defer front.Close()
	env, err := st.Env("CreateEscalationFunction")
	if err != nil {
		t.Fatal(err)
	}
	env["AWS_ENDPOINT_URL_DYNAMODB"] = front.URL
	bin := filepath.Join(t.TempDir(), "bootstrap")
	if err := runtimeapi.BuildBootstrap(context.Background(), st.Root, "functions/create-escalation", bin); err != nil {
		t.Fatal(err)
	}
	fn, err := runtimeapi.Start(runtimeapi.Function{Name: "create-escalation", Bootstrap: bin, Env: env, Timeout: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer fn.Close()
	c := newEscalation(1, 2)
	res, err := fn.Invoke(context.Background(), c.Payload) // a direct invocation: the data action's body

	if err != nil {
		t.Fatal(err)
	}
	t.Logf("answered %s in %s", res.Payload, res.Duration.Round(time.Millisecond))
	if ts := ticketsOf(t, st, c, 30*time.Second); len(ts) != 1 {
		t.Errorf("%d tickets for the escalation: %v", len(ts), ts)
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

// The create of an end user's first message is applied in Jira but its answer is lost; an
// agent answers on that request before MessageBird's redelivery lets cxbridge link it. The
// reply must still reach the customer: its webhook may not be acknowledged as "no
// conversation" for a request cxbridge itself raised.
func TestReproReplyOnARequestNotYetLinkedIsNotLost(t *testing.T) {
	armed := true
	var mu sync.Mutex
	st, _ := reproStack(t, func(system, method, path string, _ int) fault {
		mu.Lock()
		defer mu.Unlock()
		if armed && system == "jira" && method == http.MethodPost && path == "/rest/servicedeskapi/request" {
			armed = false
			return fault{kind: serverError, status: 504, afterCommit: true}
		}
		return fault{kind: pass}
	})
	u := newUser(4)
	r := &run{st: st}
	d, err := st.MessageBird().Receive(messagebirdtest.Inbound{MSISDN: u.MSISDN, Text: u.text("m", 1, "hello")})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first message: webhook answered %d %s", d.Status, d.Response)
	reply := u.text("r", 1, "we are on it")
	ds, err := st.Jira().AgentComment(waitKey(t, r, u), reply, true, "")
	if err != nil || len(ds) != 1 {
		t.Fatal(err)
	}
	t.Logf("agent replied on the request Jira shows; its webhook answered %d", ds[0].Status)
	for i := 0; i < 10 && (d.Status/100 != 2 || ds[0].Status/100 != 2); i++ { // both senders redeliver until taken
		time.Sleep(time.Second)
		if d.Status/100 != 2 {
			d = st.MessageBird().Replay(d)
			t.Logf("message redelivery answered %d %s", d.Status, d.Response)
		}
		if ds[0].Status/100 != 2 {
			ds[0], _ = st.Jira().Redeliver(ds[0].ID)
			t.Logf("comment redelivery answered %d", ds[0].Status)
		}
	}
	if n := sentCount(st, u, reply); n != 1 {
		t.Errorf("the reply reached the customer %d times", n)
	}
}

// A Jira write carrying an end user's message is applied, then answered with a fault: the
// message must be in the request once, though MessageBird redelivers the webhook. The write is
// the request's create (first message) or the description's edit (second message); in the
// last case an agent replies before the redelivery arrives, so the message's place moves from
// the description to the comments.
func TestReproMessageAnswered5xxAfterCommitIsWrittenOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		path   string // prefix
		fault  fault
		msg    int  // the message whose write is faulted
		reply  bool // an agent replies before the redelivery
	}{
		{"create 502", http.MethodPost, "/rest/servicedeskapi/request", fault{kind: serverError, status: 502, afterCommit: true}, 1, false},
		{"create hang", http.MethodPost, "/rest/servicedeskapi/request", fault{kind: hang, afterCommit: true}, 1, false},
		{"description edit 503", http.MethodPut, "/rest/api/3/issue/", fault{kind: serverError, status: 503, afterCommit: true}, 2, false},
		{"description edit 503, agent replies", http.MethodPut, "/rest/api/3/issue/", fault{kind: serverError, status: 503, afterCommit: true}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			armed := false
			var mu sync.Mutex
			st, _ := reproStack(t, func(system, method, path string, n int) fault {
				mu.Lock()
				defer mu.Unlock()
				if armed && system == "jira" && method == tc.method && strings.HasPrefix(path, tc.path) && (tc.path != "/rest/servicedeskapi/request" || path == tc.path) {
					armed = false
					return tc.fault
				}
				return fault{kind: pass}
			})
			st.MessageBird().WebhookTimeout = 40 * time.Second
			u := newUser(2)
			r := &run{st: st}
			for i := 1; i <= 2; i++ {
				m := u.text("m", i, "hello")
				u.Messages = append(u.Messages, m)
				mu.Lock()
				armed = i == tc.msg
				mu.Unlock()
				d, err := st.MessageBird().Receive(messagebirdtest.Inbound{MSISDN: u.MSISDN, Text: m})
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("message %d: webhook answered %d %s", i, d.Status, d.Response)
				if tc.reply && d.Status/100 != 2 {
					ds, err := st.Jira().AgentComment(waitKey(t, r, u), u.text("r", 1, "we are on it"), true, "")
					if err != nil || len(ds) != 1 {
						t.Fatal(err)
					}
					t.Logf("agent replied; its webhook answered %d", ds[0].Status)
				}
				for j := 0; j < 10 && d.Status/100 != 2; j++ { // MessageBird redelivers until it is taken
					time.Sleep(time.Second)
					d = st.MessageBird().Replay(d)
					t.Logf("redelivery answered %d %s", d.Status, d.Response)
				}
			}
			s := r.userState(u)
			for _, m := range u.Messages {
				if len(s.requests) != 1 || s.inJira[m] != 1 {
					t.Errorf("requests %v; %q is %d times in them", s.requests, m, s.inJira[m])
				}
			}
		})
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

// Jira hangs, and DynamoDB stalls while it does: the webhook's budget is spent waiting for Jira,
// and the state calls that record the outcome (the link's creation in doubt, the lease's
// release) run against a paused store. The answer must still come within the budget (15 s) +
// 1 s (make chaos's late webhooks, answered in 17 s).
func TestReproWebhookAgainstAHangingJiraAndAStalledStoreIsAnsweredInBudget(t *testing.T) {
	st, _ := reproStack(t, func(system, _, _ string, _ int) fault {
		if system == "jira" {
			return fault{kind: hang}
		}
		return fault{kind: pass}
	})
	st.MessageBird().WebhookTimeout = 40 * time.Second
	t.Cleanup(func() { _ = st.DynamoDB.Resume() })
	u := newUser(6)
	pause := time.AfterFunc(12*time.Second, func() {
		if err := st.DynamoDB.Pause(); err != nil {
			t.Error(err)
		}
	})
	defer pause.Stop()
	began := time.Now()
	d, err := st.MessageBird().Receive(messagebirdtest.Inbound{MSISDN: u.MSISDN, Text: u.text("m", 1, "hello")})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	t.Logf("webhook answered %d %s in %s (DynamoDB paused since +12 s: %v)", d.Status, d.Response, took.Round(time.Millisecond), st.DynamoDB.Paused())
	if took > 16*time.Second {
		t.Errorf("answered in %s; the budget is 15 s + 1 s", took.Round(time.Millisecond))
	}
	if d.Status/100 != 5 {
		t.Errorf("answered %d; want a 5xx so MessageBird delivers again", d.Status)
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
