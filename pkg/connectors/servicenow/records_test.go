package servicenow

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestRecordsRoundTripThroughJSON(t *testing.T) {
	in := Incident{SysID: "a9e30c7dc61122760116894de7bcc7bd", Number: "INC0010001", ShortDescription: "VPN",
		State: "2", StateLabel: "In Progress", Priority: "1", PriorityLabel: "1 - Critical", Impact: "1", Urgency: "1",
		CallerID: "46c6f9efa9fe198101ddf5eed9adf6e7", CallerName: "Abel Tuter", CorrelationID: "esc-1",
		ContactType: "phone", Category: "inquiry", Active: true,
		CreatedAt: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 11, 22, 9, 5, 0, 0, time.UTC)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var back Incident
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(in, back) {
		t.Errorf("incident round trip:\n%+v\n%+v\n%v", in, back, err)
	}
	u := User{SysID: "46c6f9efa9fe198101ddf5eed9adf6e7", UserName: "abel.tuter", Name: "Abel Tuter", Phone: "+1 415 555 0100", Active: true}
	b, _ = json.Marshal(u)
	var ub User
	if err := json.Unmarshal(b, &ub); err != nil || ub != u {
		t.Errorf("user round trip: %+v %v", ub, err)
	}
}

func TestFieldValueShapes(t *testing.T) {
	for raw, want := range map[string]FieldValue{
		`"abc"`: {Value: "abc"},
		`null`:  {},
		`3`:     {Value: "3"},
		`true`:  {Value: "true"},
		`{"link":"https://x/api/now/table/sys_user/1","value":"1"}`:           {Value: "1", Link: "https://x/api/now/table/sys_user/1"},
		`{"display_value":"In Progress","value":"2"}`:                         {Value: "2", Display: "In Progress"},
		`{"display_value":"Abel Tuter","link":"https://x/api/now/table/s/1"}`: {Display: "Abel Tuter", Link: "https://x/api/now/table/s/1"},
		`{"display_value":null,"value":7}`:                                    {Value: "7"},
	} {
		var f FieldValue
		if err := json.Unmarshal([]byte(raw), &f); err != nil || f != want {
			t.Errorf("%s -> %+v, %v; want %+v", raw, f, err, want)
		}
	}
	if (FieldValue{Value: "2", Display: "In Progress"}).Label() != "In Progress" || (FieldValue{Value: "2"}).Label() != "2" {
		t.Error("Label")
	}
	if _, err := ParseTime("2026-11-22T09:00:00Z"); err == nil {
		t.Error("ParseTime accepted RFC 3339; actual values are yyyy-MM-dd HH:mm:ss")
	}
	if got := FormatTime(time.Date(2026, 11, 22, 10, 0, 0, 0, time.FixedZone("CET", 3600))); got != "2026-11-22 09:00:00" {
		t.Errorf("FormatTime = %q", got)
	}
}
