package conversation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/apigw"
	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/jira"
	"github.com/cxbridge/cxbridge/pkg/connectors/messagebird"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/store"
)

const (
	// deliveryGuardTTL: a Jira delivery id is remembered this long (Jira's retry period is not
	// documented; UNCONFIRMED).
	deliveryGuardTTL = 7 * 24 * time.Hour
	// effectGuardTTL: a comment sent (or a status notified) is remembered this long.
	effectGuardTTL = 30 * 24 * time.Hour
)

// jiraWebhook handles POST /jira/webhook: verify X-Hub-Signature, de-duplicate by delivery id
// (two-phase: the guard completes only when the work is done), dispatch.
func (s *Service) jiraWebhook(ctx context.Context, req *apigw.Request) apigw.Response {
	secret, err := s.jiraSecret(ctx)
	if err != nil {
		return s.failure(ctx, "jira", err)
	}
	sig := req.Header(jira.HeaderSignature)
	if err := jira.VerifySignature(secret, req.Body, sig); err != nil {
		// A rotated secret is picked up at most once a minute.
		if sig == "" || !s.mayRefreshSecret() {
			return s.rejected(ctx, "jira", jira.HeaderSignature, "bad_signature")
		}
		s.Secrets.Invalidate(s.Config.InboundSecretID)
		if secret, err = s.jiraSecret(ctx); err != nil {
			return s.failure(ctx, "jira", err)
		}
		if jira.VerifySignature(secret, req.Body, sig) != nil {
			return s.rejected(ctx, "jira", jira.HeaderSignature, "bad_signature")
		}
	}
	delivery := strings.TrimSpace(req.Header(jira.HeaderDeliveryID))
	if delivery == "" {
		return apigw.Missing(jira.HeaderDeliveryID).Response()
	}
	ev, err := jira.ParseWebhook(req.Body)
	if err != nil {
		return apigw.Invalid("body", "invalid_event", "%v", err).Response()
	}
	observe.SetCorrelationID(ctx, ev.Issue.Key)
	until, _ := s.leaseTimes(ctx)
	claim, err := s.Store.ClaimWork(ctx, "jira", delivery, owner(ctx), until, s.now().Add(deliveryGuardTTL))
	switch {
	case err != nil:
		return s.failure(ctx, "jira", err)
	case claim.Claim == Completed:
		observe.MetricsFrom(ctx).Count("JiraDuplicateDelivery", 1)
		return ok(Result{Status: StatusDuplicate, RequestKey: ev.Issue.Key})
	case claim.Claim == Busy:
		return s.failure(ctx, "jira", ErrBusy)
	}
	res, err := s.jiraEvent(ctx, ev)
	wctx, cancel := wrapUp(ctx)
	defer cancel()
	if err != nil {
		if rerr := s.Store.ReleaseWork(wctx, "jira", delivery, owner(ctx)); rerr != nil {
			slog.WarnContext(ctx, "delivery claim not released; it expires by itself", "error", rerr.Error())
		}
		return s.failure(ctx, "jira", err)
	}
	if err := s.Store.CompleteWork(wctx, "jira", delivery, s.now().Add(deliveryGuardTTL), map[string]string{"status": res.Status}); err != nil {
		// The effects have their own guards, so a redelivery does not repeat them.
		slog.WarnContext(ctx, "delivery guard not completed", "error", err.Error())
	}
	return ok(res)
}

func (s *Service) jiraEvent(ctx context.Context, ev *jira.WebhookEvent) (Result, error) {
	switch ev.WebhookEvent {
	case jira.EventCommentCreated:
		return s.agentComment(ctx, ev)
	case jira.EventIssueUpdated:
		return s.statusChanged(ctx, ev)
	}
	return Result{Status: StatusIgnored, Reason: "event"}, nil
}

