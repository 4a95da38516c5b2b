package mask_test

import (
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/mask"
)

const (
	card    = "[MASKED:card]"
	ssn     = "[MASKED:ssn]"
	account = "[MASKED:account]"
	expiry  = "[MASKED:expiry]"
	cvv     = "[MASKED:cvv]"
	iban    = "[MASKED:iban]"
)

func TestEgressCards(t *testing.T) {
	tests := []struct {
		name, in, want string
		n              int
	}{
		{"visa plain", "card 4111111111111111 declined", "card " + card + " declined", 1},
		{"visa spaces", "card 4111 1111 1111 1111 declined", "card " + card + " declined", 1},
		{"visa hyphens", "4012-8888-8888-1881", card, 1},
		{"visa dots", "4111.1111.1111.1111", card, 1},
		{"mixed separators", "4111 1111-1111.1111", card, 1},
		{"double spaces and tab", "4111  1111\t1111 - 1111", card, 1},
		{"visa 13", "old card 4222222222222.", "old card " + card + ".", 1},
		{"mastercard", "5555 5555 5555 4444", card, 1},
		{"mastercard 2-series", "2223003122003222", card, 1},
		{"amex 15 (4-6-5)", "amex 3782 822463 10005 exp", "amex " + card + " exp", 1},
		{"amex plain", "371449635398431", card, 1},
		{"discover", "6011 1111 1111 1117", card, 1},
		{"diners 14", "30569309025904", card, 1},
		{"jcb", "3530111333300000", card, 1},
		{"19 digits", "4000 0000 0000 0000 006", card, 1},
		{"19 digits plain", "6212345678901234569", card, 1},
		{"glued to letters", "cc4111111111111111x", "cc" + card + "x", 1},
		{"expiry after a slash", "4111 1111 1111 1111 12/25", card + " " + expiry, 2},
		{"expiry as words", "4111111111111111 exp 1225", card + " exp " + expiry, 2},
		{"expiry as a fifth group", "4111 1111 1111 1111 1225 cvv 123", card + " " + expiry + " cvv " + cvv, 3},
		{"reference before the card", "ref 77 4111 1111 1111 1111", "ref 77 " + card, 1},
		{"two cards", "4111111111111111 or 5555555555554444", card + " or " + card, 2},
		{"three cards in one run", "4111111111111111 4111111111111111 4111111111111111", card + " " + card + " " + card, 3},
		{"many cards in one run", strings.Repeat("5555-5555-5555-4444 ", 6), strings.Repeat(card+" ", 6), 6},
		{"multiline", "line one\n4111 1111 1111 1111\nline three", "line one\n" + card + "\nline three", 1},
		// Luhn failures and numbers that are not cards stay readable
		{"luhn fails", "order 4111 1111 1111 1112", "order 4111 1111 1111 1112", 0},
		{"luhn fails plain", "1234567890123456", "1234567890123456", 0},
		{"12 digits", "411111111111", "411111111111", 0},
		{"20 digits", "41111111111111111111", "41111111111111111111", 0},
		{"card inside a longer number", "411111111111111110", "411111111111111110", 0},
		{"phone", "call +1 555 123 4567 back", "call +1 555 123 4567 back", 0},
		{"date and time", "2026-11-22 10:30", "2026-11-22 10:30", 0},
		{"four separators apart", "4111    1111 1111 1111", "4111    1111 1111 1111", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n := mask.Egress.String(tt.in)
			if got != tt.want || n != tt.n {
				t.Errorf("Egress(%q) = %q, %d; want %q, %d", tt.in, got, n, tt.want, tt.n)
			}
		})
	}
}

