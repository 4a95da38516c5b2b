package dynamotest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// A paused instance accepts connections and answers nothing; what was sent meanwhile runs when
// it resumes (a write whose caller gave up still lands); Stop ends a paused instance too.
func TestPauseResume(t *testing.T) {
	l, err := StartPrivate()
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	ctx := context.Background()
	tables, err := l.CreateTables(ctx, "pause")
	if err != nil {
		t.Fatal(err)
	}
	db := l.Client()
	key := func(pk string) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}, "sk": &types.AttributeValueMemberS{Value: "x"}}
	}

	if err := l.Pause(); err != nil {
		t.Fatal(err)
	}
	if !l.Paused() {
		t.Fatal("Paused() = false after Pause")
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	began := time.Now()
	_, err = db.PutItem(short, &dynamodb.PutItemInput{TableName: aws.String(tables.State), Item: key("sent-while-paused")})
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a write to a paused instance: %v; want the caller's deadline", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("the write took %s", took)
	}
	if err := l.Resume(); err != nil {
		t.Fatal(err)
	}
	// The write the caller gave up on lands once the JVM runs again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tables.State), Key: key("sent-while-paused"), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if out.Item != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write sent while paused never landed; a paused DynamoDB Local should execute it on resume")
		}
		time.Sleep(50 * time.Millisecond)
	}

	if err := l.Pause(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { l.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not end a paused instance")
	}
	if err := l.Pause(); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("Pause after Stop: %v", err)
	}
}

func TestPauseNeedsAnInstanceOfOurOwn(t *testing.T) {
	l := &Local{endpoint: "http://127.0.0.1:1"} // what Start returns for CXBRIDGE_DYNAMODB_ENDPOINT
	if err := l.Pause(); err == nil || !strings.Contains(err.Error(), EndpointEnv) {
		t.Fatalf("Pause of a reused instance: %v", err)
	}
}
