package escalation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/store"
)

// StateDB is the part of *dynamodb.Client the outbox and outage mode use.
type StateDB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// Outbox keys in the state table (see pkg/store):
//
//	OUTBOX          <due ms, 13 digits>#<id>   a queued escalation, read in due order
//	OUTBOX#ID       <id>                       points at the escalation's queued item, so one
//	                                           escalation is never queued twice
//	OUTBOX#FAILED   <failed ms>#<id>           escalations a person must look at
const (
	outboxPK  = "OUTBOX"
	pointerPK = "OUTBOX#ID"
	failedPK  = "OUTBOX#FAILED"
)

// Item states.
const (
	ItemQueued = "QUEUED"
	ItemFailed = "FAILED"
)

// Item is an escalation in the outbox.
type Item struct {
	Escalation Escalation
	State      string
	Due        time.Time // when the redrive may try it (QUEUED)
	CreatedAt  time.Time // when it was accepted
	Attempts   int       // delivery attempts so far
	LastError  string
	Reason     string
	// Since, when set, is the latest moment an attempt may have created the ticket without
	// recording it (its answer was lost, or it died): delivery looks for the ticket before
	// creating. It only ever moves forward; nothing clears it while the item lives.
	Since time.Time
	// NotBefore, when set, is the earliest moment the item may be attempted at all, whatever
	// the target's health: the end of Jira's search lag for a verification, or a Retry-After.
	NotBefore time.Time
	FailedAt  time.Time

	sk string
}

// SortKey is the item's sort key (for the operator CLI).
func (it Item) SortKey() string { return it.sk }

// Outbox stores queued and failed escalations in the state table.
type Outbox struct {
	DB    StateDB
	Table string
	Now   func() time.Time
	// Keep is how long an item outlives its maximum age before DynamoDB's TTL removes it.
	Keep time.Duration
}

// ErrAlreadyQueued: the escalation already has an item in the outbox.
var ErrAlreadyQueued = errors.New("escalation already queued")

func (o *Outbox) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func dueKey(t time.Time, id string) string {
	return fmt.Sprintf("%013d#%s", max(t.UnixMilli(), 0), id)
}

// Enqueue adds an escalation. An escalation that is already queued is not queued twice
// (ErrAlreadyQueued).
func (o *Outbox) Enqueue(ctx context.Context, it Item, maxAge time.Duration) error {
	it.State = ItemQueued
	it.sk = dueKey(it.Due, it.Escalation.ID)
	item, err := o.encode(outboxPK, it, it.CreatedAt.Add(maxAge+o.keep()))
	if err != nil {
		return err
	}
	_, err = o.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(o.Table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}},
		{Put: &types.Put{TableName: aws.String(o.Table), Item: o.pointer(it, it.CreatedAt.Add(maxAge+o.keep())), ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}})
	if cancelled(err, 1) {
		if !it.Since.IsZero() {
			// This attempt's write may have landed: the item already waiting must look for it
			// before its delivery creates anything.
			if err := o.raiseSince(ctx, it.Escalation.ID, it.Since); err != nil {
				return fmt.Errorf("queue escalation: mark the queued item in doubt: %w", err)
			}
		}
		return ErrAlreadyQueued
	}
	if err != nil {
		return fmt.Errorf("queue escalation: %w", err)
	}
	return nil
}

// MarkInDoubt records on the escalation's queued item, if any, that an attempt may have created
// its ticket at since: the redrive searches for it before it creates one.
func (o *Outbox) MarkInDoubt(ctx context.Context, id string, since time.Time) error {
	return o.raiseSince(ctx, id, since)
}

// raiseSince moves a queued item's Since to since when that is later.
func (o *Outbox) raiseSince(ctx context.Context, id string, since time.Time) error {
	ptr, err := o.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(o.Table), Key: key(pointerPK, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return err
	}
	slot := store.String(ptr.Item, "slot")
	if slot == "" {
		return nil // delivered or given up meanwhile
	}
	_, err = o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(o.Table),
		Key:                       key(outboxPK, slot),
		UpdateExpression:          aws.String("SET since = :s"),
		ConditionExpression:       aws.String("attribute_exists(pk) AND (attribute_not_exists(since) OR since < :s)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":s": store.N(since.UnixMilli())},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil // gone, or already in doubt since as late
	}
	return err
}

func (o *Outbox) keep() time.Duration {
	if o.Keep > 0 {
		return o.Keep
	}
	return 7 * 24 * time.Hour
}

func (o *Outbox) pointer(it Item, expires time.Time) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		store.PK: store.S(pointerPK), store.SK: store.S(it.Escalation.ID), "slot": store.S(it.sk),
		store.ExpiresAt: store.N(expires.Unix()),
	}
}

