package health

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/escalation"
	"github.com/cxbridge/cxbridge/pkg/observe"
)

// Dependencies are the systems with a circuit breaker, in display order.
var Dependencies = []string{Telemetry, ServiceNow, Jira, Genesys, MessageBird}

// OutageTargets are the systems an outage (catastrophe mode) can be declared for.
var OutageTargets = []string{escalation.Jira, escalation.ServiceNow}

// BreakerState is one dependency's breaker as the on-call sees it.
type BreakerState struct {
	Dependency string        `json:"dependency"`
	State      breaker.State `json:"state"`
	// Open: calls are being refused now (open and not yet due for a probe, a probe out, or
	// forced). An OPEN breaker past its open time with no traffic to probe it is not open.
	Open      bool      `json:"open"`
	OpenedAt  time.Time `json:"openedAt,omitzero"`  // when it last opened
	OpenUntil time.Time `json:"openUntil,omitzero"` // when a probe may go
	Failures  int       `json:"failures"`           // consecutive outage failures while closed
	Forced    bool      `json:"forced"`
	Reason    string    `json:"reason,omitempty"` // the operator's reason when forced
}

// ReadBreakers reads every dependency's breaker.
func ReadBreakers(ctx context.Context, db breaker.DB, table string, now time.Time) ([]BreakerState, error) {
	var out []BreakerState
	for _, dep := range Dependencies {
		// A reader, not a caller waiting on the dependency: the DynamoDB client's own bound
		// (STATE_CALL_TIMEOUT_MS, or the CLI's) applies.
		s, err := breaker.New(db, table, breaker.Settings{Name: dep}).State(ctx)
		if err != nil {
			return nil, err
		}
		b := BreakerState{Dependency: dep, State: s.State, OpenedAt: s.OpenedAt, Failures: s.Failures, Forced: s.ForcedAt(now), Reason: s.ForcedReason}
		if s.State == breaker.Open {
			b.OpenUntil = s.OpenUntil
		}
		b.Open = b.Forced || s.State == breaker.HalfOpen || (s.State == breaker.Open && s.OpenUntil.After(now))
		out = append(out, b)
	}
	return out, nil
}

// Outage is one target's outage flag.
type Outage struct {
	Target  string    `json:"target"`
	Active  bool      `json:"active"`            // every call (about Topic) is linked to the master
	Standby bool      `json:"standby"`           // the master is used only while the breaker is open
	Master  string    `json:"master,omitempty"`  // the master ticket
	SetBy   string    `json:"setBy,omitempty"`   // who declared it
	SetAt   time.Time `json:"setAt,omitzero"`    // when
	Until   time.Time `json:"until,omitzero"`    // when it ends by itself
	Reason  string    `json:"reason,omitempty"`  // why
	Message string    `json:"message,omitempty"` // what callers hear, when not OUTAGE_MESSAGE

	// Automatic: cxbridge declared it (rate of calls about Topic, or the breaker open too long).
	Automatic bool   `json:"automatic"`
	OutageID  string `json:"outageId,omitempty"`
	Cause     string `json:"cause,omitempty"` // rate or breaker
	Why       string `json:"why,omitempty"`   // how it was declared
	Topic     string `json:"topic,omitempty"` // what a rate outage is about
	// MasterPending: the master ticket waits for its target (escalation-redrive creates it).
	MasterPending bool `json:"masterPending"`
	// Confirmed by the on-call (confirm or replace): it no longer ends by itself.
	Confirmed   bool   `json:"confirmed"`
	ConfirmedBy string `json:"confirmedBy,omitempty"`
	// LastLinked is the last call linked to it; unconfirmed, it ends at EndsAt.
	LastLinked time.Time `json:"lastLinked,omitzero"`
	EndsAt     time.Time `json:"endsAt,omitzero"`
}

// ReadOutages reads the outage flag of every target.
func ReadOutages(ctx context.Context, db *dynamodb.Client, table string, now time.Time) ([]Outage, error) {
	o := &escalation.Outage{DB: db, Table: table, CacheFor: -1}
	var out []Outage
	for _, t := range OutageTargets {
		f, _, err := o.ReadFlag(ctx, t, true)
		if err != nil {
			return nil, err
		}
		on := f.Set(now)
		if !on {
			out = append(out, Outage{Target: t})
			continue
		}
		oc := Outage{Target: t, Active: f.Active, Standby: !f.Active,
			Master: f.Master.Key, SetBy: f.SetBy, SetAt: f.SetAt, Until: f.Until, Reason: f.Reason, Message: f.Message,
			Automatic: f.Auto, OutageID: f.OutageID, Cause: f.Cause, Why: f.Why, MasterPending: f.Pending,
			Confirmed: f.Confirmed, ConfirmedBy: f.ConfirmedBy, LastLinked: f.LastMatch}
		if !f.Topic.IsZero() {
			oc.Topic = f.Topic.String()
		}
		if f.Auto && !f.Confirmed {
			oc.EndsAt = f.IdleUntil
		}
		out = append(out, oc)
	}
	return out, nil
}

// Gauges reads the breakers and outage flags and records them as metrics, every minute:
// BreakerOpen{Dependency}, OutageModeActive{Target} (an outage declared by the on-call or by
// cxbridge) and OutageAutomatic{Target} (one cxbridge declared that the on-call has not
// confirmed yet: its alarm pages them), 1 or 0.
func Gauges(ctx context.Context, db *dynamodb.Client, table string, now time.Time) ([]BreakerState, []Outage, error) {
	m := observe.MetricsFrom(ctx)
	breakers, err := ReadBreakers(ctx, db, table, now)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range breakers {
		m.Count("BreakerOpen", boolValue(b.Open), observe.D("Dependency", b.Dependency))
	}
	outages, err := ReadOutages(ctx, db, table, now)
	if err != nil {
		return breakers, nil, err
	}
	for _, o := range outages {
		m.Count("OutageModeActive", boolValue(o.Active || o.Automatic), observe.D("Target", o.Target))
		m.Count("OutageAutomatic", boolValue(o.Automatic && !o.Confirmed), observe.D("Target", o.Target))
	}
	return breakers, outages, nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
