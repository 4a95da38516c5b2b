package escalation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/idempotency"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// Redrive settings.
const (
	// RedriveBatch is the most queued escalations one run reads.
	RedriveBatch = 1000
	// RedriveConcurrency bounds the deliveries in flight per target in one run.
	RedriveConcurrency = 4
	// redriveLease keeps an item from a second, overlapping run while one delivers it.
	redriveLease = 2 * time.Minute
	// redriveAttempt bounds one delivery attempt.
	redriveAttempt = 10 * time.Second
	// redriveMinAttempt: an attempt with less time than this left is not started.
	redriveMinAttempt = 2 * time.Second
	// redriveReserve is the time kept back at the end of a run to write the last results and
	// the master notes.
	redriveReserve = 8 * time.Second
	// backoffBase and backoffMax: 1, 2, 4, 8, 16, 30, 30... minutes between attempts.
	backoffBase = time.Minute
	backoffMax  = 30 * time.Minute
)

// RedriveSummary says what one escalation-redrive run did.
type RedriveSummary struct {
	Due         int `json:"due"` // queued escalations the run looked at
	Delivered   int `json:"delivered"`
	Rescheduled int `json:"rescheduled"`
	Failed      int `json:"failed"`
	Held        int `json:"held"` // left for later: target failing or rate-limited, breaker open, outage declared, verification not due, leased by another run, out of time
	Notes       int `json:"notes"`
	NotesFailed int `json:"notesFailed"`
	Linked      int `json:"linked"`
	// Converted: queued escalations linked to an automatic outage's master instead of
	// delivered as tickets of their own.
	Converted int `json:"converted"`
	// MastersPending: automatic outages whose master ticket is still waiting for its target.
	MastersPending int `json:"mastersPending"`
	// OutagesEnded: automatic outages this run ended after their quiet period.
	OutagesEnded int `json:"outagesEnded"`
}

// Backoff is the wait before attempt n+1 of a queued escalation (n >= 1): it grows from a
// minute to half an hour. It orders the attempts made while a target is still failing; a target
// that answers again gets its whole backlog at once, whatever the items' backoff.
func Backoff(n int) time.Duration {
	d := backoffBase
	for i := 1; i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// Pacer spaces one target's deliveries within a redrive run. The default lets them go as fast
// as RedriveConcurrency allows, and a 429 (or any failure) stops the target for the run. A rate
// limiter shared by every execution environment (a token bucket in the state table, say) plugs
// in here.
type Pacer interface {
	Wait(ctx context.Context, target string) error
}

// Redrive delivers queued escalations from the outbox and writes the batched master-ticket
// notes. It is escalation-redrive's handler, run every minute.
//
// A queued escalation waits for its target to be healthy, not for a timer. Per target, oldest
// first: the item whose backoff is due first probes the target (through its breaker, so an
// open breaker holds everything at no cost). When the probe is delivered, or the target
// answers it (a refusal, a verification), the rest of the backlog follows at once, up to
// RedriveConcurrency at a time, until the run's time is up; when the probe fails, the other
// items are held for this run without spending an attempt each. Items waiting for a
// verification (NotBefore: Jira's search lag) or a Retry-After are never attempted early.
// Leases keep overlapping runs from delivering one item twice, and every attempt after one whose
// outcome is unknown verifies before it writes.
func (s *Service) Redrive(ctx context.Context) RedriveSummary {
	var sum RedriveSummary
	m := observe.MetricsFrom(ctx)
	items, err := s.Outbox.Pending(ctx, RedriveBatch)
	if store.Unavailable(err) {
		// Nothing to do without the state store; the next run (a minute away) tries again.
		slog.WarnContext(ctx, "state store unavailable; this redrive run is skipped", "error", err)
		m.Count("RedriveError", 1)
		return sum
	}
	if err != nil {
		slog.ErrorContext(ctx, "outbox unreadable; nothing redriven this run", "error", err)
		m.Count("RedriveError", 1)
	}
	sum.Due = len(items)
	byTarget := map[string][]Item{}
	var targets []string
	for _, it := range items {
		t := it.Escalation.Target
		if _, ok := byTarget[t]; !ok {
			targets = append(targets, t)
		}
		byTarget[t] = append(byTarget[t], it)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &drain{s: s, target: t, sum: &sum, mu: &mu}
			d.run(ctx, byTarget[t])
		}()
	}
	wg.Wait()
	s.flushMasters(ctx, &sum)
	s.endQuietOutages(ctx, &sum)
	s.recordOutbox(ctx)
	m.Count("RedriveDelivered", float64(sum.Delivered))
	m.Count("RedriveRescheduled", float64(sum.Rescheduled))
	m.Count("OutboxDue", float64(sum.Due))
	slog.InfoContext(ctx, "escalation redrive run", "due", sum.Due, "delivered", sum.Delivered, "rescheduled", sum.Rescheduled,
		"failed", sum.Failed, "held", sum.Held, "notes", sum.Notes, "notes_failed", sum.NotesFailed, "linked", sum.Linked,
		"converted", sum.Converted, "masters_pending", sum.MastersPending, "outages_ended", sum.OutagesEnded)
	return sum
}

