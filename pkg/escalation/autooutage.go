package escalation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// Automatic outage mode: cxbridge declares an outage itself, for a target that opts in.
//
//   - Rate: every escalation with a topic (the values of <TARGET>_OUTAGE_TOPIC's inputs, its
//     wrap-up code by default) is counted in the state table, per topic and minute. When the
//     last <TARGET>_OUTAGE_WINDOW_MINUTES hold <TARGET>_OUTAGE_THRESHOLD of them, an outage is
//     declared for that topic: escalations about it are linked at once, others are delivered.
//   - Breaker: an escalation (or a redrive run) that finds the target's breaker refusing calls
//     for <TARGET>_OUTAGE_BREAKER_SECONDS declares an outage while the target is down: like a
//     standby master, it takes every escalation the open breaker refuses.
//
// One conditional write declares it (the flag, only if the target has none in force, and the
// outage's record, together): functions crossing the threshold at the same moment elect one
// declarer, and the others link to what it declared. The declarer creates the master ticket
// within its call's budget (master.go); when the target cannot take it, the master is pending,
// callers are answered "linked" all the same, and escalation-redrive creates the master once the
// target answers, before the batched notes. An outage the on-call has not confirmed ends by
// itself after OUTAGE_QUIET_MINUTES without a linked escalation; the on-call can confirm,
// replace or end it (cmd/cxbridge).
//
// A flag the on-call set (on, or a standby master) wins: nothing is declared for that target
// while it is in force. The state store being unavailable means no detection, never a failed
// escalation.

// Causes of an automatic outage.
const (
	CauseRate    = "rate"    // the threshold of escalations about one topic was crossed
	CauseBreaker = "breaker" // the target's breaker refused calls for the configured time
)

// The items of automatic outage mode in the state table (see pkg/store):
//
//	OUTAGE#<target>#<outage id>       MASTER     an automatic outage and its master ticket
//	OUTAGECOUNT#<target>#<topic key>  <minute>   escalations about a topic in one minute
const (
	outagePKPrefix = "OUTAGE#"
	outageSK       = "MASTER"
	countPKPrefix  = "OUTAGECOUNT#"
	// maxOutageWindowMinutes bounds <TARGET>_OUTAGE_WINDOW_MINUTES: a count reads one item per
	// minute of the window.
	maxOutageWindowMinutes = 240
	// touchEvery is how often an environment moves an outage's quiet period on while it links
	// calls to it; the quiet period is minutes long.
	touchEvery = 10 * time.Second
	// recordKeep is how long an outage's record outlives its declaration (TTL).
	recordKeep = 30 * 24 * time.Hour
)

// AutoOutage is the automatic outage detection of one target.
type AutoOutage struct {
	// Threshold escalations about one topic within Window declare an outage; 0: not by rate.
	Threshold int
	Window    time.Duration
	// Topic names the inputs an escalation's topic is made of (TopicFields).
	Topic []string
	// BreakerFor: the target's breaker refusing calls this long declares an outage; 0: not by
	// the breaker.
	BreakerFor time.Duration
}

// On reports whether the target opted in at all.
func (a AutoOutage) On() bool { return a.Threshold > 0 || a.BreakerFor > 0 }

// TopicFields are the inputs an outage's topic can be made of (<TARGET>_OUTAGE_TOPIC).
var TopicFields = []string{"wrapUpCode", "product", "version", "queueName", "trigger"}

// topicField returns the input name as TopicFields spells it.
func topicField(name string) (string, bool) {
	for _, f := range TopicFields {
		if strings.EqualFold(f, strings.TrimSpace(name)) {
			return f, true
		}
	}
	return "", false
}

// field is the (masked) value of one of TopicFields.
func (e *Escalation) field(name string) string {
	switch name {
	case "wrapUpCode":
		return e.WrapUpCode
	case "product":
		return e.Product
	case "version":
		return e.Version
	case "queueName":
		return e.QueueName
	case "trigger":
		return string(e.Trigger)
	}
	return ""
}

// Topic is what a rate outage is about: inputs and their values, e.g. wrapUpCode "E-mail not
// working". Values compare without case and extra spaces.
type Topic struct {
	Fields []string `json:"fields"`
	Values []string `json:"values"` // as the escalation that crossed the threshold had them
}

