package mask_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/mask"
)

// FuzzEgress holds the masker to its promise on any input: after masking, the normalised
// text holds no card number (cardsIn, the oracle: 13-19 digits with at most three separators
// between them, Luhn-valid, from an issuer range, not inside a UUID or a sys_id), the text
// outside the placeholders is the input's, in order, and masking masked text changes nothing.
func FuzzEgress(f *testing.F) {
	for _, s := range []string{
		"4111 1111 1111 1111",
		"4111-1111-1111-1111 12/25",
		"4111111111111111 exp 1225",
		"3782 822463 10005",
		"4000 0000 0000 0000 006",
		"4111111111111111 4111111111111111 4111111111111111",
		"ref 77 4111 1111 1111 1111 1225",
		"1 - 4111.1111\t1111  1111",
		"SSN 123-45-6789, ssn: 234567890",
		"acct 1234-5678-9012-3456",
		"411111111111111110",
		"6011 1111 1111 1117 5555555555554444",
		"4111/1111/1111/1111 4111_1111_1111_1111 4111–1111—1111‒1111",
		"４１１１ １１１１ １１１１ １１１１",
		"٤١١١ ١١١١ ١١١١ ١١١١",
		"4111\u00a01111\u202f1111\u20091111",
		"4111\u200b1111\u200b1111\u200b1111",
		"four one one one one one one one one one one one one one one one",
		"four double one triple one one one one one one one one one",
		"CVV is 123, security code: 4 5 6, card verification value 7890",
		"IBAN GB82 WEST 1234 5698 7654 32 and DE89370400440532013000",
		"conversation 3f2c9a1e-7b4d-4c1a-9e2f-0a1b2c3d4e5f sys_id 9d385017c611228701d22104cc95c371",
		"+86 138 0013 8000, 1732271400000, 20261122103015",
		"",
		"no digits at all",
	} {
		f.Add(s)
	}
	placeholder := regexp.MustCompile(`\[MASKED:[a-z]+\]`)
	f.Fuzz(func(t *testing.T, in string) {
		out, _ := mask.Egress.String(in)
		if cards := cardsIn(out); len(cards) > 0 {
			t.Fatalf("card number %q survived masking:\n in: %q\nout: %q", cards[0], in, out)
		}
		// what is left around the placeholders is the input's text, in order
		rest := in
		for _, piece := range placeholder.Split(out, -1) {
			k := strings.Index(rest, piece)
			if k < 0 {
				t.Fatalf("text outside the placeholders was changed: %q not in %q\n in: %q\nout: %q", piece, rest, in, out)
			}
			rest = rest[k+len(piece):]
		}
		again, n := mask.Egress.String(out)
		if again != out || n != 0 {
			t.Fatalf("masking is not idempotent:\n in: %q\nout: %q\nagain (%d): %q", in, out, n, again)
		}
	})
}
