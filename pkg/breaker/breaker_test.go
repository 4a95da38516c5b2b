package breaker_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

// clock is a shared fake clock: every environment compares stored times against it, so tests
// move time instead of sleeping.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// upstream is a real failing dependency on 127.0.0.1. It answers status, counts requests, and
// when gated holds each request until released.
type upstream struct {
	srv     *httptest.Server
	client  *connectors.Client
	calls   atomic.Int64
	status  atomic.Int64
	delay   time.Duration
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func newUpstream(t testing.TB, status int) *upstream {
	u := &upstream{entered: make(chan struct{}, 100)}
	u.status.Store(int64(status))
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.calls.Add(1)
		select {
		case u.entered <- struct{}{}:
		default:
		}
		u.mu.Lock()
		gate := u.gate
		u.mu.Unlock()
		if gate != nil {
			<-gate
		}
		if u.delay > 0 {
			time.Sleep(u.delay)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(u.status.Load()))
		fmt.Fprint(w, `{}`)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.srv.Listener = ln
	u.srv.Start()
	t.Cleanup(func() {
		u.release()
		u.srv.Close()
	})
	u.client = &connectors.Client{System: "telemetry", BaseURL: u.srv.URL, HTTP: &http.Client{Timeout: 10 * time.Second}}
	return u
}

// call is one real request through the shared connector client.
func (u *upstream) call(ctx context.Context) error {
	_, err := u.client.Do(ctx, connectors.Request{Op: "read telemetry", Method: http.MethodGet, Path: "/telemetry"}, nil)
	return err
}

func (u *upstream) hold() {
	u.mu.Lock()
	u.gate = make(chan struct{})
	u.mu.Unlock()
	for len(u.entered) > 0 {
		<-u.entered
	}
}

func (u *upstream) release() {
	u.mu.Lock()
	if u.gate != nil {
		close(u.gate)
		u.gate = nil
	}
	u.mu.Unlock()
}

// env is one Lambda execution environment: its own Breaker (and cache) and its own metrics.
type env struct {
	id      string
	b       *breaker.Breaker
	metrics *observe.Metrics
	ctx     context.Context
}

func newEnvs(n int, db breaker.DB, table string, s breaker.Settings) []*env {
	out := make([]*env, n)
	for i := range out {
		s := s
		s.ID = fmt.Sprintf("env-%d", i)
		m := observe.NewMetrics("cxbridge")
		out[i] = &env{id: s.ID, b: breaker.New(db, table, s), metrics: m, ctx: observe.WithMetrics(context.Background(), m)}
	}
	return out
}

// counts flushes an environment's metrics and sums each metric's values.
func (e *env) counts(t testing.TB) map[string]int {
	t.Helper()
	var buf bytes.Buffer
	if err := e.metrics.Flush(&buf, time.Now()); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		aws := doc["_aws"].(map[string]any)
		for _, cw := range aws["CloudWatchMetrics"].([]any) {
			for _, m := range cw.(map[string]any)["Metrics"].([]any) {
				name := m.(map[string]any)["Name"].(string)
				switch v := doc[name].(type) {
				case float64:
					out[name] += int(v)
				case []any:
					for _, x := range v {
						out[name] += int(x.(float64))
					}
				}
				if doc["Dependency"] != "telemetry" {
					t.Errorf("metric %s has Dependency %v", name, doc["Dependency"])
				}
			}
		}
	}
	return out
}

// settings are for the coordination tests. Their store client is DynamoDB Local's unbounded
// test client on purpose: on a loaded machine it can take longer than the production bound, and
// a breaker that (correctly) fails open would then hide the coordination under test. Fail-open
// has its own tests, through the bounded client.
func settings(c *clock) breaker.Settings {
	return breaker.Settings{Name: "telemetry", Threshold: 5, OpenFor: 300 * time.Millisecond, ProbeLease: 2 * time.Second, Now: c.Now}
}

