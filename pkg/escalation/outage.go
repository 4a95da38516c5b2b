package escalation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// Outage mode (seed 001's "Outage Circuit Breaker").
//
// A target's catastrophe flag (CATASTROPHE#<target>, STATE) names a master ticket and the
// message the IVR may play. While the flag is active every escalation for that target is
// answered at once with "linked" and the master's key, and nothing is sent to the target on the
// caller's time. A flag that is not active (a standby master) is used only while the target's
// circuit breaker is open; with the breaker open and no master at all, escalations are queued.
//
// Links are batched: each is one item under MASTER#<target>#<master>, and escalation-redrive
// writes them as one note per master per minute, whatever the call volume. The minute is a
// lease on the master's registry item (MASTERS, <target>#<master>): a conditional write that
// only one writer per minute can win, so overlapping runs cannot send a second note.
const (
	flagPKPrefix   = "CATASTROPHE#"
	flagSK         = "STATE"
	mastersPK      = "MASTERS"
	masterPKPrefix = "MASTER#"
)

// Flag is a target's outage state.
type Flag struct {
	Target string
	// Active is catastrophe mode: every call is linked to Master (or, with a Topic, every call
	// about it). When false, Master is a standby, used only while the target's breaker is open.
	Active  bool
	Master  Master
	Message string // what the IVR may play; empty uses OUTAGE_MESSAGE
	Reason  string // the operator's note, e.g. "email outage, P1 bridge open"
	SetBy   string
	SetAt   time.Time
	// Until ends the flag automatically (zero: until turned off).
	Until time.Time

	// Auto: cxbridge declared this outage itself (autooutage.go), and the fields below say how.
	Auto bool
	// OutageID names the outage's record (OUTAGE#<target>#<id>), which holds its master ticket
	// as it is created or replaced; links are kept under the outage, not under a ticket key, so
	// they reach whichever master it has when they are noted.
	OutageID string
	Cause    string // CauseRate or CauseBreaker
	// Topic, when set, limits the outage to escalations about it (a rate outage): others are
	// delivered as usual.
	Topic Topic
	Why   string // how it was declared, in words for the on-call
	// Began is when the outage began (the start of the window that crossed the threshold, or
	// when the breaker opened): queued escalations since then become links.
	Began time.Time
	// Pending: the master ticket is not created yet (the target could not take it);
	// escalations are linked at once all the same, and escalation-redrive creates it.
	Pending bool
	// Confirmed: the on-call confirmed the outage (or named its master): it no longer ends by
	// itself.
	Confirmed   bool
	ConfirmedBy string
	// LastMatch is the last escalation linked to it; an outage nobody confirmed ends at
	// IdleUntil (LastMatch plus OUTAGE_QUIET_MINUTES) unless another one comes.
	LastMatch time.Time
	IdleUntil time.Time
}

// Set reports whether the flag is in force at now: it has a master (or an automatic outage's
// pending one), has not reached Until, and, when automatic and unconfirmed, has not been quiet
// past IdleUntil.
func (f Flag) Set(now time.Time) bool {
	switch {
	case f.Master.Key == "" && f.OutageID == "":
		return false
	case !f.Until.IsZero() && !now.Before(f.Until):
		return false
	case f.Auto && !f.Confirmed && !f.IdleUntil.IsZero() && !now.Before(f.IdleUntil):
		return false
	}
	return true
}

// Links reports whether an escalation is linked at once, without trying the target: the flag
// is active and, for an outage about a topic, the escalation is about it.
func (f Flag) Links(e *Escalation, now time.Time) bool {
	return f.Set(now) && f.Active && f.Topic.Matches(e)
}

// outageLinkPrefix starts the link key of an automatic outage: "outage:<id>", which no ticket
// key can be.
const outageLinkPrefix = "outage:"

// linkKey is what the flag's links are kept under (MASTER#<target>#<key>).
func (f Flag) linkKey() string {
	if f.OutageID != "" {
		return outageLinkPrefix + f.OutageID
	}
	return f.Master.Key
}

