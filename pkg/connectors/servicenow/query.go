package servicenow

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Encoded queries are a security boundary.
//
// ServiceNow silently ignores any part of an encoded query it cannot parse (an unknown field, an
// unknown operator) and answers from what is left, unless the instance has
// glide.invalid_query.returns_no_rows=true (reference/api-contracts.md section 2.2, ServiceNow
// docs c_TableAPI.md). So a caller-controlled "^", "^OR", "^NQ", "ORDERBY", "=" or a term the
// parser rejects can widen a query from "this caller" to "every user". This file makes that
// impossible by construction:
//
//   - Field names are lowercase identifiers with optional dot-walks (caller_id.phone). Operator
//     keywords are uppercase, so no field name can carry one, and "^", "=" and the rest never
//     pass the check.
//   - Values are one of a few sealed types, each validated when it is made: Digits (only ASCII
//     0-9), SysID (32 lowercase hex), Token (a configured pattern over a small safe alphabet, or
//     an idempotency key), Bool and Int. There is no way to put a raw string into a query.
//   - Every value is checked once more when the query is encoded, and the builder refuses with
//     an error (ErrInvalidQuery) rather than escaping or dropping anything.

// ErrInvalidQuery is wrapped by every error the builder and the value constructors return.
var ErrInvalidQuery = errors.New("servicenow: invalid encoded query")

// QueryError says which part of a query was refused. It never contains the refused value, which
// may be personal data (a phone number) or an attack string.
type QueryError struct {
	Field  string // the field, when the problem is tied to one
	Reason string
}

func (e *QueryError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("servicenow: invalid encoded query: %s: %s", e.Field, e.Reason)
	}
	return "servicenow: invalid encoded query: " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidQuery) true.
func (e *QueryError) Is(target error) bool { return target == ErrInvalidQuery }

func invalid(field, format string, args ...any) error {
	return &QueryError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Field is a column name, optionally dot-walked through reference fields (caller_id.phone).
// Field names come from code (see the Field* constants); anything that is not a lowercase
// identifier path is refused when the query is encoded.
type Field string

// Table is a table name (sys_user, incident, u_custom).
type Table string

var (
	identRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,79}$`)
	fieldRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,79}(\.[a-z][a-z0-9_]{0,79}){0,3}$`)
)

func (f Field) check() error {
	if !fieldRe.MatchString(string(f)) {
		return invalid("", "field name is not a lowercase identifier path")
	}
	return nil
}

func (t Table) check() error {
	if !identRe.MatchString(string(t)) {
		return invalid("", "table name is not a lowercase identifier")
	}
	return nil
}

// Value is something that may appear on the right of an operator. Only this package's types
// implement it: Digits, SysID, Token, Bool and Int.
type Value interface {
	queryValue() (string, error)
}

// Digits holds one or more ASCII digits and nothing else, e.g. a fragment of a phone number
// to match against ServiceNow's free-text phone fields. The zero Digits is empty and is
// refused by the builder (an empty LIKE would match every row).
type Digits struct{ s string }

// MaxDigits bounds a Digits value.
const MaxDigits = 32

// ParseDigits accepts 1 to MaxDigits ASCII digits and nothing else: no sign, no spaces, no
// Unicode digits (fullwidth, Arabic-Indic, superscript).
func ParseDigits(s string) (Digits, error) {
	if s == "" {
		return Digits{}, invalid("", "digits: empty")
	}
	if len(s) > MaxDigits {
		return Digits{}, invalid("", "digits: longer than %d", MaxDigits)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return Digits{}, invalid("", "digits: character %d is not 0-9", i+1)
		}
	}
	return Digits{s}, nil
}

// PhoneDigits reads a phone number as Genesys or a person writes it ("tel:+1 (415) 555-0100",
// "+44 20 7946 0958") and keeps its digits. It removes only a leading "tel:" and the usual
// separators (+ space - . ( ) /); any other character, a letter, "^", "=", a Unicode digit or
// space, is refused rather than dropped, so an attack string never turns into a match.
// At least 4 digits are required.
func PhoneDigits(raw string) (Digits, error) {
	s := raw
	if len(s) >= 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' || c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/':
		default:
			return Digits{}, invalid("", "phone number: character at byte %d is not a digit or separator", i+1)
		}
	}
	if b.Len() < 4 {
		return Digits{}, invalid("", "phone number: fewer than 4 digits")
	}
	return ParseDigits(b.String())
}

