// Package health is integration-health: it proves, without creating anything a customer or an
// agent can see, that every configured system accepts cxbridge's credentials and grants the
// permissions each function needs (seed 000's hourly check with 403 detection), and, every
// minute, reports the state the alarms watch (breakers, outage flags).
//
// The scheduled function (functions/integration-health), `cxbridge health` on an operator's
// machine and the local stack run the same Checker. Each check yields a Result (system, check,
// target, ok, the HTTP status, the exact call, what was found and what to do) and the metric
// HealthCheckFailed{System,Check}, whose alarm names the check and its fix; the function also
// keeps the last result of every check in the state table for `cxbridge status`.
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry"
	"github.com/cxbridge/cxbridge/pkg/observe"
)

// Status is a check's outcome.
type Status string

const (
	OK      Status = "ok"
	Failed  Status = "failed"  // a function will fail (or already does): alarmed
	Warning Status = "warning" // something optional is missing; cxbridge works around it
	Skipped Status = "skipped" // not checked because an earlier check of the system failed
)

// Systems, as in metrics and results.
const (
	Jira        = "jira"
	ServiceNow  = "servicenow"
	Genesys     = "genesys"
	MessageBird = "messagebird"
	Telemetry   = "telemetry"
)

// Checks, the Check dimension of HealthCheckFailed: one alarm each (template.yaml).
const (
	CheckAuthentication        = "authentication"
	CheckServiceDesk           = "service_desk"
	CheckRequestType           = "request_type"
	CheckPermissions           = "permissions"
	CheckCustomers             = "customers"
	CheckReadUsers             = "read_sys_user"
	CheckReadIncidents         = "read_incident"
	CheckWriteIncidents        = "write_incident"
	CheckQueueObservations     = "queue_observations"
	CheckConversations         = "conversations"
	CheckRoutingPriority       = "routing_priority"
	CheckParticipantAttributes = "participant_attributes"
	CheckWebhook               = "webhook"
	CheckReachability          = "reachability"
)

// Catalog lists every (system, check) integration-health can report, in display order. The
// template has one alarm per entry that can fail (Alarmed).
var Catalog = []struct {
	System, Check string
	Alarmed       bool
}{
	{Jira, CheckAuthentication, true}, {Jira, CheckServiceDesk, true}, {Jira, CheckRequestType, true},
	{Jira, CheckPermissions, true}, {Jira, CheckCustomers, false},
	{ServiceNow, CheckAuthentication, true}, {ServiceNow, CheckReadUsers, true}, {ServiceNow, CheckReadIncidents, true},
	{ServiceNow, CheckWriteIncidents, true},
	{Genesys, CheckAuthentication, true}, {Genesys, CheckQueueObservations, true}, {Genesys, CheckConversations, true},
	{Genesys, CheckRoutingPriority, true}, {Genesys, CheckParticipantAttributes, true},
	{MessageBird, CheckAuthentication, true}, {MessageBird, CheckWebhook, true},
	{Telemetry, CheckReachability, true},
}

// Result is one check's outcome.
type Result struct {
	System     string    `json:"system"`
	Check      string    `json:"check"`
	Target     string    `json:"target,omitempty"` // what it was checked on: a project, a table, a queue
	Status     Status    `json:"status"`
	OK         bool      `json:"ok"`                   // Status is ok or warning
	HTTPStatus int       `json:"httpStatus,omitempty"` // of the call that decided it; 0 when none answered
	Call       string    `json:"call,omitempty"`       // the API call made, e.g. "GET /rest/api/3/myself"
	Detail     string    `json:"detail"`               // what was found
	Fix        string    `json:"fix,omitempty"`        // what to do, when not ok
	CheckedAt  time.Time `json:"checkedAt"`
	LatencyMs  int64     `json:"latencyMs"`
}

// ID identifies a check across runs.
func (r Result) ID() string { return r.System + "#" + r.Check + "#" + r.Target }

// Report is one run of every check.
type Report struct {
	StartedAt time.Time `json:"startedAt"`
	Duration  int64     `json:"durationMs"`
	Results   []Result  `json:"results"`
	Failed    int       `json:"failed"`
	Warnings  int       `json:"warnings"`
}

// OK reports whether no check failed (warnings allowed).
func (r Report) OK() bool { return r.Failed == 0 }

// Checker runs the checks of every configured system. A nil client means the system is not
// configured (or skipped by HEALTH_SKIP_SYSTEMS) and is not checked.
type Checker struct {
	Config      Config
	Jira        *jira.Client
	ServiceNow  *servicenow.Client
	Genesys     *genesys.Client
	MessageBird *messagebird.Client
	Telemetry   *telemetry.Client
	// CallTimeout bounds each API call; default 10 s.
	CallTimeout time.Duration
	Now         func() time.Time
}

