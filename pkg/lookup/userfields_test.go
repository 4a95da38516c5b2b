package lookup_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/cxbridge/cxbridge/pkg/breaker"
	"github.com/cxbridge/cxbridge/pkg/config"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow"
	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
	"github.com/cxbridge/cxbridge/pkg/lookup"
)

// TestTheDirectorysVIPFlagAndExtraFields: the screen pop carries sys_user.vip and the configured
// extra fields as flat outputs, references as the names ServiceNow shows, in the same single
// user query (no extra round trip).
func TestTheDirectorysVIPFlagAndExtraFields(t *testing.T) {
	e := newEnv(t, func(c *lookup.Config, _ *breaker.Settings) {
		var err error
		if c.UserFields, err = lookup.ParseUserFields([]string{"company", "title", "location", "location.city", "cost_center"}); err != nil {
			t.Fatal(err)
		}
	})
	acme := e.sn.AddNamed("core_company", "ACME Corporation")
	dublin, err := e.sn.Insert("cmn_location", map[string]string{"name": "Dublin HQ", "city": "Dublin"})
	if err != nil {
		t.Fatal(err)
	}
	e.sn.AddUser(servicenowtest.User{UserName: "fred.luddy", FirstName: "Fred", LastName: "Luddy", Phone: "+1 415 555 0100",
		VIP: true, Title: "Chief Executive Officer", Company: acme, Location: dublin})
	_, _, before := e.calls()
	r, _ := e.lookup(t, `{"ani":"+14155550100"}`)
	if !r.Found || !r.UserVIP {
		t.Fatalf("want the VIP found: %+v", r)
	}
	want := map[string]string{"userCompany": "ACME Corporation", "userTitle": "Chief Executive Officer",
		"userLocation": "Dublin HQ", "userLocationCity": "Dublin", "userCostCenter": ""} // no such field on this instance: empty
	got := map[string]string{}
	for _, f := range r.UserFields {
		got[f.Output] = f.Value
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("user fields %v; want %v", got, want)
	}
	if _, _, after := e.calls(); after-before != 2 {
		t.Fatalf("%d ServiceNow requests; the extra fields must come with the user query", after-before)
	}
	users := e.sn.Received("/api/now/v2/table/sys_user")
	q := users[len(users)-1].Query
	if q.Get("sysparm_display_value") != "all" || !strings.HasSuffix(q.Get("sysparm_fields"), ",vip,company,title,location,location.city,cost_center") {
		t.Fatalf("user query %v", q)
	}

	// A caller not in the directory: every output is still there, empty.
	r, raw := e.lookupRaw(t, `{"ani":"+14155550199"}`)
	if r.Found || r.UserVIP {
		t.Fatalf("%+v", r)
	}
	var flat map[string]any
	if err := json.Unmarshal([]byte(raw), &flat); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"userVip", "userCompany", "userTitle", "userLocation", "userLocationCity", "userCostCenter"} {
		if _, ok := flat[k]; !ok {
			t.Errorf("%s is missing from %s", k, raw)
		}
	}
}

func TestUserFieldsConfiguration(t *testing.T) {
	for v, want := range map[string]string{
		"":                                 "", // the default
		"none":                             "",
		"company, title":                   "",
		"manager.email":                    "",
		"Company":                          "", // read as company
		"phone":                            "phone is returned already",
		"vip":                              "vip is returned already",
		"url":                              "url would be returned as userUrl, which is another output",
		"cost_center,cost.center":          "both be returned as userCostCenter",
		"company;title":                    "not a field name",
		"a.b.c.d":                          "not a field name",
		"a,b,c,d,e,f,g,h,i,j,k":            "at most 10",
		"display_name":                     "would be returned as userDisplayName",
		"location.city,location.country,x": "",
	} {
		r := config.FromMap(map[string]string{"LOOKUP_USER_FIELDS": v, "SERVICENOW_BASE_URL": "https://x.service-now.com", "SERVICENOW_SECRET_ID": "s", "STATE_TABLE": "t"})
		c := lookup.LoadConfig(r)
		err := r.Err()
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", v, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "LOOKUP_USER_FIELDS")):
			t.Errorf("%q: %v; want %q", v, err, want)
		}
		if v == "" && len(c.UserFields) != len(lookup.DefaultUserFields) {
			t.Errorf("default: %v", c.UserFields)
		}
		if v == "none" && len(c.UserFields) != 0 {
			t.Errorf("none: %v", c.UserFields)
		}
	}
	if got := lookup.OutputName(servicenow.Field("u_badge_id")); got != "userUBadgeId" {
		t.Errorf("OutputName: %s", got)
	}
}