func state(t testing.TB, b *breaker.Breaker) breaker.Snapshot {
	t.Helper()
	s, err := b.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func isOpen(err error) (*breaker.OpenError, bool) {
	var oe *breaker.OpenError
	return oe, errors.As(err, &oe) && errors.Is(err, breaker.ErrOpen)
}

func TestConcurrentEnvironmentsOpenOnceAndProbeOnce(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusServiceUnavailable)
	up.delay = 5 * time.Millisecond // calls overlap, as they do in a fleet
	s := settings(c)                // default CacheMaxAge (1 s): the bound must hold with it
	envs := newEnvs(8, local.Client(), tables.State, s)

	// Phase 1: every environment hammers the failing dependency until it is rejected.
	var wg sync.WaitGroup
	lastErr := make([]error, len(envs))
	for i, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 50; n++ {
				err := e.b.Do(e.ctx, up.call)
				lastErr[i] = err
				if errors.Is(err, breaker.ErrOpen) {
					return
				}
				if connectors.KindOf(err) != connectors.KindUnavailable {
					t.Errorf("%s: call %d: %v; want a 503 *connectors.Error", e.id, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	calls := up.calls.Load()
	t.Logf("phase 1: %d upstream calls with threshold %d and %d environments", calls, s.Threshold, len(envs))
	if calls < int64(s.Threshold) || calls > int64(s.Threshold+len(envs)) {
		t.Errorf("upstream calls = %d; want between threshold %d and threshold + in-flight %d", calls, s.Threshold, s.Threshold+len(envs))
	}
	for i, err := range lastErr {
		if oe, ok := isOpen(err); !ok || oe.Dependency != "telemetry" {
			t.Errorf("%s ended with %v; want a rejection", envs[i].id, err)
		}
	}
	st := state(t, envs[0].b)
	opener := ""
	openers, rejected := 0, 0
	for _, e := range envs {
		m := e.counts(t)
		if m["BreakerOpened"] > 0 {
			openers += m["BreakerOpened"]
			opener = e.id
		}
		rejected += m["BreakerRejected"]
	}
	t.Logf("phase 1: %d environment(s) opened the breaker (%s), %d rejections", openers, opener, rejected)
	if openers != 1 || st.OpenedBy != opener {
		t.Errorf("%d environments opened it (state says %q); want exactly one", openers, st.OpenedBy)
	}
	if st.State != breaker.Open || !st.OpenUntil.Equal(c.Now().Add(s.OpenFor)) || st.Failures != 0 {
		t.Errorf("state %+v; want OPEN until now+OpenFor with failures reset", st)
	}
	if rejected != len(envs) {
		t.Errorf("%d rejections counted; want one per environment", rejected)
	}

	// Still open: nobody reaches the dependency.
	before := up.calls.Load()
	for _, e := range envs {
		if _, ok := isOpen(e.b.Do(e.ctx, up.call)); !ok {
			t.Fatalf("%s was let through while open", e.id)
		}
	}
	if up.calls.Load() != before {
		t.Fatal("an open breaker let a call through")
	}

	// Phase 2: after OpenFor exactly one probe reaches the (still failing) dependency, the
	// others are rejected while it is out, and its failure opens the breaker again.
	c.Advance(s.OpenFor)
	probe := probeRound(t, envs, up, http.StatusServiceUnavailable)
	st = state(t, envs[0].b)
	if st.State != breaker.Open || st.OpenedBy != envs[probe].id || !st.OpenUntil.Equal(c.Now().Add(s.OpenFor)) {
		t.Errorf("after a failed probe: %+v; want OPEN again for OpenFor, opened by the probe %s", st, envs[probe].id)
	}
	if m := envs[probe].counts(t); m["BreakerOpened"] != 1 || m["BreakerProbe"] != 1 {
		t.Errorf("probe environment metrics %v; want BreakerProbe 1 and BreakerOpened 1", m)
	}

	// Phase 3: the dependency recovers; the next probe closes the breaker.
	c.Advance(s.OpenFor)
	probe = probeRound(t, envs, up, http.StatusOK)
	st = state(t, envs[0].b)
	if st.State != breaker.Closed || st.Failures != 0 {
		t.Errorf("after a successful probe: %+v; want CLOSED with no failures", st)
	}
	if m := envs[probe].counts(t); m["BreakerClosed"] != 1 {
		t.Errorf("probe environment metrics %v; want BreakerClosed 1", m)
	}
	// Environments that cached "a probe is out" see CLOSED once their cache ages out.
	c.Advance(time.Second)
	before = up.calls.Load()
	for _, e := range envs {
		if err := e.b.Do(e.ctx, up.call); err != nil {
			t.Errorf("%s after close: %v", e.id, err)
		}
	}
	if n := up.calls.Load() - before; n != int64(len(envs)) {
		t.Errorf("%d calls reached the recovered dependency; want %d", n, len(envs))
	}
}

// probeRound lets every environment call at once while the dependency holds each request,
// checks that exactly one call (the probe) reaches it and all others are rejected, then lets
// the probe finish with status. It returns the probe's environment index.
func probeRound(t *testing.T, envs []*env, up *upstream, status int) int {
	t.Helper()
	for _, e := range envs {
		e.counts(t) // start the round's metrics afresh
	}
	up.status.Store(int64(status))
	up.hold()
	before := up.calls.Load()
	type result struct {
		i   int
		err error
	}
	results := make(chan result, len(envs))
	start := make(chan struct{})
	for i, e := range envs {
		go func() {
			<-start
			results <- result{i, e.b.Do(e.ctx, up.call)}
		}()
	}
	close(start)
	// Collect the rejections while the probe is held upstream.
	rejectedBy := map[int]bool{}
	safety := time.After(30 * time.Second) // a hang guard, not a timing assertion
	for len(rejectedBy) < len(envs)-1 {
		select {
		case r := <-results:
			oe, ok := isOpen(r.err)
			if !ok {
				up.release()
				t.Fatalf("%s: %v while a probe is out; want a rejection", envs[r.i].id, r.err)
			}
			if oe.State != breaker.HalfOpen || oe.Until.IsZero() {
				t.Errorf("%s: rejection %+v; want HALF_OPEN with a retry time", envs[r.i].id, oe)
			}
			rejectedBy[r.i] = true
		case <-safety:
			up.release()
			t.Fatalf("only %d rejections while the probe is out", len(rejectedBy))
		}
	}
	select {
	case <-up.entered:
	case <-safety:
		t.Fatal("the probe never reached the dependency")
	}
	if n := up.calls.Load() - before; n != 1 {
		up.release()
		t.Fatalf("%d calls reached the dependency after OpenFor; want exactly one probe", n)
	}
	probe := -1
	for i := range envs {
		if !rejectedBy[i] {
			probe = i
		}
	}
	if st := state(t, envs[0].b); st.State != breaker.HalfOpen || !strings.HasPrefix(st.ProbeOwner, envs[probe].id+"#") {
		t.Errorf("while probing: %+v; want HALF_OPEN owned by %s", st, envs[probe].id)
	}
	up.release()
	r := <-results
	if r.i != probe {
		t.Fatalf("result from %d; want the probe %d", r.i, probe)
	}
	if (status == http.StatusOK) != (r.err == nil) {
		t.Fatalf("probe returned %v for status %d", r.err, status)
	}
	return probe
}

// A failure this environment sees drops its cached state: here env-0's cache still says
// CLOSED (1 failure) when env-1 opens the breaker, and env-0 must not call again on it.
func TestFailureDropsTheCache(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusServiceUnavailable)
	s := settings(c)
	s.Threshold = 2
	envs := newEnvs(2, local.Client(), tables.State, s)
	a, b := envs[0], envs[1]
	_ = a.b.Do(a.ctx, up.call) // failures 1; a's cache would say CLOSED
	_ = b.b.Do(b.ctx, up.call) // failures 2: b opens it
	if st := state(t, b.b); st.State != breaker.Open || st.OpenedBy != b.id {
		t.Fatalf("state %+v; want opened by %s", st, b.id)
	}
	if _, ok := isOpen(a.b.Do(a.ctx, up.call)); !ok {
		t.Fatal("env-0 called on its cached CLOSED after seeing a failure")
	}
	if n := up.calls.Load(); n != 2 {
		t.Fatalf("%d upstream calls; want 2", n)
	}
}

func TestNeutralErrorsNeitherCountNorReset(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusNotFound)
	e := newEnvs(1, local.Client(), tables.State, settings(c))[0]
	run := func(status, n int) {
		t.Helper()
		up.status.Store(int64(status))
		for i := 0; i < n; i++ {
			err := e.b.Do(e.ctx, up.call)
			if err == nil || errors.Is(err, breaker.ErrOpen) {
				t.Fatalf("status %d call %d: %v; want the dependency's error", status, i, err)
			}
		}
	}
	run(http.StatusNotFound, 10)
	run(http.StatusBadRequest, 5)
	run(http.StatusUnauthorized, 5)
	run(http.StatusForbidden, 5)
	if st := state(t, e.b); st.State != breaker.Closed || st.Failures != 0 {
		t.Fatalf("after 25 neutral errors: %+v; want CLOSED, no failures", st)
	}
	run(http.StatusServiceUnavailable, 3)
	run(http.StatusTooManyRequests, 1) // 429 is an outage too
	run(http.StatusNotFound, 5)        // neutral: the four failures stay
	if st := state(t, e.b); st.Failures != 4 {
		t.Fatalf("failures = %d after 4 outages and 5 neutral errors; want 4", st.Failures)
	}
	run(http.StatusBadGateway, 1)
	if st := state(t, e.b); st.State != breaker.Open {
		t.Fatalf("after the fifth consecutive outage: %+v; want OPEN", st)
	}
}

func TestSuccessResetsTheCount(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusServiceUnavailable)
	e := newEnvs(1, local.Client(), tables.State, settings(c))[0]
	for round := 0; round < 3; round++ {
		up.status.Store(http.StatusServiceUnavailable)
		for i := 0; i < 4; i++ {
			_ = e.b.Do(e.ctx, up.call)
		}
		if st := state(t, e.b); st.Failures != 4 {
			t.Fatalf("round %d: failures = %d; want 4", round, st.Failures)
		}
		up.status.Store(http.StatusOK)
		if err := e.b.Do(e.ctx, up.call); err != nil {
			t.Fatal(err)
		}
		if st := state(t, e.b); st.State != breaker.Closed || st.Failures != 0 {
			t.Fatalf("round %d after a success: %+v; want failures reset", round, st)
		}
	}
}

