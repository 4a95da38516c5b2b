package conversation

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/store"
)

// State table items (pkg/store has the prefixes):
//
//	CONTACT#<contact id>  LINK    the contact's link: state, request, conversation, aggregation
//	                              phase, last inbound time, and the lease that serialises work
//	REQUEST#<issue key>   LINK    request -> contact, for the Jira webhook
//	REPLAY#jwt#<jti>      REPLAY  a verified MessageBird JWT, until it expires
//	REPLAY#mbmsg#<id>     REPLAY  progress of one inbound message (text, media, done)
//	REPLAY#mbfail#<id>    REPLAY  a delivery failure already reported on the request
//	REPLAY#jira#<id>      REPLAY  a Jira delivery: INPROGRESS with a lease, then COMPLETED
//	REPLAY#jout#<id>      REPLAY  one outbound effect (a comment sent, a status notified)

// Link states.
const (
	StateCreating = "creating" // a request is being created; CreationToken is its label
	StateOpen     = "open"
	StateClosed   = "closed"
)

// Aggregation phases.
const (
	PhaseDescription = "description"
	PhaseComment     = "comment"
)

// Link is one end user's (one MessageBird contact's) current conversation and the JSM request
// it feeds.
type Link struct {
	ContactID       string
	State           string // "" when the contact never wrote, or creating, open, closed
	RequestKey      string
	ServiceDeskID   string
	Generation      int    // how many requests this contact has had
	CreationToken   string // the idempotency label of the request being created
	CreationMessage string // the message that started the creation
	// CreationSince is the latest moment an attempt may have created the request (set before
	// the create is sent, to when that attempt's lease ends): until SearchLag after it, a
	// request not found by its label is not created again.
	CreationSince  time.Time
	ConversationID string
	ChannelID      string
	Platform       string
	LastInbound    time.Time
	// Phase is description until the agent's first public comment (or until the description is
	// full); then messages go to CommentID, the latest end-user comment, as long as it was
	// started after the latest agent reply (CommentAfter == AgentReply).
	Phase        string
	CommentID    string
	CommentAfter string
	AgentReply   string // id of the latest public agent comment
	CustomerID   string // the JSM customer's accountId, when the request was raised for one
	ContactName  string
	ClosedReason string

	leaseOwner string
	leaseUntil time.Time
}

// Open reports whether the link points at a request that takes messages.
func (l Link) Open() bool { return l.State == StateOpen && l.RequestKey != "" }

// ErrLeaseLost means the link changed under this invocation: another one took the contact's
// lease (ours expired), or the Jira side closed the link. Stop, and let the sender redeliver.
var ErrLeaseLost = errors.New("the contact's link changed under this invocation")

// ErrBusy means the contact's lease could not be had within the budget.
var ErrBusy = errors.New("another invocation is still working on this contact")

// DB is the part of the DynamoDB client the store uses.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Store keeps links, leases and replay guards in the state table.
type Store struct {
	DB    DB
	Table string
	Now   func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{store.PK: store.S(pk), store.SK: store.S(sk)}
}

func contactKey(contactID string) map[string]types.AttributeValue {
	return key("CONTACT#"+contactID, "LINK")
}

func guardKey(kind, id string) map[string]types.AttributeValue {
	return key("REPLAY#"+kind+"#"+id, "REPLAY")
}

func boolean(b bool) types.AttributeValue {
	return store.B(b)
}

func decodeLink(item map[string]types.AttributeValue) Link {
	return Link{
		ContactID:       store.String(item, "contact_id"),
		State:           store.String(item, "state"),
		RequestKey:      store.String(item, "request_key"),
		ServiceDeskID:   store.String(item, "service_desk_id"),
		Generation:      int(store.Int(item, "generation")),
		CreationToken:   store.String(item, "creation_token"),
		CreationMessage: store.String(item, "creation_message"),
		CreationSince:   store.Time(item, "creation_since"),
		ConversationID:  store.String(item, "conversation_id"),
		ChannelID:       store.String(item, "channel_id"),
		Platform:        store.String(item, "platform"),
		LastInbound:     store.Time(item, "last_inbound"),
		Phase:           store.String(item, "phase"),
		CommentID:       store.String(item, "comment_id"),
		CommentAfter:    store.String(item, "comment_after"),
		AgentReply:      store.String(item, "agent_reply"),
		CustomerID:      store.String(item, "customer_account_id"),
		ContactName:     store.String(item, "contact_name"),
		ClosedReason:    store.String(item, "closed_reason"),
		leaseOwner:      store.String(item, "lease_owner"),
		leaseUntil:      store.Time(item, "lease_until"),
	}
}

