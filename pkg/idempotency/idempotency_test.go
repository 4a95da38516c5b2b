package idempotency_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/idempotency"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time       { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) jump(d time.Duration) { c.offset.Add(int64(d)) }
func newStore(t *testing.T, cfg idempotency.Config) (*idempotency.Store, *dynamodb.Client, string, *clock) {
	t.Helper()
	local, tables := dynamotest.ForTest(t)
	c := &clock{}
	cfg.Table = tables.Idempotency
	if cfg.Now == nil {
		cfg.Now = c.now
	}
	return idempotency.New(local.Client(), cfg), local.Client(), tables.Idempotency, c
}

func begin(t *testing.T, s *idempotency.Store, ctx context.Context, id, validation string) *idempotency.Claim {
	t.Helper()
	c, rec, err := s.Begin(ctx, id, validation)
	if err != nil || rec != nil || c == nil {
		t.Fatalf("Begin: claim %v, replay %v, err %v; want a claim", c, rec, err)
	}
	return c
}

func TestReplayAndMismatch(t *testing.T) {
	s, _, _, _ := newStore(t, idempotency.Config{})
	ctx := context.Background()
	id := idempotency.Key("create-escalation", "conv-1", "vip")
	c := begin(t, s, ctx, id, "v1")
	if c.Recovered {
		t.Fatal("a fresh claim is not a recovery")
	}
	if err := c.Complete(ctx, []byte(`{"status":"created","ticketKey":"SUPP-1"}`)); err != nil {
		t.Fatal(err)
	}
	claim, rec, err := s.Begin(ctx, id, "v1")
	if err != nil || claim != nil || rec == nil || string(rec.Data) != `{"status":"created","ticketKey":"SUPP-1"}` {
		t.Fatalf("same key and payload must replay the first response: %v %v %v", claim, rec, err)
	}
	if _, _, err := s.Begin(ctx, id, "v2"); !errors.Is(err, idempotency.ErrMismatch) {
		t.Fatalf("same key, other payload: %v; want ErrMismatch", err)
	}
	// An empty validation (a key the caller did not choose) never mismatches.
	if _, rec, err := s.Begin(ctx, id, ""); err != nil || rec == nil {
		t.Fatalf("no validation: %v %v", rec, err)
	}
}