// Outage reads and writes outage flags and links.
type Outage struct {
	DB    StateDB
	Table string
	Now   func() time.Time
	// CacheFor is how long an environment reuses a flag it read; default 1 s (DESIGN.md
	// section 7). Negative: no cache.
	CacheFor time.Duration

	mu         sync.Mutex
	cache      map[string]cachedFlag
	registered map[string]time.Time
	touched    map[string]time.Time // automatic outages whose quiet period this environment moved on
}

type cachedFlag struct {
	flag Flag
	at   time.Time
}

func (o *Outage) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Flag returns the target's flag, from this environment's cache when it is fresh. A missing
// flag is the zero Flag.
func (o *Outage) Flag(ctx context.Context, target string) (Flag, error) {
	now := o.now()
	ttl := o.CacheFor
	if ttl == 0 {
		ttl = time.Second
	}
	o.mu.Lock()
	if c, ok := o.cache[target]; ok && ttl > 0 && now.Sub(c.at) < ttl {
		o.mu.Unlock()
		return c.flag, nil
	}
	o.mu.Unlock()
	f, _, err := o.ReadFlag(ctx, target, false)
	if err != nil {
		return Flag{}, err
	}
	o.mu.Lock()
	if o.cache == nil {
		o.cache = map[string]cachedFlag{}
	}
	o.cache[target] = cachedFlag{flag: f, at: now}
	o.mu.Unlock()
	return f, nil
}

// ReadFlag reads the flag from the table; exists is false when there is none. A flag that is no
// longer in force (Set) reads as the zero Flag.
func (o *Outage) ReadFlag(ctx context.Context, target string, consistent bool) (f Flag, exists bool, err error) {
	f, exists, err = o.readFlag(ctx, target, consistent)
	if err != nil || !exists {
		return f, exists, err
	}
	if !f.Set(o.now()) {
		return Flag{Target: target}, true, nil
	}
	return f, true, nil
}

// readFlag reads the stored flag as it is, in force or not.
func (o *Outage) readFlag(ctx context.Context, target string, consistent bool) (Flag, bool, error) {
	out, err := o.DB.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(o.Table), Key: key(flagPKPrefix+target, flagSK), ConsistentRead: aws.Bool(consistent),
	})
	if err != nil {
		return Flag{}, false, fmt.Errorf("read outage flag: %w", err)
	}
	if out.Item == nil {
		return Flag{Target: target}, false, nil
	}
	return decodeFlag(target, out.Item), true, nil
}

func decodeFlag(target string, it map[string]types.AttributeValue) Flag {
	f := Flag{
		Target: target, Active: store.Bool(it, "active"),
		Master:  Master{Key: store.String(it, "master_key"), SysID: store.String(it, "master_sys_id")},
		Message: store.String(it, "message"), Reason: store.String(it, "reason"), SetBy: store.String(it, "set_by"),
		SetAt: store.Time(it, "set_at"), Until: store.Time(it, "until"),
		Auto: store.Bool(it, "auto_declared"), OutageID: store.String(it, "outage_id"), Cause: store.String(it, "cause"),
		Why: store.String(it, "why"), Pending: store.Bool(it, "master_pending"), Confirmed: store.Bool(it, "is_confirmed"),
		ConfirmedBy: store.String(it, "confirmed_by"), LastMatch: store.Time(it, "last_match_at"), IdleUntil: store.Time(it, "idle_until"),
		Began: store.Time(it, "began_at"),
	}
	if raw := store.String(it, "topic"); raw != "" {
		_ = json.Unmarshal([]byte(raw), &f.Topic)
	}
	return f
}

