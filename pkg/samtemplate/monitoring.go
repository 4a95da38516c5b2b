package samtemplate

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Resource types of the monitoring.
const (
	TypeAlarm     = "AWS::CloudWatch::Alarm"
	TypeDashboard = "AWS::CloudWatch::Dashboard"
	TypeTopic     = "AWS::SNS::Topic"
)

// Dim is one metric dimension as a template names it. Value is literal text, a rendered
// intrinsic ("${AWS::StackName}", "${TelemetryTierFunction}"), or "*" when the reference
// matches every value (a SEARCH or Metrics Insights schema).
type Dim struct{ Name, Value string }

// MetricRef is a metric an alarm or a dashboard widget names.
type MetricRef struct {
	Where     string // "HealthJiraPermissionsAlarm", "Dashboard widget \"Tier decisions\""
	Namespace string
	Name      string
	Dims      []Dim
}

// DimValue returns the value of a dimension, and whether the reference has it.
func (m MetricRef) DimValue(name string) (string, bool) {
	for _, d := range m.Dims {
		if d.Name == name {
			return d.Value, true
		}
	}
	return "", false
}

// DimNames returns the reference's dimension names, sorted.
func (m MetricRef) DimNames() []string {
	out := make([]string, 0, len(m.Dims))
	for _, d := range m.Dims {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out
}

func (m MetricRef) String() string {
	var parts []string
	for _, d := range m.Dims {
		parts = append(parts, d.Name+"="+d.Value)
	}
	return fmt.Sprintf("%s/%s{%s} (%s)", m.Namespace, m.Name, strings.Join(parts, ","), m.Where)
}

// Render writes a template value as text: literals as they are, intrinsics as the ${...}
// placeholder Fn::Sub would use (Ref X -> ${X}, GetAtt X.A -> ${X.A}, Sub -> its text).
func Render(v any) string {
	switch x := v.(type) {
	case Intrinsic:
		if name, ok := x.Ref(); ok {
			return "${" + name + "}"
		}
		if r, a, ok := x.GetAtt(); ok {
			return "${" + r + "." + a + "}"
		}
		if text, _, ok := subParts(x); ok {
			return text
		}
		return x.String()
	case nil:
		return ""
	default:
		s, _ := Scalar(v)
		return s
	}
}

// MetricRefs lists every metric the template's alarms and dashboards name.
func (t *Template) MetricRefs() ([]MetricRef, error) {
	var out []MetricRef
	for _, r := range t.ResourcesOfType(TypeAlarm) {
		refs, err := alarmRefs(r)
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	for _, r := range t.ResourcesOfType(TypeDashboard) {
		d, err := ParseDashboard(r)
		if err != nil {
			return nil, err
		}
		for _, w := range d.Widgets {
			out = append(out, w.Refs...)
		}
	}
	return out, nil
}

func dims(v any) []Dim {
	var out []Dim
	list, _ := v.([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		out = append(out, Dim{Name: Render(m["Name"]), Value: Render(m["Value"])})
	}
	return out
}

func alarmRefs(r *Resource) ([]MetricRef, error) {
	p := r.Properties
	if name, ok := p["MetricName"]; ok {
		return []MetricRef{{Where: r.LogicalID, Namespace: Render(p["Namespace"]), Name: Render(name), Dims: dims(p["Dimensions"])}}, nil
	}
	var out []MetricRef
	queries, _ := p["Metrics"].([]any)
	for _, q := range queries {
		m, _ := q.(map[string]any)
		if stat, ok := m["MetricStat"].(map[string]any); ok {
			metric, _ := stat["Metric"].(map[string]any)
			out = append(out, MetricRef{Where: r.LogicalID, Namespace: Render(metric["Namespace"]), Name: Render(metric["MetricName"]), Dims: dims(metric["Dimensions"])})
		}
		if expr := Render(m["Expression"]); expr != "" {
			ref, ok, err := parseExpression(expr)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", r.LogicalID, err)
			}
			if ok {
				ref.Where = r.LogicalID
				out = append(out, ref)
			}
		}
	}
	return out, nil
}

var (
	insightsRe = regexp.MustCompile(`(?i)^\s*SELECT\s+\w+\(\s*"?([\w.-]+)"?\s*\)\s+FROM\s+SCHEMA\(\s*"?([\w/.-]+)"?\s*((?:,\s*"?[\w.-]+"?\s*)*)\)`)
	searchRe   = regexp.MustCompile(`SEARCH\(\s*'\{([^}]*)\}\s*([^']*)'`)
	termRe     = regexp.MustCompile(`([\w.-]+)\s*=\s*"([^"]*)"`)
)

// parseExpression reads the metric a Metrics Insights query (SELECT f(Metric) FROM
// SCHEMA(ns, dims...)) or a SEARCH expression ('{ns,dims...} MetricName="X" Dim="v"') names.
// Metric math over other queries names none (ok false).
func parseExpression(expr string) (MetricRef, bool, error) {
	if m := insightsRe.FindStringSubmatch(expr); m != nil {
		ref := MetricRef{Namespace: m[2], Name: m[1]}
		for _, d := range strings.Split(m[3], ",") {
			if d = strings.Trim(strings.TrimSpace(d), `"`); d != "" {
				ref.Dims = append(ref.Dims, Dim{Name: d, Value: "*"})
			}
		}
		return ref, true, nil
	}
	if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(expr)), "SELECT") {
		return MetricRef{}, false, fmt.Errorf("query %q: want SELECT <stat>(<metric>) FROM SCHEMA(<namespace>, <dimensions>...)", expr)
	}
	if m := searchRe.FindStringSubmatch(expr); m != nil {
		schema := strings.Split(m[1], ",")
		ref := MetricRef{Namespace: strings.Trim(strings.TrimSpace(schema[0]), `"`)}
		values := map[string]string{}
		for _, t := range termRe.FindAllStringSubmatch(m[2], -1) {
			values[t[1]] = t[2]
		}
		ref.Name = values["MetricName"]
		if ref.Name == "" {
			return MetricRef{}, false, fmt.Errorf("SEARCH %q: name the metric with MetricName=\"...\"", expr)
		}
		for _, d := range schema[1:] {
			d = strings.Trim(strings.TrimSpace(d), `"`)
			v, ok := values[d]
			if !ok {
				v = "*"
			}
			ref.Dims = append(ref.Dims, Dim{Name: d, Value: v})
		}
		return ref, true, nil
	}
	if strings.Contains(strings.ToUpper(expr), "SEARCH(") {
		return MetricRef{}, false, fmt.Errorf("SEARCH %q: want SEARCH('{namespace,dimensions...} MetricName=\"...\"', 'stat', period)", expr)
	}
	return MetricRef{}, false, nil
}

