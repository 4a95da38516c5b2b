// Package retry runs an operation a bounded number of times inside the caller's deadline.
//
// A caller is waiting on the phone, so retrying is only worth it while an answer can still arrive
// in time: the helper never sleeps past the context deadline, honours a server's Retry-After, and
// gives up at once when the server asks for a longer wait than the budget has left.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy bounds the attempts and the waits between them.
type Policy struct {
	Attempts int           // total attempts, including the first; <1 means 1
	Base     time.Duration // first backoff; doubled per attempt, with full jitter
	Max      time.Duration // cap on one backoff (not on a server's Retry-After)
	// MinAttempt is the least time an attempt needs to be worth starting; a retry that would
	// begin with less budget left is not made.
	MinAttempt time.Duration
}

// Default suits a call made while a caller waits: three attempts, short backoff.
var Default = Policy{Attempts: 3, Base: 100 * time.Millisecond, Max: time.Second, MinAttempt: 50 * time.Millisecond}

// Retryable is implemented by errors that know whether trying again can help, and how long the
// server asked us to wait (zero, false when it did not say).
type Retryable interface {
	Retryable() bool
	RetryAfter() (time.Duration, bool)
}

// ErrBudget reports that a retry was possible but would not finish inside the deadline.
var ErrBudget = errors.New("retry budget exhausted")

// Result describes what Do did, for logs, metrics and responses.
type Result struct {
	Attempts int
}

// Do calls op until it succeeds, returns an error that is not retryable, or the policy or the
// context's deadline runs out. Errors that do not implement Retryable are not retried, except
// context.DeadlineExceeded from an attempt's own timeout, which means "too slow, try again".
// The returned error is the last attempt's, wrapped with ErrBudget when time ran out.
func Do(ctx context.Context, p Policy, op func(ctx context.Context, attempt int) error) (Result, error) {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	var res Result
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		err := op(ctx, attempt)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return res, err
		}
		wait, ok := nextWait(err, p, attempt)
		if !ok || attempt >= p.Attempts {
			return res, err
		}
		// left-MinAttempt rather than wait+MinAttempt: a huge Retry-After must not overflow
		if deadline, has := ctx.Deadline(); has {
			if left := time.Until(deadline); wait > left-p.MinAttempt {
				return res, fmt.Errorf("%w: next attempt in %s, %s left: %w", ErrBudget, wait.Round(time.Millisecond), left.Round(time.Millisecond), err)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, err
		case <-t.C:
		}
	}
}

// nextWait says whether err may be retried and after how long.
func nextWait(err error, p Policy, attempt int) (time.Duration, bool) {
	var r Retryable
	switch {
	case errors.As(err, &r):
		if !r.Retryable() {
			return 0, false
		}
		if d, ok := r.RetryAfter(); ok {
			return d, true
		}
	case errors.Is(err, context.DeadlineExceeded):
	default:
		return 0, false
	}
	return Backoff(p, attempt), true
}

// Backoff returns a full-jitter exponential delay for the given attempt (1 = after the first).
func Backoff(p Policy, attempt int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	shift := min(max(attempt-1, 0), 16)
	d := time.Duration(math.MaxInt64)
	if p.Base <= d>>shift {
		d = p.Base << shift // no overflow: a huge Base must not wrap to a negative delay
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// ParseRetryAfter reads an HTTP Retry-After value: delay-seconds or an HTTP-date (RFC 9110
// section 10.2.3). A date in the past means "now".
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(math.MaxInt64/time.Second) {
			// larger than a Duration holds: a wait no budget can afford, not an overflow to a
			// negative (= immediate) retry
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if d := t.Sub(now); d > 0 {
		return d, true
	}
	return 0, true
}
