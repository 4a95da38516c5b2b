package escalation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
	"github.com/cxbridge/cxbridge/pkg/retry"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// The master ticket of an automatic outage is a write whose answer can be lost, like any ticket
// (DESIGN.md section 7). It carries the outage's id as its marker (the Jira label
// cxb-<outage id>, the ServiceNow correlation_id cxb.outage.<outage id>), and its creation is
// recorded on the outage's record around the call:
//
//   - an attempt first takes a lease on the record (attempt_until): one attempt at a time,
//     however many functions try;
//   - an attempt whose answer was lost (or whose process died: its lease ran out unreleased)
//     leaves since, the latest moment it may have created the master; every later attempt looks
//     for the marker before creating (Jira: only once JIRA_SEARCH_LAG_SECONDS has passed, until
//     then not_before holds it; ServiceNow: a consistent read, at once);
//   - a created master is written to the record and to the flag, which answers carry from then
//     on. Nothing but a verification clears since.

// OutageRecord is an automatic outage as the state table keeps it (OUTAGE#<target>#<id>): why it
// was declared, and its master ticket, created or still pending.
type OutageRecord struct {
	ID, Target, Cause, Why string
	Topic                  Topic
	DeclaredAt, Began      time.Time
	DeclaredBy             string
	// Master is empty while pending.
	Master    Master
	MasterURL string
	CreatedBy string // "cxbridge", or the on-call who named another master (Replace)
	CreatedAt time.Time
	// While pending:
	AttemptUntil time.Time // an attempt is under way until then
	Since        time.Time // an earlier attempt may have created the master up to then
	NotBefore    time.Time // no attempt before (a verification not yet due, a Retry-After)
	Attempts     int
	LastError    string

	ConfirmedBy, EndedBy string
	ConfirmedAt, EndedAt time.Time
}

func (r OutageRecord) item() map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		store.PK: store.S(outagePKPrefix + r.Target + "#" + r.ID), store.SK: store.S(outageSK),
		"outage_id": store.S(r.ID), "target": store.S(r.Target), "cause": store.S(r.Cause), "why": store.S(r.Why),
		"declared_at": store.N(r.DeclaredAt.UnixMilli()), "declared_by": store.S(orUnknown(r.DeclaredBy)),
		store.ExpiresAt: store.N(r.DeclaredAt.Add(recordKeep).Unix()),
	}
	if !r.Began.IsZero() {
		item["began_at"] = store.N(r.Began.UnixMilli())
	}
	if !r.Topic.IsZero() {
		item["topic_fields"] = &types.AttributeValueMemberL{Value: strs(r.Topic.Fields)}
		item["topic_values"] = &types.AttributeValueMemberL{Value: strs(r.Topic.Values)}
	}
	return item
}

func strs(ss []string) []types.AttributeValue {
	out := make([]types.AttributeValue, len(ss))
	for i, s := range ss {
		out[i] = store.S(s)
	}
	return out
}

func decodeRecord(it map[string]types.AttributeValue) OutageRecord {
	r := OutageRecord{
		ID: store.String(it, "outage_id"), Target: store.String(it, "target"), Cause: store.String(it, "cause"), Why: store.String(it, "why"),
		DeclaredAt: store.Time(it, "declared_at"), Began: store.Time(it, "began_at"), DeclaredBy: store.String(it, "declared_by"),
		Master:    Master{Key: store.String(it, "master_key"), SysID: store.String(it, "master_sys_id")},
		MasterURL: store.String(it, "master_url"), CreatedBy: store.String(it, "created_by"), CreatedAt: store.Time(it, "created_at"),
		AttemptUntil: store.Time(it, "attempt_until"), Since: store.Time(it, "doubt_since"), NotBefore: store.Time(it, "not_before"),
		Attempts: int(store.Int(it, "attempt_count")), LastError: store.String(it, "last_error"),
		ConfirmedBy: store.String(it, "confirmed_by"), ConfirmedAt: store.Time(it, "confirmed_at"),
		EndedBy: store.String(it, "ended_by"), EndedAt: store.Time(it, "ended_at"),
	}
	for _, pair := range []struct {
		name string
		dst  *[]string
	}{{"topic_fields", &r.Topic.Fields}, {"topic_values", &r.Topic.Values}} {
		if l, ok := it[pair.name].(*types.AttributeValueMemberL); ok {
			for _, v := range l.Value {
				if s, ok := v.(*types.AttributeValueMemberS); ok {
					*pair.dst = append(*pair.dst, s.Value)
				}
			}
		}
	}
	if len(r.Topic.Fields) != len(r.Topic.Values) {
		r.Topic = Topic{}
	}
	return r
}

