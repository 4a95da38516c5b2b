package escalation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/idempotency"
	"github.com/cxbridge/cxbridge/pkg/mask"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/retry"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// Target is a ticketing system escalations are delivered to.
//
// Its writes follow DESIGN.md section 7: a write whose outcome is unknown
// (connectors.InDoubt) is never repeated before the target has found out whether it landed.
type Target interface {
	Name() string
	// Deliver creates the escalation's ticket, or updates the one it belongs to. since, when
	// not zero, is the latest moment an earlier attempt may have created it without recording
	// it: the target then looks for it before writing. An error that carries a doubt of its
	// own (*DeferError, *DoubtError) moves since forward for the next attempt; a *DeferError
	// also means "do not try again before Until".
	Deliver(ctx context.Context, e *Escalation, since time.Time) (Ticket, error)
	// Note adds an internal note to a master ticket. text ends with a marker (NoteMarker)
	// whose token NoteLanded finds again.
	Note(ctx context.Context, m Master, text string) error
	// NoteLanded reports whether a note carrying token (hex digits) is on the master ticket:
	// how a note whose answer was lost is verified before the links it listed are noted
	// again. The read is consistent (JSM comments, ServiceNow sys_journal_field).
	NoteLanded(ctx context.Context, m Master, token string) (bool, error)
	// ResolveMaster checks a master ticket and completes what the target needs of it.
	ResolveMaster(ctx context.Context, m Master) (Master, error)
	MasterURL(m Master) string
	NoteLimit() int
}

// Guard runs a call through a target's circuit breaker (*breaker.Breaker).
type Guard interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// LinkBack writes participant attributes in Genesys (*genesys.Client).
type LinkBack interface {
	SetParticipantAttributes(ctx context.Context, conversationID, participantID string, attrs map[string]string) error
}

// DeferError asks not to deliver an escalation before Until, because an earlier attempt (at
// Since) may have created its ticket and the target cannot tell yet.
type DeferError struct {
	Until  time.Time
	Since  time.Time
	Reason string
	Err    error
}

func (e *DeferError) Error() string {
	s := "deferred until " + e.Until.UTC().Format(time.RFC3339) + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *DeferError) Unwrap() error { return e.Err }

// Retryable is false: the point of deferring is not to try again now (retry.Retryable).
func (e *DeferError) Retryable() bool { return false }

// RetryAfter is the wait until Until.
func (e *DeferError) RetryAfter() (time.Duration, bool) { return time.Until(e.Until), true }

// DoubtError is a failed attempt whose write may nevertheless have landed (its answer was lost:
// connectors.InDoubt) on a target that can verify at once with a consistent read: the next
// attempt, in this call or in the redrive, looks before it writes. Since is when the doubt
// began.
type DoubtError struct {
	Since time.Time
	Err   error
}

func (e *DoubtError) Error() string { return "outcome unknown: " + e.Err.Error() }

func (e *DoubtError) Unwrap() error { return e.Err }

// Retryable is true: the next attempt verifies first, so it may follow at once (retry.Retryable).
func (e *DoubtError) Retryable() bool { return true }

// RetryAfter is the server's Retry-After, when it sent one.
func (e *DoubtError) RetryAfter() (time.Duration, bool) { return retryAfter(e.Err) }

// doubtOf returns when the doubt an attempt's error carries began: a write whose answer was
// lost (*DoubtError, or a *DeferError for a create that may exist).
func doubtOf(err error) (time.Time, bool) {
	var d *DoubtError
	if errors.As(err, &d) {
		return d.Since, true
	}
	var f *DeferError
	if errors.As(err, &f) && !f.Since.IsZero() {
		return f.Since, true
	}
	return time.Time{}, false
}

// later returns the later of two times (a doubt only ever moves forward).
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// IdempotencyPrefix starts every idempotency record id of create-escalation. It is a constant,
// not derived from code names, so refactoring cannot orphan records.
const IdempotencyPrefix = "create-escalation"

// deliveryRetry: three attempts, short backoff; Retry-After is honoured when the budget has
// room for it (pkg/retry), and what does not fit is queued rather than waited for.
var deliveryRetry = retry.Policy{Attempts: 3, Base: 200 * time.Millisecond, Max: 2 * time.Second, MinAttempt: 300 * time.Millisecond}

