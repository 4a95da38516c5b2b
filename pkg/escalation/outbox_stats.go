package escalation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// OutboxStats is what the outbox holds right now: what the outbox alarms and `cxbridge status`
// look at.
type OutboxStats struct {
	Queued    int       `json:"queued"`
	Oldest    time.Time `json:"oldest,omitzero"`  // when the oldest queued escalation was accepted
	NextDue   time.Time `json:"nextDue,omitzero"` // the earliest time the redrive tries one
	Failed    int       `json:"failed"`           // on the failed list
	Truncated bool      `json:"truncated"`        // more than the limit queued: Queued is a floor
}

// statsLimit bounds how many queued items one Stats call reads (two attributes each).
const statsLimit = 20000

// Stats counts the queued and failed escalations and finds the oldest and the next due. It
// reads only two attributes of each queued item.
func (o *Outbox) Stats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(o.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": store.S(outboxPK)},
		ProjectionExpression:      aws.String("created_at, due"),
	}
	for {
		page, err := o.DB.Query(ctx, in)
		if err != nil {
			return st, fmt.Errorf("read outbox: %w", err)
		}
		for _, it := range page.Items {
			st.Queued++
			if c := store.Time(it, "created_at"); !c.IsZero() && (st.Oldest.IsZero() || c.Before(st.Oldest)) {
				st.Oldest = c
			}
			if d := store.Time(it, "due"); !d.IsZero() && (st.NextDue.IsZero() || d.Before(st.NextDue)) {
				st.NextDue = d
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		if st.Queued >= statsLimit {
			st.Truncated = true
			break
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
	failed := &dynamodb.QueryInput{
		TableName:                 aws.String(o.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": store.S(failedPK)},
		Select:                    types.SelectCount,
	}
	for {
		page, err := o.DB.Query(ctx, failed)
		if err != nil {
			return st, fmt.Errorf("read failed escalations: %w", err)
		}
		st.Failed += int(page.Count)
		if len(page.LastEvaluatedKey) == 0 {
			return st, nil
		}
		failed.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// recordOutbox emits the outbox alarms' metrics after a redrive run: OutboxDepth (queued
// escalations) and OutboxOldestAgeSeconds (how long the oldest has waited; 0 when none).
func (s *Service) recordOutbox(ctx context.Context) {
	st, err := s.Outbox.Stats(ctx)
	if err != nil {
		slog.WarnContext(ctx, "outbox not measured this run", "error", err)
		return
	}
	age := 0.0
	if !st.Oldest.IsZero() {
		age = s.now().Sub(st.Oldest).Round(time.Second).Seconds()
	}
	m := observe.MetricsFrom(ctx)
	m.Count("OutboxDepth", float64(st.Queued))
	m.Add("OutboxOldestAgeSeconds", observe.Seconds, age)
}