// NewChecker builds the clients of every configured system from cfg; secrets reads their
// credentials (lazily, on the first call); hc nil means connectors.DefaultHTTPClient.
func NewChecker(cfg Config, secrets connectors.SecretReader, hc *http.Client) *Checker {
	c := &Checker{Config: cfg}
	if cfg.checks(Jira) {
		c.Jira = jira.New(cfg.Jira.BaseURL, secrets, cfg.Jira.SecretID, hc)
	}
	if cfg.checks(ServiceNow) {
		c.ServiceNow = servicenow.New(cfg.ServiceNow.BaseURL, secrets, cfg.ServiceNow.SecretID, hc)
	}
	if cfg.checks(Genesys) {
		c.Genesys = genesys.New(cfg.Genesys.APIBaseURL, cfg.Genesys.LoginBaseURL, secrets, cfg.Genesys.SecretID, hc)
	}
	if cfg.checks(MessageBird) {
		c.MessageBird = messagebird.New(cfg.MessageBird.BaseURL, secrets, cfg.MessageBird.SecretID, hc)
	}
	if cfg.checks(Telemetry) {
		c.Telemetry = telemetry.New(cfg.Telemetry.URL, secrets, cfg.Telemetry.SecretID, hc)
	}
	return c
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Run checks every configured system, the systems concurrently, and returns the results in
// catalog order.
func (c *Checker) Run(ctx context.Context) Report {
	rep := Report{StartedAt: c.now()}
	type system struct {
		name string
		run  func(ctx context.Context, rec *recorder)
	}
	var systems []system
	if c.Jira != nil {
		systems = append(systems, system{Jira, c.checkJira})
	}
	if c.ServiceNow != nil {
		systems = append(systems, system{ServiceNow, c.checkServiceNow})
	}
	if c.Genesys != nil {
		systems = append(systems, system{Genesys, c.checkGenesys})
	}
	if c.MessageBird != nil {
		systems = append(systems, system{MessageBird, c.checkMessageBird})
	}
	if c.Telemetry != nil {
		systems = append(systems, system{Telemetry, c.checkTelemetry})
	}
	recs := make([]*recorder, len(systems))
	var wg sync.WaitGroup
	for i, s := range systems {
		recs[i] = &recorder{c: c, system: s.name}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx, recs[i])
		}()
	}
	wg.Wait()
	for _, r := range recs {
		rep.Results = append(rep.Results, r.results...)
	}
	Sort(rep.Results)
	for _, r := range rep.Results {
		switch r.Status {
		case Failed:
			rep.Failed++
		case Warning:
			rep.Warnings++
		}
	}
	rep.Duration = c.now().Sub(rep.StartedAt).Milliseconds()
	return rep
}

// Sort orders results as the catalog does, then by target.
func Sort(results []Result) {
	order := map[string]int{}
	for i, e := range Catalog {
		order[e.System+"#"+e.Check] = i
	}
	sort.SliceStable(results, func(i, j int) bool {
		a, b := results[i], results[j]
		if oa, ob := order[a.System+"#"+a.Check], order[b.System+"#"+b.Check]; oa != ob {
			return oa < ob
		}
		return a.Target < b.Target
	})
}

// Emit records the run's metrics: HealthCheckFailed{System,Check} (1 when any target of the
// check failed, else 0, so a recovered check clears its alarm) and HealthChecksFailed.
func Emit(ctx context.Context, rep Report) {
	m := observe.MetricsFrom(ctx)
	worst := map[[2]string]float64{}
	var keys [][2]string
	for _, r := range rep.Results {
		if r.Status == Skipped {
			continue // says nothing about its own check; the failure before it is alarmed
		}
		k := [2]string{r.System, r.Check}
		if _, ok := worst[k]; !ok {
			keys = append(keys, k)
		}
		if r.Status == Failed {
			worst[k] = 1
		} else if _, ok := worst[k]; !ok {
			worst[k] = 0
		}
	}
	for _, k := range keys {
		m.Count("HealthCheckFailed", worst[k], observe.D("System", k[0]), observe.D("Check", k[1]))
	}
	m.Count("HealthChecksFailed", float64(rep.Failed))
}

// recorder collects one system's results.
type recorder struct {
	c       *Checker
	system  string
	results []Result
}

// probe is one API call of a check, timed and bounded by the call timeout.
type probe struct {
	rec     *recorder
	check   string
	target  string
	call    string
	started time.Time
}

func (rec *recorder) probe(check, target, call string) *probe {
	return &probe{rec: rec, check: check, target: target, call: call, started: rec.c.now()}
}

