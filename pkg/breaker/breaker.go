// Package breaker is the circuit breaker every concurrent Lambda environment shares through
// the state table: one item per dependency, changed only by conditional writes, never locked.
//
// gobreaker's distributed breaker is not used: it holds a lock for the whole upstream call, so
// it serialises calls fleet-wide and loses updates under fan-out (reference/go-ecosystem.md
// section 2). Here each environment reads the state, makes its call, and reports the outcome
// with one conditional UpdateItem; the conditions make every transition happen exactly once.
//
//   - CLOSED: calls go through. An outage failure (connectors.IsOutage: 5xx, 429, timeouts,
//     transport errors) adds one to failures; a success resets it; any other error (400, 401,
//     403, 404, our own bugs, a call cxbridge's own rate limit did not send) is neutral and
//     changes nothing. The environment whose failure
//     reaches Threshold opens the breaker, under the condition "still CLOSED and failures >=
//     Threshold", so exactly one writer does.
//   - OPEN until open_until: calls are rejected with an error matching ErrOpen.
//   - After open_until one caller is elected probe by a conditional write (HALF_OPEN with a
//     probe lease); everyone else is rejected while the probe is out. Probe success closes the
//     breaker, probe failure opens it again for OpenFor, a neutral outcome releases the lease.
//   - Forced open (outage "catastrophe mode", ForceOpen/Clear): rejects regardless of state.
//
// The state is read at most once per CacheMaxAge per environment (DESIGN.md section 7), but a
// failure this environment observes drops its cached state, so no environment keeps calling a
// failing dependency on a stale CLOSED; that bounds upstream calls to Threshold plus the calls
// already in flight, whatever the cache age. A cached OPEN is trusted until open_until.
//
// The breaker fails open: when DynamoDB errors or hangs, calls go through (with a warning and
// the BreakerStoreError metric). The state store client bounds every call (pkg/store: the
// caller's budget and a per-call cap), so a hung DynamoDB costs a caller one bounded call at most,
// and after an error the environment does not ask again for CacheMaxAge.
package breaker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// State is a breaker state, as stored.
type State string

const (
	Closed   State = "CLOSED"
	Open     State = "OPEN"
	HalfOpen State = "HALF_OPEN"
)

// ErrOpen is matched (errors.Is) by every rejection; the error itself is an *OpenError.
var ErrOpen = errors.New("circuit breaker open")

// OpenError is a rejected call.
type OpenError struct {
	Dependency string
	State      State     // Open, or HalfOpen while another caller's probe is out
	Until      time.Time // when the dependency may be tried again; zero when forced until cleared
	// Since is when the breaker opened after it was last closed: how long the dependency has
	// been refusing calls, across the re-opens of failed probes (zero when forced).
	Since  time.Time
	Forced bool
	Reason string // the operator's reason when forced
}

func (e *OpenError) Error() string {
	s := e.Dependency + ": circuit breaker open"
	switch {
	case e.Forced:
		s += " (forced"
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		s += ")"
	case e.State == HalfOpen:
		s += " (a probe call is out)"
	}
	if !e.Until.IsZero() {
		s += "; retry after " + e.Until.UTC().Format(time.RFC3339Nano)
	}
	return s
}

// Is makes errors.Is(err, ErrOpen) true, and errors.Is(err, connectors.ErrNotSent): a rejected
// call never reached the dependency, so a write it stopped may be repeated.
func (e *OpenError) Is(target error) bool {
	return target == ErrOpen || target == connectors.ErrNotSent
}

// DB is the part of *dynamodb.Client the breaker uses.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Settings configure one dependency's breaker. Zero values take the defaults.
type Settings struct {
	Name       string        // the dependency: "telemetry", "jira", "servicenow", "genesys", "messagebird"
	Threshold  int           // consecutive outage failures that open it; default 5
	OpenFor    time.Duration // how long it stays open before a probe; default 30 s
	ProbeLease time.Duration // how long a probe may take before another caller may probe; default 10 s
	// CacheMaxAge is how long this environment may reuse a state it read; default 1 s,
	// negative for no cache.
	CacheMaxAge time.Duration
	// Now is the clock; default time.Now. Every environment compares against the stored
	// times with its own clock.
	Now func() time.Time
	// ID names this execution environment in opened_by and probe_owner; default the Lambda
	// log stream name (AWS_LAMBDA_LOG_STREAM_NAME), so an operator can find its logs.
	ID string
}

