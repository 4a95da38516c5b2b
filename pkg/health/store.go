package health

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

// Keys in the state table (see pkg/store):
//
//	HEALTH  RUN                               the last run of the checks: when, how many failed;
//	                                          also the lease that lets one run per interval
//	HEALTH  CHECK#<system>#<check>#<target>   the last result of one check
const (
	healthPK    = "HEALTH"
	runSK       = "RUN"
	checkPrefix = "CHECK#"
	// keepResults is how long a result stays without being checked again (a check removed
	// from the configuration disappears after this at the latest).
	keepResults = 14 * 24 * time.Hour
)

// DB is the part of *dynamodb.Client integration-health uses.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// Store keeps the last results in the state table.
type Store struct {
	DB    DB
	Table string
}

// Run is the record of the last run.
type Run struct {
	StartedAt time.Time `json:"startedAt"`
	Finished  bool      `json:"finished"`
	Checks    int       `json:"checks"`
	Failed    int       `json:"failed"`
	Warnings  int       `json:"warnings"`
}

// Claim takes the run for now when the last one started at least interval ago (or force is
// set), so that the every-minute schedule runs the checks once per interval however many
// invocations overlap. false: not due.
func (s *Store) Claim(ctx context.Context, now time.Time, interval time.Duration, force bool) (bool, error) {
	in := &dynamodb.UpdateItemInput{
		TableName:        aws.String(s.Table),
		Key:              key(runSK),
		UpdateExpression: aws.String("SET started_at = :now, finished = :f"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": store.Millis(now), ":f": store.B(false),
		},
	}
	if !force {
		// a minute of slack: the schedule's ticks are not exactly interval apart
		in.ConditionExpression = aws.String("attribute_not_exists(started_at) OR started_at <= :due")
		in.ExpressionAttributeValues[":due"] = store.Millis(now.Add(-interval + time.Minute))
	}
	_, err := s.DB.UpdateItem(ctx, in)
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("claim the health run: %w", err)
	}
	return true, nil
}

// Save records a run's results and forgets results of checks the run no longer makes.
func (s *Store) Save(ctx context.Context, rep Report) error {
	expires := store.TTL(rep.StartedAt, keepResults)
	seen := map[string]bool{}
	for _, r := range rep.Results {
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		seen[checkPrefix+r.ID()] = true
		if _, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: map[string]types.AttributeValue{
			store.PK: store.S(healthPK), store.SK: store.S(checkPrefix + r.ID()), "status": store.S(string(r.Status)),
			"result": store.S(string(raw)), "checked_at": store.Millis(r.CheckedAt), store.ExpiresAt: store.N(expires),
		}}); err != nil {
			return fmt.Errorf("record health result %s: %w", r.ID(), err)
		}
	}
	old, err := s.results(ctx)
	if err != nil {
		return err
	}
	for _, r := range old {
		if sk := checkPrefix + r.ID(); !seen[sk] {
			if _, err := s.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.Table), Key: key(sk)}); err != nil {
				return fmt.Errorf("forget health result %s: %w", r.ID(), err)
			}
		}
	}
	_, err = s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(s.Table),
		Key:              key(runSK),
		UpdateExpression: aws.String("SET finished = :t, checks = :n, failed = :f, warnings = :w"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": store.B(true), ":n": store.N(len(rep.Results)), ":f": store.N(rep.Failed), ":w": store.N(rep.Warnings),
		},
	})
	if err != nil {
		return fmt.Errorf("record the health run: %w", err)
	}
	return nil
}

// Last returns the last run and the last result of every check.
func (s *Store) Last(ctx context.Context) (Run, []Result, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key(runSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Run{}, nil, fmt.Errorf("read the health run: %w", err)
	}
	run := Run{StartedAt: store.Time(out.Item, "started_at"), Finished: store.Bool(out.Item, "finished"),
		Checks: int(store.Int(out.Item, "checks")), Failed: int(store.Int(out.Item, "failed")), Warnings: int(store.Int(out.Item, "warnings"))}
	results, err := s.results(ctx)
	Sort(results)
	return run, results, err
}

func (s *Store) results(ctx context.Context) ([]Result, error) {
	in := &dynamodb.QueryInput{
		TableName:              aws.String(s.Table),
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :p)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": store.S(healthPK), ":p": store.S(checkPrefix),
		},
		ConsistentRead: aws.Bool(true),
	}
	var out []Result
	for {
		page, err := s.DB.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("read health results: %w", err)
		}
		for _, item := range page.Items {
			var r Result
			if err := json.Unmarshal([]byte(store.String(item, "result")), &r); err != nil {
				return nil, fmt.Errorf("health result %s: %w", store.String(item, store.SK), err)
			}
			out = append(out, r)
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

func key(sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{store.PK: store.S(healthPK), store.SK: store.S(sk)}
}