// Healthy path: with the cache, an environment reads the state at most once per CacheMaxAge
// and writes nothing.
func TestHealthyPathReadsOncePerCacheAge(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusOK)
	counter := &countingDB{DB: local.Client()}
	b := breaker.New(counter, tables.State, settings(c))
	for i := 0; i < 20; i++ {
		if err := b.Do(context.Background(), up.call); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Second)
	for i := 0; i < 20; i++ {
		if err := b.Do(context.Background(), up.call); err != nil {
			t.Fatal(err)
		}
	}
	if g, u := counter.gets.Load(), counter.updates.Load(); g != 2 || u != 0 {
		t.Fatalf("40 healthy calls over 2 cache periods made %d reads and %d writes; want 2 and 0", g, u)
	}
}

type countingDB struct {
	breaker.DB
	gets, updates atomic.Int64
}

func (c *countingDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.gets.Add(1)
	return c.DB.GetItem(ctx, in, o...)
}

func (c *countingDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	c.updates.Add(1)
	return c.DB.UpdateItem(ctx, in, o...)
}

func TestNeutralProbeReleasesTheLease(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusServiceUnavailable)
	s := settings(c)
	s.Threshold = 1
	envs := newEnvs(2, local.Client(), tables.State, s)
	_ = envs[0].b.Do(envs[0].ctx, up.call) // opens
	c.Advance(s.OpenFor)
	up.status.Store(http.StatusNotFound)
	before := up.calls.Load()
	if err := envs[0].b.Do(envs[0].ctx, up.call); connectors.KindOf(err) != connectors.KindNotFound {
		t.Fatalf("probe: %v; want the 404", err)
	}
	st := state(t, envs[0].b)
	if st.State != breaker.HalfOpen || st.ProbeOwner != "" || st.ProbeUntil.After(c.Now()) {
		t.Fatalf("after a neutral probe: %+v; want HALF_OPEN with the lease released", st)
	}
	// Without the clock moving, the next caller becomes the probe.
	up.status.Store(http.StatusOK)
	if err := envs[1].b.Do(envs[1].ctx, up.call); err != nil {
		t.Fatalf("second probe: %v", err)
	}
	if n := up.calls.Load() - before; n != 2 {
		t.Fatalf("%d calls; want the neutral probe and the next one", n)
	}
	if st := state(t, envs[0].b); st.State != breaker.Closed {
		t.Fatalf("after the second probe succeeded: %+v", st)
	}
}

