// Package escalation turns a Genesys escalation (hold time, VIP, wrap-up, manual) into a Jira
// Service Management request or a ServiceNow incident, and keeps DESIGN.md's promises while
// doing it: the caller always hears back in time, no escalation is lost, none is doubled, and no
// card number leaves for a ticket.
//
// One request goes through these steps (Service.Escalate):
//
//  1. Validation (Input): bad input is a 400 naming the field. A hold_time escalation below the
//     threshold answers "skipped" and touches nothing.
//  2. Masking: every free-text field is masked (pkg/mask) before anything is stored or sent;
//     the answer says how many spans were masked, never what.
//  3. Idempotency (pkg/idempotency): the escalation key is idempotencyKey, or the conversation
//     and trigger. A repeat replays the first answer; the same idempotencyKey with another
//     payload is a 409; a concurrent duplicate waits briefly for the first answer ("duplicate"
//     if it does not come in time).
//  4. Outage mode (outage.go): while the target's catastrophe flag is on, or its breaker is
//     open and a master ticket is configured, the call is "linked" to the master at once and
//     the link is batched into one note per master per minute. A target that opts in declares
//     an outage by itself (autooutage.go): when escalations about one topic cross a threshold,
//     or its breaker stays open too long; it creates the master ticket (master.go).
//  5. Delivery (jira.go, servicenow.go): at most three attempts inside the budget, through the
//     target's breaker, honouring Retry-After. The ticket carries the escalation's id (a Jira
//     label or field, the ServiceNow correlation_id), so a run recovering from a crash looks
//     for it before creating. ServiceNow updates an incident of the same conversation instead
//     of creating another, and a repeat caller's call joins their open ticket (repeat.go).
//  6. Outcome: "created" or "updated" (the ticket is linked back to the Genesys participant
//     while the result is recorded), "queued" (the outbox holds it for escalation-redrive), or
//     "failed" when a person must act (permissions, credentials, a rejected payload), with the
//     EscalationFailed metric that pages someone.
package escalation

import (
	"time"

	"github.com/cxbridge/cxbridge/pkg/apigw"
)

// Trigger is why an escalation was raised.
type Trigger string

// Triggers.
const (
	HoldTime Trigger = "hold_time"
	VIP      Trigger = "vip"
	WrapUp   Trigger = "wrap_up"
	Manual   Trigger = "manual"
)

// Triggers lists every trigger.
var Triggers = []Trigger{HoldTime, VIP, WrapUp, Manual}

// Label is the trigger as a person reads it.
func (t Trigger) Label() string {
	switch t {
	case HoldTime:
		return "High hold time"
	case VIP:
		return "VIP customer"
	case WrapUp:
		return "Wrap-up"
	case Manual:
		return "Manual escalation"
	}
	return string(t)
}

// Target systems.
const (
	Jira       = "jira"
	ServiceNow = "servicenow"
)

// Statuses of a Result.
const (
	StatusCreated   = "created"   // a new ticket
	StatusUpdated   = "updated"   // a note on the conversation's, or the repeat caller's, open ticket
	StatusLinked    = "linked"    // noted against the master ticket of an outage
	StatusQueued    = "queued"    // in the outbox; escalation-redrive will deliver it
	StatusSkipped   = "skipped"   // below the hold-time threshold: nothing to do
	StatusDuplicate = "duplicate" // an identical escalation is still being delivered
	StatusFailed    = "failed"    // a person must act; the EscalationFailed alarm says so
)

// Reasons explain queued and failed results.
const (
	ReasonUnavailable       = "unavailable"        // 5xx, timeouts, transport errors
	ReasonRateLimited       = "rate_limited"       // 429
	ReasonBreakerOpen       = "breaker_open"       // the target's breaker is open
	ReasonVerifying         = "verifying"          // an earlier attempt may have created it; checked later
	ReasonPermissionDenied  = "permission_denied"  // 403
	ReasonUnauthorized      = "unauthorized"       // 401 after a credential refresh
	ReasonRejected          = "rejected"           // 400/404/409: the target refused the content
	ReasonConfiguration     = "configuration"      // missing secret or setting
	ReasonOutboxUnavailable = "outbox_unavailable" // the outbox could not be written
	ReasonStateUnavailable  = "state_unavailable"  // the target cannot take it and the state store cannot queue it
	ReasonMaxAge            = "max_age"            // still undelivered after ESCALATION_MAX_AGE_MINUTES
	ReasonBelowThreshold    = "below_threshold"
	ReasonMasterPending     = "master_pending" // linked to an automatic outage whose master ticket is not created yet
)

