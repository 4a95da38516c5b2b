package health

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cxbridge/cxbridge/pkg/connectors"
)

// Jira project permissions each use needs (the Jira Cloud permission keys). cxbridge never
// transitions a request, so TRANSITION_ISSUES is not required of it.
var jiraPermissions = map[string][]string{
	"escalations": {"BROWSE_PROJECTS", "CREATE_ISSUES", "ADD_COMMENTS"},
	// messagebird-inbound also edits the description (aggregation) and its own comments, sets
	// the recovery label and attaches the user's media.
	"conversations": {"BROWSE_PROJECTS", "CREATE_ISSUES", "ADD_COMMENTS", "EDIT_ISSUES", "EDIT_OWN_COMMENTS", "CREATE_ATTACHMENTS"},
}

// conversationFields are the request fields messagebird-inbound fills.
var conversationFields = []string{"summary", "description", "labels"}

// checkJira: GET /rest/api/3/myself (credentials; a service account's token exchange first),
// per service desk GET /rest/servicedeskapi/servicedesk/{id} and the request type's form
// (GET .../requesttype/{id}/field), per project GET /rest/api/3/mypermissions for the project
// permissions, and the global ADMINISTER permission that creating customers needs.
func (c *Checker) checkJira(ctx context.Context, rec *recorder) {
	cfg := c.Config.Jira
	var me struct {
		AccountID   string `json:"accountId"`
		DisplayName string `json:"displayName"`
	}
	p := rec.probe(CheckAuthentication, "", "GET /rest/api/3/myself")
	if resp, err := c.jira(ctx, rec, "myself", "/rest/api/3/myself", nil, &me); err != nil {
		p.failed(err, fixes{forbidden: "Jira refused the integration account (403): it may be deactivated or blocked from API access by an admin policy; check it in admin.atlassian.com > Directory."})
		for _, d := range cfg.Desks {
			rec.skip(CheckServiceDesk, d.String(), "authentication failed")
		}
		return
	} else {
		p.ok(resp.Status, fmt.Sprintf("signed in as %s (accountId %s)", me.DisplayName, me.AccountID))
	}

	needs := map[string][]string{} // project key -> permissions
	uses := map[string][]string{}  // project key -> what it is used for
	for _, d := range cfg.Desks {
		var sd struct {
			ID          string `json:"id"`
			ProjectKey  string `json:"projectKey"`
			ProjectName string `json:"projectName"`
		}
		path := "/rest/servicedeskapi/servicedesk/" + url.PathEscape(d.ServiceDeskID)
		p := rec.probe(CheckServiceDesk, d.String(), "GET "+path)
		resp, err := c.jira(ctx, rec, "service desk", path, nil, &sd)
		if err != nil {
			p.failed(err, fixes{notFound: fmt.Sprintf("Service desk %s does not exist, or the integration account cannot see it (JSM answers 404 for both): add the account to the project as an agent (Project settings > People), or fix the id in %s.", d.ServiceDeskID, deskParam(d))})
			rec.skip(CheckRequestType, d.String(), "the service desk is not reachable")
			continue
		}
		if d.ProjectKey != "" && !strings.EqualFold(sd.ProjectKey, d.ProjectKey) {
			p.done(Failed, resp.Status, fmt.Sprintf("JiraProjects maps %s to service desk %s, which is project %s (%s)", d.ProjectKey, d.ServiceDeskID, sd.ProjectKey, sd.ProjectName),
				fmt.Sprintf("Fix JiraProjects: %s=<the service desk id of project %s>/<request type id>.", d.ProjectKey, d.ProjectKey))
		} else {
			p.ok(resp.Status, fmt.Sprintf("project %s (%s), used for %s", sd.ProjectKey, sd.ProjectName, d.Use))
		}
		for _, perm := range jiraPermissions[d.Use] {
			if !slices.Contains(needs[sd.ProjectKey], perm) {
				needs[sd.ProjectKey] = append(needs[sd.ProjectKey], perm)
			}
		}
		if !slices.Contains(uses[sd.ProjectKey], d.Use) {
			uses[sd.ProjectKey] = append(uses[sd.ProjectKey], d.Use)
		}
		c.checkRequestType(ctx, rec, d)
	}

	for _, key := range sortedKeys(needs) {
		perms := needs[key]
		q := url.Values{"projectKey": {key}, "permissions": {strings.Join(perms, ",")}}
		path := "/rest/api/3/mypermissions?" + q.Encode()
		p := rec.probe(CheckPermissions, key, "GET "+path)
		var out struct {
			Permissions map[string]struct {
				Name           string `json:"name"`
				HavePermission bool   `json:"havePermission"`
			} `json:"permissions"`
		}
		resp, err := c.jira(ctx, rec, "my permissions", "/rest/api/3/mypermissions", q, &out)
		if err != nil {
			p.failed(err, fixes{})
			continue
		}
		var missing []string
		for _, perm := range perms {
			if got, ok := out.Permissions[perm]; !ok || !got.HavePermission {
				missing = append(missing, perm)
			}
		}
		if len(missing) > 0 {
			p.done(Failed, resp.Status,
				fmt.Sprintf("the integration account lacks %s in project %s (needed for %s)", strings.Join(missing, ", "), key, strings.Join(uses[key], " and ")),
				fmt.Sprintf("In Jira, Project settings > People for %s: give the integration account a role that the project's permission scheme grants %s (e.g. Service Desk Team), then run cxbridge health again.", key, strings.Join(missing, ", ")))
			continue
		}
		p.ok(resp.Status, fmt.Sprintf("has %s in %s", strings.Join(perms, ", "), key))
	}

	if len(cfg.Desks) > 0 {
		q := url.Values{"permissions": {"ADMINISTER"}}
		p := rec.probe(CheckCustomers, "", "GET /rest/api/3/mypermissions?"+q.Encode())
		var out struct {
			Permissions map[string]struct {
				HavePermission bool `json:"havePermission"`
			} `json:"permissions"`
		}
		resp, err := c.jira(ctx, rec, "my permissions", "/rest/api/3/mypermissions", q, &out)
		switch {
		case err != nil:
			p.failed(err, fixes{})
		case !out.Permissions["ADMINISTER"].HavePermission:
			p.done(Warning, resp.Status,
				"the integration account cannot create JSM customers (POST /rest/servicedeskapi/customer needs Jira Administrators): requests for an e-mail address that is not a customer yet are raised as the integration account, and their description says so",
				"Optional: give the account the Jira Administrators global permission, or pass customerAccountId from Genesys.")
		default:
			p.ok(resp.Status, "can create JSM customers for unknown e-mail addresses")
		}
	}
}

