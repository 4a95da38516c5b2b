// Package samtemplate reads template.yaml as data, so that tests, the local stack and CI use the
// same definitions that deploy: the DynamoDB tables, each function's configuration and
// environment, and the API routes.
//
// It parses with gopkg.in/yaml.v3's node API instead of goformation, because goformation
// resolves intrinsics to fake values (a !Ref to a resource becomes "") and rejects current SAM
// properties such as LoggingConfig (reference/go-ecosystem.md section 5). Here intrinsics stay
// values: every short tag (!Ref, !GetAtt, !Sub, ...) and long form (Ref, Fn::GetAtt, Fn::Sub, ...)
// becomes an Intrinsic that callers can inspect or resolve.
//
// Template values are one of: nil, string, bool, int, float64, []any, map[string]any or
// Intrinsic.
package samtemplate

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed SAM template.
type Template struct {
	Path        string // the file it was loaded from; "" after Parse
	Description string
	Transform   []string
	Parameters  map[string]*Parameter
	Mappings    map[string]any
	Conditions  map[string]any
	// Globals maps a section ("Function", "Api", ...) to its properties.
	Globals   map[string]map[string]any
	Resources map[string]*Resource
	Outputs   map[string]*Output

	lines map[string]int // "Section.Name" -> line, for errors
}

// Parameter is one entry of Parameters.
type Parameter struct {
	Name       string
	Type       string
	Default    string // CloudFormation parameter values are strings; a list default is comma-joined
	HasDefault bool
	Properties map[string]any // everything as written (AllowedValues, MinValue, Description, ...)
	Line       int
}

// Resource is one entry of Resources.
type Resource struct {
	LogicalID  string
	Type       string
	Properties map[string]any
	Metadata   map[string]any
	DependsOn  []string
	Condition  string
	Line       int
}

// Output is one entry of Outputs.
type Output struct {
	Name      string
	Value     any
	Condition string
	Export    any
	Line      int
}

// Intrinsic is a CloudFormation intrinsic function, kept as written.
type Intrinsic struct {
	// Fn is the long name: "Ref", "Condition", or "Fn::GetAtt", "Fn::Sub", "Fn::If", ...
	Fn string
	// Arg is the argument. It is normalised in two cases only: a GetAtt is always
	// []any{resource, attribute} (the short form "Res.Attr" is split at its first dot), and a
	// Ref or Condition argument is a string.
	Arg  any
	Line int
}

// Ref returns the logical name a Ref points to.
func (in Intrinsic) Ref() (string, bool) {
	if in.Fn != "Ref" {
		return "", false
	}
	s, ok := in.Arg.(string)
	return s, ok
}

// GetAtt returns the resource and attribute of a Fn::GetAtt.
func (in Intrinsic) GetAtt() (resource, attribute string, ok bool) {
	if in.Fn != "Fn::GetAtt" {
		return "", "", false
	}
	l, _ := in.Arg.([]any)
	if len(l) != 2 {
		return "", "", false
	}
	r, ok1 := l[0].(string)
	a, ok2 := l[1].(string)
	return r, a, ok1 && ok2
}

// String renders the intrinsic in short form, for messages.
func (in Intrinsic) String() string {
	short := "!" + strings.TrimPrefix(in.Fn, "Fn::")
	if r, a, ok := in.GetAtt(); ok {
		return short + " " + r + "." + a
	}
	if s, ok := in.Arg.(string); ok {
		return short + " " + s
	}
	return fmt.Sprintf("%s %v", short, in.Arg)
}

