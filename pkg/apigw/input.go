package apigw

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/observe"
)

// Forgiving input (DESIGN.md section 7, "Degrade, do not drop"): a request is refused only for
// what makes it impossible to serve. Every other problem with an input (a value of the wrong
// shape, too long, unreadable) drops, shortens or replaces that value, and the answer names it in
// a Warning, so that one bad participant attribute in a Genesys flow does not cost the caller
// the whole request.
//
// Unknown input names are warnings too, with one exception that protects the integration
// engineer: a name that is almost a known one ("customerEmial", "customer_email",
// "ConversationId") is a typo in a request template, found the first time the action is tested,
// so it is refused, naming the input it resembles. An unrelated name (an input a newer version
// of the action sends, say) is ignored with a warning. Matching stays exact: encoding/json alone
// would match names case-insensitively, while Genesys contracts are case-sensitive.

// Warning is a problem with one input that did not stop the request.
type Warning struct {
	Field   string // the input's name
	Problem string // what was wrong, and what was done instead
	unknown bool   // Field is not an input of the action (its name is the caller's text)
}

func (w Warning) String() string { return w.Field + ": " + w.Problem }

// Warnings collects a request's warnings.
type Warnings []Warning

// Add records a problem with a known input.
func (ws *Warnings) Add(field, format string, args ...any) {
	*ws = append(*ws, Warning{Field: field, Problem: fmt.Sprintf(format, args...)})
}

// Strings is what an answer carries: "<input>: <problem>" each, never nil (an empty list
// encodes as [], which a Genesys output contract maps).
func (ws Warnings) Strings() []string {
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

// Report counts each warning (InputWarning, dimension Field: the input's name, or
// unknown_input for a name the action does not have) and logs them in one line, by name only:
// input values may hold personal data.
func (ws Warnings) Report(ctx context.Context) {
	if len(ws) == 0 {
		return
	}
	m := observe.MetricsFrom(ctx)
	fields := make([]string, 0, len(ws))
	for _, w := range ws {
		dim := w.Field
		if w.unknown {
			dim = "unknown_input"
		}
		m.Count("InputWarning", 1, observe.D("Field", dim))
		fields = append(fields, dim)
	}
	slog.WarnContext(ctx, "input problems: values dropped or shortened, the request goes on", "fields", strings.Join(fields, ","), "warnings", len(ws))
}

// DecodeInput decodes a JSON object body into the struct v points to, forgivingly: an input
// name v does not have is dropped with a warning, unless it is almost one of v's names (then
// the request is refused, naming the input it resembles). A body that is not a JSON object, and
// a value that v's field types refuse, are 400s; use LooseText and LooseInt for inputs whose
// bad values should only be warnings.
func DecodeInput(body []byte, v any) (Warnings, *Error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, Invalid("body", "invalid_json", "the body is empty; send a JSON object")
	}
	// Text that is not UTF-8 and an input sent twice are broken request templates, not
	// imperfect values: refused, naming the input (see wellFormedKeys).
	if err := wellFormedKeys(body, true); err != nil {
		return nil, err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return nil, jsonError(err)
	}
	if keys == nil {
		return nil, Invalid("body", "invalid_json", "the body must be a JSON object")
	}
	names := inputNames(v)
	unknown := make([]string, 0, len(keys))
	for k := range keys {
		if !names[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	var ws Warnings
	for _, k := range unknown {
		if like, ok := nearMiss(k, names); ok {
			return nil, Invalid(k, "unknown_field", "%s is not an input of this action; did you mean %s? (names are case-sensitive; check the data action's request template)", k, like)
		}
		ws = append(ws, Warning{Field: truncateName(k), Problem: "not an input of this action; ignored", unknown: true})
		delete(keys, k)
	}
	clean := body
	if len(unknown) > 0 {
		clean, _ = json.Marshal(keys)
	}
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, jsonError(err)
	}
	return ws, nil
}

func truncateName(s string) string {
	if len(s) <= 64 {
		return s
	}
	cut := 61
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "..."
}

// inputNames are the JSON names of v's struct fields.
func inputNames(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	names := map[string]bool{}
	if t == nil || t.Kind() != reflect.Struct {
		return names
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		names[name] = true
	}
	return names
}

// nearMiss finds the known name that name is almost: the same letters in another case or with
// separators (customer_email), or one or two typing slips away (customerEmial).
func nearMiss(name string, known map[string]bool) (string, bool) {
	n := fold(name)
	best, bestD := "", 3
	for k := range known {
		kn := fold(k)
		limit := 1
		if len(kn) >= 8 {
			limit = 2
		}
		if d := distance(n, kn); d <= limit && (d < bestD || (d == bestD && k < best)) {
			best, bestD = k, d
		}
	}
	return best, best != ""
}

func fold(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', ' ', '.':
			return -1
		}
		return r
	}, strings.ToLower(s))
}

// distance is the optimal string alignment distance: insertions, deletions, substitutions and
// swaps of neighbours each cost one.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 1 << 10
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// LooseText is an optional text input that never fails decoding: a value no request template
// renders for a text input (an array, an object) leaves it empty and is named in Malformed, so
// the handler drops it with a warning instead of refusing the request.
type LooseText struct {
	Text
	Malformed string // "an array" or "an object"; empty when the value was text
}

// UnmarshalJSON accepts what Text accepts, and records anything else as Malformed.
func (t *LooseText) UnmarshalJSON(b []byte) error {
	*t = LooseText{}
	if err := t.Text.UnmarshalJSON(b); err != nil {
		t.Text, t.Malformed = "", jsonKindOf(b)
	}
	return nil
}

// MarshalJSON writes the text, as Text would.
func (t LooseText) MarshalJSON() ([]byte, error) { return json.Marshal(string(t.Text)) }

// LooseInt is an optional whole-number input that never fails decoding: anything Int refuses
// leaves it unset and is named in Malformed.
type LooseInt struct {
	Int
	Malformed string // what came instead of a whole number ("a string", "a fraction", ...)
}

// UnmarshalJSON accepts what Int accepts, and records anything else as Malformed.
func (n *LooseInt) UnmarshalJSON(b []byte) error {
	*n = LooseInt{}
	if err := n.Int.UnmarshalJSON(b); err != nil {
		n.Int, n.Malformed = Int{}, jsonKindOf(b)
		if n.Malformed == "a number" {
			n.Malformed = "a number that is not whole"
		}
	}
	return nil
}

func jsonKindOf(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '[':
		return "an array"
	case '{':
		return "an object"
	case '"':
		return "text that is not a whole number"
	case 't', 'f':
		return "true or false"
	}
	return "a number"
}