// attrs are a link's stored attributes (empty strings and zero times are removed).
func (l Link) attrs() map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{}
	set := func(name, v string) {
		if v != "" {
			m[name] = store.S(v)
		}
	}
	set("contact_id", l.ContactID)
	set("state", l.State)
	set("request_key", l.RequestKey)
	set("service_desk_id", l.ServiceDeskID)
	set("creation_token", l.CreationToken)
	set("creation_message", l.CreationMessage)
	set("conversation_id", l.ConversationID)
	set("channel_id", l.ChannelID)
	set("platform", l.Platform)
	set("phase", l.Phase)
	set("comment_id", l.CommentID)
	set("comment_after", l.CommentAfter)
	set("agent_reply", l.AgentReply)
	set("customer_account_id", l.CustomerID)
	set("contact_name", l.ContactName)
	set("closed_reason", l.ClosedReason)
	m["generation"] = store.N(int64(l.Generation))
	if !l.LastInbound.IsZero() {
		m["last_inbound"] = store.N(l.LastInbound.UnixMilli())
	}
	if !l.CreationSince.IsZero() {
		m["creation_since"] = store.N(l.CreationSince.UnixMilli())
	}
	return m
}

// linkFields are the attributes a Save rewrites: everything but the key and the lease.
var linkFields = []string{"contact_id", "state", "request_key", "service_desk_id", "creation_token", "creation_message", "conversation_id",
	"channel_id", "platform", "phase", "comment_id", "comment_after", "agent_reply", "customer_account_id", "contact_name", "closed_reason",
	"generation", "last_inbound", "creation_since"}

// update builds "SET a = :a, ... REMOVE b, ..." over attribute name placeholders.
type update struct {
	sets    []string
	removes []string
	names   map[string]string
	values  map[string]types.AttributeValue
}

func newUpdate() *update {
	return &update{names: map[string]string{}, values: map[string]types.AttributeValue{}}
}

func (u *update) name(n string) string {
	p := "#" + n
	u.names[p] = n
	return p
}

func (u *update) value(n string, v types.AttributeValue) string {
	p := ":" + n
	u.values[p] = v
	return p
}

func (u *update) set(n string, v types.AttributeValue) *update {
	u.sets = append(u.sets, u.name(n)+" = "+u.value(n, v))
	return u
}

func (u *update) remove(n string) *update {
	u.removes = append(u.removes, u.name(n))
	return u
}

// link sets the fields of l and removes the ones l leaves empty. agent_reply is written only with
// all: the Jira side sets it without the lease (SetAgentReply), so a save under the lease must
// not put back the value it read before.
func (u *update) link(l Link, all bool) *update {
	attrs := l.attrs()
	for _, f := range linkFields {
		if f == "agent_reply" && !all {
			continue
		}
		if v, ok := attrs[f]; ok {
			u.set(f, v)
		} else {
			u.remove(f)
		}
	}
	return u
}

func (u *update) expr() string {
	sort.Strings(u.sets)
	sort.Strings(u.removes)
	var parts []string
	if len(u.sets) > 0 {
		parts = append(parts, "SET "+strings.Join(u.sets, ", "))
	}
	if len(u.removes) > 0 {
		parts = append(parts, "REMOVE "+strings.Join(u.removes, ", "))
	}
	return strings.Join(parts, " ")
}

func (u *update) input(table string, k map[string]types.AttributeValue, cond string) *dynamodb.UpdateItemInput {
	in := &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: k, UpdateExpression: aws.String(u.expr()),
		ExpressionAttributeNames: u.names, ExpressionAttributeValues: u.values}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
	}
	return in
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return true
	}
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		for _, r := range tc.CancellationReasons {
			if aws.ToString(r.Code) == "ConditionalCheckFailed" {
				return true
			}
		}
	}
	return false
}

// ---------------------------------------------------------------------------------------------
// leases

