// Package mask removes personal and payment data from free text before it leaves for Jira or
// ServiceNow, and (with the log rules) before it reaches a log line.
//
// What people type and what transcripts record is messy, so every rule reads a normalised view
// of the text (normalize.go): Unicode digits as ASCII, every space and dash alike, invisible
// characters gone, spoken number words as digits. What the rules find there is mapped back and
// replaced in the original text by [MASKED:<name>]. The egress rules (scan.go) find:
//
//   - card numbers: 13-19 digits with up to three separators between digits, from a card
//     issuer's range and passing the Luhn check ("card"), with an expiry date ("expiry") and a
//     security code ("cvv") read out right after them;
//   - card security codes after their keyword: CVV, CVC, CVV2, CVC2, CV2, CID, CSC, CVN, CVD,
//     "security code", "card verification value" ("cvv");
//   - IBANs, printed or electronic, with the country's length and valid check digits ("iban");
//   - US social security numbers, 123-45-6789 or nine digits after "SSN" ("ssn");
//   - the seed's 1234-5678-9012 account numbers ("account");
//
// and nothing else: order numbers, phone numbers, dates and times, ServiceNow sys_ids and
// Genesys conversation ids stay readable. Configured extra patterns (MASK_EXTRA_PATTERNS) are
// matched against the same normalised view.
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
	// hint, when set, is a cheap test that re cannot match without
	hint func(norm string) bool
	// scan, when set, replaces re: it adds spans (with their own names) to the finder
	scan func(f *finder)
}

// Masker applies a set of rules.
type Masker struct {
	rules []Rule
}

// Placeholder is what a masked span becomes.
func Placeholder(name string) string { return "[MASKED:" + name + "]" }

// What must not reach a log line although it may go to a ticket.
var (
	emailRe  = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}`)
	phoneRe  = regexp.MustCompile(`(?:\+|\b00)[1-9]\d{6,14}\b|(?i:tel:|sip:)\+?[\w.\-@;=]+`)
	bearerRe = regexp.MustCompile(`(?i)\b(?:bearer|basic)\s+[a-z0-9._~+/\-]+=*`)
	jwtRe    = regexp.MustCompile(`\beyJ[a-zA-Z0-9_\-]+\.[a-zA-Z0-9_\-]+\.[a-zA-Z0-9_\-]*`)
)

// EgressRules are applied to every free-text field sent to Jira or ServiceNow.
func EgressRules() []Rule {
	return []Rule{{Name: "builtin", scan: scanBuiltin}}
}

// LogRules add what must not reach a log line even though it may go to a ticket: e-mail
// addresses, phone numbers and credentials.
func LogRules() []Rule {
	return append([]Rule{
		{Name: "token", re: bearerRe, hint: func(n string) bool { return containsFold(n, "bearer") || containsFold(n, "basic") }},
		{Name: "token", re: jwtRe, hint: func(n string) bool { return strings.Contains(n, "eyJ") }},
		{Name: "email", re: emailRe, hint: func(n string) bool { return strings.IndexByte(n, '@') >= 0 }},
		{Name: "phone", re: phoneRe, hint: func(n string) bool { return strings.ContainsAny(n, "+:") || strings.Contains(n, "00") }},
	}, EgressRules()...)
}

// containsFold reports whether s contains the lower-case ASCII word w in any case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i]|0x20 != w[0] {
			continue
		}
		k := 1
		for k < len(w) && s[i+k]|0x20 == w[k] {
			k++
		}
		if k == len(w) {
			return true
		}
	}
	return false
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

// maxPasses bounds String's passes over a text (see there).
const maxPasses = 3

// String masks s and reports how many spans were replaced.
//
// A detector that needs a boundary after its match sees one only once what followed it is
// masked: "GB82WEST123456987654 32DE89370400440532013000" holds two IBANs, and the first ends
// where the second begins. So a text in which anything was masked is masked again, until a
// pass finds nothing: masking what String returns changes nothing. Clean text costs one pass.
func (m *Masker) String(s string) (string, int) {
	out, total := m.pass(s)
	for n, k := total, 1; n > 0 && k < maxPasses; k++ {
		out, n = m.pass(out)
		total += n
	}
	return out, total
}

// pass masks what the rules find in s once.
func (m *Masker) pass(s string) (string, int) {
	if s == "" {
		return s, 0
	}
	v := normalise(s)
	f := finder{n: v.norm}
	for i, r := range m.rules {
		f.prio = i
		switch {
		case r.scan != nil:
			r.scan(&f)
		case r.hint != nil && !r.hint(v.norm):
		default:
			for _, loc := range r.re.FindAllStringIndex(v.norm, -1) {
				if loc[0] < loc[1] { // a pattern that can match nothing must not scatter placeholders
					f.add(loc[0], loc[1], r.Name)
				}
			}
		}
	}
	if len(f.spans) == 0 {
		return s, 0
	}
	spans := f.spans
	for k := range spans {
		spans[k].start, spans[k].end = v.start(spans[k].start), v.end(spans[k].end)
	}
	// Overlapping spans become one placeholder, named by the one that starts first (on a tie,
	// the earlier rule).
	sort.Slice(spans, func(a, b int) bool {
		if spans[a].start != spans[b].start {
			return spans[a].start < spans[b].start
		}
		if spans[a].prio != spans[b].prio {
			return spans[a].prio < spans[b].prio
		}
		return spans[a].end > spans[b].end
	})
	var b strings.Builder
	b.Grow(len(s))
	last, count := 0, 0
	for k := 0; k < len(spans); {
		sp := spans[k]
		end := sp.end
		for k++; k < len(spans) && spans[k].start < end; k++ {
			end = max(end, spans[k].end)
		}
		b.WriteString(s[last:sp.start])
		b.WriteString(Placeholder(sp.name))
		last = end
		count++
	}
	b.WriteString(s[last:])
	return b.String(), count
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

// Luhn reports whether a string of digits passes the Luhn check (non-digits are ignored).
func Luhn(number string) bool {
	var idx []int
	for i := 0; i < len(number); i++ {
		if isDigit(number[i]) {
			idx = append(idx, i)
		}
	}
	return len(idx) > 0 && luhnAt(number, idx)
}