// Queued reports whether an escalation has an item waiting in the outbox.
func (o *Outbox) Queued(ctx context.Context, id string) (bool, error) {
	out, err := o.DB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(o.Table),
		Key:            key(pointerPK, id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, fmt.Errorf("read outbox: %w", err)
	}
	return out.Item != nil, nil
}

// Due returns up to limit queued items due at now, oldest due first.
func (o *Outbox) Due(ctx context.Context, now time.Time, limit int) ([]Item, error) {
	return o.query(ctx, outboxPK, aws.String(dueKey(now, "~")), limit)
}

// Failed returns up to limit failed items, oldest first.
func (o *Outbox) Failed(ctx context.Context, limit int) ([]Item, error) {
	return o.query(ctx, failedPK, nil, limit)
}

// Pending returns up to limit queued items, due or not.
func (o *Outbox) Pending(ctx context.Context, limit int) ([]Item, error) {
	return o.query(ctx, outboxPK, nil, limit)
}

func (o *Outbox) query(ctx context.Context, pk string, upTo *string, limit int) ([]Item, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(o.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": store.S(pk)},
		ConsistentRead:            aws.Bool(true),
	}
	if upTo != nil {
		in.KeyConditionExpression = aws.String("pk = :pk AND sk <= :upto")
		in.ExpressionAttributeValues[":upto"] = store.S(*upTo)
	}
	var items []Item
	for {
		in.Limit = aws.Int32(int32(min(limit-len(items), 100)))
		out, err := o.DB.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		for _, raw := range out.Items {
			it, err := decodeItem(raw)
			if err != nil {
				return nil, err
			}
			items = append(items, it)
		}
		if len(out.LastEvaluatedKey) == 0 || len(items) >= limit {
			return items, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Lease takes an item for d, so that overlapping redrive runs do not both deliver it. false
// means another run holds it (or it is gone). A lease is only ever ended by rewriting the item
// (Reschedule, Delivered, Fail), so an expired lease still on the item is an attempt that died
// without reporting: orphaned is when that lease ended, the latest moment the dead attempt can
// have created the ticket, and the caller must treat it as Since.
func (o *Outbox) Lease(ctx context.Context, it Item, d time.Duration) (ok bool, orphaned time.Time, err error) {
	now := o.now()
	out, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(o.Table),
		Key:                 key(outboxPK, it.sk),
		UpdateExpression:    aws.String("SET lease_until = :until"),
		ConditionExpression: aws.String("attribute_exists(pk) AND (attribute_not_exists(lease_until) OR lease_until < :now)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":until": store.N(now.Add(d).UnixMilli()), ":now": store.N(now.UnixMilli()),
		},
		ReturnValues: types.ReturnValueUpdatedOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, time.Time{}, nil
	}
	if err != nil {
		return false, time.Time{}, fmt.Errorf("lease outbox item: %w", err)
	}
	return true, store.Time(out.Attributes, "lease_until"), nil
}

// Delivered removes a delivered item.
func (o *Outbox) Delivered(ctx context.Context, it Item) error {
	_, err := o.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: aws.String(o.Table), Key: key(outboxPK, it.sk)}},
		{Delete: &types.Delete{TableName: aws.String(o.Table), Key: key(pointerPK, it.Escalation.ID)}},
	}})
	if err != nil {
		return fmt.Errorf("remove delivered outbox item: %w", err)
	}
	return nil
}

// Reschedule moves an item to a new due time with its updated attempt record.
func (o *Outbox) Reschedule(ctx context.Context, it Item, maxAge time.Duration) error {
	old := it.sk
	it.sk = dueKey(it.Due, it.Escalation.ID)
	if it.sk == old {
		it.sk = dueKey(it.Due.Add(time.Millisecond), it.Escalation.ID)
	}
	item, err := o.encode(outboxPK, it, it.CreatedAt.Add(maxAge+o.keep()))
	if err != nil {
		return err
	}
	_, err = o.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: aws.String(o.Table), Key: key(outboxPK, old), ConditionExpression: aws.String("attribute_exists(pk)")}},
		{Put: &types.Put{TableName: aws.String(o.Table), Item: item}},
		{Put: &types.Put{TableName: aws.String(o.Table), Item: o.pointer(it, it.CreatedAt.Add(maxAge+o.keep()))}},
	}})
	if err != nil {
		return fmt.Errorf("reschedule outbox item: %w", err)
	}
	return nil
}