// String returns the digits.
func (d Digits) String() string { return d.s }

// Len is the number of digits.
func (d Digits) Len() int { return len(d.s) }

// Last returns the last n digits (all of them when there are fewer), e.g. the national
// significant number without a country code.
func (d Digits) Last(n int) Digits {
	if n <= 0 {
		return Digits{}
	}
	if n >= len(d.s) {
		return d
	}
	return Digits{d.s[len(d.s)-n:]}
}

func (d Digits) queryValue() (string, error) {
	if d.s == "" {
		return "", invalid("", "empty digits value")
	}
	return d.s, nil
}

// SysID is a ServiceNow record id: 32 lowercase hexadecimal characters.
type SysID struct{ s string }

// ParseSysID accepts exactly 32 characters of 0-9 a-f.
func ParseSysID(s string) (SysID, error) {
	if len(s) != 32 {
		return SysID{}, invalid("", "sys_id: not 32 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return SysID{}, invalid("", "sys_id: character %d is not lowercase hex", i+1)
		}
	}
	return SysID{s}, nil
}

// MustSysID is ParseSysID for constants in code and tests; it panics on a bad id.
func MustSysID(s string) SysID {
	id, err := ParseSysID(s)
	if err != nil {
		panic(err)
	}
	return id
}

// String returns the id ("" for the zero SysID).
func (id SysID) String() string { return id.s }

// IsZero reports whether id is unset.
func (id SysID) IsZero() bool { return id.s == "" }

// MarshalJSON writes the id as a JSON string ("" when unset), for request bodies.
func (id SysID) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(id.s)), nil }

func (id SysID) queryValue() (string, error) {
	if id.s == "" {
		return "", invalid("", "empty sys_id value")
	}
	return id.s, nil
}

// Token is a short identifier from outside (an employee number, an idempotency key) that has
// been checked against a pattern and a safe alphabet: ASCII letters, digits, "_", "-" and ".".
// Tokens also never contain encoded-query keywords (LIKE, STARTSWITH, ENDSWITH, ORDERBY, NQ,
// ISEMPTY, ISNOTEMPTY, ANYTHING, SAMEAS, BETWEEN, DYNAMIC, EMPTYSTRING, NOT) or "javascript",
// whatever the pattern allows.
type Token struct{ s string }

// MaxToken bounds a Token (correlation_id holds 100 characters).
const MaxToken = 100

var tokenKeywords = []string{"LIKE", "STARTSWITH", "ENDSWITH", "ORDERBY", "NQ", "ISEMPTY", "ISNOTEMPTY",
	"ANYTHING", "SAMEAS", "BETWEEN", "DYNAMIC", "EMPTYSTRING", "NOT"}

func checkToken(s string) error {
	if s == "" {
		return invalid("", "token: empty")
	}
	if len(s) > MaxToken {
		return invalid("", "token: longer than %d", MaxToken)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-' || c == '.') {
			return invalid("", "token: character %d is not a letter, digit, _, - or .", i+1)
		}
	}
	for _, k := range tokenKeywords {
		if strings.Contains(s, k) {
			return invalid("", "token: contains the encoded-query keyword %s", k)
		}
	}
	if strings.Contains(strings.ToLower(s), "javascript") {
		return invalid("", "token: contains javascript")
	}
	return nil
}

// ParseKey accepts an idempotency key or similar code-made identifier for fields such as
// correlation_id: 1-100 characters of the Token alphabet.
func ParseKey(s string) (Token, error) {
	if err := checkToken(s); err != nil {
		return Token{}, err
	}
	return Token{s}, nil
}

// MustKey is ParseKey for constants in code (choice values such as "phone"); it panics on a
// bad key, so never give it input.
func MustKey(s string) Token {
	t, err := ParseKey(s)
	if err != nil {
		panic(err)
	}
	return t
}

// String returns the token.
func (t Token) String() string { return t.s }

// IsZero reports whether t is unset.
func (t Token) IsZero() bool { return t.s == "" }

