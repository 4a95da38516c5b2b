package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/retry"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{now.Add(90 * time.Second).Format(time.RFC850), 90 * time.Second, true}, // obsolete but allowed
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},                  // in the past: now
		{now.Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"30s", 0, false},
		{"2026-11-22T10:00:30Z", 0, false}, // ISO-8601 is Jira's X-RateLimit-Reset, not a Retry-After
	}
	for _, tt := range tests {
		got, ok := retry.ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// A Retry-After too large for a Duration must read as "very long", never wrap to a negative
// (immediate) retry.
func TestParseRetryAfterHuge(t *testing.T) {
	for _, v := range []string{"9999999999999", "9223372036854775807"} {
		got, ok := retry.ParseRetryAfter(v, time.Now())
		if !ok || got < 24*time.Hour {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want a very long wait", v, got, ok)
		}
	}
}

func TestBackoffIsBounded(t *testing.T) {
	p := retry.Policy{Base: 100 * time.Millisecond, Max: time.Second}
	for attempt := 0; attempt <= 70; attempt++ {
		for range 50 {
			d := retry.Backoff(p, attempt)
			if d <= 0 || d > p.Max {
				t.Fatalf("Backoff(attempt %d) = %v; want (0, %v]", attempt, d, p.Max)
			}
			if attempt <= 1 && d > p.Base {
				t.Fatalf("Backoff(attempt %d) = %v; the first backoff must not exceed Base %v", attempt, d, p.Base)
			}
		}
	}
	// a huge base must not overflow into a negative delay (or a panic in the jitter)
	huge := retry.Policy{Base: 1 << 60}
	for attempt := 1; attempt <= 20; attempt++ {
		if d := retry.Backoff(huge, attempt); d <= 0 {
			t.Fatalf("Backoff(huge, %d) = %v", attempt, d)
		}
	}
	if d := retry.Backoff(retry.Policy{}, 3); d != 0 {
		t.Errorf("Backoff without Base = %v; want 0", d)
	}
}

// script is a real HTTP server that answers each request with the next scripted response and
// remembers when each request arrived.
type script struct {
	srv *httptest.Server

	mu        sync.Mutex
	responses []reply
	arrivals  []time.Time
}

type reply struct {
	status     int
	retryAfter string
	body       string
	hang       bool // block until the client goes away
}

func newScript(t *testing.T, responses ...reply) *script {
	s := &script{responses: responses}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// read the body first: only then does the server notice a client that goes away
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.arrivals = append(s.arrivals, time.Now())
		rep := reply{status: http.StatusOK, body: `{"ok":true}`}
		if len(s.responses) > 0 {
			rep = s.responses[0]
			if len(s.responses) > 1 {
				s.responses = s.responses[1:]
			}
		}
		s.mu.Unlock()
		if rep.hang {
			<-r.Context().Done()
			return
		}
		if rep.retryAfter != "" {
			w.Header().Set("Retry-After", rep.retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		fmt.Fprint(w, rep.body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *script) requests() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals...)
}

func (s *script) client() *connectors.Client {
	return &connectors.Client{System: "telemetry", BaseURL: s.srv.URL, HTTP: connectors.DefaultHTTPClient}
}

// call is the operation every test retries: one real request through connectors.Client, so the
// error being retried is the real *connectors.Error with its Retry-After read from the header.
func (s *script) call(c *connectors.Client) func(ctx context.Context, attempt int) error {
	return func(ctx context.Context, attempt int) error {
		var out map[string]any
		_, err := c.Do(ctx, connectors.Request{Op: "read telemetry", Method: http.MethodPost, Path: "/telemetry", Body: map[string]string{"customerId": "c-1"}}, &out)
		return err
	}
}

var fast = retry.Policy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

func TestSucceedsAfter503HonouringRetryAfter(t *testing.T) {
	s := newScript(t,
		reply{status: http.StatusServiceUnavailable, retryAfter: "1", body: `{"error":"busy"}`},
		reply{status: http.StatusOK, body: `{"ok":true}`},
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := retry.Do(ctx, fast, s.call(s.client()))
	if err != nil {
		t.Fatalf("Do = %v; want success on the second attempt", err)
	}
	if res.Attempts != 2 {
		t.Errorf("Attempts = %d; want 2", res.Attempts)
	}
	at := s.requests()
	if len(at) != 2 {
		t.Fatalf("server saw %d requests; want 2", len(at))
	}
	// the server asked for one second; the policy's millisecond backoff must not override it
	if gap := at[1].Sub(at[0]); gap < 900*time.Millisecond {
		t.Errorf("second attempt came %v after the first; the server asked for Retry-After: 1", gap)
	}
}

func TestAtMostPolicyAttempts(t *testing.T) {
	s := newScript(t, reply{status: http.StatusBadGateway, body: `{}`})
	res, err := retry.Do(context.Background(), fast, s.call(s.client()))
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusBadGateway {
		t.Fatalf("Do = %v; want the last *connectors.Error (502)", err)
	}
	if errors.Is(err, retry.ErrBudget) {
		t.Errorf("Do = %v; running out of attempts is not a budget problem", err)
	}
	if res.Attempts != 3 || len(s.requests()) != 3 {
		t.Errorf("Attempts = %d, server saw %d; want 3 and 3", res.Attempts, len(s.requests()))
	}
}

func TestAttemptsBelowOneMeansOne(t *testing.T) {
	s := newScript(t, reply{status: http.StatusServiceUnavailable, body: `{}`})
	res, err := retry.Do(context.Background(), retry.Policy{}, s.call(s.client()))
	if err == nil || res.Attempts != 1 || len(s.requests()) != 1 {
		t.Errorf("Do with zero Policy = %d attempts, %d requests, err %v; want one attempt", res.Attempts, len(s.requests()), err)
	}
}

func TestNonRetryableStopsAtOnce(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s := newScript(t, reply{status: status, retryAfter: "0", body: `{}`})
			res, err := retry.Do(context.Background(), fast, s.call(s.client()))
			var ce *connectors.Error
			if !errors.As(err, &ce) || ce.Status != status {
				t.Fatalf("Do = %v; want the %d error", err, status)
			}
			if res.Attempts != 1 || len(s.requests()) != 1 {
				t.Errorf("Attempts = %d, server saw %d; a %d must not be retried", res.Attempts, len(s.requests()), status)
			}
		})
	}
}

