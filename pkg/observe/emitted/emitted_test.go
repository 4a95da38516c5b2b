package emitted_test

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/observe/emitted"
	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

const root = "../../.."

var (
	once    sync.Once
	scanned *emitted.Set
	scanErr error
)

func scan(t *testing.T) *emitted.Set {
	t.Helper()
	once.Do(func() { scanned, scanErr = emitted.Scan(root) })
	if scanErr != nil {
		t.Fatal(scanErr)
	}
	return scanned
}

// Every metric an alarm or a dashboard widget of template.yaml names is emitted by some code
// path of a function, in the stack's namespace, with the same metric name and exactly the same
// dimension names, and with the dimension values the reference fixes (Function = a function
// that links the emitting package; Service = the stack's service name). Otherwise the widget
// would stay empty, or the alarm never fire, without anyone noticing.
func TestEveryMetricTheTemplateNamesIsEmitted(t *testing.T) {
	set := scan(t)
	tpl, err := samtemplate.Load(root + "/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env, _ := tpl.Globals["Function"]["Environment"].(map[string]any)
	vars, _ := env["Variables"].(map[string]any)
	namespace, service := samtemplate.Render(vars["POWERTOOLS_METRICS_NAMESPACE"]), samtemplate.Render(vars["POWERTOOLS_SERVICE_NAME"])
	if namespace == "" || service == "" {
		t.Fatal("Globals set no POWERTOOLS_METRICS_NAMESPACE or POWERTOOLS_SERVICE_NAME")
	}
	refs, err := tpl.MetricRefs()
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, ref := range refs {
		switch {
		case strings.HasPrefix(ref.Namespace, "AWS/"):
			continue // AWS's own metrics; the template validation checks what they name
		case ref.Namespace != namespace:
			t.Errorf("%s: namespace %q; the functions emit into %q", ref, ref.Namespace, namespace)
			continue
		}
		ours++
		if problem := check(set, ref, service); problem != "" {
			t.Errorf("%s: %s", ref, problem)
		}
	}
	if ours < 40 {
		t.Errorf("only %d references to the stack's own metrics; the alarms and the dashboard were not read", ours)
	}
	t.Logf("%d references to cxbridge metrics checked against %d emitting calls", ours, len(set.Emissions))
}

// check returns why ref matches no emission, or "".
func check(set *emitted.Set, ref samtemplate.MetricRef, service string) string {
	if v, ok := ref.DimValue("Service"); ok && v != emitted.Any && v != service {
		return "Service is " + v + "; the functions use " + service
	}
	function, _ := ref.DimValue("Function")
	if function == emitted.Any {
		function = ""
	}
	found := set.Find(ref.Name, ref.DimNames(), function)
	if len(found) == 0 {
		var near []string
		for _, e := range set.Emissions {
			if e.Name == ref.Name {
				var dims []string
				for d := range e.Dims {
					dims = append(dims, d)
				}
				slices.Sort(dims)
				near = append(near, e.Pos+" {"+strings.Join(dims, ",")+"} in "+strings.Join(e.Functions, ","))
			}
		}
		if len(near) == 0 {
			return "no code emits it"
		}
		return "no emission with these dimensions (besides Service, Function) and function; emitted at: " + strings.Join(near, "; ")
	}
	for _, d := range ref.Dims {
		if d.Name == "Service" || d.Name == "Function" || d.Value == emitted.Any {
			continue
		}
		ok := false
		for _, e := range found {
			if v := e.Dims[d.Name]; v == emitted.Any || v == d.Value {
				ok = true
			}
		}
		if !ok {
			return d.Name + "=" + d.Value + " is never emitted"
		}
	}
	return ""
}

// The scan sees what the functions emit, through whatever variable the collector is in.
func TestScanFindsTheFunctionsMetrics(t *testing.T) {
	set := scan(t)
	for _, c := range []struct {
		name     string
		dims     []string
		function string
	}{
		{"ColdStart", []string{"Service", "Function"}, "integration-health"},
		{"ColdStart", []string{"Service", "Function"}, "telemetry-tier"},
		{"EscalationFailed", []string{"Service", "Function"}, "escalation-redrive"},
		{"EscalationOutcome", []string{"Service", "Function", "Status", "Target"}, "create-escalation"},
		{"HealthCheckFailed", []string{"Service", "Function", "System", "Check"}, "integration-health"},
		{"TierDecision", []string{"Service", "Function", "Tier", "Source"}, "telemetry-tier"},
	} {
		if len(set.Find(c.name, c.dims, c.function)) == 0 {
			t.Errorf("%s%v in %s not found", c.name, c.dims, c.function)
		}
	}
	// and it can tell a wrong reference from a right one
	for _, c := range []struct {
		name     string
		dims     []string
		function string
	}{
		{"EscalationOutcome", []string{"Service", "Function", "Status"}, "create-escalation"},       // a dimension short
		{"HealthCheckFailed", []string{"Service", "Function", "System", "Check"}, "telemetry-tier"}, // not linked there
		{"EscalationOutcomes", []string{"Service", "Function", "Status", "Target"}, ""},             // misspelt
	} {
		if got := set.Find(c.name, c.dims, c.function); len(got) != 0 {
			t.Errorf("%s%v in %q: found %v", c.name, c.dims, c.function, got)
		}
	}
	if ref := (samtemplate.MetricRef{Namespace: "cxbridge", Name: "TierDecision", Dims: []samtemplate.Dim{{Name: "Service", Value: "${AWS::StackName}"}, {Name: "Function", Value: "telemetry-tier"}, {Name: "Tier", Value: "L9"}, {Name: "Source", Value: emitted.Any}}}); check(set, ref, "${AWS::StackName}") != "" {
		t.Logf("computed values match any constant: %s", check(set, ref, "${AWS::StackName}"))
		t.Error("Tier is computed at run time; any value must match")
	}
	if ref := (samtemplate.MetricRef{Namespace: "cxbridge", Name: "AggregationFallback", Dims: []samtemplate.Dim{{Name: "Service", Value: "${AWS::StackName}"}, {Name: "Function", Value: "messagebird-inbound"}, {Name: "Target", Value: "bored"}}}); check(set, ref, "${AWS::StackName}") == "" {
		t.Error("AggregationFallback's Target is always a constant; Target=bored is never emitted")
	}
}
