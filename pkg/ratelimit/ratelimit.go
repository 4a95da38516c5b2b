// Package ratelimit is the rate limit per external system that every concurrent Lambda
// environment shares through the state table, so that a flood of calls never meets the
// system's own 429s (seed 001: the bridge itself hitting ServiceNow's rate limit).
//
// It sits in the HTTP transport of a system's client (Limiter.Client), the one seam every call
// to that system passes through: lookups, escalations, the redrive, conversations, token
// fetches and media downloads alike. A call that does not fit is not sent: the transport
// returns a *connectors.Error of kind rate_limited with HeldBack set and a Retry-After, which
// callers already treat as a proven rejection (escalations queue it, the lookup and
// telemetry-tier answer their degraded status, webhooks answer 5xx so the sender redelivers)
// and which circuit breakers ignore.
//
// The limit is exact for any window of Window (one minute): at most Limit calls start in any
// such window, however many environments call at once. The table holds Limit slots per
// system, each remembering when it was last used. A call takes a ticket from an atomic counter
// (UpdateItem ADD) and claims slot ticket mod Limit with a conditional write that succeeds only
// if the slot was last used at least Window ago. Two claims of one slot are therefore Window
// apart, so Limit slots admit at most Limit calls per window (by pigeonhole); no call waits for
// another, nothing is read before it is written, and a rejection costs the same two writes.
// Tickets taken by rejected calls move the counter on, so under load every slot is tried again
// within Limit calls and a freed slot is found quickly. Work that is useless unless all of its
// calls are made (an escalation reads, then creates) takes its slots together (Reserve: one
// transaction, all or none), so a flood does not spend the limit on first halves. Every
// environment compares times with its own clock (NTP-synchronised on Lambda); a skew of d
// between two environments can let one slot be used twice within Window-d.
//
// Items, in the state table:
//
//	pk RATELIMIT#<system>   sk SEQ#<window ms>#<limit>          seq: the ticket counter
//	pk RATELIMIT#<system>   sk SLOT#<window ms>#<limit>#<n>     used_at: ms of the last claim
//
// (pkg/store lists every kind of item of the state table.)
//
// Changing the limit starts a fresh set of slots (the old ones expire by TTL), so for one
// window after a deploy that changes it the old and the new limit can both admit calls.
//
// When DynamoDB fails or is slow, the limiter fails open: the call goes through, the
// RateLimitStoreError metric counts it, and the environment does not ask the store again for a
// second. Both writes share one deadline (StoreTimeout, and never past the caller's), so a hung
// store costs a call StoreTimeout at most.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// DB is the part of *dynamodb.Client the limiter uses.
type DB interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Settings configure one system's limit.
type Settings struct {
	System string // "servicenow", "jira", "genesys", "messagebird", "telemetry"
	Limit  int    // calls per Window; 0 means no limit
	// Window is the length of the window Limit applies to; default one minute.
	Window time.Duration
	// StoreTimeout bounds the two DynamoDB writes of one call together; default 250 ms.
	StoreTimeout time.Duration
	// StoreRetryAfter is how long an environment stops asking the store after it failed;
	// default one second.
	StoreRetryAfter time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Defaults.
const (
	DefaultWindow          = time.Minute
	DefaultStoreTimeout    = 250 * time.Millisecond
	DefaultStoreRetryAfter = time.Second
	// MaxLimit bounds a limit: one item per slot.
	MaxLimit = 100000
)

// Limiter admits calls to one system. A nil *Limiter admits every call.
type Limiter struct {
	db    DB
	table string
	s     Settings
	pk    types.AttributeValue
	sk    string // SEQ / SLOT key suffix: <window ms>#<limit>

	mu        sync.Mutex
	storeDown time.Time // until then, fail open without asking the store
}

// New returns the limiter of s.System kept in table (the state table), or nil when s.Limit is
// 0: no limit, no cost.
func New(db DB, table string, s Settings) *Limiter {
	if s.Limit <= 0 {
		return nil
	}
	if s.System == "" {
		panic("ratelimit: Settings.System is required")
	}
	if s.Window <= 0 {
		s.Window = DefaultWindow
	}
	if s.StoreTimeout <= 0 {
		s.StoreTimeout = DefaultStoreTimeout
	}
	if s.StoreRetryAfter <= 0 {
		s.StoreRetryAfter = DefaultStoreRetryAfter
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return &Limiter{
		db: db, table: table, s: s,
		pk: store.S("RATELIMIT#" + s.System),
		sk: strconv.FormatInt(s.Window.Milliseconds(), 10) + "#" + strconv.Itoa(s.Limit),
	}
}

// Reserve asks that the first call made with the returned context take n slots at once, all or
// none, and the next n-1 calls use them: for work that is of no use unless all its calls are
// made (an escalation reads the conversation's incidents, then creates one). Under a flood such
// work then either gets all its calls or none, instead of spending the limit on first halves.
func Reserve(ctx context.Context, n int) context.Context {
	if n <= 1 {
		return ctx
	}
	return context.WithValue(ctx, reservationKey{}, &reservation{want: n})
}

type reservationKey struct{}

// reservation is one Reserve: taken by the first limiter that admits a call with it.
type reservation struct {
	mu    sync.Mutex
	want  int
	owner *Limiter
	left  int
}

// Admit reserves one call. It returns nil when the call may be sent (also when the store
// cannot be asked: it fails open), ctx's error when ctx ends first, and otherwise a
// *connectors.Error of kind rate_limited, HeldBack, whose RetryAfter says when the slot it was
// given frees up.
func (l *Limiter) Admit(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if r, ok := ctx.Value(reservationKey{}).(*reservation); ok {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case r.owner == l && r.left > 0:
			r.left--
			return nil
		case r.owner == nil:
			n := min(r.want, l.s.Limit)
			if err := l.admit(ctx, n); err != nil {
				return err
			}
			r.owner, r.left = l, n-1
			return nil
		}
	}
	return l.admit(ctx, 1)
}

// admit takes n slots, all or none.
func (l *Limiter) admit(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := l.s.Now()
	l.mu.Lock()
	down := now.Before(l.storeDown)
	l.mu.Unlock()
	if down {
		observe.MetricsFrom(ctx).Count("RateLimitStoreError", 1, observe.D("System", l.s.System))
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, l.s.StoreTimeout)
	defer cancel()

	ticket, err := l.ticket(sctx, now, n)
	if err == nil {
		var busyUntil time.Time
		if n == 1 {
			busyUntil, err = l.claim(sctx, now, ticket%int64(l.s.Limit))
		} else {
			busyUntil, err = l.claimAll(sctx, now, ticket, n)
		}
		if err == nil && !busyUntil.IsZero() {
			return l.reject(ctx, now, busyUntil)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the caller's own deadline, not the store's fault
		}
		l.failOpen(ctx, now, err)
	}
	return nil
}

// ticket takes the next n tickets from the system's counter and returns the last.
func (l *Limiter) ticket(ctx context.Context, now time.Time, n int) (int64, error) {
	out, err := l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(l.table),
		Key:                       map[string]types.AttributeValue{store.PK: l.pk, store.SK: store.S("SEQ#" + l.sk)},
		UpdateExpression:          aws.String("ADD seq :n SET expires_at = :exp"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":n": store.N(n), ":exp": store.N(store.TTL(now, 24*time.Hour))},
		ReturnValues:              types.ReturnValueUpdatedNew,
	})
	if err != nil {
		return 0, err
	}
	seq, ok := store.IntOK(out.Attributes, "seq")
	if !ok {
		return 0, errors.New("ticket counter has no seq")
	}
	return seq, nil
}

