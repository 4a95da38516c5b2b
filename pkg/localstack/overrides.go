package localstack

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/samtemplate"
)

// Overrides change the local world's configuration, the way a developer pointing one system at
// a real sandbox needs: its real queue ids, service desks and projects. Parameters are template
// parameters (what `sam deploy --parameter-overrides` takes); Env are environment variables by
// "Parameters" (every function) or a function's logical id (what `sam local invoke --env-vars`
// takes).
type Overrides struct {
	Parameters map[string]string
	Env        map[string]map[string]string
}

// allFunctions is the --env-vars key whose variables apply to every function.
const allFunctions = "Parameters"

// LoadOverrides reads a JSON file in any of the shapes the SAM and CloudFormation tools use:
//
//	{"Parameters": {"JIRA_PROJECTS": "..."}, "CreateEscalationFunction": {"ESCALATION_TARGETS": "..."}}   sam local invoke --env-vars
//	{"JiraProjects": "SUPP=1/10", "TierL1QueueId": "..."}                                             parameter name -> value
//	[{"ParameterKey": "JiraProjects", "ParameterValue": "SUPP=1/10"}]                                 aws cloudformation --parameters file://
//
// Under "Parameters" and at the top level a name may be a template parameter (JiraProjects) or
// an environment variable of some function (JIRA_PROJECTS). Every name must be known to the
// template and every parameter value must pass its AllowedValues and AllowedPattern, so a typo
// is an error naming it rather than a setting silently ignored.
func LoadOverrides(path string, tpl *samtemplate.Template) (Overrides, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Overrides{}, err
	}
	o, err := ParseOverrides(data, tpl)
	if err != nil {
		return Overrides{}, fmt.Errorf("%s: %w", path, err)
	}
	return o, nil
}

// ParseOverrides is LoadOverrides for the file's contents.
func ParseOverrides(data []byte, tpl *samtemplate.Template) (Overrides, error) {
	o := Overrides{Parameters: map[string]string{}, Env: map[string]map[string]string{}}
	var list []struct {
		ParameterKey   string
		ParameterValue *string
	}
	if json.Unmarshal(data, &list) == nil {
		for _, p := range list {
			if p.ParameterValue == nil {
				return o, fmt.Errorf("%s: ParameterValue is missing", p.ParameterKey)
			}
			if err := o.set(tpl, allFunctions, p.ParameterKey, *p.ParameterValue); err != nil {
				return o, err
			}
		}
		return o, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return o, fmt.Errorf("want a JSON object (the shape of sam local invoke --env-vars, or parameter name -> value) or a CloudFormation parameters list: %w", err)
	}
	for _, key := range sortedNames(top) {
		raw := top[key]
		var vars map[string]any
		if json.Unmarshal(raw, &vars) == nil {
			if key != allFunctions {
				if f, ok := tpl.Function(key); !ok || f == nil {
					return o, fmt.Errorf("%s: not a function of the template (want %q or a function's logical id, e.g. CreateEscalationFunction)", key, allFunctions)
				}
			}
			for _, name := range sortedNames(vars) {
				v, err := scalar(vars[name])
				if err != nil {
					return o, fmt.Errorf("%s.%s: %w", key, name, err)
				}
				if err := o.set(tpl, key, name, v); err != nil {
					return o, err
				}
			}
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return o, fmt.Errorf("%s: %w", key, err)
		}
		s, err := scalar(v)
		if err != nil {
			return o, fmt.Errorf("%s: %w", key, err)
		}
		if err := o.set(tpl, allFunctions, key, s); err != nil {
			return o, err
		}
	}
	return o, nil
}

// scalar accepts what --env-vars accepts: strings, numbers and booleans.
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case float64, bool:
		return fmt.Sprint(x), nil
	default:
		return "", fmt.Errorf("want a string, number or boolean, got %T", v)
	}
}