// Escalation is one validated escalation. Free-text fields are already masked; the struct is
// what the outbox stores, so it never holds an unmasked card number.
type Escalation struct {
	// ID identifies the escalation everywhere: the idempotency record, the ticket marker, the
	// outbox, logs. It is derived from the escalation key, so a retry has the same ID.
	ID string `json:"id"`
	// ExplicitKey: the caller sent idempotencyKey (a different payload under it is a 409).
	ExplicitKey bool `json:"explicitKey,omitempty"`
	// Attempt is the caller's attempt number (0 when not given). From 2 on, an earlier call may
	// have delivered while the state store could not record it, so the target is searched
	// before anything is created.
	Attempt int `json:"attempt,omitempty"`

	ConversationID    string    `json:"conversationId"`
	ParticipantID     string    `json:"participantId,omitempty"`
	Trigger           Trigger   `json:"trigger"`
	Target            string    `json:"target"`
	HoldSeconds       int64     `json:"holdSeconds,omitempty"`
	CustomerName      string    `json:"customerName,omitempty"`
	CustomerEmail     string    `json:"customerEmail,omitempty"`
	CustomerPhone     string    `json:"customerPhone,omitempty"`
	CustomerAccountID string    `json:"customerAccountId,omitempty"`
	CallerSysID       string    `json:"callerSysId,omitempty"`
	AgentName         string    `json:"agentName,omitempty"`
	AgentID           string    `json:"agentId,omitempty"`
	QueueName         string    `json:"queueName,omitempty"`
	WrapUpCode        string    `json:"wrapUpCode,omitempty"`
	RecordingURL      string    `json:"recordingUrl,omitempty"`
	TranscriptSummary string    `json:"transcriptSummary,omitempty"`
	Description       string    `json:"description,omitempty"`
	Product           string    `json:"product,omitempty"`
	Version           string    `json:"version,omitempty"`
	OccurredAt        time.Time `json:"occurredAt"` // UTC
	ReceivedAt        time.Time `json:"receivedAt"` // UTC
	Masked            int       `json:"masked"`     // spans masked in the free text
	// Warnings name the inputs that were dropped or shortened ("<input>: <problem>"); the
	// ticket lists them too, so an agent knows what is missing.
	Warnings []string `json:"warnings,omitempty"`

	warnings apigw.Warnings // the same, for metrics
}

// Result is the answer to the data action. Every field is always present, so a Genesys output
// contract can map each one.
type Result struct {
	Status          string `json:"status"`
	Target          string `json:"target"`
	TicketKey       string `json:"ticketKey"`
	TicketURL       string `json:"ticketUrl"`
	Attempts        int    `json:"attempts"`
	Masked          int    `json:"masked"`
	Message         string `json:"message"`
	Reason          string `json:"reason"`
	CatastropheMode bool   `json:"catastropheMode"`
	EscalationID    string `json:"escalationId"`
	// Warnings name the inputs of this request that were dropped or shortened, each
	// "<input>: <problem>"; empty when there were none.
	Warnings []string `json:"warnings"`
}

// Ticket is what a target delivered.
type Ticket struct {
	Key     string
	URL     string
	Updated bool // a note on an existing ticket rather than a new one
	// Repeat: the note is on the caller's open ticket (a repeat caller), not the call's own.
	Repeat bool
	// Recovered: the ticket was created by an earlier attempt that could not record it.
	Recovered bool
	// Note says something the caller should know (raised as the service account, ...).
	Note string
}

// Master is the master ticket of an outage: an incident number or a request key, plus the
// ServiceNow sys_id when known.
type Master struct {
	Key   string `json:"key"`
	SysID string `json:"sysId,omitempty"`
}