// Service handles escalations (create-escalation) and redrives them (escalation-redrive).
type Service struct {
	Config  Config
	Targets map[string]Target
	Guards  map[string]Guard
	Idem    *idempotency.Store
	Outbox  *Outbox
	Outage  *Outage
	Genesys LinkBack // nil: no link-back
	Masker  *mask.Masker
	Now     func() time.Time
	// Pacer spaces the redrive's deliveries per target; nil: RedriveConcurrency bounds them.
	Pacer Pacer

	recent recentAnswers // this environment's answers, for when the idempotency store is down
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handle decodes, validates and answers one data action request.
func (s *Service) Handle(ctx context.Context, req *apigw.Request) apigw.Response {
	var in Input
	ws, err := apigw.DecodeInput(req.Body, &in)
	if err != nil {
		observe.MetricsFrom(ctx).Count("EscalationRejected", 1)
		return err.Response()
	}
	res, bad := s.escalate(ctx, in, ws)
	if bad != nil {
		observe.MetricsFrom(ctx).Count("EscalationRejected", 1)
		return bad.Response()
	}
	return apigw.OK(res)
}

// Prepare validates and masks an input, as Escalate does first: the escalation (with its id)
// and the payload hash its idempotency record is validated with.
func (s *Service) Prepare(in Input) (*Escalation, string, *apigw.Error) {
	e, validation, bad := s.parse(in, s.now())
	if bad != nil {
		return nil, "", bad
	}
	e.mask(s.Masker)
	return e, validation, nil
}

// errConflict: the idempotency key was used with another payload.
var errConflict = errors.New("idempotency key reused")

// Escalate handles one escalation. The error is a 4xx for the caller: a missing or malformed
// conversationId or trigger (holdSeconds for hold_time), or an idempotencyKey reused with a
// different payload. Every other outcome is a Result; problems with other inputs are its
// Warnings.
func (s *Service) Escalate(ctx context.Context, in Input) (Result, *apigw.Error) {
	return s.escalate(ctx, in, nil)
}

// escalate is Escalate with the warnings decoding already found (unknown input names).
func (s *Service) escalate(ctx context.Context, in Input, decoded apigw.Warnings) (Result, *apigw.Error) {
	start := time.Now()
	e, validation, bad := s.parse(in, s.now())
	if bad != nil {
		return Result{}, bad
	}
	observe.SetCorrelationID(ctx, e.ConversationID)
	ctx = observe.WithFields(ctx, slog.String("escalation_id", e.ID))
	m := observe.MetricsFrom(ctx)
	e.warnings = append(decoded, e.warnings...)
	e.Warnings = e.warnings.Strings()
	e.warnings.Report(ctx)

	if e.Trigger == HoldTime && time.Duration(e.HoldSeconds)*time.Second < s.Config.HoldThreshold {
		res := Result{Status: StatusSkipped, Target: e.Target, Reason: ReasonBelowThreshold, EscalationID: e.ID,
			Message: fmt.Sprintf("Hold time %d s is below the %d s threshold; nothing was escalated.", e.HoldSeconds, int(s.Config.HoldThreshold/time.Second))}
		res.Warnings = e.Warnings
		m.Count("EscalationOutcome", 1, observe.D("Status", res.Status), observe.D("Target", e.Target))
		slog.InfoContext(ctx, "escalation skipped: hold time below threshold", "hold_seconds", e.HoldSeconds, "threshold_seconds", int(s.Config.HoldThreshold/time.Second))
		return res, nil
	}
	e.mask(s.Masker)
	if e.Masked > 0 {
		m.Count("EscalationMasked", float64(e.Masked))
	}

	// The whole request ends within the budget, state calls included: a stalled state store
	// or target costs the caller at most that (the store client bounds each DynamoDB call by
	// this deadline).
	ctx, cancel := context.WithTimeout(ctx, s.Config.Budget)
	defer cancel()
	res, err := s.deliver(ctx, e, validation)
	// The warnings are about this request's input, also when the answer is a replay.
	res.Warnings = e.Warnings
	if errors.Is(err, errConflict) {
		m.Count("EscalationKeyConflict", 1)
		slog.WarnContext(ctx, "idempotencyKey reused with a different payload; refused")
		return Result{}, &apigw.Error{Status: http.StatusConflict, Code: "idempotency_key_reused", Field: "idempotencyKey",
			Message: "idempotencyKey was already used for a different escalation; send a new key for a new escalation, or the identical payload to get the first answer"}
	}
	m.Count("EscalationOutcome", 1, observe.D("Status", res.Status), observe.D("Target", res.Target))
	// seed 001's ROI: escalations raised automatically (hold_time, vip, wrap_up) versus by hand (manual)
	m.Count("EscalationByTrigger", 1, observe.D("Trigger", string(e.Trigger)), observe.D("Status", res.Status))
	m.Millis("EscalationLatency", time.Since(start), observe.D("Target", res.Target))
	slog.InfoContext(ctx, "escalation answered", "status", res.Status, "target", res.Target, "ticket_key", res.TicketKey,
		"attempts", res.Attempts, "masked_count", res.Masked, "reason", res.Reason, "catastrophe_mode", res.CatastropheMode,
		"latency_ms", time.Since(start).Milliseconds())
	return res, nil
}

// deliver answers a validated escalation: a replay, or a run that delivers, links, queues or
// fails it.
func (s *Service) deliver(ctx context.Context, e *Escalation, validation string) (Result, error) {
	// The claim is what keeps two calls of one escalation from both creating: it is sent even
	// while this environment rests after a stall (one bounded call), so the second after
	// DynamoDB comes back is protected, and an answer ends the rest.
	claim, replay, err := s.Idem.Begin(store.SendDuringRest(ctx), IdempotencyPrefix+"#"+e.ID, validation)
	unprotected := false
	switch {
	case errors.Is(err, idempotency.ErrMismatch):
		return Result{}, errConflict
	case errors.Is(err, idempotency.ErrInProgress):
		return Result{Status: StatusDuplicate, Target: e.Target, Masked: e.Masked, EscalationID: e.ID,
			Message: "An identical escalation is still being delivered; its ticket will be linked to the conversation."}, nil
	case err != nil:
		// Without the idempotency table, duplicates cannot be ruled out; a caller on the phone
		// still gets a ticket. What still protects against a double: this environment's
		// memory of its recent answers, Jira's marker search before creating, ServiceNow's
		// correlation_id read (every attempt), and the answer recorded as soon as the store
		// answers again.
		unprotected = true
		observe.MetricsFrom(ctx).Count("IdempotencyUnavailable", 1)
		if res, ok := s.recent.get(e.ID, s.now()); ok {
			observe.MetricsFrom(ctx).Count("EscalationReplayed", 1)
			slog.WarnContext(ctx, "idempotency store unavailable; replaying this environment's earlier answer", "status", res.Status, "error", err)
			return res, nil
		}
		slog.WarnContext(ctx, "idempotency store unavailable; delivering without duplicate protection", "error", err)
	case replay != nil:
		var res Result
		if json.Unmarshal(replay.Data, &res) == nil {
			if res.Status == StatusQueued && e.Attempt > 1 {
				// The flow calls again because some call of this escalation was answered
				// failed / state_unavailable: that call may have created the ticket with nothing
				// recorded, so the item this answer queued must search before it creates.
				if err := s.Outbox.MarkInDoubt(ctx, e.ID, s.now()); err != nil {
					slog.WarnContext(ctx, "queued escalation could not be marked in doubt", "error", err)
				}
			}
			observe.MetricsFrom(ctx).Count("EscalationReplayed", 1)
			return res, nil
		}
		slog.WarnContext(ctx, "stored answer unreadable; delivering again")
	}
	res := s.run(ctx, e, claim, unprotected)
	s.finish(ctx, e, claim, validation, res)
	if res.Status != StatusFailed {
		s.recent.put(e.ID, res, s.now().Add(s.Config.IdempotencyTTL))
	}
	return res, nil
}

// closeReserve is the part of the budget kept back from delivery for recording its outcome
// (the breaker, the answer or the queued item, the link-back), at most a fifth of the budget.
// Those are up to three state writes one after another; a second leaves each its bound in
// production (STATE_CALL_TIMEOUT_MS 500) even when DynamoDB is slow to answer, so an escalation
// whose target hung is queued rather than answered state_unavailable.
const closeReserve = time.Second

// deliverBy is when delivery must stop so the outcome can be recorded within ctx's deadline.
func (s *Service) deliverBy(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(s.Config.Budget)
	}
	return d.Add(-min(closeReserve, s.Config.Budget/5))
}