func TestEgressSSN(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"hyphens", "SSN 123-45-6789 on file", "SSN " + ssn + " on file"},
		{"spaces", "it is 123 45 6789", "it is " + ssn},
		{"area 000", "000-12-3456", "000-12-3456"},
		{"area 666", "666-12-3456", "666-12-3456"},
		{"area 9xx", "912-34-5678", "912-34-5678"},
		{"group 00", "123-00-4567", "123-00-4567"},
		{"serial 0000", "123-45-0000", "123-45-0000"},
		{"mixed separators", "123-45 6789", "123-45 6789"},
		{"inside a longer number", "99123-45-678901", "99123-45-678901"},
		{"bare nine digits", "ticket 123456789", "ticket 123456789"},
		{"keyword", "SSN 123456789", "SSN " + ssn},
		{"keyword colon", "ssn:123456789.", "ssn:" + ssn + "."},
		{"keyword is", "Social Security Number is 123456789", "Social Security Number is " + ssn},
		{"keyword no.", "social security no. 123456789", "social security no. " + ssn},
		{"keyword ten digits", "SSN 1234567890", "SSN 1234567890"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := mask.Egress.String(tt.in); got != tt.want {
				t.Errorf("Egress(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// The seed's rule, \d{4}-\d{4}-\d{4}, is kept for the 12-digit account numbers it was written for.
func TestEgressSeedAccountRule(t *testing.T) {
	tests := []struct{ in, want string }{
		{"account 1234-5678-9012 locked", "account " + account + " locked"},
		{"1234-5678-9012-3456", account}, // 16 digits failing Luhn: the seed rule hides all (two overlapping matches)
		{"1234 5678 9012", "1234 5678 9012"},
		{"12345-5678-9012", "12345-5678-9012"},
	}
	for _, tt := range tests {
		if got, _ := mask.Egress.String(tt.in); got != tt.want {
			t.Errorf("Egress(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestCounts(t *testing.T) {
	in := "card 4111 1111 1111 1111, ssn 123-45-6789, SSN: 234567890, acct 1234-5678-9012, again 5555555555554444"
	got, n := mask.Egress.String(in)
	if n != 5 {
		t.Errorf("Egress count = %d; want 5 (%q)", n, got)
	}
	c := mask.Counter{M: mask.Egress}
	summary := c.Mask("caller read 4111111111111111")
	desc := c.Mask("no sensitive data")
	notes := c.Mask("SSN 123-45-6789 and 4012888888881881")
	if c.N != 3 || summary != "caller read "+card || desc != "no sensitive data" || !strings.Contains(notes, ssn) {
		t.Errorf("Counter = %d (%q, %q, %q); want 3 across the fields", c.N, summary, desc, notes)
	}
	if got, n := mask.Egress.String(""); got != "" || n != 0 {
		t.Errorf("Egress(\"\") = %q, %d", got, n)
	}
}

func TestLuhn(t *testing.T) {
	for s, want := range map[string]bool{
		"4111111111111111":    true,
		"4111-1111-1111-1111": true,
		"378282246310005":     true,
		"4111111111111112":    false,
		"":                    false,
		"abc":                 false,
		"0":                   true,
	} {
		if got := mask.Luhn(s); got != want {
			t.Errorf("Luhn(%q) = %v; want %v", s, got, want)
		}
	}
}

func TestLogRules(t *testing.T) {
	jwt := "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjeGJyaWRnZSJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	tests := []struct {
		name, in, want string
	}{
		{"email", "mail jane.doe+vip@example.co.uk now", "mail [MASKED:email] now"},
		{"e164", "ANI +15551234567 waiting", "ANI [MASKED:phone] waiting"},
		{"e164 with 00", "call 0031612345678", "call [MASKED:phone]"},
		{"tel uri", "from tel:+442079460958", "from [MASKED:phone]"},
		{"sip uri", "from sip:+15551234567;user=phone end", "from [MASKED:phone] end"},
		{"sip uri with host", "from sip:+15551234567@pbx.example.com;user=phone end", "from [MASKED:phone] end"},
		{"bearer", "Authorization: Bearer abc.DEF-123_x~y+z/==", "Authorization: [MASKED:token]"},
		{"basic", "auth basic dXNlcjpwYXNzd29yZA==", "auth [MASKED:token]"},
		{"jwt", "jwt " + jwt + " end", "jwt [MASKED:token] end"},
		{"bearer jwt", "Bearer " + jwt, "[MASKED:token]"},
		{"card too", "card 4111 1111 1111 1111", "card " + card},
		{"ssn too", "ssn 123-45-6789", "ssn " + ssn},
		{"nothing", "queue L2 has 3 agents, wait 45 s", "queue L2 has 3 agents, wait 45 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := mask.Logs.String(tt.in); got != tt.want {
				t.Errorf("Logs(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
	// what may go into a ticket is not masked by the egress rules
	in := "jane@example.com +15551234567"
	if got, _ := mask.Egress.String(in); got != in {
		t.Errorf("Egress(%q) = %q; e-mail and phone belong in a ticket", in, got)
	}
}

func TestParseExtra(t *testing.T) {
	m, err := mask.ParseExtra(` {"iban":"\\bGB\\d{2}[A-Z]{4}\\d{14}\\b", "member":"\\bMBR-\\d{6}\\b"} `)
	if err != nil {
		t.Fatalf("ParseExtra = %v", err)
	}
	masker, err := mask.New(mask.EgressRules(), m)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	got, n := masker.String("pay from GB33BUKB20201555555555 for MBR-123456, card 4111111111111111")
	if want := "pay from [MASKED:iban] for [MASKED:member], card " + card; got != want || n != 3 {
		t.Errorf("String = %q, %d; want %q, 3", got, n, want)
	}
	// the default maskers are unchanged by New
	if got, _ := mask.Egress.String("MBR-123456"); got != "MBR-123456" {
		t.Errorf("Egress picked up an extra pattern: %q", got)
	}

	if m, err := mask.ParseExtra("   "); err != nil || m != nil {
		t.Errorf("ParseExtra(blank) = %v, %v; want nothing", m, err)
	}
	bad := []struct{ in, wantErr string }{
		{`{"iban":`, "want a JSON object"},
		{`["\\d+"]`, "want a JSON object"},
		{`{"n":5}`, "want a JSON object"},
		{`{"iban":"GB[0-9"}`, `pattern "iban"`},
		{`{"":"x"}`, "not usable in a placeholder"},
		{`{"a]b":"x"}`, "not usable in a placeholder"},
	}
	for _, tt := range bad {
		if _, err := mask.ParseExtra(tt.in); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseExtra(%s) = %v; want an error containing %q", tt.in, err, tt.wantErr)
		}
	}
	if _, err := mask.New(nil, map[string]string{"bad": "("}); err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("New(bad regex) = %v; want an error naming the pattern", err)
	}
}

// A pattern that can match empty text must not scatter placeholders through the text.
func TestExtraPatternMatchingNothing(t *testing.T) {
	m, err := mask.New(nil, map[string]string{"code": `\d*`})
	if err != nil {
		t.Fatal(err)
	}
	got, n := m.String("ref 123 ok")
	if got != "ref [MASKED:code] ok" || n != 1 {
		t.Errorf("String = %q, %d; want only the digits masked", got, n)
	}
}

// What callers type and transcripts record, as the README lists it.
func TestEgressRealSpeechAndTyping(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"slashes", "4111/1111/1111/1111", card},
		{"underscores", "4111_1111_1111_1111", card},
		{"en dashes", "4111–1111–1111–1111", card},
		{"em dashes", "4111—1111—1111—1111", card},
		{"minus signs", "4111−1111−1111−1111", card},
		{"no-break spaces", "4111\u00a01111\u00a01111\u00a01111", card},
		{"narrow and ideographic spaces", "4111\u202f1111\u30001111\u20091111", card},
		{"zero-width spaces", "4111\u200b1111\u200b1111\u200b1111", card},
		{"soft hyphens", "4111\u00ad1111\u00ad1111\u00ad1111", card},
		{"line breaks", "4111\n1111\r\n1111\n1111", card},
		{"fullwidth digits", "カード ４１１１ １１１１ １１１１ １１１１ です", "カード " + card + " です"},
		{"fullwidth hyphens", "４１１１－１１１１－１１１１－１１１１", card},
		{"arabic-indic digits", "بطاقة ٤١١١١١١١١١١١١١١١", "بطاقة " + card},
		{"devanagari digits", "४१११ ११११ ११११ ११११", card},
		{"mixed scripts", "4111 ١١١١ １１１１ ११११", card},
		{"spoken digits", "it is 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 ok", "it is " + card + " ok"},
		{"number words", "it's four one one one one one one one one one one one one one one one, thanks", "it's " + card + ", thanks"},
		{"number words with commas", "four one one one, one one one one, one one one one, one one one one.", card + "."},
		{"oh for zero", "five five five five five five five five five five five five four four four four", card},
		{"double and triple", "four double one one, triple one, one one one one, one one one one, one", card},
		{"words and digits", "4111 one one one one 1111 1111", card},
		{"cvv", "my CVV is 123.", "my CVV is " + cvv + "."},
		{"cvv2", "CVV2: 1234", "CVV2: " + cvv},
		{"cvc", "cvc 987 please", "cvc " + cvv + " please"},
		{"cid", "Amex CID 1234", "Amex CID " + cvv},
		{"security code", "the security code is 456", "the security code is " + cvv},
		{"security code spoken", "security code: four five six", "security code: " + cvv},
		{"security code one at a time", "security code 4 5 6", "security code " + cvv},
		{"card verification value", "card verification value 321", "card verification value " + cvv},
		{"code on the back", "CVC: it's the three digits on the back, 741", "CVC: it's the three digits on the back, " + cvv},
		{"card expiry and code", "4111 1111 1111 1111 exp 12/27 cvv 123", card + " exp " + expiry + " cvv " + cvv},
		{"expiry with four-digit year", "4111111111111111, expires 03/2028", card + ", expires " + expiry},
		{"expiry spoken", "4111 1111 1111 1111 expiry one two two seven", card + " expiry " + expiry},
		{"expiry and code without keywords", "4111 1111 1111 1111, 12/27, 123", card + ", " + expiry + ", " + cvv},
		{"iban printed", "IBAN GB82 WEST 1234 5698 7654 32, thanks", "IBAN " + iban + ", thanks"},
		{"iban electronic", "pay to DE89370400440532013000.", "pay to " + iban + "."},
		{"iban lower case", "nl91 abna 0417 1643 00", iban},
		{"iban with hyphens", "FR14-2004-1010-0505-0001-3M02-606", iban},
		{"iban fullwidth", "ＧＢ８２ ＷＥＳＴ １２３４ ５６９８ ７６５４ ３２", iban},
		{"two ibans, no space between", "GB82WEST123456987654 32DE89370400440532013000", iban + iban},
		{"ssn with en dashes", "SSN 123–45–6789", "SSN " + ssn},
		{"ssn fullwidth", "１２３-４５-６７８９", ssn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := mask.Egress.String(tt.in); got != tt.want {
				t.Errorf("Egress(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// What must stay readable: references an agent needs, and numbers that only look like cards.
func TestEgressKeepsWhatIsNotSensitive(t *testing.T) {
	for _, in := range []string{
		"order 4512345678 shipped",                                     // 10 digits
		"orders 4512345678, 4512345679",                                // two of them
		"call +1 415 555 0100 or (415) 555-0100",                       // phone numbers
		"call +86 138 0013 8000",                                       // 13 digits after a +
		"tel:+8613800138000",                                           //
		"at 2026-11-22T10:30:15.123Z, 2026-11-22 10:30:15",             // timestamps
		"between 2026-11-22 - 2026-12-01",                              //
		"logged 20261122103015 and 1732271400000 and 1732271400000000", // compact, Unix ms and µs
		"sys_id 9d385017c611228701d22104cc95c371",                      //
		"https://acme.service-now.com/incident.do?sys_id=46d44a5dc0a8010e0000000000000001",
		"conversation 3f2c9a1e-7b4d-4c1a-9e2f-0a1b2c3d4e5f", // Genesys ids
		"id 12345678-1234-1234-1234-123456789012",           //
		"I have one question about two orders",              // number words in prose
		"it was one, two, three days",                       //
		"the cvv field is empty",                            // a keyword without a value
		"CVV 12345",                                         // too long for a code
		"GB82 WEST 1234 5698 7654 33",                       // IBAN check digits wrong
		"DE89 3704 0044 0532 0130",                          // IBAN too short
		"version 4.2.1 build 1234",                          //
		"refund 1,234,567.89 EUR",                           //
	} {
		if got, n := mask.Egress.String(in); got != in || n != 0 {
			t.Errorf("Egress(%q) = %q; want it unchanged", in, got)
		}
	}
}

// Extra patterns read the normalised view too: fullwidth digits and Unicode dashes match \d and -.
func TestExtraPatternsSeeTheNormalisedText(t *testing.T) {
	m, err := mask.New(mask.EgressRules(), map[string]string{"member": `\bMBR-\d{6}\b`})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"id MBR-123456 ok":       "id [MASKED:member] ok",
		"id MBR–１２３４５６ ok":       "id [MASKED:member] ok",
		"id MBR-one two three 4": "id MBR-one two three 4",
	} {
		if got, _ := m.String(in); got != want {
			t.Errorf("String(%q) = %q; want %q", in, got, want)
		}
	}
}
