package lookup_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/lookup"
)

// The lookup's critical path is one ServiceNow round trip. With the fake answering every
// request after 50 ms, a whole lookup (breaker check, both queries, the caller -> conversation
// link in DynamoDB Local, assembling the answer) costs about 50 ms; the same code with its two
// queries forced one after the other costs about 100 ms. They run in the same process, side by
// side:
//
//	go test -run '^$' -bench 'Lookup' -benchtime 40x ./pkg/lookup/

const roundTrip = 50 * time.Millisecond

// serialised runs one ServiceNow call at a time: the sequential variant of the same lookup.
type serialised struct {
	lookup.ServiceNow
	mu sync.Mutex
}

func (s *serialised) Query(ctx context.Context, table servicenow.Table, q *servicenow.EncodedQuery, opt servicenow.QueryOptions, out any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ServiceNow.Query(ctx, table, q, opt, out)
}

func benchEnv(b *testing.B, sequential bool) *env {
	b.Helper()
	// The function logs a line per lookup; a benchmark's output should show the figures.
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	b.Cleanup(func() { slog.SetDefault(prev) })
	e := newEnv(b, func(c *lookup.Config, _ *breaker.Settings) { c.Timeout = 2 * time.Second })
	abel := e.sn.AddUser(servicenowtest.User{UserName: "abel.tuter", FirstName: "Abel", LastName: "Tuter", Phone: "(415) 555-0100"})
	for i := 0; i < 5; i++ {
		e.incident(abel, "issue", servicenow.StateInProgress, time.Duration(i)*time.Hour)
	}
	if sequential {
		e.svc.ServiceNow = &serialised{ServiceNow: e.svc.ServiceNow}
	}
	e.sn.SetLatency(roundTrip)
	// Warm up as a warm execution environment is: connections open, secret and breaker read.
	if r, _ := e.lookup(b, benchBody); !r.Found || r.IncidentCount != 3 {
		b.Fatalf("fixture: %+v", r)
	}
	return e
}

const benchBody = `{"ani":"tel:+14155550100","conversationId":"` + conv + `"}`

func benchLookup(b *testing.B, sequential, link bool) {
	e := benchEnv(b, sequential)
	ctx := context.Background()
	in := lookup.Input{ANI: apigw.LooseText{Text: "tel:+14155550100"}}
	if link {
		in.ConversationID = apigw.LooseText{Text: conv}
	}
	n, start := 0, time.Now()
	for b.Loop() {
		if n == 0 {
			start = time.Now()
		}
		if r := e.svc.Lookup(ctx, in); !r.Found || r.ConversationLinked != link {
			b.Fatalf("lookup failed: %+v", r)
		}
		n++
	}
	perLookup := time.Since(start) / time.Duration(n)
	b.ReportMetric(float64(perLookup.Microseconds())/1000, "ms/lookup")
	b.ReportMetric(float64(perLookup)/float64(roundTrip), "round-trips/lookup")
}

func BenchmarkLookupConcurrent(b *testing.B) { benchLookup(b, false, true) }

func BenchmarkLookupSequential(b *testing.B) { benchLookup(b, true, true) }

// Without a conversation id nothing is written to DynamoDB: the difference to
// BenchmarkLookupConcurrent is the link write, which here cannot hide behind the incident query
// because the fake answers both queries equally fast.
func BenchmarkLookupConcurrentNoLink(b *testing.B) { benchLookup(b, false, false) }
