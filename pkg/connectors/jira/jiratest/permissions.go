package jiratest

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

// Project permissions of the integration account. Every permission is granted in every project
// until RevokePermission takes one away, as when a Jira administrator edits the project's
// permission scheme or removes the account from a role. A revoked permission is then both
// reported by GET /rest/api/3/mypermissions (havePermission false) and enforced: the operations
// that need it are refused with 403 (BROWSE_PROJECTS: the project's desks and requests answer
// 404, as JSM hides what an account may not see). The 403 texts are plausible, not Jira's
// exact words (UNCONFIRMED).

// Permission keys (the Jira Cloud platform's project permission keys) the fake knows.
const (
	PermBrowseProjects    = "BROWSE_PROJECTS"
	PermCreateIssues      = "CREATE_ISSUES"
	PermAddComments       = "ADD_COMMENTS"
	PermEditIssues        = "EDIT_ISSUES"
	PermEditOwnComments   = "EDIT_OWN_COMMENTS"
	PermCreateAttachments = "CREATE_ATTACHMENTS"
	PermTransitionIssues  = "TRANSITION_ISSUES"
	PermLinkIssues        = "LINK_ISSUES"
	PermAdminister        = "ADMINISTER" // global: Jira Administrators (creating customers)
)

// permissionNames are the display names GET /rest/api/3/mypermissions returns.
var permissionNames = map[string]struct{ id, name, typ string }{
	PermBrowseProjects:    {"10", "Browse Projects", "PROJECT"},
	PermCreateIssues:      {"11", "Create Issues", "PROJECT"},
	PermAddComments:       {"15", "Add Comments", "PROJECT"},
	PermEditIssues:        {"12", "Edit Issues", "PROJECT"},
	PermEditOwnComments:   {"36", "Edit Own Comments", "PROJECT"},
	PermCreateAttachments: {"19", "Create Attachments", "PROJECT"},
	PermTransitionIssues:  {"46", "Transition Issues", "PROJECT"},
	PermLinkIssues:        {"21", "Link Issues", "PROJECT"},
	PermAdminister:        {"0", "Administer Jira", "GLOBAL"},
}

// RevokePermission takes a permission away from the integration account in a project (for
// ADMINISTER, a global permission, the project is ignored).
func (s *Server) RevokePermission(projectKey, permission string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.revoked == nil {
		s.revoked = map[string]bool{}
	}
	s.revoked[permKey(projectKey, permission)] = true
}

// RestorePermission gives a revoked permission back.
func (s *Server) RestorePermission(projectKey, permission string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.revoked, permKey(projectKey, permission))
}

func permKey(projectKey, permission string) string {
	if permission == PermAdminister {
		return "*#" + permission
	}
	return strings.ToUpper(projectKey) + "#" + permission
}

func (s *Server) haveLocked(projectKey, permission string) bool {
	return !s.revoked[permKey(projectKey, permission)]
}

// myPermissions is GET /rest/api/3/mypermissions: permissions (comma-separated keys) is
// required; with projectKey (or projectId) project permissions are answered for that project,
// without a context for "any project".
func (s *Server) myPermissions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	keys := strings.Split(q.Get("permissions"), ",")
	if strings.TrimSpace(q.Get("permissions")) == "" {
		writePlatform(w, http.StatusBadRequest, []string{"The permissions query parameter is required."}, nil)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	project := strings.ToUpper(q.Get("projectKey"))
	if id := q.Get("projectId"); id != "" {
		project = ""
		for _, d := range s.desks {
			if d.ProjectID == id {
				project = d.ProjectKey
			}
		}
		if project == "" {
			writePlatform(w, http.StatusNotFound, []string{"No project could be found with id '" + id + "'."}, nil)
			return
		}
	}
	if project != "" && !s.projectExistsLocked(project) {
		writePlatform(w, http.StatusNotFound, []string{"No project could be found with key '" + project + "'."}, nil)
		return
	}
	out := map[string]any{}
	for _, k := range keys {
		k = strings.TrimSpace(k)
		meta, ok := permissionNames[k]
		if !ok {
			writePlatform(w, http.StatusBadRequest, []string{"Permission key '" + k + "' is not valid."}, nil)
			return
		}
		var have bool
		switch {
		case meta.typ == "GLOBAL":
			have = s.haveLocked("", k)
		case project != "":
			have = s.haveLocked(project, k) && (k == PermBrowseProjects || s.haveLocked(project, PermBrowseProjects))
		default: // any project
			have = false
			for _, d := range s.desks {
				if s.haveLocked(d.ProjectKey, k) {
					have = true
				}
			}
		}
		out[k] = map[string]any{"id": meta.id, "key": k, "name": meta.name, "type": meta.typ, "description": meta.name, "havePermission": have}
	}
	writeJSON(w, http.StatusOK, map[string]any{"permissions": out})
}

