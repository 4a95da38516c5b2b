package localstack_test

import (
	"testing"

	"github.com/cxbridge/cxbridge/pkg/localstack"
)

func init() {
	expectAll(map[string]expect{
		// An operator's run (aws lambda invoke --payload '{"run":"checks"}'): every system of the
		// local world is checked.
		"integration-health/run-checks.json": {Body: m{"checked": true},
			Setup: func(t *testing.T, st *localstack.Stack) func() { return func() {} }}, // first: the next run is then not due
		// The schedule's every-minute run: the gauges, and no checks an hour after the last.
		"integration-health/scheduled.json": {Body: m{"checked": false}},
	})
}