// Lease is the right to work on one contact's link. Every write under it is conditional on
// still holding it, so an invocation whose lease expired (and was taken over) cannot overwrite
// the newer holder's state.
type Lease struct {
	s       *Store
	contact string
	owner   string
	until   time.Time
	Link    Link // the link as it was when the lease was taken, updated by Save
}

// tryLease takes the contact's lease if it is free or expired. The link item is created when
// the contact has none.
func (s *Store) tryLease(ctx context.Context, contactID, owner string, until time.Time) (*Lease, bool, error) {
	u := newUpdate().set("lease_owner", store.S(owner)).set("lease_until", store.N(until.UnixMilli())).set("contact_id", store.S(contactID))
	u.value("now", store.N(s.now().UnixMilli()))
	in := u.input(s.Table, contactKey(contactID), "attribute_not_exists(#lease_until) OR #lease_until < :now OR #lease_owner = :lease_owner")
	in.ReturnValues = types.ReturnValueAllNew
	out, err := s.DB.UpdateItem(ctx, in)
	if isConditionFailed(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("take the lease of contact %s: %w", contactID, err)
	}
	return &Lease{s: s, contact: contactID, owner: owner, until: until, Link: decodeLink(out.Attributes)}, true, nil
}

// Acquire waits for the contact's lease until waitUntil, polling with jittered backoff. The
// lease lasts until until; an invocation that dies holding it blocks the contact no longer.
func (s *Store) Acquire(ctx context.Context, contactID, owner string, until, waitUntil time.Time) (*Lease, time.Duration, error) {
	start := time.Now()
	wait := 25 * time.Millisecond
	for {
		l, ok, err := s.tryLease(ctx, contactID, owner, until)
		if err != nil || ok {
			return l, time.Since(start), err
		}
		if !time.Now().Add(wait).Before(waitUntil) {
			return nil, time.Since(start), ErrBusy
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, time.Since(start), ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, 150*time.Millisecond)
	}
}

// Save writes the link while the lease is held (AgentReply excepted, see update.link). It fails
// with ErrLeaseLost when the lease was taken over, or when the link's state changed under it
// (closed by the Jira side, say): a closed link is never reopened by a stale copy.
func (l *Lease) Save(ctx context.Context, link Link) error {
	link.ContactID = l.contact
	u := newUpdate().link(link, false)
	u.value("me", store.S(l.owner))
	cond := "lease_owner = :me AND attribute_not_exists(#prev_state)"
	if prev := l.Link.State; prev != "" {
		cond = "lease_owner = :me AND #prev_state = :prev_state"
		u.value("prev_state", store.S(prev))
	}
	u.names["#prev_state"] = "state"
	_, err := l.s.DB.UpdateItem(ctx, u.input(l.s.Table, contactKey(l.contact), cond))
	if isConditionFailed(err) {
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("save the link of contact %s: %w", l.contact, err)
	}
	l.Link = link
	return nil
}

// Open records the new request of an open link, and the request -> contact index, in one
// transaction.
func (l *Lease) Open(ctx context.Context, link Link) error {
	link.ContactID = l.contact
	link.State = StateOpen
	link.CreationToken, link.CreationMessage, link.CreationSince = "", "", time.Time{}
	u := newUpdate().link(link, true)
	u.value("me", store.S(l.owner))
	upd := u.input(l.s.Table, contactKey(l.contact), "lease_owner = :me")
	index := key("REQUEST#"+link.RequestKey, "LINK")
	index["contact_id"] = store.S(l.contact)
	index["created_at"] = store.N(l.s.now().UnixMilli())
	_, err := l.s.DB.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: &types.Update{TableName: upd.TableName, Key: upd.Key, UpdateExpression: upd.UpdateExpression, ConditionExpression: upd.ConditionExpression,
			ExpressionAttributeNames: upd.ExpressionAttributeNames, ExpressionAttributeValues: upd.ExpressionAttributeValues}},
		{Put: &types.Put{TableName: aws.String(l.s.Table), Item: index}},
	}})
	if isConditionFailed(err) {
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("open the link of contact %s to %s: %w", l.contact, link.RequestKey, err)
	}
	l.Link = link
	return nil
}

