package escalation_test

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
)

// TestABurstOfWrapUpsStaysInsideServiceNowsRateLimit is seed 001's "Wall": 300 wrap-ups arrive
// at once, 20 at a time, against a ServiceNow that allows 20 requests per minute, with
// cxbridge's shared limit set to the same 20. The busiest minute at ServiceNow must hold at
// most 20 requests (ServiceNow never answers 429), every call must be answered within the
// escalation budget (plus a second, as the README promises), and what did not fit must be
// queued as rate_limited, nothing failed, and the breaker untouched.
func TestABurstOfWrapUpsStaysInsideServiceNowsRateLimit(t *testing.T) {
	const burst, parallel, limit = 300, 20, 20
	e := newEnv(t, with("SERVICENOW_RATE_LIMIT_PER_MINUTE", fmt.Sprint(limit)), with("ESCALATION_BUDGET_MS", "6000"))
	e.sn.RateLimit(limit, time.Minute)
	caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane", LastName: "Doe", Phone: "+14155550100"})

	type answer struct {
		res  escalation.Result
		took time.Duration
	}
	answers := make([]answer, burst)
	work := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				t0 := time.Now()
				c := e.post(body("conversationId", fmt.Sprintf("7a3c9e20-1b2d-4c5e-8f70-%012d", i), "trigger", "wrap_up",
					"customerName", fmt.Sprintf("Caller %d", i), "callerSysId", caller, "wrapUpCode", "E-mail not working"))
				if c.status != http.StatusOK {
					t.Errorf("call %d: %d %s", i, c.status, c.raw)
				}
				answers[i] = answer{c.res, time.Since(t0)}
			}
		}()
	}
	for i := range burst {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)

	statuses := map[string]int{}
	var took []time.Duration
	for _, a := range answers {
		key := a.res.Status
		if a.res.Reason != "" {
			key += "/" + a.res.Reason
		}
		statuses[key]++
		took = append(took, a.took)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	var at []time.Time
	for _, r := range e.sn.Received("/api/now") {
		at = append(at, r.At)
	}
	busiest, _ := ratelimit.Busiest(at, time.Minute)
	t.Logf("%d wrap-ups in %s, %d at a time: %v; ServiceNow received %d requests, busiest minute %d (limit %d), answered 429 %d times; answer time p50 %s, max %s",
		burst, elapsed.Round(time.Millisecond), parallel, statuses, len(at), busiest, limit, e.sn.RateLimited(),
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))

	if n := strings.Count(e.logs.String(), "rate limit state unavailable"); n > 0 {
		t.Logf("the limiter failed open %d times", n)
	}
	if busiest > limit || e.sn.RateLimited() != 0 {
		t.Fatalf("ServiceNow's busiest minute held %d requests and it refused %d; the limit is %d", busiest, e.sn.RateLimited(), limit)
	}
	if budget := 6*time.Second + time.Second; took[len(took)-1] > budget {
		t.Fatalf("the slowest answer took %s; every call must be answered within %s", took[len(took)-1], budget)
	}
	created := statuses[escalation.StatusCreated]
	queued := statuses[escalation.StatusQueued+"/"+escalation.ReasonRateLimited]
	// Each incident takes two calls (the conversation's incidents are read, then one is
	// created), reserved together: up to limit/2 incidents, and no call spent on a read whose
	// create was then refused.
	if created == 0 || created > limit/2 || created+queued != burst || 2*created != len(at) {
		t.Fatalf("want up to %d created with two calls each and the rest queued as rate_limited, got %v for %d requests", limit/2, statuses, len(at))
	}
	if n := len(e.stateItems("OUTBOX#ID")); n != queued {
		t.Fatalf("%d escalations in the outbox; want %d", n, queued)
	}
	b := breaker.New(e.db, e.tables.State, breaker.Settings{Name: escalation.ServiceNow})
	if st, err := b.State(t.Context()); err != nil || st.State != breaker.Closed || st.Failures != 0 {
		t.Fatalf("the breaker counted cxbridge's own refusals: %+v %v", st, err)
	}
}

// TestTheRedriveHoldsATargetOnceItIsRateLimited: a refused item leaves the target's other items
// as they are for the next run, instead of each spending a call and a backoff step.
func TestTheRedriveHoldsATargetOnceItIsRateLimited(t *testing.T) {
	e := newEnv(t, with("SERVICENOW_RATE_LIMIT_PER_MINUTE", "2"))
	caller := e.sn.AddUser(servicenowtest.User{FirstName: "Jane", LastName: "Doe"})
	statuses := map[string]int{}
	for i := range 5 {
		c := e.post(body("conversationId", fmt.Sprintf("7a3c9e20-1b2d-4c5e-8f70-%012d", 900+i), "trigger", "wrap_up", "callerSysId", caller))
		statuses[c.res.Status+"/"+c.res.Reason]++
	}
	if statuses["created/"] != 1 || statuses["queued/rate_limited"] != 4 {
		t.Fatalf("want 1 created (2 calls) and 4 queued, got %v", statuses)
	}
	calls := len(e.sn.Received("/api/now"))
	e.clock.Jump(5 * time.Minute) // the items are due; the limit still remembers the last minute
	sum, _ := e.redrive()
	if sum.Due != 4 || sum.Rescheduled != 1 || sum.Held != 3 || sum.Delivered != 0 {
		t.Fatalf("want one item refused and three held, got %+v", sum)
	}
	if n := len(e.sn.Received("/api/now")); n != calls {
		t.Fatalf("ServiceNow received %d more requests; the limit was reached", n-calls)
	}
	if !strings.Contains(e.logs.String(), "not sent: cxbridge's shared rate limit of 2 calls per minute to servicenow is reached") {
		t.Fatal("the log does not say why the escalation was not sent")
	}
}