// agentComment sends a public agent comment to the end user.
func (s *Service) agentComment(ctx context.Context, ev *jira.WebhookEvent) (Result, error) {
	c, key := ev.Comment, ev.Issue.Key
	skip := func(reason string) (Result, error) {
		return Result{Status: StatusIgnored, Reason: reason, RequestKey: key}, nil
	}
	if c == nil {
		return skip("no_comment")
	}
	if !c.IsPublic() {
		return skip("internal_comment") // never sent; a missing jsdPublic counts as internal
	}
	self, err := s.selfAccount(ctx)
	if err != nil {
		return Result{}, err
	}
	switch {
	case c.Author.AccountID == self:
		// Jira echoes cxbridge's own comments (the customer's messages, notes): sending them
		// would repeat the customer's words back to them.
		return skip("own_comment")
	case c.Author.AccountType == "customer" || c.Author.AccountType == "app":
		return skip("not_an_agent")
	}
	link, found, err := s.linkOf(ctx, ev)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return skip("no_conversation")
	}
	if link.CustomerID != "" && c.Author.AccountID == link.CustomerID {
		return skip("not_an_agent") // the customer commenting in the portal
	}
	// The end user's next message starts a new comment, whether or not this one is delivered.
	if _, err := s.Store.SetAgentReply(ctx, link, c.ID.String()); err != nil {
		return Result{}, err
	}
	text := strings.TrimSpace(c.Body)
	if text == "" {
		return skip("no_text") // attachments cannot be sent to the end user
	}
	return s.deliver(ctx, link, "comment-"+c.ID.String(), text, map[string]string{"requestKey": key, "agent": c.Author.DisplayName})
}

// statusChanged archives the conversation when the request is done, and sends configured status
// notifications.
func (s *Service) statusChanged(ctx context.Context, ev *jira.WebhookEvent) (Result, error) {
	key := ev.Issue.Key
	_, to, changed := ev.StatusChange()
	if !changed {
		return Result{Status: StatusIgnored, Reason: "no_status_change", RequestKey: key}, nil
	}
	link, found, err := s.linkOf(ctx, ev)
	if err != nil {
		return Result{}, err
	}
	if !found {
		return Result{Status: StatusIgnored, Reason: "no_conversation", RequestKey: key}, nil
	}
	category := ""
	if st := ev.Issue.Fields.Status; st != nil {
		category = st.StatusCategory.Key
	}
	res := Result{Status: StatusIgnored, Reason: "no_notification", RequestKey: key}
	if text, ok := s.Config.notification(to, category); ok {
		id := "status-" + key + "-" + string(changelogID(ev))
		values := map[string]string{"requestKey": key, "status": to}
		if res, err = s.deliver(ctx, link, id, fill(text, values), values); err != nil {
			return Result{}, err
		}
		if res.Status == StatusSent {
			res.Status = StatusNotified
		}
	}
	if !ev.IssueDone() {
		return res, nil
	}
	// Done: archive first, then close the link, so a failed archive is retried by Jira's
	// redelivery while the link still says where the conversation is.
	err = s.messenger(ctx, func(ctx context.Context) error { return s.Messenger.Archive(ctx, link.ConversationID) })
	if err != nil && connectors.KindOf(err) != connectors.KindNotFound {
		return Result{}, err
	}
	if _, err := s.Store.Close(ctx, link, "request_done"); err != nil {
		return Result{}, err
	}
	observe.MetricsFrom(ctx).Count("ConversationClosed", 1, observe.D("Reason", "request_done"))
	slog.InfoContext(ctx, "request done: conversation archived and link closed", "request_key", key, "status", to)
	return Result{Status: StatusClosed, Reason: "request_done", RequestKey: key, MessageID: res.MessageID}, nil
}

