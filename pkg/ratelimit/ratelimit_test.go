package ratelimit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

// clock is a fake clock shared by every "environment": DynamoDB Local stores whatever times
// the limiter writes, so tests move time instead of sleeping. It starts at the real time
// because DynamoDB Local deletes items whose TTL has passed, as DynamoDB does.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().Truncate(time.Millisecond).UnixNano()) // the store keeps milliseconds
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// generous store timeout: DynamoDB Local on a busy 2-core machine is slow, and these tests are
// about admission, not latency.
const storeTimeout = 10 * time.Second

func limiter(t testing.TB, db ratelimit.DB, table string, limit int, c *clock) *ratelimit.Limiter {
	t.Helper()
	return ratelimit.New(db, table, ratelimit.Settings{System: "servicenow", Limit: limit, Now: c.Now, StoreTimeout: storeTimeout})
}

// environments are separate limiters over one table, as separate Lambda environments are.
func environments(t testing.TB, n, limit int, c *clock) []*ratelimit.Limiter {
	l, tables := dynamotest.ForTest(t)
	out := make([]*ratelimit.Limiter, n)
	for i := range out {
		out[i] = limiter(t, l.Client(), tables.State, limit, c)
	}
	return out
}

func TestConcurrentEnvironmentsShareOneLimit(t *testing.T) {
	c := newClock()
	envs := environments(t, 8, 10, c)
	burst := func() (admitted, refused int) {
		var ok, no atomic.Int64
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch err := envs[i%len(envs)].Admit(context.Background()); {
				case err == nil:
					ok.Add(1)
				case connectors.HeldBack(err) && connectors.KindOf(err) == connectors.KindRateLimited:
					no.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		return int(ok.Load()), int(no.Load())
	}
	if ok, no := burst(); ok != 10 || no != 50 {
		t.Fatalf("first burst: %d admitted, %d refused; want 10 and 50", ok, no)
	}
	c.Advance(time.Minute - time.Millisecond)
	if ok, _ := burst(); ok != 0 {
		t.Fatalf("%d admitted before the window ended", ok)
	}
	c.Advance(time.Millisecond)
	if ok, no := burst(); ok != 10 || no != 50 {
		t.Fatalf("next window: %d admitted, %d refused; want 10 and 50", ok, no)
	}
}

// TestNoSlidingWindowHoldsMoreThanTheLimit sends a steady, uneven overload for ten windows and
// checks every window of one minute, wherever it starts, not only the calendar minutes; and
// that the limit is not wasted (the overload gets close to the limit in every minute).
func TestNoSlidingWindowHoldsMoreThanTheLimit(t *testing.T) {
	const limit, windows = 12, 10
	c := newClock()
	envs := environments(t, 3, limit, c)
	start := c.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	var admitted []time.Time
	for c.Now().Sub(start) < windows*time.Minute {
		// 2 to 6 calls at once, every 0-4 s: about 3 times the limit.
		n := 2 + rng.IntN(5)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := envs[i%len(envs)].Admit(context.Background()); err == nil {
					mu.Lock()
					admitted = append(admitted, c.Now())
					mu.Unlock()
				} else if !connectors.HeldBack(err) {
					t.Errorf("unexpected error: %v", err)
				}
			}()
		}
		wg.Wait()
		c.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
	}
	busiest, at := ratelimit.Busiest(admitted, time.Minute)
	t.Logf("%d calls admitted in %d minutes; busiest minute (from %s) holds %d, limit %d", len(admitted), windows, at.Sub(start), busiest, limit)
	if busiest > limit {
		t.Fatalf("a minute holds %d calls; the limit is %d", busiest, limit)
	}
	if len(admitted) < windows*limit*9/10 {
		t.Fatalf("only %d calls admitted in %d minutes of overload; want close to %d", len(admitted), windows, windows*limit)
	}
}