// verdict is what one attempt says about its target.
type verdict int

const (
	answered verdict = iota // delivered, refused, or verified: the target is up
	failing                 // outage, rate limit, breaker open: hold the target for this run
	skipped                 // the item was not attempted (leased elsewhere, not due): no news
)

// drain is one target's share of a redrive run.
type drain struct {
	s      *Service
	target string
	mu     *sync.Mutex // guards sum, shared by the targets' drains
	sum    *RedriveSummary
	// open is the breaker's refusal of the last attempt, if it was refused: how long the target
	// has been down.
	open *breaker.OpenError
}

func (d *drain) add(f func(*RedriveSummary)) {
	d.mu.Lock()
	f(d.sum)
	d.mu.Unlock()
}

func (d *drain) run(ctx context.Context, items []Item) {
	s := d.s
	now := s.now()
	var ready []Item
	for _, it := range items {
		switch {
		case now.Sub(it.CreatedAt) > s.Config.MaxAge:
			it.Reason = ReasonMaxAge
			d.fail(ctx, it, fmt.Sprintf("still undelivered after %s (%d attempts, last error: %s)", s.Config.MaxAge, it.Attempts, it.LastError))
		case s.Targets[d.target] == nil:
			it.Reason = ReasonConfiguration
			d.fail(ctx, it, "its target "+d.target+" is no longer configured")
		case it.NotBefore.After(now):
			d.add(func(sum *RedriveSummary) { sum.Held++ }) // a verification or a Retry-After is not due
		default:
			ready = append(ready, it)
		}
	}
	if len(ready) == 0 {
		return
	}
	f, ferr := s.Outage.Flag(ctx, d.target)
	if ferr == nil && f.Set(now) {
		// An automatic outage takes the queued escalations it is about: links, not tickets.
		ready = d.convert(ctx, f, ready)
		if f.Active && f.Topic.IsZero() {
			// An outage declared for every call: queued escalations wait for it to end
			// rather than add load.
			d.add(func(sum *RedriveSummary) { sum.Held += len(ready) })
			return
		}
	}
	if len(ready) == 0 {
		return
	}
	// The probe: the item whose backoff is due first. Then everything, oldest first.
	probe := 0
	for i, it := range ready {
		if it.Due.Before(ready[probe].Due) {
			probe = i
		}
	}
	ready[0], ready[probe] = ready[probe], ready[0]
	sort.SliceStable(ready[1:], func(i, j int) bool { return ready[1+i].CreatedAt.Before(ready[1+j].CreatedAt) })

	// Probe, one at a time, until the target answers or fails.
	next := 0
	for next < len(ready) {
		v := d.attempt(ctx, ready[next])
		next++
		if v == failing {
			rest := ready[next:]
			if d.open != nil && ferr == nil && !f.Set(now) {
				// The target has been down long enough to declare an outage: what waits for it
				// becomes links.
				if nf, ok := s.detectDown(ctx, d.target, d.open, "escalation-redrive"); ok {
					rest = d.convert(ctx, nf, rest)
				}
			}
			d.add(func(sum *RedriveSummary) { sum.Held += len(rest) })
			return
		}
		if v == answered {
			break
		}
	}
	// The target answers: the rest of its backlog, RedriveConcurrency at a time.
	var (
		mu   sync.Mutex
		down bool
		wg   sync.WaitGroup
	)
	work := make(chan Item)
	for range min(RedriveConcurrency, len(ready)-next) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				mu.Lock()
				stop := down
				mu.Unlock()
				if stop {
					d.add(func(sum *RedriveSummary) { sum.Held++ })
					continue
				}
				if s.Pacer != nil {
					if err := s.Pacer.Wait(ctx, d.target); err != nil {
						d.add(func(sum *RedriveSummary) { sum.Held++ })
						continue
					}
				}
				if d.attempt(ctx, it) == failing {
					mu.Lock()
					down = true
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range ready[next:] {
		work <- it
	}
	close(work)
	wg.Wait()
}

// attemptTimeout is how long the next attempt may take: redriveAttempt, less when the run's
// deadline (less its reserve) is nearer. ok is false when no attempt fits any more.
func attemptTimeout(ctx context.Context) (time.Duration, bool) {
	t := redriveAttempt
	if dl, ok := ctx.Deadline(); ok {
		t = min(t, time.Until(dl)-redriveReserve)
	}
	return t, t >= redriveMinAttempt
}

// attempt delivers one queued escalation under a lease and records what became of it.
func (d *drain) attempt(ctx context.Context, it Item) verdict {
	s := d.s
	e := &it.Escalation
	ctx = observe.WithFields(ctx, slog.String("escalation_id", e.ID), slog.String("correlation_id", e.ConversationID))
	timeout, fits := attemptTimeout(ctx)
	if !fits {
		d.add(func(sum *RedriveSummary) { sum.Held++ })
		return skipped
	}
	ok, orphaned, err := s.Outbox.Lease(ctx, it, redriveLease)
	if err != nil || !ok {
		d.add(func(sum *RedriveSummary) { sum.Held++ })
		return skipped
	}
	if tk, done := s.answeredElsewhere(ctx, e); done {
		// A later request for the same escalation delivered it while this item waited (its
		// queuing had looked failed, the state store being unavailable): remove, do not send.
		if err := s.Outbox.Delivered(ctx, it); err != nil {
			slog.WarnContext(ctx, "already delivered escalation not removed from the outbox", "error", err)
		}
		d.add(func(sum *RedriveSummary) { sum.Delivered++ })
		slog.InfoContext(ctx, "queued escalation was already delivered by a later request; not sent again", "ticket_key", tk)
		return skipped // no news of the target
	}
	if !orphaned.IsZero() {
		// An earlier run took this item and died without a word: it may have created the
		// ticket up to the end of its lease.
		it.Since = later(it.Since, orphaned)
		slog.WarnContext(ctx, "taking over a queued escalation whose last attempt did not finish", "in_doubt_since", it.Since.UTC())
	}
	now := s.now()
	var tk Ticket
	actx, cancel := context.WithTimeout(ctx, timeout)
	err = s.guard(e.Target).Do(actx, func(ctx context.Context) error {
		if f, ok := s.Targets[e.Target].(finder); ok && it.Since.IsZero() {
			// Another call of this escalation may have created the ticket while the state
			// store could not record it (delivered without duplicate protection, at the moment
			// this one was queued): one search before the create. With Since set, Deliver
			// searches anyway.
			found, ok, _, err := findFirst(ctx, f, e)
			if ok || err != nil {
				tk = found
				return err
			}
		}
		t, err := s.Targets[e.Target].Deliver(ctx, e, it.Since)
		tk = t
		return err
	})
	cancel()
	it.Attempts++
	if dt, ok := doubtOf(err); ok {
		it.Since = later(it.Since, dt) // never cleared, whatever happens next
	}
	var open *breaker.OpenError
	var deferred *DeferError
	switch {
	case err == nil:
		d.delivered(ctx, it, tk)
		return answered
	case errors.As(err, &open):
		d.mu.Lock()
		d.open = open
		d.mu.Unlock()
		it.Attempts-- // not attempted
		it.Due = open.Until
		if it.Due.Before(now) {
			it.Due = now.Add(time.Minute)
		}
		d.add(func(sum *RedriveSummary) { sum.Held++ })
		d.reschedule(ctx, it, nil, false)
		return failing
	case errors.As(err, &deferred):
		it.Due, it.NotBefore, it.Reason = deferred.Until, deferred.Until, ReasonVerifying
		if deferred.Err != nil {
			// The create itself failed (its answer was lost): the target is failing.
			it.Due = later(it.Due, now.Add(Backoff(it.Attempts)))
			d.reschedule(ctx, it, err, true)
			return failing
		}
		d.reschedule(ctx, it, err, true)
		return answered // the target answered the search; the ticket is just not visible yet
	}
	if reason, permanent := failureReason(err); permanent {
		it.Reason, it.LastError = reason, err.Error()
		d.fail(ctx, it, err.Error())
		return answered
	}
	if connectors.HeldBack(err) {
		// cxbridge's shared rate limit for the target is used up: nothing was sent, so no
		// attempt is spent and no backoff step taken; the item waits for the slot it was told
		// of, and the target's other items for the next run (failing holds them).
		it.Attempts--
		it.Reason = ReasonRateLimited
		it.Due, it.NotBefore = now.Add(time.Minute), time.Time{}
		if ra, ok := retryAfter(err); ok {
			it.Due = now.Add(ra)
		}
		d.reschedule(ctx, it, err, true)
		return failing
	}
	it.Due, it.NotBefore = now.Add(Backoff(it.Attempts)), time.Time{}
	if ra, ok := retryAfter(err); ok {
		it.NotBefore = now.Add(ra)
		it.Due = later(it.Due, it.NotBefore)
	}
	it.Reason = ReasonUnavailable
	if connectors.KindOf(err) == connectors.KindRateLimited {
		it.Reason = ReasonRateLimited
	}
	d.reschedule(ctx, it, err, true)
	return failing
}

func (d *drain) reschedule(ctx context.Context, it Item, cause error, count bool) {
	d.s.reschedule(ctx, it, cause)
	if count {
		d.add(func(sum *RedriveSummary) { sum.Rescheduled++ })
	}
}

func (d *drain) delivered(ctx context.Context, it Item, tk Ticket) {
	d.s.redriven(ctx, it, tk)
	d.add(func(sum *RedriveSummary) { sum.Delivered++ })
}

func (d *drain) fail(ctx context.Context, it Item, why string) {
	if d.s.failItem(ctx, it, why) {
		d.add(func(sum *RedriveSummary) { sum.Failed++ })
	}
}

func (s *Service) reschedule(ctx context.Context, it Item, cause error) {
	if cause != nil {
		it.LastError = cause.Error()
	}
	if err := s.Outbox.Reschedule(ctx, it, s.Config.MaxAge); err != nil {
		// The lease runs out and the next run takes the item over, treating the attempt as
		// one that may have created the ticket.
		slog.ErrorContext(ctx, "queued escalation could not be rescheduled", "error", err)
		return
	}
	if cause != nil {
		slog.WarnContext(ctx, "queued escalation not delivered yet", "attempts", it.Attempts, "next_attempt", it.Due.UTC(), "reason", it.Reason,
			"in_doubt_since", it.Since, "error", it.LastError)
	}
}

// redriven completes a delivered escalation: the outbox item goes, the idempotency record
// replays the ticket from now on, and the ticket is linked back to the participant.
func (s *Service) redriven(ctx context.Context, it Item, tk Ticket) {
	e := &it.Escalation
	res := s.delivered(ctx, e, tk, it.Attempts)
	// These writes record a ticket that exists: sent even if the state store just stalled, so
	// they land when it runs again.
	ctx = store.SendDuringRest(ctx)
	if err := s.Outbox.Delivered(ctx, it); err != nil {
		slog.ErrorContext(ctx, "delivered escalation not removed from the outbox; the next run will find its ticket", "ticket_key", tk.Key, "error", err)
	}
	data, _ := json.Marshal(res)
	if err := s.Idem.Record(ctx, IdempotencyPrefix+"#"+e.ID, "", data); err != nil {
		slog.WarnContext(ctx, "idempotency record not updated with the delivered ticket", "error", err)
	}
	s.linkBack(ctx, e, res)
	observe.MetricsFrom(ctx).Count("EscalationOutcome", 1, observe.D("Status", res.Status), observe.D("Target", e.Target))
	slog.InfoContext(ctx, "queued escalation delivered", "status", res.Status, "ticket_key", tk.Key, "attempts", it.Attempts,
		"queued_for_ms", s.now().Sub(it.CreatedAt).Milliseconds())
}

// answeredElsewhere reports whether the escalation's idempotency record already answers with a
// ticket, and which. An unreadable record is not an answer: delivery then finds an earlier
// ticket by its marker.
func (s *Service) answeredElsewhere(ctx context.Context, e *Escalation) (string, bool) {
	rec, err := s.Idem.Get(ctx, IdempotencyPrefix+"#"+e.ID)
	if err != nil || rec == nil || rec.Status != idempotency.StatusCompleted {
		return "", false
	}
	var res Result
	if json.Unmarshal(rec.Data, &res) != nil || res.TicketKey == "" {
		return "", false
	}
	switch res.Status {
	case StatusCreated, StatusUpdated, StatusLinked:
		return res.TicketKey, true
	}
	return "", false
}

func (s *Service) failItem(ctx context.Context, it Item, why string) bool {
	it.FailedAt = s.now()
	if err := s.Outbox.Fail(ctx, it); err != nil {
		slog.ErrorContext(ctx, "failed escalation could not be moved to the failed list", "error", err)
		return false
	}
	observe.MetricsFrom(ctx).Count("EscalationFailed", 1)
	observe.MetricsFrom(ctx).Count("EscalationFailedByReason", 1, observe.D("Target", it.Escalation.Target), observe.D("Reason", it.Reason))
	slog.ErrorContext(ctx, "queued escalation failed: a person must act", "reason", it.Reason, "why", why, "attempts", it.Attempts)
	return true
}

// convert links the queued escalations an automatic outage is about to its master instead of
// delivering them (convertible), and returns the others.
func (d *drain) convert(ctx context.Context, f Flag, items []Item) []Item {
	if !f.Auto {
		return items
	}
	var rest []Item
	for _, it := range items {
		if !convertible(it, f) {
			rest = append(rest, it)
			continue
		}
		d.linkQueued(ctx, f, it)
	}
	return rest
}

// linkQueued turns one queued escalation into a link, under its lease: the link (written as of
// when the escalation was accepted, so a repeat writes the same item), the answer a repeat of
// the request replays, then the item goes.
func (d *drain) linkQueued(ctx context.Context, f Flag, it Item) {
	s := d.s
	e := &it.Escalation
	ctx = observe.WithFields(ctx, slog.String("escalation_id", e.ID), slog.String("correlation_id", e.ConversationID))
	ok, orphaned, err := s.Outbox.Lease(ctx, it, redriveLease)
	if err != nil || !ok {
		d.add(func(sum *RedriveSummary) { sum.Held++ })
		return
	}
	if !orphaned.IsZero() {
		// An attempt died holding it: it may have made the ticket, and a link besides a
		// ticket would be a double. It is verified through delivery instead.
		it.Since = later(it.Since, orphaned)
		d.reschedule(ctx, it, nil, false)
		d.add(func(sum *RedriveSummary) { sum.Held++ })
		return
	}
	if tk, done := s.answeredElsewhere(ctx, e); done {
		if err := s.Outbox.Delivered(ctx, it); err != nil {
			slog.WarnContext(ctx, "already delivered escalation not removed from the outbox", "error", err)
		}
		d.add(func(sum *RedriveSummary) { sum.Delivered++ })
		slog.InfoContext(ctx, "queued escalation was already delivered by a later request; not linked", "ticket_key", tk)
		return
	}
	if err := s.Outage.link(ctx, f, e, it.CreatedAt); err != nil {
		slog.WarnContext(ctx, "queued escalation not linked to the outage yet", "error", err)
		d.reschedule(ctx, it, nil, false)
		d.add(func(sum *RedriveSummary) { sum.Held++ })
		return
	}
	res := s.linkedResult(e, f)
	wctx := store.SendDuringRest(ctx) // the link exists: the rest records it
	data, _ := json.Marshal(res)
	if err := s.Idem.Record(wctx, IdempotencyPrefix+"#"+e.ID, "", data); err != nil {
		slog.WarnContext(ctx, "idempotency record not updated with the link", "error", err)
	}
	if err := s.Outbox.Delivered(wctx, it); err != nil {
		slog.ErrorContext(ctx, "linked escalation not removed from the outbox; the next run links it again (the same link)", "error", err)
	}
	if res.TicketKey != "" {
		s.linkBack(ctx, e, res)
	}
	observe.MetricsFrom(ctx).Count("OutageLinked", 1, observe.D("Target", e.Target))
	observe.MetricsFrom(ctx).Count("EscalationOutcome", 1, observe.D("Status", res.Status), observe.D("Target", e.Target))
	slog.InfoContext(ctx, "queued escalation linked to the automatic outage's master instead of raising its own ticket",
		"outage_id", f.OutageID, "master", res.TicketKey, "reason", res.Reason, "queued_for_ms", s.now().Sub(it.CreatedAt).Milliseconds())
	d.add(func(sum *RedriveSummary) { sum.Converted++ })
}

// endQuietOutages ends the automatic outages nobody confirmed that had no linked escalation
// for the quiet period.
func (s *Service) endQuietOutages(ctx context.Context, sum *RedriveSummary) {
	for _, target := range []string{Jira, ServiceNow} {
		f, ended, err := s.Outage.EndIdle(ctx, target)
		if err != nil {
			slog.WarnContext(ctx, "automatic outage's quiet period not checked", "target", target, "error", err)
			continue
		}
		if !ended {
			continue
		}
		sum.OutagesEnded++
		observe.MetricsFrom(ctx).Count("OutageEnded", 1, observe.D("Target", target))
		slog.WarnContext(ctx, "automatic outage ended: no escalation linked to it for the quiet period", "target", target,
			"outage_id", f.OutageID, "last_linked", f.LastMatch.UTC(), "quiet_minutes", int(s.Config.OutageQuiet/time.Minute))
	}
}

// flushMasters writes each master ticket's batched note (at most one per master per minute).
func (s *Service) flushMasters(ctx context.Context, sum *RedriveSummary) {
	refs, err := s.Outage.Masters(ctx)
	if err != nil {
		slog.ErrorContext(ctx, "master tickets unreadable; outage notes wait for the next run", "error", err)
		return
	}
	for _, ref := range refs {
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < redriveMinAttempt {
			slog.WarnContext(ctx, "no time left for the outage notes; they follow next minute")
			return
		}
		t := s.Targets[ref.Target]
		if t == nil {
			continue
		}
		res, err := s.Outage.Flush(ctx, t, s.guard(ref.Target), ref, s.Config.NoteMaxLinks)
		if res.MasterPending {
			sum.MastersPending++
		}
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
