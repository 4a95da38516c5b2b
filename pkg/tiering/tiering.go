// Package tiering routes a caller to the L1, L2 or L3 queue from live product telemetry
// (seed 003), inside a fixed budget, with a safe fallback.
//
// Decision rules, in order:
//  1. Telemetry cannot be read in time, or its answer is unusable: the fallback tier, with
//     status "fallback" and a reason the flow can log. The caller is never left waiting.
//  2. The answer suggests a queue_id that is one of the configured queues: that queue.
//     A suggested queue that is not configured is ignored (and logged): queue ids come from
//     configuration, never from a remote system.
//  3. Otherwise severity_level 3 -> L3, 2 -> L2, anything else -> L1. With
//     TIER_ESCALATION_RAISES (default on), escalation_required:true raises that tier by one
//     (L1 -> L2, L2 -> L3); it never lowers one.
//  4. With TIER_CASCADE on, a chosen tier that cannot take the caller cascades down (L3 -> L2 ->
//     L1) to the first tier that can. A tier can take the caller when it has agents on queue and
//     its estimated wait is at most TIER_MAX_WAIT_SECONDS: nothing when an agent is idle for them,
//     otherwise their place in line (waiting conversations beyond the idle agents, plus one) times
//     TIER_HANDLE_SECONDS, shared by the on-queue agents. When no tier at or below can, a staffed
//     chosen tier is kept (the right people will pick up), and an unstaffed one goes to the
//     staffed tier below with the shortest wait.
//  5. With TIER_FALLBACK_LEAST_LOADED on, a caller whose telemetry failed goes to the tier with
//     the shortest estimated wait instead of TIER_FALLBACK (which wins ties, and stays the answer
//     when the queues cannot be observed either).
//
// The Genesys observation of all three queues (on-queue agents by routing status, waiting
// conversations) runs concurrently with the telemetry call, so it costs no extra time; if it
// fails or is late, routing goes ahead without it, within the same budget.
package tiering

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/connectors/telemetry"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/retry"
)

// Telemetry reads a customer's live telemetry.
type Telemetry interface {
	Read(ctx context.Context, r telemetry.Request) (telemetry.Reading, error)
}

// QueueObserver reads live queue state.
type QueueObserver interface {
	ObserveQueues(ctx context.Context, queueIDs []string) (map[string]genesys.QueueObservation, error)
}

// Guard runs a call through the telemetry circuit breaker.
type Guard interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// Service decides tiers.
type Service struct {
	Config    Config
	Telemetry Telemetry
	Observer  QueueObserver // nil unless Config.Cascade
	Guard     Guard
	Now       func() time.Time
}

// Input is the data action's request.
type Input struct {
	CustomerID     apigw.Text      `json:"customerId"`
	ConversationID apigw.LooseText `json:"conversationId"`
	ANI            apigw.LooseText `json:"ani"`

	// Set by clean: the customer id cannot be one (too long, control characters), so the
	// caller is routed to the fallback tier without asking telemetry.
	badCustomerID bool
	warnings      apigw.Warnings
}

// Decision is the answer. Every field is always present so a Genesys output contract can map
// it; SeverityLevel is 0 when telemetry gave none.
type Decision struct {
	Status             string `json:"status"` // ok | fallback
	Tier               Tier   `json:"tier"`
	QueueID            string `json:"queueId"`
	QueueName          string `json:"queueName"`
	SeverityLevel      int    `json:"severityLevel"`
	EscalationRequired bool   `json:"escalationRequired"`
	Source             string `json:"source"`   // telemetry | telemetry_queue | fallback
	Reason             string `json:"reason"`   // why fallback, or "" when ok
	Cascaded           bool   `json:"cascaded"` // the queues' state changed the tier (a cascade, or the least-loaded fallback)
	// EstimatedWaitSeconds is the chosen queue's estimated wait when the queues were observed
	// and it has agents on queue; -1 otherwise.
	EstimatedWaitSeconds int   `json:"estimatedWaitSeconds"`
	LatencyMs            int64 `json:"latencyMs"`
	// Warnings name the inputs that were ignored or could not be used, each
	// "<input>: <problem>"; empty when there were none.
	Warnings []string `json:"warnings"`
}

