package mask

import (
	"sort"
	"unicode"
	"unicode/utf8"
)

// The normalised view.
//
// People write digits in many ways: fullwidth "４１１１" from an East Asian input method,
// Arabic-Indic "٤١١١", a card grouped with en dashes or non-breaking spaces, a zero-width space
// pasted from a chat app, and a speech transcript's "four one one one". Every rule reads one
// normalised view of the text instead, in which:
//
//   - every Unicode decimal digit (category Nd) is the ASCII digit of the same value;
//   - every Unicode space (White_Space) is " ", every dash (category Pd, and U+2212 minus) is "-";
//   - fullwidth ASCII forms (U+FF01-U+FF5E) are their ASCII characters;
//   - invisible format characters (category Cf: zero-width space, soft hyphen, BOM...) are gone;
//   - an English number word ("zero", "oh", "nought", "one" ... "nine", and "double"/"triple"
//     before one of them) is its digits, but only when it stands next to another digit or number
//     word with at most three separators between them (sepByte, classSep), so "one question" stays
//     prose while "four one one one" becomes "4 1 1 1".
//
// Everything else is kept byte for byte. Spans found in the view are mapped back to the
// original text, so what is replaced is exactly what the caller wrote.

// view is a text with its normalised form and the edits between them.
type view struct {
	orig  string
	norm  string
	edits []edit // in order; empty when norm == orig
}

// edit says that norm[n:n+nlen] stands for orig[o:o+olen].
type edit struct{ n, nlen, o, olen int }

// start maps a span start in norm to orig; a start inside an edited item moves to its start.
func (v *view) start(p int) int {
	// the last edit that begins at or before p
	k := sort.Search(len(v.edits), func(i int) bool { return v.edits[i].n > p }) - 1
	if k < 0 {
		return p
	}
	e := v.edits[k]
	if p < e.n+e.nlen {
		return e.o // inside (or at the first byte of) a replaced item
	}
	return e.o + e.olen + (p - e.n - e.nlen) // after it (and after a character dropped at p)
}

// end maps a span end (exclusive) in norm to orig; an end inside an edited item moves to its end.
func (v *view) end(p int) int {
	k := sort.Search(len(v.edits), func(i int) bool { return v.edits[i].n >= p }) - 1
	if k < 0 {
		return p
	}
	e := v.edits[k]
	if p < e.n+e.nlen {
		return e.o + e.olen
	}
	return e.o + e.olen + (p - e.n - e.nlen)
}

// builder makes the normalised string, allocating only once the first edit is needed.
type builder struct {
	s      string
	b      []byte
	copied int // s[:copied] is in b
	edits  []edit
}

func (b *builder) replace(o, olen int, with string) {
	if b.b == nil {
		b.b = make([]byte, 0, len(b.s)+8)
	}
	b.b = append(b.b, b.s[b.copied:o]...)
	b.edits = append(b.edits, edit{n: len(b.b), nlen: len(with), o: o, olen: olen})
	b.b = append(b.b, with...)
	b.copied = o + olen
}

func (b *builder) replaceByte(o, olen int, c byte) {
	b.replace(o, olen, asciiStrings[c:c+1])
}

// asciiStrings lets replaceByte hand out one-byte strings without allocating.
var asciiStrings = func() string {
	b := make([]byte, 128)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}()

func (b *builder) view() view {
	if b.b == nil {
		return view{orig: b.s, norm: b.s}
	}
	b.b = append(b.b, b.s[b.copied:]...)
	return view{orig: b.s, norm: string(b.b), edits: b.edits}
}

// normalise builds the view of s.
func normalise(s string) view {
	b := builder{s: s}
	seps := 4 // separator runes since the last digit or number word; 4 means "none near"
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			seps = 0
			i++
		case isLetter(c):
			j := i + 1
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			digits, end := numberUnit(s, i, j)
			if digits == "" {
				seps = 4
				i = j
				continue
			}
			if seps <= 3 || unitFollows(s, end) {
				b.replace(i, end-i, digits)
			}
			seps = 0
			i = end
		case c < utf8.RuneSelf:
			if sepByte(c) {
				seps++
			} else {
				seps = 4
			}
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			switch class, to := classify(r); class {
			case classDigit:
				b.replaceByte(i, size, to)
				seps = 0
			case classSep:
				b.replaceByte(i, size, to)
				seps++
			case classInvisible:
				b.replace(i, size, "")
			case classASCII:
				b.replaceByte(i, size, to)
				seps = 4
			default:
				seps = 4
			}
			i += size
		}
	}
	return b.view()
}

// Classes of a non-ASCII rune.
const (
	classOther     = iota
	classDigit     // a decimal digit: to is its ASCII digit
	classSep       // a space or dash: to is ' ' or '-' (or the ASCII separator of a fullwidth form)
	classInvisible // dropped
	classASCII     // a fullwidth form of another ASCII character: to is that character
)

