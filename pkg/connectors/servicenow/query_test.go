package servicenow

import (
	"errors"
	"strings"
	"testing"
)

// Attack strings a caller could put where a phone number, employee number or key belongs. Each
// would change the meaning of a naively concatenated encoded query.
var injections = []string{
	"5551234^ORactive=true",              // OR with an always-true term
	"5551234^NQactive=true",              // new query: every active row
	"5551234^ORDERBYDESCsys_id",          // reorder
	"^ORDERBYnumber",                     // order only
	"5551234^bogus=1",                    // invalid term, silently dropped by ServiceNow
	"=",                                  // operator
	"5551234=1",                          // operator in value
	"!=5551234",                          // operator
	"5551234LIKE1",                       // operator keyword
	"LIKE",                               // operator keyword alone
	"STARTSWITH1",                        // operator keyword
	"NQ",                                 // new-query keyword
	"ORDERBYnumber",                      // order keyword
	"ORDERBYDESCsys_updated_on",          // order keyword
	"5551234\nactive=true",               // newline
	"5551234\r\n^ORactive=true",          // CRLF
	"5551234\t",                          // tab
	"5551234 ^OR",                        // space + OR
	"５５５１２３４",                            // fullwidth digits
	"٥٥٥١٢٣٤",                            // Arabic-Indic digits
	"555１234",                            // one fullwidth digit
	"5551234＾ORactive=true",              // fullwidth circumflex
	"5551234ˆORactive=true",              // modifier letter circumflex
	"5551234\u200b",                      // zero-width space
	"javascript:gs.getUserID()",          // server-side script in a value
	"5551234%",                           // SQL wildcard
	"5551234,1",                          // IN separator
	"5551234@1",                          // BETWEEN separator
	"5551234&sysparm_limit=100000",       // parameter smuggling
	"5551234%5EORactive%3Dtrue",          // pre-encoded caret
	"",                                   // empty: LIKE "" matches everything
	"E12345^ORemployee_numberISNOTEMPTY", // employee number with OR
}

func TestValueConstructorsRefuseEveryInjection(t *testing.T) {
	permissive, err := NewTokenPattern(`.*`) // a careless configuration must still be safe
	if err != nil {
		t.Fatal(err)
	}
	strict, err := NewTokenPattern(`[A-Z][0-9]{4,8}`)
	if err != nil {
		t.Fatal(err)
	}
	ctors := map[string]func(string) error{
		"ParseDigits":      func(s string) error { _, err := ParseDigits(s); return err },
		"PhoneDigits":      func(s string) error { _, err := PhoneDigits(s); return err },
		"ParseSysID":       func(s string) error { _, err := ParseSysID(s); return err },
		"ParseKey":         func(s string) error { _, err := ParseKey(s); return err },
		"Pattern(.*)":      func(s string) error { _, err := permissive.Parse(s); return err },
		"Pattern(strict)":  func(s string) error { _, err := strict.Parse(s); return err },
		"PhoneDigits+tel:": func(s string) error { _, err := PhoneDigits("tel:" + s); return err },
	}
	for name, ctor := range ctors {
		for _, attack := range injections {
			err := ctor(attack)
			if err == nil {
				t.Errorf("%s(%q) accepted an injection", name, attack)
				continue
			}
			if !errors.Is(err, ErrInvalidQuery) {
				t.Errorf("%s(%q): error %v does not wrap ErrInvalidQuery", name, attack, err)
			}
			if len(attack) > 8 && strings.Contains(err.Error(), attack) {
				t.Errorf("%s: error message echoes the refused value: %v", name, err)
			}
		}
	}
}

