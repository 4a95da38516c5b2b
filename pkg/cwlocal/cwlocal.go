// Package cwlocal stands in for CloudWatch on one machine, as far as the local stack and the
// demo need it: it reads the Embedded Metric Format lines the functions print (what CloudWatch
// Logs turns into metrics), keeps their datapoints, and evaluates the template's single-metric
// alarms over them with the alarm's own namespace, metric, dimensions, statistic, threshold and
// comparison.
//
// It is a subset, and says so: periods are a window of datapoints the caller chooses (the demo
// takes one integration-health run, which deployed lands in its own period because runs are an
// interval apart), Metrics Insights and metric-math alarms are not evaluated, and nothing is
// sent to SNS.
package cwlocal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

// Point is one datapoint.
type Point struct {
	Namespace, Name, Unit string
	Dims                  map[string]string
	Value                 float64
	At                    time.Time
}

// Recorder keeps the datapoints of every EMF line it is given.
type Recorder struct {
	mu     sync.Mutex
	points []Point
}

// Tap returns a writer that passes every line on to w and records the EMF documents among
// them. Lines may carry a prefix before the JSON (the local stack's "function | ").
func (r *Recorder) Tap(w io.Writer) io.Writer { return &tap{r: r, w: w} }

type tap struct {
	r       *Recorder
	w       io.Writer
	mu      sync.Mutex
	partial []byte
}

func (t *tap) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.r.Record(t.partial[:i])
		t.partial = t.partial[i+1:]
	}
	if len(t.partial) > 1<<20 {
		t.partial = nil
	}
	t.mu.Unlock()
	return t.w.Write(p)
}

// Record reads one line; anything but an EMF document is ignored.
func (r *Recorder) Record(line []byte) {
	i := bytes.IndexByte(line, '{')
	if i < 0 || !bytes.Contains(line, []byte(`"_aws"`)) {
		return
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(line[i:], &doc) != nil {
		return
	}
	var meta struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	}
	if json.Unmarshal(doc["_aws"], &meta) != nil {
		return
	}
	at := time.UnixMilli(meta.Timestamp).UTC()
	str := func(k string) string {
		var s string
		_ = json.Unmarshal(doc[k], &s)
		return s
	}
	var pts []Point
	for _, d := range meta.CloudWatchMetrics {
		for _, set := range d.Dimensions {
			dims := map[string]string{}
			for _, name := range set {
				dims[name] = str(name)
			}
			for _, m := range d.Metrics {
				for _, v := range values(doc[m.Name]) {
					pts = append(pts, Point{Namespace: d.Namespace, Name: m.Name, Unit: m.Unit, Dims: dims, Value: v, At: at})
				}
			}
		}
	}
	r.mu.Lock()
	r.points = append(r.points, pts...)
	r.mu.Unlock()
}

// values reads a metric value: a number or an array of numbers.
func values(raw json.RawMessage) []float64 {
	var one float64
	if json.Unmarshal(raw, &one) == nil {
		return []float64{one}
	}
	var many []float64
	_ = json.Unmarshal(raw, &many)
	return many
}

// Mark is a position in the recording, for Since.
func (r *Recorder) Mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.points)
}

// Since returns the datapoints recorded after a mark.
func (r *Recorder) Since(mark int) []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	if mark > len(r.points) {
		return nil
	}
	return append([]Point(nil), r.points[mark:]...)
}

// Alarm is a single-metric AWS::CloudWatch::Alarm, resolved for one stack.
type Alarm struct {
	Name        string // the logical id
	Description string
	Namespace   string
	Metric      string
	Dims        map[string]string
	Statistic   string
	Threshold   float64
	Comparison  string
	Missing     string // TreatMissingData
}

