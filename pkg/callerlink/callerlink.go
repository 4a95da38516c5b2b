// Package callerlink remembers which Genesys conversation a ServiceNow caller is waiting in.
//
// servicenow-lookup writes the link when it identifies a caller during a call (the data action
// sends the conversation id); priority-sync reads it when that caller's incident becomes
// critical, to find the conversation whose queue priority to raise. The link lives in the state
// table under
//
//	pk = CALLER#<sys_user sys_id>   sk = WAITING
//
// with a TTL (expires_at). A later call by the same caller overwrites it: the newest call is the
// one that may still be waiting. The package has no ServiceNow or phone-number dependencies, so
// priority-sync stays small.
package callerlink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/store"
)

// SK is the sort key of a caller's waiting-conversation item.
const SK = "WAITING"

// DefaultTTL is how long a link is kept: longer than any call waits in a queue.
const DefaultTTL = 4 * time.Hour

// DB is the part of *dynamodb.Client the store uses.
type DB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// Link is one caller's waiting conversation.
type Link struct {
	CallerSysID    string    // ServiceNow sys_user sys_id
	ConversationID string    // Genesys conversation id
	ParticipantID  string    // the caller's participant in that conversation, when known
	RecordedAt     time.Time // UTC
	ExpiresAt      time.Time // UTC
}

// Store reads and writes links in the state table.
type Store struct {
	DB    DB
	Table string
	TTL   time.Duration    // 0 means DefaultTTL
	Now   func() time.Time // nil means time.Now
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Key is the state-table key of a caller's link.
func Key(callerSysID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		store.PK: store.S("CALLER#" + callerSysID),
		store.SK: store.S(SK),
	}
}

// Put records (or replaces) a caller's waiting conversation.
func (s *Store) Put(ctx context.Context, l Link) (Link, error) {
	if l.CallerSysID == "" || l.ConversationID == "" {
		return Link{}, errors.New("callerlink: caller sys_id and conversation id are required")
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	now := s.now().UTC()
	l.RecordedAt, l.ExpiresAt = now, now.Add(ttl).Truncate(time.Second)
	item := Key(l.CallerSysID)
	item["conversation_id"] = store.S(l.ConversationID)
	item["recorded_at"] = store.S(now.Format(time.RFC3339Nano))
	item[store.ExpiresAt] = store.N(l.ExpiresAt.Unix())
	if l.ParticipantID != "" {
		item["participant_id"] = store.S(l.ParticipantID)
	}
	if _, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item}); err != nil {
		return Link{}, fmt.Errorf("callerlink: record waiting conversation: %w", err)
	}
	return l, nil
}

// Get returns a caller's waiting conversation; found is false when there is none or it expired
// (DynamoDB deletes expired items lazily, so expiry is checked here too).
func (s *Store) Get(ctx context.Context, callerSysID string) (l Link, found bool, err error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: Key(callerSysID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Link{}, false, fmt.Errorf("callerlink: read waiting conversation: %w", err)
	}
	if out.Item == nil {
		return Link{}, false, nil
	}
	l = Link{CallerSysID: callerSysID, ConversationID: store.String(out.Item, "conversation_id"), ParticipantID: store.String(out.Item, "participant_id")}
	if t, err := time.Parse(time.RFC3339Nano, store.String(out.Item, "recorded_at")); err == nil {
		l.RecordedAt = t.UTC()
	}
	if n, ok := out.Item[store.ExpiresAt].(*types.AttributeValueMemberN); ok {
		if secs, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
			l.ExpiresAt = time.Unix(secs, 0).UTC()
		}
	}
	if l.ConversationID == "" || (!l.ExpiresAt.IsZero() && !s.now().Before(l.ExpiresAt)) {
		return Link{}, false, nil
	}
	return l, true, nil
}
