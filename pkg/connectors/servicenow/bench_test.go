package servicenow_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
)

// The screen pop's critical path is one ServiceNow round trip: the user query and the incident
// query (dot-walking caller_id.phone, so it does not need the user's sys_id first) run at the
// same time. Against a fake with 50 ms per request, concurrent costs about 50 ms a lookup and
// sequential about 100 ms:
//
//	go test -run '^$' -bench Lookup -benchtime 20x ./pkg/connectors/servicenow/

const benchLatency = 50 * time.Millisecond

func benchWorld(b *testing.B) (*servicenow.Client, servicenow.Digits) {
	b.Helper()
	sn := servicenowtest.New(servicenowtest.Config{Username: "bench", Password: "pw", Latency: benchLatency})
	b.Cleanup(sn.Close)
	abel := sn.AddUser(servicenowtest.User{FirstName: "Abel", LastName: "Tuter", Phone: "+14155550100"})
	for i := 0; i < 5; i++ {
		sn.AddIncident(servicenowtest.Incident{CallerID: abel, ShortDescription: "issue", State: servicenow.StateInProgress})
	}
	c := servicenow.New(sn.URL(), newSecrets(secretID, `{"username":"bench","password":"pw"}`), secretID, nil)
	d, err := servicenow.PhoneDigits("tel:+14155550100")
	if err != nil {
		b.Fatal(err)
	}
	// Open two connections before timing, as a warm execution environment has.
	lookupConcurrent(b, c, d)
	return c, d
}

func queryUsers(ctx context.Context, c *servicenow.Client, d servicenow.Digits) ([]servicenow.User, error) {
	var users []servicenow.User
	err := c.Query(ctx, servicenow.TableUser, usersByPhone(d.Last(10)), servicenow.QueryOptions{Fields: servicenow.UserFields, Limit: 2}, &users)
	return users, err
}

func queryIncidents(ctx context.Context, c *servicenow.Client, d servicenow.Digits) ([]servicenow.Incident, error) {
	var incs []servicenow.Incident
	err := c.Query(ctx, servicenow.TableIncident, incidentsByCallerPhone(d.Last(10)),
		servicenow.QueryOptions{Fields: servicenow.IncidentFields, Limit: 3, Display: servicenow.DisplayAll}, &incs)
	return incs, err
}

func lookupConcurrent(b *testing.B, c *servicenow.Client, d servicenow.Digits) {
	ctx := context.Background()
	var wg sync.WaitGroup
	var users []servicenow.User
	var incs []servicenow.Incident
	var errU, errI error
	wg.Add(2)
	go func() { defer wg.Done(); users, errU = queryUsers(ctx, c, d) }()
	go func() { defer wg.Done(); incs, errI = queryIncidents(ctx, c, d) }()
	wg.Wait()
	if errU != nil || errI != nil || len(users) != 1 || len(incs) != 3 {
		b.Fatalf("users %d %v, incidents %d %v", len(users), errU, len(incs), errI)
	}
}

func lookupSequential(b *testing.B, c *servicenow.Client, d servicenow.Digits) {
	ctx := context.Background()
	users, err := queryUsers(ctx, c, d)
	if err != nil || len(users) != 1 {
		b.Fatalf("users %d %v", len(users), err)
	}
	incs, err := queryIncidents(ctx, c, d)
	if err != nil || len(incs) != 3 {
		b.Fatalf("incidents %d %v", len(incs), err)
	}
}

func reportLookup(b *testing.B, start time.Time, n int) {
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "ms/lookup")
}

func BenchmarkLookupConcurrent(b *testing.B) {
	c, d := benchWorld(b)
	n, start := 0, time.Now()
	for b.Loop() {
		if n == 0 {
			start = time.Now()
		}
		lookupConcurrent(b, c, d)
		n++
	}
	reportLookup(b, start, n)
}

func BenchmarkLookupSequential(b *testing.B) {
	c, d := benchWorld(b)
	n, start := 0, time.Now()
	for b.Loop() {
		if n == 0 {
			start = time.Now()
		}
		lookupSequential(b, c, d)
		n++
	}
	reportLookup(b, start, n)
}