// MarshalJSON writes the token as a JSON string.
func (t Token) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(t.s)), nil }

func (t Token) queryValue() (string, error) {
	if t.s == "" {
		return "", invalid("", "empty token value")
	}
	return t.s, nil
}

// TokenPattern validates identifiers such as employee numbers against a configured regular
// expression, e.g. `[A-Z]{2}[0-9]{4,8}` or `[0-9]{5,10}`. The expression is anchored at both
// ends; the Token alphabet and keyword checks apply on top of it, so even a careless pattern
// (".*") cannot let an encoded-query metacharacter through.
type TokenPattern struct{ re *regexp.Regexp }

// NewTokenPattern compiles expr (anchored as ^(?:expr)$).
func NewTokenPattern(expr string) (*TokenPattern, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("servicenow: token pattern is empty")
	}
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, fmt.Errorf("servicenow: token pattern: %w", err)
	}
	return &TokenPattern{re: re}, nil
}

// Parse returns s as a Token when it matches the pattern and the safe alphabet.
func (p *TokenPattern) Parse(s string) (Token, error) {
	if err := checkToken(s); err != nil {
		return Token{}, err
	}
	if p == nil || !p.re.MatchString(s) {
		return Token{}, invalid("", "token: does not match the configured pattern")
	}
	return Token{s}, nil
}

// String is the anchored expression.
func (p *TokenPattern) String() string { return p.re.String() }

// Bool is a true/false value (active=true).
type Bool bool

func (b Bool) queryValue() (string, error) { return strconv.FormatBool(bool(b)), nil }

// Int is an integer value, e.g. a choice code (state=2, impact=1).
type Int int

func (i Int) queryValue() (string, error) { return strconv.Itoa(int(i)), nil }

// Operators.
const (
	opEq         = "="
	opNotEq      = "!="
	opLike       = "LIKE"
	opStartsWith = "STARTSWITH"
	opEndsWith   = "ENDSWITH"
	opIn         = "IN"
)

// Cond is one condition: field, operator, value(s).
type Cond struct {
	field  Field
	op     string
	values []Value
}

// Eq is field=value.
func Eq(f Field, v Value) Cond { return Cond{f, opEq, []Value{v}} }

// NotEq is field!=value.
func NotEq(f Field, v Value) Cond { return Cond{f, opNotEq, []Value{v}} }

// Like is fieldLIKEvalue (contains; string fields).
func Like(f Field, v Value) Cond { return Cond{f, opLike, []Value{v}} }

// StartsWith is fieldSTARTSWITHvalue.
func StartsWith(f Field, v Value) Cond { return Cond{f, opStartsWith, []Value{v}} }

// EndsWith is fieldENDSWITHvalue.
func EndsWith(f Field, v Value) Cond { return Cond{f, opEndsWith, []Value{v}} }

// In is fieldINv1,v2,... (one of).
func In(f Field, vs ...Value) Cond { return Cond{f, opIn, vs} }

// checkEncoded is the last line of defence: whatever a Value type produced, nothing that the
// encoded-query parser treats specially may reach the query string.
func checkEncoded(field, v string, like bool) error {
	if v == "" {
		return invalid(field, "empty value")
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x80 || c <= ' ' || c == 0x7f {
			return invalid(field, "value has a non-ASCII, space or control character")
		}
		switch c {
		case '^', '=', '!', '<', '>', '@', ',', '%', '*', '&', '"', '\'', ':', '\\':
			return invalid(field, "value has the reserved character %q", c)
		case '_':
			// In a LIKE-family operator "_" may act as a SQL single-character wildcard;
			// whether ServiceNow escapes it is not documented, so refuse it there.
			if like {
				return invalid(field, "value for a LIKE/STARTSWITH/ENDSWITH condition has _")
			}
		}
	}
	if strings.Contains(strings.ToLower(v), "javascript") {
		return invalid(field, "value contains javascript")
	}
	return nil
}

