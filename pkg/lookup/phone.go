package lookup

import (
	"errors"
	"net/url"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
)

// Phone numbers.
//
// An ANI arrives as Genesys shows it: "tel:+14155550100", "sip:+14155550100@carrier;user=phone",
// "+1 (415) 555-0100" or a national "415-555-0100". It is reduced to one E.164 number, and only
// a number that is valid for its region (metadata check, not just parseable) is looked up.
//
// ServiceNow's phone and mobile_phone are free text ("(415) 555-0100", "+1 415 555 0100",
// "415.555.0100"), so a LIKE on the whole number misses most stored values. The query instead
// asks for the trailing digit groups of the number as its own country writes them (from the
// international format: "0100" and "555" for +1 415-555-0100, "89", "67" and "45" for
// +33 1 23 45 67 89), each as a separate LIKE: those groups stay contiguous in nearly every way
// people type a number. That finds a superset; every candidate's stored numbers are then parsed
// and compared exactly (country code and national significant number), so a partial match is
// never reported. Only digits ever reach the query.

var (
	// ErrWithheld is a number the caller withheld (anonymous, restricted, private...).
	ErrWithheld = errors.New("lookup: withheld number")
	// ErrInvalidNumber is anything that is not a valid phone number.
	ErrInvalidNumber = errors.New("lookup: not a valid phone number")
)

// withheldNames are what carriers and Genesys put in place of a withheld calling number; ""
// is a URI with nothing in it ("tel:", "sip:@host").
var withheldNames = map[string]bool{
	"anonymous": true, "restricted": true, "private": true, "withheld": true, "unavailable": true,
	"unknown": true, "blocked": true, "unknown caller": true, "no caller id": true, "": true,
}

// Number is a caller's validated number.
type Number struct {
	E164        string // "+14155550100"
	CountryCode int
	National    string // national significant number, "4155550100"
	Region      string // the number's region, e.g. "US"
	// Groups are the digit groups the query matches on, last group first.
	Groups []servicenow.Digits
}

// minGroupDigits is how many digits the query's groups cover together at least (when the
// number has that many): fewer would make the candidate set needlessly large.
const minGroupDigits = 6

// maxGroupDigits caps one group: a long group ("1234567") is often typed split.
const maxGroupDigits = 4

// Phones reads numbers for one default region.
type Phones struct{ Region string }

// Parse normalises an ANI to a valid number. It returns ErrWithheld for a withheld number and
// ErrInvalidNumber for anything else that is not a valid phone number, including every string
// with a letter, a Unicode digit or an encoded-query metacharacter in it.
func (p Phones) Parse(ani string) (Number, error) {
	s, err := numberPart(ani)
	if err != nil {
		return Number{}, err
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case c == '+' && i == 0:
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/':
		default:
			// phonenumbers would happily read letters as keypad digits or skip other junk;
			// an ANI has neither.
			return Number{}, ErrInvalidNumber
		}
	}
	num, err := phonenumbers.Parse(s, p.Region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return Number{}, ErrInvalidNumber
	}
	n := Number{
		E164:        phonenumbers.Format(num, phonenumbers.E164),
		CountryCode: int(num.GetCountryCode()),
		National:    phonenumbers.GetNationalSignificantNumber(num),
		Region:      phonenumbers.GetRegionCodeForNumber(num),
	}
	n.Groups = groups(phonenumbers.Format(num, phonenumbers.INTERNATIONAL))
	if len(n.Groups) == 0 {
		return Number{}, ErrInvalidNumber
	}
	return n, nil
}

// numberPart strips a tel:/sip:/sips: URI down to its number and recognises withheld numbers.
func numberPart(ani string) (string, error) {
	s := strings.TrimSpace(ani)
	lower := strings.ToLower(s)
	uri := false
	for _, scheme := range []string{"tel:", "sip:", "sips:"} {
		if strings.HasPrefix(lower, scheme) {
			s, uri = s[len(scheme):], true
			break
		}
	}
	var params string
	if uri {
		if at := strings.IndexByte(s, '@'); at >= 0 {
			s = s[:at] // sip:<user>@host
		}
		if semi := strings.IndexByte(s, ';'); semi >= 0 {
			s, params = s[:semi], s[semi+1:]
		}
		u, err := url.PathUnescape(s) // sip:%2B1415...@host
		if err != nil {
			return "", ErrInvalidNumber
		}
		s = u
	}
	if withheldNames[strings.ToLower(strings.TrimSpace(s))] {
		return "", ErrWithheld
	}
	// A local tel: number carries its context: tel:4155550100;phone-context=+1 (RFC 3966).
	for _, kv := range strings.Split(params, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.EqualFold(k, "phone-context") && strings.HasPrefix(v, "+") && !strings.HasPrefix(s, "+") {
			s = v + s
		}
	}
	return strings.TrimSpace(s), nil
}

// groups turns "+1 415-555-0100" into [0100 555]: the digit runs after the country code, last
// first, each capped at maxGroupDigits trailing digits, until they cover minGroupDigits.
func groups(international string) []servicenow.Digits {
	runs := strings.FieldsFunc(international, func(r rune) bool { return r < '0' || r > '9' })
	if len(runs) < 2 {
		return nil
	}
	runs = runs[1:] // the country code is rarely typed
	var out []servicenow.Digits
	total := 0
	for i := len(runs) - 1; i >= 0 && total < minGroupDigits; i-- {
		g := runs[i]
		if len(g) > maxGroupDigits {
			g = g[len(g)-maxGroupDigits:]
		}
		d, err := servicenow.ParseDigits(g)
		if err != nil {
			return nil
		}
		out = append(out, d)
		total += len(g)
	}
	return out
}

// Same reports whether stored (a free-text phone field) is the number n. It is read in the
// default region; only when that gives no valid number is it read in the number's own region,
// so "(415) 555-0100" and "020 7946 0958" (stored without a country code) match +14155550100
// and +442079460958, while "(207) 946-0958" stays a US number for a US default region.
func (p Phones) Same(n Number, stored string) bool {
	stored = strings.TrimSpace(stored)
	if stored == "" || n.E164 == "" {
		return false
	}
	for _, region := range []string{p.Region, n.Region} {
		num, err := phonenumbers.Parse(stored, region)
		if err != nil || !phonenumbers.IsValidNumber(num) {
			continue
		}
		return int(num.GetCountryCode()) == n.CountryCode && phonenumbers.GetNationalSignificantNumber(num) == n.National
	}
	return false
}