// Alarms reads the template's single-metric alarms, with ${...} and !Ref resolved from values
// (parameters without a value take their default). Alarms on metric math or Metrics Insights
// queries are not evaluated here and are left out.
func Alarms(t *samtemplate.Template, values map[string]string) ([]Alarm, error) {
	resolve := func(v any) string {
		s := samtemplate.Render(v)
		for {
			i := strings.Index(s, "${")
			j := strings.Index(s[max(i, 0):], "}")
			if i < 0 || j < 0 {
				return s
			}
			name := s[i+2 : i+j]
			val, ok := values[name]
			if p := t.Parameters[name]; !ok && p != nil {
				val = p.Default
			}
			s = s[:i] + val + s[i+j+1:]
		}
	}
	var out []Alarm
	for _, r := range t.ResourcesOfType(samtemplate.TypeAlarm) {
		p := r.Properties
		if _, single := p["MetricName"]; !single {
			continue
		}
		th, err := strconv.ParseFloat(resolve(p["Threshold"]), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: threshold %q: %w", r.LogicalID, resolve(p["Threshold"]), err)
		}
		a := Alarm{Name: r.LogicalID, Description: resolve(p["AlarmDescription"]), Namespace: resolve(p["Namespace"]), Metric: resolve(p["MetricName"]),
			Dims: map[string]string{}, Statistic: resolve(p["Statistic"]), Threshold: th, Comparison: resolve(p["ComparisonOperator"]), Missing: resolve(p["TreatMissingData"])}
		list, _ := p["Dimensions"].([]any)
		for _, d := range list {
			m, _ := d.(map[string]any)
			a.Dims[resolve(m["Name"])] = resolve(m["Value"])
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Evaluation is an alarm's state over a window of datapoints.
type Evaluation struct {
	Alarm  Alarm
	State  string  // ALARM, OK or INSUFFICIENT_DATA
	Value  float64 // the statistic over the window's datapoints of the alarm's metric
	Points int     // how many there were
	Reason string
}

// Evaluate applies an alarm to a window of datapoints: the datapoints of its metric with
// exactly its dimensions, its statistic over them, compared with its threshold. No datapoint
// is what TreatMissingData says (ignore: the state before the window stays, reported as
// INSUFFICIENT_DATA with a reason).
func Evaluate(a Alarm, pts []Point) Evaluation {
	var vs []float64
	for _, p := range pts {
		if p.Namespace == a.Namespace && p.Name == a.Metric && sameDims(p.Dims, a.Dims) {
			vs = append(vs, p.Value)
		}
	}
	e := Evaluation{Alarm: a, Points: len(vs)}
	if len(vs) == 0 {
		switch a.Missing {
		case "breaching":
			e.State, e.Reason = "ALARM", "no data, treated as breaching"
		case "notBreaching":
			e.State, e.Reason = "OK", "no data, treated as not breaching"
		default:
			e.State, e.Reason = "INSUFFICIENT_DATA", "no data ("+a.Missing+")"
		}
		return e
	}
	e.Value = statistic(a.Statistic, vs)
	breach := false
	switch a.Comparison {
	case "GreaterThanOrEqualToThreshold":
		breach = e.Value >= a.Threshold
	case "GreaterThanThreshold":
		breach = e.Value > a.Threshold
	case "LessThanThreshold":
		breach = e.Value < a.Threshold
	case "LessThanOrEqualToThreshold":
		breach = e.Value <= a.Threshold
	}
	e.State = "OK"
	if breach {
		e.State = "ALARM"
	}
	e.Reason = fmt.Sprintf("%s(%s) = %g over %d datapoint(s); threshold %s %g", a.Statistic, a.Metric, e.Value, len(vs), a.Comparison, a.Threshold)
	return e
}

func sameDims(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func statistic(name string, vs []float64) float64 {
	switch name {
	case "Maximum":
		m := math.Inf(-1)
		for _, v := range vs {
			m = math.Max(m, v)
		}
		return m
	case "Minimum":
		m := math.Inf(1)
		for _, v := range vs {
			m = math.Min(m, v)
		}
		return m
	case "SampleCount":
		return float64(len(vs))
	}
	sum := 0.0
	for _, v := range vs {
		sum += v
	}
	if name == "Average" {
		return sum / float64(len(vs))
	}
	return sum
}