// Defaults.
const (
	DefaultThreshold   = 5
	DefaultOpenFor     = 30 * time.Second
	DefaultProbeLease  = 10 * time.Second
	DefaultCacheMaxAge = time.Second
	// DoneGrace is how long past its caller's deadline Done may still write the outcome of a
	// call that ran to that deadline.
	DoneGrace = 50 * time.Millisecond
)

// SettingsFromEnv reads BREAKER_FAILURE_THRESHOLD (default 5) and BREAKER_OPEN_SECONDS
// (default 30) from the function's environment; problems are recorded in r.
func SettingsFromEnv(r *config.Reader, name string) Settings {
	return Settings{
		Name:      name,
		Threshold: r.Int("BREAKER_FAILURE_THRESHOLD", DefaultThreshold, 1, 1000),
		OpenFor:   r.Seconds("BREAKER_OPEN_SECONDS", DefaultOpenFor, time.Second, 24*time.Hour),
		ID:        r.String("AWS_LAMBDA_LOG_STREAM_NAME", ""),
	}
}

// Breaker is one dependency's breaker as seen from one execution environment. It is safe for
// concurrent use.
type Breaker struct {
	db    DB
	table string
	s     Settings
	key   map[string]types.AttributeValue

	mu        sync.Mutex
	cached    *Snapshot // nil: read before deciding
	cachedAt  time.Time
	forgotten uint64    // bumped by forget: a read begun before must not refill the cache
	storeDown time.Time // after a store error, fail open without asking until then
}

// New returns the breaker for s.Name, kept in table (the state table).
func New(db DB, table string, s Settings) *Breaker {
	if s.Name == "" {
		panic("breaker: Settings.Name is required")
	}
	if s.Threshold <= 0 {
		s.Threshold = DefaultThreshold
	}
	if s.OpenFor <= 0 {
		s.OpenFor = DefaultOpenFor
	}
	if s.ProbeLease <= 0 {
		s.ProbeLease = DefaultProbeLease
	}
	if s.CacheMaxAge == 0 {
		s.CacheMaxAge = DefaultCacheMaxAge
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.ID == "" {
		s.ID = os.Getenv("AWS_LAMBDA_LOG_STREAM_NAME")
	}
	if s.ID == "" {
		host, _ := os.Hostname()
		s.ID = host + "-" + strconv.Itoa(os.Getpid()) + "-" + randomHex(4)
	}
	return &Breaker{
		db: db, table: table, s: s,
		key: map[string]types.AttributeValue{
			store.PK: store.S("BREAKER#" + s.Name),
			store.SK: store.S("STATE"),
		},
	}
}

// Name is the dependency's name.
func (b *Breaker) Name() string { return b.s.Name }

// Ticket is permission for one call. Report its outcome with Done.
type Ticket struct {
	b        *Breaker
	probe    bool   // this call is the elected probe
	owner    string // probe_owner written at election
	failures int    // failures as seen when admitted: a success resets only when non-zero
	degraded bool   // the store was unavailable: the outcome is not recorded
	done     atomic.Bool
}

// Probe reports whether this call is the probe of a half-open breaker.
func (t *Ticket) Probe() bool { return t != nil && t.probe }

// Do runs fn if the breaker allows it, and records its outcome.
func (b *Breaker) Do(ctx context.Context, fn func(context.Context) error) error {
	t, err := b.Allow(ctx)
	if err != nil {
		return err
	}
	err = fn(ctx)
	t.Done(ctx, err)
	return err
}

// Allow asks for permission to call the dependency. It returns an error matching ErrOpen when
// the breaker rejects the call, ctx's error when ctx is already done, and otherwise a Ticket
// (also when the breaker's state cannot be read: it fails open).
func (b *Breaker) Allow(ctx context.Context) (*Ticket, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := b.s.Now()
	snap, skip := b.fromCache(now)
	if skip {
		return &Ticket{b: b, degraded: true}, nil
	}
	if snap == nil {
		var err error
		if snap, err = b.read(ctx, now); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return b.failOpen(ctx, now, "read state", err), nil
		}
	}
	return b.decide(ctx, snap, now, true)
}

