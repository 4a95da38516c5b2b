package lookup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/lookup"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
)

// TestTheSharedRateLimitAnswersRateLimitedInTime: when cxbridge's own limit for ServiceNow is
// reached, the screen pop answers its documented degraded status at once, nothing reaches
// ServiceNow, and the breaker is not moved.
func TestTheSharedRateLimitAnswersRateLimitedInTime(t *testing.T) {
	e := newEnv(t)
	l := ratelimit.New(e.db, e.table, ratelimit.Settings{System: servicenow.System, Limit: 2, StoreTimeout: 3 * time.Second})
	e.svc.ServiceNow = servicenow.New(e.sn.URL(), e.secrets, "cxbridge/servicenow", l.Client(nil))
	e.sn.AddUser(servicenowtest.User{UserName: "abel.tuter", FirstName: "Abel", LastName: "Tuter", Phone: "+1 415 555 0100"})

	first, _ := e.lookup(t, `{"ani":"+14155550100"}`) // its two queries take the two calls of this minute
	if first.Status != lookup.StatusOK || !first.Found {
		t.Fatalf("first lookup: %+v", first)
	}
	_, _, before := e.calls()
	r, metrics := e.lookup(t, `{"ani":"+14155550100"}`)
	if r.Status != lookup.StatusUnavailable || r.Reason != lookup.ReasonRateLimited || r.Found {
		t.Fatalf("want unavailable/rate_limited, got %+v", r)
	}
	if r.LatencyMs > e.svc.Config.Timeout.Milliseconds() {
		t.Fatalf("answered in %d ms; the budget is %s", r.LatencyMs, e.svc.Config.Timeout)
	}
	if _, _, after := e.calls(); after != before {
		t.Fatalf("ServiceNow received %d requests over the limit", after-before)
	}
	if !strings.Contains(metrics, `"RateLimited"`) || !strings.Contains(metrics, `"LookupUnavailable"`) {
		t.Fatalf("metrics: %s", metrics)
	}
	st, err := breaker.New(e.db, e.table, breaker.Settings{Name: servicenow.System}).State(context.Background())
	if err != nil || st.State != breaker.Closed || st.Failures != 0 {
		t.Fatalf("breaker %+v %v", st, err)
	}
}
