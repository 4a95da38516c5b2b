package dataaction

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// Render fills a request template the way Genesys' Velocity engine does, for the subset the
// shipped actions use:
//
//	${input.x}  $input.x         the input's value; left as written when the input is absent
//	$!{input.x} $!input.x        silent: empty when absent
//	${credentials.x}             a field of the integration's User Defined credential
//	$esc.jsonString(ref)         JSON-string escaping (without the quotes)
//	$!esc.jsonString(ref)        the same, empty when ref is absent (the idiom for optional inputs)
//	$esc.url(ref)                URL query escaping
//
// Values are the inputs as Architect passes them: strings, numbers, booleans. Anything else
// starting with $ is an error, so a template using more Velocity than this checker understands
// cannot pass unnoticed.
func Render(template string, inputs map[string]any, credentials map[string]string) (string, error) {
	var out strings.Builder
	rest := template
	for {
		i := strings.IndexByte(rest, '$')
		if i < 0 {
			out.WriteString(rest)
			return out.String(), nil
		}
		out.WriteString(rest[:i])
		rest = rest[i:]
		m := directive.FindStringSubmatch(rest)
		if m == nil {
			return "", fmt.Errorf("template: unsupported Velocity at %q", truncate(rest, 40))
		}
		text, err := expand(m, inputs, credentials)
		if err != nil {
			return "", err
		}
		out.WriteString(text)
		rest = rest[len(m[0]):]
	}
}

// directive matches one of the supported forms. Groups: 1 silent, 2 function (jsonString|url)
// or "", 3 inner silent, 4 reference (input.x or credentials.x).
var directive = regexp.MustCompile(`^\$(!)?(?:esc\.(jsonString|url)\(\$(!)?\{?((?:input|credentials)\.[A-Za-z][A-Za-z0-9_-]*)\}?\)|\{?((?:input|credentials)\.[A-Za-z][A-Za-z0-9_-]*)\}?)`)

func expand(m []string, inputs map[string]any, credentials map[string]string) (string, error) {
	silent, fn := m[1] == "!", m[2]
	ref := m[4]
	if fn == "" {
		ref = m[5]
	}
	value, ok := lookup(ref, inputs, credentials)
	switch {
	case !ok && silent:
		return "", nil
	case !ok:
		// Velocity leaves an unresolved reference as written (a "!" on a method argument does
		// not change that: only the outer "$!" silences it).
		return m[0], nil
	}
	switch fn {
	case "jsonString":
		b, _ := json.Marshal(value)
		return string(b[1 : len(b)-1]), nil
	case "url":
		return url.QueryEscape(value), nil
	}
	return value, nil
}

func lookup(ref string, inputs map[string]any, credentials map[string]string) (string, bool) {
	scope, name, _ := strings.Cut(ref, ".")
	switch scope {
	case "input":
		v, ok := inputs[name]
		if !ok || v == nil {
			return "", false
		}
		return fmt.Sprint(v), true
	case "credentials":
		v, ok := credentials[name]
		return v, ok
	}
	return "", false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