// fromCache returns the cached state if it may be used at now; skip is true while the store
// is considered down.
func (b *Breaker) fromCache(now time.Time) (snap *Snapshot, skip bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.storeDown) {
		return nil, true
	}
	c := b.cached
	if c == nil {
		return nil, false
	}
	// An OPEN state cannot change before open_until except by forcing, which only rejects
	// more, so it is trusted until then.
	if c.State == Open && now.Before(c.OpenUntil) {
		return c, false
	}
	if b.s.CacheMaxAge > 0 && now.Sub(b.cachedAt) < b.s.CacheMaxAge {
		return c, false
	}
	return nil, false
}

func (b *Breaker) remember(s *Snapshot, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.s.CacheMaxAge < 0 && (s.State != Open || !now.Before(s.OpenUntil)) {
		b.cached = nil
		return
	}
	b.cached, b.cachedAt = s, now
}

func (b *Breaker) forget() {
	b.mu.Lock()
	b.cached = nil
	b.forgotten++
	b.mu.Unlock()
}

// decide admits or rejects a call given a state; elect allows one probe election.
func (b *Breaker) decide(ctx context.Context, s *Snapshot, now time.Time, elect bool) (*Ticket, error) {
	switch {
	case s.ForcedAt(now):
		return nil, b.reject(ctx, &OpenError{Dependency: b.s.Name, State: s.State, Until: s.ForcedUntil, Forced: true, Reason: s.ForcedReason})
	case s.State == Closed:
		if s.Failures >= b.s.Threshold {
			// Opening is due but not written: the environment that reached the threshold is
			// between its two writes, or died there. Reject, and open it if nobody has.
			b.open(ctx, now, s.Failures)
			return nil, b.reject(ctx, &OpenError{Dependency: b.s.Name, State: Open, Until: now.Add(b.s.OpenFor), Since: now})
		}
		return &Ticket{b: b, failures: s.Failures}, nil
	case s.State == Open && now.Before(s.OpenUntil):
		return nil, b.reject(ctx, &OpenError{Dependency: b.s.Name, State: Open, Until: s.OpenUntil, Since: s.Down()})
	case s.State == HalfOpen && now.Before(s.ProbeUntil):
		return nil, b.reject(ctx, &OpenError{Dependency: b.s.Name, State: HalfOpen, Until: s.ProbeUntil, Since: s.Down()})
	case elect:
		return b.elect(ctx, now)
	default:
		return nil, b.reject(ctx, &OpenError{Dependency: b.s.Name, State: s.State, Until: now, Since: s.Down()})
	}
}

func (b *Breaker) reject(ctx context.Context, e *OpenError) error {
	observe.MetricsFrom(ctx).Count("BreakerRejected", 1, observe.D("Dependency", b.s.Name))
	return e
}

// elect tries to become the probe of an open breaker whose time is up (or of a half-open one
// whose probe lease expired). Exactly one caller's conditional write succeeds.
func (b *Breaker) elect(ctx context.Context, now time.Time) (*Ticket, error) {
	owner := b.s.ID + "#" + randomHex(6)
	s, err := b.update(ctx, now, &dynamodb.UpdateItemInput{
		UpdateExpression: aws.String("SET #st = :half, probe_until = :lease, probe_owner = :owner, updated_at = :now"),
		ConditionExpression: aws.String("((#st = :open AND open_until <= :now) OR (#st = :half AND probe_until <= :now))" +
			" AND (attribute_not_exists(forced_until) OR (forced_until <> :zero AND forced_until <= :now))"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":half": store.S(string(HalfOpen)), ":open": store.S(string(Open)), ":lease": store.Millis(now.Add(b.s.ProbeLease)),
			":owner": store.S(owner), ":now": store.Millis(now), ":zero": store.N(0),
		},
	})
	var lost *lostRace
	switch {
	case errors.As(err, &lost):
		return b.decide(ctx, lost.current, now, false) // someone else is the probe (or closed it)
	case err != nil:
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return b.failOpen(ctx, now, "elect probe", err), nil
	}
	observe.MetricsFrom(ctx).Count("BreakerProbe", 1, observe.D("Dependency", b.s.Name))
	slog.InfoContext(ctx, "circuit breaker half-open: this call is the probe", "dependency", b.s.Name, "probe_owner", owner, "probe_until", s.ProbeUntil)
	return &Ticket{b: b, probe: true, owner: owner}, nil
}

