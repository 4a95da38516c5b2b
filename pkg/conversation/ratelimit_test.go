package conversation_test

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird/messagebirdtest"
	"github.com/cxbridge/cxbridge/pkg/conversation"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
	"github.com/cxbridge/cxbridge/pkg/secrets"
)

// TestAMessageOverTheSharedLimitIsRedelivered: when cxbridge's own Jira limit is reached, the
// webhook answers 503 with reason jira_rate_limited and changes nothing, so MessageBird
// delivers it again; once the limit allows, the redelivery creates the request.
func TestAMessageOverTheSharedLimitIsRedelivered(t *testing.T) {
	w := newWorld(t)
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	const limit = 10
	l := ratelimit.New(w.db, w.table, ratelimit.Settings{System: jira.System, Limit: limit, Now: clock, StoreTimeout: 5 * time.Second})
	w.svc.Jira = jira.New(w.jira.URL(), secrets.New(w.secrets.Client()), "cxbridge/jira", l.Client(nil))
	for range limit { // other functions took this minute's calls
		if err := l.Admit(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	d, r := w.receive(messagebirdtest.Inbound{Text: "Jira is busy right now"})
	if d.Status != http.StatusServiceUnavailable || r.Status != conversation.StatusRetry || r.Reason != "jira_rate_limited" {
		t.Fatalf("want 503 jira_rate_limited, got %d %+v", d.Status, r)
	}
	if n := len(w.jira.Received("")); n != 0 {
		t.Fatalf("Jira received %d requests over the limit", n)
	}
	offset.Store(int64(time.Minute)) // a minute later the limit has room again
	again := w.mb.Replay(d)
	if again.Status != http.StatusOK {
		t.Fatalf("redelivery: %d %s", again.Status, again.Response)
	}
	w.settle()
	if w.jira.RequestCount() != 1 {
		t.Fatalf("%d requests after the redelivery; want 1", w.jira.RequestCount())
	}
}