// checkRequestType reads a request type's form: it must exist in the desk, every required
// field must be one cxbridge fills, every field cxbridge fills must be on the form, and the
// field that carries the escalation id (crash recovery) must be there.
func (c *Checker) checkRequestType(ctx context.Context, rec *recorder, d Desk) {
	path := "/rest/servicedeskapi/servicedesk/" + url.PathEscape(d.ServiceDeskID) + "/requesttype/" + url.PathEscape(d.RequestTypeID) + "/field"
	p := rec.probe(CheckRequestType, d.String(), "GET "+path)
	var form struct {
		Fields []struct {
			FieldID  string `json:"fieldId"`
			Name     string `json:"name"`
			Required bool   `json:"required"`
		} `json:"requestTypeFields"`
	}
	resp, err := c.jira(ctx, rec, "request type fields", path, nil, &form)
	if err != nil {
		p.failed(err, fixes{notFound: fmt.Sprintf("Request type %s is not in service desk %s (or the account cannot see it): fix the id in %s.", d.RequestTypeID, d.ServiceDeskID, deskParam(d))})
		return
	}
	filled, keyField, mapParam := c.Config.Jira.Fields, c.Config.Jira.KeyField, "JiraFieldMap"
	if d.Use == "conversations" {
		filled, keyField, mapParam = conversationFields, "labels", ""
	}
	onForm := map[string]bool{}
	var problems, fixesNeeded []string
	for _, f := range form.Fields {
		onForm[f.FieldID] = true
		if f.Required && !slices.Contains(filled, f.FieldID) && f.FieldID != keyField {
			problems = append(problems, fmt.Sprintf("requires %s (%s), which cxbridge does not fill", f.Name, f.FieldID))
			if mapParam != "" {
				fixesNeeded = append(fixesNeeded, fmt.Sprintf("map %s in %s or make it optional", f.FieldID, mapParam))
			} else {
				fixesNeeded = append(fixesNeeded, fmt.Sprintf("make %s optional on the form", f.Name))
			}
		}
	}
	for _, id := range filled {
		if !onForm[id] && !(d.Use == "conversations" && id != "summary") {
			problems = append(problems, fmt.Sprintf("%s fills %s, which is not on the form (JSM refuses the request)", orText(mapParam, "cxbridge"), id))
			fixesNeeded = append(fixesNeeded, fmt.Sprintf("add %s to the form or remove it from %s", id, orText(mapParam, "the form's requirements")))
		}
	}
	if !onForm[keyField] {
		problems = append(problems, fmt.Sprintf("%s (where a request carries its cxbridge id for crash recovery) is not on the form", keyField))
		fixesNeeded = append(fixesNeeded, fmt.Sprintf("add %s to the request type's form (it may be hidden)", keyField))
	}
	if len(problems) > 0 {
		p.done(Failed, resp.Status, strings.Join(problems, "; "), "In the request type's form: "+strings.Join(fixesNeeded, "; ")+".")
		return
	}
	p.ok(resp.Status, fmt.Sprintf("%d fields on the form; every required one is filled", len(form.Fields)))
}

func (c *Checker) jira(ctx context.Context, rec *recorder, op, path string, q url.Values, out any) (*connectors.Response, error) {
	cctx, cancel := rec.ctx(ctx)
	defer cancel()
	return c.Jira.Do(cctx, connectors.Request{Op: "health: " + op, Method: http.MethodGet, Path: path, Query: q}, out)
}

func deskParam(d Desk) string {
	if d.Use == "conversations" {
		return "MessageBirdServiceDeskId / MessageBirdRequestTypeId / MessageBirdChannelRoutes"
	}
	return "JiraProjects"
}

func orText(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