// set records one name: a template parameter, or an environment variable of scope (every
// function, or one).
func (o *Overrides) set(tpl *samtemplate.Template, scope, name, value string) error {
	if p, ok := tpl.Parameters[name]; ok && scope == allFunctions {
		if err := checkParameter(p, value); err != nil {
			return err
		}
		o.Parameters[name] = value
		return nil
	}
	known := false
	for _, f := range tpl.Functions() {
		if _, ok := f.Environment[name]; ok && (scope == allFunctions || scope == f.LogicalID) {
			known = true
		}
	}
	if !known {
		where := "any function's Environment"
		if scope != allFunctions {
			where = scope + "'s Environment"
		}
		return fmt.Errorf("%s: not a template parameter nor a variable in %s (cxbridge reads only those; add a variable to template.yaml first)%s",
			name, where, suggest(tpl, name))
	}
	if o.Env[scope] == nil {
		o.Env[scope] = map[string]string{}
	}
	o.Env[scope][name] = value
	return nil
}

// checkParameter applies a parameter's AllowedValues and AllowedPattern, as CloudFormation does.
func checkParameter(p *samtemplate.Parameter, value string) error {
	if allowed, ok := p.Properties["AllowedValues"].([]any); ok {
		var vals []string
		for _, a := range allowed {
			s, _ := samtemplate.Scalar(a)
			if s == value {
				return nil
			}
			vals = append(vals, s)
		}
		return fmt.Errorf("%s: %q is not one of %s", p.Name, value, strings.Join(vals, ", "))
	}
	if pattern, ok := p.Properties["AllowedPattern"].(string); ok {
		re, err := regexp.Compile("^(?:" + pattern + ")$")
		if err == nil && !re.MatchString(value) {
			return fmt.Errorf("%s: %q does not match %s", p.Name, value, pattern)
		}
	}
	return nil
}

// suggest names the parameter a variable comes from, or the variable a parameter feeds, when
// the other spelling was meant.
func suggest(tpl *samtemplate.Template, name string) string {
	for _, f := range tpl.Functions() {
		for v, val := range f.Environment {
			in, ok := val.(samtemplate.Intrinsic)
			if !ok {
				continue
			}
			if ref, ok := in.Ref(); ok && strings.EqualFold(ref, name) {
				return fmt.Sprintf("; did you mean the parameter %s (variable %s)?", ref, v)
			}
			if strings.EqualFold(v, name) {
				return fmt.Sprintf("; did you mean %s?", v)
			}
		}
	}
	return ""
}

// parameterOf returns the template parameter a function environment variable is a !Ref of.
func parameterOf(tpl *samtemplate.Template, variable string) string {
	for _, f := range tpl.Functions() {
		if in, ok := f.Environment[variable].(samtemplate.Intrinsic); ok {
			if ref, ok := in.Ref(); ok {
				if _, isParam := tpl.Parameters[ref]; isParam {
					return ref
				}
			}
		}
	}
	return ""
}

// getenv wraps the process environment: a system's address set by the overrides (its
// variable, or the parameter that feeds it) makes that system real, as the variable does.
func (o Overrides) getenv(tpl *samtemplate.Template, base func(string) string) func(string) string {
	return func(name string) string {
		if v := base(name); v != "" {
			return v
		}
		if v := o.Env[allFunctions][name]; v != "" {
			return v
		}
		if p := parameterOf(tpl, name); p != "" {
			return o.Parameters[p]
		}
		return ""
	}
}

// env applies the variable overrides to one function's environment.
func (o Overrides) env(logicalID string, env map[string]string) {
	for _, scope := range []string{allFunctions, logicalID} {
		for k, v := range o.Env[scope] {
			if _, ok := env[k]; ok {
				env[k] = v
			}
		}
	}
}

// Empty reports whether o changes nothing.
func (o Overrides) Empty() bool { return len(o.Parameters) == 0 && len(o.Env) == 0 }

// String lists what o changes, for a banner.
func (o Overrides) String() string {
	parts := sortedNames(o.Parameters)
	for _, scope := range sortedNames(o.Env) {
		for _, k := range sortedNames(o.Env[scope]) {
			if scope == allFunctions {
				parts = append(parts, k)
			} else {
				parts = append(parts, scope+"."+k)
			}
		}
	}
	return strings.Join(parts, ", ")
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
