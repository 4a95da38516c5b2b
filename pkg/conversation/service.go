// Package conversation bridges MessageBird conversations (WhatsApp, SMS, ...) and Jira Service
// Management requests, both ways (seed 004, with the comment and status sync of seed 002).
//
// One end user (a MessageBird contact, across channels) has at most one active conversation,
// linked to one JSM request:
//
//   - Inbound (POST /messagebird/webhook): a verified message.created from the end user creates
//     the request when the contact has no open link, or when its request is done or gone, or its
//     MessageBird conversation was archived. Until an agent's first public comment, messages are
//     appended to the request's description; after it, to the latest end-user comment, until the
//     next agent comment starts a new one. Attachments are downloaded and attached; one that
//     cannot be fetched leaves an internal comment saying why. Customer text is masked first.
//   - Outbound (POST /jira/webhook): a public comment by an agent is sent to the end user on the
//     conversation's channel. Internal comments, and comments by cxbridge's own account (which
//     Jira echoes back), are never sent. Outside WhatsApp's 24-hour window the configured
//     template is sent instead, or an internal comment says the reply was not delivered; other
//     delivery failures are reported the same way. A move into the Done category archives the
//     conversation and closes the link; optional status notifications go to the end user.
//
// Nothing is lost, nothing doubled. Work on one contact is serialised by a lease on its link (a
// conditional write), so two first messages arriving at once create one request. Each message
// records its progress (text, attachment) so a redelivery resumes where a failed attempt
// stopped; a request being created carries an idempotency label, found again after a crash.
// When Jira, MessageBird or DynamoDB fails, the webhook answers 5xx and the sender redelivers;
// replay guards are completed only when the work is done.
package conversation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

// Routes the service answers.
const (
	RouteMessageBird = "/messagebird/webhook"
	RouteJira        = "/jira/webhook"
)

// Jira is what the bridge needs from Jira; *jira.Client implements it.
type Jira interface {
	CreateRequest(ctx context.Context, in jira.NewRequest) (*jira.CustomerRequest, error)
	ResolveCustomer(ctx context.Context, serviceDeskID, email, displayName string) (string, error)
	FindByLabel(ctx context.Context, label, projectKey string, fields ...string) ([]jira.Issue, error)
	AddLabels(ctx context.Context, issueIDOrKey string, labels ...string) error
	AddComment(ctx context.Context, issueIDOrKey, body string, public bool) (*jira.Comment, error)
	ListComments(ctx context.Context, issueIDOrKey string, f jira.CommentFilter) ([]jira.Comment, error)
	GetIssue(ctx context.Context, issueIDOrKey string, fields ...string) (*jira.Issue, error)
	SetDescription(ctx context.Context, issueIDOrKey string, doc json.RawMessage) error
	GetComment(ctx context.Context, issueIDOrKey, commentID string) (*jira.IssueComment, error)
	EditComment(ctx context.Context, issueIDOrKey, commentID string, doc json.RawMessage) (*jira.IssueComment, error)
	Attach(ctx context.Context, serviceDeskID, issueIDOrKey string, public bool, comment string, files ...jira.File) (*jira.AttachmentResult, error)
	ListAttachments(ctx context.Context, issueIDOrKey string) ([]jira.Attachment, error)
	Myself(ctx context.Context) (jira.User, error)
}

// Messenger is what the bridge needs from a conversations provider; *messagebird.Client
// implements it for the classic Conversations API, and another provider (Bird's newer APIs) can
// be added behind it.
type Messenger interface {
	SendText(ctx context.Context, conversationID, channelID, text string) (messagebird.Message, error)
	SendTemplate(ctx context.Context, conversationID, channelID string, t messagebird.Template) (messagebird.Message, error)
	Archive(ctx context.Context, conversationID string) error
	DownloadMedia(ctx context.Context, mediaURL string, maxBytes int64) (messagebird.Media, error)
	ListMessages(ctx context.Context, conversationID string, offset, limit int) (messagebird.MessageList, error)
	VerifyWebhook(ctx context.Context, header, publicURL string, body []byte, now time.Time) (messagebird.Claims, error)
}