// flagItem is the stored form of a flag.
func flagItem(f Flag) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		store.PK: store.S(flagPKPrefix + f.Target), store.SK: store.S(flagSK),
		"active": store.B(f.Active), "set_at": store.N(f.SetAt.UnixMilli()),
	}
	for k, v := range map[string]string{"master_key": f.Master.Key, "master_sys_id": f.Master.SysID, "message": f.Message,
		"reason": f.Reason, "set_by": f.SetBy, "outage_id": f.OutageID, "cause": f.Cause, "why": f.Why, "confirmed_by": f.ConfirmedBy} {
		if v != "" {
			item[k] = store.S(v)
		}
	}
	for k, v := range map[string]time.Time{"until": f.Until, "last_match_at": f.LastMatch, "idle_until": f.IdleUntil, "began_at": f.Began} {
		if !v.IsZero() {
			item[k] = store.N(v.UnixMilli())
		}
	}
	for k, v := range map[string]bool{"auto_declared": f.Auto, "master_pending": f.Pending, "is_confirmed": f.Confirmed} {
		if v {
			item[k] = store.B(true)
		}
	}
	if !f.Topic.IsZero() {
		b, _ := json.Marshal(f.Topic)
		item["topic"] = store.S(string(b))
	}
	if !f.Until.IsZero() {
		item[store.ExpiresAt] = store.N(f.Until.Add(24 * time.Hour).Unix())
	}
	return item
}

// SetFlag writes a target's flag (the operator CLI).
func (o *Outage) SetFlag(ctx context.Context, f Flag) error {
	if f.Target != Jira && f.Target != ServiceNow {
		return fmt.Errorf("target %q: want jira or servicenow", f.Target)
	}
	if strings.TrimSpace(f.Master.Key) == "" && f.OutageID == "" {
		return errors.New("a master ticket is required")
	}
	if f.SetAt.IsZero() {
		f.SetAt = o.now()
	}
	if _, err := o.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(o.Table), Item: flagItem(f)}); err != nil {
		return fmt.Errorf("write outage flag: %w", err)
	}
	o.forget(f.Target)
	return nil
}

// ClearFlag removes a target's flag; it reports whether there was one.
func (o *Outage) ClearFlag(ctx context.Context, target string) (bool, error) {
	out, err := o.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: aws.String(o.Table), Key: key(flagPKPrefix+target, flagSK), ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return false, fmt.Errorf("clear outage flag: %w", err)
	}
	o.forget(target)
	return out.Attributes != nil, nil
}

func (o *Outage) forget(target string) {
	o.mu.Lock()
	delete(o.cache, target)
	o.mu.Unlock()
}

// Link records that an escalation was linked to a flag's master ticket (or to its automatic
// outage, whose master may still be pending).
func (o *Outage) Link(ctx context.Context, f Flag, e *Escalation) error {
	return o.link(ctx, f, e, o.now())
}

// link writes the link as of at: the same escalation linked as of the same moment is one item,
// so a queued escalation that two overlapping runs convert is listed once.
func (o *Outage) link(ctx context.Context, f Flag, e *Escalation, at time.Time) error {
	now := o.now()
	item := map[string]types.AttributeValue{
		store.PK: store.S(masterPKPrefix + f.Target + "#" + f.linkKey()), store.SK: store.S(dueKey(at, e.ID)),
		"id": store.S(e.ID), "conversation_id": store.S(e.ConversationID), "trigger": store.S(string(e.Trigger)),
		"occurred_at": store.N(e.OccurredAt.UnixMilli()), store.ExpiresAt: store.N(now.Add(14 * 24 * time.Hour).Unix()),
	}
	if e.QueueName != "" {
		item["queue"] = store.S(e.QueueName)
	}
	if _, err := o.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(o.Table), Item: item}); err != nil {
		return fmt.Errorf("record outage link: %w", err)
	}
	return o.register(ctx, MasterRef{Target: f.Target, Master: f.Master, OutageID: f.OutageID}, now)
}

