package lookup

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse: any ANI is refused as withheld or not a number, or it gives an E.164 number that
// parses back to itself, matches its own stored forms, and whose query pieces are digits of its
// national number that encode into exactly the benign query's structure.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"tel:+14155550100", "sip:+14155550100@carrier;user=phone", "+1 (415) 555-0100", "(555) 555-0100",
		"07700 900123", "+44 20 7946 0958", "011 44 20 7946 0958", "tel:4155550100;phone-context=+1", "sip:%2B1415@x", "anonymous",
		"+1 415 555 0100^ORactive=true", "1-800-FLOWERS", "＋１４１５５５５０１００", "+999 1234567", "555 0100", "sip:;a=b", "tel:%"} {
		f.Add(s, "US")
	}
	f.Add("020 7946 0958", "GB")
	f.Add("01 23 45 67 89", "FR")
	f.Fuzz(func(t *testing.T, ani, region string) {
		if region != "US" && region != "GB" && region != "FR" && region != "DE" {
			region = "US"
		}
		p := Phones{Region: region}
		n, err := p.Parse(ani)
		if err != nil {
			if !errors.Is(err, ErrWithheld) && !errors.Is(err, ErrInvalidNumber) {
				t.Fatalf("%q: unexpected error %v", ani, err)
			}
			return
		}
		if len(n.E164) < 3 || n.E164[0] != '+' || strings.Trim(n.E164[1:], "0123456789") != "" || !strings.HasSuffix(n.E164, n.National) {
			t.Fatalf("%q: E.164 %q national %q", ani, n.E164, n.National)
		}
		again, err := p.Parse(n.E164)
		if err != nil || again.E164 != n.E164 {
			t.Fatalf("%q: %s does not parse back to itself: %+v %v", ani, n.E164, again, err)
		}
		if !p.Same(n, n.E164) {
			t.Fatalf("%q: %s is not the same as itself", ani, n.E164)
		}
		if len(n.Groups) == 0 {
			t.Fatalf("%q: no query pieces", ani)
		}
		for _, g := range n.Groups {
			if !strings.Contains(n.National, g.String()) {
				t.Fatalf("%q: piece %s is not in %s", ani, g, n.National)
			}
		}
		q, err := byPhoneUsers(n).Encode()
		if err != nil {
			t.Fatalf("%q: query: %v", ani, err)
		}
		want := make([]string, len(n.Groups))
		for i, g := range n.Groups {
			want[i] = "phoneLIKE" + g.String() + "^ORmobile_phoneLIKE" + g.String()
		}
		if q != strings.Join(want, "^") {
			t.Fatalf("%q: query %s", ani, q)
		}
	})
}
