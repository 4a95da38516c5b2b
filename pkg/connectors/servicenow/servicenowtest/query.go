package servicenowtest

import (
	"sort"
	"strconv"
	"strings"
)

// The encoded-query evaluator. It follows the documented grammar closely enough to make
// injection tests meaningful:
//
//	query   = part { "^NQ" part }                a row matches when any part matches
//	part    = term { "^" term } { "^ORDERBY" ["DESC"] field }
//	term    = cond { "^OR" cond }                OR binds to its neighbours only
//	cond    = field op value                    field may dot-walk (caller_id.phone)
//
// and, like an instance, it ignores a condition whose field or operator it does not know: the
// condition is dropped from its term, a term left empty is dropped, and what remains is
// evaluated. So "phoneLIKE555^ORbogus=1" is "phoneLIKE555", and "bogus=1" alone matches every
// row. In strict mode (glide.invalid_query.returns_no_rows=true) any invalid condition makes the
// whole query return no rows.

type cond struct {
	path  string
	op    string
	value string
	valid bool
}

type orderKey struct {
	path string
	desc bool
}

type parsedQuery struct {
	parts   [][][]cond // NQ parts -> AND terms -> OR alternatives
	order   []orderKey
	invalid int
}

// Operators, longest first so that "NOT LIKE" wins over "LIKE" and "!=" over "=".
var operators = []string{"ISNOTEMPTY", "STARTSWITH", "ENDSWITH", "NOT LIKE", "NOT IN", "ISEMPTY", "LIKE", "IN", "!=", "<=", ">=", "=", "<", ">"}

func isFieldChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.'
}

func (s *Server) parseCond(t *table, text string) cond {
	i := 0
	for i < len(text) && isFieldChar(text[i]) {
		i++
	}
	c := cond{path: text[:i]}
	rest := text[i:]
	for _, op := range operators {
		if strings.HasPrefix(rest, op) {
			c.op, c.value = op, rest[len(op):]
			break
		}
	}
	if c.path == "" || c.op == "" {
		return c
	}
	if (c.op == "ISEMPTY" || c.op == "ISNOTEMPTY") && c.value != "" {
		return c
	}
	if _, _, _, ok := s.resolve(t, nil, c.path); !ok {
		return c
	}
	c.valid = true
	return c
}

func (s *Server) parseQuery(t *table, raw string) parsedQuery {
	pq := parsedQuery{parts: [][][]cond{nil}}
	if raw == "" {
		return pq
	}
	addCond := func(text string, or bool) {
		c := s.parseCond(t, text)
		if !c.valid {
			pq.invalid++
		}
		last := len(pq.parts) - 1
		terms := pq.parts[last]
		if or && len(terms) > 0 {
			terms[len(terms)-1] = append(terms[len(terms)-1], c)
		} else {
			terms = append(terms, []cond{c})
		}
		pq.parts[last] = terms
	}
	for i, seg := range strings.Split(raw, "^") {
		switch {
		case seg == "" || seg == "EQ":
			// "^EQ" ends queries copied from the UI; an empty segment carries nothing.
		case strings.HasPrefix(seg, "ORDERBYDESC"):
			pq.order = append(pq.order, orderKey{seg[len("ORDERBYDESC"):], true})
		case strings.HasPrefix(seg, "ORDERBY"):
			pq.order = append(pq.order, orderKey{seg[len("ORDERBY"):], false})
		case i > 0 && strings.HasPrefix(seg, "NQ"):
			pq.parts = append(pq.parts, nil)
			addCond(seg[2:], false)
		case i > 0 && strings.HasPrefix(seg, "OR"):
			addCond(seg[2:], true)
		default:
			addCond(seg, false)
		}
	}
	return pq
}

// evaluate returns the rows of t that match raw, ordered as it asks.
func (s *Server) evaluate(t *table, raw string) []map[string]string {
	pq := s.parseQuery(t, raw)
	if pq.invalid > 0 && s.strict {
		return nil
	}
	var out []map[string]string
	for _, row := range t.rows {
		if s.matchAny(t, row, pq.parts) {
			out = append(out, row)
		}
	}
	var keys []orderKey
	for _, k := range pq.order {
		if _, _, _, ok := s.resolve(t, nil, k.path); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) > 0 {
		sort.SliceStable(out, func(i, j int) bool {
			for _, k := range keys {
				_, a, _, _ := s.resolve(t, out[i], k.path)
				_, b, _, _ := s.resolve(t, out[j], k.path)
				c := compare(a, b)
				if c == 0 {
					continue
				}
				if k.desc {
					return c > 0
				}
				return c < 0
			}
			return false
		})
	}
	return out
}

func (s *Server) matchAny(t *table, row map[string]string, parts [][][]cond) bool {
	for _, terms := range parts {
		if s.matchAll(t, row, terms) {
			return true
		}
	}
	return false
}

func (s *Server) matchAll(t *table, row map[string]string, terms [][]cond) bool {
	for _, alts := range terms {
		considered, matched := false, false
		for _, c := range alts {
			if !c.valid {
				continue // ignored, as an instance does
			}
			considered = true
			if s.matchCond(t, row, c) {
				matched = true
				break
			}
		}
		if considered && !matched {
			return false
		}
	}
	return true
}

func (s *Server) matchCond(t *table, row map[string]string, c cond) bool {
	d, value, display, _ := s.resolve(t, row, c.path)
	// String operators on a reference field compare its display value (docs: caller_idLIKEon
	// matches callers whose name contains "on").
	text := value
	if d.Type == Reference {
		text = display
	}
	switch c.op {
	case "=":
		return value == c.value
	case "!=":
		return value != c.value
	case "LIKE":
		return strings.Contains(text, c.value)
	case "NOT LIKE":
		return !strings.Contains(text, c.value)
	case "STARTSWITH":
		return strings.HasPrefix(text, c.value)
	case "ENDSWITH":
		return strings.HasSuffix(text, c.value)
	case "IN", "NOT IN":
		in := false
		for _, v := range strings.Split(c.value, ",") {
			if value == v {
				in = true
				break
			}
		}
		return in == (c.op == "IN")
	case "ISEMPTY":
		return value == ""
	case "ISNOTEMPTY":
		return value != ""
	case "<":
		return compare(value, c.value) < 0
	case "<=":
		return compare(value, c.value) <= 0
	case ">":
		return compare(value, c.value) > 0
	case ">=":
		return compare(value, c.value) >= 0
	}
	return false
}

// compare orders numbers numerically and everything else as strings (UTC date-times in
// "yyyy-MM-dd HH:mm:ss" sort correctly as strings).
func compare(a, b string) int {
	x, errA := strconv.ParseFloat(a, 64)
	y, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}