// linkOf finds the open link of the event's request. A request whose create answered with a
// fault (a 5xx or a timeout after Jira created it) exists in Jira before its link is recorded:
// the end user's redelivered message records it, and an agent may reply before that. Such a
// request carries its creation label (cxbridge-mb-<contact>-<n>); when the contact's link is
// still creating the request of that label, this request is it, and its link is recorded here,
// under the contact's lease. A request without such a label is not a conversation cxbridge
// started, and is ignored.
func (s *Service) linkOf(ctx context.Context, ev *jira.WebhookEvent) (Link, bool, error) {
	key := ev.Issue.Key
	link, found, err := s.Store.LinkByRequest(ctx, key)
	if err != nil || found {
		return link, found, err
	}
	labels := ev.Issue.Fields.Labels
	if labels == nil { // not in the payload (its comment events are only partly documented)
		var issue *jira.Issue
		err := s.jira(ctx, func(ctx context.Context) error {
			var err error
			issue, err = s.Jira.GetIssue(ctx, key, "labels")
			return err
		})
		if connectors.KindOf(err) == connectors.KindNotFound {
			return Link{}, false, nil
		}
		if err != nil {
			return Link{}, false, err
		}
		labels = issue.Labels()
	}
	for _, label := range labels {
		contactID, ok := creationContact(label)
		if !ok {
			continue
		}
		link, err := s.Store.Link(ctx, contactID)
		if err != nil {
			return Link{}, false, err
		}
		if link.State != StateCreating || link.CreationToken != label {
			continue // an earlier request of the contact, or not theirs
		}
		return s.adoptFromJira(ctx, contactID, label, key)
	}
	return Link{}, false, nil
}

// adoptFromJira records the link of a request created while its create's answer was lost.
// The contact's lease is held by a message being processed, at most for a moment: it is waited
// for briefly, then Jira is asked to deliver again (ErrBusy).
func (s *Service) adoptFromJira(ctx context.Context, contactID, label, key string) (Link, bool, error) {
	until, _ := s.leaseTimes(ctx)
	lease, _, err := s.Store.Acquire(ctx, contactID, owner(ctx), until, time.Now().Add(time.Second))
	if err != nil {
		return Link{}, false, err
	}
	defer func() {
		rctx, cancel := wrapUp(ctx)
		defer cancel()
		if err := lease.Release(rctx); err != nil {
			slog.WarnContext(ctx, "lease not released; it expires by itself", "error", err.Error())
		}
	}()
	l := lease.Link
	switch {
	case l.Open() && l.RequestKey == key:
		return l, true, nil // the end user's redelivered message recorded it meanwhile
	case l.State != StateCreating || l.CreationToken != label:
		return Link{}, false, nil
	}
	l.State, l.RequestKey, l.Phase = StateOpen, key, PhaseDescription
	if err := lease.Open(ctx, l); err != nil {
		return Link{}, false, err
	}
	observe.MetricsFrom(ctx).Count("WriteVerified", 1, observe.D("Write", "request"))
	slog.WarnContext(ctx, "a request whose create was in doubt was found from its label on a Jira event; linked", "request_key", key)
	return lease.Link, true, nil
}

func changelogID(ev *jira.WebhookEvent) jira.ID {
	if ev.Changelog != nil && ev.Changelog.ID != "" {
		return ev.Changelog.ID
	}
	return jira.ID(strconv.FormatInt(ev.Timestamp, 10))
}

// outcome is what delivering one text to the end user came to.
type outcome struct {
	status, reason, messageID, conversationID string
	failedID                                  string // a message MessageBird refused; its message.updated is then not reported again
	note                                      string // internal comment to add on the request
}

