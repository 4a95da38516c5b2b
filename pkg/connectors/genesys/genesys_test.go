package genesys_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys/genesystest"
)

// secrets is an in-memory connectors.SecretReader (the Secrets Manager path itself is tested in
// pkg/secrets against the wire-level fake).
type secrets struct {
	mu          sync.Mutex
	values      map[string]string
	invalidated int
}

func (s *secrets) JSON(_ context.Context, id string, v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return jsonUnmarshal(s.values[id], v)
}

func (s *secrets) Invalidate(string) {
	s.mu.Lock()
	s.invalidated++
	s.mu.Unlock()
}

func newClient(t *testing.T) (*genesys.Client, *genesystest.Server, *secrets) {
	t.Helper()
	fake := genesystest.New("client", "secret")
	t.Cleanup(fake.Close)
	sec := &secrets{values: map[string]string{"gc": `{"clientId":"client","clientSecret":"secret"}`}}
	return genesys.New(fake.URL(), fake.URL(), sec, "gc", nil), fake, sec
}

func TestTokenIsSharedAndRenewedOnceAfter401(t *testing.T) {
	c, fake, sec := newClient(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.ObserveQueues(ctx, []string{"q"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := fake.TokensIssued(); n != 1 {
		t.Fatalf("%d token exchanges for 10 concurrent calls; want 1", n)
	}
	fake.RevokeTokens()
	if _, err := c.ObserveQueues(ctx, []string{"q"}); err != nil {
		t.Fatalf("after revocation: %v", err)
	}
	if n := fake.TokensIssued(); n != 2 || sec.invalidated != 1 {
		t.Fatalf("tokens %d, secret invalidations %d; want one renewal that also rereads the secret", n, sec.invalidated)
	}
}

func TestWrongClientSecretIsUnauthorized(t *testing.T) {
	c, _, sec := newClient(t)
	sec.values["gc"] = `{"clientId":"client","clientSecret":"wrong"}`
	_, err := c.ObserveQueues(context.Background(), []string{"q"})
	if connectors.KindOf(err) != connectors.KindUnauthorized || connectors.IsOutage(err) {
		t.Fatalf("got %v; a bad secret is a credentials problem, not an outage", err)
	}
}

func TestObserveQueuesSumsQualifiers(t *testing.T) {
	c, fake, _ := newClient(t)
	fake.SetQueue("q1", genesystest.Queue{Idle: 2, Interacting: 3, Communicating: 1, NotResponding: 1, Waiting: 4})
	got, err := c.ObserveQueues(context.Background(), []string{"q1", "q-unknown"})
	if err != nil {
		t.Fatal(err)
	}
	if got["q1"] != (genesys.QueueObservation{OnQueueUsers: 7, Idle: 2, Waiting: 4}) {
		t.Fatalf("q1 = %+v", got["q1"])
	}
	if o, ok := got["q-unknown"]; !ok || o != (genesys.QueueObservation{}) {
		t.Fatalf("a queue missing from the answer must read as empty, got %+v %v", o, ok)
	}
}

func TestRateLimitCarriesRetryAfter(t *testing.T) {
	c, fake, _ := newClient(t)
	fake.Fail("/api/v2/analytics", genesystest.Failure{Status: 429, RetryAfter: 7, Times: 1})
	_, err := c.ObserveQueues(context.Background(), []string{"q"})
	var e *connectors.Error
	if !errors.As(err, &e) || e.Kind != connectors.KindRateLimited {
		t.Fatalf("got %v", err)
	}
	if d, ok := e.RetryAfter(); !ok || d != 7*time.Second {
		t.Fatalf("Retry-After %v %v", d, ok)
	}
}

func TestConversationPriorityAndAttributes(t *testing.T) {
	c, fake, _ := newClient(t)
	ctx := context.Background()
	fake.AddWaitingConversation("conv-1", "cust-1", "q-l1", 5)

	conv, err := c.GetConversation(ctx, "conv-1")
	if err != nil {
		t.Fatal(err)
	}
	acd, waiting := conv.Waiting()
	if !waiting || acd.Routing == nil || acd.Routing.Priority != 5 || acd.QueueID != "q-l1" {
		t.Fatalf("waiting=%v acd=%+v", waiting, acd)
	}
	if p, err := c.SetRoutingPriority(ctx, "conv-1", 100); err != nil || p != 100 {
		t.Fatalf("set priority: %d %v", p, err)
	}
	if err := c.SetParticipantAttributes(ctx, "conv-1", "cust-1", map[string]string{"cxbridge.ticketKey": "SUPP-7"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SetParticipantAttributes(ctx, "conv-1", "cust-1", map[string]string{"cxbridge.ticketUrl": "https://x/SUPP-7"}); err != nil {
		t.Fatal(err)
	}
	got, _ := fake.Conversation("conv-1")
	cust := got.Participants[0]
	if cust.Attributes["cxbridge.ticketKey"] != "SUPP-7" || cust.Attributes["cxbridge.ticketUrl"] == "" {
		t.Fatalf("attributes not merged: %v", cust.Attributes)
	}
	if got.Participants[1].Priority != 100 {
		t.Fatalf("priority %d", got.Participants[1].Priority)
	}

	fake.Answer("conv-1")
	conv, _ = c.GetConversation(ctx, "conv-1")
	if _, waiting := conv.Waiting(); waiting {
		t.Fatal("an answered conversation is not waiting")
	}
	if _, err := c.SetRoutingPriority(ctx, "conv-1", 200); connectors.KindOf(err) != connectors.KindRejected {
		t.Fatalf("priority on an answered conversation: %v", err)
	}
	if _, err := c.GetConversation(ctx, "nope"); connectors.KindOf(err) != connectors.KindNotFound {
		t.Fatalf("unknown conversation: %v", err)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