// Record reads an automatic outage's record (consistent); ok is false when there is none.
func (o *Outage) Record(ctx context.Context, target, id string) (OutageRecord, bool, error) {
	out, err := o.DB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(o.Table), Key: key(outagePKPrefix+target+"#"+id, outageSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return OutageRecord{}, false, fmt.Errorf("read outage record: %w", err)
	}
	if out.Item == nil {
		return OutageRecord{ID: id, Target: target}, false, nil
	}
	return decodeRecord(out.Item), true, nil
}

// masterCreator is a target that can raise an automatic outage's master ticket. since, when not
// zero, is the latest moment an earlier attempt may have created it: the target looks for it
// first, and answers a *DeferError while its search cannot tell yet.
type masterCreator interface {
	CreateMaster(ctx context.Context, r OutageRecord, since time.Time) (Master, string, error)
}

const (
	// masterAttempt bounds one attempt to create a master when the caller's context does not.
	masterAttempt = 10 * time.Second
	// masterLeaseGrace is how long past its attempt's deadline a lease holds: a create still
	// running in the target is not taken for a dead one.
	masterLeaseGrace = 5 * time.Second
)

// masterRetry: an attempt is up to three calls; a ServiceNow create in doubt is verified by the
// next call at once, a Jira one waits for its search (the *DeferError ends the attempt).
var masterRetry = retry.Policy{Attempts: 3, Base: 200 * time.Millisecond, Max: time.Second, MinAttempt: 300 * time.Millisecond}

// EnsureMaster returns the automatic outage's record, with its master ticket created if it was
// pending and an attempt is due now (through the target's guard: an open breaker leaves it
// pending). An attempt that fails leaves it pending, with what the next attempt must know; only
// the state store failing is an error.
func (o *Outage) EnsureMaster(ctx context.Context, t Target, g Guard, target, id string) (OutageRecord, error) {
	rec, ok, err := o.Record(ctx, target, id)
	if err != nil || !ok || rec.Master.Key != "" {
		return rec, err
	}
	now := o.now()
	if now.Before(rec.NotBefore) || now.Before(rec.AttemptUntil) {
		return rec, nil
	}
	mc, ok := t.(masterCreator)
	if !ok {
		return rec, fmt.Errorf("target %s cannot create a master ticket", target)
	}
	timeout := masterAttempt // real time, as ctx's deadline; the lease is in the service's time
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout < redriveMinAttempt/2 {
		return rec, nil // no time for a create
	}
	owner := newNoteToken()
	orphaned, won, err := o.leaseMaster(ctx, rec, now, now.Add(timeout+masterLeaseGrace), owner)
	if err != nil || !won {
		return rec, err
	}
	since := later(rec.Since, orphaned)
	if !orphaned.IsZero() {
		slog.WarnContext(ctx, "an attempt to create the outage's master did not report; looking for its ticket first", "outage_id", id, "in_doubt_since", since.UTC())
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	var m Master
	var url string
	calls := 0
	err = g.Do(actx, func(ctx context.Context) error {
		_, err := retry.Do(ctx, masterRetry, func(ctx context.Context, _ int) error {
			calls++
			got, u, err := mc.CreateMaster(ctx, rec, since)
			if err == nil {
				m, url = got, u
			}
			if d, ok := doubtOf(err); ok {
				since = later(since, d)
			}
			return err
		})
		return err
	})
	cancel()
	// Recorded even if the store just stalled: a master that exists must not be created again.
	wctx := store.SendDuringRest(ctx)
	if err == nil {
		return o.masterCreated(wctx, rec, owner, m, url, calls)
	}
	notBefore := time.Time{}
	var deferred *DeferError
	switch {
	case errors.As(err, &deferred):
		notBefore = deferred.Until
	default:
		if ra, ok := retryAfter(err); ok {
			notBefore = o.now().Add(ra)
		}
	}
	switch {
	case errors.Is(err, breaker.ErrOpen):
		slog.InfoContext(ctx, "automatic outage's master waits for its target: the breaker is open", "outage_id", id, "target", target)
	case deferred != nil && deferred.Err == nil:
		slog.InfoContext(ctx, "automatic outage's master in doubt: looked for again once search can show it", "outage_id", id, "not_before", notBefore)
	default:
		observe.MetricsFrom(ctx).Count("OutageMasterFailed", 1, observe.D("Target", target))
		slog.WarnContext(ctx, "automatic outage's master not created yet; the next attempt follows", "outage_id", id, "target", target,
			"in_doubt_since", since, "not_before", notBefore, "error", err)
	}
	return o.masterFailed(wctx, rec, owner, since, notBefore, calls, err)
}

// leaseMaster takes the record for one attempt. A lease that ran out unreleased is an attempt
// that died: orphaned is its end, the latest moment it may have created the master.
func (o *Outage) leaseMaster(ctx context.Context, rec OutageRecord, now, until time.Time, owner string) (orphaned time.Time, won bool, err error) {
	out, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(outagePKPrefix+rec.Target+"#"+rec.ID, outageSK),
		UpdateExpression: aws.String("SET attempt_until = :until, attempt_owner = :owner"),
		ConditionExpression: aws.String("attribute_exists(pk) AND attribute_not_exists(master_key) AND " +
			"(attribute_not_exists(attempt_until) OR attempt_until <= :now) AND (attribute_not_exists(not_before) OR not_before <= :now)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":until": store.N(until.UnixMilli()), ":owner": store.S(owner), ":now": store.N(now.UnixMilli()),
		},
		ReturnValues: types.ReturnValueUpdatedOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("lease the outage's master creation: %w", err)
	}
	return store.Time(out.Attributes, "attempt_until"), true, nil
}