// IsZero reports a topic-less outage (every escalation).
func (t Topic) IsZero() bool { return len(t.Fields) == 0 }

// topicOf is an escalation's topic over fields; false when one of them is empty (an
// escalation without a wrap-up code is about no wrap-up code).
func topicOf(e *Escalation, fields []string) (Topic, bool) {
	t := Topic{Fields: fields}
	for _, f := range fields {
		v := strings.TrimSpace(e.field(f))
		if v == "" {
			return Topic{}, false
		}
		t.Values = append(t.Values, v)
	}
	return t, len(fields) > 0
}

// Key identifies the topic in item keys: a hash, so neither its length nor its characters
// matter.
func (t Topic) Key() string {
	parts := make([]string, 0, 2*len(t.Fields))
	for i, f := range t.Fields {
		parts = append(parts, f, strings.ToLower(strings.Join(strings.Fields(t.Values[i]), " ")))
	}
	return hashHex([]byte(strings.Join(parts, "\x00")))[:20]
}

// Matches reports whether an escalation is about the topic; every escalation is about the zero
// topic.
func (t Topic) Matches(e *Escalation) bool {
	if t.IsZero() {
		return true
	}
	u, ok := topicOf(e, t.Fields)
	return ok && u.Key() == t.Key()
}

// String reads as `wrapUpCode "E-mail not working"`.
func (t Topic) String() string {
	parts := make([]string, len(t.Fields))
	for i, f := range t.Fields {
		parts[i] = fmt.Sprintf("%s %q", f, t.Values[i])
	}
	return strings.Join(parts, ", ")
}

// Count adds one escalation about a topic and returns how many the last window holds, this one
// included. Counts are per minute (one item each), so the window is whole minutes: the current
// one and the window's minutes before it, never more than the window. The count of the minute
// and the read of the minutes before run concurrently: one round trip.
func (o *Outage) Count(ctx context.Context, target string, t Topic, window time.Duration) (int, error) {
	now := o.now()
	minute := now.Unix() / 60
	pk := countPKPrefix + target + "#" + t.Key()
	minutes := max(int64(window/time.Minute), 1)
	var before int
	var berr error
	var wg sync.WaitGroup
	if minutes > 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before, berr = o.countBetween(ctx, pk, minute-minutes+1, minute-1)
		}()
	}
	out, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(pk, minuteKey(minute)),
		UpdateExpression:         aws.String("ADD #n :one SET expires_at = :exp, topic_text = if_not_exists(topic_text, :topic)"),
		ExpressionAttributeNames: map[string]string{"#n": "n"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":one": store.N(1), ":exp": store.N(now.Add(window + time.Hour).Unix()), ":topic": store.S(t.String()),
		},
		ReturnValues: types.ReturnValueUpdatedNew,
	})
	wg.Wait()
	if err != nil {
		return 0, fmt.Errorf("count escalations about %s: %w", t, err)
	}
	if berr != nil {
		return 0, berr
	}
	return before + int(store.Int(out.Attributes, "n")), nil
}

func minuteKey(m int64) string { return fmt.Sprintf("%012d", m) }