// upstream counts the requests that reached it.
func upstream(t testing.TB) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"result":[]}`)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestARefusedCallNeverLeavesAndLooksLikeAProvenRejection(t *testing.T) {
	c := newClock()
	l := environments(t, 1, 2, c)[0]
	srv, received := upstream(t)
	client := &connectors.Client{System: "servicenow", BaseURL: srv.URL, HTTP: l.Client(nil)}
	call := func() error {
		_, err := client.Do(context.Background(), connectors.Request{Op: "query incident", Method: http.MethodPost, Path: "/api/now/table/incident", Body: map[string]string{"a": "b"}}, nil)
		return err
	}
	for i := range 2 {
		if err := call(); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	c.Advance(20 * time.Second)
	err := call()
	var ce *connectors.Error
	if !errors.As(err, &ce) || ce.Kind != connectors.KindRateLimited || !ce.HeldBack || ce.Status != 0 || ce.System != "servicenow" || ce.Op != "query incident" {
		t.Fatalf("third call: %#v", err)
	}
	if wait, ok := ce.RetryAfter(); !ok || wait != 40*time.Second {
		t.Fatalf("Retry-After %s %v; want 40s (the first call's slot frees a minute after it)", wait, ok)
	}
	if !ce.Retryable() || !connectors.IsOutage(err) {
		t.Fatal("a refused call must read as retryable later, like a 429")
	}
	if n := received.Load(); n != 2 {
		t.Fatalf("the upstream received %d requests; want 2", n)
	}
	t.Logf("refused: %v", err)
}

func TestTheBreakerIgnoresCallsTheLimitHeldBack(t *testing.T) {
	c := newClock()
	local, tables := dynamotest.ForTest(t)
	l := limiter(t, local.Client(), tables.State, 1, c)
	b := breaker.New(local.Client(), tables.State, breaker.Settings{Name: "servicenow", Threshold: 1, CacheMaxAge: -1, Now: c.Now})
	srv, _ := upstream(t)
	client := &connectors.Client{System: "servicenow", BaseURL: srv.URL, HTTP: l.Client(nil)}
	call := func(ctx context.Context) error {
		_, err := client.Do(ctx, connectors.Request{Op: "get", Method: http.MethodGet, Path: "/"}, nil)
		return err
	}
	if err := b.Do(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := b.Do(context.Background(), call); !connectors.HeldBack(err) {
			t.Fatalf("want the limit's refusal, got %v", err)
		}
	}
	st, err := b.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.State != breaker.Closed || st.Failures != 0 {
		t.Fatalf("breaker %s with %d failures after refusals by the limit; want closed, 0", st.State, st.Failures)
	}
}

// counting wraps a DB and counts its calls.
type counting struct {
	ratelimit.DB
	calls atomic.Int64
}

func (c *counting) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	c.calls.Add(1)
	return c.DB.TransactWriteItems(ctx, in, opts...)
}

func (c *counting) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.calls.Add(1)
	return c.DB.UpdateItem(ctx, in, opts...)
}

func TestFailsOpenWithinItsTimeoutWhenTheStoreHangs(t *testing.T) {
	db := &counting{DB: dynamodb.New(dynamodb.Options{Region: "us-east-1", BaseEndpoint: aws.String(dynamotest.HungEndpoint(t)),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})}
	c := newClock()
	l := ratelimit.New(db, "StateTable", ratelimit.Settings{System: "jira", Limit: 5, Now: c.Now, StoreTimeout: 100 * time.Millisecond})
	m := observe.NewMetrics("cxbridge")
	ctx := observe.WithMetrics(context.Background(), m)
	start := time.Now()
	if err := l.Admit(ctx); err != nil {
		t.Fatalf("a hung store must let the call through: %v", err)
	}
	took := time.Since(start)
	calls := db.calls.Load()
	for range 3 { // within a second: the store is not asked again
		if err := l.Admit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if db.calls.Load() != calls {
		t.Fatalf("the store was asked again %d times within a second of failing", db.calls.Load()-calls)
	}
	c.Advance(time.Second)
	_ = l.Admit(ctx)
	if db.calls.Load() == calls {
		t.Fatal("the store was not asked again after a second")
	}
	if got := counts(t, m)["RateLimitStoreError"]; got != 5 {
		t.Fatalf("RateLimitStoreError %d; want 5 (every call that went through unlimited)", got)
	}
	// A hang guard, not a timing assertion: the timeout is 100 ms.
	if took > 5*time.Second {
		t.Fatalf("Admit took %s with a 100 ms store timeout", took)
	}
	t.Logf("a hung store cost the first call %s", took.Round(time.Millisecond))
}

func TestTheCallersDeadlineEndsTheWait(t *testing.T) {
	c := newClock()
	l := environments(t, 1, 5, c)[0]
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Admit(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("want the caller's cancellation, got %v", err)
	}
}

func TestNoLimitCostsNothing(t *testing.T) {
	if l := ratelimit.New(nil, "", ratelimit.Settings{System: "jira"}); l != nil {
		t.Fatal("a zero limit must build no limiter")
	}
	var l *ratelimit.Limiter
	if err := l.Admit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.Client(connectors.DefaultHTTPClient) != connectors.DefaultHTTPClient {
		t.Fatal("no limit must leave the client as it is")
	}
	ls := ratelimit.LoadConfig(config.FromMap(nil)).Limits(nil, "")
	if ls.Client("servicenow", nil) != connectors.DefaultHTTPClient {
		t.Fatal("an unlimited system must get the shared client")
	}
}

func TestConfigFromTheEnvironment(t *testing.T) {
	r := config.FromMap(map[string]string{"SERVICENOW_RATE_LIMIT_PER_MINUTE": "20", "JIRA_RATE_LIMIT_PER_MINUTE": "0"})
	c := ratelimit.LoadConfig(r)
	if r.Err() != nil || len(c.PerMinute) != 1 || c.PerMinute["servicenow"] != 20 || c.StoreTimeout != ratelimit.DefaultStoreTimeout {
		t.Fatalf("%v %v", c, r.Err())
	}
	r = config.FromMap(map[string]string{"GENESYS_RATE_LIMIT_PER_MINUTE": "-1", "TELEMETRY_RATE_LIMIT_PER_MINUTE": "lots"})
	ratelimit.LoadConfig(r)
	err := r.Err()
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("GENESYS_RATE_LIMIT_PER_MINUTE")) || !bytes.Contains([]byte(err.Error()), []byte("TELEMETRY_RATE_LIMIT_PER_MINUTE")) {
		t.Fatalf("want both variables named, got %v", err)
	}
}

func TestBusiest(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s ...float64) []time.Time {
		var out []time.Time
		for _, x := range s {
			out = append(out, t0.Add(time.Duration(x*float64(time.Second))))
		}
		return out
	}
	for _, tc := range []struct {
		times []time.Time
		want  int
	}{
		{nil, 0},
		{at(0), 1},
		{at(0, 59.999), 2},
		{at(0, 60), 1}, // a window is [t, t+1m)
		{at(50, 55, 61, 62, 109.9, 200), 5},
		{at(62, 50, 109.9, 55, 61), 5}, // any order
	} {
		if got, _ := ratelimit.Busiest(tc.times, time.Minute); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.times, got, tc.want)
		}
	}
}

func counts(t testing.TB, m *observe.Metrics) map[string]int {
	t.Helper()
	var buf bytes.Buffer
	if err := m.Flush(&buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for _, cw := range doc["_aws"].(map[string]any)["CloudWatchMetrics"].([]any) {
			for _, mm := range cw.(map[string]any)["Metrics"].([]any) {
				name := mm.(map[string]any)["Name"].(string)
				switch v := doc[name].(type) {
				case float64:
					out[name] += int(v)
				case []any:
					for _, x := range v {
						out[name] += int(x.(float64))
					}
				}
			}
		}
	}
	return out
}

// TestReservedWorkGetsAllItsCallsOrNone: under a flood, work that needs two calls (an
// escalation's read and create) takes both slots at once or none, so the limit is not spent on
// first halves; the second call costs no store round trip.
func TestReservedWorkGetsAllItsCallsOrNone(t *testing.T) {
	c := newClock()
	local, tables := dynamotest.ForTest(t)
	db := &counting{DB: local.Client()}
	envs := make([]*ratelimit.Limiter, 3)
	for i := range envs {
		envs[i] = limiter(t, db, tables.State, 10, c)
	}
	var whole, none, half atomic.Int64
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := envs[i%len(envs)]
			ctx := ratelimit.Reserve(context.Background(), 2)
			if err := l.Admit(ctx); err != nil {
				if !connectors.HeldBack(err) {
					t.Errorf("unexpected error: %v", err)
				}
				none.Add(1)
				return
			}
			if err := l.Admit(ctx); err != nil {
				half.Add(1)
				return
			}
			whole.Add(1)
		}()
	}
	wg.Wait()
	// At most 5 pairs fit in 10 calls; concurrent transactions on one slot may both be refused
	// (TransactionConflict), so fewer is possible, never a half.
	t.Logf("%d of 30 got both calls, %d only the first, %d none", whole.Load(), half.Load(), none.Load())
	if whole.Load() < 1 || whole.Load() > 5 || half.Load() != 0 || whole.Load()+none.Load() != 30 {
		t.Fatalf("%d got both calls, %d only the first, %d none; want 1-5 pairs and no half", whole.Load(), half.Load(), none.Load())
	}
	// The reservation's second call is served from the reservation.
	c.Advance(time.Minute)
	ctx := ratelimit.Reserve(context.Background(), 2)
	if err := envs[0].Admit(ctx); err != nil {
		t.Fatal(err)
	}
	calls := db.calls.Load()
	if err := envs[0].Admit(ctx); err != nil || db.calls.Load() != calls {
		t.Fatalf("second call: %v, %d store calls", err, db.calls.Load()-calls)
	}
	// A third call with the same context is an ordinary one.
	if err := envs[0].Admit(ctx); err != nil || db.calls.Load() == calls {
		t.Fatalf("third call: %v, %d store calls", err, db.calls.Load()-calls)
	}
}