func TestExpiredProbeLeaseElectsAnother(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusServiceUnavailable)
	s := settings(c)
	s.Threshold = 1
	envs := newEnvs(3, local.Client(), tables.State, s)
	_ = envs[0].b.Do(envs[0].ctx, up.call)
	c.Advance(s.OpenFor)
	first, err := envs[0].b.Allow(envs[0].ctx)
	if err != nil || !first.Probe() {
		t.Fatalf("first Allow after OpenFor: %v, probe=%v", err, first.Probe())
	}
	if _, ok := isOpen(envs[1].b.Do(envs[1].ctx, up.call)); !ok {
		t.Fatal("a second caller got through while the probe is out")
	}
	// The probe's environment died (no Done). After the lease another caller probes.
	c.Advance(s.ProbeLease)
	second, err := envs[2].b.Allow(envs[2].ctx)
	if err != nil || !second.Probe() {
		t.Fatalf("Allow after the lease expired: %v, probe=%v", err, second.Probe())
	}
	first.Done(envs[0].ctx, nil) // too late: must not close the breaker under the new probe
	if st := state(t, envs[0].b); st.State != breaker.HalfOpen || !strings.HasPrefix(st.ProbeOwner, "env-2#") {
		t.Fatalf("after the stale probe reported: %+v; want the new probe's lease intact", st)
	}
	second.Done(envs[2].ctx, &connectors.Error{System: "telemetry", Status: 503, Kind: connectors.KindUnavailable})
	if st := state(t, envs[0].b); st.State != breaker.Open || st.OpenedBy != "env-2" {
		t.Fatalf("after the new probe failed: %+v; want OPEN by env-2", st)
	}
}

