package callerlink_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/dynamotest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

const caller = "5137153cc611227c000bbd1bd8cd2005"

func TestLinkRoundTripAndLatestCallWins(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
	s := &callerlink.Store{DB: local.Client(), Table: tables.State, TTL: time.Hour, Now: func() time.Time { return now }}
	ctx := context.Background()

	if _, found, err := s.Get(ctx, caller); err != nil || found {
		t.Fatalf("empty table: found=%v err=%v", found, err)
	}
	if _, err := s.Put(ctx, callerlink.Link{CallerSysID: caller, ConversationID: "conv-1", ParticipantID: "part-1"}); err != nil {
		t.Fatal(err)
	}
	got, found, err := s.Get(ctx, caller)
	if err != nil || !found || got.ConversationID != "conv-1" || got.ParticipantID != "part-1" || !got.RecordedAt.Equal(now) || !got.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("got %+v found=%v err=%v", got, found, err)
	}
	// The item is keyed and carries its TTL as the state table's layout says.
	out, err := local.Client().GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(tables.State), Key: callerlink.Key(caller)})
	if err != nil {
		t.Fatal(err)
	}
	if pk := out.Item["pk"].(*types.AttributeValueMemberS).Value; pk != "CALLER#"+caller {
		t.Fatalf("pk %q", pk)
	}
	if exp := out.Item["expires_at"].(*types.AttributeValueMemberN).Value; exp != "1795341600" {
		t.Fatalf("expires_at %s", exp)
	}

	if _, err := s.Put(ctx, callerlink.Link{CallerSysID: caller, ConversationID: "conv-2"}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get(ctx, caller); got.ConversationID != "conv-2" || got.ParticipantID != "" {
		t.Fatalf("the newest call must replace the link: %+v", got)
	}
}

func TestExpiredLinkIsNotReturned(t *testing.T) {
	local, tables := dynamotest.ForTest(t)
	now := time.Now().Add(-2 * time.Hour) // written two hours ago with a one-hour TTL
	s := &callerlink.Store{DB: local.Client(), Table: tables.State, TTL: time.Hour, Now: func() time.Time { return now }}
	if _, err := s.Put(context.Background(), callerlink.Link{CallerSysID: caller, ConversationID: "conv-old"}); err != nil {
		t.Fatal(err)
	}
	now = time.Now()
	// DynamoDB deletes expired items lazily (DynamoDB Local may hide them at once); either way
	// the store must not hand out an expired link.
	if l, found, err := s.Get(context.Background(), caller); err != nil || found {
		t.Fatalf("expired link returned: %+v %v", l, err)
	}
}

func TestPutNeedsBothIDs(t *testing.T) {
	s := &callerlink.Store{Table: "unused"}
	if _, err := s.Put(context.Background(), callerlink.Link{CallerSysID: caller}); err == nil {
		t.Fatal("a link without a conversation was accepted")
	}
}
