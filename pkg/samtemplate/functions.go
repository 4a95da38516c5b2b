package samtemplate

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Resource types SAM expands.
const (
	TypeFunction = "AWS::Serverless::Function"
	TypeApi      = "AWS::Serverless::Api"
	TypeTable    = "AWS::DynamoDB::Table"
)

// Function is an AWS::Serverless::Function with Globals.Function merged in the way SAM merges
// them: a resource's scalar replaces the global one, mappings merge key by key, and lists are
// the global entries followed by the resource's.
type Function struct {
	LogicalID  string
	Line       int
	Properties map[string]any // all merged properties, for anything not broken out below
	Metadata   map[string]any

	Runtime       string
	Handler       string
	CodeUri       string
	Tracing       string
	Architectures []string
	Timeout       int // seconds; 0 when unset or not a literal number
	MemorySize    int // MB; 0 when unset or not a literal number
	// Environment is Environment.Variables: name -> literal or Intrinsic.
	Environment   map[string]any
	LoggingConfig map[string]any
	Events        map[string]*Event
	// Policies is the Policies property as a list: managed policy names, SAM policy templates
	// ({DynamoDBCrudPolicy: {...}}) and inline documents ({Statement: [...]}).
	Policies []any
}

// Event is one entry of a function's Events.
type Event struct {
	Name       string
	Type       string // "Api", "Schedule", ...
	Properties map[string]any
}

// Route is one Api event: a method and path of an AWS::Serverless::Api served by a function.
type Route struct {
	Function       string // logical id of the function
	Event          string // the event's name
	Api            string // logical id of the AWS::Serverless::Api (RestApiId), "" if not a !Ref
	Path           string
	Method         string // upper case; ANY for any
	ApiKeyRequired bool
}

// Functions returns every AWS::Serverless::Function, sorted by logical id.
func (t *Template) Functions() []*Function {
	var out []*Function
	for _, r := range t.ResourcesOfType(TypeFunction) {
		out = append(out, t.function(r))
	}
	return out
}

// Function returns one function by logical id.
func (t *Template) Function(logicalID string) (*Function, bool) {
	r, ok := t.Resources[logicalID]
	if !ok || r.Type != TypeFunction {
		return nil, false
	}
	return t.function(r), true
}

func (t *Template) function(r *Resource) *Function {
	props := withGlobals(t.Globals["Function"], r.Properties)
	f := &Function{LogicalID: r.LogicalID, Line: r.Line, Properties: props, Metadata: r.Metadata}
	f.Runtime, _ = props["Runtime"].(string)
	f.Handler, _ = props["Handler"].(string)
	f.CodeUri, _ = props["CodeUri"].(string)
	f.Tracing, _ = props["Tracing"].(string)
	if l, ok := props["Architectures"].([]any); ok {
		for _, a := range l {
			s, _ := Scalar(a)
			f.Architectures = append(f.Architectures, s)
		}
	}
	f.Timeout, _ = intValue(props["Timeout"])
	f.MemorySize, _ = intValue(props["MemorySize"])
	if env, ok := props["Environment"].(map[string]any); ok {
		f.Environment, _ = env["Variables"].(map[string]any)
	}
	if f.Environment == nil {
		f.Environment = map[string]any{}
	}
	f.LoggingConfig, _ = props["LoggingConfig"].(map[string]any)
	f.Events = map[string]*Event{}
	if evs, ok := props["Events"].(map[string]any); ok {
		for name, v := range evs {
			m, _ := v.(map[string]any)
			e := &Event{Name: name}
			e.Type, _ = m["Type"].(string)
			e.Properties, _ = m["Properties"].(map[string]any)
			if e.Properties == nil {
				e.Properties = map[string]any{}
			}
			f.Events[name] = e
		}
	}
	switch p := props["Policies"].(type) {
	case nil:
	case []any:
		f.Policies = p
	default:
		f.Policies = []any{p}
	}
	return f
}

// api returns an AWS::Serverless::Api's properties with Globals.Api merged in.
func (t *Template) api(id string) (map[string]any, bool) {
	r, ok := t.Resources[id]
	if !ok || r.Type != TypeApi {
		return nil, false
	}
	return withGlobals(t.Globals["Api"], r.Properties), true
}

// withGlobals merges a Globals section into a resource's properties (SAM's rules).
func withGlobals(global, local map[string]any) map[string]any {
	out := make(map[string]any, len(global)+len(local))
	for k, v := range global {
		out[k] = v
	}
	for k, v := range local {
		if g, ok := out[k]; ok {
			out[k] = mergeGlobal(g, v)
		} else {
			out[k] = v
		}
	}
	return out
}

func mergeGlobal(global, local any) any {
	if gm, ok := global.(map[string]any); ok {
		if lm, ok := local.(map[string]any); ok {
			return withGlobals(gm, lm)
		}
	}
	if gl, ok := global.([]any); ok {
		if ll, ok := local.([]any); ok {
			return append(append([]any(nil), gl...), ll...)
		}
	}
	return local
}