// Release gives the lease up. Losing it meanwhile is not an error: there is nothing to give up.
func (l *Lease) Release(ctx context.Context) error {
	u := newUpdate().remove("lease_owner").remove("lease_until")
	u.value("me", store.S(l.owner))
	_, err := l.s.DB.UpdateItem(ctx, u.input(l.s.Table, contactKey(l.contact), "#lease_owner = :me"))
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release the lease of contact %s: %w", l.contact, err)
	}
	return nil
}

// ---------------------------------------------------------------------------------------------
// links seen from Jira

// LinkByRequest returns the open link of a request, or false when the request is not (or no
// longer) an end user's active conversation.
func (s *Store) LinkByRequest(ctx context.Context, requestKey string) (Link, bool, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: key("REQUEST#"+requestKey, "LINK"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Link{}, false, fmt.Errorf("read the link of %s: %w", requestKey, err)
	}
	contact := store.String(out.Item, "contact_id")
	if contact == "" {
		return Link{}, false, nil
	}
	l, err := s.Link(ctx, contact)
	if err != nil {
		return Link{}, false, err
	}
	return l, l.Open() && l.RequestKey == requestKey, nil
}

// Link reads a contact's link (a zero Link when there is none).
func (s *Store) Link(ctx context.Context, contactID string) (Link, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: contactKey(contactID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Link{}, fmt.Errorf("read the link of contact %s: %w", contactID, err)
	}
	l := decodeLink(out.Item)
	l.ContactID = contactID
	return l, nil
}

// PutLink writes a link as it is, with its request index: for the local stack's seed data and
// for operators importing existing conversations. It never overwrites a link under lease.
func (s *Store) PutLink(ctx context.Context, link Link) error {
	lease, ok, err := s.tryLease(ctx, link.ContactID, "put-link", s.now().Add(10*time.Second))
	if err != nil {
		return err
	}
	if !ok {
		return ErrBusy
	}
	if link.State == StateOpen {
		err = lease.Open(ctx, link)
	} else {
		err = lease.Save(ctx, link)
	}
	if err != nil {
		return err
	}
	return lease.Release(ctx)
}

// onOpenLink updates an open link of requestKey, without the lease: agent replies, closing and a
// moved conversation are single writes that must not wait for a customer's messages to be
// processed. It reports false when the link no longer belongs to the request.
func (s *Store) onOpenLink(ctx context.Context, contactID, requestKey string, u *update) (bool, error) {
	u.value("key", store.S(requestKey))
	u.value("open", store.S(StateOpen))
	_, err := s.DB.UpdateItem(ctx, u.input(s.Table, contactKey(contactID), "request_key = :key AND #state = :open"))
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("update the link of %s: %w", requestKey, err)
	}
	return true, nil
}

// SetAgentReply records the latest public agent comment: the end user's next message starts a
// new comment.
func (s *Store) SetAgentReply(ctx context.Context, l Link, commentID string) (bool, error) {
	u := newUpdate().set("agent_reply", store.S(commentID))
	u.name("state")
	return s.onOpenLink(ctx, l.ContactID, l.RequestKey, u)
}

// SetConversation records that replies now go to another conversation (MessageBird opened a new
// one because the old was archived).
func (s *Store) SetConversation(ctx context.Context, l Link, conversationID string) (bool, error) {
	u := newUpdate().set("conversation_id", store.S(conversationID))
	u.name("state")
	return s.onOpenLink(ctx, l.ContactID, l.RequestKey, u)
}

// Close ends the link: the end user's next message starts a new request.
func (s *Store) Close(ctx context.Context, l Link, reason string) (bool, error) {
	u := newUpdate().set("state", store.S(StateClosed)).set("closed_reason", store.S(reason)).set("closed_at", store.N(s.now().UnixMilli()))
	return s.onOpenLink(ctx, l.ContactID, l.RequestKey, u)
}

// ---------------------------------------------------------------------------------------------
// replay guards

// Seen reports whether a guard exists and has not expired.
func (s *Store) Seen(ctx context.Context, kind, id string) (bool, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: guardKey(kind, id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return false, fmt.Errorf("read replay guard %s: %w", kind, err)
	}
	return out.Item != nil && store.Int(out.Item, store.ExpiresAt) >= s.now().Unix(), nil
}

// Mark writes a guard that lives until expires.
func (s *Store) Mark(ctx context.Context, kind, id string, expires time.Time) error {
	item := guardKey(kind, id)
	item[store.ExpiresAt] = store.N(expires.Unix())
	item["status"] = store.S("COMPLETED")
	if _, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item}); err != nil {
		return fmt.Errorf("write replay guard %s: %w", kind, err)
	}
	return nil
}

