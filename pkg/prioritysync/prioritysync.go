// Package prioritysync raises a waiting caller's Genesys queue priority when ServiceNow marks
// their incident critical (seed 001, "Bi-Directional State Sync").
//
// The ServiceNow business rule in integrations/servicenow/ posts the incident to
// POST /priority-sync with the API key and a signature (pkg/hmacauth): timestamp within 5
// minutes, HMAC-SHA256 over timestamp + "." + body with the key in INBOUND_SECRET_ID, never seen
// before. Anything else is 401 and changes nothing.
//
// An accepted request is answered with one of:
//
//	ignored_priority          the priority is not a trigger (PRIORITY_SYNC_TRIGGER_PRIORITIES)
//	no_waiting_conversation   no conversation id was sent and servicenow-lookup recorded none
//	                          for the caller (or it expired)
//	not_in_queue              the conversation is no longer waiting (answered, abandoned, ended)
//	already_raised            its priority is already at or above the configured one (never
//	                          lowered), or this incident and priority were handled before
//	raised                    PATCH /api/v2/routing/conversations/{id} set the configured
//	                          absolute priority
//
// or, when Genesys or the state table cannot be used, status "unavailable" with a reason and a
// 5xx, so ServiceNow's outbound log shows the failure.
//
// Whether the conversation still waits is read from the conversation itself (an ACD participant
// that has not ended and no connected agent), before the PATCH: what Genesys answers a PATCH on
// a conversation that left the queue is not documented. A PATCH refused anyway (the caller was
// answered in between) is classified by reading the conversation again.
package prioritysync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/callerlink"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/genesys"
	"github.com/cxbridge/cxbridge/pkg/hmacauth"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/retry"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// Genesys is the part of *genesys.Client priority-sync uses.
type Genesys interface {
	GetConversation(ctx context.Context, id string) (genesys.Conversation, error)
	SetRoutingPriority(ctx context.Context, conversationID string, priority int) (int, error)
}

// Links finds the conversation servicenow-lookup recorded for a caller (*callerlink.Store).
type Links interface {
	Get(ctx context.Context, callerSysID string) (callerlink.Link, bool, error)
}

// Guard runs a call through the Genesys circuit breaker (*breaker.Breaker).
type Guard interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// DB is the part of *dynamodb.Client the idempotency records use.
type DB interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// Service handles priority-sync requests.
type Service struct {
	Config   Config
	Verifier *hmacauth.Verifier
	Genesys  Genesys
	Links    Links
	DB       DB
	Guard    Guard // nil: no breaker
	Now      func() time.Time
}

// ReplayScheme names priority-sync's signatures in the replay guard (REPLAY#servicenow#...).
const ReplayScheme = "servicenow"

// SigningKeys is the JSON shape of INBOUND_SECRET_ID as priority-sync reads it. Other inbound
// callers keep their own keys in the same secret under their own names.
type SigningKeys struct {
	// ServiceNow is the key the business rule signs with (its system property
	// cxbridge.priority_sync.signing_key holds the same text).
	ServiceNow string `json:"servicenowSigningKey"`
	// ServiceNowPrevious is also accepted while a rotation is under way; optional.
	ServiceNowPrevious string `json:"servicenowSigningKeyPrevious"`
}

// KeysFrom returns the Verifier.Keys function reading SigningKeys from secrets.
func KeysFrom(secrets connectors.SecretReader, secretID string) func(context.Context) ([][]byte, error) {
	return func(ctx context.Context) ([][]byte, error) {
		var k SigningKeys
		if err := secrets.JSON(ctx, secretID, &k); err != nil {
			return nil, err
		}
		if strings.TrimSpace(k.ServiceNow) == "" {
			return nil, fmt.Errorf("secret %s has no servicenowSigningKey", secretID)
		}
		keys := [][]byte{[]byte(k.ServiceNow)}
		if k.ServiceNowPrevious != "" {
			keys = append(keys, []byte(k.ServiceNowPrevious))
		}
		return keys, nil
	}
}