// Fail moves an item (or, when it was never queued, records an escalation) to the failed
// list, where it stays for 30 days for a person to look at and retry.
func (o *Outbox) Fail(ctx context.Context, it Item) error {
	it.State = ItemFailed
	if it.FailedAt.IsZero() {
		it.FailedAt = o.now()
	}
	old := it.sk
	it.sk = dueKey(it.FailedAt, it.Escalation.ID)
	item, err := o.encode(failedPK, it, it.FailedAt.Add(30*24*time.Hour))
	if err != nil {
		return err
	}
	ops := []types.TransactWriteItem{{Put: &types.Put{TableName: aws.String(o.Table), Item: item}}}
	if old != "" {
		ops = append(ops,
			types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(o.Table), Key: key(outboxPK, old)}},
			types.TransactWriteItem{Delete: &types.Delete{TableName: aws.String(o.Table), Key: key(pointerPK, it.Escalation.ID)}})
	}
	if _, err := o.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: ops}); err != nil {
		return fmt.Errorf("record failed escalation: %w", err)
	}
	return nil
}

// Retry moves a failed item back into the outbox, due now, with a fresh age.
func (o *Outbox) Retry(ctx context.Context, it Item, maxAge time.Duration) error {
	if it.State != ItemFailed || it.sk == "" {
		return fmt.Errorf("escalation %s is not a failed item", it.Escalation.ID)
	}
	failedSK := it.sk
	now := o.now()
	// Since stays: a ticket an earlier attempt may have created is still looked for first.
	it.State, it.Due, it.CreatedAt, it.Attempts, it.Reason, it.FailedAt, it.NotBefore = ItemQueued, now, now, 0, "", time.Time{}, time.Time{}
	it.sk = dueKey(now, it.Escalation.ID)
	item, err := o.encode(outboxPK, it, now.Add(maxAge+o.keep()))
	if err != nil {
		return err
	}
	_, err = o.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: aws.String(o.Table), Key: key(failedPK, failedSK), ConditionExpression: aws.String("attribute_exists(pk)")}},
		{Put: &types.Put{TableName: aws.String(o.Table), Item: item}},
		{Put: &types.Put{TableName: aws.String(o.Table), Item: o.pointer(it, now.Add(maxAge+o.keep())), ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}})
	if cancelled(err, 2) {
		return ErrAlreadyQueued
	}
	if err != nil {
		return fmt.Errorf("retry failed escalation: %w", err)
	}
	return nil
}

func (o *Outbox) encode(pk string, it Item, expires time.Time) (map[string]types.AttributeValue, error) {
	esc, err := json.Marshal(it.Escalation)
	if err != nil {
		return nil, fmt.Errorf("encode escalation: %w", err)
	}
	item := map[string]types.AttributeValue{
		store.PK: store.S(pk), store.SK: store.S(it.sk),
		"id": store.S(it.Escalation.ID), "target": store.S(it.Escalation.Target), "state": store.S(it.State),
		"escalation": store.S(string(esc)), "created_at": store.N(it.CreatedAt.UnixMilli()),
		"due": store.N(it.Due.UnixMilli()), "attempts": store.N(int64(it.Attempts)),
		store.ExpiresAt: store.N(expires.Unix()),
	}
	if it.LastError != "" {
		item["last_error"] = store.S(it.LastError)
	}
	if it.Reason != "" {
		item["reason"] = store.S(it.Reason)
	}
	if !it.Since.IsZero() {
		item["since"] = store.N(it.Since.UnixMilli())
	}
	if !it.NotBefore.IsZero() {
		item["not_before"] = store.N(it.NotBefore.UnixMilli())
	}
	if !it.FailedAt.IsZero() {
		item["failed_at"] = store.N(it.FailedAt.UnixMilli())
	}
	return item, nil
}

func decodeItem(raw map[string]types.AttributeValue) (Item, error) {
	it := Item{
		sk: store.String(raw, store.SK), State: store.String(raw, "state"), LastError: store.String(raw, "last_error"), Reason: store.String(raw, "reason"),
		CreatedAt: store.Time(raw, "created_at"), Due: store.Time(raw, "due"), Since: store.Time(raw, "since"), FailedAt: store.Time(raw, "failed_at"),
		NotBefore: store.Time(raw, "not_before"),
		Attempts:  int(store.Int(raw, "attempts")),
	}
	if err := json.Unmarshal([]byte(store.String(raw, "escalation")), &it.Escalation); err != nil {
		return Item{}, fmt.Errorf("outbox item %s: %w", it.sk, err)
	}
	return it, nil
}

// cancelled reports a cancelled transaction whose item at index failed its condition.
func cancelled(err error, index int) bool {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) || index >= len(tce.CancellationReasons) {
		return false
	}
	return aws.ToString(tce.CancellationReasons[index].Code) == "ConditionalCheckFailed"
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{store.PK: store.S(pk), store.SK: store.S(sk)}
}
