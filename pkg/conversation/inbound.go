package conversation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/retry"
	"github.com/cxbridge/cxbridge/pkg/store"
)

const (
	// messageGuardTTL is how long a message's progress is kept: longer than MessageBird keeps
	// redelivering (UNCONFIRMED; its retry schedule is not documented).
	messageGuardTTL = 14 * 24 * time.Hour
	// failureGuardTTL is how long a reported delivery failure is remembered.
	failureGuardTTL = 30 * 24 * time.Hour
	// mediaGiveUpAttempt is the delivery attempt from which an attachment that MessageBird keeps
	// failing to serve is reported as not fetchable instead of retried again.
	mediaGiveUpAttempt = 3
)

var mediaRetry = retry.Policy{Attempts: 2, Base: 200 * time.Millisecond, Max: time.Second, MinAttempt: time.Second}

// messageBird handles POST /messagebird/webhook: verify, reject replays, dispatch.
func (s *Service) messageBird(ctx context.Context, req *apigw.Request) apigw.Response {
	// JWT times are checked against the real clock, whatever clock the business rules use.
	claims, err := s.Messenger.VerifyWebhook(ctx, req.Header(messagebird.SignatureHeader), s.Config.WebhookURL, req.Body, time.Now())
	if err != nil {
		var ve *messagebird.VerifyError
		if errors.As(err, &ve) {
			return s.rejected(ctx, "messagebird", messagebird.SignatureHeader, jwtReason(ve.Check))
		}
		return s.failure(ctx, "messagebird", err) // the signing key could not be read
	}
	ev, err := messagebird.ParseEvent(req.Body)
	if err != nil {
		return apigw.Invalid("body", "invalid_event", "%v", err).Response()
	}
	// The jti guard is written only after the work is done: a delivery that failed half way
	// (and answered 5xx) may come again with the same token and must then be processed.
	seen, err := s.Store.Seen(ctx, "jwt", claims.JTI)
	if err != nil {
		return s.failure(ctx, "messagebird", err)
	}
	if seen {
		return s.rejected(ctx, "messagebird", messagebird.SignatureHeader, "replayed")
	}
	resp := s.messageEvent(ctx, ev, req.Body)
	if resp.Status < 300 {
		wctx, cancel := wrapUp(ctx)
		defer cancel()
		if err := s.Store.Mark(wctx, "jwt", claims.JTI, claims.ExpiresAt.Add(time.Minute)); err != nil {
			slog.WarnContext(ctx, "replay guard not written; the work is done and a replay would find it done", "error", err.Error())
		}
	}
	return resp
}

func jwtReason(check error) string {
	switch check {
	case messagebird.ErrNoSignature:
		return "missing_signature"
	case messagebird.ErrSignature, messagebird.ErrAlgorithm, messagebird.ErrMalformed:
		return "bad_signature"
	case messagebird.ErrExpired, messagebird.ErrNotYetValid, messagebird.ErrMissingExpiry:
		return "expired"
	case messagebird.ErrURLHash:
		return "url_mismatch"
	case messagebird.ErrPayloadHash, messagebird.ErrPayloadPresent, messagebird.ErrPayloadMissing:
		return "body_mismatch"
	case messagebird.ErrIssuer:
		return "wrong_issuer"
	default:
		return "invalid_token"
	}
}

func (s *Service) messageEvent(ctx context.Context, ev messagebird.Event, body []byte) apigw.Response {
	switch {
	case ev.Inbound():
		return s.inbound(ctx, ev, body)
	case ev.Type == messagebird.EventMessageCreated:
		return ignored("echo") // a message we (or the dashboard) sent
	case ev.Type == messagebird.EventMessageUpdated:
		return s.deliveryUpdate(ctx, ev)
	case ev.Type == messagebird.EventConversationUpdated && ev.Conversation.Status == messagebird.ConversationArchived:
		return s.archivedInMessageBird(ctx, ev)
	}
	return ignored("event")
}

func contactID(ev messagebird.Event) string {
	if ev.Contact != nil && ev.Contact.ID != "" {
		return ev.Contact.ID
	}
	if ev.Conversation != nil {
		return ev.Conversation.ContactID
	}
	return ""
}

func (s *Service) contactOf(ev messagebird.Event, body []byte) contact {
	c := contact{ID: contactID(ev)}
	if ev.Contact != nil {
		c.Name, c.Number = ev.Contact.Name(), ev.Contact.E164()
	}
	if email := customDetail(body, s.Config.EmailDetail); strings.Contains(email, "@") {
		c.Email = email
	}
	return c
}

