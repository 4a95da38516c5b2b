package escalation

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/ratelimit"
)

// ServiceNowAPI is the part of the ServiceNow client the target uses.
type ServiceNowAPI interface {
	Query(ctx context.Context, table servicenow.Table, q *servicenow.EncodedQuery, opt servicenow.QueryOptions, out any) error
	CreateIncident(ctx context.Context, n servicenow.NewIncident) (servicenow.Incident, error)
	AppendWorkNote(ctx context.Context, incident servicenow.SysID, note string) error
	JournalHas(ctx context.Context, table servicenow.Table, id servicenow.SysID, field servicenow.Field, marker servicenow.Token) (bool, error)
	JournalFind(ctx context.Context, table servicenow.Table, field servicenow.Field, marker servicenow.Token, ids ...servicenow.SysID) (servicenow.SysID, bool, error)
	IncidentURL(id servicenow.SysID) string
	BaseURL() string
}

// ServiceNowTarget raises escalations as incidents.
//
// Every incident's correlation_id is "cxb.<conversation>.<escalation id>". Each attempt first
// reads, in one query built with the injection-safe query builder (one consistent read), the
// conversation's incidents (correlation_id STARTSWITH "cxb.<conversation>.") and, when the
// escalation's trigger joins repeat callers and its callerSysId is known, the caller's open
// incidents raised by cxbridge (^NQ caller_id=<sys_id>^active=true^state!=6^state!=7^state!=8
// ^correlation_idSTARTSWITHcxb.):
//   - one carrying this escalation's id was created by an earlier attempt that died: it is the
//     answer ("created", recovered);
//   - another incident of the conversation gets a work note instead of a second incident
//     ("updated");
//   - else the caller's newest open incident created within the repeat window gets the work
//     note ("updated", a repeat caller);
//   - otherwise a new incident is created.
//
// A note names the escalation id, and when an earlier attempt may have appended it (since is
// set) sys_journal_field is read first, across every incident the note may have gone to, so it
// is never appended twice. Because the reads are consistent, a write whose outcome is unknown
// (*DoubtError) may be followed by the next attempt at once: that attempt verifies before it
// writes.
type ServiceNowTarget struct {
	API    ServiceNowAPI
	Config ServiceNowConfig
	Repeat RepeatCallers
	Now    func() time.Time
}

// Name is "servicenow".
func (t *ServiceNowTarget) Name() string { return ServiceNow }

func (t *ServiceNowTarget) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// conversationPrefix is the correlation_id prefix of a conversation's incidents. Conversation
// ids are letters, digits and hyphens; lowercase they cannot hold an encoded-query keyword, and
// an id the token rules still refuse is replaced by its hash.
func conversationPrefix(conversationID string) servicenow.Token {
	c := strings.ToLower(conversationID)
	if tok, err := servicenow.ParseKey("cxb." + c + "."); err == nil {
		return tok
	}
	return servicenow.MustKey("cxb.h" + hashHex([]byte(c))[:16] + ".")
}

// cxbridgePrefix starts the correlation_id of every incident cxbridge raises.
var cxbridgePrefix = servicenow.MustKey("cxb.")

// CorrelationID is the correlation_id of an escalation's incident.
func CorrelationID(e *Escalation) servicenow.Token {
	return servicenow.MustKey(conversationPrefix(e.ConversationID).String() + e.ID)
}

// closedStates are the incident states that are not open: Resolved, Closed, Canceled.
var closedStates = []string{servicenow.StateResolved, servicenow.StateClosed, servicenow.StateCanceled}

// incidentsQuery reads the conversation's incidents and, for a repeat caller, the caller's open
// cxbridge incidents, newest first.
func (t *ServiceNowTarget) incidentsQuery(e *Escalation, repeat bool) *servicenow.EncodedQuery {
	q := servicenow.NewQuery().Where(servicenow.StartsWith(servicenow.FieldCorrelationID, conversationPrefix(e.ConversationID)))
	if repeat {
		q.NQ().
			Where(servicenow.Eq(servicenow.FieldCallerID, servicenow.MustSysID(e.CallerSysID))). // validated as input
			Where(servicenow.Eq(servicenow.FieldActive, servicenow.Bool(true)))
		for _, st := range closedStates {
			q.Where(servicenow.NotEq(servicenow.FieldState, servicenow.MustKey(st)))
		}
		q.Where(servicenow.StartsWith(servicenow.FieldCorrelationID, cxbridgePrefix))
	}
	return q.OrderByDesc(servicenow.FieldCreatedOn)
}

// joinable checks, on what the instance returned, every condition the query asked for: an
// instance silently drops a condition it cannot parse, and a row of another caller must never
// be joined.
func (t *ServiceNowTarget) joinable(in servicenow.Incident, e *Escalation, now time.Time) bool {
	return in.CallerID == e.CallerSysID && in.Active && !slices.Contains(closedStates, in.State) &&
		strings.HasPrefix(in.CorrelationID, cxbridgePrefix.String()) &&
		!in.CreatedAt.IsZero() && !in.CreatedAt.Before(t.Repeat.since(now))
}

