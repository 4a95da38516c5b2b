package localstack_test

import "github.com/cxbridge/cxbridge/pkg/localstack"

func init() {
	expectAll(map[string]expect{
		"servicenow-lookup/match-by-ani.json": {Status: 200, Body: m{
			"status": "ok", "found": true, "reason": "", "matchedBy": "ani", "matchCount": 1.0, "callerNumber": "+14155550100",
			"userSysId": localstack.CallerAbel, "userName": "abel.tuter", "userDisplayName": "Abel Tuter", "userActive": true,
			"incidentCount": 3.0, "conversationLinked": true, "learnedPhone": false,
			"incident1ShortDescription": "Laptop does not boot after the update", "incident1State": "In Progress", "incident1Priority": "1 - Critical",
			"incident2ShortDescription": "VPN drops every hour", "incident2State": "On Hold",
			"incident3ShortDescription": "Cannot print to the 3rd floor printer", "incident3State": "New"}},
		"servicenow-lookup/several-users.json": {Status: 200, Body: m{
			"status": "ok", "found": true, "matchedBy": "ani", "matchCount": 2.0, "userSysId": localstack.CallerBeth, "userActive": true,
			"incidentCount": 1.0, "incident1ShortDescription": "Outlook keeps asking for the password"}},
		"servicenow-lookup/no-incidents.json": {Status: 200, Body: m{
			"status": "ok", "found": true, "userSysId": localstack.CallerCharlie, "callerNumber": "+16505550123",
			"incidentCount": 0.0, "incident1Number": "", "mostRecentIncidentUrl": ""}},
		"servicenow-lookup/employee-id-fallback.json": {Status: 200, Body: m{
			"status": "ok", "found": true, "matchedBy": "employee_id", "userSysId": localstack.CallerDavid, "userName": "david.loo",
			"learnedPhone": true, "conversationLinked": true}},
		"servicenow-lookup/withheld-number.json": {Status: 200, Body: m{
			"status": "ok", "found": false, "reason": "withheld_number", "callerNumber": "", "matchCount": 0.0}},
		"servicenow-lookup/injection-attempt.json": {Status: 200, Body: m{
			"status": "ok", "found": false, "reason": "invalid_employee_id", "matchCount": 0.0, "userSysId": "", "incidentCount": 0.0}},
		"servicenow-lookup/servicenow-429.json": {Status: 200, Body: m{
			"status": "unavailable", "found": false, "reason": "rate_limited", "callerNumber": "+14155550429"}},
		"servicenow-lookup/missing-input.json": {Status: 400, Body: m{
			"status": "rejected", "error": m{"field": "ani", "code": "missing_field"}}},
		"servicenow-lookup/direct-invoke.json": {Body: m{
			"status": "ok", "found": true, "userSysId": localstack.CallerAbel, "incidentCount": 3.0}},
	})
}