// MarkOnce writes a guard unless a live one exists; it reports whether this call wrote it.
func (s *Store) MarkOnce(ctx context.Context, kind, id string, expires time.Time) (bool, error) {
	item := guardKey(kind, id)
	item[store.ExpiresAt] = store.N(expires.Unix())
	item["status"] = store.S("COMPLETED")
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR expires_at < :now"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": store.N(s.now().Unix())}})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("write replay guard %s: %w", kind, err)
	}
	return true, nil
}

// Claim outcomes.
type Claim int

const (
	Claimed   Claim = iota // this invocation does the work
	Completed              // the work was done before
	Busy                   // another invocation is doing it now
)

// ClaimInfo says what a claim found.
type ClaimInfo struct {
	Claim Claim
	// TakenOver: an earlier attempt claimed the work and did not finish it; it may have done
	// part of it (a message may have gone out before it died, or its answer was lost).
	TakenOver bool
	// Started is when the first attempt that may have done the work began: on a takeover the
	// earlier attempt's start, kept across any number of takeovers, so a check for what it did
	// looks back far enough.
	Started time.Time
	Data    map[string]string
}

// ClaimWork is the first phase of a two-phase guard: INPROGRESS with a lease until leaseUntil.
// Complete it when the work is done; Release it when the work failed and provably did nothing;
// Doubt it when the work may have been done (a write whose answer was lost), so the next
// attempt takes it over and checks first.
func (s *Store) ClaimWork(ctx context.Context, kind, id, owner string, leaseUntil, expires time.Time) (ClaimInfo, error) {
	now := s.now()
	item := guardKey(kind, id)
	item["status"] = store.S("INPROGRESS")
	item["owner"] = store.S(owner)
	item["lease_until"] = store.N(leaseUntil.UnixMilli())
	item["started"] = store.N(now.UnixMilli())
	item[store.ExpiresAt] = store.N(expires.Unix())
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item,
		ConditionExpression:                 aws.String("attribute_not_exists(pk) OR expires_at < :nows"),
		ExpressionAttributeValues:           map[string]types.AttributeValue{":nows": store.N(now.Unix())},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		return ClaimInfo{Claim: Claimed, Started: time.UnixMilli(now.UnixMilli()).UTC()}, nil // as stored
	case !errors.As(err, &ccf):
		return ClaimInfo{}, fmt.Errorf("claim %s %s: %w", kind, id, err)
	}
	old := ccf.Item
	info := ClaimInfo{Claim: Busy, Started: store.Time(old, "started"), Data: guardData(old)}
	if store.String(old, "status") == "COMPLETED" {
		info.Claim = Completed
		return info, nil
	}
	if store.Int(old, "lease_until") >= now.UnixMilli() {
		return info, nil // its owner is still at it
	}
	// An attempt that did not finish: take it over, keeping when it started.
	_, err = s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(s.Table), Key: guardKey(kind, id),
		UpdateExpression:          aws.String("SET #owner = :owner, lease_until = :until, expires_at = :exp"),
		ConditionExpression:       aws.String("#status = :inprogress AND lease_until < :now"),
		ExpressionAttributeNames:  map[string]string{"#status": "status", "#owner": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":owner": store.S(owner), ":until": store.N(leaseUntil.UnixMilli()), ":exp": store.N(expires.Unix()), ":inprogress": store.S("INPROGRESS"), ":now": store.N(now.UnixMilli())},
	})
	if isConditionFailed(err) {
		return info, nil // another attempt took it over (or finished it) first: Busy
	}
	if err != nil {
		return ClaimInfo{}, fmt.Errorf("take over %s %s: %w", kind, id, err)
	}
	info.Claim, info.TakenOver = Claimed, true
	return info, nil
}