// inbound handles a message from the end user.
func (s *Service) inbound(ctx context.Context, ev messagebird.Event, body []byte) apigw.Response {
	m := *ev.Message
	c := s.contactOf(ev, body)
	switch {
	case c.ID == "":
		return apigw.Missing("contact.id").Response()
	case m.ID == "":
		return apigw.Missing("message.id").Response()
	}
	observe.SetCorrelationID(ctx, c.ID)
	metrics := observe.MetricsFrom(ctx)
	if done, err := s.Store.MessageDone(ctx, m.ID); err != nil {
		return s.failure(ctx, "messagebird", err)
	} else if done {
		metrics.Count("InboundMessage", 1, observe.D("Outcome", StatusDuplicate))
		return ok(Result{Status: StatusDuplicate})
	}
	until, waitUntil := s.leaseTimes(ctx)
	lease, waited, err := s.Store.Acquire(ctx, c.ID, owner(ctx), until, waitUntil)
	metrics.Millis("LeaseWait", waited)
	if err != nil {
		return s.failure(ctx, "messagebird", err)
	}
	defer func() {
		rctx, cancel := wrapUp(ctx)
		defer cancel()
		if err := lease.Release(rctx); err != nil {
			slog.WarnContext(ctx, "lease not released; it expires by itself", "error", err.Error())
		}
	}()
	prog, err := s.Store.BeginMessage(ctx, m.ID, s.now().Add(messageGuardTTL))
	if err != nil {
		return s.failure(ctx, "messagebird", err)
	}
	if prog.Done { // finished by another invocation while this one waited for the lease
		metrics.Count("InboundMessage", 1, observe.D("Outcome", StatusDuplicate))
		return ok(Result{Status: StatusDuplicate, RequestKey: lease.Link.RequestKey})
	}
	w := &inboundWork{s: s, lease: lease, link: lease.Link, msg: m, contact: c, prog: prog}
	res, err := w.run(ctx)
	if err != nil {
		return s.failure(ctx, "messagebird", err)
	}
	metrics.Count("InboundMessage", 1, observe.D("Outcome", res.Status))
	slog.InfoContext(ctx, "inbound message handled", "status", res.Status, "request_key", res.RequestKey, "target", res.Target,
		"attachment", res.Attachment, "attempt", prog.Attempt, "platform", m.Platform)
	return ok(res)
}

// inboundWork is one message being added to its request, under the contact's lease.
type inboundWork struct {
	s       *Service
	lease   *Lease
	link    Link
	msg     messagebird.Message
	contact contact
	prog    MessageProgress
	// the request a closed link pointed at, and why it was closed, for a note on it
	oldKey, oldReason string
}

func (w *inboundWork) run(ctx context.Context) (Result, error) {
	s, m := w.s, w.msg
	att, hasMedia := m.Content.Attachment()
	var file *messagebird.Media
	problem := ""
	if hasMedia && !w.prog.MediaDone {
		// Downloaded before anything is written, so the text can say whether it is attached.
		var err error
		if file, problem, err = w.download(ctx, att); err != nil {
			return Result{}, err
		}
	}
	res := Result{Status: StatusAppended}
	if !w.prog.TextDone {
		note := ""
		if hasMedia {
			note = mediaKind(m) + " attached"
			if problem != "" {
				note = mediaKind(m) + " not attached: " + problem
			}
		}
		created, target, err := w.text(ctx, s.mask(ctx, block(m, s.now(), note)))
		if err != nil {
			return Result{}, err
		}
		if created {
			res.Status = StatusCreated
		}
		res.Target = target
		if err := s.Store.MessageStep(ctx, m.ID, "text_done"); err != nil {
			return Result{}, err
		}
	} else {
		res.Reason = "resumed"
	}
	res.RequestKey = w.link.RequestKey
	if w.oldKey != "" {
		w.noteOnOldRequest(ctx)
	}
	if hasMedia && !w.prog.MediaDone {
		outcome, err := w.attach(ctx, file, problem)
		if err != nil {
			return Result{}, err
		}
		res.Attachment = outcome
		if err := s.Store.MessageStep(ctx, m.ID, "media_done"); err != nil {
			return Result{}, err
		}
	}
	if err := s.Store.MessageStep(ctx, m.ID, "status"); err != nil {
		return Result{}, err
	}
	return res, nil
}

// touch records the message on the link: the conversation and channel replies go to, and the
// time the WhatsApp window is counted from.
func (w *inboundWork) touch() {
	l, m := &w.link, w.msg
	if m.ConversationID != "" {
		l.ConversationID = m.ConversationID
	}
	if m.ChannelID != "" {
		l.ChannelID = m.ChannelID
	}
	if m.Platform != "" {
		l.Platform = m.Platform
	}
	at := m.CreatedDatetime
	if at.IsZero() {
		at = w.s.now()
	}
	if at.After(l.LastInbound) {
		l.LastInbound = at
	}
	if w.contact.Name != "" {
		l.ContactName = w.contact.Name
	}
}