// register makes sure the redrive knows the master has links: at most once a minute per
// environment and master.
func (o *Outage) register(ctx context.Context, ref MasterRef, now time.Time) error {
	k := ref.Target + "#" + ref.linkKey()
	o.mu.Lock()
	last, ok := o.registered[k]
	o.mu.Unlock()
	if ok && now.Sub(last) < time.Minute {
		return nil
	}
	expr, vals := refAttrs(ref)
	expr = "SET registered_at = :now, " + expr
	vals[":now"] = store.N(now.UnixMilli())
	if ref.OutageID == "" && ref.Master.SysID != "" {
		expr += ", master_sys_id = if_not_exists(master_sys_id, :sys)"
		vals[":sys"] = store.S(ref.Master.SysID)
	}
	_, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: key(mastersPK, k),
		UpdateExpression: aws.String(expr), ExpressionAttributeValues: vals,
	})
	if err != nil {
		return fmt.Errorf("register master ticket: %w", err)
	}
	o.mu.Lock()
	if o.registered == nil {
		o.registered = map[string]time.Time{}
	}
	o.registered[k] = now
	o.mu.Unlock()
	return nil
}

// refAttrs is what names a master's registry item: its target and either the master's key or
// the automatic outage whose record holds the master.
func refAttrs(ref MasterRef) (string, map[string]types.AttributeValue) {
	vals := map[string]types.AttributeValue{":target": store.S(ref.Target)}
	if ref.OutageID != "" {
		vals[":oid"] = store.S(ref.OutageID)
		return "target = :target, outage_id = :oid", vals
	}
	vals[":key"] = store.S(ref.Master.Key)
	return "target = :target, master_key = :key", vals
}

// MasterRef is a master ticket with links, as registered.
type MasterRef struct {
	Target string
	// Master is the ticket. For an automatic outage (OutageID) it is not registered: its
	// outage record holds it (OutageMaster), and it may still be pending.
	Master       Master
	OutageID     string
	RegisteredAt time.Time
}

// linkKey is what the links are kept under (see Flag.linkKey).
func (r MasterRef) linkKey() string {
	if r.OutageID != "" {
		return outageLinkPrefix + r.OutageID
	}
	return r.Master.Key
}