// Input is what the business rule sends.
type Input struct {
	IncidentSysID  apigw.Text      `json:"incidentSysId"`
	IncidentNumber apigw.LooseText `json:"incidentNumber"`
	Priority       apigw.Text      `json:"priority"` // "1".."5" (the choice value, not the label)
	CallerSysID    apigw.LooseText `json:"callerSysId"`
	ConversationID apigw.LooseText `json:"conversationId"` // optional: overrides the lookup's record
	// DeliveryID is a unique id per delivery (the business rule sends gs.generateGUID()), so two
	// identical deliveries in the same second still carry different signatures and a genuine
	// repeat is never mistaken for a replay. Optional.
	DeliveryID apigw.LooseText `json:"deliveryId"`

	warnings apigw.Warnings // set by validate
}

// Outcome is the answer.
type Outcome struct {
	Status         string `json:"status"`
	Reason         string `json:"reason"` // why unavailable; "" otherwise
	IncidentNumber string `json:"incidentNumber"`
	ConversationID string `json:"conversationId"`
	// ConversationSource says where the conversation id came from: "request" or "lookup".
	ConversationSource string `json:"conversationSource"`
	// Priority is the conversation's routing priority after this request (0 when not known).
	Priority         int  `json:"priority"`
	PreviousPriority int  `json:"previousPriority"`
	Repeat           bool `json:"repeat"` // answered from the record of an earlier request
	// Warnings name the inputs that were ignored ("<input>: <problem>"); absent when none.
	Warnings []string `json:"warnings,omitempty"`
}

// Statuses.
const (
	StatusRaised                = "raised"
	StatusAlreadyRaised         = "already_raised"
	StatusNotInQueue            = "not_in_queue"
	StatusNoWaitingConversation = "no_waiting_conversation"
	StatusIgnoredPriority       = "ignored_priority"
	StatusUnavailable           = "unavailable"
)

// recordTTL keeps the per-incident, per-priority record long enough for any repeat delivery.
const recordTTL = 24 * time.Hour

// genesysRetry: nobody is on hold for this request, but the caller is in the queue; try a few
// times inside the budget.
var genesysRetry = retry.Policy{Attempts: 3, Base: 100 * time.Millisecond, Max: time.Second, MinAttempt: 300 * time.Millisecond}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handle authenticates, decodes and answers one request.
func (s *Service) Handle(ctx context.Context, req *apigw.Request) apigw.Response {
	// The budget covers the signature check too: its replay guard is a state store write.
	ctx, cancel := context.WithTimeout(ctx, s.Config.Timeout)
	defer cancel()
	signed, err := s.Verifier.Check(ctx, req.Header(hmacauth.HeaderTimestamp), req.Header(hmacauth.HeaderSignature), req.Body)
	if err != nil {
		return s.refused(ctx, req, err)
	}
	// The body is judged before the signature is claimed: a refused request leaves nothing
	// behind, so its corrected redelivery is not taken for a replay.
	var in Input
	ws, bad := apigw.DecodeInput(req.Body, &in)
	if bad != nil {
		return bad.Response()
	}
	priority, bad := in.validate(ws)
	if bad != nil {
		return bad.Response()
	}
	if err := signed.Claim(ctx); err != nil {
		return s.refused(ctx, req, err)
	}
	in.warnings.Report(ctx)
	out := s.Sync(ctx, in, priority)
	if len(in.warnings) > 0 {
		out.Warnings = in.warnings.Strings()
	}
	status := http.StatusOK
	if out.Status == StatusUnavailable {
		status = http.StatusServiceUnavailable
		if out.Reason == reasonUnauthorized || out.Reason == reasonRejected || out.Reason == reasonConfiguration {
			status = http.StatusBadGateway // trying again will not help; someone must fix it
		}
	}
	return apigw.Response{Status: status, Body: out}
}