// text puts the message's text into the right place and reports whether that meant creating the
// request, and where it went (description or comment).
func (w *inboundWork) text(ctx context.Context, text string) (created bool, target string, err error) {
	l := &w.link
	if l.State == StateCreating && l.CreationToken != "" {
		// An earlier invocation died while creating the request; it may exist.
		found, err := w.adopt(ctx)
		if err != nil {
			return false, "", err
		}
		if !found {
			if since := l.CreationSince; !since.IsZero() {
				// Its create may have landed and search may not show it yet: look again
				// later rather than create a second request.
				if until := since.Add(w.s.Config.SearchLag); w.s.now().Before(until) {
					observe.MetricsFrom(ctx).Count("WriteInDoubt", 1, observe.D("Write", "request"))
					return false, "", &VerifyingError{Until: until}
				}
			}
			return true, PhaseDescription, w.create(ctx, text)
		}
		if l.CreationMessage == w.msg.ID {
			return true, PhaseDescription, w.lease.Save(ctx, w.link) // its description holds this message
		}
	}
	var issue *jira.Issue
	if l.Open() {
		var reason string
		if issue, reason, err = w.current(ctx); err != nil {
			return false, "", err
		}
		if reason != "" {
			w.oldKey, w.oldReason = l.RequestKey, reason
			l.State, l.ClosedReason = StateClosed, reason
			observe.MetricsFrom(ctx).Count("ConversationClosed", 1, observe.D("Reason", reason))
		}
	}
	if l.Open() && w.prog.Attempt > 1 {
		// An earlier attempt's write of this message (the create, a description edit, a
		// comment) may have landed though its answer was lost, and the message's place may have
		// moved since (an agent replied): look everywhere before writing it anywhere.
		where, err := w.written(ctx, issue, text)
		if err != nil || where != "" {
			if where != "" {
				w.touch()
				err = w.lease.Save(ctx, w.link)
			}
			return false, where, err
		}
	}
	if !l.Open() {
		if l.State == StateClosed && w.oldKey == "" {
			w.oldKey, w.oldReason = l.RequestKey, l.ClosedReason // closed earlier, by Jira or MessageBird
		}
		return true, PhaseDescription, w.create(ctx, text)
	}
	target, err = w.appendText(ctx, issue, text)
	return false, target, err
}