func TestPlainErrorsAreNotRetried(t *testing.T) {
	calls := 0
	boom := errors.New("boom")
	res, err := retry.Do(context.Background(), fast, func(context.Context, int) error { calls++; return boom })
	if !errors.Is(err, boom) || calls != 1 || res.Attempts != 1 {
		t.Errorf("Do = %v after %d calls; an error that is not Retryable must stop at once", err, calls)
	}
}

// An attempt that timed out on its own (shorter) deadline is worth another try while the
// caller's budget lasts.
func TestAttemptTimeoutIsRetried(t *testing.T) {
	s := newScript(t, reply{hang: true}, reply{status: http.StatusOK, body: `{"ok":true}`})
	c := s.client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := retry.Do(ctx, fast, func(ctx context.Context, attempt int) error {
		actx, acancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer acancel()
		return s.call(c)(actx, attempt)
	})
	if err != nil || res.Attempts != 2 {
		t.Errorf("Do = %v after %d attempts; want success on the second", err, res.Attempts)
	}
}

// The server asks for 30 s but the caller has 2 s left: waiting is pointless, so Do must give
// up at once, say why (ErrBudget) and still hand over the server's error.
func TestRetryAfterBeyondDeadlineGivesUpAtOnce(t *testing.T) {
	s := newScript(t, reply{status: http.StatusTooManyRequests, retryAfter: "30", body: `{"error":"slow down"}`})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := retry.Do(ctx, fast, s.call(s.client()))
	if ctx.Err() != nil {
		t.Fatalf("Do returned only after the deadline (%v); it must give up before waiting", ctx.Err())
	}
	if !errors.Is(err, retry.ErrBudget) {
		t.Fatalf("Do = %v; want ErrBudget", err)
	}
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		t.Fatalf("errors.As(%v, *connectors.Error) = false; the last error must stay reachable", err)
	}
	if ce.Status != http.StatusTooManyRequests || ce.Kind != connectors.KindRateLimited {
		t.Errorf("last error = %+v; want the 429", ce)
	}
	if d, ok := ce.RetryAfter(); !ok || d != 30*time.Second {
		t.Errorf("RetryAfter = %v, %v; want 30s from the header", d, ok)
	}
	if connectors.KindOf(err) != connectors.KindRateLimited {
		t.Errorf("KindOf = %q; want rate_limited through the ErrBudget wrapping", connectors.KindOf(err))
	}
	if res.Attempts != 1 || len(s.requests()) != 1 {
		t.Errorf("Attempts = %d, server saw %d; want 1", res.Attempts, len(s.requests()))
	}
}

