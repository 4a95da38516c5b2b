package dataaction

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Schema is the JSON Schema subset Genesys contracts use.
type Schema struct {
	Dialect     string             `json:"$schema,omitempty"` // Genesys exports carry draft-04's URI
	Title       string             `json:"title,omitempty"`
	Description string             `json:"description,omitempty"`
	Type        Types              `json:"type"`
	Properties  map[string]*Schema `json:"properties,omitempty"`
	Required    []string           `json:"required,omitempty"`
	Items       *Schema            `json:"items,omitempty"`
	Enum        []any              `json:"enum,omitempty"`
	Ref         string             `json:"$ref,omitempty"`
	// AdditionalProperties false makes unknown keys an error.
	AdditionalProperties *bool `json:"additionalProperties,omitempty"`
}

// Types is a schema's "type": one name or a list of names.
type Types []string

// UnmarshalJSON accepts "string" and ["string","null"].
func (t *Types) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*t = Types{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("type must be a string or a list of strings")
	}
	*t = many
	return nil
}

// MarshalJSON writes a single type as a string.
func (t Types) MarshalJSON() ([]byte, error) {
	if len(t) == 1 {
		return json.Marshal(t[0])
	}
	return json.Marshal([]string(t))
}

// Single returns the type when there is exactly one.
func (t Types) Single() string {
	if len(t) == 1 {
		return t[0]
	}
	return ""
}

func (s *Schema) hasType(name string) bool {
	for _, t := range s.Type {
		if t == name {
			return true
		}
	}
	return false
}

func (s *Schema) walk(path string, depth int, fn func(path string, s *Schema, depth int, insideArray bool)) {
	var visit func(path string, s *Schema, depth int, insideArray bool)
	visit = func(path string, s *Schema, depth int, insideArray bool) {
		fn(path, s, depth, insideArray)
		for name, p := range s.Properties {
			visit(path+"."+name, p, depth+1, false)
		}
		if s.Items != nil {
			visit(path+"[]", s.Items, depth+1, true)
		}
	}
	visit(strings.TrimPrefix(path, "."), s, depth, false)
}

// Validate checks a decoded JSON value (numbers as json.Number) against the schema and returns
// every violation, each naming its path.
func (s *Schema) Validate(v any) []error {
	var errs []error
	s.validate("$", v, &errs)
	return errs
}

// ValidateJSON decodes raw and validates it.
func (s *Schema) ValidateJSON(raw []byte) []error {
	v, err := decode(raw)
	if err != nil {
		return []error{err}
	}
	return s.Validate(v)
}

func (s *Schema) validate(path string, v any, errs *[]error) {
	bad := func(format string, args ...any) {
		*errs = append(*errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if len(s.Type) > 0 && !s.accepts(v) {
		bad("is %s, want %s", kindOf(v), strings.Join(s.Type, " or "))
		return
	}
	if len(s.Enum) > 0 {
		found := false
		for _, e := range s.Enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			bad("%v is not one of %v", v, s.Enum)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		for _, r := range s.Required {
			if _, ok := x[r]; !ok {
				bad("required property %q is missing", r)
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p, ok := s.Properties[k]
			if !ok {
				if s.AdditionalProperties != nil && !*s.AdditionalProperties {
					bad("property %q is not in the contract", k)
				}
				continue
			}
			p.validate(path+"."+k, x[k], errs)
		}
	case []any:
		if s.Items != nil {
			for i, item := range x {
				s.Items.validate(fmt.Sprintf("%s[%d]", path, i), item, errs)
			}
		}
	}
}

func (s *Schema) accepts(v any) bool {
	for _, t := range s.Type {
		switch x := v.(type) {
		case nil:
			if t == "null" {
				return true
			}
		case string:
			if t == "string" {
				return true
			}
		case bool:
			if t == "boolean" {
				return true
			}
		case json.Number:
			if t == "number" {
				return true
			}
			if _, err := x.Int64(); err == nil && t == "integer" {
				return true
			}
		case float64: // decoded without UseNumber
			if t == "number" || (t == "integer" && x == float64(int64(x))) {
				return true
			}
		case map[string]any:
			if t == "object" {
				return true
			}
		case []any:
			if t == "array" {
				return true
			}
		}
	}
	return false
}

func kindOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "an integer"
		}
		return "a number"
	case float64:
		if x == float64(int64(x)) {
			return "an integer"
		}
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// Exact validates v and also requires it to hold exactly the schema's properties, at every
// level: a field the contract does not name is invisible to Architect, and a field it names but
// the answer lacks breaks the flow's mapping. Arrays must be arrays, never null.
func (s *Schema) Exact(v any) []error {
	errs := s.Validate(v)
	s.exact("$", v, &errs)
	return errs
}

func (s *Schema) exact(path string, v any, errs *[]error) {
	switch x := v.(type) {
	case map[string]any:
		for name, p := range s.Properties {
			child, ok := x[name]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s.%s is in the contract but not in the value", path, name))
				continue
			}
			p.exact(path+"."+name, child, errs)
		}
		for name := range x {
			if _, ok := s.Properties[name]; !ok && len(s.Properties) > 0 {
				*errs = append(*errs, fmt.Errorf("%s.%s is in the value but not in the contract", path, name))
			}
		}
	case []any:
		if s.Items != nil {
			for i, item := range x {
				s.Items.exact(fmt.Sprintf("%s[%d]", path, i), item, errs)
			}
		}
	}
}