// Guard runs a call through a dependency's circuit breaker.
type Guard interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// Service handles both webhooks.
type Service struct {
	Config    Config
	Store     *Store
	Jira      Jira
	Messenger Messenger
	// Secrets reads INBOUND_SECRET_ID (the Jira webhook secret).
	Secrets connectors.SecretReader
	// JiraGuard and MessengerGuard are the dependencies' circuit breakers; nil: none.
	JiraGuard      Guard
	MessengerGuard Guard
	Now            func() time.Time
	// Owner names this execution environment in leases; default the log stream and process.
	Owner string

	once        sync.Once
	invocations atomic.Uint64
	selfMu      sync.Mutex
	self        string
	secretMu    sync.Mutex
	refreshed   time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

type ownerKey struct{}

// newOwner names one invocation in leases and claims: the execution environment (its log
// stream, so an operator can find the logs) and a sequence number, because one environment may
// serve several invocations over time and tests run many at once.
func (s *Service) newOwner() string {
	s.once.Do(func() {
		if s.Owner == "" {
			s.Owner = os.Getenv("AWS_LAMBDA_LOG_STREAM_NAME")
			if s.Owner == "" {
				host, _ := os.Hostname()
				s.Owner = host
			}
			s.Owner += "/" + strconv.Itoa(os.Getpid()) + "/" + strconv.FormatInt(time.Now().UnixNano(), 36)
		}
	})
	return s.Owner + "#" + strconv.FormatUint(s.invocations.Add(1), 10)
}

// owner is the current invocation's owner name.
func owner(ctx context.Context) string {
	o, _ := ctx.Value(ownerKey{}).(string)
	return o
}

// Result is the body of every 2xx answer (and of 5xx answers, with Status "retry"). Senders
// ignore it; it is there for logs, tests and operators replaying a webhook by hand.
type Result struct {
	Status     string `json:"status"`
	Reason     string `json:"reason,omitempty"`
	RequestKey string `json:"requestKey,omitempty"`
	Target     string `json:"target,omitempty"`     // description | comment, for inbound text
	Attachment string `json:"attachment,omitempty"` // attached | not_attached
	MessageID  string `json:"messageId,omitempty"`  // the MessageBird message sent
	Message    string `json:"message,omitempty"`    // why a retry is needed
}

// Statuses of a Result.
const (
	StatusCreated      = "created"       // a new request holds the message
	StatusAppended     = "appended"      // the message was added to the open request
	StatusDuplicate    = "duplicate"     // already handled; nothing done
	StatusIgnored      = "ignored"       // not something the bridge acts on (Reason says why)
	StatusSent         = "sent"          // the reply went to the end user
	StatusTemplateSent = "template_sent" // outside the window: the template went instead
	StatusNotDelivered = "not_delivered" // the reply could not be sent; an internal comment says why
	StatusReported     = "reported"      // a delivery failure was reported on the request
	StatusClosed       = "closed"        // the conversation was archived and the link closed
	StatusNotified     = "notified"      // a status notification went to the end user
	StatusRetry        = "retry"         // 5xx: the sender should deliver again
)

// Handle routes one API Gateway request.
func (s *Service) Handle(ctx context.Context, req *apigw.Request) apigw.Response {
	if req.Shape == apigw.Direct {
		return apigw.Invalid("path", "unknown_route", "messagebird-inbound serves POST %s and POST %s through API Gateway", RouteMessageBird, RouteJira).Response()
	}
	if req.Method != http.MethodPost {
		return (&apigw.Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Field: "method", Message: "use POST"}).Response()
	}
	// The answer is due when the budget ends. The work (calls to Jira and MessageBird) ends a
	// reserve earlier, so the state calls that record its outcome (releasing a claim or a
	// lease, marking a write in doubt) still fit when the work used all it had.
	answerBy := time.Now().Add(s.Config.Budget)
	ctx, cancel := context.WithDeadline(ctx, answerBy)
	defer cancel()
	ctx = context.WithValue(ctx, answerByKey{}, answerBy)
	ctx, cancelWork := context.WithDeadline(ctx, answerBy.Add(-wrapUpReserve(s.Config.Budget)))
	defer cancelWork()
	ctx = context.WithValue(ctx, ownerKey{}, s.newOwner())
	switch req.Path {
	case RouteMessageBird:
		return s.messageBird(ctx, req)
	case RouteJira:
		return s.jiraWebhook(ctx, req)
	}
	return (&apigw.Error{Status: http.StatusNotFound, Code: "unknown_route", Field: "path", Message: "no route " + req.Path}).Response()
}

