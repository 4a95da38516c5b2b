package breaker

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/cxbridge/cxbridge/pkg/store"
)

// Snapshot is the stored state of one breaker. Times are kept in the item as unix
// milliseconds.
type Snapshot struct {
	State     State
	Failures  int       // consecutive outage failures while CLOSED
	OpenUntil time.Time // OPEN: when a probe may be elected
	OpenedBy  string    // the environment that last opened it
	OpenedAt  time.Time
	// DownSince is when it opened after it was last closed; a failed probe's re-open keeps it.
	DownSince  time.Time
	ProbeUntil time.Time // HALF_OPEN: when the probe's lease expires
	ProbeOwner string

	Forced       bool
	ForcedReason string
	ForcedUntil  time.Time // zero: until cleared
	ForcedBy     string
}

// ForcedAt reports whether the breaker is forced open at now.
func (s *Snapshot) ForcedAt(now time.Time) bool {
	return s.Forced && (s.ForcedUntil.IsZero() || now.Before(s.ForcedUntil))
}

// Down is when the dependency started refusing calls: DownSince, or OpenedAt for a state
// written before DownSince was kept.
func (s *Snapshot) Down() time.Time {
	if s.DownSince.IsZero() {
		return s.OpenedAt
	}
	return s.DownSince
}

// decode reads a state item; a missing item is a closed breaker that never failed.
func decode(item map[string]types.AttributeValue) *Snapshot {
	s := &Snapshot{State: Closed}
	if item == nil {
		return s
	}
	if v := store.String(item, "state"); v != "" {
		s.State = State(v)
	}
	s.Failures = int(store.Int(item, "failures"))
	s.OpenUntil = store.Time(item, "open_until")
	s.OpenedBy = store.String(item, "opened_by")
	s.OpenedAt = store.Time(item, "opened_at")
	s.DownSince = store.Time(item, "down_since")
	s.ProbeUntil = store.Time(item, "probe_until")
	s.ProbeOwner = store.String(item, "probe_owner")
	if _, ok := item["forced_until"]; ok {
		s.Forced = true
		s.ForcedUntil = store.Time(item, "forced_until")
		s.ForcedReason = store.String(item, "forced_reason")
		s.ForcedBy = store.String(item, "forced_by")
	}
	return s
}