// masterCreated records the created master on the record (if this attempt still holds it) and
// on the flag (if it still names the outage).
func (o *Outage) masterCreated(ctx context.Context, rec OutageRecord, owner string, m Master, url string, calls int) (OutageRecord, error) {
	now := o.now()
	vals := map[string]types.AttributeValue{
		":key": store.S(m.Key), ":url": store.S(url), ":by": store.S("cxbridge"), ":now": store.N(now.UnixMilli()),
		":owner": store.S(owner), ":n": store.N(int64(rec.Attempts + calls)),
	}
	set := "SET master_key = :key, master_url = :url, created_by = :by, created_at = :now, attempt_count = :n"
	if m.SysID != "" {
		set += ", master_sys_id = :sys"
		vals[":sys"] = store.S(m.SysID)
	}
	_, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(outagePKPrefix+rec.Target+"#"+rec.ID, outageSK),
		UpdateExpression:          aws.String(set + " REMOVE attempt_until, attempt_owner, doubt_since, not_before, last_error"),
		ConditionExpression:       aws.String("attempt_owner = :owner AND attribute_not_exists(master_key)"),
		ExpressionAttributeValues: vals,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		// The on-call named another master meanwhile (or this attempt outlived its lease):
		// what this attempt created is not used.
		slog.ErrorContext(ctx, "a master ticket was created for an outage that has another master by now; it holds no calls", "outage_id", rec.ID, "unused_master", m.Key)
		cur, _, err := o.Record(ctx, rec.Target, rec.ID)
		return cur, err
	}
	if err != nil {
		// Unrecorded, the lease runs out and the next attempt finds the master by its marker.
		return rec, fmt.Errorf("record the outage's master %s: %w", m.Key, err)
	}
	observe.MetricsFrom(ctx).Count("OutageMasterCreated", 1, observe.D("Target", rec.Target))
	slog.WarnContext(ctx, "automatic outage's master ticket created", "outage_id", rec.ID, "target", rec.Target, "master", m.Key,
		"since_declared_ms", now.Sub(rec.DeclaredAt).Milliseconds())
	rec.Master, rec.MasterURL, rec.CreatedBy, rec.CreatedAt = m, url, "cxbridge", now
	fset := "SET master_key = :key"
	fvals := map[string]types.AttributeValue{":key": store.S(m.Key), ":id": store.S(rec.ID)}
	if m.SysID != "" {
		fset += ", master_sys_id = :sys"
		fvals[":sys"] = store.S(m.SysID)
	}
	_, err = o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(flagPKPrefix+rec.Target, flagSK),
		UpdateExpression: aws.String(fset + " REMOVE master_pending"), ConditionExpression: aws.String("outage_id = :id AND attribute_not_exists(master_key)"),
		ExpressionAttributeValues: fvals,
	})
	if err != nil && !errors.As(err, &ccf) {
		slog.WarnContext(ctx, "outage flag not updated with its master; answers say master_pending until the next run copies it", "error", err)
	}
	o.forget(rec.Target)
	return rec, nil
}