type answerByKey struct{}

// wrapUpReserve is the end of a webhook's budget kept for recording what its work came to:
// a few DynamoDB writes, milliseconds each when the store answers, and cut short by the answer's
// deadline when it does not.
func wrapUpReserve(budget time.Duration) time.Duration { return min(budget/10, time.Second) }

// wrapUp is the context of the state calls that follow the work: not ended with the work's
// deadline (an external call may have used all of it), but with the answer's.
func wrapUp(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = context.WithoutCancel(ctx)
	if by, ok := ctx.Value(answerByKey{}).(time.Time); ok {
		return context.WithDeadline(ctx, by)
	}
	return context.WithTimeout(ctx, 2*time.Second)
}

func ok(r Result) apigw.Response { return apigw.OK(r) }

func ignored(reason string) apigw.Response { return ok(Result{Status: StatusIgnored, Reason: reason}) }

// rejected is a 401 for a webhook whose signature does not hold; it says which check failed but
// nothing else, and nothing was written.
func (s *Service) rejected(ctx context.Context, source, field, reason string) apigw.Response {
	observe.MetricsFrom(ctx).Count("WebhookRejected", 1, observe.D("Source", source), observe.D("Reason", reason))
	slog.WarnContext(ctx, "webhook rejected", "source", source, "reason", reason)
	return apigw.Unauthorized(field, reason).Response()
}

// failure answers a webhook whose work could not be finished: 503 when trying again later can
// work (an outage, a busy contact), 502 when a dependency refused the request, 500 for our own
// configuration. Every one is a 5xx, so MessageBird and Jira deliver again: nothing is dropped
// while an operator fixes the cause.
func (s *Service) failure(ctx context.Context, source string, err error) apigw.Response {
	status, reason := classify(err)
	observe.MetricsFrom(ctx).Count("WebhookRetry", 1, observe.D("Source", source), observe.D("Reason", reason))
	level := slog.LevelWarn
	if status != http.StatusServiceUnavailable {
		level = slog.LevelError
	}
	slog.Log(ctx, level, "webhook not processed; the sender will deliver it again", "source", source, "reason", reason, "error", err.Error())
	resp := apigw.Response{Status: status, Body: Result{Status: StatusRetry, Reason: reason, Message: connectors.Truncate(err.Error(), 300)}}
	if status == http.StatusServiceUnavailable {
		wait := 30
		var ve *VerifyingError
		if errors.As(err, &ve) {
			wait = max(int(time.Until(ve.Until).Seconds())+1, 1)
		}
		resp.Headers = map[string]string{"Retry-After": strconv.Itoa(wait)}
	}
	return resp
}

// VerifyingError: a request create whose outcome is unknown may have landed, and search may not
// show it before Until: the webhook answers 503 with Retry-After, and the redelivery looks again.
type VerifyingError struct{ Until time.Time }

func (e *VerifyingError) Error() string {
	return "a request an earlier attempt may have created is not visible to search yet; looking again after " + e.Until.UTC().Format(time.RFC3339)
}

func classify(err error) (int, string) {
	var ce *connectors.Error
	var ve *VerifyingError
	switch {
	case errors.As(err, &ve):
		return http.StatusServiceUnavailable, "verifying"
	case store.Unavailable(err):
		return http.StatusServiceUnavailable, "state_unavailable"
	case errors.Is(err, ErrBusy), errors.Is(err, ErrLeaseLost):
		return http.StatusServiceUnavailable, "busy"
	case errors.Is(err, breaker.ErrOpen):
		var oe *breaker.OpenError
		errors.As(err, &oe)
		return http.StatusServiceUnavailable, oe.Dependency + "_breaker_open"
	case errors.As(err, &ce):
		switch {
		case ce.Kind == connectors.KindConfig:
			return http.StatusInternalServerError, ce.System + "_configuration"
		case ce.Kind == connectors.KindRateLimited:
			return http.StatusServiceUnavailable, ce.System + "_rate_limited"
		case ce.Retryable():
			return http.StatusServiceUnavailable, ce.System + "_unavailable"
		default:
			return http.StatusBadGateway, ce.System + "_" + string(ce.Kind)
		}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "timeout"
	default:
		// DynamoDB (the state table) and anything unexpected.
		return http.StatusServiceUnavailable, "state_unavailable"
	}
}

