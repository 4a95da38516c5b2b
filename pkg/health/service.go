package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// Service is integration-health's handler. It runs every minute: each run records the
// breaker and outage gauges, and the checks run when Config.Interval has passed since the last
// ones (one run per interval however many invocations overlap), or when the event asks:
// {"run":"checks"}.
type Service struct {
	Config  Config
	Checker *Checker
	Store   *Store
	DB      *dynamodb.Client
	Now     func() time.Time
}

// Event is what the function accepts: the schedule's event (anything), or {"run":"checks"}
// from an operator (aws lambda invoke) or the demo.
type Event struct {
	Run string `json:"run"`
}

// Summary is the function's answer.
type Summary struct {
	Checked  bool           `json:"checked"` // the checks ran in this invocation
	Report   *Report        `json:"report,omitempty"`
	Breakers []BreakerState `json:"breakers"`
	Outages  []Outage       `json:"outages"`
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Handle runs once.
func (s *Service) Handle(ctx context.Context, raw json.RawMessage) (Summary, error) {
	var ev Event
	_ = json.Unmarshal(raw, &ev) // a scheduled event has no "run"
	now := s.now()
	var sum Summary
	var err error
	sum.Breakers, sum.Outages, err = Gauges(ctx, s.DB, s.Config.StateTable, now)
	if err != nil {
		slog.ErrorContext(ctx, "breakers and outage flags unreadable; no gauges this minute", "error", err)
	}
	for _, b := range sum.Breakers {
		if b.Open {
			slog.WarnContext(ctx, "circuit breaker open", "dependency", b.Dependency, "state", b.State, "opened_at", b.OpenedAt, "forced", b.Forced)
		}
	}

	due, err := s.Store.Claim(ctx, now, s.Config.Interval, ev.Run == "checks")
	if err != nil {
		// Without the lease every minute's run would check every system: skip, the next
		// minute tries again.
		slog.ErrorContext(ctx, "integration-health could not take its run; checks skipped this minute", "error", err)
		return sum, err
	}
	if !due {
		return sum, nil
	}
	rep := s.Checker.Run(ctx)
	Emit(ctx, rep)
	for _, r := range rep.Results {
		attrs := []any{"system", r.System, "check", r.Check, "target", r.Target, "status", r.Status, "http_status", r.HTTPStatus,
			"call", r.Call, "detail", r.Detail, "latency_ms", r.LatencyMs}
		switch r.Status {
		case Failed:
			slog.ErrorContext(ctx, "integration-health check failed", append(attrs, "fix", r.Fix)...)
		case Warning:
			slog.WarnContext(ctx, "integration-health check warning", append(attrs, "fix", r.Fix)...)
		default:
			slog.DebugContext(ctx, "integration-health check", attrs...)
		}
	}
	slog.InfoContext(ctx, "integration-health run", "checks", len(rep.Results), "failed", rep.Failed, "warnings", rep.Warnings, "duration_ms", rep.Duration)
	if err := s.Store.Save(ctx, rep); err != nil {
		slog.ErrorContext(ctx, "integration-health results not recorded; cxbridge status shows the previous ones", "error", err)
	}
	sum.Checked, sum.Report = true, &rep
	return sum, nil
}
