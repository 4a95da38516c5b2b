package observe

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Unit is a CloudWatch metric unit.
type Unit string

const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
	Seconds      Unit = "Seconds"
)

// Dim is one metric dimension.
type Dim struct{ Name, Value string }

// D is shorthand for a Dim.
func D(name, value string) Dim { return Dim{name, value} }

// Metrics collects the metrics of one invocation and writes them as CloudWatch Embedded Metric
// Format: one JSON line per distinct dimension set, each listing its metrics once with every
// value recorded. No library: the format is small and the only maintained Go ones are not
// available to us (reference/go-ecosystem.md section 9).
type Metrics struct {
	namespace string
	base      []Dim

	mu   sync.Mutex
	sets map[string]*metricSet
}

type metricSet struct {
	dims    []Dim
	order   []string // metric names, first-recorded first
	units   map[string]Unit
	values  map[string][]float64
	firstAt int
}

// NewMetrics returns a collector whose every metric carries the base dimensions.
func NewMetrics(namespace string, base ...Dim) *Metrics {
	return &Metrics{namespace: namespace, base: base, sets: map[string]*metricSet{}}
}

// Add records one value.
func (m *Metrics) Add(name string, unit Unit, value float64, dims ...Dim) {
	if m == nil || math.IsNaN(value) || math.IsInf(value, 0) {
		return // JSON cannot carry NaN or Inf: one such value would lose the whole flush
	}
	all := make([]Dim, 0, len(m.base)+len(dims))
	for _, d := range append(append([]Dim(nil), m.base...), dims...) {
		// a dimension given twice would appear twice in the dimension set, which CloudWatch
		// rejects; the later (more specific) value wins
		if i := slices.IndexFunc(all, func(o Dim) bool { return o.Name == d.Name }); i >= 0 {
			all[i] = d
			continue
		}
		all = append(all, d)
	}
	var kb strings.Builder
	for _, d := range all {
		kb.WriteString(d.Name)
		kb.WriteByte(0)
		kb.WriteString(d.Value)
		kb.WriteByte(0)
	}
	key := kb.String()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sets[key]
	if s == nil {
		s = &metricSet{dims: all, units: map[string]Unit{}, values: map[string][]float64{}, firstAt: len(m.sets)}
		m.sets[key] = s
	}
	if _, ok := s.units[name]; !ok {
		s.order = append(s.order, name)
		s.units[name] = unit
	}
	s.values[name] = append(s.values[name], value)
}

// Count records a count of n.
func (m *Metrics) Count(name string, n float64, dims ...Dim) { m.Add(name, Count, n, dims...) }

// Millis records a duration in milliseconds.
func (m *Metrics) Millis(name string, d time.Duration, dims ...Dim) {
	m.Add(name, Milliseconds, float64(d.Microseconds())/1000, dims...)
}

// Flush writes every collected metric as EMF lines and forgets them.
func (m *Metrics) Flush(w io.Writer, now time.Time) error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	sets := make([]*metricSet, 0, len(m.sets))
	for _, s := range m.sets {
		sets = append(sets, s)
	}
	m.sets = map[string]*metricSet{}
	m.mu.Unlock()
	sort.Slice(sets, func(i, j int) bool { return sets[i].firstAt < sets[j].firstAt })
	for _, s := range sets {
		line, err := s.emf(m.namespace, now)
		if err != nil {
			return err
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
	}
	return nil
}

const maxValuesPerMetric = 100 // EMF limit

func (s *metricSet) emf(namespace string, now time.Time) ([]byte, error) {
	type metricDef struct {
		Name string `json:"Name"`
		Unit Unit   `json:"Unit"`
	}
	names := make([]string, 0, len(s.dims))
	doc := map[string]any{}
	for _, d := range s.dims {
		names = append(names, d.Name)
		doc[d.Name] = d.Value
	}
	defs := make([]metricDef, 0, len(s.order))
	for _, n := range s.order {
		defs = append(defs, metricDef{n, s.units[n]})
		vs := s.values[n]
		if len(vs) > maxValuesPerMetric {
			vs = vs[:maxValuesPerMetric]
		}
		if len(vs) == 1 {
			doc[n] = vs[0]
		} else {
			doc[n] = vs
		}
	}
	doc["_aws"] = map[string]any{
		"Timestamp": now.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  namespace,
			"Dimensions": [][]string{names},
			"Metrics":    defs,
		}},
	}
	return json.Marshal(doc)
}

type metricsKey struct{}

// WithMetrics stores m in ctx.
func WithMetrics(ctx context.Context, m *Metrics) context.Context {
	return context.WithValue(ctx, metricsKey{}, m)
}

// MetricsFrom returns the invocation's collector; a nil collector ignores everything, so code
// under test without one still runs.
func MetricsFrom(ctx context.Context) *Metrics {
	m, _ := ctx.Value(metricsKey{}).(*Metrics)
	return m
}