func TestRecordIsPowertoolsShaped(t *testing.T) {
	s, db, table, _ := newStore(t, idempotency.Config{Expires: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	id := idempotency.Key("create-escalation", "k")
	c := begin(t, s, ctx, id, "abc")
	item := getItem(t, db, table, id)
	if got := item["status"].(*types.AttributeValueMemberS).Value; got != "INPROGRESS" {
		t.Fatalf("status %q", got)
	}
	ipe, _ := strconv.ParseInt(item["in_progress_expiration"].(*types.AttributeValueMemberN).Value, 10, 64)
	if ipe != deadline.UnixMilli() {
		t.Fatalf("in_progress_expiration %d; want the deadline in ms %d", ipe, deadline.UnixMilli())
	}
	exp, _ := strconv.ParseInt(item["expiration"].(*types.AttributeValueMemberN).Value, 10, 64)
	if d := time.Until(time.Unix(exp, 0)); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("expiration %d is not about an hour away in unix seconds", exp)
	}
	if item["validation"].(*types.AttributeValueMemberS).Value != "abc" {
		t.Fatal("validation not stored")
	}
	if err := c.Complete(ctx, []byte(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	item = getItem(t, db, table, id)
	if item["status"].(*types.AttributeValueMemberS).Value != "COMPLETED" || item["data"].(*types.AttributeValueMemberS).Value != `{"ok":true}` {
		t.Fatalf("completed record: %v", item)
	}
	if _, ok := item["in_progress_expiration"]; ok {
		t.Fatal("a completed record keeps no in-progress lease")
	}
}

func getItem(t *testing.T, db *dynamodb.Client, table, id string) map[string]types.AttributeValue {
	t.Helper()
	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: id}}, ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item == nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return out.Item
}

func TestConcurrentDuplicateWaitsForTheResult(t *testing.T) {
	s, _, _, _ := newStore(t, idempotency.Config{Wait: 3 * time.Second, Poll: 20 * time.Millisecond})
	ctx := context.Background()
	id := idempotency.Key("p", "dup")
	c := begin(t, s, ctx, id, "v")
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = c.Complete(ctx, []byte(`{"n":1}`))
	}()
	start := time.Now()
	claim, rec, err := s.Begin(ctx, id, "v")
	if err != nil || claim != nil || rec == nil || string(rec.Data) != `{"n":1}` {
		t.Fatalf("waiting duplicate: %v %v %v", claim, rec, err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("answered after %s, before the first run finished", waited)
	}
}

func TestConcurrentDuplicateGivesUpAfterWait(t *testing.T) {
	s, _, _, _ := newStore(t, idempotency.Config{Wait: 300 * time.Millisecond, Poll: 50 * time.Millisecond})
	ctx := context.Background()
	id := idempotency.Key("p", "slow")
	begin(t, s, ctx, id, "v")
	start := time.Now()
	if _, _, err := s.Begin(ctx, id, "v"); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("got %v; want ErrInProgress", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("gave up after %s; the wait is 300 ms", d)
	}
	// a different payload is refused at once, even while in progress
	if _, _, err := s.Begin(ctx, id, "other"); !errors.Is(err, idempotency.ErrMismatch) {
		t.Fatalf("got %v; want ErrMismatch", err)
	}
}

func TestOnlyOneOfManyConcurrentClaimsRuns(t *testing.T) {
	s, _, _, _ := newStore(t, idempotency.Config{Wait: 5 * time.Second, Poll: 20 * time.Millisecond})
	ctx := context.Background()
	id := idempotency.Key("p", "race")
	var runs atomic.Int32
	var wg sync.WaitGroup
	results := make(chan string, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, rec, err := s.Begin(ctx, id, "v")
			switch {
			case err != nil:
				results <- "error " + err.Error()
			case c != nil:
				runs.Add(1)
				time.Sleep(100 * time.Millisecond)
				if err := c.Complete(ctx, []byte("first")); err != nil {
					results <- "complete " + err.Error()
					return
				}
				results <- "first"
			default:
				results <- string(rec.Data)
			}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r != "first" {
			t.Errorf("a caller got %q", r)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("%d runs; want exactly one", runs.Load())
	}
}

func TestDeadHolderIsTakenOver(t *testing.T) {
	s, _, _, clk := newStore(t, idempotency.Config{Wait: 200 * time.Millisecond})
	id := idempotency.Key("p", "crash")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	dead := begin(t, s, ctx, id, "v") // this run "crashes": it never completes
	// Before its deadline the key is still held.
	if _, _, err := s.Begin(context.Background(), id, "v"); !errors.Is(err, idempotency.ErrInProgress) {
		t.Fatalf("got %v; a live holder must be waited for", err)
	}
	clk.jump(3 * time.Second) // past the dead run's Lambda deadline
	c := begin(t, s, context.Background(), id, "v")
	if !c.Recovered || c.PreviousClaimAt.IsZero() || c.PreviousDeadline.IsZero() {
		t.Fatalf("claim over a dead holder must say so: %+v", c)
	}
	if !c.PreviousDeadline.After(c.PreviousClaimAt) {
		t.Fatalf("previous deadline %s before its claim %s", c.PreviousDeadline, c.PreviousClaimAt)
	}
	// The dead run, if it woke up, could not overwrite the new holder's record.
	if err := dead.Complete(context.Background(), []byte("late")); !errors.Is(err, idempotency.ErrLost) {
		t.Fatalf("late complete: %v; want ErrLost", err)
	}
	if err := c.Complete(context.Background(), []byte("second")); err != nil {
		t.Fatal(err)
	}
	if _, rec, _ := s.Begin(context.Background(), id, "v"); rec == nil || string(rec.Data) != "second" {
		t.Fatalf("replay %v", rec)
	}
}

func TestReleaseLetsARetryRun(t *testing.T) {
	s, _, _, _ := newStore(t, idempotency.Config{})
	ctx := context.Background()
	id := idempotency.Key("p", "failed")
	c := begin(t, s, ctx, id, "v")
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	again := begin(t, s, ctx, id, "v")
	if again.Recovered {
		t.Fatal("a released key is free, not a recovery")
	}
}

func TestExpiredRecordIsNotReplayed(t *testing.T) {
	s, _, _, clk := newStore(t, idempotency.Config{Expires: time.Minute})
	ctx := context.Background()
	id := idempotency.Key("p", "old")
	c := begin(t, s, ctx, id, "v")
	if err := c.Complete(ctx, []byte("old")); err != nil {
		t.Fatal(err)
	}
	clk.jump(2 * time.Minute) // TTL deletion lags; the code must not trust it
	fresh := begin(t, s, ctx, id, "other payload is fine after expiry")
	if fresh.Recovered {
		t.Fatal("an expired COMPLETED record is not a recovery")
	}
}

func TestRecordLeavesALiveRunAlone(t *testing.T) {
	s, _, _, clk := newStore(t, idempotency.Config{})
	ctx := context.Background()
	id := idempotency.Key("p", "queued")
	c := begin(t, s, ctx, id, "v")
	if err := s.Record(ctx, id, "v", []byte("too early")); err != nil {
		t.Fatal(err)
	}
	if err := c.Complete(ctx, []byte("queued")); err != nil {
		t.Fatalf("a live claim must survive Record: %v", err)
	}
	if err := s.Record(ctx, id, "", []byte("created")); err != nil {
		t.Fatal(err)
	}
	if _, rec, _ := s.Begin(ctx, id, "v"); rec == nil || string(rec.Data) != "created" {
		t.Fatalf("replay after Record: %v", rec)
	}
	if _, _, err := s.Begin(ctx, id, "other"); !errors.Is(err, idempotency.ErrMismatch) {
		t.Fatalf("the validation survives Record: %v", err)
	}

	// No record (the claim could not be written): Record makes one, with its validation.
	absent := idempotency.Key("p", "absent")
	if err := s.Record(ctx, absent, "v", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, rec, _ := s.Begin(ctx, absent, "v"); rec == nil || string(rec.Data) != "x" {
		t.Fatalf("replay of a recorded answer: %v", rec)
	}
	if _, _, err := s.Begin(ctx, absent, "w"); !errors.Is(err, idempotency.ErrMismatch) {
		t.Fatalf("validation of a recorded answer: %v", err)
	}

	// A claim whose holder died (in-progress past its lease) is completed by Record.
	dead := idempotency.Key("p", "dead")
	begin(t, s, ctx, dead, "")
	clk.jump(time.Hour)
	if err := s.Record(ctx, dead, "", []byte("delivered")); err != nil {
		t.Fatal(err)
	}
	if _, rec, _ := s.Begin(ctx, dead, ""); rec == nil || string(rec.Data) != "delivered" {
		t.Fatalf("replay after completing a dead claim: %v", rec)
	}
}
