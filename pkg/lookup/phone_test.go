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
		{"+14155550100", "+14155550100", "4155550100", "100,555,415"},
		{"tel:+14155550100", "+14155550100", "4155550100", "100,555,415"},
		{"TEL:+1-415-555-0100", "+14155550100", "4155550100", "100,555,415"},
		{"tel:4155550100;phone-context=+1", "+14155550100", "4155550100", "100,555,415"},
		{"sip:+14155550100@carrier.example.com;user=phone", "+14155550100", "4155550100", "100,555,415"},
		{"sip:%2B14155550100@10.0.0.1", "+14155550100", "4155550100", "100,555,415"},
		{"sips:+442079460958@sbc.example;transport=tls", "+442079460958", "2079460958", "958,946,20"},
		{"(415) 555-0100", "+14155550100", "4155550100", "100,555,415"}, // national, default region
		{"1 415 555 0100", "+14155550100", "4155550100", "100,555,415"},
		{"011 44 20 7946 0958", "+442079460958", "2079460958", "958,946,20"}, // US international prefix
		{"+33 1 23 45 67 89", "+33123456789", "123456789", "89,67,45,23"},
		{"+49 30 1234567", "+49301234567", "301234567", "567,123,30"},
		{"+44 7911 123456", "+447911123456", "7911123456", "456,123,911"}, // "123456" is often typed "123 456"
		// Possible numbers the metadata does not list are looked up all the same.
		{"+1 555 555 0100", "+15555550100", "5555550100", "100,555,555"},
		{"(555) 555-0100", "+15555550100", "5555550100", "100,555,555"},
		{"+44 7700 900123", "+447700900123", "7700900123", "123,900,700"}, // Ofcom's drama range
		{"+1 123 456 7890", "+11234567890", "1234567890", "890,456,123"},  // no format in the metadata: split 3-3-4,
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
	if n, err := (Phones{Region: "GB"}).Parse("07700 900123"); err != nil || n.E164 != "+447700900123" || n.Listed || n.Region != "GB" {
		t.Errorf("GB drama number: %+v %v", n, err)
	}
	if n, err := us.Parse("+14155550100"); err != nil || !n.Listed || n.Region != "US" {
		t.Errorf("listed number: %+v %v", n, err)
	}
}

func TestParseRecognisesWithheldNumbers(t *testing.T) {
	for _, ani := range []string{"anonymous", "Anonymous", "tel:anonymous", "sip:anonymous@anonymous.invalid", "Restricted", "PRIVATE", "withheld", "unavailable", "tel:", "sip:@host", "Unknown"} {
		if _, err := (Phones{Region: "US"}).Parse(ani); !errors.Is(err, ErrWithheld) {
			t.Errorf("%q: %v, want withheld", ani, err)
		}
	}
}

// Parsing is not validation: phonenumbers reads many strings as numbers that are not phone
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
		"555 0100",                         // a local number without its area code
		"+1 415 555",                       // too short
		"+999 1234567",                     // no such country
		"12",                               // short code
		"+14155550100@evil",                // not a URI, so @ is junk
		"sip:+14155550100^ORactive=true@x", // injection inside a URI
		"tel:%ZZ",                          // bad escape
		"+1 (415) 555-0100; DROP TABLE",    // junk after the number
		"+910000000000",                    // its E.164 form reads as another number (found by FuzzParse)
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
	// Every way a person types a number into ServiceNow: E.164, national with punctuation,
	// with or without the trunk prefix or the country code, in every default region.
	for _, c := range []struct {
		region, ani string
		stored      []string
	}{
		{"US", "+1 555 555 0100", []string{"(555) 555-0100", "555.555.0100", "5555550100", "+15555550100", "1-555-555-0100", "+1 (555) 555-0100 x12"}},
		{"US", "+44 20 7946 0958", []string{"+44 20 7946 0958", "+44 (0)20 7946 0958", "020 7946 0958", "0207 946 0958", "02079460958", "0044 20 7946 0958", "011 44 20 7946 0958", "44 20 7946 0958"}},
		{"GB", "+44 20 7946 0958", []string{"020 7946 0958", "0207 946 0958", "20 7946 0958", "(020) 7946-0958", "+442079460958"}},
		{"GB", "07700 900123", []string{"07700 900123", "07700 900 123", "+44 7700 900123", "+447700900123", "7700 900123"}},
		{"GB", "+44 7911 123456", []string{"07911 123456", "07911 123 456", "+44 (0) 7911 123456"}},
		{"DE", "+49 30 1234567", []string{"030 1234567", "030/1234567", "030 123 4567", "+49 (0)30 1234567", "0049 30 1234567"}},
		{"FR", "+33 1 23 45 67 89", []string{"01 23 45 67 89", "01.23.45.67.89", "0123456789", "+33 (0)1 23 45 67 89"}},
	} {
		p := Phones{Region: c.region}
		n, err := p.Parse(c.ani)
		if err != nil {
			t.Fatalf("%s %q: %v", c.region, c.ani, err)
		}
		for _, stored := range c.stored {
			if !p.Same(n, stored) {
				t.Errorf("%s: %q should match %s", c.region, stored, n.E164)
			}
			// and the query's pieces find it
			for _, g := range n.Groups {
				if !strings.Contains(stored, g.String()) {
					t.Errorf("%s: %q is stored as %q, which the query piece %s does not find", c.region, n.E164, stored, g)
				}
			}
		}
	}
}
