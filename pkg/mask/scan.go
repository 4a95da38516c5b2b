package mask

import "slices"

// The built-in detectors. They read the normalised view (normalize.go) in one pass, by hand
// rather than with regular expressions: masking runs on every field of every escalation and
// every log string, and Go's regexp package managed 5-10 MB/s on ticket text for the four
// patterns this replaces.

// span is a piece of text to mask: [start, end) in the normalised view until mapped back.
type span struct {
	start, end int
	name       string
	prio       int // the rule's index: on a tie, the earlier rule names the placeholder
}

// finder collects the spans of one text.
type finder struct {
	n     string
	prio  int
	spans []span

	ids     [][2]int // identifiers no card is looked for in; found on first need
	idsDone bool
}

func (f *finder) add(start, end int, name string) {
	f.spans = append(f.spans, span{start, end, name, f.prio})
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return isDigit(c) || isLetter(c) }

// isWord is a regexp \w byte; \b-style boundaries (SSNs, account numbers) use it.
func isWord(c byte) bool { return isAlnum(c) || c == '_' }

func isHex(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

// scanBuiltin runs every built-in detector over the text.
func scanBuiltin(f *finder) {
	n := f.n
	runEnd := 0 // the digit run analysed for cards ends here
	for i := 0; i < len(n); {
		c := n[i]
		switch {
		case isDigit(c):
			if i >= runEnd {
				runEnd = f.cards(i)
			}
			if i == 0 || !isWord(n[i-1]) {
				f.ssn(i)
				f.account(i)
			}
			for i++; i < len(n) && isDigit(n[i]); i++ {
			}
		case isLetter(c):
			j := i + 1
			for j < len(n) && isLetter(n[j]) {
				j++
			}
			// A word starts wherever a letter follows a non-letter, also right after a digit
			// ("4111...1111CVV 123"): masking the digit must not change what the word is.
			f.keyword(i, j)
			f.iban(i, j)
			i = j
		default:
			i++
		}
	}
}

// Cards.
//
// A card number is 13 to 19 digits with at most three separators (sepByte) between neighbours,
// starting at the first digit of a group and ending at the last digit of one (so it is not a
// piece of a longer number), not right after a "+" (that is a phone number: "+86 138 0013
// 8000"), from an issuer range (issuerOK) and passing the Luhn check. A run of digits may hold
// several. Digits glued to letters ("cc4111...") still count: a missed card costs more than a
// masked reference.

const maxCardGap = 3

// cards finds the card numbers in the digit run starting at i and returns where the run ends.
func (f *finder) cards(i int) int {
	n := f.n
	count, end := 0, i
	for j := i; ; {
		for ; j < len(n) && isDigit(n[j]); j++ {
			count++
		}
		end = j
		k := j
		for k < len(n) && k-j < maxCardGap && sepByte(n[k]) {
			k++
		}
		if k == j || k >= len(n) || !isDigit(n[k]) {
			break
		}
		j = k
	}
	if count < 13 {
		return end
	}
	var buf [64]int
	ds := buf[:0]
	for j := i; j < end; j++ {
		if isDigit(n[j]) {
			ds = append(ds, j)
		}
	}
	// A group right after "+" is a phone number in international format, never a card.
	groupStart := func(p int) bool { return p == 0 || !isDigit(n[p-1]) && n[p-1] != '+' }
	groupEnd := func(p int) bool { return p+1 == len(n) || !isDigit(n[p+1]) }
	// Candidates may overlap (two cards in one run, a prose "one" before a card, an expiry
	// that continues the run). Every digit of every candidate is masked: each cluster of
	// overlapping candidates becomes one placeholder, or one per card when cards that do not
	// overlap cover the cluster exactly (several cards read out in a row).
	var cands []cand
	for k := range ds {
		if !groupStart(ds[k]) {
			continue
		}
		for l := 13; l <= 19 && k+l <= len(ds); l++ {
			e := k + l - 1
			if groupEnd(ds[e]) && issuerOK(n, ds[k:e+1]) && luhnAt(n, ds[k:e+1]) && !f.inIdentifier(ds[k], ds[e]+1) {
				cands = append(cands, cand{k, e})
			}
		}
	}
	for i := 0; i < len(cands); { // cands are ordered by k
		j, last := i+1, cands[i].e
		for j < len(cands) && cands[j].k <= last {
			last = max(last, cands[j].e)
			j++
		}
		if tiles := tiling(cands[i:j], cands[i].k, last); tiles != nil {
			for _, c := range tiles {
				f.add(ds[c.k], ds[c.e]+1, "card")
			}
		} else {
			f.add(ds[cands[i].k], ds[last]+1, "card")
		}
		f.afterCard(ds[last] + 1)
		i = j
	}
	return end
}

// cand is a card number candidate: the indices of its first and last digit in a run.
type cand struct{ k, e int }

// tiling returns non-overlapping candidates (ordered by k) that cover the digits from first to
// last exactly, or nil.
func tiling(cands []cand, first, last int) []cand {
	ending := map[int]cand{first: {-1, -1}} // next digit to cover -> the candidate that got there
	for _, c := range cands {
		if _, ok := ending[c.k]; ok {
			if _, seen := ending[c.e+1]; !seen {
				ending[c.e+1] = c
			}
		}
	}
	if _, ok := ending[last+1]; !ok {
		return nil
	}
	var out []cand
	for d := last + 1; d != first; d = ending[d].k {
		out = append(out, ending[d])
	}
	slices.Reverse(out)
	return out
}

// issuerOK rejects digit strings no card scheme issues, which keeps timestamps and the like
// readable: nothing starts with 0; a leading 1 is only UATP's 15 digits (a millisecond Unix
// time is 13 digits starting with 1); a leading 2 only Mir (2200-2204) and Mastercard
// (2221-2720), so "2026..." dates stay. Leading 3-9 are all accepted.
func issuerOK(n string, ds []int) bool {
	switch n[ds[0]] {
	case '0':
		return false
	case '1':
		return len(ds) == 15
	case '2':
		p := 0
		for _, d := range ds[:4] {
			p = p*10 + int(n[d]-'0')
		}
		return p >= 2200 && p <= 2204 || p >= 2221 && p <= 2720
	}
	return true
}

func luhnAt(n string, ds []int) bool {
	sum, double := 0, false
	for k := len(ds) - 1; k >= 0; k-- {
		d := int(n[ds[k]] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// inIdentifier reports whether [a, b) overlaps an identifier that holds neither a card nor an
// IBAN: a UUID (a Genesys conversation id) or a run of 32 or more hexadecimal characters with
// a letter in it (a ServiceNow sys_id, a hash).
func (f *finder) inIdentifier(a, b int) bool {
	if !f.idsDone {
		f.ids, f.idsDone = identifiers(f.n), true
	}
	for _, id := range f.ids {
		if id[0] < b && a < id[1] {
			return true
		}
	}
	return false
}

func identifiers(n string) [][2]int {
	var out [][2]int
	for i := 0; i < len(n); {
		if !isHex(n[i]) {
			i++
			continue
		}
		j, letter := i, false
		for ; j < len(n) && isHex(n[j]); j++ {
			letter = letter || n[j] > '9'
		}
		if j-i >= 32 && letter {
			out = append(out, [2]int{i, j})
		}
		if (i == 0 || !isAlnum(n[i-1])) && isUUID(n, i) {
			out = append(out, [2]int{i, i + 36})
		}
		i = j
	}
	return out
}

// isUUID reports whether n[i:] starts with 8-4-4-4-12 hexadecimal digits not followed by a
// letter or digit.
func isUUID(n string, i int) bool {
	if len(n)-i < 36 || i+36 < len(n) && isAlnum(n[i+36]) {
		return false
	}
	for k := 0; k < 36; k++ {
		c := n[i+k]
		switch k {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

// afterCard masks an expiry date right after a card number (with or without "exp", "expires",
// "valid thru"...) and a security code right after that, as a caller reads them out.
func (f *finder) afterCard(p int) {
	n := f.n
	b := p // the end of what is masked so far
	q := skipGap(n, p, 3)
	ok := true
	if q < len(n) && isLetter(n[q]) {
		q, ok = expiryWords(n, q)
	}
	if a, e, found := expiryValue(n, q); ok && found {
		f.add(a, e, "expiry")
		b = e
	} else if y, e, found := yearAfterSlash(n, p); found {
		// "4111 ... 1111 8/27": the run of digits went on through the month, so a longer
		// Luhn-valid number took it into the card; the year is left.
		f.add(y, e, "expiry")
		b = e
	}
	// the code, after the expiry or (when the run of digits took the expiry) the card itself
	if c, d, ok := codeValue(n, skipGap(n, b, 3)); ok {
		f.add(c, d, "cvv")
	}
}

// yearAfterSlash reads " / 27", "/2027" or "-27" at p: the year of an expiry date.
func yearAfterSlash(n string, p int) (int, int, bool) {
	q := p
	for q < len(n) && q-p < 2 && n[q] == ' ' {
		q++
	}
	if q >= len(n) || n[q] != '/' && n[q] != '-' && n[q] != '.' {
		return 0, 0, false
	}
	y := q + 1
	for y < len(n) && y-q-1 < 2 && n[y] == ' ' {
		y++
	}
	e := y
	for e < len(n) && isDigit(n[e]) {
		e++
	}
	if e-y != 2 && e-y != 4 {
		return 0, 0, false
	}
	return y, e, true
}

// skipGap skips up to max separators and ":;()#=" characters.
func skipGap(n string, p, max int) int {
	for k := 0; k < max && p < len(n); k++ {
		switch c := n[p]; {
		case sepByte(c), c == ':', c == ';', c == '(', c == ')', c == '#', c == '=':
			p++
		default:
			return p
		}
	}
	return p
}

// word returns the letter run at p lower-cased in buf (empty when longer than buf) and where
// it ends. Callers switch on string(w), which does not allocate.
func word(n string, p int, buf *[16]byte) ([]byte, int) {
	j := p
	for j < len(n) && isLetter(n[j]) {
		j++
	}
	if j-p > len(buf) {
		return nil, j
	}
	for k := p; k < j; k++ {
		buf[k-p] = n[k] | 0x20
	}
	return buf[:j-p], j
}

// expiryWords skips "exp", "expiry date", "expires on", "valid thru"... starting at p.
func expiryWords(n string, p int) (int, bool) {
	var buf [16]byte
	w, j := word(n, p, &buf)
	switch string(w) {
	case "exp", "expiry", "expires", "expiring", "expiration", "valid", "good", "thru":
	default:
		return p, false
	}
	p = j
	for k := 0; k < 3; k++ {
		q := skipGap(n, p, 3)
		if q >= len(n) || !isLetter(n[q]) {
			return q, true
		}
		w, j = word(n, q, &buf)
		switch string(w) {
		case "date", "on", "in", "is", "of", "until", "till", "thru", "through", "end", "expiry", "expires":
			p = j
		default:
			return q, true
		}
	}
	return skipGap(n, p, 3), true
}

// groups reads up to max digit groups starting at p, each separated from the next by exactly
// one separator, and returns their lengths and ends.
func groups(n string, p, max int) (lens []int, ends []int) {
	for len(lens) < max && p < len(n) && isDigit(n[p]) {
		j := p
		for j < len(n) && isDigit(n[j]) {
			j++
		}
		lens, ends = append(lens, j-p), append(ends, j)
		if j+1 < len(n) && sepByte(n[j]) && isDigit(n[j+1]) {
			p = j + 1
			continue
		}
		break
	}
	return lens, ends
}

// expiryValue reads an expiry date at p: MM/YY, M/YY, MM/YYYY (with "/", "-" or "." and
// optional spaces around it), MMYY, "MM YY", or four spoken digits "1 2 2 7".
func expiryValue(n string, p int) (int, int, bool) {
	if p >= len(n) || !isDigit(n[p]) || p > 0 && isDigit(n[p-1]) {
		return 0, 0, false
	}
	month := func(a, b int) bool {
		m := 0
		for k := a; k < b; k++ {
			m = m*10 + int(n[k]-'0')
		}
		return m >= 1 && m <= 12
	}
	ends := func(e int) bool { return e >= len(n) || !isDigit(n[e]) }
	j := p
	for j < len(n) && isDigit(n[j]) {
		j++
	}
	// MM/YY with an explicit date separator
	if j-p <= 2 {
		k := j
		for k < len(n) && k-j < 3 && n[k] == ' ' {
			k++
		}
		if k < len(n) && (n[k] == '/' || n[k] == '-' || n[k] == '.') {
			k++
			for k < len(n) && k-j < 5 && n[k] == ' ' {
				k++
			}
			e := k
			for e < len(n) && isDigit(n[e]) {
				e++
			}
			if (e-k == 2 || e-k == 4) && month(p, j) {
				return p, e, true
			}
			return 0, 0, false
		}
	}
	if j-p == 4 && ends(j) && month(p, p+2) {
		return p, j, true // MMYY
	}
	lens, gends := groups(n, p, 4)
	switch {
	case len(lens) >= 2 && lens[0] == 2 && lens[1] == 2 && month(p, p+2):
		return p, gends[1], true // MM YY
	case len(lens) == 4 && lens[0] == 1 && lens[1] == 1 && lens[2] == 1 && lens[3] == 1:
		m := int(n[p]-'0')*10 + int(n[gends[1]-1]-'0')
		if m >= 1 && m <= 12 {
			return p, gends[3], true // spoken one digit at a time
		}
	}
	return 0, 0, false
}

// codeValue reads a card security code at p: three or four digits, together or one at a time,
// not glued to a letter.
func codeValue(n string, p int) (int, int, bool) {
	if p >= len(n) || !isDigit(n[p]) || p > 0 && isDigit(n[p-1]) {
		return 0, 0, false
	}
	lens, ends := groups(n, p, 4)
	var end int
	switch {
	case len(lens) >= 1 && (lens[0] == 3 || lens[0] == 4):
		end = ends[0]
	case len(lens) >= 3 && lens[0] == 1 && lens[1] == 1 && lens[2] == 1:
		end = ends[2]
		if len(lens) == 4 && lens[3] == 1 {
			end = ends[3]
		}
	default:
		return 0, 0, false
	}
	if end < len(n) && isLetter(n[end]) {
		return 0, 0, false
	}
	return p, end, true
}

// Keywords.

// keyword looks at the whole word n[i:j] (lower-cased) for the keywords that announce a
// security code or an SSN.
func (f *finder) keyword(i, j int) {
	n := f.n
	if j-i < 2 || j-i > 12 {
		return
	}
	switch n[i] | 0x20 { // every keyword starts with c or s
	case 'c', 's':
	default:
		return
	}
	var buf [16]byte
	w, _ := word(n, i, &buf)
	switch string(w) {
	case "cvv", "cvc":
		if j < len(n) && n[j] == '2' && (j+1 == len(n) || !isDigit(n[j+1])) {
			j++ // CVV2, CVC2
		}
		f.code(j)
	case "cv":
		if j < len(n) && n[j] == '2' {
			f.code(j + 1)
		}
	case "cid", "csc", "cvn", "cvd":
		f.code(j)
	case "security":
		if k, ok := nextWord(n, j, "code", "number"); ok {
			f.code(k)
		}
	case "card":
		if k, ok := nextWord(n, j, "verification"); ok {
			if k2, ok := nextWord(n, k, "value", "code", "number"); ok {
				k = k2
			}
			f.code(k)
		}
	case "ssn":
		f.ssnAfterKeyword(j)
	case "social":
		k, ok := nextWord(n, j, "security")
		if !ok {
			return
		}
		if k2, ok := nextWord(n, k, "number", "no"); ok {
			k = k2
			if k < len(n) && n[k] == '.' {
				k++
			}
		} else if q := skipSpaces(n, k); q > k && q < len(n) && n[q] == '#' {
			k = q + 1
		}
		f.ssnAfterKeyword(k)
	}
}

func skipSpaces(n string, p int) int {
	for p < len(n) && (n[p] == ' ' || n[p] == '\t' || n[p] == '\n' || n[p] == '\r') {
		p++
	}
	return p
}

// nextWord reports whether one of words follows n[p:] after whitespace, and where it ends.
func nextWord(n string, p int, words ...string) (int, bool) {
	q := skipSpaces(n, p)
	if q == p || q >= len(n) || !isLetter(n[q]) {
		return p, false
	}
	var buf [16]byte
	w, j := word(n, q, &buf)
	for _, x := range words {
		if string(w) == x {
			return j, true
		}
	}
	return p, false
}

// filler reports whether w may stand between a security code's keyword and its value: "CVV
// is 123", "security code: 123", "the code on the back is 1 2 3".
func filler(w []byte) bool {
	switch string(w) {
	case "is", "was", "number", "no", "num", "nr", "code", "value", "of", "it", "its", "s", "the",
		"my", "on", "back", "card", "digit", "digits", "three", "four", "are", "be", "should",
		"would", "will":
		return true
	}
	return false
}

// code masks a security code after its keyword (ending at p).
func (f *finder) code(p int) {
	n := f.n
	var buf [16]byte
	limit := p + 48
	for p < len(n) && p < limit {
		q := p
		for q < len(n) && (sepByte(n[q]) || n[q] == ':' || n[q] == '#' || n[q] == '=' || n[q] == '\'' || n[q] == '"' || n[q] == '(' || n[q] == ')') {
			q++
		}
		if q < len(n) && isLetter(n[q]) {
			w, j := word(n, q, &buf)
			if !filler(w) {
				return
			}
			p = j
			continue
		}
		p = q
		break
	}
	if a, b, ok := codeValue(n, p); ok {
		f.add(a, b, "cvv")
	}
}

// SSNs.

// ssn masks a US social security number written 123-45-6789 or 123 45 6789 at p, except
// numbers the SSA never issues (area 000, 666 or 900-999, group 00, serial 0000).
func (f *finder) ssn(p int) {
	n := f.n
	if len(n)-p < 11 {
		return
	}
	s := n[p : p+11]
	sep := s[3]
	if sep != '-' && sep != ' ' || s[6] != sep {
		return
	}
	for _, k := range [...]int{0, 1, 2, 4, 5, 7, 8, 9, 10} {
		if !isDigit(s[k]) {
			return
		}
	}
	if p+11 < len(n) && isWord(n[p+11]) {
		return
	}
	area, group, serial := s[0:3], s[4:6], s[7:11]
	if area == "000" || area == "666" || area[0] == '9' || group == "00" || serial == "0000" {
		return
	}
	f.add(p, p+11, "ssn")
}

// ssnAfterKeyword masks nine bare digits after "SSN" or "social security number", optionally
// after "is", ":", "#" or "=": without the keyword nine digits are just a number.
func (f *finder) ssnAfterKeyword(p int) {
	n := f.n
	q := skipSpaces(n, p)
	switch {
	case q < len(n) && (n[q] == ':' || n[q] == '#' || n[q] == '='):
		q++
	case q+1 < len(n) && n[q]|0x20 == 'i' && n[q+1]|0x20 == 's' && (q+2 == len(n) || !isWord(n[q+2])):
		q += 2
	}
	q = skipSpaces(n, q)
	e := q
	for e < len(n) && isDigit(n[e]) {
		e++
	}
	if e-q == 9 && (e == len(n) || !isWord(n[e])) {
		f.add(q, e, "ssn")
	}
}

// account masks the seed's pattern, four digits three times with hyphens (1234-5678-9012),
// kept for the 12-digit account numbers it was written for.
func (f *finder) account(p int) {
	n := f.n
	if len(n)-p < 14 {
		return
	}
	for k := 0; k < 14; k++ {
		c := n[p+k]
		if k == 4 || k == 9 {
			if c != '-' {
				return
			}
		} else if !isDigit(c) {
			return
		}
	}
	if p+14 < len(n) && isWord(n[p+14]) || f.inIdentifier(p, p+14) {
		return
	}
	f.add(p, p+14, "account")
}

// IBANs.

// iban masks an IBAN (ISO 13616) starting with the two letters n[i:j]: the country's length,
// electronic ("GB82WEST12345698765432") or printed in groups of four with spaces or hyphens
// ("GB82 WEST 1234 5698 7654 32"), in either case, with valid mod-97 check digits.
func (f *finder) iban(i, j int) {
	n := f.n
	if j-i != 2 || j+2 > len(n) || !isDigit(n[j]) || !isDigit(n[j+1]) {
		return
	}
	length := ibanLengths[[2]byte{n[i] &^ 0x20, n[i+1] &^ 0x20}]
	if length == 0 {
		return
	}
	var buf [34]byte
	count, p := 0, i
	for count < length && p < len(n) {
		c := n[p]
		switch {
		case isAlnum(c):
			buf[count] = c
			if isLetter(c) {
				buf[count] = c &^ 0x20
			}
			count++
			p++
			continue
		case count > 0 && count%4 == 0 && (c == ' ' || c == '-') && p+1 < len(n) && isAlnum(n[p+1]) && isAlnum(n[p-1]):
			p++
			continue
		}
		break
	}
	if count != length || p < len(n) && isAlnum(n[p]) || !mod97(buf[:length]) || f.inIdentifier(i, p) {
		return
	}
	f.add(i, p, "iban")
}

// mod97 is the ISO 7064 MOD 97-10 check of an upper-case IBAN.
func mod97(iban []byte) bool {
	r := 0
	for k := range iban {
		c := iban[(k+4)%len(iban)] // the first four characters move to the end
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	return r == 1
}

// ibanLengths is the IBAN length of each country that issues IBANs: the SWIFT IBAN registry,
// plus the countries whose banks use IBANs without being in it (Algeria, the West and Central
// African monetary unions, ...).
var ibanLengths = func() map[[2]byte]int {
	m := map[[2]byte]int{}
	for _, e := range []struct {
		cc string
		n  int
	}{
		{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
		{"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24},
		{"DE", 22}, {"DJ", 27}, {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
		{"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27},
		{"GT", 28}, {"HN", 28}, {"HR", 21}, {"HU", 28}, {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26},
		{"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20},
		{"LU", 20}, {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22}, {"MK", 19}, {"MN", 20},
		{"MR", 27}, {"MT", 31}, {"MU", 30}, {"NI", 28}, {"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24},
		{"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24},
		{"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"SO", 23}, {"ST", 25},
		{"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
		{"YE", 30},
		// in use outside the registry
		{"AO", 25}, {"BF", 28}, {"BJ", 28}, {"CF", 27}, {"CG", 27}, {"CI", 28}, {"CM", 27}, {"CV", 25},
		{"DZ", 26}, {"GA", 27}, {"GQ", 27}, {"GW", 25}, {"IR", 26}, {"KM", 27}, {"MA", 28}, {"MG", 27},
		{"ML", 28}, {"MZ", 25}, {"NE", 28}, {"SN", 28}, {"TD", 27}, {"TG", 28},
	} {
		m[[2]byte{e.cc[0], e.cc[1]}] = e.n
	}
	return m
}()