// current reads the linked request and says why it can no longer take messages ("" when it can).
func (w *inboundWork) current(ctx context.Context) (*jira.Issue, string, error) {
	s, l := w.s, &w.link
	var issue *jira.Issue
	err := s.jira(ctx, func(ctx context.Context) error {
		var err error
		issue, err = s.Jira.GetIssue(ctx, l.RequestKey, "status", "description")
		return err
	})
	switch {
	case connectors.KindOf(err) == connectors.KindNotFound:
		return nil, "request_deleted", nil
	case err != nil:
		return nil, "", err
	}
	if _, category := issue.Status(); jira.IsDone(category) {
		return issue, "request_done", nil
	}
	if m := w.msg; m.ConversationID != "" && l.ConversationID != "" && m.ConversationID != l.ConversationID {
		// MessageBird opens a new conversation only after the old one was archived (in the
		// dashboard, say): the seed's "closed manually", which ends the request's conversation.
		return issue, "conversation_archived", nil
	}
	return issue, "", nil
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// creationLabel is the idempotency label of a contact's n-th request.
func creationLabel(contactID string, n int) string {
	return "cxbridge-mb-" + labelUnsafe.ReplaceAllString(contactID, "-") + "-" + strconv.Itoa(n)
}

// creationContact is the contact id of a creation label, and false when label is not one.
// (Contact ids are hexadecimal, so the label keeps them as they are; a label that does not
// match the contact's link is ignored by the caller.)
func creationContact(label string) (string, bool) {
	rest, ok := strings.CutPrefix(label, "cxbridge-mb-")
	i := strings.LastIndexByte(rest, '-')
	if !ok || i <= 0 {
		return "", false
	}
	if _, err := strconv.Atoi(rest[i+1:]); err != nil {
		return "", false
	}
	return rest[:i], true
}

// create opens a new request holding the message.
func (w *inboundWork) create(ctx context.Context, text string) error {
	s, l, m, c := w.s, &w.link, w.msg, w.contact
	route := s.Config.route(m.ChannelID, m.Platform)
	if l.State != StateCreating {
		n := l.Generation + 1
		*l = Link{ContactID: c.ID, State: StateCreating, Generation: n, CreationToken: creationLabel(c.ID, n), CreationMessage: m.ID,
			ServiceDeskID: route.ServiceDeskID, ClosedReason: l.ClosedReason}
		w.touch()
		if err := w.lease.Save(ctx, *l); err != nil {
			return err
		}
	}
	customer, err := w.customer(ctx, route)
	if err != nil {
		return err
	}
	// Recorded before the create is sent: if its answer is lost, or this invocation dies,
	// the next attempt knows it may exist (until the lease ends, at the latest).
	l.CreationSince = w.lease.until
	if err := w.lease.Save(ctx, *l); err != nil {
		return err
	}
	req := jira.NewRequest{ServiceDeskID: route.ServiceDeskID, RequestTypeID: route.RequestTypeID, RaiseOnBehalfOf: customer,
		Fields: map[string]any{
			"summary":     s.mask(ctx, summary(c, m.Platform, content(m))),
			"description": s.mask(ctx, descriptionHeader(c, m.Platform)) + "\n\n" + text,
			"labels":      []string{l.CreationToken},
		}}
	created, err := w.createRequest(ctx, req)
	if err != nil {
		// Refused or never sent: nothing to look for next time. In doubt: the create is over,
		// so it may have landed until now, not until the lease ends.
		l.CreationSince = time.Time{}
		if connectors.InDoubt(err) {
			l.CreationSince = s.now()
		}
		// It records what may have happened in Jira: sent even while the store rests.
		wctx, cancel := wrapUp(ctx)
		defer cancel()
		if serr := w.lease.Save(store.SendDuringRest(wctx), *l); serr != nil {
			slog.WarnContext(ctx, "link not updated after a failed create; the next attempt waits until the lease's end and the search lag", "error", serr.Error())
		}
		return err
	}
	l.State, l.RequestKey, l.ServiceDeskID, l.CustomerID = StateOpen, created.IssueKey, route.ServiceDeskID, customer
	l.Phase, l.CommentID, l.CommentAfter, l.AgentReply, l.ClosedReason = PhaseDescription, "", "", "", ""
	w.touch()
	slog.InfoContext(ctx, "request created for a new conversation", "request_key", created.IssueKey, "platform", m.Platform,
		"raised_for_customer", customer != "")
	return w.lease.Open(ctx, *l)
}

// createRequest creates the request with its idempotency label. A request type whose form has
// no Labels field refuses it; then the request is created without and labelled afterwards.
func (w *inboundWork) createRequest(ctx context.Context, req jira.NewRequest) (*jira.CustomerRequest, error) {
	s := w.s
	var created *jira.CustomerRequest
	call := func(req jira.NewRequest) error {
		return s.jira(ctx, func(ctx context.Context) error {
			var err error
			created, err = s.Jira.CreateRequest(ctx, req)
			return err
		})
	}
	err := call(req)
	var ce *connectors.Error
	if err != nil && errors.As(err, &ce) && ce.Kind == connectors.KindRejected && strings.Contains(strings.ToLower(ce.Message), "label") {
		slog.WarnContext(ctx, "the request type has no Labels field; labelling after creation (add Labels to the form, hidden if you like, to close the crash window)")
		delete(req.Fields, "labels")
		if err = call(req); err == nil {
			if lerr := s.jira(ctx, func(ctx context.Context) error { return s.Jira.AddLabels(ctx, created.IssueKey, w.link.CreationToken) }); lerr != nil {
				slog.WarnContext(ctx, "idempotency label not added", "request_key", created.IssueKey, "error", lerr.Error())
			}
		}
	}
	return created, err
}

// adopt finds a request an earlier invocation created (by its label) and opens the link to it.
func (w *inboundWork) adopt(ctx context.Context) (bool, error) {
	s, l := w.s, &w.link
	var issues []jira.Issue
	err := s.jira(ctx, func(ctx context.Context) error {
		var err error
		issues, err = s.Jira.FindByLabel(ctx, l.CreationToken, "")
		return err
	})
	if err != nil || len(issues) == 0 {
		return false, err
	}
	slog.WarnContext(ctx, "found the request an interrupted invocation created; using it", "request_key", issues[0].Key)
	l.State, l.RequestKey, l.Phase = StateOpen, issues[0].Key, PhaseDescription
	w.touch()
	return true, w.lease.Open(ctx, *l)
}

// customer resolves (or creates) the JSM customer the request is raised for, when the contact
// has an e-mail address or configuration says how to build one. Without one, or when the
// customer cannot be resolved for a reason other than an outage, the integration account raises
// the request and the description names the contact.
func (w *inboundWork) customer(ctx context.Context, route Route) (string, error) {
	s, c := w.s, w.contact
	email := c.Email
	if email == "" && s.Config.EmailTemplate != "" && c.Number != "" {
		email = fill(s.Config.EmailTemplate, map[string]string{"msisdn": strings.TrimPrefix(c.Number, "+")})
	}
	if email == "" {
		return "", nil
	}
	var id string
	err := s.jira(ctx, func(ctx context.Context) error {
		var err error
		id, err = s.Jira.ResolveCustomer(ctx, route.ServiceDeskID, email, c.short())
		return err
	})
	if err != nil {
		if connectors.IsOutage(err) || errors.Is(err, breaker.ErrOpen) {
			return "", err
		}
		observe.MetricsFrom(ctx).Count("CustomerNotResolved", 1)
		slog.WarnContext(ctx, "customer not resolved; the integration account raises the request", "error", err.Error())
		return "", nil
	}
	return id, nil
}

// appendText adds the message to the description (before the first agent reply) or to the
// current end-user comment (after it), starting a new comment where needed.
func (w *inboundWork) appendText(ctx context.Context, issue *jira.Issue, text string) (string, error) {
	s, l := w.s, &w.link
	w.touch()
	if l.AgentReply == "" && l.Phase != PhaseComment {
		done, err := w.appendDescription(ctx, issue, text)
		if err != nil {
			return "", err
		}
		if done {
			return PhaseDescription, w.lease.Save(ctx, *l)
		}
		// The description is full or cannot be edited: the conversation goes on in comments.
		l.Phase, l.CommentID, l.CommentAfter = PhaseComment, "", l.AgentReply
	}
	if l.CommentID != "" && l.CommentAfter == l.AgentReply {
		done, err := w.appendComment(ctx, text)
		if err != nil {
			return "", err
		}
		if done {
			return PhaseComment, w.lease.Save(ctx, *l)
		}
	}
	body := s.mask(ctx, commentHeader(w.contact, w.msg.Platform)) + "\n\n" + text
	id, err := w.newComment(ctx, body)
	if err != nil {
		return "", err
	}
	l.Phase, l.CommentID, l.CommentAfter = PhaseComment, id, l.AgentReply
	return PhaseComment, w.lease.Save(ctx, *l)
}

// endsWith reports whether a document already ends with text: the message was added by an
// attempt that failed before recording it.
func endsWith(doc []byte, text string) bool {
	return strings.HasSuffix(jira.ADFText(doc), jira.ADFText(jira.ADFDocument(text)))
}

func (w *inboundWork) appendDescription(ctx context.Context, issue *jira.Issue, text string) (bool, error) {
	s, key := w.s, w.link.RequestKey
	doc := issue.Raw("description")
	if endsWith(doc, text) {
		return true, nil
	}
	next, err := jira.AppendADF(doc, text)
	if err != nil {
		slog.WarnContext(ctx, "description is not an ADF document; continuing in a comment", "request_key", key, "error", err.Error())
		return false, nil
	}
	if len(next) > maxRichText {
		return false, nil
	}
	err = s.jira(ctx, func(ctx context.Context) error { return s.Jira.SetDescription(ctx, key, next) })
	if k := connectors.KindOf(err); k == connectors.KindForbidden || k == connectors.KindRejected {
		// Not on the edit screen, or no permission: the message must not be lost for it.
		observe.MetricsFrom(ctx).Count("AggregationFallback", 1, observe.D("Target", PhaseDescription))
		slog.WarnContext(ctx, "description cannot be edited; continuing in a comment (put Description on the edit screen and grant Edit Issues)",
			"request_key", key, "error", err.Error())
		return false, nil
	}
	return err == nil, err
}

func (w *inboundWork) appendComment(ctx context.Context, text string) (bool, error) {
	s, l := w.s, &w.link
	var c *jira.IssueComment
	err := s.jira(ctx, func(ctx context.Context) error {
		var err error
		c, err = s.Jira.GetComment(ctx, l.RequestKey, l.CommentID)
		return err
	})
	switch {
	case connectors.KindOf(err) == connectors.KindNotFound:
		return false, nil // deleted by an agent: start a new one
	case err != nil:
		return false, err
	}
	if endsWith(c.Body, text) {
		return true, nil
	}
	next, aerr := jira.AppendADF(c.Body, text)
	if extendable := aerr == nil && len(next) <= maxRichText; !extendable {
		return false, nil // not a document we can extend, or full: start a new comment
	}
	err = s.jira(ctx, func(ctx context.Context) error {
		_, err := s.Jira.EditComment(ctx, l.RequestKey, l.CommentID, next)
		return err
	})
	if k := connectors.KindOf(err); k == connectors.KindForbidden || k == connectors.KindRejected {
		observe.MetricsFrom(ctx).Count("AggregationFallback", 1, observe.D("Target", PhaseComment))
		slog.WarnContext(ctx, "comment cannot be edited; starting a new one (grant Edit Own Comments)", "request_key", l.RequestKey, "error", err.Error())
		return false, nil
	}
	return err == nil, err
}

// newComment adds a public end-user comment (a redelivery has looked for the message first,
// see written).
func (w *inboundWork) newComment(ctx context.Context, body string) (string, error) {
	s, key := w.s, w.link.RequestKey
	var c *jira.Comment
	err := s.jira(ctx, func(ctx context.Context) error {
		var err error
		c, err = s.Jira.AddComment(ctx, key, body, true)
		return err
	})
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

// written says where an earlier attempt already put the message's text (description or
// comment), or "" when it is in neither: the request's description, and cxbridge's own public
// comments (JSM's comment list is a consistent read). A message's block starts with its time to
// the minute, so only the same text sent in the same minute could be mistaken for it, the same
// reading as endsWith's. When the comment holding it is the request's latest, later messages
// are appended to it.
func (w *inboundWork) written(ctx context.Context, issue *jira.Issue, text string) (string, error) {
	s, l := w.s, &w.link
	want := flat(jira.ADFText(jira.ADFDocument(text)))
	if strings.Contains(flat(jira.ADFText(issue.Raw("description"))), want) {
		observe.MetricsFrom(ctx).Count("WriteVerified", 1, observe.D("Write", "message"))
		slog.WarnContext(ctx, "the message an earlier attempt wrote was found in the description; not written again", "request_key", l.RequestKey)
		return PhaseDescription, nil
	}
	self, err := s.selfAccount(ctx)
	if err != nil {
		return "", err
	}
	var cs []jira.Comment
	err = s.jira(ctx, func(ctx context.Context) error {
		var err error
		cs, err = s.Jira.ListComments(ctx, l.RequestKey, jira.PublicComments)
		return err
	})
	if err != nil {
		return "", err
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].Author.AccountID != self || !strings.Contains(flat(cs[i].Body), want) {
			continue
		}
		observe.MetricsFrom(ctx).Count("WriteVerified", 1, observe.D("Write", "message"))
		slog.WarnContext(ctx, "the message an earlier attempt wrote was found in a comment; not written again", "request_key", l.RequestKey, "comment_id", cs[i].ID)
		if i == len(cs)-1 {
			l.Phase, l.CommentID, l.CommentAfter = PhaseComment, cs[i].ID, l.AgentReply
		}
		return PhaseComment, nil
	}
	return "", nil
}

// flat is text with every run of white space made one space, so a message reads the same in an
// ADF document, its JSM rendering, and the text it was built from.
func flat(text string) string { return strings.Join(strings.Fields(text), " ") }

// download fetches an attachment. It returns a problem (why it cannot be attached) for failures
// that will not go away, and an error for an outage worth a redelivery, until the message has
// been tried mediaGiveUpAttempt times.
func (w *inboundWork) download(ctx context.Context, att *messagebird.Media) (*messagebird.Media, string, error) {
	s := w.s
	var file messagebird.Media
	_, err := retry.Do(ctx, mediaRetry, func(ctx context.Context, _ int) error {
		return s.messenger(ctx, func(ctx context.Context) error {
			var err error
			file, err = s.Messenger.DownloadMedia(ctx, att.URL, s.Config.MaxAttachmentBytes)
			return err
		})
	})
	if err == nil {
		return &file, "", nil
	}
	outage := connectors.IsOutage(err) || errors.Is(err, breaker.ErrOpen) || errors.Is(err, retry.ErrBudget)
	if outage && w.prog.Attempt < mediaGiveUpAttempt {
		return nil, "", err
	}
	var ce *connectors.Error
	switch {
	case errors.Is(err, messagebird.ErrMediaTooLarge):
		return nil, fmt.Sprintf("it is larger than the %s limit", size(s.Config.MaxAttachmentBytes)), nil
	case errors.Is(err, messagebird.ErrMediaHostNotAllowed):
		return nil, "its address is not a MessageBird media host", nil
	case outage:
		return nil, "MessageBird did not serve it after " + strconv.Itoa(w.prog.Attempt) + " attempts", nil
	case errors.As(err, &ce) && ce.Status != 0:
		return nil, "MessageBird answered HTTP " + strconv.Itoa(ce.Status) + " when it was downloaded", nil
	default:
		return nil, "it could not be downloaded", nil
	}
}

func size(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MB"
	}
	if n >= 1<<10 {
		return strconv.FormatInt(n>>10, 10) + " KB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// attach attaches the downloaded file (public, with a comment naming the sender) or, when there
// is none, adds an internal comment saying why.
func (w *inboundWork) attach(ctx context.Context, file *messagebird.Media, problem string) (string, error) {
	s, l, m, c := w.s, &w.link, w.msg, w.contact
	kind := mediaKind(m)
	if problem == "" {
		caption := ""
		if a, ok := m.Content.Attachment(); ok && strings.TrimSpace(a.Caption) != "" {
			caption = ": " + a.Caption
		}
		comment := s.mask(ctx, strings.ToUpper(kind[:1])+kind[1:]+" from "+c.label()+" via "+platformName(m.Platform)+caption)
		name := s.mask(ctx, file.Filename)
		if w.prog.Attempt > 1 {
			// An earlier attempt may have attached it before its answer was lost.
			if found, err := w.attached(ctx, name, int64(len(file.Data))); err != nil {
				return "", err
			} else if found {
				return "attached", nil
			}
		}
		err := s.jira(ctx, func(ctx context.Context) error {
			_, err := s.Jira.Attach(ctx, l.ServiceDeskID, l.RequestKey, true, comment, jira.File{Name: name, ContentType: file.ContentType, Data: file.Data})
			return err
		})
		if err == nil {
			return "attached", nil
		}
		if connectors.IsOutage(err) || errors.Is(err, breaker.ErrOpen) || connectors.KindOf(err) == connectors.KindConfig || connectors.KindOf(err) == connectors.KindUnauthorized {
			return "", err
		}
		var ce *connectors.Error
		problem = "Jira refused the file"
		if errors.As(err, &ce) && ce.Message != "" {
			problem += " (" + ce.Message + ")"
		}
	}
	observe.MetricsFrom(ctx).Count("AttachmentFailed", 1)
	note := s.mask(ctx, fmt.Sprintf("%s sent %s via %s that could not be attached: %s.", c.label(), article(kind), platformName(m.Platform), problem)) +
		" " + messageMarker(m.ID)
	if err := s.addInternalOnce(ctx, l.RequestKey, note, messageMarker(m.ID), w.prog.Attempt > 1); err != nil {
		return "", err
	}
	return "not_attached", nil
}

// attached reports whether the request already has this file, attached by cxbridge since the
// message's first attempt: the same name and size (JSM's attachment list is a consistent read).
func (w *inboundWork) attached(ctx context.Context, name string, size int64) (bool, error) {
	s := w.s
	self, err := s.selfAccount(ctx)
	if err != nil {
		return false, err
	}
	var as []jira.Attachment
	err = s.jira(ctx, func(ctx context.Context) error {
		var err error
		as, err = s.Jira.ListAttachments(ctx, w.link.RequestKey)
		return err
	})
	if err != nil {
		return false, err
	}
	since := w.prog.Started.Add(-time.Minute)
	for _, a := range as {
		if a.Author.AccountID == self && a.Filename == name && a.Size == size && !a.Created.Time().Before(since) {
			observe.MetricsFrom(ctx).Count("WriteVerified", 1, observe.D("Write", "attachment"))
			return true, nil
		}
	}
	return false, nil
}

func article(kind string) string {
	if kind == "image" || kind == "audio" {
		return "an " + kind
	}
	return "a " + kind
}

// noteOnOldRequest tells the agents of a closed request where the customer's conversation went
// on. It is a courtesy: failing it fails nothing.
func (w *inboundWork) noteOnOldRequest(ctx context.Context) {
	s := w.s
	why := map[string]string{
		"request_done":          "after this request was resolved",
		"conversation_archived": "after the conversation was closed in MessageBird",
		"request_deleted":       "",
	}[w.oldReason]
	if why == "" || w.oldKey == "" {
		return
	}
	note := s.mask(ctx, fmt.Sprintf("%s wrote again via %s %s; the conversation continues in %s.", w.contact.label(), platformName(w.msg.Platform), why, w.link.RequestKey))
	err := s.jira(ctx, func(ctx context.Context) error {
		_, err := s.Jira.AddComment(ctx, w.oldKey, note, false)
		return err
	})
	if err != nil {
		slog.WarnContext(ctx, "note on the previous request not added", "request_key", w.oldKey, "error", err.Error())
	}
	w.oldKey = ""
}

// deliveryUpdate reports a sent message that MessageBird could not deliver (message.updated with
// status rejected or failed) on the request, as an internal comment.
func (s *Service) deliveryUpdate(ctx context.Context, ev messagebird.Event) apigw.Response {
	m := ev.Message
	failure := m.Failure()
	if m.Direction != messagebird.DirectionSent || failure == nil {
		return ignored("status_update")
	}
	link, err := s.Store.Link(ctx, contactID(ev))
	if err != nil {
		return s.failure(ctx, "messagebird", err)
	}
	if !link.Open() || (link.ConversationID != "" && link.ConversationID != m.ConversationID) {
		return ignored("no_conversation")
	}
	observe.SetCorrelationID(ctx, link.RequestKey)
	// Two-phase, like a reply: a note whose answer was lost keeps the claim in doubt, and the
	// redelivery looks for the note (it names the message) before writing it again.
	until, _ := s.leaseTimes(ctx)
	claim, err := s.Store.ClaimWork(ctx, "mbfail", m.ID, owner(ctx), until, s.now().Add(failureGuardTTL))
	switch {
	case err != nil:
		return s.failure(ctx, "messagebird", err)
	case claim.Claim == Completed:
		return ok(Result{Status: StatusDuplicate, RequestKey: link.RequestKey})
	case claim.Claim == Busy:
		return s.failure(ctx, "messagebird", ErrBusy)
	}
	note := deliveryNote(s.Config, link, failure, m.ID)
	if err := s.addInternalOnce(ctx, link.RequestKey, note, messageMarker(m.ID), claim.TakenOver); err != nil {
		uctx, cancel := wrapUp(ctx)
		defer cancel()
		if claim.TakenOver || connectors.InDoubt(err) {
			if derr := s.Store.DoubtWork(uctx, "mbfail", m.ID, owner(ctx)); derr != nil {
				slog.WarnContext(ctx, "claim not marked in doubt; it expires and the next attempt checks first anyway", "error", derr.Error())
			}
		} else if rerr := s.Store.ReleaseWork(uctx, "mbfail", m.ID, owner(ctx)); rerr != nil {
			slog.WarnContext(ctx, "claim not released; it expires by itself", "error", rerr.Error())
		}
		return s.failure(ctx, "messagebird", err)
	}
	if err := s.Store.CompleteWork(ctx, "mbfail", m.ID, s.now().Add(failureGuardTTL), nil); err != nil {
		slog.WarnContext(ctx, "delivery failure guard not written", "error", err.Error())
	}
	observe.MetricsFrom(ctx).Count("ReplyOutcome", 1, observe.D("Outcome", StatusNotDelivered), observe.D("Reason", failureReason(failure)))
	return ok(Result{Status: StatusReported, RequestKey: link.RequestKey, MessageID: m.ID})
}

// archivedInMessageBird closes the link when its conversation was archived in MessageBird (the
// dashboard, or anything but this bridge).
func (s *Service) archivedInMessageBird(ctx context.Context, ev messagebird.Event) apigw.Response {
	link, err := s.Store.Link(ctx, contactID(ev))
	if err != nil {
		return s.failure(ctx, "messagebird", err)
	}
	if !link.Open() || link.ConversationID != ev.Conversation.ID {
		return ignored("no_conversation")
	}
	closed, err := s.Store.Close(ctx, link, "conversation_archived")
	if err != nil {
		return s.failure(ctx, "messagebird", err)
	}
	if closed {
		observe.MetricsFrom(ctx).Count("ConversationClosed", 1, observe.D("Reason", "conversation_archived"))
		note := "The conversation was closed in MessageBird: replies on this request no longer reach the customer, and their next message starts a new request."
		if err := s.addInternal(ctx, link.RequestKey, note); err != nil {
			slog.WarnContext(ctx, "note about the archived conversation not added", "request_key", link.RequestKey, "error", err.Error())
		}
	}
	return ok(Result{Status: StatusClosed, RequestKey: link.RequestKey, Reason: "conversation_archived"})
}

// addInternalOnce adds an internal comment carrying marker, unless an earlier attempt already
// did: when check is set (that attempt's answer may have been lost) the request's internal
// comments are read first. JSM's comment list is a consistent read.
func (s *Service) addInternalOnce(ctx context.Context, key, text, marker string, check bool) error {
	if check {
		var cs []jira.Comment
		err := s.jira(ctx, func(ctx context.Context) error {
			var err error
			cs, err = s.Jira.ListComments(ctx, key, jira.InternalComments)
			return err
		})
		if err != nil {
			return err
		}
		for i := len(cs) - 1; i >= 0; i-- {
			if strings.Contains(cs[i].Body, marker) {
				observe.MetricsFrom(ctx).Count("WriteVerified", 1, observe.D("Write", "internal_comment"))
				return nil
			}
		}
	}
	return s.addInternal(ctx, key, text)
}

// addInternal adds an internal comment (agents only).
func (s *Service) addInternal(ctx context.Context, key, text string) error {
	return s.jira(ctx, func(ctx context.Context) error {
		_, err := s.Jira.AddComment(ctx, key, text, false)
		return err
	})
}
