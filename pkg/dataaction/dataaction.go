// Package dataaction reads the Genesys Cloud data action definitions shipped in
// integrations/genesys and checks them the way Genesys does on import and at run time, so a
// deployer never imports an action that cannot work:
//
//   - the contract rules of "Add contracts to custom actions" (reference/api-contracts.md
//     section 3.6): a flat input object of string, integer, number, boolean or null properties
//     named [A-Za-z][A-Za-z0-9_-]*, none of the reserved names; outputs may hold arrays and
//     objects but not nested arrays; no $ref;
//   - the request template, rendered with the same Velocity subset the shipped actions use;
//   - the output contract, validated against real responses.
package dataaction

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
)

// Action is an exported custom action, as Genesys imports it.
type Action struct {
	Name            string   `json:"name"`
	IntegrationType string   `json:"integrationType"`
	ActionType      string   `json:"actionType"`
	Config          Config   `json:"config"`
	Contract        Contract `json:"contract"`
	Secure          bool     `json:"secure"`
}

// Config is the action's request and response configuration.
type Config struct {
	Request struct {
		URLTemplate string            `json:"requestUrlTemplate"`
		Type        string            `json:"requestType"`
		Headers     map[string]string `json:"headers"`
		Template    string            `json:"requestTemplate"`
	} `json:"request"`
	Response struct {
		TranslationMap         map[string]string `json:"translationMap"`
		TranslationMapDefaults map[string]string `json:"translationMapDefaults"`
		SuccessTemplate        string            `json:"successTemplate"`
	} `json:"response"`
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// Contract is the action's input and output schemas.
type Contract struct {
	Input struct {
		InputSchema *Schema `json:"inputSchema"`
	} `json:"input"`
	Output struct {
		SuccessSchema *Schema `json:"successSchema"`
	} `json:"output"`
}

// Load reads one action file.
func Load(path string) (*Action, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields() // a misspelt key would be silently ignored by Genesys
	var a Action
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &a, nil
}

// LoadDir reads every *.json in dir, keyed by file name without extension (which names the
// function the action calls, e.g. telemetry-tier).
func LoadDir(dir string) (map[string]*Action, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	out := map[string]*Action{}
	for _, p := range paths {
		a, err := Load(p)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(filepath.Base(p), ".json")] = a
	}
	return out, nil
}

var (
	inputName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	reserved  = map[string]bool{"orgId": true, "integrationId": true, "rawRequest": true}
)

// Check returns every way the action breaks Genesys' rules or our conventions.
func (a *Action) Check() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if a.Name == "" {
		bad("name is empty")
	}
	if a.IntegrationType != "custom-rest-actions" || a.ActionType != "custom" {
		bad("integrationType/actionType must be custom-rest-actions/custom for a Web Services data action")
	}
	req := a.Config.Request
	if req.URLTemplate == "" || req.Type == "" || req.Template == "" {
		bad("request needs requestUrlTemplate, requestType and requestTemplate")
	}
	if !strings.Contains(req.Headers["x-api-key"], "${credentials.") {
		bad("the x-api-key header must come from the integration's credentials, not be written in the action")
	}
	if ct := req.Headers["Content-Type"]; ct != "application/json" {
		bad("Content-Type header is %q; the API expects application/json", ct)
	}
	if t := a.Config.TimeoutSeconds; t != 0 && (t < 1 || t > 60) {
		bad("timeoutSeconds %d is outside Genesys' 1-60", t)
	}
	in := a.Contract.Input.InputSchema
	if in == nil || in.Type.Single() != "object" {
		bad("the input contract must be an object")
	} else {
		for name, p := range in.Properties {
			switch {
			case !inputName.MatchString(name):
				bad("input %q: names must match %s", name, inputName)
			case reserved[name]:
				bad("input %q is a reserved name in Genesys", name)
			case p.hasType("object") || p.hasType("array"):
				bad("input %q: input contracts must be flat (string, integer, number, boolean or null)", name)
			}
		}
		for _, r := range in.Required {
			if in.Properties[r] == nil {
				bad("input contract requires %q but does not define it", r)
			}
		}
	}
	out := a.Contract.Output.SuccessSchema
	if out == nil || out.Type.Single() != "object" {
		bad("the output contract must be an object")
	} else {
		// Each output field is translated with a default, so an answer that lacks one still
		// maps (the tolerant translation Genesys' resiliency guidance recommends).
		for name := range out.Properties {
			if _, ok := a.Config.Response.TranslationMap[name]; !ok {
				bad("output %s has no translationMap entry", name)
			} else if _, ok := a.Config.Response.TranslationMapDefaults[name]; !ok {
				bad("output %s has no translationMapDefaults entry", name)
			}
		}
		out.walk("", 0, func(path string, s *Schema, depth int, insideArray bool) {
			if s.Ref != "" {
				bad("output %s uses $ref, which Genesys does not support", path)
			}
			if insideArray && s.hasType("array") {
				bad("output %s is an array inside an array, which Genesys does not allow", path)
			}
			if depth > 50 {
				bad("output %s is nested deeper than 50 levels", path)
			}
		})
	}
	return errs
}

// InputNames returns the input contract's property names, sorted.
func (a *Action) InputNames() []string {
	var names []string
	if in := a.Contract.Input.InputSchema; in != nil {
		for n := range in.Properties {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Output applies the response configuration to a raw JSON result, as Genesys does before it
// validates the output contract: each translation map entry picks a value out of the result
// (falling back to its default when the result lacks it), and the success template is rendered
// with those values. "${rawResult}" stands for the whole result. The JSONPaths this checker
// understands are the ones the shipped actions use: "$.field" at the top level.
func (a *Action) Output(raw []byte) (any, error) {
	var result map[string]json.RawMessage
	if err := json.Unmarshal(raw, &result); err != nil {
		return nil, fmt.Errorf("the result is not a JSON object: %w", err)
	}
	r := a.Config.Response
	values := map[string]string{"rawResult": string(raw)}
	for name, path := range r.TranslationMap {
		field, ok := strings.CutPrefix(path, "$.")
		if !ok || strings.ContainsAny(field, ".[*") {
			return nil, fmt.Errorf("translationMap %s: JSONPath %q is beyond this checker ($.field only)", name, path)
		}
		if v, ok := result[field]; ok {
			values[name] = string(v)
			continue
		}
		def, ok := r.TranslationMapDefaults[name]
		if !ok {
			return nil, fmt.Errorf("translationMap %s: the result has no %s and there is no default; Genesys fails the action", name, field)
		}
		values[name] = def
	}
	rendered := successVar.ReplaceAllStringFunc(r.SuccessTemplate, func(m string) string {
		if v, ok := values[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
	out, err := decode([]byte(rendered))
	if err != nil {
		return nil, fmt.Errorf("the success template does not render JSON: %w", err)
	}
	return out, nil
}

var successVar = regexp.MustCompile(`\$\{[A-Za-z][A-Za-z0-9_]*\}`)

func decode(raw []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// FieldNames returns the JSON names of a struct's exported fields, sorted: the inputs a function
// accepts, to compare with an action's input contract.
func FieldNames(v any) []string {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