// jira runs a Jira call through its breaker.
func (s *Service) jira(ctx context.Context, fn func(context.Context) error) error {
	if s.JiraGuard == nil {
		return fn(ctx)
	}
	return s.JiraGuard.Do(ctx, fn)
}

// messenger runs a MessageBird call through its breaker.
func (s *Service) messenger(ctx context.Context, fn func(context.Context) error) error {
	if s.MessengerGuard == nil {
		return fn(ctx)
	}
	return s.MessengerGuard.Do(ctx, fn)
}

// mask removes card numbers and the other egress patterns from customer text bound for Jira.
func (s *Service) mask(ctx context.Context, text string) string {
	m := s.Config.Masker
	if m == nil {
		return text
	}
	out, n := m.String(text)
	if n > 0 {
		observe.MetricsFrom(ctx).Count("MaskedSpans", float64(n))
	}
	return out
}

// selfAccount is cxbridge's own Jira account id (configured, or read once per environment).
func (s *Service) selfAccount(ctx context.Context) (string, error) {
	if s.Config.JiraAccountID != "" {
		return s.Config.JiraAccountID, nil
	}
	s.selfMu.Lock()
	defer s.selfMu.Unlock()
	if s.self != "" {
		return s.self, nil
	}
	var u jira.User
	err := s.jira(ctx, func(ctx context.Context) error {
		var err error
		u, err = s.Jira.Myself(ctx)
		return err
	})
	if err != nil {
		return "", err
	}
	if u.AccountID == "" {
		return "", &connectors.Error{System: jira.System, Op: "read myself", Kind: connectors.KindBadResponse, Message: "no accountId"}
	}
	s.self = u.AccountID
	return s.self, nil
}

// webhookSecret is the shape of INBOUND_SECRET_ID for this function.
type webhookSecret struct {
	JiraWebhookSecret string `json:"jiraWebhookSecret"`
}

func (s *Service) jiraSecret(ctx context.Context) ([]byte, error) {
	var w webhookSecret
	if s.Secrets == nil {
		return nil, &connectors.Error{System: "secrets", Op: "read the Jira webhook secret", Kind: connectors.KindConfig, Message: "no secret reader"}
	}
	if err := s.Secrets.JSON(ctx, s.Config.InboundSecretID, &w); err != nil {
		return nil, &connectors.Error{System: "secrets", Op: "read the Jira webhook secret", Kind: connectors.KindUnavailable, Err: err}
	}
	if w.JiraWebhookSecret == "" {
		return nil, &connectors.Error{System: "secrets", Op: "read the Jira webhook secret", Kind: connectors.KindConfig,
			Message: fmt.Sprintf("secret %s has no jiraWebhookSecret", s.Config.InboundSecretID)}
	}
	return []byte(w.JiraWebhookSecret), nil
}

// mayRefreshSecret allows re-reading a secret after a signature mismatch at most once a minute,
// so forged requests cannot hammer Secrets Manager but a rotated secret is picked up.
func (s *Service) mayRefreshSecret() bool {
	s.secretMu.Lock()
	defer s.secretMu.Unlock()
	if now := time.Now(); s.refreshed.IsZero() || now.Sub(s.refreshed) >= time.Minute {
		s.refreshed = now
		return true
	}
	return false
}

// leaseTimes are how long a lease taken now lasts, and until when one may be waited for: the
// lease outlives the invocation's budget, so a dead invocation blocks a contact for seconds, not
// forever, and a live one never loses it; waiting stops early enough to leave time for the work.
func (s *Service) leaseTimes(ctx context.Context) (until, waitUntil time.Time) {
	now := time.Now()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = now.Add(s.Config.Budget)
	}
	until = deadline.Add(5 * time.Second)
	waitUntil = deadline.Add(-min(deadline.Sub(now)/2, 5*time.Second))
	return until, waitUntil
}
