// Package chaos is the fault-injection proof of cxbridge's promises: nothing lost, nothing
// doubled, an answer in time. It drives the local stack (every function's real bootstrap under
// the Runtime API emulator, DynamoDB Local, the wire-level fakes) the way production is driven:
// Genesys flows raising escalations to Jira and ServiceNow in parallel, WhatsApp users writing
// and agents answering, while a fault-injecting proxy in front of each external system answers
// 5xx (some after the system applied the request), 429 and nothing at all, function processes
// are killed between a ticket's creation and its record, callers and webhook senders repeat
// themselves, and DynamoDB stalls. Then the faults stop, escalation-redrive drains what was
// queued, and the suite counts, from the fakes' own state, what every escalation and message
// came to.
//
// `make chaos` (go run ./cmd/local chaos) runs it; Run is the whole suite.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/localstack"
)

// Config sizes a run. Zero fields take the defaults of the full proof.
type Config struct {
	Escalations   int   // default 1,000
	Parallel      int   // escalations in flight at once; default 20
	Conversations int   // WhatsApp end users; default Escalations/20, at least 2
	Seed          int64 // 0: a new one (printed; give it back to replay the fault plan)
	Rates         Rates // zero: DefaultRates
	// PauseDynamoDB stalls DynamoDB Local this long, once half the escalations are sent;
	// default 10 s, negative: never.
	PauseDynamoDB time.Duration
	// RedriveEvery runs escalation-redrive this often instead of every minute; default 10 s.
	RedriveEvery time.Duration
	// Drain is how long after the faults stop every escalation has to be a ticket, every
	// message delivered; default 2 minutes.
	Drain time.Duration
	// StateFile, when set, receives the fakes' final state (JSON) if a promise was broken.
	StateFile string
	Logs      io.Writer // the functions' log lines; nil discards them
	Progress  io.Writer // a line per phase; nil discards them
}