// finder is a target that can look for an escalation's ticket without creating one (Jira: its
// marker search). ServiceNow needs none: every delivery reads before it creates, and given a
// since it reads the journal before it appends a note.
type finder interface {
	Find(ctx context.Context, e *Escalation) (Ticket, bool, error)
}

// findFirst searches for e's ticket before a create. found: the ticket is there; searched: the
// search answered; err: the target is down, and the attempt ends. A search that fails otherwise
// is logged, and the create goes ahead.
func findFirst(ctx context.Context, f finder, e *Escalation) (tk Ticket, found, searched bool, err error) {
	tk, found, err = f.Find(ctx, e)
	switch {
	case err == nil:
		return tk, found, true, nil
	case connectors.IsOutage(err):
		return Ticket{}, false, false, err
	}
	slog.WarnContext(ctx, "could not look for the ticket an earlier delivery may have created; creating", "error", err)
	return Ticket{}, false, false, nil
}

// run delivers the escalation (or links, queues or fails it) and returns the answer.
// unprotected: the idempotency store could not be asked, so an earlier delivery of the same
// escalation cannot be ruled out; a target that can look for it first does. So it does for a
// flow's second attempt and later: the first may have been answered failed / state_unavailable
// after a create whose answer was lost, with no store to remember it in.
func (s *Service) run(ctx context.Context, e *Escalation, claim *idempotency.Claim, unprotected bool) Result {
	target := s.Targets[e.Target]
	if target == nil {
		return s.fail(ctx, e, ReasonConfiguration, 0, time.Time{}, fmt.Errorf("no escalation target is configured (JIRA_BASE_URL and SERVICENOW_BASE_URL are empty)"))
	}
	var since time.Time
	if claim != nil && claim.Recovered {
		// An earlier run died holding this key; it may have created the ticket, or queued
		// the escalation, before it died.
		since = claim.PreviousDeadline
		if since.IsZero() || since.After(s.now()) {
			since = s.now()
		}
		observe.MetricsFrom(ctx).Count("EscalationRecovery", 1, observe.D("Target", e.Target))
		slog.WarnContext(ctx, "recovering an escalation whose earlier run did not finish", "previous_claim_at", claim.PreviousClaimAt, "previous_deadline", claim.PreviousDeadline)
		if queued, err := s.Outbox.Queued(ctx, e.ID); err == nil && queued {
			return s.result(e, StatusQueued, ReasonUnavailable, 0, "The escalation is queued and will be delivered when the target is available.")
		}
	}
	if _, ok := target.(finder); unprotected && !ok {
		// An earlier delivery may have added the work note: the consistent journal read
		// before the note is what still tells.
		since = later(since, s.now())
	}
	flag, err := s.Outage.Flag(ctx, e.Target)
	flagRead := err == nil
	if err != nil {
		slog.WarnContext(ctx, "outage flag unreadable; delivering normally", "error", err)
	}
	if flag.Links(e, s.now()) {
		return s.link(ctx, e, flag)
	}
	if flagRead && !flag.Set(s.now()) {
		// No outage in force: this escalation may be the one that crosses its topic's
		// threshold (a target that opted in to automatic outages).
		if f, ok := s.detectRate(ctx, e); ok {
			return s.link(ctx, e, f)
		}
	}

	var tk Ticket
	attempts := 0
	deliverBy := s.deliverBy(ctx)
	// mustLook: an earlier delivery may have created the ticket with nothing recorded, so the
	// target is searched first. Until a search has said "none", whatever is queued carries the
	// doubt (Since), and the redrive searches before it creates.
	_, isFinder := target.(finder)
	mustLook := isFinder && (unprotected || e.Attempt > 1)
	looked := false
	// The breaker records the outcome within ctx's deadline; delivery itself stops earlier.
	err = s.guard(e.Target).Do(ctx, func(ctx context.Context) error {
		ctx, cancel := context.WithDeadline(ctx, deliverBy)
		defer cancel()
		if f, ok := target.(finder); ok && mustLook {
			found, ok, searched, err := findFirst(ctx, f, e)
			looked = searched
			if ok || err != nil {
				tk = found
				return err
			}
		}
		_, err := retry.Do(ctx, deliveryRetry, func(ctx context.Context, attempt int) error {
			attempts = attempt
			t, err := target.Deliver(ctx, e, since)
			if err == nil {
				tk = t
			}
			// An attempt whose write may have landed makes every later one look first.
			if d, ok := doubtOf(err); ok {
				since = later(since, d)
			}
			return err
		})
		return err
	})
	if err == nil {
		return s.delivered(ctx, e, tk, attempts)
	}
	if mustLook && !looked {
		since = later(since, s.now())
	}
	var open *breaker.OpenError
	var deferred *DeferError
	switch {
	case errors.As(err, &open):
		if flag.Set(s.now()) && !flag.Active {
			return s.link(ctx, e, flag) // a standby master takes over while the breaker is open
		}
		if flagRead && !flag.Set(s.now()) {
			// The breaker may have refused calls long enough to declare an outage.
			if f, ok := s.detectDown(ctx, e.Target, open, "create-escalation"); ok {
				return s.link(ctx, e, f)
			}
		}
		due := open.Until
		if due.IsZero() || due.Before(s.now()) {
			due = s.now().Add(time.Minute)
		}
		return s.queue(ctx, e, Item{Due: due, Since: since, Reason: ReasonBreakerOpen}, 0, err)
	case errors.As(err, &deferred):
		return s.queue(ctx, e, Item{Due: deferred.Until, NotBefore: deferred.Until, Since: since, Reason: ReasonVerifying}, attempts, err)
	}
	if reason, permanent := failureReason(err); permanent {
		return s.fail(ctx, e, reason, attempts, since, err)
	}
	it := Item{Due: s.now().Add(time.Minute), Since: since, Reason: ReasonUnavailable} // the next redrive run at the latest
	if d, ok := retryAfter(err); ok && s.now().Add(d).After(it.Due) {
		it.Due, it.NotBefore = s.now().Add(d), s.now().Add(d)
	}
	if connectors.KindOf(err) == connectors.KindRateLimited {
		it.Reason = ReasonRateLimited
	}
	return s.queue(ctx, e, it, attempts, err)
}