// Masters lists the registered master tickets.
func (o *Outage) Masters(ctx context.Context) ([]MasterRef, error) {
	out, err := o.DB.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(o.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": store.S(mastersPK)},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("list master tickets: %w", err)
	}
	var refs []MasterRef
	for _, it := range out.Items {
		ref := MasterRef{Target: store.String(it, "target"), OutageID: store.String(it, "outage_id"), RegisteredAt: store.Time(it, "registered_at")}
		if ref.OutageID == "" {
			ref.Master = Master{Key: store.String(it, "master_key"), SysID: store.String(it, "master_sys_id")}
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// PendingLinks counts the links of a master not yet noted (for the operator CLI).
func (o *Outage) PendingLinks(ctx context.Context, ref MasterRef) (int, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(o.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": store.S(masterPKPrefix + ref.Target + "#" + ref.linkKey())},
		Select:                    types.SelectCount,
	}
	n := 0
	for {
		out, err := o.DB.Query(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("count outage links: %w", err)
		}
		n += int(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			return n, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// link is one pending link.
type link struct {
	sk, id, conversation, trigger, queue string
	occurred                             time.Time
}

// FlushResult says what one flush did.
type FlushResult struct {
	Linked  int  // calls listed in the note written (or found written)
	Pending bool // more links wait for the next minute
	Skipped bool // this minute's note was already written (or attempted)
	Note    bool // a note was sent
	// Verified: the note of an earlier minute, whose answer was lost, was found on the master
	// ticket; its links were removed instead of being noted again.
	Verified bool
	// MasterPending: the links wait for an automatic outage's master, not created yet.
	MasterPending bool
}

// noteTimeout bounds one note call. It is also how long the note stays "in flight": a later
// minute verifies it only after this.
const noteTimeout = 15 * time.Second

// NoteMarker is the line every master note ends with: "(cxbridge note <token>)", token being
// 16 random hex digits. The token is recorded on the master before the note is sent, so a note
// whose answer was lost (or whose writer died) is looked for, by its token, before its links
// are noted again.
func NoteMarker(token string) string { return "(cxbridge note " + token + ")" }

// Flush writes at most one note on a master ticket for this minute, listing up to maxLinks
// pending links, and removes them. A note that failed for sure leaves them pending for the next
// minute. A note whose outcome is unknown stays recorded on the master (its token, its links
// and when its call ends); the next minute first looks for it on the ticket, so it is never
// written twice.
//
// An automatic outage's links wait for its master: while it is pending, Flush first tries to
// create it (EnsureMaster), and notes nothing until it exists.
func (o *Outage) Flush(ctx context.Context, t Target, g Guard, ref MasterRef, maxLinks int) (FlushResult, error) {
	now := o.now()
	pk := masterPKPrefix + ref.Target + "#" + ref.linkKey()
	links, more, err := o.pending(ctx, pk, maxLinks)
	if err != nil {
		return FlushResult{}, err
	}
	if len(links) == 0 {
		return FlushResult{}, o.retire(ctx, ref, now)
	}
	master := ref.Master
	if ref.OutageID != "" {
		rec, err := o.EnsureMaster(ctx, t, g, ref.Target, ref.OutageID)
		if err != nil {
			return FlushResult{Pending: true}, err
		}
		if rec.Master.Key == "" {
			return FlushResult{Pending: true, Skipped: true, MasterPending: true}, nil
		}
		master = rec.Master
	}
	won, prev, err := o.takeMinute(ctx, ref, now)
	if err != nil || !won {
		return FlushResult{Skipped: !won, Pending: true}, err
	}
	if prev.token != "" {
		if now.Before(prev.until) {
			return FlushResult{Skipped: true, Pending: true}, nil // its call may still be under way
		}
		var landed bool
		err := g.Do(ctx, func(ctx context.Context) error {
			var err error
			landed, err = t.NoteLanded(ctx, master, prev.token)
			return err
		})
		if err != nil {
			return FlushResult{Pending: true}, fmt.Errorf("verify the note in doubt on master %s: %w", master.Key, err)
		}
		if landed {
			observe.MetricsFrom(ctx).Count("OutageNoteVerified", 1, observe.D("Target", ref.Target))
			slog.WarnContext(ctx, "an outage note whose answer was lost is on the master ticket; its calls are not noted again", "master", master.Key, "calls", len(prev.links))
			if err := o.removeKeys(ctx, pk, prev.links); err != nil {
				return FlushResult{Pending: true}, err
			}
			return FlushResult{Linked: len(prev.links), Verified: true, Pending: true}, o.endNote(ctx, ref, prev.token)
		}
		// Not there: its calls are still pending and go into this minute's note.
	}
	if ref.Target == ServiceNow && master.SysID == "" {
		// The flag was set without the incident's sys_id: finding it is this minute's call;
		// the note follows next minute.
		err := g.Do(ctx, func(ctx context.Context) error {
			m, err := t.ResolveMaster(ctx, master)
			master = m
			return err
		})
		if err != nil {
			return FlushResult{Pending: true}, fmt.Errorf("find master incident %s: %w", master.Key, err)
		}
		return FlushResult{Pending: true}, o.saveSysID(ctx, ref, master.SysID)
	}
	token := newNoteToken()
	marker := "\n" + NoteMarker(token)
	text, listed := noteText(links, more, t.NoteLimit()-len(marker))
	text += marker
	noted := make([]string, listed)
	for i, l := range links[:listed] {
		noted[i] = l.sk
	}
	// Recorded before the call: whatever happens to the answer (or to this process), the next
	// minute knows this note may exist and which calls it listed.
	if err := o.beginNote(ctx, ref, now, token, now.Add(noteTimeout), noted); err != nil {
		return FlushResult{Pending: true}, err
	}
	nctx, cancel := context.WithTimeout(ctx, noteTimeout)
	err = g.Do(nctx, func(ctx context.Context) error { return t.Note(ctx, master, text) })
	cancel()
	if err != nil {
		observe.MetricsFrom(ctx).Count("OutageNoteFailed", 1, observe.D("Target", ref.Target))
		if !connectors.InDoubt(err) {
			// Refused or never sent: nothing to verify, the calls go into the next note.
			if eerr := o.endNote(ctx, ref, token); eerr != nil {
				slog.WarnContext(ctx, "outage note record not cleared; the next minute looks for the note first", "error", eerr)
			}
		}
		return FlushResult{Pending: true}, fmt.Errorf("note on master %s: %w", master.Key, err)
	}
	observe.MetricsFrom(ctx).Count("OutageNoteWritten", 1, observe.D("Target", ref.Target))
	observe.MetricsFrom(ctx).Count("OutageCallsNoted", float64(listed), observe.D("Target", ref.Target))
	if err := o.removeKeys(ctx, pk, noted); err != nil {
		// The note is written and still recorded: the next minute finds it and removes them.
		slog.ErrorContext(ctx, "outage links noted but not removed; the next minute finds the note and removes them", "master", master.Key, "error", err)
		return FlushResult{Linked: listed, Note: true, Pending: true}, err
	}
	if err := o.endNote(ctx, ref, token); err != nil {
		slog.WarnContext(ctx, "outage note record not cleared; the next minute finds the note and clears it", "error", err)
	}
	return FlushResult{Linked: listed, Note: true, Pending: more || listed < len(links)}, nil
}

// saveSysID keeps the master incident's sys_id where the next minute reads it: the registry
// item, or an automatic outage's record.
func (o *Outage) saveSysID(ctx context.Context, ref MasterRef, sysID string) error {
	k := key(mastersPK, ref.Target+"#"+ref.linkKey())
	if ref.OutageID != "" {
		k = key(outagePKPrefix+ref.Target+"#"+ref.OutageID, outageSK)
	}
	_, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(o.Table), Key: k, UpdateExpression: aws.String("SET master_sys_id = :sys"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":sys": store.S(sysID)},
	})
	return err
}

// noteRecord is a master's note in flight: written before the call, cleared after it.
type noteRecord struct {
	token string
	until time.Time // the call's deadline: not verified before
	links []string  // sort keys of the links it lists
}

func newNoteToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// beginNote records the note about to be sent, if this writer still holds the minute.
func (o *Outage) beginNote(ctx context.Context, ref MasterRef, now time.Time, token string, until time.Time, links []string) error {
	_, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(o.Table),
		Key:                 key(mastersPK, ref.Target+"#"+ref.linkKey()),
		UpdateExpression:    aws.String("SET note_token = :t, note_until = :u, note_links = :l"),
		ConditionExpression: aws.String("note_minute = :m"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": store.S(token), ":u": store.N(until.UnixMilli()), ":l": &types.AttributeValueMemberSS{Value: links}, ":m": store.N(now.Unix() / 60),
		},
	})
	if err != nil {
		return fmt.Errorf("record the outage note before sending it: %w", err)
	}
	return nil
}

// endNote forgets a note that was verified, written and cleaned up, or certainly not written.
func (o *Outage) endNote(ctx context.Context, ref MasterRef, token string) error {
	_, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(o.Table),
		Key:                       key(mastersPK, ref.Target+"#"+ref.linkKey()),
		UpdateExpression:          aws.String("REMOVE note_token, note_until, note_links"),
		ConditionExpression:       aws.String("note_token = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": store.S(token)},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		return fmt.Errorf("clear the outage note record: %w", err)
	}
	return nil
}

func (o *Outage) pending(ctx context.Context, pk string, limit int) ([]link, bool, error) {
	out, err := o.DB.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(o.Table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": store.S(pk)},
		ConsistentRead:            aws.Bool(true),
		Limit:                     aws.Int32(int32(limit + 1)),
	})
	if err != nil {
		return nil, false, fmt.Errorf("read outage links: %w", err)
	}
	var links []link
	for _, it := range out.Items {
		links = append(links, link{
			sk: store.String(it, store.SK), id: store.String(it, "id"), conversation: store.String(it, "conversation_id"),
			trigger: store.String(it, "trigger"), queue: store.String(it, "queue"), occurred: store.Time(it, "occurred_at"),
		})
	}
	more := len(links) > limit
	if more {
		links = links[:limit]
	}
	return links, more, nil
}