// Done records the call's outcome. err is the call's error: nil is a success, an outage error
// (connectors.IsOutage) a failure, anything else neutral. Done may be called once; later calls
// and a nil Ticket do nothing. Its store writes are not cancelled with ctx, because a
// timed-out call is exactly the failure that must be recorded; but they stay within the caller's
// deadline, or DoneGrace past it when the call used it all, so recording never costs the caller
// more than that (and the store client bounds each write as every other call).
func (t *Ticket) Done(ctx context.Context, err error) {
	if t == nil || t.done.Swap(true) || t.degraded {
		return
	}
	b := t.b
	deadline, hasDeadline := ctx.Deadline()
	ctx = context.WithoutCancel(ctx)
	if hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, later(deadline, time.Now().Add(DoneGrace)))
		defer cancel()
	}
	now := b.s.Now()
	// A call cxbridge's own rate limit held back never reached the dependency: neutral.
	outage := err != nil && connectors.IsOutage(err) && !connectors.HeldBack(err)
	switch {
	case t.probe:
		b.probeDone(ctx, t, now, err, outage)
	case outage:
		b.failure(ctx, now)
	case err == nil && t.failures > 0:
		b.reset(ctx, now)
	}
}

// failure counts one outage failure and opens the breaker when it reaches the threshold.
func (b *Breaker) failure(ctx context.Context, now time.Time) {
	// This environment has seen the dependency fail: its cached state may be stale, and
	// trusting it could let it keep calling after another environment opened the breaker.
	b.forget()
	s, err := b.update(ctx, now, &dynamodb.UpdateItemInput{
		UpdateExpression:    aws.String("SET #st = if_not_exists(#st, :closed), updated_at = :now ADD failures :one"),
		ConditionExpression: aws.String("attribute_not_exists(#st) OR #st = :closed"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":closed": store.S(string(Closed)), ":one": store.N(1), ":now": store.Millis(now),
		},
	})
	var lost *lostRace
	switch {
	case errors.As(err, &lost):
		return // already open or probing; update cached the current state
	case err != nil:
		b.storeError(ctx, now, "count failure", err)
		return
	}
	if s.Failures >= b.s.Threshold {
		b.open(ctx, now, s.Failures)
	} else {
		b.forget() // the next Allow reads again (see above)
	}
}

// open moves CLOSED to OPEN if failures still reach the threshold; only one caller succeeds.
func (b *Breaker) open(ctx context.Context, now time.Time, failures int) {
	until := now.Add(b.s.OpenFor)
	_, err := b.update(ctx, now, &dynamodb.UpdateItemInput{
		UpdateExpression:    aws.String("SET #st = :open, open_until = :until, opened_by = :me, opened_at = :now, down_since = if_not_exists(down_since, :now), failures = :zero, updated_at = :now REMOVE probe_until, probe_owner"),
		ConditionExpression: aws.String("(attribute_not_exists(#st) OR #st = :closed) AND failures >= :threshold"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":open": store.S(string(Open)), ":closed": store.S(string(Closed)), ":until": store.Millis(until), ":me": store.S(b.s.ID),
			":now": store.Millis(now), ":zero": store.N(0), ":threshold": store.N(b.s.Threshold),
		},
	})
	var lost *lostRace
	switch {
	case errors.As(err, &lost):
		return // another environment opened it, or a success reset the count
	case err != nil:
		b.storeError(ctx, now, "open", err)
		return
	}
	observe.MetricsFrom(ctx).Count("BreakerOpened", 1, observe.D("Dependency", b.s.Name))
	slog.WarnContext(ctx, "circuit breaker opened", "dependency", b.s.Name, "failures", failures, "threshold", b.s.Threshold,
		"open_until", until.UTC(), "opened_by", b.s.ID)
}