// DoubtWork ends this invocation's claim without releasing it: the work may have been done
// (a write whose answer was lost), so the next attempt takes it over at once and checks what
// happened before doing anything. Started is kept.
func (s *Store) DoubtWork(ctx context.Context, kind, id, owner string) error {
	_, err := s.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(s.Table), Key: guardKey(kind, id),
		UpdateExpression:          aws.String("SET lease_until = :zero, doubt_at = :now"),
		ConditionExpression:       aws.String("#status = :inprogress AND #owner = :me"),
		ExpressionAttributeNames:  map[string]string{"#status": "status", "#owner": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": store.N(0), ":now": store.N(s.now().UnixMilli()), ":inprogress": store.S("INPROGRESS"), ":me": store.S(owner)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("mark %s %s in doubt: %w", kind, id, err)
	}
	return nil
}

// CompleteWork is the second phase: the work is done; data is kept with the guard.
func (s *Store) CompleteWork(ctx context.Context, kind, id string, expires time.Time, data map[string]string) error {
	item := guardKey(kind, id)
	item["status"] = store.S("COMPLETED")
	item[store.ExpiresAt] = store.N(expires.Unix())
	for k, v := range data {
		item["d_"+k] = store.S(v)
	}
	if _, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item}); err != nil {
		return fmt.Errorf("complete %s %s: %w", kind, id, err)
	}
	return nil
}

// ReleaseWork drops this invocation's claim, so a redelivery can do the work at once.
func (s *Store) ReleaseWork(ctx context.Context, kind, id, owner string) error {
	_, err := s.DB.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.Table), Key: guardKey(kind, id),
		ConditionExpression:       aws.String("#status = :inprogress AND #owner = :me"),
		ExpressionAttributeNames:  map[string]string{"#status": "status", "#owner": "owner"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":inprogress": store.S("INPROGRESS"), ":me": store.S(owner)}})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("release %s %s: %w", kind, id, err)
	}
	return nil
}

func guardData(item map[string]types.AttributeValue) map[string]string {
	out := map[string]string{}
	for k := range item {
		if d, ok := strings.CutPrefix(k, "d_"); ok {
			out[d] = store.String(item, k)
		}
	}
	return out
}

// MessageProgress is how far an inbound message got: a redelivery after a failure resumes
// where the last attempt stopped, so nothing is added twice.
type MessageProgress struct {
	Attempt   int       // this attempt's number, from 1
	Started   time.Time // when the first attempt began: nothing it wrote is older
	TextDone  bool      // the text is in the description or a comment
	MediaDone bool      // the attachment is attached, or its failure reported
	Done      bool
}

// BeginMessage counts an attempt at a message and returns its progress.
func (s *Store) BeginMessage(ctx context.Context, messageID string, expires time.Time) (MessageProgress, error) {
	u := newUpdate().set(store.ExpiresAt, store.N(expires.Unix()))
	u.sets = append(u.sets, "attempts = if_not_exists(attempts, :zero) + :one", "first_at = if_not_exists(first_at, :first)")
	u.values[":zero"], u.values[":one"], u.values[":first"] = store.N(0), store.N(1), store.N(s.now().UnixMilli())
	in := u.input(s.Table, guardKey("mbmsg", messageID), "")
	in.ReturnValues = types.ReturnValueAllNew
	out, err := s.DB.UpdateItem(ctx, in)
	if err != nil {
		return MessageProgress{}, fmt.Errorf("record message %s: %w", messageID, err)
	}
	a := out.Attributes
	return MessageProgress{Attempt: int(store.Int(a, "attempts")), Started: store.Time(a, "first_at"), TextDone: store.Bool(a, "text_done"),
		MediaDone: store.Bool(a, "media_done"), Done: store.String(a, "status") == "COMPLETED"}, nil
}

// MessageStep records a finished step ("text_done", "media_done") or the whole message
// ("status").
func (s *Store) MessageStep(ctx context.Context, messageID, step string) error {
	u := newUpdate()
	if step == "status" {
		u.set("status", store.S("COMPLETED"))
	} else {
		u.set(step, boolean(true))
	}
	if _, err := s.DB.UpdateItem(ctx, u.input(s.Table, guardKey("mbmsg", messageID), "")); err != nil {
		return fmt.Errorf("record message %s %s: %w", messageID, step, err)
	}
	return nil
}

// MessageDone reports whether a message was completely handled.
func (s *Store) MessageDone(ctx context.Context, messageID string) (bool, error) {
	out, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table), Key: guardKey("mbmsg", messageID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return false, fmt.Errorf("read message %s: %w", messageID, err)
	}
	return store.String(out.Item, "status") == "COMPLETED", nil
}