// countBetween sums the counts of minutes from..to.
func (o *Outage) countBetween(ctx context.Context, pk string, from, to int64) (int, error) {
	in := &dynamodb.QueryInput{
		TableName:                aws.String(o.Table),
		KeyConditionExpression:   aws.String("pk = :pk AND sk BETWEEN :from AND :to"),
		ProjectionExpression:     aws.String("#n"),
		ExpressionAttributeNames: map[string]string{"#n": "n"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": store.S(pk), ":from": store.S(minuteKey(from)), ":to": store.S(minuteKey(to)),
		},
	}
	n := 0
	for {
		out, err := o.DB.Query(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("read escalation counts: %w", err)
		}
		for _, it := range out.Items {
			n += int(store.Int(it, "n"))
		}
		if len(out.LastEvaluatedKey) == 0 {
			return n, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// Declaration is an outage cxbridge declares itself.
type Declaration struct {
	Target string
	Cause  string
	Topic  Topic
	Why    string
	// Active: escalations (about Topic) are linked at once (rate). Otherwise the outage takes
	// the escalations the target's open breaker refuses (breaker).
	Active bool
	// Began is when the outage began: the start of the window that crossed the threshold, or
	// when the breaker opened. Queued escalations since then are linked instead of delivered.
	Began time.Time
	// Quiet ends it after this long without a linked escalation, unless confirmed.
	Quiet time.Duration
	// By names the function that declared it, for the on-call.
	By string
}

// Declare writes the outage's flag, if the target has none in force, and its record, in one
// transaction: of the functions declaring at once, exactly one wins (won); the others get the
// flag in force, which they may link to.
func (o *Outage) Declare(ctx context.Context, d Declaration) (Flag, bool, error) {
	now := o.now()
	f := Flag{
		Target: d.Target, Active: d.Active, SetBy: d.By, SetAt: now, Auto: true, OutageID: newOutageID(),
		Cause: d.Cause, Topic: d.Topic, Why: d.Why, Pending: true, Began: d.Began, LastMatch: now, IdleUntil: now.Add(d.Quiet),
	}
	rec := OutageRecord{ID: f.OutageID, Target: d.Target, Cause: d.Cause, Topic: d.Topic, Why: d.Why, DeclaredAt: now, DeclaredBy: d.By, Began: d.Began}
	_, err := o.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName: aws.String(o.Table), Item: flagItem(f),
			// No flag, or one no longer in force: expired (--for), or automatic, unconfirmed
			// and quiet past its end.
			ConditionExpression: aws.String("attribute_not_exists(pk) OR #until <= :now OR " +
				"(auto_declared = :true AND (attribute_not_exists(is_confirmed) OR is_confirmed = :false) AND idle_until <= :now)"),
			ExpressionAttributeNames: map[string]string{"#until": "until"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":now": store.N(now.UnixMilli()), ":true": store.B(true), ":false": store.B(false),
			},
		}},
		{Put: &types.Put{TableName: aws.String(o.Table), Item: rec.item(), ConditionExpression: aws.String("attribute_not_exists(pk)")}},
	}})
	if cancelled(err, 0) {
		cur, _, err := o.ReadFlag(ctx, d.Target, true)
		if err != nil {
			return Flag{}, false, err
		}
		o.remember(cur)
		return cur, false, nil
	}
	if err != nil {
		return Flag{}, false, fmt.Errorf("declare outage: %w", err)
	}
	o.remember(f)
	return f, true, nil
}

func newOutageID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// remember puts a flag this environment just wrote or read consistently in its cache.
func (o *Outage) remember(f Flag) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cache == nil {
		o.cache = map[string]cachedFlag{}
	}
	o.cache[f.Target] = cachedFlag{flag: f, at: o.now()}
}

// Touch moves an automatic outage's quiet period on: an escalation was just linked to it. At
// most every touchEvery per environment; a failure only costs precision.
func (o *Outage) Touch(ctx context.Context, f Flag, quiet time.Duration) {
	if !f.Auto || f.OutageID == "" {
		return
	}
	now := o.now()
	o.mu.Lock()
	last, ok := o.touched[f.OutageID]
	if ok && now.Sub(last) < touchEvery {
		o.mu.Unlock()
		return
	}
	if o.touched == nil {
		o.touched = map[string]time.Time{}
	}
	o.touched[f.OutageID] = now
	o.mu.Unlock()
	_, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(flagPKPrefix+f.Target, flagSK),
		UpdateExpression:    aws.String("SET last_match_at = :now, idle_until = :idle"),
		ConditionExpression: aws.String("outage_id = :id AND (attribute_not_exists(last_match_at) OR last_match_at < :now)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": store.N(now.UnixMilli()), ":idle": store.N(now.Add(quiet).UnixMilli()), ":id": store.S(f.OutageID),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		slog.WarnContext(ctx, "automatic outage's last linked call not recorded; it may end up to a minute early", "outage_id", f.OutageID, "error", err)
	}
}

