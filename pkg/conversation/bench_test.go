package conversation_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
)

// BenchmarkInbound measures one inbound message end to end (MessageBird's signed POST, the
// Lambda handler, DynamoDB Local, the Jira fake) and compares a burst of 8 messages from one
// contact, which the lease serialises, with 8 messages from 8 contacts, which run in parallel.
//
//	go test -run '^$' -bench BenchmarkInbound -benchtime 40x ./pkg/conversation/
func BenchmarkInbound(b *testing.B) {
	b.Run("sequential-one-contact", func(b *testing.B) {
		w := newWorld(b)
		w.mb.Receive(messagebirdtest.Inbound{MSISDN: janeNumber, Text: "first"}) //nolint:errcheck // warm-up
		before := len(w.jira.Received(""))
		b.ResetTimer()
		for i := range b.N {
			d, err := w.mb.Receive(messagebirdtest.Inbound{MSISDN: janeNumber, Text: fmt.Sprintf("message %d", i)})
			if err != nil || d.Status != http.StatusOK {
				b.Fatalf("%v %d %s", err, d.Status, d.Response)
			}
		}
		b.ReportMetric(float64(len(w.jira.Received(""))-before)/float64(b.N), "jira-calls/msg")
	})
	for _, c := range []struct {
		name     string
		contacts int
	}{{"burst-8-one-contact", 1}, {"burst-8-eight-contacts", 8}} {
		b.Run(c.name, func(b *testing.B) {
			w := newWorld(b)
			for k := range c.contacts {
				w.mb.Receive(messagebirdtest.Inbound{MSISDN: fmt.Sprintf("+3161000000%d", k), Text: "first"}) //nolint:errcheck // warm-up
			}
			b.ResetTimer()
			for i := range b.N {
				var wg sync.WaitGroup
				for j := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						d, err := w.mb.Receive(messagebirdtest.Inbound{MSISDN: fmt.Sprintf("+3161000000%d", j%c.contacts), Text: fmt.Sprintf("burst %d.%d", i, j)})
						if err != nil || d.Status != http.StatusOK {
							b.Errorf("%v %d %s", err, d.Status, d.Response)
						}
					}()
				}
				wg.Wait()
			}
		})
	}
}
