package localstack

import (
	"io"

	"github.com/cxbridge/cxbridge/pkg/cwlocal"
)

// The local stack has no CloudWatch: every function's output passes through a recorder that
// keeps the datapoints of its EMF lines, so the demo can evaluate the template's alarms over
// what the functions really emitted.

// Metrics is the recorder of every function's EMF output in this stack.
func (s *Stack) Metrics() *cwlocal.Recorder { return &s.metrics }

// logsFor is where a function's output goes: the stack's logs, through the metrics recorder.
func (s *Stack) logsFor() io.Writer { return s.Metrics().Tap(s.logs) }

// Alarms are the template's single-metric alarms, resolved for this stack.
func (s *Stack) Alarms() ([]cwlocal.Alarm, error) { return cwlocal.Alarms(s.Template, s.values) }