func (s *Service) guard(target string) Guard {
	if g := s.Guards[target]; g != nil {
		return g
	}
	return noGuard{}
}

type noGuard struct{}

func (noGuard) Do(ctx context.Context, fn func(context.Context) error) error { return fn(ctx) }

// failureReason says whether err needs a person (permanent) and why.
func failureReason(err error) (string, bool) {
	switch connectors.KindOf(err) {
	case connectors.KindForbidden:
		return ReasonPermissionDenied, true
	case connectors.KindUnauthorized:
		return ReasonUnauthorized, true
	case connectors.KindRejected, connectors.KindNotFound, connectors.KindConflict:
		return ReasonRejected, true
	case connectors.KindConfig:
		return ReasonConfiguration, true
	}
	return "", false
}

func retryAfter(err error) (time.Duration, bool) {
	var r retry.Retryable
	if errors.As(err, &r) {
		return r.RetryAfter()
	}
	return 0, false
}

func (s *Service) result(e *Escalation, status, reason string, attempts int, msg string) Result {
	return Result{Status: status, Target: e.Target, Attempts: attempts, Masked: e.Masked, Message: msg, Reason: reason, EscalationID: e.ID}
}

func (s *Service) delivered(ctx context.Context, e *Escalation, tk Ticket, attempts int) Result {
	res := s.result(e, StatusCreated, "", attempts, "")
	res.TicketKey, res.TicketURL = tk.Key, tk.URL
	// seed 001's data integrity: tickets without a Genesys conversation id (should stay 0; the
	// value is recorded for every ticket so the dashboard shows the zero)
	missing := 0.0
	if e.ConversationID == "" {
		missing = 1
	}
	observe.MetricsFrom(ctx).Count("TicketWithoutConversationId", missing, observe.D("Target", e.Target))
	switch {
	case tk.Updated && tk.Repeat:
		res.Status = StatusUpdated
		res.Message = fmt.Sprintf("Added this call to %s, the caller's open ticket.", tk.Key)
		observe.MetricsFrom(ctx).Count("RepeatCallerJoined", 1, observe.D("Target", e.Target))
	case tk.Updated:
		res.Status = StatusUpdated
		res.Message = fmt.Sprintf("Added a note to %s, the ticket already open for this call.", tk.Key)
	case tk.Recovered:
		res.Message = fmt.Sprintf("%s was created by an earlier attempt that could not report it.", tk.Key)
		observe.MetricsFrom(ctx).Count("EscalationRecovered", 1, observe.D("Target", e.Target))
	default:
		res.Message = fmt.Sprintf("Created %s.", tk.Key)
	}
	if tk.Note != "" {
		res.Message += " Note: " + tk.Note
	}
	return res
}