// shortTags maps YAML short-form tags to the long names.
var shortTags = map[string]string{
	"!Ref":          "Ref",
	"!Condition":    "Condition",
	"!GetAtt":       "Fn::GetAtt",
	"!Sub":          "Fn::Sub",
	"!Join":         "Fn::Join",
	"!If":           "Fn::If",
	"!Select":       "Fn::Select",
	"!Split":        "Fn::Split",
	"!Equals":       "Fn::Equals",
	"!Not":          "Fn::Not",
	"!And":          "Fn::And",
	"!Or":           "Fn::Or",
	"!FindInMap":    "Fn::FindInMap",
	"!ImportValue":  "Fn::ImportValue",
	"!GetAZs":       "Fn::GetAZs",
	"!Base64":       "Fn::Base64",
	"!Cidr":         "Fn::Cidr",
	"!Transform":    "Fn::Transform",
	"!Length":       "Fn::Length",       // AWS::LanguageExtensions
	"!ToJsonString": "Fn::ToJsonString", // AWS::LanguageExtensions
}

// longNames are the mapping keys that make a one-key mapping an intrinsic.
var longNames = func() map[string]bool {
	m := map[string]bool{}
	for _, v := range shortTags {
		m[v] = true
	}
	return m
}()

// Load reads and parses a template file.
func Load(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t.Path = path
	return t, nil
}

// Parse parses a template.
func Parse(data []byte) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("a template is a YAML mapping")
	}
	root, err := convert(doc.Content[0])
	if err != nil {
		return nil, err
	}
	top := root.(map[string]any)
	t := &Template{
		Parameters: map[string]*Parameter{},
		Mappings:   map[string]any{},
		Conditions: map[string]any{},
		Globals:    map[string]map[string]any{},
		Resources:  map[string]*Resource{},
		Outputs:    map[string]*Output{},
		lines:      map[string]int{},
	}
	t.Description, _ = top["Description"].(string)
	switch tr := top["Transform"].(type) {
	case string:
		t.Transform = []string{tr}
	case []any:
		for _, v := range tr {
			if s, ok := v.(string); ok {
				t.Transform = append(t.Transform, s)
			}
		}
	}
	// Line numbers come from the node tree; the converted values do not carry them.
	for _, sec := range pairs(doc.Content[0]) {
		for _, e := range pairs(sec.value) {
			t.lines[sec.key.Value+"."+e.key.Value] = e.key.Line
		}
	}
	section := func(name string) (map[string]any, error) {
		v, ok := top[name]
		if !ok || v == nil {
			return map[string]any{}, nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: want a mapping", name)
		}
		return m, nil
	}
	params, err := section("Parameters")
	if err != nil {
		return nil, err
	}
	for name, v := range params {
		props, _ := v.(map[string]any)
		p := &Parameter{Name: name, Properties: props, Line: t.lines["Parameters."+name]}
		p.Type, _ = props["Type"].(string)
		if d, ok := props["Default"]; ok {
			p.Default, p.HasDefault = paramString(d), true
		}
		t.Parameters[name] = p
	}
	if t.Mappings, err = section("Mappings"); err != nil {
		return nil, err
	}
	if t.Conditions, err = section("Conditions"); err != nil {
		return nil, err
	}
	globals, err := section("Globals")
	if err != nil {
		return nil, err
	}
	for name, v := range globals {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("section Globals, entry %s: want a mapping", name)
		}
		t.Globals[name] = m
	}
	resources, err := section("Resources")
	if err != nil {
		return nil, err
	}
	for id, v := range resources {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("resource %s: want a mapping", id)
		}
		r := &Resource{LogicalID: id, Line: t.lines["Resources."+id]}
		r.Type, _ = m["Type"].(string)
		r.Properties, _ = m["Properties"].(map[string]any)
		if r.Properties == nil {
			r.Properties = map[string]any{}
		}
		r.Metadata, _ = m["Metadata"].(map[string]any)
		r.Condition, _ = m["Condition"].(string)
		switch d := m["DependsOn"].(type) {
		case string:
			r.DependsOn = []string{d}
		case []any:
			for _, x := range d {
				if s, ok := x.(string); ok {
					r.DependsOn = append(r.DependsOn, s)
				}
			}
		}
		t.Resources[id] = r
	}
	outputs, err := section("Outputs")
	if err != nil {
		return nil, err
	}
	for name, v := range outputs {
		m, _ := v.(map[string]any)
		o := &Output{Name: name, Value: m["Value"], Export: m["Export"], Line: t.lines["Outputs."+name]}
		o.Condition, _ = m["Condition"].(string)
		t.Outputs[name] = o
	}
	return t, nil
}