// deliver sends text to the end user once: the effect id (a comment, a status change) is claimed
// first. A send whose answer was lost (connectors.InDoubt) keeps its claim, in doubt: the next
// attempt (Jira's redelivery) takes it over and looks for the message in the conversation
// before sending, as does an attempt that finds an earlier one interrupted. Only a send that
// provably did nothing (refused, or never sent) gives the claim up. An internal note about a
// failed delivery is part of the effect: if writing it fails, Jira's redelivery writes it
// without sending anything again, after checking that the first try did not land.
func (s *Service) deliver(ctx context.Context, link Link, effect, text string, values map[string]string) (Result, error) {
	until, _ := s.leaseTimes(ctx)
	claim, err := s.Store.ClaimWork(ctx, "jout", effect, owner(ctx), until, s.now().Add(effectGuardTTL))
	if err != nil {
		return Result{}, err
	}
	switch claim.Claim {
	case Busy:
		return Result{}, ErrBusy
	case Completed:
		d := claim.Data
		if d["note"] != "" && d["noted"] != "true" {
			// The earlier attempt's note may have landed before it failed: look first.
			if err := s.addInternalOnce(ctx, link.RequestKey, d["note"], refMarker(effect), true); err != nil {
				return Result{}, err
			}
			d["noted"] = "true"
			if err := s.Store.CompleteWork(ctx, "jout", effect, s.now().Add(effectGuardTTL), d); err != nil {
				slog.WarnContext(ctx, "effect guard not updated", "error", err.Error())
			}
		}
		return Result{Status: d["status"], Reason: d["reason"], MessageID: d["message_id"], RequestKey: link.RequestKey}, nil
	}
	// inDoubt: something may already have reached the end user, so the claim must survive a
	// failure of this attempt.
	inDoubt := claim.TakenOver
	var out outcome
	if claim.TakenOver {
		observe.MetricsFrom(ctx).Count("WriteVerified", 1, observe.D("Write", "reply"))
		id, err := s.alreadySent(ctx, link, text, claim.Started)
		if err != nil {
			return Result{}, s.unclaim(ctx, effect, inDoubt, err)
		}
		if id != "" {
			slog.WarnContext(ctx, "the reply an earlier attempt sent was found in the conversation; not sent again", "message_id", id)
			out = outcome{status: StatusSent, messageID: id, conversationID: link.ConversationID}
		}
	}
	if out.status == "" {
		if out, err = s.send(ctx, link, text, values); err != nil {
			return Result{}, s.unclaim(ctx, effect, inDoubt || connectors.InDoubt(err), err)
		}
	}
	if out.conversationID != "" && out.conversationID != link.ConversationID {
		if _, err := s.Store.SetConversation(ctx, link, out.conversationID); err != nil {
			slog.WarnContext(ctx, "new conversation id not recorded", "error", err.Error())
		}
	}
	if out.note != "" {
		out.note += "\n" + refMarker(effect)
	}
	data := map[string]string{"status": out.status, "reason": out.reason, "message_id": out.messageID, "note": out.note}
	// What was sent is recorded even when the send used the work's whole budget, and even while
	// the store rests after a stall: a late record is still wanted.
	wctx, cancel := wrapUp(ctx)
	defer cancel()
	if err := s.Store.CompleteWork(store.SendDuringRest(wctx), "jout", effect, s.now().Add(effectGuardTTL), data); err != nil {
		// Sent, but not recorded: the claim stays in progress and expires, and the next
		// attempt takes it over and finds the message in the conversation.
		slog.ErrorContext(ctx, "reply sent but its guard was not completed; a redelivery checks the conversation first", "error", err.Error())
	}
	reason := out.reason
	if reason == "" {
		reason = "none" // CloudWatch refuses empty dimension values
	}
	observe.MetricsFrom(ctx).Count("ReplyOutcome", 1, observe.D("Outcome", out.status), observe.D("Reason", reason))
	slog.InfoContext(ctx, "reply handled", "outcome", out.status, "reason", out.reason, "request_key", link.RequestKey, "platform", link.Platform)
	if out.failedID != "" {
		// A later message.updated for the same failure must not report it a second time.
		if err := s.Store.Mark(ctx, "mbfail", out.failedID, s.now().Add(failureGuardTTL)); err != nil {
			slog.WarnContext(ctx, "delivery failure guard not written", "error", err.Error())
		}
	}
	if out.note != "" {
		if err := s.addInternal(ctx, link.RequestKey, out.note); err != nil {
			return Result{}, err // redelivery adds the note, after looking for it (see Completed above)
		}
		data["noted"] = "true"
		_ = s.Store.CompleteWork(ctx, "jout", effect, s.now().Add(effectGuardTTL), data)
	}
	return Result{Status: out.status, Reason: out.reason, MessageID: out.messageID, RequestKey: link.RequestKey}, nil
}

