package lookup

import (
	"errors"
	"strings"
	"testing"
)

func groupStrings(n Number) string {
	var parts []string
	for _, g := range n.Groups {
		parts = append(parts, g.String())
	}
	return strings.Join(parts, ",")
}

func TestParseNormalisesANIs(t *testing.T) {
	us := Phones{Region: "US"}
	cases := []struct {
		ani, e164, national, groups string
	}{
		{"+14155550100", "+14155550100", "4155550100", "0100,555"},
		{"tel:+14155550100", "+14155550100", "4155550100", "0100,555"},
		{"TEL:+1-415-555-0100", "+14155550100", "4155550100", "0100,555"},
		{"tel:4155550100;phone-context=+1", "+14155550100", "4155550100", "0100,555"},
		{"sip:+14155550100@carrier.example.com;user=phone", "+14155550100", "4155550100", "0100,555"},
		{"sip:%2B14155550100@10.0.0.1", "+14155550100", "4155550100", "0100,555"},
		{"sips:+442079460958@sbc.example;transport=tls", "+442079460958", "2079460958", "0958,7946"},
		{"(415) 555-0100", "+14155550100", "4155550100", "0100,555"}, // national, default region
		{"1 415 555 0100", "+14155550100", "4155550100", "0100,555"},
		{"011 44 20 7946 0958", "+442079460958", "2079460958", "0958,7946"}, // US international prefix
		{"+33 1 23 45 67 89", "+33123456789", "123456789", "89,67,45"},
		{"+49 30 1234567", "+49301234567", "301234567", "4567,30"},
		{"+44 7911 123456", "+447911123456", "7911123456", "3456,7911"},
	}
	for _, c := range cases {
		n, err := us.Parse(c.ani)
		if err != nil {
			t.Errorf("%q: %v", c.ani, err)
			continue
		}
		if n.E164 != c.e164 || n.National != c.national || groupStrings(n) != c.groups {
			t.Errorf("%q: %s %s [%s]; want %s %s [%s]", c.ani, n.E164, n.National, groupStrings(n), c.e164, c.national, c.groups)
		}
	}
	// The default region decides how a national number reads.
	if n, err := (Phones{Region: "GB"}).Parse("020 7946 0958"); err != nil || n.E164 != "+442079460958" {
		t.Errorf("GB national: %+v %v", n, err)
	}
}

func TestParseRecognisesWithheldNumbers(t *testing.T) {
	for _, ani := range []string{"anonymous", "Anonymous", "tel:anonymous", "sip:anonymous@anonymous.invalid", "Restricted", "PRIVATE", "withheld", "unavailable", "tel:", "sip:@host", "Unknown"} {
		if _, err := (Phones{Region: "US"}).Parse(ani); !errors.Is(err, ErrWithheld) {
			t.Errorf("%q: %v, want withheld", ani, err)
		}
	}
}

// Parsing is not validation: phonenumbers reads many strings as numbers that are not valid
// numbers, and letters as keypad digits. None of these may be looked up.
func TestParseRefusesWhatIsNotAValidNumber(t *testing.T) {
	for _, ani := range []string{
		"+1 415 555 0100^ORactive=true",    // encoded-query injection
		"4155550100^NQactive=true",         // new query
		"+14155550100ORDERBYsys_id",        // ORDERBY
		"+1415LIKE5550100",                 // operator keyword
		"1-800-FLOWERS",                    // vanity letters
		"+1 415 555 0100 ext. 12",          // extensions are not ANIs
		"＋１４１５５５５０１００",                     // fullwidth digits
		"+1 415 555 01OO",                  // letter O for zero
		"+1 555 555 0100",                  // 555 area code: parseable, not valid
		"+1 415 555",                       // too short
		"+999 1234567",                     // no such country
		"12",                               // short code
		"+14155550100@evil",                // not a URI, so @ is junk
		"sip:+14155550100^ORactive=true@x", // injection inside a URI
		"tel:%ZZ",                          // bad escape
		"+1 (415) 555-0100; DROP TABLE",    // junk after the number
	} {
		if n, err := (Phones{Region: "US"}).Parse(ani); !errors.Is(err, ErrInvalidNumber) {
			t.Errorf("%q: got %+v, %v; want invalid", ani, n, err)
		}
	}
}

func TestSameComparesStoredFreeText(t *testing.T) {
	us := Phones{Region: "US"}
	n, err := us.Parse("+14155550100")
	if err != nil {
		t.Fatal(err)
	}
	for _, stored := range []string{"(415) 555-0100", "+1 415 555 0100", "415.555.0100", "1-415-555-0100", "+14155550100", "415-555-0100 x123", "  4155550100  "} {
		if !us.Same(n, stored) {
			t.Errorf("%q should match", stored)
		}
	}
	for _, stored := range []string{"", "(415) 555-0101", "+44 415 555 0100", "555-0100", "4155550100555", "n/a"} {
		if us.Same(n, stored) {
			t.Errorf("%q must not match", stored)
		}
	}
	// A number stored without country code in the caller's own country format.
	uk, _ := us.Parse("+442079460958")
	if !us.Same(uk, "020 7946 0958") || !us.Same(uk, "+44 (0)20 7946 0958") || us.Same(uk, "(207) 946-0958") {
		t.Error("UK number stored in national or international format must match, a US number with the same digits must not")
	}
}