// Statuses of a decision.
const (
	StatusOK       = "ok"
	StatusFallback = "fallback"
)

// Sources of a decision.
const (
	SourceTelemetry      = "telemetry"
	SourceTelemetryQueue = "telemetry_queue"
	SourceFallback       = "fallback"
)

// Fallback reasons.
const (
	ReasonTimeout       = "timeout"
	ReasonUnavailable   = "unavailable"
	ReasonRateLimited   = "rate_limited"
	ReasonUnauthorized  = "unauthorized"
	ReasonNotFound      = "not_found"
	ReasonRejected      = "rejected"
	ReasonMalformed     = "malformed_response"
	ReasonNoSeverity    = "missing_severity"
	ReasonBreakerOpen   = "breaker_open"
	ReasonConfiguration = "configuration"
	// ReasonInvalidCustomerID: the customerId cannot be one, so telemetry was not asked.
	ReasonInvalidCustomerID = "invalid_customer_id"
)

var errInvalidCustomerID = errors.New("the customerId cannot be a customer id")

// telemetryRetry allows one quick second attempt when the budget has room for it.
var telemetryRetry = retry.Policy{Attempts: 2, Base: 50 * time.Millisecond, Max: 200 * time.Millisecond, MinAttempt: 300 * time.Millisecond}

// Handle decodes, validates and answers one request.
func (s *Service) Handle(ctx context.Context, req *apigw.Request) apigw.Response {
	var in Input
	ws, err := apigw.DecodeInput(req.Body, &in)
	if err != nil {
		return err.Response()
	}
	if err := in.clean(ws); err != nil {
		return err.Response()
	}
	observe.SetCorrelationID(ctx, string(in.ConversationID.Text))
	return apigw.OK(s.Decide(ctx, in))
}

// clean judges the inputs. Only a missing customerId is refused: the flow sends none, which a
// test of the action shows at once. A customerId that cannot be one (longer than 128
// characters, control characters) still routes the caller, to the fallback tier, reason
// invalid_customer_id; a malformed conversationId or ani is not used. Each is a warning.
func (in *Input) clean(decoded apigw.Warnings) *apigw.Error {
	ws := decoded
	switch id := string(in.CustomerID); {
	case id == "":
		return apigw.Missing("customerId")
	case len(id) > 128 || strings.IndexFunc(id, unicode.IsControl) >= 0:
		ws.Add("customerId", "longer than 128 characters or holds control characters; the fallback tier is used")
		in.badCustomerID = true
	}
	switch c := string(in.ConversationID.Text); {
	case in.ConversationID.Malformed != "":
		ws.Add("conversationId", "%s instead of text; ignored", in.ConversationID.Malformed)
	case c != "" && (len(c) > 64 || strings.IndexFunc(c, notIDRune) >= 0):
		ws.Add("conversationId", "not a Genesys conversation id; ignored")
		in.ConversationID.Text = ""
	}
	switch a := string(in.ANI.Text); {
	case in.ANI.Malformed != "":
		ws.Add("ani", "%s instead of text; not sent to telemetry", in.ANI.Malformed)
	case len(a) > 64 || strings.IndexFunc(a, unicode.IsControl) >= 0:
		ws.Add("ani", "longer than 64 characters or holds control characters; not sent to telemetry")
		in.ANI.Text = ""
	}
	in.warnings = ws
	return nil
}