// link answers at once with the master ticket and records the link for the batched note.
func (s *Service) link(ctx context.Context, e *Escalation, f Flag) Result {
	if err := s.Outage.Link(ctx, f, e); err != nil {
		slog.ErrorContext(ctx, "outage link could not be recorded; queuing the escalation instead", "error", err)
		return s.queue(ctx, e, Item{Due: s.now().Add(time.Minute), Reason: ReasonBreakerOpen}, 0, err)
	}
	s.Outage.Touch(ctx, f, s.Config.OutageQuiet)
	observe.MetricsFrom(ctx).Count("OutageLinked", 1, observe.D("Target", e.Target))
	return s.linkedResult(e, f)
}

// queue stores the escalation for escalation-redrive: it holds when (Due, NotBefore), why
// (Reason) and since when an attempt may have created the ticket (Since). If even that fails,
// the answer is "failed", and the escalation is in the error log line and the EscalationFailed
// alarm.
func (s *Service) queue(ctx context.Context, e *Escalation, it Item, attempts int, cause error) Result {
	// Item.Attempts counts the redrive's attempts, which the backoff grows with.
	it.Escalation, it.CreatedAt, it.LastError = *e, s.now(), errText(cause)
	due, reason := it.Due, it.Reason
	err := s.Outbox.Enqueue(ctx, it, s.Config.MaxAge)
	if err != nil && !errors.Is(err, ErrAlreadyQueued) {
		reason, msg := ReasonOutboxUnavailable, "The ticket could not be created and the escalation could not be queued; the operations team has been alerted."
		if store.Unavailable(err) {
			// Answered at once, so the flow takes its fallback branch now rather than after the
			// state store's silence. The item may still land if the store took it after all:
			// the redrive then delivers it, and the claim kept in finish makes a repeat of
			// this request look before it delivers.
			reason, msg = ReasonStateUnavailable, fmt.Sprintf("%s cannot take the escalation right now and it could not be queued (the state store is unavailable); take the fallback path. The operations team has been alerted.", targetName(e.Target))
		}
		observe.MetricsFrom(ctx).Count("EscalationFailed", 1)
		observe.MetricsFrom(ctx).Count("EscalationFailedByReason", 1, observe.D("Target", e.Target), observe.D("Reason", reason))
		slog.ErrorContext(ctx, "escalation could not be delivered nor queued: it needs a person", "reason", reason,
			"escalation", e, "delivery_error", errText(cause), "in_doubt_since", it.Since, "error", err)
		return s.result(e, StatusFailed, reason, attempts, msg)
	}
	observe.MetricsFrom(ctx).Count("EscalationQueued", 1, observe.D("Target", e.Target), observe.D("Reason", reason))
	slog.WarnContext(ctx, "escalation queued for escalation-redrive", "reason", reason, "due", due.UTC(), "error", errText(cause))
	msg := fmt.Sprintf("%s is not available right now (%s); the escalation is queued and will be delivered automatically.", targetName(e.Target), reason)
	if reason == ReasonVerifying {
		msg = fmt.Sprintf("%s did not confirm the ticket in time; the escalation is queued, and will be checked and delivered automatically.", targetName(e.Target))
	}
	return s.result(e, StatusQueued, reason, attempts, msg)
}