// EndIdle ends the target's automatic outage when nobody confirmed it and no escalation was
// linked to it for its quiet period; ended reports that this call ended it. Its record stays:
// a pending master is still created, and the links still noted.
func (o *Outage) EndIdle(ctx context.Context, target string) (f Flag, ended bool, err error) {
	f, exists, err := o.readFlag(ctx, target, true)
	now := o.now()
	if err != nil || !exists || !f.Auto || f.Confirmed || f.IdleUntil.IsZero() || now.Before(f.IdleUntil) {
		return f, false, err
	}
	_, err = o.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(o.Table), Key: key(flagPKPrefix+target, flagSK),
		ConditionExpression: aws.String("outage_id = :id AND idle_until = :idle AND (attribute_not_exists(is_confirmed) OR is_confirmed = :false)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":id": store.S(f.OutageID), ":idle": store.N(f.IdleUntil.UnixMilli()), ":false": store.B(false),
		},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return f, false, nil // a call was linked meanwhile, or the on-call acted
	}
	if err != nil {
		return f, false, fmt.Errorf("end automatic outage: %w", err)
	}
	o.forget(target)
	o.endRecord(ctx, f, "cxbridge (quiet period)")
	o.restartCount(ctx, f)
	return f, true, nil
}

// restartCount forgets what a rate outage counted: once it has ended, the calls that declared it
// do not declare the next one.
func (o *Outage) restartCount(ctx context.Context, f Flag) {
	if f.Cause != CauseRate || f.Topic.IsZero() {
		return
	}
	pk := countPKPrefix + f.Target + "#" + f.Topic.Key()
	in := &dynamodb.QueryInput{
		TableName: aws.String(o.Table), KeyConditionExpression: aws.String("pk = :pk"), ProjectionExpression: aws.String("sk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": store.S(pk)},
	}
	var sks []string
	for {
		out, err := o.DB.Query(ctx, in)
		if err != nil {
			slog.WarnContext(ctx, "the ended outage's counts were not cleared; its topic may be declared again sooner", "error", err)
			return
		}
		for _, it := range out.Items {
			sks = append(sks, store.String(it, store.SK))
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	if err := o.removeKeys(ctx, pk, sks); err != nil {
		slog.WarnContext(ctx, "the ended outage's counts were not cleared; its topic may be declared again sooner", "error", err)
	}
}

// endedSK is the item recording when the on-call last ended a target's outage (under the
// flag's partition).
const endedSK = "ENDED"

// lastEnded is when the on-call last ended an outage of the target (zero: never).
func (o *Outage) lastEnded(ctx context.Context, target string) (time.Time, error) {
	out, err := o.DB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(o.Table), Key: key(flagPKPrefix+target, endedSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read when the last outage ended: %w", err)
	}
	return store.Time(out.Item, "ended_at"), nil
}

// ErrNoOutage: the target has no outage in force (or no automatic one, for Confirm).
var ErrNoOutage = errors.New("no outage in force")

// Confirm marks the target's automatic outage as confirmed by the on-call: it no longer ends by
// itself (and its alarm clears). A message, when given, replaces what callers hear.
func (o *Outage) Confirm(ctx context.Context, target, by, message string) (Flag, error) {
	now := o.now()
	expr := "SET is_confirmed = :true, confirmed_by = :by, confirmed_at = :now"
	vals := map[string]types.AttributeValue{":true": store.B(true), ":by": store.S(orUnknown(by)), ":now": store.N(now.UnixMilli())}
	if message != "" {
		expr += ", #msg = :msg"
		vals[":msg"] = store.S(message)
	}
	f, err := o.updateInForce(ctx, target, true, expr, vals)
	if err != nil {
		return Flag{}, err
	}
	o.updateRecord(ctx, f, "SET confirmed_by = :by, confirmed_at = :now", map[string]types.AttributeValue{":by": store.S(orUnknown(by)), ":now": store.N(now.UnixMilli())})
	return f, nil
}

// Replace gives the target's outage another master ticket (m, checked by the caller). For an
// automatic outage the outage is confirmed and its record takes the new master, so every link
// not yet noted, from before and after, is noted on it; a master still pending is then never
// created.
func (o *Outage) Replace(ctx context.Context, target string, m Master, by, message string) (Flag, error) {
	f, _, err := o.ReadFlag(ctx, target, true)
	if err != nil {
		return Flag{}, err
	}
	if !f.Set(o.now()) {
		return Flag{}, fmt.Errorf("%s: %w", target, ErrNoOutage)
	}
	if !f.Auto {
		f.Master, f.SetBy, f.SetAt = m, by, o.now()
		if message != "" {
			f.Message = message
		}
		return f, o.SetFlag(ctx, f)
	}
	now := o.now()
	by = orUnknown(by)
	vals := map[string]types.AttributeValue{":key": store.S(m.Key), ":by": store.S(by), ":now": store.N(now.UnixMilli()), ":id": store.S(f.OutageID)}
	set, remove := []string{"master_key = :key", "created_by = :by", "created_at = :now"}, []string{"master_url", "attempt_until", "attempt_owner", "not_before"}
	if m.SysID != "" {
		set = append(set, "master_sys_id = :sys")
		vals[":sys"] = store.S(m.SysID)
	} else {
		remove = append(remove, "master_sys_id")
	}
	// The record first: it is what the notes follow. An attempt to create the master that is
	// under way loses its lease and leaves what it made unused (logged).
	_, err = o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(outagePKPrefix+target+"#"+f.OutageID, outageSK),
		UpdateExpression:          aws.String("SET " + strings.Join(set, ", ") + " REMOVE " + strings.Join(remove, ", ")),
		ConditionExpression:       aws.String("outage_id = :id"),
		ExpressionAttributeValues: vals,
	})
	if err != nil {
		return Flag{}, fmt.Errorf("replace the outage's master: %w", err)
	}
	fvals := map[string]types.AttributeValue{":key": store.S(m.Key), ":true": store.B(true), ":by": store.S(by), ":now": store.N(now.UnixMilli())}
	set, remove = []string{"master_key = :key", "is_confirmed = :true", "confirmed_by = :by", "confirmed_at = :now"}, []string{"master_pending"}
	if m.SysID != "" {
		set = append(set, "master_sys_id = :sys")
		fvals[":sys"] = store.S(m.SysID)
	} else {
		remove = append(remove, "master_sys_id")
	}
	if message != "" {
		set = append(set, "#msg = :msg")
		fvals[":msg"] = store.S(message)
	}
	return o.updateInForce(ctx, target, true, "SET "+strings.Join(set, ", ")+" REMOVE "+strings.Join(remove, ", "), fvals)
}