// takeMinute wins this minute's note for a master, or reports that another writer did. prev
// is the note an earlier minute left in flight, if any.
func (o *Outage) takeMinute(ctx context.Context, ref MasterRef, now time.Time) (bool, noteRecord, error) {
	minute := now.Unix() / 60
	expr, vals := refAttrs(ref)
	vals[":m"], vals[":now"] = store.N(minute), store.N(now.UnixMilli())
	out, err := o.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(o.Table),
		Key:                       key(mastersPK, ref.Target+"#"+ref.linkKey()),
		UpdateExpression:          aws.String("SET note_minute = :m, note_at = :now, " + expr),
		ConditionExpression:       aws.String("attribute_not_exists(note_minute) OR note_minute < :m"),
		ExpressionAttributeValues: vals,
		ReturnValues:              types.ReturnValueAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return false, noteRecord{}, nil
	}
	if err != nil {
		return false, noteRecord{}, fmt.Errorf("take the master's note minute: %w", err)
	}
	prev := noteRecord{token: store.String(out.Attributes, "note_token"), until: store.Time(out.Attributes, "note_until")}
	if ss, ok := out.Attributes["note_links"].(*types.AttributeValueMemberSS); ok {
		prev.links = ss.Value
	}
	return true, prev, nil
}

// retire forgets a master with no pending links that no flag names any more and that nobody
// has linked to for five minutes (environments re-register at most once a minute).
func (o *Outage) retire(ctx context.Context, ref MasterRef, now time.Time) error {
	f, _, err := o.ReadFlag(ctx, ref.Target, true)
	if err != nil || f.linkKey() == ref.linkKey() {
		return err
	}
	_, err = o.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(o.Table),
		Key:                       key(mastersPK, ref.Target+"#"+ref.linkKey()),
		ConditionExpression:       aws.String("registered_at < :cut"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":cut": store.N(now.Add(-5 * time.Minute).UnixMilli())},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return nil
	}
	return err
}

