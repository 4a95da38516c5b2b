package escalation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/observe"
)

// Redrive settings.
const (
	// RedriveBatch is the most queued escalations one run looks at.
	RedriveBatch = 200
	// redriveLease keeps an item from a second, overlapping run while one delivers it.
	redriveLease = 2 * time.Minute
	// redriveAttempt bounds one delivery attempt.
	redriveAttempt = 10 * time.Second
	// redriveReserve is the time kept back at the end of a run to write the last results.
	redriveReserve = 8 * time.Second
	// backoffBase and backoffMax: 1, 2, 4, 8, 16, 30, 30... minutes between attempts.
	backoffBase = time.Minute
	backoffMax  = 30 * time.Minute
)

// RedriveSummary says what one escalation-redrive run did.
type RedriveSummary struct {
	Due         int `json:"due"`
	Delivered   int `json:"delivered"`
	Rescheduled int `json:"rescheduled"`
	Failed      int `json:"failed"`
	Held        int `json:"held"` // left for later: breaker open, outage declared, or leased by another run
	Notes       int `json:"notes"`
	NotesFailed int `json:"notesFailed"`
	Linked      int `json:"linked"`
}

// Backoff is the wait before attempt n+1 of a queued escalation (n >= 1): it grows from a
// minute to half an hour.
func Backoff(n int) time.Duration {
	d := backoffBase
	for i := 1; i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// Redrive delivers due escalations from the outbox and writes the batched master-ticket notes.
// It is escalation-redrive's handler, run every minute.
func (s *Service) Redrive(ctx context.Context) RedriveSummary {
	var sum RedriveSummary
	m := observe.MetricsFrom(ctx)
	items, err := s.Outbox.Due(ctx, s.now(), RedriveBatch)
	if err != nil {
		slog.ErrorContext(ctx, "outbox unreadable; nothing redriven this run", "error", err)
		m.Count("RedriveError", 1)
	}
	sum.Due = len(items)
	held := map[string]string{} // target -> why its items wait
	for _, it := range items {
		if d, ok := ctx.Deadline(); ok && time.Until(d) < redriveReserve {
			sum.Held += len(items) - (sum.Delivered + sum.Rescheduled + sum.Failed + sum.Held)
			break
		}
		s.redriveOne(ctx, it, held, &sum)
	}
	s.flushMasters(ctx, &sum)
	m.Count("RedriveDelivered", float64(sum.Delivered))
	m.Count("RedriveRescheduled", float64(sum.Rescheduled))
	m.Count("OutboxDue", float64(sum.Due))
	slog.InfoContext(ctx, "escalation redrive run", "due", sum.Due, "delivered", sum.Delivered, "rescheduled", sum.Rescheduled,
		"failed", sum.Failed, "held", sum.Held, "notes", sum.Notes, "notes_failed", sum.NotesFailed, "linked", sum.Linked)
	return sum
}

func (s *Service) redriveOne(ctx context.Context, it Item, held map[string]string, sum *RedriveSummary) {
	e := &it.Escalation
	ctx = observe.WithFields(ctx, slog.String("escalation_id", e.ID), slog.String("correlation_id", e.ConversationID))
	now := s.now()
	if now.Sub(it.CreatedAt) > s.Config.MaxAge {
		it.Reason = ReasonMaxAge
		s.failItem(ctx, it, sum, fmt.Sprintf("still undelivered after %s (%d attempts, last error: %s)", s.Config.MaxAge, it.Attempts, it.LastError))
		return
	}
	if why, ok := held[e.Target]; ok {
		sum.Held++
		slog.DebugContext(ctx, "queued escalation held", "why", why)
		return
	}
	target := s.Targets[e.Target]
	if target == nil {
		it.Reason = ReasonConfiguration
		s.failItem(ctx, it, sum, "its target "+e.Target+" is no longer configured")
		return
	}
	if f, err := s.Outage.Flag(ctx, e.Target); err == nil && f.Active {
		// A declared outage: queued escalations wait for it to end rather than add load.
		held[e.Target] = "outage declared"
		sum.Held++
		return
	}
	ok, err := s.Outbox.Lease(ctx, it, redriveLease)
	if err != nil || !ok {
		sum.Held++
		return
	}
	var tk Ticket
	actx, cancel := context.WithTimeout(ctx, redriveAttempt)
	err = s.guard(e.Target).Do(actx, func(ctx context.Context) error {
		t, err := target.Deliver(ctx, e, it.Since)
		tk = t
		return err
	})
	cancel()
	it.Attempts++
	var open *breaker.OpenError
	var deferred *DeferError
	switch {
	case err == nil:
		s.redriven(ctx, it, tk, sum)
		return
	case errors.As(err, &open):
		it.Attempts-- // not attempted
		held[e.Target] = "breaker open"
		it.Due = open.Until
		if it.Due.Before(now) {
			it.Due = now.Add(time.Minute)
		}
		sum.Held++
		s.reschedule(ctx, it, nil, nil)
		return
	case errors.As(err, &deferred):
		it.Due, it.Since = deferred.Until, deferred.Since
		s.reschedule(ctx, it, err, sum)
		return
	}
	if reason, permanent := failureReason(err); permanent {
		it.Reason, it.LastError = reason, err.Error()
		s.failItem(ctx, it, sum, err.Error())
		return
	}
	it.Due = now.Add(Backoff(it.Attempts))
	if d, ok := retryAfter(err); ok && now.Add(d).After(it.Due) {
		it.Due = now.Add(d)
	}
	it.Reason = ReasonUnavailable
	if connectors.KindOf(err) == connectors.KindRateLimited {
		it.Reason = ReasonRateLimited
		// The target (or cxbridge's shared limit for it) takes no more now: the rest of its
		// items wait for the next run as they are, rather than each spend a call and a backoff
		// step being refused.
		held[e.Target] = "rate limited"
	}
	s.reschedule(ctx, it, err, sum)
}

func (s *Service) reschedule(ctx context.Context, it Item, cause error, sum *RedriveSummary) {
	if cause != nil {
		it.LastError = cause.Error()
	}
	if err := s.Outbox.Reschedule(ctx, it, s.Config.MaxAge); err != nil {
		// The lease runs out and the next run tries again.
		slog.ErrorContext(ctx, "queued escalation could not be rescheduled", "error", err)
		return
	}
	if sum != nil {
		sum.Rescheduled++
		slog.WarnContext(ctx, "queued escalation not delivered yet", "attempts", it.Attempts, "next_attempt", it.Due.UTC(), "reason", it.Reason, "error", it.LastError)
	}
}

// redriven completes a delivered escalation: the outbox item goes, the idempotency record
// replays the ticket from now on, and the ticket is linked back to the participant.
func (s *Service) redriven(ctx context.Context, it Item, tk Ticket, sum *RedriveSummary) {
	e := &it.Escalation
	res := s.delivered(ctx, e, tk, it.Attempts)
	if err := s.Outbox.Delivered(ctx, it); err != nil {
		slog.ErrorContext(ctx, "delivered escalation not removed from the outbox; the next run will find its ticket", "ticket_key", tk.Key, "error", err)
	}
	data, _ := json.Marshal(res)
	if err := s.Idem.Replace(ctx, IdempotencyPrefix+"#"+e.ID, data); err != nil {
		slog.WarnContext(ctx, "idempotency record not updated with the delivered ticket", "error", err)
	}
	s.linkBack(ctx, e, res)
	sum.Delivered++
	observe.MetricsFrom(ctx).Count("EscalationOutcome", 1, observe.D("Status", res.Status), observe.D("Target", e.Target))
	slog.InfoContext(ctx, "queued escalation delivered", "status", res.Status, "ticket_key", tk.Key, "attempts", it.Attempts,
		"queued_for_ms", s.now().Sub(it.CreatedAt).Milliseconds())
}

func (s *Service) failItem(ctx context.Context, it Item, sum *RedriveSummary, why string) {
	it.FailedAt = s.now()
	if err := s.Outbox.Fail(ctx, it); err != nil {
		slog.ErrorContext(ctx, "failed escalation could not be moved to the failed list", "error", err)
		return
	}
	sum.Failed++
	observe.MetricsFrom(ctx).Count("EscalationFailed", 1)
	observe.MetricsFrom(ctx).Count("EscalationFailedByReason", 1, observe.D("Target", it.Escalation.Target), observe.D("Reason", it.Reason))
	slog.ErrorContext(ctx, "queued escalation failed: a person must act", "reason", it.Reason, "why", why, "attempts", it.Attempts)
}

// flushMasters writes each master ticket's batched note (at most one per master per minute).
func (s *Service) flushMasters(ctx context.Context, sum *RedriveSummary) {
	refs, err := s.Outage.Masters(ctx)
	if err != nil {
		slog.ErrorContext(ctx, "master tickets unreadable; outage notes wait for the next run", "error", err)
		return
	}
	for _, ref := range refs {
		t := s.Targets[ref.Target]
		if t == nil {
			continue
		}
		res, err := s.Outage.Flush(ctx, t, s.guard(ref.Target), ref, s.Config.NoteMaxLinks)
		if res.Note {
			sum.Notes++
			sum.Linked += res.Linked
		}
		if err != nil {
			sum.NotesFailed++
			slog.WarnContext(ctx, "outage note not written; the links stay pending", "target", ref.Target, "master", ref.Master.Key, "error", err)
		}
	}
}