func (c Cond) encode() (string, error) {
	if err := c.field.check(); err != nil {
		return "", err
	}
	name := string(c.field)
	if len(c.values) == 0 {
		return "", invalid(name, "%s needs at least one value", c.op)
	}
	if c.op != opIn && len(c.values) != 1 {
		return "", invalid(name, "%s takes one value", c.op)
	}
	like := c.op == opLike || c.op == opStartsWith || c.op == opEndsWith
	parts := make([]string, 0, len(c.values))
	for _, v := range c.values {
		if v == nil {
			return "", invalid(name, "nil value")
		}
		s, err := v.queryValue()
		if err != nil {
			var qe *QueryError
			if errors.As(err, &qe) && qe.Field == "" {
				qe.Field = name
			}
			return "", err
		}
		if err := checkEncoded(name, s, like); err != nil {
			return "", err
		}
		parts = append(parts, s)
	}
	return name + c.op + strings.Join(parts, ","), nil
}

type orderTerm struct {
	field Field
	desc  bool
}

// EncodedQuery builds a sysparm_query. Conditions added with Where are joined with "^" (AND);
// the alternatives given to one Where call are joined with "^OR", which in ServiceNow binds to
// the neighbouring conditions only: Where(a).Where(b, c) is a AND (b OR c). NQ starts a new
// query whose rows are added to the previous one's (OR of whole queries). ORDERBY terms come
// last. Methods record the first error; Encode returns it.
type EncodedQuery struct {
	groups [][][]Cond // NQ groups -> AND terms -> OR alternatives
	order  []orderTerm
}

// NewQuery starts an empty query.
func NewQuery() *EncodedQuery { return &EncodedQuery{groups: [][][]Cond{nil}} }

// Where adds "c" (or "c^ORor[0]^ORor[1]...") with AND to the current query.
func (q *EncodedQuery) Where(c Cond, or ...Cond) *EncodedQuery {
	if len(q.groups) == 0 {
		q.groups = [][][]Cond{nil}
	}
	last := len(q.groups) - 1
	q.groups[last] = append(q.groups[last], append([]Cond{c}, or...))
	return q
}

// NQ starts a new query (^NQ): a row matches when it matches any of the queries.
func (q *EncodedQuery) NQ() *EncodedQuery {
	if len(q.groups) == 0 {
		q.groups = [][][]Cond{nil}
	}
	q.groups = append(q.groups, nil)
	return q
}

// OrderBy sorts ascending by f.
func (q *EncodedQuery) OrderBy(f Field) *EncodedQuery {
	q.order = append(q.order, orderTerm{f, false})
	return q
}

// OrderByDesc sorts descending by f.
func (q *EncodedQuery) OrderByDesc(f Field) *EncodedQuery {
	q.order = append(q.order, orderTerm{f, true})
	return q
}

// Encode returns the sysparm_query string, or an error wrapping ErrInvalidQuery. Every query
// (every ^NQ part) must have at least one condition: a query made only of ORDERBY terms would
// return the whole table.
func (q *EncodedQuery) Encode() (string, error) {
	if q == nil {
		return "", invalid("", "no query")
	}
	if len(q.groups) == 0 {
		return "", invalid("", "query has no condition")
	}
	var parts []string
	for gi, g := range q.groups {
		if len(g) == 0 {
			return "", invalid("", "query part %d has no condition", gi+1)
		}
		var terms []string
		for _, alts := range g {
			var enc []string
			for _, c := range alts {
				s, err := c.encode()
				if err != nil {
					return "", err
				}
				enc = append(enc, s)
			}
			terms = append(terms, strings.Join(enc, "^OR"))
		}
		parts = append(parts, strings.Join(terms, "^"))
	}
	s := strings.Join(parts, "^NQ")
	for _, o := range q.order {
		if err := o.field.check(); err != nil {
			return "", err
		}
		if o.desc {
			s += "^ORDERBYDESC" + string(o.field)
		} else {
			s += "^ORDERBY" + string(o.field)
		}
	}
	return s, nil
}

// String is the encoded query, or a description of why it is invalid; for tests. The query
// may hold personal data (phone digits), so do not log it.
func (q *EncodedQuery) String() string {
	s, err := q.Encode()
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return s
}

func encodeFields(fs []Field) (string, error) {
	parts := make([]string, 0, len(fs))
	for _, f := range fs {
		if err := f.check(); err != nil {
			return "", err
		}
		parts = append(parts, string(f))
	}
	return strings.Join(parts, ","), nil
}