// removeKeys deletes noted links by sort key (deleting one already gone is no error).
func (o *Outage) removeKeys(ctx context.Context, pk string, sks []string) error {
	for start := 0; start < len(sks); start += 25 {
		var reqs []types.WriteRequest
		for _, sk := range sks[start:min(start+25, len(sks))] {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key(pk, sk)}})
		}
		in := map[string][]types.WriteRequest{o.Table: reqs}
		for try := 0; len(in[o.Table]) > 0; try++ {
			if try == 5 {
				return errors.New("DynamoDB left deletes unprocessed")
			}
			out, err := o.DB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: in})
			if err != nil {
				return fmt.Errorf("remove outage links: %w", err)
			}
			in = out.UnprocessedItems
		}
	}
	return nil
}

// noteText lists the links, as many as fit in limit characters; listed is how many.
func noteText(links []link, more bool, limit int) (string, int) {
	var b strings.Builder
	const headRoom = 200 // the heading and the closing line
	listed := 0
	for _, l := range links {
		line := fmt.Sprintf("- %s  conversation %s  (%s", l.occurred.UTC().Format(time.RFC3339), l.conversation, Trigger(l.trigger).Label())
		if l.queue != "" {
			line += ", queue " + l.queue
		}
		line += ", escalation " + l.id + ")\n"
		if listed > 0 && b.Len()+len(line)+headRoom > limit {
			break
		}
		b.WriteString(line)
		listed++
	}
	text := fmt.Sprintf("cxbridge: %d call(s) linked to this master ticket (times in UTC):\n%s", listed, b.String())
	if more || listed < len(links) {
		text += "More calls were linked; they follow in the next note.\n"
	}
	return text, listed
}
