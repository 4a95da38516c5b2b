package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cxbridge/cxbridge/pkg/config"
)

// Every DynamoDB call a function makes goes through one client, and that client bounds it
// (DESIGN.md section 7, "Bounded calls"): a caller on the phone must never wait for a stalled
// state store longer than its own budget. A paused or overloaded DynamoDB still accepts TCP
// connections, so only deadlines help; the bound is applied once, here, as SDK middleware, so no
// call site can forget it.
//
//   - Each call runs under a deadline: the caller's (the remaining budget of its request) or
//     CallTimeout from now, whichever is sooner. The SDK's retries and backoff run inside it.
//   - A call that timed out or could not reach DynamoDB makes every call of the next Rest fail
//     at once, unsent, with ErrUnavailable: the rest of this request, and the next requests of
//     this execution environment, do not each wait for the same stalled store. Calls go out again
//     after Rest, or sooner when a call sent during the rest (below) gets an answer: the store
//     is back, and a request should not go without its state for the rest of the second.
//   - Every such failure matches ErrUnavailable (errors.Is), so callers can tell "the state store
//     could not answer" from a refused condition or a bad request.
//   - A write that records what already happened elsewhere (a ticket created while the store
//     did not answer) is wanted even if it lands late: SendDuringRest sends it while the store
//     rests. A stalled DynamoDB executes what it received once it runs again, so such a write
//     closes the gap its silence opened.

// Defaults of Bounds.
const (
	DefaultCallTimeout = 500 * time.Millisecond
	DefaultRest        = time.Second
)

// ErrUnavailable is matched (errors.Is) by every DynamoDB call that timed out, could not reach
// DynamoDB, was throttled or got a 5xx after the SDK's retries, or was not sent because the
// store had just been found unavailable.
var ErrUnavailable = errors.New("state store unavailable")

// UnavailableError is one call the state store did not answer.
type UnavailableError struct {
	Op string // the DynamoDB operation, e.g. PutItem
	// Unsent: the store was found unavailable moments ago, so the call was not sent; nothing of
	// it can land later.
	Unsent bool
	Err    error
}

func (e *UnavailableError) Error() string {
	if e.Unsent {
		return fmt.Sprintf("state store unavailable: %s not sent (the store did not answer moments ago)", e.Op)
	}
	return fmt.Sprintf("state store unavailable: %s: %v", e.Op, e.Err)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unavailable reports whether err is a state store call that did not get an answer.
func Unavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// Unsent reports whether err is a call that was never sent (so it cannot land later).
func Unsent(err error) bool {
	var ue *UnavailableError
	return errors.As(err, &ue) && ue.Unsent
}

type sendDuringRestKey struct{}

// SendDuringRest marks ctx's calls as sent even while the store rests after a stall (each still
// bounded): for writes whose late landing is wanted because they record an effect that already
// happened.
func SendDuringRest(ctx context.Context) context.Context {
	return context.WithValue(ctx, sendDuringRestKey{}, true)
}

// Bounds limit every call of a DynamoDB client built by NewDynamoDB. Zero values take the
// defaults.
type Bounds struct {
	// CallTimeout is the longest one call may take, SDK retries included; a caller's earlier
	// deadline shortens it. Default 500 ms: DynamoDB answers in milliseconds, so a call that
	// takes this long is stalled, not slow.
	CallTimeout time.Duration
	// Rest is how long, after a call found the store unavailable, every call fails at once
	// without being sent. Default 1 s.
	Rest time.Duration
}

// BoundsFromEnv reads STATE_CALL_TIMEOUT_MS (default 500, 50-10000); problems are recorded in r.
func BoundsFromEnv(r *config.Reader) Bounds {
	return Bounds{CallTimeout: r.Millis("STATE_CALL_TIMEOUT_MS", DefaultCallTimeout, 50*time.Millisecond, 10*time.Second)}
}

func (b Bounds) withDefaults() Bounds {
	if b.CallTimeout <= 0 {
		b.CallTimeout = DefaultCallTimeout
	}
	if b.Rest <= 0 {
		b.Rest = DefaultRest
	}
	return b
}

// bound is the middleware; one per client, shared by every call of it.
type bound struct {
	b   Bounds
	now func() time.Time

	mu        sync.Mutex
	restUntil time.Time
}

func newBound(b Bounds) *bound { return &bound{b: b.withDefaults(), now: time.Now} }

// register adds the middleware first in the Initialize step, so its deadline covers
// everything after it, the retry loop included.
func (bd *bound) register(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("cxbridgeBoundedCall", bd.handle), middleware.Before)
}

func (bd *bound) handle(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	op := middleware.GetOperationName(ctx)
	start := bd.now()
	bd.mu.Lock()
	resting := start.Before(bd.restUntil)
	bd.mu.Unlock()
	if resting && ctx.Value(sendDuringRestKey{}) == nil {
		return middleware.InitializeOutput{}, middleware.Metadata{}, &UnavailableError{Op: op, Unsent: true}
	}
	callCtx, cancel := context.WithTimeout(ctx, bd.b.CallTimeout)
	defer cancel()
	out, md, err := next.HandleInitialize(callCtx, in)
	if err == nil {
		bd.answered(resting)
		return out, md, nil
	}
	stalled, unavailable := bd.classify(ctx, callCtx, err, bd.now().Sub(start))
	if !unavailable {
		bd.answered(resting)
	}
	if stalled {
		bd.mu.Lock()
		if until := bd.now().Add(bd.b.Rest); until.After(bd.restUntil) {
			bd.restUntil = until
		}
		bd.mu.Unlock()
	}
	if unavailable {
		return out, md, &UnavailableError{Op: op, Err: err}
	}
	return out, md, err
}

// answered ends a rest that a call sent during it has disproved.
func (bd *bound) answered(resting bool) {
	if !resting {
		return
	}
	bd.mu.Lock()
	bd.restUntil = time.Time{}
	bd.mu.Unlock()
}

// classify says whether a failed call means the store is unavailable, and whether it is
// evidence enough of a stalled store to rest: the call's own bound expired, or it waited at
// least half of it, or DynamoDB could not be reached at all. A caller whose own budget was
// nearly spent is not evidence.
func (bd *bound) classify(parent, call context.Context, err error, took time.Duration) (stalled, unavailable bool) {
	var send *smithyhttp.RequestSendError
	var ne net.Error
	switch {
	case call.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		if parent.Err() == context.Canceled {
			return false, true // the caller gave up; says nothing about the store
		}
		return parent.Err() == nil || took >= bd.b.CallTimeout/2, true
	case errors.As(err, &send), errors.As(err, &ne):
		return true, true
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return false, true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
			"InternalServerError", "ServiceUnavailable":
			return false, true
		}
	}
	return false, false
}