// ResourcesOfType returns the resources of one type, sorted by logical id.
func (t *Template) ResourcesOfType(typ string) []*Resource {
	var out []*Resource
	for _, r := range t.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LogicalID < out[j].LogicalID })
	return out
}

type pair struct{ key, value *yaml.Node }

func pairs(n *yaml.Node) []pair {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	out := make([]pair, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, pair{n.Content[i], n.Content[i+1]})
	}
	return out
}

// convert turns a node into a template value.
func convert(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return convert(n.Alias)
	}
	if fn, ok := shortTags[n.Tag]; ok {
		var arg any
		if n.Kind == yaml.ScalarNode {
			arg = n.Value // a tagged scalar is always a string argument
		} else {
			v, err := convertUntagged(n)
			if err != nil {
				return nil, err
			}
			arg = v
		}
		return intrinsic(fn, arg, n.Line)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	return convertUntagged(n)
}

func convertUntagged(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b, nil
			}
		case "!!int":
			var i int
			if err := n.Decode(&i); err == nil {
				return i, nil
			}
		case "!!float":
			var f float64
			if err := n.Decode(&f); err == nil {
				return f, nil
			}
		}
		return n.Value, nil // strings, timestamps and anything unusual stay text
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := convert(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		for _, p := range pairs(n) {
			if p.key.Value == "<<" {
				return nil, fmt.Errorf("line %d: YAML merge keys are not supported in templates", p.key.Line)
			}
			if _, dup := out[p.key.Value]; dup {
				// CloudFormation rejects duplicate keys; yaml.v3's node API does not.
				return nil, fmt.Errorf("line %d: duplicate key %q", p.key.Line, p.key.Value)
			}
			v, err := convert(p.value)
			if err != nil {
				return nil, err
			}
			out[p.key.Value] = v
		}
		if len(out) == 1 {
			for k, v := range out {
				_, isString := v.(string)
				if longNames[k] && (k != "Condition" || isString) {
					return intrinsic(k, v, n.Line)
				}
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

func intrinsic(fn string, arg any, line int) (any, error) {
	if fn == "Fn::GetAtt" {
		switch a := arg.(type) {
		case string:
			res, attr, ok := strings.Cut(a, ".")
			if !ok {
				return nil, fmt.Errorf("line %d: !GetAtt %q: want Resource.Attribute", line, a)
			}
			arg = []any{res, attr}
		case []any:
			if len(a) != 2 {
				return nil, fmt.Errorf("line %d: Fn::GetAtt takes [Resource, Attribute]", line)
			}
		}
	}
	if (fn == "Ref" || fn == "Condition") && !isString(arg) {
		return nil, fmt.Errorf("line %d: %s takes a name", line, fn)
	}
	return Intrinsic{Fn: fn, Arg: arg, Line: line}, nil
}

func isString(v any) bool { _, ok := v.(string); return ok }

// Scalar renders a literal scalar the way CloudFormation passes it on (for example into an
// environment variable): numbers and booleans as their text.
func Scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case bool:
		return strconv.FormatBool(x), true
	case int:
		return strconv.Itoa(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case nil:
		return "", true
	}
	return "", false
}

func paramString(v any) string {
	if l, ok := v.([]any); ok {
		parts := make([]string, 0, len(l))
		for _, x := range l {
			s, _ := Scalar(x)
			parts = append(parts, s)
		}
		return strings.Join(parts, ",")
	}
	s, _ := Scalar(v)
	return s
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
