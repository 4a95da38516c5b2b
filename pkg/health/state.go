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
	Active  bool      `json:"active"`            // every call is linked to the master
	Standby bool      `json:"standby"`           // the master is used only while the breaker is open
	Master  string    `json:"master,omitempty"`  // the master ticket
	SetBy   string    `json:"setBy,omitempty"`   // who declared it
	SetAt   time.Time `json:"setAt,omitzero"`    // when
	Until   time.Time `json:"until,omitzero"`    // when it ends by itself
	Reason  string    `json:"reason,omitempty"`  // why
	Message string    `json:"message,omitempty"` // what callers hear, when not OUTAGE_MESSAGE
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
		out = append(out, Outage{Target: t, Active: on && f.Active, Standby: on && !f.Active,
			Master: f.Master.Key, SetBy: f.SetBy, SetAt: f.SetAt, Until: f.Until, Reason: f.Reason, Message: f.Message})
	}
	return out, nil
}

// Gauges reads the breakers and outage flags and records them as metrics, every minute:
// BreakerOpen{Dependency} and OutageModeActive{Target}, 1 or 0.
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
		m.Count("OutageModeActive", boolValue(o.Active), observe.D("Target", o.Target))
	}
	return breakers, outages, nil
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