// Dashboard is a parsed DashboardBody. Placeholders (${...}) are left as they are.
type Dashboard struct {
	LogicalID string
	Widgets   []Widget
}

// Widget is one dashboard widget.
type Widget struct {
	Type                string
	Title               string
	X, Y, Width, Height int
	Refs                []MetricRef
	Alarms              []string // an alarm widget's alarm ARNs, as written
	Raw                 map[string]any
}

// ParseDashboard reads a dashboard's body.
func ParseDashboard(r *Resource) (Dashboard, error) {
	d := Dashboard{LogicalID: r.LogicalID}
	body := Render(r.Properties["DashboardBody"])
	var doc struct {
		Widgets []map[string]any `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return d, fmt.Errorf("%s: DashboardBody is not JSON: %w", r.LogicalID, err)
	}
	for i, raw := range doc.Widgets {
		props, _ := raw["properties"].(map[string]any)
		w := Widget{Raw: raw}
		w.Type, _ = raw["type"].(string)
		w.Title, _ = props["title"].(string)
		w.X, w.Y, w.Width, w.Height = num(raw["x"]), num(raw["y"]), num(raw["width"]), num(raw["height"])
		where := fmt.Sprintf("%s widget %d %q", r.LogicalID, i, w.Title)
		metrics, _ := props["metrics"].([]any)
		var prev []any
		for _, m := range metrics {
			switch x := m.(type) {
			case map[string]any:
				expr, _ := x["expression"].(string)
				ref, ok, err := parseExpression(expr)
				if err != nil {
					return d, fmt.Errorf("%s: %w", where, err)
				}
				if ok {
					ref.Where = where
					w.Refs = append(w.Refs, ref)
				}
			case []any:
				row := resolveDots(x, prev)
				prev = row
				ref, err := arrayRef(row)
				if err != nil {
					return d, fmt.Errorf("%s: %w", where, err)
				}
				ref.Where = where
				w.Refs = append(w.Refs, ref)
			}
		}
		alarms, _ := props["alarms"].([]any)
		for _, a := range alarms {
			s, _ := a.(string)
			w.Alarms = append(w.Alarms, s)
		}
		d.Widgets = append(d.Widgets, w)
	}
	return d, nil
}

// resolveDots fills CloudWatch's "." shorthand (same as the row before) in a metric row.
func resolveDots(row, prev []any) []any {
	out := slices.Clone(row)
	for i, v := range out {
		if s, ok := v.(string); ok && s == "." && i < len(prev) {
			out[i] = prev[i]
		}
	}
	return out
}

// arrayRef reads [namespace, name, dim, value, ..., {options}].
func arrayRef(row []any) (MetricRef, error) {
	var parts []string
	for _, v := range row {
		if s, ok := v.(string); ok {
			parts = append(parts, s)
		}
	}
	if len(parts) < 2 || len(parts)%2 != 0 {
		return MetricRef{}, fmt.Errorf("metric row %v: want [namespace, metric, dimension, value, ..., {options}]", row)
	}
	ref := MetricRef{Namespace: parts[0], Name: parts[1]}
	for i := 2; i+1 < len(parts); i += 2 {
		ref.Dims = append(ref.Dims, Dim{Name: parts[i], Value: parts[i+1]})
	}
	return ref, nil
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// monitoring checks the alarms and dashboards: each alarm says what to do and notifies a topic,
// its threshold is a parameter (or 1: any occurrence needs a person), its queries are well
// formed; the dashboard's JSON parses, its widgets fit the grid, it shows every alarm, and the
// Lambda alarms cover every function (with each function's own timeout in the duration one).
func (v *validator) monitoring() {
	t := v.t
	alarms := t.ResourcesOfType(TypeAlarm)
	for _, r := range alarms {
		v.alarm(r)
	}
	var shown []string
	for _, r := range t.ResourcesOfType(TypeDashboard) {
		d, err := ParseDashboard(r)
		if err != nil {
			v.add(r.Line, r.LogicalID, "Properties.DashboardBody", "%v", err)
			continue
		}
		for i, w := range d.Widgets {
			prop := fmt.Sprintf("Properties.DashboardBody.widgets[%d]", i)
			switch w.Type {
			case "metric", "text", "alarm", "log":
			default:
				v.add(r.Line, r.LogicalID, prop, "type %q: want metric, text, alarm or log", w.Type)
			}
			if w.X < 0 || w.Width < 1 || w.X+w.Width > 24 || w.Height < 1 {
				v.add(r.Line, r.LogicalID, prop, "x %d width %d height %d: widgets must fit the 24-column grid", w.X, w.Width, w.Height)
			}
			if w.Type == "metric" && len(w.Refs) == 0 {
				v.add(r.Line, r.LogicalID, prop, "%q shows no metric", w.Title)
			}
			for _, ref := range w.Refs {
				v.lambdaDims(ref, r, prop)
			}
			shown = append(shown, w.Alarms...)
		}
	}
	if len(t.ResourcesOfType(TypeDashboard)) > 0 {
		for _, a := range alarms {
			if !slices.Contains(shown, "${"+a.LogicalID+".Arn}") {
				v.add(a.Line, a.LogicalID, "", "is not in the dashboard's alarm widget; the on-call would not see it there")
			}
		}
	}
}

var (
	comparisons = []string{"GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"}
	missingData = []string{"breaching", "notBreaching", "ignore", "missing"}
	durationPct = regexp.MustCompile(`^100 \* (\w+) / (\d+)$`)
)

func (v *validator) alarm(r *Resource) {
	t, p, id := v.t, r.Properties, r.LogicalID
	bad := func(prop, format string, args ...any) { v.add(r.Line, id, prop, format, args...) }
	desc := Render(p["AlarmDescription"])
	switch {
	case strings.TrimSpace(desc) == "":
		bad("Properties.AlarmDescription", "missing: say what happened and what to do")
	case len(desc) > 1024:
		bad("Properties.AlarmDescription", "is %d characters; CloudWatch allows 1024", len(desc))
	}
	if !v.notifiesTopic(p["AlarmActions"]) {
		bad("Properties.AlarmActions", "want [!Ref <an AWS::SNS::Topic>]: an alarm nobody hears is no alarm")
	}
	if ok := p["OKActions"]; ok != nil && !v.notifiesTopic(ok) {
		bad("Properties.OKActions", "want [!Ref <an AWS::SNS::Topic>]")
	}
	switch th := p["Threshold"].(type) {
	case Intrinsic:
		name, isRef := th.Ref()
		param, isParam := t.Parameters[name]
		if !isRef || !isParam || param.Type != "Number" || !param.HasDefault {
			bad("Properties.Threshold", "want !Ref of a Number parameter with a default")
		}
	default:
		if n, ok := intValue(th); !ok || n != 1 {
			bad("Properties.Threshold", "want a parameter (!Ref), or 1 when any occurrence needs a person")
		}
	}
	if c := Render(p["ComparisonOperator"]); !slices.Contains(comparisons, c) {
		bad("Properties.ComparisonOperator", "is %q; want one of %s", c, strings.Join(comparisons, ", "))
	}
	if m := Render(p["TreatMissingData"]); !slices.Contains(missingData, m) {
		bad("Properties.TreatMissingData", "is %q; want one of %s (say what no data means)", m, strings.Join(missingData, ", "))
	}
	if p["EvaluationPeriods"] == nil {
		bad("Properties.EvaluationPeriods", "missing")
	}
	eval, okE := intValue(p["EvaluationPeriods"])
	dp, okD := intValue(p["DatapointsToAlarm"])
	if okE && okD && dp > eval {
		bad("Properties.DatapointsToAlarm", "%d is more than EvaluationPeriods %d", dp, eval)
	}
	_, single := p["MetricName"]
	queries, multi := p["Metrics"].([]any)
	switch {
	case single && multi:
		bad("Properties", "has both MetricName and Metrics")
	case single:
		for _, k := range []string{"Namespace", "Statistic", "Period"} {
			if p[k] == nil {
				bad("Properties."+k, "missing")
			}
		}
	case multi:
		v.alarmQueries(r, queries)
	default:
		bad("Properties", "has neither MetricName nor Metrics")
	}
}

func (v *validator) notifiesTopic(actions any) bool {
	list, _ := actions.([]any)
	for _, a := range list {
		if in, ok := a.(Intrinsic); ok {
			if name, ok := in.Ref(); ok {
				if r := v.t.Resources[name]; r != nil && r.Type == TypeTopic {
					return true
				}
			}
		}
	}
	return false
}

// alarmQueries checks an alarm on metric math or a Metrics Insights query.
func (v *validator) alarmQueries(r *Resource, queries []any) {
	id := r.LogicalID
	bad := func(prop, format string, args ...any) { v.add(r.Line, id, prop, format, args...) }
	ids := map[string]map[string]any{}
	stats, exprs, returned := 0, 0, 0
	lambdaFns := map[string][]string{} // metric name -> functions
	for i, q := range queries {
		m, _ := q.(map[string]any)
		prop := fmt.Sprintf("Properties.Metrics[%d]", i)
		qid := Render(m["Id"])
		if !regexp.MustCompile(`^[a-z][a-zA-Z0-9_]*$`).MatchString(qid) {
			bad(prop+".Id", "%q: want a lower-case letter, then letters, digits or _", qid)
		}
		if _, dup := ids[qid]; dup {
			bad(prop+".Id", "%q is used twice", qid)
		}
		ids[qid] = m
		if rd, ok := boolValue(m["ReturnData"]); !ok || rd {
			returned++
		}
		if stat, ok := m["MetricStat"].(map[string]any); ok {
			stats++
			metric, _ := stat["Metric"].(map[string]any)
			ref := MetricRef{Namespace: Render(metric["Namespace"]), Name: Render(metric["MetricName"]), Dims: dims(metric["Dimensions"])}
			v.lambdaDims(ref, r, prop)
			if ref.Namespace == "AWS/Lambda" {
				if fn, ok := ref.DimValue("FunctionName"); ok {
					lambdaFns[ref.Name] = append(lambdaFns[ref.Name], strings.TrimSuffix(strings.TrimPrefix(fn, "${"), "}"))
				}
			}
			continue
		}
		expr := Render(m["Expression"])
		if expr == "" {
			bad(prop, "want MetricStat or Expression")
			continue
		}
		exprs++
		if _, isQuery, err := parseExpression(expr); err != nil {
			bad(prop+".Expression", "%v", err)
		} else if isQuery && m["Period"] == nil {
			bad(prop+".Period", "a Metrics Insights query needs its Period")
		}
		if mm := durationPct.FindStringSubmatch(expr); mm != nil {
			src := ids[mm[1]]
			stat, _ := src["MetricStat"].(map[string]any)
			metric, _ := stat["Metric"].(map[string]any)
			fn := strings.TrimSuffix(strings.TrimPrefix(Render(dims(metric["Dimensions"])[0].Value), "${"), "}")
			if f, ok := v.t.Function(fn); ok && Render(metric["MetricName"]) == "Duration" {
				if want := strconv.Itoa(f.Timeout * 1000); mm[2] != want {
					bad(prop+".Expression", "divides %s's Duration by %s; its timeout is %s ms", fn, mm[2], want)
				}
			}
		}
	}
	if returned != 1 {
		bad("Properties.Metrics", "%d queries return data; exactly one must (ReturnData false on the others)", returned)
	}
	if stats > 10 || exprs > 10 {
		bad("Properties.Metrics", "%d metrics and %d expressions; an alarm allows 10 of each", stats, exprs)
	}
	for metric, fns := range lambdaFns {
		for _, f := range v.t.Functions() {
			if !slices.Contains(fns, f.LogicalID) {
				bad("Properties.Metrics", "AWS/Lambda %s leaves out %s: every function must be watched", metric, f.LogicalID)
			}
		}
	}
}

// lambdaDims checks that AWS/Lambda and AWS/DynamoDB metrics name a function or table of the
// template.
func (v *validator) lambdaDims(ref MetricRef, r *Resource, prop string) {
	want := map[string]struct{ dim, typ string }{"AWS/Lambda": {"FunctionName", TypeFunction}, "AWS/DynamoDB": {"TableName", TypeTable}}[ref.Namespace]
	if want.dim == "" {
		return
	}
	val, ok := ref.DimValue(want.dim)
	name := strings.TrimSuffix(strings.TrimPrefix(val, "${"), "}")
	if res := v.t.Resources[name]; !ok || res == nil || res.Type != want.typ || !strings.HasPrefix(val, "${") {
		v.add(r.Line, r.LogicalID, prop, "%s %s: %s must name a %s of this template (!Ref / ${...}), got %q", ref.Namespace, ref.Name, want.dim, want.typ, val)
	}
}
