package mask_test

import (
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/mask"
)

// Masking runs on every free-text field of every escalation and on every log string, so its
// throughput is measured on what those fields hold: a ticket description with the usual
// numbers (order numbers, dates, a conversation id, a phone number) and nothing to mask, the
// same with a card, its security code, an SSN and an IBAN read out, and a long call transcript.
//
//	go test -run '^$' -bench Mask -benchmem ./pkg/mask/

var benchTexts = map[string]string{
	"clean": strings.Repeat("Caller Jane Doe (conversation 3f2c9a1e-7b4d-4c1a-9e2f-0a1b2c3d4e5f) rang about order 4512345678 "+
		"placed on 2026-11-22 10:30:15; she was on hold for 245 s in Support L2 and asked for a call back on +1 415 555 0100. "+
		"The laptop (serial CND1234XYZ, sys_id 9d385017c611228701d22104cc95c371) does not boot since the update to version 4.2.1. ", 6),
	"sensitive": strings.Repeat("Caller read out her card 4111 1111 1111 1111 exp 12/27, CVV is 123, then her SSN 123-45-6789 "+
		"and asked for a refund to GB82 WEST 1234 5698 7654 32. Order 4512345678 placed on 2026-11-22 10:30:15. ", 8),
	"transcript": strings.Repeat("Agent: Thank you for calling, how can I help you today? Customer: Hi, I was charged twice for my "+
		"subscription and I want one of the payments back. Agent: I am sorry to hear that, can you read me the card number? "+
		"Customer: yes it is four one one one one one one one one one one one one one one one and the security code is one "+
		"two three. Agent: Thank you. I can see two payments on the fourteenth of November. ", 20),
}

func BenchmarkMask(b *testing.B) {
	for _, name := range []string{"clean", "sensitive", "transcript"} {
		text := benchTexts[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				mask.Egress.String(text)
			}
		})
	}
}
