package main

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/localstack"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
)

func init() {
	addScenario(scenario{order: 45, title: "ServiceNow allows 20 requests a minute: a burst of 300 wrap-ups stays inside it, what does not fit is queued, ServiceNow refuses nothing", run: rateLimitBurst})
}

func rateLimitBurst(d *demo) error {
	const limit, burst, parallel = 20, 300, 20
	sn := d.st.ServiceNow()
	before := d.st.Overrides()
	with := localstack.Overrides{Parameters: map[string]string{"ServiceNowRateLimitPerMinute": fmt.Sprint(limit)}, Env: before.Env}
	for k, v := range before.Parameters {
		with.Parameters[k] = v
	}
	d.st.Reconfigure(with)
	sn.RateLimit(limit, time.Minute)
	defer func() {
		sn.RateLimit(0, 0)
		d.st.Reconfigure(before)
	}()
	d.say("ServiceNow", "the integration user's rate limit rule allows %d requests a minute; more are answered 429", limit)
	d.say("deployer", "redeploys with ServiceNowRateLimitPerMinute=%d: every function shares that limit through DynamoDB", limit)

	callsBefore := len(sn.Received("/api/now"))
	type answer struct {
		status, reason string
		took           time.Duration
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
				_, out, _, _, err := d.call("/escalations", localstack.LocalAPIKey, nil, encode(map[string]any{
					"conversationId": fmt.Sprintf("6e1f4a2b-9c3d-4e5f-a617-%012d", 3000+i), "trigger": "wrap_up", "target": "servicenow",
					"customerName": fmt.Sprintf("Caller %d", i), "wrapUpCode": "VPN down", "callerSysId": localstack.ServiceNowCallerSysID,
				}))
				a := answer{took: time.Since(t0)}
				if err != nil {
					a.status = "error: " + err.Error()
				} else {
					a.status, _ = out["status"].(string)
					a.reason, _ = out["reason"].(string)
				}
				answers[i] = a
			}
		}()
	}
	for i := range burst {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)

	counts := map[string]int{}
	var took []time.Duration
	for _, a := range answers {
		key := a.status
		if a.reason != "" {
			key += " (" + a.reason + ")"
		}
		counts[key]++
		took = append(took, a.took)
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	var at []time.Time
	for _, r := range sn.Received("/api/now")[callsBefore:] {
		at = append(at, r.At)
	}
	busiest, _ := ratelimit.Busiest(at, time.Minute)
	d.say("Genesys", "%d wrap-up escalations in %s, %d at a time", burst, elapsed.Round(time.Millisecond), parallel)
	d.say("cxbridge", "answers: %s; slowest answer %s (budget 6 s), median %s", summary(counts), took[len(took)-1].Round(time.Millisecond), took[len(took)/2].Round(time.Millisecond))
	d.say("ServiceNow", "received %d requests, busiest minute %d (limit %d), answered 429 %d times", len(at), busiest, limit, sn.RateLimited())
	d.check(busiest <= limit && sn.RateLimited() == 0, "ServiceNow's busiest minute held %d requests and it refused %d; the limit is %d", busiest, sn.RateLimited(), limit)
	d.check(took[len(took)-1] <= 7*time.Second, "the slowest answer took %s; the budget is 6 s", took[len(took)-1])
	d.check(counts["created"] > 0 && counts["created"]+counts["queued (rate_limited)"] == burst, "want some created and the rest queued as rate_limited, got %v", counts)
	return nil
}
