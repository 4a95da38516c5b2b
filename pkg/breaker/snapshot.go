package breaker

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Snapshot is the stored state of one breaker. Times are kept in the item as unix
// milliseconds.
type Snapshot struct {
	State      State
	Failures   int       // consecutive outage failures while CLOSED
	OpenUntil  time.Time // OPEN: when a probe may be elected
	OpenedBy   string    // the environment that last opened it
	OpenedAt   time.Time
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

// decode reads a state item; a missing item is a closed breaker that never failed.
func decode(item map[string]types.AttributeValue) *Snapshot {
	s := &Snapshot{State: Closed}
	if item == nil {
		return s
	}
	if v := getS(item, "state"); v != "" {
		s.State = State(v)
	}
	s.Failures = int(getN(item, "failures"))
	s.OpenUntil = getTime(item, "open_until")
	s.OpenedBy = getS(item, "opened_by")
	s.OpenedAt = getTime(item, "opened_at")
	s.ProbeUntil = getTime(item, "probe_until")
	s.ProbeOwner = getS(item, "probe_owner")
	if _, ok := item["forced_until"]; ok {
		s.Forced = true
		s.ForcedUntil = getTime(item, "forced_until")
		s.ForcedReason = getS(item, "forced_reason")
		s.ForcedBy = getS(item, "forced_by")
	}
	return s
}

func getS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

// getTime reads unix milliseconds; 0 or absent is the zero time.
func getTime(item map[string]types.AttributeValue, name string) time.Time {
	if ms := getN(item, name); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}