// fail records an escalation a person must act on and raises the EscalationFailed alarm. since
// is kept on the failed item, so a retry after the fix still looks for a ticket an earlier
// attempt may have created.
func (s *Service) fail(ctx context.Context, e *Escalation, reason string, attempts int, since time.Time, cause error) Result {
	observe.MetricsFrom(ctx).Count("EscalationFailed", 1)
	observe.MetricsFrom(ctx).Count("EscalationFailedByReason", 1, observe.D("Target", e.Target), observe.D("Reason", reason))
	it := Item{Escalation: *e, CreatedAt: s.now(), Attempts: attempts, Reason: reason, Since: since, LastError: errText(cause)}
	if err := s.Outbox.Fail(ctx, it); err != nil {
		slog.ErrorContext(ctx, "failed escalation could not be recorded", "escalation", e, "error", err)
	}
	slog.ErrorContext(ctx, "escalation failed: a person must act", "reason", reason, "error", errText(cause))
	var msg string
	switch reason {
	case ReasonPermissionDenied:
		msg = fmt.Sprintf("%s refused permission (HTTP 403): the integration account lacks a permission on the target project. The operations team has been alerted.", targetName(e.Target))
	case ReasonUnauthorized:
		msg = fmt.Sprintf("%s rejected the integration's credentials (HTTP 401). The operations team has been alerted.", targetName(e.Target))
	case ReasonConfiguration:
		msg = fmt.Sprintf("The connection to %s is not configured correctly. The operations team has been alerted.", targetName(e.Target))
	default:
		msg = fmt.Sprintf("%s refused the ticket (%s). The operations team has been alerted.", targetName(e.Target), connectorMessage(cause))
	}
	return s.result(e, StatusFailed, reason, attempts, msg)
}