// reset clears the failure count after a success, if it is still CLOSED.
func (b *Breaker) reset(ctx context.Context, now time.Time) {
	_, err := b.update(ctx, now, &dynamodb.UpdateItemInput{
		UpdateExpression:    aws.String("SET failures = :zero, updated_at = :now"),
		ConditionExpression: aws.String("#st = :closed AND failures > :zero"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":closed": store.S(string(Closed)), ":zero": store.N(0), ":now": store.Millis(now),
		},
	})
	var lost *lostRace
	if err != nil && !errors.As(err, &lost) {
		b.storeError(ctx, now, "reset failures", err)
	}
}

// probeDone applies the probe's outcome, if this caller still holds the probe lease.
func (b *Breaker) probeDone(ctx context.Context, t *Ticket, now time.Time, callErr error, outage bool) {
	cond := aws.String("#st = :half AND probe_owner = :owner")
	vals := map[string]types.AttributeValue{":half": store.S(string(HalfOpen)), ":owner": store.S(t.owner), ":now": store.Millis(now)}
	in := &dynamodb.UpdateItemInput{ConditionExpression: cond, ExpressionAttributeValues: vals}
	var op, msg string
	switch {
	case callErr == nil:
		op, msg = "close", "circuit breaker closed: the probe succeeded"
		in.UpdateExpression = aws.String("SET #st = :closed, failures = :zero, updated_at = :now REMOVE probe_until, probe_owner, open_until, down_since")
		vals[":closed"], vals[":zero"] = store.S(string(Closed)), store.N(0)
	case outage:
		op, msg = "reopen", "circuit breaker reopened: the probe failed"
		b.forget()
		in.UpdateExpression = aws.String("SET #st = :open, open_until = :until, opened_by = :me, opened_at = :now, down_since = if_not_exists(down_since, :now), failures = :zero, updated_at = :now REMOVE probe_until, probe_owner")
		vals[":open"], vals[":until"], vals[":me"], vals[":zero"] = store.S(string(Open)), store.Millis(now.Add(b.s.OpenFor)), store.S(b.s.ID), store.N(0)
	default:
		// Neither success nor outage (a 4xx, a cancelled call): it says nothing about the
		// dependency, so let the next caller probe instead.
		op, msg = "release probe", "circuit breaker probe released: its outcome was neutral"
		in.UpdateExpression = aws.String("SET probe_until = :now, updated_at = :now REMOVE probe_owner")
	}
	_, err := b.update(ctx, now, in)
	var lost *lostRace
	switch {
	case errors.As(err, &lost):
		// The lease expired and another caller probes now; its outcome decides.
		slog.InfoContext(ctx, "circuit breaker probe outcome dropped: the probe lease had expired", "dependency", b.s.Name)
		return
	case err != nil:
		b.storeError(ctx, now, op, err)
		return
	}
	switch {
	case callErr == nil:
		observe.MetricsFrom(ctx).Count("BreakerClosed", 1, observe.D("Dependency", b.s.Name))
		slog.InfoContext(ctx, msg, "dependency", b.s.Name)
	case outage:
		observe.MetricsFrom(ctx).Count("BreakerOpened", 1, observe.D("Dependency", b.s.Name))
		slog.WarnContext(ctx, msg, "dependency", b.s.Name, "open_until", now.Add(b.s.OpenFor).UTC(), "opened_by", b.s.ID, "error", callErr)
	default:
		slog.InfoContext(ctx, msg, "dependency", b.s.Name, "error", callErr)
	}
}

// ForceOpen rejects every call until Clear or until (zero: until cleared), whatever the
// state, and stops probes. Other environments see it within CacheMaxAge.
func (b *Breaker) ForceOpen(ctx context.Context, reason string, until time.Time) error {
	now := b.s.Now()
	u := store.N(0)
	if !until.IsZero() {
		u = store.Millis(until)
	}
	_, err := b.update(ctx, now, &dynamodb.UpdateItemInput{
		UpdateExpression: aws.String("SET #st = if_not_exists(#st, :closed), forced_until = :until, forced_reason = :reason, forced_at = :now, forced_by = :me, updated_at = :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":closed": store.S(string(Closed)), ":until": u, ":reason": store.S(reason), ":now": store.Millis(now), ":me": store.S(b.s.ID),
		},
	})
	if err != nil {
		b.forget()
		return fmt.Errorf("force breaker %s open: %w", b.s.Name, err)
	}
	observe.MetricsFrom(ctx).Count("BreakerForced", 1, observe.D("Dependency", b.s.Name))
	slog.WarnContext(ctx, "circuit breaker forced open", "dependency", b.s.Name, "reason", reason, "forced_until", until.UTC(), "forced_by", b.s.ID)
	return nil
}