// masterFailed records a failed attempt: since only ever moves forward, and the lease goes.
func (o *Outage) masterFailed(ctx context.Context, rec OutageRecord, owner string, since, notBefore time.Time, calls int, cause error) (OutageRecord, error) {
	rec.Attempts += calls
	rec.LastError = errText(cause)
	vals := map[string]types.AttributeValue{":owner": store.S(owner), ":n": store.N(int64(rec.Attempts)), ":err": store.S(truncate(rec.LastError, 1000))}
	set, remove := []string{"attempt_count = :n", "last_error = :err"}, []string{"attempt_until", "attempt_owner"}
	if !since.IsZero() {
		rec.Since = since
		set = append(set, "doubt_since = :since")
		vals[":since"] = store.N(since.UnixMilli())
	}
	if notBefore.IsZero() {
		remove = append(remove, "not_before")
	} else {
		rec.NotBefore = notBefore
		set = append(set, "not_before = :nb")
		vals[":nb"] = store.N(notBefore.UnixMilli())
	}
	_, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(outagePKPrefix+rec.Target+"#"+rec.ID, outageSK),
		UpdateExpression:          aws.String("SET " + strings.Join(set, ", ") + " REMOVE " + strings.Join(remove, ", ")),
		ConditionExpression:       aws.String("attempt_owner = :owner"),
		ExpressionAttributeValues: vals,
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		// The lease runs out and the next attempt treats this one as in doubt: never a blind
		// repeat.
		return rec, fmt.Errorf("record the failed attempt at the outage's master: %w", err)
	}
	return rec, nil
}

// masterEscalation is an escalation standing for the outage in Jira's project rules and field
// templates: its topic's inputs and its id, nothing of any one caller.
func (r OutageRecord) masterEscalation() *Escalation {
	e := &Escalation{ID: r.ID}
	for i, f := range r.Topic.Fields {
		v := r.Topic.Values[i]
		switch f {
		case "wrapUpCode":
			e.WrapUpCode = v
		case "product":
			e.Product = v
		case "version":
			e.Version = v
		case "queueName":
			e.QueueName = v
		case "trigger":
			e.Trigger = Trigger(v)
		}
	}
	return e
}

// masterSummary is the master ticket's title.
func (r OutageRecord) masterSummary() string {
	if r.Cause == CauseBreaker {
		return fmt.Sprintf("Outage: calls escalated while %s was unavailable (since %s UTC) - cxbridge", targetName(r.Target), r.Began.UTC().Format("2006-01-02 15:04"))
	}
	return truncate(fmt.Sprintf("Outage: many callers about %s - cxbridge", r.Topic), 250)
}

// masterDetails is the master ticket's description.
func (r OutageRecord) masterDetails() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cxbridge declared an outage automatically: %s.\n\n", r.Why)
	fmt.Fprintf(&b, "Declared at (UTC): %s\n", formatTime(r.DeclaredAt))
	if !r.Topic.IsZero() {
		fmt.Fprintf(&b, "Topic: %s\n", r.Topic)
	}
	b.WriteString("\nCallers escalating about it are told the outage is known, and each call is linked to this ticket instead of raising its own: ")
	b.WriteString("an internal note lists the calls linked, at most one note a minute.\n")
	fmt.Fprintf(&b, "The on-call confirms, replaces or ends the outage with: cxbridge outage confirm|replace|end --target %s. ", r.Target)
	b.WriteString("Unconfirmed, it ends by itself after a quiet period without such calls.\n")
	fmt.Fprintf(&b, "\nOutage id: %s (cxbridge)", r.ID)
	return b.String()
}

