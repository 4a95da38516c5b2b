package mask_test

import (
	"unicode"

	"github.com/cxbridge/cxbridge/pkg/mask"
)

// The oracle: a second, deliberately plain implementation of what the package promises about
// card numbers, written from the package documentation rather than from its code. It works on
// runes, builds the normalised text token by token, and tries every start and every length.
// The property and fuzz tests hold the masker to it.

type otok struct {
	orig    rune
	r       rune // the normalised rune ('0'-'9' for digits, ' ' or '-' for separators...)
	ascii   bool // an ASCII letter of the original text (number words are made of these)
	dropped bool // an invisible format character
}

func otokens(s string) []otok {
	var out []otok
	for _, r := range s { // invalid UTF-8 reads as U+FFFD, which is nothing special
		n := len(out)
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			out = append(out, otok{r: r - 0xFEE0})
		case r < 0x80:
			out = append(out, otok{r: r, ascii: r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'})
		case unicode.IsDigit(r):
			out = append(out, otok{r: '0' + odigit(r)})
		case unicode.IsSpace(r):
			out = append(out, otok{r: ' '})
		case r == '\u2212' || unicode.Is(unicode.Pd, r):
			out = append(out, otok{r: '-'})
		case unicode.Is(unicode.Cf, r):
			out = append(out, otok{dropped: true})
		default:
			out = append(out, otok{r: r})
		}
		out[n].orig = r
	}
	return out
}

// odigit finds a Unicode digit's value by walking back to the zero of its run of ten: Unicode
// puts the ten digits of every script in a row starting with zero, and in Go's tables every
// range of category Nd starts with a zero (TestDigitRanges checks both).
func odigit(r rune) rune {
	for _, rt := range unicode.Nd.R16 {
		if r >= rune(rt.Lo) && r <= rune(rt.Hi) {
			return (r - rune(rt.Lo)) % 10
		}
	}
	for _, rt := range unicode.Nd.R32 {
		if r >= rune(rt.Lo) && r <= rune(rt.Hi) {
			return (r - rune(rt.Lo)) % 10
		}
	}
	panic("not a digit")
}

func osep(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f', '.', '-', '/', '_', ',':
		return true
	}
	return false
}

func odig(r rune) bool { return r >= '0' && r <= '9' }

var oWords = map[string]string{"zero": "0", "oh": "0", "nought": "0", "naught": "0", "one": "1",
	"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9"}

func lowerRunes(ts []otok) string {
	b := make([]rune, len(ts))
	for i, t := range ts {
		b[i] = unicode.ToLower(t.r)
	}
	return string(b)
}

// onormalise returns the normalised text as runes.
func onormalise(s string) []rune {
	ts := otokens(s)
	// items: a digit, a number-word unit, a separator, or anything else; dropped characters go
	type item struct {
		kind   byte // 'd' digit, 'u' unit, 's' separator, 'o' other
		runes  []rune
		digits string
	}
	var items []item
	for i := 0; i < len(ts); {
		t := ts[i]
		switch {
		case t.dropped:
			i++
		case t.ascii:
			j := i
			for j < len(ts) && ts[j].ascii {
				j++
			}
			w := lowerRunes(ts[i:j])
			if d, ok := oWords[w]; ok {
				items = append(items, item{kind: 'u', runes: runesOf(ts[i:j]), digits: d})
				i = j
				continue
			}
			if w == "double" || w == "triple" {
				k := j
				for k < len(ts) && k-j < 3 && (ts[k].orig == ' ' || ts[k].orig == '\t') {
					k++
				}
				e := k
				for e < len(ts) && ts[e].ascii {
					e++
				}
				if d, ok := oWords[lowerRunes(ts[k:e])]; ok && k > j {
					n := 2
					if w == "triple" {
						n = 3
					}
					ds := ""
					for range n {
						ds += d
					}
					items = append(items, item{kind: 'u', runes: runesOf(ts[i:e]), digits: ds})
					i = e
					continue
				}
			}
			items = append(items, item{kind: 'o', runes: runesOf(ts[i:j])})
			i = j
		case odig(t.r):
			items = append(items, item{kind: 'd', runes: []rune{t.r}})
			i++
		case osep(t.r):
			items = append(items, item{kind: 's', runes: []rune{t.r}})
			i++
		default:
			items = append(items, item{kind: 'o', runes: []rune{t.r}})
			i++
		}
	}
	near := func(i, dir int) bool { // a digit or unit within three separators
		for k, seps := i+dir, 0; k >= 0 && k < len(items); k += dir {
			switch items[k].kind {
			case 'd', 'u':
				return true
			case 's':
				if seps++; seps > 3 {
					return false
				}
			default:
				return false
			}
		}
		return false
	}
	var out []rune
	for i, it := range items {
		if it.kind == 'u' && (near(i, -1) || near(i, +1)) {
			out = append(out, []rune(it.digits)...)
			continue
		}
		out = append(out, it.runes...)
	}
	return out
}

func runesOf(ts []otok) []rune {
	out := make([]rune, len(ts))
	for i, t := range ts {
		out[i] = t.r
	}
	return out
}

func oalnum(r rune) bool { return odig(r) || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
func ohex(r rune) bool   { return odig(r) || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F' }

// oidentifiers marks the runes of UUIDs and of hexadecimal runs of 32 or more with a letter.
func oidentifiers(n []rune) []bool {
	in := make([]bool, len(n))
	const shape = "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh"
	for p := range n {
		if p > 0 && oalnum(n[p-1]) || p+36 > len(n) || p+36 < len(n) && oalnum(n[p+36]) {
			continue
		}
		ok := true
		for k, c := range shape {
			if c == '-' && n[p+k] != '-' || c == 'h' && !ohex(n[p+k]) {
				ok = false
				break
			}
		}
		if ok {
			for k := range 36 {
				in[p+k] = true
			}
		}
	}
	for p := 0; p < len(n); {
		q, letter := p, false
		for q < len(n) && ohex(n[q]) {
			letter = letter || !odig(n[q])
			q++
		}
		if q-p >= 32 && letter {
			for k := p; k < q; k++ {
				in[k] = true
			}
		}
		p = max(q, p+1)
	}
	return in
}

func oissuer(d string) bool {
	switch d[0] {
	case '0':
		return false
	case '1':
		return len(d) == 15
	case '2':
		p := (int(d[0]-'0')*1000 + int(d[1]-'0')*100 + int(d[2]-'0')*10 + int(d[3]-'0'))
		return p >= 2200 && p <= 2204 || p >= 2221 && p <= 2720
	}
	return true
}

// cardsIn returns every card number the package promises to mask, as it stands in the
// normalised text of s.
func cardsIn(s string) []string {
	n := onormalise(s)
	ids := oidentifiers(n)
	var found []string
	for start := range n {
		if !odig(n[start]) || start > 0 && (odig(n[start-1]) || n[start-1] == '+') {
			continue
		}
		digits := string(n[start])
		i := start
		for len(digits) < 19 {
			j := i + 1
			for j < len(n) && j-i-1 < 3 && osep(n[j]) {
				j++
			}
			if j >= len(n) || !odig(n[j]) {
				break
			}
			i = j
			digits += string(n[i])
			if len(digits) < 13 || i+1 < len(n) && odig(n[i+1]) || !oissuer(digits) || !mask.Luhn(digits) {
				continue
			}
			inID := false
			for k := start; k <= i; k++ {
				inID = inID || ids[k]
			}
			if !inID {
				found = append(found, string(n[start:i+1]))
			}
		}
	}
	return found
}
