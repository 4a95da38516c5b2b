// Package idempotency makes a handler run once per key, with the record shape and semantics of
// Powertools for AWS Lambda's idempotency utility, so the table can be read (and shared) by
// Powertools functions in other languages:
//
//	id                      partition key: "<prefix>#<hash>"; the prefix is chosen by the caller
//	                        and never derived from code names, so a refactor cannot change keys
//	expiration              unix seconds; the DynamoDB TTL attribute, and checked here too
//	                        because TTL deletion lags (up to 48 h)
//	status                  INPROGRESS | COMPLETED
//	in_progress_expiration  unix milliseconds: the deadline of the run that holds it
//	data                    the JSON response to replay
//	validation              a hash of the payload: the same key with another payload is refused
//
// plus claimed_at (unix ms, when the holder started), which Powertools ignores and recovery uses.
//
// Begin claims a key with one conditional PutItem whose failure returns the existing record
// (ReturnValuesOnConditionCheckFailure=ALL_OLD), so the common cases cost one write:
//
//   - no record, or an expired one: the caller holds the key and runs (Claim).
//   - COMPLETED with the same validation: the stored response is replayed (Replay).
//   - a different validation: ErrMismatch, whatever the status (the caller answers 409).
//   - INPROGRESS: a concurrent duplicate. Unlike Powertools, which fails at once, Begin polls
//     with consistent reads for up to Wait for the first run's result and replays it
//     (Powertools python issue 2490); after Wait, or if the store stops answering meanwhile,
//     it returns ErrInProgress.
//   - INPROGRESS past in_progress_expiration: the holder died (a Lambda timeout or crash) before
//     it could record a result. The record is claimed again, and the Claim says so
//     (Recovered, PreviousClaimAt), because the dead run may have had side effects.
//
// A Claim ends with Complete (store the response) or Release (delete the record so a retry
// runs again, as Powertools does when the handler raises). Both are fenced by the claim's own
// in_progress_expiration, so a run that outlived its lease cannot overwrite its successor.
// Record stores an answer given without a claim (the store could not be written at the time).
//
// The lease (in_progress_expiration) is the deadline of the context Begin is called with:
// create-escalation calls it with its request's deadline, after which the run no longer acts.
package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/store"
)

// Record statuses, as Powertools writes them.
const (
	StatusInProgress = "INPROGRESS"
	StatusCompleted  = "COMPLETED"
)

// Attribute names, as Powertools writes them.
const (
	attrID                   = "id"
	attrExpiration           = "expiration"
	attrStatus               = "status"
	attrInProgressExpiration = "in_progress_expiration"
	attrData                 = "data"
	attrValidation           = "validation"
	attrClaimedAt            = "claimed_at"
)

var (
	// ErrMismatch: the key was used before with a different payload.
	ErrMismatch = errors.New("idempotency key already used with a different payload")
	// ErrInProgress: another run holds the key and did not finish within the wait.
	ErrInProgress = errors.New("a run with the same idempotency key is still in progress")
	// ErrLost: the claim's lease expired and another run took the key over; the result was
	// not stored.
	ErrLost = errors.New("idempotency claim lost to a later run")
)

// DB is the part of *dynamodb.Client the store uses.
type DB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Config configures a Store. Zero values take the defaults.
type Config struct {
	Table string
	// Expires is how long a record (and so a replay) lives; default 1 h, Powertools' default.
	Expires time.Duration
	// Wait is how long Begin waits for a concurrent duplicate's result; default 2 s.
	Wait time.Duration
	// Poll is the interval of those reads; default 100 ms.
	Poll time.Duration
	// InProgress is the lease taken when the context has no deadline (outside Lambda);
	// default 30 s. In Lambda the lease ends at the invocation's deadline.
	InProgress time.Duration
	Now        func() time.Time
}

// Store keeps idempotency records in one table.
type Store struct {
	db  DB
	cfg Config
}