// claim marks slot n used at now if it was last used at least Window ago. When it was not,
// busyUntil is when it will be free.
func (l *Limiter) claim(ctx context.Context, now time.Time, n int64) (busyUntil time.Time, err error) {
	u := l.slotUpdate(now, n)
	_, err = l.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: u.TableName, Key: u.Key, UpdateExpression: u.UpdateExpression, ConditionExpression: u.ConditionExpression,
		ExpressionAttributeValues: u.ExpressionAttributeValues, ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return l.freeAt(ccf.Item, now), nil
	}
	return time.Time{}, err
}

// claimAll claims the n slots of the tickets ending at last in one transaction: all or none.
// When any is busy (or another transaction holds one of them), busyUntil is when the last of
// the busy ones frees up.
func (l *Limiter) claimAll(ctx context.Context, now time.Time, last int64, n int) (busyUntil time.Time, err error) {
	items := make([]types.TransactWriteItem, 0, n)
	for t := last - int64(n) + 1; t <= last; t++ {
		u := l.slotUpdate(now, t%int64(l.s.Limit))
		items = append(items, types.TransactWriteItem{Update: &u})
	}
	_, err = l.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var tc *types.TransactionCanceledException
	if !errors.As(err, &tc) {
		return time.Time{}, err
	}
	for _, r := range tc.CancellationReasons {
		switch aws.ToString(r.Code) {
		case "ConditionalCheckFailed":
			if at := l.freeAt(r.Item, now); at.After(busyUntil) {
				busyUntil = at
			}
		case "TransactionConflict": // another call claims one of these slots right now
			if at := now.Add(time.Second); at.After(busyUntil) {
				busyUntil = at
			}
		}
	}
	if busyUntil.IsZero() {
		return time.Time{}, err // cancelled for another reason: a store failure
	}
	return busyUntil, nil
}