// Deliver creates the incident, or finds or updates the conversation's, or the repeat caller's.
// Every attempt reads the incidents first; since (an earlier attempt may have written) makes the
// work note path read the journal too.
func (t *ServiceNowTarget) Deliver(ctx context.Context, e *Escalation, since time.Time) (Ticket, error) {
	// A read and a write: under ServiceNow's shared rate limit both calls are taken at once or
	// neither, so a flood does not spend the limit on reads whose create is then refused. (The
	// journal read of a note in doubt, rare, takes a slot of its own.)
	ctx = ratelimit.Reserve(ctx, 2)
	corr := CorrelationID(e)
	repeat := t.Repeat.Applies(e.Trigger) && e.CallerSysID != ""
	var rows []servicenow.Incident
	if err := t.API.Query(ctx, servicenow.TableIncident, t.incidentsQuery(e, repeat), servicenow.QueryOptions{Fields: servicenow.IncidentFields, Limit: 20}, &rows); err != nil {
		return Ticket{}, err
	}
	now := t.now()
	prefix := conversationPrefix(e.ConversationID).String()
	var conv, caller []servicenow.Incident
	for _, in := range rows {
		switch {
		case in.CorrelationID == corr.String():
			return t.ticket(in, false, true)
		case strings.HasPrefix(in.CorrelationID, prefix):
			conv = append(conv, in)
		case repeat && t.joinable(in, e, now):
			caller = append(caller, in)
		}
	}
	// The conversation's first incident; else the caller's newest.
	sort.SliceStable(conv, func(i, j int) bool { return conv[i].CreatedAt.Before(conv[j].CreatedAt) })
	sort.SliceStable(caller, func(i, j int) bool { return caller[i].CreatedAt.After(caller[j].CreatedAt) })
	own := min(len(conv), 1) // candidates before this index are the call's own incident
	candidates := slices.Concat(conv[:own], caller)
	if len(candidates) == 0 {
		return t.create(ctx, e, corr)
	}
	ids := make([]servicenow.SysID, len(candidates))
	for i, in := range candidates {
		id, err := in.ID()
		if err != nil {
			return Ticket{}, &connectors.Error{System: servicenow.System, Op: "read incident", Kind: connectors.KindBadResponse, Err: err}
		}
		ids[i] = id
	}
	if !since.IsZero() {
		// The note may be on any incident an earlier attempt could have chosen.
		id, landed, err := t.API.JournalFind(ctx, servicenow.TableIncident, servicenow.FieldWorkNotes, servicenow.MustKey(e.ID), ids...)
		if err != nil {
			return Ticket{}, err
		}
		if landed {
			i := slices.Index(ids, id)
			tk, err := t.ticket(candidates[i], true, true)
			tk.Repeat = i >= own
			return tk, err
		}
	}
	note := fmt.Sprintf("Another escalation for this call (%s, escalation id %s):\n\n%s", e.Trigger.Label(), e.ID, e.details())
	if own == 0 {
		note = e.repeatNote()
	}
	if err := t.API.AppendWorkNote(ctx, ids[0], note); err != nil {
		return Ticket{}, t.doubt(err)
	}
	tk, err := t.ticket(candidates[0], true, false)
	tk.Repeat = own == 0
	return tk, err
}

// create raises the escalation's incident.
func (t *ServiceNowTarget) create(ctx context.Context, e *Escalation, corr servicenow.Token) (Ticket, error) {
	n := servicenow.NewIncident{
		ShortDescription:   t.shortDescription(e),
		Description:        t.description(e),
		ContactType:        "phone",
		Category:           t.Config.Category,
		Impact:             t.Config.Impact,
		Urgency:            t.Config.Urgency,
		CorrelationID:      corr,
		CorrelationDisplay: "cxbridge",
	}
	if e.CallerSysID != "" {
		n.CallerID = servicenow.MustSysID(e.CallerSysID) // validated as input
	}
	if t.Config.AssignmentGroup != "" {
		n.AssignmentGroup = servicenow.MustSysID(t.Config.AssignmentGroup)
	}
	in, err := t.API.CreateIncident(ctx, n)
	if err != nil {
		return Ticket{}, t.doubt(err)
	}
	return t.ticket(in, false, false)
}

// doubt marks a write whose outcome is unknown, so the next attempt looks before it writes.
func (t *ServiceNowTarget) doubt(err error) error {
	if connectors.InDoubt(err) {
		return &DoubtError{Since: t.now(), Err: err}
	}
	return err
}