// classify sorts a rune the way normalise treats it. ASCII runes are classOther: the caller
// handles them itself.
func classify(r rune) (class int, to byte) {
	if r < utf8.RuneSelf {
		return classOther, 0
	}
	if r >= 0xFF01 && r <= 0xFF5E { // fullwidth ASCII forms: ＡＢＣ ０１２ ／－．
		a := byte(r - 0xFEE0)
		switch {
		case a >= '0' && a <= '9':
			return classDigit, a
		case sepByte(a):
			return classSep, a
		default:
			return classASCII, a
		}
	}
	if d, ok := digitValue(r); ok {
		return classDigit, '0' + d
	}
	if unicode.IsSpace(r) {
		return classSep, ' '
	}
	if r == '\u2212' || unicode.Is(unicode.Pd, r) {
		return classSep, '-'
	}
	if unicode.Is(unicode.Cf, r) {
		return classInvisible, 0
	}
	return classOther, 0
}

// digitValue is the value of a Unicode decimal digit. Every range of category Nd in Go's tables
// is a whole number of runs of ten digits starting at a zero (checked by a test), so the value
// is the offset in its range modulo 10.
func digitValue(r rune) (byte, bool) {
	if r < utf8.RuneSelf {
		if r >= '0' && r <= '9' {
			return byte(r - '0'), true
		}
		return 0, false
	}
	if !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	if r <= 0xFFFF {
		t := unicode.Nd.R16
		k := sort.Search(len(t), func(i int) bool { return rune(t[i].Hi) >= r })
		return byte((r - rune(t[k].Lo)) % 10), true
	}
	t := unicode.Nd.R32
	k := sort.Search(len(t), func(i int) bool { return rune(t[i].Hi) >= r })
	return byte((r - rune(t[k].Lo)) % 10), true
}

// sepByte is an ASCII separator between the digits of a number: any space, . - / _ and ",".
func sepByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '\v', '\f', '.', '-', '/', '_', ',':
		return true
	}
	return false
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// wordDigit returns the digit of the number word s[i:j] (ASCII letters: "zero", "oh",
// "nought", "naught", "one" ... "nine" in any case), or 0.
func wordDigit(s string, i, j int) byte {
	if j-i < 2 || j-i > 6 {
		return 0
	}
	switch s[i] | 0x20 { // most words are not number words: decide on the first letter
	case 'z', 'o', 'n', 't', 'f', 's', 'e':
	default:
		return 0
	}
	var low [6]byte
	for k := i; k < j; k++ {
		low[k-i] = s[k] | 0x20
	}
	switch string(low[:j-i]) {
	case "zero", "oh", "nought", "naught":
		return '0'
	case "one":
		return '1'
	case "two":
		return '2'
	case "three":
		return '3'
	case "four":
		return '4'
	case "five":
		return '5'
	case "six":
		return '6'
	case "seven":
		return '7'
	case "eight":
		return '8'
	case "nine":
		return '9'
	}
	return 0
}

// repeats is 2 for "double", 3 for "triple", 0 otherwise.
func repeats(s string, i, j int) int {
	if j-i != 6 || s[i]|0x20 != 'd' && s[i]|0x20 != 't' {
		return 0
	}
	var low [6]byte
	for k := i; k < j; k++ {
		low[k-i] = s[k] | 0x20
	}
	switch string(low[:]) {
	case "double":
		return 2
	case "triple":
		return 3
	}
	return 0
}

// numberUnit reads a number word, or "double"/"triple" and a number word, starting with the
// letter run s[i:j] (which must be a whole word: s[j] is not a letter). It returns the digits
// and where the unit ends, or "" when s[i:j] starts no unit.
func numberUnit(s string, i, j int) (string, int) {
	if i > 0 && isLetter(s[i-1]) {
		return "", j
	}
	if d := wordDigit(s, i, j); d != 0 {
		return digitStrings[d-'0'][:1], j
	}
	n := repeats(s, i, j)
	if n == 0 {
		return "", j
	}
	// the multiplier's word follows after one to three spaces
	k := j
	for k < len(s) && k-j < 3 && (s[k] == ' ' || s[k] == '\t') {
		k++
	}
	if k == j || k >= len(s) || !isLetter(s[k]) {
		return "", j
	}
	e := k + 1
	for e < len(s) && isLetter(s[e]) {
		e++
	}
	d := wordDigit(s, k, e)
	if d == 0 {
		return "", j
	}
	return digitStrings[d-'0'][:n], e
}

// digitStrings[d] is "ddd", sliced for one, two or three repeats without allocating.
var digitStrings = [10]string{"000", "111", "222", "333", "444", "555", "666", "777", "888", "999"}

// unitFollows reports whether a digit or a number word follows s[i:] after at most three
// separator runes (invisible ones do not count).
func unitFollows(s string, i int) bool {
	seps := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			return true
		case isLetter(c):
			j := i + 1
			for j < len(s) && isLetter(s[j]) {
				j++
			}
			d, _ := numberUnit(s, i, j)
			return d != ""
		case c < utf8.RuneSelf:
			if !sepByte(c) {
				return false
			}
			seps++
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			switch class, _ := classify(r); class {
			case classDigit:
				return true
			case classSep:
				seps++
			case classInvisible:
			default:
				return false
			}
			i += size
		}
		if seps > 3 {
			return false
		}
	}
	return false
}
