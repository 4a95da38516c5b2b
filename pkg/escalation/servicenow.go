package escalation

import (
	"context"
	"fmt"
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
	IncidentURL(id servicenow.SysID) string
	BaseURL() string
}

// ServiceNowTarget raises escalations as incidents.
//
// Every incident's correlation_id is "cxb.<conversation>.<escalation id>". Each attempt first
// reads the conversation's incidents (correlation_id STARTSWITH "cxb.<conversation>.", built
// with the injection-safe query builder; one consistent read):
//   - one carrying this escalation's id was created by an earlier attempt that died: it is the
//     answer ("created", recovered);
//   - another incident of the conversation gets a work note instead of a second incident
//     ("updated"); the note names the escalation id, and when an earlier attempt may have
//     appended it (since is set) sys_journal_field is read first, so it is never appended twice;
//   - otherwise a new incident is created.
//
// Because both reads are consistent, a write whose outcome is unknown (*DoubtError) may be
// followed by the next attempt at once: that attempt verifies before it writes.
type ServiceNowTarget struct {
	API    ServiceNowAPI
	Config ServiceNowConfig
	Now    func() time.Time
}

// Name is "servicenow".
func (t *ServiceNowTarget) Name() string { return ServiceNow }

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

// CorrelationID is the correlation_id of an escalation's incident.
func CorrelationID(e *Escalation) servicenow.Token {
	return servicenow.MustKey(conversationPrefix(e.ConversationID).String() + e.ID)
}

// Deliver creates the incident, or finds or updates the conversation's. Every attempt reads the
// conversation's incidents first; since (an earlier attempt may have written) makes the work
// note path read the journal too.
func (t *ServiceNowTarget) Deliver(ctx context.Context, e *Escalation, since time.Time) (Ticket, error) {
	// A read and a write: under ServiceNow's shared rate limit both calls are taken at once or
	// neither, so a flood does not spend the limit on reads whose create is then refused.
	ctx = ratelimit.Reserve(ctx, 2)
	corr := CorrelationID(e)
	q := servicenow.NewQuery().
		Where(servicenow.StartsWith(servicenow.FieldCorrelationID, conversationPrefix(e.ConversationID))).
		OrderBy(servicenow.FieldCreatedOn)
	var rows []servicenow.Incident
	if err := t.API.Query(ctx, servicenow.TableIncident, q, servicenow.QueryOptions{Fields: servicenow.IncidentFields, Limit: 20}, &rows); err != nil {
		return Ticket{}, err
	}
	for _, in := range rows {
		if in.CorrelationID == corr.String() {
			return t.ticket(in, false, true)
		}
	}
	if len(rows) > 0 {
		in := rows[0]
		id, err := in.ID()
		if err != nil {
			return Ticket{}, &connectors.Error{System: servicenow.System, Op: "read incident", Kind: connectors.KindBadResponse, Err: err}
		}
		if !since.IsZero() {
			landed, err := t.API.JournalHas(ctx, servicenow.TableIncident, id, servicenow.FieldWorkNotes, servicenow.MustKey(e.ID))
			if err != nil {
				return Ticket{}, err
			}
			if landed {
				return t.ticket(in, true, true)
			}
		}
		note := fmt.Sprintf("Another escalation for this call (%s, escalation id %s):\n\n%s", e.Trigger.Label(), e.ID, e.details())
		if err := t.API.AppendWorkNote(ctx, id, note); err != nil {
			return Ticket{}, t.doubt(err)
		}
		return t.ticket(in, true, false)
	}
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
		now := time.Now()
		if t.Now != nil {
			now = t.Now()
		}
		return &DoubtError{Since: now, Err: err}
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