// refused answers a request whose signature was rejected (401) or could not be checked (503).
func (s *Service) refused(ctx context.Context, req *apigw.Request, err error) apigw.Response {
	m := observe.MetricsFrom(ctx)
	var rej *hmacauth.Rejection
	if errors.As(err, &rej) {
		m.Count("SignatureRejected", 1, observe.D("Header", rej.Field))
		slog.WarnContext(ctx, "priority-sync request refused", "header", rej.Field, "reason", rej.Reason, "shape", req.Shape.String())
		return apigw.Unauthorized(rej.Field, "request signature rejected: "+rej.Field+" "+rej.Reason).Response()
	}
	m.Count("PrioritySyncUnavailable", 1, observe.D("Reason", "signature_check"))
	slog.ErrorContext(ctx, "cannot verify priority-sync requests: the signing key or the replay guard is unavailable", "error", err.Error())
	return apigw.Response{Status: http.StatusServiceUnavailable, Body: Outcome{Status: StatusUnavailable, Reason: "signature_check"}}
}

var (
	sysIDRe  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	numberRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,40}$`)
)

// validate refuses what cannot be served: no incident sys_id (the record every repeat is
// checked against), no priority 1-5, or no way to find the conversation (neither a usable
// conversationId nor a callerSysId). A malformed incidentNumber, deliveryId, conversationId
// (when callerSysId can stand in) or callerSysId (when conversationId is given) is ignored with
// a warning.
func (in *Input) validate(decoded apigw.Warnings) (int, *apigw.Error) {
	ws := decoded
	switch {
	case in.IncidentSysID == "":
		return 0, apigw.Missing("incidentSysId")
	case !sysIDRe.MatchString(string(in.IncidentSysID)):
		return 0, apigw.Invalid("incidentSysId", "invalid_field", "incidentSysId must be a sys_id (32 lowercase hex characters)")
	case in.Priority == "":
		return 0, apigw.Missing("priority")
	}
	p, err := strconv.Atoi(string(in.Priority))
	if err != nil || p < 1 || p > 5 {
		return 0, apigw.Invalid("priority", "invalid_field", "priority must be the incident's priority value, 1 to 5 (1 = Critical)")
	}
	loose := func(field string, v *apigw.LooseText, ok func(string) bool, want string) {
		switch {
		case v.Malformed != "":
			ws.Add(field, "%s instead of text; ignored", v.Malformed)
		case v.Text != "" && !ok(string(v.Text)):
			ws.Add(field, "not %s; ignored", want)
			v.Text = ""
		}
	}
	genesysID := func(s string) bool { return len(s) <= 64 && strings.IndexFunc(s, notIDRune) < 0 }
	loose("incidentNumber", &in.IncidentNumber, numberRe.MatchString, "an incident number such as INC0010001")
	loose("deliveryId", &in.DeliveryID, genesysID, "at most 64 letters, digits and hyphens")
	loose("conversationId", &in.ConversationID, genesysID, "a Genesys conversation id")
	if in.ConversationID.Text != "" {
		loose("callerSysId", &in.CallerSysID, sysIDRe.MatchString, "a sys_id (32 lowercase hex characters)")
	} else {
		switch {
		case in.CallerSysID.Text == "" && in.CallerSysID.Malformed == "":
			return 0, apigw.Missing("callerSysId")
		case !sysIDRe.MatchString(string(in.CallerSysID.Text)):
			return 0, apigw.Invalid("callerSysId", "invalid_field", "callerSysId must be a sys_id (32 lowercase hex characters)")
		}
	}
	in.warnings = ws
	return p, nil
}

func notIDRune(r rune) bool {
	return r != '-' && (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z')
}

// Sync acts on one authenticated request.
func (s *Service) Sync(ctx context.Context, in Input, priority int) Outcome {
	start := time.Now()
	budget, cancel := context.WithTimeout(ctx, s.Config.Timeout)
	defer cancel()
	out, err := s.sync(budget, in, priority)
	if err != nil {
		out.Status, out.Reason = StatusUnavailable, reasonFor(err)
	}
	m := observe.MetricsFrom(ctx)
	m.Count("PrioritySync", 1, observe.D("Status", out.Status))
	attrs := []any{"status", out.Status, "incident_number", out.IncidentNumber, "priority_value", priority,
		"conversation_id", out.ConversationID, "conversation_source", out.ConversationSource,
		"queue_priority", out.Priority, "previous_queue_priority", out.PreviousPriority, "repeat", out.Repeat,
		"ms", time.Since(start).Milliseconds()}
	if err != nil {
		m.Count("PrioritySyncUnavailable", 1, observe.D("Reason", out.Reason))
		slog.ErrorContext(ctx, "could not raise the caller's queue priority", append(attrs, "reason", out.Reason, "error", err.Error())...)
	} else {
		slog.InfoContext(ctx, "priority-sync handled", attrs...)
	}
	return out
}

func (s *Service) sync(ctx context.Context, in Input, priority int) (Outcome, error) {
	out := Outcome{IncidentNumber: string(in.IncidentNumber.Text)}
	if !s.Config.Triggers[priority] {
		out.Status = StatusIgnoredPriority
		return out, nil
	}
	if prev, ok, err := s.record(ctx, string(in.IncidentSysID), priority); err != nil {
		return out, err
	} else if ok {
		prev.Status, prev.Repeat = StatusAlreadyRaised, true
		return prev, nil
	}

	out.ConversationID, out.ConversationSource = string(in.ConversationID.Text), "request"
	if out.ConversationID == "" {
		link, found, err := s.Links.Get(ctx, string(in.CallerSysID.Text))
		if err != nil {
			return out, err
		}
		if !found {
			out.Status, out.ConversationSource = StatusNoWaitingConversation, ""
			return out, nil
		}
		out.ConversationID, out.ConversationSource = link.ConversationID, "lookup"
	}
	observe.SetCorrelationID(ctx, out.ConversationID)

	current, waiting, err := s.waiting(ctx, out.ConversationID)
	if err != nil {
		return out, err
	}
	if !waiting {
		out.Status = StatusNotInQueue
		return out, nil
	}
	out.PreviousPriority, out.Priority = current, current
	target := s.Config.QueuePriority
	if current >= target {
		out.Status = StatusAlreadyRaised
		s.remember(ctx, string(in.IncidentSysID), priority, out)
		return out, nil
	}
	var set int
	err = s.guarded(ctx, func(ctx context.Context) error {
		_, err := retry.Do(ctx, genesysRetry, func(ctx context.Context, _ int) error {
			p, err := s.Genesys.SetRoutingPriority(ctx, out.ConversationID, target)
			set = p
			return err
		})
		return err
	})
	if err != nil {
		k := connectors.KindOf(err)
		if k != connectors.KindRejected && k != connectors.KindNotFound {
			return out, err
		}
		// Answered (or gone) between the read and the PATCH? Ask the conversation, not the
		// status code, which Genesys does not document for this case.
		if _, still, rerr := s.waiting(ctx, out.ConversationID); rerr == nil && !still {
			out.Status = StatusNotInQueue
			return out, nil
		}
		return out, err
	}
	if set == 0 {
		set = target // a 200 without a body still set what was asked
	}
	out.Status, out.Priority = StatusRaised, set
	observe.MetricsFrom(ctx).Count("QueuePriorityRaised", 1)
	s.remember(ctx, string(in.IncidentSysID), priority, out)
	return out, nil
}

// waiting reads the conversation: whether it is in queue and its current routing priority.
// A conversation Genesys does not know (404) is not in queue.
func (s *Service) waiting(ctx context.Context, id string) (priority int, waiting bool, err error) {
	var c genesys.Conversation
	err = s.guarded(ctx, func(ctx context.Context) error {
		_, err := retry.Do(ctx, genesysRetry, func(ctx context.Context, _ int) error {
			var err error
			c, err = s.Genesys.GetConversation(ctx, id)
			return err
		})
		return err
	})
	if connectors.KindOf(err) == connectors.KindNotFound {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	acd, ok := c.Waiting()
	if !ok {
		return 0, false, nil
	}
	if acd.Routing != nil {
		priority = acd.Routing.Priority
	}
	return priority, true, nil
}

func (s *Service) guarded(ctx context.Context, fn func(context.Context) error) error {
	if s.Guard == nil {
		return fn(ctx)
	}
	return s.Guard.Do(ctx, fn)
}

// The per-incident, per-priority record: pk PRIORITYSYNC#<incident sys_id>,
// sk PRIORITY#<value>. It is written only when a conversation was raised (or found raised), so
// a later delivery for the same incident and priority answers already_raised without touching
// Genesys, while one that found no waiting conversation can succeed when resent.

func recordKey(incident string, priority int) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		store.PK: store.S("PRIORITYSYNC#" + incident),
		store.SK: store.S("PRIORITY#" + strconv.Itoa(priority)),
	}
}

func (s *Service) record(ctx context.Context, incident string, priority int) (Outcome, bool, error) {
	res, err := s.DB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Config.StateTable), Key: recordKey(incident, priority), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return Outcome{}, false, fmt.Errorf("read priority-sync record: %w", err)
	}
	if res.Item == nil {
		return Outcome{}, false, nil
	}
	if exp := store.Int(res.Item, store.ExpiresAt); exp > 0 && s.now().Unix() >= exp {
		return Outcome{}, false, nil
	}
	return Outcome{
		IncidentNumber: store.String(res.Item, "incident_number"), ConversationID: store.String(res.Item, "conversation_id"),
		ConversationSource: store.String(res.Item, "conversation_source"), Priority: int(store.Int(res.Item, "queue_priority")),
		PreviousPriority: int(store.Int(res.Item, "previous_queue_priority")),
	}, true, nil
}

// remember writes the record; the first writer wins. A failure is logged: the conversation was
// raised, and a repeat would only raise it to the same absolute value again.
func (s *Service) remember(ctx context.Context, incident string, priority int, o Outcome) {
	item := recordKey(incident, priority)
	item["status"] = store.S(o.Status)
	item["incident_number"] = store.S(o.IncidentNumber)
	item["conversation_id"] = store.S(o.ConversationID)
	item["conversation_source"] = store.S(o.ConversationSource)
	item["queue_priority"] = store.N(o.Priority)
	item["previous_queue_priority"] = store.N(o.PreviousPriority)
	item["recorded_at"] = store.S(s.now().UTC().Format(time.RFC3339Nano))
	item[store.ExpiresAt] = store.N(store.TTL(s.now(), recordTTL))
	_, err := s.DB.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.Config.StateTable), Item: item,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) {
		observe.MetricsFrom(ctx).Count("PrioritySyncRecordFailed", 1)
		slog.WarnContext(ctx, "could not record the priority-sync result; a repeat delivery will check Genesys again", "error", err.Error())
	}
}

// Reasons for status unavailable.
const (
	reasonTimeout       = "timeout"
	reasonUnavailable   = "genesys_unavailable"
	reasonRateLimited   = "genesys_rate_limited"
	reasonUnauthorized  = "genesys_unauthorized"
	reasonRejected      = "genesys_rejected"
	reasonBreakerOpen   = "breaker_open"
	reasonConfiguration = "configuration"
	reasonState         = "state_table"
)

func reasonFor(err error) string {
	var ne net.Error
	var ce *connectors.Error
	switch {
	case store.Unavailable(err):
		return reasonState
	case errors.Is(err, breaker.ErrOpen):
		return reasonBreakerOpen
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return reasonTimeout
	case !errors.As(err, &ce):
		return reasonState // DynamoDB: the only other dependency
	}
	switch ce.Kind {
	case connectors.KindRateLimited:
		return reasonRateLimited
	case connectors.KindUnauthorized, connectors.KindForbidden:
		return reasonUnauthorized
	case connectors.KindRejected, connectors.KindNotFound, connectors.KindConflict, connectors.KindBadResponse:
		return reasonRejected
	case connectors.KindConfig:
		return reasonConfiguration
	default:
		return reasonUnavailable
	}
}
