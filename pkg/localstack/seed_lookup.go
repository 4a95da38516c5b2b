package localstack

import (
	"net/http"
	"time"

	"github.com/cxbridge/cxbridge/pkg/connectors/servicenow/servicenowtest"
)

// ServiceNow users the servicenow-lookup and priority-sync events use. Their sys_ids are fixed
// so that events can name them.
const (
	// Abel Tuter calls from (415) 555-0100 and has four open incidents and a closed one; he is a
	// VIP, the CFO of ACME Corporation.
	CallerAbel = "06f194fb9c61d421e121cdce95a71ae4"
	// Beth Anglin shares +1 212 555 0142 with her old, inactive account.
	CallerBeth    = "a76577e27a4a6234a237823d0e3ac5e2"
	CallerBethOld = "cbfa656d25391a07cd369204c9d470d2"
	// Charlie Whitherspoon has no open incident.
	CallerCharlie = "c71a7bb77a1fe293519507a80d2b4715"
	// David Loo has no phone number in ServiceNow; he is found by employee ID E20002.
	CallerDavid = "9ea1ce2f0361e158e3f84222a726fc8d"
	// Erin Rate's queries are rate-limited (429 with Retry-After 3600).
	CallerErin = "918b1fc057818d01dff6cf458a8e41b9"
)

// RateLimitedDigits is the digit piece every query about Erin's number carries (phoneLIKE429,
// caller_id.phoneLIKE429).
const RateLimitedDigits = "429"

func init() {
	servicenowSeeds = append(servicenowSeeds, seedLookup)
}

func seedLookup(sn *servicenowtest.Server) {
	// Abel is a VIP of ACME in the directory: the screen pop carries the flag and his company,
	// title, location and department (LookupUserFields' default).
	acme := sn.AddNamed("core_company", "ACME Corporation")
	dublin := sn.AddNamed("cmn_location", "Dublin HQ")
	finance := sn.AddNamed("cmn_department", "Finance")
	directory := map[string]map[string]string{
		CallerAbel: {"vip": "true", "title": "Chief Financial Officer", "company": acme, "location": dublin, "department": finance},
	}
	user := func(id, userName, first, last, phone, mobile, employee string, active bool) {
		fields := map[string]string{"sys_id": id, "user_name": userName, "first_name": first, "last_name": last,
			"phone": phone, "mobile_phone": mobile, "employee_number": employee, "email": userName + "@example.com"}
		if !active {
			fields["active"] = "false"
		}
		for k, v := range directory[id] {
			fields[k] = v
		}
		if _, err := sn.Insert("sys_user", fields); err != nil {
			panic(err)
		}
	}
	user(CallerAbel, "abel.tuter", "Abel", "Tuter", "(415) 555-0100", "", "E10001", true)
	user(CallerBeth, "beth.anglin", "Beth", "Anglin", "+1 212 555 0142", "", "E10002", true)
	user(CallerBethOld, "b.anglin", "Beth", "Anglin (old)", "212-555-0142", "", "", false)
	user(CallerCharlie, "charlie.whitherspoon", "Charlie", "Whitherspoon", "650.555.0123", "", "E10003", true)
	user(CallerDavid, "david.loo", "David", "Loo", "", "", "E20002", true)
	user(CallerErin, "erin.rate", "Erin", "Rate", "+1 415 555 0429", "", "E10005", true)

	at := time.Now().UTC().Add(-72 * time.Hour)
	incident := func(caller, desc, state, impact, urgency string, updated time.Duration) {
		sn.AddIncident(servicenowtest.Incident{CallerID: caller, ShortDescription: desc, State: state, Impact: impact, Urgency: urgency,
			ContactType: "phone", CreatedOn: at, UpdatedOn: at.Add(updated)})
	}
	incident(CallerAbel, "Laptop does not boot after the update", "2", "1", "1", 50*time.Hour)
	incident(CallerAbel, "VPN drops every hour", "3", "2", "2", 40*time.Hour)
	incident(CallerAbel, "Cannot print to the 3rd floor printer", "1", "3", "3", 30*time.Hour)
	incident(CallerAbel, "Request for a second monitor", "1", "3", "3", 10*time.Hour)
	incident(CallerAbel, "Password reset", "7", "3", "2", 60*time.Hour) // closed: never listed
	incident(CallerBeth, "Outlook keeps asking for the password", "2", "2", "2", 20*time.Hour)
	incident(CallerCharlie, "Headset replaced", "7", "3", "3", 5*time.Hour)

	sn.FailQuery("phoneLIKE"+RateLimitedDigits, servicenowtest.Failure{Status: http.StatusTooManyRequests, RetryAfter: 3600})
}
