package cwlocal_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/cxbridge/cxbridge/pkg/cwlocal"
	"github.com/cxbridge/cxbridge/pkg/observe"
	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

// The template's integration-health alarm, evaluated over what the function's EMF says.
func TestHealthAlarmOverEMF(t *testing.T) {
	tpl, err := samtemplate.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	alarms, err := cwlocal.Alarms(tpl, map[string]string{"AWS::StackName": "cxbridge-local"})
	if err != nil {
		t.Fatal(err)
	}
	var alarm cwlocal.Alarm
	for _, a := range alarms {
		if a.Name == "HealthJiraPermissionsAlarm" {
			alarm = a
		}
	}
	if alarm.Metric != "HealthCheckFailed" || alarm.Dims["Service"] != "cxbridge-local" || alarm.Dims["Check"] != "permissions" || alarm.Threshold != 1 {
		t.Fatalf("%+v", alarm)
	}

	var logs bytes.Buffer
	rec := &cwlocal.Recorder{}
	w := rec.Tap(&logs)
	emit := func(v float64) int {
		mark := rec.Mark()
		m := observe.NewMetrics("cxbridge", observe.D("Service", "cxbridge-local"), observe.D("Function", "integration-health"))
		ctx := observe.WithMetrics(context.Background(), m)
		observe.MetricsFrom(ctx).Count("HealthCheckFailed", v, observe.D("System", "jira"), observe.D("Check", "permissions"))
		observe.MetricsFrom(ctx).Count("HealthCheckFailed", 0, observe.D("System", "jira"), observe.D("Check", "authentication"))
		var buf bytes.Buffer
		_ = m.Flush(&buf, time.Now())
		for _, line := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
			_, _ = w.Write(append([]byte("integration-health | "), line...))
		}
		return mark
	}
	if e := cwlocal.Evaluate(alarm, rec.Since(emit(1))); e.State != "ALARM" || e.Points != 1 {
		t.Fatalf("%+v", e)
	}
	if e := cwlocal.Evaluate(alarm, rec.Since(emit(0))); e.State != "OK" {
		t.Fatalf("%+v", e)
	}
	if e := cwlocal.Evaluate(alarm, nil); e.State != "INSUFFICIENT_DATA" {
		t.Fatalf("ignore keeps the state: %+v", e)
	}
	if !bytes.Contains(logs.Bytes(), []byte("integration-health | {")) {
		t.Fatal("the tap must pass the lines on")
	}
}
