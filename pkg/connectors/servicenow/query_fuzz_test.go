package servicenow

import (
	"strings"
	"testing"
)

// FuzzQueryValues holds the encoded-query builder to its promise: whatever string reaches a
// value constructor (digits, a phone number, an idempotency key, an employee ID under a careless
// ".*" pattern), either it is refused, or the encoded query is exactly the benign query with the
// value in its slot: the same conditions, operators, ^OR, ^NQ and ORDERBY, in the same places.
func FuzzQueryValues(f *testing.F) {
	for _, s := range []string{"1234", "+1 (415) 555-0100", "E10001", "cxb.conv.abc-1", "1234^ORactive=true", "E1^NQsys_id!=0",
		"javascript:gs.log(1)", "LIKE", "a_b", "１２３４", "12\n34", "ORDERBYsys_id", "e1", ""} {
		f.Add(s)
	}
	careless, err := NewTokenPattern(`.*`)
	if err != nil {
		f.Fatal(err)
	}
	build := func(emp Value, digits Value, key Value, phone Value) (string, error) {
		return NewQuery().
			Where(Eq(FieldEmployeeNumber, emp)).
			Where(Like(FieldPhone, digits), Like(FieldMobilePhone, digits)).
			NQ().
			Where(StartsWith(FieldCorrelationID, key)).
			Where(EndsWith(FieldPhone, phone)).
			OrderByDesc(FieldUpdatedOn).Encode()
	}
	const template = "employee_number=%E^phoneLIKE%D^ORmobile_phoneLIKE%D^NQcorrelation_idSTARTSWITH%K^phoneENDSWITH%P^ORDERBYDESCsys_updated_on"
	f.Fuzz(func(t *testing.T, s string) {
		var emp, digits, key, phone Value = Token{"E1"}, Digits{"1234"}, Token{"k1"}, Digits{"5678"}
		if v, err := careless.Parse(s); err == nil {
			emp = v
		}
		if v, err := ParseDigits(s); err == nil {
			digits = v
		}
		if v, err := ParseKey(s); err == nil {
			key = v
		}
		if v, err := PhoneDigits(s); err == nil {
			phone = v
		}
		got, err := build(emp, digits, key, phone)
		if err != nil {
			// Only the LIKE family refuses what the constructors accept ("_" is a wildcard there).
			if !strings.Contains(err.Error(), "_") {
				t.Fatalf("%q: accepted by a constructor, refused by the builder: %v", s, err)
			}
			return
		}
		str := func(v Value) string { x, _ := v.queryValue(); return x }
		want := strings.NewReplacer("%E", str(emp), "%D", str(digits), "%K", str(key), "%P", str(phone)).Replace(template)
		if got != want {
			t.Fatalf("%q changed the query:\n got %s\nwant %s", s, got, want)
		}
		for _, v := range []string{str(emp), str(digits), str(key), str(phone)} {
			if strings.ContainsAny(v, "^=!<>@,%*&\"':\\ \t\r\n") || strings.Contains(strings.ToLower(v), "javascript") {
				t.Fatalf("value %q from %q can change how ServiceNow reads the query", v, s)
			}
		}
	})
}