// A Retry-After bigger than a Duration holds must also give up, not overflow into a retry.
func TestHugeRetryAfterGivesUp(t *testing.T) {
	s := newScript(t, reply{status: http.StatusServiceUnavailable, retryAfter: "99999999999999", body: `{}`})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := retry.Do(ctx, fast, s.call(s.client()))
	if !errors.Is(err, retry.ErrBudget) || res.Attempts != 1 || ctx.Err() != nil {
		t.Errorf("Do = %v after %d attempts (ctx %v); want ErrBudget after one, before the deadline", err, res.Attempts, ctx.Err())
	}
}

// Backoff must never sleep past the deadline: when the next attempt cannot start with
// MinAttempt left, Do gives up instead of sleeping.
func TestBackoffNeverSleepsPastDeadline(t *testing.T) {
	tests := []struct {
		name string
		p    retry.Policy
	}{
		// the backoff alone (jittered up to 1000 h) does not fit in 500 ms
		{"long backoff", retry.Policy{Attempts: 3, Base: 1000 * time.Hour, Max: 1000 * time.Hour}},
		// a tiny backoff fits, but then less than MinAttempt would be left for the attempt
		{"min attempt", retry.Policy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond, MinAttempt: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t, reply{status: http.StatusServiceUnavailable, body: `{}`})
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			res, err := retry.Do(ctx, tt.p, s.call(s.client()))
			if ctx.Err() != nil {
				t.Fatalf("Do returned after the deadline; it slept into it")
			}
			if !errors.Is(err, retry.ErrBudget) || res.Attempts != 1 {
				t.Errorf("Do = %v after %d attempts; want ErrBudget after 1", err, res.Attempts)
			}
			if connectors.KindOf(err) != connectors.KindUnavailable {
				t.Errorf("KindOf = %q; want the 503 underneath", connectors.KindOf(err))
			}
		})
	}
}

func TestCancelWhileWaitingStopsAtOnce(t *testing.T) {
	s := newScript(t, reply{status: http.StatusServiceUnavailable, retryAfter: "30", body: `{}`})
	ctx, cancel := context.WithCancel(context.Background()) // no deadline: the wait fits any budget
	done := make(chan struct{})
	var res retry.Result
	var err error
	go func() {
		defer close(done)
		res, err = retry.Do(ctx, fast, s.call(s.client()))
	}()
	for len(s.requests()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let Do start waiting out the 30 s
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Do kept waiting after its context was cancelled")
	}
	if res.Attempts != 1 || len(s.requests()) != 1 {
		t.Errorf("Attempts = %d, server saw %d; want 1", res.Attempts, len(s.requests()))
	}
	if connectors.KindOf(err) != connectors.KindUnavailable {
		t.Errorf("Do = %v; want the last attempt's error", err)
	}
}

func TestCancelDuringAttemptIsNotRetried(t *testing.T) {
	s := newScript(t, reply{hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(s.requests()) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	res, err := retry.Do(ctx, fast, s.call(s.client()))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v; want context.Canceled underneath", err)
	}
	if res.Attempts != 1 || len(s.requests()) != 1 {
		t.Errorf("Attempts = %d, server saw %d; a cancelled caller must not be retried for", res.Attempts, len(s.requests()))
	}
	if !strings.Contains(err.Error(), "telemetry read telemetry") {
		t.Errorf("error %q does not say which call failed", err)
	}
}