// slotUpdate is the conditional write that claims slot n.
func (l *Limiter) slotUpdate(now time.Time, n int64) types.Update {
	return types.Update{
		TableName:           aws.String(l.table),
		Key:                 map[string]types.AttributeValue{store.PK: l.pk, store.SK: store.S("SLOT#" + l.sk + "#" + strconv.FormatInt(n, 10))},
		UpdateExpression:    aws.String("SET used_at = :now, expires_at = :exp"),
		ConditionExpression: aws.String("attribute_not_exists(used_at) OR used_at <= :cutoff"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": store.Millis(now), ":cutoff": store.Millis(now.Add(-l.s.Window)),
			":exp": store.N(store.TTL(now, l.s.Window+time.Hour)),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
}

// freeAt is when a busy slot (its item as it was) frees up.
func (l *Limiter) freeAt(item map[string]types.AttributeValue, now time.Time) time.Time {
	used := store.Time(item, "used_at")
	if used.IsZero() {
		used = now // the old item was not returned: assume the slot is fresh
	}
	return used.Add(l.s.Window)
}

func (l *Limiter) reject(ctx context.Context, now, busyUntil time.Time) error {
	wait := busyUntil.Sub(now)
	if wait < time.Millisecond {
		wait = time.Millisecond
	}
	observe.MetricsFrom(ctx).Count("RateLimited", 1, observe.D("System", l.s.System))
	slog.DebugContext(ctx, "call not sent: the shared rate limit is reached", "system", l.s.System, "limit", l.s.Limit,
		"window_ms", l.s.Window.Milliseconds(), "retry_after_ms", wait.Milliseconds())
	e := &connectors.Error{System: l.s.System, Kind: connectors.KindRateLimited, HeldBack: true,
		Message: fmt.Sprintf("not sent: cxbridge's shared rate limit of %d calls per %s to %s is reached", l.s.Limit, window(l.s.Window), l.s.System)}
	return e.WithRetryAfter(wait)
}

func (l *Limiter) failOpen(ctx context.Context, now time.Time, err error) {
	l.mu.Lock()
	l.storeDown = now.Add(l.s.StoreRetryAfter)
	l.mu.Unlock()
	observe.MetricsFrom(ctx).Count("RateLimitStoreError", 1, observe.D("System", l.s.System))
	slog.WarnContext(ctx, "rate limit state unavailable; calls go through unlimited for a moment", "system", l.s.System,
		"retry_store_after_ms", l.s.StoreRetryAfter.Milliseconds(), "error", err)
}

func window(d time.Duration) string {
	if d == time.Minute {
		return "minute"
	}
	return d.String()
}

// Client returns a copy of hc (connectors.DefaultHTTPClient when nil) whose every request is
// first admitted by l; a nil l returns hc itself.
func (l *Limiter) Client(hc *http.Client) *http.Client {
	if hc == nil {
		hc = connectors.DefaultHTTPClient
	}
	if l == nil {
		return hc
	}
	c := *hc
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &transport{base: base, l: l}
	return &c
}

// transport admits each request before it is sent.
type transport struct {
	base http.RoundTripper
	l    *Limiter
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.l.Admit(req.Context()); err != nil {
		if req.Body != nil {
			_ = req.Body.Close() // a RoundTripper closes the body, even when it fails
		}
		return nil, err
	}
	return t.base.RoundTrip(req)
}

// Systems are the external systems whose calls can be limited.
var Systems = []string{"servicenow", "jira", "genesys", "messagebird", "telemetry"}

// Var is the environment variable holding a system's limit: SERVICENOW_RATE_LIMIT_PER_MINUTE.
func Var(system string) string { return strings.ToUpper(system) + "_RATE_LIMIT_PER_MINUTE" }

// Config is each system's limit in calls per minute, read from the environment.
type Config struct {
	PerMinute map[string]int // by system; absent or 0: no limit
	// StoreTimeout bounds the limiter's DynamoDB writes for one call
	// (RATE_LIMIT_STORE_TIMEOUT_MS).
	StoreTimeout time.Duration
}

// LoadConfig reads <SYSTEM>_RATE_LIMIT_PER_MINUTE for every system and
// RATE_LIMIT_STORE_TIMEOUT_MS; problems are recorded in r.
func LoadConfig(r *config.Reader) Config {
	c := Config{PerMinute: map[string]int{}}
	for _, sys := range Systems {
		if n := r.Int(Var(sys), 0, 0, MaxLimit); n > 0 {
			c.PerMinute[sys] = n
		}
	}
	c.StoreTimeout = r.Millis("RATE_LIMIT_STORE_TIMEOUT_MS", DefaultStoreTimeout, 10*time.Millisecond, 5*time.Second)
	return c
}

// Any reports whether some system has a limit, and which (the first).
func (c Config) Any() (string, bool) {
	for _, sys := range Systems {
		if c.PerMinute[sys] > 0 {
			return sys, true
		}
	}
	return "", false
}

// Limits builds the limiters of c, kept in table (the state table).
func (c Config) Limits(db DB, table string) Limits {
	ls := Limits{}
	for sys, n := range c.PerMinute {
		ls[sys] = New(db, table, Settings{System: sys, Limit: n, StoreTimeout: c.StoreTimeout})
	}
	return ls
}

// Limits are a function's limiters by system; a system without one is not limited.
type Limits map[string]*Limiter

// Client returns hc (connectors.DefaultHTTPClient when nil) limited by the system's limiter.
func (ls Limits) Client(system string, hc *http.Client) *http.Client { return ls[system].Client(hc) }

// Busiest measures a limit: the most of times that fall in one window [from, from+window),
// wherever it starts, and the earliest such window's start.
func Busiest(times []time.Time, window time.Duration) (count int, from time.Time) {
	ts := append([]time.Time(nil), times...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	j := 0
	for i := range ts {
		for !ts[i].Before(ts[j].Add(window)) {
			j++
		}
		if n := i - j + 1; n > count {
			count, from = n, ts[j]
		}
	}
	return count, from
}