// ctx bounds one call.
func (rec *recorder) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	d := rec.c.CallTimeout
	if d <= 0 {
		d = 10 * time.Second
	}
	return context.WithTimeout(ctx, d)
}

// done records the probe's result.
func (p *probe) done(status Status, httpStatus int, detail, fix string) Result {
	now := p.rec.c.now()
	r := Result{System: p.rec.system, Check: p.check, Target: p.target, Status: status, OK: status == OK || status == Warning,
		HTTPStatus: httpStatus, Call: p.call, Detail: detail, CheckedAt: now.UTC(), LatencyMs: now.Sub(p.started).Milliseconds()}
	if status != OK {
		r.Fix = fix
	}
	p.rec.results = append(p.rec.results, r)
	return r
}

func (p *probe) ok(httpStatus int, detail string) Result { return p.done(OK, httpStatus, detail, "") }

// failed records a failed call: the fix for a 401, a 403, a 404 or an outage.
func (p *probe) failed(err error, fixes fixes) Result {
	status, kind := statusOf(err)
	fix := fixes.forKind(p.rec.system, kind)
	return p.done(Failed, status, describe(err), fix)
}

// skip records a check that could not run.
func (rec *recorder) skip(check, target, why string) {
	now := rec.c.now()
	rec.results = append(rec.results, Result{System: rec.system, Check: check, Target: target, Status: Skipped, Detail: "not checked: " + why, CheckedAt: now.UTC()})
}

// fixes are what to do about a failed call, by what went wrong; empty entries take the
// system's generic advice.
type fixes struct {
	unauthorized, forbidden, notFound, rejected string
}

// Parameter names the messages point at, per system.
var (
	secretParam = map[string]string{Jira: "JiraSecretId", ServiceNow: "ServiceNowSecretId", Genesys: "GenesysSecretId", MessageBird: "MessageBirdSecretId", Telemetry: "TelemetrySecretId"}
	urlParam    = map[string]string{Jira: "JiraBaseUrl", ServiceNow: "ServiceNowBaseUrl", Genesys: "GenesysApiBaseUrl / GenesysLoginBaseUrl", MessageBird: "MessageBirdBaseUrl", Telemetry: "TelemetryUrl"}
	displayName = map[string]string{Jira: "Jira", ServiceNow: "ServiceNow", Genesys: "Genesys Cloud", MessageBird: "MessageBird", Telemetry: "The telemetry endpoint"}
)

func (f fixes) forKind(system string, kind connectors.Kind) string {
	name := displayName[system]
	pick := func(specific, generic string) string {
		if specific != "" {
			return specific
		}
		return generic
	}
	switch kind {
	case connectors.KindUnauthorized:
		return pick(f.unauthorized, fmt.Sprintf("%s refused the credentials (401): put valid ones in the secret named by %s; functions re-read it within 5 minutes.", name, secretParam[system]))
	case connectors.KindForbidden:
		return pick(f.forbidden, fmt.Sprintf("%s refused the call (403): the integration account lacks a permission; see the README's setup section for %s.", name, name))
	case connectors.KindNotFound:
		return pick(f.notFound, fmt.Sprintf("%s answered 404: check %s and the ids in the parameters.", name, urlParam[system]))
	case connectors.KindConfig:
		return fmt.Sprintf("The secret named by %s is missing, unreadable or lacks a field: create it as the README's secrets table shows.", secretParam[system])
	case connectors.KindRateLimited:
		return fmt.Sprintf("%s is rate-limiting the integration account (429): nothing to fix if it is brief; otherwise raise the account's limit.", name)
	case connectors.KindUnavailable, "":
		return fmt.Sprintf("%s did not answer (timeout, connection failure or 5xx): check its status page and %s; escalations queue and retry meanwhile.", name, urlParam[system])
	}
	return pick(f.rejected, fmt.Sprintf("%s rejected the call: check %s.", name, urlParam[system]))
}

// statusOf returns the HTTP status and kind of a failed call.
func statusOf(err error) (int, connectors.Kind) {
	var ce *connectors.Error
	if errors.As(err, &ce) {
		return ce.Status, ce.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return 0, connectors.KindUnavailable
	}
	return 0, ""
}

// describe renders a failed call for a person: the status and the system's own message.
func describe(err error) string {
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		return err.Error()
	}
	var b strings.Builder
	if ce.Status != 0 {
		fmt.Fprintf(&b, "HTTP %d", ce.Status)
	} else {
		b.WriteString(string(ce.Kind))
	}
	if ce.Message != "" {
		fmt.Fprintf(&b, ": %s", ce.Message)
	} else if ce.Err != nil {
		fmt.Fprintf(&b, ": %v", ce.Err)
	}
	return b.String()
}