func (s *Server) projectExistsLocked(key string) bool {
	for _, d := range s.desks {
		if strings.EqualFold(d.ProjectKey, key) {
			return true
		}
	}
	return false
}

// getServiceDesk is GET /rest/servicedeskapi/servicedesk/{id}.
func (s *Server) getServiceDesk(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.desks[r.PathValue("id")]
	var out map[string]any
	if d != nil {
		out = map[string]any{"id": d.ID, "projectId": d.ProjectID, "projectKey": d.ProjectKey, "projectName": d.ProjectName,
			"_links": map[string]any{"self": s.URL() + "/rest/servicedeskapi/servicedesk/" + d.ID}}
	}
	s.mu.Unlock()
	if out == nil {
		writeJSM(w, http.StatusNotFound, "The service desk does not exist or you do not have permission to access it.", "sd.servicedesk.error.not.found")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// refused enforces revoked permissions before a request reaches its handler; it reports
// whether it answered.
func (s *Server) refused(w http.ResponseWriter, r *http.Request, path string, body []byte) bool {
	project, permission, ok := s.needs(r.Method, path, body)
	if !ok {
		return false
	}
	s.mu.Lock()
	browse := s.haveLocked(project, PermBrowseProjects)
	have := s.haveLocked(project, permission)
	s.mu.Unlock()
	switch {
	case !browse:
		writeAreaError(w, path, http.StatusNotFound, "The project "+project+" does not exist or you do not have permission to access it.")
	case !have:
		name := permissionNames[permission].name
		writeAreaError(w, path, http.StatusForbidden, "You do not have the '"+name+"' permission in project "+project+".")
	default:
		return false
	}
	return true
}

// needs maps an API call to the project and permission it requires.
func (s *Server) needs(method, path string, body []byte) (project, permission string, ok bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	at := func(i int) string {
		if i < len(parts) {
			return parts[i]
		}
		return ""
	}
	projectOfKey := func(key string) string {
		p, _, _ := strings.Cut(strings.ToUpper(key), "-")
		s.mu.Lock()
		defer s.mu.Unlock()
		if r := s.lookupLocked(key); r != nil {
			if d := s.desks[r.ServiceDeskID]; d != nil {
				return d.ProjectKey
			}
		}
		return p
	}
	projectOfDesk := func(id string) string {
		s.mu.Lock()
		defer s.mu.Unlock()
		if d := s.desks[id]; d != nil {
			return d.ProjectKey
		}
		return ""
	}
	switch {
	case at(0) == "rest" && at(1) == "servicedeskapi" && at(2) == "request" && len(parts) == 3 && method == http.MethodPost:
		var b struct {
			ServiceDeskID json.RawMessage `json:"serviceDeskId"`
		}
		_ = json.Unmarshal(body, &b)
		id, _ := idString(b.ServiceDeskID)
		project, permission = projectOfDesk(id), PermCreateIssues
	case at(1) == "servicedeskapi" && at(2) == "request" && len(parts) >= 4:
		project = projectOfKey(at(3))
		switch {
		case method == http.MethodGet:
			permission = PermBrowseProjects
		case at(4) == "comment":
			permission = PermAddComments
		case at(4) == "attachment":
			permission = PermCreateAttachments
		case at(4) == "transition":
			permission = PermTransitionIssues
		default:
			permission = PermBrowseProjects
		}
	case at(1) == "servicedeskapi" && at(2) == "servicedesk" && len(parts) >= 4:
		project, permission = projectOfDesk(at(3)), PermBrowseProjects
		if at(4) == "attachTemporaryFile" {
			permission = PermCreateAttachments
		}
	case at(1) == "api" && at(3) == "issue" && len(parts) >= 5:
		project = projectOfKey(at(4))
		switch {
		case method == http.MethodGet:
			permission = PermBrowseProjects
		case at(5) == "comment" && method == http.MethodPut:
			permission = PermEditOwnComments
		case at(5) == "comment":
			permission = PermAddComments
		default:
			permission = PermEditIssues
		}
	}
	return project, permission, project != "" && permission != ""
}

// Revoked lists the revoked permissions as "<project>#<permission>", sorted.
func (s *Server) Revoked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.revoked {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