func TestOpenerThatDiedIsReplaced(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusOK)
	e := newEnvs(1, local.Client(), tables.State, settings(c))[0]
	// An environment counted the fifth failure and died before its opening write.
	_, err := local.Client().PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(tables.State),
		Item: map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "BREAKER#telemetry"}, "sk": &types.AttributeValueMemberS{Value: "STATE"},
			"state": &types.AttributeValueMemberS{Value: "CLOSED"}, "failures": &types.AttributeValueMemberN{Value: "5"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := isOpen(e.b.Do(e.ctx, up.call)); !ok || up.calls.Load() != 0 {
		t.Fatal("a breaker at its threshold let a call through")
	}
	if st := state(t, e.b); st.State != breaker.Open || st.OpenedBy != e.id {
		t.Fatalf("state %+v; want opened by the next caller", st)
	}
	if m := e.counts(t); m["BreakerOpened"] != 1 {
		t.Fatalf("metrics %v", m)
	}
}

func TestForceOpenAndClear(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusServiceUnavailable)
	s := settings(c)
	s.Threshold = 1
	envs := newEnvs(2, local.Client(), tables.State, s)
	operator := envs[0]
	if err := operator.b.ForceOpen(operator.ctx, "major incident INC0012345", time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, e := range envs {
		err := e.b.Do(e.ctx, up.call)
		oe, ok := isOpen(err)
		if !ok || !oe.Forced || oe.Reason != "major incident INC0012345" || !oe.Until.IsZero() {
			t.Fatalf("%s while forced: %v; want a forced rejection with the reason", e.id, err)
		}
	}
	if up.calls.Load() != 0 {
		t.Fatal("a forced-open breaker let a call through")
	}
	// Forced past open_until: no probe is elected.
	if err := operator.b.Clear(operator.ctx); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second)                 // env-1 cached the forced state; Clear reaches it within CacheMaxAge
	_ = envs[1].b.Do(envs[1].ctx, up.call) // opens (threshold 1)
	if err := operator.b.ForceOpen(operator.ctx, "still down", time.Time{}); err != nil {
		t.Fatal(err)
	}
	c.Advance(s.OpenFor + time.Second)
	for _, e := range envs {
		if oe, ok := isOpen(e.b.Do(e.ctx, up.call)); !ok || !oe.Forced {
			t.Fatalf("%s: want a forced rejection after open_until", e.id)
		}
	}
	if st := state(t, operator.b); st.State != breaker.Open || !st.Forced || st.ForcedReason != "still down" {
		t.Fatalf("state %+v; want OPEN (no probe) and forced", st)
	}
	if up.calls.Load() != 1 {
		t.Fatalf("%d upstream calls; want only the one that opened it", up.calls.Load())
	}
	// Clear restores normal behaviour: here the due probe goes through and closes it.
	if err := operator.b.Clear(operator.ctx); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Second) // other environments' caches age out
	up.status.Store(http.StatusOK)
	if err := envs[1].b.Do(envs[1].ctx, up.call); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
	if st := state(t, operator.b); st.State != breaker.Closed || st.Forced {
		t.Fatalf("after Clear and a successful probe: %+v", st)
	}
	// A forced open with an end lapses by itself.
	if err := operator.b.ForceOpen(operator.ctx, "maintenance", c.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if oe, ok := isOpen(envs[0].b.Do(envs[0].ctx, up.call)); !ok || !oe.Until.Equal(c.Now().Add(time.Minute)) {
		t.Fatal("want a forced rejection until the end given")
	}
	c.Advance(time.Minute)
	if err := envs[0].b.Do(envs[0].ctx, up.call); err != nil {
		t.Fatalf("after the forced period: %v", err)
	}
}

