package jiratest_test

import (
	"testing"

	"github.com/cxbridge/cxbridge/pkg/connectors/jira/jiratest"
)

func TestPermissionsReportedAndEnforced(t *testing.T) {
	s := newFake(t, jiratest.Config{Email: "bot@example.com", APIToken: "tok"})
	perms := func() map[string]any {
		t.Helper()
		status, out, _ := call(t, s, "GET", "/rest/api/3/mypermissions?projectKey=SUPP&permissions=BROWSE_PROJECTS,CREATE_ISSUES,ADD_COMMENTS", nil)
		if status != 200 {
			t.Fatalf("mypermissions: %d %v", status, out)
		}
		return out["permissions"].(map[string]any)
	}
	have := func(p map[string]any, k string) bool { return p[k].(map[string]any)["havePermission"] == true }
	if p := perms(); !have(p, "CREATE_ISSUES") || !have(p, "BROWSE_PROJECTS") {
		t.Fatalf("granted by default: %v", p)
	}
	if status, _, _ := call(t, s, "GET", "/rest/api/3/mypermissions?projectKey=SUPP", nil); status != 400 {
		t.Errorf("permissions is required: got %d", status)
	}
	if status, _, _ := call(t, s, "GET", "/rest/api/3/mypermissions?projectKey=NOPE&permissions=CREATE_ISSUES", nil); status != 404 {
		t.Errorf("unknown project: got %d", status)
	}
	if status, _, _ := call(t, s, "GET", "/rest/api/3/mypermissions?permissions=NOT_A_PERMISSION", nil); status != 400 {
		t.Errorf("unknown permission key: got %d", status)
	}

	s.RevokePermission("SUPP", jiratest.PermCreateIssues)
	if p := perms(); have(p, "CREATE_ISSUES") || !have(p, "ADD_COMMENTS") {
		t.Fatalf("after revoking CREATE_ISSUES: %v", p)
	}
	status, out, _ := call(t, s, "POST", "/rest/servicedeskapi/request", map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "requestFieldValues": map[string]any{"summary": "x"}})
	if status != 403 || out["errorMessage"] == nil {
		t.Fatalf("create without CREATE_ISSUES: %d %v", status, out)
	}
	s.RestorePermission("SUPP", jiratest.PermCreateIssues)
	status, out, _ = call(t, s, "POST", "/rest/servicedeskapi/request", map[string]any{"serviceDeskId": "1", "requestTypeId": "10", "requestFieldValues": map[string]any{"summary": "x"}})
	if status != 201 {
		t.Fatalf("create after restoring: %d %v", status, out)
	}
	key := out["issueKey"].(string)

	s.RevokePermission("SUPP", jiratest.PermAddComments)
	if status, _, _ := call(t, s, "POST", "/rest/servicedeskapi/request/"+key+"/comment", map[string]any{"body": "hi", "public": false}); status != 403 {
		t.Errorf("comment without ADD_COMMENTS: got %d", status)
	}
	s.RevokePermission("SUPP", jiratest.PermBrowseProjects)
	if status, _, _ := call(t, s, "GET", "/rest/servicedeskapi/servicedesk/1", nil); status != 404 {
		t.Errorf("desk without BROWSE_PROJECTS: got %d", status)
	}
	if p := perms(); have(p, "CREATE_ISSUES") {
		t.Errorf("without BROWSE_PROJECTS no project permission holds: %v", p)
	}
	s.RestorePermission("SUPP", jiratest.PermBrowseProjects)
	status, out, _ = call(t, s, "GET", "/rest/servicedeskapi/servicedesk/1", nil)
	if status != 200 || out["projectKey"] != "SUPP" {
		t.Fatalf("service desk: %d %v", status, out)
	}

	s.RevokePermission("", jiratest.PermAdminister)
	_, out, _ = call(t, s, "GET", "/rest/api/3/mypermissions?permissions=ADMINISTER", nil)
	if out["permissions"].(map[string]any)["ADMINISTER"].(map[string]any)["havePermission"] != false {
		t.Errorf("ADMINISTER revoked: %v", out)
	}
}