// Routes lists every Api event of every function, sorted by path and method. ApiKeyRequired
// is the Api's Auth.ApiKeyRequired, overridden by the event's own Auth.ApiKeyRequired.
func (t *Template) Routes() []Route {
	var out []Route
	for _, f := range t.Functions() {
		for _, name := range sortedKeys(f.Events) {
			e := f.Events[name]
			if e.Type != "Api" {
				continue
			}
			r := Route{Function: f.LogicalID, Event: name}
			r.Path, _ = e.Properties["Path"].(string)
			m, _ := e.Properties["Method"].(string)
			r.Method = strings.ToUpper(m)
			if in, ok := e.Properties["RestApiId"].(Intrinsic); ok {
				r.Api, _ = in.Ref()
			}
			if props, ok := t.api(r.Api); ok {
				if auth, ok := props["Auth"].(map[string]any); ok {
					r.ApiKeyRequired, _ = boolValue(auth["ApiKeyRequired"])
				}
			}
			if auth, ok := e.Properties["Auth"].(map[string]any); ok {
				if b, ok := boolValue(auth["ApiKeyRequired"]); ok {
					r.ApiKeyRequired = b
				}
			}
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// Env returns a function's environment variables (Globals merged) with every intrinsic
// resolved by resolve. A value resolve cannot resolve is an error naming the variable; all
// such variables are reported at once.
func (t *Template) Env(functionLogicalID string, resolve func(Intrinsic) (string, bool)) (map[string]string, error) {
	f, ok := t.Function(functionLogicalID)
	if !ok {
		return nil, fmt.Errorf("no %s named %q in the template", TypeFunction, functionLogicalID)
	}
	out := make(map[string]string, len(f.Environment))
	var errs []error
	for _, name := range sortedKeys(f.Environment) {
		v := f.Environment[name]
		if s, ok := Scalar(v); ok {
			out[name] = s
			continue
		}
		in, isIntrinsic := v.(Intrinsic)
		if !isIntrinsic {
			errs = append(errs, fmt.Errorf("%s: Environment.Variables.%s: want a string, got %T", functionLogicalID, name, v))
			continue
		}
		s, ok := resolve(in)
		if !ok {
			errs = append(errs, fmt.Errorf("%s: Environment.Variables.%s: cannot resolve %s", functionLogicalID, name, in))
			continue
		}
		out[name] = s
	}
	return out, errors.Join(errs...)
}

// Resolver resolves the intrinsics whose value is known without deploying, for Env:
//   - !Ref Name: values[Name], else the parameter's Default (values therefore both overrides
//     parameters and names resources, e.g. "StateTable" -> a local table name, and pseudo
//     parameters, e.g. "AWS::Region" -> "us-east-1");
//   - !GetAtt Res.Attr: values["Res.Attr"];
//   - !Sub and !Join over parts that resolve by the same rules.
//
// Anything else (conditions, imports, ...) does not resolve.
func (t *Template) Resolver(values map[string]string) func(Intrinsic) (string, bool) {
	var resolve func(v any, local map[string]string) (string, bool)
	name := func(n string, local map[string]string) (string, bool) {
		if v, ok := local[n]; ok {
			return v, true
		}
		if v, ok := values[n]; ok {
			return v, true
		}
		if p, ok := t.Parameters[n]; ok && p.HasDefault {
			return p.Default, true
		}
		return "", false
	}
	resolve = func(v any, local map[string]string) (string, bool) {
		in, ok := v.(Intrinsic)
		if !ok {
			return Scalar(v)
		}
		switch in.Fn {
		case "Ref":
			n, _ := in.Ref()
			return name(n, local)
		case "Fn::GetAtt":
			r, a, ok := in.GetAtt()
			if !ok {
				return "", false
			}
			return name(r+"."+a, local)
		case "Fn::Sub":
			text, vars, ok := subParts(in)
			if !ok {
				return "", false
			}
			scope := map[string]string{}
			for k, v := range local {
				scope[k] = v
			}
			for k, v := range vars {
				s, ok := resolve(v, local)
				if !ok {
					return "", false
				}
				scope[k] = s
			}
			failed := false
			out := subVar.ReplaceAllStringFunc(text, func(m string) string {
				inner := m[2 : len(m)-1]
				if strings.HasPrefix(inner, "!") {
					return "${" + inner[1:] + "}" // ${!Literal} is an escaped ${Literal}
				}
				s, ok := name(strings.TrimSpace(inner), scope)
				if !ok {
					failed = true
				}
				return s
			})
			return out, !failed
		case "Fn::Join":
			l, _ := in.Arg.([]any)
			if len(l) != 2 {
				return "", false
			}
			sep, ok := l[0].(string)
			items, ok2 := l[1].([]any)
			if !ok || !ok2 {
				return "", false
			}
			parts := make([]string, 0, len(items))
			for _, it := range items {
				s, ok := resolve(it, local)
				if !ok {
					return "", false
				}
				parts = append(parts, s)
			}
			return strings.Join(parts, sep), true
		}
		return "", false
	}
	return func(in Intrinsic) (string, bool) { return resolve(in, nil) }
}

// subVar matches one ${...} of a Fn::Sub string.
var subVar = regexp.MustCompile(`\$\{[^}]*\}`)

// subParts splits a Fn::Sub into its text and its local variables.
func subParts(in Intrinsic) (string, map[string]any, bool) {
	switch a := in.Arg.(type) {
	case string:
		return a, nil, true
	case []any:
		if len(a) != 2 {
			return "", nil, false
		}
		text, ok := a[0].(string)
		vars, ok2 := a[1].(map[string]any)
		return text, vars, ok && ok2
	}
	return "", nil, false
}

// subNames returns the names a Fn::Sub text refers to (escaped ${!X} excluded).
func subNames(text string) []string {
	var out []string
	for _, m := range subVar.FindAllString(text, -1) {
		inner := strings.TrimSpace(m[2 : len(m)-1])
		if strings.HasPrefix(inner, "!") || inner == "" {
			continue
		}
		out = append(out, inner)
	}
	return out
}

func intValue(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case float64:
		if x == float64(int(x)) {
			return int(x), true
		}
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(x))
		return n, err == nil
	}
	return 0, false
}

func boolValue(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(x)
		return b, err == nil
	}
	return false, false
}