func (c *Config) defaults() {
	if c.Escalations <= 0 {
		c.Escalations = 1000
	}
	if c.Parallel <= 0 {
		c.Parallel = 20
	}
	if c.Conversations <= 0 {
		c.Conversations = max(2, c.Escalations/20)
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano() % 1_000_000_000
	}
	if c.Rates == (Rates{}) {
		c.Rates = DefaultRates
	}
	if c.PauseDynamoDB == 0 {
		c.PauseDynamoDB = 10 * time.Second
	}
	if c.RedriveEvery <= 0 {
		c.RedriveEvery = 10 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 2 * time.Minute
	}
	if c.Logs == nil {
		c.Logs = io.Discard
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// run is the state of one run.
type run struct {
	cfg    Config
	plan   *plan
	events *journal
	calls  *calls
	st     *localstack.Stack
	api    string
	client *http.Client
	cases  []escalationCase
	users  []*user

	bg                  sync.WaitGroup  // DynamoDB's resume, the flows' fallback calls
	flows               context.Context // ends the flows' fallback calls with the run
	pauseOnce           sync.Once
	pausedAt, resumedAt time.Time
	pauseErr            error

	killMu sync.Mutex
	kills  map[string]int // function -> processes killed

	began, faultsOff, drained time.Time
	drainedAll                bool
	budgets                   map[string]time.Duration // route -> budget + 1 s
	unprotected               *unprotectedLog
}

// Run runs the suite and returns its report; the error is for a suite that could not run.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	r := &run{cfg: cfg, plan: newPlan(cfg.Seed, cfg.Rates), events: &journal{}, calls: &calls{}, kills: map[string]int{},
		client: &http.Client{Timeout: 60 * time.Second}, unprotected: newUnprotectedLog(cfg.Logs)}
	for i := range cfg.Escalations {
		r.cases = append(r.cases, newEscalation(cfg.Seed, i))
	}
	for i := range cfg.Conversations {
		r.users = append(r.users, newUser(i))
	}
	progress := func(format string, args ...any) { fmt.Fprintf(cfg.Progress, "chaos: "+format+"\n", args...) }

	progress("seed %d: starting the local stack (DynamoDB Local, fakes behind fault-injecting proxies, every function's bootstrap)", cfg.Seed)
	var proxies []*proxy
	var frontErr error
	front := func(system, url string) string {
		if system != "jira" && system != "servicenow" && system != "messagebird" {
			return url
		}
		px, addr, err := newProxy(system, url, r.plan, r.events)
		if err != nil {
			frontErr = errors.Join(frontErr, err)
			return url
		}
		px.kill = r.kill
		switch system {
		case "jira":
			px.creates = func(method, path string) bool {
				return method == http.MethodPost && path == "/rest/servicedeskapi/request"
			}
		case "servicenow":
			px.creates = func(method, path string) bool {
				return method == http.MethodPost && strings.HasSuffix(path, "/table/incident") // /api/now[/v2]/table/incident
			}
		}
		proxies = append(proxies, px)
		return addr
	}
	defer func() {
		for _, px := range proxies {
			px.Close()
		}
	}()
	st, err := localstack.Start(ctx, localstack.Options{
		Logs: r.unprotected, Getenv: func(string) string { return "" }, Front: front, ScheduleEvery: cfg.RedriveEvery,
		PrivateDynamoDB: true, // its own instance, which it pauses
		// Every caller gets its own execution environment, as on Lambda (default account
		// limit 1,000): the suite tests cxbridge, not a throttle.
		Concurrency: max(32, 3*cfg.Parallel),
	})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if frontErr != nil {
		return nil, frontErr
	}
	r.st = st
	if err := st.Warm(ctx); err != nil {
		return nil, err
	}
	if err := r.readBudgets(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: st.API(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	r.api = "http://" + ln.Addr().String()
	senders, stopSenders := context.WithCancel(ctx)
	defer stopSenders()
	r.flows = senders
	rl, relayURL, err := newRelay(senders, r.api, r.plan, r.calls, st.MessageBird())
	if err != nil {
		return nil, err
	}
	defer rl.Close()
	st.MessageBird().SetWebhook(messagebirdtest.Webhook{URL: relayURL + "/messagebird/webhook", PublicURL: localstack.LocalMessageBirdWebhookURL})
	st.Jira().RegisterWebhook(relayURL+"/jira/webhook", localstack.LocalJiraWebhookSecret)
	sched, stopSchedules := context.WithCancel(ctx)
	defer stopSchedules()
	if err := st.RunSchedules(sched); err != nil {
		return nil, err
	}
	defer func() {
		if !r.pausedAt.IsZero() {
			r.resumeDynamoDB()
		}
		r.bg.Wait()
	}()

	began := time.Now()
	r.warmUp(ctx)
	progress("warmed %d execution environments in %s (no faults yet)", r.environments(), time.Since(began).Round(100*time.Millisecond))
	r.plan.on.Store(true)
	progress("faults on: %d escalations (%d in parallel) and %d WhatsApp conversations; escalation-redrive every %s", cfg.Escalations, cfg.Parallel, cfg.Conversations, cfg.RedriveEvery)
	r.began = time.Now()
	var wg sync.WaitGroup
	wg.Go(func() { r.escalations(ctx) })
	wg.Go(func() { r.conversations(ctx) })
	wg.Wait()
	if !r.pausedAt.IsZero() {
		r.resumeDynamoDB()
	}
	r.plan.on.Store(false)
	r.faultsOff = time.Now()
	progress("faults off after %s; waiting up to %s for the backlog to drain", r.faultsOff.Sub(r.began).Round(time.Second), cfg.Drain)

	for deadline := r.faultsOff.Add(cfg.Drain); ctx.Err() == nil; {
		if r.backlogEmpty() {
			r.drainedAll = true
			break
		}
		if time.Now().After(deadline) {
			break
		}
		pause(ctx, time.Second)
	}
	r.drained = time.Now()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stopSenders() // a sender still redelivering, a flow still to call again, has had its answer: no
	waitOrTimeout(&rl.pending, 45*time.Second)
	rep := r.report()
	if !rep.Passed && cfg.StateFile != "" {
		if err := r.dumpState(cfg.StateFile); err != nil {
			rep.Details = append(rep.Details, "the fakes' state could not be written: "+err.Error())
		} else {
			rep.StateFile = cfg.StateFile
		}
	}
	return rep, nil
}

// warmUp gives the functions the warm execution environments a production stack under steady
// traffic has, and DynamoDB Local a warm JVM, so that what the run measures is cxbridge under
// faults, not this machine starting dozens of processes at once: 2 x Parallel escalations (to
// conversations the checks ignore) and a few webhooks, all at once, each system answering a
// second late so that they overlap, with no fault.
func (r *run) warmUp(ctx context.Context) {
	r.plan.slow.Store(true)
	defer r.plan.slow.Store(false)
	var wg sync.WaitGroup
	for i := range 2 * r.cfg.Parallel {
		wg.Go(func() {
			body := fmt.Sprintf(`{"conversationId":"warmup-%d-%d","trigger":"vip","target":%q}`, r.cfg.Seed, i, []string{"jira", "servicenow"}[i%2])
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.api+"/escalations", strings.NewReader(body))
			req.Header.Set("x-api-key", localstack.LocalAPIKey)
			if resp, err := r.client.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	for range 8 {
		wg.Go(func() {
			// Unsigned: refused at once, after the process started.
			if resp, err := r.client.Post(r.api+"/messagebird/webhook", "application/json", strings.NewReader(`{}`)); err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

// environments counts the execution environments the functions have started.
func (r *run) environments() int {
	n := 0
	for _, name := range []string{"create-escalation", "messagebird-inbound", "escalation-redrive"} {
		if fn, err := r.st.Function(context.Background(), name); err == nil {
			n += fn.Environments()
		}
	}
	return n
}

// readBudgets reads each route's answer budget from the functions' configuration.
func (r *run) readBudgets() error {
	read := func(fn, name string, def time.Duration) (time.Duration, error) {
		env, err := r.st.Env(fn)
		if err != nil {
			return 0, err
		}
		v := env[name]
		if v == "" {
			return def, nil
		}
		ms, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s of %s is %q", name, fn, v)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	esc, err := read("CreateEscalationFunction", "ESCALATION_BUDGET_MS", 6*time.Second)
	if err != nil {
		return err
	}
	hook, err := read("MessagebirdInboundFunction", "MESSAGEBIRD_WEBHOOK_BUDGET_MS", 15*time.Second)
	if err != nil {
		return err
	}
	r.budgets = map[string]time.Duration{"/escalations": esc, "/messagebird/webhook": hook, "/jira/webhook": hook}
	return nil
}

// kill crashes the function process that sent a ticket create the target just applied: the
// create-escalation invocation of that escalation, or else a running escalation-redrive.
func (r *run) kill(_ string, markers []string) string {
	conv := ""
	for _, m := range markers {
		if isEscalation(m) {
			conv = m
			break
		}
	}
	if conv == "" {
		// A WhatsApp conversation's request: the fault is an escalation's, and killing any
		// create-escalation in flight would crash one that had created nothing.
		return "nothing (not an escalation's create)"
	}
	for _, name := range []string{"create-escalation", "escalation-redrive"} {
		fn, err := r.st.Function(context.Background(), name)
		if err != nil {
			continue
		}
		for _, inv := range fn.InFlight() {
			if name == "create-escalation" && !strings.Contains(string(inv.Payload), conv) {
				continue
			}
			if fn.Kill(inv.RequestID) {
				r.killMu.Lock()
				r.kills[name]++
				r.killMu.Unlock()
				return name
			}
		}
	}
	return "nothing (the caller had gone)"
}

func waitOrTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