func TestDigitsAcceptPhoneFragments(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tel:+14155550100", "14155550100"},
		{"+1 (415) 555-0100", "14155550100"},
		{"+44 20 7946 0958", "442079460958"},
		{"0049.30.1234567", "0049301234567"},
		{"5550100", "5550100"},
	} {
		d, err := PhoneDigits(tc.in)
		if err != nil || d.String() != tc.want {
			t.Errorf("PhoneDigits(%q) = %q, %v; want %q", tc.in, d, err, tc.want)
		}
	}
	d, _ := PhoneDigits("+14155550100")
	if got := d.Last(10).String(); got != "4155550100" {
		t.Errorf("Last(10) = %q", got)
	}
	if got := d.Last(99).String(); got != "14155550100" {
		t.Errorf("Last(99) = %q", got)
	}
	q := NewQuery().Where(Like(FieldPhone, d.Last(10)), Like(FieldMobilePhone, d.Last(10))).Where(Eq(FieldActive, Bool(true)))
	got, err := q.Encode()
	if err != nil || got != "phoneLIKE4155550100^ORmobile_phoneLIKE4155550100^active=true" {
		t.Errorf("Encode = %q, %v", got, err)
	}
	if _, err := PhoneDigits("123"); err == nil {
		t.Error("PhoneDigits accepted 3 digits")
	}
}

func TestEncodeShapes(t *testing.T) {
	caller := MustSysID("46c6f9efa9fe198101ddf5eed9adf6e7")
	phone, _ := ParseDigits("4155550100")
	key := MustKey("esc-7f3c2a10-conv-42")
	emp, _ := mustPattern(t, `E[0-9]{5}`).Parse("E12345")
	for name, tc := range map[string]struct {
		q    *EncodedQuery
		want string
	}{
		"lookup incidents by dot-walk": {
			NewQuery().Where(Like(FieldCallerPhone, phone), Like(FieldCallerMobilePhone, phone)).Where(OpenStates()).OrderByDesc(FieldUpdatedOn),
			"caller_id.phoneLIKE4155550100^ORcaller_id.mobile_phoneLIKE4155550100^stateIN1,2,3^ORDERBYDESCsys_updated_on",
		},
		"seed query (caller sys_id)": {
			NewQuery().Where(Eq(FieldCallerID, caller)).OrderByDesc(FieldUpdatedOn),
			"caller_id=46c6f9efa9fe198101ddf5eed9adf6e7^ORDERBYDESCsys_updated_on",
		},
		"correlation id": {
			NewQuery().Where(Eq(FieldCorrelationID, key)).OrderBy(FieldCreatedOn),
			"correlation_id=esc-7f3c2a10-conv-42^ORDERBYsys_created_on",
		},
		"employee number, new query": {
			NewQuery().Where(Eq(FieldEmployeeNumber, emp)).NQ().Where(StartsWith(FieldPhone, phone), EndsWith(FieldMobilePhone, phone)).Where(NotEq(FieldActive, Bool(false))),
			"employee_number=E12345^NQphoneSTARTSWITH4155550100^ORmobile_phoneENDSWITH4155550100^active!=false",
		},
		"ints": {
			NewQuery().Where(In(FieldImpact, Int(1), Int(2))).Where(Eq(FieldUrgency, Int(1))),
			"impactIN1,2^urgency=1",
		},
	} {
		got, err := tc.q.Encode()
		if err != nil || got != tc.want {
			t.Errorf("%s: Encode() = %q, %v\nwant %q", name, got, err, tc.want)
		}
	}
}