// refMarker names an effect in the internal notes written about it, so a note whose answer was
// lost is found again rather than written twice.
func refMarker(effect string) string { return "(cxbridge ref " + effect + ")" }

// unclaim ends a failed attempt's claim: released when the work provably did nothing, so a
// redelivery starts afresh, or left in doubt, so the redelivery checks first.
func (s *Service) unclaim(ctx context.Context, effect string, inDoubt bool, cause error) error {
	ctx, cancel := wrapUp(ctx)
	defer cancel()
	if inDoubt {
		observe.MetricsFrom(ctx).Count("WriteInDoubt", 1, observe.D("Write", "reply"))
		if err := s.Store.DoubtWork(ctx, "jout", effect, owner(ctx)); err != nil {
			slog.WarnContext(ctx, "effect claim not marked in doubt; its lease expires and the next attempt checks first anyway", "error", err.Error())
		}
		return cause
	}
	if err := s.Store.ReleaseWork(ctx, "jout", effect, owner(ctx)); err != nil {
		slog.WarnContext(ctx, "effect claim not released; it expires by itself", "error", err.Error())
	}
	return cause
}

// alreadySent looks among the conversation's sent messages, since an attempt in doubt began, for
// what this reply may have become: the text itself, or the window template (sent instead when
// the WhatsApp window was closed). It returns the message id when it finds one. The message list
// is a consistent read; its order is not documented, so both ends are read.
func (s *Service) alreadySent(ctx context.Context, link Link, text string, since time.Time) (string, error) {
	const page = 50
	var first messagebird.MessageList
	err := s.messenger(ctx, func(ctx context.Context) error {
		var err error
		first, err = s.Messenger.ListMessages(ctx, link.ConversationID, 0, page)
		return err
	})
	if connectors.KindOf(err) == connectors.KindNotFound {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	items := first.Items
	if first.TotalCount > len(first.Items) { // the order is not documented: read the other end too
		var last messagebird.MessageList
		err := s.messenger(ctx, func(ctx context.Context) error {
			var err error
			last, err = s.Messenger.ListMessages(ctx, link.ConversationID, max(first.TotalCount-page, 0), page)
			return err
		})
		if err != nil {
			return "", err
		}
		items = append(items, last.Items...)
	}
	template := ""
	if s.Config.WindowTemplate != nil {
		template = s.Config.WindowTemplate.Name
	}
	for _, m := range items {
		if m.Direction != messagebird.DirectionSent || m.CreatedDatetime.Before(since.Add(-time.Minute)) {
			continue
		}
		if m.Content.Text == text || (template != "" && m.Content.HSM != nil && m.Content.HSM.TemplateName == template) {
			return m.ID, nil
		}
	}
	return "", nil
}

// send delivers text on the conversation's channel, or explains why it could not. It returns an
// error only when trying again later may deliver it (an outage).
func (s *Service) send(ctx context.Context, link Link, text string, values map[string]string) (outcome, error) {
	if strings.EqualFold(link.Platform, messagebird.PlatformWhatsApp) && !windowOpen(link.LastInbound, s.now()) {
		return s.outsideWindow(ctx, link, values)
	}
	var msg messagebird.Message
	err := s.messenger(ctx, func(ctx context.Context) error {
		var err error
		msg, err = s.Messenger.SendText(ctx, link.ConversationID, link.ChannelID, text)
		return err
	})
	switch {
	case err == nil:
		return outcome{status: StatusSent, messageID: msg.ID, conversationID: msg.ConversationID}, nil
	case errors.Is(err, messagebird.ErrOutsideWindow):
		out, err := s.outsideWindow(ctx, link, values)
		out.failedID = msg.ID
		return out, err
	case connectors.InDoubt(err), connectors.IsOutage(err), errors.Is(err, breaker.ErrOpen):
		// Unknown (it may have reached the end user) or worth another try later.
		return outcome{}, err
	}
	// Refused: a rejected message, bad credentials, an unknown conversation. The agent must know.
	return outcome{status: StatusNotDelivered, reason: failureReason(err), messageID: msg.ID, failedID: msg.ID,
		note: "This reply was not delivered to the customer: " + failureText(err) + "."}, nil
}

func windowOpen(lastInbound, now time.Time) bool {
	return !lastInbound.IsZero() && now.Sub(lastInbound) < messagebird.CustomerServiceWindow
}

// outsideWindow sends the configured template instead of a free-form reply, or reports that the
// reply cannot be delivered.
func (s *Service) outsideWindow(ctx context.Context, link Link, values map[string]string) (outcome, error) {
	last := "never"
	if !link.LastInbound.IsZero() {
		last = link.LastInbound.UTC().Format("2006-01-02 15:04 UTC")
	}
	why := "the customer last wrote " + last + ", more than 24 hours ago, and WhatsApp then allows only approved template messages"
	tpl := s.Config.WindowTemplate
	if tpl == nil {
		return outcome{status: StatusNotDelivered, reason: "outside_window",
			note: "This reply was not delivered: " + why + ". It reaches the customer only if they write again (configure MESSAGEBIRD_WINDOW_TEMPLATE to send a template instead)."}, nil
	}
	t := *tpl
	t.Params = nil
	for _, p := range s.Config.WindowTemplateParams {
		t.Params = append(t.Params, fill(p, values))
	}
	var msg messagebird.Message
	err := s.messenger(ctx, func(ctx context.Context) error {
		var err error
		msg, err = s.Messenger.SendTemplate(ctx, link.ConversationID, link.ChannelID, t)
		return err
	})
	switch {
	case err == nil:
		return outcome{status: StatusTemplateSent, reason: "outside_window", messageID: msg.ID, conversationID: msg.ConversationID,
			note: fmt.Sprintf("This reply was not delivered as written: %s. The template %q was sent instead; the customer sees the reply once they write again.", why, t.Name)}, nil
	case connectors.InDoubt(err), connectors.IsOutage(err), errors.Is(err, breaker.ErrOpen):
		return outcome{}, err
	}
	return outcome{status: StatusNotDelivered, reason: "outside_window", messageID: msg.ID, failedID: msg.ID,
		note: fmt.Sprintf("This reply was not delivered: %s, and the template %q was refused: %s.", why, t.Name, failureText(err))}, nil
}

// failureReason is a short metric-safe reason for a failed send.
func failureReason(err error) string {
	var ce *connectors.Error
	switch {
	case errors.Is(err, messagebird.ErrOutsideWindow):
		return "outside_window"
	case errors.Is(err, messagebird.ErrNotDelivered):
		return "rejected"
	case errors.As(err, &ce):
		return string(ce.Kind)
	}
	return "error"
}

// failureText says why a send failed, for an agent.
func failureText(err error) string {
	var ce *connectors.Error
	if !errors.As(err, &ce) {
		return err.Error()
	}
	switch ce.Kind {
	case connectors.KindUnauthorized, connectors.KindForbidden, connectors.KindConfig:
		return "MessageBird refused cxbridge's credentials (check MESSAGEBIRD_SECRET_ID)"
	case connectors.KindNotFound:
		return "MessageBird no longer knows the conversation"
	}
	msg := ce.Message
	if msg == "" {
		msg = ce.Error()
	}
	if ce.Code != "" {
		msg += " (MessageBird code " + ce.Code + ")"
	}
	return strings.TrimSuffix(msg, ".")
}

// deliveryNote is the internal comment for a message MessageBird reported as not delivered.
func deliveryNote(_ Config, link Link, failure error, messageID string) string {
	why := failureText(failure)
	if errors.Is(failure, messagebird.ErrOutsideWindow) {
		why = "it was outside WhatsApp's 24-hour window (the customer last wrote " + link.LastInbound.UTC().Format("2006-01-02 15:04 UTC") + ")"
	}
	return "A message to the customer was not delivered: " + why + ". " + messageMarker(messageID)
}

// messageMarker names a MessageBird message in the internal notes written about it.
func messageMarker(messageID string) string { return "(MessageBird message " + messageID + ")" }