// End turns the target's outage off (the on-call); it returns the flag that was in force. An
// automatic outage's record stays: a pending master is still created for the calls already
// linked, and they are still noted.
func (o *Outage) End(ctx context.Context, target, by string) (Flag, bool, error) {
	out, err := o.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(o.Table), Key: key(flagPKPrefix+target, flagSK), ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return Flag{}, false, fmt.Errorf("end outage: %w", err)
	}
	o.forget(target)
	if out.Attributes == nil {
		return Flag{Target: target}, false, nil
	}
	f := decodeFlag(target, out.Attributes)
	if f.Auto {
		o.endRecord(ctx, f, orUnknown(by))
	}
	// The on-call decided: the counts that declared it do not declare the next one, and a
	// breaker already open does not either (only one that opens after now).
	o.restartCount(ctx, f)
	now := o.now()
	_, err = o.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(o.Table), Item: map[string]types.AttributeValue{
		store.PK: store.S(flagPKPrefix + target), store.SK: store.S(endedSK), "ended_at": store.N(now.UnixMilli()),
		"ended_by": store.S(orUnknown(by)), store.ExpiresAt: store.N(now.Add(30 * 24 * time.Hour).Unix()),
	}})
	if err != nil {
		slog.WarnContext(ctx, "when the outage ended was not recorded; an open breaker may declare it again", "error", err)
	}
	return f, f.Set(now), nil
}