func (t *ServiceNowTarget) ticket(in servicenow.Incident, updated, recovered bool) (Ticket, error) {
	tk := Ticket{Key: in.Number, Updated: updated, Recovered: recovered}
	if id, err := in.ID(); err == nil {
		tk.URL = t.API.IncidentURL(id)
	}
	return tk, nil
}

// shortDescription is seed 001's "Call from <name> - Topic: <wrap-up code>".
func (t *ServiceNowTarget) shortDescription(e *Escalation) string {
	who := e.CustomerName
	if who == "" {
		who = "unknown caller"
	}
	topic := e.WrapUpCode
	if topic == "" {
		topic = e.Trigger.Label()
	}
	return truncate(fmt.Sprintf("Call from %s - Topic: %s", who, topic), 160)
}

// description leads with seed 001's conversation id, recording link and transcript summary.
func (t *ServiceNowTarget) description(e *Escalation) string {
	var b strings.Builder
	line := func(label, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%s: %s\n", label, v)
		}
	}
	line("Conversation ID", e.ConversationID)
	line("Recording", e.RecordingURL)
	if e.TranscriptSummary != "" {
		b.WriteString("Transcript summary:\n" + e.TranscriptSummary + "\n")
	}
	b.WriteString("\n")
	trig := e.Trigger.Label()
	if e.Trigger == HoldTime {
		trig += fmt.Sprintf(" (held %d s)", e.HoldSeconds)
	}
	line("Escalation", trig)
	line("Occurred at (UTC)", formatTime(e.OccurredAt))
	line("Customer", e.CustomerName)
	line("Agent", e.AgentName)
	line("Queue", e.QueueName)
	line("Wrap-up code", e.WrapUpCode)
	line("Product", e.Product)
	line("Version", e.Version)
	if e.Description != "" {
		b.WriteString("\nNotes:\n" + e.Description + "\n")
	}
	e.inputProblems(&b)
	fmt.Fprintf(&b, "\nEscalation id: %s (cxbridge)", e.ID)
	return b.String()
}

// Note appends a work note to the master incident.
func (t *ServiceNowTarget) Note(ctx context.Context, m Master, text string) error {
	id, err := servicenow.ParseSysID(m.SysID)
	if err != nil {
		return &connectors.Error{System: servicenow.System, Op: "append work note", Kind: connectors.KindConfig, Message: "the master incident's sys_id is unknown"}
	}
	return t.API.AppendWorkNote(ctx, id, text)
}

// NoteLanded reads the master incident's work notes (sys_journal_field) for the note's token.
func (t *ServiceNowTarget) NoteLanded(ctx context.Context, m Master, token string) (bool, error) {
	id, err := servicenow.ParseSysID(m.SysID)
	if err != nil {
		return false, &connectors.Error{System: servicenow.System, Op: "read work notes", Kind: connectors.KindConfig, Message: "the master incident's sys_id is unknown"}
	}
	tok, err := servicenow.ParseKey(token)
	if err != nil {
		return false, &connectors.Error{System: servicenow.System, Op: "read work notes", Kind: connectors.KindRejected, Message: "marker: " + err.Error()}
	}
	return t.API.JournalHas(ctx, servicenow.TableIncident, id, servicenow.FieldWorkNotes, tok)
}

// ResolveMaster finds the master incident's sys_id by its number.
func (t *ServiceNowTarget) ResolveMaster(ctx context.Context, m Master) (Master, error) {
	if m.SysID != "" {
		return m, nil
	}
	num, err := servicenow.ParseKey(m.Key)
	if err != nil {
		return m, &connectors.Error{System: servicenow.System, Op: "find master incident", Kind: connectors.KindRejected, Message: "the master incident number is not a valid number"}
	}
	var rows []servicenow.Incident
	q := servicenow.NewQuery().Where(servicenow.Eq(servicenow.FieldNumber, num))
	if err := t.API.Query(ctx, servicenow.TableIncident, q, servicenow.QueryOptions{Fields: []servicenow.Field{servicenow.FieldSysID, servicenow.FieldNumber}, Limit: 1}, &rows); err != nil {
		return m, err
	}
	if len(rows) == 0 || rows[0].Number != m.Key {
		return m, &connectors.Error{System: servicenow.System, Op: "find master incident", Kind: connectors.KindNotFound, Message: "no incident " + m.Key}
	}
	m.SysID = rows[0].SysID
	return m, nil
}

// MasterURL links the master incident.
func (t *ServiceNowTarget) MasterURL(m Master) string {
	if id, err := servicenow.ParseSysID(m.SysID); err == nil {
		return t.API.IncidentURL(id)
	}
	return t.API.BaseURL() + "/nav_to.do?uri=incident.do?sysparm_query=number=" + m.Key
}

// NoteLimit is the longest work note sent. ServiceNow's journal limit is instance
// configuration (UNCONFIRMED); stay well inside the usual sizes.
func (t *ServiceNowTarget) NoteLimit() int { return 30000 }
