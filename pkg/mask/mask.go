// Package mask removes payment card numbers, US social security numbers and other configured
// patterns from free text before it leaves for Jira or ServiceNow, and (with the log rules)
// before it reaches a log line.
//
// Card numbers are found as 13 to 19 digits with any common separators between them and are
// masked only when the Luhn check confirms them, so order numbers and phone numbers survive.
// The seed's `\d{4}-\d{4}-\d{4}` rule is kept for the 12-digit account numbers it was written for.
package mask

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Rule finds one kind of sensitive text.
type Rule struct {
	Name string // shown in the placeholder: [MASKED:<name>]
	re   *regexp.Regexp
	// accept, when set, confirms a candidate match and may narrow it (start, end relative to
	// the whole string); returning ok=false leaves the text alone.
	accept func(s string, loc []int) (spans [][2]int)
}

// Masker applies a set of rules.
type Masker struct {
	rules []Rule
}

// Placeholder is what a masked span becomes.
func Placeholder(name string) string { return "[MASKED:" + name + "]" }

var (
	// digits with up to three separator characters between them; candidates for card numbers.
	// Unbounded, so a run is always matched whole: with an upper bound, a long run (three card
	// numbers in a row) was cut in the middle of a card, which then escaped both halves.
	cardRun = regexp.MustCompile(`\d(?:[ \t\-.]{0,3}\d){12,}`)
	ssnRe   = regexp.MustCompile(`\b(\d{3})([- ])(\d{2})([- ])(\d{4})\b`)
	// a bare nine-digit SSN only when the text says it is one
	ssnKeywordRe = regexp.MustCompile(`(?i)\b(?:ssn|social\s+security(?:\s+(?:number|no\.?|#))?)\s*(?:is|:|#|=)?\s*(\d{9})\b`)
	seedRe       = regexp.MustCompile(`\b\d{4}-\d{4}-\d{4}\b`)
	emailRe      = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}`)
	phoneRe      = regexp.MustCompile(`(?:\+|\b00)[1-9]\d{6,14}\b|(?i:tel:|sip:)\+?[\w.\-@;=]+`)
	bearerRe     = regexp.MustCompile(`(?i)\b(?:bearer|basic)\s+[a-z0-9._~+/\-]+=*`)
	jwtRe        = regexp.MustCompile(`\beyJ[a-zA-Z0-9_\-]+\.[a-zA-Z0-9_\-]+\.[a-zA-Z0-9_\-]*`)
)

// EgressRules are applied to every free-text field sent to Jira or ServiceNow.
func EgressRules() []Rule {
	return []Rule{
		{Name: "card", re: cardRun, accept: acceptCard},
		{Name: "ssn", re: ssnRe, accept: acceptSSN},
		{Name: "ssn", re: ssnKeywordRe, accept: acceptSSNKeyword},
		{Name: "account", re: seedRe},
	}
}

// LogRules add what must not reach a log line even though it may go to a ticket: e-mail
// addresses, phone numbers and credentials.
func LogRules() []Rule {
	return append([]Rule{
		{Name: "token", re: bearerRe},
		{Name: "token", re: jwtRe},
		{Name: "email", re: emailRe},
		{Name: "phone", re: phoneRe},
	}, EgressRules()...)
}

// New returns a Masker with rules plus extra named patterns.
func New(rules []Rule, extra map[string]string) (*Masker, error) {
	m := &Masker{rules: append([]Rule(nil), rules...)}
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic order
	for _, name := range names {
		re, err := regexp.Compile(extra[name])
		if err != nil {
			return nil, fmt.Errorf("mask pattern %q: %w", name, err)
		}
		m.rules = append(m.rules, Rule{Name: name, re: re})
	}
	return m, nil
}

// ParseExtra reads extra patterns as a JSON object of name -> regular expression, the format
// of the MASK_EXTRA_PATTERNS variable.
func ParseExtra(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf(`want a JSON object like {"iban":"\\bGB\\d{2}[A-Z]{4}\\d{14}\\b"}: %w`, err)
	}
	for name, pat := range m {
		if name == "" || strings.ContainsAny(name, "[]") {
			return nil, fmt.Errorf("pattern name %q is not usable in a placeholder", name)
		}
		if _, err := regexp.Compile(pat); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", name, err)
		}
	}
	return m, nil
}

// Egress is the default masker for outbound ticket text.
var Egress = must(New(EgressRules(), nil))

// Logs is the masker the log redaction layer uses.
var Logs = must(New(LogRules(), nil))

func must(m *Masker, err error) *Masker {
	if err != nil {
		panic(err)
	}
	return m
}

// String masks s and reports how many spans were replaced.
func (m *Masker) String(s string) (string, int) {
	if s == "" {
		return s, 0
	}
	total := 0
	for _, r := range m.rules {
		var n int
		s, n = r.apply(s)
		total += n
	}
	return s, total
}

// Counter accumulates masks across the fields of one message.
type Counter struct {
	M *Masker
	N int
}

// Mask masks s and adds to the count.
func (c *Counter) Mask(s string) string {
	out, n := c.M.String(s)
	c.N += n
	return out
}

func (r Rule) apply(s string) (string, int) {
	locs := r.re.FindAllStringSubmatchIndex(s, -1)
	if len(locs) == 0 {
		return s, 0
	}
	var spans [][2]int
	for _, loc := range locs {
		if loc[0] == loc[1] {
			continue // an extra pattern that can match nothing must not fill the text with placeholders
		}
		if r.accept == nil {
			spans = append(spans, [2]int{loc[0], loc[1]})
			continue
		}
		spans = append(spans, r.accept(s, loc)...)
	}
	if len(spans) == 0 {
		return s, 0
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(s[last:sp[0]])
		b.WriteString(Placeholder(r.Name))
		last = sp[1]
	}
	b.WriteString(s[last:])
	return b.String(), len(spans)
}

// acceptCard finds, inside a run of separated digits, the spans of 13-19 digits that pass the
// Luhn check. Spans start and end on digit-group boundaries so that a card number is not found
// inside a longer number; the longest valid span at each start wins.
func acceptCard(s string, loc []int) [][2]int {
	// A run glued to letters ("cc4111...") is still masked: a missed card costs more than a
	// masked order number, and the Luhn check already rejects nine in ten random numbers.
	run := s[loc[0]:loc[1]]
	type digit struct {
		pos        int  // byte offset in s
		groupStart bool // first digit of a group
		groupEnd   bool // last digit of a group
	}
	var ds []digit
	for i := 0; i < len(run); i++ {
		if run[i] < '0' || run[i] > '9' {
			continue
		}
		start := i == 0 || run[i-1] < '0' || run[i-1] > '9'
		end := i == len(run)-1 || run[i+1] < '0' || run[i+1] > '9'
		ds = append(ds, digit{pos: loc[0] + i, groupStart: start, groupEnd: end})
	}
	var spans [][2]int
	for i := 0; i < len(ds); {
		if !ds[i].groupStart {
			i++
			continue
		}
		found := false
		for n := min(19, len(ds)-i); n >= 13; n-- {
			j := i + n - 1
			if !ds[j].groupEnd {
				continue
			}
			if luhn(s, ds[i:j+1], func(d digit) int { return d.pos }) {
				spans = append(spans, [2]int{ds[i].pos, ds[j].pos + 1})
				i = j + 1
				found = true
				break
			}
		}
		if !found {
			i++
		}
	}
	return spans
}

func luhn[T any](s string, ds []T, pos func(T) int) bool {
	sum := 0
	double := false
	for k := len(ds) - 1; k >= 0; k-- {
		d := int(s[pos(ds[k])] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// Luhn reports whether a string of digits passes the Luhn check (non-digits are ignored).
func Luhn(number string) bool {
	var idx []int
	for i := 0; i < len(number); i++ {
		if number[i] >= '0' && number[i] <= '9' {
			idx = append(idx, i)
		}
	}
	return len(idx) > 0 && luhn(number, idx, func(i int) int { return i })
}

// acceptSSN rejects numbers the SSA never issues (area 000, 666, 900-999; group 00; serial 0000)
// and mixed separators.
func acceptSSN(s string, loc []int) [][2]int {
	area, sep1, group, sep2, serial := s[loc[2]:loc[3]], s[loc[4]:loc[5]], s[loc[6]:loc[7]], s[loc[8]:loc[9]], s[loc[10]:loc[11]]
	if sep1 != sep2 || area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return nil
	}
	return [][2]int{{loc[0], loc[1]}}
}

// acceptSSNKeyword masks only the digits after "SSN:", keeping the keyword for context.
func acceptSSNKeyword(s string, loc []int) [][2]int {
	return [][2]int{{loc[2], loc[3]}}
}