// updateInForce updates the target's flag if an outage is in force (automatic, when auto) and
// returns it as updated.
func (o *Outage) updateInForce(ctx context.Context, target string, auto bool, expr string, vals map[string]types.AttributeValue) (Flag, error) {
	now := o.now()
	cond := "attribute_exists(pk) AND (attribute_not_exists(#until) OR #until > :at) AND " +
		"(attribute_not_exists(idle_until) OR idle_until > :at OR is_confirmed = :yes)"
	if auto {
		cond += " AND auto_declared = :yes"
	}
	vals[":at"], vals[":yes"] = store.N(now.UnixMilli()), store.B(true)
	names := map[string]string{"#until": "until"}
	if strings.Contains(expr, "#msg") {
		names["#msg"] = "message"
	}
	out, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(flagPKPrefix+target, flagSK),
		UpdateExpression: aws.String(expr), ConditionExpression: aws.String(cond),
		ExpressionAttributeNames: names, ExpressionAttributeValues: vals,
		ReturnValues: types.ReturnValueAllNew,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		what := "outage"
		if auto {
			what = "automatic outage"
		}
		return Flag{}, fmt.Errorf("%s has no %s in force: %w", target, what, ErrNoOutage)
	}
	if err != nil {
		return Flag{}, fmt.Errorf("update outage flag: %w", err)
	}
	o.forget(target)
	return decodeFlag(target, out.Attributes), nil
}

// endRecord notes on an automatic outage's record who ended it and when (for the on-call).
func (o *Outage) endRecord(ctx context.Context, f Flag, by string) {
	o.updateRecord(ctx, f, "SET ended_at = :now, ended_by = :by", map[string]types.AttributeValue{":now": store.N(o.now().UnixMilli()), ":by": store.S(by)})
}