// Clear ends a forced open. The breaker's own state (closed, open, probing) is unchanged.
func (b *Breaker) Clear(ctx context.Context) error {
	now := b.s.Now()
	_, err := b.update(ctx, now, &dynamodb.UpdateItemInput{
		UpdateExpression: aws.String("SET #st = if_not_exists(#st, :closed), updated_at = :now REMOVE forced_until, forced_reason, forced_at, forced_by"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":closed": store.S(string(Closed)), ":now": store.Millis(now),
		},
	})
	if err != nil {
		b.forget()
		return fmt.Errorf("clear forced breaker %s: %w", b.s.Name, err)
	}
	slog.InfoContext(ctx, "circuit breaker no longer forced open", "dependency", b.s.Name)
	return nil
}

// State reads the breaker's current state (a consistent read, not the cache).
func (b *Breaker) State(ctx context.Context) (Snapshot, error) {
	now := b.s.Now()
	s, err := b.read(ctx, now)
	if err != nil {
		return Snapshot{}, fmt.Errorf("read breaker %s: %w", b.s.Name, err)
	}
	return *s, nil
}

// failOpen lets a call through when the state cannot be read or written.
func (b *Breaker) failOpen(ctx context.Context, now time.Time, op string, err error) *Ticket {
	b.storeError(ctx, now, op, err)
	return &Ticket{b: b, degraded: true}
}

func (b *Breaker) storeError(ctx context.Context, now time.Time, op string, err error) {
	b.mu.Lock()
	b.cached = nil
	if b.s.CacheMaxAge > 0 {
		b.storeDown = now.Add(b.s.CacheMaxAge)
	}
	b.mu.Unlock()
	observe.MetricsFrom(ctx).Count("BreakerStoreError", 1, observe.D("Dependency", b.s.Name))
	slog.WarnContext(ctx, "circuit breaker state unavailable; failing open", "dependency", b.s.Name, "op", op, "error", err)
}

// read does a consistent read of the state item and caches it.
func (b *Breaker) read(ctx context.Context, now time.Time) (*Snapshot, error) {
	b.mu.Lock()
	gen := b.forgotten
	b.mu.Unlock()
	out, err := b.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(b.table),
		Key:            b.key,
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, err
	}
	s := decode(out.Item)
	b.mu.Lock()
	stale := b.forgotten != gen // a failure seen meanwhile by a concurrent call
	b.mu.Unlock()
	if !stale {
		b.remember(s, now)
	}
	return s, nil
}

// lostRace is a conditional write that did not apply; current is the item as it was.
type lostRace struct{ current *Snapshot }

func (e *lostRace) Error() string { return "condition not met" }

// update runs one conditional UpdateItem, caches the resulting state (or, when the condition
// failed, the state that made it fail) and returns it.
func (b *Breaker) update(ctx context.Context, now time.Time, in *dynamodb.UpdateItemInput) (*Snapshot, error) {
	in.TableName = aws.String(b.table)
	in.Key = b.key
	in.ReturnValues = types.ReturnValueAllNew
	in.ReturnValuesOnConditionCheckFailure = types.ReturnValuesOnConditionCheckFailureAllOld
	if in.ExpressionAttributeNames == nil && usesState(in) {
		in.ExpressionAttributeNames = map[string]string{"#st": "state"} // "state" is a reserved word
	}
	out, err := b.db.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		s := decode(ccf.Item)
		b.remember(s, now)
		return nil, &lostRace{current: s}
	}
	if err != nil {
		return nil, err
	}
	s := decode(out.Attributes)
	b.remember(s, now)
	return s, nil
}

func usesState(in *dynamodb.UpdateItemInput) bool {
	return strings.Contains(aws.ToString(in.UpdateExpression), "#st") || strings.Contains(aws.ToString(in.ConditionExpression), "#st")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