// unreachable returns a DynamoDB client for an endpoint nothing listens on.
func unreachable(t *testing.T) *dynamodb.Client {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return clientFor("http://" + addr)
}

// hung returns a DynamoDB client for an endpoint that accepts connections and never answers.
func hung(t *testing.T) *dynamodb.Client { return clientFor(dynamotest.HungEndpoint(t)) }

// clientFor is the client a function gets (pkg/store), with a 100 ms cap per call.
func clientFor(endpoint string) *dynamodb.Client {
	return store.NewDynamoDB(aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", ""),
	}, store.Bounds{CallTimeout: 100 * time.Millisecond})
}

func TestFailsOpenWhenTheStoreIsDown(t *testing.T) {
	for name, db := range map[string]func(*testing.T) *dynamodb.Client{"closed port": unreachable, "hung endpoint": hung} {
		t.Run(name, func(t *testing.T) {
			up := newUpstream(t, http.StatusServiceUnavailable)
			s := breaker.Settings{Name: "telemetry", Threshold: 2, CacheMaxAge: -1}
			e := newEnvs(1, db(t), "StateTable-unreachable", s)[0]
			// The caller has 30 s; a store call that ignored the client's bound would use it all.
			ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
			defer cancel()
			var slowest time.Duration
			for i := 0; i < 5; i++ {
				began := time.Now()
				err := e.b.Do(ctx, up.call)
				took := time.Since(began)
				slowest = max(slowest, took)
				if took > 5*time.Second {
					t.Fatalf("call %d took %s: the store client's bound (100 ms) did not hold", i, took)
				}
				if connectors.KindOf(err) != connectors.KindUnavailable {
					t.Fatalf("call %d: %v; want the dependency's own 503 (fail open, never trip)", i, err)
				}
			}
			t.Logf("slowest call with the store down: %s (store calls bounded at 100 ms)", slowest)
			if n := up.calls.Load(); n != 5 {
				t.Fatalf("%d calls reached the dependency; want all 5", n)
			}
			if m := e.counts(t); m["BreakerStoreError"] != 5 {
				t.Fatalf("metrics %v; want BreakerStoreError for every read without a cache", m)
			}
			if _, err := e.b.State(ctx); err == nil {
				t.Fatal("State: want the store's error")
			}
			if err := e.b.ForceOpen(ctx, "x", time.Time{}); err == nil {
				t.Fatal("ForceOpen: want the store's error")
			}
		})
	}
}

// With the default cache, a down store is asked once per CacheMaxAge, not on every call.
func TestDownStoreIsAskedOncePerCacheAge(t *testing.T) {
	c := newClock()
	up := newUpstream(t, http.StatusOK)
	s := breaker.Settings{Name: "telemetry", Now: c.Now}
	e := newEnvs(1, hung(t), "StateTable-hung", s)[0]
	for i := 0; i < 10; i++ {
		if err := e.b.Do(e.ctx, up.call); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Second)
	if err := e.b.Do(e.ctx, up.call); err != nil {
		t.Fatal(err)
	}
	if m := e.counts(t); m["BreakerStoreError"] != 2 {
		t.Fatalf("metrics %v; want 2 store errors (one per cache period)", m)
	}
}

// The real clock, end to end: open, wait OpenFor, probe, close.
func TestRealClock(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	up := newUpstream(t, http.StatusServiceUnavailable)
	s := breaker.Settings{Name: "telemetry", Threshold: 2, OpenFor: 300 * time.Millisecond}
	e := newEnvs(1, local.Client(), tables.State, s)[0]
	for i := 0; i < 2; i++ {
		_ = e.b.Do(e.ctx, up.call)
	}
	err := e.b.Do(e.ctx, up.call)
	oe, ok := isOpen(err)
	if !ok {
		t.Fatalf("third call: %v; want rejected", err)
	}
	if !strings.Contains(err.Error(), "telemetry: circuit breaker open; retry after ") {
		t.Errorf("message %q", err)
	}
	time.Sleep(time.Until(oe.Until) + 10*time.Millisecond)
	up.status.Store(http.StatusOK)
	if err := e.b.Do(e.ctx, up.call); err != nil {
		t.Fatalf("probe after OpenFor: %v", err)
	}
	if st := state(t, e.b); st.State != breaker.Closed {
		t.Fatalf("state %+v", st)
	}
}