func (o *Outage) updateRecord(ctx context.Context, f Flag, expr string, vals map[string]types.AttributeValue) {
	if f.OutageID == "" {
		return
	}
	vals[":id"] = store.S(f.OutageID)
	_, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(outagePKPrefix+f.Target+"#"+f.OutageID, outageSK),
		UpdateExpression: aws.String(expr), ConditionExpression: aws.String("outage_id = :id"), ExpressionAttributeValues: vals,
	})
	if err != nil {
		slog.WarnContext(ctx, "automatic outage record not updated", "outage_id", f.OutageID, "error", err)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// detectRate counts the escalation towards its target's threshold and declares an outage when
// the count reaches it. It returns the flag to link the escalation to, if any.
func (s *Service) detectRate(ctx context.Context, e *Escalation) (Flag, bool) {
	a, ok := s.Config.AutoOutage[e.Target]
	if !ok || a.Threshold <= 0 {
		return Flag{}, false
	}
	topic, ok := topicOf(e, a.Topic)
	if !ok {
		return Flag{}, false
	}
	n, err := s.Outage.Count(ctx, e.Target, topic, a.Window)
	if err != nil {
		observe.MetricsFrom(ctx).Count("OutageDetectionError", 1, observe.D("Target", e.Target))
		slog.WarnContext(ctx, "automatic outage detection skipped: the state store did not answer", "error", err)
		return Flag{}, false
	}
	if n < a.Threshold {
		return Flag{}, false
	}
	now := s.now()
	minutes := int(a.Window / time.Minute)
	f, won, err := s.Outage.Declare(ctx, Declaration{
		Target: e.Target, Cause: CauseRate, Topic: topic, Active: true, Began: now.Add(-a.Window), Quiet: s.Config.OutageQuiet,
		By: "create-escalation",
		Why: fmt.Sprintf("%d escalations to %s about %s within %d minute(s) (threshold %d in %d)",
			n, targetName(e.Target), topic, minutes, a.Threshold, minutes),
	})
	if err != nil {
		observe.MetricsFrom(ctx).Count("OutageDetectionError", 1, observe.D("Target", e.Target))
		slog.WarnContext(ctx, "automatic outage not declared: the state store did not answer", "error", err)
		return Flag{}, false
	}
	if !won {
		return f, f.Links(e, now)
	}
	s.declared(ctx, f)
	return s.masterNow(ctx, f), true
}

// detectDown declares an outage when the target's breaker has refused calls for its configured
// time. It returns the flag to link the refused escalation to, if any.
func (s *Service) detectDown(ctx context.Context, target string, open *breaker.OpenError, by string) (Flag, bool) {
	a, ok := s.Config.AutoOutage[target]
	now := s.now()
	if !ok || a.BreakerFor <= 0 || open.Forced || open.Since.IsZero() || now.Sub(open.Since) < a.BreakerFor {
		return Flag{}, false
	}
	// The on-call ended an outage during this same down time: not again until the target has
	// answered (its breaker closed) and failed anew.
	if ended, err := s.Outage.lastEnded(ctx, target); err != nil || !ended.Before(open.Since) {
		return Flag{}, false
	}
	f, won, err := s.Outage.Declare(ctx, Declaration{
		Target: target, Cause: CauseBreaker, Began: open.Since, Quiet: s.Config.OutageQuiet, By: by,
		Why: fmt.Sprintf("the %s circuit breaker has refused calls since %s (%s; threshold %s)",
			target, open.Since.UTC().Format(time.RFC3339), now.Sub(open.Since).Round(time.Second), a.BreakerFor),
	})
	if err != nil {
		observe.MetricsFrom(ctx).Count("OutageDetectionError", 1, observe.D("Target", target))
		slog.WarnContext(ctx, "automatic outage not declared: the state store did not answer", "error", err)
		return Flag{}, false
	}
	if won {
		s.declared(ctx, f)
		// The target is down: the master waits for it (escalation-redrive creates it).
	}
	return f, f.Set(now) && !f.Active
}

// declared tells the on-call (the log line, OutageDeclared; integration-health's
// OutageAutomatic gauge raises the alarm).
func (s *Service) declared(ctx context.Context, f Flag) {
	observe.MetricsFrom(ctx).Count("OutageDeclared", 1, observe.D("Target", f.Target), observe.D("Cause", f.Cause))
	slog.WarnContext(ctx, "outage declared automatically: calls are linked to one master ticket", "target", f.Target, "cause", f.Cause,
		"why", f.Why, "outage_id", f.OutageID, "topic", f.Topic.String(), "quiet_minutes", int(s.Config.OutageQuiet/time.Minute))
}

// masterNow creates the declared outage's master within the call's delivery budget; when the
// target cannot take it (its breaker is open, it fails, the time is up), it stays pending for
// escalation-redrive.
func (s *Service) masterNow(ctx context.Context, f Flag) Flag {
	t := s.Targets[f.Target]
	if t == nil {
		return f
	}
	mctx, cancel := context.WithDeadline(ctx, s.deliverBy(ctx))
	defer cancel()
	rec, err := s.Outage.EnsureMaster(mctx, t, s.guard(f.Target), f.Target, f.OutageID)
	if err != nil {
		slog.WarnContext(ctx, "automatic outage's master not created yet; escalation-redrive creates it", "outage_id", f.OutageID, "error", err)
		return f
	}
	if rec.Master.Key != "" {
		f.Master, f.Pending = rec.Master, false
		s.Outage.remember(f)
	}
	return f
}

// convertible reports whether a queued escalation becomes a link to an automatic outage
// instead of a ticket: it is what the outage is about, was queued since it began (rate) or
// because the target was down (breaker), and no attempt may have created its ticket already
// (a link besides a ticket would be a double).
func convertible(it Item, f Flag) bool {
	if !f.Auto || !it.Since.IsZero() {
		return false
	}
	switch f.Cause {
	case CauseRate:
		return f.Topic.Matches(&it.Escalation) && !it.CreatedAt.Before(f.Began)
	case CauseBreaker:
		return it.Reason == ReasonBreakerOpen || it.Reason == ReasonUnavailable
	}
	return false
}

// linkedResult is the answer of an escalation linked to a flag's master: the master's key, or
// none yet (master_pending) while an automatic outage's master waits for its target.
func (s *Service) linkedResult(e *Escalation, f Flag) Result {
	msg := f.Message
	if msg == "" {
		msg = s.Config.OutageMessage
	}
	res := s.result(e, StatusLinked, "", 0, msg)
	res.CatastropheMode = true
	if f.Pending || f.Master.Key == "" {
		res.Reason = ReasonMasterPending
		return res
	}
	res.TicketKey = f.Master.Key
	if t := s.Targets[e.Target]; t != nil {
		res.TicketURL = t.MasterURL(f.Master)
	}
	return res
}
