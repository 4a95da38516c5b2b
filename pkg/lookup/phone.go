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
// "+1 (415) 555-0100" or a national "415-555-0100". It is reduced to one E.164 number. Every
// number that is *possible* for its country (a country code that exists and a plausible length)
// is looked up, whether or not the library's metadata calls it valid: the metadata lags real
// allocations, and test instances are full of 555 and drama-range numbers. Only what is not a
// phone number at all (letters, a withheld caller, a URI without digits, a local number
// without its area code) is refused.
//
// ServiceNow's phone and mobile_phone are free text ("(415) 555-0100", "+1 415 555 0100",
// "0207 946 0958", "07911 123 456"), so a LIKE on the whole number misses most stored values.
// The query instead asks for short trailing pieces of the number's digit groups as its country
// writes them: the last three digits of each group, long groups split first ("123456" as
// "123 456"), last group first, until about eight digits are covered ("100", "555" and "415"
// for +1 415-555-0100; "958", "946" and "20" for +44 20 7946 0958). Each piece is a separate
// LIKE, and pieces that short stay contiguous however people space a number, with or without
// the trunk prefix or the country code. That finds a superset; every candidate's stored numbers
// are then parsed and compared exactly (country code and national significant number), so a
// partial match is never reported. Only digits ever reach the query.

var (
	// ErrWithheld is a number the caller withheld (anonymous, restricted, private...).
	ErrWithheld = errors.New("lookup: withheld number")
	// ErrInvalidNumber is anything that is not a possible phone number.
	ErrInvalidNumber = errors.New("lookup: not a phone number")
)

// withheldNames are what carriers and Genesys put in place of a withheld calling number; ""
// is a URI with nothing in it ("tel:", "sip:@host").
var withheldNames = map[string]bool{
	"anonymous": true, "restricted": true, "private": true, "withheld": true, "unavailable": true,
	"unknown": true, "blocked": true, "unknown caller": true, "no caller id": true, "": true,
}

// Number is a caller's number.
type Number struct {
	E164        string // "+14155550100"
	CountryCode int
	National    string // national significant number, "4155550100"
	Region      string // the number's region, e.g. "US" (the country's main region when the metadata does not know the number)
	// Listed is whether the library's metadata knows the number as valid; unlisted numbers are
	// looked up all the same.
	Listed bool
	// Groups are the digit pieces the query matches on, last first.
	Groups []servicenow.Digits
}

// groupDigits is how many digits the query's pieces cover together at least (when the number
// has that many): fewer would make the candidate set needlessly large for a big sys_user table.
const groupDigits = 8

// pieceDigits is the length of one piece: the last three digits of a group stay together
// however a person spaces the number ("0207 946 0958" keeps "946" and "958" of 20 7946 0958).
const pieceDigits = 3

// Phones reads numbers for one default region.
type Phones struct{ Region string }

// Parse normalises an ANI to a possible number. It returns ErrWithheld for a withheld number and
// ErrInvalidNumber for anything else that is not a phone number, including every string with a
// letter, a Unicode digit or an encoded-query metacharacter in it.
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
	if err != nil || !possible(num) {
		return Number{}, ErrInvalidNumber
	}
	n := Number{
		E164:        phonenumbers.Format(num, phonenumbers.E164),
		CountryCode: int(num.GetCountryCode()),
		National:    phonenumbers.GetNationalSignificantNumber(num),
		Region:      phonenumbers.GetRegionCodeForNumber(num),
		Listed:      phonenumbers.IsValidNumber(num),
	}
	// The E.164 form must read back as itself: for degenerate input ("+91 0000000000") the
	// library strips a trunk prefix again on every reading, and such a number matches nothing
	// stable.
	if again, err := phonenumbers.Parse(n.E164, p.Region); err != nil || phonenumbers.Format(again, phonenumbers.E164) != n.E164 || !possible(again) {
		return Number{}, ErrInvalidNumber
	}
	if n.Region == "" { // not in the metadata: read stored numbers as its country writes them
		n.Region = phonenumbers.GetRegionCodeForCountryCode(n.CountryCode)
	}
	n.Groups = groups(phonenumbers.Format(num, phonenumbers.INTERNATIONAL))
	if len(n.Groups) == 0 {
		return Number{}, ErrInvalidNumber
	}
	return n, nil
}

// possible reports whether num has a known country code and a length that country's numbers
// can have. A number that is possible only locally (a US number without its area code) is
// not: it cannot be written in E.164.
func possible(num *phonenumbers.PhoneNumber) bool {
	return phonenumbers.IsPossibleNumberWithReason(num) == phonenumbers.IS_POSSIBLE
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

// groups turns "+1 415-555-0100" into [100 555 415]: the digit groups after the country code,
// long ones split as people split them, last first, each cut to its last pieceDigits digits,
// until they cover groupDigits.
func groups(international string) []servicenow.Digits {
	runs := strings.FieldsFunc(international, func(r rune) bool { return r < '0' || r > '9' })
	if len(runs) < 2 {
		return nil
	}
	var split []string
	for _, g := range runs[1:] { // the country code is rarely typed
		split = append(split, splitLong(g)...)
	}
	var out []servicenow.Digits
	total := 0
	for i := len(split) - 1; i >= 0 && total < groupDigits; i-- {
		g := split[i]
		if len(g) > pieceDigits {
			g = g[len(g)-pieceDigits:]
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

// splitLong splits a group of six or more digits the way people write long numbers: in threes
// and fours from the end ("123456" as 123 456, "1234567" as 123 4567, "5555550100" as
// 555 555 0100), for numbers the metadata has no format for.
func splitLong(g string) []string {
	var out []string
	for len(g) > 5 {
		n := 4
		if len(g)%3 == 0 {
			n = 3
		}
		out = append([]string{g[len(g)-n:]}, out...)
		g = g[:len(g)-n]
	}
	return append([]string{g}, out...)
}

// Same reports whether stored (a free-text phone field) is the number n. It is read in the
// default region; only when that gives no possible number is it read in the number's own
// region, so "(415) 555-0100" and "020 7946 0958" (stored without a country code) match
// +14155550100 and +442079460958, while "(207) 946-0958" stays a US number for a US default
// region.
func (p Phones) Same(n Number, stored string) bool {
	stored = strings.TrimSpace(stored)
	if stored == "" || n.E164 == "" {
		return false
	}
	for _, region := range []string{p.Region, n.Region} {
		num, err := phonenumbers.Parse(stored, region)
		if err != nil || !possible(num) {
			continue
		}
		return int(num.GetCountryCode()) == n.CountryCode && phonenumbers.GetNationalSignificantNumber(num) == n.National
	}
	return false
}