func notIDRune(r rune) bool {
	return r != '-' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

type observation struct {
	queues map[string]genesys.QueueObservation
	err    error
}

// Decide routes one caller. It always returns a decision within Config.Timeout plus the time
// to compute it.
func (s *Service) Decide(ctx context.Context, in Input) Decision {
	start := time.Now()
	metrics := observe.MetricsFrom(ctx)
	budget, cancel := context.WithTimeout(ctx, s.Config.Timeout)
	defer cancel()

	var observed chan observation
	if s.Config.ObservesQueues() && s.Observer != nil {
		observed = make(chan observation, 1)
		go func() {
			q, err := s.Observer.ObserveQueues(budget, s.Config.queueIDs())
			observed <- observation{q, err}
		}()
	}

	var reading telemetry.Reading
	var err error
	if in.badCustomerID {
		err = errInvalidCustomerID
	} else if reading, err = s.read(budget, in); err == nil {
		metrics.Millis("TelemetryLatency", time.Since(start))
	}
	d := s.decide(ctx, reading, err)
	d.EstimatedWaitSeconds = -1
	if observed != nil {
		if q, ok := s.awaitObservation(ctx, budget, observed); ok {
			switch {
			case d.Status == StatusFallback && s.Config.FallbackLeastLoaded:
				s.leastLoaded(ctx, &d, q)
			case s.Config.Cascade:
				s.cascade(ctx, &d, q)
			}
			if w, staffed := s.wait(q, d.Tier); staffed {
				d.EstimatedWaitSeconds = int((w + time.Second - 1) / time.Second)
			}
		}
	}
	d.LatencyMs = time.Since(start).Milliseconds()
	d.Warnings = in.warnings.Strings()
	in.warnings.Report(ctx)

	metrics.Count("TierDecision", 1, observe.D("Tier", string(d.Tier)), observe.D("Source", d.Source))
	if d.Status == StatusFallback {
		metrics.Count("TelemetryFallback", 1, observe.D("Reason", d.Reason))
		slog.WarnContext(ctx, "telemetry unusable; routed to the fallback tier", "tier", d.Tier, "reason", d.Reason, "error", errString(err), "latency_ms", d.LatencyMs)
	} else {
		slog.InfoContext(ctx, "tier decided", "tier", d.Tier, "source", d.Source, "severity_level", d.SeverityLevel, "escalation_required", d.EscalationRequired, "cascaded", d.Cascaded, "estimated_wait_s", d.EstimatedWaitSeconds, "latency_ms", d.LatencyMs)
	}
	return d
}

func (s *Service) read(ctx context.Context, in Input) (telemetry.Reading, error) {
	var reading telemetry.Reading
	req := telemetry.Request{CustomerID: string(in.CustomerID), ANI: string(in.ANI.Text), At: s.now()}
	call := func(ctx context.Context) error {
		_, err := retry.Do(ctx, telemetryRetry, func(ctx context.Context, _ int) error {
			r, err := s.Telemetry.Read(ctx, req)
			reading = r
			return err
		})
		return err
	}
	if s.Guard == nil {
		return reading, call(ctx)
	}
	return reading, s.Guard.Do(ctx, call)
}

func (s *Service) decide(ctx context.Context, r telemetry.Reading, err error) Decision {
	if err != nil {
		q := s.Config.Queues[s.Config.Fallback]
		return Decision{Status: StatusFallback, Tier: s.Config.Fallback, QueueID: q.ID, QueueName: q.Name, Source: SourceFallback, Reason: Reason(err)}
	}
	d := Decision{Status: StatusOK, SeverityLevel: r.SeverityLevel, EscalationRequired: r.EscalationRequired, Source: SourceTelemetry}
	if r.QueueID != "" {
		if t, ok := s.Config.tierOfQueue(r.QueueID); ok {
			d.Tier, d.Source = t, SourceTelemetryQueue
		} else {
			observe.MetricsFrom(ctx).Count("TelemetryQueueIgnored", 1)
			slog.WarnContext(ctx, "telemetry suggested a queue that is not configured; ignored", "suggested_queue_id", r.QueueID)
		}
	}
	if d.Tier == "" {
		switch r.SeverityLevel {
		case 3:
			d.Tier = L3
		case 2:
			d.Tier = L2
		default:
			d.Tier = L1
			if r.SeverityLevel < 0 || r.SeverityLevel > 3 {
				observe.MetricsFrom(ctx).Count("TelemetryUnexpectedSeverity", 1)
				slog.WarnContext(ctx, "severity_level outside 0-3; routed as L1", "severity_level", r.SeverityLevel)
			}
		}
		if r.EscalationRequired && s.Config.EscalationRaises {
			d.Tier = d.Tier.higher()
		}
	}
	q := s.Config.Queues[d.Tier]
	d.QueueID, d.QueueName = q.ID, q.Name
	return d
}

// awaitObservation returns the queues' state: at once if the observation has ended, else after
// at most ObservationWait, and never past the budget.
func (s *Service) awaitObservation(ctx context.Context, budget context.Context, observed <-chan observation) (map[string]genesys.QueueObservation, bool) {
	var o observation
	select {
	case o = <-observed: // already there, even when telemetry used the whole budget
	default:
		wait := time.NewTimer(s.Config.ObservationWait)
		defer wait.Stop()
		select {
		case o = <-observed:
		case <-wait.C:
			o.err = errors.New("queue observation still running after the telemetry answer")
		case <-budget.Done():
			o.err = budget.Err()
		}
	}
	if o.err != nil {
		observe.MetricsFrom(ctx).Count("QueueObservationFailed", 1)
		slog.WarnContext(ctx, "queue observation failed; routing without the queues' state", "error", o.err.Error())
		return nil, false
	}
	return o.queues, true
}

// wait estimates how long a caller joining tier t waits: nothing when an agent is idle for
// them, otherwise their place in line (the waiting conversations the idle agents do not take,
// plus one) times the average handle time, shared by the on-queue agents. staffed is false
// when the tier has nobody on queue.
func (s *Service) wait(q map[string]genesys.QueueObservation, t Tier) (w time.Duration, staffed bool) {
	o := q[s.Config.Queues[t].ID]
	if o.OnQueueUsers <= 0 {
		return 0, false
	}
	ahead := o.Waiting - o.Idle
	if ahead < 0 {
		return 0, true
	}
	return time.Duration(ahead+1) * s.Config.Handle / time.Duration(o.OnQueueUsers), true
}

// cascade moves the decision down to the first tier that can take the caller (staffed, and an
// estimated wait within MaxWait).
func (s *Service) cascade(ctx context.Context, d *Decision, q map[string]genesys.QueueObservation) {
	from := d.Tier
	var shortest Tier
	var shortestWait time.Duration
	for t := from; t != ""; t = t.lower() {
		w, staffed := s.wait(q, t)
		switch {
		case !staffed:
		case w <= s.Config.MaxWait:
			s.move(ctx, d, from, t)
			return
		case shortest == "" || w < shortestWait:
			shortest, shortestWait = t, w
		}
	}
	if _, staffed := s.wait(q, from); staffed || shortest == "" {
		// Every tier at or below is over the wait it may have: keep the chosen tier, where the
		// right people will pick up; and with nobody at or below, rather than send a critical
		// caller to an empty L1.
		return
	}
	s.move(ctx, d, from, shortest) // nobody on the chosen tier: the staffed one that frees up first
}

// leastLoaded routes a caller whose telemetry failed to the tier with the shortest estimated
// wait; the configured fallback tier wins ties, then the lower tier.
func (s *Service) leastLoaded(ctx context.Context, d *Decision, q map[string]genesys.QueueObservation) {
	from := d.Tier
	best, bestWait, found := from, time.Duration(0), false
	if w, staffed := s.wait(q, from); staffed {
		bestWait, found = w, true
	}
	for _, t := range tiers {
		if w, staffed := s.wait(q, t); staffed && (!found || w < bestWait) {
			best, bestWait, found = t, w, true
		}
	}
	s.move(ctx, d, from, best)
}

func (s *Service) move(ctx context.Context, d *Decision, from, to Tier) {
	if to == from {
		return
	}
	q := s.Config.Queues[to]
	d.Tier, d.QueueID, d.QueueName, d.Cascaded = to, q.ID, q.Name, true
	observe.MetricsFrom(ctx).Count("QueueCascade", 1, observe.D("From", string(from)), observe.D("To", string(to)))
}

// Reason names why telemetry could not be used.
func Reason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errInvalidCustomerID):
		return ReasonInvalidCustomerID
	case errors.Is(err, breaker.ErrOpen):
		return ReasonBreakerOpen
	case errors.Is(err, telemetry.ErrMissingSeverity):
		return ReasonNoSeverity
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	}
	switch connectors.KindOf(err) {
	case connectors.KindRateLimited:
		return ReasonRateLimited
	case connectors.KindUnauthorized, connectors.KindForbidden:
		return ReasonUnauthorized
	case connectors.KindNotFound:
		return ReasonNotFound
	case connectors.KindRejected, connectors.KindConflict:
		return ReasonRejected
	case connectors.KindBadResponse:
		return ReasonMalformed
	case connectors.KindConfig:
		return ReasonConfiguration
	default:
		return ReasonUnavailable
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