func mustPattern(t *testing.T, expr string) *TokenPattern {
	t.Helper()
	p, err := NewTokenPattern(expr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEncodeRefuses(t *testing.T) {
	phone, _ := ParseDigits("5550100")
	underscore := MustKey("esc_1")
	for name, q := range map[string]*EncodedQuery{
		"zero Digits":           NewQuery().Where(Like(FieldPhone, Digits{})),
		"zero SysID":            NewQuery().Where(Eq(FieldCallerID, SysID{})),
		"zero Token":            NewQuery().Where(Eq(FieldCorrelationID, Token{})),
		"nil value":             NewQuery().Where(Eq(FieldPhone, nil)),
		"empty IN":              NewQuery().Where(In(FieldState)),
		"uppercase field":       NewQuery().Where(Eq("Phone", phone)),
		"field with operator":   NewQuery().Where(Eq("phone^ORactive", phone)),
		"field with keyword":    NewQuery().Where(Eq("phoneLIKE", phone)),
		"field with =":          NewQuery().Where(Eq("active=true^phone", phone)),
		"field with space":      NewQuery().Where(Eq("phone ", phone)),
		"empty dot-walk":        NewQuery().Where(Eq("caller_id..phone", phone)),
		"dot-walk too deep":     NewQuery().Where(Eq("a.b.c.d.e", phone)),
		"bad ORDERBY field":     NewQuery().Where(Eq(FieldPhone, phone)).OrderBy("number^NQactive=true"),
		"order only":            NewQuery().OrderByDesc(FieldUpdatedOn),
		"empty query":           NewQuery(),
		"empty NQ part":         NewQuery().Where(Eq(FieldPhone, phone)).NQ(),
		"LIKE with _ wildcard":  NewQuery().Where(Like(FieldCorrelationID, underscore)),
		"forged Digits (guard)": NewQuery().Where(Like(FieldPhone, Digits{"1^ORactive=true"})),
		"forged Token (guard)":  NewQuery().Where(Eq(FieldEmployeeNumber, Token{"E1\nactive=true"})),
		"forged SysID (guard)":  NewQuery().Where(Eq(FieldCallerID, SysID{"javascript"})),
	} {
		s, err := q.Encode()
		if err == nil {
			t.Errorf("%s: Encode() = %q, want an error", name, s)
			continue
		}
		if !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%s: %v does not wrap ErrInvalidQuery", name, err)
		}
	}
	// "_" is fine where it is not a wildcard.
	if s, err := NewQuery().Where(Eq(FieldCorrelationID, underscore)).Encode(); err != nil || s != "correlation_id=esc_1" {
		t.Errorf("Eq with _: %q, %v", s, err)
	}
	var nilQuery *EncodedQuery
	if _, err := nilQuery.Encode(); err == nil {
		t.Error("nil query encoded")
	}
}

func TestSysIDAndTokenRules(t *testing.T) {
	if _, err := ParseSysID("46C6F9EFA9FE198101DDF5EED9ADF6E7"); err == nil {
		t.Error("uppercase sys_id accepted")
	}
	if _, err := ParseSysID("46c6f9efa9fe198101ddf5eed9adf6e"); err == nil {
		t.Error("31-character sys_id accepted")
	}
	if _, err := ParseKey(strings.Repeat("a", MaxToken+1)); err == nil {
		t.Error("over-long key accepted")
	}
	p := mustPattern(t, `[0-9]{5,8}`)
	if _, err := p.Parse("123456"); err != nil {
		t.Errorf("pattern rejected a match: %v", err)
	}
	if _, err := p.Parse("1234"); err == nil {
		t.Error("pattern accepted a non-match")
	}
	if _, err := p.Parse("123456x"); err == nil {
		t.Error("pattern is not anchored at the end")
	}
	if _, err := NewTokenPattern(""); err == nil {
		t.Error("empty pattern accepted")
	}
	if _, err := NewTokenPattern("("); err == nil {
		t.Error("bad pattern accepted")
	}
	var nilPattern *TokenPattern
	if _, err := nilPattern.Parse("E12345"); err == nil {
		t.Error("nil pattern accepted a token")
	}
}

func TestZeroValueQuery(t *testing.T) {
	var q EncodedQuery
	if _, err := q.Encode(); err == nil {
		t.Error("zero query encoded")
	}
	d, _ := ParseDigits("1234")
	if s, err := q.Where(Eq(FieldPhone, d)).Encode(); err != nil || s != "phone=1234" {
		t.Errorf("zero query Where: %q %v", s, err)
	}
}
