package mask

import (
	"strings"
	"testing"
	"unicode"
)

// digitValue relies on every range of category Nd in Go's tables being whole runs of ten digits
// that start at a zero; a new Unicode version must not break that silently.
func TestDigitRanges(t *testing.T) {
	check := func(lo, hi, stride uint32) {
		if stride != 1 || (hi-lo+1)%10 != 0 {
			t.Errorf("Nd range %U-%U (stride %d) is not runs of ten", lo, hi, stride)
		}
	}
	for _, r := range unicode.Nd.R16 {
		check(uint32(r.Lo), uint32(r.Hi), uint32(r.Stride))
	}
	for _, r := range unicode.Nd.R32 {
		check(r.Lo, r.Hi, r.Stride)
	}
	// The zeros of a few scripts, and every digit of every script maps to 0-9 in order.
	for _, zero := range []rune{'0', '٠', '۰', '०', '০', '๐', '０', '𝟎', '𝟘', '߀', '၀'} {
		for d := range rune(10) {
			if v, ok := digitValue(zero + d); !ok || rune(v) != d {
				t.Errorf("digitValue(%U) = %d, %v; want %d", zero+d, v, ok, d)
			}
		}
	}
	for _, r := range []rune{'a', '²', '½', 'Ⅳ', '①'} { // superscripts, fractions, numerals are not Nd
		if _, ok := digitValue(r); ok {
			t.Errorf("digitValue(%U) is a digit", r)
		}
	}
}

func TestNormalisedView(t *testing.T) {
	tests := []struct{ in, norm string }{
		{"plain ascii 123", "plain ascii 123"},
		{"４１１１－１１１１", "4111-1111"},
		{"a\u00a0b\u2014c\u200bd", "a b-cd"},
		{"four one one", "4 1 1"},
		{"Four, ONE; one", "4, 1; one"}, // ";" is not a separator: "one" after it stands alone
		{"one question", "one question"},
		{"call me at one", "call me at one"},
		{"someone one 2", "someone 1 2"},
		{"double one two", "11 2"},
		{"triple  oh 5", "000 5"},
		{"double trouble 5", "double trouble 5"},
		{"one\u200b2", "12"},
		{"oneself 1", "oneself 1"},
		{"ＣＶＶ １２３", "CVV 123"},
	}
	for _, tt := range tests {
		v := normalise(tt.in)
		if v.norm != tt.norm {
			t.Errorf("normalise(%q) = %q; want %q", tt.in, v.norm, tt.norm)
		}
	}
}

// A span in the normalised text maps back to exactly the original characters it stands for.
func TestViewMapsSpansBack(t *testing.T) {
	in := "x ４１ double one\u200b7 z"
	v := normalise(in)
	if v.norm != "x 41 117 z" {
		t.Fatalf("norm = %q", v.norm)
	}
	for _, tt := range []struct {
		a, b int
		want string
	}{
		{2, 4, "４１"},
		{2, 8, "４１ double one\u200b7"},
		{5, 6, "double one"}, // the first "1" of "11" rounds out to the whole unit
		{6, 7, "double one"}, // and so does the second
		{7, 8, "7"},          // the zero-width space before 7 belongs to neither side's start
		{0, len(v.norm), in},
		{9, 10, "z"},
	} {
		if got := in[v.start(tt.a):v.end(tt.b)]; got != tt.want {
			t.Errorf("norm[%d:%d] = %q maps to %q; want %q", tt.a, tt.b, v.norm[tt.a:tt.b], got, tt.want)
		}
	}
	if strings.Contains(v.norm, "\u200b") {
		t.Error("invisible characters must be dropped")
	}
}