func TestSettingsFromEnv(t *testing.T) {
	r := config.FromMap(map[string]string{"BREAKER_FAILURE_THRESHOLD": "3", "BREAKER_OPEN_SECONDS": "45", "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/22/[$LATEST]abc"})
	s := breaker.SettingsFromEnv(r, "jira")
	if r.Err() != nil || s.Name != "jira" || s.Threshold != 3 || s.OpenFor != 45*time.Second || s.ID != "2026/11/22/[$LATEST]abc" {
		t.Fatalf("%+v, %v", s, r.Err())
	}
	r = config.FromMap(nil)
	if s := breaker.SettingsFromEnv(r, "jira"); s.Threshold != 5 || s.OpenFor != 30*time.Second || r.Err() != nil {
		t.Fatalf("defaults: %+v, %v", s, r.Err())
	}
	r = config.FromMap(map[string]string{"BREAKER_FAILURE_THRESHOLD": "0"})
	breaker.SettingsFromEnv(r, "jira")
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "BREAKER_FAILURE_THRESHOLD") {
		t.Fatalf("threshold 0: %v; want an error naming the variable", err)
	}
}

// BenchmarkHealthyPath measures Allow+Done for a healthy dependency, against DynamoDB Local:
// with the default cache (a read per second) and without (a read per call).
func BenchmarkHealthyPath(b *testing.B) {
	local, tables := dynamotest.ForTest(b)
	for _, bc := range []struct {
		name string
		age  time.Duration
	}{{"cached", 0}, {"uncached", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			br := breaker.New(local.Client(), tables.State, breaker.Settings{Name: "bench-" + bc.name, CacheMaxAge: bc.age})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				t, err := br.Allow(ctx)
				if err != nil {
					b.Fatal(err)
				}
				t.Done(ctx, nil)
			}
		})
	}
}

// A dependency's down time runs from the first open after a close, across the re-opens of failed
// probes, and every rejection says since when: how automatic outage detection tells a breaker
// that has stayed open for minutes from one that just opened.
func TestDownSinceSpansReopensUntilClosed(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	c := newClock()
	up := newUpstream(t, http.StatusServiceUnavailable)
	s := settings(c)
	s.Threshold = 1
	envs := newEnvs(2, local.Client(), tables.State, s)
	opened := c.Now()
	_ = envs[0].b.Do(envs[0].ctx, up.call) // opens
	if st := state(t, envs[0].b); !st.DownSince.Equal(opened) || !st.Down().Equal(opened) {
		t.Fatalf("after opening: %+v; want down since %s", st, opened)
	}
	c.Advance(s.OpenFor)
	_ = envs[0].b.Do(envs[0].ctx, up.call) // the probe fails: open again
	c.Advance(s.OpenFor / 2)
	oe, ok := isOpen(envs[1].b.Do(envs[1].ctx, up.call))
	if !ok || !oe.Since.Equal(opened) {
		t.Fatalf("rejection after a failed probe: %+v; want Since %s, the first open", oe, opened)
	}
	if st := state(t, envs[0].b); !st.DownSince.Equal(opened) || !st.OpenedAt.After(opened) {
		t.Fatalf("after the re-open: %+v; want DownSince kept and OpenedAt moved", st)
	}
	c.Advance(s.OpenFor)
	up.status.Store(http.StatusOK)
	if err := envs[1].b.Do(envs[1].ctx, up.call); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if st := state(t, envs[0].b); st.State != breaker.Closed || !st.DownSince.IsZero() {
		t.Fatalf("after the probe closed it: %+v; want no DownSince", st)
	}
	up.status.Store(http.StatusServiceUnavailable)
	reopened := c.Now()
	_ = envs[0].b.Do(envs[0].ctx, up.call)
	if oe, ok := isOpen(envs[0].b.Do(envs[0].ctx, up.call)); !ok || !oe.Since.Equal(reopened) {
		t.Fatalf("a new outage: %+v; want Since %s", oe, reopened)
	}
}
