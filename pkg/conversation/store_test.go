package conversation_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/conversation"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
)

func newStore(t *testing.T) *conversation.Store {
	local, tables := dynamotest.ForTest(t)
	return &conversation.Store{DB: local.Client(), Table: tables.State}
}

func TestLeaseIsExclusiveAndExpires(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	now := time.Now()
	a, _, err := s.Acquire(ctx, "contact-1", "a", now.Add(400*time.Millisecond), now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Acquire(ctx, "contact-1", "b", now.Add(time.Minute), time.Now().Add(150*time.Millisecond)); !errors.Is(err, conversation.ErrBusy) {
		t.Fatalf("a held lease was taken: %v", err)
	}
	if _, _, err := s.Acquire(ctx, "contact-2", "b", now.Add(time.Minute), now); err != nil {
		t.Fatalf("another contact is independent: %v", err)
	}
	// a dies; its lease runs out and b waits for it.
	b, waited, err := s.Acquire(ctx, "contact-1", "b", time.Now().Add(time.Minute), time.Now().Add(3*time.Second))
	if err != nil || waited < 200*time.Millisecond {
		t.Fatalf("b after a's lease expired: %v (waited %s)", err, waited)
	}
	if err := a.Save(ctx, conversation.Link{State: conversation.StateOpen, RequestKey: "SUPP-9"}); !errors.Is(err, conversation.ErrLeaseLost) {
		t.Fatalf("a wrote after losing its lease: %v", err)
	}
	if err := b.Save(ctx, conversation.Link{State: conversation.StateClosed, RequestKey: "SUPP-1", Generation: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	c, _, err := s.Acquire(ctx, "contact-1", "c", time.Now().Add(time.Minute), time.Now())
	if err != nil || c.Link.RequestKey != "SUPP-1" || c.Link.Generation != 1 {
		t.Fatalf("after release: %v %+v", err, c)
	}
}

func TestTwoPhaseClaim(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	first, err := s.ClaimWork(ctx, "jira", "d-1", "a", time.Now().Add(300*time.Millisecond), exp)
	if err != nil || first.Claim != conversation.Claimed || first.TakenOver {
		t.Fatalf("first %+v %v", first, err)
	}
	if busy, _ := s.ClaimWork(ctx, "jira", "d-1", "b", time.Now().Add(time.Minute), exp); busy.Claim != conversation.Busy {
		t.Fatalf("second while the first works: %+v", busy)
	}
	time.Sleep(350 * time.Millisecond)
	over, err := s.ClaimWork(ctx, "jira", "d-1", "b", time.Now().Add(time.Minute), exp)
	if err != nil || over.Claim != conversation.Claimed || !over.TakenOver || over.Started.IsZero() {
		t.Fatalf("after the first's lease ran out: %+v %v", over, err)
	}
	if err := s.ReleaseWork(ctx, "jira", "d-1", "a"); err != nil { // not a's any more: no effect
		t.Fatal(err)
	}
	if err := s.CompleteWork(ctx, "jira", "d-1", exp, map[string]string{"status": "sent"}); err != nil {
		t.Fatal(err)
	}
	done, _ := s.ClaimWork(ctx, "jira", "d-1", "c", time.Now().Add(time.Minute), exp)
	if done.Claim != conversation.Completed || done.Data["status"] != "sent" {
		t.Fatalf("after completion: %+v", done)
	}
	rel, _ := s.ClaimWork(ctx, "jira", "d-2", "a", time.Now().Add(time.Minute), exp)
	if err := s.ReleaseWork(ctx, "jira", "d-2", "a"); err != nil || rel.Claim != conversation.Claimed {
		t.Fatal(err)
	}
	if again, _ := s.ClaimWork(ctx, "jira", "d-2", "b", time.Now().Add(time.Minute), exp); again.Claim != conversation.Claimed || again.TakenOver {
		t.Fatalf("a released claim is free at once: %+v", again)
	}
}

func TestSaveUnderLeaseKeepsWhatTheJiraSideWrote(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	open := conversation.Link{ContactID: "contact-1", State: conversation.StateOpen, RequestKey: "SUPP-1", ConversationID: "conv-1", Phase: conversation.PhaseDescription}
	if err := s.PutLink(ctx, open); err != nil {
		t.Fatal(err)
	}
	lease, _, err := s.Acquire(ctx, "contact-1", "inbound", time.Now().Add(time.Minute), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// While the message is being appended, an agent replies (no lease on the Jira side)...
	if ok, err := s.SetAgentReply(ctx, lease.Link, "10101"); err != nil || !ok {
		t.Fatalf("agent reply: %v %v", ok, err)
	}
	// ...and the invocation saves the copy it read before.
	stale := lease.Link
	stale.LastInbound = time.Now()
	if err := lease.Save(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Link(ctx, "contact-1"); l.AgentReply != "10101" {
		t.Fatalf("the agent reply was overwritten: %+v", l)
	}
	// The request is resolved meanwhile: a stale save must not reopen the link.
	if ok, err := s.Close(ctx, lease.Link, "request_done"); err != nil || !ok {
		t.Fatalf("close: %v %v", ok, err)
	}
	if err := lease.Save(ctx, stale); !errors.Is(err, conversation.ErrLeaseLost) {
		t.Fatalf("a stale save over a closed link: %v", err)
	}
	if l, _ := s.Link(ctx, "contact-1"); l.State != conversation.StateClosed {
		t.Fatalf("link reopened: %+v", l)
	}
}

// TestClaimInDoubtIsTakenOverAtOnceAndKeepsItsStart: a send whose answer was lost leaves its
// claim in doubt; the next attempt takes it over at once, and however many attempts take it
// over, Started stays the first attempt's, so the check for what it sent looks back far enough.
func TestClaimInDoubtIsTakenOverAtOnceAndKeepsItsStart(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour)
	first, err := s.ClaimWork(ctx, "jout", "comment-1", "a", time.Now().Add(time.Minute), exp)
	if err != nil || first.Claim != conversation.Claimed {
		t.Fatalf("%+v %v", first, err)
	}
	if err := s.DoubtWork(ctx, "jout", "comment-1", "a"); err != nil {
		t.Fatal(err)
	}
	started := first.Started
	for i, owner := range []string{"b", "c"} {
		time.Sleep(5 * time.Millisecond)
		over, err := s.ClaimWork(ctx, "jout", "comment-1", owner, time.Now().Add(time.Minute), exp)
		if err != nil || over.Claim != conversation.Claimed || !over.TakenOver {
			t.Fatalf("takeover %d: %+v %v", i+1, over, err)
		}
		if !over.Started.Equal(started) {
			t.Fatalf("takeover %d: started %s, want the first attempt's %s", i+1, over.Started, started)
		}
		if busy, _ := s.ClaimWork(ctx, "jout", "comment-1", "x", time.Now().Add(time.Minute), exp); busy.Claim != conversation.Busy {
			t.Fatalf("while %s holds it: %+v", owner, busy)
		}
		if err := s.DoubtWork(ctx, "jout", "comment-1", owner); err != nil {
			t.Fatal(err)
		}
	}
	// Only the holder can put it in doubt.
	if err := s.DoubtWork(ctx, "jout", "comment-1", "a"); err != nil {
		t.Fatal(err)
	}
}