// finish records the answer (or frees the key for a retry) while the ticket is linked back to
// the Genesys participant; both must end before the caller is answered, neither waits for
// the other.
func (s *Service) finish(ctx context.Context, e *Escalation, claim *idempotency.Claim, validation string, res Result) {
	var wg sync.WaitGroup
	if res.TicketKey != "" && (res.Status == StatusCreated || res.Status == StatusUpdated || res.Status == StatusLinked) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.linkBack(ctx, e, res)
		}()
	}
	data, _ := json.Marshal(res)
	var err error
	switch {
	case claim != nil && res.Reason == ReasonStateUnavailable:
		// The queued item may land once the store answers again. The claim stays: a repeat
		// after its lease is a recovery, which looks for the queued item and the ticket
		// before it delivers, rather than a fresh run that would deliver a second time.
	case claim != nil && res.Status == StatusFailed:
		err = claim.Release(ctx) // a retry after the fix runs again
	case claim != nil:
		err = claim.Complete(ctx, data)
	case res.Status != StatusFailed:
		// Answered without a claim: record the answer for repeats. The write is sent even if
		// the store is resting after a stall: a stalled DynamoDB executes it when it runs
		// again, and then a repeat replays this answer instead of delivering a second time (it
		// also completes a claim of this run that landed late).
		err = s.Idem.Record(store.SendDuringRest(ctx), IdempotencyPrefix+"#"+e.ID, validation, data)
	}
	if err != nil {
		slog.WarnContext(ctx, "escalation answer not recorded for replays", "error", err)
	}
	wg.Wait()
}

// linkBack writes the ticket to the Genesys participant's attributes. A failure is logged and
// counted; it never changes the answer.
func (s *Service) linkBack(ctx context.Context, e *Escalation, res Result) {
	if s.Genesys == nil || e.ParticipantID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, s.Config.LinkBackTimeout)
	defer cancel()
	p := s.Config.LinkBackPrefix
	attrs := map[string]string{
		p + "TicketKey": res.TicketKey, p + "TicketUrl": res.TicketURL, p + "Target": res.Target,
		p + "Status": res.Status, p + "Id": res.EscalationID,
	}
	if err := s.Genesys.SetParticipantAttributes(ctx, e.ConversationID, e.ParticipantID, attrs); err != nil {
		observe.MetricsFrom(ctx).Count("LinkBackFailed", 1)
		slog.WarnContext(ctx, "ticket not linked back to the Genesys participant", "ticket_key", res.TicketKey, "error", err)
		return
	}
	observe.MetricsFrom(ctx).Count("LinkBack", 1)
}

func targetName(t string) string {
	if t == ServiceNow {
		return "ServiceNow"
	}
	return "Jira"
}

func connectorMessage(err error) string {
	var ce *connectors.Error
	if errors.As(err, &ce) {
		if ce.Status != 0 {
			return fmt.Sprintf("HTTP %d", ce.Status)
		}
		return string(ce.Kind)
	}
	return "error"
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