// CreateMaster raises an automatic outage's master request in the project seed 002's rules pick
// for its topic, as the integration account, carrying the marker cxb-<outage id>.
func (t *JiraTarget) CreateMaster(ctx context.Context, r OutageRecord, since time.Time) (Master, string, error) {
	marker := Marker(r.ID)
	if !since.IsZero() {
		found, err := t.find(ctx, marker)
		if err != nil {
			return Master{}, "", err
		}
		if found != nil {
			return Master{Key: found.Key}, t.browse(found.Key), nil
		}
		if until := since.Add(t.Config.SearchLag); t.now().Before(until) {
			return Master{}, "", &DeferError{Until: until, Since: since, Reason: "an earlier attempt may have created the master request; search may not show it yet"}
		}
	}
	e := r.masterEscalation()
	projectKey, _ := t.project(e)
	p := t.Config.Projects[projectKey]
	fields := map[string]any{}
	for id, tpl := range t.Config.Fields {
		if v, ok := render(tpl, e.vars(r.masterSummary(), r.masterDetails())); ok {
			fields[id] = v
		}
	}
	if s, ok := fields["summary"].(string); ok {
		fields["summary"] = truncate(strings.ReplaceAll(s, "\n", " "), 250)
	}
	if t.Config.KeyField == "labels" {
		// "cxbridge" as on every request cxbridge raises; the reporter, the integration
		// account, keeps a repeat caller's call from ever joining it.
		labels, _ := fields["labels"].([]any)
		if !slices.Contains(labels, any(RequestLabel)) {
			labels = append(labels, RequestLabel)
		}
		fields["labels"] = append(labels, marker)
	} else {
		fields[t.Config.KeyField] = marker
	}
	cr, err := t.API.CreateRequest(ctx, jira.NewRequest{ServiceDeskID: p.ServiceDeskID, RequestTypeID: p.RequestTypeID, Fields: fields})
	if err != nil {
		if connectors.InDoubt(err) {
			now := t.now()
			until := now.Add(t.Config.SearchLag)
			if d, ok := retryAfter(err); ok && now.Add(d).After(until) {
				until = now.Add(d)
			}
			return Master{}, "", &DeferError{Until: until, Since: now, Reason: "the master request's create has an unknown outcome", Err: err}
		}
		return Master{}, "", err
	}
	return Master{Key: cr.IssueKey}, t.browse(cr.IssueKey), nil
}

// masterCorrelation is the correlation_id of an automatic outage's master incident.
func masterCorrelation(id string) (servicenow.Token, error) {
	return servicenow.ParseKey("cxb.outage." + id)
}

// CreateMaster raises an automatic outage's master incident: impact 1 (it affects many
// callers), the escalations' category, urgency and assignment group, correlation_id
// cxb.outage.<outage id>. A create in doubt is a *DoubtError: the next call reads first.
func (t *ServiceNowTarget) CreateMaster(ctx context.Context, r OutageRecord, since time.Time) (Master, string, error) {
	corr, err := masterCorrelation(r.ID)
	if err != nil {
		return Master{}, "", &connectors.Error{System: servicenow.System, Op: "create master incident", Kind: connectors.KindConfig, Err: err}
	}
	if !since.IsZero() {
		ctx = ratelimit.Reserve(ctx, 2) // the read and the create, both or neither
		var rows []servicenow.Incident
		q := servicenow.NewQuery().Where(servicenow.Eq(servicenow.FieldCorrelationID, corr))
		if err := t.API.Query(ctx, servicenow.TableIncident, q, servicenow.QueryOptions{Fields: servicenow.IncidentFields, Limit: 1}, &rows); err != nil {
			return Master{}, "", err
		}
		if len(rows) > 0 {
			tk, _ := t.ticket(rows[0], false, true)
			return Master{Key: rows[0].Number, SysID: rows[0].SysID}, tk.URL, nil
		}
	}
	n := servicenow.NewIncident{
		ShortDescription:   truncate(r.masterSummary(), 160),
		Description:        r.masterDetails(),
		ContactType:        "phone",
		Category:           t.Config.Category,
		Impact:             1,
		Urgency:            t.Config.Urgency,
		CorrelationID:      corr,
		CorrelationDisplay: "cxbridge",
	}
	if t.Config.AssignmentGroup != "" {
		n.AssignmentGroup = servicenow.MustSysID(t.Config.AssignmentGroup)
	}
	in, err := t.API.CreateIncident(ctx, n)
	if err != nil {
		return Master{}, "", t.doubt(err)
	}
	tk, _ := t.ticket(in, false, false)
	return Master{Key: in.Number, SysID: in.SysID}, tk.URL, nil
}