// New returns a store over db.
func New(db DB, cfg Config) *Store {
	if cfg.Expires <= 0 {
		cfg.Expires = time.Hour
	}
	if cfg.Wait < 0 {
		cfg.Wait = 0
	} else if cfg.Wait == 0 {
		cfg.Wait = 2 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.InProgress <= 0 {
		cfg.InProgress = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{db: db, cfg: cfg}
}

// Key builds a record id: prefix, "#", and the hex SHA-256 of the parts (joined with NUL, so
// ("ab","c") and ("a","bc") differ).
func Key(prefix string, parts ...string) string {
	return prefix + "#" + Hash([]byte(strings.Join(parts, "\x00")))
}

// Hash is the hex SHA-256 of b, for keys and validation.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Record is a stored record.
type Record struct {
	ID                   string
	Status               string
	Expiration           time.Time
	InProgressExpiration time.Time
	ClaimedAt            time.Time
	Data                 []byte
	Validation           string
}

// Claim is the right to run for a key. End it with Complete or Release.
type Claim struct {
	s          *Store
	id         string
	validation string
	lease      int64 // our in_progress_expiration, the fence of Complete and Release
	// Recovered is true when the key was taken over from a run that died holding it.
	Recovered bool
	// PreviousClaimAt is when that run started (zero when not Recovered or unknown), and
	// PreviousDeadline the latest moment it could still have acted: side effects of the dead
	// run happened between the two.
	PreviousClaimAt  time.Time
	PreviousDeadline time.Time
}

// ID is the record id.
func (c *Claim) ID() string { return c.id }

// Begin claims id for a run whose payload hashes to validation ("" skips the check). It returns
// exactly one of a Claim (run now), a Record to replay, or an error: ErrMismatch,
// ErrInProgress, or a DynamoDB error.
func (s *Store) Begin(ctx context.Context, id, validation string) (*Claim, *Record, error) {
	deadline := time.Now().Add(s.cfg.Wait)
	for {
		claim, current, err := s.tryClaim(ctx, id, validation)
		if err != nil || claim != nil {
			return claim, nil, err
		}
		if current.Validation != "" && validation != "" && current.Validation != validation {
			return nil, nil, ErrMismatch
		}
		if current.Status == StatusCompleted {
			return nil, current, nil
		}
		// INPROGRESS and alive: wait for its result.
		for {
			if !time.Now().Before(deadline) {
				return nil, nil, ErrInProgress
			}
			if err := sleep(ctx, min(s.cfg.Poll, time.Until(deadline))); err != nil {
				return nil, nil, ErrInProgress
			}
			rec, err := s.Get(ctx, id)
			if err != nil {
				// The store stopped answering while another run held the key: that run is
				// delivering, as far as anyone can tell, and must not be doubled.
				return nil, nil, ErrInProgress
			}
			now := s.cfg.Now()
			if rec == nil || rec.expired(now) || rec.stale(now) {
				break // released or dead: try to claim it
			}
			if rec.Status == StatusCompleted {
				if rec.Validation != "" && validation != "" && rec.Validation != validation {
					return nil, nil, ErrMismatch
				}
				return nil, rec, nil
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// tryClaim makes one conditional put. It returns a claim, or the live record that stopped it.
func (s *Store) tryClaim(ctx context.Context, id, validation string) (*Claim, *Record, error) {
	now := s.cfg.Now()
	lease := now.Add(s.cfg.InProgress)
	if d, ok := ctx.Deadline(); ok {
		lease = d
	}
	// Never an already-expired lease (Powertools python issue 4759: a missing or past
	// in_progress_expiration near the deadline left keys stuck in progress).
	if min := now.Add(time.Second); lease.Before(min) {
		lease = min
	}
	item := map[string]types.AttributeValue{
		attrID:                   store.S(id),
		attrStatus:               store.S(StatusInProgress),
		attrExpiration:           store.N(now.Add(s.cfg.Expires).Unix()),
		attrInProgressExpiration: store.N(lease.UnixMilli()),
		attrClaimedAt:            store.N(now.UnixMilli()),
	}
	if validation != "" {
		item[attrValidation] = store.S(validation)
	}
	out, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.cfg.Table),
		Item:      item,
		// the record we replaced, if any: an INPROGRESS one means its run died holding the key
		ReturnValues: types.ReturnValueAllOld,
		// free, expired, or held by a run that is past its deadline
		ConditionExpression: aws.String("attribute_not_exists(#id) OR #exp < :now OR (#st = :inprogress AND #ipe < :nowms)"),
		ExpressionAttributeNames: map[string]string{
			"#id": attrID, "#exp": attrExpiration, "#st": attrStatus, "#ipe": attrInProgressExpiration,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": store.N(now.Unix()), ":inprogress": store.S(StatusInProgress), ":nowms": store.N(now.UnixMilli()),
		},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		if ccf.Item == nil { // a store that does not return the old item: read it
			rec, gerr := s.Get(ctx, id)
			if gerr != nil {
				return nil, nil, gerr
			}
			if rec == nil {
				return nil, &Record{ID: id, Status: StatusInProgress}, nil // deleted meanwhile: the caller retries
			}
			return nil, rec, nil
		}
		return nil, decode(ccf.Item), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	c := &Claim{s: s, id: id, validation: validation, lease: lease.UnixMilli()}
	if old := out.Attributes; old != nil {
		if prev := decode(old); prev.Status == StatusInProgress {
			c.Recovered, c.PreviousClaimAt, c.PreviousDeadline = true, prev.ClaimedAt, prev.InProgressExpiration
		}
	}
	return c, nil, nil
}

// Get reads a record with a consistent read; nil when there is none.
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.cfg.Table),
		Key:            map[string]types.AttributeValue{attrID: store.S(id)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("read idempotency record: %w", err)
	}
	if out.Item == nil {
		return nil, nil
	}
	return decode(out.Item), nil
}

// Complete stores the response and marks the record COMPLETED. ErrLost means another run took
// the key over meanwhile.
func (c *Claim) Complete(ctx context.Context, data []byte) error {
	now := c.s.cfg.Now()
	_, err := c.s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(c.s.cfg.Table),
		Key:                 map[string]types.AttributeValue{attrID: store.S(c.id)},
		UpdateExpression:    aws.String("SET #st = :completed, #data = :data, #exp = :exp REMOVE #ipe"),
		ConditionExpression: aws.String("#st = :inprogress AND #ipe = :lease"),
		ExpressionAttributeNames: map[string]string{
			"#st": attrStatus, "#data": attrData, "#exp": attrExpiration, "#ipe": attrInProgressExpiration,
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":completed": store.S(StatusCompleted), ":inprogress": store.S(StatusInProgress), ":data": store.S(string(data)),
			":exp": store.N(now.Add(c.s.cfg.Expires).Unix()), ":lease": store.N(c.lease),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("complete idempotency record: %w", err)
	}
	return nil
}

// Release deletes the record so that a retry runs again. ErrLost means another run holds it.
func (c *Claim) Release(ctx context.Context) error {
	_, err := c.s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                aws.String(c.s.cfg.Table),
		Key:                      map[string]types.AttributeValue{attrID: store.S(c.id)},
		ConditionExpression:      aws.String("#st = :inprogress AND #ipe = :lease"),
		ExpressionAttributeNames: map[string]string{"#st": attrStatus, "#ipe": attrInProgressExpiration},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":inprogress": store.S(StatusInProgress), ":lease": store.N(c.lease),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrLost
	}
	if err != nil {
		return fmt.Errorf("release idempotency record: %w", err)
	}
	return nil
}

// Record stores data as the key's answer when no live run holds the key: it replaces the
// answer of a COMPLETED record (a queued escalation that a later run delivered), and writes a
// COMPLETED record where there is none, or only an expired one or one whose holder died. The
// latter happens after the state store could not be written when the answer was given (the
// run that delivered had no claim, or could not complete it): from then on the key replays
// this answer instead of running again. A record held by a live run is left alone; that run
// answers for itself. validation, when not empty, is stored if the record has none.
func (s *Store) Record(ctx context.Context, id, validation string, data []byte) error {
	now := s.cfg.Now()
	update := "SET #st = :completed, #data = :data, #exp = :exp REMOVE #ipe"
	names := map[string]string{"#id": attrID, "#st": attrStatus, "#data": attrData, "#exp": attrExpiration, "#ipe": attrInProgressExpiration}
	values := map[string]types.AttributeValue{
		":completed": store.S(StatusCompleted), ":inprogress": store.S(StatusInProgress), ":data": store.S(string(data)),
		":exp": store.N(now.Add(s.cfg.Expires).Unix()), ":now": store.N(now.Unix()), ":nowms": store.N(now.UnixMilli()),
	}
	if validation != "" {
		update = "SET #st = :completed, #data = :data, #exp = :exp, #val = if_not_exists(#val, :val) REMOVE #ipe"
		names["#val"], values[":val"] = attrValidation, store.S(validation)
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.cfg.Table),
		Key:                       map[string]types.AttributeValue{attrID: store.S(id)},
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String("attribute_not_exists(#id) OR #exp < :now OR #st = :completed OR (#st = :inprogress AND #ipe < :nowms)"),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("record idempotency answer: %w", err)
	}
	return nil
}

func (r *Record) expired(now time.Time) bool {
	return !r.Expiration.IsZero() && r.Expiration.Before(now.Truncate(time.Second))
}

// stale reports an INPROGRESS record whose holder is past its deadline.
func (r *Record) stale(now time.Time) bool {
	return r.Status == StatusInProgress && !r.InProgressExpiration.IsZero() && r.InProgressExpiration.Before(now)
}

func decode(item map[string]types.AttributeValue) *Record {
	r := &Record{
		ID:         store.String(item, attrID),
		Status:     store.String(item, attrStatus),
		Validation: store.String(item, attrValidation),
	}
	if n, ok := store.IntOK(item, attrExpiration); ok {
		r.Expiration = time.Unix(n, 0)
	}
	if n, ok := store.IntOK(item, attrInProgressExpiration); ok {
		r.InProgressExpiration = time.UnixMilli(n)
	}
	if n, ok := store.IntOK(item, attrClaimedAt); ok {
		r.ClaimedAt = time.UnixMilli(n)
	}
	if d := store.String(item, attrData); d != "" {
		r.Data = []byte(d)
	}
	return r
}
