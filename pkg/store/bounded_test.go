package store_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
	"github.com/cxbridge/cxbridge/pkg/store"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

func client(endpoint string, b store.Bounds) *dynamodb.Client {
	return store.NewDynamoDB(aws.Config{
		Region: dynamotest.Region, BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(dynamotest.AccessKeyID, dynamotest.SecretAccessKey, ""),
	}, b)
}

func get(ctx context.Context, db *dynamodb.Client) (time.Duration, error) {
	began := time.Now()
	_, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("t"), Key: map[string]types.AttributeValue{"pk": store.S("a"), "sk": store.S("b")}})
	return time.Since(began), err
}

func TestAHungStoreCostsOneBoundedCallThenRests(t *testing.T) {
	const bound, rest = 300 * time.Millisecond, 400 * time.Millisecond
	db := client(dynamotest.HungEndpoint(t), store.Bounds{CallTimeout: bound, Rest: rest})
	// The caller has 30 s: without the client's bound the call would take all of it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	took, err := get(ctx, db)
	if !store.Unavailable(err) || store.Unsent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first call: %v; want ErrUnavailable wrapping the deadline", err)
	}
	if took < bound || took > bound+2*time.Second {
		t.Fatalf("first call took %s; want about %s", took, bound)
	}
	// The store just stalled: the next calls are not sent, and fail at once.
	took, err = get(ctx, db)
	if !store.Unavailable(err) || !store.Unsent(err) || took > 100*time.Millisecond {
		t.Fatalf("call while resting: %v after %s; want an unsent ErrUnavailable at once", err, took)
	}
	// A write whose late landing is wanted is still sent, and still bounded.
	took, err = get(store.SendDuringRest(ctx), db)
	if !store.Unavailable(err) || store.Unsent(err) || took < bound || took > bound+2*time.Second {
		t.Fatalf("call sent during the rest: %v after %s; want it sent and bounded", err, took)
	}
	time.Sleep(rest)
	took, err = get(ctx, db)
	if !store.Unavailable(err) || store.Unsent(err) || took < bound {
		t.Fatalf("call after the rest: %v after %s; want it sent again and bounded", err, took)
	}
}

// DynamoDB stalls, then runs again within the rest: a call sent during the rest that gets an
// answer ends it, so the environment's next calls go out at once.
func TestAnAnswerDuringTheRestEndsIt(t *testing.T) {
	local, err := dynamotest.StartPrivate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Resume(); local.Stop() })
	db := client(local.Endpoint(), store.Bounds{CallTimeout: 300 * time.Millisecond, Rest: time.Hour})
	ctx := context.Background()
	if err := local.Pause(); err != nil {
		t.Skip(err) // no SIGSTOP on this platform
	}
	if _, err := get(ctx, db); !store.Unavailable(err) {
		t.Fatalf("call to the paused store: %v", err)
	}
	if err := local.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := get(ctx, db); !store.Unsent(err) {
		t.Fatalf("call during the rest: %v; want unsent", err)
	}
	// The table does not exist: an answer all the same.
	if _, err := get(store.SendDuringRest(ctx), db); err == nil || store.Unavailable(err) {
		t.Fatalf("call sent during the rest to a running store: %v; want DynamoDB's answer", err)
	}
	if _, err := get(ctx, db); err == nil || store.Unavailable(err) {
		t.Fatalf("call after an answer during the rest: %v; want it sent and answered", err)
	}
}

func TestTheCallersEarlierDeadlineWins(t *testing.T) {
	db := client(dynamotest.HungEndpoint(t), store.Bounds{CallTimeout: 2 * time.Second, Rest: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	took, err := get(ctx, db)
	cancel()
	if !store.Unavailable(err) || took > time.Second {
		t.Fatalf("%v after %s; want the caller's 150 ms", err, took)
	}
	// A caller whose budget was nearly spent says nothing about the store: no rest.
	ctx, cancel = context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := get(ctx, db); store.Unsent(err) {
		t.Fatalf("the store rests after a caller's short deadline: %v", err)
	}
	// Nor does a caller that gave up.
	ctx, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel2() }()
	if _, err := get(ctx, db); !store.Unavailable(err) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	ctx, cancel3 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel3()
	if _, err := get(ctx, db); store.Unsent(err) {
		t.Fatalf("the store rests after a cancelled call: %v", err)
	}
}

func TestARefusedConnectionIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	db := client("http://"+addr, store.Bounds{})
	took, err := get(context.Background(), db)
	if !store.Unavailable(err) || store.Unsent(err) || took > 2*time.Second {
		t.Fatalf("%v after %s", err, took)
	}
	if _, err := get(context.Background(), db); !store.Unsent(err) {
		t.Fatalf("after a refused connection the store rests: %v", err)
	}
}

// DynamoDB's own answers (a refused condition, a missing table) are not "unavailable": they
// are answers, and the store keeps being asked.
func TestAnswersAreNotUnavailability(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	// A fresh JVM on a busy machine can take seconds for its first requests.
	db := client(local.Endpoint(), store.Bounds{CallTimeout: 10 * time.Second})
	ctx := context.Background()
	item := map[string]types.AttributeValue{"pk": store.S("x"), "sk": store.S("y")}
	put := &dynamodb.PutItemInput{TableName: aws.String(tables.State), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}
	if _, err := db.PutItem(ctx, put); err != nil {
		t.Fatal(err)
	}
	_, err := db.PutItem(ctx, put)
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) || store.Unavailable(err) {
		t.Fatalf("refused condition: %v", err)
	}
	_, err = db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("no-such-table"), Key: item})
	if err == nil || store.Unavailable(err) {
		t.Fatalf("missing table: %v", err)
	}
	if _, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tables.State), Key: item}); err != nil {
		t.Fatalf("after DynamoDB's own refusals the store is asked as usual: %v", err)
	}
}

func TestBoundsFromEnv(t *testing.T) {
	r := config.FromMap(map[string]string{"STATE_CALL_TIMEOUT_MS": "250"})
	if b := store.BoundsFromEnv(r); b.CallTimeout != 250*time.Millisecond || r.Err() != nil {
		t.Fatalf("%+v %v", b, r.Err())
	}
	if b := store.BoundsFromEnv(config.FromMap(nil)); b.CallTimeout != store.DefaultCallTimeout {
		t.Fatalf("default %+v", b)
	}
	r = config.FromMap(map[string]string{"STATE_CALL_TIMEOUT_MS": "20000"})
	if store.BoundsFromEnv(r); r.Err() == nil {
		t.Fatal("20 s per call must be refused")
	}
}
